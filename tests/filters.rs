//! End-to-end: the ss-style address and port filters (`--sport`, `--dport`, `--src`, `--dst`)
//! and the endpoint argument select exactly the side of a connection they name, with the
//! kernel filtering (netlink) and without (procfs) alike. The connection runs from 127.0.0.2 to
//! 127.0.0.1, and from fd00::2 to ::1, inside a private network namespace the test creates.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// A row as `(local, remote, direction)`, addresses as the JSON writes them.
type Row = (String, String, String);

fn rows(document: &Value) -> Vec<Row> {
    let end = |socket: &Value, side: &str| match &socket[format!("{side}_address")] {
        Value::String(address) if address.contains(':') => {
            format!("[{address}]:{}", socket[format!("{side}_port")])
        }
        Value::String(address) => format!("{address}:{}", socket[format!("{side}_port")]),
        _ => "*".to_string(),
    };
    let mut rows: Vec<Row> = sockets(document)
        .iter()
        .map(|socket| {
            (
                end(socket, "local"),
                end(socket, "remote"),
                socket["direction"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(local: SocketAddr, remote: Option<SocketAddr>, direction: &str) -> Row {
    (
        local.to_string(),
        remote.map_or("*".to_string(), |remote| remote.to_string()),
        direction.to_string(),
    )
}

/// A listener and one connection to it from a client bound to `from`, all inside `netns`.
struct Connection {
    listener: SocketAddr,
    client: SocketAddr,
    _sockets: (TcpListener, TcpStream, TcpStream),
}

impl Connection {
    fn open(netns: &PrivateNetns, listen: &'static str, from: &'static str) -> Connection {
        netns.run(move || {
            let listener = TcpListener::bind(listen).expect("bind the listener");
            let address = listener.local_addr().expect("listener address");
            let client = socket2_connect(from, address);
            let (server, _) = listener.accept().expect("accept");
            Connection {
                listener: address,
                client: client.local_addr().expect("client address"),
                _sockets: (listener, client, server),
            }
        })
    }

    fn outbound(&self) -> Row {
        row(self.client, Some(self.listener), "outbound")
    }

    fn inbound(&self) -> Row {
        row(self.listener, Some(self.client), "inbound")
    }

    fn listening(&self) -> Row {
        row(self.listener, None, "-")
    }
}

/// A TCP connection to `to` from a socket bound to `from` first (std has no bind-then-connect).
fn socket2_connect(from: &str, to: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let from: SocketAddr = from.parse().expect("client address");
    let family = if from.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a fresh socket, bound and connected through its own descriptor, then owned by
    // the TcpStream.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let (storage, length) = raw(from);
        assert_eq!(
            libc::bind(fd, (&raw const storage).cast(), length),
            0,
            "bind {from}: {}",
            std::io::Error::last_os_error()
        );
        let (storage, length) = raw(to);
        assert_eq!(
            libc::connect(fd, (&raw const storage).cast(), length),
            0,
            "connect {to}: {}",
            std::io::Error::last_os_error()
        );
        TcpStream::from_raw_fd(fd)
    }
}

fn raw(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the right sockaddr is written over it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

fn run(netns: &PrivateNetns, backend: &str, args: &[&str]) -> Vec<Row> {
    let output = netns
        .portstat()
        .args(["--json", "--backend", backend])
        .args(args)
        .output()
        .expect("run portstat");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    rows(&serde_json::from_slice(&output.stdout).expect("JSON"))
}

#[test]
#[ignore = "needs root"]
fn root_each_filter_selects_exactly_its_side_with_either_backend() {
    let netns = PrivateNetns::new();
    let added = Command::new("nsenter")
        .arg(format!("--net={}", netns.path()))
        .args([
            "ip",
            "-6",
            "addr",
            "add",
            "fd00::2/128",
            "dev",
            "lo",
            "nodad",
        ])
        .status()
        .expect("ip addr add");
    assert!(added.success(), "fd00::2 on the namespace's loopback");
    let v4 = Connection::open(&netns, "127.0.0.1:0", "127.0.0.2:0");
    let v6 = Connection::open(&netns, "[::1]:0", "[fd00::2]:0");
    let (client, listener) = (v4.client.port().to_string(), v4.listener.port().to_string());
    let (client6, listener6) = (v6.client.port().to_string(), v6.listener.port().to_string());
    let v4_endpoint = format!("127.0.0.2:{client}");
    let v4_listener = format!("127.0.0.1:{listener}");
    let v6_endpoint = format!("[fd00::2]:{client6}");
    let v6_port = format!(":{listener6}");

    let cases: Vec<(Vec<&str>, Vec<Row>)> = vec![
        (vec!["--sport", &client], vec![v4.outbound()]),
        (vec!["--local-port", &client], vec![v4.outbound()]),
        (vec!["--dport", &client], vec![v4.inbound()]),
        (vec!["--remote-port", &client], vec![v4.inbound()]),
        (vec!["--src", "127.0.0.2"], vec![v4.outbound()]),
        (vec!["--dst", "127.0.0.2/32"], vec![v4.inbound()]),
        (
            vec!["--src", "127.0.0.0/8", "--dport", &listener],
            vec![v4.outbound()],
        ),
        (
            vec!["--sport", &listener],
            vec![v4.inbound(), v4.listening()],
        ),
        (vec![&v4_endpoint], vec![v4.inbound(), v4.outbound()]),
        (
            vec![&v4_listener],
            vec![v4.inbound(), v4.outbound(), v4.listening()],
        ),
        (vec!["127.0.0.2"], vec![v4.inbound(), v4.outbound()]),
        (vec!["--sport", &client6], vec![v6.outbound()]),
        (vec!["--dport", &client6], vec![v6.inbound()]),
        (vec!["--src", "fd00::2"], vec![v6.outbound()]),
        (vec!["--dst", "fd00::/64"], vec![v6.inbound()]),
        (vec!["--local", "::1", "-l"], vec![v6.listening()]),
        (vec![&v6_endpoint], vec![v6.inbound(), v6.outbound()]),
        (
            vec![&v6_port],
            vec![v6.inbound(), v6.outbound(), v6.listening()],
        ),
        // The families never mix: an IPv6 prefix holds no IPv4 address.
        (vec!["--src", "::/0", "--dport", &listener], vec![]),
    ];
    for (args, mut expected) in cases {
        expected.sort();
        for backend in ["netlink", "procfs"] {
            assert_eq!(
                run(&netns, backend, &args),
                expected,
                "{args:?} with {backend}"
            );
        }
    }
}

/// Without root, on this host's loopback: the kernel-filtered and the unfiltered reading agree
/// on the two sides of one connection.
#[test]
fn local_and_remote_ports_pick_one_side_of_a_loopback_connection() {
    let (listener, client, _server) = tcp_pair("127.0.0.1:0");
    let (listener, client) = (
        listener.local_addr().expect("listener"),
        client.local_addr().expect("client"),
    );
    let port = client.port().to_string();
    for backend in ["netlink", "procfs"] {
        let outbound = rows(&json(&["--backend", backend, "--sport", &port]));
        assert_eq!(
            outbound,
            [row(client, Some(listener), "outbound")],
            "{backend}"
        );
        let inbound = rows(&json(&["--backend", backend, "--dport", &port]));
        assert_eq!(
            inbound,
            [row(listener, Some(client), "inbound")],
            "{backend}"
        );
    }
}

#[test]
fn bad_filters_are_one_line_errors() {
    for (args, message) in [
        (vec!["--src", "10.0.0.0/33"], "is not 0-32"),
        (vec!["--dst", "::/200"], "is not 0-128"),
        (vec!["--src", "10.0.0"], "not an IPv4 or IPv6 address"),
        (vec!["--sport", "9-3"], "backwards"),
        (vec!["--dport", "70000"], "out of range"),
        (
            vec!["[fe80::1%nosuchif]:53"],
            "no network interface is named \"nosuchif\"",
        ),
        (vec!["127.0.0.1:http"], "not a port number"),
    ] {
        let output = portstat().args(&args).output().expect("run portstat");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}
