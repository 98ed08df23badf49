//! A firewall as portstat models it: the chains of nftables and iptables tables, each rule a list
//! of matches and one action. Readers in `os::firewall` turn `nft -j list ruleset` and
//! `iptables-save` text into a [`Ruleset`]; [`eval`] walks a packet through it.
//!
//! The model keeps only what decides whether a new inbound packet reaches a local socket or is
//! forwarded: anything else a rule tests becomes [`Test::Unknown`], so an answer that depends on
//! it is `unknown`, never a guess.

use std::net::IpAddr;

use serde::Serialize;

pub mod eval;
pub mod judge;
pub mod published;

/// Every chain that was read, from every tool, and what could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
    /// Tools that were read, in the order read (`nft`, `iptables-nft-save`, ...).
    pub read: Vec<String>,
    /// What could not be read, one sentence each ("iptables-legacy-save: not installed" is not
    /// one of these: a missing tool whose tables can't exist is no gap).
    pub gaps: Vec<String>,
}

/// Which tool a chain was read from. iptables-nft's tables also show in `nft -j`, but only as
/// opaque `xt` expressions, so those are read from `iptables-nft-save` and left out of nft's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Nftables,
    IptablesNft,
    IptablesLegacy,
}

/// The address family of a table (nftables' names; iptables tables are `ip`, ip6tables `ip6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFamily {
    Ip,
    Ip6,
    Inet,
    Arp,
    Bridge,
    Netdev,
}

impl TableFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
            TableFamily::Inet => "inet",
            TableFamily::Arp => "arp",
            TableFamily::Bridge => "bridge",
            TableFamily::Netdev => "netdev",
        }
    }
}

/// Where in the packet's path a base chain is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Ingress,
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

/// A chain: a base chain has a hook (and is entered by packets on it), a regular chain is only
/// entered by jumps and gotos from rules of its own table.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub origin: Origin,
    pub family: TableFamily,
    pub table: String,
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaseChain {
    pub hook: Hook,
    /// Lower runs first (nftables' numbers: iptables' raw is -300, mangle -150, nat prerouting
    /// -100, filter 0, nat input 100).
    pub priority: i32,
    /// `nat` chains translate addresses; `filter` and `route` chains only decide.
    pub kind: ChainKind,
    /// What happens to a packet that reaches the end of the chain.
    pub policy: Policy,
    /// The device a netdev (ingress) chain is attached to.
    pub device: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainKind {
    Filter,
    Nat,
    Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Accept,
    Drop,
}

/// One rule: all of its matches must hold for its action to be taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// nftables' rule handle; for iptables the rule's position in its chain, from 1 (what
    /// `iptables -L --line-numbers` shows).
    pub handle: u64,
    /// The rule as its tool prints it: nft's rule text, or the `-A` line of iptables-save.
    pub text: String,
    /// The rule's comment (`comment "..."`, `-m comment --comment`): container runtimes name
    /// the container there.
    pub comment: Option<String>,
    pub matches: Vec<Match>,
    /// The marks the rule sets when its matches hold, in order, before its action (`ct mark
    /// set meta mark | 0x1000 dnat to ...`, `-j MARK --set-xmark`).
    pub marks: Vec<MarkSet>,
    pub action: Action,
}

/// The two marks a packet carries through the walk: its own (nft's `meta mark`, iptables'
/// `-m mark` and `-j MARK`) and its connection's (`ct mark`, `-m connmark`, `-j CONNMARK`).
/// Both are 0 for a new inbound packet: nothing has marked it yet, and a new connection's
/// conntrack entry starts at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    Packet,
    Connection,
}

impl Mark {
    /// As nft writes it.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Packet => "meta mark",
            Mark::Connection => "ct mark",
        }
    }
}

/// A mark set to `(packet mark & packet_mask) ^ (connection mark & connection_mask) ^ xor`:
/// a constant, a copy of either mark, and their `&`, `|` and `^` with constants all are one
/// (`| C` is `& !C ^ C`; iptables' `--set-xmark V/M` is `& !M ^ V`, its `--save-mark` copies
/// the packet's mark into the connection's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkValue {
    pub packet_mask: u32,
    pub connection_mask: u32,
    pub xor: u32,
}

impl MarkValue {
    pub fn constant(value: u32) -> MarkValue {
        MarkValue {
            packet_mask: 0,
            connection_mask: 0,
            xor: value,
        }
    }

    /// The mark's own value, unchanged.
    pub fn of(mark: Mark) -> MarkValue {
        match mark {
            Mark::Packet => MarkValue {
                packet_mask: u32::MAX,
                ..MarkValue::constant(0)
            },
            Mark::Connection => MarkValue {
                connection_mask: u32::MAX,
                ..MarkValue::constant(0)
            },
        }
    }

    pub fn and(self, mask: u32) -> MarkValue {
        MarkValue {
            packet_mask: self.packet_mask & mask,
            connection_mask: self.connection_mask & mask,
            xor: self.xor & mask,
        }
    }

    pub fn xor(self, value: u32) -> MarkValue {
        MarkValue {
            xor: self.xor ^ value,
            ..self
        }
    }

    pub fn or(self, value: u32) -> MarkValue {
        self.and(!value).xor(value)
    }

    /// Whether the value reads `mark` at all.
    pub fn reads(&self, mark: Mark) -> bool {
        match mark {
            Mark::Packet => self.packet_mask != 0,
            Mark::Connection => self.connection_mask != 0,
        }
    }

    pub fn apply(&self, packet: u32, connection: u32) -> u32 {
        (packet & self.packet_mask) ^ (connection & self.connection_mask) ^ self.xor
    }
}

/// One mark a rule sets.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkSet {
    pub mark: Mark,
    /// `Err`: a value the model can't compute (from a map, a hash, another field), as the
    /// reader's text of it; the mark is then unknown for the packets the rule sets it on.
    pub value: Result<MarkValue, String>,
}

/// A test on the packet, or its negation (`!=`, iptables' `!`).
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub negated: bool,
    pub test: Test,
}

impl Match {
    /// A match that holds when `test` does.
    pub fn is(test: Test) -> Match {
        Match {
            negated: false,
            test,
        }
    }

    /// A match that holds when `test` does not.
    pub fn not(test: Test) -> Match {
        Match {
            negated: true,
            test,
        }
    }
}

/// What a rule can test that portstat models. Lists hold when any element does (nft anonymous
/// and named sets are resolved by the reader into these lists).
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The network protocol (`meta nfproto`, an inet table's `ip`/`ip6` expressions).
    IpVersion(IpVersion),
    /// The transport protocol's number (6 TCP, 17 UDP): `meta l4proto`, `ip protocol`, `-p`.
    L4Proto(Vec<u8>),
    SourceAddress(Vec<AddressRange>),
    DestinationAddress(Vec<AddressRange>),
    SourcePort(Vec<PortSpan>),
    DestinationPort(Vec<PortSpan>),
    /// The interface a packet came in on, by name; a name ending in `*` (nft) or `+` (iptables,
    /// stored as `*`) matches every name that starts with the rest.
    InInterface(Vec<String>),
    OutInterface(Vec<String>),
    /// Conntrack state: a new inbound packet is `new`.
    ConnectionState(Vec<ConnectionState>),
    /// The type of the destination address: `fib daddr type`, `-m addrtype --dst-type`.
    DestinationType(Vec<AddressType>),
    /// A mark masked (`meta mark & 0x1000 == 0x1000`, `-m mark --mark 0x1000/0x1000`; a
    /// plain `meta mark 5` has the full mask): holds when `mark & mask` is in one of the
    /// inclusive ranges.
    Mark {
        mark: Mark,
        mask: u32,
        values: Vec<(u32, u32)>,
    },
    /// Anything else (rate limits, ipset, string matches, ...): the reader's text of it.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpVersion {
    V4,
    V6,
}

/// An inclusive range of addresses of one family; a prefix is the range it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl AddressRange {
    /// The addresses of `address/length`; `None` when the length is too long for the family.
    pub fn prefix(address: IpAddr, length: u8) -> Option<AddressRange> {
        match address {
            IpAddr::V4(v4) => {
                if length > 32 {
                    return None;
                }
                let mask = u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0);
                let first = u32::from(v4) & mask;
                Some(AddressRange {
                    first: IpAddr::V4(first.into()),
                    last: IpAddr::V4((first | !mask).into()),
                })
            }
            IpAddr::V6(v6) => {
                if length > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0);
                let first = u128::from(v6) & mask;
                Some(AddressRange {
                    first: IpAddr::V6(first.into()),
                    last: IpAddr::V6((first | !mask).into()),
                })
            }
        }
    }

    pub fn single(address: IpAddr) -> AddressRange {
        AddressRange {
            first: address,
            last: address,
        }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.first, self.last, address) {
            (IpAddr::V4(first), IpAddr::V4(last), IpAddr::V4(a)) => first <= a && a <= last,
            (IpAddr::V6(first), IpAddr::V6(last), IpAddr::V6(a)) => first <= a && a <= last,
            _ => false,
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSpan {
    pub first: u16,
    pub last: u16,
}

impl PortSpan {
    pub fn single(port: u16) -> PortSpan {
        PortSpan {
            first: port,
            last: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
    /// iptables' `--ctstate DNAT`, nft's `ct status dnat`: the connection's destination was
    /// translated (for a new packet: by a nat chain it has already been through). firewalld's
    /// input accepts these first thing, netavark's forward chain too.
    Dnat,
    /// `--ctstate SNAT`, `ct status snat`: its source was (set in postrouting, so never yet for
    /// a new inbound packet).
    Snat,
}

/// The kernel's address types (`RTN_*`), as `fib daddr type` and `addrtype` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressType {
    Unspec,
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// What a rule does when its matches hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ends this base chain only: the packet goes on to the next base chain on the hook, and on
    /// to the next hook (nftables semantics; iptables' ACCEPT in one table is the same).
    Accept,
    /// Final.
    Drop,
    /// Final (the sender is told).
    Reject,
    /// Back to the rule after the jump that entered this chain; at a base chain, its policy.
    Return,
    /// Into a chain of the same table, coming back at its end.
    Jump(String),
    /// Into a chain of the same table, not coming back.
    Goto(String),
    /// No verdict (counter, log, mark setting ...): on to the next rule.
    Continue,
    /// A destination translation: the packet is now for `address` (unchanged when `None`) and a
    /// port in `ports` (unchanged when `None`). Ends the chain like accept. `redirect` is a DNAT
    /// to the host itself, stored with `local: true`.
    Dnat {
        address: Option<IpAddr>,
        ports: Option<PortSpan>,
        local: bool,
    },
    /// A verdict portstat does not model (queue, a target of an iptables extension ...): the
    /// answer for packets that reach it is `unknown`.
    Unknown(String),
}
