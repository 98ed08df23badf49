//! End-to-end: the procfs and netstat2 backends see the same real loopback sockets, and the
//! automatic choice falls back to netstat2 where /proc can't be read.
// These tests drive real Linux sockets and /proc.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use common::*;
use serde_json::Value;

/// What both backends must agree on for one socket.
type Seen = (
    String,
    String,
    String,
    u64,
    Option<String>,
    Option<u64>,
    String,
    Vec<u64>,
);

fn seen(socket: &Value) -> Seen {
    let text = |field: &str| socket[field].as_str().expect(field).to_string();
    (
        text("proto"),
        text("family"),
        text("local_address"),
        socket["local_port"].as_u64().expect("port"),
        socket["remote_address"].as_str().map(str::to_string),
        socket["remote_port"].as_u64(),
        text("state"),
        pids(socket),
    )
}

fn view(backend: &str, ports: &str) -> BTreeSet<Seen> {
    let document = json(&["-a", "-n", "--backend", backend, "--port", ports]);
    sockets(&document).iter().map(seen).collect()
}

/// netstat2 reports no peer and no state for UDP sockets: a connected one reads as UNCONN.
fn as_netstat2_sees_it(mut socket: Seen) -> Seen {
    if socket.0 == "udp" {
        socket.4 = None;
        socket.5 = None;
        socket.6 = "UNCONN".to_string();
    }
    socket
}

#[test]
fn procfs_and_netstat2_report_the_same_sockets() {
    let _serial = serial();
    let listener4 = TcpListener::bind("127.0.0.1:0").expect("bind");
    let listener6 = TcpListener::bind("[::1]:0").expect("bind");
    let (pair4, mut client4, _server4) = tcp_pair("127.0.0.1:0");
    let (pair6, mut client6, _server6) = tcp_pair("[::1]:0");
    ping(&mut client4);
    ping(&mut client6);
    let udp4 = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let udp6 = UdpSocket::bind("[::1]:0").expect("bind udp6");
    let connected = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    connected
        .connect(udp4.local_addr().expect("address"))
        .expect("connect udp");
    let (closed, client, server) = tcp_pair("127.0.0.1:0");
    let time_wait_port = client.local_addr().expect("address").port();
    drop(client);
    drop(server);
    drop(closed);

    let local = |address: std::net::SocketAddr| address.port().to_string();
    let ports = [
        local(listener4.local_addr().expect("a")),
        local(listener6.local_addr().expect("a")),
        local(pair4.local_addr().expect("a")),
        local(pair6.local_addr().expect("a")),
        local(udp4.local_addr().expect("a")),
        local(udp6.local_addr().expect("a")),
        local(connected.local_addr().expect("a")),
        time_wait_port.to_string(),
    ]
    .join(",");
    let time_wait_seen = |document: &Value| {
        sockets(document)
            .iter()
            .any(|s| s["local_port"] == time_wait_port && s["state"] == "TIME_WAIT")
    };
    wait_for_json(&["-a", "--port", &ports], time_wait_seen);

    let procfs = view("procfs", &ports);
    let netstat2 = view("netstat2", &ports);
    // 2 listeners, 2 pairs (3 sockets each), 3 UDP sockets, 1 TIME_WAIT.
    assert_eq!(procfs.len(), 12, "{procfs:#?}");
    let states: BTreeSet<&str> = procfs.iter().map(|s| s.6.as_str()).collect();
    assert_eq!(
        states,
        BTreeSet::from(["ESTABLISHED", "LISTEN", "TIME_WAIT", "UNCONN"])
    );

    let expected: BTreeSet<Seen> = procfs.iter().cloned().map(as_netstat2_sees_it).collect();
    assert_eq!(netstat2, expected);

    // The one difference, named: the connected UDP socket.
    let connected_port = u64::from(connected.local_addr().expect("a").port());
    let in_procfs = procfs
        .iter()
        .find(|s| s.3 == connected_port)
        .expect("procfs");
    let in_netstat2 = netstat2
        .iter()
        .find(|s| s.3 == connected_port)
        .expect("netstat2");
    assert_eq!(in_procfs.6, "ESTABLISHED");
    assert_eq!(in_netstat2.6, "UNCONN");
    assert_eq!(in_netstat2.4, None);
}

#[test]
fn netstat2_cannot_read_recorded_tables() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/recorded");
    let output = portstat()
        .args(["--backend", "netstat2", "--proc-net", fixtures])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("procfs backend"));
}

/// portstat run as nobody in a private mount namespace whose /proc is an empty, unreadable
/// tmpfs: a locked-down container, as far as portstat can tell.
fn without_proc(args: &[&str]) -> std::process::Output {
    let binary = portstat().get_program().to_owned();
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o mode=000 none /proc && \
             exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"",
        )
        .arg("sh")
        .arg(binary)
        .args(args)
        .output()
        .expect("unshare runs")
}

#[test]
fn auto_falls_back_to_netstat2_when_proc_net_is_unreadable() {
    let _serial = serial();
    if skip_unless_root("auto_falls_back_to_netstat2_when_proc_net_is_unreadable") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();

    let output = without_proc(&["-l", "--port", &port, "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("used the netstat2 backend"), "{stderr}");
    assert!(stderr.contains("could not list processes"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let socket = &sockets(&document)[0];
    assert_eq!(socket["local_port"].as_u64(), port.parse().ok());
    assert_eq!(socket["state"], "LISTEN");
    assert_eq!(socket["uid"], 0);
    assert_eq!(socket["processes"], serde_json::json!([]));
    assert_eq!(socket["owner_note"], "hidden");

    let procfs = without_proc(&["-l", "--backend", "procfs"]);
    assert_eq!(procfs.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&procfs.stderr);
    assert!(stderr.contains("could not read"), "{stderr}");
}
