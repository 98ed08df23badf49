//! Whether an audit passes: the findings at or above `--fail-on` that no policy allows, the
//! policy's violations and the drift, counted. Pass is exit status 0, fail 1.

use serde::Serialize;

use super::drift::Drift;
use super::listener::Listener;
use super::policy::Violation;
use super::rules::{FailOn, Finding, Severity};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
}

impl Counts {
    pub fn of(&self, severity: Severity) -> usize {
        match severity {
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Info => self.info,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    pub listeners: usize,
    pub beyond_loopback: usize,
    /// Every finding by severity, allowed ones included.
    pub findings: Counts,
    /// Findings on listeners a policy `[[allow]]` accepts: they do not fail the run.
    pub allowed: usize,
    /// Findings on listeners the firewall blocks: they do not fail the run either.
    pub blocked: usize,
    /// Findings that are not allowed and at or above `fail_on`.
    pub failing_findings: usize,
    /// `null` without `--policy`.
    pub violations: Option<usize>,
    /// `null` without `--baseline`.
    pub new: Option<usize>,
    pub gone: Option<usize>,
    /// Listeners whose firewall verdict changed since the baseline; `null` without it.
    pub changed: Option<usize>,
    pub fail_on: &'static str,
    /// Exit status 0 when true, 1 when false.
    pub passed: bool,
}

impl AuditSummary {
    pub fn of(
        listeners: &[Listener],
        findings: &[Finding],
        violations: Option<usize>,
        drift: Option<&Drift>,
        fail_on: FailOn,
    ) -> AuditSummary {
        let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
        let failing_findings = fail_on.threshold().map_or(0, |threshold| {
            findings
                .iter()
                .filter(|f| !f.allowed && !f.blocked && f.severity >= threshold)
                .count()
        });
        let passed = failing_findings == 0
            && violations.unwrap_or(0) == 0
            && drift.is_none_or(Drift::is_empty);
        AuditSummary {
            listeners: listeners.len(),
            beyond_loopback: listeners
                .iter()
                .filter(|l| l.exposure.beyond_loopback())
                .count(),
            findings: Counts {
                high: count(Severity::High),
                medium: count(Severity::Medium),
                low: count(Severity::Low),
                info: count(Severity::Info),
            },
            allowed: findings.iter().filter(|f| f.allowed).count(),
            blocked: findings.iter().filter(|f| f.blocked).count(),
            failing_findings,
            violations,
            new: drift.map(|d| d.new.len()),
            gone: drift.map(|d| d.gone.len()),
            changed: drift.map(|d| d.changed.len()),
            fail_on: fail_on.as_str(),
            passed,
        }
    }
}

/// One host's part of an audit of several (`audit --input ... --summary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    pub host: String,
    #[serde(flatten)]
    pub summary: AuditSummary,
}

/// The audit summary of each host in `hosts`, from the whole audit's listeners, findings,
/// violations and drift: what `--fail-on` would say of each host alone.
pub fn per_host(
    hosts: &[String],
    listeners: &[Listener],
    findings: &[Finding],
    violations: Option<&[Violation]>,
    drift: Option<&Drift>,
    fail_on: FailOn,
) -> Vec<HostSummary> {
    hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let on_host =
                |listener: usize| listeners.get(listener).is_some_and(|l| &l.host == host);
            let own: Vec<Listener> = listeners
                .iter()
                .filter(|l| &l.host == host)
                .cloned()
                .collect();
            let own_findings: Vec<Finding> = findings
                .iter()
                .filter(|f| on_host(f.listener))
                .cloned()
                .collect();
            let own_violations = violations.map(|violations| {
                violations
                    .iter()
                    .filter(|v| match **v {
                        Violation::NotAllowed { listener } => on_host(listener),
                        Violation::Missing { host, .. } => host == index,
                    })
                    .count()
            });
            let own_drift = drift.map(|drift| Drift {
                new: drift
                    .new
                    .iter()
                    .filter(|e| &e.host == host)
                    .cloned()
                    .collect(),
                gone: drift
                    .gone
                    .iter()
                    .filter(|e| &e.host == host)
                    .cloned()
                    .collect(),
                changed: drift
                    .changed
                    .iter()
                    .filter(|c| &c.now.host == host)
                    .cloned()
                    .collect(),
            });
            HostSummary {
                host: host.clone(),
                summary: AuditSummary::of(
                    &own,
                    &own_findings,
                    own_violations,
                    own_drift.as_ref(),
                    fail_on,
                ),
            }
        })
        .collect()
}
