//! The Prometheus exposition of one scan (`portstat metrics`, `portstat serve`), encoded by
//! `prometheus-client` in the text format Prometheus has always read (0.0.4) or in OpenMetrics,
//! whichever the scraper asks for.
//!
//! Cardinality is bounded by what a host has, never by its traffic: one `portstat_listener_info`
//! series per listener, destinations only for the busiest N, no pids and no client ports in any
//! label. Labels can be left out (`--leave-out`); series that then look alike merge.

use std::collections::HashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, prometheus_text, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::core::audit::drift::Drift;
use crate::core::audit::listener::Listener;
use crate::core::audit::rules::Finding;
use crate::core::summary::Summary;

/// The two text formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `text/plain; version=0.0.4`: what `promtool check metrics` and every scraper reads.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, ending in `# EOF`.
    OpenMetrics,
}

impl Dialect {
    /// The dialect an HTTP `Accept` header prefers: OpenMetrics only when it is named.
    pub fn negotiate(accept: Option<&str>) -> Dialect {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Dialect::OpenMetrics,
            _ => Dialect::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Dialect::Prometheus => prometheus_text::CONTENT_TYPE,
            Dialect::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A label that may be left out of every series that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Label {
    Address,
    Service,
    Process,
    User,
    Unit,
    Container,
    Netns,
    Firewall,
    #[value(alias = "local_address")]
    LocalAddress,
    #[value(alias = "remote_address")]
    RemoteAddress,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Address => "address",
            Label::Service => "service",
            Label::Process => "process",
            Label::User => "user",
            Label::Unit => "unit",
            Label::Container => "container",
            Label::Netns => "netns",
            Label::Firewall => "firewall",
            Label::LocalAddress => "local_address",
            Label::RemoteAddress => "remote_address",
        }
    }
}

/// Where a listener runs, beyond what its audit record says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The systemd unit of its first process.
    pub unit: Option<String>,
    /// The container: its name for a published port, else `runtime:id` (12 digits).
    pub container: Option<String>,
    /// The network namespace as the NETNS column names it; empty when only one was read.
    pub netns: Option<String>,
}

/// A TCP listener's accept queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptQueue {
    pub address: String,
    pub port: u16,
    pub netns: Option<String>,
    /// Connections waiting to be accepted.
    pub queued: u32,
    /// The backlog, where the backend reads it (sock_diag netlink).
    pub backlog: Option<u32>,
}

/// Everything one exposition says.
pub struct Exposition<'a> {
    pub listeners: &'a [(Listener, Placement)],
    pub summary: &'a Summary,
    pub accept_queues: &'a [AcceptQueue],
    /// With `--audit` or `--policy`.
    pub findings: Option<&'a [Finding]>,
    /// With `--policy`.
    pub violations: Option<usize>,
    /// With `--baseline`.
    pub drift: Option<&'a Drift>,
    pub scan_seconds: f64,
    pub warnings: usize,
    pub leave_out: &'a [Label],
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(i64),
    Real(f64),
}

/// One metric family's series, in the order they were first set: the registry's own families
/// keep them in a hash map, and an exposition whose lines move from scrape to scrape is hard
/// to read and to compare.
#[derive(Debug)]
struct Series {
    name: &'static str,
    help: &'static str,
    rows: Vec<(Labels, Number)>,
    index: HashMap<Labels, usize>,
}

/// Every family of one exposition, as the collector the registry encodes.
#[derive(Debug, Default)]
struct Families {
    families: Vec<Series>,
    leave_out: Vec<Label>,
}

impl Families {
    fn family(&mut self, name: &'static str, help: &'static str) -> usize {
        self.families.push(Series {
            name,
            help,
            rows: Vec::new(),
            index: HashMap::new(),
        });
        self.families.len() - 1
    }

    fn labels(&self, pairs: &[(&'static str, &str)]) -> Labels {
        pairs
            .iter()
            .filter(|(key, _)| !self.leave_out.iter().any(|label| label.as_str() == *key))
            .map(|&(key, value)| (key, value.to_string()))
            .collect()
    }

    /// Adds `value` to the series of these labels (series merge when left-out labels were all
    /// that told them apart).
    fn add(&mut self, family: usize, pairs: &[(&'static str, &str)], value: i64) {
        self.put(family, pairs, Number::Integer(value), true);
    }

    /// Sets the series of these labels to `value`.
    fn set(&mut self, family: usize, pairs: &[(&'static str, &str)], value: Number) {
        self.put(family, pairs, value, false);
    }

    fn put(&mut self, family: usize, pairs: &[(&'static str, &str)], value: Number, sum: bool) {
        let labels = self.labels(pairs);
        let series = &mut self.families[family];
        match series.index.get(&labels) {
            Some(&at) => {
                let row = &mut series.rows[at].1;
                *row = match (*row, value) {
                    (Number::Integer(a), Number::Integer(b)) if sum => Number::Integer(a + b),
                    _ => value,
                };
            }
            None => {
                series.index.insert(labels.clone(), series.rows.len());
                series.rows.push((labels, value));
            }
        }
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for series in &self.families {
            let mut metric =
                encoder.encode_descriptor(series.name, series.help, None, MetricType::Gauge)?;
            for (labels, value) in &series.rows {
                let mut row = metric.encode_family(labels)?;
                match value {
                    Number::Integer(value) => row.encode_gauge(value)?,
                    Number::Real(value) => row.encode_gauge(value)?,
                }
            }
        }
        Ok(())
    }
}

/// The exposition as text in `dialect`.
pub fn encode(exposition: &Exposition, dialect: Dialect) -> String {
    let mut registry = Registry::with_prefix("portstat");
    registry.register_collector(Box::new(families(exposition)));
    let mut text = String::new();
    // Writing into a String fails only if a metric's encoder does, which these never do.
    let written = match dialect {
        Dialect::Prometheus => prometheus_text::encode(&mut text, &registry),
        Dialect::OpenMetrics => text::encode(&mut text, &registry),
    };
    debug_assert!(written.is_ok(), "encoding into a String");
    text
}

fn count(n: usize) -> Number {
    Number::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn families(exposition: &Exposition) -> Families {
    let mut out = Families {
        families: Vec::new(),
        leave_out: exposition.leave_out.to_vec(),
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();

    let info = out.family(
        "listener_info",
        "A listening socket (TCP LISTEN, bound UDP): always 1",
    );
    let listeners = out.family("listeners", "Listening sockets by protocol and exposure");
    for (listener, placement) in exposition.listeners {
        let proto = listener.proto.as_str();
        let address = listener.address.to_string();
        let port = listener.port.to_string();
        let exposure = listener.exposure.class.as_str();
        let process = listener
            .processes
            .first()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let firewall = listener
            .firewall
            .as_ref()
            .map_or("", |reach| reach.verdict.as_str());
        out.set(
            info,
            &[
                ("proto", proto),
                ("family", listener.family),
                ("address", &address),
                ("port", &port),
                ("service", &text(&listener.service)),
                ("exposure", exposure),
                ("process", &process),
                ("user", &text(&listener.user)),
                ("unit", &text(&placement.unit)),
                ("container", &text(&placement.container)),
                ("netns", &text(&placement.netns)),
                ("firewall", firewall),
            ],
            Number::Integer(1),
        );
        out.add(listeners, &[("proto", proto), ("exposure", exposure)], 1);
    }

    let sockets = out.family("sockets", "Sockets by protocol, family and state");
    for (proto, families) in &exposition.summary.counts {
        for (family, states) in families {
            for (state, n) in states {
                out.set(
                    sockets,
                    &[("proto", proto), ("family", family), ("state", state)],
                    count(*n),
                );
            }
        }
    }

    let ephemeral = &exposition.summary.ephemeral;
    let size = out.family(
        "ephemeral_port_range_size",
        "Ports in net.ipv4.ip_local_port_range",
    );
    out.set(size, &[], Number::Integer(i64::from(ephemeral.size)));
    let in_use = out.family(
        "ephemeral_ports_in_use",
        "Local ephemeral ports in use towards each of the busiest destinations (--top)",
    );
    for destination in &ephemeral.destinations {
        out.add(
            in_use,
            &[
                ("proto", destination.proto),
                ("local_address", &destination.local_address),
                ("remote_address", &destination.remote_address),
                ("remote_port", &destination.remote_port.to_string()),
            ],
            i64::try_from(destination.in_use).unwrap_or(i64::MAX),
        );
    }

    let queued = out.family(
        "accept_queue",
        "Connections waiting to be accepted by a TCP listener",
    );
    let backlog = out.family(
        "accept_queue_backlog",
        "A TCP listener's backlog (the most connections its accept queue holds)",
    );
    for queue in exposition.accept_queues {
        let port = queue.port.to_string();
        let netns = text(&queue.netns);
        let labels = [
            ("proto", "tcp"),
            ("address", queue.address.as_str()),
            ("port", port.as_str()),
            ("netns", netns.as_str()),
        ];
        // Listeners of one SO_REUSEPORT group share the labels: their queues add up.
        out.add(queued, &labels, i64::from(queue.queued));
        if let Some(size) = queue.backlog {
            out.add(backlog, &labels, i64::from(size));
        }
    }

    if let Some(findings) = exposition.findings {
        let counted = out.family(
            "audit_findings",
            "Audit findings by severity and rule (portstat audit's rules)",
        );
        for finding in findings {
            out.add(
                counted,
                &[
                    ("severity", finding.severity.as_str()),
                    ("rule", finding.rule),
                ],
                1,
            );
        }
    }
    if let Some(violations) = exposition.violations {
        let family = out.family(
            "policy_violations",
            "Listeners the policy does not allow, and required ones missing",
        );
        out.set(family, &[], count(violations));
    }
    if let Some(drift) = exposition.drift {
        let kinds = out.family(
            "drift",
            "Listeners new, gone or judged differently by the firewall since the baseline",
        );
        out.set(kinds, &[("kind", "new")], count(drift.new.len()));
        out.set(kinds, &[("kind", "gone")], count(drift.gone.len()));
        out.set(kinds, &[("kind", "changed")], count(drift.changed.len()));
    }

    let seconds = out.family(
        "scan_duration_seconds",
        "How long the scan behind these metrics took",
    );
    out.set(seconds, &[], Number::Real(exposition.scan_seconds));
    let warnings = out.family(
        "scan_warnings",
        "What the scan could not see (each said on portstat's standard error)",
    );
    out.set(warnings, &[], count(exposition.warnings));
    out
}
