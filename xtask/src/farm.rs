//! A socket farm for benchmarks: opens a chosen number of real sockets on loopback, spread over
//! several processes, and holds them until a bounded time passes or stdin closes.
//!
//! ```sh
//! cargo xtask farm --sockets 10000 [--seconds 120] [--workers W] [--netns]
//! ```
//!
//! The sockets, counted as rows of the kernel's tables (`ss -tuan`), add up to `--sockets`:
//!
//! | share | what                                                                          |
//! |-------|-------------------------------------------------------------------------------|
//! | ~1%   | TCP listeners on 127.0.0.1..127.0.0.50 and `::1` (at least two per worker)    |
//! | 60%   | established pairs, both ends held open (two rows each)                        |
//! | 10%   | CLOSE_WAIT/FIN_WAIT2 pairs: the client closed, the server keeps its fd        |
//! | 15%   | TIME_WAIT: the client closed first, then the server; no fd is kept            |
//! | ~14%  | UDP sockets, bound, every third connected to another farm socket              |
//!
//! About a fifth of everything is IPv6 (`::1`), the rest IPv4 on 127.0.0.0/8. TIME_WAIT and
//! FIN_WAIT2 last 60 s (`net.ipv4.tcp_fin_timeout`), so they are opened last.
//!
//! The master re-executes itself (`xtask farm-worker ...`, a hidden task) as W workers (default: enough that each holds at most ~15000
//! descriptors; each raises its soft `RLIMIT_NOFILE` to the hard limit), waits until all of them
//! are ready and prints one line, `ready <port> <master-pid>`, on stdout: `<port>` is a TCP
//! listener on 127.0.0.1 held by the last worker alone (the port of targeted queries). It then
//! holds everything until `--seconds` (default 120) pass or its stdin closes, and exits. Workers
//! die with the master (`PR_SET_PDEATHSIG`, and their stdin is a pipe from it); held sockets
//! close with a reset, so the farm leaves neither processes nor TIME_WAIT behind.
//!
//! With `--netns` (root only) the master first enters a private network namespace, brings `lo`
//! up and widens `net.ipv4.ip_local_port_range` to `1024 65535` there, so only the farm's
//! sockets exist in it; the workers inherit it. Only loopback traffic ever happens.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, Stdio};

use clap::Args;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Descriptors one worker should hold at most.
const FDS_PER_WORKER: u64 = 15_000;

/// How long setup may take on top of `--seconds` before the farm gives up (SIGALRM).
const SETUP_ALLOWANCE_SECS: u64 = 300;

/// Distinct IPv4 loopback addresses used (127.0.0.1 ..= 127.0.0.N).
const V4_ADDRESSES: u32 = 50;

/// `cargo xtask farm`: N real loopback sockets held by a few processes.
#[derive(Args, Debug)]
pub struct FarmArgs {
    /// Table rows to make (as `ss -tuan` counts them)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub sockets: u64,
    /// Hold the sockets this long, unless stdin closes first
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// Worker processes (default: enough for ~15000 descriptors each, at least 2)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub workers: Option<u64>,
    /// Enter a private network namespace first (root only)
    #[arg(long)]
    pub netns: bool,
}

/// `farm-worker INDEX SHARE MASTER_PID SECONDS`: one of the farm's workers (the master starts
/// them; not for use by hand).
#[derive(Args, Debug)]
pub struct WorkerArgs {
    pub index: u64,
    pub share: u64,
    pub master: u64,
    pub seconds: u64,
}

/// Runs the farm's master; the exit status says whether every worker got ready.
pub fn run(args: &FarmArgs) -> ExitCode {
    match master(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("farm: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Master

fn master(options: &FarmArgs) -> Result<(), String> {
    // A backstop: whatever happens, the master (and with it every worker) ends.
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm((options.seconds + SETUP_ALLOWANCE_SECS) as u32) };
    if options.netns {
        enter_private_netns().map_err(|error| format!("--netns: {error}"))?;
    }
    let hard = raise_nofile();
    let budget = FDS_PER_WORKER.min(hard.saturating_sub(200)).max(100);
    let sockets = options.sockets as usize;
    let needed = Plan::for_share(sockets).fds() as u64;
    let workers = options
        .workers
        .map_or_else(|| (needed.div_ceil(budget) as usize).max(2), |w| w as usize)
        .min(sockets.div_ceil(2).max(1));

    let started = Instant::now();
    let master_pid = std::process::id();
    let exe = std::env::current_exe().map_err(|error| format!("own executable: {error}"))?;
    let mut children: Vec<Child> = Vec::new();
    let mut plans = Vec::new();
    for index in 0..workers {
        let share = sockets / workers + usize::from(index < sockets % workers);
        plans.push(Plan::for_share(share));
        let mut command = Command::new(&exe);
        command
            .args(["farm-worker", &index.to_string(), &share.to_string()])
            .arg(master_pid.to_string())
            .arg((options.seconds + SETUP_ALLOWANCE_SECS).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        match command.spawn() {
            Ok(child) => children.push(child),
            Err(error) => {
                stop(&mut children);
                return Err(format!("spawn worker {index}: {error}"));
            }
        }
    }

    let mut port = 0;
    let mut port_owner = 0;
    for (index, child) in children.iter_mut().enumerate() {
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let read = BufReader::new(stdout).read_line(&mut line);
        let mut fields = line.split_whitespace();
        match (read, fields.next()) {
            (Ok(_), Some("ready")) => {
                port = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
                port_owner = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
            }
            _ => {
                stop(&mut children);
                return Err(format!("worker {index} failed: {}", line.trim()));
            }
        }
    }
    let total = plans
        .iter()
        .fold(Plan::default(), |sum, plan| sum.add(plan));
    let (rows, states) = kernel_rows();
    eprintln!(
        "farm: {} workers opened {} sockets in {:.1} s ({} listeners, {} established \
         pairs, {} CLOSE_WAIT/FIN_WAIT2 pairs, {} TIME_WAIT, {} UDP); the kernel tables hold {} \
         rows: {}; port {} is held by pid {}",
        workers,
        total.rows(),
        started.elapsed().as_secs_f64(),
        total.listeners,
        total.established_pairs,
        total.close_wait_pairs,
        total.time_wait,
        total.udp,
        rows,
        states
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        port,
        port_owner,
    );
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "ready {port} {master_pid}");
    let _ = stdout.flush();
    drop(stdout);

    // Hold until the time is up or stdin closes.
    let (closed, stdin_closed) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = stdin_closed.recv_timeout(Duration::from_secs(options.seconds));
    stop(&mut children);
    Ok(())
}

/// Kills and reaps every worker.
fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        let _ = child.kill();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

/// Rows of this namespace's kernel tables, by protocol and state.
fn kernel_rows() -> (usize, BTreeMap<String, usize>) {
    let mut states = BTreeMap::new();
    let mut rows = 0;
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        let proto = table.trim_end_matches('6');
        for line in text.lines().skip(1) {
            let Some(state) = line.split_whitespace().nth(3) else {
                continue;
            };
            let name = match (proto, state) {
                ("udp", "07") => "UNCONN",
                (_, "01") => "ESTAB",
                (_, "02") => "SYN-SENT",
                (_, "03") => "SYN-RECV",
                (_, "04") => "FIN-WAIT-1",
                (_, "05") => "FIN-WAIT-2",
                (_, "06") => "TIME-WAIT",
                (_, "07") => "CLOSE",
                (_, "08") => "CLOSE-WAIT",
                (_, "09") => "LAST-ACK",
                (_, "0A") => "LISTEN",
                (_, "0B") => "CLOSING",
                _ => "other",
            };
            rows += 1;
            *states.entry(format!("{proto} {name}")).or_insert(0) += 1;
        }
    }
    (rows, states)
}

/// Enters a new network namespace with `lo` up and a wide ephemeral port range.
fn enter_private_netns() -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(io::Error::other("a private network namespace needs root"));
    }
    // SAFETY: the master is single-threaded here; unshare only changes its own namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    loopback_up()?;
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535\n")
}

/// `ip link set lo up`, without needing `ip`.
pub fn loopback_up() -> io::Result<()> {
    // Any socket will do for the interface ioctls; binding to port 0 needs no interface.
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    let fd = socket.as_raw_fd();
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: a valid socket fd and a properly initialised ifreq naming "lo".
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft descriptor limit to the hard one; returns the hard limit.
fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_max
}

// ---------------------------------------------------------------------------------------------
// Workers

/// How many sockets of each kind one worker opens for a share of `n` table rows.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    listeners: usize,
    established_pairs: usize,
    close_wait_pairs: usize,
    time_wait: usize,
    udp: usize,
}

impl Plan {
    fn for_share(n: usize) -> Plan {
        let share = |fraction: f64| (n as f64 * fraction) as usize;
        let listeners = share(0.01).max(2).min(n);
        let mut rest = n - listeners;
        let established_pairs = share(0.30).min(rest / 2);
        rest -= 2 * established_pairs;
        let close_wait_pairs = share(0.05).min(rest / 2);
        rest -= 2 * close_wait_pairs;
        let time_wait = ((n as f64 * 0.15).round() as usize).min(rest);
        rest -= time_wait;
        Plan {
            listeners,
            established_pairs,
            close_wait_pairs,
            time_wait,
            udp: rest,
        }
    }

    fn rows(&self) -> usize {
        self.listeners
            + 2 * self.established_pairs
            + 2 * self.close_wait_pairs
            + self.time_wait
            + self.udp
    }

    /// Descriptors held once everything is open.
    fn fds(&self) -> usize {
        self.listeners + 2 * self.established_pairs + self.close_wait_pairs + self.udp
    }

    fn add(&self, other: &Plan) -> Plan {
        Plan {
            listeners: self.listeners + other.listeners,
            established_pairs: self.established_pairs + other.established_pairs,
            close_wait_pairs: self.close_wait_pairs + other.close_wait_pairs,
            time_wait: self.time_wait + other.time_wait,
            udp: self.udp + other.udp,
        }
    }
}

/// Everything one worker holds open.
#[allow(dead_code)] // held for their descriptors only
struct Held {
    listeners: Vec<TcpListener>,
    streams: Vec<TcpStream>,
    udp: Vec<UdpSocket>,
}

/// `farm-worker INDEX SHARE MASTER_PID SECONDS`: opens its share, says `ready <port> <pid>`,
/// holds until stdin closes.
pub fn worker(args: &WorkerArgs) -> ExitCode {
    let WorkerArgs {
        index,
        share,
        master,
        seconds,
    } = *args;
    // SAFETY: alarm and getppid have no preconditions.
    unsafe {
        libc::alarm(seconds as u32);
        // The master may have died before PR_SET_PDEATHSIG took effect.
        if libc::getppid() as u64 != master {
            return ExitCode::FAILURE;
        }
    }
    let limit = raise_nofile();
    let plan = Plan::for_share(share as usize);
    let mut stdout = io::stdout().lock();
    if plan.fds() as u64 + 64 > limit {
        let _ = writeln!(
            stdout,
            "error worker {index} needs {} descriptors, the limit is {limit}: use more --workers",
            plan.fds() + 64
        );
        return ExitCode::FAILURE;
    }
    let held = match open(index as u32, &plan) {
        Ok(held) => held,
        Err(error) => {
            let _ = writeln!(stdout, "error worker {index}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let port = held.listeners[0].local_addr().map_or(0, |a| a.port());
    let _ = writeln!(stdout, "ready {port} {}", std::process::id());
    let _ = stdout.flush();
    drop(stdout);
    let mut sink = [0u8; 256];
    let mut stdin = io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    // Exit at once: the kernel closes everything (with resets, see `reset_on_close`).
    std::process::exit(0)
}

fn v4(index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::LOCALHOST) + index % V4_ADDRESSES,
    ))
}

fn open(worker: u32, plan: &Plan) -> io::Result<Held> {
    let context = |what: String| move |error: io::Error| io::Error::new(error.kind(), what);
    let mut held = Held {
        listeners: Vec::with_capacity(plan.listeners),
        streams: Vec::with_capacity(2 * plan.established_pairs + plan.close_wait_pairs),
        udp: Vec::with_capacity(plan.udp),
    };

    // Listeners: the first on 127.0.0.1 (the targeted port when this is the last worker),
    // one in five on ::1, the others over 127.0.0.2..=127.0.0.50.
    let mut addresses = Vec::with_capacity(plan.listeners);
    for i in 0..plan.listeners as u32 {
        let ip = match i {
            0 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            i if i % 5 == 1 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            i => v4(i + worker * 7),
        };
        let listener = TcpListener::bind((ip, 0)).map_err(context(format!("listen on {ip}")))?;
        addresses.push(listener.local_addr()?);
        held.listeners.push(listener);
    }

    // UDP: one in five on ::1; every third connected to the previous socket of its family.
    let mut last: [Option<SocketAddr>; 2] = [None, None];
    for j in 0..plan.udp as u32 {
        let (ip, family) = if j % 5 == 4 {
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 1)
        } else {
            (v4(j + worker * 13), 0)
        };
        let socket = UdpSocket::bind((ip, 0)).map_err(context(format!("udp bind on {ip}")))?;
        if j % 3 == 2
            && let Some(peer) = last[family]
        {
            socket.connect(peer)?;
        }
        last[family] = Some(socket.local_addr()?);
        held.udp.push(socket);
    }

    let mut next = 0usize;
    let mut connect = |held: &Held| -> io::Result<(TcpStream, TcpStream)> {
        let listener = next % held.listeners.len();
        next += 1;
        let address = addresses[listener];
        let client =
            TcpStream::connect(address).map_err(context(format!("connect to {address}")))?;
        let (server, _) = held.listeners[listener].accept()?;
        Ok((client, server))
    };

    for _ in 0..plan.established_pairs {
        let (client, server) = connect(&held)?;
        reset_on_close(&client);
        reset_on_close(&server);
        held.streams.push(client);
        held.streams.push(server);
    }
    // The states that expire (60 s) come last, so they are the freshest when the farm is ready.
    for _ in 0..plan.close_wait_pairs {
        let (client, mut server) = connect(&held)?;
        drop(client); // FIN_WAIT2, no descriptor
        wait_for_eof(&mut server)?; // CLOSE_WAIT, kept
        reset_on_close(&server);
        held.streams.push(server);
    }
    for _ in 0..plan.time_wait {
        let (client, mut server) = connect(&held)?;
        drop(client);
        // The server has seen the client's FIN before it closes: the client ends in TIME_WAIT,
        // the server passes through LAST_ACK to nothing.
        wait_for_eof(&mut server)?;
        drop(server);
    }
    Ok(held)
}

fn wait_for_eof(stream: &mut TcpStream) -> io::Result<()> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte)? {
        0 => Ok(()),
        _ => Err(io::Error::other("unexpected data on a farm connection")),
    }
}

/// SO_LINGER 0: when the farm exits, its connections end with a reset instead of a FIN, so they
/// leave no TIME_WAIT behind.
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a pointer to a linger of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
