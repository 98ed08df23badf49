//! The audit's report: a table and a one-line summary for people, one JSON document (schema 1,
//! documented in README.md) for scripts; and the summary that decides the exit status.

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::core::audit::drift::{Drift, Endpoint, VerdictChange};
use crate::core::audit::listener::Listener;
use crate::core::audit::outcome::{AuditSummary, HostSummary};
use crate::core::audit::policy::{Policy, Violation};
use crate::core::audit::rules::{Finding, Severity};

use crate::core::model::Proto;
use crate::core::snapshot::SCHEMA;
use crate::core::text::plural;
use crate::render::table::{Column, Give, Grid};
use crate::render::{Output, Paint, Style, printable, verdict_cell};

/// A host the audit looked at, and where its listeners came from.
#[derive(Debug, Clone, Serialize)]
pub struct HostInfo {
    pub host: String,
    pub captured_at: String,
    /// `live`, or the snapshot file it was read from.
    pub source: String,
}

pub struct PolicyOutcome<'a> {
    pub file: &'a str,
    pub policy: &'a Policy,
    pub violations: &'a [Violation],
}

pub struct DriftOutcome<'a> {
    pub file: &'a str,
    pub drift: &'a Drift,
}

/// Everything one run found.
pub struct Audit<'a> {
    pub hosts: &'a [HostInfo],
    pub listeners: &'a [Listener],
    pub findings: &'a [Finding],
    pub policy: Option<PolicyOutcome<'a>>,
    pub drift: Option<DriftOutcome<'a>>,
    pub summary: &'a AuditSummary,
    /// With `--summary`: each host's part, shown instead of the findings.
    pub per_host: Option<&'a [HostSummary]>,
    pub warnings: &'a [String],
}

/// The last line of the text report.
fn summary_line(summary: &AuditSummary, style: &Style) -> String {
    let counts: Vec<String> = Severity::DESCENDING
        .iter()
        .map(|&s| format!("{} {}", summary.findings.of(s), s.as_str()))
        .collect();
    let mut excused = Vec::new();
    if summary.allowed > 0 {
        excused.push(format!("{} allowed by policy", summary.allowed));
    }
    if summary.blocked > 0 {
        excused.push(format!(
            "{} on listeners the firewall blocks",
            summary.blocked
        ));
    }
    let allowed = if excused.is_empty() {
        String::new()
    } else {
        format!(" ({})", excused.join(", "))
    };
    let mut parts = vec![
        format!(
            "{} {}, {} beyond loopback",
            summary.listeners,
            plural(summary.listeners, "listener"),
            summary.beyond_loopback
        ),
        format!("findings {}{allowed}", counts.join(", ")),
    ];
    if let Some(violations) = summary.violations {
        parts.push(format!(
            "policy {violations} {}",
            plural(violations, "violation")
        ));
    }
    if let (Some(new), Some(gone)) = (summary.new, summary.gone) {
        let changed = match summary.changed {
            Some(changed) if changed > 0 => {
                format!(", {changed} firewall {}", plural(changed, "change"))
            }
            _ => String::new(),
        };
        parts.push(format!("drift {new} new, {gone} gone{changed}"));
    }
    let verdict = style.paint(Paint::Outcome, if summary.passed { "pass" } else { "FAIL" });
    format!(
        "Summary: {}; {verdict} (--fail-on {})",
        parts.join("; "),
        summary.fail_on
    )
}

pub fn text(
    audit: &Audit,
    show_listeners: bool,
    style: &Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let several_hosts = audit.hosts.len() > 1;
    if let Some(per_host) = audit.per_host {
        host_table(per_host, audit.hosts, style, out)?;
        return writeln!(out, "\n{}", summary_line(audit.summary, style));
    }
    if show_listeners {
        listener_table(audit, several_hosts, style, out)?;
        writeln!(out)?;
    }
    if audit.findings.is_empty() {
        writeln!(out, "No findings.")?;
    } else {
        finding_table(audit, several_hosts, style, out)?;
    }
    if let Some(policy) = &audit.policy {
        writeln!(
            out,
            "\nPolicy {}: {} {}",
            printable(policy.file),
            policy.violations.len(),
            plural(policy.violations.len(), "violation")
        )?;
        for violation in policy.violations {
            let message = violation_message(audit, policy, violation);
            writeln!(out, "  {}", printable(&message))?;
        }
    }
    if let Some(drift) = &audit.drift {
        writeln!(
            out,
            "\nDrift since {}: {} new, {} gone, {} firewall {}",
            printable(drift.file),
            drift.drift.new.len(),
            drift.drift.gone.len(),
            drift.drift.changed.len(),
            plural(drift.drift.changed.len(), "change")
        )?;
        let changes = [("new", &drift.drift.new), ("gone", &drift.drift.gone)];
        for (change, endpoints) in changes {
            for endpoint in endpoints {
                let host = if several_hosts {
                    format!("{}: ", endpoint.host)
                } else {
                    String::new()
                };
                let line = format!("{host}{}", endpoint.label());
                writeln!(out, "  {change:<5} {}", printable(&line))?;
            }
        }
        for change in &drift.drift.changed {
            let host = if several_hosts {
                format!("{}: ", change.now.host)
            } else {
                String::new()
            };
            let line = format!(
                "{host}{}: firewall {} -> {}",
                change.now.label(),
                change.before.as_str(),
                change.after.as_str()
            );
            writeln!(out, "  changed {}", printable(&line))?;
        }
    }
    writeln!(out, "\n{}", summary_line(audit.summary, style))
}

fn finding_table(
    audit: &Audit,
    several_hosts: bool,
    style: &Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut columns = vec![
        Column::new("SEVERITY", Give::Whole).painted(Paint::Severity),
        Column::new("PORT", Give::Whole),
        Column::new("ADDRESS", Give::Whole),
        Column::new("EXPOSURE", Give::Shorten(9)),
        Column::new("FIREWALL", Give::Shorten(7)).painted(Paint::Verdict),
        Column::new("SERVICE", Give::Drop(1)),
        Column::new("PROCESS", Give::Shorten(9)),
        Column::new("REASON", Give::Wrap(18)),
    ];
    // Only with --probe: the column would say `-` on every row otherwise.
    let probed = audit.listeners.iter().any(|l| l.probe.is_some());
    if probed {
        columns.insert(7, Column::new("PROBE", Give::Shorten(6)));
    }
    if several_hosts {
        columns.insert(0, Column::new("HOST", Give::Shorten(10)));
    }
    let mut rows = Vec::new();
    for finding in audit.findings {
        let Some(listener) = audit.listeners.get(finding.listener) else {
            continue;
        };
        // A finding on a blocked listener needs no mark: its FIREWALL cell says `blocked`.
        let severity = if finding.allowed {
            format!("{} (allowed)", finding.severity.as_str())
        } else {
            finding.severity.as_str().to_string()
        };
        let service = finding
            .service
            .map(str::to_string)
            .or_else(|| listener.service.clone())
            .unwrap_or_else(|| "-".into());
        let mut row = vec![
            severity,
            format!("{}/{}", listener.port, listener.proto.as_str()),
            address(listener),
            listener.exposure.describe(),
            firewall(listener),
            service,
            owners(listener),
            finding.reason.clone(),
        ];
        if probed {
            row.insert(7, super::probe::cell(listener.probe.as_ref()));
        }
        if several_hosts {
            row.insert(0, listener.host.clone());
        }
        rows.push(row);
    }
    Grid::new(columns, rows).write(style, out)
}

/// One row per host: what it has and what the audit says of it alone.
fn host_table(
    per_host: &[HostSummary],
    hosts: &[HostInfo],
    style: &Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let columns = vec![
        Column::new("HOST", Give::Shorten(10)),
        Column::new("CAPTURED", Give::Drop(1)),
        Column::new("LISTENERS", Give::Whole),
        Column::new("BEYOND LOOPBACK", Give::Whole),
        Column::new("HIGH", Give::Whole),
        Column::new("MEDIUM", Give::Whole),
        Column::new("LOW", Give::Whole),
        Column::new("INFO", Give::Whole),
        Column::new("VIOLATIONS", Give::Drop(2)),
        Column::new("DRIFT", Give::Drop(2)),
        Column::new("RESULT", Give::Whole).painted(Paint::Outcome),
    ];
    let optional = |n: Option<usize>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows = per_host
        .iter()
        .map(|part| {
            let summary = &part.summary;
            let captured = hosts
                .iter()
                .find(|h| h.host == part.host)
                .map_or_else(|| "-".to_string(), |h| h.captured_at.clone());
            let drift = match (summary.new, summary.gone, summary.changed) {
                (Some(new), Some(gone), Some(changed)) => Some(new + gone + changed),
                _ => None,
            };
            vec![
                part.host.clone(),
                captured,
                summary.listeners.to_string(),
                summary.beyond_loopback.to_string(),
                summary.findings.high.to_string(),
                summary.findings.medium.to_string(),
                summary.findings.low.to_string(),
                summary.findings.info.to_string(),
                optional(summary.violations),
                optional(drift),
                if summary.passed { "pass" } else { "fail" }.to_string(),
            ]
        })
        .collect();
    Grid::new(columns, rows).write(style, out)
}

fn listener_table(
    audit: &Audit,
    several_hosts: bool,
    style: &Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut columns = vec![
        Column::new("PORT", Give::Whole),
        Column::new("ADDRESS", Give::Whole),
        Column::new("EXPOSURE", Give::Shorten(10)),
        Column::new("FIREWALL", Give::Shorten(7)).painted(Paint::Verdict),
        Column::new("SERVICE", Give::Drop(1)),
        Column::new("PROCESS", Give::Shorten(10)),
    ];
    let probed = audit.listeners.iter().any(|l| l.probe.is_some());
    if probed {
        columns.push(Column::new("PROBE", Give::Shorten(6)));
    }
    if several_hosts {
        columns.insert(0, Column::new("HOST", Give::Shorten(10)));
    }
    let mut rows = Vec::new();
    let mut listeners: Vec<&Listener> = audit.listeners.iter().collect();
    listeners.sort_by(|a, b| {
        (&a.host, a.port, a.proto, a.address).cmp(&(&b.host, b.port, b.proto, b.address))
    });
    for listener in listeners {
        let mut row = vec![
            format!("{}/{}", listener.port, listener.proto.as_str()),
            address(listener),
            listener.exposure.describe(),
            firewall(listener),
            listener.service.clone().unwrap_or_else(|| "-".into()),
            owners(listener),
        ];
        if probed {
            row.push(super::probe::cell(listener.probe.as_ref()));
        }
        if several_hosts {
            row.insert(0, listener.host.clone());
        }
        rows.push(row);
    }
    Grid::new(columns, rows).write(style, out)
}

/// The listener's address; for a published port, also where it is forwarded to.
fn address(listener: &Listener) -> String {
    match &listener.forward {
        Some(forward) => format!(
            "{} -> {}",
            listener.address,
            std::net::SocketAddr::new(forward.to_address, forward.to_port)
        ),
        None => listener.address.to_string(),
    }
}

fn firewall(listener: &Listener) -> String {
    verdict_cell(listener.firewall.as_ref())
}

/// `pid/name`, or why no owner is shown, as the listing prints it.
fn owners(listener: &Listener) -> String {
    let why_none = listener.owner_note.map_or("-", |note| note.describe());
    crate::render::owner_cell(
        listener.processes.iter().map(|p| (p.pid, p.name.as_str())),
        why_none,
    )
}

fn violation_message(audit: &Audit, policy: &PolicyOutcome, violation: &Violation) -> String {
    let several_hosts = audit.hosts.len() > 1;
    match *violation {
        Violation::NotAllowed { listener } => {
            let Some(listener) = audit.listeners.get(listener) else {
                return "a listener no [[allow]] rule matches".into();
            };
            let host = if several_hosts {
                format!("{}: ", listener.host)
            } else {
                String::new()
            };
            format!(
                "{host}{} on {}: no [[allow]] rule matches",
                listener.label(),
                listener.exposure.class.as_str()
            )
        }
        Violation::Missing { host, require } => {
            let name = audit.hosts.get(host).map_or("?", |h| h.host.as_str());
            let Some(require) = policy.policy.require.get(require) else {
                return format!("{name}: a required listener is missing");
            };
            let host = if several_hosts {
                format!("{name}: ")
            } else {
                String::new()
            };
            format!(
                "{host}no listener on {} ([[require]] at line {})",
                require.describe(),
                require.line
            )
        }
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: u32,
    hosts: &'a [HostInfo],
    listeners: &'a [Listener],
    findings: Vec<JsonFinding<'a>>,
    policy: Option<JsonPolicy>,
    drift: Option<JsonDrift<'a>>,
    summary: &'a AuditSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_host: Option<&'a [HostSummary]>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    host: &'a str,
    rule: &'static str,
    severity: Severity,
    proto: Proto,
    address: IpAddr,
    port: u16,
    exposure: &'static str,
    service: Option<&'a str>,
    processes: Vec<JsonOwner<'a>>,
    reason: &'a str,
    allowed: bool,
    /// The firewall blocks every new connection to the listener: the finding does not fail.
    blocked: bool,
}

#[derive(Serialize)]
struct JsonOwner<'a> {
    pid: u32,
    name: &'a str,
}

#[derive(Serialize)]
struct JsonPolicy {
    file: String,
    violations: Vec<JsonViolation>,
}

#[derive(Serialize)]
struct JsonViolation {
    /// `not-allowed` or `missing`.
    kind: &'static str,
    host: String,
    proto: Option<Proto>,
    address: Option<IpAddr>,
    port: Option<u16>,
    /// The `[[require]]`'s port as written, and its line.
    required: Option<String>,
    line: Option<usize>,
    processes: Vec<String>,
    message: String,
}

#[derive(Serialize)]
struct JsonDrift<'a> {
    baseline: &'a str,
    new: &'a [Endpoint],
    gone: &'a [Endpoint],
    changed: &'a [VerdictChange],
}

pub fn json(audit: &Audit, output: &mut Output) -> io::Result<()> {
    let findings = audit
        .findings
        .iter()
        .filter_map(|finding| {
            let listener = audit.listeners.get(finding.listener)?;
            Some(JsonFinding {
                host: &listener.host,
                rule: finding.rule,
                severity: finding.severity,
                proto: listener.proto,
                address: listener.address,
                port: listener.port,
                exposure: listener.exposure.class.as_str(),
                service: finding.service.or(listener.service.as_deref()),
                processes: listener
                    .processes
                    .iter()
                    .map(|p| JsonOwner {
                        pid: p.pid,
                        name: &p.name,
                    })
                    .collect(),
                reason: &finding.reason,
                allowed: finding.allowed,
                blocked: finding.blocked,
            })
        })
        .collect();
    let policy = audit.policy.as_ref().map(|policy| JsonPolicy {
        file: policy.file.to_string(),
        violations: policy
            .violations
            .iter()
            .map(|violation| json_violation(audit, policy, violation))
            .collect(),
    });
    let report = JsonReport {
        schema: SCHEMA,
        hosts: audit.hosts,
        listeners: audit.listeners,
        findings,
        policy,
        drift: audit.drift.as_ref().map(|drift| JsonDrift {
            baseline: drift.file,
            new: &drift.drift.new,
            gone: &drift.drift.gone,
            changed: &drift.drift.changed,
        }),
        summary: audit.summary,
        per_host: audit.per_host,
        warnings: audit.warnings,
    };
    output.json(&report)
}

fn json_violation(audit: &Audit, policy: &PolicyOutcome, violation: &Violation) -> JsonViolation {
    let message = violation_message(audit, policy, violation);
    match *violation {
        Violation::NotAllowed { listener } => {
            let listener = audit.listeners.get(listener);
            JsonViolation {
                kind: "not-allowed",
                host: listener.map(|l| l.host.clone()).unwrap_or_default(),
                proto: listener.map(|l| l.proto),
                address: listener.map(|l| l.address),
                port: listener.map(|l| l.port),
                required: None,
                line: None,
                processes: listener.map_or_else(Vec::new, |l| {
                    l.process_names().into_iter().map(str::to_string).collect()
                }),
                message,
            }
        }
        Violation::Missing { host, require } => {
            let require = policy.policy.require.get(require);
            JsonViolation {
                kind: "missing",
                host: audit
                    .hosts
                    .get(host)
                    .map(|h| h.host.clone())
                    .unwrap_or_default(),
                proto: require.and_then(|r| r.proto),
                address: None,
                port: None,
                required: require.map(|r| r.port_text.clone()),
                line: require.map(|r| r.line),
                processes: Vec::new(),
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::exposure::{self, HostView};
    use crate::core::audit::rules::FailOn;
    use crate::core::audit::{outcome, policy, rules};
    use crate::core::model::Process;
    use std::sync::Arc;

    fn listener(host: &str, address: &str, port: u16) -> Listener {
        let address = address.parse().expect("test address");
        Listener {
            host: host.into(),
            proto: Proto::Tcp,
            family: "ipv4",
            address,
            port,
            exposure: exposure::classify(address, None, &HostView::default()),
            service: Some("svc".into()),
            uid: Some(0),
            user: Some("root".into()),
            processes: vec![Arc::new(Process {
                pid: 9,
                name: "server".into(),
                user: Some("root".into()),
                cmdline: "server".into(),
                started: None,
                ppid: None,
            })],
            owner_note: None,
            firewall: None,
            forward: None,
            probe: None,
        }
    }

    const PLAIN: Style = Style {
        terminal: false,
        width: None,
        color: false,
    };

    fn host(name: &str) -> HostInfo {
        HostInfo {
            host: name.into(),
            captured_at: "2026-01-01T00:00:00Z".into(),
            source: "live".into(),
        }
    }

    #[test]
    fn exit_decision_counts_failing_findings_violations_and_drift() {
        let listeners = vec![listener("h", "0.0.0.0", 6379), listener("h", "0.0.0.0", 80)];
        let mut findings = rules::evaluate(&listeners);
        assert_eq!(findings.len(), 2);
        let summary = AuditSummary::of(&listeners, &findings, None, None, FailOn::High);
        assert!(!summary.passed);
        assert_eq!(summary.failing_findings, 1);
        assert!(AuditSummary::of(&listeners, &findings, None, None, FailOn::Never).passed);
        findings[0].allowed = true;
        let allowed = AuditSummary::of(&listeners, &findings, None, None, FailOn::High);
        assert!(allowed.passed && allowed.allowed == 1);
        assert!(!AuditSummary::of(&listeners, &findings, None, None, FailOn::Info).passed);
        assert!(!AuditSummary::of(&listeners, &findings, Some(1), None, FailOn::Never).passed);
        let drift = Drift {
            new: vec![Endpoint::of(&listeners[0])],
            gone: Vec::new(),
            changed: Vec::new(),
        };
        let drifted = AuditSummary::of(&listeners, &findings, Some(0), Some(&drift), FailOn::Never);
        assert!(!drifted.passed);
        assert_eq!(
            summary_line(&drifted, &PLAIN),
            "Summary: 2 listeners, 2 beyond loopback; findings 1 high, 0 medium, 0 low, 1 info \
             (1 allowed by policy); policy 0 violations; drift 1 new, 0 gone; FAIL (--fail-on never)"
        );
    }

    #[test]
    fn text_report_has_a_host_column_only_for_several_hosts() {
        let listeners = vec![
            listener("a", "0.0.0.0", 6379),
            listener("b", "10.0.0.5", 23),
        ];
        let findings = rules::evaluate(&listeners);
        let policy =
            policy::parse("[[allow]]\nport = 22\n[[require]]\nport = 443\n").expect("valid policy");
        let hosts = vec![host("a"), host("b")];
        let violations = policy.check(&["a".into(), "b".into()], &listeners);
        let summary = AuditSummary::of(
            &listeners,
            &findings,
            Some(violations.len()),
            None,
            FailOn::High,
        );
        let audit = Audit {
            hosts: &hosts,
            listeners: &listeners,
            findings: &findings,
            policy: Some(PolicyOutcome {
                file: "p.toml",
                policy: &policy,
                violations: &violations,
            }),
            drift: None,
            summary: &summary,
            per_host: None,
            warnings: &[],
        };
        let mut out = Vec::new();
        text(&audit, false, &PLAIN, &mut out).expect("write to memory");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST  SEVERITY  PORT"), "{text}");
        assert!(
            lines[1].starts_with("a     high      6379/tcp  0.0.0.0"),
            "{text}"
        );
        assert!(text.contains("Policy p.toml: 4 violations"), "{text}");
        assert!(
            text.contains("  b: tcp 10.0.0.5:23 (server) on private: no [[allow]] rule matches")
        );
        assert!(text.contains("  a: no listener on port 443 ([[require]] at line 3)"));
        assert!(
            lines.last().is_some_and(
                |l| l.starts_with("Summary: 2 listeners, 2 beyond loopback; findings 2 high")
            ),
            "{text}"
        );

        let out = crate::render::captured(PLAIN, |output| json(&audit, output));
        let document: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(document["schema"], 1);
        assert_eq!(document["findings"][0]["rule"], "redis");
        assert_eq!(document["findings"][0]["exposure"], "all-interfaces");
        assert_eq!(document["listeners"][0]["exposure"], "all-interfaces");
        assert_eq!(
            document["listeners"][0]["dual_stack"],
            serde_json::Value::Null
        );
        assert_eq!(document["policy"]["violations"][2]["kind"], "missing");
        assert_eq!(document["policy"]["violations"][2]["required"], "443");
        assert_eq!(document["summary"]["passed"], false);
        assert_eq!(document["drift"], serde_json::Value::Null);
    }

    #[test]
    fn the_per_host_summary_judges_each_host_alone() {
        let listeners = vec![
            listener("a", "0.0.0.0", 6379),
            listener("a", "0.0.0.0", 22),
            listener("b", "127.0.0.1", 6379),
        ];
        let findings = rules::evaluate(&listeners);
        let policy = policy::parse("[[require]]\nport = 443\n").expect("valid policy");
        let names = ["a".to_string(), "b".to_string()];
        let violations = policy.check(&names, &listeners);
        let summary = AuditSummary::of(
            &listeners,
            &findings,
            Some(violations.len()),
            None,
            FailOn::High,
        );
        let per_host = outcome::per_host(
            &names,
            &listeners,
            &findings,
            Some(&violations),
            None,
            FailOn::High,
        );
        assert_eq!(per_host[0].summary.listeners, 2);
        assert_eq!(per_host[1].summary.beyond_loopback, 0);
        // No [[allow]]: each listener is a violation of its host, and each host misses 443.
        assert_eq!(per_host[0].summary.violations, Some(3));
        assert_eq!(per_host[1].summary.violations, Some(2));
        let hosts = vec![host("a"), host("b")];
        let audit = Audit {
            hosts: &hosts,
            listeners: &listeners,
            findings: &findings,
            policy: None,
            drift: None,
            summary: &summary,
            per_host: Some(&per_host),
            warnings: &[],
        };
        let mut out = Vec::new();
        text(&audit, false, &PLAIN, &mut out).expect("write to memory");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST  CAPTURED"), "{text}");
        let a: Vec<&str> = lines[1].split_whitespace().collect();
        let b: Vec<&str> = lines[2].split_whitespace().collect();
        // a: 2 listeners, both beyond loopback, Redis is high; b: loopback only, no finding.
        assert_eq!((a[0], a[2], a[3], a[4]), ("a", "2", "2", "1"), "{text}");
        assert_eq!(a.last(), Some(&"fail"), "{text}");
        assert_eq!((b[0], b[2], b[3], b[4]), ("b", "1", "0", "0"), "{text}");
        assert_eq!(b.last(), Some(&"fail"), "b misses 443: {text}");
        assert!(!text.contains("SEVERITY"), "no findings table: {text}");
    }
}
