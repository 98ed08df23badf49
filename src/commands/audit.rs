//! `portstat audit`: what accepts connections from beyond this machine, is any of it
//! dangerous, does it keep to a policy, and what changed since an approved state. This module
//! gathers (this host's scan, or saved snapshots) and runs; the judging is in `core::audit`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::Result;

use super::scan;
use super::scan::{Names, PublishedPort};
use super::{Context, Outcome};
use crate::cli::AuditArgs;
use crate::core::audit::drift;
use crate::core::audit::exposure::{self, HostView};
use crate::core::audit::listener::{self, Listener};
use crate::core::audit::outcome::{self, AuditSummary};
use crate::core::audit::{policy, rules};
use crate::core::error::UsageError;
use crate::core::model::{Backend, Entry, Source, State};
use crate::core::probe::ProbeMode;
use crate::core::query::{NetnsSelection, Query};
use crate::core::services::Services;
use crate::os::Os;
use crate::render::audit::{self as report, Audit, DriftOutcome, HostInfo, PolicyOutcome};

/// The listeners of every audited host.
pub struct Gathered {
    pub hosts: Vec<HostInfo>,
    pub listeners: Vec<Listener>,
    pub warnings: Vec<String>,
}

/// The policy and baseline an audit checks against, each with the file it came from.
#[derive(Default)]
pub struct Checks {
    pub policy: Option<(String, policy::Policy)>,
    pub baseline: Option<(String, Vec<drift::Endpoint>)>,
}

impl Checks {
    /// Reads and parses the files first, so a mistake in them is reported before anything is
    /// scanned.
    pub fn read(
        os: &dyn Os,
        services: &Services,
        policy: Option<&Path>,
        baseline: Option<&Path>,
    ) -> Result<Checks> {
        let policy = policy
            .map(|path| -> Result<_> {
                let text = read_file(os, path, "policy")?;
                let parsed = policy::parse(&text)
                    .map_err(|error| UsageError(error.in_file(&path.display().to_string())))?;
                Ok((path.display().to_string(), parsed))
            })
            .transpose()?;
        let baseline = baseline
            .map(|path| -> Result<_> {
                let text = read_file(os, path, "baseline")?;
                let endpoints = drift::parse_baseline(&text, services)
                    .map_err(|why| UsageError(format!("baseline {}: {why}", path.display())))?;
                Ok((path.display().to_string(), endpoints))
            })
            .transpose()?;
        Ok(Checks { policy, baseline })
    }
}

/// What an audit concludes about gathered listeners.
pub struct Judged {
    pub findings: Vec<rules::Finding>,
    /// `None` without a policy.
    pub violations: Option<Vec<policy::Violation>>,
    /// `None` without a baseline.
    pub drift: Option<drift::Drift>,
    pub summary: AuditSummary,
}

/// The findings, the policy's violations and the drift from the baseline.
pub fn judge(checks: &Checks, gathered: &Gathered, fail_on: rules::FailOn) -> Judged {
    let listeners = &gathered.listeners;
    let mut findings = rules::evaluate(listeners);
    let mut violations = None;
    if let Some((_, policy)) = &checks.policy {
        // The policy's author accepted these listeners: their findings are kept, marked.
        for finding in &mut findings {
            finding.allowed = listeners
                .get(finding.listener)
                .is_some_and(|listener| policy.allows(listener));
        }
        let hosts: Vec<String> = gathered.hosts.iter().map(|h| h.host.clone()).collect();
        violations = Some(policy.check(&hosts, listeners));
    }
    let drift = checks.baseline.as_ref().map(|(_, before)| {
        let now: Vec<drift::Endpoint> = listeners.iter().map(drift::Endpoint::of).collect();
        drift::compare(before, &now)
    });
    let summary = AuditSummary::of(
        listeners,
        &findings,
        violations.as_ref().map(Vec::len),
        drift.as_ref(),
        fail_on,
    );
    Judged {
        findings,
        violations,
        drift,
        summary,
    }
}

pub fn run(args: &AuditArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let services = context.services();
    let checks = Checks::read(
        os,
        services,
        args.policy.as_deref(),
        args.baseline.as_deref(),
    )?;
    let gathered = if args.input.is_empty() {
        let mut scan = scan_listeners(context, args.scan.backend, &args.scan.netns())?;
        let mut gathered = gather_live(context, &mut scan, args.scan.backend)?;
        if let Some(mode) = args.probe {
            probe_live(context, &scan, &mut gathered.listeners, mode);
        }
        gathered
    } else {
        gather_snapshots(os, &args.input, services)?
    };
    let judged = judge(&checks, &gathered, args.fail_on);
    let per_host = args.summary.then(|| {
        let hosts: Vec<String> = gathered.hosts.iter().map(|h| h.host.clone()).collect();
        outcome::per_host(
            &hosts,
            &gathered.listeners,
            &judged.findings,
            judged.violations.as_deref(),
            judged.drift.as_ref(),
            args.fail_on,
        )
    });
    let audit = Audit {
        hosts: &gathered.hosts,
        listeners: &gathered.listeners,
        findings: &judged.findings,
        policy: checks
            .policy
            .as_ref()
            .zip(judged.violations.as_deref())
            .map(|((file, policy), violations)| PolicyOutcome {
                file,
                policy,
                violations,
            }),
        drift: checks
            .baseline
            .as_ref()
            .zip(judged.drift.as_ref())
            .map(|((file, _), drift)| DriftOutcome { file, drift }),
        summary: &judged.summary,
        per_host: per_host.as_deref(),
        warnings: &gathered.warnings,
    };
    let output = &mut context.output;
    output.warnings(&gathered.warnings)?;
    if args.json.json {
        report::json(&audit, output)?;
    } else {
        report::text(&audit, args.listeners, &output.style, output.out)?;
    }
    Ok(if judged.summary.passed {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

/// Every socket of this host's scan that an audit needs: TCP listeners and bound UDP.
pub fn scan_listeners(
    context: &Context,
    backend: Backend,
    netns: &NetnsSelection,
) -> Result<scan::Scan> {
    let query = Query {
        states: vec![State::Listen, State::Unconn],
        ..Query::default()
    };
    scan_host(context, &query, backend, netns)
}

/// This host's sockets the query asks for, with every owner, user and service name.
pub fn scan_host(
    context: &Context,
    query: &Query,
    backend: Backend,
    netns: &NetnsSelection,
) -> Result<scan::Scan> {
    let names = Names {
        services: Some(context.services()),
        users: true,
    };
    scan::scan(context.os, query, backend, &Source::Live, netns, names)
        .map_err(|error| error.context("cannot read this host's socket tables"))
}

/// The listeners of a scan of this host (its TCP listeners and bound UDP sockets; other
/// sockets are passed over), judged by the firewall, and the ports it forwards.
pub fn gather_live(context: &Context, scan: &mut scan::Scan, backend: Backend) -> Result<Gathered> {
    let os = context.os;
    let services = context.services();
    let mut warnings = std::mem::take(&mut scan.warnings);
    let interfaces = match os.interfaces(None) {
        Ok(interfaces) => Some(
            interfaces
                .into_iter()
                .map(|a| (a.address, a.interface))
                .collect(),
        ),
        Err(error) => {
            warnings.push(format!(
                "could not list network interfaces ({error}); exposure rests on addresses alone"
            ));
            None
        }
    };
    let view = HostView {
        interfaces,
        bindv6only: Some(os.host_facts(None)?.bindv6only),
    };
    let host = os.hostname();
    let host_of = |entry: &Entry| host_of(&host, entry);
    let firewalls = scan::judge_firewalls(
        os,
        services,
        scan,
        backend,
        view.bindv6only.unwrap_or(false),
    );
    warnings.extend(firewalls.warnings);
    let mut listeners = scan
        .entries
        .iter()
        .zip(firewalls.verdicts)
        .filter(|(entry, _)| entry.socket.state.is_listening())
        .map(|(entry, verdict)| {
            let mut listener = Listener::from_entry(&host_of(entry), entry, &view, services)?;
            listener.firewall = verdict;
            Ok(listener)
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|why| UsageError(format!("a socket of this host could not be audited: {why}")))?;
    for published in &firewalls.published {
        // Named as the namespace's other listeners are: the host, or the host and namespace.
        let host = scan
            .entries
            .iter()
            .find(|e| scan.namespace_of(e).map(|ns| ns.inode) == published.netns)
            .map_or_else(|| host.clone(), host_of);
        listeners.push(forward_listener(&host, published, &view, services));
    }
    sort(&mut listeners);
    let captured_at = context.captured_at();
    let mut names: Vec<String> = scan.entries.iter().map(host_of).collect();
    if names.is_empty() {
        names.push(host.clone());
    }
    names.sort();
    names.dedup();
    Ok(Gathered {
        hosts: names
            .into_iter()
            .map(|host| HostInfo {
                host,
                captured_at: captured_at.clone(),
                source: "live".into(),
            })
            .collect(),
        listeners,
        warnings,
    })
}

/// With several network namespaces (--netns all), each is audited as a host of its own, named
/// after the namespace, so every finding says where it is.
fn host_of(host: &str, entry: &Entry) -> String {
    match &entry.netns {
        Some(label) => format!("{host} netns {}", label.short()),
        None => host.to_string(),
    }
}

/// `--probe`: what each TCP listener of the scan speaks, set on its listener. Published
/// ports are not probed here: their server is, in its own namespace (`--netns all`).
fn probe_live(context: &Context, scan: &scan::Scan, listeners: &mut [Listener], mode: ProbeMode) {
    let host = context.os.hostname();
    let listening: Vec<(&Entry, Option<&crate::core::model::Namespace>)> = scan
        .entries
        .iter()
        .filter(|entry| entry.socket.state.is_listening())
        .map(|entry| (entry, scan.namespace_of(entry)))
        .collect();
    let probes = super::probe::listeners(context.os, &listening, mode);
    for ((entry, _), probe) in listening.iter().zip(probes) {
        let socket = &entry.socket;
        let label = host_of(&host, entry);
        if let Some(listener) = listeners.iter_mut().find(|l| {
            l.forward.is_none()
                && l.host == label
                && l.proto == socket.proto
                && l.address == socket.local.ip()
                && l.port == socket.local.port()
        }) {
            listener.probe = probe;
        }
    }
}

/// The listener a published port stands for: its host side, with the server at its target.
fn forward_listener(
    host: &str,
    published: &PublishedPort,
    view: &HostView,
    services: &Services,
) -> Listener {
    let forward = &published.forward;
    let address = match &forward.host_addresses[..] {
        [only] if only.first == only.last => only.first,
        _ if forward.to_address.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let server = published.processes.first();
    Listener {
        host: host.to_string(),
        proto: forward.proto,
        family: if address.is_ipv4() { "ipv4" } else { "ipv6" },
        address,
        port: forward.host_ports.first,
        exposure: exposure::classify(address, Some(true), view),
        service: services
            .name(forward.to_port, forward.proto)
            .map(str::to_string),
        uid: None,
        user: server.and_then(|p| p.user.as_deref().map(str::to_string)),
        processes: published.processes.clone(),
        owner_note: None,
        firewall: Some(published.reach.clone()),
        forward: Some(published.target.clone()),
        probe: None,
    }
}

/// Saved `portstat -l --json` snapshots, one host each.
fn gather_snapshots(
    os: &dyn Os,
    paths: &[std::path::PathBuf],
    services: &Services,
) -> Result<Gathered> {
    let mut gathered = Gathered {
        hosts: Vec::new(),
        listeners: Vec::new(),
        warnings: Vec::new(),
    };
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in paths {
        let file = path.display().to_string();
        let text = read_file(os, path, "snapshot")?;
        let snapshot = listener::from_snapshot_text(&text, services)
            .map_err(|why| UsageError(format!("snapshot {file}: {why}")))?;
        if let Some(first) = seen.insert(snapshot.host.clone(), file.clone()) {
            // Findings, policy requirements and drift are per host: two files can't share one.
            return Err(UsageError(format!(
                "snapshots {first} and {file} are both of host {:?}: give one snapshot per host",
                snapshot.host
            ))
            .into());
        }
        gathered.warnings.extend(
            snapshot
                .warnings
                .iter()
                .map(|warning| format!("{}: {warning}", snapshot.host)),
        );
        gathered.hosts.push(HostInfo {
            host: snapshot.host,
            captured_at: snapshot.captured_at,
            source: file,
        });
        gathered.listeners.extend(snapshot.listeners);
    }
    sort(&mut gathered.listeners);
    Ok(gathered)
}

fn sort(listeners: &mut [Listener]) {
    listeners.sort_by(|a, b| {
        (&a.host, a.port, a.proto, a.address).cmp(&(&b.host, b.port, b.proto, b.address))
    });
}

/// A file the user named, or standard input for `-`; failing to read it is a usage error.
fn read_file(os: &dyn Os, path: &Path, what: &str) -> Result<String> {
    os.read_user_file(path).map_err(|error| {
        UsageError(format!("cannot read {what} {}: {error}", path.display())).into()
    })
}
