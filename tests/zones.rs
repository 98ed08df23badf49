//! End-to-end: link-local addresses keep their zone. A veth pair between two private network
//! namespaces made with `ip netns add`, `fe80::1` on one end, a UDP and a TCP socket bound to it
//! with its scope id; portstat run inside that namespace shows the zone by interface name in the
//! table, JSON and CSV, both backends agree on it, and `who` binds its test socket with it.
//! Root only: without it, each test says why it skips.
// These tests drive real Linux sockets and network namespaces.

use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

use crate::common::*;
use serde_json::Value;

/// Two namespaces joined by a veth pair, `fe80::1` on this side; deleted when dropped.
struct LinkLocal {
    ns: String,
    peer_ns: String,
    interface: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl LinkLocal {
    fn new(tag: &str) -> LinkLocal {
        let id = std::process::id();
        let setup = LinkLocal {
            ns: format!("portstat-z{tag}-{id}"),
            peer_ns: format!("portstat-z{tag}p-{id}"),
            // Interface names have at most 15 characters.
            interface: format!("pz{tag}{}", id % 1_000_000),
        };
        let peer = format!("{}p", setup.interface);
        ip(&["netns", "add", &setup.ns]);
        ip(&["netns", "add", &setup.peer_ns]);
        ip(&[
            "link",
            "add",
            &setup.interface,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &setup.interface, "netns", &setup.ns]);
        ip(&["link", "set", &peer, "netns", &setup.peer_ns]);
        ip(&[
            "-n",
            &setup.ns,
            "addr",
            "add",
            "fe80::1/64",
            "dev",
            &setup.interface,
            "nodad",
        ]);
        ip(&["-n", &setup.ns, "link", "set", "lo", "up"]);
        ip(&["-n", &setup.ns, "link", "set", &setup.interface, "up"]);
        ip(&["-n", &setup.peer_ns, "link", "set", &peer, "up"]);
        setup
    }

    /// Runs `f` on a thread inside the namespace, given the interface's index.
    fn run<T: Send + 'static>(&self, f: impl FnOnce(u32) -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.ns);
        let interface = self.interface.clone();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let joined = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(joined, 0, "setns: {}", std::io::Error::last_os_error());
            let name = std::ffi::CString::new(interface).expect("name");
            // SAFETY: a valid NUL-terminated name.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(index, 0, "the veth end is in the namespace");
            f(index)
        })
        .join()
        .expect("namespace thread")
    }

    /// portstat, run inside the namespace.
    fn portstat(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(portstat().get_program())
            .args(args)
            .output()
            .expect("ip netns exec portstat")
    }
}

impl Drop for LinkLocal {
    fn drop(&mut self) {
        for ns in [&self.ns, &self.peer_ns] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// A UDP and a TCP socket bound to `fe80::1` with the interface's scope id, inside `setup`.
fn bound(setup: &LinkLocal) -> (UdpSocket, TcpListener, u16, u16) {
    setup.run(|index| {
        let address = SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 0, 0, index);
        let udp = UdpSocket::bind(address).expect("bind UDP to fe80::1%veth");
        let tcp = TcpListener::bind(address).expect("bind TCP to fe80::1%veth");
        let (u, t) = (
            udp.local_addr().expect("address").port(),
            tcp.local_addr().expect("address").port(),
        );
        (udp, tcp, u, t)
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn document(setup: &LinkLocal, backend: &str) -> Value {
    let output = setup.portstat(&["-a", "-n", "--json", "--backend", backend]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn on_port(document: &Value, port: u16) -> &Value {
    let found = with_local_port(document, port);
    assert_eq!(found.len(), 1, "{found:?}");
    found[0]
}

#[test]
#[ignore = "needs root"]
fn root_link_local_sockets_show_their_zone_in_json_table_and_csv() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let setup = LinkLocal::new("a");
    let (_udp, _tcp, udp_port, tcp_port) = bound(&setup);

    let netlink = document(&setup, "netlink");
    for port in [udp_port, tcp_port] {
        let socket = on_port(&netlink, port);
        // The address stays an address; its zone is a field of its own.
        assert_eq!(socket["local_address"], "fe80::1", "{socket}");
        assert_eq!(socket["local_zone"], setup.interface.as_str(), "{socket}");
        assert_eq!(socket["remote_zone"], Value::Null, "{socket}");
    }
    // fe80::1 is on one interface only: /proc/net/udp6, which prints no interface, still
    // gets the same zone.
    let procfs = document(&setup, "procfs");
    for port in [udp_port, tcp_port] {
        assert_eq!(
            on_port(&procfs, port)["local_zone"],
            on_port(&netlink, port)["local_zone"]
        );
    }

    let table = stdout(&setup.portstat(&["-a", "-n"]));
    for port in [udp_port, tcp_port] {
        let shown = format!("[fe80::1%{}]:{port}", setup.interface);
        assert!(table.contains(&shown), "{shown} in\n{table}");
    }
    let csv = stdout(&setup.portstat(&["-a", "-n", "--format", "csv"]));
    let header = csv.lines().next().expect("header");
    assert!(
        header.ends_with(",local_zone,remote_zone,recv_q,send_q"),
        "{header}"
    );
    let row = csv
        .lines()
        .find(|line| line.contains(&format!(",fe80::1,{tcp_port},")))
        .expect("the TCP listener's row");
    // local_zone, then an empty remote_zone (a listener has no peer), then the queues.
    assert!(row.contains(&format!(",{},,", setup.interface)), "{row}");
}

#[test]
#[ignore = "needs root"]
fn root_who_binds_its_test_socket_with_the_zone() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let setup = LinkLocal::new("b");
    let (_udp, _tcp, udp_port, tcp_port) = bound(&setup);
    let index = setup.run(|index| index);

    for target in [
        format!("[fe80::1%{}]:{tcp_port}", setup.interface),
        format!("[fe80::1%{index}]:{tcp_port}"),
    ] {
        let output = setup.portstat(&["who", &target]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(1), "{target}: {text}");
        assert!(text.contains("LISTEN"), "{target}: {text}");
        // The listener's own line names the interface too, not its index.
        assert!(
            text.contains(&format!(
                "  [fe80::1%{}]:{tcp_port}  LISTEN",
                setup.interface
            )),
            "{target}: {text}"
        );
        assert!(
            text.contains(&format!(
                "Test bind [fe80::1%{}]:{tcp_port}",
                setup.interface
            )),
            "{target}: {text}"
        );
        assert!(text.contains("EADDRINUSE"), "{target}: {text}");
        assert!(
            !text.contains("EINVAL") && !text.contains("os error 22"),
            "{text}"
        );
    }
    let udp = setup.portstat(&[
        "who",
        &format!("[fe80::1%{}]:{udp_port}/udp", setup.interface),
    ]);
    assert!(stdout(&udp).contains("EADDRINUSE"), "{}", stdout(&udp));

    // Without a zone, the kernel refuses the bind: said in a sentence.
    let bare = stdout(&setup.portstat(&["who", &format!("[fe80::1]:{tcp_port}")]));
    assert!(bare.contains("needs its interface as a zone"), "{bare}");
    assert!(!bare.contains("os error 22"), "{bare}");

    // An interface the namespace does not have is bad input, named.
    let unknown = setup.portstat(&["who", &format!("[fe80::1%nosuch0]:{tcp_port}")]);
    assert_eq!(unknown.status.code(), Some(2));
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("\"nosuch0\""), "{said}");
}
