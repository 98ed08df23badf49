//! The benchmark: portstat against `ss` (and `netstat`, `lsof` where installed) on a socket farm
//! of ~50, 1k, 10k and 100k sockets, side by side in the same run. Writes BENCHMARKS.md.
//!
//! ```sh
//! cargo xtask bench            # as root
//! cargo xtask bench --scales 1k,10k --runs 5 --out /tmp/b.md
//! ```
//!
//! Options: `--scales small,1k,10k,100k` (any of them, or a number of sockets), `--runs R`
//! (timed runs per command, default 10; 30 at the small scale), `--slow-runs S` (netstat and
//! lsof, default 3), `--session-secs T` (default 50), `--portstat PATH` (a portstat binary built
//! elsewhere; nothing is built then), `--no-build`, `--profile P` (the cargo profile built and
//! measured, default `release`; `dist` is what packages ship), `--verbose` (every run on stderr), `--out
//! PATH` (default BENCHMARKS.md at the repository root).
//!
//! How: it first builds `target/<profile>/portstat` (`cargo build --profile P`; cargo rebuilds
//! it only when it is outdated). The socket farm is this very executable, run as `xtask farm`
//! (`crate::farm`). For each scale it enters a fresh private network namespace (loopback only,
//! `lo` up, ephemeral ports 1024-65535), starts the farm there and waits for `ready <port>`, so
//! the farm's sockets are the only
//! ones that `ss`, portstat, netstat and lsof see. It counts them with `ss -tuan`, runs every
//! command once untimed (a warm-up that also checks that it exits 0; `portstat who P` exiting with
//! status 2, a usage error, is "not available"), then times rounds of every command, each round
//! starting at the next command so drift hits all alike. Every command runs through the
//! measurer (`crate::measure`, compiled on the spot with `rustc -C opt-level=3` into a temporary
//! directory): a small process that forks, execs the command and reaps it with `wait4`, and
//! reports the wall time from exec to reap and `ru_maxrss`. A child's peak RSS starts at the size
//! of the process it was forked from, and this (debug-built) xtask is several MiB, so xtask must
//! not fork the commands itself. stdout goes to /dev/null. `true` through the same path is the
//! floor the report gives.
//!
//! At 10k sockets and more, the first farm session also times `portstat top`'s answers to keys
//! while it refreshes, on a pseudo-terminal (`crate::top_keys`): a row of the Targets table.
//!
//! TIME_WAIT and FIN_WAIT2 last 60 s: when the next round would end more than `--session-secs`
//! after the farm was ready, the farm is stopped and a new one started in a new namespace (one
//! untimed `ss -tuanp` first, to warm the kernel's caches for the new processes).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use crate::probe_cost::ProbeCost;

const CHANGES_HEADING: &str = "## What each change bought";

/// `top`'s keys are timed from this scale up (where a refresh takes long enough to matter).
const TOP_KEYS_FROM: usize = 10_000;
/// How many keys are timed.
const TOP_KEY_PRESSES: usize = 20;

/// `cargo xtask bench`: portstat against ss, netstat and lsof; writes BENCHMARKS.md.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scales to run: `small` (50 sockets), `1k`, `10k`, `100k`, any `Nk` or a number of sockets
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_scale,
        default_value = "small,1k,10k,100k"
    )]
    pub scales: Vec<Scale>,
    /// Timed runs per command (at least 30 at the small scale)
    #[arg(long, default_value_t = 10, value_parser = positive)]
    pub runs: usize,
    /// Timed runs of netstat and lsof
    #[arg(long, default_value_t = 3, value_parser = positive)]
    pub slow_runs: usize,
    /// Restart the farm when a round would end this long after it got ready (TIME_WAIT: 60 s)
    #[arg(long, default_value_t = 50, value_parser = positive)]
    pub session_secs: usize,
    /// The portstat binary to measure (default: target/<profile>/portstat, built first); a binary
    /// given here is not built
    #[arg(long, value_name = "PATH")]
    pub portstat: Option<PathBuf>,
    /// Do not build first
    #[arg(long)]
    pub no_build: bool,
    /// The cargo profile to build and measure (`dist` is what packages ship)
    #[arg(long, default_value = "release")]
    pub profile: String,
    /// Every run on stderr
    #[arg(long)]
    pub verbose: bool,
    /// Where the report goes (default: BENCHMARKS.md at the repository root)
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// A scale as named on the command line, and its number of sockets.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub name: String,
    pub sockets: usize,
}

fn parse_scale(name: &str) -> Result<Scale, String> {
    scale_sockets(name)
        .map(|sockets| Scale {
            name: name.to_string(),
            sockets,
        })
        .ok_or_else(|| format!("unknown scale {name:?} (small, 1k, 10k, 100k, Nk or N)"))
}

fn positive(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("not a positive number: {text}"))
}

struct Options {
    scales: Vec<(String, usize)>,
    runs: usize,
    slow_runs: usize,
    session: Duration,
    portstat: Option<PathBuf>,
    build: bool,
    profile: String,
    out: PathBuf,
    verbose: bool,
    /// The arguments as given, for the command line in the report.
    args: Vec<String>,
}

impl Options {
    fn new(args: &BenchArgs, raw: Vec<String>) -> Options {
        Options {
            scales: args
                .scales
                .iter()
                .map(|scale| (scale.name.clone(), scale.sockets))
                .collect(),
            runs: args.runs,
            slow_runs: args.slow_runs,
            session: Duration::from_secs(args.session_secs as u64),
            portstat: args.portstat.clone(),
            build: !args.no_build && args.portstat.is_none(),
            profile: args.profile.clone(),
            out: args
                .out
                .clone()
                .unwrap_or_else(|| crate::repo_root().join("BENCHMARKS.md")),
            verbose: args.verbose,
            args: raw,
        }
    }
}

/// Runs the benchmark; `raw` are its arguments as given (they go into the report).
pub fn run(args: &BenchArgs, raw: Vec<String>) -> ExitCode {
    let options = Options::new(args, raw);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "bench: needs root: it runs the socket farm in a private network namespace \
             (unshare CLONE_NEWNET) so only the farm's sockets are counted, and it needs to see \
             every process's descriptors, as `ss -p` and portstat do. Run it with sudo."
        );
        return ExitCode::FAILURE;
    }
    match bench(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn scale_sockets(name: &str) -> Option<usize> {
    match name {
        "small" => Some(50),
        _ => match name.strip_suffix('k') {
            Some(k) => k.parse::<usize>().ok().map(|k| k * 1000),
            None => name.parse().ok(),
        }
        .filter(|n| *n > 0),
    }
}

// ---------------------------------------------------------------------------------------------
// The commands

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Portstat,
    Ss,
    Netstat,
    Lsof,
}

struct Spec {
    label: &'static str,
    tool: Tool,
    /// Arguments; `{P}` stands for the farm's listener port, `{S}` for a snapshot of the farm
    /// (`portstat -a -n --json`, taken once per session, untimed).
    args: &'static [&'static str],
    /// The `ss` command this one is compared with.
    counterpart: Option<&'static str>,
    /// Exit status 2 means "this subcommand does not exist yet".
    may_be_missing: bool,
    /// Exit status 1 is a fine answer too.
    one_is_ok: bool,
}

const SPECS: &[Spec] = &[
    Spec {
        label: "portstat -a -n --json",
        tool: Tool::Portstat,
        args: &["-a", "-n", "--json"],
        counterpart: Some("ss -tuanp"),
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "portstat -a -i --json",
        tool: Tool::Portstat,
        args: &["-a", "-i", "--json"],
        counterpart: Some("ss -tuanpi"),
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "portstat -l",
        tool: Tool::Portstat,
        args: &["-l"],
        counterpart: Some("ss -tlnp"),
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "portstat -l --port P",
        tool: Tool::Portstat,
        args: &["-l", "--port", "{P}"],
        counterpart: Some("ss -tlnp 'sport = :P'"),
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "portstat who P",
        tool: Tool::Portstat,
        args: &["who", "{P}"],
        counterpart: Some("ss -tlnp 'sport = :P'"),
        may_be_missing: true,
        one_is_ok: true,
    },
    Spec {
        label: "portstat audit --input S",
        tool: Tool::Portstat,
        args: &["audit", "--input", "{S}", "--json"],
        counterpart: Some("portstat -a -n --json"),
        may_be_missing: false,
        one_is_ok: true,
    },
    Spec {
        label: "portstat metrics",
        tool: Tool::Portstat,
        args: &["metrics"],
        counterpart: Some("ss -tuanp"),
        may_be_missing: true,
        one_is_ok: false,
    },
    // One refresh of `top` (every socket read as `-a` reads them, the view built, sorted and
    // drawn into a 160x50 screen), without a terminal.
    Spec {
        label: "portstat top --once",
        tool: Tool::Portstat,
        args: &["top", "--once"],
        counterpart: Some("ss -tuanp"),
        may_be_missing: true,
        one_is_ok: false,
    },
    Spec {
        label: "ss -tuanp",
        tool: Tool::Ss,
        args: &["-tuanp"],
        counterpart: None,
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "ss -tuanpi",
        tool: Tool::Ss,
        args: &["-tuanpi"],
        counterpart: None,
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "ss -tuan",
        tool: Tool::Ss,
        args: &["-tuan"],
        counterpart: None,
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "ss -tlnp",
        tool: Tool::Ss,
        args: &["-tlnp"],
        counterpart: None,
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "ss -tlnp 'sport = :P'",
        tool: Tool::Ss,
        args: &["-tlnp", "sport = :{P}"],
        counterpart: None,
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "netstat -tuanp",
        tool: Tool::Netstat,
        args: &["-tuanp"],
        counterpart: Some("ss -tuanp"),
        may_be_missing: false,
        one_is_ok: false,
    },
    Spec {
        label: "lsof -nP -i",
        tool: Tool::Lsof,
        args: &["-nP", "-i"],
        counterpart: Some("ss -tuanp"),
        may_be_missing: false,
        one_is_ok: false,
    },
];

impl Spec {
    fn slow(&self) -> bool {
        matches!(self.tool, Tool::Netstat | Tool::Lsof)
    }

    fn args(&self, port: u16, snapshot: &Path) -> Vec<String> {
        self.args
            .iter()
            .map(|a| {
                a.replace("{P}", &port.to_string())
                    .replace("{S}", &snapshot.to_string_lossy())
            })
            .collect()
    }
}

struct Programs {
    /// The measurer every timed command runs through.
    measure: PathBuf,
    portstat: PathBuf,
    farm: PathBuf,
    ss: PathBuf,
    netstat: Option<PathBuf>,
    lsof: Option<PathBuf>,
}

impl Programs {
    fn of(&self, tool: Tool) -> Option<&Path> {
        match tool {
            Tool::Portstat => Some(&self.portstat),
            Tool::Ss => Some(&self.ss),
            Tool::Netstat => self.netstat.as_deref(),
            Tool::Lsof => self.lsof.as_deref(),
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------------------------
// Measuring

struct Run {
    wall: Duration,
    /// Exit status, or 128 + signal.
    status: i32,
    max_rss_kib: u64,
}

/// Runs `program` through the measurer (`crate::measure`, compiled by [`build_measurer`]), which
/// forks and execs it, reaps it with `wait4` and reports its wall time, status and peak RSS.
/// stdout goes to /dev/null; stderr to `stderr` when given (else /dev/null).
fn measure(
    measurer: &Path,
    program: &Path,
    args: &[String],
    stderr: Option<&File>,
) -> io::Result<Run> {
    let output = Command::new(measurer)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(match stderr {
            Some(file) => Stdio::from(file.try_clone()?),
            None => Stdio::null(),
        })
        .output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    match (output.status.success(), parse_report(&report)) {
        (true, Some(run)) => Ok(run),
        _ => Err(io::Error::other(format!(
            "the measurer failed ({}): {:?}",
            output.status,
            report.trim()
        ))),
    }
}

/// The measurer's line: `wall_ns=N status=S maxrss_kib=K ...`.
fn parse_report(line: &str) -> Option<Run> {
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(Run {
        wall: Duration::from_nanos(field("wall_ns")?),
        status: i32::try_from(field("status")?).ok()?,
        max_rss_kib: field("maxrss_kib")?,
    })
}

/// Compiles the measurer (`xtask/src/measure.rs`, std only) into `dir` with optimisations, with
/// the rustc of the toolchain running this (next to `$CARGO`). A second or so.
fn build_measurer(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("measure.rs");
    let binary = dir.join("measure");
    std::fs::write(&source, include_str!("measure.rs"))
        .map_err(|error| format!("write {}: {error}", source.display()))?;
    let rustc = std::env::var_os("CARGO")
        .map(|cargo| PathBuf::from(cargo).with_file_name("rustc"))
        .filter(|rustc| rustc.is_file())
        .unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--edition", "2024", "--crate-name", "measure"])
        .args([
            "-C",
            "opt-level=3",
            "-C",
            "panic=abort",
            "-C",
            "codegen-units=1",
        ])
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|error| format!("{}: {error}", rustc.display()))?;
    if !output.status.success() {
        return Err(format!(
            "compiling the measurer failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(binary)
}

#[derive(Default)]
enum Availability {
    #[default]
    Available,
    NotInstalled,
    NotAvailable,
    Failed(String),
}

#[derive(Default)]
struct Samples {
    availability: Availability,
    wall_ms: Vec<f64>,
    rss_kib: Vec<u64>,
    /// Longest observed run, to plan rounds.
    longest: Duration,
}

impl Samples {
    fn usable(&self) -> bool {
        matches!(self.availability, Availability::Available)
    }

    fn median(&self) -> Option<f64> {
        quantile(&self.wall_ms, 0.5)
    }
}

/// Linear-interpolated quantile of unsorted samples.
fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    Some(sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64))
}

// ---------------------------------------------------------------------------------------------
// The farm, each in a fresh namespace

struct Farm {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    ready_at: Instant,
}

/// Moves this (single-threaded) process into a new network namespace with `lo` up and a wide
/// ephemeral port range; children started afterwards live there too.
fn enter_private_netns() -> io::Result<()> {
    // SAFETY: the bench never starts threads; unshare only changes its own namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: a valid socket fd and an initialised ifreq naming "lo".
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535\n")
}

impl Farm {
    fn start(program: &Path, sockets: usize, session: Duration) -> Result<Farm, String> {
        enter_private_netns().map_err(|error| format!("private network namespace: {error}"))?;
        let mut command = Command::new(program);
        command
            .arg("farm")
            .args(["--sockets", &sockets.to_string()])
            .args(["--seconds", &(session.as_secs() + 120).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; it runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|error| format!("start {}: {error}", program.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        let port = match (read, line.split_whitespace().collect::<Vec<_>>().as_slice()) {
            (Ok(_), ["ready", port, _]) => port.parse().ok(),
            _ => None,
        };
        let ready_at = Instant::now();
        let mut farm = Farm {
            child,
            stdin,
            port: 0,
            ready_at,
        };
        match port {
            Some(port) => {
                farm.port = port;
                Ok(farm)
            }
            None => {
                farm.stop();
                Err(format!(
                    "the socket farm did not get ready: {:?}",
                    line.trim()
                ))
            }
        }
    }

    /// Closes its stdin (it then kills its workers and exits) and reaps it.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits (at most 3 s) until the CPUs are mostly idle: the previous farm's processes and
/// namespace are torn down asynchronously by the kernel.
fn settle() {
    let busy_and_total = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4)?;
        Some((total - idle, total))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let Some((busy, total)) = busy_and_total() else {
            return;
        };
        std::thread::sleep(Duration::from_millis(200));
        let Some((busy_after, total_after)) = busy_and_total() else {
            return;
        };
        if (busy_after - busy) * 10 <= (total_after - total) {
            return;
        }
    }
}

/// PSI: microseconds in which some task waited for a CPU, since boot.
fn cpu_pressure_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|line| line.starts_with("some"))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Processes on the host and the descriptors they hold.
fn processes_and_descriptors() -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut processes = 0;
    let mut descriptors = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            processes += 1;
            if let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) {
                descriptors += fds.count();
            }
        }
    }
    (processes, descriptors)
}

/// Rows of `ss -tuan` in this namespace, by protocol and state, and how many are IPv6.
#[derive(Default)]
struct Counts {
    total: usize,
    ipv6: usize,
    by_state: BTreeMap<String, usize>,
}

impl Counts {
    fn of(ss: &Path) -> Result<Counts, String> {
        let output = Command::new(ss)
            .arg("-tuanH")
            .stderr(Stdio::null())
            .output()
            .map_err(|error| format!("ss -tuan: {error}"))?;
        let mut counts = Counts::default();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 {
                continue;
            }
            counts.total += 1;
            counts.ipv6 += usize::from(fields[4].starts_with('['));
            *counts
                .by_state
                .entry(format!("{} {}", fields[0], fields[1]))
                .or_insert(0) += 1;
        }
        Ok(counts)
    }

    fn describe(&self) -> String {
        let states: Vec<String> = self
            .by_state
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        format!(
            "{} rows ({}; IPv6 {})",
            self.total,
            states.join(", "),
            self.ipv6
        )
    }

    fn get(&self, state: &str) -> usize {
        self.by_state.get(state).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// One scale

struct ScaleResult {
    name: String,
    sockets: usize,
    samples: Vec<Samples>,
    /// ss counts at the start and the end of each farm session.
    sessions: Vec<(Counts, Counts)>,
    seconds: f64,
    /// Share of the time some task waited for a CPU (PSI `some`), during this scale.
    cpu_pressure: Option<f64>,
    /// Processes and descriptors on the host when the first farm was ready (what `ss -p`,
    /// netstat, lsof and portstat walk).
    walked: (usize, usize),
    /// How fast `top` answers keys while it refreshes (10k sockets and more).
    top_keys: Option<crate::top_keys::TopKeys>,
}

fn run_scale(
    name: &str,
    sockets: usize,
    programs: &Programs,
    options: &Options,
) -> Result<ScaleResult, String> {
    let started = Instant::now();
    let pressure_before = cpu_pressure_total();
    let mut walked = (0, 0);
    let runs = if sockets <= 100 {
        options.runs.max(30)
    } else {
        options.runs
    };
    let slow_runs = options.slow_runs.min(runs);
    let mut samples: Vec<Samples> = SPECS
        .iter()
        .map(|spec| Samples {
            availability: match programs.of(spec.tool) {
                Some(_) => Availability::Available,
                None => Availability::NotInstalled,
            },
            ..Samples::default()
        })
        .collect();
    let stderr_file = tempfile::tempfile().map_err(|error| format!("temporary file: {error}"))?;
    let snapshot_dir = tempfile::tempdir().map_err(|error| format!("temporary dir: {error}"))?;
    let snapshot = snapshot_dir.path().join("snapshot.json");
    let mut sessions = Vec::new();
    let mut top_keys = None;
    let mut round = 0;
    while round < runs {
        settle();
        let mut farm = Farm::start(&programs.farm, sockets, options.session)?;
        let first = sessions.is_empty();
        let counts = Counts::of(&programs.ss)?;
        if first {
            walked = processes_and_descriptors();
        }
        take_snapshot(&programs.portstat, &snapshot)?;
        eprintln!(
            "bench: {name}: farm ready (port {}): {}",
            farm.port,
            counts.describe()
        );
        if first {
            // Warm-up: every command once, untimed; it also says which ones work.
            for (spec, samples) in SPECS.iter().zip(samples.iter_mut()) {
                let Some(program) = programs.of(spec.tool).filter(|_| samples.usable()) else {
                    continue;
                };
                let mut file = &stderr_file;
                file.set_len(0).and_then(|()| file.rewind()).ok();
                let run = measure(
                    &programs.measure,
                    program,
                    &spec.args(farm.port, &snapshot),
                    Some(file),
                )
                .map_err(|error| format!("{}: {error}", spec.label))?;
                samples.longest = run.wall;
                let mut stderr = String::new();
                file.rewind().ok();
                file.take(2000).read_to_string(&mut stderr).ok();
                match run.status {
                    0 => {}
                    1 if spec.one_is_ok => {}
                    2 if spec.may_be_missing => {
                        eprintln!(
                            "bench: {}: exits with a usage error: not available",
                            spec.label
                        );
                        samples.availability = Availability::NotAvailable;
                    }
                    status => {
                        eprintln!(
                            "bench: {} failed with status {status}: {}",
                            spec.label,
                            stderr.trim()
                        );
                        samples.availability = Availability::Failed(format!("status {status}"));
                    }
                }
            }
            if sockets >= TOP_KEYS_FROM {
                eprintln!("bench: {name}: top: {TOP_KEY_PRESSES} keys while it refreshes");
                // A failure here loses this row, not the rest of the run.
                match crate::top_keys::measure(&programs.portstat, TOP_KEY_PRESSES) {
                    Ok(keys) => {
                        eprintln!("bench: {name}: top: {}", keys.describe());
                        top_keys = Some(keys);
                    }
                    Err(error) => eprintln!("bench: {name}: top's keys not measured: {error}"),
                }
            }
        } else {
            let _ = measure(&programs.measure, &programs.ss, &["-tuanp".into()], None);
        }
        let session_end = farm.ready_at + options.session;
        let mut rounds_here = 0;
        while round < runs {
            let due: Vec<usize> = (0..SPECS.len())
                .map(|k| (k + round) % SPECS.len())
                .filter(|&i| samples[i].usable())
                .filter(|&i| {
                    !SPECS[i].slow()
                        || samples[i].wall_ms.len() < ((round + 1) * slow_runs).div_ceil(runs)
                })
                .collect();
            let planned: Duration = due.iter().map(|&i| samples[i].longest).sum();
            if rounds_here > 0 && Instant::now() + planned > session_end {
                break;
            }
            for i in due {
                let spec = &SPECS[i];
                let program = programs
                    .of(spec.tool)
                    .expect("usable commands are installed");
                let run = measure(
                    &programs.measure,
                    program,
                    &spec.args(farm.port, &snapshot),
                    None,
                )
                .map_err(|error| format!("{}: {error}", spec.label))?;
                let fine = run.status == 0 || (run.status == 1 && spec.one_is_ok);
                if !fine {
                    eprintln!("bench: {} failed with status {}", spec.label, run.status);
                    samples[i].availability =
                        Availability::Failed(format!("status {}", run.status));
                    continue;
                }
                if options.verbose {
                    eprintln!(
                        "bench: {name} session {} round {round}: {} {:.1} ms, {} KiB",
                        sessions.len() + 1,
                        spec.label,
                        run.wall.as_secs_f64() * 1000.0,
                        run.max_rss_kib
                    );
                }
                samples[i].longest = samples[i].longest.max(run.wall);
                samples[i].wall_ms.push(run.wall.as_secs_f64() * 1000.0);
                samples[i].rss_kib.push(run.max_rss_kib);
            }
            round += 1;
            rounds_here += 1;
        }
        let end = Counts::of(&programs.ss)?;
        eprintln!(
            "bench: {name}: {rounds_here} rounds in {:.1} s since ready; at the end: {}",
            farm.ready_at.elapsed().as_secs_f64(),
            end.describe()
        );
        farm.stop();
        sessions.push((counts, end));
    }
    Ok(ScaleResult {
        name: name.to_string(),
        sockets,
        samples,
        sessions,
        seconds: started.elapsed().as_secs_f64(),
        cpu_pressure: pressure_before
            .zip(cpu_pressure_total())
            .map(|(before, after)| (after - before) as f64 / 1e6 / started.elapsed().as_secs_f64()),
        walked,
        top_keys,
    })
}

/// Saves the farm as `portstat -a -n --json` sees it, for `audit --input`.
fn take_snapshot(portstat: &Path, path: &Path) -> Result<(), String> {
    let file =
        std::fs::File::create(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let status = Command::new(portstat)
        .args(["-a", "-n", "--json"])
        .stdout(file)
        .status()
        .map_err(|error| format!("portstat: {error}"))?;
    if !status.success() {
        return Err(format!("portstat -a -n --json for the snapshot: {status}"));
    }
    Ok(())
}

/// What measuring costs: `true` run through the measurer, the least any command can show.
struct Floor {
    /// Median wall time.
    wall_ms: f64,
    /// Largest peak RSS.
    rss_kib: u64,
}

impl Floor {
    fn of(programs: &Programs) -> Result<Floor, String> {
        let program = which("true").ok_or("`true` is not installed")?;
        let mut wall_ms = Vec::new();
        let mut rss_kib = 0;
        for _ in 0..30 {
            let run = measure(&programs.measure, &program, &[], None)
                .map_err(|error| format!("true: {error}"))?;
            if run.status != 0 {
                return Err(format!("true exited with status {}", run.status));
            }
            wall_ms.push(run.wall.as_secs_f64() * 1000.0);
            rss_kib = rss_kib.max(run.max_rss_kib);
        }
        Ok(Floor {
            wall_ms: quantile(&wall_ms, 0.5).unwrap_or(0.0),
            rss_kib,
        })
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

// ---------------------------------------------------------------------------------------------
// The report

fn bench(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let root = crate::repo_root();
    let built = if options.build {
        Some(crate::build_portstat(&options.profile)?)
    } else {
        None
    };
    let measurer_dir =
        tempfile::tempdir().map_err(|error| format!("temporary directory: {error}"))?;
    let programs = Programs {
        measure: build_measurer(measurer_dir.path())?,
        portstat: match (&options.portstat, built) {
            (Some(given), _) => given.clone(),
            (None, Some(built)) => built,
            (None, None) => root.join("target").join(&options.profile).join("portstat"),
        },
        // The farm is this executable's `farm` task.
        farm: std::env::current_exe().map_err(|error| format!("own executable: {error}"))?,
        ss: which("ss").ok_or("ss (iproute2) is not installed")?,
        netstat: which("netstat"),
        lsof: which("lsof"),
    };
    if !programs.portstat.is_file() {
        return Err(format!(
            "{} is missing (build it first)",
            programs.portstat.display()
        ));
    }
    // Never leave the host's namespace with farm sockets, even before the first scale.
    enter_private_netns().map_err(|error| format!("private network namespace: {error}"))?;
    let floor = Floor::of(&programs)?;
    eprintln!(
        "bench: `true` through the measurer: {} ms, peak RSS {:.1} MiB",
        ms(floor.wall_ms),
        floor.rss_mib()
    );

    let mut results = Vec::new();
    for (name, sockets) in &options.scales {
        eprintln!("bench: {name}: {sockets} sockets");
        let result = run_scale(name, *sockets, &programs, options)?;
        println!("{}", scale_table(&result));
        results.push(result);
    }
    // Needs nft; measured in this process's private namespace, after the farms are gone.
    let firewall = match which("nft") {
        Some(_) => {
            eprintln!("bench: firewall cost: audit with no ruleset and with 1,000 rules");
            let cost = crate::firewall_cost::measure(&programs.portstat, 1000, 15)?;
            println!("{}", cost.section());
            Some(cost)
        }
        None => {
            eprintln!("bench: nft is not installed: the firewall cost is not measured");
            None
        }
    };
    // In a namespace of its own: the probe's listeners must be all there is.
    eprintln!("bench: probe cost: audit --probe over 100 listeners");
    let probe = crate::probe_cost::measure_apart(&programs.portstat, 10)?;
    println!("{}", probe.section());
    eprintln!("bench: serve memory: 1,000 scrapes");
    let serve = crate::serve_memory::measure(&programs.portstat, 1000)?;
    println!("{}", serve.section());
    let total = started.elapsed().as_secs_f64();
    let report = report(options, &programs, &floor, &results, &probe, &date, total);
    println!("{}", summary(&results, &probe));
    let old = std::fs::read_to_string(&options.out).unwrap_or_default();
    let firewall = firewall.map_or(String::new(), |cost| format!("{}\n", cost.section()));
    let document = format!(
        "{report}\n{firewall}{}\n{}\n{}",
        probe.section(),
        serve.section(),
        changes_section(&old)
    );
    std::fs::write(&options.out, document)
        .map_err(|error| format!("write {}: {error}", options.out.display()))?;
    eprintln!("bench: wrote {} after {total:.0} s", options.out.display());
    let left = leftover_farms();
    if !left.is_empty() {
        return Err(format!("socket farm processes left behind: {left:?}"));
    }
    Ok(())
}

/// The "What each change bought" section of the old file (heading to the next `## `), or a new
/// empty one.
fn changes_section(old: &str) -> String {
    let mut lines = old
        .lines()
        .skip_while(|line| line.trim_end() != CHANGES_HEADING);
    let mut section = String::new();
    if lines.next().is_some() {
        for line in lines.take_while(|line| !line.starts_with("## ")) {
            section.push_str(line);
            section.push('\n');
        }
    }
    if section.trim().is_empty() {
        section = "\n(To be filled in: which change bought which speed-up or saving.)\n".into();
    }
    format!(
        "{CHANGES_HEADING}\n{}",
        section.trim_end_matches('\n').to_string() + "\n"
    )
}

fn leftover_farms() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| is_farm_cmdline(&cmdline))
        })
        .collect()
}

/// Whether a `/proc/PID/cmdline` is a farm's master or worker: an `xtask` executable whose task
/// is `farm` or `farm-worker`.
fn is_farm_cmdline(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|byte| *byte == 0);
    let exe = args.next().unwrap_or_default();
    let task = args.next().unwrap_or_default();
    let name = exe.rsplit(|byte| *byte == b'/').next().unwrap_or_default();
    name.starts_with(b"xtask") && (task == b"farm" || task == b"farm-worker")
}

fn first_line(program: &Path, args: &[&str], containing: &str) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find(|line| line.contains(containing))
        .map(|line| line.trim().to_string())
}

fn machine(programs: &Programs) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown".to_string(), |(_, model)| model.trim().to_string());
    let cores = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or("unknown".to_string(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".into(), |k| k.trim().to_string());
    let ss = first_line(&programs.ss, &["-V"], "").unwrap_or_default();
    let netstat = programs
        .netstat
        .as_ref()
        .map_or("not installed".into(), |p| {
            first_line(p, &["--version"], "net-tools").unwrap_or("installed".into())
        });
    let lsof = programs.lsof.as_ref().map_or("not installed".into(), |p| {
        first_line(p, &["-v"], "revision").unwrap_or("installed".into())
    });
    // The commit of the work tree the measured binary was built in (a `--portstat` binary may
    // come from another work tree), and whether its sources differ from that commit.
    let tree = programs
        .portstat
        .parent()
        .and_then(|dir| git(dir, &["rev-parse", "--show-toplevel"]))
        .map_or_else(crate::repo_root, PathBuf::from);
    let commit = git(&tree, &["rev-parse", "--short", "HEAD"]);
    let dirty = git(&tree, &["status", "--porcelain", "--", "src", "Cargo.toml"])
        .is_some_and(|status| !status.is_empty());
    let portstat = match commit {
        Some(commit) if dirty => format!("commit {commit} with uncommitted changes in src/"),
        Some(commit) => format!("commit {commit}"),
        None => "unknown commit".into(),
    };
    format!(
        "- CPU: {cpu}, {cores} cores\n- memory: {memory}\n- kernel: {kernel}\n- ss: {ss}\n\
         - netstat: {netstat}\n- lsof: {lsof}\n- portstat: {portstat}, release build\n"
    )
}

/// `git -C dir ARGS`'s trimmed stdout, when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn label_of(name: &str) -> usize {
    SPECS
        .iter()
        .position(|spec| spec.label == name)
        .expect("known label")
}

/// Median of `label` / median of its counterpart at this scale.
fn ratio(result: &ScaleResult, label: &str) -> Option<f64> {
    let spec = &SPECS[label_of(label)];
    let own = result.samples[label_of(label)].median()?;
    let other = result.samples[label_of(spec.counterpart?)].median()?;
    Some(own / other)
}

fn scale_title(result: &ScaleResult) -> String {
    format!("{} ({} sockets)", result.name, result.sockets)
}

fn scale_table(result: &ScaleResult) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "### {}\n", scale_title(result));
    if let Some((start, _)) = result.sessions.first() {
        let _ = writeln!(text, "Farm as `ss -tuan` counted it: {}.", start.describe());
        let tw_end: Vec<String> = result
            .sessions
            .iter()
            .map(|(_, end)| end.get("tcp TIME-WAIT").to_string())
            .collect();
        let _ = writeln!(
            text,
            "{} farm session(s), {:.0} s in all; TIME-WAIT rows at the end of each session: {} \
             (at the start: {}). The host had {} processes holding {} descriptors. {}\n",
            result.sessions.len(),
            result.seconds,
            tw_end.join(", "),
            start.get("tcp TIME-WAIT"),
            result.walked.0,
            result.walked.1,
            result.cpu_pressure.map_or(String::new(), |p| format!(
                "CPU pressure (PSI some): {:.0}% of the time a task waited for a CPU.",
                p * 100.0
            )),
        );
    }
    let _ = writeln!(
        text,
        "| command | median ms | IQR ms | min–max ms | runs | peak RSS MiB | vs | ratio |"
    );
    let _ = writeln!(text, "|---|---:|---:|---:|---:|---:|---|---:|");
    for (spec, samples) in SPECS.iter().zip(&result.samples) {
        let versus = spec.counterpart.map_or(String::new(), |c| format!("`{c}`"));
        let status = match &samples.availability {
            Availability::NotInstalled => Some("not installed"),
            Availability::NotAvailable => Some("not available"),
            Availability::Failed(why) => Some(why.as_str()),
            Availability::Available if samples.wall_ms.is_empty() => Some("no runs"),
            Availability::Available => None,
        };
        if let Some(status) = status {
            let _ = writeln!(text, "| `{}` | {status} | | | | | {versus} | |", spec.label);
            continue;
        }
        let w = &samples.wall_ms;
        let q = |p| quantile(w, p).unwrap_or(0.0);
        let rss = samples.rss_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
        let ratio = ratio(result, spec.label).map_or(String::new(), |r| format!("{r:.2}"));
        let _ = writeln!(
            text,
            "| `{}` | {} | {}–{} | {}–{} | {} | {:.1} | {versus} | {ratio} |",
            spec.label,
            ms(q(0.5)),
            ms(q(0.25)),
            ms(q(0.75)),
            ms(q(0.0)),
            ms(q(1.0)),
            w.len(),
            rss,
        );
    }
    text
}

struct Target {
    what: String,
    scale: String,
    measured: Option<f64>,
    goal: String,
    met: Option<bool>,
}

fn targets(results: &[ScaleResult], probe: &ProbeCost) -> Vec<Target> {
    let find = |sockets: usize| results.iter().find(|r| r.sockets == sockets);
    let mut targets = Vec::new();
    let mut ratio_target = |label: &str, result: Option<&ScaleResult>, limit: f64| {
        let Some(result) = result else { return };
        let spec = &SPECS[label_of(label)];
        let measured = ratio(result, label);
        targets.push(Target {
            what: format!("`{label}` / `{}`", spec.counterpart.unwrap_or("")),
            scale: result.name.clone(),
            measured,
            goal: format!("≤ {limit}"),
            met: measured.map(|m| m <= limit),
        });
    };
    ratio_target(
        "portstat -a -n --json",
        results.iter().find(|r| r.sockets <= 100),
        1.2,
    );
    ratio_target("portstat -a -n --json", find(10_000), 0.7);
    ratio_target("portstat -a -n --json", find(100_000), 0.5);
    ratio_target("portstat -a -i --json", find(10_000), 0.5);
    ratio_target("portstat audit --input S", find(100_000), 2.0);
    ratio_target("portstat metrics", find(10_000), 0.5);
    ratio_target("portstat metrics", find(100_000), 0.5);
    ratio_target("portstat top --once", find(10_000), 0.5);
    for result in results.iter().filter(|r| r.sockets > 100) {
        ratio_target("portstat -l --port P", Some(result), 0.4);
        ratio_target("portstat who P", Some(result), 0.4);
    }
    if let Some(result) = find(100_000) {
        // Issue 18: at 100k sockets a refresh of `top` still ends within a second.
        let measured = result.samples[label_of("portstat top --once")].median();
        targets.push(Target {
            what: "`portstat top --once` (one refresh, drawn), ms".into(),
            scale: result.name.clone(),
            measured,
            goal: "< 1000".into(),
            met: measured.map(|m| m < 1000.0),
        });
    }
    for result in results.iter() {
        let Some(keys) = &result.top_keys else {
            continue;
        };
        // Issue 18: keys answered within 100 ms while a refresh runs, every one of them: the
        // max, not a percentile, since a user notices the one slow answer.
        let measured = keys.max();
        targets.push(Target {
            what: format!(
                "`portstat top`: a key's answer, ms (max of {}; {} during a refresh; median {})",
                keys.latencies_ms.len(),
                keys.during_refresh,
                keys.median().map_or("-".into(), |m| format!("{m:.1}"))
            ),
            scale: result.name.clone(),
            measured,
            goal: "max < 100".into(),
            met: measured.map(|m| m < 100.0),
        });
    }
    if let Some(result) = find(100_000) {
        // audit --input reads a whole snapshot file, which no scan of the host does: its
        // memory is reported beside the table, not held to the scans' goal.
        let peak = SPECS
            .iter()
            .zip(&result.samples)
            .filter(|(spec, _)| spec.tool == Tool::Portstat && !spec.args.contains(&"--input"))
            .flat_map(|(_, samples)| samples.rss_kib.iter().copied())
            .max()
            .map(|kib| kib as f64 / 1024.0);
        targets.push(Target {
            what: "portstat peak RSS (MiB, any command scanning this host)".into(),
            scale: result.name.clone(),
            measured: peak,
            goal: "< 64".into(),
            met: peak.map(|p| p < 64.0),
        });
    }
    // Issue 19: the slowest run of either probe mode; a run with a wrong probe misses it.
    targets.push(Target {
        what: "`portstat audit --probe` (and `--probe=http`), slowest run, ms".into(),
        scale: "100 listeners".into(),
        measured: Some(probe.slowest_ms()),
        goal: format!("≤ {}", crate::probe_cost::LIMIT_MS),
        met: Some(probe.met()),
    });
    // Linear: 10x the sockets costs at most 1.25 x 10x the time (per-socket cost within 25%).
    let json = label_of("portstat -a -n --json");
    let mut scaled: Vec<&ScaleResult> = results.iter().filter(|r| r.sockets >= 1000).collect();
    scaled.sort_by_key(|r| r.sockets);
    for pair in scaled.windows(2) {
        let (small, large) = (pair[0], pair[1]);
        let per_socket = |r: &ScaleResult| {
            let rows = r
                .sessions
                .first()
                .map_or(r.sockets, |(c, _)| c.total)
                .max(1);
            r.samples[json].median().map(|m| m / rows as f64)
        };
        let measured = per_socket(large).zip(per_socket(small)).map(|(l, s)| l / s);
        targets.push(Target {
            what: "`portstat -a -n --json` time per socket, larger / smaller scale".into(),
            scale: format!("{} vs {}", large.name, small.name),
            measured,
            goal: "≤ 1.25 (linear)".into(),
            met: measured.map(|m| m <= 1.25),
        });
    }
    targets
}

fn summary(results: &[ScaleResult], probe: &ProbeCost) -> String {
    let mut text =
        String::from("| target | scale | measured | goal | met |\n|---|---|---:|---|---|\n");
    for target in targets(results, probe) {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} |",
            target.what,
            target.scale,
            target.measured.map_or("—".into(), |m| format!("{m:.2}")),
            target.goal,
            match target.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not available",
            }
        );
    }
    text
}

fn report(
    options: &Options,
    programs: &Programs,
    floor: &Floor,
    results: &[ScaleResult],
    probe: &ProbeCost,
    date: &str,
    seconds: f64,
) -> String {
    let command = command_line(&options.args);
    let mut text = String::new();
    let _ = writeln!(text, "# Benchmarks\n");
    let _ = writeln!(
        text,
        "portstat against `ss` (iproute2), `netstat` and `lsof` on the same sockets, in the same \
         run. Generated by `xtask/src/bench.rs`; regenerate with the command below (as root). \
         Everything except the section \"What each change bought\" is rewritten each time.\n"
    );
    let _ = writeln!(
        text,
        "- date: {date} (UTC)\n- command: `{command}` ({seconds:.0} s)"
    );
    text.push_str(&machine(programs));
    let _ = writeln!(
        text,
        "\n## Method\n\n\
         Each scale runs in a fresh private network namespace holding only loopback and the \
         sockets of the socket farm (`cargo xtask farm`, `xtask/src/farm.rs`): ~1% TCP listeners, 60% established pair ends, \
         10% CLOSE_WAIT/FIN_WAIT2 pairs, 15% TIME_WAIT, ~14% UDP (a third connected), a fifth of \
         it IPv6, spread over several processes (at most ~15000 descriptors each). `P` is a TCP \
         listener on 127.0.0.1 held by one farm process (the last one started). Every command \
         runs once untimed, then in rounds, each round starting one command later; netstat and \
         lsof run in {} of the rounds. Each command is started by a small measuring process \
         (`xtask/src/measure.rs`, built with `rustc -O`) that forks, execs it and reaps it with \
         `wait4`: times are wall clock from exec to reap, output to /dev/null; peak RSS is \
         `ru_maxrss` from `wait4`, the largest of the runs (Linux starts a child's peak at the \
         size of the process it was forked from, so that one is kept small). `true` measured \
         this way takes {} ms and peaks at {:.1} MiB. Ratios are \
         medians: the command over its `ss` counterpart in the same scale. When a round would end \
         more than {} s after the farm was ready (TIME_WAIT lasts 60 s), the farm is restarted \
         in a new namespace. `ss -p`, netstat, lsof and portstat all walk every process's \
         descriptors on the host (the PID namespace is not private), so the farm's ~0.8 \
         descriptors per socket are what they mostly read. The machine may be shared: each scale \
         says how often some task waited for a CPU while it ran (`/proc/pressure/cpu`).\n",
        options.slow_runs,
        ms(floor.wall_ms),
        floor.rss_mib(),
        options.session.as_secs()
    );
    let _ = writeln!(text, "## Targets\n\n{}", summary(results, probe));
    let _ = writeln!(text, "## Results\n");
    for result in results {
        let _ = writeln!(text, "{}", scale_table(result));
    }
    text
}

/// The command line the report names: `cargo xtask bench` and the arguments as given.
fn command_line(args: &[String]) -> String {
    let mut command = String::from("cargo xtask bench");
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Report;

    #[test]
    fn the_measurers_line_parses() {
        let report = Report {
            wall: Duration::from_nanos(2_315_021),
            status: 137,
            maxrss_kib: 3160,
            user: Duration::from_micros(812),
            sys: Duration::from_micros(1203),
        };
        let run = parse_report(&format!("{}\n", report.line())).unwrap();
        assert_eq!(
            (run.wall, run.status, run.max_rss_kib),
            (report.wall, 137, 3160)
        );
        assert!(parse_report("wall_ns=5 status=0").is_none());
        assert!(parse_report("").is_none());
    }

    /// The measurer as the bench builds it: statuses come through, and a small command's peak
    /// RSS is its own, not this (large) test process's.
    #[test]
    fn the_measurer_reports_a_commands_own_peak() {
        let dir = tempfile::tempdir().unwrap();
        let measurer = build_measurer(dir.path()).unwrap();
        let sh = which("sh").unwrap();
        let shell =
            |script: &str| measure(&measurer, &sh, &["-c".into(), script.into()], None).unwrap();
        assert_eq!(shell("exit 3").status, 3);
        assert_eq!(shell("kill -9 $$").status, 128 + 9);
        let slept = shell("sleep 0.1").wall;
        assert!(slept >= Duration::from_millis(100) && slept < Duration::from_secs(5));
        let tru = measure(&measurer, &which("true").unwrap(), &[], None).unwrap();
        assert_eq!(tru.status, 0);
        assert!(
            tru.max_rss_kib > 0 && tru.max_rss_kib < 2048,
            "{}",
            tru.max_rss_kib
        );
        let missing = measure(&measurer, Path::new("/nonexistent/x"), &[], None).unwrap();
        assert_eq!(missing.status, 127);
    }
}
