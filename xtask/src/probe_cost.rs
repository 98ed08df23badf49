//! What `audit --probe` costs over 100 listeners (issue 19's target: it finishes within 3 s).
//! Run by the bench inside its private network namespace: 100 TCP listeners of the kinds hosts
//! have, served by threads of this process, and `portstat audit --probe --json` and
//! `--probe=http` timed in alternating runs. Every run's JSON must give each listener the
//! protocol its server speaks, so the time is that of real work.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The limit for one run, in milliseconds.
pub const LIMIT_MS: f64 = 3000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// rustls, TLS 1.2 and 1.3, one self-signed certificate.
    Tls,
    /// `SSH-2.0-...` at once.
    Ssh,
    /// `220 ... ESMTP` at once.
    Smtp,
    /// Answers what it is sent at once: `400 Bad Request` to a ClientHello, as nginx does.
    HttpAtOnce,
    /// Waits for a whole request (a blank line) before answering: silent to a ClientHello.
    HttpWholeRequest,
    /// Accepts and says nothing.
    Silent,
    /// Accepts and closes at once.
    Closes,
}

impl Kind {
    /// The protocol `--probe` should report for it.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Tls => "tls",
            Kind::Ssh => "ssh",
            Kind::Smtp => "banner",
            Kind::HttpAtOnce | Kind::HttpWholeRequest => "http",
            // It said nothing before closing: nothing was heard and nothing more sent.
            Kind::Silent | Kind::Closes => "silent",
        }
    }
}

/// The 100 listeners. Wildcard binds are probed through 127.0.0.1; the HTTP servers are on
/// web ports (where `--probe` sends `HEAD` too), two addresses apart as there are only 13 such
/// ports.
pub fn mix() -> Vec<(Kind, SocketAddr)> {
    let at = |ip: [u8; 4], port: u16| SocketAddr::from((Ipv4Addr::from(ip), port));
    let any = |port| at([0, 0, 0, 0], port);
    let mut mix = Vec::new();
    for port in [443, 8443, 9443, 6443].into_iter().chain(10443..10469) {
        mix.push((Kind::Tls, any(port)));
    }
    for port in std::iter::once(22).chain(2222..2231) {
        mix.push((Kind::Ssh, any(port)));
    }
    for port in [25, 587].into_iter().chain(2525..2533) {
        mix.push((Kind::Smtp, any(port)));
    }
    for port in [80, 81, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8088] {
        mix.push((Kind::HttpAtOnce, at([127, 0, 0, 1], port)));
    }
    for (ip, port) in [
        ([127, 0, 0, 1], 8888),
        ([127, 0, 0, 1], 9000),
        ([127, 0, 0, 1], 9090),
        ([127, 0, 0, 2], 80),
        ([127, 0, 0, 2], 81),
        ([127, 0, 0, 2], 591),
        ([127, 0, 0, 2], 3000),
        ([127, 0, 0, 2], 5000),
        ([127, 0, 0, 2], 8000),
        ([127, 0, 0, 2], 8080),
    ] {
        mix.push((Kind::HttpWholeRequest, at(ip, port)));
    }
    for port in 20000..20020 {
        mix.push((Kind::Silent, any(port)));
    }
    for port in 21000..21010 {
        mix.push((Kind::Closes, any(port)));
    }
    mix
}

/// Where portstat connects to reach a listener: a wildcard through loopback.
fn reached_at(address: SocketAddr) -> String {
    if address.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, address.port())).to_string()
    } else {
        address.to_string()
    }
}

/// What is wrong with one run's `audit --json`: each expected listener's probe must be there,
/// of the expected protocol, and no other listener probed. Empty: all as expected.
pub fn judge(document: &serde_json::Value, expected: &[(String, &str)]) -> Vec<String> {
    let Some(listeners) = document["listeners"].as_array() else {
        return vec!["no `listeners` array in the JSON".into()];
    };
    let mut heard: BTreeMap<&str, &str> = BTreeMap::new();
    for probe in listeners.iter().map(|l| &l["probe"]) {
        if let (Some(address), Some(protocol)) =
            (probe["address"].as_str(), probe["protocol"].as_str())
        {
            heard.insert(address, protocol);
        }
    }
    let mut wrong = Vec::new();
    for (address, protocol) in expected {
        match heard.remove(address.as_str()) {
            Some(got) if got == *protocol => {}
            Some(got) => wrong.push(format!("{address}: {got}, not {protocol}")),
            None => wrong.push(format!("{address}: not probed")),
        }
    }
    wrong.extend(
        heard
            .keys()
            .map(|address| format!("{address}: not one of the bench's")),
    );
    wrong
}

/// One way of probing, timed.
pub struct Mode {
    pub flag: &'static str,
    pub ms: Vec<f64>,
    /// What each wrong run got wrong (its first few wrongs).
    pub wrong: Vec<String>,
}

impl Mode {
    pub fn median(&self) -> f64 {
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.ms.iter().copied().fold(f64::NAN, f64::max)
    }
}

pub struct ProbeCost {
    pub modes: Vec<Mode>,
    /// The median of `audit --json` without `--probe`, in the same rounds.
    pub unprobed_ms: f64,
    pub runs: usize,
    /// The most connections the servers had open at once.
    pub peak_open: usize,
}

impl ProbeCost {
    /// The slowest run of any mode, in milliseconds.
    pub fn slowest_ms(&self) -> f64 {
        self.modes.iter().map(Mode::max).fold(f64::NAN, f64::max)
    }

    /// Every run in time, and every run's probes right.
    pub fn met(&self) -> bool {
        self.slowest_ms() <= LIMIT_MS && self.modes.iter().all(|mode| mode.wrong.is_empty())
    }

    pub fn section(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "## Probe cost\n\n`portstat audit --probe --json` and `--probe=http` over 100 TCP \
             listeners on loopback in a private network namespace, served by threads of the \
             bench (`xtask/src/probe_cost.rs`): 30 TLS servers (rustls, TLS 1.2 and 1.3, a \
             self-signed certificate), 10 SSH and 10 SMTP `220` banners, 10 HTTP servers on web \
             ports that answer a ClientHello with `400` (as nginx does), 10 on web ports that \
             wait for a whole request (silent to a ClientHello, they answer the `HEAD`), 20 that \
             accept and say nothing (on other ports: `--probe=http` sends them `HEAD` too), 10 \
             that accept and close at once (`silent`: they said nothing). {} alternating runs of \
             each; a run counts only if its JSON gives every listener the protocol its server \
             speaks (tls, ssh, banner, http, silent).\n",
            self.runs
        );
        let _ = writeln!(
            text,
            "| command | median ms | max ms | median added by probing, ms | runs with a wrong \
             probe |\n|---|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            text,
            "| `audit --json` (no probe) | {:.0} | | | |",
            self.unprobed_ms
        );
        for mode in &self.modes {
            let _ = writeln!(
                text,
                "| `audit {} --json` | {:.0} | {:.0} | {:.0} | {} |",
                mode.flag,
                mode.median(),
                mode.max(),
                mode.median() - self.unprobed_ms,
                mode.wrong.len()
            );
        }
        for mode in &self.modes {
            let mut counted: BTreeMap<&str, usize> = BTreeMap::new();
            for wrong in &mode.wrong {
                *counted.entry(wrong).or_default() += 1;
            }
            for (wrong, runs) in counted {
                let _ = writeln!(text, "\n`{}`, {runs} of the runs: {wrong}", mode.flag);
            }
        }
        let _ = writeln!(
            text,
            "\nThe most connections portstat held open at once, as the servers' kernel saw them \
             (counted at each accept; on a loaded machine a close still queued in the kernel's \
             loopback can count one more): {} (the probe's limit: 16 listeners at once, one \
             connection each). Target: every run within 3 s, the slowest {:.0} ms: {}.",
            self.peak_open,
            self.slowest_ms(),
            if self.met() { "met" } else { "missed" }
        );
        text
    }
}

/// The servers' open connections, and the most that portstat held open at once.
#[derive(Default)]
struct Open {
    connections: Mutex<Vec<(usize, RawFd)>>,
    next: AtomicUsize,
    peak: AtomicUsize,
}

impl Open {
    /// Counts, as a connection is accepted, those the client still holds open: the kernel's
    /// state of each (ESTABLISHED: no FIN from the client yet), not whether a server's thread
    /// has seen the close yet (it sees it late on a busy machine).
    fn accepted(&self, fd: RawFd) -> usize {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = connections
            .iter()
            .filter(|(_, fd)| established(*fd))
            .count();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        connections.push((id, fd));
        self.peak.fetch_max(held + 1, Ordering::Relaxed);
        id
    }

    /// Before the connection's descriptor is closed.
    fn closing(&self, id: usize) {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(open, _)| *open != id);
    }
}

fn established(fd: RawFd) -> bool {
    // SAFETY: tcp_info is plain data; zeroed is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: fd is an open TCP socket (its thread closes it only after [`Open::closing`]),
    // and info and length describe a buffer of tcp_info's size.
    let read = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut length,
        )
    };
    // TCP_ESTABLISHED in the kernel's enum of states (libc has no name for it).
    read == 0 && info.tcpi_state == 1
}

/// The listeners' threads: stopped (listeners shut down, every thread joined) by [`stop`].
struct Servers {
    fds: Vec<i32>,
    acceptors: Vec<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    open: Arc<Open>,
    // The listeners, owned here so that their fds stay valid until the acceptors are joined.
    _listeners: Vec<Arc<TcpListener>>,
}

impl Servers {
    fn start(mix: &[(Kind, SocketAddr)]) -> Result<Servers, String> {
        let tls = Arc::new(tls_config()?);
        let open = Arc::new(Open::default());
        let connections = Arc::new(Mutex::new(Vec::new()));
        let mut servers = Servers {
            fds: Vec::new(),
            acceptors: Vec::new(),
            connections: Arc::clone(&connections),
            open: Arc::clone(&open),
            _listeners: Vec::new(),
        };
        for &(kind, address) in mix {
            let listener = Arc::new(
                TcpListener::bind(address).map_err(|error| format!("bind {address}: {error}"))?,
            );
            servers.fds.push(listener.as_raw_fd());
            let (listener_, tls, open, connections) = (
                Arc::clone(&listener),
                Arc::clone(&tls),
                Arc::clone(&open),
                Arc::clone(&connections),
            );
            servers._listeners.push(listener);
            servers.acceptors.push(std::thread::spawn(move || {
                for stream in listener_.incoming() {
                    let Ok(mut stream) = stream else { break };
                    let id = open.accepted(stream.as_raw_fd());
                    let (tls, open) = (Arc::clone(&tls), Arc::clone(&open));
                    // One thread per connection: a silent server must not hold up the next one.
                    let thread = std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                        serve(kind, &mut stream, &tls);
                        open.closing(id);
                        drop(stream);
                    });
                    connections
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(thread);
                }
            }));
        }
        Ok(servers)
    }

    /// Stops every thread; returns the most connections seen open at once.
    fn stop(self) -> usize {
        for fd in &self.fds {
            // SAFETY: shutting down a listening socket this struct owns wakes its accept.
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
        for acceptor in self.acceptors {
            let _ = acceptor.join();
        }
        let connections = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for connection in connections {
            let _ = connection.join();
        }
        self.open.peak.load(Ordering::Relaxed)
    }
}

fn tls_config() -> Result<rustls::ServerConfig, String> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|error| format!("certificate: {error}"))?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "portstat-probe-cost");
    params.distinguished_name = name;
    let key = rcgen::KeyPair::generate().map_err(|error| format!("key: {error}"))?;
    let certificate = params
        .self_signed(&key)
        .map_err(|error| format!("certificate: {error}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS versions: {error}"))?
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|error| format!("TLS server: {error}"))
}

/// Reads until the client closes.
fn drain(stream: &mut TcpStream) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
    }
}

fn serve(kind: Kind, stream: &mut TcpStream, tls: &Arc<rustls::ServerConfig>) {
    match kind {
        Kind::Tls => {
            let Ok(mut connection) = rustls::ServerConnection::new(Arc::clone(tls)) else {
                return;
            };
            while connection.is_handshaking() {
                if connection.complete_io(stream).is_err() {
                    return;
                }
            }
            let _ = connection.complete_io(stream);
            drain(stream);
        }
        Kind::Ssh => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n");
            drain(stream);
        }
        Kind::Smtp => {
            let _ = stream.write_all(b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n");
            drain(stream);
        }
        Kind::HttpAtOnce | Kind::HttpWholeRequest => {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = stream.read(&mut buffer) {
                request.extend_from_slice(&buffer[..read]);
                if kind == Kind::HttpAtOnce
                    || request.windows(4).any(|w| w == b"\r\n\r\n")
                    || request.len() > 16384
                {
                    break;
                }
            }
            let reply: &[u8] = if request.starts_with(b"HEAD ") || request.starts_with(b"GET ") {
                b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = stream.write_all(reply);
        }
        Kind::Silent => drain(stream),
        Kind::Closes => {}
    }
}

/// Measures, in the calling process's (private) network namespace; every thread it starts is
/// joined before it returns.
pub fn measure(portstat: &Path, runs: usize) -> Result<ProbeCost, String> {
    let mix = mix();
    let expected: Vec<(String, &str)> = mix
        .iter()
        .map(|(kind, address)| (reached_at(*address), kind.expected()))
        .collect();
    let servers = Servers::start(&mix)?;
    let audit = |flag: Option<&str>| -> Result<(f64, Vec<String>), String> {
        let started = Instant::now();
        let output = Command::new(portstat)
            .arg("audit")
            .args(flag)
            .args(["--json", "--fail-on", "never"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|error| format!("portstat: {error}"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if !output.status.success() {
            return Err(format!("portstat audit {flag:?}: {}", output.status));
        }
        if flag.is_none() {
            return Ok((ms, Vec::new()));
        }
        let wrong = match serde_json::from_slice(&output.stdout) {
            Ok(document) => judge(&document, &expected),
            Err(error) => vec![format!("its JSON does not parse: {error}")],
        };
        Ok((ms, wrong))
    };
    let mut modes: Vec<Mode> = ["--probe", "--probe=http"]
        .into_iter()
        .map(|flag| Mode {
            flag,
            ms: Vec::new(),
            wrong: Vec::new(),
        })
        .collect();
    let mut result = Ok(());
    let mut unprobed = Vec::new();
    'runs: for _ in 0..runs {
        match audit(None) {
            Ok((ms, _)) => unprobed.push(ms),
            Err(error) => {
                result = Err(error);
                break 'runs;
            }
        }
        for mode in &mut modes {
            match audit(Some(mode.flag)) {
                Ok((ms, wrong)) => {
                    mode.ms.push(ms);
                    if !wrong.is_empty() {
                        let shown: Vec<&str> = wrong.iter().take(4).map(String::as_str).collect();
                        let more = wrong.len().saturating_sub(shown.len());
                        let mut line = shown.join("; ");
                        if more > 0 {
                            let _ = write!(line, "; and {more} more");
                        }
                        mode.wrong.push(line);
                    }
                }
                Err(error) => {
                    result = Err(error);
                    break 'runs;
                }
            }
        }
    }
    let peak_open = servers.stop();
    result.map(|()| ProbeCost {
        unprobed_ms: Mode {
            flag: "",
            ms: unprobed,
            wrong: Vec::new(),
        }
        .median(),
        modes,
        runs,
        peak_open,
    })
}

#[derive(clap::Args, Debug)]
pub struct ProbeCostArgs {
    /// The portstat binary to measure (build it with `cargo build --release`)
    #[arg(long, default_value = "target/release/portstat")]
    portstat: std::path::PathBuf,
    /// Runs of each of `--probe` and `--probe=http`
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
}

/// `cargo xtask probe-cost`: [`measure`] in a namespace of its own, printed as the bench's
/// section (BENCHMARKS.md is left alone); fails when the target is missed.
/// [`measure`] in a network namespace of its own, entered by a thread (the listeners' threads
/// and portstat's processes inherit it): the bench's namespace still holds what earlier steps
/// left bound, and a fixed port of the mix may be among it.
pub fn measure_apart(portstat: &Path, runs: usize) -> Result<ProbeCost, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                crate::private_netns()?;
                measure(portstat, runs)
            })
            .join()
            .unwrap_or_else(|_| Err("the probe-cost thread panicked".into()))
    })
}

pub fn task(args: &ProbeCostArgs) -> std::process::ExitCode {
    let runs = usize::try_from(args.runs).unwrap_or(usize::MAX);
    match measure_apart(&args.portstat, runs) {
        Ok(cost) => {
            println!("{}", cost.section());
            if cost.met() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("probe-cost: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_mix_is_100_listeners_at_distinct_addresses() {
        let mix = mix();
        assert_eq!(mix.len(), 100);
        let count = |kind| mix.iter().filter(|(k, _)| *k == kind).count();
        assert_eq!(count(Kind::Tls), 30);
        assert_eq!(count(Kind::Ssh) + count(Kind::Smtp), 20);
        assert_eq!(count(Kind::HttpAtOnce) + count(Kind::HttpWholeRequest), 20);
        assert_eq!((count(Kind::Silent), count(Kind::Closes)), (20, 10));
        let mut reached: Vec<String> = mix.iter().map(|(_, a)| reached_at(*a)).collect();
        reached.sort();
        reached.dedup();
        assert_eq!(reached.len(), 100, "two listeners share an address");
        // `audit --probe` sends HEAD only on web ports: every HTTP server must be on one.
        let web = [
            80, 81, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8088, 8888, 9000, 9090,
        ];
        for (kind, address) in &mix {
            let on_web = web.contains(&address.port());
            let http = matches!(kind, Kind::HttpAtOnce | Kind::HttpWholeRequest);
            assert_eq!(on_web, http, "{kind:?} at {address}");
        }
    }

    #[test]
    fn a_run_is_judged_by_every_listener_s_protocol() {
        let expected = vec![
            ("127.0.0.1:443".to_string(), "tls"),
            ("127.0.0.2:80".to_string(), "http"),
        ];
        let listener = |address: &str, protocol: &str| json!({"port": 1, "probe": {"address": address, "protocol": protocol}});
        let right = json!({"listeners": [
            listener("127.0.0.1:443", "tls"),
            listener("127.0.0.2:80", "http"),
            {"port": 53, "probe": null},
        ]});
        assert!(judge(&right, &expected).is_empty());
        let wrong = json!({"listeners": [
            listener("127.0.0.1:443", "timeout"),
            listener("127.0.0.1:9", "silent"),
        ]});
        assert_eq!(
            judge(&wrong, &expected),
            [
                "127.0.0.1:443: timeout, not tls",
                "127.0.0.2:80: not probed",
                "127.0.0.1:9: not one of the bench's"
            ]
        );
        assert_eq!(
            judge(&json!({"findings": []}), &expected),
            ["no `listeners` array in the JSON"]
        );
    }

    #[test]
    fn the_target_is_the_slowest_run_and_right_probes() {
        let mode = |ms: &[f64], wrong: &[&str]| Mode {
            flag: "--probe",
            ms: ms.to_vec(),
            wrong: wrong.iter().map(|w| w.to_string()).collect(),
        };
        let cost = |modes| ProbeCost {
            modes,
            runs: 3,
            peak_open: 16,
            unprobed_ms: 20.0,
        };
        let fast = cost(vec![mode(&[900.0, 1200.0, 1000.0], &[])]);
        assert_eq!(
            (fast.modes[0].median(), fast.slowest_ms()),
            (1000.0, 1200.0)
        );
        assert!(fast.met());
        assert!(fast.section().contains("the slowest 1200 ms: met"));
        assert!(
            fast.section()
                .contains("| `audit --probe --json` | 1000 | 1200 | 980 | 0 |")
        );
        let one_slow = cost(vec![
            mode(&[900.0, 1000.0, 1100.0], &[]),
            mode(&[1000.0, 3100.0, 1000.0], &[]),
        ]);
        assert!(!one_slow.met());
        let wrong = cost(vec![mode(&[900.0], &["127.0.0.1:443: timeout, not tls"])]);
        assert!(!wrong.met());
        assert!(wrong.section().contains("127.0.0.1:443: timeout, not tls"));
    }
}
