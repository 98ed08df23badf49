//! What a socket means beyond the kernel's numbers: port ranges, ephemeral ports, service names
//! and which way a connection goes. Pure functions over data the caller gathered.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::core::model::{
    Direction, Entry, EphemeralRange, NetnsLabel, OwnerNote, PortRange, Process, Proto, Socket,
    State, Unreadable,
};
use crate::core::services::Services;

/// This host's listening sockets (TCP LISTEN, bound UDP), by network namespace, protocol and
/// port: a listener serves only its own namespace.
#[derive(Debug, Default)]
pub struct Listeners(HashMap<(u64, Proto, u16), Vec<IpAddr>>);

impl Listeners {
    pub fn index<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> Listeners {
        let mut index: HashMap<(u64, Proto, u16), Vec<IpAddr>> = HashMap::new();
        for socket in sockets.into_iter().filter(|s| s.state.is_listening()) {
            index
                .entry((socket.netns, socket.proto, socket.local.port()))
                .or_default()
                .push(socket.local.ip());
        }
        Listeners(index)
    }

    /// Whether a listener of this host (in network namespace `netns`) would receive traffic
    /// sent to `local`.
    pub fn covers(&self, netns: u64, proto: Proto, local: SocketAddr) -> bool {
        self.0
            .get(&(netns, proto, local.port()))
            .is_some_and(|addresses| addresses.iter().any(|&a| listener_covers(a, local.ip())))
    }

    /// Whether a listener of this host (in network namespace `netns`) is bound to `port` on
    /// any address.
    pub fn listens_on(&self, netns: u64, proto: Proto, port: u16) -> bool {
        self.0.contains_key(&(netns, proto, port))
    }
}

/// A wildcard listener covers every address of its family; `::` also covers IPv4, since a
/// dual-stack socket accepts it. Otherwise the addresses must be equal, IPv4-mapped or not.
fn listener_covers(listener: IpAddr, address: IpAddr) -> bool {
    match (listener, address) {
        (IpAddr::V6(l), _) if l.is_unspecified() => true,
        (IpAddr::V4(l), IpAddr::V4(_)) if l.is_unspecified() => true,
        (IpAddr::V4(l), IpAddr::V6(a)) if l.is_unspecified() => a.to_ipv4_mapped().is_some(),
        _ => listener.to_canonical() == address.to_canonical(),
    }
}

/// Which way a connection goes, from what one reading of the tables shows; `None` for
/// listeners and unconnected UDP sockets, and for connections it can't tell. The first rule that
/// applies decides:
///
/// 1. its local end is covered by a listener of this reading (same namespace, protocol and
///    port, the same or a wildcard address): inbound;
/// 2. a TCP handshake under way: `SYN_SENT` is outbound, `SYN_RECV` and `NEW_SYN_RECV` inbound;
/// 3. its remote end is one of this host's listeners (the remote address is a loopback address
///    or the connection's own local address, and a listener covers it): outbound;
/// 4. the port pair, against the ephemeral range: a local port outside it talking to a remote
///    port inside it is inbound (a server's connection, its listener gone: a TIME_WAIT left by
///    a stopped server), a local port inside it talking to a remote port outside it outbound;
/// 5. its local port is a listener's, on another address: inbound, since the kernel never
///    picks a port something is bound to for an outgoing connection;
/// 6. otherwise unknown: both ports in the range, or neither.
///
/// Connected UDP sockets follow the same rules (rule 2 aside).
pub fn direction(
    socket: &Socket,
    listeners: &Listeners,
    ephemeral: EphemeralRange,
) -> Option<Direction> {
    let remote = socket.remote?;
    if socket.state.is_listening() {
        return None;
    }
    let local = socket.local;
    if listeners.covers(socket.netns, socket.proto, local) {
        return Some(Direction::Inbound);
    }
    match socket.state {
        State::SynSent => return Some(Direction::Outbound),
        State::SynRecv | State::NewSynRecv => return Some(Direction::Inbound),
        _ => {}
    }
    let remote_ip = remote.ip().to_canonical();
    let remote_is_this_host = remote_ip.is_loopback() || remote_ip == local.ip().to_canonical();
    if remote_is_this_host && listeners.covers(socket.netns, socket.proto, remote) {
        return Some(Direction::Outbound);
    }
    match (
        ephemeral.contains(local.port()),
        ephemeral.contains(remote.port()),
    ) {
        (false, true) => return Some(Direction::Inbound),
        (true, false) => return Some(Direction::Outbound),
        _ => {}
    }
    listeners
        .listens_on(socket.netns, socket.proto, local.port())
        .then_some(Direction::Inbound)
}

/// Everything needed to turn sockets into entries; built once per run.
pub struct Meaning<'a> {
    pub ephemeral: EphemeralRange,
    pub listeners: &'a Listeners,
    /// `None` under `--numeric`.
    pub services: Option<&'static Services>,
    /// Namespace labels by inode; empty when only one namespace is shown.
    pub labels: &'a HashMap<u64, Arc<NetnsLabel>>,
}

impl Meaning<'_> {
    pub fn entry(
        &self,
        socket: Socket,
        processes: Vec<Arc<Process>>,
        owner_note: Option<OwnerNote>,
        user: Option<Arc<str>>,
    ) -> Entry {
        let service = |port: u16| {
            self.services
                .and_then(|services| services.name(port, socket.proto))
        };
        let local_port = socket.local.port();
        let remote_port = socket.remote.map(|remote| remote.port());
        Entry {
            user,
            local_range: PortRange::of(local_port),
            remote_range: remote_port.map(PortRange::of),
            ephemeral: self.ephemeral.contains(local_port),
            local_service: service(local_port),
            remote_service: remote_port.and_then(service),
            direction: direction(&socket, self.listeners, self.ephemeral),
            netns: self.labels.get(&socket.netns).cloned(),
            processes,
            owner_note,
            socket,
        }
    }
}

/// What the walk knew when it found no process for a socket.
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits<'a> {
    /// This process's effective uid (`None` where the platform has none).
    pub euid: Option<u32>,
    /// The processes whose descriptors could not be read.
    pub unreadable: &'a [Unreadable],
    /// The network namespace the walk ran in, where known: sockets of namespace 0 live there.
    pub own_netns: Option<u64>,
    /// Some processes exited while the walk was under way.
    pub some_vanished: bool,
    /// The backend reports socket inodes, so inode 0 means no file refers to the socket.
    pub inodes_known: bool,
}

impl WalkLimits<'_> {
    /// The unreadable processes that could hold `socket`: of a uid the socket was created by,
    /// in its network namespace (where those are known).
    fn could_hold<'s>(&'s self, socket: &Socket) -> impl Iterator<Item = &'s Unreadable> {
        let netns = if socket.netns == 0 {
            self.own_netns
        } else {
            Some(socket.netns)
        };
        let uid = socket.uid;
        self.unreadable
            .iter()
            .filter(move |process| process.could_hold(uid, netns))
    }

    fn is_root(&self) -> bool {
        self.euid == Some(0)
    }
}

/// Why `socket` has no owner in the walk, or `None` when it has one.
///
/// A socket is hidden only when a process whose descriptors could not be read could be its
/// holder ([`Unreadable::could_hold`]); which note says whether root would see it. A socket no
/// process can hold is the kernel's (no file refers to it), waits in an accept queue, or was
/// not found (closed during the scan, or held outside this PID namespace).
pub fn owner_note(
    socket: &Socket,
    has_owner: bool,
    listeners: &Listeners,
    limits: WalkLimits,
) -> Option<OwnerNote> {
    if has_owner {
        return None;
    }
    let fileless = if limits.inodes_known {
        socket.inode == 0
    } else {
        socket.state == State::TimeWait
    };
    if fileless {
        // A completed handshake the server has not accept()ed yet has no file, hence no inode;
        // neither has a socket the kernel is finishing after its process closed it.
        let waits_for_accept = matches!(
            socket.state,
            State::Established | State::SynRecv | State::NewSynRecv | State::CloseWait
        ) && listeners.covers(socket.netns, socket.proto, socket.local);
        return Some(if waits_for_accept {
            OwnerNote::AcceptQueue
        } else {
            OwnerNote::Kernel
        });
    }
    Some(if limits.could_hold(socket).next().is_some() {
        if limits.is_root() {
            OwnerNote::HiddenFromRoot
        } else {
            OwnerNote::Hidden
        }
    } else if limits.some_vanished {
        OwnerNote::Exited
    } else {
        OwnerNote::NotFound
    })
}

/// What could not be seen, in a sentence per reason, with the remedy where one helps.
pub fn owner_warnings(entries: &[Entry], limits: WalkLimits) -> Vec<String> {
    let with = |wanted: OwnerNote| {
        entries
            .iter()
            .filter(move |entry| entry.owner_note == Some(wanted))
    };
    let mut warnings = Vec::new();
    let hidden = with(OwnerNote::Hidden).count();
    if hidden > 0 {
        warnings.push(format!(
            "{} hidden: other users' processes could hold {}, and only root can read their \
             /proc/PID/fd: run as root to see {}",
            owners_are(hidden),
            it_or_them(hidden),
            it_or_them(hidden)
        ));
    }
    let from_root: Vec<&Entry> = with(OwnerNote::HiddenFromRoot).collect();
    if !from_root.is_empty() {
        let mut pids: Vec<Option<u32>> = from_root
            .iter()
            .flat_map(|entry| limits.could_hold(&entry.socket).map(|process| process.pid))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        // Known pids first, at most five of them; processes of unknown pid last.
        const NAMED: usize = 5;
        let known: Vec<u32> = pids.iter().flatten().copied().collect();
        let mut named: Vec<String> = known.iter().take(NAMED).map(u32::to_string).collect();
        if known.len() > NAMED {
            named.push(format!("{} more", known.len() - NAMED));
        }
        let which = match (named.len(), pids.contains(&None)) {
            (0, _) => "some processes".to_string(),
            (1, false) if known.len() == 1 => format!("process {}", named[0]),
            (_, false) => format!("processes {}", named.join(", ")),
            (_, true) => format!("processes {} and others", named.join(", ")),
        };
        let them = if pids.len() == 1 { "it" } else { "they" };
        warnings.push(format!(
            "{} hidden: even root may not read the /proc/PID/fd of {which} (not dumpable, \
             guarded by a security module, or in another user namespace), and {them} could hold {}",
            owners_are(from_root.len()),
            it_or_them(from_root.len())
        ));
    }
    let exited = with(OwnerNote::Exited).count();
    if exited > 0 {
        warnings.push(format!(
            "{} not found: processes exited during the scan",
            owners_are(exited)
        ));
    }
    let not_found = with(OwnerNote::NotFound).count();
    if not_found > 0 {
        warnings.push(format!(
            "{} not found: closed during the scan, or held outside this PID namespace",
            owners_are(not_found)
        ));
    }
    warnings
}

/// `the owner of 1 socket is`, `the owners of 3 sockets are`.
fn owners_are(sockets: usize) -> String {
    if sockets == 1 {
        "the owner of 1 socket is".into()
    } else {
        format!("the owners of {sockets} sockets are")
    }
}

fn it_or_them(sockets: usize) -> &'static str {
    if sockets == 1 { "it" } else { "them" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::State;

    fn socket(proto: Proto, local: &str, remote: Option<&str>, state: State) -> Socket {
        Socket::example(proto, local, remote, state)
    }

    /// The direction on a host with Linux's default ephemeral range (32768-60999).
    fn way(socket: &Socket, listeners: &Listeners) -> Option<Direction> {
        direction(socket, listeners, EphemeralRange::LINUX_DEFAULT)
    }

    #[test]
    fn connection_to_a_local_listener_is_inbound_and_its_client_outbound() {
        let listener = socket(Proto::Tcp, "127.0.0.1:8080", None, State::Listen);
        let server_side = socket(
            Proto::Tcp,
            "127.0.0.1:8080",
            Some("127.0.0.1:50000"),
            State::Established,
        );
        let client_side = socket(
            Proto::Tcp,
            "127.0.0.1:50000",
            Some("127.0.0.1:8080"),
            State::Established,
        );
        let listeners = Listeners::index([&listener]);
        assert_eq!(way(&server_side, &listeners), Some(Direction::Inbound));
        assert_eq!(way(&client_side, &listeners), Some(Direction::Outbound));
        assert_eq!(way(&listener, &listeners), None);
    }

    mod directions {
        //! One test per rule of [`direction`], in its order.
        use super::*;

        fn tcp(local: &str, remote: &str, state: State) -> Socket {
            socket(Proto::Tcp, local, Some(remote), state)
        }

        #[test]
        fn rule_1_a_listener_covering_the_local_end_makes_it_inbound_whatever_the_ports() {
            // Both ports in the ephemeral range: only the listener can tell.
            let listener = socket(Proto::Tcp, "0.0.0.0:40000", None, State::Listen);
            let listeners = Listeners::index([&listener]);
            let served = tcp("10.0.0.5:40000", "10.0.0.9:50000", State::Established);
            assert_eq!(way(&served, &listeners), Some(Direction::Inbound));
            // Even against the port pair: a server on an ephemeral port, a client on a low one.
            let odd = tcp("10.0.0.5:40000", "10.0.0.9:1000", State::TimeWait);
            assert_eq!(way(&odd, &listeners), Some(Direction::Inbound));
            // Another namespace's listener serves only its own.
            let elsewhere = Socket {
                netns: 7,
                ..served.clone()
            };
            assert_eq!(way(&elsewhere, &listeners), None);
        }

        #[test]
        fn rule_2_a_handshake_under_way_tells_who_began_it() {
            let none = Listeners::default();
            let dialing = tcp("10.0.0.5:40000", "10.0.0.9:50000", State::SynSent);
            assert_eq!(way(&dialing, &none), Some(Direction::Outbound));
            for state in [State::SynRecv, State::NewSynRecv] {
                let answering = tcp("10.0.0.5:40000", "10.0.0.9:50000", state);
                assert_eq!(way(&answering, &none), Some(Direction::Inbound));
            }
        }

        #[test]
        fn rule_3_a_connection_to_this_hosts_own_listener_is_outbound() {
            // A server on a port inside the ephemeral range (bound to port 0, say) and its
            // client on the same host: the port pair can't tell, the listener can.
            let listener = socket(Proto::Tcp, "0.0.0.0:45000", None, State::Listen);
            let listeners = Listeners::index([&listener]);
            let client = tcp("127.0.0.1:50000", "127.0.0.1:45000", State::Established);
            assert_eq!(way(&client, &listeners), Some(Direction::Outbound));
            let to_own_address = tcp("10.0.0.5:50000", "10.0.0.5:45000", State::Established);
            assert_eq!(way(&to_own_address, &listeners), Some(Direction::Outbound));
            let mapped = socket(
                Proto::Tcp,
                "[::ffff:127.0.0.1]:50000",
                Some("[::ffff:127.0.0.1]:45000"),
                State::Established,
            );
            assert_eq!(way(&mapped, &listeners), Some(Direction::Outbound));
            // A wildcard listener says nothing of another host's address.
            let remote_host = tcp("10.0.0.5:50000", "10.0.0.9:45000", State::Established);
            assert_eq!(way(&remote_host, &listeners), None);
        }

        #[test]
        fn rule_4_a_servers_time_wait_after_its_listener_closed_is_inbound() {
            // The case: the server on 80 stopped, its TIME_WAIT remains.
            let none = Listeners::default();
            let left = tcp("10.77.0.1:80", "10.77.0.2:44402", State::TimeWait);
            assert_eq!(way(&left, &none), Some(Direction::Inbound));
            let client = tcp("10.77.0.2:44402", "10.77.0.1:80", State::TimeWait);
            assert_eq!(way(&client, &none), Some(Direction::Outbound));
            // The range is this host's, not Linux's default.
            let narrow = EphemeralRange {
                first: 40000,
                last: 40099,
            };
            assert_eq!(direction(&left, &none, narrow), None);
            let inside = tcp("10.77.0.1:80", "10.77.0.2:40050", State::TimeWait);
            assert_eq!(direction(&inside, &none, narrow), Some(Direction::Inbound));
        }

        #[test]
        fn rule_5_a_port_listened_on_another_address_is_a_servers() {
            let listener = socket(Proto::Tcp, "127.0.0.1:8080", None, State::Listen);
            let listeners = Listeners::index([&listener]);
            // Neither port in the range, the listener on loopback only.
            let served = tcp("10.0.0.5:8080", "10.0.0.9:9090", State::Established);
            assert_eq!(way(&served, &listeners), Some(Direction::Inbound));
            // The same port listened on for the other protocol says nothing.
            let udp = socket(Proto::Udp, "127.0.0.1:9090", None, State::Unconn);
            let udp_listeners = Listeners::index([&udp]);
            let other = tcp("10.0.0.5:9090", "10.0.0.9:8080", State::Established);
            assert_eq!(way(&other, &udp_listeners), None);
        }

        #[test]
        fn rule_6_otherwise_the_direction_is_unknown() {
            let none = Listeners::default();
            for (local, remote) in [
                ("10.0.0.5:40000", "10.0.0.9:50000"),
                ("10.0.0.5:5000", "10.0.0.9:6000"),
            ] {
                let unknown = tcp(local, remote, State::TimeWait);
                assert_eq!(way(&unknown, &none), None, "{local} {remote}");
            }
        }

        #[test]
        fn connected_udp_follows_the_same_rules() {
            let listener = socket(Proto::Udp, "0.0.0.0:4433", None, State::Unconn);
            let listeners = Listeners::index([&listener]);
            let udp = |local: &str, remote: &str| {
                socket(Proto::Udp, local, Some(remote), State::Established)
            };
            // A server's connected socket on its listener's port (QUIC, say).
            let served = udp("10.0.0.5:4433", "10.0.0.9:40000");
            assert_eq!(way(&served, &listeners), Some(Direction::Inbound));
            let resolver = udp("10.0.0.5:45000", "9.9.9.9:53");
            assert_eq!(way(&resolver, &listeners), Some(Direction::Outbound));
            let peer = udp("127.0.0.1:50000", "127.0.0.1:4433");
            assert_eq!(way(&peer, &listeners), Some(Direction::Outbound));
            let unknown = udp("10.0.0.5:45000", "10.0.0.9:46000");
            assert_eq!(way(&unknown, &listeners), None);
            let unconnected = socket(Proto::Udp, "10.0.0.5:45000", None, State::Unconn);
            assert_eq!(way(&unconnected, &listeners), None);
        }
    }

    #[test]
    fn wildcard_listeners_cover_their_family_and_dual_stack_covers_ipv4() {
        let any4 = socket(Proto::Tcp, "0.0.0.0:22", None, State::Listen);
        let any6 = socket(Proto::Tcp, "[::]:443", None, State::Listen);
        let listeners = Listeners::index([&any4, &any6]);
        assert!(listeners.covers(0, Proto::Tcp, "10.1.2.3:22".parse().expect("addr")));
        assert!(listeners.covers(0, Proto::Tcp, "[::ffff:10.1.2.3]:22".parse().expect("addr")));
        assert!(!listeners.covers(0, Proto::Tcp, "[fe80::1]:22".parse().expect("addr")));
        assert!(listeners.covers(0, Proto::Tcp, "10.1.2.3:443".parse().expect("addr")));
        assert!(!listeners.covers(0, Proto::Udp, "10.1.2.3:443".parse().expect("addr")));
    }

    #[test]
    fn specific_listener_covers_only_its_address() {
        let lo = socket(Proto::Udp, "127.0.0.1:53", None, State::Unconn);
        let listeners = Listeners::index([&lo]);
        assert!(listeners.covers(0, Proto::Udp, "127.0.0.1:53".parse().expect("addr")));
        assert!(listeners.covers(
            0,
            Proto::Udp,
            "[::ffff:127.0.0.1]:53".parse().expect("addr")
        ));
        assert!(!listeners.covers(0, Proto::Udp, "127.0.0.2:53".parse().expect("addr")));
    }

    #[test]
    fn entries_carry_ranges_services_and_ephemeral_flag() {
        let services: &'static Services = Box::leak(Box::new(Services::with_system_services(None)));
        let listeners = Listeners::default();
        let meaning = Meaning {
            ephemeral: EphemeralRange::LINUX_DEFAULT,
            listeners: &listeners,
            services: Some(services),
            labels: &HashMap::new(),
        };
        let outbound = socket(
            Proto::Tcp,
            "10.0.0.2:40000",
            Some("1.1.1.1:443"),
            State::Established,
        );
        let entry = meaning.entry(outbound, Vec::new(), None, None);
        assert_eq!(entry.local_range, PortRange::Registered);
        assert_eq!(entry.remote_range, Some(PortRange::WellKnown));
        assert!(entry.ephemeral);
        assert_eq!(entry.remote_service, Some("https"));
        assert_eq!(entry.direction, Some(Direction::Outbound));
    }

    mod owner_notes {
        use super::super::*;
        use crate::core::model::State;

        fn socket(local: &str, remote: Option<&str>, state: State, uid: u32, inode: u64) -> Socket {
            Socket {
                uid: Some(uid),
                inode,
                ..Socket::example(Proto::Tcp, local, remote, state)
            }
        }

        fn listener(uid: u32) -> Socket {
            socket("127.0.0.1:80", None, State::Listen, uid, 9)
        }

        /// A process that could not be read, of these uids, in namespace `netns`.
        fn unreadable(pid: u32, uids: &[u32], netns: Option<u64>) -> Unreadable {
            Unreadable {
                pid: Some(pid),
                uids: uids.to_vec(),
                netns,
            }
        }

        /// The limits of a walk by `euid` in namespace 100, which could not read `unreadable`.
        fn limits(euid: u32, unreadable: &[Unreadable]) -> WalkLimits<'_> {
            WalkLimits {
                euid: Some(euid),
                unreadable,
                own_netns: Some(100),
                some_vanished: false,
                inodes_known: true,
            }
        }

        fn note(socket: &Socket, limits: WalkLimits) -> Option<OwnerNote> {
            owner_note(socket, false, &Listeners::default(), limits)
        }

        /// Root's processes, unreadable to user 1000.
        fn roots() -> Vec<Unreadable> {
            vec![unreadable(1, &[0], None), unreadable(500, &[0, 33], None)]
        }

        #[test]
        fn owned_sockets_need_no_note() {
            let hidden = roots();
            let s = listener(0);
            assert_eq!(
                owner_note(&s, true, &Listeners::default(), limits(1000, &hidden)),
                None
            );
        }

        #[test]
        fn time_wait_is_kernel_owned_even_beside_unreadable_processes() {
            let s = socket(
                "127.0.0.1:5000",
                Some("127.0.0.1:80"),
                State::TimeWait,
                0,
                0,
            );
            let hidden = roots();
            assert_eq!(note(&s, limits(1000, &hidden)), Some(OwnerNote::Kernel));
            assert_eq!(note(&s, limits(0, &hidden)), Some(OwnerNote::Kernel));
        }

        #[test]
        fn unaccepted_connection_waits_in_the_listeners_queue() {
            let listeners = Listeners::index([&listener(0)]);
            let queued = socket(
                "127.0.0.1:80",
                Some("127.0.0.1:5000"),
                State::Established,
                0,
                0,
            );
            let hidden = roots();
            assert_eq!(
                owner_note(&queued, false, &listeners, limits(0, &hidden)),
                Some(OwnerNote::AcceptQueue)
            );
        }

        #[test]
        fn another_users_socket_is_hidden_from_a_user_when_that_users_process_is_unreadable() {
            let hidden = roots();
            assert_eq!(
                note(&listener(0), limits(1000, &hidden)),
                Some(OwnerNote::Hidden)
            );
            // www-data's socket: process 500 runs as root and www-data (a worker, say).
            assert_eq!(
                note(&listener(33), limits(1000, &hidden)),
                Some(OwnerNote::Hidden)
            );
            assert_eq!(OwnerNote::Hidden.describe(), "(hidden: another user's)");
        }

        #[test]
        fn a_socket_no_unreadable_process_could_hold_is_not_hidden() {
            let hidden = roots();
            // The caller's own socket, and a third user's whose processes were all readable.
            assert_eq!(
                note(&listener(1000), limits(1000, &hidden)),
                Some(OwnerNote::NotFound)
            );
            assert_eq!(
                note(&listener(116), limits(1000, &hidden)),
                Some(OwnerNote::NotFound)
            );
            // Nothing unreadable at all.
            assert_eq!(
                note(&listener(0), limits(0, &[])),
                Some(OwnerNote::NotFound)
            );
        }

        #[test]
        fn root_is_told_the_kernel_refused_it_not_to_run_as_root() {
            let pid_1 = [unreadable(1, &[0], Some(100))];
            let s = listener(0);
            assert_eq!(note(&s, limits(0, &pid_1)), Some(OwnerNote::HiddenFromRoot));
            assert_eq!(
                OwnerNote::HiddenFromRoot.describe(),
                "(hidden: unreadable to root)"
            );
            assert_eq!(OwnerNote::HiddenFromRoot.code(), "hidden");
            // Another user's socket: pid 1 runs as root only, so it is not the holder.
            assert_eq!(
                note(&listener(1000), limits(0, &pid_1)),
                Some(OwnerNote::NotFound)
            );
        }

        #[test]
        fn a_process_in_another_network_namespace_holds_none_of_this_ones_sockets() {
            // pid 1 lives in namespace 100, portstat's own; the socket was read in namespace 7.
            let pid_1 = [unreadable(1, &[0], Some(100))];
            let elsewhere = Socket {
                netns: 7,
                ..listener(0)
            };
            assert_eq!(
                note(&elsewhere, limits(0, &pid_1)),
                Some(OwnerNote::NotFound)
            );
            // Namespace 0 is portstat's own (100): pid 1 could hold it.
            assert_eq!(
                note(&listener(0), limits(0, &pid_1)),
                Some(OwnerNote::HiddenFromRoot)
            );
            let own_by_inode = Socket {
                netns: 100,
                ..listener(0)
            };
            assert_eq!(
                note(&own_by_inode, limits(0, &pid_1)),
                Some(OwnerNote::HiddenFromRoot)
            );
            // Where namespaces can't be read, any namespace could be its.
            let unknown = [unreadable(1, &[0], None)];
            assert_eq!(
                note(&elsewhere, limits(0, &unknown)),
                Some(OwnerNote::HiddenFromRoot)
            );
        }

        #[test]
        fn a_process_of_unknown_uid_or_a_socket_of_unknown_uid_could_match_anything() {
            let unknown = [unreadable(7, &[], None)];
            assert_eq!(
                note(&listener(1000), limits(0, &unknown)),
                Some(OwnerNote::HiddenFromRoot)
            );
            let pid_1 = [unreadable(1, &[0], None)];
            let no_uid = Socket {
                uid: None,
                ..listener(0)
            };
            assert_eq!(note(&no_uid, limits(1000, &pid_1)), Some(OwnerNote::Hidden));
        }

        #[test]
        fn holder_missing_after_a_process_exited_mid_walk_is_reported_as_exited() {
            let exited = WalkLimits {
                some_vanished: true,
                ..limits(0, &[])
            };
            assert_eq!(note(&listener(0), exited), Some(OwnerNote::Exited));
            // An unreadable process that could hold it comes first.
            let pid_1 = [unreadable(1, &[0], None)];
            let both = WalkLimits {
                some_vanished: true,
                ..limits(0, &pid_1)
            };
            assert_eq!(note(&listener(0), both), Some(OwnerNote::HiddenFromRoot));
        }

        fn entry(socket: Socket, note: Option<OwnerNote>) -> Entry {
            Entry {
                owner_note: note,
                ..Entry::example(socket, Vec::new())
            }
        }

        #[test]
        fn a_user_is_told_to_run_as_root() {
            let hidden = roots();
            let entries = [
                entry(listener(0), Some(OwnerNote::Hidden)),
                entry(listener(33), Some(OwnerNote::Hidden)),
            ];
            assert_eq!(
                owner_warnings(&entries, limits(1000, &hidden)),
                [
                    "the owners of 2 sockets are hidden: other users' processes could hold them, \
                     and only root can read their /proc/PID/fd: run as root to see them"
                ]
            );
        }

        #[test]
        fn root_is_told_which_processes_the_kernel_keeps_from_it_and_no_remedy() {
            let hidden = [
                unreadable(1, &[0], Some(100)),
                unreadable(2, &[0], Some(100)),
                unreadable(3, &[1000], Some(100)),
            ];
            let entries = [entry(listener(0), Some(OwnerNote::HiddenFromRoot))];
            let warnings = owner_warnings(&entries, limits(0, &hidden));
            assert_eq!(
                warnings,
                [
                    "the owner of 1 socket is hidden: even root may not read the /proc/PID/fd of \
                     processes 1, 2 (not dumpable, guarded by a security module, or in another \
                     user namespace), and they could hold it"
                ]
            );
            let one = [unreadable(1, &[0], Some(100))];
            let warnings = owner_warnings(&entries, limits(0, &one));
            assert!(
                warnings[0].contains("of process 1 (") && warnings[0].ends_with("it could hold it"),
                "{warnings:?}"
            );
            assert!(!warnings[0].contains("run as root"), "{warnings:?}");
            let many: Vec<Unreadable> = (1..=7).map(|pid| unreadable(pid, &[0], None)).collect();
            let warnings = owner_warnings(&entries, limits(0, &many));
            assert!(
                warnings[0].contains("processes 1, 2, 3, 4, 5, 2 more ("),
                "{warnings:?}"
            );
            let no_proc = [Unreadable::unknown()];
            let warnings = owner_warnings(&entries, limits(0, &no_proc));
            assert!(
                warnings[0].contains("/proc/PID/fd of some processes ("),
                "{warnings:?}"
            );
            let mixed = [unreadable(1, &[0], None), Unreadable::unknown()];
            let warnings = owner_warnings(&entries, limits(0, &mixed));
            assert!(
                warnings[0].contains("of processes 1 and others ("),
                "{warnings:?}"
            );
        }

        #[test]
        fn sockets_nothing_could_hold_are_said_to_be_not_found_or_exited() {
            let entries = [
                entry(listener(0), Some(OwnerNote::NotFound)),
                entry(listener(0), Some(OwnerNote::Exited)),
                entry(listener(0), Some(OwnerNote::Kernel)),
            ];
            assert_eq!(
                owner_warnings(&entries, limits(0, &[])),
                [
                    "the owner of 1 socket is not found: processes exited during the scan",
                    "the owner of 1 socket is not found: closed during the scan, or held \
                     outside this PID namespace",
                ]
            );
        }
    }
}
