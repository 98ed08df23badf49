//! End-to-end: `--netns` sees listeners inside network namespaces this test creates (an
//! `unshare -n` child and one named with `ip netns add`), labelled with their namespace; the
//! default view does not. Root only: without it, each test says why it skips.
// These tests drive real Linux sockets and /proc.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// A namespace made with `ip netns add`, deleted when dropped.
struct NamedNetns(String);

impl NamedNetns {
    fn new() -> NamedNetns {
        let name = format!("portstat-test-{}", std::process::id());
        let added = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip");
        assert!(added.success(), "ip netns add {name}");
        let up = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status()
            .expect("ip");
        assert!(up.success());
        NamedNetns(name)
    }

    /// Opens a listener inside, from a thread that joined the namespace.
    fn listen(&self, address: &'static str) -> TcpListener {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open named netns");
            // SAFETY: setns on this thread only, with a valid namespace fd.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            TcpListener::bind(address).expect("bind inside the named namespace")
        })
        .join()
        .expect("thread")
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn inode_of(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("namespace file").ino()
}

fn find(document: &Value, port: u16) -> Option<&Value> {
    sockets(document).iter().find(|s| s["local_port"] == port)
}

#[test]
#[ignore = "needs root"]
fn root_netns_all_shows_every_namespace_labelled_and_the_default_does_not() {
    let _serial = serial();
    let unnamed = PrivateNetns::new();
    let named = NamedNetns::new();
    let in_unnamed = unnamed.run(|| TcpListener::bind("0.0.0.0:0").expect("bind"));
    let in_named = named.listen("127.0.0.1:0");
    let own = TcpListener::bind("127.0.0.1:0").expect("bind");
    let ports = [&in_unnamed, &in_named, &own].map(|l| l.local_addr().expect("address").port());
    let spec = format!("{},{},{}", ports[0], ports[1], ports[2]);

    let all = json(&["-l", "--netns", "all", "--port", &spec]);
    let unnamed_socket = find(&all, ports[0]).expect("listener in the unshare -n namespace");
    assert_eq!(unnamed_socket["netns"]["inode"], inode_of(&unnamed.path()));
    assert_eq!(unnamed_socket["netns"]["name"], Value::Null);
    assert_eq!(unnamed_socket["local_address"], "0.0.0.0");
    assert_eq!(pids(unnamed_socket), [u64::from(std::process::id())]);
    let named_socket = find(&all, ports[1]).expect("listener in the named namespace");
    assert_eq!(named_socket["netns"]["name"], named.0.as_str());
    assert_eq!(
        named_socket["netns"]["inode"],
        inode_of(&format!("/run/netns/{}", named.0))
    );
    assert_eq!(pids(named_socket), [u64::from(std::process::id())]);
    let own_socket = find(&all, ports[2]).expect("listener in portstat's own namespace");
    assert_eq!(own_socket["netns"]["inode"], inode_of("/proc/self/ns/net"));

    // The default view is portstat's own namespace only, unlabelled.
    let default = json(&["-l", "--port", &spec]);
    assert!(find(&default, ports[0]).is_none() && find(&default, ports[1]).is_none());
    assert_eq!(
        find(&default, ports[2]).expect("own listener")["netns"],
        Value::Null
    );

    // One namespace by name: only its sockets, unlabelled as any single-namespace view.
    let one = json(&["-l", "--netns", &named.0, "--port", &spec]);
    assert_eq!(sockets(&one).len(), 1);
    assert_eq!(sockets(&one)[0]["local_port"], ports[1]);
    assert_eq!(sockets(&one)[0]["netns"], Value::Null);
    // And by the pid of a process inside it.
    let holder_pid = unnamed.path().split('/').nth(2).expect("pid").to_string();
    let by_pid = json(&["-l", "--netns", &holder_pid, "--port", &spec]);
    assert_eq!(sockets(&by_pid).len(), 1);
    assert_eq!(sockets(&by_pid)[0]["local_port"], ports[0]);

    // The table gets a NETNS column only when several namespaces are shown.
    let table = portstat()
        .args(["-l", "--netns", "all", "--port", &spec])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("NETNS"), "{text}");
    assert!(text.lines().any(|l| l.starts_with(&named.0)), "{text}");
    let plain = portstat()
        .args(["-l", "--port", &spec])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("PROTO"));
}

#[test]
#[ignore = "needs root"]
fn root_who_audit_and_summary_follow_the_namespace() {
    let _serial = serial();
    let named = NamedNetns::new();
    let redis = named.listen("0.0.0.0:6379");
    let port = redis.local_addr().expect("address").port();

    // who: the listener is inside the namespace, and so is the test bind.
    let inside = portstat()
        .args(["who", &port.to_string(), "--netns", &named.0, "--json"])
        .output()
        .expect("runs");
    assert_eq!(inside.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&inside.stdout).expect("JSON");
    assert_eq!(report["verdict"]["reason"], "listener");
    assert_eq!(report["test_bind"]["with_reuseaddr"], "in-use");
    assert_eq!(
        report["listeners"][0]["owners"][0]["pid"],
        std::process::id()
    );
    let all = portstat()
        .args(["who", "80", "--netns", "all"])
        .output()
        .expect("runs");
    assert_eq!(all.status.code(), Some(2));

    // audit: the namespace's Redis on all of its interfaces is a finding named after it.
    let audit = portstat()
        .args(["audit", "--netns", "all", "--json"])
        .output()
        .expect("runs");
    let report: Value = serde_json::from_slice(&audit.stdout).expect("JSON");
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["port"] == 6379 && f["host"].as_str().is_some_and(|h| h.contains(&named.0)))
        .cloned();
    assert!(finding.is_some(), "{report:#}");

    // summary: counts the namespace's listener when asked.
    let summary = json_from(portstat().args(["summary", "--netns", &named.0, "--json"]));
    assert_eq!(summary["sockets"], 1);
    assert_eq!(summary["listeners"]["tcp"], 1);
}

#[test]
#[ignore = "needs root"]
fn root_without_root_netns_all_shows_what_it_can_and_says_why_not_more() {
    let _serial = serial();
    // As root it runs the check as nobody: it needs root to make the namespace and switch user.
    let unnamed = PrivateNetns::new();
    let _hidden = unnamed.run(|| TcpListener::bind("127.0.0.1:0").expect("bind"));
    let output = portstat()
        .args(["-l", "--netns", "all", "--json"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("runs as nobody");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run as root"), "{stderr}");
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    // Root's namespace holder is not nobody's to see into: its listener is not listed.
    assert!(
        sockets(&document)
            .iter()
            .all(|s| s["netns"]["inode"] != inode_of(&unnamed.path())),
        "{document:#}"
    );
}

/// A cgroup named as docker names its containers', under the v1 `name=systemd` hierarchy,
/// removed when dropped (after its processes are gone).
struct ContainerCgroup {
    parent: std::path::PathBuf,
    scope: std::path::PathBuf,
}

impl ContainerCgroup {
    fn new(id: &str) -> Option<ContainerCgroup> {
        let parent = std::path::Path::new("/sys/fs/cgroup/systemd")
            .join(format!("portstat-test-{}", std::process::id()));
        let scope = parent.join(format!("docker-{id}.scope"));
        std::fs::create_dir_all(&scope).ok()?;
        Some(ContainerCgroup { parent, scope })
    }

    fn enter(&self, pid: u32) -> bool {
        std::fs::write(self.scope.join("cgroup.procs"), pid.to_string()).is_ok()
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.scope);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_namespace_whose_processes_run_in_a_container_is_labelled_with_it() {
    let _serial = serial();
    let id = format!("{:064x}", 0x5eed_0000_u64 + u64::from(std::process::id()));
    let Some(cgroup) = ContainerCgroup::new(&id) else {
        eprintln!(
            "skipping a_namespace_whose_processes_run_in_a_container_is_labelled_with_it: no \
             writable cgroup v1 name=systemd hierarchy at /sys/fs/cgroup/systemd"
        );
        return;
    };
    let netns = PrivateNetns::new();
    assert!(
        cgroup.enter(netns.holder_pid()),
        "move the holder into the container cgroup"
    );
    let listener = netns.run(|| TcpListener::bind("127.0.0.1:0").expect("bind"));
    let port = listener.local_addr().expect("address").port().to_string();

    let all = json(&["-l", "--netns", "all", "--port", &port]);
    let socket = &sockets(&all)[0];
    assert_eq!(socket["netns"]["container"]["runtime"], "docker");
    assert_eq!(socket["netns"]["container"]["id"], id.as_str());
    let table = portstat()
        .args(["-l", "--netns", "all", "--port", &port])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&format!("docker:{}", &id[..12])), "{text}");
    drop(netns); // the holder exits, so the cgroup can go
}

#[test]
#[ignore = "needs root"]
fn root_a_named_namespace_is_read_without_root_through_a_process_of_the_user() {
    let _serial = serial();
    let named = NamedNetns::new();
    // A process of nobody's own inside the named namespace: through its /proc/PID/net nobody
    // may read the namespace's tables, as `--netns all` does.
    let mut inside = Command::new("ip")
        .args([
            "netns",
            "exec",
            &named.0,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args(["--clear-groups", "sleep", "30"])
        .spawn()
        .expect("a process inside");
    let _listener = named.listen("127.0.0.1:0");
    let port = _listener.local_addr().expect("address").port();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let output = portstat()
        .args(["-l", "--netns", &named.0, "--json"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("runs as nobody");
    let _ = inside.kill();
    let _ = inside.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(find(&document, port).is_some(), "{document:#}");
    assert!(stderr.contains("read through /proc/"), "{stderr}");
}
