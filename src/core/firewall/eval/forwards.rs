//! The published ports: every DNAT a prerouting nat base chain can reach, with what its path
//! requires of a packet's protocol, destination port and destination address.
//!
//! Only those three (and the tests that rule a new inbound packet to a local address out) narrow
//! a forward here; whatever else a path tests (source, in interface, marks ...) is left to
//! [`Evaluator::reach_forward`](super::Evaluator::reach_forward) to weigh.

use std::collections::HashSet;
use std::net::IpAddr;

use super::space::{Intervals, space_end, version_of};
use super::{AddressSet, Check, CompiledTest, Decider, Evaluator, Forward, MAX_JUMP_DEPTH, Step};
use crate::core::firewall::{
    AddressRange, AddressType, ChainKind, IpVersion, PortSpan, TableFamily,
};
use crate::core::model::Proto;

pub(super) fn find(evaluator: &Evaluator) -> Vec<Forward> {
    let mut found: Vec<(Decider, Forward)> = Vec::new();
    for &index in &evaluator.prerouting {
        let chain = &evaluator.ruleset.chains[index];
        if chain.base.as_ref().map(|base| base.kind) != Some(ChainKind::Nat) {
            continue;
        }
        let Some(path) = Path::of_family(chain.family) else {
            continue;
        };
        let mut stack = vec![index];
        visit(evaluator, index, &path, &mut stack, &mut found);
    }
    // Stable: one DNAT reached along several paths keeps the order its paths were found in.
    found.sort_by_key(|(decider, _)| (decider.chain, decider.rule));
    let mut seen = HashSet::new();
    found
        .into_iter()
        .map(|(_, forward)| forward)
        .filter(|forward| seen.insert(forward.clone()))
        .collect()
}

fn visit(
    evaluator: &Evaluator,
    index: usize,
    path: &Path,
    stack: &mut Vec<usize>,
    found: &mut Vec<(Decider, Forward)>,
) {
    for (at, rule) in evaluator.chains[index].rules.iter().enumerate() {
        let Some(path) = path.through(&rule.checks) else {
            continue;
        };
        let decider = Decider {
            chain: index,
            rule: Some(at),
        };
        match &rule.action {
            Step::Jump(Ok(target)) | Step::Goto(Ok(target)) => {
                if stack.contains(target) || stack.len() >= MAX_JUMP_DEPTH {
                    continue;
                }
                stack.push(*target);
                visit(evaluator, *target, &path, stack, found);
                stack.pop();
            }
            Step::Dnat {
                address: Some(address),
                ports,
                local: false,
            } => {
                let Some(rule_ref) = evaluator.rule_ref(decider) else {
                    continue;
                };
                for forward in path.forwards(*address, *ports, &rule_ref) {
                    found.push((decider, forward));
                }
            }
            _ => {}
        }
    }
}

/// What the rules on a path so far require of a packet.
#[derive(Debug, Clone)]
struct Path {
    tcp: bool,
    udp: bool,
    ports: Intervals,
    /// Destination addresses still possible, per family (empty: not this family).
    v4: Intervals,
    v6: Intervals,
}

impl Path {
    fn of_family(family: TableFamily) -> Option<Path> {
        let v4 = Intervals::span(0, space_end(IpVersion::V4));
        let v6 = Intervals::span(0, space_end(IpVersion::V6));
        let (v4, v6) = match family {
            TableFamily::Ip => (v4, Intervals::empty()),
            TableFamily::Ip6 => (Intervals::empty(), v6),
            TableFamily::Inet => (v4, v6),
            TableFamily::Arp | TableFamily::Bridge | TableFamily::Netdev => return None,
        };
        Some(Path {
            tcp: true,
            udp: true,
            ports: Intervals::span(0, u128::from(u16::MAX)),
            v4,
            v6,
        })
    }

    fn family_mut(&mut self, version: IpVersion) -> &mut Intervals {
        match version {
            IpVersion::V4 => &mut self.v4,
            IpVersion::V6 => &mut self.v6,
        }
    }

    /// The path on through a rule whose matches all hold; None when no new inbound packet to a
    /// local address can get through them.
    fn through(&self, checks: &[Check]) -> Option<Path> {
        let mut path = self.clone();
        for check in checks {
            let negated = check.negated;
            match &check.test {
                CompiledTest::IpVersion(version) => {
                    for other in [IpVersion::V4, IpVersion::V6] {
                        if (other == *version) == negated {
                            *path.family_mut(other) = Intervals::empty();
                        }
                    }
                }
                CompiledTest::L4Proto { tcp, udp } => {
                    path.tcp &= *tcp != negated;
                    path.udp &= *udp != negated;
                }
                CompiledTest::DestinationPort(spans) => {
                    let listed = Intervals::from_spans(
                        spans
                            .iter()
                            .map(|span| (u128::from(span.first), u128::from(span.last)))
                            .collect(),
                    );
                    path.ports = if negated {
                        path.ports.subtract(&listed)
                    } else {
                        path.ports.intersect(&listed)
                    };
                }
                CompiledTest::DestinationAddress(set) => {
                    for version in [IpVersion::V4, IpVersion::V6] {
                        let allowed = path.family_mut(version);
                        *allowed = if !set.applies_to(version) {
                            Intervals::empty()
                        } else if negated {
                            allowed.subtract(set.family(version))
                        } else {
                            allowed.intersect(set.family(version))
                        };
                    }
                }
                CompiledTest::SourceAddress(set) => keep_families(&mut path, set),
                CompiledTest::ConnectionState { new, .. } => {
                    // Before the DNAT a connection is only `new`.
                    if *new == negated {
                        return None;
                    }
                }
                CompiledTest::DestinationType(types) => {
                    // A published port is for packets to the host itself.
                    if types.contains(&AddressType::Local) == negated {
                        return None;
                    }
                }
                CompiledTest::SourcePort(_)
                | CompiledTest::InInterface(_)
                | CompiledTest::OutInterface(_)
                | CompiledTest::Mark { .. }
                | CompiledTest::Unknown(_) => {}
            }
        }
        let possible = (path.tcp || path.udp)
            && !path.ports.is_empty()
            && !(path.v4.is_empty() && path.v6.is_empty());
        possible.then_some(path)
    }

    fn forwards(
        &self,
        to_address: IpAddr,
        to_ports: Option<PortSpan>,
        rule: &super::RuleRef,
    ) -> Vec<Forward> {
        let version = version_of(to_address);
        let destinations = match version {
            IpVersion::V4 => &self.v4,
            IpVersion::V6 => &self.v6,
        };
        if destinations.is_empty() {
            return Vec::new();
        }
        let host_addresses: Vec<AddressRange> = if destinations.is_span(0, space_end(version)) {
            Vec::new()
        } else {
            destinations.prefixes(version).into_iter().collect()
        };
        let mut forwards = Vec::new();
        for (allowed, proto) in [(self.tcp, Proto::Tcp), (self.udp, Proto::Udp)] {
            if !allowed {
                continue;
            }
            for &(first, last) in self.ports.spans() {
                let host_ports = PortSpan {
                    first: u16::try_from(first).unwrap_or(u16::MAX),
                    last: u16::try_from(last).unwrap_or(u16::MAX),
                };
                let to_port = match to_ports {
                    None => host_ports.first,
                    Some(span)
                        if span.contains(host_ports.first) && span.contains(host_ports.last) =>
                    {
                        host_ports.first
                    }
                    Some(span) => span.first,
                };
                forwards.push(Forward {
                    proto,
                    host_addresses: host_addresses.clone(),
                    host_ports,
                    to_address,
                    to_port,
                    rule: rule.clone(),
                });
            }
        }
        forwards
    }
}

/// A source address list of one family rules the other out (nft's implied "is IPv4").
fn keep_families(path: &mut Path, set: &AddressSet) {
    for version in [IpVersion::V4, IpVersion::V6] {
        if !set.applies_to(version) {
            *path.family_mut(version) = Intervals::empty();
        }
    }
}
