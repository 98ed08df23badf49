//! End-to-end: `-i`, `-o`, `-m` against real sockets in a private network namespace, and the
//! queues against what `ss -tan` prints for the same sockets at the same moment.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A backlog no default uses, so the listener's SEND-Q is certainly its own.
const BACKLOG: i32 = 7;
/// Connections left waiting in the listener's accept queue.
const WAITING: usize = 3;

/// Sockets held open for the length of a test, and the ports that tell them apart.
struct Lab {
    _keep: Vec<TcpStream>,
    _listeners: Vec<TcpListener>,
    /// The listener with connections nobody accepts.
    backlog_port: u16,
    /// The client of a connection whose server reads nothing, after it wrote until it could
    /// not: bytes unread on one end, unsent on the other.
    stuck_client: SocketAddr,
    /// A connection that carried `SENT` bytes, all read; its client set SO_KEEPALIVE.
    talk_client: SocketAddr,
    talk_server: SocketAddr,
    /// The local end of a connection in TIME_WAIT.
    time_wait: SocketAddr,
}

const SENT: usize = 1000;

fn set_keepalive(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a valid int option.
    let done = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(done, 0, "SO_KEEPALIVE: {}", std::io::Error::last_os_error());
}

/// Opens the lab's sockets; run inside the namespace.
fn open_lab() -> Lab {
    let backlog = TcpListener::bind("127.0.0.1:0").expect("bind");
    // Listening again on a listening socket sets its backlog.
    // SAFETY: listen on a socket we own.
    assert_eq!(unsafe { libc::listen(backlog.as_raw_fd(), BACKLOG) }, 0);
    let backlog_port = backlog.local_addr().expect("address").port();
    let mut keep: Vec<TcpStream> = (0..WAITING)
        .map(|_| TcpStream::connect(("127.0.0.1", backlog_port)).expect("connect"))
        .collect();

    // Fill the server's receive buffer and then the client's send buffer.
    let (stuck_listener, stuck, stuck_server) = tcp_pair("127.0.0.1:0");
    let stuck_client = stuck.local_addr().expect("address");
    stuck.set_nonblocking(true).expect("non-blocking");
    let chunk = [0x55u8; 64 * 1024];
    let mut writer = &stuck;
    loop {
        match writer.write(&chunk) {
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) => panic!("write: {error}"),
        }
    }

    let (talk_listener, mut talk, mut talk_server) = tcp_pair("127.0.0.1:0");
    set_keepalive(&talk);
    talk.write_all(&[0x41; SENT]).expect("send");
    let mut received = vec![0u8; SENT];
    talk_server.read_exact(&mut received).expect("receive");
    let talk_client = talk.local_addr().expect("address");
    let talk_server_address = talk_server.local_addr().expect("address");

    // The client closes first, so its end waits in TIME_WAIT.
    let (wait_listener, wait_client, wait_server) = tcp_pair("127.0.0.1:0");
    let time_wait = wait_client.local_addr().expect("address");
    drop(wait_client);
    let mut end = [0u8; 1];
    let mut wait_server = wait_server;
    assert_eq!(wait_server.read(&mut end).expect("EOF"), 0);
    drop(wait_server);
    drop(wait_listener);

    keep.extend([stuck, stuck_server, talk, talk_server]);
    Lab {
        _keep: keep,
        _listeners: vec![backlog, stuck_listener, talk_listener],
        backlog_port,
        stuck_client,
        talk_client,
        talk_server: talk_server_address,
        time_wait,
    }
}

/// `ss -tan` inside the namespace: (local, peer) -> (state, Recv-Q, Send-Q).
fn ss_queues(netns: &PrivateNetns) -> Vec<(String, String, String, u64, u64)> {
    let output = Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .args(["--", "ss", "-tanH"])
        .output()
        .expect("ss runs");
    assert!(output.status.success(), "ss failed");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |index: usize| fields[index].parse::<u64>().expect("a queue");
            (
                fields[3].to_string(),
                fields[4].to_string(),
                fields[0].to_string(),
                number(1),
                number(2),
            )
        })
        .collect()
}

/// portstat's view in ss's words: (local, peer, state, recv_q, send_q).
fn portstat_queues(document: &Value) -> Vec<(String, String, String, u64, u64)> {
    let state_as_ss = |state: &str| match state {
        "LISTEN" => "LISTEN",
        "ESTABLISHED" => "ESTAB",
        "TIME_WAIT" => "TIME-WAIT",
        other => panic!("unexpected state {other}"),
    };
    sockets(document)
        .iter()
        .map(|socket| {
            let address = |which: &str| match socket[format!("{which}_address")].as_str() {
                Some(ip) => format!("{ip}:{}", socket[format!("{which}_port")]),
                None => "0.0.0.0:*".to_string(),
            };
            (
                address("local"),
                address("remote"),
                state_as_ss(socket["state"].as_str().expect("state")).to_string(),
                socket["recv_q"].as_u64().expect("recv_q"),
                socket["send_q"].as_u64().expect("send_q"),
            )
        })
        .collect()
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn in_netns(netns: &PrivateNetns, args: &[&str]) -> std::process::Output {
    netns.portstat().args(args).output().expect("portstat runs")
}

fn document_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "portstat failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn find(document: &Value, local: SocketAddr) -> &Value {
    sockets(document)
        .iter()
        .find(|s| s["local_port"] == local.port() && s["local_address"] == local.ip().to_string())
        .unwrap_or_else(|| panic!("no socket {local} in {document}"))
}

#[test]
#[ignore = "needs root"]
fn root_queues_equal_ss_and_info_timers_memory_are_the_kernels() {
    let netns = PrivateNetns::new();
    let lab = netns.run(open_lab);

    // The kernel settles the queues at once on loopback, but ask until two readings of ss agree
    // and portstat's agrees with the one after it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (ours, theirs) = loop {
        let before = sorted(ss_queues(&netns));
        let document = document_of(&in_netns(&netns, &["-a", "-t", "-n", "--json"]));
        let after = sorted(ss_queues(&netns));
        let ours = sorted(portstat_queues(&document));
        if (before == after && ours == after) || Instant::now() > deadline {
            break (ours, after);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ours, theirs, "portstat's recv_q/send_q against ss -tan");
    // And they say what the test made: WAITING queued against BACKLOG, bytes stuck both ways.
    let listener = ours
        .iter()
        .find(|s| s.0 == format!("127.0.0.1:{}", lab.backlog_port) && s.2 == "LISTEN")
        .expect("the listener");
    assert_eq!((listener.3, listener.4), (WAITING as u64, BACKLOG as u64));
    let client = ours
        .iter()
        .find(|s| s.0 == lab.stuck_client.to_string())
        .expect("the stuck client");
    assert!(client.4 > 0, "unsent bytes on the client: {client:?}");
    let server = ours
        .iter()
        .find(|s| s.1 == lab.stuck_client.to_string())
        .expect("the stuck server");
    assert!(server.3 > 0, "unread bytes on the server: {server:?}");

    // -i: tcp_info counts what the test sent and received.
    let info = document_of(&in_netns(
        &netns,
        &["-a", "-t", "-n", "-i", "-o", "-m", "--json"],
    ));
    let client = find(&info, lab.talk_client);
    let tcp = &client["tcp_info"];
    // The peer's acknowledgement of the SYN counts one byte.
    assert_eq!(tcp["bytes_acked"], (SENT + 1) as u64, "{client}");
    assert_eq!(tcp["bytes_sent"], SENT as u64, "{client}");
    assert!(tcp["congestion"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(tcp["cwnd"].as_u64().is_some_and(|cwnd| cwnd > 0));
    let server = find(&info, lab.talk_server);
    let server = sockets(&info)
        .iter()
        .find(|s| {
            s["local_port"] == lab.talk_server.port() && s["remote_port"] == lab.talk_client.port()
        })
        .unwrap_or_else(|| panic!("no accepted side of {}: {server}", lab.talk_server));
    assert_eq!(
        server["tcp_info"]["bytes_received"], SENT as u64,
        "{server}"
    );

    // -o: keepalive on the client that set SO_KEEPALIVE, timewait on the closed one.
    assert_eq!(client["timer"]["kind"], "keepalive", "{client}");
    assert!(
        client["timer"]["expires_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    let waiting = find(&info, lab.time_wait);
    assert_eq!(waiting["state"], "TIME_WAIT");
    assert_eq!(waiting["timer"]["kind"], "timewait", "{waiting}");
    assert!(waiting["tcp_info"].is_null() && waiting["memory"].is_null());
    // The stuck client's zero-window probe timer, as ss calls it.
    assert_eq!(find(&info, lab.stuck_client)["timer"]["kind"], "persist");

    // -m: the server that holds unread bytes has receive memory allocated.
    let stuck_server = sockets(&info)
        .iter()
        .find(|s| s["remote_port"] == lab.stuck_client.port())
        .expect("the stuck server");
    let memory = &stuck_server["memory"];
    assert!(
        memory["rmem_alloc"].as_u64().is_some_and(|r| r > 0),
        "{memory}"
    );
    assert!(memory["rcvbuf"].as_u64().is_some_and(|r| r > 0), "{memory}");

    // The table shows them in ss's words.
    let table = in_netns(&netns, &["-a", "-t", "-n", "-i", "-o", "-m"]);
    let text = String::from_utf8(table.stdout).expect("utf-8");
    let header = text.lines().next().expect("header");
    for column in ["RECV-Q", "SEND-Q", "TIMER", "MEMORY", "INFO"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(text.contains("timer:(keepalive,"), "{text}");
    assert!(text.contains("timer:(timewait,"), "{text}");
    assert!(text.contains("skmem:(r"), "{text}");
    assert!(
        text.contains(&format!("bytes_acked:{}", SENT + 1)),
        "{text}"
    );

    // Without the flags, none of it is asked for or shown.
    let plain = document_of(&in_netns(&netns, &["-a", "-t", "-n", "--json"]));
    let socket = find(&plain, lab.talk_client);
    for field in ["timer", "tcp_info", "memory"] {
        assert!(socket.get(field).is_none(), "{field}: {socket}");
    }
}

#[test]
#[ignore = "needs root"]
fn root_procfs_with_info_warns_once_and_leaves_tcp_info_null() {
    let netns = PrivateNetns::new();
    let lab = netns.run(open_lab);
    let output = in_netns(
        &netns,
        &[
            "-a",
            "-n",
            "-i",
            "-o",
            "-m",
            "--backend",
            "procfs",
            "--json",
        ],
    );
    let document = document_of(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warning = "the procfs backend can't read TCP internals (-i) or socket memory (-m)";
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    let warnings: Vec<&Value> = document["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| w.as_str().is_some_and(|w| w.contains(warning)))
        .collect();
    assert_eq!(warnings.len(), 1, "{document}");
    for socket in sockets(&document) {
        assert!(socket["tcp_info"].is_null(), "{socket}");
        assert!(socket["memory"].is_null(), "{socket}");
    }
    // Queues and timers are in /proc/net: they are there, a listener's backlog is not.
    let client = find(&document, lab.talk_client);
    assert_eq!(client["timer"]["kind"], "keepalive", "{client}");
    assert_eq!(client["recv_q"], 0);
    let listener = sockets(&document)
        .iter()
        .find(|s| s["local_port"] == lab.backlog_port && s["state"] == "LISTEN")
        .expect("listener");
    assert_eq!(listener["recv_q"], WAITING as u64);
    assert!(listener["send_q"].is_null(), "{listener}");

    // netstat2 has none of it, and says so once.
    let output = in_netns(
        &netns,
        &["-a", "-n", "-i", "--backend", "netstat2", "--json"],
    );
    let document = document_of(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr
            .matches("the netstat2 backend reads no queues")
            .count(),
        1
    );
    let client = find(&document, lab.talk_client);
    assert!(
        client["recv_q"].is_null() && client["tcp_info"].is_null(),
        "{client}"
    );
}
