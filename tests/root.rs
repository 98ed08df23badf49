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
    assert!(
        stderr.contains("the owner of 1 socket is hidden: other users' processes could hold it")
            && stderr.contains("run as root to see it"),
        "{stderr}"
    );
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

/// A Python helper for the pid-order tests, run inside a new PID namespace where
/// `/proc/sys/kernel/ns_last_pid` decides the next pid. Roles:
///
/// - `prefork PORTSTAT`: a master binds 127.0.0.1:0, then forks two workers with lower pids
///   (as after `nginx -s reload` on a host whose pids wrapped) that inherit its listener; it
///   runs portstat with and without `--port` and prints what it saw as one JSON line.
/// - `receiver PATH`: takes a listener passed over the Unix socket PATH (SCM_RIGHTS) and holds
///   it until the sender hangs up; started by the shell, so no kin of the sender.
/// - `sender PATH PORTSTAT`: binds 127.0.0.1:0, passes the listener to the receiver, runs
///   portstat with `--port`, closes its own copy, runs it again, and prints one JSON line.
const PID_ORDER_HELPER: &str = r#"
import json, os, socket, subprocess, sys, time

def next_pid_after(n):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(n))

def portstat(binary, *args):
    out = subprocess.run([binary, *args, "--json"], capture_output=True, check=True)
    return json.loads(out.stdout)

role = sys.argv[1]
if role == "prefork":
    binary = sys.argv[2]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    hang_up, wait_for_hang_up = os.pipe()[::-1]
    workers = []
    next_pid_after(100)
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os.close(hang_up)
            os.read(wait_for_hang_up, 1)
            os._exit(0)
        workers.append(pid)
    filtered = portstat(binary, "-l", "--port", str(port))
    everything = portstat(binary, "-l")
    print(json.dumps({"master": os.getpid(), "workers": workers, "port": port,
                      "filtered": filtered, "all": everything}))
    os.close(hang_up)
    for pid in workers:
        os.waitpid(pid, 0)
elif role == "receiver":
    server = socket.socket(socket.AF_UNIX)
    server.bind(sys.argv[2])
    server.listen()
    connection, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(connection, 1, 1)
    connection.sendall(b"k")
    connection.recv(1)
    os.close(fds[0])
elif role == "sender":
    path, binary = sys.argv[2], sys.argv[3]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    for _ in range(500):
        try:
            connection = socket.socket(socket.AF_UNIX)
            connection.connect(path)
            break
        except OSError:
            time.sleep(0.01)
    socket.send_fds(connection, [b"x"], [listener.fileno()])
    connection.recv(1)
    both = portstat(binary, "-l", "--port", str(port))
    listener.close()
    passed_only = portstat(binary, "-l", "--port", str(port))
    print(json.dumps({"sender": os.getpid(), "port": port, "both": both,
                      "passed_only": passed_only}))
    connection.close()
"#;

/// Runs `script` with `sh` as pid 1 of a new PID namespace (with its own `/proc`), inside a
/// private network namespace with loopback up, and returns the last line it printed as JSON.
/// `$HELPER` is the Python helper above, `$PORTSTAT` the binary, `$DIR` a scratch directory.
fn in_new_pid_namespace(script: &str) -> Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let helper = dir.path().join("helper.py");
    std::fs::write(&helper, PID_ORDER_HELPER).expect("write helper");
    let output = std::process::Command::new("unshare")
        .args(["-n", "-p", "-f", "--mount-proc", "sh", "-ec"])
        .arg(format!("ip link set lo up\n{script}"))
        .env("HELPER", &helper)
        .env("PORTSTAT", portstat().get_program())
        .env("DIR", dir.path())
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("the helper printed a line");
    serde_json::from_str(last).expect("the helper prints JSON")
}

fn listener_pids(document: &Value, port: &Value) -> Vec<u64> {
    let listener = sockets(document)
        .iter()
        .find(|s| s["local_port"] == *port && s["state"] == "LISTEN")
        .unwrap_or_else(|| panic!("no listener on {port} in {document:#}"));
    pids(listener)
}

#[test]
#[ignore = "needs root"]
fn root_workers_with_lower_pids_than_their_master_are_all_listed() {
    let _serial = serial();
    let seen = in_new_pid_namespace(
        "echo 500 > /proc/sys/kernel/ns_last_pid\n/usr/bin/python3 \"$HELPER\" prefork \"$PORTSTAT\"",
    );
    let master = seen["master"].as_u64().expect("master pid");
    let mut expected: Vec<u64> = seen["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|pid| pid.as_u64().expect("worker pid"))
        .collect();
    assert!(expected.iter().all(|&worker| worker < master), "{seen:#}");
    expected.push(master);
    expected.sort_unstable();
    let port = &seen["port"];
    assert_eq!(
        listener_pids(&seen["filtered"], port),
        expected,
        "with --port"
    );
    assert_eq!(
        listener_pids(&seen["all"], port),
        expected,
        "without a port filter"
    );
}

#[test]
#[ignore = "needs root"]
fn root_a_socket_passed_to_an_unrelated_process_is_found_with_a_port_filter() {
    let _serial = serial();
    // The receiver gets a lower pid than the sender, and neither is the other's kin.
    let seen = in_new_pid_namespace(
        "echo 200 > /proc/sys/kernel/ns_last_pid\n\
         /usr/bin/python3 \"$HELPER\" receiver \"$DIR/pass.sock\" &\n\
         echo 500 > /proc/sys/kernel/ns_last_pid\n\
         /usr/bin/python3 \"$HELPER\" sender \"$DIR/pass.sock\" \"$PORTSTAT\"\n\
         wait",
    );
    let sender = seen["sender"].as_u64().expect("sender pid");
    let port = &seen["port"];
    let both = listener_pids(&seen["both"], port);
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[1], sender, "{both:?}");
    assert!(both[0] < sender, "{both:?}");
    // The sender closed its copy: the receiver alone holds the listener, and is found.
    assert_eq!(listener_pids(&seen["passed_only"], port), [both[0]]);
}

/// A system user whose shell is `/bin/false`, as daemon users are; removed on drop.
struct NoLoginUser(String);

impl NoLoginUser {
    fn new() -> NoLoginUser {
        let name = format!("pst-nologin-{}", std::process::id());
        let _ = std::process::Command::new("userdel")
            .arg(&name)
            .stderr(std::process::Stdio::null())
            .status();
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/false",
                &name,
            ])
            .status()
            .expect("useradd runs");
        assert!(status.success(), "useradd {name}: {status}");
        NoLoginUser(name)
    }
}

impl Drop for NoLoginUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_user_whose_shell_is_bin_false_is_named_and_can_be_asked_for() {
    use std::io::{BufRead, BufReader};
    let _serial = serial();
    let user = NoLoginUser::new();
    let mut server = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &user.0,
            "--regid",
            &user.0,
            "--clear-groups",
            "--",
        ])
        .args(["/usr/bin/python3", "-c"])
        .arg(
            "import socket, sys\n\
             s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
             print(s.getsockname()[1], flush=True)\n\
             sys.stdin.read()",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv runs");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server prints its port");
    let port = line.trim().to_string();
    let listed = json(&["-l", "--port", &port]);
    let by_user = portstat()
        .args(["-l", "--user", &user.0, "--json"])
        .output()
        .expect("runs");
    drop(server.stdin.take());
    let _ = server.wait();

    let socket = &sockets(&listed)[0];
    assert_eq!(socket["user"], user.0.as_str(), "{listed:#}");
    assert_eq!(
        socket["processes"][0]["user"],
        user.0.as_str(),
        "{listed:#}"
    );
    assert!(
        by_user.status.success(),
        "--user {}: {}",
        user.0,
        String::from_utf8_lossy(&by_user.stderr)
    );
    let by_user: Value = serde_json::from_slice(&by_user.stdout).expect("JSON");
    assert!(
        sockets(&by_user)
            .iter()
            .any(|s| s["local_port"] == port.parse::<u16>().expect("port")),
        "{by_user:#}"
    );
    assert!(
        sockets(&by_user)
            .iter()
            .all(|s| s["user"] == user.0.as_str()),
        "{by_user:#}"
    );
}
