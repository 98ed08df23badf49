//! `cargo xtask fixtures`: records portstat's /proc/net test fixtures from the real kernel.
//!
//! ```sh
//! sudo cargo xtask fixtures
//! ```
//!
//! As root, it moves itself into a fresh private network namespace (`unshare(CLONE_NEWNET)`, what
//! `unshare -n` does), so that the tables hold only the sockets it opens. It brings up `lo`,
//! opens a known set of sockets on loopback (fixed ports, so re-recording gives the same
//! addresses), copies /proc/net/{tcp,tcp6,udp,udp6} into fixtures/proc-net/recorded/, checks
//! that every socket it meant to make is there in the state it expects and no other, and writes
//! fixtures/proc-net/every-state/tcp from the recorded lines. Every socket is closed before it
//! exits; nothing is left running (the namespace goes away with the process).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use socket2::{Domain, Socket, Type};

const TABLES: [&str; 4] = ["tcp", "tcp6", "udp", "udp6"];

// Kernel state numbers (include/net/tcp_states.h).
const ESTABLISHED: u8 = 1;
const FIN_WAIT2: u8 = 5;
const TIME_WAIT: u8 = 6;
const CLOSE: u8 = 7;
const CLOSE_WAIT: u8 = 8;
const LISTEN: u8 = 10;
const NEW_SYN_RECV: u8 = 12;

const LO4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
const NOBODY: libc::uid_t = 65534;

#[derive(Args, Debug)]
pub struct FixturesArgs {
    /// Where `recorded/` and `every-state/` go, from the repository root (to try it without
    /// touching the fixtures)
    #[arg(long, value_name = "DIR", default_value = "fixtures/proc-net")]
    pub out: PathBuf,
}

pub fn run(args: &FixturesArgs) -> ExitCode {
    match record(&args.out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fixtures: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One socket that must show up: (table, local, remote, state).
type Expected = (&'static str, SocketAddr, SocketAddr, u8);

fn at(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

fn table_rows(name: &str) -> Result<usize> {
    let text = std::fs::read_to_string(format!("/proc/net/{name}"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count())
}

fn enter_private_namespace() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("must run as root (it enters a private network namespace and brings `lo` up)");
    }
    // SAFETY: xtask is single-threaded here; unshare only changes its own namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
    }
    for name in TABLES {
        if table_rows(name)? > 0 {
            bail!("/proc/net/{name} already lists sockets in a fresh network namespace");
        }
    }
    crate::farm::loopback_up().context("bring lo up")
}

/// Keeps every socket open until the tables are copied; dropping it closes them all.
#[derive(Default)]
struct Sockets {
    open: Vec<Socket>,
}

impl Sockets {
    fn keep(&mut self, socket: Socket) -> &Socket {
        self.open.push(socket);
        self.open.last().expect("just pushed")
    }

    fn new_tcp(addr: SocketAddr, dual_stack: bool) -> Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(!dual_stack)?;
        }
        socket
            .bind(&addr.into())
            .with_context(|| format!("bind {addr}"))?;
        Ok(socket)
    }

    fn listener(&mut self, addr: SocketAddr, dual_stack: bool) -> Result<&Socket> {
        let socket = Self::new_tcp(addr, dual_stack)?;
        socket.listen(16)?;
        Ok(self.keep(socket))
    }

    /// A client, not kept (the caller keeps or closes it).
    fn new_client(local: SocketAddr, remote: SocketAddr) -> Result<Socket> {
        let socket = Self::new_tcp(local, false)?;
        socket
            .connect(&remote.into())
            .with_context(|| format!("connect {local} -> {remote}"))?;
        Ok(socket)
    }

    fn client(&mut self, local: SocketAddr, remote: SocketAddr) -> Result<&Socket> {
        let socket = Self::new_client(local, remote)?;
        Ok(self.keep(socket))
    }

    fn udp(
        &mut self,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        dual_stack: bool,
    ) -> Result<&Socket> {
        let socket = Socket::new(Domain::for_address(local), Type::DGRAM, None)?;
        if local.is_ipv6() {
            socket.set_only_v6(!dual_stack)?;
        }
        socket
            .bind(&local.into())
            .with_context(|| format!("udp bind {local}"))?;
        if let Some(remote) = remote {
            socket.connect(&remote.into())?;
        }
        Ok(self.keep(socket))
    }
}

fn accept(listener: &Socket) -> Result<Socket> {
    Ok(listener.accept()?.0)
}

/// Opens the sockets; returns what must show up.
fn open_sockets(s: &mut Sockets) -> Result<Vec<Expected>> {
    let mut expect: Vec<Expected> = Vec::new();
    let none4 = at(ANY4, 0);
    let none6 = at(ANY6, 0);

    // Listeners on every kind of address. 7001 and 7002 also serve the established pairs.
    let l4 = s.listener(at(LO4, 7001), false)?.try_clone()?;
    let l6 = s.listener(at(LO6, 7002), false)?.try_clone()?;
    s.listener(at(ANY4, 7003), false)?;
    let dual = s.listener(at(ANY6, 7004), true)?.try_clone()?;
    expect.extend([
        ("tcp", at(LO4, 7001), none4, LISTEN),
        ("tcp6", at(LO6, 7002), none6, LISTEN),
        ("tcp", at(ANY4, 7003), none4, LISTEN),
        ("tcp6", at(ANY6, 7004), none6, LISTEN),
    ]);

    // Established pairs. The v4 server leaves 100 bytes unread (rx_queue); the v6 client has
    // keepalive on, so its keepalive timer runs (tr 2).
    let mut c4 = s.client(at(LO4, 41001), at(LO4, 7001))?.try_clone()?;
    s.keep(accept(&l4)?);
    c4.write_all(&[b'x'; 100])?;
    let c6 = Socket::new(Domain::IPV6, Type::STREAM, None)?;
    c6.set_only_v6(true)?;
    c6.set_keepalive(true)?;
    c6.bind(&at(LO6, 41002).into())?;
    c6.connect(&at(LO6, 7002).into())?;
    s.keep(c6);
    s.keep(accept(&l6)?);
    expect.extend([
        ("tcp", at(LO4, 41001), at(LO4, 7001), ESTABLISHED),
        ("tcp", at(LO4, 7001), at(LO4, 41001), ESTABLISHED),
        ("tcp6", at(LO6, 41002), at(LO6, 7002), ESTABLISHED),
        ("tcp6", at(LO6, 7002), at(LO6, 41002), ESTABLISHED),
    ]);

    // A v4 client of the dual-stack listener: the accepted side is ::ffff:127.0.0.1 in tcp6.
    s.client(at(LO4, 41004), at(LO4, 7004))?;
    s.keep(accept(&dual)?);
    let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
    expect.extend([
        ("tcp", at(LO4, 41004), at(LO4, 7004), ESTABLISHED),
        ("tcp6", at(mapped, 7004), at(mapped, 41004), ESTABLISHED),
    ]);

    // TIME_WAIT: the client closes first, the server reads the FIN and closes too.
    let l_tw = s.listener(at(LO4, 7005), false)?.try_clone()?;
    let c_tw = Sockets::new_client(at(LO4, 41005), at(LO4, 7005))?;
    let mut a_tw = accept(&l_tw)?;
    drop(c_tw);
    a_tw.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut byte = [0u8; 1];
    if a_tw.read(&mut byte)? != 0 {
        bail!("expected EOF on the TIME_WAIT server side");
    }
    drop(a_tw);
    expect.extend([
        ("tcp", at(LO4, 7005), none4, LISTEN),
        ("tcp", at(LO4, 41005), at(LO4, 7005), TIME_WAIT),
    ]);

    // CLOSE_WAIT + FIN_WAIT2, twice: a client that shut down its sending side (still a full
    // socket with an inode) and one that closed (the kernel turns the orphan into a timewait
    // socket in the FIN_WAIT2 substate). The servers never close.
    let l_cw = s.listener(at(LO4, 7006), false)?.try_clone()?;
    let c_half = s.client(at(LO4, 41006), at(LO4, 7006))?.try_clone()?;
    s.keep(accept(&l_cw)?);
    c_half.shutdown(std::net::Shutdown::Write)?;
    drop(c_half); // a duplicate descriptor; the kept one stays open
    let c_closed = Sockets::new_client(at(LO4, 41016), at(LO4, 7006))?;
    s.keep(accept(&l_cw)?);
    drop(c_closed);
    expect.extend([
        ("tcp", at(LO4, 7006), none4, LISTEN),
        ("tcp", at(LO4, 41006), at(LO4, 7006), FIN_WAIT2),
        ("tcp", at(LO4, 7006), at(LO4, 41006), CLOSE_WAIT),
        ("tcp", at(LO4, 41016), at(LO4, 7006), FIN_WAIT2),
        ("tcp", at(LO4, 7006), at(LO4, 41016), CLOSE_WAIT),
    ]);

    // A connection nobody accepts: it waits in 7007's accept queue (inode 0) with 5 bytes.
    s.listener(at(LO4, 7007), false)?;
    s.client(at(LO4, 41007), at(LO4, 7007))?
        .try_clone()?
        .write_all(b"hello")?;
    expect.extend([
        ("tcp", at(LO4, 7007), none4, LISTEN),
        ("tcp", at(LO4, 41007), at(LO4, 7007), ESTABLISHED),
        ("tcp", at(LO4, 7007), at(LO4, 41007), ESTABLISHED),
    ]);

    // A listener created as uid 65534 (nobody): the table's uid column is the creator's.
    // SAFETY: seteuid has no memory-safety preconditions; xtask is single-threaded.
    if unsafe { libc::seteuid(NOBODY) } != 0 {
        return Err(io::Error::last_os_error()).context("seteuid(65534)");
    }
    let nobody = s.listener(at(LO4, 7008), false).map(|_| ());
    // SAFETY: as above; the saved uid is 0.
    if unsafe { libc::seteuid(0) } != 0 {
        return Err(io::Error::last_os_error()).context("seteuid(0)");
    }
    nobody?;
    expect.push(("tcp", at(LO4, 7008), none4, LISTEN));

    // UDP, unconnected (st 07) and connected (st 01), on both families. 7101 keeps one unread
    // datagram (rx_queue).
    s.udp(at(LO4, 7101), None, false)?;
    s.udp(at(ANY4, 7102), None, false)?;
    s.udp(at(LO4, 41101), Some(at(LO4, 7101)), false)?
        .send(b"ping")?;
    s.udp(at(LO6, 7103), None, false)?;
    s.udp(at(ANY6, 7104), None, true)?;
    s.udp(at(LO6, 41103), Some(at(LO6, 7103)), false)?;
    expect.extend([
        ("udp", at(LO4, 7101), none4, CLOSE),
        ("udp", at(ANY4, 7102), none4, CLOSE),
        ("udp", at(LO4, 41101), at(LO4, 7101), ESTABLISHED),
        ("udp6", at(LO6, 7103), none6, CLOSE),
        ("udp6", at(ANY6, 7104), none6, CLOSE),
        ("udp6", at(LO6, 41103), at(LO6, 7103), ESTABLISHED),
    ]);
    Ok(expect)
}

/// `0100007F:1F90` -> 127.0.0.1:8080: each 32-bit word is printed in the machine's byte order.
fn decode_addr(text: &str) -> Option<SocketAddr> {
    let (hex, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for chunk in hex.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A table's rows: (local, remote, state, the line).
fn parse(text: &str) -> Vec<(SocketAddr, SocketAddr, u8, &str)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                return None;
            }
            let local = decode_addr(fields.get(1)?)?;
            let remote = decode_addr(fields.get(2)?)?;
            let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
            Some((local, remote, state, line))
        })
        .collect()
}

fn check(recorded: &HashMap<&str, String>, expect: &[Expected]) -> Result<()> {
    let mut missing = Vec::new();
    for &(table, local, remote, state) in expect {
        let states: Vec<u8> = parse(&recorded[table])
            .into_iter()
            .filter(|&(l, r, _, _)| (l, r) == (local, remote))
            .map(|(_, _, st, _)| st)
            .collect();
        if !states.contains(&state) {
            missing.push(format!(
                "{table} {local} -> {remote} st {state:02X} (saw {states:?})"
            ));
        }
    }
    if !missing.is_empty() {
        bail!("the recorded tables lack:\n  {}", missing.join("\n  "));
    }
    let rows: usize = recorded.values().map(|text| parse(text).len()).sum();
    if rows != expect.len() {
        bail!(
            "the recorded tables hold {} socket(s) more than expected",
            rows as isize - expect.len() as isize
        );
    }
    Ok(())
}

/// All twelve TCP states: the five recorded ones verbatim, the other seven made by copying the
/// recorded 127.0.0.1:41001 -> 127.0.0.1:7001 ESTABLISHED line and changing its `st`.
fn every_state(recorded_tcp: &str) -> Result<String> {
    let header = recorded_tcp.lines().next().unwrap_or_default();
    let mut by_key = HashMap::new();
    for (local, remote, state, line) in parse(recorded_tcp) {
        by_key.insert((local.port(), remote.port(), state), line);
    }
    let line_of = |key: (u16, u16, u8)| {
        by_key
            .get(&key)
            .copied()
            .with_context(|| format!("no recorded tcp line {key:?}"))
    };
    let real: HashMap<u8, &str> = HashMap::from([
        (LISTEN, line_of((7001, 0, LISTEN))?),
        (ESTABLISHED, line_of((41001, 7001, ESTABLISHED))?),
        (TIME_WAIT, line_of((41005, 7005, TIME_WAIT))?),
        (CLOSE_WAIT, line_of((7006, 41006, CLOSE_WAIT))?),
        (FIN_WAIT2, line_of((41006, 7006, FIN_WAIT2))?),
    ]);
    let template = real[&ESTABLISHED];
    let mut out = vec![header.to_string()];
    for (index, state) in (ESTABLISHED..=NEW_SYN_RECV).enumerate() {
        let line = match real.get(&state) {
            Some(line) => line.to_string(),
            None => {
                // Fields are separated by runs of spaces; `st` is the fourth non-empty one.
                let mut fields: Vec<String> = template.split(' ').map(str::to_string).collect();
                let position = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| !f.is_empty())
                    .nth(3)
                    .map(|(i, _)| i)
                    .context("a tcp line with fewer than four fields")?;
                fields[position] = format!("{state:02X}");
                fields.join(" ")
            }
        };
        // Renumber `sl` so the file reads like one table (sl is "%4d:").
        let sl_end = line.find(':').context("a tcp line without `sl:`")?;
        out.push(format!("{index:4}{}", &line[sl_end..]));
    }
    Ok(out.join("\n") + "\n")
}

fn write(root: &Path, relative: &str, text: &str) -> Result<()> {
    let path = root.join(relative);
    let relative = path
        .strip_prefix(crate::repo_root())
        .unwrap_or(&path)
        .display();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    println!("wrote {relative}");
    Ok(())
}

fn record(out: &Path) -> Result<()> {
    enter_private_namespace()?;
    let mut sockets = Sockets::default();
    let expect = open_sockets(&mut sockets)?;
    // Loopback is immediate, but let the FIN/ACK exchanges settle.
    std::thread::sleep(Duration::from_millis(300));
    let mut recorded = HashMap::new();
    for name in TABLES {
        let text = std::fs::read_to_string(format!("/proc/net/{name}"))
            .with_context(|| format!("/proc/net/{name}"))?;
        recorded.insert(name, text);
    }
    drop(sockets);
    check(&recorded, &expect)?;
    let out = crate::repo_root().join(out);
    for name in TABLES {
        write(&out, &format!("recorded/{name}"), &recorded[name])?;
    }
    write(&out, "every-state/tcp", &every_state(&recorded["tcp"])?)?;
    println!("recorded {} sockets", expect.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED_TCP: &str = include_str!("../../fixtures/proc-net/recorded/tcp");
    const EVERY_STATE_TCP: &str = include_str!("../../fixtures/proc-net/every-state/tcp");

    #[test]
    fn addresses_decode_as_the_kernel_prints_them() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                decode_addr("0100007F:1F90"),
                Some("127.0.0.1:8080".parse().unwrap())
            );
            assert_eq!(
                decode_addr("0000000000000000FFFF00000100007F:1B5C"),
                Some("[::ffff:127.0.0.1]:7004".parse().unwrap())
            );
        }
        assert_eq!(decode_addr("zz:1"), None);
    }

    #[test]
    fn every_state_is_made_from_the_recorded_table_as_before() {
        assert_eq!(every_state(RECORDED_TCP).unwrap(), EVERY_STATE_TCP);
    }
}
