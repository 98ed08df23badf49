//! Shared helpers for the end-to-end tests: run the built binary, read its JSON, and open real
//! sockets on loopback (or, as root, inside a private network namespace).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

pub fn portstat() -> Command {
    let mut command = Command::cargo_bin("portstat").expect("portstat binary is built");
    command.env_remove("NO_COLOR");
    command
}

/// Runs portstat with `--json` added, asserts it succeeded, and returns the parsed document.
pub fn json(args: &[&str]) -> Value {
    json_from(portstat().args(args).arg("--json"))
}

pub fn json_from(command: &mut Command) -> Value {
    let output = command.output().expect("portstat runs");
    assert!(
        output.status.success(),
        "portstat failed: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("portstat prints valid JSON")
}

pub fn sockets(document: &Value) -> &Vec<Value> {
    document["sockets"].as_array().expect("sockets is an array")
}

/// The sockets whose local port is `port`.
pub fn with_local_port(document: &Value, port: u16) -> Vec<&Value> {
    sockets(document)
        .iter()
        .filter(|s| s["local_port"] == port)
        .collect()
}

pub fn pids(socket: &Value) -> Vec<u64> {
    socket["processes"]
        .as_array()
        .expect("processes is an array")
        .iter()
        .map(|p| p["pid"].as_u64().expect("pid is a number"))
        .collect()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The name the kernel gives this test process (what sysinfo reports as its name).
pub fn own_process_name() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("read own comm")
        .trim()
        .to_string()
}

/// A connected TCP pair through a listener: (listener, client, server side).
pub fn tcp_pair(address: &str) -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind(address).expect("bind listener");
    let client = TcpStream::connect(listener.local_addr().expect("listener address"))
        .expect("connect to own listener");
    let (server, _) = listener.accept().expect("accept own connection");
    (listener, client, server)
}

/// Polls portstat until `ready` holds for its JSON output (the kernel moves sockets between
/// states asynchronously), for at most five seconds.
pub fn wait_for_json(args: &[&str], ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let document = json(args);
        if ready(&document) || Instant::now() > deadline {
            return document;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that holds `fd` too, as a pre-forked server's workers do. Killed on drop.
pub struct Sharer(Child);

impl Sharer {
    pub fn spawn(fd: RawFd) -> Sharer {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sleep");
        command.arg("60").stdin(Stdio::null());
        // SAFETY: fcntl on an fd we own, between fork and exec; async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                Ok(())
            });
        }
        Sharer(command.spawn().expect("spawn sleep"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sharer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private network namespace held open by a sleeping child (`unshare -n`), with loopback up.
/// Sockets are created inside it from a thread that joins it (`setns` is per thread); portstat
/// runs inside it through `nsenter`. Only loopback traffic ever happens in it.
pub struct PrivateNetns {
    holder: Child,
}

impl PrivateNetns {
    pub fn new() -> PrivateNetns {
        let mut holder = Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                "ip link set lo up && echo up && exec sleep 120",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare -n");
        let mut ready = [0u8; 3];
        holder
            .stdout
            .take()
            .expect("piped stdout")
            .read_exact(&mut ready)
            .expect("namespace comes up");
        PrivateNetns { holder }
    }

    pub fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.id())
    }

    /// The process that holds the namespace open.
    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    /// Runs `f` on a thread that has joined the namespace; sockets it creates live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let joined = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(joined, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// portstat, run inside the namespace.
    pub fn portstat(&self) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path()))
            .arg("--")
            .arg(portstat().get_program());
        command
    }
}

impl Drop for PrivateNetns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Sends a byte so a connection is certainly established on both ends.
pub fn ping(stream: &mut TcpStream) {
    stream.write_all(b"x").expect("write on loopback");
}

/// Serialises the tests of one test binary that assert exactly which pids hold a socket: a
/// child another test thread forks inherits every descriptor until it execs, and portstat
/// rightly reports that child as a holder too.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
