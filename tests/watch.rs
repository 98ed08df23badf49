//! End-to-end: `portstat watch` sees a listener this test opens and closes, and ends cleanly on
//! --count, --duration, Ctrl-C and a closed pipe.
// These tests drive real Linux sockets and /proc.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// A port no one holds right now (the kernel's choice, released at once).
fn vacant_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Starts `portstat watch ARGS` and waits until it has read its first baseline.
fn start_watch(args: &[&str]) -> Child {
    let mut command = portstat();
    command.arg("watch").args(args);
    start(command)
}

/// Starts a watch `command` and waits until it has read its first baseline.
fn start(mut command: Command) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    // Warnings (an owner this view can't see) may come first.
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("watching"));
    assert!(ready.is_some(), "watch never said it was watching");
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn drain_stdout(child: &mut Child) {
    let mut stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_sees_a_listener_opened_and_closed() {
    let _serial = serial();
    let port = vacant_port();
    let mut child = start_watch(&[
        "-l",
        "--port",
        &port.to_string(),
        "--json",
        "--count",
        "2",
        "--interval",
        "0.05",
    ]);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the watched port");
    std::thread::sleep(Duration::from_millis(300));
    drop(listener);
    assert_eq!(
        wait_with_deadline(&mut child, Duration::from_secs(10)),
        Some(0)
    );
    let stdout = child.stdout.take().expect("stdout");
    let events: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("line")).expect("one JSON event per line"))
        .collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["event"], "listener-opened");
    assert_eq!(events[1]["event"], "listener-closed");
    for event in &events {
        assert_eq!(event["local_port"], port);
        assert_eq!(event["state"], "LISTEN");
        assert_eq!(event["processes"][0]["pid"], std::process::id());
        assert!(event["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

#[test]
fn watch_prints_a_line_per_event_in_text() {
    let _serial = serial();
    let port = vacant_port();
    let mut child = start_watch(&[
        "--port",
        &port.to_string(),
        "--count",
        "1",
        "--interval",
        "0.05",
    ]);
    let _listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    assert_eq!(
        wait_with_deadline(&mut child, Duration::from_secs(10)),
        Some(0)
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert!(line.contains("listener-opened"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains(&format!("{}/", std::process::id())), "{line}");
}

#[test]
fn watch_ends_cleanly_on_duration_ctrl_c_and_a_closed_pipe() {
    let _serial = serial();
    let started = Instant::now();
    // Unfiltered, these two print every change other tests make meanwhile: unread, their
    // output would fill the pipe and block them.
    let mut timed = start_watch(&["--duration", "0.3", "--interval", "0.1"]);
    drain_stdout(&mut timed);
    assert_eq!(
        wait_with_deadline(&mut timed, Duration::from_secs(10)),
        Some(0)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut interrupted = start_watch(&["--interval", "0.1"]);
    drain_stdout(&mut interrupted);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(interrupted.id() as i32, libc::SIGINT) };
    assert_eq!(
        wait_with_deadline(&mut interrupted, Duration::from_secs(10)),
        Some(0)
    );

    let port = vacant_port();
    let mut piped = start_watch(&["--port", &port.to_string(), "--interval", "0.05"]);
    drop(piped.stdout.take()); // the reader goes away
    let _listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    assert_eq!(
        wait_with_deadline(&mut piped, Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn watch_sees_a_listener_rebound_by_another_process_between_two_readings() {
    use std::os::fd::AsRawFd;
    let _serial = serial();
    let port = vacant_port();
    let mut child = start_watch(&[
        "-l",
        "--port",
        &port.to_string(),
        "--json",
        "--count",
        "3",
        "--interval",
        "0.5",
        // Ends the watch, and so this test, even when an event never comes.
        "--duration",
        "10",
    ]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_event = || -> Value {
        let line = lines.next().expect("an event").expect("a line");
        serde_json::from_str(&line).expect("one JSON event per line")
    };
    let first = TcpListener::bind(("127.0.0.1", port)).expect("bind the watched port");
    let opened = next_event();
    assert_eq!(opened["event"], "listener-opened", "{opened}");
    // watch has just read the tables: the next reading is about 0.5 s away. Within a few
    // milliseconds this process closes its listener and another process (a `sleep` given the
    // new listener's descriptor) holds one bound to the same address.
    drop(first);
    let second = TcpListener::bind(("127.0.0.1", port)).expect("bind the port again");
    let holder = Sharer::spawn(second.as_raw_fd());
    drop(second);
    let closed = next_event();
    let reopened = next_event();
    assert_eq!(
        wait_with_deadline(&mut child, Duration::from_secs(10)),
        Some(0)
    );
    assert_eq!(closed["event"], "listener-closed", "{closed}");
    assert_eq!(
        closed["processes"][0]["pid"],
        std::process::id(),
        "{closed}"
    );
    assert_eq!(reopened["event"], "listener-opened", "{reopened}");
    assert_eq!(reopened["processes"][0]["pid"], holder.pid(), "{reopened}");
    assert_eq!(reopened["processes"].as_array().map(Vec::len), Some(1));
    for event in [&opened, &closed, &reopened] {
        assert_eq!(event["local_address"], "127.0.0.1");
        assert_eq!(event["local_port"], port);
    }
}

/// What the short-lived traffic was: the listener's port, each client's port with the bytes it
/// sent, and the UDP sockets' ports (the peer they sent to among them).
struct Traffic {
    port: u16,
    clients: Vec<(u16, usize)>,
    udp: Vec<u16>,
}

/// 30 connections that open and close at once (the first three carrying 1000, 2000 and 3000
/// bytes), on a listener that lives as briefly, and 5 UDP sockets: well within one second, so
/// no reading of the tables sees any of them.
fn short_lived_traffic() -> Traffic {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let mut clients = Vec::new();
    for i in 0..30 {
        let mut client = TcpStream::connect(address).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let sent = if i < 3 { 1000 * (i + 1) } else { 0 };
        client.write_all(&vec![b'x'; sent]).expect("send");
        let port = client.local_addr().expect("client address").port();
        drop(client);
        let mut received = Vec::new();
        server.read_to_end(&mut received).expect("receive");
        assert_eq!(received.len(), sent);
        clients.push((port, sent));
    }
    drop(listener);
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let mut udp: Vec<u16> = (0..5)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
            socket
                .send_to(b"ping", peer.local_addr().expect("address"))
                .expect("send UDP");
            socket.local_addr().expect("address").port()
        })
        .collect();
    udp.push(peer.local_addr().expect("address").port());
    Traffic {
        port: address.port(),
        clients,
        udp,
    }
}

/// `portstat watch --json --interval 5 --duration 3` inside a private namespace, while
/// `short_lived_traffic` runs there: one reading only, so every close it prints came from the
/// kernel's reports.
fn watch_short_lived_traffic(as_nobody: bool) -> (Traffic, Vec<Value>) {
    let namespace = PrivateNetns::new();
    let mut command = Command::new("nsenter");
    command.arg(format!("--net={}", namespace.path()));
    if as_nobody {
        command.args(["--setuid", "65534", "--setgid", "65534"]);
    }
    command.arg("--").arg(portstat().get_program()).args([
        "watch",
        "--json",
        "--interval",
        "5",
        "--duration",
        "3",
    ]);
    let mut child = start(command);
    let traffic = namespace.run(short_lived_traffic);
    assert_eq!(
        wait_with_deadline(&mut child, Duration::from_secs(20)),
        Some(0)
    );
    let stdout = child.stdout.take().expect("stdout");
    let events = BufReader::new(stdout)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("line")).expect("one JSON event per line"))
        .collect();
    (traffic, events)
}

fn check_every_close_is_seen(traffic: &Traffic, events: &[Value]) {
    let closes = |event: &str, proto: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["event"] == event && e["proto"] == proto)
            .collect()
    };
    let tcp = closes("connection-closed", "tcp");
    // Each end of each connection, once, none of them seen open.
    assert!(tcp.iter().all(|e| e["seen_open"] == false), "{events:#?}");
    let ends = |local: &str, remote: &str| -> HashMap<u64, &Value> {
        tcp.iter()
            .filter(|e| e[remote] == traffic.port)
            .map(|e| (e[local].as_u64().expect("port"), *e))
            .collect()
    };
    let servers = ends("remote_port", "local_port");
    let clients = ends("local_port", "remote_port");
    assert_eq!(tcp.len(), 60, "{events:#?}");
    for &(port, sent) in &traffic.clients {
        let port = u64::from(port);
        let (server, client) = (servers[&port], clients[&port]);
        // The kernel counts the FIN received as a byte, and the SYN and FIN acked.
        let received = server["bytes_received"].as_u64().expect("bytes_received");
        assert!((sent..=sent + 1).contains(&(received as usize)), "{server}");
        let acked = client["bytes_acked"].as_u64().expect("bytes_acked");
        assert!((sent..=sent + 2).contains(&(acked as usize)), "{client}");
    }
    let listeners = closes("listener-closed", "tcp");
    assert_eq!(listeners.len(), 1, "{events:#?}");
    assert_eq!(listeners[0]["local_port"], traffic.port);
    assert_eq!(listeners[0]["seen_open"], false);
    let mut udp: Vec<u64> = closes("listener-closed", "udp")
        .iter()
        .filter(|e| e["seen_open"] == false)
        .map(|e| e["local_port"].as_u64().expect("port"))
        .collect();
    udp.sort_unstable();
    let mut expected: Vec<u64> = traffic.udp.iter().map(|&p| u64::from(p)).collect();
    expected.sort_unstable();
    assert_eq!(udp, expected, "{events:#?}");
    assert!(
        events.iter().all(|e| e["event"] != "events-lost"),
        "{events:#?}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_watch_reports_every_connection_that_opens_and_closes_between_readings() {
    let _serial = serial();
    let (traffic, events) = watch_short_lived_traffic(false);
    check_every_close_is_seen(&traffic, &events);
}

#[test]
#[ignore = "needs root"]
fn root_watch_reports_them_as_nobody_too() {
    let _serial = serial();
    let (traffic, events) = watch_short_lived_traffic(true);
    check_every_close_is_seen(&traffic, &events);
}
