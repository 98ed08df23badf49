//! `portstat metrics` and `portstat serve` end to end: real listeners on loopback, the files
//! node_exporter's textfile collector reads, HTTP clients good and bad, `promtool check
//! metrics`, and (as root, in a private network namespace) a real Prometheus server scraping
//! `serve`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{PrivateNetns, own_process_name, portstat};

/// The exposition's `portstat_listener_info` line for a port, if any.
fn info_line(exposition: &str, port: u16) -> Option<String> {
    exposition
        .lines()
        .find(|line| {
            line.starts_with("portstat_listener_info{")
                && line.contains(&format!(",port=\"{port}\","))
        })
        .map(str::to_string)
}

fn metrics(args: &[&str]) -> String {
    let output = portstat()
        .arg("metrics")
        .args(args)
        .output()
        .expect("portstat metrics runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn metrics_names_a_live_listener_with_its_process() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let exposition = metrics(&[]);
    let line = info_line(&exposition, port).unwrap_or_else(|| panic!("{exposition}"));
    assert!(line.contains("proto=\"tcp\""), "{line}");
    assert!(line.contains("address=\"127.0.0.1\""), "{line}");
    assert!(line.contains("exposure=\"loopback\""), "{line}");
    assert!(
        line.contains(&format!("process=\"{}\"", own_process_name())),
        "{line}"
    );
    assert!(line.ends_with("} 1"), "{line}");
    // Its accept queue, with the backlog netlink reads (std's listen backlog is 128).
    let queue = format!(
        "portstat_accept_queue_backlog{{proto=\"tcp\",address=\"127.0.0.1\",port=\"{port}\",netns=\"\"}} 128"
    );
    assert!(
        exposition.lines().any(|l| l == queue),
        "{queue} in\n{exposition}"
    );
    // No pid anywhere in a label.
    assert!(!exposition.contains("pid="), "{exposition}");
}

#[test]
fn metrics_leave_out_drops_labels_from_every_series() {
    let _listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let exposition = metrics(&["--leave-out", "address,process,user"]);
    let series: Vec<&str> = exposition.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        series
            .iter()
            .any(|l| l.starts_with("portstat_listener_info{")),
        "{exposition}"
    );
    for line in series {
        for label in ["address=", "process=", "user="] {
            assert!(
                !line.contains(&format!("{{{label}")) && !line.contains(&format!(",{label}")),
                "{line}"
            );
        }
    }
}

#[test]
fn metrics_output_replaces_the_file_atomically_and_refuses_a_fifo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("portstat.prom");
    std::fs::write(&file, "old\n").expect("old file");
    let status = portstat()
        .args(["metrics", "--output"])
        .arg(&file)
        .status()
        .expect("runs");
    assert!(status.success());
    let written = std::fs::read_to_string(&file).expect("written");
    assert!(
        written.starts_with("# HELP portstat_listener_info"),
        "{written}"
    );
    // Only the file itself: the temporary file was renamed over it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("portstat.prom")]);

    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let output = portstat()
        .args(["metrics", "--output"])
        .arg(&fifo)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot write") && stderr.contains("FIFO"),
        "{stderr}"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo)
            .expect("fifo")
            .file_type()
            .is_fifo()
    );
}

/// `promtool check metrics` on an exposition: its complaints, if any.
fn promtool(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool ends");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
#[ignore = "needs promtool"]
fn promtool_accepts_the_live_exposition_and_every_golden_one() {
    let _listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    for args in [&[][..], &["--audit"][..], &["--openmetrics", "--audit"][..]] {
        let exposition = metrics(args);
        if let Err(why) = promtool(&exposition) {
            panic!("promtool on metrics {args:?}: {why}\n{exposition}");
        }
    }
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&goldens).expect("golden dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !name.starts_with("metrics_") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("golden");
        // The golden file is "$ command", stdout, "--- stderr", ...
        let exposition = text
            .split_once('\n')
            .and_then(|(_, rest)| rest.split_once("--- stderr"))
            .map(|(stdout, _)| stdout)
            .expect("golden layout");
        if exposition.is_empty() {
            continue;
        }
        if let Err(why) = promtool(exposition) {
            panic!("promtool on {name}: {why}");
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} golden expositions");
}

/// A `portstat serve` child and the address it serves on.
struct Served {
    child: Child,
    address: SocketAddr,
}

impl Served {
    fn start(command: &mut Command, args: &[&str]) -> Served {
        let mut child = command
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("portstat serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("serve says where it serves");
        let address = line
            .trim()
            .strip_prefix("serving http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Served { child, address }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a server answered to raw request bytes: the whole response, until it closed.
fn exchange(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(address: SocketAddr, path: &str, accept: Option<&str>) -> String {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    exchange(
        address,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{accept}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[test]
fn serve_answers_metrics_and_the_index_and_survives_bad_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let served = Served::start(
        &mut portstat(),
        &["--listen", "127.0.0.1:0", "--min-interval", "0.01"],
    );
    let address = served.address;

    let index = get(address, "/", None);
    assert_eq!(status_of(&index), 200, "{index}");
    assert!(index.contains("href=\"/metrics\""), "{index}");

    let plain = get(address, "/metrics", None);
    assert_eq!(status_of(&plain), 200, "{plain}");
    assert!(
        plain
            .to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{plain}"
    );
    assert!(info_line(body_of(&plain), port).is_some(), "{plain}");
    assert!(!plain.contains("# EOF"), "{plain}");

    let open = get(
        address,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert!(
        open.to_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{open}"
    );
    assert!(body_of(&open).ends_with("# EOF\n"), "{open}");

    let wrong_method = exchange(
        address,
        b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(status_of(&wrong_method), 405, "{wrong_method}");
    assert_eq!(status_of(&get(address, "/no-such-page", None)), 404);
    let garbage = exchange(address, b"\x16\x03\x01 this is not HTTP\r\n\r\n");
    assert!(
        garbage.is_empty() || status_of(&garbage) == 400,
        "{garbage:?}"
    );
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let huge = exchange(address, huge.as_bytes());
    assert!(huge.is_empty() || status_of(&huge) >= 400, "{huge:?}");
    // A client that goes away mid-request.
    drop(
        TcpStream::connect(address)
            .expect("connect")
            .write_all(b"GET /met"),
    );

    let after = get(address, "/metrics", None);
    assert_eq!(status_of(&after), 200, "still serving: {after}");
    drop(listener);
}

#[test]
fn serve_answers_others_while_slow_clients_hold_connections() {
    let served = Served::start(&mut portstat(), &["--listen", "127.0.0.1:0"]);
    let address = served.address;
    // Clients that send half a request and then nothing.
    let slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(address).expect("connect");
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: sl")
                .expect("half a request");
            stream
        })
        .collect();
    let response = get(address, "/metrics", None);
    assert_eq!(status_of(&response), 200, "{response}");
    drop(slow);
}

#[test]
fn serve_closes_a_client_that_never_finishes_its_headers() {
    let served = Served::start(&mut portstat(), &["--listen", "127.0.0.1:0"]);
    let mut stream = TcpStream::connect(served.address).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\n")
        .expect("a request line");
    // The server's header timeout is 10 s; a client that waited 40 s for nothing would mean
    // none is enforced.
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = stream.read_to_end(&mut buffer);
    assert!(
        read.is_ok() || started.elapsed() < Duration::from_secs(40),
        "the connection was still open after 40 s: {read:?}"
    );
}

#[test]
fn serve_answers_scrapes_within_the_minimum_interval_from_one_scan() {
    let served = Served::start(
        &mut portstat(),
        &["--listen", "127.0.0.1:0", "--min-interval", "10m"],
    );
    let first = get(served.address, "/metrics", None);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let second = get(served.address, "/metrics", None);
    assert_eq!(
        body_of(&first),
        body_of(&second),
        "the second scrape is the first's scan"
    );
    assert!(
        info_line(body_of(&second), port).is_none(),
        "no new scan within 10 minutes"
    );
}

#[test]
fn serve_beyond_loopback_says_so() {
    let mut child = portstat()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("a warning");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("beyond loopback"), "{line}");
}

/// An HTTP GET from inside `netns`, its body; empty while nothing listens there yet.
fn get_in(netns: &PrivateNetns, address: SocketAddr, path: String) -> String {
    netns.run(move || {
        if TcpStream::connect(address).is_err() {
            return String::new();
        }
        body_of(&get(address, &path, None)).to_string()
    })
}

#[test]
#[ignore = "needs root"]
fn root_prometheus_scrapes_serve_and_its_query_api_returns_the_listener() {
    let netns = PrivateNetns::new();
    let (listener, free) = netns.run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind in the namespace");
        let free = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let free = free.local_addr().expect("address");
        (listener, free)
    });
    let port = listener.local_addr().expect("address").port();
    let served = Served::start(
        &mut netns.portstat(),
        &["--listen", "127.0.0.1:0", "--min-interval", "0.5"],
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: portstat\n    static_configs:\n      - targets: ['{}']\n",
            served.address
        ),
    )
    .expect("config");
    let mut prometheus = Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .arg("--")
        .arg("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={free}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let query = format!("/api/v1/query?query=portstat_listener_info%7Bport%3D%22{port}%22%7D");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last;
    let found = loop {
        last = get_in(&netns, free, query.clone());
        if last.contains(&format!("\"port\":\"{port}\"")) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(
        found,
        "Prometheus never had the listener: last answer {last}"
    );
    assert!(last.contains("\"job\":\"portstat\""), "{last}");
    assert!(last.contains("\"exposure\":\"loopback\""), "{last}");
    drop(listener);
}
