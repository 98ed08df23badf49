//! Address and port conditions as the kernel's sock_diag filter can test them: what
//! [`crate::core::query::Query`] hands a backend to push into its request. Only conditions the
//! kernel evaluates exactly are in it; the query's own filter always runs afterwards, so a
//! backend that ignores the filter, or a condition left out of it, loses nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::core::text::quoted;

/// An address prefix: `10.0.0.0/8`, `fe80::/10`, or one address (`127.0.0.1` is `/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub address: IpAddr,
    /// Bits of `address` that must match: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl Prefix {
    /// Exactly this address.
    pub fn host(address: IpAddr) -> Prefix {
        let len = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Prefix { address, len }
    }

    /// Whether `ip` lies in the prefix, as `ss` and the kernel's `INET_DIAG_BC_S_COND` decide:
    /// an IPv4 prefix also holds the IPv4-mapped IPv6 addresses of its IPv4 addresses
    /// (`::ffff:10.0.0.1` is in `10.0.0.0/8`, since a dual-stack socket talking IPv4 shows
    /// them), while an IPv6 prefix holds only IPv6 addresses (`::ffff:10.0.0.0/104` never
    /// holds a plain IPv4 socket's address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(prefix), IpAddr::V4(ip)) => {
                same_bits(&prefix.octets(), &ip.octets(), self.len)
            }
            (IpAddr::V4(prefix), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| same_bits(&prefix.octets(), &ip.octets(), self.len)),
            (IpAddr::V6(prefix), IpAddr::V6(ip)) => {
                same_bits(&prefix.octets(), &ip.octets(), self.len)
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are the same.
fn same_bits(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => (x ^ y) & mask == 0,
        _ => false,
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Prefix, String> {
        let text = text.trim();
        let (address, len) = match text.split_once('/') {
            Some((address, len)) => (address, Some(len)),
            None => (text, None),
        };
        let bare = address
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(address);
        if bare.contains('%') {
            return Err(format!(
                "{}: an address prefix has no zone (%INTERFACE); to match a link-local \
                 address on one interface, give the endpoint [ADDRESS%ZONE]:PORT",
                quoted(text)
            ));
        }
        let address: IpAddr = bare.parse().map_err(|_| {
            format!(
                "{} is not an IPv4 or IPv6 address, optionally with a prefix length \
                 (10.0.0.0/8, ::1, fe80::/10)",
                quoted(text)
            )
        })?;
        let most = Prefix::host(address).len;
        let len = match len {
            None => most,
            Some(len) => {
                let parsed = len
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| len.parse::<u8>().ok())
                    .flatten()
                    .filter(|len| *len <= most);
                parsed.ok_or_else(|| {
                    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
                    format!(
                        "prefix length {} in {} is not 0-{most} (an {family} prefix has at \
                         most {most} bits)",
                        quoted(len),
                        quoted(text)
                    )
                })?
            }
        };
        Ok(Prefix { address, len })
    }
}

/// A socket's two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// A condition on a socket's addresses and ports that sock_diag bytecode expresses exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The side's port lies in the range.
    Port {
        side: Side,
        range: RangeInclusive<u16>,
    },
    /// The side's address lies in the prefix and, if given, its port is this one.
    Host {
        side: Side,
        prefix: Prefix,
        port: Option<u16>,
    },
    /// Every condition holds.
    All(Vec<Filter>),
    /// At least one holds; none at all never holds.
    Any(Vec<Filter>),
}

impl Filter {
    /// Whether a socket with these ends passes, as the kernel decides: a socket without a peer
    /// has remote port 0 and the unspecified address of its family. A query matches only
    /// sockets that pass its filter (it may reject more, never less).
    pub fn matches(&self, local: SocketAddr, remote: Option<SocketAddr>) -> bool {
        let end = |side: Side| -> SocketAddr {
            match side {
                Side::Local => local,
                Side::Remote => remote.unwrap_or(match local {
                    SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                    SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
                }),
            }
        };
        match self {
            Filter::Port { side, range } => range.contains(&end(*side).port()),
            Filter::Host { side, prefix, port } => {
                let end = end(*side);
                port.is_none_or(|port| end.port() == port) && prefix.contains(end.ip())
            }
            Filter::All(all) => all.iter().all(|filter| filter.matches(local, remote)),
            Filter::Any(any) => any.iter().any(|filter| filter.matches(local, remote)),
        }
    }

    /// Sockets whose port on `side` is in one of `ranges`.
    pub fn ports(side: Side, ranges: &[RangeInclusive<u16>]) -> Filter {
        Filter::Any(
            ranges
                .iter()
                .map(|range| Filter::Port {
                    side,
                    range: range.clone(),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> Prefix {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_with_or_without_a_length() {
        assert_eq!(prefix("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(prefix("127.0.0.1").to_string(), "127.0.0.1/32");
        assert_eq!(prefix("::1").to_string(), "::1/128");
        assert_eq!(prefix("[::1]").to_string(), "::1/128");
        assert_eq!(prefix("fe80::/10").len, 10);
        assert_eq!(prefix("0.0.0.0/0").len, 0);
    }

    #[test]
    fn bad_prefixes_say_what_is_wrong() {
        let error = |text: &str| text.parse::<Prefix>().expect_err(text);
        assert!(
            error("10.0.0.0/33").contains("not 0-32"),
            "{}",
            error("10.0.0.0/33")
        );
        assert!(error("::/129").contains("not 0-128"));
        assert!(error("10.0.0.0/x").contains("not 0-32"));
        assert!(error("10.0.0.0/").contains("not 0-32"));
        assert!(error("10.0.0.0/-1").contains("not 0-32"));
        assert!(error("10.0.0").contains("not an IPv4 or IPv6 address"));
        assert!(error("").contains("not an IPv4 or IPv6 address"));
        assert!(error("fe80::1%eth0").contains("no zone"));
    }

    #[test]
    fn prefixes_hold_their_addresses_and_ipv4_ones_the_mapped_too() {
        assert!(prefix("10.0.0.0/8").contains(ip("10.200.0.1")));
        assert!(!prefix("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(prefix("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!prefix("10.0.0.0/8").contains(ip("::a01:203")));
        assert!(prefix("0.0.0.0/0").contains(ip("::ffff:1.2.3.4")));
        assert!(!prefix("0.0.0.0/0").contains(ip("::")));
        assert!(!prefix("::ffff:10.0.0.0/104").contains(ip("10.0.0.1")));
        assert!(prefix("::ffff:10.0.0.0/104").contains(ip("::ffff:10.0.0.1")));
        assert!(prefix("fe80::/10").contains(ip("febf::1")));
        assert!(!prefix("fe80::/10").contains(ip("fec0::1")));
        assert!(!prefix("::/0").contains(ip("1.2.3.4")));
        assert!(prefix("192.168.1.7/23").contains(ip("192.168.0.1")));
        assert!(!prefix("192.168.1.7/23").contains(ip("192.168.2.1")));
    }

    #[test]
    fn a_socket_without_a_peer_has_remote_port_zero_and_no_address() {
        let listener: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let port_zero = Filter::Port {
            side: Side::Remote,
            range: 0..=0,
        };
        assert!(port_zero.matches(listener, None));
        let anywhere = Filter::Host {
            side: Side::Remote,
            prefix: prefix("0.0.0.0/0"),
            port: None,
        };
        assert!(anywhere.matches(listener, None));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert!(!anywhere.matches(v6, None));
        assert!(!Filter::Any(Vec::new()).matches(listener, None));
        assert!(Filter::All(Vec::new()).matches(listener, None));
    }
}
