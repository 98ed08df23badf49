//! `portstat metrics`: one scan as Prometheus metrics, printed or written atomically for
//! node_exporter's textfile collector. [`Exporter`] is shared with `portstat serve`.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::Result;

use super::audit::{self, Checks};
use super::scan::Scan;
use super::{Context, Outcome};
use crate::cli::{ExporterArgs, MetricsArgs};
use crate::core::audit::listener::Listener;
use crate::core::audit::rules::FailOn;
use crate::core::cgroup;
use crate::core::error::UsageError;
use crate::core::model::{Entry, Proto, State};
use crate::core::query::Query;
use crate::core::summary::summarize;
use crate::render::metrics::{AcceptQueue, Dialect, Exposition, Placement, encode};

/// What one scrape gives: the text in both dialects, and what the scan could not see.
pub struct Scrape {
    pub prometheus: String,
    pub openmetrics: String,
    pub warnings: Vec<String>,
}

impl Scrape {
    pub fn text(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Prometheus => &self.prometheus,
            Dialect::OpenMetrics => &self.openmetrics,
        }
    }
}

/// The options of `metrics` and `serve`, with the policy and baseline read once.
pub struct Exporter<'a> {
    args: &'a ExporterArgs,
    checks: Checks,
}

impl<'a> Exporter<'a> {
    pub fn new(args: &'a ExporterArgs, context: &Context) -> Result<Exporter<'a>> {
        let checks = Checks::read(
            context.os,
            context.services(),
            args.policy.as_deref(),
            args.baseline.as_deref(),
        )?;
        Ok(Exporter { args, checks })
    }

    /// Scans the host and encodes what it found.
    pub fn scrape(&self, context: &Context) -> Result<Scrape> {
        let os = context.os;
        let started = os.monotonic();
        let backend = self.args.scan.backend;
        let mut scan =
            audit::scan_host(context, &Query::default(), backend, &self.args.scan.netns())?;
        let summary = summarize(&scan.entries, scan.ephemeral, self.args.top, None);
        let accept_queues = accept_queues(&scan);
        let placements = placements(context, &scan);
        let gathered = audit::gather_live(context, &mut scan, backend)?;
        let audited = self.args.audit || self.args.policy.is_some();
        let judged = (audited || self.args.baseline.is_some())
            .then(|| audit::judge(&self.checks, &gathered, FailOn::High));
        let listeners: Vec<(Listener, Placement)> = gathered
            .listeners
            .iter()
            .map(|listener| (listener.clone(), placement_of(listener, &placements)))
            .collect();
        let elapsed = os.monotonic().saturating_sub(started);
        let exposition = Exposition {
            listeners: &listeners,
            summary: &summary,
            accept_queues: &accept_queues,
            findings: judged
                .as_ref()
                .filter(|_| audited)
                .map(|judged| &judged.findings[..]),
            violations: judged
                .as_ref()
                .and_then(|judged| judged.violations.as_ref().map(Vec::len)),
            drift: judged.as_ref().and_then(|judged| judged.drift.as_ref()),
            scan_seconds: elapsed.as_secs_f64(),
            warnings: gathered.warnings.len(),
            leave_out: &self.args.leave_out,
        };
        Ok(Scrape {
            prometheus: encode(&exposition, Dialect::Prometheus),
            openmetrics: encode(&exposition, Dialect::OpenMetrics),
            warnings: gathered.warnings,
        })
    }
}

pub fn run(args: &MetricsArgs, context: &mut Context) -> Result<Outcome> {
    let exporter = Exporter::new(&args.exporter, context)?;
    let scrape = exporter.scrape(context)?;
    let dialect = if args.openmetrics {
        Dialect::OpenMetrics
    } else {
        Dialect::Prometheus
    };
    let text = scrape.text(dialect);
    match &args.output {
        Some(path) => context
            .os
            .replace_file(path, text.as_bytes())
            .map_err(|error| UsageError(format!("cannot write {}: {error}", path.display())))?,
        None => context.output.out.write_all(text.as_bytes())?,
    }
    context.output.warnings(&scrape.warnings)?;
    Ok(Outcome::Pass)
}

/// Every TCP listener's accept queue; the backlog where the backend read one (netlink gives a
/// listener's backlog as its send queue; procfs has none).
fn accept_queues(scan: &Scan) -> Vec<AcceptQueue> {
    scan.entries
        .iter()
        .filter(|entry| entry.socket.proto == Proto::Tcp && entry.socket.state == State::Listen)
        .filter_map(|entry| {
            Some(AcceptQueue {
                address: entry.socket.local.ip().to_string(),
                port: entry.socket.local.port(),
                netns: netns_of(entry),
                queued: entry.socket.rx_queue?,
                backlog: entry.socket.tx_queue,
            })
        })
        .collect()
}

fn netns_of(entry: &Entry) -> Option<String> {
    entry.netns.as_ref().map(|label| label.short())
}

/// A listener as an audit names it: (proto, address, port, namespace's container or name).
type ListenerKey = (Proto, IpAddr, u16, Option<String>);

/// Where each listening entry runs: its unit or container (from its first process's cgroup,
/// else its namespace's container) and its namespace.
fn placements(context: &Context, scan: &Scan) -> HashMap<ListenerKey, Placement> {
    let mut placements = HashMap::new();
    // One read of a process's cgroup however many sockets it listens on: a farm worker
    // holding a thousand had been read a thousand times, a sixth of a scrape.
    let mut managers = HashMap::new();
    for entry in scan
        .entries
        .iter()
        .filter(|e| e.socket.state.is_listening())
    {
        let manager = entry
            .processes
            .first()
            .map(|process| {
                managers
                    .entry(process.pid)
                    .or_insert_with(|| {
                        context
                            .os
                            .cgroup(process.pid)
                            .map(|text| cgroup::parse(&text))
                            .unwrap_or_default()
                    })
                    .clone()
            })
            .unwrap_or_default();
        let container = manager
            .container
            .map(|c| format!("{}:{}", c.runtime, c.id.get(..12).unwrap_or(&c.id)))
            .or_else(|| {
                let label = entry.netns.as_ref()?.container.as_ref()?;
                Some(format!(
                    "{}:{}",
                    label.runtime,
                    label.id.get(..12).unwrap_or(&label.id)
                ))
            });
        let key = (
            entry.socket.proto,
            entry.socket.local.ip(),
            entry.socket.local.port(),
            netns_of(entry),
        );
        placements.entry(key).or_insert(Placement {
            unit: manager.unit,
            container,
            netns: netns_of(entry),
        });
    }
    placements
}

/// A listener's placement: a published port's is its target's container and namespace.
fn placement_of(listener: &Listener, placements: &HashMap<ListenerKey, Placement>) -> Placement {
    if let Some(forward) = &listener.forward {
        return Placement {
            unit: None,
            container: forward.container.clone(),
            netns: forward.netns.clone(),
        };
    }
    // An audit names a listener of another namespace "HOST netns NAME".
    let netns = listener
        .host
        .split_once(" netns ")
        .map(|(_, name)| name.to_string());
    placements
        .get(&(listener.proto, listener.address, listener.port, netns))
        .cloned()
        .unwrap_or_default()
}
