//! The user's question as data, and whether a socket answers it. Pure functions: no I/O.
//!
//! Matching happens in two steps so that owners are looked up only for sockets that can still
//! match: [`Query::matches_socket`] uses what the socket table alone says,
//! [`Query::matches_owner`] what the process walk added.

use std::cmp::Ordering;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::core::filter::{Filter, Prefix, Side};
use crate::core::model::{Entry, EphemeralRange, Family, PortRange, Proto, Socket, State, zone_of};
use crate::core::model::{Extensions, Saves, TableRequest};
use crate::core::target::Endpoint;
use crate::core::text::quoted;

/// A set of ports: `22`, `22,80,443`, `8000-9000`, or a mix (`22,8000-8100`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSpec(Vec<RangeInclusive<u16>>);

impl PortSpec {
    /// No port at all.
    pub const EMPTY: PortSpec = PortSpec(Vec::new());

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|range| range.contains(&port))
    }

    /// Its ports, as ranges, in the order given.
    pub fn ranges(&self) -> &[RangeInclusive<u16>] {
        &self.0
    }

    /// The one port this spec names, if it names exactly one.
    pub fn single(&self) -> Option<u16> {
        match self.0.as_slice() {
            [range] if range.start() == range.end() => Some(*range.start()),
            _ => None,
        }
    }
}

impl From<u16> for PortSpec {
    fn from(port: u16) -> PortSpec {
        PortSpec(vec![port..=port])
    }
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<PortSpec, String> {
        let mut ranges = Vec::new();
        for part in spec.split(',').map(str::trim) {
            let range = match part.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (parse_port(first)?, parse_port(last)?);
                    if first > last {
                        return Err(format!(
                            "port range {} runs backwards (write {last}-{first})",
                            quoted(part)
                        ));
                    }
                    first..=last
                }
                None => {
                    let port = parse_port(part)?;
                    port..=port
                }
            };
            ranges.push(range);
        }
        Ok(PortSpec(ranges))
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty port in port list (expected e.g. 22,80,8000-9000)".into());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{} is not a port number (ports are numbers 0-65535, e.g. 22,80,8000-9000)",
            quoted(text)
        ));
    }
    text.parse::<u16>().map_err(|_| {
        let port = if text.len() > 80 {
            quoted(text)
        } else {
            text.to_string()
        };
        format!("port {port} is out of range (ports are 0-65535)")
    })
}

/// The listing's argument: ports (`5432`, `22,80`, `8000-9000`), matched against the local or
/// the remote port, or one end of a connection (`127.0.0.1:8080`, `[::1]:8080`, `:8080`,
/// `10.0.0.5`), matched against the local or the remote end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Ports(PortSpec),
    Endpoint(Endpoint),
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Selector, String> {
        // Digits, commas and dashes are ports, as they always were; their errors say so.
        if text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b',' | b'-' | b' '))
        {
            return text.parse().map(Selector::Ports);
        }
        text.parse().map(Selector::Endpoint)
    }
}

/// Parses a state name for the command line, with the list of valid names on failure.
pub fn parse_state(name: &str) -> Result<State, String> {
    State::parse(name).ok_or_else(|| {
        let names: Vec<&str> = State::ALL.iter().map(|state| state.as_str()).collect();
        format!(
            "unknown state {} (one of {})",
            quoted(name),
            names.join(", ")
        )
    })
}

/// `--range`: an IANA port range, or this host's ephemeral range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RangeFilter {
    WellKnown,
    Registered,
    Dynamic,
    Ephemeral,
}

impl fmt::Display for RangeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RangeFilter::WellKnown => "well-known",
            RangeFilter::Registered => "registered",
            RangeFilter::Dynamic => "dynamic",
            RangeFilter::Ephemeral => "ephemeral",
        })
    }
}

/// `--netns`: which network namespaces to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetnsSelection {
    /// portstat's own (the default).
    #[default]
    Own,
    /// Every namespace on the host.
    All,
    /// One: the namespace of a pid, a name under /run/netns, or a path to a namespace file.
    One(String),
}

impl FromStr for NetnsSelection {
    type Err = String;

    fn from_str(text: &str) -> Result<NetnsSelection, String> {
        match text {
            "" => Err("--netns needs all, a pid, a name under /run/netns, or a path".into()),
            "all" => Ok(NetnsSelection::All),
            other => Ok(NetnsSelection::One(other.to_string())),
        }
    }
}

/// Which sockets the user asked to see.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The states shown; empty means every state.
    pub states: Vec<State>,
    /// Empty means both.
    pub protos: Vec<Proto>,
    /// Empty means both.
    pub families: Vec<Family>,
    /// Matched against the local or the remote port.
    pub ports: Option<PortSpec>,
    /// `--sport`, and `who`'s port.
    pub local_ports: Option<PortSpec>,
    /// `--dport`.
    pub remote_ports: Option<PortSpec>,
    /// `--src`: the local address is in one of them; empty means any.
    pub local_addresses: Vec<Prefix>,
    /// `--dst`: the remote address is in one of them; empty means any.
    pub remote_addresses: Vec<Prefix>,
    /// The local or the remote end is this one.
    pub endpoint: Option<Endpoint>,
    /// The interface indexes the endpoint's zone names, by network namespace (a socket's
    /// `netns`), once [`Query::endpoint`]'s zone was looked up; a socket whose zone is not
    /// among them does not match.
    pub endpoint_scopes: Vec<(u64, u32)>,
    pub pids: Vec<u32>,
    /// Lower-cased substring of the process name.
    pub process: Option<String>,
    pub uid: Option<u32>,
    pub range: Option<RangeFilter>,
    /// The extra views asked for (`-i`, `-o`, `-m`): not a filter, but what the tables are
    /// read with.
    pub extensions: Extensions,
}

/// How the view flags (`-l`, `-e`, `-a`, `--state`) choose states.
#[derive(Debug, Clone, Default)]
pub struct StateSelection {
    pub listening: bool,
    pub established: bool,
    pub all: bool,
    pub states: Vec<State>,
}

impl StateSelection {
    /// `--state` names states exactly; `-a` is every state; `-l` and `-e` add up; no flag at all
    /// is listeners plus established connections.
    pub fn resolve(&self) -> Vec<State> {
        if !self.states.is_empty() {
            return self.states.clone();
        }
        if self.all {
            return Vec::new();
        }
        let (listening, established) = if self.listening || self.established {
            (self.listening, self.established)
        } else {
            (true, true)
        };
        let mut states = Vec::new();
        if listening {
            states.extend([State::Listen, State::Unconn]);
        }
        if established {
            states.push(State::Established);
        }
        states
    }
}

impl Query {
    /// The tables worth reading. Both families are read even under `-4`/`-6`, because a
    /// connection's direction depends on listeners of the other family (a dual-stack `::`
    /// listener accepts IPv4 connections).
    pub fn tables(&self) -> TableRequest {
        let wants = |proto| self.protos.is_empty() || self.protos.contains(&proto);
        // Listeners are read whatever states are shown: direction and accept queues need them.
        let states = if self.states.is_empty() {
            crate::core::model::StateSet::EMPTY
        } else {
            let listeners = [State::Listen, State::Unconn];
            crate::core::model::StateSet::of(self.states.iter().copied().chain(listeners))
        };
        TableRequest {
            tcp: wants(Proto::Tcp),
            udp: wants(Proto::Udp),
            ipv4: true,
            ipv6: true,
            states,
            filter: self.filter().map(Arc::new),
            extensions: self.extensions,
            saves: Saves::Time,
        }
    }

    /// The address and port conditions, for the kernel to test before it sends a socket.
    /// Listeners are needed even where the conditions reject them (the direction of a
    /// connection depends on the listeners of both its ports, an accept queue's sockets on
    /// their listener's), so every socket without a peer (remote port 0: listeners, unbound or
    /// unconnected UDP) passes too; there are few of them, and the connections are what the
    /// kernel is spared sending.
    pub fn filter(&self) -> Option<Filter> {
        let mut all = Vec::new();
        if let Some(ports) = &self.ports {
            all.push(Filter::Any(vec![
                Filter::ports(Side::Local, ports.ranges()),
                Filter::ports(Side::Remote, ports.ranges()),
            ]));
        }
        if let Some(ports) = &self.local_ports {
            all.push(Filter::ports(Side::Local, ports.ranges()));
        }
        if let Some(ports) = &self.remote_ports {
            all.push(Filter::ports(Side::Remote, ports.ranges()));
        }
        for (side, prefixes) in [
            (Side::Local, &self.local_addresses),
            (Side::Remote, &self.remote_addresses),
        ] {
            if !prefixes.is_empty() {
                let hosts = prefixes.iter().map(|&prefix| Filter::Host {
                    side,
                    prefix,
                    port: None,
                });
                all.push(Filter::Any(hosts.collect()));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            // The zone is not in the filter: the query tests it.
            let end = |side| match (endpoint.address, endpoint.port) {
                (Some(address), port) => Some(Filter::Host {
                    side,
                    prefix: Prefix::host(address),
                    port,
                }),
                (None, Some(port)) => Some(Filter::Port {
                    side,
                    range: port..=port,
                }),
                (None, None) => None,
            };
            if let (Some(local), Some(remote)) = (end(Side::Local), end(Side::Remote)) {
                all.push(Filter::Any(vec![local, remote]));
            }
        }
        if all.is_empty() {
            return None;
        }
        Some(Filter::Any(vec![
            Filter::All(all),
            Filter::Port {
                side: Side::Remote,
                range: 0..=0,
            },
        ]))
    }

    /// Whether `end` (a socket's local or remote address) is the endpoint asked for.
    fn is_endpoint(&self, endpoint: &Endpoint, netns: u64, end: Option<SocketAddr>) -> bool {
        let Some(end) = end else {
            return false;
        };
        endpoint.port.is_none_or(|port| end.port() == port)
            && endpoint
                .address
                .is_none_or(|address| Prefix::host(address).contains(end.ip()))
            && (endpoint.zone.is_none()
                || zone_of(end).is_some_and(|index| self.endpoint_scopes.contains(&(netns, index))))
    }

    pub fn matches_socket(&self, socket: &Socket, ephemeral: EphemeralRange) -> bool {
        (self.states.is_empty() || self.states.contains(&socket.state))
            && (self.protos.is_empty() || self.protos.contains(&socket.proto))
            && (self.families.is_empty() || self.families.contains(&socket.family()))
            && self.ports.as_ref().is_none_or(|ports| {
                ports.contains(socket.local.port())
                    || socket
                        .remote
                        .is_some_and(|remote| ports.contains(remote.port()))
            })
            && self
                .local_ports
                .as_ref()
                .is_none_or(|ports| ports.contains(socket.local.port()))
            && self.remote_ports.as_ref().is_none_or(|ports| {
                socket
                    .remote
                    .is_some_and(|remote| ports.contains(remote.port()))
            })
            && (self.local_addresses.is_empty()
                || self
                    .local_addresses
                    .iter()
                    .any(|prefix| prefix.contains(socket.local.ip())))
            && (self.remote_addresses.is_empty()
                || socket.remote.is_some_and(|remote| {
                    self.remote_addresses
                        .iter()
                        .any(|prefix| prefix.contains(remote.ip()))
                }))
            && self.endpoint.as_ref().is_none_or(|endpoint| {
                self.is_endpoint(endpoint, socket.netns, Some(socket.local))
                    || self.is_endpoint(endpoint, socket.netns, socket.remote)
            })
            && self.uid.is_none_or(|uid| socket.uid == Some(uid))
            && self.range.is_none_or(|range| {
                let port = socket.local.port();
                match range {
                    RangeFilter::WellKnown => PortRange::of(port) == PortRange::WellKnown,
                    RangeFilter::Registered => PortRange::of(port) == PortRange::Registered,
                    RangeFilter::Dynamic => PortRange::of(port) == PortRange::Dynamic,
                    RangeFilter::Ephemeral => ephemeral.contains(port),
                }
            })
    }

    /// Whether matching needs to know which processes hold a socket.
    pub fn filters_by_owner(&self) -> bool {
        !self.pids.is_empty() || self.process.is_some()
    }

    pub fn matches_owner(&self, entry: &Entry) -> bool {
        (self.pids.is_empty() || entry.processes.iter().any(|p| self.pids.contains(&p.pid)))
            && self.process.as_ref().is_none_or(|wanted| {
                entry
                    .processes
                    .iter()
                    .any(|p| p.name.to_lowercase().contains(wanted.as_str()))
            })
    }
}

/// `--sort`: the order of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    Port,
    Proto,
    State,
    Pid,
    Process,
    User,
}

/// Listeners first, then by port, unless `--sort` says otherwise; ties fall back to that order.
pub fn sort(entries: &mut [Entry], key: Option<SortKey>) {
    match key {
        None => sort_in_listing_order(entries, |entry| entry),
        Some(_) => entries.sort_by(|a, b| by_key(a, b, key).then_with(|| default_order(a, b))),
    }
}

/// Sorts items in the listing's order of their entries, stable. The order is found over small
/// keys side by side and each item moved once: sorting entries themselves (a few hundred bytes
/// each) moves them on every step of the merge, and comparing through indices reads them from
/// all over memory; at 100k sockets either was a tenth of a refresh.
pub fn sort_in_listing_order<T>(items: &mut [T], entry: impl Fn(&T) -> &Entry) {
    items.sort_by_cached_key(|item| order_key(entry(item)));
}

/// The listing's order: listeners first, then by port, protocol, family and addresses.
pub fn default_order(a: &Entry, b: &Entry) -> Ordering {
    order_key(a).cmp(&order_key(b))
}

type OrderKey = (bool, u16, Proto, Family, IpAddr, Option<SocketAddr>);

fn order_key(entry: &Entry) -> OrderKey {
    let socket = &entry.socket;
    (
        !socket.state.is_listening(),
        socket.local.port(),
        socket.proto,
        socket.family(),
        socket.local.ip(),
        socket.remote,
    )
}

fn by_key(a: &Entry, b: &Entry, key: Option<SortKey>) -> Ordering {
    let first_pid = |e: &Entry| e.processes.first().map(|p| p.pid);
    let first_name = |e: &Entry| e.processes.first().map(|p| p.name.to_lowercase());
    // Sockets without an owner sort after those with one.
    fn owned_first<T: Ord>(x: Option<T>, y: Option<T>) -> Ordering {
        match (x, y) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
    match key {
        None => Ordering::Equal,
        Some(SortKey::Port) => a.socket.local.port().cmp(&b.socket.local.port()),
        Some(SortKey::Proto) => a.socket.proto.cmp(&b.socket.proto),
        Some(SortKey::State) => a.socket.state.as_str().cmp(b.socket.state.as_str()),
        Some(SortKey::Pid) => owned_first(first_pid(a), first_pid(b)),
        Some(SortKey::Process) => owned_first(first_name(a), first_name(b)),
        Some(SortKey::User) => owned_first(a.user.clone(), b.user.clone())
            .then(owned_first(a.socket.uid, b.socket.uid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{OwnerNote, Process};

    fn socket(proto: Proto, local: &str, remote: Option<&str>, state: State) -> Socket {
        Socket::example(proto, local, remote, state)
    }

    const EPHEMERAL: EphemeralRange = EphemeralRange::LINUX_DEFAULT;

    #[test]
    fn the_listing_order_puts_listeners_first_then_ports_and_keeps_ties_in_place() {
        let entry = |local: &str, state: State| {
            Entry::example(socket(Proto::Tcp, local, None, state), Vec::new())
        };
        let mut items = vec![
            ("a", entry("127.0.0.1:80", State::Established)),
            ("b", entry("127.0.0.1:443", State::Listen)),
            ("c", entry("127.0.0.1:22", State::Established)),
            ("d", entry("127.0.0.1:443", State::Listen)),
            ("e", entry("127.0.0.1:80", State::Listen)),
        ];
        sort_in_listing_order(&mut items, |(_, entry)| entry);
        let names: Vec<&str> = items.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["e", "b", "d", "c", "a"]);
    }

    #[test]
    fn port_specs_parse_lists_ranges_and_mixes() {
        let spec: PortSpec = "22, 80,8000-8100".parse().expect("valid spec");
        assert!(spec.contains(22) && spec.contains(80) && spec.contains(8050));
        assert!(!spec.contains(23) && !spec.contains(8101));
        assert!("0".parse::<PortSpec>().is_ok_and(|s| s.contains(0)));
        assert!("65535".parse::<PortSpec>().is_ok());
    }

    #[test]
    fn bad_port_specs_say_what_is_wrong() {
        let err = |spec: &str| spec.parse::<PortSpec>().expect_err(spec);
        assert!(err("70000").contains("out of range"));
        assert!(err("9-3").contains("backwards"));
        assert!(err("http").contains("not a port number"));
        assert!(err("22,").contains("empty port"));
        assert!(err("-5").contains("empty port"));
        assert!(err("1.5").contains("not a port number"));
    }

    #[test]
    fn default_view_is_listeners_and_established() {
        let states = StateSelection::default().resolve();
        assert_eq!(states, [State::Listen, State::Unconn, State::Established]);
    }

    #[test]
    fn view_flags_add_up_and_state_overrides_them() {
        let listening_only = StateSelection {
            listening: true,
            ..Default::default()
        };
        assert_eq!(listening_only.resolve(), [State::Listen, State::Unconn]);
        let all = StateSelection {
            all: true,
            listening: true,
            ..Default::default()
        };
        assert!(all.resolve().is_empty());
        let explicit = StateSelection {
            listening: true,
            states: vec![State::TimeWait],
            ..Default::default()
        };
        assert_eq!(explicit.resolve(), [State::TimeWait]);
    }

    #[test]
    fn port_filter_matches_local_or_remote_port() {
        let query = Query {
            ports: Some("443".parse().expect("valid")),
            ..Default::default()
        };
        let outbound = socket(
            Proto::Tcp,
            "10.0.0.2:50000",
            Some("1.1.1.1:443"),
            State::Established,
        );
        let other = socket(
            Proto::Tcp,
            "10.0.0.2:50001",
            Some("1.1.1.1:80"),
            State::Established,
        );
        assert!(query.matches_socket(&outbound, EPHEMERAL));
        assert!(!query.matches_socket(&other, EPHEMERAL));
        let local_only = Query {
            ports: None,
            local_ports: query.ports.clone(),
            ..query
        };
        assert!(!local_only.matches_socket(&outbound, EPHEMERAL));
    }

    fn selector(text: &str) -> Selector {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn endpoint_query(text: &str) -> Query {
        let Selector::Endpoint(endpoint) = selector(text) else {
            panic!("{text} is not an endpoint");
        };
        Query {
            endpoint: Some(endpoint),
            ..Default::default()
        }
    }

    /// The connection of the end-to-end tests, both sides, and a listener.
    fn connection() -> [Socket; 3] {
        [
            socket(Proto::Tcp, "127.0.0.1:8080", None, State::Listen),
            socket(
                Proto::Tcp,
                "127.0.0.2:40000",
                Some("127.0.0.1:8080"),
                State::Established,
            ),
            socket(
                Proto::Tcp,
                "127.0.0.1:8080",
                Some("127.0.0.2:40000"),
                State::Established,
            ),
        ]
    }

    fn matching(query: &Query, sockets: &[Socket]) -> Vec<usize> {
        (0..sockets.len())
            .filter(|&i| query.matches_socket(&sockets[i], EPHEMERAL))
            .collect()
    }

    #[test]
    fn the_argument_is_ports_or_an_endpoint() {
        assert_eq!(selector("5432"), Selector::Ports("5432".parse().unwrap()));
        assert_eq!(
            selector("8000-9000,22"),
            Selector::Ports("8000-9000,22".parse().unwrap())
        );
        let Selector::Endpoint(v4) = selector("127.0.0.1:8080") else {
            panic!()
        };
        assert_eq!(
            (v4.address.unwrap().to_string(), v4.port),
            ("127.0.0.1".into(), Some(8080))
        );
        let Selector::Endpoint(port) = selector(":8080") else {
            panic!()
        };
        assert_eq!((port.address, port.port), (None, Some(8080)));
        for (text, shown) in [
            ("[::1]:8080", "[::1]:8080"),
            ("10.0.0.5", "10.0.0.5"),
            ("::1", "[::1]"),
            ("[::1]", "[::1]"),
            ("[fe80::1%eth0]:53", "[fe80::1%eth0]:53"),
            ("[fe80::1%eth0]", "[fe80::1%eth0]"),
        ] {
            let Selector::Endpoint(endpoint) = selector(text) else {
                panic!("{text}")
            };
            assert_eq!(endpoint.to_string(), shown);
        }
        let error = |text: &str| text.parse::<Selector>().expect_err(text);
        assert!(error("70000").contains("out of range"));
        assert!(error("9-3").contains("backwards"));
        assert!(error("http").contains("not a port list"));
        assert!(error("1.2.3.4:99999").contains("out of range"));
        assert!(error("1.2.3:80").contains("not an IPv4 or IPv6 address"));
        assert!(error("fe80::1%eth0").contains("in brackets"));
        assert!(error("[::1%lo]:53").contains("not link-local"));
    }

    #[test]
    fn side_filters_select_one_side_of_a_connection() {
        let sockets = connection();
        let query = |edit: fn(&mut Query)| {
            let mut query = Query::default();
            edit(&mut query);
            query
        };
        let sport = query(|q| q.local_ports = Some("40000".parse().unwrap()));
        assert_eq!(matching(&sport, &sockets), [1]);
        let dport = query(|q| q.remote_ports = Some("40000".parse().unwrap()));
        assert_eq!(matching(&dport, &sockets), [2]);
        let src = query(|q| q.local_addresses = vec!["127.0.0.2".parse().unwrap()]);
        assert_eq!(matching(&src, &sockets), [1]);
        let dst = query(|q| q.remote_addresses = vec!["127.0.0.0/31".parse().unwrap()]);
        assert_eq!(matching(&dst, &sockets), [1]);
        let dst = query(|q| q.remote_addresses = vec!["127.0.0.2".parse().unwrap()]);
        assert_eq!(matching(&dst, &sockets), [2]);
        let none = query(|q| q.remote_addresses = vec!["::/0".parse().unwrap()]);
        assert!(matching(&none, &sockets).is_empty());
        // Several combine with AND.
        let both = query(|q| {
            q.local_ports = Some("8080".parse().unwrap());
            q.remote_addresses = vec!["127.0.0.2".parse().unwrap()];
        });
        assert_eq!(matching(&both, &sockets), [2]);
        // An endpoint is either end.
        assert_eq!(
            matching(&endpoint_query("127.0.0.2:40000"), &sockets),
            [1, 2]
        );
        assert_eq!(
            matching(&endpoint_query("127.0.0.1:8080"), &sockets),
            [0, 1, 2]
        );
        assert_eq!(matching(&endpoint_query("127.0.0.2"), &sockets), [1, 2]);
        assert_eq!(matching(&endpoint_query(":8080"), &sockets), [0, 1, 2]);
        assert!(matching(&endpoint_query("127.0.0.2:8080"), &sockets).is_empty());
        // An IPv4 endpoint is its mapped address on a dual-stack socket too.
        let mapped = socket(
            Proto::Tcp,
            "[::ffff:127.0.0.1]:8080",
            Some("[::ffff:127.0.0.2]:40000"),
            State::Established,
        );
        assert!(endpoint_query("127.0.0.2:40000").matches_socket(&mapped, EPHEMERAL));
        assert!(!endpoint_query("[::1]:40000").matches_socket(&mapped, EPHEMERAL));
    }

    #[test]
    fn a_zoned_endpoint_matches_its_interface_only() {
        let on = |index: u32| {
            socket(
                Proto::Udp,
                &format!("[fe80::1%{index}]:53"),
                None,
                State::Unconn,
            )
        };
        let mut query = endpoint_query("[fe80::1%eth0]:53");
        // Not looked up: no interface is it.
        assert!(!query.matches_socket(&on(2), EPHEMERAL));
        query.endpoint_scopes = vec![(0, 2)];
        assert!(query.matches_socket(&on(2), EPHEMERAL));
        assert!(!query.matches_socket(&on(3), EPHEMERAL));
        // Without a zone, any interface.
        assert!(endpoint_query("[fe80::1]:53").matches_socket(&on(3), EPHEMERAL));
    }

    /// What the kernel is asked to filter never rejects a socket the query shows, and keeps
    /// the listeners that give connections their direction.
    #[test]
    fn the_kernel_filter_lets_through_all_the_query_matches() {
        let mut sockets = connection().to_vec();
        sockets.push(socket(Proto::Tcp, "0.0.0.0:9000", None, State::Listen));
        sockets.push(socket(Proto::Udp, "[::]:53", None, State::Unconn));
        sockets.push(socket(
            Proto::Tcp,
            "[::1]:443",
            Some("[::1]:40002"),
            State::TimeWait,
        ));
        let queries = [
            Query {
                ports: Some("8080,40000-40002".parse().unwrap()),
                ..Default::default()
            },
            Query {
                local_ports: Some("8080".parse().unwrap()),
                ..Default::default()
            },
            Query {
                remote_ports: Some("40000".parse().unwrap()),
                local_addresses: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
                ..Default::default()
            },
            Query {
                remote_addresses: vec!["127.0.0.2".parse().unwrap()],
                ..Default::default()
            },
            endpoint_query("127.0.0.2:40000"),
            endpoint_query("[::1]"),
            endpoint_query(":443"),
        ];
        for query in &queries {
            let filter = query.filter().expect("a filter");
            for socket in &sockets {
                if query.matches_socket(socket, EPHEMERAL) {
                    assert!(
                        filter.matches(socket.local, socket.remote),
                        "{query:?} {socket:?}"
                    );
                }
                if socket.state.is_listening() {
                    assert!(
                        filter.matches(socket.local, socket.remote),
                        "listener {socket:?}: {filter:?}"
                    );
                }
            }
            assert_eq!(query.tables().filter.as_deref(), Some(&filter));
        }
        // who's question: its own port, and every listener.
        let listeners = Filter::Port {
            side: Side::Remote,
            range: 0..=0,
        };
        assert_eq!(
            queries[1].filter(),
            Some(Filter::Any(vec![
                Filter::All(vec![Filter::ports(Side::Local, &[8080..=8080])]),
                listeners
            ]))
        );
        assert_eq!(Query::default().filter(), None);
    }

    #[test]
    fn socket_filters_combine_with_and() {
        let query = Query {
            states: vec![State::Listen],
            protos: vec![Proto::Tcp],
            families: vec![Family::Ipv6],
            range: Some(RangeFilter::WellKnown),
            uid: Some(1000),
            ..Default::default()
        };
        assert!(query.matches_socket(
            &socket(Proto::Tcp, "[::]:22", None, State::Listen),
            EPHEMERAL
        ));
        assert!(!query.matches_socket(
            &socket(Proto::Tcp, "0.0.0.0:22", None, State::Listen),
            EPHEMERAL
        ));
        assert!(!query.matches_socket(
            &socket(Proto::Udp, "[::]:22", None, State::Unconn),
            EPHEMERAL
        ));
        assert!(!query.matches_socket(
            &socket(Proto::Tcp, "[::]:2222", None, State::Listen),
            EPHEMERAL
        ));
    }

    #[test]
    fn ephemeral_range_filter_uses_the_hosts_range() {
        let query = Query {
            range: Some(RangeFilter::Ephemeral),
            ..Default::default()
        };
        let narrow = EphemeralRange {
            first: 40000,
            last: 40010,
        };
        let s = socket(
            Proto::Tcp,
            "127.0.0.1:40005",
            Some("127.0.0.1:80"),
            State::Established,
        );
        assert!(query.matches_socket(&s, narrow));
        assert!(!query.matches_socket(
            &s,
            EphemeralRange {
                first: 50000,
                last: 50010
            }
        ));
    }

    #[test]
    fn owner_filters_match_any_holder() {
        let entry = Entry {
            socket: socket(Proto::Tcp, "127.0.0.1:80", None, State::Listen),
            user: None,
            processes: [(10, "nginx"), (11, "Nginx-Worker")]
                .map(|(pid, name)| {
                    std::sync::Arc::new(Process {
                        pid,
                        name: name.into(),
                        user: None,
                        cmdline: String::new(),
                        started: None,
                        ppid: None,
                    })
                })
                .into(),
            owner_note: None::<OwnerNote>,
            local_range: PortRange::WellKnown,
            remote_range: None,
            ephemeral: false,
            local_service: None,
            remote_service: None,
            direction: None,
            netns: None,
        };
        let by_pid = Query {
            pids: vec![11],
            ..Default::default()
        };
        let by_name = Query {
            process: Some("worker".into()),
            ..Default::default()
        };
        let missing = Query {
            process: Some("apache".into()),
            ..Default::default()
        };
        assert!(by_pid.matches_owner(&entry));
        assert!(by_name.matches_owner(&entry));
        assert!(!missing.matches_owner(&entry));
    }
}
