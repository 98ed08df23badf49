//! End-to-end: the built binary against real sockets this test opens on loopback.
// These tests drive real Linux sockets and /proc.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;

use crate::common::*;
use serde_json::{Value, json};

fn port_of(listener: &TcpListener) -> u16 {
    listener.local_addr().expect("local address").port()
}

fn only<'a>(matches: &[&'a Value], what: &str) -> &'a Value {
    assert_eq!(
        matches.len(),
        1,
        "expected exactly one {what}, got {matches:#?}"
    );
    matches[0]
}

fn expected_range(port: u16) -> &'static str {
    match port {
        0..=1023 => "well-known",
        1024..=49151 => "registered",
        _ => "dynamic",
    }
}

fn in_ephemeral_range(port: u16) -> bool {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read ip_local_port_range");
    let bounds: Vec<u16> = text
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    (bounds[0]..=bounds[1]).contains(&port)
}

#[test]
fn tcp_listener_is_reported_with_owner_range_and_every_json_field() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = port_of(&listener);
    let document = json(&["-l", "--port", &port.to_string()]);

    assert_eq!(document["schema"], 1);
    assert!(document["host"].as_str().is_some_and(|h| !h.is_empty()));
    let captured = document["captured_at"].as_str().expect("captured_at");
    assert!(
        captured.ends_with('Z') && captured.contains('T'),
        "{captured}"
    );
    assert!(document["warnings"].is_array());

    let socket = only(&with_local_port(&document, port), "listener");
    let fields: Vec<&str> = socket
        .as_object()
        .expect("socket object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "proto",
            "family",
            "local_address",
            "local_port",
            "remote_address",
            "remote_port",
            "state",
            "local_range",
            "remote_range",
            "ephemeral",
            "local_service",
            "remote_service",
            "direction",
            "uid",
            "user",
            "inode",
            "processes",
            "owner_note",
            "netns",
            "local_zone",
            "remote_zone",
            "recv_q",
            "send_q",
        ]
    );
    // Nothing waits to be accepted; SEND-Q is the backlog std listened with.
    assert_eq!(socket["recv_q"], json!(0));
    assert!(
        socket["send_q"].as_u64().is_some_and(|backlog| backlog > 0),
        "{socket}"
    );
    assert_eq!(socket["netns"], Value::Null);
    assert_eq!(socket["local_zone"], Value::Null);
    assert_eq!(socket["remote_zone"], Value::Null);
    assert_eq!(socket["proto"], "tcp");
    assert_eq!(socket["family"], "ipv4");
    assert_eq!(socket["local_address"], "127.0.0.1");
    assert_eq!(socket["remote_address"], Value::Null);
    assert_eq!(socket["remote_port"], Value::Null);
    assert_eq!(socket["state"], "LISTEN");
    assert_eq!(socket["local_range"], expected_range(port));
    assert_eq!(socket["remote_range"], Value::Null);
    assert_eq!(socket["ephemeral"], in_ephemeral_range(port));
    assert_eq!(socket["direction"], Value::Null);
    assert_eq!(socket["owner_note"], Value::Null);
    // SAFETY: geteuid cannot fail.
    assert_eq!(socket["uid"], unsafe { libc::geteuid() });
    assert!(socket["inode"].as_u64().is_some_and(|inode| inode > 0));
    assert_eq!(pids(socket), [u64::from(std::process::id())]);
    let process = &socket["processes"][0];
    assert_eq!(process["name"], own_process_name());
    assert!(
        process["cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("deps/portstat-"))
    );
    if is_root() {
        assert_eq!(socket["user"], "root");
        assert_eq!(process["user"], "root");
    }
}

#[test]
fn established_ipv6_pair_has_both_ends_with_direction() {
    let _serial = serial();
    let (listener, mut client, _server) = tcp_pair("[::1]:0");
    ping(&mut client);
    let port = port_of(&listener);
    let client_port = client.local_addr().expect("client address").port();
    let document = json(&["-e", "--port", &port.to_string()]);
    let all = sockets(&document);
    assert_eq!(all.len(), 2, "{all:#?}");

    let server_side = only(&with_local_port(&document, port), "server side");
    assert_eq!(server_side["family"], "ipv6");
    assert_eq!(server_side["local_address"], "::1");
    assert_eq!(server_side["remote_address"], "::1");
    assert_eq!(server_side["remote_port"], client_port);
    assert_eq!(server_side["state"], "ESTABLISHED");
    assert_eq!(server_side["direction"], "inbound");
    assert_eq!(pids(server_side), [u64::from(std::process::id())]);

    let client_side = only(&with_local_port(&document, client_port), "client side");
    assert_eq!(client_side["remote_port"], port);
    assert_eq!(client_side["direction"], "outbound");
    assert_eq!(client_side["remote_range"], expected_range(port));
    assert_eq!(pids(client_side), [u64::from(std::process::id())]);
}

#[test]
fn time_wait_socket_is_kernel_owned() {
    let _serial = serial();
    let (listener, client, server) = tcp_pair("127.0.0.1:0");
    let port = port_of(&listener);
    let client_port = client.local_addr().expect("client address").port();
    drop(client); // the side that closes first waits in TIME_WAIT
    drop(server);
    let args = ["--state", "time-wait", "--port", &port.to_string()];
    let document = wait_for_json(&args, |d| !with_local_port(d, client_port).is_empty());
    let socket = only(&with_local_port(&document, client_port), "TIME_WAIT socket");
    assert_eq!(socket["state"], "TIME_WAIT");
    assert_eq!(socket["processes"], json!([]));
    assert_eq!(socket["owner_note"], "kernel");
    assert_eq!(socket["inode"], 0);
}

#[test]
fn unaccepted_connection_waits_in_the_accept_queue() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = port_of(&listener);
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let client_port = client.local_addr().expect("client address").port();
    let document = json(&["-e", "--port", &port.to_string()]);
    let queued = with_local_port(&document, port);
    let queued = only(&queued, "queued connection");
    assert_eq!(queued["remote_port"], client_port);
    assert_eq!(queued["owner_note"], "accept-queue");
    assert_eq!(queued["processes"], json!([]));
    assert_eq!(queued["direction"], "inbound");
}

#[test]
fn udp_sockets_are_unconn_or_established() {
    let _serial = serial();
    let bound = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let connected = UdpSocket::bind("[::1]:0").expect("bind udp6");
    let peer = UdpSocket::bind("[::1]:0").expect("bind udp6 peer");
    connected
        .connect(peer.local_addr().expect("peer address"))
        .expect("connect udp");
    let bound_port = bound.local_addr().expect("address").port();
    let connected_port = connected.local_addr().expect("address").port();

    let document = json(&["-u", "--port", &format!("{bound_port},{connected_port}")]);
    let unconn = only(&with_local_port(&document, bound_port), "bound UDP");
    assert_eq!(unconn["proto"], "udp");
    assert_eq!(unconn["state"], "UNCONN");
    assert_eq!(unconn["remote_address"], Value::Null);
    assert_eq!(pids(unconn), [u64::from(std::process::id())]);
    let established = only(&with_local_port(&document, connected_port), "connected UDP");
    assert_eq!(established["state"], "ESTABLISHED");
    assert_eq!(established["family"], "ipv6");
    assert_eq!(
        established["remote_port"],
        peer.local_addr().expect("address").port()
    );
}

#[test]
fn socket_shared_by_two_processes_lists_both_owners() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sharer = Sharer::spawn(listener.as_raw_fd());
    let document = json(&["-l", "--port", &port_of(&listener).to_string()]);
    let socket = only(&with_local_port(&document, port_of(&listener)), "listener");
    let mut expected = vec![u64::from(std::process::id()), u64::from(sharer.pid())];
    expected.sort();
    assert_eq!(pids(socket), expected);
    assert_eq!(
        socket["processes"][1]["name"],
        if expected[1] == u64::from(sharer.pid()) {
            "sleep".into()
        } else {
            own_process_name()
        }
    );
}

#[test]
fn filters_select_exactly_what_they_name() {
    let _serial = serial();
    let tcp4 = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tcp6 = TcpListener::bind("[::1]:0").expect("bind");
    let udp4 = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let ports = [
        port_of(&tcp4),
        port_of(&tcp6),
        udp4.local_addr().expect("address").port(),
    ];
    let spec = format!("{},{},{}", ports[0], ports[1], ports[2]);
    let ours = [
        ("tcp", "127.0.0.1", ports[0]),
        ("tcp", "::1", ports[1]),
        ("udp", "127.0.0.1", ports[2]),
    ];
    // Another test's socket may hold one of these numbers under the other protocol: only the
    // three sockets made here count.
    let seen = |args: &[&str]| -> Vec<u16> {
        let mut all: Vec<&str> = vec!["--port", &spec];
        all.extend_from_slice(args);
        let document = json(&all);
        let mut found: Vec<u16> = sockets(&document)
            .iter()
            .filter(|s| {
                ours.iter().any(|&(proto, address, port)| {
                    s["proto"] == proto
                        && s["local_address"] == address
                        && s["local_port"] == u64::from(port)
                })
            })
            .map(|s| s["local_port"].as_u64().expect("port") as u16)
            .collect();
        found.sort();
        found
    };
    let sorted = |mut v: Vec<u16>| {
        v.sort();
        v
    };
    assert_eq!(seen(&[]), sorted(ports.to_vec()));
    assert_eq!(seen(&["-t"]), sorted(vec![ports[0], ports[1]]));
    assert_eq!(seen(&["-u"]), vec![ports[2]]);
    assert_eq!(seen(&["-4"]), sorted(vec![ports[0], ports[2]]));
    assert_eq!(seen(&["-6"]), vec![ports[1]]);
    assert_eq!(seen(&["-t", "-4"]), vec![ports[0]]);
    assert_eq!(seen(&["--state", "unconn"]), vec![ports[2]]);
    assert_eq!(seen(&["-e"]), Vec::<u16>::new());
    let me = std::process::id().to_string();
    assert_eq!(seen(&["--pid", &me]), sorted(ports.to_vec()));
    assert_eq!(seen(&["--pid", "1"]), Vec::<u16>::new());
    let name = own_process_name().to_uppercase();
    assert_eq!(seen(&["--process", &name]), sorted(ports.to_vec()));
    assert_eq!(
        seen(&["--process", "no-such-process-xyz"]),
        Vec::<u16>::new()
    );
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() }.to_string();
    assert_eq!(seen(&["--user", &uid]), sorted(ports.to_vec()));
    let range_of = |p: u16| expected_range(p);
    let registered: Vec<u16> = sorted(
        ports
            .iter()
            .copied()
            .filter(|&p| range_of(p) == "registered")
            .collect(),
    );
    assert_eq!(seen(&["--range", "registered"]), registered);
    let ephemeral: Vec<u16> = sorted(
        ports
            .iter()
            .copied()
            .filter(|&p| in_ephemeral_range(p))
            .collect(),
    );
    assert_eq!(seen(&["--range", "ephemeral"]), ephemeral);

    // A bare positional port works as --port does.
    let document = json(&[&ports[0].to_string()]);
    assert_eq!(with_local_port(&document, ports[0]).len(), 1);
}

#[test]
fn csv_has_a_header_and_flattened_owners() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = port_of(&listener);
    let output = portstat()
        .args(["-l", "--format", "csv", "--port", &port.to_string()])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "proto,family,local_address,local_port,remote_address,remote_port,state,\
             local_range,remote_range,ephemeral,local_service,remote_service,direction,uid,\
             user,inode,processes,owner_note,netns,local_zone,remote_zone,recv_q,send_q"
        )
    );
    let row = lines.next().expect("one row");
    assert!(
        row.starts_with(&format!("tcp,ipv4,127.0.0.1,{port},,,LISTEN,")),
        "{row}"
    );
    assert!(
        row.contains(&format!(",{}:{},", std::process::id(), own_process_name())),
        "{row}"
    );
    assert_eq!(lines.next(), None);
}

#[test]
fn table_shows_a_row_per_socket_without_decoration_when_piped() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = port_of(&listener);
    let output = portstat()
        .args(["-l", "--port", &port.to_string()])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "PROTO",
            "LOCAL",
            "REMOTE",
            "STATE",
            "RANGE",
            "SERVICE",
            "PID/PROGRAM",
            "USER"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["tcp", &format!("127.0.0.1:{port}"), "*", "LISTEN"]
    );
    assert!(
        lines[1].contains(&format!("{}/{}", std::process::id(), own_process_name())),
        "{text}"
    );
    assert!(!text.contains('─') && !text.contains('\u{1b}'), "{text}");

    let numeric = portstat()
        .args(["-ln", "--port", &port.to_string()])
        .output()
        .expect("runs");
    let text = String::from_utf8(numeric.stdout).expect("utf-8");
    assert!(!text.contains("SERVICE"), "{text}");
}

#[test]
fn ss_habits_work() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = port_of(&listener).to_string();
    for flags in ["-tulpn", "-tlnp", "-tanp"] {
        let document = json(&[flags, "--port", &port]);
        assert_eq!(
            with_local_port(&document, port_of(&listener)).len(),
            1,
            "{flags}"
        );
    }
    let document = json(&["-uln", "--port", &port]);
    assert!(sockets(&document).is_empty());
}

// Issue 15: the listing shows where a published port's connections really go.
#[test]
#[ignore = "needs root"]
fn root_list_firewall_shows_a_published_port_forwarded_to_its_container() {
    use crate::lab::*;
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let podman = Podman::start(&lab);
    let document = json_from(&mut lab.portstat(&["-l", "--firewall", "--json"]));
    let conmon = sockets(&document)
        .iter()
        .find(|s| s["local_port"] == 8080 && s["proto"] == "tcp")
        .unwrap_or_else(|| panic!("no 8080 in {document:#}"));
    assert_eq!(conmon["processes"][0]["name"], "conmon", "{conmon:#}");
    assert_eq!(
        conmon["forward"]["to_address"],
        podman.address().to_string().as_str()
    );
    assert_eq!(conmon["forward"]["to_port"], 80);
    assert_eq!(conmon["forward"]["container"], podman.name());
    assert_eq!(conmon["firewall"]["verdict"], "open", "{conmon:#}");
    // Without --firewall the listing never reads it.
    let plain = json_from(&mut lab.portstat(&["-l", "--json"]));
    assert!(sockets(&plain).iter().all(|s| s.get("firewall").is_none()));
    let table = lab
        .portstat(&["-l", "--firewall"])
        .output()
        .expect("portstat runs");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!(
            "open, forwarded to {}:80 (podman {})",
            podman.address(),
            podman.name()
        )),
        "{text}"
    );
}
