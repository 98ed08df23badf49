//! End-to-end: `portstat watch` sees a listener this test opens and closes, and ends cleanly on
//! --count, --duration, Ctrl-C and a closed pipe.
// These tests drive real Linux sockets and /proc.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Stdio};
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
    let mut child = portstat()
        .arg("watch")
        .args(args)
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
    let mut timed = start_watch(&["--duration", "0.3", "--interval", "0.1"]);
    assert_eq!(
        wait_with_deadline(&mut timed, Duration::from_secs(10)),
        Some(0)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut interrupted = start_watch(&["--interval", "0.1"]);
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
