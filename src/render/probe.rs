//! How `--probe`'s results read: a short cell for `audit`'s PROBE column, and `who`'s line.

use crate::core::audit::probe_rules::{EXPIRING_DAYS, NEVER_SEND};
use crate::core::probe::{Probe, Protocol, TlsFacts};
use crate::core::text::count;

/// `TLS1.3, expired`, `ssh`, `http`, `silent (withheld)`: what the PROBE column shows.
pub fn cell(probe: Option<&Probe>) -> String {
    let Some(probe) = probe else {
        return "-".into();
    };
    match (&probe.tls, probe.protocol) {
        (Some(tls), _) => {
            let mut parts = vec![tls.version.clone()];
            parts.extend(warnings(tls));
            parts.join(", ")
        }
        (None, Protocol::Silent) if probe.withheld.is_some() => "silent (withheld)".into(),
        (None, protocol) => protocol.as_str().into(),
    }
}

/// What is wrong with a certificate or the versions, in a few words each.
fn warnings(tls: &TlsFacts) -> Vec<String> {
    let mut found = Vec::new();
    match (tls.expired, tls.days_left) {
        (Some(true), _) => found.push("expired".into()),
        (Some(false), Some(days)) if days < EXPIRING_DAYS => {
            found.push(format!("expires in {}", count(days as usize, "day")));
        }
        _ => {}
    }
    if tls.self_signed == Some(true) {
        found.push("self-signed".into());
    }
    found.extend(
        tls.also_accepts
            .iter()
            .map(|version| format!("also {version}")),
    );
    found
}

/// `who`'s line: everything the probe learnt, in one sentence.
pub fn line(probe: &Probe) -> String {
    let mut text = format!("Probe {}: {}", probe.address, probe.protocol.as_str());
    if let Some(tls) = &probe.tls {
        text.push_str(&format!(" {} {}", tls.version, tls.cipher));
        if let Some(subject) = &tls.subject {
            text.push_str(&format!("; certificate {subject}"));
            match (&tls.issuer, tls.self_signed) {
                (_, Some(true)) => text.push_str(" (self-signed)"),
                (Some(issuer), _) => text.push_str(&format!(", issued by {issuer}")),
                _ => {}
            }
            if !tls.sans.is_empty() {
                text.push_str(&format!(", for {}", tls.sans.join(", ")));
            }
            if let (Some(before), Some(after)) = (&tls.not_before, &tls.not_after) {
                text.push_str(&format!(", valid {before} to {after}"));
            }
            match (tls.expired, tls.days_left) {
                (Some(true), Some(days)) => text.push_str(&format!(
                    ": EXPIRED {} ago",
                    count(days.unsigned_abs() as usize, "day")
                )),
                (Some(false), Some(days)) => {
                    text.push_str(&format!(" ({} left)", count(days as usize, "day")));
                }
                _ => {}
            }
        }
        if !tls.also_accepts.is_empty() {
            text.push_str(&format!(
                "; also accepts {} (deprecated)",
                tls.also_accepts.join(" and ")
            ));
        }
    }
    if let Some(banner) = &probe.banner {
        text.push_str(&format!(", \"{banner}\""));
    }
    if let Some(id) = probe.withheld {
        let why = NEVER_SEND
            .iter()
            .find(|entry| entry.id == id)
            .map_or("", |entry| entry.why);
        text.push_str(&format!("; nothing was sent to it ({id}: {why})"));
    }
    if let Some(note) = &probe.note {
        text.push_str(&format!("; {note}"));
    }
    text
}
