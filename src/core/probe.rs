//! `--probe`: what a listener of this host speaks, learnt by talking to it. This module plans
//! what may be sent to each listener and classifies what the OS layer read back; the OS layer
//! (`os::probe`) only connects, listens and sends what it is told. What may be sent where (the
//! safety list) and the ports' promises are data beside the audit rules
//! (`core::audit::probe_rules`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::model::Namespace;
use super::verdict::ConnectOutcome;

/// At most this many listeners are talked to at once.
pub const AT_ONCE: usize = 16;
/// How long a listener has to speak first (SSH, SMTP, FTP, POP, IMAP, MySQL greet at once).
pub const BANNER_WAIT: Duration = Duration::from_millis(250);
/// How long a connection, a TLS handshake or an HTTP reply may take: these are the host's own
/// listeners, answering over loopback in milliseconds; a listener silent this long after a
/// ClientHello is not TLS, and the time is better spent on the next one.
pub const STEP_TIMEOUT: Duration = Duration::from_millis(300);
/// Every probe of one run ends within this: what has not finished by then is a timeout.
pub const TOTAL_CAP: Duration = Duration::from_millis(2500);
/// What is kept of a listener's first words: enough for a banner's first line.
pub const KEEP_BYTES: usize = 512;
/// The first line of a banner is shown up to this many characters.
const LINE_CHARS: usize = 160;

/// `--probe` and `--probe=http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// Banner, then a TLS ClientHello; an HTTP request on web ports only
    Tls,
    /// Also an HTTP request to every listener that is neither TLS nor on the safety list
    Http,
}

/// What may be sent to a listener once it has been given [`BANNER_WAIT`] to speak first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sending {
    /// Nothing at all: only what it says unasked is read.
    Nothing,
    /// A TLS ClientHello (and, to learn whether TLS 1.0/1.1 is still accepted, a second one
    /// offering only those).
    Tls,
    /// The ClientHellos, then, if it is not TLS, `HEAD / HTTP/1.0` on a new connection.
    TlsThenHttp,
}

/// One listener to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The listener's network namespace; `None` for portstat's own.
    pub netns: Option<Namespace>,
    /// Where to connect: the listener's address, or its family's loopback for a wildcard.
    pub address: SocketAddr,
    pub send: Sending,
}

/// What the OS layer read from one listener, uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeReading {
    /// How the first connection ended; `None` when the run's time cap ran out before it began.
    pub connect: Option<ConnectOutcome>,
    /// What it said unasked, within [`BANNER_WAIT`] (at most [`KEEP_BYTES`]).
    pub banner: Vec<u8>,
    /// `None`: no ClientHello was sent.
    pub tls: Option<TlsReading>,
    /// Its reply to `HEAD / HTTP/1.0`; `None`: no request was sent.
    pub http: Option<Vec<u8>>,
    /// The run's time cap ended the probe before it was done.
    pub out_of_time: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsReading {
    /// A handshake completed (by rustls, or for a server of TLS 1.0/1.1 only, as far as its
    /// ServerHello).
    Handshake(TlsSession),
    /// The reply to the ClientHello was not TLS (at most [`KEEP_BYTES`]; empty: it closed).
    NotTls(Vec<u8>),
    /// A TLS server that refused the ClientHello with this alert (and took no older one).
    Alert(u8),
    /// No reply within [`STEP_TIMEOUT`].
    Silent,
    /// The connection failed otherwise.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLS1.3`, `TLS1.2`, `TLS1.1`, `TLS1.0`.
    pub version: String,
    /// The IANA name, as rustls spells it.
    pub cipher: String,
    /// The server's own certificate; `None` when the handshake stopped before it.
    pub certificate: Option<Certificate>,
    /// The oldest versions (TLS 1.0, 1.1) that a second ClientHello, offering only those, had
    /// accepted.
    pub also_accepts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Issued by itself: its issuer is its subject and its own key verifies its signature.
    pub self_signed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tls,
    Ssh,
    Http,
    /// It spoke first, neither SSH nor HTTP (SMTP or FTP `220`, POP `+OK`, a MySQL greeting).
    Banner,
    /// It said nothing, and nothing sent got an answer.
    Silent,
    Refused,
    Timeout,
    /// The probe could not be made (a namespace that could not be entered, say).
    Error,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tls => "tls",
            Protocol::Ssh => "ssh",
            Protocol::Http => "http",
            Protocol::Banner => "banner",
            Protocol::Silent => "silent",
            Protocol::Refused => "refused",
            Protocol::Timeout => "timeout",
            Protocol::Error => "error",
        }
    }

    /// The listener answered: what it speaks is known (silence included).
    pub fn is_conclusive(self) -> bool {
        !matches!(
            self,
            Protocol::Refused | Protocol::Timeout | Protocol::Error
        )
    }
}

/// A listener's probe result, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub protocol: Protocol,
    /// Where portstat connected.
    pub address: String,
    pub tls: Option<TlsFacts>,
    /// The first line it sent (a banner, or its HTTP status line), escaped.
    pub banner: Option<String>,
    /// The safety list's entry that kept anything from being sent to it.
    pub withheld: Option<&'static str>,
    /// Why the probe ended without an answer (an error, the time cap).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFacts {
    pub version: String,
    pub cipher: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub sans: Vec<String>,
    /// RFC 3339, UTC.
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub expired: Option<bool>,
    pub self_signed: Option<bool>,
    /// Whole days until it expires; negative once it has.
    pub days_left: Option<i64>,
    /// TLS 1.0 or 1.1, when a ClientHello offering only those was accepted too.
    pub also_accepts: Vec<String>,
}

impl TlsFacts {
    /// Whether TLS 1.0 or 1.1 is spoken: negotiated, or still accepted.
    pub fn legacy_versions(&self) -> Vec<&str> {
        let mut old: Vec<&str> = std::iter::once(self.version.as_str())
            .chain(self.also_accepts.iter().map(String::as_str))
            .filter(|version| matches!(*version, "TLS1.0" | "TLS1.1"))
            .collect();
        old.sort_unstable();
        old.dedup();
        old
    }
}

/// Where to connect to reach a listener: a wildcard through its namespace's loopback.
pub fn connect_address(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), local.port())
        }
        _ => local,
    }
}

/// What a reading says the listener speaks, with its certificate judged at `now`.
pub fn classify(
    address: SocketAddr,
    reading: &ProbeReading,
    withheld: Option<&'static str>,
    now: SystemTime,
) -> Probe {
    let mut probe = Probe {
        protocol: Protocol::Silent,
        address: address.to_string(),
        tls: None,
        banner: None,
        withheld,
        note: None,
    };
    let out_of_time = || format!("the probe's {} s cap ran out", TOTAL_CAP.as_secs_f64());
    match &reading.connect {
        None => {
            probe.protocol = Protocol::Timeout;
            probe.note = Some(format!("not probed: {}", out_of_time()));
            return probe;
        }
        Some(ConnectOutcome::Accepted) => {}
        Some(ConnectOutcome::Refused) => {
            probe.protocol = Protocol::Refused;
            return probe;
        }
        Some(ConnectOutcome::TimedOut) => {
            probe.protocol = Protocol::Timeout;
            return probe;
        }
        Some(ConnectOutcome::Failed(why)) => {
            probe.protocol = Protocol::Error;
            probe.note = Some(why.clone());
            return probe;
        }
    }
    if !reading.banner.is_empty() {
        probe.protocol = spoken(&reading.banner);
        probe.banner = Some(first_line(&reading.banner));
        return probe;
    }
    match &reading.tls {
        Some(TlsReading::Handshake(session)) => {
            probe.protocol = Protocol::Tls;
            probe.tls = Some(facts(session, now));
            return probe;
        }
        Some(TlsReading::NotTls(reply)) if !reply.is_empty() => {
            // A plain HTTP server answers a ClientHello with `400 Bad Request`: HTTP is known
            // without an HTTP byte sent.
            probe.protocol = spoken(reply);
            probe.banner = Some(first_line(reply));
            return probe;
        }
        Some(TlsReading::Alert(alert)) => {
            probe.protocol = Protocol::Tls;
            probe.note = Some(format!(
                "it refused portstat's ClientHello (TLS alert {alert}{})",
                alert_name(*alert).map_or_else(String::new, |name| format!(", {name}"))
            ));
            return probe;
        }
        Some(TlsReading::Failed(why)) => probe.note = Some(why.clone()),
        Some(TlsReading::NotTls(_) | TlsReading::Silent) | None => {}
    }
    if let Some(reply) = reading.http.as_ref().filter(|reply| !reply.is_empty()) {
        probe.protocol = spoken(reply);
        probe.banner = Some(first_line(reply));
        return probe;
    }
    if reading.out_of_time {
        probe.protocol = Protocol::Timeout;
        probe.note = Some(out_of_time());
    }
    probe
}

/// RFC 8446's names of the alerts a server sends a ClientHello it won't take.
fn alert_name(alert: u8) -> Option<&'static str> {
    Some(match alert {
        40 => "handshake_failure",
        47 => "illegal_parameter",
        50 => "decode_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

fn spoken(first: &[u8]) -> Protocol {
    // An HTTP server that can't parse a request line answers as HTTP/0.9 did: the page alone
    // (Python's http.server does so for a ClientHello).
    let page = |start: &[u8]| {
        first
            .get(..start.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(start))
    };
    if first.starts_with(b"SSH-") {
        Protocol::Ssh
    } else if first.starts_with(b"HTTP/") || page(b"<!DOCTYPE html") || page(b"<html") {
        Protocol::Http
    } else {
        Protocol::Banner
    }
}

fn facts(session: &TlsSession, now: SystemTime) -> TlsFacts {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    let certificate = session.certificate.as_ref();
    TlsFacts {
        version: session.version.clone(),
        cipher: session.cipher.clone(),
        subject: certificate.map(|c| c.subject.clone()),
        issuer: certificate.map(|c| c.issuer.clone()),
        sans: certificate.map_or_else(Vec::new, |c| c.sans.clone()),
        not_before: certificate.map(|c| rfc3339(c.not_before)),
        not_after: certificate.map(|c| rfc3339(c.not_after)),
        expired: certificate.map(|c| now > c.not_after),
        self_signed: certificate.map(|c| c.self_signed),
        days_left: certificate.map(|c| (c.not_after - now).div_euclid(86_400)),
        also_accepts: session.also_accepts.clone(),
    }
}

fn rfc3339(seconds: i64) -> String {
    // humantime writes years 1970 to 9999, which is what certificates hold.
    let seconds = seconds.clamp(0, 253_402_300_799);
    let time = UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs());
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The first line of what a listener sent, with anything a terminal would act on escaped
/// (control characters, bidirectional overrides, bytes that are not UTF-8).
pub fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let line = bytes[..end].strip_suffix(b"\r").unwrap_or(&bytes[..end]);
    let mut shown = String::new();
    let mut chars = 0;
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            if chars == LINE_CHARS {
                shown.push_str("...");
                return shown;
            }
            chars += 1;
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                if c.is_ascii() {
                    shown.push_str(&format!("\\x{:02x}", u32::from(c)));
                } else {
                    shown.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
                }
            } else {
                shown.push(c);
            }
        }
        for byte in chunk.invalid() {
            chars += 1;
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).expect("test time")
    }

    fn seconds(text: &str) -> i64 {
        at(text)
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64
    }

    fn accepted() -> ProbeReading {
        ProbeReading {
            connect: Some(ConnectOutcome::Accepted),
            ..ProbeReading::default()
        }
    }

    fn address() -> SocketAddr {
        "127.0.0.1:443".parse().expect("address")
    }

    #[test]
    fn a_banner_says_what_speaks_first() {
        let now = at("2026-01-01T00:00:00Z");
        let ssh = ProbeReading {
            banner: b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(),
            ..accepted()
        };
        let probe = classify(address(), &ssh, None, now);
        assert_eq!(probe.protocol, Protocol::Ssh);
        assert_eq!(
            probe.banner.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2")
        );
        let smtp = ProbeReading {
            banner: b"220 mail.example ESMTP Postfix\r\n250 more".to_vec(),
            ..accepted()
        };
        let probe = classify(address(), &smtp, None, now);
        assert_eq!(probe.protocol, Protocol::Banner);
        assert_eq!(
            probe.banner.as_deref(),
            Some("220 mail.example ESMTP Postfix")
        );
    }

    #[test]
    fn banners_are_escaped_and_cut() {
        assert_eq!(
            first_line(b"220 \x1b[31mred\x07\r\n"),
            "220 \\x1b[31mred\\x07"
        );
        assert_eq!(first_line(b"\xff\xfe ok"), "\\xff\\xfe ok");
        assert_eq!(first_line("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        let long = first_line(&[b'a'; 1000]);
        assert_eq!(long.len(), LINE_CHARS + 3);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn a_plain_http_server_answering_a_client_hello_is_http() {
        let reading = ProbeReading {
            tls: Some(TlsReading::NotTls(
                b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n".to_vec(),
            )),
            ..accepted()
        };
        let probe = classify(address(), &reading, None, at("2026-01-01T00:00:00Z"));
        assert_eq!(probe.protocol, Protocol::Http);
        assert_eq!(probe.banner.as_deref(), Some("HTTP/1.1 400 Bad Request"));
        // Silent to TLS, answering HTTP.
        let reading = ProbeReading {
            tls: Some(TlsReading::Silent),
            http: Some(b"HTTP/1.0 200 OK\r\n".to_vec()),
            ..accepted()
        };
        let probe = classify(address(), &reading, None, at("2026-01-01T00:00:00Z"));
        assert_eq!(probe.protocol, Protocol::Http);
    }

    #[test]
    fn silence_refusal_and_the_time_cap() {
        let now = at("2026-01-01T00:00:00Z");
        let silent = ProbeReading {
            tls: Some(TlsReading::NotTls(Vec::new())),
            ..accepted()
        };
        assert_eq!(
            classify(address(), &silent, None, now).protocol,
            Protocol::Silent
        );
        let refused = ProbeReading {
            connect: Some(ConnectOutcome::Refused),
            ..ProbeReading::default()
        };
        assert_eq!(
            classify(address(), &refused, None, now).protocol,
            Protocol::Refused
        );
        let never = classify(address(), &ProbeReading::default(), None, now);
        assert_eq!(never.protocol, Protocol::Timeout);
        assert!(
            never
                .note
                .as_deref()
                .is_some_and(|n| n.contains("cap ran out"))
        );
        let cut = ProbeReading {
            out_of_time: true,
            ..accepted()
        };
        assert_eq!(
            classify(address(), &cut, None, now).protocol,
            Protocol::Timeout
        );
        assert!(!Protocol::Timeout.is_conclusive() && Protocol::Silent.is_conclusive());
    }

    #[test]
    fn certificates_are_judged_at_now() {
        let session = TlsSession {
            version: "TLS1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            certificate: Some(Certificate {
                subject: "CN=localhost".into(),
                issuer: "CN=localhost".into(),
                sans: vec!["localhost".into(), "127.0.0.1".into()],
                not_before: seconds("2020-01-01T00:00:00Z"),
                not_after: seconds("2021-01-01T00:00:00Z"),
                self_signed: true,
            }),
            also_accepts: vec!["TLS1.0".into()],
        };
        let reading = ProbeReading {
            tls: Some(TlsReading::Handshake(session)),
            ..accepted()
        };
        let probe = classify(address(), &reading, None, at("2021-01-11T12:00:00Z"));
        let tls = probe.tls.expect("tls facts");
        assert_eq!(probe.protocol, Protocol::Tls);
        assert_eq!(tls.expired, Some(true));
        assert_eq!(tls.days_left, Some(-11));
        assert_eq!(tls.not_after.as_deref(), Some("2021-01-01T00:00:00Z"));
        assert_eq!(tls.legacy_versions(), ["TLS1.0"]);
        let probe = classify(address(), &reading, None, at("2020-12-25T00:00:00Z"));
        let tls = probe.tls.expect("tls facts");
        assert_eq!((tls.expired, tls.days_left), (Some(false), Some(7)));
    }

    #[test]
    fn wildcards_are_reached_through_loopback() {
        let address = |text: &str| text.parse::<SocketAddr>().expect("address");
        assert_eq!(
            connect_address(address("0.0.0.0:80")),
            address("127.0.0.1:80")
        );
        assert_eq!(connect_address(address("[::]:80")), address("[::1]:80"));
        assert_eq!(
            connect_address(address("10.0.0.5:80")),
            address("10.0.0.5:80")
        );
    }
}
