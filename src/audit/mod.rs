//! `portstat audit`: what accepts connections from beyond this machine, is any of it
//! dangerous, does it keep to a policy, and what changed since an approved state.
//!
//! This module gathers (this host's scan, or saved snapshots) and runs; the judging is pure and
//! lives beside it: `exposure` classifies addresses, `rules` finds risks, `policy` checks an
//! allow-list, `drift` compares with a baseline, `render` reports.

pub mod drift;
pub mod exposure;
pub mod listener;
pub mod policy;
pub mod render;
pub mod rules;

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::backend::{Backend, Source};
use crate::cli::AuditArgs;
use crate::error::UsageError;
use crate::filter::{NetnsSelection, Query};
use crate::host::{self, UserNames};
use crate::model::State;
use crate::owners::Stop;
use crate::render::table::Style;
use crate::scan::{self, Names};
use crate::services::Services;
use exposure::HostView;
use listener::Listener;
use render::{Audit, DriftOutcome, HostInfo, PolicyOutcome, Summary};

/// The listeners of every audited host.
struct Gathered {
    hosts: Vec<HostInfo>,
    listeners: Vec<Listener>,
    warnings: Vec<String>,
}

pub fn run(args: &AuditArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    // The files first: a mistake in them is reported before anything is scanned.
    let policy = args
        .policy
        .as_deref()
        .map(|path| -> Result<_> {
            let text = read_file(path, "policy")?;
            let parsed = policy::parse(&text)
                .map_err(|error| UsageError(error.in_file(&path.display().to_string())))?;
            Ok((path.display().to_string(), parsed))
        })
        .transpose()?;
    let baseline = args
        .baseline
        .as_deref()
        .map(|path| -> Result<_> {
            let text = read_file(path, "baseline")?;
            let endpoints = drift::parse_baseline(&text)
                .map_err(|why| UsageError(format!("baseline {}: {why}", path.display())))?;
            Ok((path.display().to_string(), endpoints))
        })
        .transpose()?;

    let gathered = if args.input.is_empty() {
        gather_live(args.backend, &args.netns.clone().unwrap_or_default())?
    } else {
        gather_snapshots(&args.input)?
    };
    let listeners = &gathered.listeners;

    let mut findings = rules::evaluate(listeners);
    let mut violations = None;
    if let Some((_, policy)) = &policy {
        // The policy's author accepted these listeners: their findings are kept, marked.
        for finding in &mut findings {
            finding.allowed = listeners
                .get(finding.listener)
                .is_some_and(|listener| policy.allows(listener));
        }
        let hosts: Vec<String> = gathered.hosts.iter().map(|h| h.host.clone()).collect();
        violations = Some(policy.check(&hosts, listeners));
    }
    let drift = baseline.as_ref().map(|(_, before)| {
        let now: Vec<drift::Endpoint> = listeners.iter().map(drift::Endpoint::of).collect();
        drift::compare(before, &now)
    });
    let summary = Summary::of(
        listeners,
        &findings,
        violations.as_ref().map(Vec::len),
        drift.as_ref(),
        args.fail_on,
    );

    crate::render::write_warnings(&gathered.warnings, err)?;
    let audit = Audit {
        hosts: &gathered.hosts,
        listeners,
        findings: &findings,
        policy: policy
            .as_ref()
            .zip(violations.as_deref())
            .map(|((file, policy), violations)| PolicyOutcome {
                file,
                policy,
                violations,
            }),
        drift: baseline
            .as_ref()
            .zip(drift.as_ref())
            .map(|((file, _), drift)| DriftOutcome { file, drift }),
        summary: &summary,
        warnings: &gathered.warnings,
    };
    if args.json {
        render::json(&audit, std::io::stdout().is_terminal(), out)?;
    } else {
        render::text(&audit, args.listeners, &Style::detect(), out)?;
    }
    out.flush()?;
    Ok(if summary.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// This host's TCP listeners and bound UDP sockets, with every owner.
fn gather_live(backend: Backend, netns: &NetnsSelection) -> Result<Gathered> {
    let users = UserNames::load();
    let query = Query {
        states: vec![State::Listen, State::Unconn],
        ..Query::default()
    };
    let names = Names {
        services: Some(Services::system()),
        users: Some(&users),
    };
    // Exit status 1 means "the audit found something": a scan that could not run is status 2.
    let scan = scan::scan(&query, backend, &Source::Live, netns, names, Stop::Never)
        .map_err(|error| UsageError(format!("cannot read this host's socket tables: {error:#}")))?;
    let mut warnings = scan.warnings;
    let (view, interface_warning) = HostView::live();
    warnings.extend(interface_warning);
    let host = host::hostname();
    // With several network namespaces (--netns all), each is audited as a host of its own,
    // named after the namespace, so every finding says where it is.
    let host_of = |entry: &crate::model::Entry| match &entry.netns {
        Some(label) => format!("{host} netns {}", label.short()),
        None => host.clone(),
    };
    let mut listeners = scan
        .entries
        .iter()
        .map(|entry| Listener::from_entry(&host_of(entry), entry, &view))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|why| UsageError(format!("a socket of this host could not be audited: {why}")))?;
    sort(&mut listeners);
    let captured_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
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

/// Saved `portstat -l --json` snapshots, one host each.
fn gather_snapshots(paths: &[std::path::PathBuf]) -> Result<Gathered> {
    let mut gathered = Gathered {
        hosts: Vec::new(),
        listeners: Vec::new(),
        warnings: Vec::new(),
    };
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in paths {
        let file = path.display().to_string();
        let text = read_file(path, "snapshot")?;
        let snapshot = listener::from_snapshot_text(&text)
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
fn read_file(path: &Path, what: &str) -> Result<String> {
    let read = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|error| {
        UsageError(format!("cannot read {what} {}: {error}", path.display())).into()
    })
}
