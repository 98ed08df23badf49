//! End-to-end: `portstat who` against real sockets on loopback; addresses beyond loopback only
//! inside a private network namespace.
// These tests drive real Linux sockets and /proc.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Output;

use crate::common::*;
use serde_json::Value;
use socket2::{Domain, Socket, Type};

fn who(args: &[&str]) -> Output {
    portstat()
        .arg("who")
        .args(args)
        .output()
        .expect("portstat who runs")
}

/// Runs `who ... --json` and returns (exit status, report).
fn who_json(args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let output = who(&all);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().expect("exit status"), report)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn message(report: &Value) -> &str {
    report["verdict"]["message"].as_str().expect("message")
}

#[test]
fn listener_held_by_a_child_process_is_named_with_how_to_stop_it() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let child = Sharer::spawn(listener.as_raw_fd());
    drop(listener); // the child alone holds it now
    let (status, report) = who_json(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(status, 1);
    assert_eq!(report["verdict"]["can_bind"], false);
    assert_eq!(report["verdict"]["reason"], "listener");
    let owner = &report["listeners"][0]["owners"][0];
    assert_eq!(owner["pid"], child.pid());
    assert_eq!(owner["name"], "sleep");
    assert!(
        owner["cmdline"]
            .as_str()
            .is_some_and(|c| c.starts_with("sleep"))
    );
    assert!(
        owner["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let text = message(&report);
    assert!(
        text.contains(&format!("sleep (pid {}", child.pid())),
        "{text}"
    );
    assert!(
        text.contains(&format!("kill {}", child.pid())) || text.contains("systemctl stop"),
        "{text}"
    );
    assert_eq!(report["test_bind"]["without_reuseaddr"], "in-use");
    assert_eq!(report["test_bind"]["with_reuseaddr"], "in-use");
}

#[test]
fn a_wildcard_bind_is_blocked_by_a_specific_listener() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    for target in [format!("0.0.0.0:{port}"), port.to_string()] {
        let (status, report) = who_json(&[&target]);
        assert_eq!(status, 1, "{target}");
        let text = message(&report);
        assert!(text.contains("127.0.0.1:"), "{text}");
        assert!(text.contains("wildcard bind"), "{text}");
    }
}

#[test]
#[ignore = "needs root"]
fn root_specific_and_dual_stack_binds_are_blocked_by_wildcard_listeners() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    let listeners = netns.run(|| {
        let v4 = TcpListener::bind("0.0.0.0:0").expect("bind 0.0.0.0");
        let v6 = TcpListener::bind("[::]:0").expect("bind [::] dual-stack");
        (v4, v6)
    });
    let v4_port = listeners.0.local_addr().expect("address").port();
    let v6_port = listeners.1.local_addr().expect("address").port();
    let in_netns = |target: String| {
        let output = netns
            .portstat()
            .args(["who", &target, "--json"])
            .output()
            .expect("runs");
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        (output.status.code(), report)
    };
    let (status, report) = in_netns(format!("127.0.0.1:{v4_port}"));
    assert_eq!(status, Some(1));
    assert!(
        message(&report).contains("every address of its family"),
        "{report:#}"
    );
    let (status, report) = in_netns(format!("127.0.0.1:{v6_port}"));
    assert_eq!(status, Some(1));
    assert!(message(&report).contains("dual-stack"), "{report:#}");
}

#[test]
fn time_wait_alone_lets_a_reuseaddr_server_bind() {
    let _serial = serial();
    // std's listener sets SO_REUSEADDR, and the accepted socket inherits it, as servers' do.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    drop(server); // the server side closes first: its port waits in TIME_WAIT
    drop(client);
    drop(listener);
    let args = ["-a", "--state", "time-wait", "--port", &port.to_string()];
    wait_for_json(&args, |d| {
        sockets(d)
            .iter()
            .any(|s| s["local_port"] == port && s["state"] == "TIME_WAIT")
    });
    let (status, report) = who_json(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["verdict"]["reason"], "connections-only");
    assert!(
        message(&report).contains("SO_REUSEADDR can bind"),
        "{report:#}"
    );
    assert_eq!(report["connections"]["TIME_WAIT"], 1);
    let left = report["time_wait"][0]["expires_in_seconds"]
        .as_f64()
        .expect("timer");
    assert!(left > 0.0 && left <= 60.0, "{left}");
    assert_eq!(report["test_bind"]["without_reuseaddr"], "in-use");
    assert_eq!(report["test_bind"]["with_reuseaddr"], "bound");
}

#[test]
fn privileged_port_needs_root_or_the_capability() {
    let _serial = serial();
    let output = if is_root() {
        // As root, ask as nobody inside a private network namespace whose
        // ip_unprivileged_port_start is the default 1024.
        let netns = PrivateNetns::new();
        let path = netns.path();
        let binary = portstat().get_program().to_owned();
        let mut command = std::process::Command::new("nsenter");
        command
            .arg(format!("--net={path}"))
            .args(["--", "sh", "-c"])
            .arg("echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start && exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"")
            .arg("sh")
            .arg(binary)
            .args(["who", "80", "--json"]);
        command.output().expect("runs")
    } else {
        let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .expect("sysctl")
            .trim()
            .parse()
            .expect("number");
        if start <= 80 {
            eprintln!(
                "skipping privileged_port_needs_root_or_the_capability: port 80 is unprivileged here"
            );
            return;
        }
        who(&["80", "--json"])
    };
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["verdict"]["reason"], "privileged-port");
    let text = message(&report);
    for remedy in [
        "CAP_NET_BIND_SERVICE",
        "AmbientCapabilities",
        "ip_unprivileged_port_start",
    ] {
        assert!(text.contains(remedy), "{text}");
    }
    assert_eq!(
        report["test_bind"]["without_reuseaddr"],
        "permission-denied"
    );
}

#[test]
fn ephemeral_ports_are_flagged_with_whether_a_connection_holds_them() {
    let _serial = serial();
    let (_listener, client, _server) = tcp_pair("127.0.0.1:0");
    let client_port = client.local_addr().expect("address").port();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("sysctl");
    let (status, report) = who_json(&[&format!("127.0.0.1:{client_port}")]);
    assert_eq!(report["target"]["ephemeral"], true);
    let notes = report["verdict"]["notes"].to_string();
    assert!(notes.contains("ephemeral range"), "{notes}");
    // The listener it talks to is on another port, out of this question's view: the
    // connection's direction can't be told, and it is counted as one that may be outgoing.
    // Another test's connection to elsewhere may share the local port (Linux shares an
    // ephemeral port between connections to different peers), so the count is not checked.
    assert!(notes.contains("right now"), "{notes}");
    assert!(
        notes.contains("outgoing connection") || notes.contains("of unknown direction"),
        "{notes}"
    );
    assert!(notes.contains("ip_local_reserved_ports"), "{notes}");
    assert!(
        range.split_whitespace().all(|bound| notes.contains(bound)),
        "{notes}"
    );
    // The client's own port is held by an established connection, not by a listener; the
    // client did not set SO_REUSEADDR, so even a server that does cannot bind until it closes.
    assert_eq!(report["verdict"]["reason"], "connections-only");
    assert_eq!(report["test_bind"]["with_reuseaddr"], "in-use");
    assert_eq!(status, 1);
    assert!(message(&report).contains("did not set it"), "{report:#}");
    assert!(
        message(&report).contains("no server can bind until it is gone"),
        "{report:#}"
    );
}

#[test]
fn reuseport_listeners_and_inherited_sockets_are_called_shared() {
    let _serial = serial();
    let first = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    first.set_reuse_port(true).expect("SO_REUSEPORT");
    first
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    first.listen(16).expect("listen");
    let address = first
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    let second = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    second.set_reuse_port(true).expect("SO_REUSEPORT");
    second
        .bind(&address.into())
        .expect("second bind with SO_REUSEPORT");
    second.listen(16).expect("listen");
    let (status, report) = who_json(&[&address.to_string()]);
    assert_eq!(status, 1);
    assert_eq!(report["verdict"]["reason"], "shared-listener");
    assert!(
        message(&report).contains(&format!(
            "The 2 sockets on {address} share it through SO_REUSEPORT: a new server joins them"
        )),
        "{report:#}"
    );
    assert_eq!(report["listeners"].as_array().map(Vec::len), Some(2));

    let inherited = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sharer = Sharer::spawn(inherited.as_raw_fd());
    let port = inherited.local_addr().expect("address").port();
    let (status, report) = who_json(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(status, 1);
    assert_eq!(report["verdict"]["reason"], "shared-listener");
    let text = message(&report);
    assert!(
        text.contains(&format!("with pid {}", sharer.pid())),
        "{text}"
    );
    assert!(!text.contains("SO_REUSEPORT"), "{text}");
}

#[test]
fn a_free_port_can_be_bound_and_the_exit_status_says_so() {
    let _serial = serial();
    let port = free_port();
    let (status, report) = who_json(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(status, 0);
    assert_eq!(report["verdict"]["reason"], "free");
    assert_eq!(report["listeners"], serde_json::json!([]));
    assert_eq!(report["test_bind"]["with_reuseaddr"], "bound");
    let quiet = who(&[&format!("127.0.0.1:{port}"), "-q"]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
    let why = portstat()
        .args(["why", &port.to_string(), "--no-bind", "--json"])
        .output()
        .expect("runs");
    let report: Value = serde_json::from_slice(&why.stdout).expect("JSON");
    assert_eq!(report["test_bind"], Value::Null);
}

#[test]
fn udp_port_bound_by_a_socket_is_taken() {
    let _serial = serial();
    // The same port over TCP is free, unless another test's connection took that number
    // meanwhile: one of a few fresh ports must show it, and a `who` that confused the two
    // protocols would answer "taken" for every one.
    let tcp_free_once = (0..5).any(|_| {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = socket.local_addr().expect("address").port();
        let (status, report) = who_json(&[&format!("127.0.0.1:{port}/udp")]);
        assert_eq!(status, 1);
        assert_eq!(report["target"]["proto"], "udp");
        assert!(
            message(&report).contains("is bound on 127.0.0.1:"),
            "{report:#}"
        );
        assert_eq!(report["listeners"][0]["state"], "UNCONN");
        who_json(&[&format!("127.0.0.1:{port}")]).0 == 0
    });
    assert!(
        tcp_free_once,
        "the UDP socket's port was taken over TCP 5 times"
    );
}

#[test]
fn connect_reports_accepted_and_refused() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (_, report) = who_json(&[&port.to_string(), "--connect"]);
    assert_eq!(report["connect"]["outcome"], "accepted");
    assert_eq!(report["connect"]["address"], format!("127.0.0.1:{port}"));
    assert!(
        report["connect"]["millis"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0)
    );
    drop(listener);
    let (_, report) = who_json(&[&format!("127.0.0.1:{port}"), "--connect"]);
    assert_eq!(report["connect"]["outcome"], "refused");
}

#[test]
fn text_report_names_the_listener_and_the_verdict() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let output = who(&[&format!("127.0.0.1:{port}")]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with(&format!("Port {port}/tcp:")), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}  LISTEN")),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("Verdict: cannot bind."), "{text}");
    assert!(text.contains("Test bind 127.0.0.1:"), "{text}");
}

#[test]
fn bad_targets_are_one_line_usage_errors() {
    for (target, says) in [
        ("70000", "out of range"),
        ("abc", "not a port number"),
        ("1.2.3:80", "not an IPv4 or IPv6 address"),
    ] {
        let output = who(&[target]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{target}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{target}: {stderr}");
    }
}

#[test]
fn a_listener_whose_accept_queue_is_full_is_flagged() {
    let _serial = serial();
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    listener.listen(1).expect("listen with backlog 1");
    let address = listener
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    // The kernel queues backlog + 1 completed connections; nobody accepts them.
    let _clients: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    let (_, report) = who_json(&[&address.to_string(), "--backend", "netlink"]);
    let listener_report = &report["listeners"][0];
    assert_eq!(listener_report["backlog"], 1);
    assert_eq!(listener_report["accept_queue"], 2);
    assert_eq!(listener_report["queue_full"], true);
    let notes = report["verdict"]["notes"].to_string();
    assert!(
        notes.contains("accept queue") && notes.contains("clients hang"),
        "{notes}"
    );
}

#[test]
fn listeners_on_two_addresses_of_one_port_are_each_named_and_no_reuseport_group() {
    let _serial = serial();
    // unbound on 127.0.0.1:P (here a child process), dnsmasq on 127.0.0.2:P (this process).
    let (first, second) = loop {
        let first = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = first.local_addr().expect("address").port();
        if let Ok(second) = UdpSocket::bind(("127.0.0.2", port)) {
            break (first, second);
        }
    };
    let port = second.local_addr().expect("address").port();
    let child = Sharer::spawn(first.as_raw_fd());
    drop(first);
    let (status, report) = who_json(&[&format!("{port}/udp")]);
    assert_eq!(status, 1, "{report:#}");
    assert_eq!(report["verdict"]["reason"], "listener", "{report:#}");
    let text = message(&report);
    assert!(!text.contains("SO_REUSEPORT"), "{text}");
    assert!(
        text.contains(&format!("sleep (pid {}", child.pid()))
            && text.contains(&format!("is bound on 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("(pid {}", std::process::id()))
            && text.contains(&format!("is bound on 127.0.0.2:{port}")),
        "{text}"
    );
    // Whichever is named first, stopping it alone is said not to be enough.
    assert!(
        text.contains(&format!("alone would not free 0.0.0.0:{port}/udp")),
        "{text}"
    );
    assert_eq!(report["test_bind"]["with_reuseaddr"], "skipped");
}

#[test]
#[ignore = "needs root"]
fn root_a_v6only_wildcard_beside_the_ipv4_wildcard_is_no_reuseport_group() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    let (v4, v6) = netns.run(|| {
        let v6 = Socket::new(Domain::IPV6, Type::STREAM, None).expect("socket");
        v6.set_only_v6(true).expect("IPV6_V6ONLY");
        v6.bind(&SocketAddr::from(([0u16; 8], 0)).into())
            .expect("bind [::]");
        v6.listen(16).expect("listen");
        let port = v6
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("inet")
            .port();
        let v4 = TcpListener::bind(("0.0.0.0", port)).expect("bind 0.0.0.0 beside v6only [::]");
        (v4, v6)
    });
    let port = v4.local_addr().expect("address").port();
    // netlink reports IPV6_V6ONLY; procfs can't, so [::] may take IPv4 too, but even then it is
    // another address, not a group sharing one.
    for backend in ["netlink", "procfs"] {
        let output = netns
            .portstat()
            .args(["who", &port.to_string(), "--json", "--backend", backend])
            .output()
            .expect("runs");
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(output.status.code(), Some(1), "{backend}: {report:#}");
        assert_eq!(report["listeners"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            report["verdict"]["reason"], "listener",
            "{backend}: {report:#}"
        );
        let text = message(&report);
        assert!(!text.contains("SO_REUSEPORT"), "{backend}: {text}");
        if backend == "netlink" {
            assert!(
                text.contains(&format!("listens on 0.0.0.0:{port}.")),
                "{text}"
            );
        } else {
            assert!(
                text.contains(&format!("listens on 0.0.0.0:{port} and [::]:{port}"))
                    && text.contains("unless it set IPV6_V6ONLY"),
                "{text}"
            );
        }
    }
    drop(v6);
}

#[test]
fn udp_test_bind_never_takes_a_live_servers_datagrams() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let _serial = serial();
    // A UDP server that set SO_REUSEADDR, as memcached does: a test bind with SO_REUSEADDR on
    // its address would share its port and, for that instant, receive its datagrams.
    let server = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
    server.set_reuse_address(true).expect("SO_REUSEADDR");
    server
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let address = server
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    let server: UdpSocket = server.into();
    server
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .expect("timeout");
    let (received, sent, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let receiver = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16];
            loop {
                match server.recv(&mut buffer) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) if stop.load(Ordering::SeqCst) => return,
                    Err(_) => {}
                }
            }
        })
    };
    let sender = {
        let (received, sent, stop) = (received.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let client = UdpSocket::bind("127.0.0.1:0").expect("bind client");
            while !stop.load(Ordering::SeqCst) {
                // At most 32 in flight: the server's buffer never overflows, so a datagram
                // that does not arrive was taken by another socket.
                if sent.load(Ordering::SeqCst) - received.load(Ordering::SeqCst) < 32 {
                    client.send_to(b"ping", address).expect("send");
                    sent.fetch_add(1, Ordering::SeqCst);
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    let target = format!("{address}/udp");
    for _ in 0..40 {
        let (status, report) = who_json(&[&target]);
        assert_eq!(status, 1, "{report:#}");
        assert_eq!(report["verdict"]["can_bind"], false);
        assert_eq!(report["test_bind"]["without_reuseaddr"], "in-use");
        assert_eq!(report["test_bind"]["with_reuseaddr"], "skipped");
        // Another test thread that forks a child holds every fd of this process until the
        // child's exec: then two processes really hold the socket, and the verdict says so.
        let owners = report["listeners"][0]["owners"]
            .as_array()
            .map_or(0, Vec::len);
        if report["verdict"]["reason"] == "shared-listener" {
            assert!(owners > 1, "{report:#}");
        } else {
            assert_eq!(report["verdict"]["reason"], "listener", "{report:#}");
            assert!(message(&report).contains("only one of them"), "{report:#}");
        }
        let (status, _) = who_json(&[&format!("{}/udp", address.port())]);
        assert_eq!(status, 1);
    }
    let text = String::from_utf8_lossy(&who(&[&target]).stdout).into_owned();
    assert!(text.contains("receive queue"), "{text}");
    assert!(!text.contains("accept queue"), "{text}");
    stop.store(true, Ordering::SeqCst);
    sender.join().expect("sender");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while received.load(Ordering::SeqCst) < sent.load(Ordering::SeqCst)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (got, sent) = (received.load(Ordering::SeqCst), sent.load(Ordering::SeqCst));
    receiver.join().expect("receiver");
    assert!(sent > 0);
    assert_eq!(got, sent, "{} datagrams were taken", sent - got);
}

#[test]
fn a_listener_shared_with_a_forked_child_names_the_parent_never_the_child() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let child = Sharer::spawn(listener.as_raw_fd()); // forked from this process, holds it too
    let (status, report) = who_json(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(status, 1);
    assert_eq!(report["verdict"]["reason"], "shared-listener");
    let text = message(&report);
    let parent = std::process::id();
    assert!(
        text.contains(&format!("(pid {parent}"))
            && text.contains(&format!("with pid {}", child.pid())),
        "{text}"
    );
    assert!(
        text.contains(&format!("kill {parent})")) || text.contains("systemctl stop"),
        "{text}"
    );
    assert!(!text.contains(&format!("kill {}", child.pid())), "{text}");
    assert!(!text.contains("SO_REUSEPORT"), "{text}");
    assert!(text.contains("exited too"), "{text}");
    drop(listener);
}

#[test]
#[ignore = "needs root"]
fn root_as_nobody_a_taken_privileged_port_says_taken_and_privileged() {
    let _serial = serial();
    let netns = PrivateNetns::new();
    let sshd = netns.run(|| TcpListener::bind("0.0.0.0:22").expect("bind 0.0.0.0:22"));
    let binary = portstat().get_program().to_owned();
    let output = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .args(["--", "sh", "-c"])
        .arg("echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start && exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"")
        .arg("sh")
        .arg(binary)
        .args(["who", "22", "--json"])
        .output()
        .expect("runs");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["verdict"]["reason"], "listener", "{report:#}");
    let text = message(&report);
    assert!(text.contains("0.0.0.0:22/tcp is taken"), "{text}");
    assert!(text.contains("whose owner is hidden"), "{text}");
    assert!(text.contains("ip_unprivileged_port_start (1024)"), "{text}");
    assert!(text.contains("even with that capability"), "{text}");
    assert!(
        text.contains("Run as root to see which process holds it"),
        "{text}"
    );
    assert!(
        text.find("is taken") < text.find("sysctl"),
        "remedies come after what is in the way: {text}"
    );
    assert_eq!(
        report["test_bind"]["without_reuseaddr"],
        "permission-denied"
    );
    assert_eq!(report["verdict"]["notes"], serde_json::json!([]));
    drop(sshd);
}
