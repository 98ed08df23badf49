//! `who`'s report, for people (text) and scripts (JSON, schema 1, documented in README.md).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::core::cgroup::{Container, Manager};
use crate::core::firewall::eval::Reach;
use crate::core::firewall::judge::ForwardTarget;
use crate::core::model::{Entry, PortRange, Process, Proto, State, Timer, Zones};
use crate::core::probe::Probe;
use crate::core::services::Services;
use crate::core::target::Target;
use crate::core::verdict::{BindTest, ConnectOutcome, ConnectTest};
use crate::core::verdict::{HostFacts, Verdict};
use crate::render::table::shorten;
use crate::render::{Paint, Style, printable};

#[derive(Debug, Serialize)]
pub struct WhoReport<'a> {
    pub schema: u32,
    pub target: TargetFacts,
    pub listeners: Vec<Listener>,
    /// Sockets on the port that are not listeners, counted by state.
    pub connections: BTreeMap<&'static str, usize>,
    pub time_wait: Vec<TimeWait>,
    pub verdict: &'a Verdict,
    pub test_bind: Option<&'a BindTest>,
    pub connect: Option<&'a ConnectTest>,
    /// Whether new connections from beyond the host get through the firewall to the asked
    /// address and port; `null` for loopback, and with `-q`.
    pub firewall: Option<Reach>,
    /// The forwards (DNAT) of the asked port: where its connections really go.
    pub published: Vec<Published>,
    pub warnings: &'a [String],
}

/// A forward of the asked port (its target's port is the one the asked port maps to), whether
/// new connections get through it, and what serves it.
#[derive(Debug, Serialize)]
pub struct Published {
    #[serde(flatten)]
    pub target: ForwardTarget,
    pub firewall: Reach,
    /// What listens at the target: the server.
    pub processes: Vec<Arc<Process>>,
}

#[derive(Debug, Serialize)]
pub struct TargetFacts {
    pub proto: &'static str,
    pub address: String,
    pub port: u16,
    pub range: PortRange,
    pub ephemeral: bool,
    pub reserved: bool,
    pub service: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Listener {
    /// The address as people write it, a link-local one with its zone by name.
    #[serde(skip)]
    pub local: String,
    pub local_address: String,
    pub local_port: u16,
    pub state: &'static str,
    #[serde(skip)]
    pub proto: Proto,
    /// Connections waiting to be accepted (TCP), or bytes waiting to be read (UDP).
    pub accept_queue: u32,
    /// The listen() backlog, where the backend reports it (netlink); `null` otherwise.
    pub backlog: Option<u32>,
    pub queue_full: bool,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub owners: Vec<Owner>,
    pub owner_note: Option<&'static str>,
    /// What it speaks, with `--probe` (left out of JSON without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
}

#[derive(Debug, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub name: String,
    pub user: Option<String>,
    pub cmdline: String,
    /// RFC 3339, UTC.
    pub started_at: Option<String>,
    pub unit: Option<String>,
    pub container: Option<Container>,
}

#[derive(Debug, Serialize)]
pub struct TimeWait {
    pub local: String,
    pub remote: Option<String>,
    /// Seconds until the kernel forgets it, where the table gives its timer.
    pub expires_in_seconds: Option<f64>,
}

impl<'a> WhoReport<'a> {
    #[allow(clippy::too_many_arguments)] // one report gathers every fact the command found
    pub fn new(
        target: &Target,
        entries: &[Entry],
        facts: &HostFacts,
        managers: &HashMap<u32, Manager>,
        services: &'static Services,
        zones: &Zones,
        verdict: &'a Verdict,
        test_bind: Option<&'a BindTest>,
        connect: Option<&'a ConnectTest>,
        warnings: &'a [String],
    ) -> WhoReport<'a> {
        let listeners = entries
            .iter()
            .filter(|e| e.socket.state.is_listening())
            .map(|e| listener(e, managers, zones))
            .collect();
        let mut connections = BTreeMap::new();
        for entry in entries.iter().filter(|e| !e.socket.state.is_listening()) {
            *connections.entry(entry.socket.state.as_str()).or_insert(0) += 1;
        }
        // Longest time left first (the one the verdict's "the last TIME_WAIT expires in" names),
        // those without a timer last.
        let mut waiting: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.socket.state == State::TimeWait)
            .collect();
        waiting.sort_by_key(|e| {
            (
                std::cmp::Reverse(e.socket.timer.map(Timer::left)),
                e.socket.local,
                e.socket.remote,
            )
        });
        let time_wait = waiting
            .into_iter()
            .map(|e| TimeWait {
                local: zones.address(e.socket.netns, e.socket.local),
                remote: e
                    .socket
                    .remote
                    .map(|remote| zones.address(e.socket.netns, remote)),
                expires_in_seconds: e.socket.timer.map(|timer| timer.left().as_secs_f64()),
            })
            .collect();
        WhoReport {
            schema: 1,
            target: TargetFacts {
                proto: target.proto.as_str(),
                address: target.address.to_string(),
                port: target.port,
                range: PortRange::of(target.port),
                ephemeral: facts.ephemeral.contains(target.port),
                reserved: facts.reserved.contains(target.port),
                service: services.name(target.port, target.proto),
            },
            listeners,
            connections,
            time_wait,
            verdict,
            test_bind,
            connect,
            firewall: None,
            published: Vec::new(),
            warnings,
        }
    }
}

/// A socket as `who` reports a listener: its queue, its creator, and each holder with its
/// command line, start time, unit and container (`top`'s details pane shows any socket so).
pub fn listener(entry: &Entry, managers: &HashMap<u32, Manager>, zones: &Zones) -> Listener {
    let socket = &entry.socket;
    let backlog = socket.tx_queue.filter(|&backlog| backlog > 0);
    // Only netstat2 reports no queues; who's schema has a number here.
    let accept_queue = socket.rx_queue.unwrap_or_default();
    Listener {
        local: zones.address(socket.netns, socket.local),
        local_address: socket.local.ip().to_string(),
        local_port: socket.local.port(),
        state: socket.state.as_str(),
        proto: socket.proto,
        accept_queue,
        backlog,
        queue_full: backlog.is_some_and(|backlog| accept_queue >= backlog),
        uid: socket.uid,
        user: entry.user.as_deref().map(str::to_string),
        owners: entry
            .processes
            .iter()
            .map(|process| {
                let manager = managers.get(&process.pid).cloned().unwrap_or_default();
                Owner {
                    pid: process.pid,
                    name: process.name.clone(),
                    user: process.user.as_deref().map(str::to_string),
                    cmdline: process.cmdline.clone(),
                    started_at: process.started.map(|seconds| {
                        let time = UNIX_EPOCH + Duration::from_secs(seconds);
                        humantime::format_rfc3339_seconds(time).to_string()
                    }),
                    unit: manager.unit,
                    container: manager.container,
                }
            })
            .collect(),
        owner_note: entry.owner_note.map(|note| note.code()),
        probe: None,
    }
}

/// The report for people; on a terminal, command lines (a podman `conmon` line is 2,000
/// characters) are shortened to its width.
pub fn text(report: &WhoReport, style: &Style, out: &mut dyn Write) -> io::Result<()> {
    let target = &report.target;
    let service = target
        .service
        .map_or_else(String::new, |name| format!(", usually {}", printable(name)));
    let ephemeral = if target.ephemeral {
        ", in this host's ephemeral range"
    } else {
        ""
    };
    writeln!(
        out,
        "Port {}/{}: {}{service}{ephemeral}",
        target.port,
        target.proto,
        target.range.as_str()
    )?;

    if report.listeners.is_empty() {
        writeln!(out, "\nNo listener.")?;
    } else {
        writeln!(out, "\nListening:")?;
    }
    for listener in &report.listeners {
        let address = printable(&listener.local);
        let queue = match listener.backlog {
            // A UDP socket has no accept queue: what waits is datagrams, counted in bytes.
            _ if listener.proto == Proto::Udp => match listener.accept_queue {
                1 => "receive queue 1 byte".to_string(),
                bytes => format!("receive queue {bytes} bytes"),
            },
            Some(backlog) => format!(
                "accept queue {}/{backlog}{}",
                listener.accept_queue,
                if listener.queue_full { " FULL" } else { "" }
            ),
            None => format!("accept queue {}", listener.accept_queue),
        };
        writeln!(out, "  {address}  {}  {queue}", listener.state)?;
        if listener.owners.is_empty() {
            let why = listener.owner_note.unwrap_or("unknown");
            let user = listener.user.as_deref().map_or_else(
                || {
                    listener
                        .uid
                        .map_or_else(|| "?".into(), |uid| uid.to_string())
                },
                str::to_string,
            );
            writeln!(
                out,
                "    owner not visible ({why}); socket created by {}",
                printable(&user)
            )?;
        }
        for owner in &listener.owners {
            let facts = owner_facts(owner);
            writeln!(
                out,
                "    {} ({})",
                printable(&owner.name),
                printable(&facts.join(", "))
            )?;
            if !owner.cmdline.is_empty() {
                // Escaped before it is shortened, so the escapes count in its width.
                let whole = printable(&owner.cmdline);
                let cmdline = match style.width {
                    Some(width) => shorten(&whole, usize::from(width).saturating_sub(6)),
                    None => whole.into_owned(),
                };
                writeln!(out, "      {cmdline}")?;
            }
        }
        if let Some(probe) = &listener.probe {
            // A banner and a certificate's names are the listener's words: escaped.
            writeln!(out, "    {}", printable(&super::probe::line(probe)))?;
        }
    }

    if !report.connections.is_empty() {
        let counts: Vec<String> = report
            .connections
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        // Every socket on the port, whatever its address; the verdict says which of them meet
        // the asked address.
        writeln!(
            out,
            "\nConnections on port {}, every address: {}",
            target.port,
            counts.join(", ")
        )?;
    }
    for wait in &report.time_wait {
        let expiry = wait.expires_in_seconds.map_or_else(String::new, |left| {
            format!(", expires in {:.0}s", left.ceil())
        });
        let remote = printable(wait.remote.as_deref().unwrap_or("*"));
        let local = printable(&wait.local);
        writeln!(out, "  TIME_WAIT {local} -> {remote}{expiry}")?;
    }

    let verdict = report.verdict;
    let answer = if verdict.can_bind {
        "can bind"
    } else {
        "cannot bind"
    };
    // The verdict names listeners' processes and units.
    writeln!(
        out,
        "\nVerdict: {}. {}",
        style.paint(Paint::Outcome, answer),
        printable(&verdict.message)
    )?;
    for note in &verdict.notes {
        writeln!(out, "  Note: {}", printable(note))?;
    }
    if let Some(test) = report.test_bind {
        writeln!(
            out,
            "Test bind {}: without SO_REUSEADDR {}; with SO_REUSEADDR {}.",
            test.address,
            test.without_reuseaddr.describe(),
            test.with_reuseaddr.describe()
        )?;
    }
    if let Some(connect) = report.connect {
        let outcome = match &connect.outcome {
            ConnectOutcome::Accepted => "accepted".to_string(),
            ConnectOutcome::Refused => "refused".to_string(),
            ConnectOutcome::TimedOut => "timed out".to_string(),
            ConnectOutcome::Failed(error) => format!("failed: {}", printable(error)),
        };
        writeln!(
            out,
            "Connect {}: {outcome} in {:.1} ms.",
            connect.address, connect.millis
        )?;
    }
    match (&report.firewall, report.published.first()) {
        // The DNAT comes before any input rule: what reaches the port is the forward's fate.
        (_, Some(forward)) => writeln!(
            out,
            "Firewall: {}, through the forward below (connections from beyond this host never \
             reach a socket here: they are forwarded first)",
            style.paint_first_word(Paint::Verdict, &printable(&forward.firewall.describe()))
        )?,
        (Some(firewall), None) => writeln!(
            out,
            "Firewall: {}",
            style.paint_first_word(Paint::Verdict, &printable(&firewall.describe()))
        )?,
        (None, None) => {}
    }
    for forward in &report.published {
        let target = &forward.target;
        let to = SocketAddr::new(target.to_address, target.to_port);
        let short = |id: &str| id.get(..12).unwrap_or(id).to_string();
        let container = match (&target.runtime, &target.container, &target.container_id) {
            (Some(runtime), Some(name), Some(id)) if name != id => {
                format!(" {runtime} container {name} ({})", short(id))
            }
            // Known by its id only: shown as `docker ps` shows it.
            (Some(runtime), _, Some(id)) => format!(" {runtime} container {}", short(id)),
            (Some(runtime), Some(name), None) => format!(" {runtime} container {name}"),
            _ => String::new(),
        };
        let netns = target.netns.as_ref().map_or(String::new(), |netns| {
            format!(", network namespace {netns}")
        });
        writeln!(
            out,
            "Published: port {} is forwarded to{} {to}{netns}",
            report.target.port,
            printable(&container)
        )?;
        let servers: Vec<String> = forward
            .processes
            .iter()
            .map(|p| format!("{} (pid {})", p.name, p.pid))
            .collect();
        if !servers.is_empty() {
            writeln!(out, "  served there by {}", printable(&servers.join(", ")))?;
        }
        writeln!(out, "  by {}", printable(&target.rule.describe()))?;
    }
    Ok(())
}

/// What the report says of a holder after its name: `pid 812, user root, started ..., unit ...`.
pub fn owner_facts(owner: &Owner) -> Vec<String> {
    let mut facts = vec![format!("pid {}", owner.pid)];
    facts.extend(owner.user.as_ref().map(|user| format!("user {user}")));
    facts.extend(owner.started_at.as_ref().map(|at| format!("started {at}")));
    facts.extend(owner.unit.as_ref().map(|unit| format!("unit {unit}")));
    facts.extend(owner.container.as_ref().map(|c| {
        format!(
            "{} container {}",
            c.runtime,
            c.id.get(..12).unwrap_or(&c.id)
        )
    }));
    facts
}
