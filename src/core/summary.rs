//! The shape of a host's networking on one screen: counts per protocol, family and state, the
//! processes with the most sockets, and how close each destination is to running out of
//! ephemeral ports. Pure: entries in, a summary out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::core::counters::TcpCounters;
use crate::core::model::{Direction, Entry, EphemeralRange, Process, Proto, State};
use crate::core::text::processes_by_name;

/// Share of a destination's ephemeral ports in use above which portstat warns, and above which
/// it calls port exhaustion close at hand.
const WARN_PERCENT: f64 = 50.0;
const EXHAUSTION_PERCENT: f64 = 80.0;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub sockets: usize,
    /// proto -> family -> state -> count.
    pub counts: BTreeMap<&'static str, BTreeMap<&'static str, BTreeMap<&'static str, usize>>>,
    pub listeners: Listening,
    pub processes: Vec<ProcessSockets>,
    /// Sockets no visible process holds (TIME_WAIT, hidden owners), by state.
    pub unowned: BTreeMap<&'static str, usize>,
    pub ephemeral: EphemeralPressure,
    pub tcp_health: TcpHealth,
}

/// Whether TCP keeps up: the kernel's counters, and the listeners whose accept queue is full
/// now (connections wait there that the server has not accepted; new ones are dropped).
#[derive(Debug, Serialize)]
pub struct TcpHealth {
    /// `boot`: the counters count since boot, or since the network namespace was made.
    pub counters_since: &'static str,
    /// `None` where the counters could not be read (a warning says why).
    pub counters: Option<TcpCounters>,
    pub full_accept_queues: Vec<FullQueue>,
    /// TCP listeners whose backlog the backend does not report (procfs, netstat2): whether
    /// their queue is full can't be told.
    pub backlog_unknown: usize,
}

#[derive(Debug, Serialize)]
pub struct FullQueue {
    pub local_address: String,
    pub local_port: u16,
    /// Connections waiting to be accepted.
    pub accept_queue: u32,
    /// The listen() backlog (capped by net.core.somaxconn).
    pub backlog: u32,
    pub processes: Vec<ProcessRef>,
}

#[derive(Debug, Default, Serialize)]
pub struct Listening {
    pub tcp: usize,
    pub udp: usize,
}

#[derive(Debug, Serialize)]
pub struct ProcessSockets {
    pub pid: u32,
    pub name: String,
    pub user: Option<String>,
    pub sockets: usize,
    pub states: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Serialize)]
pub struct EphemeralPressure {
    pub first: u16,
    pub last: u16,
    /// How many ports the range holds: the most connections one destination can take from one
    /// local address.
    pub size: u32,
    /// Busiest first.
    pub destinations: Vec<Destination>,
}

#[derive(Debug, Serialize)]
pub struct Destination {
    #[serde(skip)]
    pub remote: std::net::SocketAddr,
    pub proto: &'static str,
    pub local_address: String,
    pub remote_address: String,
    pub remote_port: u16,
    /// Local ports from the ephemeral range in use towards this destination, TIME_WAIT included.
    pub in_use: usize,
    pub percent: f64,
    pub time_wait: usize,
    /// `ok`, `warning` (over 50%) or `exhaustion` (over 80%).
    pub level: &'static str,
    pub processes: Vec<ProcessRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub name: String,
}

/// Counts `entries` (every state), keeping the `top` busiest processes and destinations, beside
/// the kernel's TCP `counters` where they could be read.
pub fn summarize(
    entries: &[Entry],
    ephemeral: EphemeralRange,
    top: usize,
    counters: Option<TcpCounters>,
) -> Summary {
    let mut counts: BTreeMap<_, BTreeMap<_, BTreeMap<_, usize>>> = BTreeMap::new();
    let mut listeners = Listening::default();
    let mut by_process: HashMap<u32, (Arc<Process>, BTreeMap<&'static str, usize>)> =
        HashMap::new();
    let mut unowned = BTreeMap::new();
    for entry in entries {
        let socket = &entry.socket;
        *counts
            .entry(socket.proto.as_str())
            .or_default()
            .entry(socket.family().as_str())
            .or_default()
            .entry(socket.state.as_str())
            .or_default() += 1;
        match (socket.proto, socket.state) {
            (Proto::Tcp, State::Listen) => listeners.tcp += 1,
            (Proto::Udp, State::Unconn) => listeners.udp += 1,
            _ => {}
        }
        if entry.processes.is_empty() {
            *unowned.entry(socket.state.as_str()).or_default() += 1;
        }
        for process in &entry.processes {
            let (_, states) = by_process
                .entry(process.pid)
                .or_insert_with(|| (Arc::clone(process), BTreeMap::new()));
            *states.entry(socket.state.as_str()).or_default() += 1;
        }
    }
    let mut processes: Vec<ProcessSockets> = by_process
        .into_values()
        .map(|(process, states)| ProcessSockets {
            pid: process.pid,
            name: process.name.clone(),
            user: process.user.as_deref().map(str::to_string),
            sockets: states.values().sum(),
            states,
        })
        .collect();
    processes.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.pid.cmp(&b.pid)));
    processes.truncate(top);

    Summary {
        sockets: entries.len(),
        counts,
        listeners,
        processes,
        unowned,
        ephemeral: pressure(entries, ephemeral, top),
        tcp_health: tcp_health(entries, counters),
    }
}

/// A TCP listener's `tx_queue` is its backlog where the backend reports it (netlink); 0
/// otherwise, which a real backlog never is for a listener that accepts anything.
fn tcp_health(entries: &[Entry], counters: Option<TcpCounters>) -> TcpHealth {
    let mut full_accept_queues = Vec::new();
    let mut backlog_unknown = 0;
    for entry in entries {
        let socket = &entry.socket;
        if (socket.proto, socket.state) != (Proto::Tcp, State::Listen) {
            continue;
        }
        // A listener's send queue is its backlog where the backend reads one (netlink).
        let (Some(backlog), Some(queued)) = (socket.tx_queue, socket.rx_queue) else {
            backlog_unknown += 1;
            continue;
        };
        if queued >= backlog {
            let mut processes: Vec<ProcessRef> = entry
                .processes
                .iter()
                .map(|process| ProcessRef {
                    pid: process.pid,
                    name: process.name.clone(),
                })
                .collect();
            processes.sort();
            processes.dedup();
            full_accept_queues.push(FullQueue {
                local_address: socket.local.ip().to_string(),
                local_port: socket.local.port(),
                accept_queue: queued,
                backlog,
                processes,
            });
        }
    }
    full_accept_queues
        .sort_by(|a, b| (a.local_port, &a.local_address).cmp(&(b.local_port, &b.local_address)));
    TcpHealth {
        counters_since: "boot",
        counters,
        full_accept_queues,
        backlog_unknown,
    }
}

/// Outgoing connections need a distinct local port per (local address, destination address,
/// destination port, protocol): each such destination can take at most the range's size.
fn pressure(entries: &[Entry], range: EphemeralRange, top: usize) -> EphemeralPressure {
    let size = u32::from(range.last) - u32::from(range.first) + 1;
    type Key = (Proto, IpAddr, IpAddr, u16);
    let mut groups: HashMap<Key, (usize, usize, Vec<ProcessRef>)> = HashMap::new();
    for entry in entries {
        let socket = &entry.socket;
        let Some(remote) = socket.remote else {
            continue;
        };
        let outgoing = entry.direction == Some(Direction::Outbound);
        if !outgoing || !range.contains(socket.local.port()) {
            continue;
        }
        let key = (socket.proto, socket.local.ip(), remote.ip(), remote.port());
        let (in_use, time_wait, processes) = groups.entry(key).or_default();
        *in_use += 1;
        if socket.state == State::TimeWait {
            *time_wait += 1;
        }
        for process in &entry.processes {
            let named = ProcessRef {
                pid: process.pid,
                name: process.name.clone(),
            };
            if !processes.contains(&named) {
                processes.push(named);
            }
        }
    }
    let mut destinations: Vec<Destination> = groups
        .into_iter()
        .map(
            |((proto, local, remote, port), (in_use, time_wait, mut processes))| {
                let percent = in_use as f64 * 100.0 / f64::from(size);
                processes.sort();
                Destination {
                    remote: std::net::SocketAddr::new(remote, port),
                    proto: proto.as_str(),
                    local_address: local.to_string(),
                    remote_address: remote.to_string(),
                    remote_port: port,
                    in_use,
                    percent: (percent * 100.0).round() / 100.0,
                    time_wait,
                    level: if percent > EXHAUSTION_PERCENT {
                        "exhaustion"
                    } else if percent > WARN_PERCENT {
                        "warning"
                    } else {
                        "ok"
                    },
                    processes,
                }
            },
        )
        .collect();
    destinations.sort_by(|a, b| {
        b.in_use
            .cmp(&a.in_use)
            .then_with(|| a.remote_address.cmp(&b.remote_address))
            .then(a.remote_port.cmp(&b.remote_port))
    });
    destinations.truncate(top);
    EphemeralPressure {
        first: range.first,
        last: range.last,
        size,
        destinations,
    }
}

/// Warnings worth a line on stderr: destinations close to running out of ports.
pub fn pressure_warnings(summary: &Summary) -> Vec<String> {
    summary
        .ephemeral
        .destinations
        .iter()
        .filter(|d| d.level != "ok")
        .map(|d| {
            let who = processes_by_name(d.processes.iter().map(|p| (p.pid, p.name.as_str())));
            let what = if d.level == "exhaustion" {
                "ephemeral port exhaustion close at hand"
            } else {
                "over half the ephemeral ports in use"
            };
            format!(
                "{what}: {} of {} ports ({:.1}%) from {} to {} ({}){}",
                d.in_use,
                summary.ephemeral.size,
                d.percent,
                d.local_address,
                d.remote,
                d.proto,
                if who.is_empty() {
                    String::new()
                } else {
                    format!(", by {who}")
                }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Socket;

    fn entry(
        proto: Proto,
        local: &str,
        remote: Option<&str>,
        state: State,
        pid: Option<u32>,
    ) -> Entry {
        let processes = pid
            .map(|pid| Process::example(pid, &format!("app{pid}"), None))
            .into_iter()
            .collect();
        Entry {
            direction: remote.map(|_| Direction::Outbound),
            ..Entry::example(Socket::example(proto, local, remote, state), processes)
        }
    }

    const SMALL: EphemeralRange = EphemeralRange {
        first: 40000,
        last: 40009,
    };

    #[test]
    fn counts_per_protocol_family_and_state() {
        let entries = [
            entry(Proto::Tcp, "127.0.0.1:80", None, State::Listen, Some(1)),
            entry(Proto::Tcp, "[::1]:80", None, State::Listen, Some(1)),
            entry(Proto::Udp, "127.0.0.1:53", None, State::Unconn, Some(2)),
            entry(
                Proto::Tcp,
                "127.0.0.1:5",
                Some("127.0.0.1:80"),
                State::TimeWait,
                None,
            ),
        ];
        let summary = summarize(&entries, SMALL, 10, None);
        assert_eq!(summary.sockets, 4);
        assert_eq!(summary.counts["tcp"]["ipv4"]["LISTEN"], 1);
        assert_eq!(summary.counts["tcp"]["ipv6"]["LISTEN"], 1);
        assert_eq!(summary.counts["udp"]["ipv4"]["UNCONN"], 1);
        assert_eq!((summary.listeners.tcp, summary.listeners.udp), (2, 1));
        assert_eq!(summary.unowned["TIME_WAIT"], 1);
        assert_eq!(summary.processes[0].pid, 1);
        assert_eq!(summary.processes[0].sockets, 2);
    }

    #[test]
    fn destinations_are_measured_against_the_range() {
        let mut entries: Vec<Entry> = (0..9)
            .map(|i| {
                let local = format!("127.0.0.1:{}", 40000 + i);
                entry(
                    Proto::Tcp,
                    &local,
                    Some("127.0.0.1:5432"),
                    State::Established,
                    Some(7),
                )
            })
            .collect();
        entries.push(entry(
            Proto::Tcp,
            "127.0.0.1:40009",
            Some("127.0.0.1:5432"),
            State::TimeWait,
            None,
        ));
        // Outside the ephemeral range: uses no ephemeral port.
        entries.push(entry(
            Proto::Tcp,
            "127.0.0.1:1000",
            Some("127.0.0.1:5432"),
            State::Established,
            Some(7),
        ));
        entries.extend((0..6).map(|i| {
            let local = format!("127.0.0.1:{}", 40000 + i);
            entry(
                Proto::Tcp,
                &local,
                Some("127.0.0.1:6379"),
                State::Established,
                Some(8),
            )
        }));
        let summary = summarize(&entries, SMALL, 10, None);
        let pressure = &summary.ephemeral;
        assert_eq!(pressure.size, 10);
        let busiest = &pressure.destinations[0];
        assert_eq!(
            (busiest.remote_port, busiest.in_use, busiest.time_wait),
            (5432, 10, 1)
        );
        assert_eq!(busiest.level, "exhaustion");
        assert_eq!(
            busiest.processes,
            [ProcessRef {
                pid: 7,
                name: "app7".into()
            }]
        );
        let second = &pressure.destinations[1];
        assert_eq!(
            (second.remote_port, second.in_use, second.level),
            (6379, 6, "warning")
        );
        let warnings = pressure_warnings(&summary);
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].contains("exhaustion close at hand") && warnings[0].contains("by 7/app7")
        );
    }

    #[test]
    fn inbound_connections_use_no_ephemeral_port() {
        let mut inbound = entry(
            Proto::Tcp,
            "127.0.0.1:40001",
            Some("10.0.0.1:5000"),
            State::Established,
            Some(1),
        );
        inbound.direction = Some(Direction::Inbound);
        let summary = summarize(&[inbound], SMALL, 10, None);
        assert!(summary.ephemeral.destinations.is_empty());
    }
}
