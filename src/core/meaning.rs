//! What a socket means beyond the kernel's numbers: port ranges, ephemeral ports, service names
//! and which way a connection goes. Pure functions over data the caller gathered.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::core::model::{
    Direction, Entry, EphemeralRange, NetnsLabel, OwnerNote, PortRange, Process, Proto, Socket,
    State,
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
pub struct WalkLimits {
    /// This process's effective uid (`None` where the platform has none).
    pub euid: Option<u32>,
    /// Some processes' descriptors could not be read.
    pub some_unreadable: bool,
    /// Some processes exited while the walk was under way.
    pub some_vanished: bool,
    /// The backend reports socket inodes, so inode 0 means no file refers to the socket.
    pub inodes_known: bool,
}

/// Why `socket` has no owner in the walk, or `None` when it has one.
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
    let is_root = limits.euid == Some(0);
    let someone_elses = limits.euid.is_none_or(|euid| Some(euid) != socket.uid);
    Some(if limits.some_unreadable && (someone_elses || is_root) {
        OwnerNote::Hidden
    } else if limits.some_vanished {
        OwnerNote::Exited
    } else {
        OwnerNote::NotFound
    })
}

/// What could not be seen, in a sentence per reason.
pub fn owner_warnings(entries: &[Entry], limits: WalkLimits) -> Vec<String> {
    let count = |wanted: OwnerNote| {
        entries
            .iter()
            .filter(|entry| entry.owner_note == Some(wanted))
            .count()
    };
    let mut warnings = Vec::new();
    let hidden = count(OwnerNote::Hidden);
    if hidden > 0 {
        warnings.push(if limits.euid == Some(0) {
            format!("owners of {hidden} sockets hidden: their /proc/PID/fd could not be read")
        } else {
            format!("owners of {hidden} sockets hidden: run as root")
        });
    }
    let exited = count(OwnerNote::Exited);
    if exited > 0 {
        warnings.push(format!(
            "owners of {exited} sockets not found: processes exited during the scan"
        ));
    }
    let not_found = count(OwnerNote::NotFound);
    if not_found > 0 {
        warnings.push(format!(
            "owners of {not_found} sockets not found: closed during the scan, or held outside \
             this PID namespace"
        ));
    }
    warnings
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

        const USER: WalkLimits = WalkLimits {
            euid: Some(1000),
            some_unreadable: true,
            some_vanished: false,
            inodes_known: true,
        };

        #[test]
        fn owned_sockets_need_no_note() {
            let s = socket("127.0.0.1:80", None, State::Listen, 0, 5);
            assert_eq!(owner_note(&s, true, &Listeners::default(), USER), None);
        }

        #[test]
        fn time_wait_is_kernel_owned() {
            let s = socket(
                "127.0.0.1:5000",
                Some("127.0.0.1:80"),
                State::TimeWait,
                0,
                0,
            );
            assert_eq!(
                owner_note(&s, false, &Listeners::default(), USER),
                Some(OwnerNote::Kernel)
            );
        }

        #[test]
        fn unaccepted_connection_waits_in_the_listeners_queue() {
            let listener = socket("127.0.0.1:80", None, State::Listen, 0, 5);
            let listeners = Listeners::index([&listener]);
            let queued = socket(
                "127.0.0.1:80",
                Some("127.0.0.1:5000"),
                State::Established,
                0,
                0,
            );
            assert_eq!(
                owner_note(&queued, false, &listeners, USER),
                Some(OwnerNote::AcceptQueue)
            );
        }

        #[test]
        fn another_users_socket_is_hidden_from_a_non_root_caller() {
            let s = socket("127.0.0.1:80", None, State::Listen, 0, 9);
            assert_eq!(
                owner_note(&s, false, &Listeners::default(), USER),
                Some(OwnerNote::Hidden)
            );
        }

        #[test]
        fn own_socket_without_holder_was_not_found() {
            let s = socket("127.0.0.1:80", None, State::Listen, 1000, 9);
            assert_eq!(
                owner_note(&s, false, &Listeners::default(), USER),
                Some(OwnerNote::NotFound)
            );
            let root = WalkLimits {
                euid: Some(0),
                some_unreadable: false,
                some_vanished: false,
                inodes_known: true,
            };
            assert_eq!(
                owner_note(&s, false, &Listeners::default(), root),
                Some(OwnerNote::NotFound)
            );
        }

        #[test]
        fn holder_missing_after_a_process_exited_mid_walk_is_reported_as_exited() {
            let s = socket("127.0.0.1:80", None, State::Listen, 0, 9);
            let root = WalkLimits {
                euid: Some(0),
                some_unreadable: false,
                some_vanished: true,
                inodes_known: true,
            };
            assert_eq!(
                owner_note(&s, false, &Listeners::default(), root),
                Some(OwnerNote::Exited)
            );
        }
    }
}
