//! End-to-end tests that need root: addresses beyond loopback (bound only inside a private
//! network namespace the test creates), well-known ports, and another user's view. Without root
//! each test says why it skips.
// These tests drive real Linux sockets and /proc.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;

use crate::common::*;
use serde_json::Value;

fn find<'a>(document: &'a Value, local: &str, port: u16, state: &str) -> &'a Value {
    sockets(document)
        .iter()
        .find(|s| s["local_address"] == local && s["local_port"] == port && s["state"] == state)
        .unwrap_or_else(|| panic!("no {state} socket on {local}:{port} in {document:#}"))
}

/// Sockets opened inside the namespace: kept alive by the returned values until dropped.
struct Host {
    _listeners: Vec<TcpListener>,
    _udp: UdpSocket,
    _connections: Vec<TcpStream>,
    client_port_https: u16,
    client_port_mapped: u16,
}

fn open_host_sockets() -> Host {
    let ssh = TcpListener::bind("0.0.0.0:22").expect("bind 0.0.0.0:22");
    let http = TcpListener::bind("[::]:80").expect("bind [::]:80 (dual-stack)");
    let https = TcpListener::bind("127.0.0.1:443").expect("bind 127.0.0.1:443");
    let dns = UdpSocket::bind("0.0.0.0:53").expect("bind udp 0.0.0.0:53");
    let to_https = TcpStream::connect("127.0.0.1:443").expect("connect to 443");
    let (https_server_side, _) = https.accept().expect("accept on 443");
    let to_http = TcpStream::connect("127.0.0.1:80").expect("v4 connect to dual-stack 80");
    let (mapped_server_side, _) = http.accept().expect("accept on 80");
    Host {
        client_port_https: to_https.local_addr().expect("address").port(),
        client_port_mapped: to_http.local_addr().expect("address").port(),
        _listeners: vec![ssh, http, https],
        _udp: dns,
        _connections: vec![to_https, https_server_side, to_http, mapped_server_side],
    }
}

#[test]
#[ignore = "needs root"]
fn root_private_namespace_shows_wildcards_mapped_addresses_and_service_names() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    let host = netns.run(open_host_sockets);
    let document = json_from(netns.portstat().args(["--json"]));
    assert_eq!(sockets(&document).len(), 8, "{document:#}");

    let ssh = find(&document, "0.0.0.0", 22, "LISTEN");
    assert_eq!(ssh["local_service"], "ssh");
    assert_eq!(ssh["local_range"], "well-known");
    assert_eq!(pids(ssh), [u64::from(std::process::id())]);

    let http = find(&document, "::", 80, "LISTEN");
    assert_eq!(http["family"], "ipv6");
    assert_eq!(http["local_service"], "http");

    let dns = find(&document, "0.0.0.0", 53, "UNCONN");
    assert_eq!(dns["proto"], "udp");
    assert_eq!(dns["local_service"], "domain");

    // A v4 client of the dual-stack listener: its accepted side is an IPv4-mapped address.
    let mapped = find(&document, "::ffff:127.0.0.1", 80, "ESTABLISHED");
    assert_eq!(mapped["remote_address"], "::ffff:127.0.0.1");
    assert_eq!(mapped["remote_port"], host.client_port_mapped);
    assert_eq!(mapped["direction"], "inbound");
    let mapped_client = find(
        &document,
        "127.0.0.1",
        host.client_port_mapped,
        "ESTABLISHED",
    );
    assert_eq!(mapped_client["direction"], "outbound");
    assert_eq!(mapped_client["remote_service"], "http");

    // For an outbound connection the service that matters is the remote one.
    let client = find(
        &document,
        "127.0.0.1",
        host.client_port_https,
        "ESTABLISHED",
    );
    assert_eq!(client["direction"], "outbound");
    assert_eq!(client["remote_service"], "https");
    assert_eq!(client["remote_range"], "well-known");
    let server = sockets(&document)
        .iter()
        .find(|s| s["local_port"] == 443 && s["state"] == "ESTABLISHED")
        .expect("server side of the https connection");
    assert_eq!(server["direction"], "inbound");
    assert_eq!(server["local_service"], "https");

    // The table says the same for people.
    let table = netns.portstat().args(["-l"]).output().expect("runs");
    let text = String::from_utf8_lossy(&table.stdout);
    let ssh_row = text
        .lines()
        .find(|line| line.contains("0.0.0.0:22 "))
        .expect("ssh row");
    assert!(
        ssh_row.contains("well-known") && ssh_row.contains("ssh"),
        "{ssh_row}"
    );
    assert!(text.contains("[::]:80 "), "{text}");

    // -n: numbers only, no service or user names.
    let numeric = json_from(netns.portstat().args(["-n", "--json"]));
    let ssh = find(&numeric, "0.0.0.0", 22, "LISTEN");
    assert_eq!(ssh["local_service"], Value::Null);
    assert_eq!(ssh["user"], Value::Null);
    assert_eq!(ssh["uid"], 0);
    assert_eq!(pids(ssh), [u64::from(std::process::id())]);
}

#[test]
#[ignore = "needs root"]
fn root_the_default_namespace_does_not_see_the_private_ones_sockets() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    let listener = netns.run(|| TcpListener::bind("127.0.0.1:0").expect("bind"));
    let port = listener.local_addr().expect("address").port().to_string();
    let outside = json(&["-l", "--port", &port]);
    assert!(
        sockets(&outside)
            .iter()
            .all(|s| s["inode"] != inode_of(&netns, &port)),
        "{outside:#}"
    );
    let inside = json_from(netns.portstat().args(["-l", "--port", &port, "--json"]));
    assert_eq!(sockets(&inside).len(), 1);
}

fn inode_of(netns: &PrivateNetns, port: &str) -> Value {
    let inside = json_from(netns.portstat().args(["-l", "--port", port, "--json"]));
    sockets(&inside)[0]["inode"].clone()
}

#[test]
#[ignore = "needs root"]
fn root_another_users_sockets_show_their_uid_and_why_the_owner_is_hidden() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    let mut as_nobody = portstat();
    as_nobody
        .args(["-l", "--port", &port, "--json"])
        .uid(65534)
        .gid(65534);
    let output = as_nobody.output().expect("runs as nobody");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hidden: run as root"), "{stderr}");
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let socket = &sockets(&document)[0];
    assert_eq!(socket["uid"], 0);
    assert_eq!(socket["user"], "root");
    assert_eq!(socket["processes"], serde_json::json!([]));
    assert_eq!(socket["owner_note"], "hidden");
    assert!(
        document["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("run as root")))
    );
}
