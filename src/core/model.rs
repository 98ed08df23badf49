//! The plain data every part of portstat shares: sockets as the kernel reports them, and the
//! meaning portstat adds to them. No I/O happens here.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::filter::Filter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// Socket states, named as `ss` names them. `Unconn` is a bound UDP socket with no peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Listen,
    Unconn,
    Established,
    SynSent,
    SynRecv,
    NewSynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Closing,
}

impl State {
    pub const ALL: [State; 13] = [
        State::Listen,
        State::Unconn,
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::NewSynRecv,
        State::FinWait1,
        State::FinWait2,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Closing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Listen => "LISTEN",
            State::Unconn => "UNCONN",
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::NewSynRecv => "NEW_SYN_RECV",
            State::FinWait1 => "FIN_WAIT1",
            State::FinWait2 => "FIN_WAIT2",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Closing => "CLOSING",
        }
    }

    /// Accepts a state name in any case, with `-` or `_` between words and with or without the
    /// separator before a trailing digit (`fin-wait-1`, `FIN_WAIT1`, `finwait1`).
    pub fn parse(name: &str) -> Option<State> {
        let wanted = normalise_state_name(name);
        State::ALL
            .into_iter()
            .find(|state| normalise_state_name(state.as_str()) == wanted)
    }

    /// A socket that waits for others rather than talking to one peer: TCP LISTEN, bound UDP.
    pub fn is_listening(self) -> bool {
        matches!(self, State::Listen | State::Unconn)
    }
}

fn normalise_state_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a kernel socket table, as the backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: SocketAddr,
    /// `None` for listeners and unconnected UDP sockets: they have no peer.
    pub remote: Option<SocketAddr>,
    pub state: State,
    /// `ss`'s Send-Q: bytes not yet acknowledged (TCP) or held in the send buffer (UDP); for a
    /// TCP listener, its backlog. `None` where the backend can't tell: a listener's backlog in
    /// /proc/net/tcp (it prints 0), anything from netstat2.
    pub tx_queue: Option<u32>,
    /// `ss`'s Recv-Q: bytes not yet read; for a TCP listener, connections waiting to be
    /// accepted. `None` from netstat2.
    pub rx_queue: Option<u32>,
    /// The socket's running kernel timer (retransmit, keepalive, TIME_WAIT expiry, ...), if one
    /// runs.
    pub timer: Option<Timer>,
    /// The user who created the socket; `None` where the backend can't tell (netstat2 on macOS
    /// and Windows).
    pub uid: Option<u32>,
    /// 0 when no process holds the socket (TIME_WAIT, accept queue, orphans), or when the
    /// backend has no inodes (netstat2 on macOS and Windows).
    pub inode: u64,
    /// The pids holding the socket when the backend reports them itself (netstat2); `None` when
    /// they are to be found by walking `/proc/PID/fd` (procfs).
    pub holders: Option<Vec<u32>>,
    /// For an IPv6 socket, whether it is IPV6_V6ONLY (accepts no IPv4); `None` where the backend
    /// can't tell (procfs, netstat2).
    pub v6only: Option<bool>,
    /// The inode of the network namespace the socket was read in; 0 for portstat's own when
    /// only that one is read.
    pub netns: u64,
    /// The kernel's cookie for the socket (sock_diag's `idiag_cookie`): no other socket of the
    /// host has it while the host runs, and a connection's TIME_WAIT keeps it. 0 where the
    /// backend has none (procfs, netstat2).
    pub cookie: u64,
    /// TCP internals and socket memory, read only when asked for (`-i`, `-m`) and where the
    /// backend has them; boxed so that the default listing of 100k sockets does not carry them.
    pub details: Option<Box<SocketDetails>>,
}

/// A socket's kernel timer, as `ss -o` shows it: `timer:(keepalive,119min,0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    pub kind: TimerKind,
    /// Time left, in milliseconds (saturated at `u32::MAX`, 49 days).
    pub expires_ms: u32,
    /// Retransmissions for a retransmit timer, unanswered probes for keepalive and
    /// zero-window probe timers (`idiag_retrans`).
    pub retrans: u8,
}

impl Timer {
    pub fn left(self) -> Duration {
        Duration::from_millis(self.expires_ms.into())
    }
}

/// Which timer runs, by the kernel's number for it (`idiag_timer`, the `tr` column of
/// /proc/net/tcp), named as `ss` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerKind {
    /// 1: retransmission (also the loss probe and the reordering timer), and a request
    /// socket's SYN-ACK retransmit.
    On,
    /// 2: keepalive (for an orphaned FIN_WAIT2 socket, its expiry runs on this timer too).
    Keepalive,
    /// 3: TIME_WAIT expiry.
    Timewait,
    /// 4: zero-window probe.
    Persist,
    /// 5: delayed ACK (newer kernels).
    Delack,
    /// A number this version of portstat does not know.
    Unknown,
}

impl TimerKind {
    /// The kind of timer number `number`; `None` for 0, no timer.
    pub fn of(number: u8) -> Option<TimerKind> {
        Some(match number {
            0 => return None,
            1 => TimerKind::On,
            2 => TimerKind::Keepalive,
            3 => TimerKind::Timewait,
            4 => TimerKind::Persist,
            5 => TimerKind::Delack,
            _ => TimerKind::Unknown,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::On => "on",
            TimerKind::Keepalive => "keepalive",
            TimerKind::Timewait => "timewait",
            TimerKind::Persist => "persist",
            TimerKind::Delack => "delack",
            TimerKind::Unknown => "unknown",
        }
    }
}

/// What `-i` and `-m` add to a socket, as far as the backend and the kernel gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketDetails {
    /// `-i`: TCP sockets other than TIME_WAIT and request sockets, over netlink.
    pub tcp_info: Option<TcpInfo>,
    /// `-m`: every full socket over netlink (not TIME_WAIT or request sockets).
    pub memory: Option<SocketMemory>,
}

/// TCP internals (`struct tcp_info`, `include/uapi/linux/tcp.h`) and the congestion control
/// algorithm. A field is `None` where the kernel's struct ends before it (older kernels send a
/// shorter one), never 0 for "not known".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpInfo {
    /// The congestion control algorithm (`INET_DIAG_CONG`): `cubic`, `bbr`, `reno`, ...
    pub congestion: Option<Arc<str>>,
    /// Smoothed round-trip time and its variation, in microseconds.
    pub rtt_us: Option<u32>,
    pub rttvar_us: Option<u32>,
    /// The smallest round-trip time seen, in microseconds.
    pub min_rtt_us: Option<u32>,
    /// The retransmission timeout, in microseconds.
    pub rto_us: Option<u32>,
    /// Congestion window and slow-start threshold, in segments.
    pub cwnd: Option<u32>,
    pub ssthresh: Option<u32>,
    /// Maximum segment sizes, sending and receiving.
    pub snd_mss: Option<u32>,
    pub rcv_mss: Option<u32>,
    /// Segments sent but not yet acknowledged.
    pub unacked: Option<u32>,
    /// Segments being retransmitted now, and retransmitted over the connection's life.
    pub retrans: Option<u32>,
    pub total_retrans: Option<u32>,
    /// Bytes the peer acknowledged, bytes received, bytes sent (retransmissions included).
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
    /// Bytes written but not yet sent.
    pub notsent_bytes: Option<u32>,
    /// The most recent delivery rate, in bytes per second.
    pub delivery_rate: Option<u64>,
    /// Milliseconds since data was last sent and last received.
    pub last_send_ms: Option<u32>,
    pub last_recv_ms: Option<u32>,
}

/// Socket memory (`INET_DIAG_SKMEMINFO`, `SK_MEMINFO_*` in `include/uapi/linux/sock_diag.h`),
/// in bytes, as `ss -m` shows it: `skmem:(r0,rb131072,t0,tb87040,f0,w0,o0,bl0,d0)`. A field
/// past the end of what the kernel sent (`backlog` and `drops` came later) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketMemory {
    /// Memory of data received and not yet read, and the receive buffer's size.
    pub rmem_alloc: Option<u32>,
    pub rcvbuf: Option<u32>,
    /// Memory of data sent and not yet freed, and the send buffer's size.
    pub wmem_alloc: Option<u32>,
    pub sndbuf: Option<u32>,
    /// Memory reserved ahead for the socket.
    pub fwd_alloc: Option<u32>,
    /// Memory of the send queue.
    pub wmem_queued: Option<u32>,
    /// Memory of socket options and ancillary data.
    pub optmem: Option<u32>,
    /// Memory of packets waiting for the socket's lock.
    pub backlog: Option<u32>,
    /// Packets dropped before they reached the socket.
    pub drops: Option<u32>,
}

/// Which of `ss`'s extra views a listing asks for: `-i` (queues and TCP internals), `-o`
/// (timers), `-m` (socket memory). Backends read TCP internals and memory only when asked;
/// queues and timers come with every socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    pub info: bool,
    pub timers: bool,
    pub memory: bool,
}

impl Extensions {
    pub const NONE: Extensions = Extensions {
        info: false,
        timers: false,
        memory: false,
    };

    /// Something the backend must ask the kernel for beyond the socket's row.
    pub fn needs_details(self) -> bool {
        self.info || self.memory
    }

    pub fn any(self) -> bool {
        self.info || self.timers || self.memory
    }
}

impl Socket {
    /// A socket as a test writes it: addresses as text, uid 1000, inode 1, nothing queued.
    #[cfg(test)]
    pub fn example(proto: Proto, local: &str, remote: Option<&str>, state: State) -> Socket {
        let address = |text: &str| text.parse::<SocketAddr>().expect("test address");
        Socket {
            proto,
            local: address(local),
            remote: remote.map(address),
            state,
            tx_queue: Some(0),
            rx_queue: Some(0),
            timer: None,
            uid: Some(1000),
            inode: 1,
            holders: None,
            v6only: None,
            netns: 0,
            cookie: 0,
            details: None,
        }
    }

    pub fn family(&self) -> Family {
        match self.local {
            SocketAddr::V4(_) => Family::Ipv4,
            SocketAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// IANA's three port ranges (RFC 6335).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortRange {
    WellKnown,
    Registered,
    Dynamic,
}

impl PortRange {
    pub fn of(port: u16) -> PortRange {
        match port {
            0..=1023 => PortRange::WellKnown,
            1024..=49151 => PortRange::Registered,
            _ => PortRange::Dynamic,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PortRange::WellKnown => "well-known",
            PortRange::Registered => "registered",
            PortRange::Dynamic => "dynamic",
        }
    }
}

/// The host's ephemeral port range (`net.ipv4.ip_local_port_range`), inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EphemeralRange {
    pub first: u16,
    pub last: u16,
}

impl EphemeralRange {
    /// Linux's default, used when the sysctl can't be read.
    pub const LINUX_DEFAULT: EphemeralRange = EphemeralRange {
        first: 32768,
        last: 60999,
    };

    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The range `net.ipv4.ip_local_port_range` holds; where its text is not two ports in order,
    /// Linux's default stands in and the warning says so (a guess must never pass for a reading).
    pub fn from_sysctl(text: &str) -> (EphemeralRange, Option<String>) {
        match EphemeralRange::parse(text) {
            Some(range) => (range, None),
            None => {
                let default = EphemeralRange::LINUX_DEFAULT;
                let warning = format!(
                    "net.ipv4.ip_local_port_range reads {}, not two ports in order: \
                     assuming Linux's default, {}-{}",
                    crate::core::text::quoted(text.trim()),
                    default.first,
                    default.last
                );
                (default, Some(warning))
            }
        }
    }

    /// Parses the sysctl's `first<whitespace>last` form.
    pub fn parse(text: &str) -> Option<EphemeralRange> {
        let mut numbers = text.split_ascii_whitespace().map(str::parse::<u16>);
        let first = numbers.next()?.ok()?;
        let last = numbers.next()?.ok()?;
        (first <= last && numbers.next().is_none()).then_some(EphemeralRange { first, last })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A peer connected to one of this host's listeners.
    Inbound,
    /// This host connected to a peer.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A process that holds a socket open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    pub user: Option<Arc<str>>,
    pub cmdline: String,
    /// When it started, in seconds since the Unix epoch; `who` shows it, the listing's schema
    /// does not carry it.
    #[serde(skip)]
    pub started: Option<u64>,
    /// The parent's pid, where the OS layer read it: `who` names the top-most of a socket's
    /// holders (a pre-forked server's master, not its workers).
    #[serde(skip)]
    pub ppid: Option<u32>,
}

/// Why a socket shows no owning process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerNote {
    /// No process holds it: TIME_WAIT and other sockets the kernel finishes alone.
    Kernel,
    /// A connection the kernel completed that no process has accepted yet.
    AcceptQueue,
    /// Could be held by a process whose descriptors this user (not root) can't read: another
    /// user's, which root would see.
    Hidden,
    /// Could be held by a process whose descriptors the kernel refuses even root (a
    /// non-dumpable or LSM-protected process, one of another user namespace): running as root
    /// changes nothing. Its code is `hidden`, as for [`OwnerNote::Hidden`]; a snapshot reads it
    /// back as that.
    #[serde(rename(serialize = "hidden"), skip_deserializing)]
    HiddenFromRoot,
    /// A process exited while the processes were walked: most likely the holder.
    Exited,
    /// No visible process holds it: it was closed during the scan, or its holder lives in
    /// another PID namespace (a container's, or the host's when portstat runs in one).
    NotFound,
}

impl OwnerNote {
    /// The stable code scripts see in JSON and CSV.
    pub fn code(self) -> &'static str {
        match self {
            OwnerNote::Kernel => "kernel",
            OwnerNote::AcceptQueue => "accept-queue",
            OwnerNote::Hidden | OwnerNote::HiddenFromRoot => "hidden",
            OwnerNote::Exited => "exited",
            OwnerNote::NotFound => "not-found",
        }
    }

    /// What a person sees in the table instead of a process.
    pub fn describe(self) -> &'static str {
        match self {
            OwnerNote::Kernel => "(kernel)",
            OwnerNote::AcceptQueue => "(not accepted yet)",
            OwnerNote::Hidden => "(hidden: another user's)",
            OwnerNote::HiddenFromRoot => "(hidden: unreadable to root)",
            OwnerNote::Exited => "(exited during scan)",
            OwnerNote::NotFound => "(no process found)",
        }
    }
}

/// The network namespace a socket lives in, as shown when several are: its inode, its
/// `ip netns` name, and the container whose processes live there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsLabel {
    pub inode: u64,
    pub name: Option<String>,
    pub container: Option<ContainerLabel>,
    /// portstat's own namespace (the host's, unless portstat itself runs in a container);
    /// absent from snapshots older than it.
    #[serde(default)]
    pub host: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLabel {
    /// `docker`, `containerd`, `podman`, `cri-o` or `kubepods`.
    pub runtime: String,
    pub id: String,
}

impl NetnsLabel {
    /// What the NETNS column shows: the `ip netns` name, `host` for portstat's own, the
    /// container, or the inode.
    pub fn short(&self) -> String {
        match (&self.name, &self.container) {
            (Some(name), _) => name.clone(),
            (None, _) if self.host => "host".into(),
            (None, Some(container)) => format!(
                "{}:{}",
                container.runtime,
                container.id.get(..12).unwrap_or(&container.id)
            ),
            (None, None) => self.inode.to_string(),
        }
    }
}

/// A socket with everything portstat knows about it: owners, ranges, services, direction.
#[derive(Debug, Clone)]
pub struct Entry {
    pub socket: Socket,
    pub user: Option<Arc<str>>,
    /// Shared: every socket of one process points at the same description.
    pub processes: Vec<Arc<Process>>,
    pub owner_note: Option<OwnerNote>,
    pub local_range: PortRange,
    pub remote_range: Option<PortRange>,
    pub ephemeral: bool,
    pub local_service: Option<&'static str>,
    pub remote_service: Option<&'static str>,
    pub direction: Option<Direction>,
    /// The socket's network namespace; `None` when only one namespace is shown.
    pub netns: Option<Arc<NetnsLabel>>,
}

impl Process {
    /// A process as a test writes it: a pid and a name, run by `user`.
    #[cfg(test)]
    pub fn example(pid: u32, name: &str, user: Option<&str>) -> Arc<Process> {
        Arc::new(Process {
            pid,
            name: name.into(),
            user: user.map(Arc::from),
            cmdline: name.into(),
            started: None,
            ppid: None,
        })
    }
}

impl Entry {
    /// An entry as a test writes it: the socket, its IANA ranges, and nothing looked up.
    #[cfg(test)]
    pub fn example(socket: Socket, processes: Vec<Arc<Process>>) -> Entry {
        Entry {
            local_range: PortRange::of(socket.local.port()),
            remote_range: socket.remote.map(|remote| PortRange::of(remote.port())),
            socket,
            user: None,
            processes,
            owner_note: None,
            ephemeral: false,
            local_service: None,
            remote_service: None,
            direction: None,
            netns: None,
        }
    }
}

/// `--backend`: which reader of the kernel's socket tables runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// netlink on Linux (procfs if it fails, then netstat2), netstat2 on macOS and Windows
    Auto,
    /// sock_diag netlink, as ss uses (Linux only)
    Netlink,
    /// /proc/net tables (Linux only)
    Procfs,
    /// the netstat2 crate (Linux, macOS, Windows)
    Netstat2,
}

/// A set of socket states, one bit per [`State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateSet(u16);

impl StateSet {
    pub const EMPTY: StateSet = StateSet(0);

    pub fn of(states: impl IntoIterator<Item = State>) -> StateSet {
        StateSet(states.into_iter().fold(0, |bits, state| bits | bit(state)))
    }

    pub fn contains(self, state: State) -> bool {
        self.0 & bit(state) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The states in the set, in [`State::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = State> {
        State::ALL
            .into_iter()
            .filter(move |&state| self.contains(state))
    }
}

fn bit(state: State) -> u16 {
    // `State` has 13 fieldless variants, numbered 0..=12.
    1 << (state as u16)
}

/// The four socket tables every backend reads, in the order they are read: each one's
/// `/proc/net` name (which warnings use), protocol, and whether it is the IPv6 one.
pub const TABLES: [(&str, Proto, bool); 4] = [
    ("tcp", Proto::Tcp, false),
    ("tcp6", Proto::Tcp, true),
    ("udp", Proto::Udp, false),
    ("udp6", Proto::Udp, true),
];

/// Which of the four tables a query needs, in which states, and which sockets of them; the other
/// tables are not read at all. Backends that can ask the kernel for given states and addresses
/// only (netlink) do; the others read everything, and the query filters afterwards anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRequest {
    pub tcp: bool,
    pub udp: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// The states worth reading; empty means every state.
    pub states: StateSet,
    /// Only sockets that pass this are wanted; `None` means every socket.
    pub filter: Option<Arc<Filter>>,
    /// The extra views asked for: netlink asks the kernel for TCP internals and memory only
    /// then.
    pub extensions: Extensions,
    /// What to spend less of where a backend must choose.
    pub saves: Saves,
}

/// What a read of the tables keeps small where time and CPU pull apart (netlink: both TCP
/// tables in one walk of the kernel's hash tables, or one walk per family on two cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saves {
    /// A one-off answer: as soon as it can be had.
    Time,
    /// One reading of many (`watch`, every interval for hours): the least CPU.
    Cpu,
}

impl TableRequest {
    pub const ALL: TableRequest = TableRequest {
        tcp: true,
        udp: true,
        ipv4: true,
        ipv6: true,
        states: StateSet::EMPTY,
        filter: None,
        extensions: Extensions::NONE,
        saves: Saves::Time,
    };

    pub fn wants(&self, proto: Proto, ipv6: bool) -> bool {
        let proto_wanted = match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        proto_wanted && if ipv6 { self.ipv6 } else { self.ipv4 }
    }

    /// Just one table (`proto`, and IPv6 or IPv4), in the same states, with the same filter.
    pub fn only(&self, proto: Proto, ipv6: bool) -> TableRequest {
        TableRequest {
            tcp: proto == Proto::Tcp,
            udp: proto == Proto::Udp,
            ipv4: !ipv6,
            ipv6,
            states: self.states,
            filter: self.filter.clone(),
            extensions: self.extensions,
            saves: self.saves,
        }
    }
}

/// What a backend read: the sockets, and what it could not read (said to the user, not fatal).
#[derive(Debug, Default)]
pub struct TableRead {
    pub sockets: Vec<Socket>,
    pub warnings: Vec<String>,
    /// The sockets carry inodes, so inode 0 means no file refers to a socket.
    pub inodes_known: bool,
}

/// Where the socket tables come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The running kernel, in the tool's own network namespace.
    Live,
    /// Recorded `/proc/net` tables in a directory (files named tcp, tcp6, udp, udp6).
    Recorded(PathBuf),
}

/// A socket the kernel reported destroyed (sock_diag's destroy groups), as it was at the end:
/// TCP's state is then always CLOSE, and the kernel sends neither uid nor inode (`uid` is
/// `None`, `inode` 0). `netns` is the namespace it was subscribed in, as a reading marks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroyed {
    pub socket: Socket,
    /// A TCP socket's byte counts (tcp_info), as `ss -i` shows them.
    pub bytes: Option<TcpBytes>,
}

/// tcp_info's `bytes_acked` and `bytes_received`: the kernel counts a SYN and a FIN it sent
/// (acked) or received as one byte each, and an abortive close (`SO_LINGER` 0) clears both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcpBytes {
    pub acked: u64,
    pub received: u64,
}

/// What one namespace's subscription received since it was last asked.
#[derive(Debug, Default)]
pub struct DestroyedSince {
    /// Oldest first.
    pub sockets: Vec<Destroyed>,
    /// Reports the kernel could not queue (the receive buffer was full), or portstat could not
    /// keep.
    pub lost: u64,
}

/// The result of one walk over every process's open files.
#[derive(Debug, Default)]
pub struct Holders {
    /// Socket inode -> the pids holding it, each once, in ascending order.
    pub by_inode: HashMap<u64, Vec<u32>>,
    /// Processes whose descriptors could not be read, in pid order: any of them could hold a
    /// socket the walk found no holder for.
    pub unreadable: Vec<Unreadable>,
    /// Processes that exited while the walk was under way.
    pub vanished: usize,
    /// The network namespace the walk ran in (portstat's own), where it could be read: a socket
    /// read without `--netns` (namespace 0) lives there.
    pub own_netns: Option<u64>,
}

impl Holders {
    pub fn pids(&self, inode: u64) -> &[u32] {
        self.by_inode.get(&inode).map_or(&[], Vec::as_slice)
    }
}

/// A process whose descriptors could not be read, and what could still be learnt of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// `None` when not known (the list of processes could not be read, say).
    pub pid: Option<u32>,
    /// Its uids (real, effective, saved, filesystem), each once; empty when unknown.
    pub uids: Vec<u32>,
    /// The inode of its network namespace, where that could be read.
    pub netns: Option<u64>,
}

impl Unreadable {
    /// A process nothing is known of: it could hold any socket.
    pub fn unknown() -> Unreadable {
        Unreadable {
            pid: None,
            uids: Vec::new(),
            netns: None,
        }
    }

    /// Whether this process could be the holder of a socket created by `uid` (`None`: not
    /// known) in network namespace `netns` (`None`: not known). A socket records the user who
    /// created it, and a process created its sockets as one of its uids or inherited them from
    /// a parent that did; sockets outlive a change of namespace only rarely (a `setns` after
    /// the socket was made, a descriptor passed across namespaces), so a process in another
    /// namespace is not counted.
    pub fn could_hold(&self, uid: Option<u32>, netns: Option<u64>) -> bool {
        let uid_fits = match uid {
            Some(uid) => self.uids.is_empty() || self.uids.contains(&uid),
            None => true,
        };
        let netns_fits = match (self.netns, netns) {
            (Some(own), Some(socket)) => own == socket,
            _ => true,
        };
        uid_fits && netns_fits
    }
}

/// One network namespace, and how to get into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace's inode: what `/proc/PID/ns/net` links to (`net:[INODE]`).
    pub inode: u64,
    /// Its `ip netns` name, if it has one.
    pub name: Option<String>,
    /// A file that is the namespace: `/run/netns/NAME` or `/proc/PID/ns/net`.
    pub path: PathBuf,
    /// A process inside it, if any: its `/proc/PID/net` shows the namespace's tables.
    pub pid: Option<u32>,
    /// portstat's own namespace.
    pub own: bool,
}

/// An address an interface holds, with its prefix length: the interface's directly connected
/// network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix: u8,
    pub interface: String,
}

/// The zone of an IPv6 address that needs one to mean anything (link-local `fe80::/10`, and
/// interface- or link-local multicast): the index of its interface, the kernel's scope id, as
/// `SocketAddrV6` holds it; `None` for every other address, and where no zone is known.
pub fn zone_of(address: SocketAddr) -> Option<u32> {
    match address {
        SocketAddr::V6(v6) if v6.scope_id() != 0 && needs_zone(v6.ip()) => Some(v6.scope_id()),
        _ => None,
    }
}

/// Whether an IPv6 address means something only together with an interface: the kernel's
/// `__ipv6_addr_needs_scope_id` (link-local unicast, interface- and link-local multicast).
pub fn needs_zone(ip: &std::net::Ipv6Addr) -> bool {
    let [first, ..] = ip.segments();
    first & 0xffc0 == 0xfe80 || (first & 0xff00 == 0xff00 && matches!(first & 0x000f, 1 | 2))
}

/// Interface names by network namespace (a socket's `netns`) and index: what a zone is shown
/// as, `fe80::1%eth0` as `ss` writes it rather than Rust's `fe80::1%2`. Looked up once per run,
/// only where some socket has a zone; an index it does not know is shown as the number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zones {
    names: HashMap<(u64, u32), Arc<str>>,
}

impl Zones {
    pub fn insert(&mut self, netns: u64, index: u32, name: &str) {
        self.names.insert((netns, index), Arc::from(name));
    }

    /// The zone of `address` in namespace `netns`, as shown: the interface's name, else the
    /// index as a number; `None` when the address has no zone.
    pub fn zone(&self, netns: u64, address: SocketAddr) -> Option<Arc<str>> {
        let index = zone_of(address)?;
        Some(
            self.names
                .get(&(netns, index))
                .cloned()
                .unwrap_or_else(|| Arc::from(index.to_string())),
        )
    }

    /// An address and port as people write them, the zone by name: `[fe80::1%eth0]:53`,
    /// `127.0.0.1:53`, `[::1]:53`.
    pub fn address(&self, netns: u64, address: SocketAddr) -> String {
        match (self.zone(netns, address), address) {
            (Some(zone), SocketAddr::V6(v6)) => format!("[{}%{zone}]:{}", v6.ip(), v6.port()),
            _ => match address {
                // A scope id the address does not need is not shown, as the kernel ignores it.
                SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
                SocketAddr::V4(v4) => v4.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_sets_hold_exactly_their_states() {
        assert!(StateSet::EMPTY.is_empty());
        assert_eq!(StateSet::default(), StateSet::EMPTY);
        let set = StateSet::of([State::Listen, State::Closing, State::Listen]);
        assert!(set.contains(State::Listen) && set.contains(State::Closing));
        assert!(!set.contains(State::Unconn) && !set.is_empty());
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [State::Listen, State::Closing]
        );
        let every = StateSet::of(State::ALL);
        assert_eq!(every.iter().collect::<Vec<_>>(), State::ALL);
    }

    #[test]
    fn one_table_keeps_the_states() {
        let wanted = TableRequest {
            states: StateSet::of([State::Listen]),
            ..TableRequest::ALL
        };
        let udp6 = wanted.only(Proto::Udp, true);
        assert!(udp6.wants(Proto::Udp, true));
        assert!(!udp6.wants(Proto::Udp, false) && !udp6.wants(Proto::Tcp, true));
        assert_eq!(udp6.states, wanted.states);
    }

    #[test]
    fn state_names_parse_in_any_spelling() {
        assert_eq!(State::parse("time-wait"), Some(State::TimeWait));
        assert_eq!(State::parse("TIME_WAIT"), Some(State::TimeWait));
        assert_eq!(State::parse("Fin-Wait-1"), Some(State::FinWait1));
        assert_eq!(State::parse("listen"), Some(State::Listen));
        assert_eq!(State::parse("bogus"), None);
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
    }

    #[test]
    fn port_ranges_follow_rfc_6335_boundaries() {
        assert_eq!(PortRange::of(0), PortRange::WellKnown);
        assert_eq!(PortRange::of(1023), PortRange::WellKnown);
        assert_eq!(PortRange::of(1024), PortRange::Registered);
        assert_eq!(PortRange::of(49151), PortRange::Registered);
        assert_eq!(PortRange::of(49152), PortRange::Dynamic);
        assert_eq!(PortRange::of(65535), PortRange::Dynamic);
    }

    #[test]
    fn ephemeral_range_is_inclusive() {
        let range = EphemeralRange {
            first: 1000,
            last: 2000,
        };
        assert!(range.contains(1000) && range.contains(2000));
        assert!(!range.contains(999) && !range.contains(2001));
    }

    #[test]
    fn port_range_sysctl_parses_tab_separated_pair() {
        assert_eq!(
            EphemeralRange::parse("32768\t60999\n"),
            Some(EphemeralRange {
                first: 32768,
                last: 60999
            })
        );
    }

    #[test]
    fn malformed_port_range_sysctl_is_rejected() {
        assert_eq!(EphemeralRange::parse(""), None);
        assert_eq!(EphemeralRange::parse("32768"), None);
        assert_eq!(EphemeralRange::parse("60999 32768"), None);
        assert_eq!(EphemeralRange::parse("1 2 3"), None);
        assert_eq!(EphemeralRange::parse("a b"), None);
    }

    #[test]
    fn zones_are_shown_by_interface_name_where_the_address_needs_one() {
        let address = |text: &str| text.parse::<SocketAddr>().unwrap();
        let mut zones = Zones::default();
        zones.insert(0, 2, "va");
        let link_local = address("[fe80::7c4b:a1ff:fec6:90b1%2]:53");
        assert_eq!(zone_of(link_local), Some(2));
        assert_eq!(
            zones.address(0, link_local),
            "[fe80::7c4b:a1ff:fec6:90b1%va]:53"
        );
        assert_eq!(zones.zone(0, link_local).as_deref(), Some("va"));
        // Another namespace's index 2 is another interface: its number is shown.
        assert_eq!(
            zones.address(7, link_local),
            "[fe80::7c4b:a1ff:fec6:90b1%2]:53"
        );
        assert_eq!(zones.address(0, address("[fe80::1]:53")), "[fe80::1]:53");
        assert_eq!(zone_of(address("[fe80::1]:53")), None);
        // A scope id on a global address means nothing and is not shown.
        assert_eq!(
            zones.address(0, address("[2001:db8::1%2]:53")),
            "[2001:db8::1]:53"
        );
        assert_eq!(zones.address(0, address("10.0.0.1:53")), "10.0.0.1:53");
        assert_eq!(zone_of(address("[ff02::fb%2]:5353")), Some(2));
        assert_eq!(zone_of(address("[ff05::fb%2]:5353")), None);
        assert!(needs_zone(&"febf::1".parse().unwrap()));
        assert!(!needs_zone(&"fec0::1".parse().unwrap()));
    }
}
