//! The sets the evaluator carries instead of single packets: source addresses as unions of
//! intervals, interfaces and destinations as bit sets, so a whole class of packets that rules
//! treat alike goes through a chain in one step.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::{AddressRange, IpVersion};

/// The last address of a family's space, as a number.
pub(super) fn space_end(version: IpVersion) -> u128 {
    match version {
        IpVersion::V4 => u128::from(u32::MAX),
        IpVersion::V6 => u128::MAX,
    }
}

pub(super) fn version_of(address: IpAddr) -> IpVersion {
    match address {
        IpAddr::V4(_) => IpVersion::V4,
        IpAddr::V6(_) => IpVersion::V6,
    }
}

pub(super) fn address_number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn number_address(number: u128, version: IpVersion) -> IpAddr {
    match version {
        // Numbers of the v4 space never exceed u32::MAX; saturate rather than trust that.
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(number).unwrap_or(u32::MAX))),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(number)),
    }
}

/// A set of numbers as sorted, disjoint, non-adjacent inclusive intervals: adjacent ranges are
/// always merged, so equal sets compare equal and print as the fewest prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Intervals {
    spans: Vec<(u128, u128)>,
}

impl Intervals {
    pub(super) fn empty() -> Intervals {
        Intervals { spans: Vec::new() }
    }

    pub(super) fn span(first: u128, last: u128) -> Intervals {
        Intervals::from_spans(vec![(first, last)])
    }

    pub(super) fn from_spans(mut spans: Vec<(u128, u128)>) -> Intervals {
        spans.retain(|(first, last)| first <= last);
        spans.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(spans.len());
        for (first, last) in spans {
            match merged.last_mut() {
                Some((_, end)) if first <= end.saturating_add(1) => *end = (*end).max(last),
                _ => merged.push((first, last)),
            }
        }
        Intervals { spans: merged }
    }

    /// The addresses of `ranges` that are of `version`.
    pub(super) fn of_ranges(ranges: &[AddressRange], version: IpVersion) -> Intervals {
        Intervals::from_spans(
            ranges
                .iter()
                .filter(|range| {
                    version_of(range.first) == version && version_of(range.last) == version
                })
                .map(|range| (address_number(range.first), address_number(range.last)))
                .collect(),
        )
    }

    pub(super) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub(super) fn is_span(&self, first: u128, last: u128) -> bool {
        self.spans == [(first, last)]
    }

    pub(super) fn spans(&self) -> &[(u128, u128)] {
        &self.spans
    }

    pub(super) fn contains(&self, number: u128) -> bool {
        let at = self.spans.partition_point(|&(_, last)| last < number);
        self.spans
            .get(at)
            .is_some_and(|&(first, _)| first <= number)
    }

    pub(super) fn union(&self, other: &Intervals) -> Intervals {
        Intervals::from_spans(self.spans.iter().chain(&other.spans).copied().collect())
    }

    pub(super) fn intersect(&self, other: &Intervals) -> Intervals {
        let mut spans = Vec::new();
        let (mut a, mut b) = (0, 0);
        while let (Some(&(a_first, a_last)), Some(&(b_first, b_last))) =
            (self.spans.get(a), other.spans.get(b))
        {
            let first = a_first.max(b_first);
            let last = a_last.min(b_last);
            if first <= last {
                spans.push((first, last));
            }
            if a_last < b_last {
                a += 1;
            } else {
                b += 1;
            }
        }
        Intervals { spans }
    }

    pub(super) fn subtract(&self, other: &Intervals) -> Intervals {
        let mut spans = Vec::new();
        let mut cut = other.spans.iter().peekable();
        for &(first, last) in &self.spans {
            let mut from = first;
            let mut done = false;
            while let Some(&&(cut_first, cut_last)) = cut.peek() {
                if cut_last < from {
                    cut.next();
                    continue;
                }
                if cut_first > last {
                    break;
                }
                if cut_first > from {
                    spans.push((from, cut_first - 1));
                }
                if cut_last >= last {
                    done = true;
                    break;
                }
                from = cut_last + 1;
                cut.next();
            }
            if !done {
                spans.push((from, last));
            }
        }
        Intervals { spans }
    }

    /// How many numbers the set holds, as a share of `0..=end`: a weight that compares v4 and
    /// v6 sets on one scale.
    pub(super) fn share(&self, end: u128) -> f64 {
        let count: f64 = self
            .spans
            .iter()
            .map(|&(first, last)| (last - first) as f64 + 1.0)
            .sum();
        count / (end as f64 + 1.0)
    }

    /// The fewest prefixes that cover the set exactly.
    pub(super) fn prefixes(&self, version: IpVersion) -> Vec<AddressRange> {
        let bits = match version {
            IpVersion::V4 => 32,
            IpVersion::V6 => 128,
        };
        let mut prefixes = Vec::new();
        for &(first, last) in &self.spans {
            let mut from = first;
            loop {
                let mut size_bits = if from == 0 {
                    bits
                } else {
                    from.trailing_zeros().min(bits)
                };
                while size_bits > 0 && from + low_mask(size_bits) > last {
                    size_bits -= 1;
                }
                let block_last = from + low_mask(size_bits);
                prefixes.push(AddressRange {
                    first: number_address(from, version),
                    last: number_address(block_last, version),
                });
                if block_last >= last {
                    break;
                }
                from = block_last + 1;
            }
        }
        prefixes
    }
}

/// `2^bits - 1`, for `bits` up to 128.
fn low_mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// The prefix length of `range` when it is exactly one prefix.
pub(super) fn prefix_length(range: &AddressRange) -> Option<u8> {
    let version = version_of(range.first);
    if version_of(range.last) != version {
        return None;
    }
    let (first, last) = (address_number(range.first), address_number(range.last));
    if first > last {
        return None;
    }
    let host_bits = (last - first)
        .checked_add(1)
        .map_or(128, u128::trailing_zeros);
    let block = low_mask(host_bits);
    let aligned = first & block == 0 && last - first == block;
    let total = match version {
        IpVersion::V4 => 32,
        IpVersion::V6 => 128,
    };
    (aligned && host_bits <= total).then(|| (total - host_bits) as u8)
}

/// A set of indices below a fixed count (interfaces, destinations of a question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    pub(super) fn all(count: usize) -> Bits {
        Bits::from_fn(count, |_| true)
    }

    pub(super) fn from_fn(count: usize, mut member: impl FnMut(usize) -> bool) -> Bits {
        let mut words = vec![0u64; count.div_ceil(64)];
        for index in 0..count {
            if member(index) {
                words[index / 64] |= 1 << (index % 64);
            }
        }
        Bits { words }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.words.iter().all(|&word| word == 0)
    }

    pub(super) fn count(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(at, &word)| {
            (0..64)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| at * 64 + bit)
        })
    }

    /// The members for which `test` says yes, and those for which it says no.
    pub(super) fn partition(&self, mut test: impl FnMut(usize) -> bool) -> (Bits, Bits) {
        let mut yes = Bits {
            words: vec![0; self.words.len()],
        };
        let mut no = yes.clone();
        for index in self.iter() {
            let side = if test(index) { &mut yes } else { &mut no };
            side.words[index / 64] |= 1 << (index % 64);
        }
        (yes, no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> u128 {
        address_number(text.parse().expect("test address"))
    }

    fn prefix_texts(set: &Intervals, version: IpVersion) -> Vec<String> {
        set.prefixes(version)
            .iter()
            .map(|range| {
                format!(
                    "{}/{}",
                    range.first,
                    prefix_length(range).expect("a prefix")
                )
            })
            .collect()
    }

    #[test]
    fn adjacent_and_overlapping_spans_merge() {
        let set = Intervals::from_spans(vec![(10, 20), (21, 30), (5, 12), (40, 41)]);
        assert_eq!(set.spans(), &[(5, 30), (40, 41)]);
    }

    #[test]
    fn intersect_and_subtract_cut_at_the_edges() {
        let set = Intervals::from_spans(vec![(0, 10), (20, 30)]);
        let cut = Intervals::from_spans(vec![(5, 22), (30, 40)]);
        assert_eq!(set.intersect(&cut).spans(), &[(5, 10), (20, 22), (30, 30)]);
        assert_eq!(set.subtract(&cut).spans(), &[(0, 4), (23, 29)]);
        assert!(set.subtract(&set).is_empty());
        let whole = Intervals::span(0, u128::MAX);
        assert_eq!(
            whole
                .subtract(&Intervals::span(u128::MAX, u128::MAX))
                .spans(),
            &[(0, u128::MAX - 1)]
        );
        assert!(set.contains(20) && set.contains(10) && !set.contains(15));
    }

    #[test]
    fn prefixes_are_the_fewest_that_cover_exactly() {
        let two_halves = Intervals::from_spans(vec![
            (v4("10.0.0.0"), v4("10.127.255.255")),
            (v4("10.128.0.0"), v4("10.255.255.255")),
        ]);
        assert_eq!(prefix_texts(&two_halves, IpVersion::V4), ["10.0.0.0/8"]);
        let ragged = Intervals::span(v4("192.168.0.1"), v4("192.168.0.6"));
        assert_eq!(
            prefix_texts(&ragged, IpVersion::V4),
            [
                "192.168.0.1/32",
                "192.168.0.2/31",
                "192.168.0.4/31",
                "192.168.0.6/32"
            ]
        );
        assert_eq!(
            prefix_texts(&Intervals::span(0, space_end(IpVersion::V4)), IpVersion::V4),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            prefix_texts(&Intervals::span(0, u128::MAX), IpVersion::V6),
            ["::/0"]
        );
    }

    #[test]
    fn prefix_length_only_for_exact_prefixes() {
        let range = |first: &str, last: &str| AddressRange {
            first: first.parse().expect("test address"),
            last: last.parse().expect("test address"),
        };
        assert_eq!(prefix_length(&range("10.0.0.0", "10.255.255.255")), Some(8));
        assert_eq!(prefix_length(&range("10.0.0.1", "10.0.0.1")), Some(32));
        assert_eq!(prefix_length(&range("10.0.0.1", "10.0.0.2")), None);
        assert_eq!(
            prefix_length(&range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(0)
        );
        assert_eq!(prefix_length(&range("10.0.0.0", "::1")), None);
    }

    #[test]
    fn bits_partition_and_count() {
        let bits = Bits::all(70);
        assert_eq!(bits.count(), 70);
        let (even, odd) = bits.partition(|index| index % 2 == 0);
        assert_eq!(even.count(), 35);
        assert_eq!(odd.iter().last(), Some(69));
        assert!(Bits::from_fn(3, |_| false).is_empty());
    }

    #[test]
    fn shares_compare_families_on_one_scale() {
        let half = Intervals::span(0, space_end(IpVersion::V4) / 2);
        assert!((half.share(space_end(IpVersion::V4)) - 0.5).abs() < 1e-9);
        let all6 = Intervals::span(0, u128::MAX);
        assert!((all6.share(u128::MAX) - 1.0).abs() < 1e-9);
    }
}
