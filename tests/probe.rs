//! End-to-end: `--probe` against real servers this test runs. Root tests put them in private
//! network namespaces (`unshare -n`, loopback only): a TLS server with an expired self-signed
//! certificate made here (rcgen), plain HTTP, an SSH banner, a silent server, a TLS 1.1-only
//! `openssl s_server`, and a fake Redis that records every byte it receives (it must receive
//! none). Without root, one test talks to an SSH-banner server on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// A server thread answering every connection to `listener` with `serve`; stopped (its
/// listener shut down, the thread joined) when dropped.
struct Server {
    fd: i32,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let fd = listener.as_raw_fd();
        let serve = Arc::new(serve);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let serve = Arc::clone(&serve);
                // One thread per connection: a silent server must not hold up the next one.
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    serve(stream);
                });
            }
        });
        Server {
            fd,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: shutting down a listening socket this struct's thread owns wakes its accept.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads until the client closes, keeping what it sent.
fn drain(mut stream: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    received
}

fn ssh(stream: TcpStream) {
    let mut stream = stream;
    let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    drain(stream);
}

fn silent(stream: TcpStream) {
    drain(stream);
}

/// Answers whatever it is sent as an HTTP server does: `400` to what is not a request.
fn http(stream: TcpStream) {
    let mut stream = stream;
    let mut buffer = [0u8; 4096];
    let Ok(read) = stream.read(&mut buffer) else {
        return;
    };
    let reply: &[u8] =
        if buffer[..read].starts_with(b"HEAD ") || buffer[..read].starts_with(b"GET ") {
            b"HTTP/1.0 200 OK\r\nServer: test\r\n\r\n"
        } else {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        };
    let _ = stream.write_all(reply);
}

/// What the fake Redis was sent, how many connections it had, and how many are still open.
#[derive(Default)]
struct Recorded {
    connections: usize,
    open: usize,
    bytes: Vec<u8>,
}

fn redis(recorded: Arc<Mutex<Recorded>>) -> impl Fn(TcpStream) + Send + Sync + 'static {
    move |mut stream| {
        {
            let mut recorded = recorded.lock().expect("record");
            recorded.connections += 1;
            recorded.open += 1;
        }
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stream.read(&mut buffer) {
            if read == 0 {
                break;
            }
            recorded
                .lock()
                .expect("record")
                .bytes
                .extend_from_slice(&buffer[..read]);
        }
        recorded.lock().expect("record").open -= 1;
    }
}

/// Waits until every connection the fake Redis accepted has been read to its end.
fn all_read(recorded: &Mutex<Recorded>) -> std::sync::MutexGuard<'_, Recorded> {
    for _ in 0..200 {
        {
            let guard = recorded.lock().expect("record");
            if guard.open == 0 {
                return guard;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the fake Redis's connections never closed: portstat left them open");
}

/// A TLS server (rustls) whose certificate, self-signed, expired on 2021-01-01.
fn expired_tls() -> impl Fn(TcpStream) + Send + Sync + 'static {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "portstat-probe-test");
    params.distinguished_name = name;
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = params.self_signed(&key).expect("certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    let config = Arc::new(config);
    move |mut stream| {
        let Ok(mut connection) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        while connection.is_handshaking() {
            if connection.complete_io(&mut stream).is_err() {
                return;
            }
        }
        let _ = connection.complete_io(&mut stream);
    }
}

fn bind_in(netns: &PrivateNetns, address: &'static str) -> TcpListener {
    netns.run(move || TcpListener::bind(address).expect("bind in the namespace"))
}

fn probe_of(listeners: &[Value], port: u16) -> &Value {
    &listeners
        .iter()
        .find(|l| l["port"] == port)
        .unwrap_or_else(|| panic!("no listener on {port}: {listeners:?}"))["probe"]
}

/// (port, rule, severity) of every finding the probe's rules raised.
fn probe_findings(document: &Value) -> Vec<(u64, String, String)> {
    let rules = [
        "tls-expired",
        "tls-expiring",
        "tls-self-signed",
        "tls-legacy",
        "plaintext-http",
        "protocol-mismatch",
    ];
    let mut found: Vec<(u64, String, String)> = document["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| rules.contains(&f["rule"].as_str().unwrap_or_default()))
        .map(|f| {
            (
                f["port"].as_u64().expect("port"),
                f["rule"].as_str().expect("rule").to_string(),
                f["severity"].as_str().expect("severity").to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

fn finding(port: u64, rule: &str, severity: &str) -> (u64, String, String) {
    (port, rule.to_string(), severity.to_string())
}

fn audit(netns: &PrivateNetns, probe: &str) -> Value {
    json_from(portstat().args([
        "audit",
        "--netns",
        &netns.path(),
        probe,
        "--fail-on",
        "never",
        "--json",
    ]))
}

#[test]
#[ignore = "needs root"]
fn root_probe_tells_tls_ssh_http_and_silence_apart_and_sends_redis_nothing() {
    assert!(is_root(), "run as root: the namespaces need it");
    // Namespace A: everything beyond loopback (wildcards), TLS among it.
    let a = PrivateNetns::new();
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let _servers = [
        Server::start(bind_in(&a, "0.0.0.0:8443"), expired_tls()),
        Server::start(bind_in(&a, "0.0.0.0:8080"), http),
        Server::start(bind_in(&a, "0.0.0.0:22"), ssh),
        Server::start(bind_in(&a, "0.0.0.0:443"), silent),
        Server::start(bind_in(&a, "0.0.0.0:6379"), redis(Arc::clone(&recorded))),
    ];
    let document = audit(&a, "--probe");
    let listeners = document["listeners"].as_array().expect("listeners");

    let tls = probe_of(listeners, 8443);
    assert_eq!(tls["protocol"], "tls", "{tls}");
    assert_eq!(tls["address"], "127.0.0.1:8443");
    let facts = &tls["tls"];
    assert_eq!(facts["version"], "TLS1.3", "{tls}");
    assert!(
        facts["cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{tls}"
    );
    assert_eq!(facts["subject"], "CN=portstat-probe-test", "{tls}");
    assert_eq!(facts["issuer"], "CN=portstat-probe-test", "{tls}");
    assert_eq!(facts["sans"], serde_json::json!(["localhost"]), "{tls}");
    assert_eq!(facts["not_after"], "2021-01-01T00:00:00Z", "{tls}");
    assert_eq!(facts["expired"], true, "{tls}");
    assert_eq!(facts["self_signed"], true, "{tls}");
    assert!(
        facts["days_left"].as_i64().is_some_and(|d| d < -300),
        "{tls}"
    );
    assert_eq!(facts["also_accepts"], serde_json::json!([]), "{tls}");

    let ssh = probe_of(listeners, 22);
    assert_eq!(ssh["protocol"], "ssh", "{ssh}");
    assert_eq!(ssh["banner"], "SSH-2.0-OpenSSH_9.2p1 Debian-2", "{ssh}");
    assert_eq!(probe_of(listeners, 8080)["protocol"], "http");
    assert_eq!(
        probe_of(listeners, 8080)["banner"],
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(probe_of(listeners, 443)["protocol"], "silent");
    let redis = probe_of(listeners, 6379);
    assert_eq!(redis["protocol"], "silent", "{redis}");
    assert_eq!(redis["withheld"], "redis", "{redis}");

    // Expired and self-signed beyond loopback; 443 promises TLS and says nothing; HTTP has a
    // TLS listener beside it on the host, so it is no finding.
    assert_eq!(
        probe_findings(&document),
        [
            finding(443, "protocol-mismatch", "medium"),
            finding(8443, "tls-expired", "high"),
            finding(8443, "tls-self-signed", "low"),
        ]
    );

    // Even with --probe=http, Redis is only listened to.
    let document = audit(&a, "--probe=http");
    assert_eq!(
        probe_of(document["listeners"].as_array().expect("listeners"), 6379)["withheld"],
        "redis"
    );
    let recorded = all_read(&recorded);
    assert!(recorded.connections >= 2, "Redis was never connected to");
    assert_eq!(
        recorded.bytes,
        b"",
        "Redis was sent {:?}",
        String::from_utf8_lossy(&recorded.bytes)
    );
}

#[test]
#[ignore = "needs root"]
fn root_probe_findings_follow_what_is_spoken_and_where() {
    assert!(is_root(), "run as root: the namespaces need it");
    // Namespace B: plain HTTP on 443 beyond loopback, the expired TLS server on loopback only.
    let b = PrivateNetns::new();
    let _servers = [
        Server::start(bind_in(&b, "0.0.0.0:443"), http),
        Server::start(bind_in(&b, "127.0.0.1:8443"), expired_tls()),
        Server::start(bind_in(&b, "0.0.0.0:2222"), ssh),
        Server::start(bind_in(&b, "0.0.0.0:80"), silent),
    ];
    let document = audit(&b, "--probe");
    let listeners = document["listeners"].as_array().expect("listeners");
    assert_eq!(probe_of(listeners, 443)["protocol"], "http");
    assert_eq!(probe_of(listeners, 2222)["protocol"], "ssh");
    // Port 80 is a web port: after the ClientHello, HEAD / went out too, and got no answer.
    assert_eq!(probe_of(listeners, 80)["protocol"], "silent");
    assert_eq!(
        probe_findings(&document),
        [
            finding(443, "plaintext-http", "low"),
            finding(443, "protocol-mismatch", "medium"),
            finding(8443, "tls-expired", "low"),
        ]
    );
    // The port guess about 80 (plain HTTP, no 443) gives way: it was heard, and is silent.
    let rules: Vec<&str> = document["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(!rules.contains(&"http"), "{rules:?}");
    let without = json_from(portstat().args([
        "audit",
        "--netns",
        &b.path(),
        "--fail-on",
        "never",
        "--json",
    ]));
    assert!(
        without["listeners"]
            .as_array()
            .expect("listeners")
            .iter()
            .all(|l| l.get("probe").is_none()),
        "no probe object without --probe"
    );

    // who's Probe: line, through the namespace's loopback.
    let output = portstat()
        .args(["who", "8443", "--netns", &b.path(), "--probe", "--no-bind"])
        .output()
        .expect("who runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("    Probe 127.0.0.1:8443: tls TLS1.3 ")
            && text.contains("certificate CN=portstat-probe-test (self-signed)")
            && text.contains(": EXPIRED "),
        "{text}"
    );
}

/// `openssl s_server` inside the namespace, killed when dropped.
struct OpenSsl(Child);

impl Drop for OpenSsl {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs root"]
fn root_probe_finds_tls_1_1_still_accepted() {
    assert!(is_root(), "run as root: the namespaces need it");
    let netns = PrivateNetns::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "365", "-subj", "/CN=old-tls"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(made.success());
    // One that takes TLS 1.1 only, one that takes 1.1 to 1.3: security level 0 lets OpenSSL 3
    // speak the old versions at all.
    let serve = |port: &str, only_old: bool| {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", netns.path()))
            .args(["openssl", "s_server", "-quiet", "-accept", port])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args(["-cipher", "DEFAULT:@SECLEVEL=0"]);
        if only_old {
            command.arg("-tls1_1");
        }
        OpenSsl(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("openssl s_server"),
        )
    };
    let _old = serve("0.0.0.0:9443", true);
    let _both = serve("0.0.0.0:8443", false);
    let document = wait_until_listening(&netns, &[8443, 9443]);
    let listeners = document["listeners"].as_array().expect("listeners");
    let old = &probe_of(listeners, 9443)["tls"];
    assert_eq!(old["version"], "TLS1.1", "{old}");
    let both = &probe_of(listeners, 8443)["tls"];
    assert_eq!(both["version"], "TLS1.3", "{both}");
    assert_eq!(
        both["also_accepts"],
        serde_json::json!(["TLS1.1"]),
        "{both}"
    );
    assert_eq!(both["subject"], "CN=old-tls", "{both}");
    assert_eq!(
        probe_findings(&document),
        [
            finding(8443, "tls-legacy", "medium"),
            finding(8443, "tls-self-signed", "low"),
            finding(9443, "tls-legacy", "medium"),
        ]
    );
}

/// The probed audit once every port listens (openssl takes a moment to start).
fn wait_until_listening(netns: &PrivateNetns, ports: &[u16]) -> Value {
    for _ in 0..100 {
        let document = audit(netns, "--probe");
        let listeners = document["listeners"].as_array().expect("listeners");
        if ports
            .iter()
            .all(|port| listeners.iter().any(|l| l["port"] == *port))
        {
            return document;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("openssl never listened on {ports:?}");
}

#[test]
fn probe_hears_an_ssh_banner_on_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let _server = Server::start(listener, ssh);
    // Exit status 1: the port is taken, so a server could not bind it.
    let output = portstat()
        .args([
            "who",
            &format!("127.0.0.1:{port}"),
            "--probe",
            "--no-bind",
            "--json",
        ])
        .output()
        .expect("who runs");
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let listeners = document["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 1, "{document}");
    let probe = &listeners[0]["probe"];
    assert_eq!(probe["protocol"], "ssh", "{probe}");
    assert_eq!(probe["banner"], "SSH-2.0-OpenSSH_9.2p1 Debian-2", "{probe}");
    assert_eq!(probe["tls"], Value::Null);
}
