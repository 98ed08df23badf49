//! `summary`'s report: text for people, one JSON document for scripts.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::core::model::{Family, State};
use crate::core::summary::{Summary, TcpHealth};
use crate::core::text::processes_by_name;
use crate::render::printable;

/// `summary --json`.
#[derive(Serialize)]
pub struct Document<'a> {
    pub schema: u32,
    pub host: &'a str,
    pub captured_at: &'a str,
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub warnings: &'a [String],
}

pub fn text(summary: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let family_total = |proto: &str, family: Family| -> usize {
        summary
            .counts
            .get(proto)
            .and_then(|families| families.get(family.as_str()))
            .map_or(0, |states| states.values().sum())
    };
    let proto_line = |proto: &str| {
        let (v4, v6) = (
            family_total(proto, Family::Ipv4),
            family_total(proto, Family::Ipv6),
        );
        format!(
            "{} {} (IPv4 {v4}, IPv6 {v6})",
            proto.to_uppercase(),
            v4 + v6
        )
    };
    writeln!(
        out,
        "Sockets: {}; {}, {}",
        summary.sockets,
        proto_line("tcp"),
        proto_line("udp")
    )?;
    writeln!(
        out,
        "Listening: {} TCP, {} UDP",
        summary.listeners.tcp, summary.listeners.udp
    )?;

    for proto in ["tcp", "udp"] {
        let Some(families) = summary.counts.get(proto) else {
            continue;
        };
        writeln!(
            out,
            "\n{:<14}{:>8}{:>8}{:>8}",
            proto.to_uppercase(),
            "IPv4",
            "IPv6",
            "total"
        )?;
        for state in State::ALL {
            let count = |family: Family| {
                families
                    .get(family.as_str())
                    .and_then(|states| states.get(state.as_str()))
                    .copied()
                    .unwrap_or(0)
            };
            let (v4, v6) = (count(Family::Ipv4), count(Family::Ipv6));
            if v4 + v6 > 0 {
                writeln!(out, "  {:<12}{v4:>8}{v6:>8}{:>8}", state.as_str(), v4 + v6)?;
            }
        }
    }

    if !summary.processes.is_empty() || !summary.unowned.is_empty() {
        writeln!(out, "\nTop processes by sockets:")?;
    }
    if !summary.processes.is_empty() {
        for process in &summary.processes {
            writeln!(
                out,
                "  {:>7}  {:<16} {:>6}  {}",
                process.pid,
                printable(&process.name),
                process.sockets,
                states_line(&process.states)
            )?;
        }
    }
    if !summary.unowned.is_empty() {
        let count: usize = summary.unowned.values().sum();
        writeln!(
            out,
            "  {:>7}  {:<16} {count:>6}  {}",
            "-",
            "(no process)",
            states_line(&summary.unowned)
        )?;
    }

    let pressure = &summary.ephemeral;
    writeln!(
        out,
        "\nEphemeral ports: {}-{} ({} per destination and local address)",
        pressure.first, pressure.last, pressure.size
    )?;
    if pressure.destinations.is_empty() {
        writeln!(out, "  no outgoing connections use them")?;
    }
    for d in &pressure.destinations {
        let processes = processes_by_name(d.processes.iter().map(|p| (p.pid, p.name.as_str())));
        let flag = match d.level {
            "exhaustion" => "  EXHAUSTION CLOSE",
            "warning" => "  WARNING",
            _ => "",
        };
        writeln!(
            out,
            "  {} {} from {}: {} in use ({:.1}%), {} in TIME_WAIT{}{flag}",
            d.remote,
            d.proto,
            d.local_address,
            d.in_use,
            d.percent,
            d.time_wait,
            if processes.is_empty() {
                String::new()
            } else {
                format!(", {}", printable(&processes))
            }
        )?;
    }
    tcp_health(&summary.tcp_health, out)
}

fn tcp_health(health: &TcpHealth, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "\nTCP health (counters since boot or the namespace's creation):"
    )?;
    match &health.counters {
        None => writeln!(out, "  counters unreadable")?,
        Some(counters) => {
            let count = |value: Option<u64>| value.map_or("?".to_string(), |v| v.to_string());
            writeln!(
                out,
                "  listen overflows {}, listen drops {}, retransmitted segments {}",
                count(counters.listen_overflows),
                count(counters.listen_drops),
                count(counters.retrans_segs)
            )?;
            writeln!(
                out,
                "  resets sent {}, established connections reset {}, failed connection attempts {}",
                count(counters.out_rsts),
                count(counters.estab_resets),
                count(counters.attempt_fails)
            )?;
        }
    }
    if health.full_accept_queues.is_empty() {
        writeln!(out, "  no listener's accept queue is full")?;
    }
    for full in &health.full_accept_queues {
        let processes = processes_by_name(full.processes.iter().map(|p| (p.pid, p.name.as_str())));
        let address = if full.local_address.contains(':') {
            format!("[{}]:{}", full.local_address, full.local_port)
        } else {
            format!("{}:{}", full.local_address, full.local_port)
        };
        writeln!(
            out,
            "  {address}  accept queue {}/{} FULL{}",
            full.accept_queue,
            full.backlog,
            if processes.is_empty() {
                String::new()
            } else {
                format!(", {}", printable(&processes))
            }
        )?;
    }
    if health.backlog_unknown > 0 {
        writeln!(
            out,
            "  backlog not reported for {} (the backend can't tell whether their queue is full)",
            crate::core::text::count(health.backlog_unknown, "TCP listener")
        )?;
    }
    Ok(())
}

fn states_line(states: &BTreeMap<&'static str, usize>) -> String {
    let mut pairs: Vec<(&&str, &usize)> = states.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    pairs
        .iter()
        .map(|(state, count)| format!("{state} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}
