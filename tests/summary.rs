//! End-to-end: `portstat summary` counts the sockets the test opened; inside a private network
//! namespace (root) it matches /proc/net/sockstat exactly and measures ephemeral pressure.
// These tests drive real Linux sockets and /proc.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

fn count(report: &Value, proto: &str, family: &str, state: &str) -> u64 {
    report["counts"][proto][family][state].as_u64().unwrap_or(0)
}

fn own_entry(report: &Value) -> Value {
    report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == std::process::id())
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn summary_counts_the_sockets_this_test_holds() {
    let _serial = serial();
    let before = json_from(
        portstat()
            .args(["summary", "--top", "100000"])
            .arg("--json"),
    );
    let before_own = own_entry(&before)["sockets"].as_u64().unwrap_or(0);
    let _listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let _listener6 = TcpListener::bind("[::1]:0").expect("bind");
    let (_pair_listener, _client, _server) = tcp_pair("127.0.0.1:0");
    let _udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let after = json_from(portstat().args(["summary", "--top", "100000", "--json"]));
    // 3 listeners, 2 connection ends, 1 UDP socket.
    assert_eq!(
        own_entry(&after)["sockets"].as_u64().unwrap_or(0),
        before_own + 6,
        "{after:#}"
    );
    let states = &own_entry(&after)["states"];
    assert!(states["LISTEN"].as_u64() >= Some(3) && states["ESTABLISHED"].as_u64() >= Some(2));
    assert_eq!(after["schema"], 1);
    assert!(
        after["ephemeral"]["size"]
            .as_u64()
            .is_some_and(|size| size > 0)
    );
}

/// Reads /proc/net/sockstat{,6} inside the namespace: (TCP inuse, tw, UDP inuse, TCP6, UDP6).
fn sockstat(netns: &PrivateNetns) -> [u64; 5] {
    let output = Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .args(["cat", "/proc/net/sockstat", "/proc/net/sockstat6"])
        .output()
        .expect("nsenter cat");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |line_start: &str, name: &str| -> u64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(line_start))
            .unwrap_or_else(|| panic!("{line_start} in {text}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == name).expect("field");
        words[at + 1].parse().expect("number")
    };
    [
        field("TCP:", "inuse"),
        field("TCP:", "tw"),
        field("UDP:", "inuse"),
        field("TCP6:", "inuse"),
        field("UDP6:", "inuse"),
    ]
}

#[test]
#[ignore = "needs root"]
fn root_summary_in_a_private_namespace_matches_sockstat_exactly() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    let held = netns.run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listener6 = TcpListener::bind("[::1]:0").expect("bind6");
        let (pair, client, server) = tcp_pair("127.0.0.1:0");
        let (closed, gone_client, gone_server) = tcp_pair("127.0.0.1:0");
        drop(gone_client); // TIME_WAIT
        drop(gone_server);
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let udp6 = UdpSocket::bind("[::1]:0").expect("udp6");
        udp6.connect(udp6.local_addr().expect("address"))
            .expect("connect udp6");
        (listener, listener6, pair, client, server, closed, udp, udp6)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let report = json_from(netns.portstat().args(["summary", "--json"]));
    let [tcp_inuse, tw, udp_inuse, tcp6_inuse, udp6_inuse] = sockstat(&netns);
    let tcp4: u64 = [
        "LISTEN",
        "ESTABLISHED",
        "CLOSE_WAIT",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "LAST_ACK",
    ]
    .iter()
    .map(|state| count(&report, "tcp", "ipv4", state))
    .sum();
    assert_eq!(tcp4, tcp_inuse, "{report:#}");
    assert_eq!(count(&report, "tcp", "ipv4", "TIME_WAIT"), tw);
    assert_eq!(count(&report, "tcp", "ipv6", "LISTEN"), tcp6_inuse);
    assert_eq!(count(&report, "udp", "ipv4", "UNCONN"), udp_inuse);
    assert_eq!(count(&report, "udp", "ipv6", "ESTABLISHED"), udp6_inuse);
    // What the test opened: 3 IPv4 listeners and 1 IPv6, 2 connection ends, 1 TIME_WAIT,
    // 2 UDP sockets.
    assert_eq!(count(&report, "tcp", "ipv4", "LISTEN"), 3);
    assert_eq!(count(&report, "tcp", "ipv6", "LISTEN"), 1);
    assert_eq!(count(&report, "tcp", "ipv4", "ESTABLISHED"), 2);
    assert_eq!(count(&report, "tcp", "ipv4", "TIME_WAIT"), 1);
    assert_eq!(report["sockets"], 9);
    assert_eq!(report["listeners"]["tcp"], 4);
    assert_eq!(report["listeners"]["udp"], 1);
    drop(held);
}

#[test]
#[ignore = "needs root"]
fn root_many_connections_to_one_listener_show_as_ephemeral_pressure() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    // A range of 100 ports, set inside the namespace only (the sysctl is per namespace).
    let set = Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .args([
            "sh",
            "-c",
            "echo 40000 40099 > /proc/sys/net/ipv4/ip_local_port_range",
        ])
        .status()
        .expect("nsenter");
    assert!(set.success());
    let listener = netns.run(|| TcpListener::bind("127.0.0.1:0").expect("bind"));
    let address = listener.local_addr().expect("address");
    let connect = |n: usize| -> Vec<(TcpStream, TcpStream)> {
        let listener = listener.try_clone().expect("clone listener");
        netns.run(move || {
            (0..n)
                .map(|_| {
                    let client = TcpStream::connect(address).expect("connect");
                    let (server, _) = listener.accept().expect("accept");
                    (client, server)
                })
                .collect()
        })
    };
    let destination = |report: &Value| -> Value {
        report["ephemeral"]["destinations"]
            .as_array()
            .expect("destinations")
            .iter()
            .find(|d| d["remote_port"] == address.port())
            .cloned()
            .unwrap_or(Value::Null)
    };

    let mut held = connect(60);
    let report = json_from(netns.portstat().args(["summary", "--json"]));
    let busy = destination(&report);
    assert_eq!(report["ephemeral"]["size"], 100);
    assert_eq!(busy["in_use"], 60, "{report:#}");
    assert_eq!(busy["percent"], 60.0);
    assert_eq!(busy["level"], "warning");
    assert_eq!(busy["processes"][0]["pid"], std::process::id());

    held.extend(connect(25));
    let output = netns.portstat().arg("summary").output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ephemeral port exhaustion close at hand: 85 of 100 ports"),
        "{stderr}"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("85 in use (85.0%)") && text.contains("EXHAUSTION"),
        "{text}"
    );
}

/// A listener with a backlog of 1 that never accepts, and several clients connecting to it: the
/// kernel drops what its accept queue can't hold (ListenOverflows), and summary names the
/// listener as full. In a private namespace, whose counters start at zero.
#[test]
#[ignore = "needs root"]
fn root_an_overflowing_accept_queue_is_counted_and_its_listener_named() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let netns = PrivateNetns::new();
    let (listener, port, clients) = netns.run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        // SAFETY: listen() on a bound socket this closure owns, lowering its backlog to 1.
        assert_eq!(
            unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 1) },
            0
        );
        let clients: Vec<OwnedFd> = (0..6)
            .map(|_| {
                // SAFETY: a fresh non-blocking socket, owned at once; its connect only starts.
                unsafe {
                    let fd =
                        libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                    assert!(fd >= 0);
                    let sin = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: address.port().to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                        },
                        sin_zero: [0; 8],
                    };
                    libc::connect(
                        fd,
                        (&raw const sin).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    );
                    OwnedFd::from_raw_fd(fd)
                }
            })
            .collect();
        (listener, address.port(), clients)
    });
    let summary =
        |args: &[&str]| json_from(netns.portstat().args(["summary", "--json"]).args(args));
    // The handshakes complete asynchronously: wait (at most five seconds) until the kernel
    // has dropped one.
    let mut report = summary(&[]);
    for _ in 0..50 {
        if report["tcp_health"]["counters"]["listen_overflows"].as_u64() > Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        report = summary(&[]);
    }
    let health = &report["tcp_health"];
    assert_eq!(health["counters_since"], "boot");
    assert!(
        health["counters"]["listen_overflows"].as_u64() > Some(0),
        "{health}"
    );
    assert!(
        health["counters"]["listen_drops"].as_u64() > Some(0),
        "{health}"
    );
    let full = health["full_accept_queues"].as_array().expect("a list");
    assert_eq!(full.len(), 1, "{health}");
    assert_eq!(full[0]["local_port"], port);
    assert_eq!(full[0]["backlog"], 1);
    assert!(full[0]["accept_queue"].as_u64() >= Some(1));
    assert_eq!(health["backlog_unknown"], 0);
    let text = netns.portstat().arg("summary").output().expect("summary");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("127.0.0.1:{port}  accept queue")) && text.contains("FULL"),
        "{text}"
    );
    // procfs does not report the backlog, and says so.
    let procfs = summary(&["--backend", "procfs"]);
    assert_eq!(
        procfs["tcp_health"]["full_accept_queues"],
        serde_json::json!([])
    );
    assert_eq!(procfs["tcp_health"]["backlog_unknown"], 1);
    drop((listener, clients));
}
