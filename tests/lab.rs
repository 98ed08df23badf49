//! A reachability lab: two network namespaces joined by a veth pair, a server and a client, so a
//! test can load a firewall into the server and learn from a real connection whether a listener
//! is reachable (the ground truth portstat's firewall verdicts are compared with); and rootful
//! podman kept entirely inside the lab, publishing a container's port as podman does on a host;
//! and real dockerd, likewise ([`Docker`]). Root only.
//!
//! Nothing here changes the root network namespace: every `ip`, `nft`, `iptables*`, podman
//! and dockerd command runs inside a namespace of the lab, and traffic only ever flows over the lab's veth.
// These tests drive real namespaces, firewalls and containers.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

use crate::common::*;

pub const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 231, 0, 1));
pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 231, 0, 2));
/// The client's second address: binding a connection to it tests rules that admit only one
/// source.
pub const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 231, 0, 3));
pub const SERVER_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x231, 0, 0, 0, 0, 0, 1));
pub const CLIENT_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x231, 0, 0, 0, 0, 0, 2));

/// Long enough for a SYN-ACK over a veth, many times over; a dropped SYN gets no answer, so
/// this is also how long a blocked connect takes.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Names lab namespaces as `pstest-srv-PID-N`: unique per process and per lab, and a later run
/// can tell from the PID that a namespace outlived the process that made it.
const NAMESPACE_PREFIXES: [&str; 2] = ["pstest-srv-", "pstest-cli-"];

static LABS: AtomicU32 = AtomicU32::new(0);

/// `addr(SERVER, 5000)`.
pub fn addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A socket opened inside the server namespace; it stays open until dropped.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Listener {
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Listener::Tcp(listener) => listener.local_addr(),
            Listener::Udp(socket) => socket.local_addr(),
        }
        .expect("a bound socket has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }
}

/// A server namespace and a client namespace, joined by a veth pair (server 10.231.0.1/24 and
/// fd00:231::1/64; client 10.231.0.2/24, 10.231.0.3/24 and fd00:231::2/64), loopback up in
/// both. Both namespaces are deleted on drop, also when the test panics.
pub struct Lab {
    server: String,
    client: String,
}

impl Lab {
    pub fn new() -> Lab {
        remove_stale_namespaces();
        let number = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Made before the first command, so whatever exists when a step fails is deleted.
        let lab = Lab {
            server: format!("{}{pid}-{number}", NAMESPACE_PREFIXES[0]),
            client: format!("{}{pid}-{number}", NAMESPACE_PREFIXES[1]),
        };
        ip(&["netns", "add", &lab.server]);
        ip(&["netns", "add", &lab.client]);
        let (server, client) = (lab.server.as_str(), lab.client.as_str());
        ip(&["-n", server, "link", "set", "lo", "up"]);
        ip(&["-n", client, "link", "set", "lo", "up"]);
        // Created inside the server namespace, its peer moved straight into the client's: the
        // root namespace never holds either end.
        ip(&[
            "-n", server, "link", "add", "lab-srv", "type", "veth", "peer", "name", "lab-cli",
            "netns", client,
        ]);
        ip(&[
            "-n",
            server,
            "addr",
            "add",
            "10.231.0.1/24",
            "dev",
            "lab-srv",
        ]);
        // nodad: an address still in duplicate address detection can't be bound for a while.
        ip(&[
            "-n",
            server,
            "addr",
            "add",
            "fd00:231::1/64",
            "dev",
            "lab-srv",
            "nodad",
        ]);
        for address in ["10.231.0.2/24", "10.231.0.3/24"] {
            ip(&["-n", client, "addr", "add", address, "dev", "lab-cli"]);
        }
        ip(&[
            "-n",
            client,
            "addr",
            "add",
            "fd00:231::2/64",
            "dev",
            "lab-cli",
            "nodad",
        ]);
        ip(&["-n", server, "link", "set", "lab-srv", "up"]);
        ip(&["-n", client, "link", "set", "lab-cli", "up"]);
        lab
    }

    /// What `portstat --netns` takes for the server namespace.
    pub fn server_path(&self) -> String {
        format!("/run/netns/{}", self.server)
    }

    pub fn client_path(&self) -> String {
        format!("/run/netns/{}", self.client)
    }

    /// Opens a listener (TCP) or a bound socket (UDP) inside the server namespace.
    pub fn listen(&self, proto: Proto, address: SocketAddr) -> Listener {
        in_namespace(self.server_path(), move || match proto {
            Proto::Tcp => Listener::Tcp(
                TcpListener::bind(address)
                    .unwrap_or_else(|e| panic!("bind tcp {address} in the lab: {e}")),
            ),
            Proto::Udp => Listener::Udp(
                UdpSocket::bind(address)
                    .unwrap_or_else(|e| panic!("bind udp {address} in the lab: {e}")),
            ),
        })
    }

    /// portstat with `args`, then `--netns` and the server namespace's path (`--netns` is an
    /// option of each subcommand, so it goes after them).
    pub fn portstat(&self, args: &[&str]) -> Command {
        let mut command = portstat();
        command.args(args).arg("--netns").arg(self.server_path());
        command
    }

    /// `program` run inside the server namespace.
    pub fn server_command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.server, program]);
        command
    }

    /// What `args` print inside the server namespace; panics when the command fails.
    pub fn server_stdout(&self, args: &[&str]) -> String {
        let (program, rest) = args.split_first().expect("a program to run");
        let output = self
            .server_command(program)
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{args:?} in the lab: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Loads an nft ruleset (the text `nft -f` reads) into the server namespace.
    pub fn nft(&self, ruleset: &str) {
        self.feed(&["nft", "-f", "-"], ruleset);
    }

    /// Loads `iptables-save` text into the server namespace with the restore tool of the
    /// backend asked for: iptables-nft (legacy false) or iptables-legacy, IPv4 or IPv6.
    pub fn iptables_restore(&self, text: &str, legacy: bool, v6: bool) {
        let tool = match (legacy, v6) {
            (false, false) => "iptables-nft-restore",
            (false, true) => "ip6tables-nft-restore",
            (true, false) => "iptables-legacy-restore",
            (true, true) => "ip6tables-legacy-restore",
        };
        self.feed(&[tool], text);
    }

    fn feed(&self, args: &[&str], input: &str) {
        let (program, rest) = args.split_first().expect("a program to run");
        let mut child = self
            .server_command(program)
            .args(rest)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write the ruleset");
        let output = child.wait_with_output().expect("wait for the loader");
        assert!(
            output.status.success(),
            "{program} rejected:\n{input}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The ground truth: whether a TCP connection from the client namespace, from `source`, to
    /// `to` is established within 200 ms. A dropped SYN times out; a reset (no listener, a
    /// REJECT) is refused at once.
    pub fn connects(&self, source: IpAddr, to: SocketAddr) -> bool {
        in_namespace(self.client_path(), move || {
            connect_from(source, to, CONNECT_TIMEOUT).is_some()
        })
    }

    /// An HTTP/1.0 GET of `/` from the client namespace: the response (head and body), or
    /// `None` when no connection was established or nothing came back. Unlike [`Lab::connects`]
    /// this proves a server answered: a published port's host-side socket completes the
    /// handshake too, though nothing there ever reads.
    pub fn http_get(&self, source: IpAddr, to: SocketAddr) -> Option<String> {
        in_namespace(self.client_path(), move || {
            let socket = connect_from(source, to, CONNECT_TIMEOUT)?;
            let mut stream = std::net::TcpStream::from(socket);
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in [&self.server, &self.client] {
            let _ = Command::new("ip")
                .args(["netns", "delete", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A connected socket from `source` (any port) to `to`, or `None`. Closed with a reset, so
/// neither namespace keeps the connection around (no TIME_WAIT, no CLOSE_WAIT) for portstat to
/// list.
fn connect_from(source: IpAddr, to: SocketAddr, timeout: Duration) -> Option<Socket> {
    let socket =
        Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|e| panic!("bind the client to {source}: {e}"));
    socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    socket.connect_timeout(&to.into(), timeout).ok()?;
    Some(socket)
}

/// Runs `f` on a thread that joined the network namespace at `path` (`setns` is per thread).
pub fn in_namespace<T: Send + 'static>(path: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let namespace =
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("open namespace {path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let joined = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(joined, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_alive(pid: u32) -> bool {
    // A zombie has exited: only its exit status is left for its parent.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// The PID in a name made by this module (`...-PID-N`), when `name` starts with `prefix`.
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

/// Deletes lab namespaces whose test process is gone (killed before its labs were dropped), so
/// a killed run leaves nothing behind for long. Once per process.
fn remove_stale_namespaces() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = NAMESPACE_PREFIXES.iter().any(|prefix| {
                owner_pid(&name, prefix).is_some_and(|pid| {
                    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
                })
            });
            if stale {
                let _ = Command::new("ip").args(["netns", "delete", &name]).status();
            }
        }
    });
}

/// The lab's names in `ip netns list`.
fn listed_namespaces() -> String {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ----- podman -----

const IMAGE: &str = "localhost/pstest-busybox:latest";
/// In the image's index page, to tell the container's answer from anything else's.
pub const INDEX_MARKER: &str = "portstat lab container";
const PODMAN_DIR_PREFIX: &str = "pstest-podman-";
/// Where podman's private directories go: not under /run or /var, which podman sees as private
/// tmpfs mounts (see [`Podman::start`]).
const PODMAN_DIR_BASE: &str = "/tmp";

/// One container at a time: they would share podman's default cgroup parent, which the last
/// one removes.
static PODMAN: Mutex<()> = Mutex::new(());
static CONTAINERS: AtomicU32 = AtomicU32::new(0);

/// Rootful podman running `busybox httpd` in a container with `-p 8080:80`, everything
/// network-related inside the lab's server namespace.
///
/// Podman runs (`nsenter`) in the server namespace, so netavark makes its bridge, the
/// container's veth and its iptables rules there; and in a mount namespace of its own whose
/// /run, /var and /dev/shm are private tmpfs, so the state rootful podman keeps in fixed places
/// (/run/containers/networks/ipam.db, /run/runc, /run/netns/netns-*, /var/lib/containers/cache,
/// /dev/shm/libpod_lock) never touches the host's, and firewalld (whose D-Bus socket is under
/// /run) is never asked. Storage (vfs), configuration and podman's temporary files live in a
/// directory of its own, removed on drop. What is left in common with the host is the cgroup
/// tree: the container's cgroups are podman's own (`/libpod_parent/...`), and the parent is
/// removed on drop when this made it.
pub struct Podman<'lab> {
    lab: &'lab Lab,
    dir: PathBuf,
    holder: Option<Child>,
    name: String,
    id: String,
    conmon_pid: u32,
    container_pid: u32,
    address: IpAddr,
    cgroup_parents_made: Vec<PathBuf>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl<'lab> Podman<'lab> {
    /// Imports the image, runs the container, and returns once its published port answers
    /// HTTP from the client namespace.
    pub fn start(lab: &'lab Lab) -> Podman<'lab> {
        let one_at_a_time = PODMAN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remove_stale_podman_dirs();
        let started = Instant::now();
        let number = CONTAINERS.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(PODMAN_DIR_BASE).join(format!(
            "{PODMAN_DIR_PREFIX}{}-{number}",
            std::process::id()
        ));
        let mut podman = Podman {
            lab,
            dir,
            holder: None,
            name: format!("pstest-web-{number}"),
            id: String::new(),
            conmon_pid: 0,
            container_pid: 0,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            cgroup_parents_made: cgroup_parents()
                .into_iter()
                .filter(|parent| !parent.exists())
                .collect(),
            _one_at_a_time: one_at_a_time,
        };
        podman.write_configuration();
        podman.spawn_holder();
        let prepared = started.elapsed();

        let tarball = podman.dir.join("rootfs.tar");
        podman.run(&[
            "import",
            "--change",
            r#"CMD ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]"#,
            &tarball.to_string_lossy(),
            IMAGE,
        ]);
        let imported = started.elapsed();
        let name = podman.name.clone();
        podman.run(&[
            "run",
            "--detach",
            "--pull=never",
            "--name",
            &name,
            "--publish",
            "8080:80",
            IMAGE,
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
        let running = started.elapsed();

        let inspect = podman.inspect();
        podman.id = inspect["Id"].as_str().expect("Id").to_string();
        podman.conmon_pid = pid_in(&inspect["State"]["ConmonPid"]);
        podman.container_pid = pid_in(&inspect["State"]["Pid"]);
        podman.address = inspect["NetworkSettings"]["IPAddress"]
            .as_str()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("the container's address in {inspect:#}"));

        // httpd may not listen yet when `run` returns: until then the DNAT'd SYN is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        let published = addr(SERVER, 8080);
        loop {
            let answer = lab.http_get(CLIENT, published);
            if answer.is_some_and(|page| page.contains(INDEX_MARKER)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{published} never answered with the index page from {CLIENT}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "podman: configured in {prepared:?}, imported by {imported:?}, running by \
             {running:?}, answering by {:?}",
            started.elapsed()
        );
        podman
    }

    /// The container's name (`pstest-web-N`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's id (64 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// conmon, the container's monitor: it holds the host side of the published port.
    pub fn conmon_pid(&self) -> u32 {
        self.conmon_pid
    }

    /// The container's first process (httpd), as the host sees it.
    pub fn container_pid(&self) -> u32 {
        self.container_pid
    }

    /// The container's address on podman's bridge (10.88.0.0/16 by default).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// `podman` with this instance's private configuration, storage and namespaces.
    pub fn command(&self) -> Command {
        let holder = self
            .holder
            .as_ref()
            .expect("the namespace holder runs")
            .id();
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={holder}"))
            .args(["--mount", "--net", "--", "podman"])
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--network-config-dir")
            .arg(self.dir.join("networks"))
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            // netavark asks firewalld over the system bus when it can reach it: the private /run
            // has no bus socket, and this leaves no other address to find one at.
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .stdin(Stdio::null());
        command
    }

    /// `podman ARGS`, which must succeed; its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run podman");
        assert!(
            output.status.success(),
            "podman {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `podman inspect` of the container.
    pub fn inspect(&self) -> Value {
        let text = self.run(&["inspect", &self.name]);
        let document: Value = serde_json::from_str(&text).expect("podman inspect prints JSON");
        document[0].clone()
    }

    fn write_configuration(&self) {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).expect("create podman's directory");
        for sub in [
            "storage",
            "run",
            "tmp",
            "networks",
            "rootfs/bin",
            "rootfs/www",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("create podman's directories");
        }
        // crun fails on a cgroup v1 hybrid host; there is no systemd to manage cgroups or
        // hold the events journal.
        let containers = "[containers]\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [network]\n\
             network_backend = \"netavark\"\n\
             [engine]\n\
             runtime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n";
        write(&dir.join("containers.conf"), containers);
        // vfs needs no mounts and works on any filesystem, overlay-on-overlay CI roots included.
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("storage").display(),
            dir.join("run").display()
        );
        write(&dir.join("storage.conf"), &storage);
        // No registry to fall back to: a typo in the image name fails instead of pulling.
        write(
            &dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        );

        busybox_image(dir, &self.name);
    }

    /// A process in the server's network namespace and a new mount namespace (private tmpfs
    /// on /run, /var and /dev/shm) that every podman command joins. It dies with the test
    /// (PR_SET_PDEATHSIG) if the test is killed before the drop.
    fn spawn_holder(&mut self) {
        let script = "mount -t tmpfs -o mode=0755 pstest-run /run && \
             mount -t tmpfs -o mode=0755 pstest-var /var && \
             mkdir -m 1777 /var/tmp && ln -s /run /var/run && \
             mount -t tmpfs -o mode=1777 pstest-shm /dev/shm && \
             echo up && exec sleep 3600";
        self.holder = Some(mount_namespace_holder(self.lab, script, "podman's"));
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let started = Instant::now();
        if self.holder.is_some() {
            let _ = self
                .command()
                .args(["rm", "--force", "--time", "0", &self.name])
                .output();
            let _ = self.command().args(["rmi", "--force", IMAGE]).output();
        }
        // After `rm` both are gone; after a failed one, nothing else will end them.
        let deadline = Instant::now() + Duration::from_secs(5);
        for pid in [self.container_pid, self.conmon_pid] {
            if pid == 0 {
                continue;
            }
            while is_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if is_alive(pid) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        kill_processes_mentioning(&self.dir);
        if let Some(mut holder) = self.holder.take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        for parent in &self.cgroup_parents_made {
            remove_cgroup_tree(parent);
        }
        // Mounts podman made under the directory were in the holder's mount namespace, gone
        // with its last process.
        let _ = std::fs::remove_dir_all(&self.dir);
        eprintln!("podman: removed in {:?}", started.elapsed());
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn pid_in(value: &Value) -> u32 {
    value
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|&pid| pid > 0)
        .unwrap_or_else(|| panic!("a pid, not {value}"))
}

/// podman's default cgroup parent under the cgroupfs manager, in every hierarchy mounted.
fn cgroup_parents() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut parents = vec![root.join("libpod_parent")];
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                parents.push(entry.path().join("libpod_parent"));
            }
        }
    }
    parents
}

/// Removes a cgroup and the cgroups under it, deepest first: a cgroup goes with `rmdir`, and
/// only once empty (no processes, no children), so one still in use is left alone.
fn remove_cgroup_tree(cgroup: &Path) {
    if let Ok(entries) = std::fs::read_dir(cgroup) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(cgroup);
}

/// Every process whose command line names `dir` (conmon does: its storage and exit
/// directories are there), and their children (the container's processes), get SIGKILL.
fn kill_processes_mentioning(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let processes = all_processes();
    let named: Vec<u32> = processes
        .iter()
        .filter(|p| p.cmdline.contains(&needle))
        .map(|p| p.pid)
        .collect();
    for process in &processes {
        if named.contains(&process.pid) || named.contains(&process.ppid) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(process.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

struct ProcessEntry {
    pid: u32,
    ppid: u32,
    cmdline: String,
}

fn all_processes() -> Vec<ProcessEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some(ProcessEntry {
                pid,
                ppid,
                cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            })
        })
        .collect()
}

/// Directories of podman instances whose test process is gone: their conmon and container are
/// killed and the directory removed. Podman's own namespaces died with their processes.
fn remove_stale_podman_dirs() {
    let Ok(entries) = std::fs::read_dir(PODMAN_DIR_BASE) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = owner_pid(&name, PODMAN_DIR_PREFIX).is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        });
        if stale {
            kill_processes_mentioning(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

// ----- docker -----

const DOCKER_IMAGE: &str = "pstest-busybox:latest";
const DOCKER_DIR_PREFIX: &str = "pstest-docker-";
/// Where dockerd's private directories go: not under /run, /var or /etc/docker, which it sees
/// as private tmpfs mounts (see [`Docker::start`]).
const DOCKER_DIR_BASE: &str = "/tmp";
/// dockerd's own search path: Debian's iptables (whichever variant the alternatives pick),
/// docker-proxy, containerd and runc, never a copy elsewhere on the test's PATH.
const DOCKERD_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// One dockerd at a time, as with podman (the reach tests are serial anyway): the start and
/// stop times [`Docker`] reports are then one daemon's.
static DOCKER: Mutex<()> = Mutex::new(());
static DOCKER_DAEMONS: AtomicU32 = AtomicU32::new(0);

/// A real dockerd (docker.io 20.10, which starts its own containerd) running `busybox httpd`
/// in a container with `-p 8080:80`, everything network-related inside the lab's server
/// namespace: docker0, the container's veth, docker's iptables rules and `ip_forward`.
///
/// dockerd runs (`nsenter`) in the server namespace and in a mount namespace of its own whose
/// /run, /var and /etc/docker are private tmpfs, so what docker keeps in fixed places
/// (/run/docker/libnetwork, /run/docker/plugins, containerd's shim sockets in
/// /run/containerd/s, runc's state, /etc/docker/key.json) never touches the host's, and
/// firewalld (whose D-Bus socket is under /run) is never asked. Its socket, data root (vfs
/// storage), exec root, pidfile, configuration and log, and containerd's root and state (which
/// dockerd puts in its data and exec roots), live in a directory of its own, removed on drop.
/// The container's cgroups are under a parent of this instance's own
/// (`/pstest-docker-PID-N/<id>`), removed on drop. The `docker` client runs outside, talking
/// to the socket.
pub struct Docker<'lab> {
    lab: &'lab Lab,
    dir: PathBuf,
    holder: Option<Child>,
    /// The holder's mount namespace (`mnt:[N]`): whatever is still in it on drop is ours.
    mount_namespace: String,
    dockerd: Option<Child>,
    userland_proxy: bool,
    name: String,
    id: String,
    dockerd_pid: u32,
    containerd_pid: u32,
    shim_pid: u32,
    container_pid: u32,
    proxy_pids: Vec<u32>,
    address: IpAddr,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl<'lab> Docker<'lab> {
    /// Starts dockerd (`--userland-proxy` as asked), imports the image, runs the container,
    /// and returns once its published port answers HTTP from the client namespace.
    pub fn start(lab: &'lab Lab, userland_proxy: bool) -> Docker<'lab> {
        let one_at_a_time = DOCKER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remove_stale_docker_dirs();
        let started = Instant::now();
        let number = DOCKER_DAEMONS.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(DOCKER_DIR_BASE).join(format!(
            "{DOCKER_DIR_PREFIX}{}-{number}",
            std::process::id()
        ));
        let mut docker = Docker {
            lab,
            dir,
            holder: None,
            mount_namespace: String::new(),
            dockerd: None,
            userland_proxy,
            name: format!("pstest-dk-{number}"),
            id: String::new(),
            dockerd_pid: 0,
            containerd_pid: 0,
            shim_pid: 0,
            container_pid: 0,
            proxy_pids: Vec::new(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            _one_at_a_time: one_at_a_time,
        };
        docker.write_configuration();
        docker.spawn_holder();
        docker.spawn_dockerd();
        docker.wait_until_up();
        let up = started.elapsed();

        let tarball = docker.dir.join("rootfs.tar");
        docker.run(&[
            "import",
            "--change",
            r#"CMD ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]"#,
            &tarball.to_string_lossy(),
            DOCKER_IMAGE,
        ]);
        let imported = started.elapsed();
        let name = docker.name.clone();
        docker.run(&[
            "run",
            "--detach",
            "--pull=never",
            "--name",
            &name,
            "--publish",
            "8080:80",
            DOCKER_IMAGE,
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
        let running = started.elapsed();

        let inspect = docker.inspect();
        docker.id = inspect["Id"].as_str().expect("Id").to_string();
        docker.container_pid = pid_in(&inspect["State"]["Pid"]);
        docker.address = inspect["NetworkSettings"]["IPAddress"]
            .as_str()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("the container's address in {inspect:#}"));
        let processes = all_processes();
        let parent_of = |pid: u32| processes.iter().find(|p| p.pid == pid).map(|p| p.ppid);
        docker.shim_pid = parent_of(docker.container_pid).unwrap_or(0);
        docker.containerd_pid = children_named(&processes, docker.dockerd_pid, "containerd")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no containerd under dockerd {}", docker.dockerd_pid));
        docker.proxy_pids = children_named(&processes, docker.dockerd_pid, "docker-proxy");

        // httpd may not listen yet when `run` returns: until then the DNAT'd SYN is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        let published = addr(SERVER, 8080);
        loop {
            let answer = lab.http_get(CLIENT, published);
            if answer.is_some_and(|page| page.contains(INDEX_MARKER)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{published} never answered with the index page from {CLIENT}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "docker (userland proxy {}): dockerd up in {up:?}, imported by {imported:?}, \
             running by {running:?}, answering by {:?}",
            if userland_proxy { "on" } else { "off" },
            started.elapsed()
        );
        docker
    }

    /// The container's name (`pstest-dk-N`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's id (64 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dockerd_pid(&self) -> u32 {
        self.dockerd_pid
    }

    /// The containerd dockerd started for itself.
    pub fn containerd_pid(&self) -> u32 {
        self.containerd_pid
    }

    /// containerd-shim-runc-v2, the container's parent.
    pub fn shim_pid(&self) -> u32 {
        self.shim_pid
    }

    /// The container's first process (httpd), as the host sees it.
    pub fn container_pid(&self) -> u32 {
        self.container_pid
    }

    /// The docker-proxy processes holding the published port's host side (one for 0.0.0.0,
    /// one for [::]); none without the userland proxy.
    pub fn proxy_pids(&self) -> &[u32] {
        &self.proxy_pids
    }

    /// The container's address on docker0 (172.17.0.0/16 by default).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// This instance's directory (sockets, data and exec roots, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `docker` client, talking to this instance's dockerd and nothing else, with a
    /// configuration directory of its own (not ~/.docker).
    pub fn command(&self) -> Command {
        let client = if Path::new("/usr/bin/docker").exists() {
            "/usr/bin/docker"
        } else {
            "docker"
        };
        let mut command = Command::new(client);
        command
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        command
    }

    /// `docker ARGS`, which must succeed; its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run docker");
        assert!(
            output.status.success(),
            "docker {}: {}\n{}\ndockerd's log ends:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `docker inspect` of the container.
    pub fn inspect(&self) -> Value {
        let text = self.run(&["inspect", &self.name]);
        let document: Value = serde_json::from_str(&text).expect("docker inspect prints JSON");
        document[0].clone()
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The last lines dockerd (and containerd, whose output it passes on) logged.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `/pstest-docker-PID-N`: the directory's name, so a later run can tell whose it was.
    fn cgroup_parent(&self) -> String {
        format!(
            "/{}",
            self.dir
                .file_name()
                .expect("a directory name")
                .to_string_lossy()
        )
    }

    fn write_configuration(&self) {
        let dir = &self.dir;
        for sub in ["data", "exec", "client", "rootfs/bin", "rootfs/www"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create dockerd's directories");
        }
        // dockerd 20.10 writes its trust key to /etc/docker/key.json unless told otherwise;
        // /etc/docker is a private tmpfs too, this keeps it out of even that.
        let configuration = serde_json::json!({
            "deprecated-key-path": dir.join("key.json"),
        });
        write_json(&dir.join("daemon.json"), &configuration);
        write(&dir.join("client/config.json"), "{}\n");

        busybox_image(dir, &self.name);
    }

    /// A process in the server's network namespace and a new mount namespace (private tmpfs
    /// on /run, /var and /etc/docker) that dockerd joins. `nsenter` rather than `ip netns
    /// exec`, which remounts /sys and so loses the cgroup mounts dockerd needs. It dies with
    /// the test (PR_SET_PDEATHSIG) if the test is killed before the drop.
    fn spawn_holder(&mut self) {
        let script = "mount -t tmpfs -o mode=0755 pstest-run /run && \
             mount -t tmpfs -o mode=0755 pstest-var /var && \
             mkdir -m 1777 /var/tmp && ln -s /run /var/run && \
             { [ ! -d /etc/docker ] || mount -t tmpfs -o mode=0755 pstest-etc /etc/docker; } && \
             echo up && exec sleep 3600";
        let holder = mount_namespace_holder(self.lab, script, "dockerd's");
        self.mount_namespace = std::fs::read_link(format!("/proc/{}/ns/mnt", holder.id()))
            .map(|link| link.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.holder = Some(holder);
    }

    fn spawn_dockerd(&mut self) {
        let holder = self.holder.as_ref().expect("the holder runs").id();
        let log = std::fs::File::create(self.dir.join("dockerd.log")).expect("create the log");
        let dir = &self.dir;
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={holder}"))
            .args(["--mount", "--net", "--", "dockerd"])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            // vfs needs no mounts and works on any filesystem, overlay-on-overlay CI roots
            // included; the image is one static busybox.
            .args(["--storage-driver", "vfs"])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg("--cgroup-parent")
            .arg(self.cgroup_parent())
            .arg("--iptables=true")
            .arg(format!("--userland-proxy={}", self.userland_proxy))
            // Containers still running when it stops (after a failed `rm`) get 2 s, not 15.
            .args(["--shutdown-timeout", "2"])
            .env("PATH", DOCKERD_PATH)
            // dockerd asks firewalld over the system bus when it can reach it: the private
            // /run has no bus socket, and this leaves no other address to find one at.
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log, twice"))
            .stderr(log);
        die_with_parent(&mut command);
        let dockerd = command.spawn().expect("spawn dockerd");
        // nsenter forks only to enter a PID namespace: it became dockerd.
        self.dockerd_pid = dockerd.id();
        self.dockerd = Some(dockerd);
    }

    /// Polls the API (`GET /_ping`) until dockerd answers; fails at once if it exited.
    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .dockerd
                .as_mut()
                .and_then(|dockerd| dockerd.try_wait().ok().flatten())
            {
                panic!(
                    "dockerd exited ({status}) before it answered:\n{}",
                    self.log_tail()
                );
            }
            if ping_docker(&self.socket()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer on {} within 30 s:\n{}",
                self.socket().display(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mount points under this instance's directory in dockerd's mount namespace, deepest
    /// first. docker unmounts its own when it stops; what is left is unmounted on drop.
    fn mounts_under_dir(&self, holder: u32) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        let mountinfo =
            std::fs::read_to_string(format!("/proc/{holder}/mountinfo")).unwrap_or_default();
        let mut points: Vec<String> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(|point| point.replace("\\040", " "))
            .filter(|point| point == &dir || point.starts_with(&format!("{dir}/")))
            .collect();
        points.sort_by_key(|point| std::cmp::Reverse(point.len()));
        points
    }
}

impl Drop for Docker<'_> {
    fn drop(&mut self) {
        let started = Instant::now();
        let dockerd_running = self
            .dockerd
            .as_mut()
            .is_some_and(|dockerd| matches!(dockerd.try_wait(), Ok(None)));
        if dockerd_running && !self.name.is_empty() {
            // A dockerd that hangs must not hang the drop: the client gets 10 s.
            let mut command = self.command();
            command
                .args(["rm", "--force", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Ok(mut client) = command.spawn() {
                let deadline = Instant::now() + Duration::from_secs(10);
                while matches!(client.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = client.kill();
                let _ = client.wait();
            }
        }
        let removed = started.elapsed();

        // dockerd stops containerd (SIGTERM) and waits for it on SIGTERM.
        if let Some(mut dockerd) = self.dockerd.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(dockerd.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(dockerd.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(dockerd.try_wait(), Ok(None)) {
                eprintln!("docker: dockerd ignored SIGTERM for 15 s; killing it");
                let _ = dockerd.kill();
            }
            let _ = dockerd.wait();
        }
        // Once dockerd is gone, what it started must be too; whatever is not gets SIGKILL.
        let mut rest: Vec<u32> = vec![self.containerd_pid, self.shim_pid, self.container_pid];
        rest.extend(&self.proxy_pids);
        let deadline = Instant::now() + Duration::from_secs(5);
        for pid in rest.into_iter().filter(|&pid| pid != 0) {
            while is_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if is_alive(pid) {
                eprintln!("docker: {pid} outlived dockerd; killing it");
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        let leftovers = docker_processes_left(&self.dir);
        if !leftovers.is_empty() {
            eprintln!(
                "docker: {leftovers:?} name its directory after dockerd exited; killing them"
            );
            kill_processes_mentioning(&self.dir);
            wait_until_gone(&leftovers);
        }
        let stopped = started.elapsed();

        if let Some(mut holder) = self.holder.take() {
            for point in self.mounts_under_dir(holder.id()) {
                eprintln!("docker: unmounting {point}, left by dockerd");
                let _ = Command::new("nsenter")
                    .arg(format!("--target={}", holder.id()))
                    .args(["--mount", "--", "umount", "--lazy", &point])
                    .status();
            }
            let _ = holder.kill();
            let _ = holder.wait();
        }
        // Anything still in the private mount namespace was started from it, by this test.
        if !self.mount_namespace.is_empty() {
            let leftovers = kill_processes_in_mount_namespace(&self.mount_namespace);
            if !leftovers.is_empty() {
                eprintln!("docker: killed {leftovers:?}, left in its mount namespace");
                wait_until_gone(&leftovers);
            }
        }
        remove_cgroup_parents(&self.cgroup_parent());
        let _ = std::fs::remove_dir_all(&self.dir);
        eprintln!(
            "docker: container removed in {removed:?}, dockerd and containerd exited by \
             {stopped:?}, all removed by {:?}",
            started.elapsed()
        );
    }
}

/// SIGKILL for the child when the thread that spawned it ends (the test, killed or done).
/// The busybox-static image both runtimes import, in `dir/rootfs.tar` (from `dir/rootfs`, whose
/// `bin` and `www` exist): busybox, a few applet links, and an index page naming `name`.
fn busybox_image(dir: &Path, name: &str) {
    let rootfs = dir.join("rootfs");
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("copy /bin/busybox (busybox-static) into the image");
    for applet in ["sh", "httpd", "cat", "ls", "wget"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .expect("link a busybox applet");
    }
    write(
        &rootfs.join("www/index.html"),
        &format!("<h1>{INDEX_MARKER} {name}</h1>\n"),
    );
    let tarred = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(dir.join("rootfs.tar"))
        .arg(".")
        .status()
        .expect("run tar");
    assert!(tarred.success(), "tar the image's root filesystem");
}

/// A process in the lab's server network namespace and a new mount namespace, set up by
/// `script` (which prints `up` and then sleeps), that a runtime's commands join. It dies with
/// the test (PR_SET_PDEATHSIG) if the test is killed before the drop.
fn mount_namespace_holder(lab: &Lab, script: &str, whose: &str) -> std::process::Child {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", lab.server_path()))
        .args(["--", "unshare", "--mount", "--propagation", "slave"])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    die_with_parent(&mut command);
    let mut holder = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {whose} namespace holder: {e}"));
    let mut ready = [0u8; 3];
    let read = holder
        .stdout
        .take()
        .expect("piped stdout")
        .read_exact(&mut ready);
    if read.is_err() || &ready != b"up\n" {
        let _ = holder.kill();
        let _ = holder.wait();
        panic!("{whose} mount namespace did not come up");
    }
    holder
}

fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl between fork and exec; async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Whether dockerd answers `GET /_ping` on its socket.
fn ping_docker(socket: &Path) -> bool {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.ends_with("OK")
}

/// The children of `parent` whose program is `name` (the basename of argv\[0\]).
fn children_named(processes: &[ProcessEntry], parent: u32, name: &str) -> Vec<u32> {
    processes
        .iter()
        .filter(|p| p.ppid == parent)
        .filter(|p| {
            p.cmdline
                .split(' ')
                .next()
                .and_then(|program| program.rsplit('/').next())
                == Some(name)
        })
        .map(|p| p.pid)
        .collect()
}

/// SIGKILL for every process in the mount namespace `namespace` (`mnt:[N]`).
/// Returns their pids.
fn kill_processes_in_mount_namespace(namespace: &str) -> Vec<u32> {
    let mut killed = Vec::new();
    for process in all_processes() {
        let link = std::fs::read_link(format!("/proc/{}/ns/mnt", process.pid));
        if link.is_ok_and(|link| link.to_string_lossy() == namespace) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(process.pid as libc::pid_t, libc::SIGKILL) };
            killed.push(process.pid);
        }
    }
    killed
}

/// Waits (up to 5 s) until none of `pids` is alive.
fn wait_until_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes the cgroup `parent` (`/pstest-docker-PID-N`) and what is under it, in every
/// hierarchy mounted.
fn remove_cgroup_parents(parent: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let relative = parent.trim_start_matches('/');
    remove_cgroup_tree(&root.join(relative));
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                remove_cgroup_tree(&entry.path().join(relative));
            }
        }
    }
}

/// Directories of dockerd instances whose test process is gone: dockerd, containerd, the
/// shims and their children (docker-proxy, the container) are killed, the cgroup parent and
/// the directory removed. The namespaces died with their processes.
fn remove_stale_docker_dirs() {
    let Ok(entries) = std::fs::read_dir(DOCKER_DIR_BASE) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = owner_pid(&name, DOCKER_DIR_PREFIX).is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        });
        if stale {
            kill_processes_mentioning(&entry.path());
            remove_cgroup_parents(&format!("/{name}"));
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Every process of a dockerd instance: its dockerd, containerd, shim and docker-proxy
/// processes, by what their command lines name.
pub fn docker_processes_left(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    all_processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(&needle))
        .map(|p| p.pid)
        .collect()
}

// ----- fixtures -----

/// The tools whose rulesets a capture records, and the file each goes to.
const RULESET_DUMPS: [(&str, &[&str]); 6] = [
    ("nft.json", &["nft", "-j", "list", "ruleset"]),
    ("nft.txt", &["nft", "list", "ruleset"]),
    ("iptables-nft-save.txt", &["iptables-nft-save"]),
    ("iptables-legacy-save.txt", &["iptables-legacy-save"]),
    ("ip6tables-nft-save.txt", &["ip6tables-nft-save"]),
    ("ip6tables-legacy-save.txt", &["ip6tables-legacy-save"]),
];

/// Writes what fixtures/firewall/podman/README.md lists into `out`, from the running lab.
fn capture(lab: &Lab, podman: &Podman, out: &Path) -> Value {
    std::fs::create_dir_all(out).expect("create the fixture directory");
    capture_rulesets(lab, out);
    let ss = lab.server_stdout(&["ss", "-tlnpe"]);
    write(&out.join("ss-tlnpe.txt"), &ss);
    write(
        &out.join("ip-addr-server.json"),
        &lab.server_stdout(&["ip", "-j", "addr"]),
    );
    let container_netns = format!("/proc/{}/ns/net", podman.container_pid());
    let in_container = |args: &[&str]| {
        let output = Command::new("nsenter")
            .arg(format!("--net={container_netns}"))
            .arg("--")
            .args(args)
            .output()
            .expect("run nsenter");
        assert!(output.status.success(), "{args:?} in the container");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    write(
        &out.join("ip-addr-container.json"),
        &in_container(&["ip", "-j", "addr"]),
    );
    write(
        &out.join("ss-tlnpe-container.txt"),
        &in_container(&["ss", "-tlnpe"]),
    );
    let conmon = podman.conmon_pid();
    let cmdline = std::fs::read(format!("/proc/{conmon}/cmdline")).expect("conmon's cmdline");
    std::fs::write(out.join("conmon.cmdline"), &cmdline).expect("write conmon.cmdline");
    let read = |path: String| std::fs::read_to_string(&path).expect("read from /proc");
    write(
        &out.join("conmon.cgroup"),
        &read(format!("/proc/{conmon}/cgroup")),
    );
    write(
        &out.join("httpd.cgroup"),
        &read(format!("/proc/{}/cgroup", podman.container_pid())),
    );
    write(
        &out.join("httpd.cgroup.in-container"),
        &podman.run(&[
            "exec",
            podman.name(),
            "/bin/busybox",
            "cat",
            "/proc/1/cgroup",
        ]),
    );
    let inspect = podman.run(&["inspect", podman.name()]);
    write(&out.join("podman-inspect.json"), &inspect);

    let holder = holder_of(&ss, "0.0.0.0:8080");
    let tool_version = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    serde_json::json!({
        "container": {
            "name": podman.name(),
            "id": podman.id(),
            "address": podman.address().to_string(),
            "published": "0.0.0.0:8080 -> 80/tcp",
        },
        "server_namespace_addresses": [SERVER.to_string(), SERVER_V6.to_string()],
        "conmon_pid": conmon,
        "httpd_pid": podman.container_pid(),
        "host_side_8080_holder": holder,
        "netavark_firewall": netavark_firewall(out),
        "versions": {
            "kernel": tool_version(&["uname", "-r"]),
            "podman": tool_version(&["podman", "--version"]),
            "netavark": netavark_version(),
            "conmon": tool_version(&["conmon", "--version"]).lines().next().unwrap_or("").to_string(),
            "runc": tool_version(&["runc", "--version"]).lines().next().unwrap_or("").to_string(),
            "nft": tool_version(&["nft", "--version"]),
            "iptables": tool_version(&["iptables", "--version"]),
        },
    })
}

fn netavark_version() -> String {
    ["/usr/lib/podman/netavark", "/usr/libexec/podman/netavark"]
        .iter()
        .find_map(|path| Command::new(path).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn capture_rulesets(lab: &Lab, out: &Path) {
    for (file, args) in RULESET_DUMPS {
        write(&out.join(file), &lab.server_stdout(args));
    }
}

/// The process ss names as holding `local` (`users:(("conmon",pid=9913,fd=5))`): name and pid.
fn holder_of(ss: &str, local: &str) -> Value {
    let line = ss
        .lines()
        .find(|line| line.split_whitespace().nth(3) == Some(local))
        .unwrap_or_else(|| panic!("no listener on {local} in\n{ss}"));
    let users = line
        .split_once("users:((\"")
        .unwrap_or_else(|| panic!("no process named in {line}"))
        .1;
    let (name, rest) = users.split_once('"').expect("a quoted process name");
    let pid = rest
        .split_once("pid=")
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|pid| pid.parse::<u64>().ok())
        .expect("pid= after the name");
    serde_json::json!({ "name": name, "pid": pid })
}

/// Which firewall tool netavark wrote its rules with, from where its chains are.
fn netavark_firewall(out: &Path) -> &'static str {
    let has = |file: &str, needle: &str| {
        std::fs::read_to_string(out.join(file)).is_ok_and(|text| text.contains(needle))
    };
    if has("iptables-legacy-save.txt", "NETAVARK") {
        "iptables-legacy"
    } else if has("iptables-nft-save.txt", "NETAVARK") {
        "iptables-nft"
    } else if has("nft.txt", "table inet netavark") {
        "nftables"
    } else {
        "none found"
    }
}

/// One reachability probe from the client namespace, as recorded in ground-truth.json.
fn probe(lab: &Lab, source: IpAddr, to: SocketAddr) -> Value {
    serde_json::json!({
        "from": source.to_string(),
        "to": to.to_string(),
        "connects": lab.connects(source, to),
        "http_index_page": lab.http_get(source, to).is_some_and(|page| page.contains(INDEX_MARKER)),
    })
}

// ----- self-tests -----

pub const DROP_5000_NFT: &str = "table inet pstest {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 5000 drop
    }
}
";

pub const ONLY_FROM_OTHER_CLIENT_NFT: &str = "table inet pstest {
    chain input {
        type filter hook input priority 0; policy drop;
        ip saddr 10.231.0.3 accept
    }
}
";

/// Drops every new inbound connection that is delivered locally; forwarded ones (a published
/// port, after its DNAT) never meet it.
pub const INPUT_POLICY_DROP_NFT: &str = "table inet pstest {
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        iif lo accept
    }
}
";

/// Drops what is forwarded to port 80 on podman's default network: a published port's traffic
/// after its DNAT.
pub const FORWARD_TO_CONTAINERS_DROP_NFT: &str = "table inet pstest {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr 10.88.0.0/16 tcp dport 80 drop
    }
}
";

pub const DROP_5000_IPTABLES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 5000 -j DROP
COMMIT
";

pub const ONLY_FROM_OTHER_CLIENT_IPTABLES: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 10.231.0.3/32 -j ACCEPT
COMMIT
";

#[test]
#[ignore = "needs root"]
fn root_lab_a_listener_is_reachable_with_no_firewall() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let web = lab.listen(Proto::Tcp, "[::]:5000".parse().expect("address"));
    let dns = lab.listen(Proto::Udp, addr(SERVER, 5353));
    assert!(lab.connects(CLIENT, addr(SERVER, 5000)));
    assert!(lab.connects(OTHER_CLIENT, addr(SERVER, 5000)));
    assert!(lab.connects(CLIENT_V6, addr(SERVER_V6, 5000)));
    // No listener: refused, so connects can say no.
    assert!(!lab.connects(CLIENT, addr(SERVER, 5001)));

    // portstat sees the lab's sockets through the path it is given.
    let document = json_from(&mut lab.portstat(&["-l", "--json"]));
    assert_eq!(
        with_local_port(&document, web.port()).len(),
        1,
        "{document:#}"
    );
    assert_eq!(
        with_local_port(&document, dns.port()).len(),
        1,
        "{document:#}"
    );
    assert_eq!(sockets(&document).len(), 2, "{document:#}");
}

#[test]
#[ignore = "needs root"]
fn root_lab_an_nft_drop_makes_a_listener_unreachable() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    let _other = lab.listen(Proto::Tcp, addr(SERVER, 5001));
    lab.nft(DROP_5000_NFT);
    let started = Instant::now();
    assert!(!lab.connects(CLIENT, addr(SERVER, 5000)));
    // A drop goes unanswered: the connect waited out its timeout (poll's rounding makes it a
    // little short), it was not refused (well under a millisecond).
    assert!(started.elapsed() >= CONNECT_TIMEOUT * 3 / 4);
    assert!(lab.connects(CLIENT, addr(SERVER, 5001)));
    assert!(
        lab.server_stdout(&["nft", "list", "ruleset"])
            .contains("tcp dport 5000 drop")
    );
}

#[test]
#[ignore = "needs root"]
fn root_lab_nft_accept_from_one_source_under_policy_drop() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(ONLY_FROM_OTHER_CLIENT_NFT);
    assert!(lab.connects(OTHER_CLIENT, addr(SERVER, 5000)));
    assert!(!lab.connects(CLIENT, addr(SERVER, 5000)));
}

/// The iptables variants: `legacy` picks the backend; the rules must land in that backend's
/// tables only.
fn iptables_variants(legacy: bool) {
    let (save, other_save) = if legacy {
        ("iptables-legacy-save", "iptables-nft-save")
    } else {
        ("iptables-nft-save", "iptables-legacy-save")
    };
    {
        let lab = Lab::new();
        let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
        let _other = lab.listen(Proto::Tcp, addr(SERVER, 5001));
        lab.iptables_restore(DROP_5000_IPTABLES, legacy, false);
        assert!(!lab.connects(CLIENT, addr(SERVER, 5000)));
        assert!(lab.connects(CLIENT, addr(SERVER, 5001)));
        let rules = lab.server_stdout(&[save]);
        assert!(
            rules.contains("-A INPUT -p tcp -m tcp --dport 5000 -j DROP"),
            "{rules}"
        );
        assert!(!lab.server_stdout(&[other_save]).contains("-A INPUT"));
        // nft sees iptables-nft's tables, never legacy's.
        let nft = lab.server_stdout(&["nft", "list", "ruleset"]);
        assert_eq!(nft.contains("table ip filter"), !legacy, "{nft}");
    }
    {
        let lab = Lab::new();
        let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
        lab.iptables_restore(ONLY_FROM_OTHER_CLIENT_IPTABLES, legacy, false);
        assert!(lab.connects(OTHER_CLIENT, addr(SERVER, 5000)));
        assert!(!lab.connects(CLIENT, addr(SERVER, 5000)));
    }
    {
        // ip6tables: IPv6 only; IPv4 to the same dual-stack listener still gets through.
        let lab = Lab::new();
        let _web = lab.listen(Proto::Tcp, "[::]:5000".parse().expect("address"));
        lab.iptables_restore(DROP_5000_IPTABLES, legacy, true);
        assert!(!lab.connects(CLIENT_V6, addr(SERVER_V6, 5000)));
        assert!(lab.connects(CLIENT, addr(SERVER, 5000)));
    }
}

#[test]
#[ignore = "needs root"]
fn root_lab_iptables_nft_drop_and_one_source() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    iptables_variants(false);
}

#[test]
#[ignore = "needs root"]
fn root_lab_iptables_legacy_drop_and_one_source() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    iptables_variants(true);
}

#[test]
#[ignore = "needs root"]
fn root_lab_cleanup_leaves_no_namespace_behind() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let names = [lab.server.clone(), lab.client.clone()];
    let listed = listed_namespaces();
    assert!(
        names.iter().all(|name| listed.contains(name.as_str())),
        "{listed}"
    );
    drop(lab);
    let listed = listed_namespaces();
    assert!(
        names.iter().all(|name| !listed.contains(name.as_str())),
        "{listed}"
    );

    // Also when the test fails halfway.
    let names = std::panic::catch_unwind(|| {
        let lab = Lab::new();
        let names = [lab.server.clone(), lab.client.clone()];
        std::panic::panic_any(names);
    })
    .expect_err("the closure panics")
    .downcast::<[String; 2]>()
    .expect("the names");
    let listed = listed_namespaces();
    assert!(
        names.iter().all(|name| !listed.contains(name.as_str())),
        "{listed}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_lab_podman_publishes_8080() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let root_rules_before = root_namespace_rules();
    let lab = Lab::new();
    let podman = Podman::start(&lab);
    let page = lab
        .http_get(CLIENT, addr(SERVER, 8080))
        .expect("the published port answers");
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    assert!(page.contains(INDEX_MARKER), "{page}");
    // netavark's rules and bridge are in the lab, the container's address on that bridge.
    let rules = lab.server_stdout(&["iptables-nft-save"]);
    let dnat = format!("--to-destination {}:80", podman.address());
    assert!(rules.contains(&dnat), "{rules}");
    assert!(
        lab.server_stdout(&["ip", "-br", "addr"])
            .contains("10.88.0.1/16")
    );
    assert_eq!(root_namespace_rules(), root_rules_before);

    let (conmon, httpd, dir) = (
        podman.conmon_pid(),
        podman.container_pid(),
        podman.dir.clone(),
    );
    assert!(is_alive(conmon) && is_alive(httpd));
    drop(podman);
    assert!(!is_alive(conmon) && !is_alive(httpd));
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert_eq!(root_namespace_rules(), root_rules_before);
}

#[test]
#[ignore = "needs root"]
fn root_lab_docker_publishes_8080_and_cleans_up() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let root_before = root_namespace_state();
    let global_before = docker_global_paths();
    for userland_proxy in [true, false] {
        let lab = Lab::new();
        let docker = Docker::start(&lab, userland_proxy);
        let page = lab
            .http_get(CLIENT, addr(SERVER, 8080))
            .expect("the published port answers");
        assert!(page.contains(INDEX_MARKER), "{page}");
        // docker's rules, docker0 and the container's address are in the lab.
        let rules = lab.server_stdout(&["iptables-nft-save"]);
        let dnat = format!("--to-destination {}:80", docker.address());
        assert!(rules.contains(&dnat), "{rules}");
        assert!(
            lab.server_stdout(&["ip", "-br", "addr"])
                .contains("172.17.0.1/16")
        );
        // Who holds the host side: docker-proxy, or dockerd itself without it.
        let ss = lab.server_stdout(&["ss", "-tlnp"]);
        let holder = holder_of(&ss, "0.0.0.0:8080");
        if userland_proxy {
            assert_eq!(holder["name"], "docker-proxy", "{ss}");
            assert_eq!(docker.proxy_pids().len(), 2, "0.0.0.0 and [::]");
        } else {
            assert_eq!(holder["name"], "dockerd", "{ss}");
            assert_eq!(holder["pid"], u64::from(docker.dockerd_pid()), "{ss}");
            assert!(docker.proxy_pids().is_empty());
        }
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", docker.container_pid()))
            .expect("the container's cgroup");
        assert!(
            cgroup.contains(&format!("/pstest-docker-{}-", std::process::id())),
            "{cgroup}"
        );
        assert_eq!(root_namespace_state(), root_before);

        let pids = [
            docker.dockerd_pid(),
            docker.containerd_pid(),
            docker.shim_pid(),
            docker.container_pid(),
        ];
        assert!(pids.iter().all(|&pid| is_alive(pid)), "{pids:?}");
        let dir = docker.dir().to_path_buf();
        let parent = format!(
            "/sys/fs/cgroup/memory/{}",
            dir.file_name().expect("a name").to_string_lossy()
        );
        drop(docker);
        assert!(pids.iter().all(|&pid| !is_alive(pid)), "{pids:?}");
        assert_eq!(docker_processes_left(&dir), Vec::<u32>::new());
        assert!(!dir.exists(), "{} is left behind", dir.display());
        assert!(!Path::new(&parent).exists(), "{parent} is left behind");
        assert_eq!(root_namespace_state(), root_before);
        assert_eq!(docker_global_paths(), global_before);
    }
}

/// The root namespace's firewall and links, to show the lab left them alone.
fn root_namespace_state() -> String {
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("run ip link");
    format!(
        "{}{}",
        root_namespace_rules(),
        String::from_utf8_lossy(&links.stdout)
    )
}

/// What is in the places dockerd keeps things by default (/etc/docker, /run/docker,
/// /run/containerd, /var/lib/docker, /var/lib/containerd), with modification times.
fn docker_global_paths() -> String {
    let output = Command::new("find")
        .args([
            "/etc/docker",
            "/run/docker",
            "/run/containerd",
            "/var/lib/docker",
            "/var/lib/containerd",
            "/var/run/docker.pid",
            "/var/run/docker.sock",
            "-printf",
            "%p %T@\\n",
        ])
        .stderr(Stdio::null())
        .output()
        .expect("run find");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The root namespace's firewall, to show the lab left it alone.
fn root_namespace_rules() -> String {
    let mut all = String::new();
    for args in [&["nft", "list", "ruleset"][..], &["iptables-legacy-save"]] {
        let output = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("run");
        // Timestamps and counters change by themselves.
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if !line.starts_with('#') && !line.contains("counter packets") {
                all.push_str(line);
                all.push('\n');
            }
        }
    }
    all
}

/// Records fixtures/firewall/podman/ when PORTSTAT_RECORD_PODMAN_FIXTURES is set (see its
/// README.md); otherwise records into a temporary directory, and either way checks that the
/// capture holds what the fixtures claim.
#[test]
#[ignore = "needs root"]
fn root_lab_podman_capture() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let scratch = tempfile::tempdir().expect("temporary directory");
    let out = if std::env::var_os("PORTSTAT_RECORD_PODMAN_FIXTURES").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/firewall/podman")
    } else {
        scratch.path().to_path_buf()
    };
    let lab = Lab::new();
    let podman = Podman::start(&lab);
    let published = addr(SERVER, 8080);

    let mut summary = capture(&lab, &podman, &out);
    summary["ground_truth"] = serde_json::json!([probe(&lab, CLIENT, published)]);

    // An input chain that drops everything new: the published port is forwarded, not
    // delivered, so it stays reachable while a plain listener is not.
    let plain = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(INPUT_POLICY_DROP_NFT);
    let input_drop = out.join("input-drop");
    std::fs::create_dir_all(&input_drop).expect("create input-drop");
    capture_rulesets(&lab, &input_drop);
    write(
        &input_drop.join("ss-tlnpe.txt"),
        &lab.server_stdout(&["ss", "-tlnpe"]),
    );
    let input_truth = serde_json::json!([
        probe(&lab, CLIENT, published),
        probe(&lab, CLIENT, addr(SERVER, plain.port())),
    ]);
    write_json(&input_drop.join("ground-truth.json"), &input_truth);

    // A forward chain that drops the container's traffic: the host-side socket is still
    // there, but nothing gets through to it or past it.
    lab.nft("delete table inet pstest\n");
    lab.nft(FORWARD_TO_CONTAINERS_DROP_NFT);
    let forward_drop = out.join("forward-drop");
    std::fs::create_dir_all(&forward_drop).expect("create forward-drop");
    capture_rulesets(&lab, &forward_drop);
    let forward_truth = serde_json::json!([
        probe(&lab, CLIENT, published),
        probe(&lab, CLIENT, addr(SERVER, plain.port())),
    ]);
    write_json(&forward_drop.join("ground-truth.json"), &forward_truth);
    write_json(&out.join("capture.json"), &summary);

    assert_eq!(summary["host_side_8080_holder"]["name"], "conmon");
    assert_eq!(
        summary["host_side_8080_holder"]["pid"],
        u64::from(podman.conmon_pid())
    );
    assert_ne!(summary["netavark_firewall"], "none found");
    assert_eq!(summary["ground_truth"][0]["http_index_page"], true);
    assert_eq!(input_truth[0]["http_index_page"], true, "{input_truth:#}");
    assert_eq!(input_truth[1]["connects"], false, "{input_truth:#}");
    assert_eq!(forward_truth[0]["connects"], false, "{forward_truth:#}");
    assert_eq!(forward_truth[1]["connects"], true, "{forward_truth:#}");
    let cmdline = std::fs::read(out.join("conmon.cmdline")).expect("conmon.cmdline");
    let name_argument = format!("\0-n\0{}\0", podman.name());
    assert!(
        cmdline
            .windows(name_argument.len())
            .any(|w| w == name_argument.as_bytes()),
        "conmon is told the container's name"
    );
    let inspect: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("podman-inspect.json")).expect("inspect"),
    )
    .expect("inspect is JSON");
    assert_eq!(inspect[0]["Name"], podman.name());
    for file in [
        "nft.json",
        "iptables-nft-save.txt",
        "ss-tlnpe.txt",
        "httpd.cgroup",
    ] {
        let text = std::fs::read_to_string(out.join(file)).expect("captured file");
        assert!(!text.trim().is_empty(), "{file} is empty");
    }
}

fn write_json(path: &Path, value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON");
    write(path, &format!("{text}\n"));
}
