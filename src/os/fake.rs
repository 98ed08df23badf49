//! An [`Os`] made of plain data, for tests of whole commands without root or a live kernel:
//! recorded socket tables, who holds which socket, processes, users, host settings, and a clock
//! that only moves when the command waits.
//!
//! A fake host is a directory: `host.toml` (see `fixtures/hosts/README.md`) and, for each reading
//! of the tables, a directory of recorded `/proc/net` tables (`tcp`, `tcp6`, `udp`, `udp6`).
//! Each [`Os::wait`] moves on to the next reading; after the last, a wait is an interruption,
//! so `watch` ends as it would on Ctrl-C.

// Fake hosts are loaded from fixture files on Linux only (the tests run there); elsewhere the
// file formats are compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

use super::{DestroyFeed, Os, Wait};
use crate::core::counters::NetStatistics;
use crate::core::error::UsageError;
use crate::core::firewall::Ruleset;
use crate::core::model::{
    Backend, Destroyed, DestroyedSince, EphemeralRange, Extensions, Holders, InterfaceAddress,
    Namespace, Process, Proto, Socket, SocketDetails, SocketMemory, Source, State, TableRead,
    TableRequest, TcpBytes, TcpInfo, Unreadable,
};
use crate::core::probe::{ProbeReading, ProbeRequest, Sending, TlsReading, TlsSession};
use crate::core::query::{NetnsSelection, PortSpec};
use crate::core::stop::{Signal, Signalled};
use crate::core::verdict::{BindOutcome, ConnectOutcome, HostFacts};

/// A made-up host. Fields are public so a test can change one fact before it runs a command.
#[derive(Debug)]
pub struct FakeOs {
    /// Successive readings of the tables: every socket, each marked with its namespace's inode
    /// (0: portstat's own).
    pub readings: Vec<Vec<Socket>>,
    /// Socket inode -> the TCP internals and memory netlink would report with `-i` and `-m`.
    pub details: HashMap<u64, SocketDetails>,
    /// Warnings the table reader gives with every reading.
    pub table_warnings: Vec<String>,
    /// When set, reading the tables fails with this error.
    pub table_error: Option<String>,
    /// Other network namespaces (`--netns`); portstat's own is implied.
    pub namespaces: Vec<Namespace>,
    /// Socket inode -> the pids holding it.
    pub holders: HashMap<u64, Vec<u32>>,
    /// Processes whose descriptors can't be read, and how many exit during the walk.
    pub unreadable: Vec<Unreadable>,
    pub vanished: usize,
    pub processes: HashMap<u32, Process>,
    /// Process -> the text of its `/proc/PID/cgroup`.
    pub cgroups: HashMap<u32, String>,
    pub users: HashMap<u32, Arc<str>>,
    pub facts: HostFacts,
    /// `netstat` and `snmp` beside `host.toml`, as `/proc/net` prints them; absent, reading
    /// them fails.
    pub statistics: Option<NetStatistics>,
    pub euid: Option<u32>,
    pub hostname: String,
    pub interfaces: Vec<InterfaceAddress>,
    pub firewall: Result<Ruleset, String>,
    pub etc_services: Option<String>,
    /// Test binds that end otherwise than the tables suggest, by address and SO_REUSEADDR.
    /// Every other one fails with EADDRINUSE where a listener of the current reading holds the
    /// address (its own, or the wildcard of its family), and binds elsewhere.
    pub binds: HashMap<(SocketAddr, bool), BindOutcome>,
    /// Addresses where a connection is accepted; every other one is refused.
    pub accepting: HashSet<SocketAddr>,
    /// What each address answers `--probe` (by the address portstat connects to); every
    /// other address refuses.
    pub probes: HashMap<SocketAddr, FakeProbe>,
    /// Every probe asked for, in order: what would have been sent where.
    pub probed: Mutex<Vec<ProbeRequest>>,
    /// Files a user may name (`--input`, `--policy`, `--baseline`); `-` is standard input.
    pub files: HashMap<PathBuf, String>,
    /// Files written (`metrics --output`), by path.
    pub written: Mutex<HashMap<PathBuf, Vec<u8>>>,
    /// Sockets the kernel reports destroyed while the watch waits after reading N (0: the
    /// first), each with N and the namespace it is in (0: portstat's own).
    pub destroyed: Vec<(usize, Destroyed)>,
    /// Reports lost while the watch waits after reading N: (N, the namespace, how many).
    pub lost: Vec<(usize, u64, u64)>,
    /// When set, subscribing to the reports fails with this error.
    pub subscribe_error: Option<String>,
    /// The wall clock at the first reading.
    pub started: SystemTime,
    /// portstat's own pid.
    pub own_pid: u32,
    /// How a signal to a pid ends; unlisted pids take it ([`Signalled::Sent`]).
    pub signal_outcomes: HashMap<u32, Signalled>,
    /// Every signal sent, in order: (pid, start time, signal).
    pub signalled: Mutex<Vec<(u32, u64, Signal)>>,
    /// Programs that fail (or are missing) with this line; every other one succeeds.
    pub tool_errors: HashMap<String, String>,
    /// What programs print when [`Os::run_tool`] runs them (by program); every other one
    /// prints nothing.
    pub tool_outputs: HashMap<String, String>,
    /// Every command run, in order, program first.
    pub ran: Mutex<Vec<Vec<String>>>,
    /// The answer to every question on the terminal; `None`: there is no terminal.
    pub answer: Option<bool>,
    /// Every question asked on the terminal.
    pub asked: Mutex<Vec<String>>,
    reading: AtomicUsize,
    waited: Mutex<Duration>,
}

impl Default for FakeOs {
    fn default() -> FakeOs {
        FakeOs {
            readings: vec![Vec::new()],
            details: HashMap::new(),
            table_warnings: Vec::new(),
            table_error: None,
            namespaces: Vec::new(),
            holders: HashMap::new(),
            unreadable: Vec::new(),
            vanished: 0,
            processes: HashMap::new(),
            cgroups: HashMap::new(),
            users: HashMap::from([(0, Arc::from("root"))]),
            statistics: None,
            facts: HostFacts {
                bindv6only: false,
                unprivileged_port_start: 1024,
                may_bind_privileged: true,
                ephemeral: EphemeralRange::LINUX_DEFAULT,
                reserved: PortSpec::EMPTY,
                warnings: Vec::new(),
                forwarding: [None, None],
            },
            euid: Some(0),
            hostname: "fake".into(),
            interfaces: Vec::new(),
            firewall: Ok(Ruleset::default()),
            etc_services: None,
            binds: HashMap::new(),
            accepting: HashSet::new(),
            probes: HashMap::new(),
            probed: Mutex::default(),
            files: HashMap::new(),
            written: Mutex::default(),
            destroyed: Vec::new(),
            lost: Vec::new(),
            subscribe_error: None,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_057_600),
            own_pid: 4242,
            signal_outcomes: HashMap::new(),
            signalled: Mutex::default(),
            tool_errors: HashMap::new(),
            tool_outputs: HashMap::new(),
            ran: Mutex::default(),
            answer: None,
            asked: Mutex::default(),
            reading: AtomicUsize::new(0),
            waited: Mutex::new(Duration::ZERO),
        }
    }
}

/// `host.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    hostname: String,
    /// RFC 3339.
    now: String,
    euid: Option<u32>,
    /// Directories of recorded tables, one per reading, relative to the host's directory.
    #[serde(default = "first_reading")]
    readings: Vec<String>,
    #[serde(default)]
    unreadable: UnreadableFile,
    #[serde(default)]
    vanished: usize,
    etc_services: Option<String>,
    facts: Option<FactsFile>,
    #[serde(default)]
    process: Vec<ProcessFile>,
    #[serde(default)]
    user: Vec<UserFile>,
    #[serde(default)]
    interface: Vec<InterfaceFile>,
    #[serde(default)]
    bind: Vec<BindFile>,
    #[serde(default)]
    accepting: Vec<SocketAddr>,
    /// Sockets reported destroyed (watch's scripted destroy reports).
    #[serde(default)]
    destroyed: Vec<DestroyedFile>,
    #[serde(default)]
    lost: Vec<LostFile>,
    /// Cookies of the sockets at these addresses, in every reading (the recorded tables have
    /// none; a connection's TIME_WAIT keeps its cookie, as the kernel's does).
    #[serde(default)]
    cookie: Vec<CookieFile>,
    subscribe_error: Option<String>,
    /// What netlink reports of a socket beyond its /proc/net line: a listener's backlog, and
    /// with `-i` and `-m` its TCP internals and memory.
    #[serde(default)]
    socket: Vec<SocketFile>,
    #[serde(default)]
    probe: Vec<ProbeFile>,
    /// Why the firewall can't be read; otherwise it is read from `firewall/` beside this file
    /// (`nft.json`, `iptables-nft.v4`, `iptables-nft.v6`, `iptables-legacy.v4`,
    /// `iptables-legacy.v6`: what each tool printed), and a host without that directory has
    /// no firewall at all.
    firewall_unreadable: Option<String>,
}

/// A destroy report, arriving while the watch waits after reading `after` (0: the first).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestroyedFile {
    after: usize,
    /// The namespace's inode; 0, portstat's own, when left out.
    #[serde(default)]
    netns: u64,
    proto: Proto,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    /// As `ss` names it; the kernel reports TCP sockets as CLOSE.
    state: String,
    cookie: u64,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LostFile {
    after: usize,
    #[serde(default)]
    netns: u64,
    count: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CookieFile {
    local: SocketAddr,
    remote: Option<SocketAddr>,
    cookie: u64,
}

impl DestroyedFile {
    fn report(self, file: &Path) -> Result<(usize, Destroyed)> {
        let state = State::parse(&self.state)
            .ok_or_else(|| anyhow!("{}: unknown state {:?}", file.display(), self.state))?;
        let bytes = match (self.bytes_acked, self.bytes_received) {
            (Some(acked), Some(received)) => Some(TcpBytes { acked, received }),
            _ => None,
        };
        let socket = Socket {
            proto: self.proto,
            local: self.local,
            remote: self.remote,
            state,
            // The kernel's report of a destroyed socket carries no queues worth showing.
            tx_queue: None,
            rx_queue: None,
            timer: None,
            uid: None,
            inode: 0,
            holders: None,
            v6only: None,
            netns: self.netns,
            cookie: self.cookie,
            details: None,
        };
        Ok((self.after, Destroyed { socket, bytes }))
    }
}

/// The firewall recorded in `dir`, assembled as the live one is.
fn read_firewall(dir: &Path) -> Result<Result<Ruleset, String>> {
    let mut dumps = super::firewall::Dumps::default();
    if !dir.is_dir() {
        return Ok(Ok(Ruleset::default()));
    }
    let read = |name: &str| -> Result<Option<String>> {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        std::fs::read_to_string(&path)
            .map(Some)
            .with_context(|| format!("could not read {}", path.display()))
    };
    dumps.nft = read("nft.json")?.map(String::into_bytes);
    dumps.iptables_nft = [read("iptables-nft.v4")?, read("iptables-nft.v6")?];
    dumps.iptables_legacy = [read("iptables-legacy.v4")?, read("iptables-legacy.v6")?];
    Ok(super::firewall::assemble(&dumps))
}

/// `unreadable = N`: N processes whose descriptors can't be read, nothing known of them (they
/// could hold any socket); or `[[unreadable]]` tables, one per process, with what is known.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum UnreadableFile {
    Count(usize),
    Processes(Vec<UnreadableProcessFile>),
}

impl Default for UnreadableFile {
    fn default() -> UnreadableFile {
        UnreadableFile::Count(0)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnreadableProcessFile {
    pid: u32,
    /// Its uids (real, effective, saved, filesystem); none: not known.
    #[serde(default)]
    uids: Vec<u32>,
    /// The inode of its network namespace (0: portstat's own), if known.
    netns: Option<u64>,
}

fn first_reading() -> Vec<String> {
    vec![".".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FactsFile {
    ephemeral: EphemeralFile,
    unprivileged_port_start: u16,
    bindv6only: bool,
    may_bind_privileged: bool,
    #[serde(default)]
    reserved: String,
    /// `[ip_forward, ipv6 forwarding]`; unknown when left out.
    forwarding: Option<[bool; 2]>,
}

/// The ephemeral range as two ports, or as the sysctl's own text (which may be malformed).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EphemeralFile {
    Ports([u16; 2]),
    Sysctl(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessFile {
    pid: u32,
    name: String,
    user: Option<String>,
    cmdline: String,
    /// Seconds since the Unix epoch.
    started: Option<u64>,
    /// The parent's pid.
    #[serde(default)]
    ppid: Option<u32>,
    cgroup: Option<String>,
    /// The socket inodes it holds.
    #[serde(default)]
    holds: Vec<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketFile {
    inode: u64,
    /// A TCP listener's backlog (its SEND-Q), which /proc/net/tcp does not print.
    backlog: Option<u32>,
    tcp_info: Option<TcpInfo>,
    memory: Option<SocketMemory>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    uid: u32,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceFile {
    address: IpAddr,
    /// The prefix length; a host route (32 or 128) when left out.
    prefix: Option<u8>,
    name: String,
}

/// What a listener answers `--probe`. What is sent is decided by portstat: a listener that
/// has a `tls` answers a ClientHello only when one is sent.
#[derive(Debug, Clone, Default)]
pub struct FakeProbe {
    /// What it says unasked.
    pub banner: Option<String>,
    pub tls: Option<TlsSession>,
    /// Its reply to a ClientHello, when it is not TLS.
    pub not_tls: Option<String>,
    /// Its reply to `HEAD / HTTP/1.0`.
    pub http: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeFile {
    /// Where portstat connects (loopback for a wildcard listener).
    address: SocketAddr,
    banner: Option<String>,
    tls: Option<TlsFile>,
    not_tls: Option<String>,
    http: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    version: String,
    cipher: String,
    subject: String,
    issuer: String,
    #[serde(default)]
    sans: Vec<String>,
    /// RFC 3339.
    not_before: String,
    not_after: String,
    self_signed: bool,
    #[serde(default)]
    also_accepts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindFile {
    address: SocketAddr,
    reuse_address: bool,
    /// `in-use`, `permission-denied` or `not-available`.
    outcome: String,
}

impl FakeOs {
    /// The fake host described in `dir` (see the module's documentation).
    #[cfg(target_os = "linux")]
    pub fn load(dir: &Path) -> Result<FakeOs> {
        let file = dir.join("host.toml");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let host: HostFile =
            toml::from_str(&text).with_context(|| format!("{} is malformed", file.display()))?;
        let mut fake = FakeOs {
            hostname: host.hostname,
            started: humantime::parse_rfc3339(&host.now)
                .with_context(|| format!("{}: now", file.display()))?,
            euid: host.euid,
            unreadable: match host.unreadable {
                UnreadableFile::Count(count) => vec![Unreadable::unknown(); count],
                UnreadableFile::Processes(processes) => processes
                    .into_iter()
                    .map(|process| {
                        let mut uids = process.uids;
                        uids.sort_unstable();
                        uids.dedup();
                        Unreadable {
                            pid: Some(process.pid),
                            uids,
                            netns: process.netns,
                        }
                    })
                    .collect(),
            },
            vanished: host.vanished,
            etc_services: host.etc_services,
            readings: Vec::new(),
            ..FakeOs::default()
        };
        let statistic = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        if let (Some(netstat), Some(snmp)) = (statistic("netstat"), statistic("snmp")) {
            fake.statistics = Some(NetStatistics { netstat, snmp });
        }
        let backlogs: HashMap<u64, u32> = host
            .socket
            .iter()
            .filter_map(|socket| Some((socket.inode, socket.backlog?)))
            .collect();
        for reading in &host.readings {
            let mut read = super::procfs::read(&dir.join(reading), TableRequest::ALL)?;
            for socket in &mut read.sockets {
                if let Some(&backlog) = backlogs.get(&socket.inode) {
                    socket.tx_queue = Some(backlog);
                }
                if let Some(known) = host
                    .cookie
                    .iter()
                    .find(|c| c.local == socket.local && c.remote == socket.remote)
                {
                    socket.cookie = known.cookie;
                }
            }
            fake.table_warnings.extend(read.warnings);
            fake.readings.push(read.sockets);
        }
        for report in host.destroyed {
            fake.destroyed.push(report.report(&file)?);
        }
        fake.lost = host
            .lost
            .iter()
            .map(|lost| (lost.after, lost.netns, lost.count))
            .collect();
        fake.subscribe_error = host.subscribe_error;
        for socket in host.socket {
            if socket.tcp_info.is_some() || socket.memory.is_some() {
                let details = SocketDetails {
                    tcp_info: socket.tcp_info,
                    memory: socket.memory,
                };
                fake.details.insert(socket.inode, details);
            }
        }
        if let Some(facts) = host.facts {
            let (ephemeral, warning) = match facts.ephemeral {
                EphemeralFile::Ports([first, last]) => (EphemeralRange { first, last }, None),
                EphemeralFile::Sysctl(text) => EphemeralRange::from_sysctl(&text),
            };
            fake.facts = HostFacts {
                bindv6only: facts.bindv6only,
                unprivileged_port_start: facts.unprivileged_port_start,
                may_bind_privileged: facts.may_bind_privileged,
                ephemeral,
                reserved: facts.reserved.parse().unwrap_or_default(),
                warnings: warning.into_iter().collect(),
                forwarding: facts
                    .forwarding
                    .map_or([None, None], |[v4, v6]| [Some(v4), Some(v6)]),
            };
        }
        for user in host.user {
            fake.users.insert(user.uid, Arc::from(user.name));
        }
        for process in host.process {
            for inode in process.holds {
                fake.holders.entry(inode).or_default().push(process.pid);
            }
            if let Some(cgroup) = process.cgroup {
                fake.cgroups.insert(process.pid, cgroup);
            }
            fake.processes.insert(
                process.pid,
                Process {
                    pid: process.pid,
                    name: process.name,
                    user: process.user.map(Arc::from),
                    cmdline: process.cmdline,
                    started: process.started,
                    ppid: process.ppid,
                },
            );
        }
        for pids in fake.holders.values_mut() {
            pids.sort_unstable();
        }
        fake.interfaces = host
            .interface
            .into_iter()
            .map(|interface| InterfaceAddress {
                address: interface.address,
                prefix: interface.prefix.unwrap_or(if interface.address.is_ipv4() {
                    32
                } else {
                    128
                }),
                interface: interface.name,
            })
            .collect();
        fake.firewall = match host.firewall_unreadable {
            Some(reason) => Err(reason),
            None => read_firewall(&dir.join("firewall"))?,
        };
        for bind in host.bind {
            let outcome = match bind.outcome.as_str() {
                "in-use" => BindOutcome::InUse,
                "permission-denied" => BindOutcome::PermissionDenied,
                "not-available" => BindOutcome::NotAvailable,
                other => {
                    return Err(anyhow!(
                        "{}: unknown bind outcome {other:?}",
                        file.display()
                    ));
                }
            };
            fake.binds
                .insert((bind.address, bind.reuse_address), outcome);
        }
        fake.accepting = host.accepting.into_iter().collect();
        for probe in host.probe {
            let tls = probe
                .tls
                .map(|tls| -> Result<TlsSession> {
                    let seconds = |text: &str| -> Result<i64> {
                        let time = humantime::parse_rfc3339(text)
                            .with_context(|| format!("{}: probe time {text:?}", file.display()))?;
                        Ok(time
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |since| since.as_secs() as i64))
                    };
                    Ok(TlsSession {
                        version: tls.version,
                        cipher: tls.cipher,
                        certificate: Some(crate::core::probe::Certificate {
                            subject: tls.subject,
                            issuer: tls.issuer,
                            sans: tls.sans,
                            not_before: seconds(&tls.not_before)?,
                            not_after: seconds(&tls.not_after)?,
                            self_signed: tls.self_signed,
                        }),
                        also_accepts: tls.also_accepts,
                    })
                })
                .transpose()?;
            fake.probes.insert(
                probe.address,
                FakeProbe {
                    banner: probe.banner,
                    tls,
                    not_tls: probe.not_tls,
                    http: probe.http,
                },
            );
        }
        Ok(fake)
    }

    /// What netlink would send of a socket for `wanted`: only the extensions asked for.
    fn details_of(&self, socket: &Socket, asked: Extensions) -> Option<Box<SocketDetails>> {
        let known = self
            .details
            .get(&socket.inode)
            .filter(|_| socket.inode != 0)?;
        let details = SocketDetails {
            tcp_info: known.tcp_info.clone().filter(|_| asked.info),
            memory: known.memory.clone().filter(|_| asked.memory),
        };
        (details != SocketDetails::default()).then(|| Box::new(details))
    }

    fn current(&self) -> &[Socket] {
        let index = self.reading.load(Ordering::Relaxed);
        self.readings
            .get(index)
            .or(self.readings.last())
            .map_or(&[], Vec::as_slice)
    }
}

/// What a backend would keep of `socket` for `wanted` (netlink asks the kernel just that).
fn wanted_by(socket: &Socket, wanted: &TableRequest) -> bool {
    wanted.wants(socket.proto, socket.local.is_ipv6())
        && (wanted.states.is_empty() || wanted.states.contains(socket.state))
        && wanted
            .filter
            .as_ref()
            .is_none_or(|filter| filter.matches(socket.local, socket.remote))
}

impl Os for FakeOs {
    fn read_tables(
        &self,
        _backend: Backend,
        source: &Source,
        netns: Option<&Namespace>,
        wanted: TableRequest,
    ) -> Result<TableRead> {
        if let Source::Recorded(dir) = source {
            #[cfg(target_os = "linux")]
            return super::procfs::read(dir, wanted);
            #[cfg(not(target_os = "linux"))]
            return Err(anyhow!("recorded tables in {} need Linux", dir.display()));
        }
        if let Some(error) = &self.table_error {
            return Err(anyhow!("{error}"));
        }
        let inode = netns.filter(|ns| !ns.own).map_or(0, |ns| ns.inode);
        let sockets = self
            .current()
            .iter()
            .filter(|socket| socket.netns == inode && wanted_by(socket, &wanted))
            .cloned()
            .map(|socket| Socket {
                netns: 0,
                details: self.details_of(&socket, wanted.extensions),
                ..socket
            })
            .collect();
        Ok(TableRead {
            sockets,
            warnings: self.table_warnings.clone(),
            inodes_known: true,
        })
    }

    fn namespaces(&self, selection: &NetnsSelection) -> Result<(Vec<Namespace>, Vec<String>)> {
        let own = Namespace {
            inode: 4026531840,
            name: None,
            path: PathBuf::from("/proc/self/ns/net"),
            pid: Some(1),
            own: true,
        };
        match selection {
            NetnsSelection::Own => Ok((vec![own], Vec::new())),
            NetnsSelection::All => {
                let mut all = vec![own];
                all.extend(self.namespaces.iter().cloned());
                Ok((all, Vec::new()))
            }
            NetnsSelection::One(spec) => self
                .namespaces
                .iter()
                .find(|ns| {
                    ns.name.as_deref() == Some(spec.as_str())
                        || ns.pid.is_some_and(|pid| pid.to_string() == *spec)
                        || ns.path.as_os_str() == spec.as_str()
                })
                .map(|ns| (vec![ns.clone()], Vec::new()))
                .ok_or_else(|| UsageError(format!("no network namespace {spec:?}")).into()),
        }
    }

    fn find_holders(&self, wanted: Option<&HashSet<u64>>) -> Holders {
        Holders {
            by_inode: self
                .holders
                .iter()
                .filter(|(inode, _)| wanted.is_none_or(|wanted| wanted.contains(inode)))
                .map(|(&inode, pids)| (inode, pids.clone()))
                .collect(),
            unreadable: self.unreadable.clone(),
            vanished: self.vanished,
            // Sockets of namespace 0 are portstat's own: an unreadable process of namespace 0
            // could hold them.
            own_netns: Some(0),
        }
    }

    fn processes(&self, pids: &[u32], names: bool) -> HashMap<u32, Arc<Process>> {
        pids.iter()
            .filter_map(|pid| self.processes.get(pid))
            .map(|process| {
                let mut process = process.clone();
                if !names {
                    process.user = None;
                }
                (process.pid, Arc::new(process))
            })
            .collect()
    }

    fn cgroup(&self, pid: u32) -> Option<String> {
        self.cgroups.get(&pid).cloned()
    }

    fn user_name(&self, uid: u32) -> Option<Arc<str>> {
        self.users.get(&uid).cloned()
    }

    fn user_id(&self, name: &str) -> Option<u32> {
        self.users
            .iter()
            .find(|(_, known)| &***known == name)
            .map(|(&uid, _)| uid)
    }

    fn host_facts(&self, _netns: Option<&Namespace>) -> Result<HostFacts> {
        Ok(self.facts.clone())
    }

    fn net_statistics(&self, _netns: Option<&Namespace>) -> Result<NetStatistics> {
        self.statistics
            .clone()
            .ok_or_else(|| anyhow!("no network statistics were recorded for this host"))
    }

    fn effective_uid(&self) -> Option<u32> {
        self.euid
    }

    fn own_pid(&self) -> u32 {
        self.own_pid
    }

    fn signal(&self, pid: u32, started: u64, signal: Signal) -> Signalled {
        lock(&self.signalled).push((pid, started, signal));
        self.signal_outcomes
            .get(&pid)
            .cloned()
            .unwrap_or(Signalled::Sent)
    }

    fn run_tool(&self, program: &str, args: &[String]) -> Result<String, String> {
        let command = std::iter::once(program.to_string())
            .chain(args.iter().cloned())
            .collect();
        lock(&self.ran).push(command);
        match self.tool_errors.get(program) {
            Some(error) => Err(error.clone()),
            None => Ok(self.tool_outputs.get(program).cloned().unwrap_or_default()),
        }
    }

    fn confirm(&self, question: &str) -> Result<bool> {
        lock(&self.asked).push(question.to_string());
        self.answer
            .ok_or_else(|| anyhow!("there is no terminal to ask on"))
    }

    fn hostname(&self) -> String {
        self.hostname.clone()
    }

    fn interfaces(&self, _netns: Option<&Namespace>) -> Result<Vec<InterfaceAddress>> {
        Ok(self.interfaces.clone())
    }

    fn firewall(&self, _netns: Option<&Namespace>) -> Result<Ruleset, String> {
        self.firewall.clone()
    }

    /// The interfaces of `interfaces` numbered 1, 2, ... in the order they first appear
    /// (`lo` first, as on Linux, when the host lists it first).
    fn interface_names(&self, _netns: Option<&Namespace>) -> Result<Vec<(u32, String)>> {
        let mut names: Vec<String> = Vec::new();
        for InterfaceAddress { interface, .. } in &self.interfaces {
            if !names.contains(interface) {
                names.push(interface.clone());
            }
        }
        Ok((1..).zip(names).collect())
    }

    fn etc_services(&self) -> Option<String> {
        self.etc_services.clone()
    }

    fn test_bind(
        &self,
        _netns: Option<&Namespace>,
        proto: Proto,
        address: SocketAddr,
        reuse_address: bool,
    ) -> BindOutcome {
        if let Some(outcome) = self.binds.get(&(address, reuse_address)) {
            return outcome.clone();
        }
        let held = self.current().iter().any(|socket| {
            let listens = match proto {
                Proto::Tcp => socket.state == crate::core::model::State::Listen,
                Proto::Udp => true,
            };
            let (held, wanted) = (socket.local.ip(), address.ip());
            socket.netns == 0
                && socket.proto == proto
                && listens
                && socket.local.port() == address.port()
                && socket.local.is_ipv4() == address.is_ipv4()
                && (held == wanted || held.is_unspecified() || wanted.is_unspecified())
        });
        if held {
            BindOutcome::InUse
        } else {
            BindOutcome::Bound
        }
    }

    fn test_connect(
        &self,
        _netns: Option<&Namespace>,
        address: SocketAddr,
        _timeout: Duration,
    ) -> (ConnectOutcome, Duration) {
        let outcome = if self.accepting.contains(&address) {
            ConnectOutcome::Accepted
        } else {
            ConnectOutcome::Refused
        };
        (outcome, Duration::from_micros(120))
    }

    fn probe(&self, requests: &[ProbeRequest]) -> Vec<ProbeReading> {
        self.probed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(requests.iter().cloned());
        requests
            .iter()
            .map(|request| {
                let Some(answers) = self.probes.get(&request.address) else {
                    return ProbeReading {
                        connect: Some(ConnectOutcome::Refused),
                        ..ProbeReading::default()
                    };
                };
                let mut reading = ProbeReading {
                    connect: Some(ConnectOutcome::Accepted),
                    banner: answers.banner.clone().unwrap_or_default().into_bytes(),
                    ..ProbeReading::default()
                };
                if !reading.banner.is_empty() || request.send == Sending::Nothing {
                    return reading;
                }
                let tls = match (&answers.tls, &answers.not_tls) {
                    (Some(session), _) => TlsReading::Handshake(session.clone()),
                    (None, Some(reply)) => TlsReading::NotTls(reply.clone().into_bytes()),
                    (None, None) => TlsReading::Silent,
                };
                let answered = !matches!(&tls, TlsReading::Silent)
                    && !matches!(&tls, TlsReading::NotTls(reply) if reply.is_empty());
                reading.tls = Some(tls);
                if !answered && request.send == Sending::TlsThenHttp {
                    reading.http = Some(answers.http.clone().unwrap_or_default().into_bytes());
                }
                reading
            })
            .collect()
    }

    fn now(&self) -> SystemTime {
        self.started + self.monotonic()
    }

    fn monotonic(&self) -> Duration {
        *self
            .waited
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn catch_interrupts(&self) -> Result<()> {
        Ok(())
    }

    fn wait(&self, duration: Duration) -> Result<Wait> {
        let next = self.reading.fetch_add(1, Ordering::Relaxed) + 1;
        if next >= self.readings.len() {
            return Ok(Wait::Interrupted);
        }
        *self
            .waited
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) += duration;
        Ok(Wait::Elapsed)
    }

    fn subscribe_destroyed<'a>(
        &'a self,
        netns: Option<&Namespace>,
    ) -> Result<Box<dyn DestroyFeed + 'a>> {
        if let Some(error) = &self.subscribe_error {
            return Err(anyhow!("{error}"));
        }
        Ok(Box::new(FakeFeed {
            os: self,
            netns: netns.filter(|ns| !ns.own).map_or(0, |ns| ns.inode),
            delivered: 0,
        }))
    }

    fn read_user_file(&self, path: &Path) -> io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "No such file or directory (os error 2)",
            )
        })
    }

    fn replace_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_path_buf(), contents.to_vec());
        Ok(())
    }
}

/// A fake's destroy reports of one namespace: those scripted for the waits after the readings
/// gone by, each once.
struct FakeFeed<'a> {
    os: &'a FakeOs,
    netns: u64,
    /// Reports of the waits after readings before this one have been taken.
    delivered: usize,
}

impl DestroyFeed for FakeFeed<'_> {
    fn take(&mut self) -> DestroyedSince {
        let now = self.os.reading.load(Ordering::Relaxed);
        let due = self.delivered..now;
        let sockets = self
            .os
            .destroyed
            .iter()
            .filter(|(after, report)| due.contains(after) && report.socket.netns == self.netns)
            .map(|(_, report)| report.clone())
            .collect();
        let lost = self
            .os
            .lost
            .iter()
            .filter(|&&(after, netns, _)| due.contains(&after) && netns == self.netns)
            .map(|(_, _, count)| count)
            .sum();
        self.delivered = self.delivered.max(now);
        DestroyedSince { sockets, lost }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
