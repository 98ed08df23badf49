//! Linux: the kernel's socket tables in `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! Each table is a header line, then one line per socket as the kernel's `seq_file` code prints
//! it (`get_tcp4_sock`, `get_timewait4_sock`, `get_openreq4` in `net/ipv4/tcp_ipv4.c`,
//! `udp4_format_sock` in `net/ipv4/udp.c`, and their IPv6 twins):
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ...
//!    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10808 ...
//! ```
//!
//! Only the first ten fields are read; whatever follows (refcount, pointer, TCP internals, UDP
//! drops) differs between the formats and is ignored.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::kernel::state_of;
use crate::core::error::UsageError;
use crate::core::model::TABLES;
use crate::core::model::{
    Proto, Socket, State, TableRead, TableRequest, Timer, TimerKind, needs_zone,
};

/// Fields a socket line needs: sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout,
/// inode.
const NEEDED_FIELDS: usize = 10;

/// Reads the wanted tables from `dir` (normally `/proc/net`).
///
/// A wanted table whose file does not exist (IPv6 disabled, say) is skipped silently; one that
/// exists but can't be read becomes a warning. It is an error when no wanted table exists at
/// all, or when every wanted table that exists failed to read. Asking for no table at all reads
/// nothing and succeeds.
pub fn read(dir: &Path, wanted: TableRequest) -> anyhow::Result<TableRead> {
    let mut result = TableRead {
        inodes_known: true,
        ..TableRead::default()
    };
    let mut any_wanted = false;
    let mut any_read = false;
    let mut first_failure: Option<(String, io::Error)> = None;

    for (name, proto, ipv6) in TABLES {
        if !wanted.wants(proto, ipv6) {
            continue;
        }
        any_wanted = true;
        let path = dir.join(name);
        match super::host::read_regular_file(&path, u64::MAX) {
            Ok(text) => {
                any_read = true;
                let source = path.display().to_string();
                parse_table(
                    &text,
                    proto,
                    &source,
                    &mut result.sockets,
                    &mut result.warnings,
                );
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            // A FIFO or a device where a recorded table should be is bad input: reading it
            // could hang or never end, so it is refused before it is opened.
            Err(err) if super::host::is_special_file(&err) => {
                return Err(UsageError(format!(
                    "cannot read socket table {}: {err}",
                    path.display()
                ))
                .into());
            }
            Err(err) => {
                let source = path.display().to_string();
                result
                    .warnings
                    .push(format!("could not read {source}: {err}"));
                if first_failure.is_none() {
                    first_failure = Some((source, err));
                }
            }
        }
    }

    if !any_wanted || any_read {
        if is_this_namespace(dir) {
            give_zones(&mut result.sockets, link_local_addresses);
        }
        return Ok(result);
    }
    match first_failure {
        Some((source, err)) => {
            let failed = result.warnings.len();
            Err(err)
                .with_context(|| format!("could not read {source}"))
                .with_context(|| {
                    format!(
                        "could not read any socket table under {} ({failed} failed)",
                        dir.display()
                    )
                })
        }
        None => anyhow::bail!("no socket tables under {}", dir.display()),
    }
}

/// `/proc/net` and `/proc/thread-self/net` are the tables of the namespace the calling thread
/// is in, whose interfaces it can list; recorded tables and another process's `/proc/PID/net`
/// are not, and their link-local addresses stay without a zone.
fn is_this_namespace(dir: &Path) -> bool {
    dir == Path::new("/proc/net") || dir == Path::new("/proc/thread-self/net")
}

/// This namespace's link-local addresses, each with the index of an interface holding it.
fn link_local_addresses() -> Vec<(Ipv6Addr, u32)> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    interfaces
        .into_iter()
        .filter_map(|interface| match (interface.ip(), interface.index) {
            (std::net::IpAddr::V6(ip), Some(index)) if needs_zone(&ip) => Some((ip, index)),
            _ => None,
        })
        .collect()
}

/// `/proc/net/tcp6` prints no interface, so a link-local address there has no zone. It gets one
/// where the address itself tells it: an address exactly one interface holds (the kernel binds
/// a link-local address only with the scope id of an interface that has it, unless the socket
/// is IP_FREEBIND or transparent). The same zone goes to a link-local peer, which can only be
/// on that interface. An address on several interfaces (`fe80::1` added to two, say), or on
/// none, stays without one: netlink, which reads the socket's interface, shows it there.
/// `interfaces` is asked only when some socket has such an address.
pub fn give_zones(sockets: &mut [Socket], interfaces: impl FnOnce() -> Vec<(Ipv6Addr, u32)>) {
    let unzoned = |address: &SocketAddr| match address {
        SocketAddr::V6(v6) => v6.scope_id() == 0 && needs_zone(v6.ip()),
        SocketAddr::V4(_) => false,
    };
    if !sockets.iter().any(|socket| unzoned(&socket.local)) {
        return;
    }
    let interfaces = interfaces();
    let only_holder = |ip: &Ipv6Addr| {
        let mut holders = interfaces
            .iter()
            .filter(|(held, _)| held == ip)
            .map(|&(_, index)| index);
        let first = holders.next()?;
        holders.all(|index| index == first).then_some(first)
    };
    for socket in sockets.iter_mut() {
        let SocketAddr::V6(local) = &mut socket.local else {
            continue;
        };
        if local.scope_id() != 0 || !needs_zone(local.ip()) {
            continue;
        }
        let Some(index) = only_holder(local.ip()) else {
            continue;
        };
        local.set_scope_id(index);
        if let Some(SocketAddr::V6(remote)) = &mut socket.remote
            && needs_zone(remote.ip())
        {
            remote.set_scope_id(index);
        }
    }
}

/// Parses one table's text, appending its sockets to `sockets`.
///
/// The first line is the header and is skipped, unless it is a socket line (a table without
/// its header): that socket is kept, with a warning. A line that can't be understood, or is not
/// UTF-8, is skipped with one warning naming `source` and its 1-based line number; blank lines
/// are ignored. Never panics, whatever `text` holds.
pub fn parse_table(
    text: impl AsRef<[u8]>,
    proto: Proto,
    source: &str,
    sockets: &mut Vec<Socket>,
    warnings: &mut Vec<String>,
) {
    let text = text.as_ref();
    // One line per socket; counting newlines is cheap and saves regrowing a 100k-entry Vec.
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    sockets.reserve(lines);

    let mut lines = text.split(|&b| b == b'\n');
    if text.ends_with(b"\n") {
        // The empty piece after the last newline is no line (as `str::lines` has it).
        lines.next_back();
    }
    for (index, line) in lines.enumerate() {
        let number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = match std::str::from_utf8(line) {
            Ok(line) => line,
            Err(error) => {
                warnings.push(format!(
                    "{source} line {number}: not valid UTF-8 (byte {} at column {}), line \
                     skipped",
                    line.get(error.valid_up_to())
                        .map_or_else(String::new, |byte| format!("{byte:#04x}")),
                    error.valid_up_to() + 1
                ));
                continue;
            }
        };
        match parse_line(line, proto) {
            Ok(Some(socket)) => {
                if index == 0 {
                    warnings.push(format!(
                        "{source} line 1: a socket where the header line should be (no \
                         header?); read as a socket"
                    ));
                }
                sockets.push(socket);
            }
            Ok(None) => {}
            // The header, or whatever stands in its place.
            Err(_) if index == 0 => {}
            Err(problem) => {
                warnings.push(format!("{source} line {number}: {problem}, line skipped"));
            }
        }
    }
}

/// What was wrong with a line. Borrows the offending field, so a good line allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineError<'a> {
    Truncated {
        fields: usize,
    },
    /// All ten needed fields parse, but the line has too few after them for its format: a
    /// column is missing, and the rest are shifted.
    FieldCount {
        fields: usize,
        expected: &'static str,
    },
    BadField {
        what: &'static str,
        field: &'a str,
    },
    FamilyMismatch {
        remote: &'a str,
    },
    UnknownState {
        field: &'a str,
    },
}

impl fmt::Display for LineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LineError::Truncated { fields } => {
                write!(
                    f,
                    "truncated line (only {fields} of {NEEDED_FIELDS} fields)"
                )
            }
            LineError::FieldCount { fields, expected } => write!(
                f,
                "{fields} fields where {expected}: a column is missing and the rest are shifted"
            ),
            LineError::BadField { what, field } => write!(f, "bad {what} {:?}", shorten(field)),
            LineError::FamilyMismatch { remote } => write!(
                f,
                "remote address {:?} is not of the local address's family",
                shorten(remote)
            ),
            LineError::UnknownState { field } => write!(f, "unknown state {:?}", shorten(field)),
        }
    }
}

/// At most 40 characters of a field, cut on a character boundary, for quoting in a warning.
fn shorten(field: &str) -> &str {
    match field.char_indices().nth(40) {
        Some((end, _)) => field.get(..end).unwrap_or(field),
        None => field,
    }
}

/// One line: `Ok(None)` for a blank line, `Ok(Some)` for a socket.
fn parse_line(line: &str, proto: Proto) -> Result<Option<Socket>, LineError<'_>> {
    let mut fields = line.split_ascii_whitespace();
    let mut taken = 0;
    let mut next = || {
        let field = fields.next();
        if field.is_some() {
            taken += 1;
        }
        field.ok_or(LineError::Truncated { fields: taken })
    };

    let sl = match next() {
        Ok(sl) => sl,
        Err(_) => return Ok(None),
    };
    let bad = |what, field| LineError::BadField { what, field };

    match sl.strip_suffix(':') {
        Some(number) if is_digits(number) => {}
        _ => return Err(bad("sl field", sl)),
    }

    let local_field = next()?;
    let local = parse_addr(local_field).ok_or(bad("local address", local_field))?;
    let remote_field = next()?;
    let remote = parse_addr(remote_field).ok_or(bad("remote address", remote_field))?;
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(LineError::FamilyMismatch {
            remote: remote_field,
        });
    }

    let st_field = next()?;
    let st = hex_u8(st_field).ok_or(bad("state", st_field))?;
    let state = state_of(proto, st).ok_or(LineError::UnknownState { field: st_field })?;

    let queues = next()?;
    let (tx_queue, rx_queue) = queues
        .split_once(':')
        .and_then(|(tx, rx)| Some((hex_u32(tx)?, hex_u32(rx)?)))
        .ok_or(bad("tx_queue:rx_queue", queues))?;

    let timer_field = next()?;
    let (tr, when) = timer_field
        .split_once(':')
        .and_then(|(tr, when)| Some((hex_u8(tr)?, hex_u64(when)?)))
        .ok_or(bad("tr:tm->when", timer_field))?;

    let retransmits = next()?;
    let retransmits = hex_u32(retransmits).ok_or(bad("retrnsmt", retransmits))?;

    let uid_field = next()?;
    let uid = dec_u32(uid_field).ok_or(bad("uid", uid_field))?;

    // For a full TCP socket, the probes sent without an answer (`icsk_probes_out`).
    let timeout = next()?;
    let probes = dec_i64(timeout).ok_or(bad("timeout", timeout))?;

    let inode_field = next()?;
    let inode = dec_u64(inode_field).ok_or(bad("inode", inode_field))?;

    // Whatever follows the inode is not read, but how many fields there are tells whether one
    // is missing before it (a missing timeout would make the refcount the inode).
    let fields = NEEDED_FIELDS + fields.count();
    if let Some(expected) = field_count_problem(proto, fields) {
        return Err(LineError::FieldCount { fields, expected });
    }

    let unspecified = match remote {
        SocketAddr::V4(addr) => addr.ip().is_unspecified(),
        SocketAddr::V6(addr) => addr.ip().is_unspecified(),
    };
    let remote = if unspecified && remote.port() == 0 {
        None
    } else {
        Some(remote)
    };

    Ok(Some(Socket {
        proto,
        local,
        remote,
        state,
        // A listener's first field is `write_seq - snd_una`, 0: its backlog is not printed.
        tx_queue: (!(proto == Proto::Tcp && state == State::Listen)).then_some(tx_queue),
        rx_queue: Some(rx_queue),
        timer: timer(tr, when, retransmits, probes),
        uid: Some(uid),
        inode,
        holders: None,
        v6only: None,
        netns: 0,
        cookie: 0,
        details: None,
    }))
}

/// The timer of a line: `tr` its kind, `when` its time left in clock ticks. What sock_diag
/// reports as `idiag_retrans` is `retrnsmt` for a retransmit timer and the unanswered probes
/// (the `timeout` column) for keepalive and zero-window probe timers (`get_tcp4_sock` and
/// `inet_sk_diag_fill` read the same fields).
fn timer(tr: u8, when: u64, retransmits: u32, probes: i64) -> Option<Timer> {
    let kind = TimerKind::of(tr)?;
    let retrans = match kind {
        TimerKind::Keepalive | TimerKind::Persist => probes,
        _ => retransmits.into(),
    };
    Some(Timer {
        kind,
        expires_ms: u32::try_from(clock_ticks(when).as_millis()).unwrap_or(u32::MAX),
        retrans: u8::try_from(retrans.max(0)).unwrap_or(u8::MAX),
    })
}

/// What is wrong with a line of `fields` fields, if anything. The kernel prints (since 2.6.27):
///
/// - TCP: 17 fields for a full socket (`get_tcp4_sock`: ten, then refcount, pointer, rto, ato,
///   quick/pingpong, cwnd, ssthresh), 12 for a timewait or request socket (`get_timewait4_sock`,
///   `get_openreq4`: ten, then refcount, pointer);
/// - UDP: 13 (`udp4_format_sock`: ten, then refcount, pointer, drops).
///
/// More fields than that are allowed (a later kernel may add some at the end).
fn field_count_problem(proto: Proto, fields: usize) -> Option<&'static str> {
    match proto {
        Proto::Tcp if fields == 12 || fields >= 17 => None,
        Proto::Tcp => Some("a tcp line has 12, or 17 or more"),
        Proto::Udp if fields >= 13 => None,
        Proto::Udp => Some("a udp line has 13 or more"),
    }
}

/// The kernel prints timers in clock ticks of `USER_HZ`, which is 100 on every Linux ABI.
fn clock_ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks.saturating_mul(10))
}

/// `ADDR:PORT` with ADDR 8 (IPv4) or 32 (IPv6) hex digits, each 32-bit word printed as a
/// native-endian `u32`, and PORT 4 hex digits.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = hex_u16(port)?;
    if !is_hex(addr) {
        return None;
    }
    match addr.len() {
        8 => {
            let word = u32::from_str_radix(addr, 16).ok()?;
            let ip = Ipv4Addr::from(word.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (index, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = addr.get(index * 8..index * 8 + 8)?;
                let word = u32::from_str_radix(word, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            let ip = Ipv6Addr::from(bytes);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)))
        }
        _ => None,
    }
}

// `from_str_radix` and `parse` accept a leading `+`; the kernel never prints one, so these insist
// on digits only.

fn is_hex(field: &str) -> bool {
    !field.is_empty() && field.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_digits(field: &str) -> bool {
    !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit())
}

fn hex_u8(field: &str) -> Option<u8> {
    is_hex(field)
        .then(|| u8::from_str_radix(field, 16).ok())
        .flatten()
}

fn hex_u16(field: &str) -> Option<u16> {
    is_hex(field)
        .then(|| u16::from_str_radix(field, 16).ok())
        .flatten()
}

fn hex_u32(field: &str) -> Option<u32> {
    is_hex(field)
        .then(|| u32::from_str_radix(field, 16).ok())
        .flatten()
}

fn hex_u64(field: &str) -> Option<u64> {
    is_hex(field)
        .then(|| u64::from_str_radix(field, 16).ok())
        .flatten()
}

fn dec_u32(field: &str) -> Option<u32> {
    is_digits(field).then(|| field.parse().ok()).flatten()
}

fn dec_u64(field: &str) -> Option<u64> {
    is_digits(field).then(|| field.parse().ok()).flatten()
}

/// The `timeout` column is printed with `%d`; only its well-formedness matters.
fn dec_i64(field: &str) -> Option<i64> {
    let digits = field.strip_prefix('-').unwrap_or(field);
    is_digits(digits).then(|| field.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::State;

    const RECORDED_TCP: &str = include_str!("../../fixtures/proc-net/recorded/tcp");
    const RECORDED_TCP6: &str = include_str!("../../fixtures/proc-net/recorded/tcp6");
    const RECORDED_UDP: &str = include_str!("../../fixtures/proc-net/recorded/udp");
    const RECORDED_UDP6: &str = include_str!("../../fixtures/proc-net/recorded/udp6");
    const EVERY_STATE_TCP: &str = include_str!("../../fixtures/proc-net/every-state/tcp");
    const MALFORMED_TCP: &str = include_str!("../../fixtures/proc-net/malformed/tcp");
    const EMPTY_TCP: &str = include_str!("../../fixtures/proc-net/empty/tcp");
    const EMPTY_UDP: &str = include_str!("../../fixtures/proc-net/empty/udp");

    fn fixture_dir(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/proc-net")
            .join(name)
    }

    /// Parses `text` and insists on no warnings.
    fn parse_clean(text: &str, proto: Proto, source: &str) -> Vec<Socket> {
        let (sockets, warnings) = parse(text, proto, source);
        assert_eq!(warnings, Vec::<String>::new());
        sockets
    }

    fn parse(text: &str, proto: Proto, source: &str) -> (Vec<Socket>, Vec<String>) {
        let mut sockets = Vec::new();
        let mut warnings = Vec::new();
        parse_table(text, proto, source, &mut sockets, &mut warnings);
        (sockets, warnings)
    }

    fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    fn v6(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(ip.parse().unwrap(), port, 0, 0))
    }

    const LO: [u8; 4] = [127, 0, 0, 1];
    const ANY: [u8; 4] = [0, 0, 0, 0];

    #[allow(clippy::too_many_arguments)]
    fn socket(
        proto: Proto,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        state: State,
        tx_queue: u32,
        rx_queue: u32,
        timer: Option<(u8, u64)>,
        uid: u32,
        inode: u64,
    ) -> Socket {
        Socket {
            proto,
            local,
            remote,
            state,
            tx_queue: (!(proto == Proto::Tcp && state == State::Listen)).then_some(tx_queue),
            rx_queue: Some(rx_queue),
            timer: timer.map(|(kind, ticks)| Timer {
                kind: TimerKind::of(kind).unwrap(),
                expires_ms: u32::try_from(clock_ticks(ticks).as_millis()).unwrap(),
                retrans: 0,
            }),
            uid: Some(uid),
            inode,
            holders: None,
            v6only: None,
            netns: 0,
            cookie: 0,
            details: None,
        }
    }

    fn find(sockets: &[Socket], local: SocketAddr, remote: Option<SocketAddr>) -> &Socket {
        let mut found = sockets
            .iter()
            .filter(|s| s.local == local && s.remote == remote);
        let socket = found
            .next()
            .unwrap_or_else(|| panic!("no socket {local} -> {remote:?}"));
        assert!(found.next().is_none(), "two sockets {local} -> {remote:?}");
        socket
    }

    #[test]
    fn recorded_tcp_parses_every_line_exactly() {
        use State::*;
        let t = Proto::Tcp;
        let sockets = parse_clean(RECORDED_TCP, t, "/proc/net/tcp");
        #[rustfmt::skip]
        let expected = vec![
            socket(t, v4(LO, 7008), None, Listen, 0, 0, None, 65534, 10828),
            socket(t, v4(LO, 7001), None, Listen, 0, 0, None, 0, 10808),
            socket(t, v4(LO, 7005), None, Listen, 0, 0, None, 0, 10818),
            // One connection waits in 7007's accept queue: rx_queue counts it.
            socket(t, v4(LO, 7007), None, Listen, 0, 1, None, 0, 10826),
            socket(t, v4(LO, 7006), None, Listen, 0, 0, None, 0, 10821),
            socket(t, v4(ANY, 7003), None, Listen, 0, 0, None, 0, 10810),
            // The server side holds 100 unread bytes.
            socket(t, v4(LO, 7001), Some(v4(LO, 41001)), Established, 0, 100, None, 0, 10813),
            socket(t, v4(LO, 41007), Some(v4(LO, 7007)), Established, 0, 0, None, 0, 10827),
            socket(t, v4(LO, 41001), Some(v4(LO, 7001)), Established, 0, 0, None, 0, 10812),
            // CLOSE_WAIT: the peer's FIN counts as one unread byte.
            socket(t, v4(LO, 7006), Some(v4(LO, 41016)), CloseWait, 0, 1, None, 0, 10825),
            // FIN_WAIT2 after shutdown(SHUT_WR): still a full socket with an inode, no timer.
            socket(t, v4(LO, 41006), Some(v4(LO, 7006)), FinWait2, 0, 0, None, 0, 10822),
            // FIN_WAIT2 after close(): the kernel printed an orphaned timewait socket.
            socket(t, v4(LO, 41016), Some(v4(LO, 7006)), FinWait2, 0, 0, Some((3, 0x1752)), 0, 0),
            socket(t, v4(LO, 41005), Some(v4(LO, 7005)), TimeWait, 0, 0, Some((3, 0x1752)), 0, 0),
            socket(t, v4(LO, 7006), Some(v4(LO, 41006)), CloseWait, 0, 1, None, 0, 10823),
            socket(t, v4(LO, 41004), Some(v4(LO, 7004)), Established, 0, 0, None, 0, 10816),
            // Not accepted yet: no inode, 5 bytes already received.
            socket(t, v4(LO, 7007), Some(v4(LO, 41007)), Established, 0, 5, None, 0, 0),
        ];
        assert_eq!(sockets, expected);
    }

    #[test]
    fn recorded_tcp6_has_ipv6_and_ipv4_mapped_sockets() {
        use State::*;
        let t = Proto::Tcp;
        let sockets = parse_clean(RECORDED_TCP6, t, "/proc/net/tcp6");
        #[rustfmt::skip]
        let expected = vec![
            socket(t, v6("::", 7004), None, Listen, 0, 0, None, 0, 10811),
            socket(t, v6("::1", 7002), None, Listen, 0, 0, None, 0, 10809),
            // The client has SO_KEEPALIVE: timer 2 with 7200 s minus a little, in ticks.
            socket(t, v6("::1", 41002), Some(v6("::1", 7002)), Established, 0, 0, Some((2, 0xAFC61)), 0, 10814),
            socket(t, v6("::1", 7002), Some(v6("::1", 41002)), Established, 0, 0, None, 0, 10815),
            socket(
                t,
                v6("::ffff:127.0.0.1", 7004),
                Some(v6("::ffff:127.0.0.1", 41004)),
                Established,
                0,
                0,
                None,
                0,
                10817,
            ),
        ];
        assert_eq!(sockets, expected);
    }

    #[test]
    fn ipv4_mapped_addresses_stay_ipv6() {
        let sockets = parse_clean(RECORDED_TCP6, Proto::Tcp, "tcp6");
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
        let socket = find(
            &sockets,
            v6("::ffff:127.0.0.1", 7004),
            Some(v6("::ffff:127.0.0.1", 41004)),
        );
        match socket.local {
            SocketAddr::V6(local) => assert_eq!(*local.ip(), mapped),
            SocketAddr::V4(_) => panic!("mapped address turned into V4"),
        }
        assert_eq!(socket.family(), crate::core::model::Family::Ipv6);
    }

    #[test]
    fn recorded_udp_connected_and_not() {
        let u = Proto::Udp;
        let sockets = parse_clean(RECORDED_UDP, u, "/proc/net/udp");
        #[rustfmt::skip]
        let expected = vec![
            socket(u, v4(LO, 41101), Some(v4(LO, 7101)), State::Established, 0, 0, None, 0, 10831),
            // One 4-byte datagram waits: rx_queue is its buffer memory, not its length.
            socket(u, v4(LO, 7101), None, State::Unconn, 0, 0x340, None, 0, 10829),
            socket(u, v4(ANY, 7102), None, State::Unconn, 0, 0, None, 0, 10830),
        ];
        assert_eq!(sockets, expected);
    }

    #[test]
    fn recorded_udp6_connected_and_not() {
        let u = Proto::Udp;
        let sockets = parse_clean(RECORDED_UDP6, u, "/proc/net/udp6");
        #[rustfmt::skip]
        let expected = vec![
            socket(u, v6("::1", 41103), Some(v6("::1", 7103)), State::Established, 0, 0, None, 0, 10834),
            socket(u, v6("::1", 7103), None, State::Unconn, 0, 0, None, 0, 10832),
            socket(u, v6("::", 7104), None, State::Unconn, 0, 0, None, 0, 10833),
        ];
        assert_eq!(sockets, expected);
    }

    #[test]
    fn every_tcp_state_maps() {
        let sockets = parse_clean(EVERY_STATE_TCP, Proto::Tcp, "every-state/tcp");
        let states: Vec<State> = sockets.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            vec![
                State::Established,
                State::SynSent,
                State::SynRecv,
                State::FinWait1,
                State::FinWait2,
                State::TimeWait,
                State::Close,
                State::CloseWait,
                State::LastAck,
                State::Listen,
                State::Closing,
                State::NewSynRecv,
            ]
        );
        // The hand-made lines changed only `st`: the rest is the recorded ESTABLISHED line.
        for index in [1, 2, 3, 6, 8, 10, 11] {
            let socket = &sockets[index];
            assert_eq!(socket.local, v4(LO, 41001));
            assert_eq!(socket.remote, Some(v4(LO, 7001)));
            assert_eq!(socket.inode, 10812);
        }
    }

    #[test]
    fn udp_state_numbers() {
        assert_eq!(state_of(Proto::Udp, 0x07), Some(State::Unconn));
        assert_eq!(state_of(Proto::Udp, 0x01), Some(State::Established));
        assert_eq!(state_of(Proto::Udp, 0x0A), Some(State::Listen));
        assert_eq!(state_of(Proto::Tcp, 0x07), Some(State::Close));
        assert_eq!(state_of(Proto::Tcp, 0x00), None);
        assert_eq!(state_of(Proto::Tcp, 0x0D), None);
        assert_eq!(state_of(Proto::Udp, 0x0F), None);
    }

    #[test]
    fn malformed_lines_are_skipped_with_one_warning_each() {
        let (sockets, warnings) = parse(MALFORMED_TCP, Proto::Tcp, "/proc/net/tcp");
        let locals: Vec<SocketAddr> = sockets.iter().map(|s| s.local).collect();
        assert_eq!(
            locals,
            vec![
                v4(LO, 7001),
                v4(LO, 7001),
                v4(LO, 41005),
                v4(LO, 7006),
                v4(LO, 7007),
            ]
        );
        let expected = [
            r#"/proc/net/tcp line 3: bad local address "0100007G:1B59", line skipped"#,
            "/proc/net/tcp line 5: truncated line (only 5 of 10 fields), line skipped",
            r#"/proc/net/tcp line 6: bad tr:tm->when "00000000", line skipped"#,
            r#"/proc/net/tcp line 7: unknown state "0F", line skipped"#,
            r#"/proc/net/tcp line 8: bad sl field "this", line skipped"#,
            r#"/proc/net/tcp line 10: bad remote address "0100007F:1B5", line skipped"#,
            r#"/proc/net/tcp line 11: bad sl field "ünïcödé", line skipped"#,
            r#"/proc/net/tcp line 12: bad inode "108x5", line skipped"#,
            "/proc/net/tcp line 13: truncated line (only 1 of 10 fields), line skipped",
        ];
        assert_eq!(warnings, expected);
        assert_eq!(sockets[2].state, State::TimeWait);
    }

    #[test]
    fn malformed_fields_are_named() {
        let good = "   0: 0100007F:1B59 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10808 1 0000000000000000 100 0 0 10 0";
        let header = "  sl  local_address rem_address   st\n";
        assert_eq!(
            parse_clean(&format!("{header}{good}"), Proto::Tcp, "t").len(),
            1
        );
        let cases = [
            (
                good.replace("0100007F:1B59", "+100007F:1B59"),
                "bad local address",
            ),
            (
                good.replace("0100007F:1B59", "0100007F1B59"),
                "bad local address",
            ),
            (
                good.replace("0100007F:1B59", "0100007F00:1B59"),
                "bad local address",
            ),
            (
                good.replace("0100007F:1B59", "0100007F:01B59"),
                "bad local address",
            ),
            (
                good.replace("00000000:0000", &format!("{}:0000", "0".repeat(32))),
                "remote address",
            ),
            (good.replace(" 0A ", " 100 "), "bad state"),
            (good.replace(" 0A ", " 00 "), "unknown state"),
            (
                good.replace("00000000:00000000", "1FFFFFFFF:0"),
                "bad tx_queue",
            ),
            (
                good.replace("00000000:00000000", "00000000-0"),
                "bad tx_queue",
            ),
            (
                good.replace(" 00:00000000 ", " 00:0000000g "),
                "bad tr:tm->when",
            ),
            (good.replace(" 00:00000000 ", " 100:0 "), "bad tr:tm->when"),
            (good.replace(" 00000000  ", " x  "), "bad retrnsmt"),
            (
                good.replace("     0        0", "     -1        0"),
                "bad uid",
            ),
            (
                good.replace("     0        0", "     4294967296        0"),
                "bad uid",
            ),
            (
                good.replace("        0 10808", "        zz 10808"),
                "bad timeout",
            ),
            (good.replace("10808", "-10808"), "bad inode"),
            (good.replace("   0:", "   0"), "bad sl field"),
        ];
        for (line, wanted) in cases {
            let (sockets, warnings) = parse(&format!("{header}{line}\n"), Proto::Tcp, "t");
            assert!(sockets.is_empty(), "{line}");
            assert_eq!(warnings.len(), 1, "{line}");
            assert!(warnings[0].starts_with("t line 2: "), "{}", warnings[0]);
            assert!(warnings[0].contains(wanted), "{line}: {}", warnings[0]);
        }
    }

    #[test]
    fn long_garbage_is_quoted_shortly() {
        let garbage = "é".repeat(1000);
        let (_, warnings) = parse(&format!("header\n{garbage}"), Proto::Udp, "u");
        assert_eq!(
            warnings,
            vec![format!(
                r#"u line 2: bad sl field "{}", line skipped"#,
                "é".repeat(40)
            )]
        );
    }

    #[test]
    fn blank_and_crlf_lines_are_not_malformed() {
        let text = RECORDED_UDP.replace('\n', "\r\n") + "\r\n   \n\t\n";
        let sockets = parse_clean(&text, Proto::Udp, "udp");
        assert_eq!(sockets.len(), 3);
    }

    #[test]
    fn empty_and_header_only_tables_are_empty() {
        assert_eq!(parse_clean(EMPTY_TCP, Proto::Tcp, "tcp"), vec![]);
        assert!(EMPTY_UDP.is_empty());
        assert_eq!(parse_clean(EMPTY_UDP, Proto::Udp, "udp"), vec![]);
        assert_eq!(parse_clean("\n", Proto::Udp, "udp"), vec![]);
    }

    #[test]
    fn header_line_is_skipped_whatever_it_holds() {
        let first = RECORDED_UDP.lines().nth(1).unwrap();
        for header in ["  sl  local_address", "header", "", "sl"] {
            let text = format!("{header}\n{first}\n");
            assert_eq!(parse_clean(&text, Proto::Udp, "udp").len(), 1, "{header}");
        }
    }

    #[test]
    fn a_table_without_its_header_keeps_its_first_socket_with_a_warning() {
        let text = RECORDED_UDP.split_once('\n').unwrap().1;
        let (sockets, warnings) = parse(text, Proto::Udp, "udp");
        assert_eq!(sockets.len(), 3);
        assert_eq!(
            warnings,
            ["udp line 1: a socket where the header line should be (no header?); read as a socket"]
        );
    }

    #[test]
    fn an_invalid_utf8_byte_loses_only_its_line() {
        let mut text = RECORDED_TCP.as_bytes().to_vec();
        // In the pointer field of line 3, a field that is not even read.
        let line_3 = RECORDED_TCP
            .lines()
            .take(2)
            .map(|l| l.len() + 1)
            .sum::<usize>();
        let pointer = RECORDED_TCP.lines().nth(2).unwrap().find(" 1 0").unwrap() + 4;
        text[line_3 + pointer] = 0xff;
        let mut sockets = Vec::new();
        let mut warnings = Vec::new();
        parse_table(&text, Proto::Tcp, "tcp", &mut sockets, &mut warnings);
        assert_eq!(sockets.len(), 15);
        assert_eq!(
            warnings,
            [format!(
                "tcp line 3: not valid UTF-8 (byte 0xff at column {}), line skipped",
                pointer + 1
            )]
        );
        // A cut multi-byte character at the very end, and a line of nothing else.
        let mut cut = RECORDED_UDP.as_bytes().to_vec();
        cut.extend_from_slice(b"\xc3\n\x80");
        parse_table(&cut, Proto::Udp, "udp", &mut sockets, &mut warnings);
        assert_eq!(sockets.len(), 15 + 3);
        assert_eq!(
            warnings[1..],
            [
                "udp line 5: not valid UTF-8 (byte 0xc3 at column 1), line skipped",
                "udp line 6: not valid UTF-8 (byte 0x80 at column 1), line skipped",
            ]
        );
    }

    #[test]
    fn a_line_missing_a_column_is_skipped_not_shifted() {
        // Each recorded format (full TCP, timewait TCP, UDP) with one column taken out after
        // the sl field: the ten needed fields may all still parse, shifted.
        let full = RECORDED_TCP.lines().nth(1).unwrap();
        let timewait = RECORDED_TCP.lines().nth(13).unwrap();
        let udp = RECORDED_UDP.lines().nth(1).unwrap();
        assert_eq!(timewait.split_ascii_whitespace().count(), 12);
        for (line, proto) in [
            (full, Proto::Tcp),
            (timewait, Proto::Tcp),
            (udp, Proto::Udp),
        ] {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            assert_eq!(parse_clean(&format!("sl\n{line}"), proto, "t").len(), 1);
            for missing in 1..fields.len() {
                let mut shorter = fields.clone();
                shorter.remove(missing);
                let text = format!("sl\n{}\n", shorter.join(" "));
                let (sockets, warnings) = parse(&text, proto, "t");
                assert!(
                    sockets.is_empty(),
                    "{proto:?} without field {missing}: {text}"
                );
                assert_eq!(warnings.len(), 1, "{text}");
                assert!(warnings[0].starts_with("t line 2: "), "{}", warnings[0]);
            }
        }
        let (_, warnings) = parse(
            &format!("sl\n{}", timewait.trim_end().rsplit_once(' ').unwrap().0),
            Proto::Tcp,
            "t",
        );
        assert_eq!(
            warnings,
            [
                "t line 2: 11 fields where a tcp line has 12, or 17 or more: a column is \
                 missing and the rest are shifted, line skipped"
            ]
        );
        // A later kernel may print more.
        assert_eq!(
            parse_clean(&format!("sl\n{full} 7 8"), Proto::Tcp, "t").len(),
            1
        );
        assert_eq!(
            parse_clean(&format!("sl\n{udp} 7"), Proto::Udp, "t").len(),
            1
        );
    }

    #[test]
    fn a_special_file_as_a_recorded_table_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("udp"), RECORDED_UDP).unwrap();
        let fifo = dir.path().join("tcp");
        nix_mkfifo(&fifo);
        let err = read(dir.path(), TableRequest::ALL).unwrap_err();
        assert!(err.is::<UsageError>());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read socket table {}: not a regular file (a FIFO)",
                fifo.display()
            )
        );
        std::fs::remove_file(&fifo).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &fifo).unwrap();
        let err = read(dir.path(), TableRequest::ALL).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("not a regular file (a character device)"),
            "{err}"
        );
    }

    fn nix_mkfifo(path: &Path) {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn never_panics_on_cut_or_mangled_input() {
        let all = [RECORDED_TCP, RECORDED_TCP6, RECORDED_UDP, MALFORMED_TCP].concat();
        // Every prefix, cut on character boundaries.
        for (end, _) in all.char_indices() {
            let (sockets, warnings) = parse(&all[..end], Proto::Tcp, "x");
            assert!(sockets.len() + warnings.len() <= all.lines().count());
        }
        // Every byte position replaced by characters the parser must refuse or accept calmly.
        let line = RECORDED_TCP6.lines().nth(3).unwrap();
        for (at, _) in line.char_indices() {
            for replacement in [":", " ", "G", "+", "-", "é", "\u{0}", "ffff", "\n"] {
                let mangled = format!("h\n{}{replacement}{}", &line[..at], &line[at + 1..]);
                let (sockets, warnings) = parse(&mangled, Proto::Udp, "x");
                assert!(sockets.len() + warnings.len() <= 2, "{mangled}");
            }
        }
    }

    #[test]
    fn parse_table_appends() {
        let mut sockets = Vec::new();
        let mut warnings = vec!["earlier".to_string()];
        parse_table(RECORDED_UDP, Proto::Udp, "a", &mut sockets, &mut warnings);
        parse_table(MALFORMED_TCP, Proto::Tcp, "b", &mut sockets, &mut warnings);
        assert_eq!(sockets.len(), 3 + 5);
        assert_eq!(warnings.len(), 1 + 9);
        assert_eq!(warnings[0], "earlier");
    }

    #[test]
    fn read_recorded_directory() {
        let dir = fixture_dir("recorded");
        let read = read(&dir, TableRequest::ALL).unwrap();
        assert_eq!(read.warnings, Vec::<String>::new());
        assert_eq!(read.sockets.len(), 16 + 5 + 3 + 3);
        // TableRequest come in the order tcp, tcp6, udp, udp6.
        let protos_and_families: Vec<(Proto, bool)> = read
            .sockets
            .iter()
            .map(|s| (s.proto, s.local.is_ipv6()))
            .collect();
        let mut sorted = protos_and_families.clone();
        sorted.sort();
        assert_eq!(protos_and_families, sorted);
    }

    #[test]
    fn read_only_wanted_tables() {
        let dir = fixture_dir("recorded");
        let tcp6 = TableRequest {
            tcp: true,
            udp: false,
            ipv4: false,
            ipv6: true,
            ..TableRequest::ALL
        };
        let read_tcp6 = read(&dir, tcp6).unwrap();
        assert_eq!(read_tcp6.sockets.len(), 5);
        assert!(
            read_tcp6
                .sockets
                .iter()
                .all(|s| s.proto == Proto::Tcp && s.local.is_ipv6())
        );

        let udp4 = TableRequest {
            tcp: false,
            udp: true,
            ipv4: true,
            ipv6: false,
            ..TableRequest::ALL
        };
        let read_udp4 = read(&dir, udp4).unwrap();
        assert_eq!(read_udp4.sockets.len(), 3);
        assert!(
            read_udp4
                .sockets
                .iter()
                .all(|s| s.proto == Proto::Udp && s.local.is_ipv4())
        );
    }

    #[test]
    fn read_nothing_wanted_reads_nothing() {
        let none = TableRequest {
            tcp: false,
            udp: false,
            ipv4: true,
            ipv6: true,
            ..TableRequest::ALL
        };
        let read = read(Path::new("/nonexistent/portstat"), none).unwrap();
        assert!(read.sockets.is_empty() && read.warnings.is_empty());
    }

    #[test]
    fn read_skips_missing_files_silently() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tcp"), RECORDED_TCP).unwrap();
        std::fs::write(dir.path().join("udp"), RECORDED_UDP).unwrap();
        let read = read(dir.path(), TableRequest::ALL).unwrap();
        assert_eq!(read.warnings, Vec::<String>::new());
        assert_eq!(read.sockets.len(), 16 + 3);
    }

    #[test]
    fn read_empty_fixture_directory() {
        // Header-only tcp, zero-byte udp, no tcp6 or udp6.
        let read = read(&fixture_dir("empty"), TableRequest::ALL).unwrap();
        assert!(read.sockets.is_empty());
        assert_eq!(read.warnings, Vec::<String>::new());
    }

    #[test]
    fn read_warns_about_malformed_lines_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tcp"), MALFORMED_TCP).unwrap();
        let read = read(dir.path(), TableRequest::ALL).unwrap();
        assert_eq!(read.sockets.len(), 5);
        let prefix = format!("{} line 3: ", dir.path().join("tcp").display());
        assert!(read.warnings[0].starts_with(&prefix), "{:?}", read.warnings);
    }

    #[test]
    fn read_errors_when_no_table_exists() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), TableRequest::ALL).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no socket tables under {}", dir.path().display())
        );

        let missing = dir.path().join("not-there");
        let err = read(&missing, TableRequest::ALL).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no socket tables under {}", missing.display())
        );

        // TableRequest exist, but not the wanted ones.
        std::fs::write(dir.path().join("udp"), RECORDED_UDP).unwrap();
        let tcp_only = TableRequest {
            tcp: true,
            udp: false,
            ipv4: true,
            ipv6: true,
            ..TableRequest::ALL
        };
        assert!(read(dir.path(), tcp_only).is_err());
    }

    #[test]
    fn read_warns_about_an_unreadable_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tcp"), RECORDED_TCP).unwrap();
        // A directory where a table should be: exists, can't be read (even as root).
        std::fs::create_dir(dir.path().join("tcp6")).unwrap();
        let read = read(dir.path(), TableRequest::ALL).unwrap();
        assert_eq!(read.sockets.len(), 16);
        assert_eq!(read.warnings.len(), 1);
        let prefix = format!("could not read {}: ", dir.path().join("tcp6").display());
        assert!(
            read.warnings[0].starts_with(&prefix),
            "{}",
            read.warnings[0]
        );
    }

    #[test]
    fn read_errors_when_no_wanted_table_can_be_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tcp")).unwrap();
        std::fs::create_dir(dir.path().join("udp6")).unwrap();
        let err = read(dir.path(), TableRequest::ALL).unwrap_err();
        let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        assert_eq!(
            chain[0],
            format!(
                "could not read any socket table under {} (2 failed)",
                dir.path().display()
            )
        );
        assert_eq!(
            chain[1],
            format!("could not read {}", dir.path().join("tcp").display())
        );
        assert_eq!(chain.len(), 3);
        assert!(err.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn read_live_proc_net() {
        // Whatever this machine has: it must read and parse without a warning.
        let read = read(Path::new("/proc/net"), TableRequest::ALL).unwrap();
        assert_eq!(read.warnings, Vec::<String>::new());
    }

    #[test]
    fn native_endian_words() {
        let addr = parse_addr("0100007F:1F90").unwrap();
        let addr6 = parse_addr("000080FE00000000FF000202FE0304FE:0016").unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(addr, v4(LO, 8080));
            assert_eq!(addr6, v6("fe80::202:ff:fe04:3fe", 22));
        } else {
            assert_eq!(addr, v4([1, 0, 0, 127], 8080));
        }
    }

    #[test]
    fn a_link_local_address_held_by_one_interface_gets_its_zone() {
        let socket = |local: &str, remote: Option<&str>| Socket {
            proto: Proto::Udp,
            local: local.parse().unwrap(),
            remote: remote.map(|r| r.parse().unwrap()),
            state: crate::core::model::State::Unconn,
            tx_queue: Some(0),
            rx_queue: Some(0),
            timer: None,
            uid: Some(0),
            inode: 1,
            holders: None,
            v6only: None,
            netns: 0,
            cookie: 0,
            details: None,
        };
        let mut sockets = vec![
            socket("[fe80::7c4b:a1ff:fec6:90b1]:53", None),
            socket("[fe80::1]:40000", Some("[fe80::2]:53")),
            socket("[fe80::9]:53", None),
            socket("[fe80::5]:53", None),
            socket("[2001:db8::1]:53", None),
            socket("127.0.0.1:53", None),
        ];
        let interfaces = || {
            vec![
                ("fe80::7c4b:a1ff:fec6:90b1".parse().unwrap(), 4),
                ("fe80::1".parse().unwrap(), 3),
                ("fe80::9".parse().unwrap(), 3),
                ("fe80::9".parse().unwrap(), 5),
                ("2001:db8::1".parse().unwrap(), 3),
            ]
        };
        give_zones(&mut sockets, interfaces);
        let shown: Vec<String> = sockets
            .iter()
            .map(|s| format!("{} {:?}", s.local, s.remote.map(|r| r.to_string())))
            .collect();
        assert_eq!(
            shown,
            [
                "[fe80::7c4b:a1ff:fec6:90b1%4]:53 None",
                "[fe80::1%3]:40000 Some(\"[fe80::2%3]:53\")",
                // On two interfaces: which one is unknown.
                "[fe80::9]:53 None",
                // On none (IP_FREEBIND): unknown too.
                "[fe80::5]:53 None",
                "[2001:db8::1]:53 None",
                "127.0.0.1:53 None",
            ]
        );
        // Without a link-local socket the interfaces are not even listed.
        let mut plain = vec![socket("[::1]:53", None)];
        give_zones(&mut plain, || panic!("listed the interfaces"));
        assert!(is_this_namespace(Path::new("/proc/thread-self/net")));
        assert!(!is_this_namespace(Path::new("/proc/42/net")));
    }
}
