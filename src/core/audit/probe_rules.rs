//! What `--probe` may send, and what its answers mean for an audit. Three tables, beside the
//! port rules: [`NEVER_SEND`] (listeners that get no byte at all, only listened to),
//! [`WEB_PORTS`] (where an HTTP request is sent without `--probe=http`) and [`PROMISES`] (what a
//! port's clients expect it to speak). README.md shows the same tables.

use std::ops::RangeInclusive;
use std::sync::Arc;

use super::finding::{Finding, Severity};
use super::listener::Listener;
use crate::core::model::Process;
use crate::core::probe::{Probe, ProbeMode, Protocol, Sending};

/// A service that treats unexpected bytes as an attack, or acts on them: it is only listened
/// to, whatever `--probe` says.
#[derive(Debug)]
pub struct Withheld {
    pub id: &'static str,
    pub ports: RangeInclusive<u16>,
    /// Also wherever a holder's command line contains this (a debug agent has no fixed port).
    pub cmdline: Option<&'static str>,
    pub why: &'static str,
}

const fn withhold(
    id: &'static str,
    ports: RangeInclusive<u16>,
    cmdline: Option<&'static str>,
    why: &'static str,
) -> Withheld {
    Withheld {
        id,
        ports,
        cmdline,
        why,
    }
}

#[rustfmt::skip] // a table: one entry per line reads better
pub const NEVER_SEND: &[Withheld] = &[
    withhold("redis", 6379..=6379, None,
        "Redis logs \"Possible SECURITY ATTACK detected\" for HTTP-like input and runs commands it parses"),
    withhold("redis-sentinel", 26379..=26379, None,
        "Redis Sentinel parses input as Redis commands"),
    withhold("memcached", 11211..=11211, None,
        "memcached's text protocol acts on every line it is sent"),
    withhold("node-inspector", 9229..=9229, Some("--inspect"),
        "the Node.js inspector runs whatever a client sends"),
    withhold("jdwp", 5005..=5005, Some("jdwp"),
        "the Java debug wire protocol acts on what a debugger sends"),
    withhold("printer", 9100..=9102, None,
        "a raw (JetDirect) print port prints every byte it receives"),
    withhold("lpd", 515..=515, None,
        "the line printer daemon acts on the commands it is sent"),
    withhold("zookeeper", 2181..=2181, None,
        "ZooKeeper acts on four-letter words"),
    withhold("modbus", 502..=502, None,
        "Modbus devices act on the frames they are sent"),
];

/// Where a plain HTTP request (`HEAD / HTTP/1.0`) is sent to what is not TLS, even without
/// `--probe=http`.
pub const WEB_PORTS: &[u16] = &[
    80, 81, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8088, 8888, 9000, 9090,
];

/// What clients of a port expect it to speak.
#[rustfmt::skip]
pub const PROMISES: &[(u16, Protocol)] = &[
    (22, Protocol::Ssh),
    (443, Protocol::Tls), (465, Protocol::Tls), (636, Protocol::Tls), (853, Protocol::Tls),
    (990, Protocol::Tls), (993, Protocol::Tls), (995, Protocol::Tls), (2376, Protocol::Tls),
    (5986, Protocol::Tls), (6443, Protocol::Tls), (8443, Protocol::Tls), (9443, Protocol::Tls),
];

/// Port rules a probe's answer replaces: they guess from the number what the probe knows.
pub const SUPERSEDED: &[&str] = &["http"];

/// The safety entry that keeps every byte from a TCP listener on `port`, held by `processes`.
pub fn withheld(port: u16, processes: &[Arc<Process>]) -> Option<&'static Withheld> {
    NEVER_SEND.iter().find(|entry| {
        entry.ports.contains(&port)
            || entry
                .cmdline
                .is_some_and(|word| processes.iter().any(|p| p.cmdline.contains(word)))
    })
}

/// What may be sent to a TCP listener on `port` held by `processes`, and the safety entry
/// that forbids sending anything.
pub fn plan(port: u16, processes: &[Arc<Process>], mode: ProbeMode) -> Plan {
    if let Some(withheld) = withheld(port, processes) {
        return Plan {
            send: Sending::Nothing,
            withheld: Some(withheld),
        };
    }
    let http = mode == ProbeMode::Http || WEB_PORTS.contains(&port);
    Plan {
        send: if http {
            Sending::TlsThenHttp
        } else {
            Sending::Tls
        },
        withheld: None,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub send: Sending,
    pub withheld: Option<&'static Withheld>,
}

pub const TLS_EXPIRED: &str = "tls-expired";
pub const TLS_EXPIRING: &str = "tls-expiring";
pub const TLS_SELF_SIGNED: &str = "tls-self-signed";
pub const TLS_LEGACY: &str = "tls-legacy";
pub const PLAINTEXT_HTTP: &str = "plaintext-http";
pub const PROTOCOL_MISMATCH: &str = "protocol-mismatch";

/// A certificate that expires within this many days is a finding.
pub const EXPIRING_DAYS: i64 = 14;

/// Whether a port rule is left to the probe for this listener.
pub fn superseded(rule: &str, listener: &Listener) -> bool {
    SUPERSEDED.contains(&rule) && conclusive(listener).is_some()
}

fn conclusive(listener: &Listener) -> Option<&Probe> {
    listener
        .probe
        .as_ref()
        .filter(|probe| probe.protocol.is_conclusive())
}

/// The findings of every listener's probe. Loopback is this host's own business, except for a
/// certificate that has expired or is about to: its clients are about to fail.
pub fn findings(listeners: &[Listener]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (position, listener) in listeners.iter().enumerate() {
        let Some(probe) = conclusive(listener) else {
            continue;
        };
        let beyond = listener.exposure.beyond_loopback();
        let mut found = |rule: &'static str, severity: Severity, reason: String| {
            findings.push(Finding {
                listener: position,
                rule,
                severity,
                service: Some(probe.protocol.as_str()),
                reason,
                allowed: false,
                blocked: false,
            });
        };
        if let Some(tls) = &probe.tls {
            let subject = tls.subject.as_deref().unwrap_or("?");
            match (tls.expired, tls.days_left, tls.not_after.as_deref()) {
                (Some(true), Some(days), Some(after)) => found(
                    TLS_EXPIRED,
                    if beyond {
                        Severity::High
                    } else {
                        Severity::Low
                    },
                    format!(
                        "its certificate ({subject}) expired {after}, {} ago: clients that verify it fail; renew it",
                        crate::core::text::count(days.unsigned_abs() as usize, "day")
                    ),
                ),
                (Some(false), Some(days), Some(after)) if days < EXPIRING_DAYS => found(
                    TLS_EXPIRING,
                    if beyond {
                        Severity::Medium
                    } else {
                        Severity::Info
                    },
                    format!(
                        "its certificate ({subject}) expires {after}, in {}: renew it (is automatic renewal running?)",
                        crate::core::text::count(days as usize, "day")
                    ),
                ),
                _ => {}
            }
            if beyond && tls.self_signed == Some(true) {
                found(
                    TLS_SELF_SIGNED,
                    Severity::Low,
                    format!(
                        "its certificate ({subject}) is self-signed: clients can't tell it from an impostor's unless they pin it; use one from a CA they trust"
                    ),
                );
            }
            let old = tls.legacy_versions();
            if beyond && !old.is_empty() {
                found(
                    TLS_LEGACY,
                    Severity::Medium,
                    format!(
                        "it accepts {} (deprecated by RFC 8996): allow TLS 1.2 and 1.3 only",
                        old.join(" and ")
                    ),
                );
            }
        }
        if beyond
            && probe.protocol == Protocol::Http
            && !listeners.iter().any(|other| {
                other.host == listener.host
                    && other.exposure.beyond_loopback()
                    && conclusive(other).is_some_and(|p| p.protocol == Protocol::Tls)
            })
        {
            found(
                PLAINTEXT_HTTP,
                Severity::Low,
                "it speaks plain HTTP and nothing on this host beyond loopback speaks TLS: serve HTTPS and redirect to it"
                    .into(),
            );
        }
        if let Some(&(_, promised)) = PROMISES.iter().find(|(port, _)| *port == listener.port)
            && probe.protocol != promised
        {
            found(
                PROTOCOL_MISMATCH,
                if beyond {
                    Severity::Medium
                } else {
                    Severity::Info
                },
                format!(
                    "port {} promises {} but it {}: clients expecting {} get something else (a port reused, or a multiplexer); check what runs here",
                    listener.port,
                    promised.as_str().to_uppercase(),
                    match probe.protocol {
                        Protocol::Silent => "stays silent".to_string(),
                        other => format!("speaks {}", other.as_str()),
                    },
                    promised.as_str().to_uppercase(),
                ),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::exposure::{self, HostView};
    use crate::core::model::Proto;
    use crate::core::probe::TlsFacts;

    fn listener(address: &str, port: u16, probe: Option<Probe>) -> Listener {
        let address = address.parse().expect("test address");
        Listener {
            host: "h".into(),
            proto: Proto::Tcp,
            family: "ipv4",
            address,
            port,
            exposure: exposure::classify(address, None, &HostView::default()),
            service: None,
            uid: Some(0),
            user: None,
            processes: vec![Process::example(7, "server", None)],
            owner_note: None,
            firewall: None,
            forward: None,
            probe,
        }
    }

    fn spoke(protocol: Protocol) -> Probe {
        Probe {
            protocol,
            address: "127.0.0.1:1".into(),
            tls: None,
            banner: None,
            withheld: None,
            note: None,
        }
    }

    fn tls(expired: bool, days_left: i64, self_signed: bool, version: &str) -> Probe {
        Probe {
            tls: Some(TlsFacts {
                version: version.into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                subject: Some("CN=localhost".into()),
                issuer: Some("CN=localhost".into()),
                sans: Vec::new(),
                not_before: Some("2020-01-01T00:00:00Z".into()),
                not_after: Some("2021-01-01T00:00:00Z".into()),
                expired: Some(expired),
                self_signed: Some(self_signed),
                days_left: Some(days_left),
                also_accepts: Vec::new(),
            }),
            ..spoke(Protocol::Tls)
        }
    }

    fn rules(listeners: &[Listener]) -> Vec<(u16, &'static str, Severity)> {
        findings(listeners)
            .into_iter()
            .map(|f| (listeners[f.listener].port, f.rule, f.severity))
            .collect()
    }

    #[test]
    fn certificates_raise_findings_by_where_they_are_reached() {
        let listeners = [
            listener("0.0.0.0", 8443, Some(tls(true, -400, true, "TLS1.3"))),
            listener("127.0.0.1", 9443, Some(tls(true, -400, true, "TLS1.3"))),
            listener("0.0.0.0", 4443, Some(tls(false, 3, false, "TLS1.2"))),
            listener("127.0.0.1", 5443, Some(tls(false, 3, true, "TLS1.2"))),
            listener("0.0.0.0", 6443, Some(tls(false, 90, false, "TLS1.3"))),
            listener("0.0.0.0", 7443, Some(tls(false, 90, false, "TLS1.0"))),
            listener("127.0.0.1", 7444, Some(tls(false, 90, false, "TLS1.1"))),
        ];
        assert_eq!(
            rules(&listeners),
            [
                (8443, TLS_EXPIRED, Severity::High),
                (8443, TLS_SELF_SIGNED, Severity::Low),
                (9443, TLS_EXPIRED, Severity::Low),
                (4443, TLS_EXPIRING, Severity::Medium),
                (5443, TLS_EXPIRING, Severity::Info),
                (7443, TLS_LEGACY, Severity::Medium),
            ]
        );
        let reason = &findings(&listeners)[0].reason;
        assert!(
            reason.contains("expired 2021-01-01T00:00:00Z, 400 days ago"),
            "{reason}"
        );
    }

    #[test]
    fn plain_http_counts_only_without_tls_on_the_host() {
        let http = listener("0.0.0.0", 8080, Some(spoke(Protocol::Http)));
        assert_eq!(
            rules(std::slice::from_ref(&http)),
            [(8080, PLAINTEXT_HTTP, Severity::Low)]
        );
        let loopback_tls = listener("127.0.0.1", 8443, Some(tls(false, 90, false, "TLS1.3")));
        assert_eq!(
            rules(&[http.clone(), loopback_tls]),
            [(8080, PLAINTEXT_HTTP, Severity::Low)]
        );
        let public_tls = listener("0.0.0.0", 8443, Some(tls(false, 90, false, "TLS1.3")));
        assert!(rules(&[http.clone(), public_tls]).is_empty());
        // Decided by what it speaks: HTTP on loopback, or a silent port 80, is no finding.
        assert!(rules(&[listener("127.0.0.1", 80, Some(spoke(Protocol::Http)))]).is_empty());
        assert!(rules(&[listener("0.0.0.0", 80, Some(spoke(Protocol::Silent)))]).is_empty());
    }

    #[test]
    fn a_port_that_speaks_otherwise_than_it_promises() {
        let listeners = [
            listener("0.0.0.0", 443, Some(spoke(Protocol::Http))),
            listener("0.0.0.0", 22, Some(spoke(Protocol::Silent))),
            listener("127.0.0.1", 993, Some(spoke(Protocol::Banner))),
            listener("0.0.0.0", 2222, Some(spoke(Protocol::Ssh))),
            listener("0.0.0.0", 22, Some(spoke(Protocol::Ssh))),
            listener("0.0.0.0", 995, Some(spoke(Protocol::Timeout))),
            listener("0.0.0.0", 465, None),
        ];
        let found = rules(&listeners);
        assert_eq!(
            found,
            [
                (443, PLAINTEXT_HTTP, Severity::Low),
                (443, PROTOCOL_MISMATCH, Severity::Medium),
                (22, PROTOCOL_MISMATCH, Severity::Medium),
                (993, PROTOCOL_MISMATCH, Severity::Info),
            ]
        );
        let reasons: Vec<String> = findings(&listeners).into_iter().map(|f| f.reason).collect();
        assert!(reasons[1].starts_with("port 443 promises TLS but it speaks http"));
        assert!(reasons[2].starts_with("port 22 promises SSH but it stays silent"));
    }

    #[test]
    fn the_port_guess_gives_way_to_a_conclusive_probe() {
        assert!(superseded(
            "http",
            &listener("0.0.0.0", 80, Some(spoke(Protocol::Silent)))
        ));
        assert!(!superseded(
            "http",
            &listener("0.0.0.0", 80, Some(spoke(Protocol::Refused)))
        ));
        assert!(!superseded("http", &listener("0.0.0.0", 80, None)));
        assert!(!superseded(
            "redis",
            &listener("0.0.0.0", 6379, Some(spoke(Protocol::Silent)))
        ));
    }

    #[test]
    fn the_safety_list_withholds_every_byte() {
        let redis = Process::example(1, "redis-server", None);
        let redis = plan(6379, &[redis], ProbeMode::Http);
        assert_eq!(redis.send, Sending::Nothing);
        assert_eq!(redis.withheld.map(|w| w.id), Some("redis"));
        // A JVM with the debug agent, wherever it listens.
        let jvm = Arc::new(Process {
            cmdline: "java -agentlib:jdwp=transport=dt_socket,server=y,address=*:5105 -jar app.jar"
                .into(),
            ..(*Process::example(2, "java", None)).clone()
        });
        assert_eq!(
            plan(5105, &[jvm], ProbeMode::Tls).withheld.map(|w| w.id),
            Some("jdwp")
        );
        assert_eq!(plan(8443, &[], ProbeMode::Tls).send, Sending::Tls);
        assert_eq!(plan(8080, &[], ProbeMode::Tls).send, Sending::TlsThenHttp);
        assert_eq!(plan(4000, &[], ProbeMode::Http).send, Sending::TlsThenHttp);
    }
}
