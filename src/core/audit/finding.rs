//! What the audit's rules find: shared by the port and owner rules (`rules`) and the probe's
//! (`probe_rules`).

use serde::Serialize;

/// Ordered from least to most serious, so `>=` compares against `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub const DESCENDING: [Severity; 4] = [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index into the audited listeners.
    pub listener: usize,
    pub rule: &'static str,
    pub severity: Severity,
    /// The port rule's service, or `None` for the rules about owners and binding.
    pub service: Option<&'static str>,
    pub reason: String,
    /// A policy `[[allow]]` accepts this listener: reported, but it does not fail the run.
    pub allowed: bool,
    /// The firewall lets no new connection through to this listener: reported, but it does
    /// not fail the run.
    pub blocked: bool,
}
