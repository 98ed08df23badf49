//! Could a new server bind the asked address and port now, and if not, why: decided from the
//! socket tables and the host's settings, then checked against a real test bind. Pure.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::core::cgroup::Manager;
use crate::core::model::{Entry, EphemeralRange, OwnerNote, Proto, State};
use crate::core::query::PortSpec;
use crate::core::target::Target;

/// How one bind attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindOutcome {
    Bound,
    /// EADDRINUSE
    InUse,
    /// EACCES: a privileged port without the right to bind it.
    PermissionDenied,
    /// EADDRNOTAVAIL: the address is not one of this host's.
    NotAvailable,
    Failed(String),
}

impl BindOutcome {
    pub fn describe(&self) -> String {
        match self {
            BindOutcome::Bound => "bound".into(),
            BindOutcome::InUse => "address already in use (EADDRINUSE)".into(),
            BindOutcome::PermissionDenied => "permission denied (EACCES)".into(),
            BindOutcome::NotAvailable => "address not available (EADDRNOTAVAIL)".into(),
            BindOutcome::Failed(error) => error.clone(),
        }
    }
}

/// A server's two usual ways to bind: with and without SO_REUSEADDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindTest {
    pub address: String,
    pub without_reuseaddr: BindOutcome,
    pub with_reuseaddr: BindOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectOutcome {
    Accepted,
    Refused,
    TimedOut,
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectTest {
    pub address: String,
    pub outcome: ConnectOutcome,
    /// How long the attempt took, in milliseconds.
    pub millis: f64,
}

/// The host settings that bear on binding.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub bindv6only: bool,
    pub unprivileged_port_start: u16,
    pub may_bind_privileged: bool,
    pub ephemeral: EphemeralRange,
    /// `net.ipv4.ip_local_reserved_ports`: ports outgoing connections never take.
    pub reserved: PortSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Nothing holds the address and port.
    Free,
    /// A listening socket (bound UDP socket) holds it.
    Listener,
    /// Several listening sockets, or several processes, share it.
    SharedListener,
    /// Only connections (TIME_WAIT, CLOSE_WAIT, ...) hold the port.
    ConnectionsOnly,
    /// A port below `ip_unprivileged_port_start`, without root or CAP_NET_BIND_SERVICE.
    PrivilegedPort,
    /// The address is not one of this host's.
    AddressNotAvailable,
    /// The tables show nothing in the way, but the test bind failed anyway.
    TestBindFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub can_bind: bool,
    pub reason: Reason,
    /// One sentence a person can act on.
    pub message: String,
    /// What else matters: ephemeral range, a full accept queue, tables and test disagreeing.
    pub notes: Vec<String>,
}

/// How an existing socket's address meets the asked one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    Same,
    /// The existing socket is bound to the wildcard of the asked address's family.
    ExistingWildcard,
    /// The existing socket is on `::` in dual-stack mode, which takes IPv4 too.
    ExistingDualStack,
    /// The asked address is a wildcard, which needs every address of its family free.
    WantedWildcard,
    /// The asked address is `::` in dual-stack mode, which needs IPv4 too.
    WantedDualStack,
}

fn overlap(
    existing: IpAddr,
    existing_v6only: Option<bool>,
    wanted: IpAddr,
    bindv6only: bool,
) -> Option<Overlap> {
    let (existing, wanted) = (existing.to_canonical(), wanted.to_canonical());
    let existing_dual = !bindv6only && existing_v6only != Some(true);
    match (existing, wanted) {
        _ if existing == wanted => Some(Overlap::Same),
        (IpAddr::V4(e), IpAddr::V4(_)) if e.is_unspecified() => Some(Overlap::ExistingWildcard),
        (IpAddr::V6(e), IpAddr::V6(_)) if e.is_unspecified() => Some(Overlap::ExistingWildcard),
        (IpAddr::V6(e), IpAddr::V4(_)) if e.is_unspecified() && existing_dual => {
            Some(Overlap::ExistingDualStack)
        }
        (IpAddr::V4(_), IpAddr::V4(w)) if w.is_unspecified() => Some(Overlap::WantedWildcard),
        (IpAddr::V6(_), IpAddr::V6(w)) if w.is_unspecified() => Some(Overlap::WantedWildcard),
        (IpAddr::V4(_), IpAddr::V6(w)) if w.is_unspecified() && !bindv6only => {
            Some(Overlap::WantedDualStack)
        }
        _ => None,
    }
}

fn explain(overlap: Overlap, wanted: &Target) -> String {
    let address = wanted.address;
    match overlap {
        Overlap::Same => String::new(),
        Overlap::ExistingWildcard => format!(", every address of its family, {address} included"),
        Overlap::ExistingDualStack => format!(
            ", an IPv6 wildcard in dual-stack mode (net.ipv6.bindv6only=0), which takes IPv4 \
             {address} too"
        ),
        Overlap::WantedWildcard => {
            format!(", and a wildcard bind to {address} needs the port free on every address")
        }
        Overlap::WantedDualStack => {
            ", and a dual-stack bind to [::] needs the IPv4 port free too".into()
        }
    }
}

/// Whether the socket holds the port the way a listener does: TCP LISTEN, any bound UDP.
fn is_listener(entry: &Entry) -> bool {
    match entry.socket.proto {
        Proto::Tcp => entry.socket.state == State::Listen,
        Proto::Udp => true,
    }
}

pub fn decide(
    target: &Target,
    entries: &[Entry],
    host: &HostFacts,
    managers: &HashMap<u32, Manager>,
    test: Option<&BindTest>,
) -> Verdict {
    let on_port: Vec<(&Entry, Overlap)> = entries
        .iter()
        .filter(|e| e.socket.proto == target.proto && e.socket.local.port() == target.port)
        .filter_map(|e| {
            overlap(
                e.socket.local.ip(),
                e.socket.v6only,
                target.address,
                host.bindv6only,
            )
            .map(|o| (e, o))
        })
        .collect();
    let listeners: Vec<&(&Entry, Overlap)> =
        on_port.iter().filter(|(e, _)| is_listener(e)).collect();
    let connections: Vec<&(&Entry, Overlap)> =
        on_port.iter().filter(|(e, _)| !is_listener(e)).collect();

    let mut notes = Vec::new();
    let (tables_can_bind, reason, message) = if target.port != 0
        && target.port < host.unprivileged_port_start
        && !host.may_bind_privileged
    {
        (
            false,
            Reason::PrivilegedPort,
            privileged_message(target, host),
        )
    } else if let Some((first, how)) = listeners.first() {
        let shared = listeners.len() > 1 || first.processes.len() > 1;
        let reason = if shared {
            Reason::SharedListener
        } else {
            Reason::Listener
        };
        (
            false,
            reason,
            listener_message(target, &listeners, *how, managers),
        )
    } else if !connections.is_empty() {
        let reuse_refused = test.is_some_and(|t| t.with_reuseaddr == BindOutcome::InUse);
        let message = connections_message(target, &connections, reuse_refused);
        (true, Reason::ConnectionsOnly, message)
    } else {
        (
            true,
            Reason::Free,
            format!("{target} is free: a new server can bind it now."),
        )
    };

    let mut verdict = Verdict {
        can_bind: tables_can_bind,
        reason,
        message,
        notes: Vec::new(),
    };
    if let Some(test) = test {
        check_against_test(&mut verdict, test, target, &mut notes);
    }
    notes.extend(ephemeral_note(target, entries, host));
    notes.extend(queue_notes(&listeners));
    verdict.notes = notes;
    verdict
}

/// The test bind is the truth; where it and the tables disagree, say both.
fn check_against_test(
    verdict: &mut Verdict,
    test: &BindTest,
    target: &Target,
    notes: &mut Vec<String>,
) {
    // Most servers set SO_REUSEADDR; that attempt decides.
    let bound = test.with_reuseaddr == BindOutcome::Bound;
    match (&test.with_reuseaddr, verdict.reason) {
        (BindOutcome::NotAvailable, _) => {
            verdict.reason = Reason::AddressNotAvailable;
            verdict.message = format!(
                "{} is not an address of this host: binding {target} fails with EADDRNOTAVAIL.",
                target.address
            );
        }
        (BindOutcome::PermissionDenied, reason) if reason != Reason::PrivilegedPort => {
            notes.push(format!(
                "The tables show nothing against binding, but a test bind was refused: {}.",
                test.with_reuseaddr.describe()
            ));
            verdict.reason = Reason::TestBindFailed;
        }
        (outcome, Reason::Free) if !bound => {
            notes.push(format!(
                "The socket tables show nothing in the way, but a test bind failed: {} \
                 (a socket this view cannot see, e.g. another network namespace's, may hold \
                 it).",
                outcome.describe()
            ));
            verdict.reason = Reason::TestBindFailed;
            verdict.message = format!("{target} cannot be bound now: {}.", outcome.describe());
        }
        (_, Reason::Listener | Reason::SharedListener) if bound => notes.push(
            "The tables show a listener in the way, yet a test bind succeeded: it may have just \
             closed."
                .into(),
        ),
        _ => {}
    }
    if verdict.reason == Reason::ConnectionsOnly && test.without_reuseaddr == BindOutcome::Bound {
        notes.push("A test bind without SO_REUSEADDR succeeded too.".into());
    }
    verdict.can_bind = bound;
}

fn privileged_message(target: &Target, host: &HostFacts) -> String {
    format!(
        "Port {port} is below net.ipv4.ip_unprivileged_port_start ({start}) and this user is \
         neither root nor holds CAP_NET_BIND_SERVICE, so binding {target} fails with EACCES. \
         Remedies: run the server with that capability (setcap cap_net_bind_service=+ep \
         /path/to/server, or AmbientCapabilities=CAP_NET_BIND_SERVICE in its systemd unit), \
         lower the sysctl (sysctl net.ipv4.ip_unprivileged_port_start={port}), or use a port of \
         {start} or above.",
        port = target.port,
        start = host.unprivileged_port_start,
    )
}

fn listener_message(
    target: &Target,
    listeners: &[&(&Entry, Overlap)],
    how: Overlap,
    managers: &HashMap<u32, Manager>,
) -> String {
    let (first, _) = listeners[0];
    let kind = match target.proto {
        Proto::Tcp => "listens",
        Proto::Udp => "is bound",
    };
    let holder = describe_holders(first);
    let mut message = format!(
        "{target} is taken: {holder} {kind} on {}{}.",
        first.socket.local,
        explain(how, target)
    );
    let pids: Vec<u32> = listeners
        .iter()
        .flat_map(|(e, _)| e.processes.iter().map(|p| p.pid))
        .collect();
    if listeners.len() > 1 {
        message.push_str(&format!(
            " {} sockets share the port (SO_REUSEPORT): a new server joins them only if it \
             sets SO_REUSEPORT too and runs as the same user{}.",
            listeners.len(),
            user_clause(first)
        ));
    } else if first.processes.len() > 1 {
        message.push_str(&format!(
            " One socket is held by {} processes (inherited, as pre-forked servers do: pids \
             {}): a new server joins them only with SO_REUSEPORT as the same user{}.",
            first.processes.len(),
            join(&pids),
            user_clause(first)
        ));
    }
    message.push(' ');
    message.push_str(&how_to_stop(&pids, first.owner_note, managers));
    message
}

fn describe_holders(entry: &Entry) -> String {
    match entry.processes.first() {
        Some(process) => {
            let user = process
                .user
                .as_deref()
                .map_or_else(String::new, |user| format!(", user {user}"));
            format!("{} (pid {}{user})", process.name, process.pid)
        }
        None => match entry.owner_note {
            Some(note) => format!("a socket whose owner is unknown {}", note.describe()),
            None => "a socket".into(),
        },
    }
}

fn user_clause(entry: &Entry) -> String {
    entry
        .user
        .as_deref()
        .map_or_else(String::new, |user| format!(" ({user})"))
}

fn how_to_stop(pids: &[u32], note: Option<OwnerNote>, managers: &HashMap<u32, Manager>) -> String {
    let Some(&pid) = pids.first() else {
        return match note {
            Some(OwnerNote::Hidden) => "Run as root to see which process holds it.".into(),
            _ => "No process in view holds it: its holder lives outside this PID namespace (a \
                  container's, or the host's), or just exited."
                .into(),
        };
    };
    match managers.get(&pid) {
        Some(Manager {
            unit: Some(unit), ..
        }) => format!("To free it: systemctl stop {unit}"),
        Some(Manager {
            container: Some(container),
            ..
        }) => {
            let short = container.id.get(..12).unwrap_or(&container.id);
            match container.runtime {
                "docker" => format!("To free it: docker stop {short}"),
                "podman" => format!("To free it: podman stop {short}"),
                runtime => format!("It runs in a {runtime} container ({short}): stop that."),
            }
        }
        _ => format!("To free it: stop pid {pid} (kill {pid})."),
    }
}

/// `reuse_refused`: a test bind failed even with SO_REUSEADDR, because the sockets holding the
/// port did not set it.
fn connections_message(
    target: &Target,
    connections: &[&(&Entry, Overlap)],
    reuse_refused: bool,
) -> String {
    let mut states: Vec<&str> = connections
        .iter()
        .map(|(e, _)| e.socket.state.as_str())
        .collect();
    states.sort_unstable();
    states.dedup();
    let longest_wait = connections
        .iter()
        .filter(|(e, _)| e.socket.state == State::TimeWait)
        .filter_map(|(e, _)| e.socket.timer)
        .max();
    let expiry = longest_wait.map_or_else(String::new, |wait| {
        format!(
            " (the last TIME_WAIT expires in {:.0}s)",
            wait.as_secs_f64().ceil()
        )
    });
    let consequence = if reuse_refused {
        "a test bind failed even with SO_REUSEADDR, as the sockets holding the port did not \
         set it: no server can bind until they are gone"
    } else {
        "a server that sets SO_REUSEADDR can bind now; one that does not gets EADDRINUSE until \
         they are gone"
    };
    let count = match connections.len() {
        1 => "1 connection still uses".to_string(),
        n => format!("{n} connections still use"),
    };
    format!(
        "No server holds {target}, but {count} the port ({}): {consequence}{expiry}.",
        states.join(", ")
    )
}

fn ephemeral_note(target: &Target, entries: &[Entry], host: &HostFacts) -> Option<String> {
    let range = host.ephemeral;
    if !range.contains(target.port) {
        return None;
    }
    let outgoing = entries
        .iter()
        .filter(|e| {
            e.socket.local.port() == target.port
                && e.direction == Some(crate::core::model::Direction::Outbound)
        })
        .count();
    let now = match outgoing {
        0 => "none holds it right now".to_string(),
        1 => "one outgoing connection holds it right now".to_string(),
        n => format!("{n} outgoing connections hold it right now"),
    };
    let reserve = if host.reserved.contains(target.port) {
        "It is reserved in net.ipv4.ip_local_reserved_ports, so outgoing connections won't take it."
            .to_string()
    } else {
        format!(
            "Reserve it with sysctl net.ipv4.ip_local_reserved_ports={}, or pick a port outside \
             the range.",
            target.port
        )
    };
    Some(format!(
        "Port {} lies in this host's ephemeral range {}-{} (net.ipv4.ip_local_port_range): \
         outgoing connections can take it before the service starts; {now}. {reserve}",
        target.port, range.first, range.last
    ))
}

/// A listener whose accept queue is full is up, yet clients hang.
fn queue_notes(listeners: &[&(&Entry, Overlap)]) -> Vec<String> {
    listeners
        .iter()
        .filter(|(e, _)| e.socket.proto == Proto::Tcp)
        .filter(|(e, _)| e.socket.tx_queue > 0 && e.socket.rx_queue >= e.socket.tx_queue)
        .map(|(e, _)| {
            format!(
                "The accept queue of {} is full ({} waiting, backlog {}): the service is up but \
                 not accepting, so clients hang.",
                e.socket.local, e.socket.rx_queue, e.socket.tx_queue
            )
        })
        .collect()
}

fn join(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Process, Socket};

    const HOST: HostFacts = HostFacts {
        bindv6only: false,
        unprivileged_port_start: 1024,
        may_bind_privileged: true,
        ephemeral: EphemeralRange::LINUX_DEFAULT,
        reserved: PortSpec::EMPTY,
    };

    fn entry(proto: Proto, local: &str, remote: Option<&str>, state: State, pids: &[u32]) -> Entry {
        let processes = pids
            .iter()
            .map(|&pid| Process::example(pid, "nginx", Some("www")))
            .collect();
        Entry {
            user: Some("www".into()),
            direction: remote.map(|_| crate::core::model::Direction::Inbound),
            ..Entry::example(Socket::example(proto, local, remote, state), processes)
        }
    }

    fn target(text: &str) -> Target {
        text.parse().expect("valid target")
    }

    fn decide_tables(target_text: &str, entries: &[Entry], host: &HostFacts) -> Verdict {
        decide(&target(target_text), entries, host, &HashMap::new(), None)
    }

    #[test]
    fn overlaps_follow_the_kernels_bind_rules() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        assert_eq!(
            overlap(ip("127.0.0.1"), None, ip("127.0.0.1"), false),
            Some(Overlap::Same)
        );
        assert_eq!(
            overlap(ip("0.0.0.0"), None, ip("127.0.0.1"), false),
            Some(Overlap::ExistingWildcard)
        );
        assert_eq!(
            overlap(ip("127.0.0.1"), None, ip("0.0.0.0"), false),
            Some(Overlap::WantedWildcard)
        );
        assert_eq!(
            overlap(ip("::"), None, ip("127.0.0.1"), false),
            Some(Overlap::ExistingDualStack)
        );
        assert_eq!(overlap(ip("::"), Some(true), ip("127.0.0.1"), false), None);
        assert_eq!(overlap(ip("::"), None, ip("127.0.0.1"), true), None);
        assert_eq!(
            overlap(ip("127.0.0.1"), None, ip("::"), false),
            Some(Overlap::WantedDualStack)
        );
        assert_eq!(overlap(ip("127.0.0.1"), None, ip("::"), true), None);
        assert_eq!(
            overlap(ip("::ffff:127.0.0.1"), None, ip("127.0.0.1"), false),
            Some(Overlap::Same)
        );
        assert_eq!(overlap(ip("127.0.0.2"), None, ip("127.0.0.1"), false), None);
        assert_eq!(overlap(ip("::1"), None, ip("127.0.0.1"), false), None);
    }

    #[test]
    fn free_port_can_be_bound() {
        let verdict = decide_tables("127.0.0.1:8080", &[], &HOST);
        assert!(verdict.can_bind);
        assert_eq!(verdict.reason, Reason::Free);
    }

    #[test]
    fn a_listener_on_another_address_does_not_block() {
        let other = entry(Proto::Tcp, "127.0.0.2:8080", None, State::Listen, &[1]);
        assert_eq!(
            decide_tables("127.0.0.1:8080", &[other], &HOST).reason,
            Reason::Free
        );
    }

    #[test]
    fn a_listener_blocks_and_is_named_with_its_unit() {
        let nginx = entry(Proto::Tcp, "0.0.0.0:80", None, State::Listen, &[42]);
        let managers = HashMap::from([(
            42,
            Manager {
                unit: Some("nginx.service".into()),
                container: None,
            },
        )]);
        let verdict = decide(&target("127.0.0.1:80"), &[nginx], &HOST, &managers, None);
        assert!(!verdict.can_bind);
        assert_eq!(verdict.reason, Reason::Listener);
        assert!(
            verdict
                .message
                .contains("nginx (pid 42, user www) listens on 0.0.0.0:80")
        );
        assert!(verdict.message.contains("every address of its family"));
        assert!(verdict.message.contains("systemctl stop nginx.service"));
    }

    #[test]
    fn connections_only_allow_a_reuseaddr_server() {
        let waiting = entry(
            Proto::Tcp,
            "127.0.0.1:80",
            Some("127.0.0.1:5000"),
            State::TimeWait,
            &[],
        );
        let verdict = decide_tables("127.0.0.1:80", &[waiting], &HOST);
        assert!(verdict.can_bind);
        assert_eq!(verdict.reason, Reason::ConnectionsOnly);
        assert!(verdict.message.contains("TIME_WAIT"));
    }

    #[test]
    fn privileged_port_comes_first() {
        let host = HostFacts {
            may_bind_privileged: false,
            ..HOST
        };
        let verdict = decide_tables("80", &[], &host);
        assert!(!verdict.can_bind);
        assert_eq!(verdict.reason, Reason::PrivilegedPort);
        assert!(decide_tables("1024", &[], &host).can_bind);
    }

    #[test]
    fn udp_sockets_block_udp_only() {
        let dns = entry(Proto::Udp, "127.0.0.1:53", None, State::Unconn, &[7]);
        assert_eq!(
            decide_tables("127.0.0.1:53/udp", std::slice::from_ref(&dns), &HOST).reason,
            Reason::Listener
        );
        assert_eq!(
            decide_tables("127.0.0.1:53", &[dns], &HOST).reason,
            Reason::Free
        );
    }

    #[test]
    fn ephemeral_ports_get_a_note_and_reserved_ones_say_so() {
        let verdict = decide_tables("127.0.0.1:40000", &[], &HOST);
        assert!(
            verdict
                .notes
                .iter()
                .any(|n| n.contains("ephemeral range 32768-60999"))
        );
        let reserved = HostFacts {
            reserved: PortSpec::from(40000),
            ..HOST
        };
        let verdict = decide_tables("127.0.0.1:40000", &[], &reserved);
        assert!(verdict.notes.iter().any(|n| n.contains("is reserved")));
        assert!(decide_tables("127.0.0.1:8080", &[], &HOST).notes.is_empty());
    }

    #[test]
    fn a_full_accept_queue_is_flagged() {
        let mut busy = entry(Proto::Tcp, "127.0.0.1:8080", None, State::Listen, &[3]);
        busy.socket.rx_queue = 129;
        busy.socket.tx_queue = 128;
        let verdict = decide_tables("127.0.0.1:8080", &[busy], &HOST);
        assert!(
            verdict
                .notes
                .iter()
                .any(|n| n.contains("accept queue") && n.contains("full"))
        );
    }

    #[test]
    fn the_test_bind_overrides_the_tables_and_says_where_they_disagree() {
        let refused = BindTest {
            address: "127.0.0.1:8080".into(),
            without_reuseaddr: BindOutcome::InUse,
            with_reuseaddr: BindOutcome::InUse,
        };
        let verdict = decide(
            &target("127.0.0.1:8080"),
            &[],
            &HOST,
            &HashMap::new(),
            Some(&refused),
        );
        assert!(!verdict.can_bind);
        assert_eq!(verdict.reason, Reason::TestBindFailed);
        assert!(
            verdict
                .notes
                .iter()
                .any(|n| n.contains("show nothing in the way"))
        );
        let foreign = BindTest {
            with_reuseaddr: BindOutcome::NotAvailable,
            ..refused
        };
        let verdict = decide(
            &target("192.0.2.1:8080"),
            &[],
            &HOST,
            &HashMap::new(),
            Some(&foreign),
        );
        assert_eq!(verdict.reason, Reason::AddressNotAvailable);
    }
}
