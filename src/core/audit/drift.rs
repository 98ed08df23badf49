//! `--baseline FILE`: which listeners are new or gone since an approved state, saved as
//! `portstat -l --json` or as `portstat audit --json`. Pure: text and listeners in, changes out.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::listener::{self, Listener};
use crate::core::firewall::eval::Verdict;
use crate::core::model::Proto;
use crate::core::services::Services;
use crate::core::snapshot;

/// What identifies a listener across time: protocol, address and port, on one host, and the
/// names of the processes holding it where they were seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub proto: Proto,
    pub address: IpAddr,
    pub port: u16,
    /// Sorted, without repeats; empty when the owner was not seen.
    pub processes: Vec<String>,
    /// The firewall's verdict on it, where one was reached (a live audit, or a saved
    /// `audit --json`); a listing snapshot has none.
    pub firewall: Option<Verdict>,
}

impl Endpoint {
    pub fn of(listener: &Listener) -> Endpoint {
        Endpoint {
            host: listener.host.clone(),
            proto: listener.proto,
            address: listener.address,
            port: listener.port,
            processes: listener
                .process_names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            firewall: listener.firewall.as_ref().map(|reach| reach.verdict),
        }
    }

    /// `tcp 0.0.0.0:6379 (redis-server)`.
    pub fn label(&self) -> String {
        let address = std::net::SocketAddr::new(self.address, self.port).to_string();
        if self.processes.is_empty() {
            format!("{} {address}", self.proto.as_str())
        } else {
            format!(
                "{} {address} ({})",
                self.proto.as_str(),
                self.processes.join(", ")
            )
        }
    }

    fn same_socket(&self, other: &Endpoint, ignore_host: bool) -> bool {
        (ignore_host || self.host == other.host)
            && self.proto == other.proto
            && self.address == other.address
            && self.port == other.port
    }
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub new: Vec<Endpoint>,
    pub gone: Vec<Endpoint>,
    /// Listeners still there whose firewall verdict changed (a port that was blocked and is now
    /// open), where both sides have one.
    pub changed: Vec<VerdictChange>,
}

/// A listener of both the baseline and now, judged differently by the firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictChange {
    #[serde(flatten)]
    pub now: Endpoint,
    pub before: Verdict,
    pub after: Verdict,
}

impl Drift {
    pub fn len(&self) -> usize {
        self.new.len() + self.gone.len() + self.changed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Just what a drift check needs from a saved `audit --json`; other fields are ignored. Its
/// values are typed as the report wrote them: `listeners[2].proto: unknown proto "sctp"`.
#[derive(Deserialize)]
struct SavedAudit {
    schema: u32,
    listeners: Option<Vec<SavedListener>>,
}

#[derive(Deserialize)]
struct SavedListener {
    host: String,
    #[serde(deserialize_with = "snapshot::named")]
    proto: Proto,
    #[serde(deserialize_with = "snapshot::ip")]
    address: IpAddr,
    port: u16,
    #[serde(default)]
    processes: Vec<SavedProcess>,
    #[serde(default)]
    firewall: Option<SavedFirewall>,
}

#[derive(Deserialize)]
struct SavedFirewall {
    verdict: Verdict,
}

#[derive(Deserialize)]
struct SavedProcess {
    name: String,
}

/// Reads a baseline: an `audit --json` report (it has `listeners`) or a `portstat --json`
/// snapshot (it has `sockets`, of which the listeners count).
pub fn parse_baseline(text: &str, services: &Services) -> Result<Vec<Endpoint>, String> {
    let schema_error = |schema: u32| {
        format!(
            "audit report schema {schema} is not the schema {} this portstat reads",
            snapshot::SCHEMA
        )
    };
    let audit: SavedAudit = snapshot::from_json(text, "not a portstat snapshot or audit report")
        .map_err(|why| match snapshot::schema_of(text) {
            Some(schema) if schema != snapshot::SCHEMA => schema_error(schema),
            _ => why,
        })?;
    let Some(saved) = audit.listeners else {
        let snapshot = listener::from_snapshot_text(text, services)?;
        return Ok(snapshot.listeners.iter().map(Endpoint::of).collect());
    };
    if audit.schema != snapshot::SCHEMA {
        return Err(schema_error(audit.schema));
    }
    Ok(saved
        .into_iter()
        .map(|saved| {
            let names: BTreeSet<String> = saved.processes.into_iter().map(|p| p.name).collect();
            Endpoint {
                host: saved.host,
                proto: saved.proto,
                address: saved.address,
                port: saved.port,
                processes: names.into_iter().collect(),
                firewall: saved.firewall.map(|f| f.verdict),
            }
        })
        .collect())
}

/// Pairs each current listener with a baseline one on the same protocol, address and port
/// (on the same host); where both name their processes, the names must share one, so a
/// different program on an approved port is drift. Whatever is left over is new or gone.
/// When each side holds a single host they are compared whatever their names, so a baseline
/// captured on a twin (staging) checks production.
pub fn compare(baseline: &[Endpoint], current: &[Endpoint]) -> Drift {
    let hosts = |endpoints: &[Endpoint]| -> BTreeSet<String> {
        endpoints.iter().map(|e| e.host.clone()).collect()
    };
    let ignore_host = hosts(baseline).len() <= 1 && hosts(current).len() <= 1;
    let mut used = vec![false; baseline.len()];
    let mut changed = Vec::new();
    let mut matched = vec![false; current.len()];
    // Exact owners first, so an unnamed socket does not take the match a named one needed.
    let passes: [fn(&Endpoint, &Endpoint) -> bool; 2] = [
        |a, b| a.processes == b.processes,
        |a, b| {
            a.processes.is_empty()
                || b.processes.is_empty()
                || a.processes.iter().any(|name| b.processes.contains(name))
        },
    ];
    for owners_agree in passes {
        for (now, done) in current.iter().zip(matched.iter_mut()) {
            if *done {
                continue;
            }
            let partner = baseline
                .iter()
                .zip(used.iter_mut())
                .find(|(before, taken)| {
                    !**taken && now.same_socket(before, ignore_host) && owners_agree(now, before)
                });
            if let Some((before, taken)) = partner {
                *taken = true;
                *done = true;
                if let (Some(before), Some(after)) = (before.firewall, now.firewall)
                    && before != after
                {
                    changed.push(VerdictChange {
                        now: now.clone(),
                        before,
                        after,
                    });
                }
            }
        }
    }
    let order = |a: &Endpoint, b: &Endpoint| {
        (&a.host, a.port, a.proto, a.address).cmp(&(&b.host, b.port, b.proto, b.address))
    };
    let mut drift = Drift {
        new: current
            .iter()
            .zip(&matched)
            .filter(|(_, done)| !**done)
            .map(|(e, _)| e.clone())
            .collect(),
        gone: baseline
            .iter()
            .zip(&used)
            .filter(|(_, taken)| !**taken)
            .map(|(e, _)| e.clone())
            .collect(),
        changed,
    };
    drift.new.sort_by(order);
    drift.gone.sort_by(order);
    drift.changed.sort_by(|a, b| order(&a.now, &b.now));
    drift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, proto: Proto, address: &str, port: u16, names: &[&str]) -> Endpoint {
        Endpoint {
            host: host.into(),
            proto,
            address: address.parse().expect("test address"),
            port,
            processes: names.iter().map(|n| n.to_string()).collect(),
            firewall: None,
        }
    }

    #[test]
    fn a_port_the_firewall_opened_is_drift_and_an_unjudged_side_is_not() {
        let judged = |port, verdict| Endpoint {
            firewall: Some(verdict),
            ..endpoint("h", Proto::Tcp, "0.0.0.0", port, &["redis-server"])
        };
        let before = vec![judged(6379, Verdict::Blocked), judged(22, Verdict::Open)];
        let now = vec![judged(6379, Verdict::Open), judged(22, Verdict::Open)];
        let drift = compare(&before, &now);
        assert!(drift.new.is_empty() && drift.gone.is_empty());
        assert_eq!(drift.changed.len(), 1);
        assert_eq!(drift.changed[0].now.port, 6379);
        assert_eq!(
            (drift.changed[0].before, drift.changed[0].after),
            (Verdict::Blocked, Verdict::Open)
        );
        assert_eq!(drift.len(), 1);
        // A listing snapshot as baseline has no verdicts: nothing to compare.
        let listing = vec![
            endpoint("h", Proto::Tcp, "0.0.0.0", 6379, &["redis-server"]),
            endpoint("h", Proto::Tcp, "0.0.0.0", 22, &["redis-server"]),
        ];
        assert!(compare(&listing, &now).is_empty());
    }

    #[test]
    fn saved_audit_verdicts_are_read_back() {
        let text = r#"{"schema":1,"listeners":[{"host":"h","proto":"tcp","address":"0.0.0.0",
            "port":6379,"processes":[{"name":"redis-server"}],
            "firewall":{"verdict":"blocked","sources":[],"rule":null,"reason":null}},
            {"host":"h","proto":"tcp","address":"0.0.0.0","port":22,"firewall":null}]}"#;
        let endpoints =
            parse_baseline(text, &Services::with_system_services(None)).expect("baseline");
        assert_eq!(endpoints[0].firewall, Some(Verdict::Blocked));
        assert_eq!(endpoints[1].firewall, None);
    }

    #[test]
    fn unchanged_listeners_are_no_drift() {
        let before = vec![
            endpoint("h", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
            endpoint("h", Proto::Udp, "0.0.0.0", 53, &[]),
        ];
        assert!(compare(&before, &before).is_empty());
        // An owner seen on one side only still matches.
        let now = vec![
            endpoint("h", Proto::Tcp, "0.0.0.0", 22, &[]),
            endpoint("h", Proto::Udp, "0.0.0.0", 53, &["dnsmasq"]),
        ];
        assert!(compare(&before, &now).is_empty());
    }

    #[test]
    fn new_gone_and_changed_owners_are_drift() {
        let before = vec![
            endpoint("h", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
            endpoint("h", Proto::Tcp, "127.0.0.1", 5432, &["postgres"]),
            endpoint("h", Proto::Tcp, "0.0.0.0", 8080, &["java"]),
        ];
        let now = vec![
            endpoint("h", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
            endpoint("h", Proto::Tcp, "0.0.0.0", 5432, &["postgres"]),
            endpoint("h", Proto::Tcp, "0.0.0.0", 8080, &["python3"]),
            endpoint("h", Proto::Udp, "0.0.0.0", 22, &["sshd"]),
        ];
        let drift = compare(&before, &now);
        let labels = |list: &[Endpoint]| list.iter().map(Endpoint::label).collect::<Vec<_>>();
        assert_eq!(
            labels(&drift.new),
            [
                "udp 0.0.0.0:22 (sshd)",
                "tcp 0.0.0.0:5432 (postgres)",
                "tcp 0.0.0.0:8080 (python3)"
            ]
        );
        assert_eq!(
            labels(&drift.gone),
            ["tcp 127.0.0.1:5432 (postgres)", "tcp 0.0.0.0:8080 (java)"]
        );
        assert_eq!(drift.len(), 5);
    }

    #[test]
    fn repeated_sockets_are_counted_one_for_one() {
        // SO_REUSEPORT: two sockets on one address and port.
        let one = endpoint("h", Proto::Tcp, "0.0.0.0", 80, &["nginx"]);
        let drift = compare(std::slice::from_ref(&one), &[one.clone(), one.clone()]);
        assert_eq!(drift.new, [one]);
        assert!(drift.gone.is_empty());
    }

    #[test]
    fn hosts_are_matched_by_name_unless_each_side_has_one() {
        let staging = vec![endpoint("staging", Proto::Tcp, "0.0.0.0", 22, &["sshd"])];
        let prod = vec![endpoint("prod", Proto::Tcp, "0.0.0.0", 22, &["sshd"])];
        assert!(compare(&staging, &prod).is_empty());
        let fleet = vec![
            endpoint("a", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
            endpoint("b", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
        ];
        let baseline = vec![
            endpoint("a", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
            endpoint("c", Proto::Tcp, "0.0.0.0", 22, &["sshd"]),
        ];
        let drift = compare(&baseline, &fleet);
        assert_eq!(drift.new.len(), 1);
        assert_eq!(drift.new[0].host, "b");
        assert_eq!(drift.gone[0].host, "c");
    }

    #[test]
    fn baselines_read_audit_reports_and_reject_other_json() {
        let report = r#"{"schema":1,"listeners":[
            {"host":"h","proto":"tcp","address":"::","port":22,"exposure":"all-interfaces",
             "processes":[{"pid":1,"name":"sshd","user":null,"cmdline":""}]}]}"#;
        let endpoints =
            parse_baseline(report, &Services::with_system_services(None)).expect("audit report");
        assert_eq!(endpoints, [endpoint("h", Proto::Tcp, "::", 22, &["sshd"])]);
        assert!(parse_baseline("[1,2]", &Services::with_system_services(None)).is_err());
        let wrong =
            r#"{"schema":1,"listeners":[{"host":"h","proto":"sctp","address":"::","port":1}]}"#;
        assert!(
            parse_baseline(wrong, &Services::with_system_services(None))
                .is_err_and(|e| e.contains("sctp"))
        );
        let unrelated = r#"{"schema":1,"something":[]}"#;
        assert!(parse_baseline(unrelated, &Services::with_system_services(None)).is_err());
    }
}
