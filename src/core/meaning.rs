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

/// A connection whose local end is one of our listeners came in; every other connection went
/// out. Listening sockets have no direction.
pub fn direction(socket: &Socket, listeners: &Listeners) -> Option<Direction> {
    socket.remote?;
    if socket.state.is_listening() {
        return None;
    }
    Some(
        if listeners.covers(socket.netns, socket.proto, socket.local) {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
    )
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
            direction: direction(&socket, self.listeners),
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
        assert_eq!(
            direction(&server_side, &listeners),
            Some(Direction::Inbound)
        );
        assert_eq!(
            direction(&client_side, &listeners),
            Some(Direction::Outbound)
        );
        assert_eq!(direction(&listener, &listeners), None);
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
