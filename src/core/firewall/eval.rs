//! Walking a new inbound packet through a [`Ruleset`](super::Ruleset): where it ends up, and
//! which rule decided.
//!
//! The walk is symbolic: instead of one packet it carries sets of packets (the interfaces they
//! come in on, the destinations they are for, the source addresses they come from) and splits a
//! set only where a rule tests it, so the answer is exact for every source address without
//! trying any one of them.
//!
//! The path follows netfilter's: ingress (netdev/inet chains of the in interface), prerouting,
//! the routing decision, then input for a local destination or forward for any other. Base
//! chains of one hook run in priority order (ties in ruleset order), from every table and tool;
//! an accept ends only its own base chain. nat chains on a hook all run inside the one nat hook
//! (-100 on prerouting), in their own priority order, and once one has translated a
//! connection the later ones are skipped. bridge and arp tables never see these packets'
//! routing path and are not walked; postrouting comes after the decision and is not walked.
//!
//! Out interface: before routing and on input a packet has none, and the kernel reads its name
//! as empty (nft's `oifname`, iptables' `-o` alike), so `oifname "x"` fails and `oifname != "x"`
//! holds there. On forward the out interface is the one whose directly connected network holds
//! the destination ([`Question::networks`]); with none, a test of it is unknown.

mod forwards;
mod space;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

use self::space::{Bits, Intervals, address_number, prefix_length, space_end, version_of};
use super::{
    Action, AddressRange, AddressType, Chain, ChainKind, ConnectionState, Hook, IpVersion, Mark,
    MarkSet, Match, Origin, Policy, PortSpan, Rule, Ruleset, TableFamily, Test,
};
use crate::core::model::Proto;

/// How deep jumps may nest before the walk gives up (the kernel's own jump stack holds 16).
const MAX_JUMP_DEPTH: usize = 64;

/// The priority every nat chain of prerouting effectively runs at: the kernel's one nat hook
/// there (`NF_IP_PRI_NAT_DST`, the same for IPv6) runs them all in turn.
const NAT_PREROUTING_PRIORITY: i32 = -100;
/// The nat hook's priority on input (`NF_IP_PRI_NAT_SRC`).
const NAT_INPUT_PRIORITY: i32 = 100;

/// The question asked for one listener: where does a new inbound packet to it end up?
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub proto: Proto,
    /// The destination port on the host side.
    pub port: u16,
    /// Destination addresses to try: the listener's own address, or for a wildcard bind every
    /// non-loopback address of the namespace in its family (both families for dual-stack `[::]`).
    pub destinations: &'a [IpAddr],
    /// The namespace's non-loopback interfaces by name: where the packet may come in. Give
    /// only interfaces that receive IP packets themselves: a bridge's ports (a container's host
    /// side veth on docker0) never do, their bridge does.
    pub interfaces: &'a [String],
    /// Every address of the namespace, loopback included: after prerouting, a destination among
    /// these is delivered locally (input hook), any other is forwarded (forward hook). Also
    /// what `fib daddr type local` / `addrtype --dst-type LOCAL` test.
    pub local_addresses: &'a [IpAddr],
    /// The namespace's directly connected networks, each with its interface (from the interfaces'
    /// addresses and prefix lengths): the out interface of a forwarded packet is the one whose
    /// network holds the destination; when none does, `OutInterface` tests are unknown.
    pub networks: &'a [(AddressRange, String)],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Open,
    Restricted,
    Blocked,
    Unknown,
}

/// A rule (or a chain's policy) that decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RuleRef {
    pub origin: Origin,
    pub family: TableFamily,
    pub table: String,
    pub chain: String,
    /// None when the chain's policy decided.
    pub handle: Option<u64>,
    /// The rule's text, or "policy drop" / "policy accept".
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reach {
    pub verdict: Verdict,
    /// For `restricted` (and for an `unknown` that is partly known): who gets through, each one
    /// source as text: prefixes like "10.0.0.0/8", "2001:db8::/32", and interfaces as "iif eth1"
    /// (or "10.0.0.0/8 via eth1" when both). Minimal: adjacent ranges merge into the fewest
    /// prefixes. When the destinations differ in who reaches them, each entry ends in
    /// " to ADDRESS".
    pub sources: Vec<String>,
    /// The deciding rule: for blocked the drop/reject/policy that stops most packets; for
    /// restricted/open the accepting rule of the last deciding chain (or None when no rule
    /// touched it: an empty ruleset is open with no rule); for unknown the rule whose match or
    /// action can't be modelled.
    pub rule: Option<RuleRef>,
    /// For unknown: why, one sentence naming the unmodelled match ("the rule tests `meta mark`").
    pub reason: Option<String>,
}

/// A published port: a DNAT in a nat chain reached from a prerouting base chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Forward {
    pub proto: Proto,
    /// Host-side destination addresses the DNAT applies to (empty: any, e.g. docker's
    /// `-m addrtype --dst-type LOCAL`).
    pub host_addresses: Vec<AddressRange>,
    pub host_ports: PortSpan,
    pub to_address: IpAddr,
    /// Target port for host_ports.first (a range maps one to one); = host port when the DNAT
    /// keeps it.
    pub to_port: u16,
    pub rule: RuleRef,
}

/// Where new inbound packets for a locally bound listener go. A packet that some DNAT sends
/// elsewhere does not reach the listener (count it like a block, with the DNAT rule).
pub fn reach_listener(ruleset: &Ruleset, question: &Question) -> Reach {
    Evaluator::new(ruleset).reach_listener(question)
}

/// Whether new packets to the forward's host side reach its target: prerouting (the DNAT
/// happens), then the forward hook with the translated destination (docker's FORWARD/DOCKER-USER/
/// DOCKER chains, netavark's NETAVARK_FORWARD...). `question.port` is the host port.
pub fn reach_forward(ruleset: &Ruleset, question: &Question, forward: &Forward) -> Reach {
    Evaluator::new(ruleset).reach_forward(question, forward)
}

/// Every DNAT reachable from a prerouting nat base chain (through jumps/gotos), with the proto,
/// dport and daddr its rule and the rules on its path require. Deduplicated, in ruleset order.
pub fn forwards(ruleset: &Ruleset) -> Vec<Forward> {
    Evaluator::new(ruleset).forwards()
}

impl fmt::Display for PortSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A single address as itself, a prefix as `address/length`, any other range as `first-last`.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            return write!(f, "{}", self.first);
        }
        match prefix_length(self) {
            Some(length) => write!(f, "{}/{length}", self.first),
            None => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

impl Serialize for PortSpan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for AddressRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A ruleset made ready for many questions: chains indexed, jump targets resolved, address sets
/// normalized, base chains sorted per hook. Build it once per ruleset.
pub struct Evaluator<'a> {
    ruleset: &'a Ruleset,
    /// Parallel to `ruleset.chains`.
    chains: Vec<Compiled>,
    ingress: Vec<usize>,
    prerouting: Vec<usize>,
    input: Vec<usize>,
    forward: Vec<usize>,
}

struct Compiled {
    rules: Vec<CompiledRule>,
}

struct CompiledRule {
    /// Matches in the order they are tried: those that are the same for every packet of a
    /// question first, so most rules are passed over after a test or two.
    checks: Vec<Check>,
    /// Set on the packets the rule's matches hold for, before its action.
    marks: Vec<MarkSet>,
    action: Step,
    /// What the rule's protocol and port tests allow, checked before anything else: in a
    /// ruleset of a thousand `tcp dport N accept`, nearly every rule is passed over here.
    prefilter: Prefilter,
}

/// The protocols and destination ports a rule can match at all.
struct Prefilter {
    tcp: bool,
    udp: bool,
    /// The spans of its first (not negated) destination port test; None: any port.
    ports: Option<Box<[PortSpan]>>,
}

impl Prefilter {
    fn of(checks: &[Check]) -> Prefilter {
        let mut prefilter = Prefilter {
            tcp: true,
            udp: true,
            ports: None,
        };
        for check in checks {
            match &check.test {
                CompiledTest::L4Proto { tcp, udp } => {
                    prefilter.tcp &= *tcp != check.negated;
                    prefilter.udp &= *udp != check.negated;
                }
                CompiledTest::DestinationPort(spans)
                    if !check.negated && prefilter.ports.is_none() =>
                {
                    prefilter.ports = Some(spans.clone().into_boxed_slice());
                }
                _ => {}
            }
        }
        prefilter
    }

    fn admits(&self, proto: Proto, port: u16) -> bool {
        let proto_ok = match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        proto_ok
            && self
                .ports
                .as_ref()
                .is_none_or(|spans| spans.iter().any(|span| span.contains(port)))
    }
}

struct Check {
    negated: bool,
    test: CompiledTest,
}

enum CompiledTest {
    IpVersion(IpVersion),
    L4Proto {
        tcp: bool,
        udp: bool,
    },
    SourceAddress(AddressSet),
    DestinationAddress(AddressSet),
    SourcePort(PortCoverage),
    DestinationPort(Vec<PortSpan>),
    InInterface(Vec<String>),
    OutInterface(Vec<String>),
    /// Whether the listed states include `new`, and `dnat` (which holds once a nat chain
    /// translated the packet).
    ConnectionState {
        new: bool,
        dnat: bool,
    },
    DestinationType(Vec<AddressType>),
    Mark {
        mark: Mark,
        mask: u32,
        values: Vec<(u32, u32)>,
    },
    Unknown(String),
}

/// An address list split by family. A list with addresses of only one family holds nothing
/// for the other, even negated: nft's `ip saddr != X` carries an implied "is IPv4".
struct AddressSet {
    v4: Intervals,
    v6: Intervals,
    empty: bool,
}

impl AddressSet {
    fn of(ranges: &[AddressRange]) -> AddressSet {
        AddressSet {
            v4: Intervals::of_ranges(ranges, IpVersion::V4),
            v6: Intervals::of_ranges(ranges, IpVersion::V6),
            empty: ranges.is_empty(),
        }
    }

    fn family(&self, version: IpVersion) -> &Intervals {
        match version {
            IpVersion::V4 => &self.v4,
            IpVersion::V6 => &self.v6,
        }
    }

    /// Whether the list speaks of `version` at all (else the match fails either way).
    fn applies_to(&self, version: IpVersion) -> bool {
        self.empty || !self.family(version).is_empty()
    }
}

/// What a source port test says of a new connection, whose source port can be anything.
enum PortCoverage {
    All,
    None,
    Some,
}

enum Step {
    Accept,
    Drop,
    Return,
    Continue,
    /// A jump or goto whose target was found (its index) or not (its name).
    Jump(Result<usize, String>),
    Goto(Result<usize, String>),
    Dnat {
        address: Option<IpAddr>,
        ports: Option<PortSpan>,
        local: bool,
    },
    Unknown(String),
}

impl<'a> Evaluator<'a> {
    pub fn new(ruleset: &'a Ruleset) -> Evaluator<'a> {
        let mut by_name: HashMap<(Origin, TableFamily, &str, &str), usize> = HashMap::new();
        for (index, chain) in ruleset.chains.iter().enumerate() {
            by_name
                .entry((chain.origin, chain.family, &chain.table, &chain.name))
                .or_insert(index);
        }
        let chains = ruleset
            .chains
            .iter()
            .map(|chain| Compiled {
                rules: chain
                    .rules
                    .iter()
                    .map(|rule| compile_rule(rule, chain, &by_name))
                    .collect(),
            })
            .collect();
        Evaluator {
            ruleset,
            chains,
            ingress: base_chains(ruleset, Hook::Ingress),
            prerouting: base_chains(ruleset, Hook::Prerouting),
            input: base_chains(ruleset, Hook::Input),
            forward: base_chains(ruleset, Hook::Forward),
        }
    }

    /// Where new inbound packets for a locally bound listener go. A packet that some DNAT sends
    /// elsewhere does not reach the listener: it counts like a block, with the DNAT rule.
    pub fn reach_listener(&self, question: &Question) -> Reach {
        let mut families = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let destinations: Vec<IpAddr> = question
                .destinations
                .iter()
                .copied()
                .filter(|address| version_of(*address) == version)
                .collect();
            if destinations.is_empty() {
                continue;
            }
            let walk = Walk::new(question, version, destinations, Goal::Listener);
            let finished = self.traverse(&walk);
            families.push((walk, finished));
        }
        self.conclude(
            question,
            &families,
            "no destination address to try was given",
        )
    }

    /// Whether new packets to the forward's host side reach its target: prerouting (where the
    /// DNAT happens), then the hook the translated destination takes (forward, or input when
    /// the target is a local address). Only destinations of the target's family, and of the
    /// forward's host addresses when it names some, are tried. `question.port` is the host port.
    pub fn reach_forward(&self, question: &Question, forward: &Forward) -> Reach {
        let version = version_of(forward.to_address);
        let destinations: Vec<IpAddr> = question
            .destinations
            .iter()
            .copied()
            .filter(|address| version_of(*address) == version)
            .filter(|address| {
                forward.host_addresses.is_empty()
                    || forward
                        .host_addresses
                        .iter()
                        .any(|range| range.contains(*address))
            })
            .collect();
        let mut families = Vec::new();
        if !destinations.is_empty() {
            let to_port = if forward.host_ports.contains(question.port) {
                // One to one: host_ports.first -> to_port, and on from there.
                forward
                    .to_port
                    .saturating_add(question.port - forward.host_ports.first)
            } else {
                forward.to_port
            };
            let goal = Goal::Forward {
                address: forward.to_address,
                port: to_port,
            };
            let walk = Walk::new(question, version, destinations, goal);
            let finished = self.traverse(&walk);
            families.push((walk, finished));
        }
        let nothing =
            "none of the destinations to try is of the forward's family and host addresses";
        self.conclude(question, &families, nothing)
    }

    /// Every DNAT reachable from a prerouting nat base chain (through jumps and gotos), with
    /// the proto, dport and daddr its rule and the rules on its path require. Deduplicated, in
    /// ruleset order. A DNAT that keeps the address (a port-only DNAT, a redirect) is no
    /// forward and left out, as is one that only applies to non-local destinations.
    pub fn forwards(&self) -> Vec<Forward> {
        forwards::find(self)
    }

    fn rule_ref(&self, decider: Decider) -> Option<RuleRef> {
        let chain = self.ruleset.chains.get(decider.chain)?;
        let (handle, text) = match decider.rule {
            Some(index) => {
                let rule = chain.rules.get(index)?;
                (Some(rule.handle), rule.text.clone())
            }
            None => {
                let policy = chain.base.as_ref()?.policy;
                let text = match policy {
                    Policy::Accept => "policy accept",
                    Policy::Drop => "policy drop",
                };
                (None, text.to_string())
            }
        };
        Some(RuleRef {
            origin: chain.origin,
            family: chain.family,
            table: chain.table.clone(),
            chain: chain.name.clone(),
            handle,
            text,
        })
    }

    /// Every packet class of the walk, from ingress to its end.
    fn traverse(&self, walk: &Walk) -> Vec<Finished> {
        let mut finished = Vec::new();
        if walk.question.interfaces.is_empty() {
            return finished;
        }
        let start = Cell {
            interfaces: Bits::all(walk.question.interfaces.len()),
            destinations: Bits::all(walk.destinations.len()),
            sources: Intervals::span(0, space_end(walk.version)),
            nat: None,
            accepted_by: None,
            marks: Marks::new(),
        };
        let mut cells = vec![start];

        for &index in &self.ingress {
            let chain = &self.ruleset.chains[index];
            if !matches!(chain.family, TableFamily::Netdev | TableFamily::Inet) {
                continue;
            }
            let Some(device) = chain.base.as_ref().and_then(|base| base.device.as_deref()) else {
                for cell in cells.drain(..) {
                    finished.push(Finished {
                        cell,
                        fate: Fate::Unknown(
                            None,
                            format!(
                                "the ingress chain `{}` of table {} {} is attached to devices that weren't read",
                                chain.name,
                                chain.family.as_str(),
                                chain.table
                            ),
                        ),
                    });
                }
                break;
            };
            let mut through = Vec::new();
            let mut bypass = Vec::new();
            for cell in cells {
                let (on, off) = cell
                    .interfaces
                    .partition(|at| walk.question.interfaces[at] == device);
                if !on.is_empty() {
                    through.push(Cell {
                        interfaces: on,
                        ..cell.clone()
                    });
                }
                if !off.is_empty() {
                    bypass.push(Cell {
                        interfaces: off,
                        ..cell
                    });
                }
            }
            let stage = walk.at(Stage::BeforeRouting, chain);
            cells = self.run_base(index, through, &stage, &mut finished);
            cells.extend(bypass);
        }

        for &index in &self.prerouting {
            let chain = &self.ruleset.chains[index];
            if !walk.sees(chain) || cells.is_empty() {
                continue;
            }
            let stage = walk.at(Stage::BeforeRouting, chain);
            if stage.nat {
                // The nat hook stops at the first chain that translated the connection.
                let (done, open): (Vec<Cell>, Vec<Cell>) =
                    cells.into_iter().partition(|cell| cell.nat.is_some());
                cells = self.run_base(index, open, &stage, &mut finished);
                cells.extend(done);
            } else {
                cells = self.run_base(index, cells, &stage, &mut finished);
            }
        }

        let mut local = Vec::new();
        let mut routed = Vec::new();
        for cell in cells {
            match walk.route(cell) {
                Routed::Input(cell) => local.push(cell),
                Routed::Forward(cell) => routed.push(cell),
                Routed::Finished(done) => finished.push(done),
            }
        }
        for (hook_chains, stage_kind, mut cells) in [
            (&self.input, Stage::Input, local),
            (&self.forward, Stage::Forward, routed),
        ] {
            for &index in hook_chains {
                let chain = &self.ruleset.chains[index];
                if !walk.sees(chain) || cells.is_empty() {
                    continue;
                }
                let stage = walk.at(stage_kind, chain);
                cells = self.run_base(index, cells, &stage, &mut finished);
            }
            finished.extend(cells.into_iter().map(|cell| Finished {
                cell,
                fate: Fate::Delivered,
            }));
        }
        finished
    }

    /// One base chain: what its rules accept goes on, what reaches its end meets its policy.
    fn run_base(
        &self,
        index: usize,
        cells: Vec<Cell>,
        stage: &StageWalk,
        finished: &mut Vec<Finished>,
    ) -> Vec<Cell> {
        if cells.is_empty() {
            return cells;
        }
        let chain = &self.ruleset.chains[index];
        let policy = chain
            .base
            .as_ref()
            .map_or(Policy::Accept, |base| base.policy);
        let mut exits = Exits::default();
        let mut stack = vec![index];
        self.run(index, cells, stage, &mut stack, &mut exits);
        finished.append(&mut exits.finished);
        let mut through = exits.accepted;
        let policy_decider = Decider {
            chain: index,
            rule: None,
        };
        match policy {
            Policy::Accept => {
                for mut cell in exits.returned {
                    // An empty chain decides nothing, and an accept rule of an earlier chain
                    // says more than a policy that none of this chain's rules changed.
                    if !chain.rules.is_empty() && cell.accepted_by.is_none() && !stage.nat {
                        cell.accepted_by = Some(policy_decider);
                    }
                    through.push(cell);
                }
            }
            Policy::Drop => finished.extend(exits.returned.into_iter().map(|cell| Finished {
                cell,
                fate: Fate::Stopped(policy_decider),
            })),
        }
        through
    }

    /// The rules of one chain, in order, over `cells`; where each part of them leaves the chain
    /// goes into `exits`.
    fn run(
        &self,
        index: usize,
        cells: Vec<Cell>,
        stage: &StageWalk,
        stack: &mut Vec<usize>,
        exits: &mut Exits,
    ) {
        // The port only changes in a DNAT, which leaves the chain: what enters is what stays.
        let port = cells
            .first()
            .map(|cell| stage.port_of(cell))
            .filter(|port| cells.iter().all(|cell| stage.port_of(cell) == *port));
        let proto = stage.walk.question.proto;
        let mut pending = cells;
        for (at, rule) in self.chains[index].rules.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            if port.is_some_and(|port| !rule.prefilter.admits(proto, port)) {
                continue;
            }
            let decider = Decider {
                chain: index,
                rule: Some(at),
            };
            let split = stage.split(rule, pending, port);
            pending = split.unmatched;
            for (mut cell, reason) in split.undecided {
                if matches!(rule.action, Step::Continue) {
                    // Matched or not, the packet goes on to the next rule.
                    cell.marks.unsettle(&rule.marks, &reason);
                    pending.push(cell);
                } else {
                    exits.unknown(cell, decider, reason);
                }
            }
            if split.matched.is_empty() {
                continue;
            }
            let mut matched = split.matched;
            if !rule.marks.is_empty() {
                for cell in &mut matched {
                    cell.marks.set(&rule.marks);
                }
            }
            match &rule.action {
                Step::Accept => exits.accepted.extend(matched.into_iter().map(|mut cell| {
                    // A nat chain's accept only means "no translation": no filter decision.
                    if !stage.nat {
                        cell.accepted_by = Some(decider);
                    }
                    cell
                })),
                Step::Drop => exits
                    .finished
                    .extend(matched.into_iter().map(|cell| Finished {
                        cell,
                        fate: Fate::Stopped(decider),
                    })),
                Step::Return => exits.returned.extend(matched),
                Step::Continue => pending.extend(matched),
                Step::Jump(target) | Step::Goto(target) => {
                    let target = match target {
                        Ok(target) => *target,
                        Err(name) => {
                            let reason =
                                format!("the rule jumps to chain `{name}`, which wasn't read");
                            for cell in matched {
                                exits.unknown(cell, decider, reason.clone());
                            }
                            continue;
                        }
                    };
                    let Some(inner) = self.enter(target, matched, stage, stack, decider, exits)
                    else {
                        continue;
                    };
                    match rule.action {
                        Step::Goto(_) => exits.returned.extend(inner),
                        _ => pending.extend(inner),
                    }
                }
                Step::Dnat {
                    address,
                    ports,
                    local,
                } => {
                    if !stage.nat || stage.hook != Hook::Prerouting {
                        for cell in matched {
                            exits.unknown(
                                cell,
                                decider,
                                "the rule translates the destination outside a prerouting nat chain"
                                    .to_string(),
                            );
                        }
                        continue;
                    }
                    for mut cell in matched {
                        match stage.translate(&cell, *address, *ports, *local, decider) {
                            Ok(nat) => {
                                cell.nat = Some(nat);
                                cell.accepted_by = Some(decider);
                                exits.accepted.push(cell);
                            }
                            Err(reason) => exits.unknown(cell, decider, reason),
                        }
                    }
                }
                Step::Unknown(text) => {
                    let reason = format!("the rule's action `{text}` isn't modelled");
                    for cell in matched {
                        exits.unknown(cell, decider, reason.clone());
                    }
                }
            }
        }
        exits.returned.extend(pending);
    }

    /// Into `target` from the rule `from`: what comes back out of it (its end or a return);
    /// None when the jump can't be followed (the cells are then unknown).
    fn enter(
        &self,
        target: usize,
        cells: Vec<Cell>,
        stage: &StageWalk,
        stack: &mut Vec<usize>,
        from: Decider,
        exits: &mut Exits,
    ) -> Option<Vec<Cell>> {
        let name = &self.ruleset.chains[target].name;
        let refusal = if stack.contains(&target) {
            Some(format!(
                "the jump to chain `{name}` loops back into a chain already on the path"
            ))
        } else if stack.len() >= MAX_JUMP_DEPTH {
            Some(format!(
                "the jump to chain `{name}` nests deeper than {MAX_JUMP_DEPTH} chains"
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            for cell in cells {
                exits.unknown(cell, from, reason.clone());
            }
            return None;
        }
        stack.push(target);
        let mut inner = Exits::default();
        self.run(target, cells, stage, stack, &mut inner);
        stack.pop();
        exits.accepted.append(&mut inner.accepted);
        exits.finished.append(&mut inner.finished);
        Some(inner.returned)
    }

    /// The answer from every packet class's end; `nothing` says why there is none when no
    /// destination was tried.
    fn conclude(
        &self,
        question: &Question,
        families: &[(Walk, Vec<Finished>)],
        nothing: &str,
    ) -> Reach {
        let classes: usize = families.iter().map(|(_, finished)| finished.len()).sum();
        if classes == 0 {
            let reason = if question.interfaces.is_empty() {
                "no interface to come in on was given"
            } else {
                nothing
            };
            return Reach {
                verdict: Verdict::Unknown,
                sources: Vec::new(),
                rule: None,
                reason: Some(reason.to_string()),
            };
        }
        let mut delivered = Tally::default();
        let mut stopped = Tally::default();
        let mut unknown: Option<(f64, Option<Decider>, &str)> = None;
        let mut any_stopped = false;
        for (walk, finished) in families {
            for done in finished {
                let weight = done.cell.interfaces.count() as f64
                    * done.cell.destinations.count() as f64
                    * done.cell.sources.share(space_end(walk.version));
                match &done.fate {
                    Fate::Delivered => delivered.add(done.cell.accepted_by, weight),
                    Fate::Stopped(decider) => {
                        any_stopped = true;
                        stopped.add(Some(*decider), weight);
                    }
                    Fate::Untranslated => {
                        any_stopped = true;
                        stopped.add(None, weight);
                    }
                    Fate::Unknown(decider, reason) => {
                        if unknown.is_none_or(|(most, _, _)| weight > most) {
                            unknown = Some((weight, *decider, reason));
                        }
                    }
                }
            }
        }
        let sources = || describe_sources(question, families);
        if let Some((_, decider, reason)) = unknown {
            return Reach {
                verdict: Verdict::Unknown,
                sources: sources(),
                rule: decider.and_then(|decider| self.rule_ref(decider)),
                reason: Some(reason.to_string()),
            };
        }
        let (verdict, tally) = match (delivered.any, any_stopped) {
            (true, false) => (Verdict::Open, &delivered),
            (false, _) => (Verdict::Blocked, &stopped),
            (true, true) => (Verdict::Restricted, &delivered),
        };
        Reach {
            verdict,
            sources: if verdict == Verdict::Restricted {
                sources()
            } else {
                Vec::new()
            },
            rule: tally.heaviest().and_then(|decider| self.rule_ref(decider)),
            reason: None,
        }
    }
}

/// Base chains of `hook` in the order the kernel runs them.
fn base_chains(ruleset: &Ruleset, hook: Hook) -> Vec<usize> {
    let mut chains: Vec<(i32, i32, usize)> = ruleset
        .chains
        .iter()
        .enumerate()
        .filter_map(|(index, chain)| {
            let base = chain.base.as_ref().filter(|base| base.hook == hook)?;
            let effective = match (base.kind, hook) {
                (ChainKind::Nat, Hook::Prerouting) => NAT_PREROUTING_PRIORITY,
                (ChainKind::Nat, Hook::Input) => NAT_INPUT_PRIORITY,
                _ => base.priority,
            };
            Some((effective, base.priority, index))
        })
        .collect();
    chains.sort();
    chains.into_iter().map(|(_, _, index)| index).collect()
}

fn compile_rule(
    rule: &Rule,
    chain: &Chain,
    by_name: &HashMap<(Origin, TableFamily, &str, &str), usize>,
) -> CompiledRule {
    let mut checks: Vec<Check> = rule.matches.iter().map(compile_match).collect();
    // Stable: equally cheap tests keep the rule's order.
    checks.sort_by_key(|check| check.test.cost());
    let resolve = |name: &String| {
        by_name
            .get(&(
                chain.origin,
                chain.family,
                chain.table.as_str(),
                name.as_str(),
            ))
            .copied()
            .ok_or_else(|| name.clone())
    };
    let action = match &rule.action {
        Action::Accept => Step::Accept,
        Action::Drop | Action::Reject => Step::Drop,
        Action::Return => Step::Return,
        Action::Continue => Step::Continue,
        Action::Jump(name) => Step::Jump(resolve(name)),
        Action::Goto(name) => Step::Goto(resolve(name)),
        Action::Dnat {
            address,
            ports,
            local,
        } => Step::Dnat {
            address: *address,
            ports: *ports,
            local: *local,
        },
        Action::Unknown(text) => Step::Unknown(text.clone()),
    };
    let prefilter = Prefilter::of(&checks);
    CompiledRule {
        checks,
        marks: rule.marks.clone(),
        action,
        prefilter,
    }
}

fn compile_match(m: &Match) -> Check {
    let test = match &m.test {
        Test::IpVersion(version) => CompiledTest::IpVersion(*version),
        Test::L4Proto(numbers) => CompiledTest::L4Proto {
            tcp: numbers.contains(&6),
            udp: numbers.contains(&17),
        },
        Test::SourceAddress(ranges) => CompiledTest::SourceAddress(AddressSet::of(ranges)),
        Test::DestinationAddress(ranges) => {
            CompiledTest::DestinationAddress(AddressSet::of(ranges))
        }
        Test::SourcePort(spans) => {
            let covered = Intervals::from_spans(
                spans
                    .iter()
                    .map(|span| (u128::from(span.first), u128::from(span.last)))
                    .collect(),
            );
            CompiledTest::SourcePort(if covered.is_empty() {
                PortCoverage::None
            } else if covered.is_span(0, u128::from(u16::MAX)) {
                PortCoverage::All
            } else {
                PortCoverage::Some
            })
        }
        Test::DestinationPort(spans) => CompiledTest::DestinationPort(spans.clone()),
        Test::InInterface(names) => CompiledTest::InInterface(names.clone()),
        Test::OutInterface(names) => CompiledTest::OutInterface(names.clone()),
        Test::ConnectionState(states) => CompiledTest::ConnectionState {
            new: states.contains(&ConnectionState::New),
            dnat: states.contains(&ConnectionState::Dnat),
        },
        Test::DestinationType(types) => CompiledTest::DestinationType(types.clone()),
        Test::Mark { mark, mask, values } => CompiledTest::Mark {
            mark: *mark,
            mask: *mask,
            values: values.clone(),
        },
        Test::Unknown(text) => CompiledTest::Unknown(text.clone()),
    };
    Check {
        negated: m.negated,
        test,
    }
}

impl CompiledTest {
    /// 0: the same for every packet of a question; 1: splits the packets; 2: can't be decided.
    fn cost(&self) -> u8 {
        match self {
            CompiledTest::IpVersion(_)
            | CompiledTest::L4Proto { .. }
            | CompiledTest::DestinationPort(_)
            | CompiledTest::ConnectionState { dnat: false, .. } => 0,
            CompiledTest::ConnectionState { dnat: true, .. }
            | CompiledTest::SourceAddress(_)
            | CompiledTest::DestinationAddress(_)
            | CompiledTest::InInterface(_)
            | CompiledTest::OutInterface(_)
            | CompiledTest::DestinationType(_)
            | CompiledTest::Mark { .. } => 1,
            CompiledTest::SourcePort(_) | CompiledTest::Unknown(_) => 2,
        }
    }
}

/// An interface name against nft's and iptables' patterns: a trailing `*` matches any rest.
fn interface_matches(name: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
}

/// A rule or a chain's policy (`rule: None`), by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decider {
    chain: usize,
    rule: Option<usize>,
}

/// A set of packets that every rule so far treated alike.
#[derive(Debug, Clone)]
struct Cell {
    /// Indices into `Question::interfaces`.
    interfaces: Bits,
    /// Indices into the walk's destinations (those of its family).
    destinations: Bits,
    /// Source addresses, as numbers of the walk's family.
    sources: Intervals,
    /// The translation a nat chain made, if any.
    nat: Option<Nat>,
    /// The accepting rule (or policy) of the last base chain that decided.
    accepted_by: Option<Decider>,
    marks: Marks,
}

/// The packet's mark and its connection's, as the rules so far set them; `Err` says why one
/// isn't known.
#[derive(Debug, Clone)]
struct Marks {
    packet: Result<u32, String>,
    connection: Result<u32, String>,
}

impl Marks {
    /// A new inbound packet's: nothing has marked it or its new connection yet.
    fn new() -> Marks {
        Marks {
            packet: Ok(0),
            connection: Ok(0),
        }
    }

    fn get(&self, mark: Mark) -> &Result<u32, String> {
        match mark {
            Mark::Packet => &self.packet,
            Mark::Connection => &self.connection,
        }
    }

    fn slot(&mut self, mark: Mark) -> &mut Result<u32, String> {
        match mark {
            Mark::Packet => &mut self.packet,
            Mark::Connection => &mut self.connection,
        }
    }

    /// The rule's sets, in order (a later one sees what an earlier one set).
    fn set(&mut self, sets: &[MarkSet]) {
        for set in sets {
            let value = match &set.value {
                Ok(value) => match (&self.packet, &self.connection) {
                    (Err(why), _) if value.reads(Mark::Packet) => Err(why.clone()),
                    (_, Err(why)) if value.reads(Mark::Connection) => Err(why.clone()),
                    (packet, connection) => Ok(value.apply(
                        *packet.as_ref().unwrap_or(&0),
                        *connection.as_ref().unwrap_or(&0),
                    )),
                },
                Err(text) => Err(format!("a rule sets it to `{text}`, which isn't modelled")),
            };
            *self.slot(set.mark) = value;
        }
    }

    /// After a rule that may or may not have set them (one of its matches can't be decided).
    fn unsettle(&mut self, sets: &[MarkSet], reason: &str) {
        for set in sets {
            *self.slot(set.mark) = Err(format!(
                "a rule that may or may not hold for these packets sets it ({reason})"
            ));
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Nat {
    /// The new destination; None keeps the original (a port-only DNAT, a redirect).
    address: Option<IpAddr>,
    port: u16,
    by: Decider,
}

#[derive(Debug)]
enum Fate {
    Delivered,
    /// Dropped or rejected, or sent elsewhere by a DNAT.
    Stopped(Decider),
    /// Not translated by the DNAT whose target was asked about.
    Untranslated,
    Unknown(Option<Decider>, String),
}

#[derive(Debug)]
struct Finished {
    cell: Cell,
    fate: Fate,
}

#[derive(Default)]
struct Exits {
    /// Back to the caller (the end of a regular chain, a return): at a base chain, its policy.
    returned: Vec<Cell>,
    /// Accepted (or translated): on to the next base chain.
    accepted: Vec<Cell>,
    finished: Vec<Finished>,
}

impl Exits {
    fn unknown(&mut self, cell: Cell, decider: Decider, reason: String) {
        self.finished.push(Finished {
            cell,
            fate: Fate::Unknown(Some(decider), reason),
        });
    }
}

/// Weights per deciding rule, to name the one that decided for most packets.
#[derive(Default)]
struct Tally {
    any: bool,
    weights: Vec<(Option<Decider>, f64)>,
}

impl Tally {
    fn add(&mut self, decider: Option<Decider>, weight: f64) {
        self.any = true;
        match self.weights.iter_mut().find(|(seen, _)| *seen == decider) {
            Some((_, total)) => *total += weight,
            None => self.weights.push((decider, weight)),
        }
    }

    /// The rule that decided for most packets; the first one on a tie.
    fn heaviest(&self) -> Option<Decider> {
        let mut best: Option<(Decider, f64)> = None;
        for &(decider, weight) in &self.weights {
            let Some(decider) = decider else { continue };
            if best.is_none_or(|(_, most)| weight > most) {
                best = Some((decider, weight));
            }
        }
        best.map(|(decider, _)| decider)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// The listener itself: the question's port on one of its destinations.
    Listener,
    /// A forward's target, after its DNAT.
    Forward { address: IpAddr, port: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    BeforeRouting,
    Input,
    Forward,
}

/// One family's packets of one question.
struct Walk<'q> {
    question: &'q Question<'q>,
    version: IpVersion,
    destinations: Vec<IpAddr>,
    goal: Goal,
}

enum Routed {
    Input(Cell),
    Forward(Cell),
    Finished(Finished),
}

impl<'q> Walk<'q> {
    fn new(
        question: &'q Question<'q>,
        version: IpVersion,
        destinations: Vec<IpAddr>,
        goal: Goal,
    ) -> Walk<'q> {
        Walk {
            question,
            version,
            destinations,
            goal,
        }
    }

    /// Whether a base chain of prerouting, input or forward sees this family's packets.
    fn sees(&self, chain: &Chain) -> bool {
        match chain.family {
            TableFamily::Inet => true,
            TableFamily::Ip => self.version == IpVersion::V4,
            TableFamily::Ip6 => self.version == IpVersion::V6,
            TableFamily::Arp | TableFamily::Bridge | TableFamily::Netdev => false,
        }
    }

    fn at(&'q self, stage: Stage, chain: &Chain) -> StageWalk<'q> {
        let (hook, nat) = chain.base.as_ref().map_or((Hook::Input, false), |base| {
            (base.hook, base.kind == ChainKind::Nat)
        });
        StageWalk {
            walk: self,
            stage,
            hook,
            nat,
        }
    }

    fn is_local(&self, address: IpAddr) -> bool {
        self.question.local_addresses.contains(&address)
    }

    /// The routing decision after prerouting, and whether the packet still goes where asked.
    fn route(&self, cell: Cell) -> Routed {
        match (self.goal, cell.nat) {
            (Goal::Listener, None) => Routed::Input(cell),
            (Goal::Listener, Some(nat)) => {
                let same_port = nat.port == self.question.port;
                let to_listener = nat
                    .address
                    .is_none_or(|address| self.destinations.contains(&address));
                if same_port && to_listener {
                    Routed::Input(cell)
                } else {
                    Routed::Finished(Finished {
                        cell,
                        fate: Fate::Stopped(nat.by),
                    })
                }
            }
            (Goal::Forward { .. }, None) => Routed::Finished(Finished {
                cell,
                fate: Fate::Untranslated,
            }),
            (Goal::Forward { address, port }, Some(nat)) => {
                if nat.address == Some(address) && nat.port == port {
                    if self.is_local(address) {
                        Routed::Input(cell)
                    } else {
                        Routed::Forward(cell)
                    }
                } else {
                    Routed::Finished(Finished {
                        cell,
                        fate: Fate::Stopped(nat.by),
                    })
                }
            }
        }
    }

    /// The network (and so the out interface) a destination is routed to: the narrowest
    /// connected network that holds it.
    fn out_interface(&self, address: IpAddr) -> Option<&'q str> {
        self.question
            .networks
            .iter()
            .filter(|(network, _)| network.contains(address))
            .min_by_key(|(network, _)| {
                address_number(network.last).saturating_sub(address_number(network.first))
            })
            .map(|(_, name)| name.as_str())
    }
}

/// The walk inside one base chain's hook.
struct StageWalk<'q> {
    walk: &'q Walk<'q>,
    stage: Stage,
    hook: Hook,
    nat: bool,
}

/// How one match divides a cell.
enum Division {
    Holds,
    Fails,
    /// Fails negated or not: an address test that names no address of the packet's family
    /// (nft's `ip saddr != X` implies "is IPv4").
    Never,
    /// Into the part that holds and the part that fails, neither empty.
    Split(Box<(Cell, Cell)>),
    Undecided(String),
}

impl Division {
    fn split(holding: Cell, failing: Cell) -> Division {
        Division::Split(Box::new((holding, failing)))
    }
}

#[derive(Default)]
struct RuleSplit {
    matched: Vec<Cell>,
    unmatched: Vec<Cell>,
    undecided: Vec<(Cell, String)>,
}

impl StageWalk<'_> {
    fn port_of(&self, cell: &Cell) -> u16 {
        cell.nat.map_or(self.walk.question.port, |nat| nat.port)
    }

    /// A rule's matches over `cells`. A match that can't be decided is looked at last: when
    /// another of the rule's matches fails, the rule doesn't apply whatever it would say.
    /// `port`: the destination port of every cell, when they share one.
    fn split(&self, rule: &CompiledRule, cells: Vec<Cell>, port: Option<u16>) -> RuleSplit {
        let mut split = RuleSplit::default();
        // Tests that are the same for every cell, decided once for them all.
        let mut first_per_cell = 0;
        for check in &rule.checks {
            let constant = match (&check.test, port) {
                (CompiledTest::DestinationPort(spans), Some(port)) => {
                    Some(spans.iter().any(|span| span.contains(port)))
                }
                (CompiledTest::DestinationPort(_), None) => None,
                (test, _) if test.cost() == 0 => Some(self.constant(test)),
                _ => None,
            };
            match constant {
                Some(holds) if holds != check.negated => first_per_cell += 1,
                Some(_) => {
                    split.unmatched = cells;
                    return split;
                }
                None => break,
            }
        }
        let checks = &rule.checks[first_per_cell..];
        if checks.is_empty() {
            split.matched = cells;
            return split;
        }
        for cell in cells {
            self.split_cell(checks, cell, None, &mut split);
        }
        split
    }

    fn split_cell(
        &self,
        checks: &[Check],
        cell: Cell,
        undecided: Option<String>,
        split: &mut RuleSplit,
    ) {
        let Some((check, rest)) = checks.split_first() else {
            match undecided {
                Some(reason) => split.undecided.push((cell, reason)),
                None => split.matched.push(cell),
            }
            return;
        };
        match self.divide(&check.test, &cell) {
            division @ (Division::Holds | Division::Fails) => {
                if matches!(division, Division::Holds) != check.negated {
                    self.split_cell(rest, cell, undecided, split);
                } else {
                    split.unmatched.push(cell);
                }
            }
            Division::Never => split.unmatched.push(cell),
            Division::Split(parts) => {
                let (holding, failing) = *parts;
                let (matching, other) = if check.negated {
                    (failing, holding)
                } else {
                    (holding, failing)
                };
                split.unmatched.push(other);
                self.split_cell(rest, matching, undecided, split);
            }
            Division::Undecided(reason) => {
                self.split_cell(rest, cell, undecided.or(Some(reason)), split);
            }
        }
    }

    /// A test that is the same for every packet of the walk.
    fn constant(&self, test: &CompiledTest) -> bool {
        match test {
            CompiledTest::IpVersion(version) => *version == self.walk.version,
            CompiledTest::L4Proto { tcp, udp } => match self.walk.question.proto {
                Proto::Tcp => *tcp,
                Proto::Udp => *udp,
            },
            CompiledTest::ConnectionState { new, .. } => *new,
            _ => false,
        }
    }

    /// Whether `test` (not negated) holds for the packets of `cell`.
    fn divide(&self, test: &CompiledTest, cell: &Cell) -> Division {
        let known = |holds: bool| {
            if holds {
                Division::Holds
            } else {
                Division::Fails
            }
        };
        match test {
            CompiledTest::IpVersion(_) | CompiledTest::L4Proto { .. } => known(self.constant(test)),
            CompiledTest::ConnectionState { new, dnat } => {
                known(*new || (*dnat && cell.nat.is_some()))
            }
            CompiledTest::DestinationPort(spans) => {
                let port = self.port_of(cell);
                known(spans.iter().any(|span| span.contains(port)))
            }
            CompiledTest::SourcePort(coverage) => match coverage {
                PortCoverage::All => Division::Holds,
                PortCoverage::None => Division::Fails,
                PortCoverage::Some => Division::Undecided(
                    "the rule tests the source port, which the client picks".to_string(),
                ),
            },
            CompiledTest::SourceAddress(set) => {
                if !set.applies_to(self.walk.version) {
                    return Division::Never;
                }
                let range = set.family(self.walk.version);
                let holding = cell.sources.intersect(range);
                if holding.is_empty() {
                    return Division::Fails;
                }
                let failing = cell.sources.subtract(range);
                if failing.is_empty() {
                    return Division::Holds;
                }
                Division::split(
                    Cell {
                        sources: holding,
                        ..cell.clone()
                    },
                    Cell {
                        sources: failing,
                        ..cell.clone()
                    },
                )
            }
            CompiledTest::DestinationAddress(set) => {
                if !set.applies_to(self.walk.version) {
                    return Division::Never;
                }
                let range = set.family(self.walk.version);
                self.by_destination(cell, |address| {
                    Some(range.contains(address_number(address)))
                })
            }
            CompiledTest::DestinationType(types) => self.by_destination(cell, |address| {
                Some(types.contains(&self.address_type(address)))
            }),
            CompiledTest::InInterface(patterns) => {
                let (on, off) = cell.interfaces.partition(|at| {
                    interface_matches(&self.walk.question.interfaces[at], patterns)
                });
                match (on.is_empty(), off.is_empty()) {
                    (true, _) => Division::Fails,
                    (false, true) => Division::Holds,
                    (false, false) => Division::split(
                        Cell {
                            interfaces: on,
                            ..cell.clone()
                        },
                        Cell {
                            interfaces: off,
                            ..cell.clone()
                        },
                    ),
                }
            }
            CompiledTest::OutInterface(patterns) => match self.stage {
                Stage::BeforeRouting | Stage::Input => known(interface_matches("", patterns)),
                Stage::Forward => self.by_destination(cell, |address| {
                    self.walk
                        .out_interface(address)
                        .map(|name| interface_matches(name, patterns))
                }),
            },
            CompiledTest::Mark { mark, mask, values } => match cell.marks.get(*mark) {
                Ok(value) => {
                    let masked = value & mask;
                    known(
                        values
                            .iter()
                            .any(|(first, last)| *first <= masked && masked <= *last),
                    )
                }
                Err(why) => Division::Undecided(format!(
                    "the rule tests `{}`, which isn't known here: {why}",
                    mark.name()
                )),
            },
            CompiledTest::Unknown(text) => Division::Undecided(format!("the rule tests `{text}`")),
        }
    }

    /// A test of the destination: of the translated one when a DNAT set it, else of each of
    /// the cell's destinations. `None` from `test`: can't tell (only the out interface).
    fn by_destination(&self, cell: &Cell, test: impl Fn(IpAddr) -> Option<bool>) -> Division {
        let undecided = |address: IpAddr| {
            Division::Undecided(format!(
                "the rule tests the out interface, and no directly connected network holds {address}"
            ))
        };
        if let Some(address) = cell.nat.and_then(|nat| nat.address) {
            return match test(address) {
                Some(true) => Division::Holds,
                Some(false) => Division::Fails,
                None => undecided(address),
            };
        }
        let destinations = &self.walk.destinations;
        if let Some(at) = cell
            .destinations
            .iter()
            .find(|&at| test(destinations[at]).is_none())
        {
            // Rare (a forwarded packet to several non-local destinations, one without a
            // route): the whole cell is unknown rather than split three ways.
            return undecided(destinations[at]);
        }
        let (on, off) = cell
            .destinations
            .partition(|at| test(destinations[at]) == Some(true));
        match (on.is_empty(), off.is_empty()) {
            (true, _) => Division::Fails,
            (false, true) => Division::Holds,
            (false, false) => Division::split(
                Cell {
                    destinations: on,
                    ..cell.clone()
                },
                Cell {
                    destinations: off,
                    ..cell.clone()
                },
            ),
        }
    }

    fn address_type(&self, address: IpAddr) -> AddressType {
        if self.walk.is_local(address) {
            AddressType::Local
        } else if address.is_multicast() {
            AddressType::Multicast
        } else {
            AddressType::Unicast
        }
    }

    /// The translation a DNAT makes of `cell`'s packets.
    fn translate(
        &self,
        cell: &Cell,
        address: Option<IpAddr>,
        ports: Option<PortSpan>,
        local: bool,
        by: Decider,
    ) -> Result<Nat, String> {
        let port = self.port_of(cell);
        let port = match ports {
            None => port,
            // The kernel keeps the original port when the range holds it.
            Some(span) if span.contains(port) => port,
            Some(span) if span.first == span.last => span.first,
            Some(span) => {
                return Err(format!(
                    "the rule translates to ports {span}, which don't hold port {port}, and which one the kernel picks isn't known"
                ));
            }
        };
        let address = if local { None } else { address };
        if let Some(address) = address
            && version_of(address) != self.walk.version
        {
            return Err(format!(
                "the rule translates to {address}, an address of the other family"
            ));
        }
        Ok(Nat { address, port, by })
    }
}

/// Who gets through, as the fewest entries: prefixes common to every interface, then per
/// interface the rest ("iif eth1" when that interface lets everyone through, else
/// "PREFIX via eth1"); with " to ADDRESS" on each when destinations differ.
fn describe_sources(question: &Question, families: &[(Walk, Vec<Finished>)]) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for (walk, finished) in families {
        let interface_count = question.interfaces.len();
        let mut by_destination =
            vec![vec![Intervals::empty(); interface_count]; walk.destinations.len()];
        for done in finished {
            if !matches!(done.fate, Fate::Delivered) {
                continue;
            }
            for destination in done.cell.destinations.iter() {
                for interface in done.cell.interfaces.iter() {
                    let slot = &mut by_destination[destination][interface];
                    *slot = slot.union(&done.cell.sources);
                }
            }
        }
        let same_everywhere = by_destination.windows(2).all(|pair| pair[0] == pair[1]);
        if same_everywhere {
            if let Some(map) = by_destination.first() {
                describe_map(question, walk.version, map, "", &mut entries);
            }
        } else {
            for (map, destination) in by_destination.iter().zip(&walk.destinations) {
                describe_map(
                    question,
                    walk.version,
                    map,
                    &format!(" to {destination}"),
                    &mut entries,
                );
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    entries.retain(|entry| seen.insert(entry.clone()));
    entries
}

fn describe_map(
    question: &Question,
    version: IpVersion,
    per_interface: &[Intervals],
    suffix: &str,
    entries: &mut Vec<String>,
) {
    let everyone = Intervals::span(0, space_end(version));
    let Some(first) = per_interface.first() else {
        return;
    };
    let common = per_interface
        .iter()
        .skip(1)
        .fold(first.clone(), |common, sources| common.intersect(sources));
    for prefix in common.prefixes(version) {
        entries.push(format!(
            "{prefix_text}{suffix}",
            prefix_text = cidr(&prefix)
        ));
    }
    for (sources, name) in per_interface.iter().zip(question.interfaces) {
        let rest = sources.subtract(&common);
        if rest.is_empty() {
            continue;
        }
        if *sources == everyone {
            entries.push(format!("iif {name}{suffix}"));
        } else {
            for prefix in rest.prefixes(version) {
                entries.push(format!("{} via {name}{suffix}", cidr(&prefix)));
            }
        }
    }
}

/// A prefix as `address/length`, the length always written ("10.0.0.1/32").
fn cidr(prefix: &AddressRange) -> String {
    match prefix_length(prefix) {
        Some(length) => format!("{}/{length}", prefix.first),
        None => prefix.to_string(),
    }
}

#[cfg(test)]
mod tests;
