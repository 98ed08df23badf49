//! The questions the commands ask of a namespace's firewall, built from its addresses: can a
//! new connection reach this listener, and which ports does it forward, to where.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::sync::Arc;

use serde::Serialize;

use super::eval::{Evaluator, Forward, Question, Reach, RuleRef, Verdict};
use super::{AddressRange, Ruleset};
use crate::core::model::{InterfaceAddress, Proto};

/// The target of a published port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForwardTarget {
    pub to_address: IpAddr,
    pub to_port: u16,
    /// The network namespace that holds the target address, as the NETNS column names it.
    pub netns: Option<String>,
    /// The container's name where its runtime's processes say it, else its id.
    pub container: Option<String>,
    /// Its full id, where known.
    pub container_id: Option<String>,
    pub runtime: Option<String>,
    /// The DNAT rule.
    pub rule: RuleRef,
}

/// What the firewall says of one socket of a listing (`--firewall`): whether new connections
/// from beyond the host reach it, and, for a port a forward takes, where they really go (the
/// verdict is then the forward's).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Passage {
    pub firewall: Option<Reach>,
    pub forward: Option<Arc<ForwardTarget>>,
}

/// One network namespace's addresses, as the evaluator's questions need them.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Every address, loopback included.
    local: Vec<IpAddr>,
    /// The interfaces that hold an address beyond loopback and IPv6 link-local, container
    /// bridges aside: where a packet from beyond the host can come in (a bridge's ports hold
    /// none, or only a link-local one; their bridge holds the addresses).
    interfaces: Vec<String>,
    networks: Vec<(AddressRange, String)>,
    /// Whether the kernel forwards IPv4 and IPv6 packets; `None` where unknown.
    forwarding: [Option<bool>; 2],
}

impl Network {
    /// With the kernel's forwarding settings (`HostFacts::forwarding`): a forward the kernel
    /// would not route goes nowhere, whatever the rules say.
    pub fn with_forwarding(mut self, forwarding: [Option<bool>; 2]) -> Network {
        self.forwarding = forwarding;
        self
    }

    pub fn of(addresses: &[InterfaceAddress]) -> Network {
        let mut network = Network::default();
        for address in addresses {
            network.local.push(address.address);
            if address.address.is_loopback() {
                continue;
            }
            // An interface with only an IPv6 link-local address is most often a bridge's port
            // (a container's host-side veth): packets on it arrive through the bridge.
            let link_local =
                matches!(address.address, IpAddr::V6(v6) if v6.is_unicast_link_local());
            if !link_local
                && !is_container_bridge(&address.interface)
                && !network.interfaces.contains(&address.interface)
            {
                network.interfaces.push(address.interface.clone());
            }
            if let Some(range) = AddressRange::prefix(address.address, address.prefix) {
                network.networks.push((range, address.interface.clone()));
            }
        }
        network
    }

    /// The addresses a packet to a listener bound to `address` may be sent to from beyond the
    /// namespace: its own, or for a wildcard every address of its family beyond loopback (of
    /// both families for a dual-stack `[::]`).
    fn destinations(&self, address: IpAddr, dual_stack: bool) -> Vec<IpAddr> {
        let address = address.to_canonical();
        if !address.is_unspecified() {
            return vec![address];
        }
        self.local
            .iter()
            .copied()
            .filter(|local| !local.is_loopback())
            .filter(|local| local.is_ipv4() == address.is_ipv4() || (dual_stack && local.is_ipv4()))
            .collect()
    }
}

/// The bridges container runtimes make for their containers (docker0 and docker's `br-ID`
/// networks, podman0 and CNI's `cni-podman0`, `cni0`): what comes in on them comes from this
/// host's own containers, not from beyond the host, so they are not where the question's
/// packets arrive. (A hand-made LAN bridge, `br0`, is not one of these.)
fn is_container_bridge(name: &str) -> bool {
    let docker_network = name
        .strip_prefix("br-")
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    docker_network
        || name == "docker0"
        || name == "cni0"
        || name.starts_with("podman")
        || name.starts_with("cni-podman")
}

/// A namespace's firewall with its addresses: the verdicts of its listeners and forwards.
pub struct Judge<'a> {
    /// `Err`: why the firewall could not be read; every verdict is then `unknown`, saying so.
    evaluator: Result<Evaluator<'a>, &'a str>,
    network: &'a Network,
}

impl<'a> Judge<'a> {
    pub fn new(firewall: &'a Result<Ruleset, String>, network: &'a Network) -> Judge<'a> {
        Judge {
            // A ruleset read in part (a tool said it left rules out) decides nothing.
            evaluator: match firewall {
                Ok(ruleset) if ruleset.gaps.is_empty() => Ok(Evaluator::new(ruleset)),
                Ok(ruleset) => Err(ruleset.gaps[0].as_str()),
                Err(why) => Err(why.as_str()),
            },
            network,
        }
    }

    /// Whether new connections from beyond the namespace reach a listener bound to
    /// `address:port`; `None` when nothing beyond it could (bound to loopback, or the namespace
    /// has no other address): then no firewall decides.
    pub fn listener(
        &self,
        proto: Proto,
        address: IpAddr,
        port: u16,
        dual_stack: bool,
    ) -> Option<Reach> {
        let destinations = self.network.destinations(address, dual_stack);
        if address.to_canonical().is_loopback() || destinations.is_empty() {
            return None;
        }
        Some(match &self.evaluator {
            Ok(evaluator) => evaluator.reach_listener(&self.question(proto, port, &destinations)),
            Err(why) => unknown(why),
        })
    }

    /// The ports this namespace forwards (DNAT), each with whether new connections get through.
    pub fn forwards(&self) -> Vec<(Forward, Reach)> {
        let Ok(evaluator) = &self.evaluator else {
            return Vec::new();
        };
        evaluator
            .forwards()
            .into_iter()
            .map(|forward| {
                let unspecified = if forward.to_address.is_ipv4() {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                };
                let destinations: Vec<IpAddr> = self
                    .network
                    .destinations(unspecified, false)
                    .into_iter()
                    .filter(|d| {
                        forward.host_addresses.is_empty()
                            || forward.host_addresses.iter().any(|r| r.contains(*d))
                    })
                    .collect();
                let family = usize::from(!forward.to_address.is_ipv4());
                if self.network.forwarding[family] == Some(false) {
                    let sysctl = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"][family];
                    let reach = Reach {
                        verdict: Verdict::Blocked,
                        sources: Vec::new(),
                        rule: None,
                        reason: Some(format!(
                            "the kernel does not forward these packets here ({sysctl} = 0)"
                        )),
                    };
                    return (forward, reach);
                }
                let question =
                    self.question(forward.proto, forward.host_ports.first, &destinations);
                let reach = evaluator.reach_forward(&question, &forward);
                (forward, reach)
            })
            .collect()
    }

    fn question<'q>(&'q self, proto: Proto, port: u16, destinations: &'q [IpAddr]) -> Question<'q> {
        Question {
            proto,
            port,
            destinations,
            interfaces: &self.network.interfaces,
            local_addresses: &self.network.local,
            networks: &self.network.networks,
        }
    }
}

fn unknown(why: &str) -> Reach {
    Reach {
        verdict: Verdict::Unknown,
        sources: Vec::new(),
        rule: None,
        reason: Some(why.to_string()),
    }
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Open => "open",
            Verdict::Restricted => "restricted",
            Verdict::Blocked => "blocked",
            Verdict::Unknown => "unknown",
        }
    }
}

impl RuleRef {
    /// `ip filter INPUT, rule 3: -A INPUT -p tcp --dport 22 -j ACCEPT`, or
    /// `inet filter input: policy drop`.
    pub fn describe(&self) -> String {
        let place = format!("{} {} {}", self.family.as_str(), self.table, self.chain);
        match self.handle {
            Some(handle) => format!("{place}, rule {handle}: {}", self.text),
            None => format!("{place}: {}", self.text),
        }
    }
}

impl Reach {
    /// One line: the verdict, who gets through, and the rule that decided.
    pub fn describe(&self) -> String {
        let mut line = self.verdict.as_str().to_string();
        if !self.sources.is_empty() {
            let label = match self.verdict {
                Verdict::Unknown => " (known to get through: ",
                _ => " to ",
            };
            line.push_str(label);
            line.push_str(&self.sources.join(", "));
            if self.verdict == Verdict::Unknown {
                line.push(')');
            }
        }
        if let Some(reason) = &self.reason {
            line.push_str(": ");
            line.push_str(reason);
        }
        match (&self.rule, self.verdict) {
            (Some(rule), _) => {
                line.push_str(" (");
                line.push_str(&rule.describe());
                line.push(')');
            }
            (None, Verdict::Open) => line.push_str(" (no rule stops new connections)"),
            _ => {}
        }
        line
    }
}
