//! Could a new server bind the asked address and port now, and if not, why: decided from the
//! socket tables and the host's settings, then checked against a real test bind. Pure.

use crate::core::firewall::published;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::core::cgroup::Manager;
use crate::core::model::{Entry, EphemeralRange, OwnerNote, Process, Proto, State, Timer};
use crate::core::query::PortSpec;
use crate::core::stop::{Stop, holders, stop_for};
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
    /// Not tried: a UDP bind with SO_REUSEADDR beside a live UDP socket could share its port
    /// and take its datagrams.
    Skipped,
    Failed(String),
}

impl BindOutcome {
    pub fn describe(&self) -> String {
        match self {
            BindOutcome::Bound => "bound".into(),
            BindOutcome::InUse => "address already in use (EADDRINUSE)".into(),
            BindOutcome::PermissionDenied => "permission denied (EACCES)".into(),
            BindOutcome::NotAvailable => "address not available (EADDRNOTAVAIL)".into(),
            BindOutcome::Skipped => {
                "not tried: it could share the port with a live server and take its datagrams"
                    .into()
            }
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
    /// Settings that could not be read as they should be, and what stands in for them.
    pub warnings: Vec<String>,
    /// Whether the kernel forwards IPv4 and IPv6 packets (`net.ipv4.ip_forward`,
    /// `net.ipv6.conf.all.forwarding`): published ports need it. `None` where unknown.
    pub forwarding: [Option<bool>; 2],
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

/// Whether the socket holds the port the way a listener does: TCP LISTEN, any bound UDP.
fn is_listener(entry: &Entry) -> bool {
    match entry.socket.proto {
        Proto::Tcp => entry.socket.state == State::Listen,
        Proto::Udp => true,
    }
}

/// Every socket on the asked protocol and port whose address meets the asked one.
fn overlapping<'a>(
    target: &Target,
    entries: &'a [Entry],
    host: &HostFacts,
) -> Vec<(&'a Entry, Overlap)> {
    entries
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
        .collect()
}

/// Whether the test bind with SO_REUSEADDR may be made, given how the one without it ended.
/// For TCP always: a socket that is bound and never listens takes nothing from anyone. For UDP
/// only when nothing shares the address: a UDP socket bound with SO_REUSEADDR beside one that
/// set it too shares its port, and for that instant takes datagrams meant for the live server.
/// So not where the tables show a UDP socket on an overlapping address, nor when the bind
/// without SO_REUSEADDR found the address in use (a socket the tables did not show). The bind
/// without SO_REUSEADDR is always safe: it succeeds only when nothing shares the address.
pub fn may_test_with_reuseaddr(
    target: &Target,
    entries: &[Entry],
    host: &HostFacts,
    without_reuseaddr: &BindOutcome,
) -> bool {
    match target.proto {
        Proto::Tcp => true,
        Proto::Udp => {
            *without_reuseaddr != BindOutcome::InUse
                && overlapping(target, entries, host).is_empty()
        }
    }
}

pub fn decide(
    target: &Target,
    entries: &[Entry],
    host: &HostFacts,
    managers: &HashMap<u32, Manager>,
    test: Option<&BindTest>,
) -> Verdict {
    let on_port = overlapping(target, entries, host);
    let (listeners, connections): (Vec<_>, Vec<_>) =
        on_port.into_iter().partition(|(e, _)| is_listener(e));
    let privileged =
        target.port != 0 && target.port < host.unprivileged_port_start && !host.may_bind_privileged;

    let mut notes = Vec::new();
    let (tables_can_bind, reason, message) = if !listeners.is_empty() {
        let shared = !reuse_groups(&listeners).is_empty()
            || listeners.iter().any(|(e, _)| e.processes.len() > 1);
        let reason = if shared {
            Reason::SharedListener
        } else {
            Reason::Listener
        };
        let message = listener_message(target, &listeners, managers, privileged.then_some(host));
        (false, reason, message)
    } else if privileged {
        (
            false,
            Reason::PrivilegedPort,
            privileged_message(target, host),
        )
    } else if !connections.is_empty() {
        let reuse_refused = test.is_some_and(|t| t.with_reuseaddr == BindOutcome::InUse);
        let message = connections_message(target, entries, &connections, reuse_refused);
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
        check_against_test(&mut verdict, test, target, privileged, &mut notes);
    }
    notes.extend(ephemeral_note(target, entries, host));
    notes.extend(queue_notes(&listeners));
    verdict.notes = notes;
    verdict
}

/// The test bind is the truth; where it and the tables disagree, say both. For TCP the bind with
/// SO_REUSEADDR decides, as most servers set it. For UDP "can bind" means a server that does not
/// set SO_REUSEADDR: with it, a UDP server may share the port with a live one that set it too,
/// and then each unicast datagram goes to only one of them, which is not a server that works.
fn check_against_test(
    verdict: &mut Verdict,
    test: &BindTest,
    target: &Target,
    privileged: bool,
    notes: &mut Vec<String>,
) {
    let decisive = match target.proto {
        Proto::Tcp => &test.with_reuseaddr,
        Proto::Udp => &test.without_reuseaddr,
    };
    let bound = *decisive == BindOutcome::Bound;
    let not_available =
        [&test.without_reuseaddr, &test.with_reuseaddr].contains(&&BindOutcome::NotAvailable);
    match (decisive, verdict.reason) {
        _ if not_available => {
            verdict.reason = Reason::AddressNotAvailable;
            verdict.message = format!(
                "{} is not an address of this host: binding {target} fails with EADDRNOTAVAIL.",
                target.address
            );
        }
        (BindOutcome::PermissionDenied, _) if privileged => {}
        (BindOutcome::PermissionDenied, _) => {
            notes.push(format!(
                "The tables show nothing against binding, but a test bind was refused: {}.",
                decisive.describe()
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

/// `1 socket`, `2 sockets`.
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `pid 7`, `pids 7, 8`.
fn pids_text(pids: &[u32]) -> String {
    match pids {
        [pid] => format!("pid {pid}"),
        _ => format!("pids {}", join(pids)),
    }
}

fn name_pid(process: &Process) -> String {
    let user = process
        .user
        .as_deref()
        .map_or_else(String::new, |user| format!(", user {user}"));
    format!("{} (pid {}{user})", process.name, process.pid)
}

/// Who holds the socket, top-most first: `nginx (pid 900, user root), with pids 901, 902
/// forked from it`.
fn describe_holders(entry: &Entry, sockets: usize) -> String {
    if entry.processes.is_empty() {
        let user = entry
            .user
            .as_deref()
            .map(str::to_string)
            .or_else(|| entry.socket.uid.map(|uid| format!("uid {uid}")))
            .map_or_else(String::new, |user| format!(" created by {user}"));
        return match entry.owner_note {
            Some(OwnerNote::Hidden) => {
                format!("a socket{user} whose owner is hidden from this user")
            }
            Some(OwnerNote::HiddenFromRoot) => {
                format!("a socket{user} whose owner the kernel hides even from root")
            }
            Some(note) => format!("a socket whose owner is unknown {}", note.describe()),
            None => "a socket".into(),
        };
    }
    let holders = holders(&entry.processes);
    let tops: Vec<String> = holders.tops.iter().map(|p| name_pid(p)).collect();
    let mut text = join_and(&tops);
    if !holders.rest.is_empty() {
        let rest: Vec<u32> = holders.rest.iter().map(|p| p.pid).collect();
        let them = if holders.tops.len() == 1 {
            "it"
        } else {
            "them"
        };
        if holders.forked {
            text.push_str(&format!(", with {} forked from {them},", pids_text(&rest)));
        } else {
            let it = if sockets == 1 { "it" } else { "them" };
            text.push_str(&format!(", with {} holding {it} too,", pids_text(&rest)));
        }
    }
    text
}

/// How a listener already on the port covers the asked address, said after its address.
fn explain_existing(how: Overlap, v6only: Option<bool>, wanted: &Target) -> String {
    let address = wanted.address;
    match how {
        Overlap::ExistingWildcard => format!(", every address of its family, {address} included"),
        Overlap::ExistingDualStack if v6only.is_none() => format!(
            ", an IPv6 wildcard, which takes IPv4 {address} too unless it set IPV6_V6ONLY \
             (these tables do not say; net.ipv6.bindv6only=0)"
        ),
        Overlap::ExistingDualStack => format!(
            ", an IPv6 wildcard in dual-stack mode (net.ipv6.bindv6only=0), which takes IPv4 \
             {address} too"
        ),
        _ => String::new(),
    }
}

/// Listeners on the same address and port, protocol and namespace: a group that shares the
/// port through SO_REUSEPORT (UDP: or SO_REUSEADDR). Their address and how many.
fn reuse_groups(listeners: &[(&Entry, Overlap)]) -> Vec<(SocketAddr, usize, Overlap)> {
    let mut groups: Vec<(SocketAddr, u64, usize, Overlap)> = Vec::new();
    for (entry, how) in listeners {
        let local = canonical(entry.socket.local);
        match groups
            .iter_mut()
            .find(|(a, ns, _, _)| *a == local && *ns == entry.socket.netns)
        {
            Some(group) => group.2 += 1,
            None => groups.push((local, entry.socket.netns, 1, *how)),
        }
    }
    groups
        .into_iter()
        .filter(|(_, _, n, _)| *n > 1)
        .map(|(a, _, n, how)| (a, n, how))
        .collect()
}

fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// A listener in the way, and how its address meets the asked one.
type InTheWay<'a> = (&'a Entry, Overlap);

/// Listeners held by the same processes are said together (nginx's `0.0.0.0:80` and
/// `[::]:80`); one whose holders are not known is said alone.
fn clauses<'a, 'b>(listeners: &'b [(&'a Entry, Overlap)]) -> Vec<Vec<&'b (&'a Entry, Overlap)>> {
    let mut clauses: Vec<(Vec<u32>, Vec<&InTheWay>)> = Vec::new();
    for listener in listeners {
        let mut pids: Vec<u32> = listener.0.processes.iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        match clauses
            .iter_mut()
            .find(|(key, _)| !pids.is_empty() && *key == pids)
        {
            Some((_, members)) => members.push(listener),
            None => clauses.push((pids, vec![listener])),
        }
    }
    clauses.into_iter().map(|(_, members)| members).collect()
}

/// The addresses of a clause, each once: `0.0.0.0:80 and [::]:80, an IPv6 wildcard ...`.
fn clause_addresses(members: &[&(&Entry, Overlap)], target: &Target, explain: bool) -> String {
    let mut seen: Vec<(SocketAddr, usize, String)> = Vec::new();
    for (entry, how) in members {
        let local = entry.socket.local;
        match seen.iter_mut().find(|(a, _, _)| *a == local) {
            Some(one) => one.1 += 1,
            None => {
                let why = if explain {
                    explain_existing(*how, entry.socket.v6only, target)
                } else {
                    String::new()
                };
                seen.push((local, 1, why));
            }
        }
    }
    let items: Vec<String> = seen
        .into_iter()
        .map(|(address, n, why)| match n {
            1 => format!("{address}{why}"),
            n => format!("{address} ({n} sockets){why}"),
        })
        .collect();
    join_and(&items)
}

impl Stop {
    /// The action, as the end of `To free it: ...`.
    fn action(&self) -> String {
        match self {
            Stop::Unit {
                unit,
                socket: Some(socket),
            } => format!("systemctl stop {socket} {unit}"),
            Stop::Unit { unit, socket: None } => format!("systemctl stop {unit}"),
            Stop::Container(runtime @ ("docker" | "podman"), short) => {
                format!("{runtime} stop {short}")
            }
            Stop::Container(runtime, short) => format!("stop its {runtime} container ({short})"),
            Stop::Published {
                placeholder, port, ..
            } => {
                let why = if placeholder.holder == "dockerd" {
                    "dockerd holds the port for a container it publishes; stopping dockerd \
                     would stop every container"
                        .to_string()
                } else {
                    format!(
                        "{} only holds the port for a container it publishes; killing it would \
                         not stop the server",
                        placeholder.holder
                    )
                };
                let name = placeholder
                    .container_name
                    .as_deref()
                    .or(placeholder.container_id.as_deref());
                match published::stop_command(placeholder.runtime, name, None) {
                    Some(stop) => format!("{stop} ({why})"),
                    None => format!(
                        "stop the {runtime} container that publishes it, found with `{runtime} \
                         ps --filter publish={port}` ({why})",
                        runtime = placeholder.runtime
                    ),
                }
            }
            Stop::Kill { tops, rest, forked } => {
                let kill = tops
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                let stop = format!("stop {} (kill {kill})", pids_text(tops));
                match (rest.as_slice(), forked) {
                    ([], _) => stop,
                    (rest, true) => format!(
                        "{stop}, which {} {} forked from; the port is free once {} exited too \
                         (a server's master stops its workers)",
                        pids_text(rest),
                        if rest.len() == 1 { "was" } else { "were" },
                        if rest.len() == 1 {
                            "it has"
                        } else {
                            "they have"
                        },
                    ),
                    (rest, false) => format!(
                        "{stop}, the first of its holders to start and likely the parent of {}; \
                         the port is free once {} exited too",
                        pids_text(rest),
                        if rest.len() == 1 {
                            "it has"
                        } else {
                            "they have"
                        },
                    ),
                }
            }
            Stop::Init { name } if name == "systemd" => "stop the socket unit systemd (pid 1) \
                                                         holds it for (`systemctl list-sockets` \
                                                         names it)"
                .into(),
            Stop::Init { name } => {
                format!("stop what runs {name} (pid 1), this PID namespace's init")
            }
            Stop::Hidden => "run as root to see which process holds it".into(),
            Stop::HiddenFromRoot => {
                "its holder is a process whose descriptors even root may not read".into()
            }
            Stop::Unseen => "no process in view holds it".into(),
        }
    }

    /// The whole advice when this is the only thing to stop.
    fn sentence(&self) -> String {
        match self {
            Stop::Unit { .. } | Stop::Container(..) => format!("To free it: {}", self.action()),
            Stop::Init { .. } => format!("To free it: {}.", self.action()),
            Stop::Published { .. } => format!("To free it: {}.", self.action()),
            Stop::Kill { .. } => format!("To free it: {}.", self.action()),
            Stop::Hidden => "Run as root to see which process holds it.".into(),
            Stop::HiddenFromRoot => "Its holder is most likely a process whose /proc/PID/fd even \
                                     root may not read (the warning names it): stop that one."
                .into(),
            Stop::Unseen => "No process in view holds it: its holder lives outside this PID \
                             namespace (a container's, or the host's), or just exited."
                .into(),
        }
    }
}

/// Who a clause's holders are, shortly: `unbound (pid 650)`.
fn who_short(entry: &Entry) -> String {
    if entry.processes.is_empty() {
        return match entry.owner_note {
            Some(OwnerNote::Hidden) => "a process hidden from this user".into(),
            Some(OwnerNote::HiddenFromRoot) => "a process hidden even from root".into(),
            _ => "a process out of view".into(),
        };
    }
    let tops: Vec<String> = holders(&entry.processes)
        .tops
        .iter()
        .map(|p| format!("{} (pid {})", p.name, p.pid))
        .collect();
    join_and(&tops)
}

/// What to stop: one action per clause, the same action said once; with the listeners each
/// covers and the first of them.
fn stops_of<'a, 'b>(
    clauses: &[Vec<&'b InTheWay<'a>>],
    managers: &HashMap<u32, Manager>,
) -> Vec<(Stop, Vec<&'b InTheWay<'a>>, &'a Entry)> {
    let mut stops: Vec<(Stop, Vec<&InTheWay>, &Entry)> = Vec::new();
    for members in clauses {
        let stop = stop_for(members[0].0, managers);
        match stops
            .iter_mut()
            .find(|(s, _, _)| *s == stop && stop != Stop::Hidden)
        {
            Some((_, all, _)) => all.extend(members.iter().copied()),
            None => stops.push((stop, members.clone(), members[0].0)),
        }
    }
    stops
}

/// What ends every listener's hold on the target, in the order the advice names them: the
/// stops `who` advises are the ones `who --stop` carries out. Empty when no listener holds it.
pub fn stops(
    target: &Target,
    entries: &[Entry],
    host: &HostFacts,
    managers: &HashMap<u32, Manager>,
) -> Vec<Stop> {
    let mut listeners: Vec<InTheWay> = overlapping(target, entries, host)
        .into_iter()
        .filter(|(entry, _)| is_listener(entry))
        .collect();
    listeners.sort_by_key(|(_, how)| *how != Overlap::Same);
    let clauses = clauses(&listeners);
    stops_of(&clauses, managers)
        .into_iter()
        .map(|(stop, _, _)| stop)
        .collect()
}

fn listener_message(
    target: &Target,
    listeners: &[(&Entry, Overlap)],
    managers: &HashMap<u32, Manager>,
    privileged: Option<&HostFacts>,
) -> String {
    let kind = match target.proto {
        Proto::Tcp => "listens",
        Proto::Udp => "is bound",
    };
    // Those on the asked address itself first.
    let mut ordered: Vec<(&Entry, Overlap)> = listeners.to_vec();
    ordered.sort_by_key(|(_, how)| *how != Overlap::Same);
    let clauses = clauses(&ordered);
    let said: Vec<String> = clauses
        .iter()
        .map(|members| {
            format!(
                "{} {kind} on {}",
                describe_holders(members[0].0, members.len()),
                clause_addresses(members, target, true)
            )
        })
        .collect();
    let mut message = format!("{target} is taken: {}.", said.join("; "));
    if ordered
        .iter()
        .any(|(_, how)| *how == Overlap::WantedWildcard)
    {
        message.push_str(&format!(
            " A wildcard bind to {} needs the port free on every address.",
            target.address
        ));
    } else if ordered
        .iter()
        .any(|(_, how)| *how == Overlap::WantedDualStack)
    {
        message.push_str(" A dual-stack bind to [::] needs the IPv4 port free too.");
    }

    let addresses: HashSet<SocketAddr> = ordered
        .iter()
        .map(|(e, _)| canonical(e.socket.local))
        .collect();
    let user = user_clause(ordered[0].0);
    for (address, n, how) in reuse_groups(&ordered) {
        let joinable = how == Overlap::Same && addresses.len() == 1;
        let sentence = match (target.proto, joinable) {
            (Proto::Tcp, true) => format!(
                " The {n} sockets on {address} share it through SO_REUSEPORT: a new server \
                 joins them only if it sets SO_REUSEPORT too and runs as the same user{user}."
            ),
            (Proto::Tcp, false) => {
                format!(" The {n} sockets on {address} share it through SO_REUSEPORT.")
            }
            (Proto::Udp, true) => format!(
                " The {n} sockets on {address} share it through SO_REUSEPORT or SO_REUSEADDR \
                 (the tables do not say which): a new server joins them only with the same \
                 option (SO_REUSEPORT as the same user{user}), and each unicast datagram then \
                 goes to only one of them."
            ),
            (Proto::Udp, false) => format!(
                " The {n} sockets on {address} share it through SO_REUSEPORT or SO_REUSEADDR \
                 (the tables do not say which)."
            ),
        };
        message.push_str(&sentence);
    }
    if target.proto == Proto::Udp {
        let it = if ordered.len() == 1 {
            "that socket"
        } else {
            "each of those sockets"
        };
        message.push_str(&format!(
            " A UDP server that sets SO_REUSEADDR could still bind if {it} set SO_REUSEADDR too \
             (the tables do not say), but each unicast datagram would then go to only one of \
             them."
        ));
    }
    if let Some(host) = privileged {
        message.push_str(&format!(
            " Port {port} is also below net.ipv4.ip_unprivileged_port_start ({start}) and this \
             user is neither root nor holds CAP_NET_BIND_SERVICE; even with that capability, or \
             with the sysctl lowered, no server could bind {target} until {what}.",
            port = target.port,
            start = host.unprivileged_port_start,
            what = if clauses.len() == 1 && ordered.len() == 1 {
                "that socket is closed"
            } else {
                "those sockets are closed"
            },
        ));
    }

    let stops = stops_of(&clauses, managers);
    message.push(' ');
    match stops.as_slice() {
        [(stop, _, _)] => message.push_str(&stop.sentence()),
        _ => {
            let actions: Vec<String> = stops
                .iter()
                .map(|(stop, members, _)| {
                    format!(
                        "for {}, {}",
                        clause_addresses(members, target, false),
                        stop.action()
                    )
                })
                .collect();
            message.push_str(&format!(
                "To free it, stop each of them: {}.",
                actions.join("; ")
            ));
            if let [(_, _, first), (_, members, second)] = stops.as_slice() {
                message.push_str(&format!(
                    " Stopping {} alone would not free {target}: {} would still be held by {}.",
                    who_short(first),
                    clause_addresses(members, target, false),
                    who_short(second)
                ));
            } else {
                message.push_str(&format!(
                    " Stopping any one of them alone would not free {target}."
                ));
            }
        }
    }
    if let Some(host) = privileged {
        message.push_str(&format!(
            " Once the port is free, binding it also needs CAP_NET_BIND_SERVICE (setcap \
             cap_net_bind_service=+ep /path/to/server, or \
             AmbientCapabilities=CAP_NET_BIND_SERVICE in its systemd unit), a lower \
             net.ipv4.ip_unprivileged_port_start, or a port of {} or above.",
            host.unprivileged_port_start
        ));
    }
    message
}

fn user_clause(entry: &Entry) -> String {
    entry
        .user
        .as_deref()
        .map_or_else(String::new, |user| format!(" ({user})"))
}

/// `reuse_refused`: a test bind failed even with SO_REUSEADDR, because the sockets holding the
/// port did not set it. `connections` are those on an address that meets the asked one; the
/// others on the port (another address, another family) are counted apart, so the sentence and
/// the report's count of every socket on the port add up.
fn connections_message(
    target: &Target,
    entries: &[Entry],
    connections: &[(&Entry, Overlap)],
    reuse_refused: bool,
) -> String {
    let mut states: std::collections::BTreeMap<&str, usize> = Default::default();
    for (e, _) in connections {
        *states.entry(e.socket.state.as_str()).or_insert(0) += 1;
    }
    let states: Vec<String> = states
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    let longest_wait = connections
        .iter()
        .filter(|(e, _)| e.socket.state == State::TimeWait)
        .filter_map(|(e, _)| e.socket.timer.map(Timer::left))
        .max();
    let expiry = longest_wait.map_or_else(String::new, |wait| {
        format!(
            " (the last TIME_WAIT expires in {:.0}s)",
            wait.as_secs_f64().ceil()
        )
    });
    let them = if connections.len() == 1 {
        "it is"
    } else {
        "they are"
    };
    let consequence = if reuse_refused {
        format!(
            "a test bind failed even with SO_REUSEADDR, as the sockets holding the port did not \
             set it: no server can bind until {} gone",
            if connections.len() == 1 {
                "it is"
            } else {
                "they are"
            }
        )
    } else {
        format!(
            "a server that sets SO_REUSEADDR can bind now; one that does not gets EADDRINUSE \
             until {them} gone"
        )
    };
    let addresses = address_list(connections.iter().map(|(e, _)| e.socket.local));
    let uses = if connections.len() == 1 {
        "uses"
    } else {
        "use"
    };
    let others: Vec<SocketAddr> = entries
        .iter()
        .filter(|e| e.socket.proto == target.proto && e.socket.local.port() == target.port)
        .filter(|e| !is_listener(e))
        .filter(|e| !connections.iter().any(|(c, _)| std::ptr::eq(*c, *e)))
        .map(|e| e.socket.local)
        .collect();
    let others = match others.len() {
        0 => String::new(),
        1 => format!(
            " The other connection on port {}, on {}, is not in the way of {}.",
            target.port, others[0], target.address
        ),
        n => format!(
            " The {n} other connections on port {}, on {}, are not in the way of {}.",
            target.port,
            address_list(others.iter().copied()),
            target.address
        ),
    };
    format!(
        "No server holds {target}, but {} on {addresses} still {uses} the port ({}): \
         {consequence}{expiry}.{others}",
        count(connections.len(), "connection"),
        states.join(", ")
    )
}

/// Distinct local addresses, at most three, then how many more.
fn address_list(addresses: impl Iterator<Item = SocketAddr>) -> String {
    let mut distinct: Vec<SocketAddr> = Vec::new();
    for address in addresses {
        if !distinct.contains(&address) {
            distinct.push(address);
        }
    }
    let mut shown: Vec<String> = distinct.iter().take(3).map(ToString::to_string).collect();
    if distinct.len() > 3 {
        shown.push(match distinct.len() - 3 {
            1 => "1 more address".to_string(),
            n => format!("{n} more addresses"),
        });
    }
    join_and(&shown)
}

fn ephemeral_note(target: &Target, entries: &[Entry], host: &HostFacts) -> Option<String> {
    let range = host.ephemeral;
    if !range.contains(target.port) {
        return None;
    }
    // `who` reads its own port's sockets only, so the listener a client talks to may be out of
    // view and its direction unknown: such a connection may be outgoing, and is counted.
    let (outgoing, unknown) = entries
        .iter()
        .filter(|e| e.socket.local.port() == target.port && !e.socket.state.is_listening())
        .fold((0, 0), |(out, unknown), e| match e.direction {
            Some(crate::core::model::Direction::Outbound) => (out + 1, unknown),
            None => (out, unknown + 1),
            Some(crate::core::model::Direction::Inbound) => (out, unknown),
        });
    let now = match (outgoing, unknown) {
        (0, 0) => "none holds it right now".to_string(),
        (1, 0) => "one outgoing connection holds it right now".to_string(),
        (n, 0) => format!("{n} outgoing connections hold it right now"),
        (0, 1) => "one connection of unknown direction holds it right now".to_string(),
        (0, n) => format!("{n} connections of unknown direction hold it right now"),
        (n, m) => format!(
            "{} and {} of unknown direction hold it right now",
            crate::core::text::count(n, "outgoing connection"),
            m
        ),
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
fn queue_notes(listeners: &[(&Entry, Overlap)]) -> Vec<String> {
    listeners
        .iter()
        .filter(|(e, _)| e.socket.proto == Proto::Tcp)
        .filter_map(|(e, _)| match (e.socket.rx_queue, e.socket.tx_queue) {
            (Some(waiting), Some(backlog)) if backlog > 0 && waiting >= backlog => {
                Some((e, waiting, backlog))
            }
            _ => None,
        })
        .map(|(e, waiting, backlog)| {
            format!(
                "The accept queue of {} is full ({waiting} waiting, backlog {backlog}): the \
                 service is up but not accepting, so clients hang.",
                e.socket.local
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
    use std::sync::Arc;

    const HOST: HostFacts = HostFacts {
        bindv6only: false,
        unprivileged_port_start: 1024,
        may_bind_privileged: true,
        ephemeral: EphemeralRange::LINUX_DEFAULT,
        reserved: PortSpec::EMPTY,
        warnings: Vec::new(),
        forwarding: [None, None],
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
        busy.socket.rx_queue = Some(129);
        busy.socket.tx_queue = Some(128);
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

    fn process(pid: u32, name: &str, ppid: Option<u32>, started: u64) -> Arc<Process> {
        Arc::new(Process {
            ppid,
            started: Some(started),
            ..(*Process::example(pid, name, Some("root"))).clone()
        })
    }

    fn held_by(proto: Proto, local: &str, processes: Vec<Arc<Process>>) -> Entry {
        let state = match proto {
            Proto::Tcp => State::Listen,
            Proto::Udp => State::Unconn,
        };
        Entry::example(Socket::example(proto, local, None, state), processes)
    }

    #[test]
    fn a_port_a_runtime_holds_for_a_container_is_freed_by_stopping_the_container() {
        let placeholder = |name: &str, cmdline: &str| {
            Arc::new(Process {
                pid: 5594,
                name: name.into(),
                user: Some(Arc::from("root")),
                cmdline: cmdline.into(),
                started: None,
                ppid: None,
            })
        };
        let conmon = placeholder(
            "conmon",
            "/usr/bin/conmon --api-version 1 -c 2b2536aa99 -u 2b2536aa99 -r /usr/bin/runc -n web",
        );
        let entries = [held_by(Proto::Tcp, "0.0.0.0:8080", vec![conmon])];
        let verdict = decide_tables("8080", &entries, &HOST);
        assert!(!verdict.can_bind);
        assert!(
            verdict.message.ends_with(
                "To free it: podman stop web (conmon only holds the port for a container it \
                 publishes; killing it would not stop the server)."
            ),
            "{}",
            verdict.message
        );
        assert!(
            !verdict.message.contains("kill 5594"),
            "{}",
            verdict.message
        );
        // docker-proxy names no container: the advice says how to find it.
        let proxy = placeholder(
            "docker-proxy",
            "/usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip \
             172.17.0.2 -container-port 80",
        );
        let entries = [held_by(Proto::Tcp, "0.0.0.0:8080", vec![proxy])];
        let verdict = decide_tables("8080", &entries, &HOST);
        assert!(
            verdict
                .message
                .contains("stop the docker container that publishes it, found with `docker ps --filter publish=8080`"),
            "{}",
            verdict.message
        );
    }

    #[test]
    fn listeners_on_different_addresses_are_not_a_reuseport_group_and_all_are_named() {
        let unbound = held_by(
            Proto::Udp,
            "127.0.0.1:53",
            vec![process(310, "unbound", Some(1), 10)],
        );
        let dnsmasq = held_by(
            Proto::Udp,
            "10.77.0.1:53",
            vec![process(320, "dnsmasq", Some(1), 20)],
        );
        let managers = HashMap::from([(
            310,
            Manager {
                unit: Some("unbound.service".into()),
                container: None,
            },
        )]);
        let verdict = decide(
            &target("0.0.0.0:53/udp"),
            &[unbound, dnsmasq],
            &HOST,
            &managers,
            None,
        );
        assert!(!verdict.can_bind);
        assert_eq!(verdict.reason, Reason::Listener);
        let text = &verdict.message;
        assert!(!text.contains("SO_REUSEPORT"), "{text}");
        assert!(!text.contains("joins them"), "{text}");
        assert!(
            text.contains("unbound (pid 310, user root) is bound on 127.0.0.1:53"),
            "{text}"
        );
        assert!(
            text.contains("dnsmasq (pid 320, user root) is bound on 10.77.0.1:53"),
            "{text}"
        );
        assert!(text.contains("systemctl stop unbound.service"), "{text}");
        assert!(text.contains("kill 320"), "{text}");
        assert!(
            text.contains(
                "Stopping unbound (pid 310) alone would not free 0.0.0.0:53/udp: 10.77.0.1:53 \
                 would still be held by dnsmasq (pid 320)"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_v6only_wildcard_beside_the_ipv4_one_is_no_group() {
        let master = process(900, "nginx", Some(1), 10);
        let mut v6 = held_by(Proto::Tcp, "[::]:80", vec![master.clone()]);
        v6.socket.v6only = Some(true);
        let v4 = held_by(Proto::Tcp, "0.0.0.0:80", vec![master]);
        let verdict = decide_tables("0.0.0.0:80", &[v4.clone(), v6.clone()], &HOST);
        assert_eq!(verdict.reason, Reason::Listener);
        assert!(
            !verdict.message.contains("SO_REUSEPORT"),
            "{}",
            verdict.message
        );
        assert!(
            verdict.message.contains("listens on 0.0.0.0:80."),
            "{}",
            verdict.message
        );
        // Only two sockets on one address form a group, and only there is joining advised.
        let mut twin = v4.clone();
        twin.socket.inode = 2;
        let verdict = decide_tables("0.0.0.0:80", &[v4.clone(), twin.clone(), v6], &HOST);
        assert_eq!(verdict.reason, Reason::SharedListener);
        assert!(
            verdict.message.contains(
                "The 2 sockets on 0.0.0.0:80 share it through SO_REUSEPORT: a new server joins them"
            ),
            "{}",
            verdict.message
        );
        let other = held_by(
            Proto::Tcp,
            "127.0.0.1:80",
            vec![process(5, "x", Some(1), 1)],
        );
        let verdict = decide_tables("0.0.0.0:80", &[v4, twin, other], &HOST);
        assert!(
            verdict.message.contains("share it through SO_REUSEPORT."),
            "{}",
            verdict.message
        );
        assert!(
            !verdict.message.contains("joins them"),
            "{}",
            verdict.message
        );
    }

    #[test]
    fn a_socket_activated_service_is_stopped_with_its_socket_never_by_killing_pid_1() {
        let holders = vec![
            process(1, "systemd", None, 1),
            process(800, "cupsd", Some(1), 20),
        ];
        let cups = held_by(Proto::Tcp, "127.0.0.1:631", holders);
        let managers = HashMap::from([(
            800,
            Manager {
                unit: Some("cups.service".into()),
                container: None,
            },
        )]);
        let entries = [cups];
        let verdict = decide(&target("127.0.0.1:631"), &entries, &HOST, &managers, None);
        let text = &verdict.message;
        assert!(
            text.ends_with("To free it: systemctl stop cups.socket cups.service"),
            "{text}"
        );
        // The stop `who --stop` carries out is the one the advice names.
        let stops = stops(&target("127.0.0.1:631"), &entries, &HOST, &managers);
        assert_eq!(
            stops,
            [Stop::Unit {
                unit: "cups.service".into(),
                socket: Some("cups.socket".into())
            }]
        );
        let waiting = held_by(
            Proto::Tcp,
            "127.0.0.1:631",
            vec![process(1, "systemd", None, 1)],
        );
        let text = decide(
            &target("127.0.0.1:631"),
            &[waiting],
            &HOST,
            &HashMap::new(),
            None,
        )
        .message;
        assert!(
            text.contains("systemctl list-sockets") && !text.contains("kill 1"),
            "{text}"
        );
    }

    #[test]
    fn advice_names_the_top_most_holder_never_a_worker() {
        // The worker has the lower pid and started first; its parent is the master.
        let holders = vec![
            process(339, "nginx", Some(340), 5),
            process(340, "nginx", Some(1), 10),
            process(341, "nginx", Some(340), 10),
        ];
        let nginx = held_by(Proto::Tcp, "0.0.0.0:80", holders);
        let verdict = decide_tables("0.0.0.0:80", &[nginx], &HOST);
        let text = &verdict.message;
        assert_eq!(verdict.reason, Reason::SharedListener);
        assert!(
            text.contains("nginx (pid 340, user root), with pids 339, 341 forked from it"),
            "{text}"
        );
        assert!(text.contains("stop pid 340 (kill 340)"), "{text}");
        assert!(
            !text.contains("kill 339") && !text.contains("kill 341"),
            "{text}"
        );
        assert!(!text.contains("SO_REUSEPORT"), "{text}");

        // Without parent pids: the first to start, then the lowest pid, never "kill <worker>".
        let holders = vec![
            process(339, "nginx", None, 11),
            process(340, "nginx", None, 10),
            process(341, "nginx", None, 10),
        ];
        let nginx = held_by(Proto::Tcp, "0.0.0.0:80", holders);
        let text = decide_tables("0.0.0.0:80", &[nginx], &HOST).message;
        assert!(text.contains("stop pid 340 (kill 340)"), "{text}");
        assert!(
            !text.contains("kill 339") && !text.contains("kill 341"),
            "{text}"
        );

        // A unit stops them all.
        let holders = vec![
            process(900, "nginx", Some(1), 1),
            process(901, "nginx", Some(900), 2),
        ];
        let nginx = held_by(Proto::Tcp, "0.0.0.0:80", holders);
        let managers = HashMap::from([(
            900,
            Manager {
                unit: Some("nginx.service".into()),
                container: None,
            },
        )]);
        let verdict = decide(&target("80"), &[nginx], &HOST, &managers, None);
        assert!(
            verdict
                .message
                .ends_with("To free it: systemctl stop nginx.service")
        );
    }

    #[test]
    fn udp_can_bind_means_without_reuseaddr_and_the_reuseaddr_test_is_not_made_beside_a_live_socket()
     {
        let memcached = held_by(
            Proto::Udp,
            "0.0.0.0:11211",
            vec![process(330, "memcached", Some(1), 1)],
        );
        let wanted = target("11211/udp");
        assert!(!may_test_with_reuseaddr(
            &wanted,
            std::slice::from_ref(&memcached),
            &HOST,
            &BindOutcome::InUse
        ));
        assert!(!may_test_with_reuseaddr(
            &wanted,
            std::slice::from_ref(&memcached),
            &HOST,
            &BindOutcome::Bound
        ));
        assert!(!may_test_with_reuseaddr(
            &wanted,
            &[],
            &HOST,
            &BindOutcome::InUse
        ));
        assert!(may_test_with_reuseaddr(
            &wanted,
            &[],
            &HOST,
            &BindOutcome::Bound
        ));
        assert!(may_test_with_reuseaddr(
            &target("11211"),
            std::slice::from_ref(&memcached),
            &HOST,
            &BindOutcome::InUse
        ));
        let test = BindTest {
            address: "0.0.0.0:11211".into(),
            without_reuseaddr: BindOutcome::InUse,
            with_reuseaddr: BindOutcome::Skipped,
        };
        let verdict = decide(&wanted, &[memcached], &HOST, &HashMap::new(), Some(&test));
        assert!(!verdict.can_bind);
        assert_eq!(verdict.reason, Reason::Listener);
        assert!(verdict.notes.is_empty(), "{:?}", verdict.notes);
        assert!(
            verdict.message.contains("is bound on 0.0.0.0:11211"),
            "{}",
            verdict.message
        );
        assert!(
            verdict.message.contains("only one of them"),
            "{}",
            verdict.message
        );
        assert_eq!(
            serde_json::to_value(&test.with_reuseaddr).expect("json"),
            "skipped"
        );
        assert!(
            BindOutcome::Skipped
                .describe()
                .contains("take its datagrams")
        );
    }

    #[test]
    fn a_privileged_port_that_is_taken_says_both() {
        let host = HostFacts {
            may_bind_privileged: false,
            ..HOST
        };
        let mut sshd = held_by(Proto::Tcp, "0.0.0.0:22", vec![]);
        sshd.owner_note = Some(OwnerNote::Hidden);
        sshd.user = Some("root".into());
        let test = BindTest {
            address: "0.0.0.0:22".into(),
            without_reuseaddr: BindOutcome::PermissionDenied,
            with_reuseaddr: BindOutcome::PermissionDenied,
        };
        let verdict = decide(&target("22"), &[sshd], &host, &HashMap::new(), Some(&test));
        let text = &verdict.message;
        assert!(!verdict.can_bind);
        assert_eq!(verdict.reason, Reason::Listener);
        assert!(verdict.notes.is_empty(), "{:?}", verdict.notes);
        assert!(
            text.contains(
                "0.0.0.0:22/tcp is taken: a socket created by root whose owner is hidden"
            ),
            "{text}"
        );
        assert!(text.contains("even with that capability"), "{text}");
        assert!(
            text.contains("Run as root to see which process holds it"),
            "{text}"
        );
        // The remedies come after what is in the way, never alone.
        let taken = text.find("is taken").expect("taken");
        let remedy = text.find("setcap").expect("remedy");
        assert!(taken < remedy, "{text}");
    }

    #[test]
    fn connection_counts_say_which_address_they_refer_to() {
        let waiting = |local: &str, remote: &str, secs: u64| {
            let mut e = entry(Proto::Tcp, local, Some(remote), State::TimeWait, &[]);
            e.socket.timer = Some(crate::core::model::Timer {
                kind: crate::core::model::TimerKind::Timewait,
                expires_ms: u32::try_from(secs * 1000).unwrap(),
                retrans: 0,
            });
            e
        };
        let entries = [
            waiting("127.0.0.1:80", "127.0.0.1:50000", 59),
            waiting("127.0.0.1:80", "127.0.0.1:50001", 14),
            waiting("127.0.0.1:80", "127.0.0.1:50002", 59),
            waiting("[::1]:80", "[::1]:50003", 30),
        ];
        let text = decide_tables("127.0.0.1:80", &entries, &HOST).message;
        assert!(
            text.contains("but 3 connections on 127.0.0.1:80 still use the port (TIME_WAIT 3)"),
            "{text}"
        );
        assert!(
            text.contains("The other connection on port 80, on [::1]:80, is not in the way"),
            "{text}"
        );
        assert!(text.contains("expires in 59s"), "{text}");
        let text = decide_tables("127.0.0.1:80", &entries[..1], &HOST).message;
        assert!(
            text.contains("but 1 connection on 127.0.0.1:80 still uses the port"),
            "{text}"
        );
        assert!(text.contains("until it is gone"), "{text}");
        assert!(!text.contains("other connection"), "{text}");
    }
}
