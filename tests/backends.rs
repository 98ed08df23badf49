//! End-to-end: the netlink, procfs and netstat2 backends see the same real loopback sockets,
//! netlink asks the kernel for the wanted states only, and the automatic choice falls back to
//! procfs where netlink is refused and copes without /proc.
// These tests drive real Linux sockets and /proc.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// What every backend must agree on for one socket.
type Seen = (
    String,
    String,
    String,
    u64,
    Option<String>,
    Option<u64>,
    String,
    Vec<u64>,
    Option<u64>,
    u64,
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
        socket["uid"].as_u64(),
        socket["inode"].as_u64().expect("inode"),
    )
}

/// The backend's view of the sockets on `ports`, keeping only those whose both ends are ports
/// of `ours`: a TIME_WAIT another test left behind may share a remote port with them.
fn document(backend: &str, ports: &str, ours: &BTreeSet<u64>) -> Value {
    let mut document = json(&["-a", "-n", "--backend", backend, "--port", ports]);
    if let Some(sockets) = document["sockets"].as_array_mut() {
        sockets.retain(|socket| {
            let local = socket["local_port"]
                .as_u64()
                .is_some_and(|p| ours.contains(&p));
            let remote = socket["remote_port"]
                .as_u64()
                .is_none_or(|p| ours.contains(&p));
            local && remote
        });
    }
    document
}

fn view(document: &Value) -> BTreeSet<Seen> {
    sockets(document).iter().map(seen).collect()
}

/// Every socket's whole JSON object, to compare backends field by field.
fn whole(document: &Value) -> BTreeSet<String> {
    sockets(document).iter().map(Value::to_string).collect()
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
fn netlink_procfs_and_netstat2_report_the_same_sockets() {
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
    let time_wait_server_port = closed.local_addr().expect("address").port();
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

    let ours: BTreeSet<u64> = [
        &listener4.local_addr(),
        &listener6.local_addr(),
        &pair4.local_addr(),
        &pair6.local_addr(),
        &client4.local_addr(),
        &client6.local_addr(),
        &udp4.local_addr(),
        &udp6.local_addr(),
        &connected.local_addr(),
    ]
    .iter()
    .map(|address| u64::from(address.as_ref().expect("address").port()))
    .chain([u64::from(time_wait_port), u64::from(time_wait_server_port)])
    .collect();
    let from_procfs = document("procfs", &ports, &ours);
    let from_netlink = document("netlink", &ports, &ours);
    let procfs = view(&from_procfs);
    // 2 listeners, 2 pairs (3 sockets each), 3 UDP sockets, 1 TIME_WAIT.
    assert_eq!(procfs.len(), 12, "{procfs:#?}");
    let states: BTreeSet<&str> = procfs.iter().map(|s| s.6.as_str()).collect();
    assert_eq!(
        states,
        BTreeSet::from(["ESTABLISHED", "LISTEN", "TIME_WAIT", "UNCONN"])
    );

    // netlink: every field of every socket as procfs has it, the connected UDP socket's peer
    // and state, the TIME_WAIT's (kernel) owner and inode 0 included; but a TCP listener's
    // send_q, its backlog, which /proc/net/tcp does not print.
    let mut netlink_as_procfs = from_netlink.clone();
    for socket in netlink_as_procfs["sockets"]
        .as_array_mut()
        .expect("sockets")
    {
        if socket["state"] == "LISTEN" {
            assert!(socket["send_q"].as_u64().is_some_and(|b| b > 0), "{socket}");
            socket["send_q"] = Value::Null;
        }
    }
    let procfs_listeners = sockets(&from_procfs)
        .iter()
        .filter(|s| s["state"] == "LISTEN");
    assert!(procfs_listeners.clone().count() >= 2);
    assert!(procfs_listeners.into_iter().all(|s| s["send_q"].is_null()));
    assert_eq!(whole(&netlink_as_procfs), whole(&from_procfs));
    let connected_port = u64::from(connected.local_addr().expect("a").port());
    let in_netlink = view(&from_netlink);
    let connected_in_netlink = in_netlink
        .iter()
        .find(|s| s.3 == connected_port)
        .expect("netlink");
    assert_eq!(connected_in_netlink.6, "ESTABLISHED");
    assert_eq!(
        connected_in_netlink.5,
        Some(u64::from(udp4.local_addr().expect("a").port()))
    );
    let time_wait = in_netlink
        .iter()
        .find(|s| s.6 == "TIME_WAIT")
        .expect("netlink sees the TIME_WAIT");
    assert_eq!((time_wait.7.len(), time_wait.9), (0, 0));

    let netstat2 = view(&document("netstat2", &ports, &ours));
    let expected: BTreeSet<Seen> = procfs.iter().cloned().map(as_netstat2_sees_it).collect();
    assert_eq!(netstat2, expected);

    // The one difference, named: the connected UDP socket.
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

/// `-l` asks the kernel for listeners only and `-e` for connections, yet a connection's
/// direction and accept queue, which depend on listeners, come out as under `-a`.
#[test]
fn netlink_reads_the_states_asked_for() {
    let _serial = serial();
    let (listener, mut client, _server) = tcp_pair("127.0.0.1:0");
    ping(&mut client);
    // Connected, never accepted: waits in the listener's accept queue.
    let waiting = std::net::TcpStream::connect(listener.local_addr().expect("a")).expect("connect");
    let unconnected = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    peer.connect(unconnected.local_addr().expect("a"))
        .expect("connect udp");
    let listen_port = listener.local_addr().expect("a").port();
    let ports = [
        listen_port,
        unconnected.local_addr().expect("a").port(),
        peer.local_addr().expect("a").port(),
    ]
    .map(|port| port.to_string())
    .join(",");
    let run = |view: &str| {
        let document = json(&["-n", "--backend", "netlink", view, "--port", &ports]);
        let mut seen: Vec<(String, u64, String)> = sockets(&document)
            .iter()
            .map(|s| {
                let text = |field: &str| s[field].as_str().unwrap_or("-").to_string();
                (
                    text("proto"),
                    s["local_port"].as_u64().expect("port"),
                    text("state"),
                )
            })
            .collect();
        seen.sort();
        (document, seen)
    };

    let (_, listening) = run("-l");
    let unconnected_port = u64::from(unconnected.local_addr().expect("a").port());
    assert_eq!(
        listening,
        [
            (
                "tcp".to_string(),
                u64::from(listen_port),
                "LISTEN".to_string()
            ),
            ("udp".to_string(), unconnected_port, "UNCONN".to_string()),
        ],
    );

    let (established, seen) = run("-e");
    // The client, the accepted server side, the waiting pair's two ends, the connected UDP.
    assert_eq!(seen.len(), 5, "{established:#}");
    assert!(
        seen.iter().all(|(_, _, state)| state == "ESTABLISHED"),
        "{seen:?}"
    );
    let waiting_port = waiting.local_addr().expect("a").port();
    let server_sides: Vec<&Value> = sockets(&established)
        .iter()
        .filter(|s| s["local_port"] == listen_port)
        .collect();
    assert_eq!(server_sides.len(), 2, "{established:#}");
    assert!(server_sides.iter().all(|s| s["direction"] == "inbound"));
    let in_queue = server_sides
        .iter()
        .find(|s| s["remote_port"] == waiting_port)
        .expect("the waiting connection");
    assert_eq!(in_queue["owner_note"], "accept-queue");

    let (everything, _) = run("-a");
    let whole_of = |document: &Value, state: &str| -> BTreeSet<String> {
        sockets(document)
            .iter()
            .filter(|s| s["state"] == state)
            .map(Value::to_string)
            .collect()
    };
    assert_eq!(
        whole_of(&established, "ESTABLISHED"),
        whole_of(&everything, "ESTABLISHED")
    );
    drop(waiting);
}

#[test]
fn only_procfs_reads_recorded_tables() {
    let _serial = serial();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/recorded");
    for backend in ["netstat2", "netlink"] {
        let output = portstat()
            .args(["--backend", backend, "--proc-net", fixtures])
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{backend}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("procfs backend"));
    }
    // auto reads them with procfs.
    let document = json(&["-a", "--proc-net", fixtures]);
    assert!(!sockets(&document).is_empty());
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
#[ignore = "needs root"]
fn root_auto_reads_netlink_without_proc_and_netstat2_says_what_it_missed() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();

    // netlink needs no /proc: auto reads the tables with it, and only the owners are hidden.
    let output = without_proc(&["-l", "--port", &port, "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("used the"), "no fallback: {stderr}");
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

    let netstat2 = without_proc(&["-l", "--port", &port, "--backend", "netstat2"]);
    let stderr = String::from_utf8_lossy(&netstat2.stderr);
    assert_eq!(netstat2.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("could not list processes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let procfs = without_proc(&["-l", "--backend", "procfs"]);
    assert_eq!(procfs.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&procfs.stderr);
    assert!(stderr.contains("could not read"), "{stderr}");
}

/// portstat with every `socket(AF_NETLINK, ...)` refused (EAFNOSUPPORT) by a seccomp filter,
/// as a sandbox may refuse it. Needs no privileges (`PR_SET_NO_NEW_PRIVS`).
fn without_netlink(args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = portstat();
    command.args(args);
    // SAFETY: between fork and exec this only builds a filter on the stack and calls prctl,
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            // seccomp_data: nr at 0, args[0] from 16; the low 32 bits of args[0] (the domain).
            let domain = if cfg!(target_endian = "little") {
                16
            } else {
                20
            };
            let statement = |code: u32, k: u32| libc::sock_filter {
                code: code as u16,
                jt: 0,
                jf: 0,
                k,
            };
            let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt,
                jf,
                k,
            };
            let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
            let mut filter = [
                statement(load, 0),
                jump(libc::SYS_socket as u32, 0, 3),
                statement(load, domain),
                jump(libc::AF_NETLINK as u32, 0, 1),
                statement(
                    libc::BPF_RET | libc::BPF_K,
                    libc::SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32,
                ),
                statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
            ];
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("portstat runs under seccomp")
}

#[test]
fn auto_falls_back_to_procfs_when_netlink_is_refused() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();

    let output = without_netlink(&["-l", "--port", &port.to_string(), "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("could not use sock_diag netlink") && stderr.contains("used the procfs"),
        "{stderr}"
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let found = with_local_port(&document, port);
    assert_eq!(found.len(), 1, "{document:#}");
    assert_eq!(found[0]["state"], "LISTEN");
    assert_eq!(pids(found[0]), [u64::from(std::process::id())]);
    assert!(
        document["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("sock_diag netlink"))),
        "{document:#}"
    );

    let netlink = without_netlink(&["-l", "--backend", "netlink"]);
    assert_eq!(netlink.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&netlink.stderr);
    assert!(
        stderr.contains("could not open a sock_diag netlink socket"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
