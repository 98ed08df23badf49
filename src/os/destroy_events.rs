//! Linux: the kernel's reports of destroyed sockets, sock_diag's destroy multicast groups
//! (`SKNLGRP_INET_TCP_DESTROY`, `_UDP_`, and their `INET6` pair, `linux/sock_diag.h`).
//!
//! Once a netlink socket of a namespace belongs to one of those groups, the kernel reports
//! every TCP and UDP socket of that namespace as it frees it (`__sk_free` calls
//! `sock_diag_broadcast_destroy`, whose work item sends what `inet_diag_handler_get_info`
//! fills: an `inet_diag_msg` with addresses, ports, state and cookie, `INET_DIAG_PROTOCOL`,
//! and for TCP `INET_DIAG_INFO`, the `tcp_info`). Joining needs no privilege. What the report
//! lacks, checked on Linux 6.18: the uid and inode (zeroed), so no owner can be named for a
//! socket never seen open; a TCP socket is always in state CLOSE by then; an abortive close
//! (`SO_LINGER` 0) and a failed `connect` clear the local address and the peer's port, and the
//! former the byte counts too. Only full sockets are freed this way: a TIME_WAIT (it keeps the
//! cookie of the connection it ends) and a connection still in the SYN queue end unreported,
//! so `watch` still sees those go by reading the tables.
//!
//! A thread per subscription reads reports as they come, so a burst of closes is not lost
//! between two readings of the tables; the kernel still drops reports when the receive buffer
//! fills faster than the thread reads, and counts them (`SO_MEMINFO`'s drops), which
//! [`Subscription::take`] hands on.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use netlink_packet_core::NetlinkBuffer;
use netlink_packet_sock_diag::constants::{IPPROTO_TCP, IPPROTO_UDP, SOCK_DIAG_BY_FAMILY};
use netlink_packet_sock_diag::inet::InetResponseBuffer;
use netlink_sys::Socket as NetlinkSocket;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::DestroyFeed;
use crate::core::model::{Destroyed, DestroyedSince, Namespace, Proto, TcpBytes};

/// `SKNLGRP_INET_TCP_DESTROY` to `SKNLGRP_INET6_UDP_DESTROY`.
const GROUPS: [u32; 4] = [1, 2, 3, 4];

const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_PROTOCOL: u16 = 10;

/// `struct tcp_info`'s `tcpi_bytes_acked` and `tcpi_bytes_received` (`linux/tcp.h`, both
/// since Linux 4.1).
const BYTES_ACKED: usize = 120;
const BYTES_RECEIVED: usize = 128;

/// `SO_MEMINFO` (`asm-generic/socket.h`) and its `SK_MEMINFO_DROPS` (`linux/sock_diag.h`).
const SO_MEMINFO: libc::c_int = 55;
const SK_MEMINFO_DROPS: usize = 8;
const SK_MEMINFO_VARS: usize = 9;

/// The receive buffer asked for: a few thousand reports (one takes about 1 KiB of it). Root
/// gets it (`SO_RCVBUFFORCE`); others get `net.core.rmem_max` at most.
const RECEIVE_BUFFER: usize = 16 << 20;

/// Reports kept between two takes at most (about 150 bytes each): beyond it they are counted
/// as lost, so a watch nobody reads cannot grow without end.
const PENDING_LIMIT: usize = 1 << 20;

/// How often the reading thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(500);

/// One namespace's subscription; dropping it stops its thread.
pub struct Subscription {
    shared: Arc<Shared>,
    socket: Arc<NetlinkSocket>,
    /// The kernel's drop count at the last take, when it can be read.
    drops: Option<u32>,
}

struct Shared {
    pending: Mutex<DestroyedSince>,
    stop: AtomicBool,
}

/// Joins the destroy groups inside `netns` (portstat's own when `None`) and reads reports on
/// a thread of its own from now on; `wake` is called when reports wait where there were none.
pub fn subscribe(
    netns: Option<&Namespace>,
    wake: Box<dyn Fn() + Send>,
) -> Result<Box<dyn DestroyFeed>> {
    let socket = match netns {
        Some(namespace) => super::netns::inside(namespace, open)??,
        None => open()?,
    };
    let socket = Arc::new(socket);
    let shared = Arc::new(Shared {
        pending: Mutex::new(DestroyedSince::default()),
        stop: AtomicBool::new(false),
    });
    let drops = drops(&socket).ok();
    let (reader, reader_shared) = (Arc::clone(&socket), Arc::clone(&shared));
    std::thread::Builder::new()
        .name("destroy-reports".into())
        .spawn(move || read_reports(&reader, &reader_shared, wake.as_ref()))
        .context("could not start the thread that reads destroy reports")?;
    Ok(Box::new(Subscription {
        shared,
        socket,
        drops,
    }))
}

fn open() -> Result<NetlinkSocket> {
    let mut socket =
        NetlinkSocket::new(NETLINK_SOCK_DIAG).context("could not open a sock_diag socket")?;
    // The kernel sends as port 0, and skips a member with its own port: an unbound one.
    socket
        .bind_auto()
        .context("could not bind the sock_diag socket")?;
    for group in GROUPS {
        socket
            .add_membership(group)
            .with_context(|| format!("could not join sock_diag's destroy group {group}"))?;
    }
    // Without it the kernel, once the buffer overflows, drops every report until the queue is
    // read empty; with it, only those that do not fit, and it still counts them.
    socket
        .set_no_enobufs(true)
        .context("could not set NETLINK_NO_ENOBUFS")?;
    let fd = socket.as_raw_fd();
    if set_int(fd, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER).is_err() {
        // Not root: the kernel caps it at net.core.rmem_max, which is still more than the
        // default.
        let _ = set_int(fd, libc::SO_RCVBUF, RECEIVE_BUFFER);
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: STOP_CHECK.as_micros() as libc::suseconds_t,
    };
    set_option(fd, libc::SO_RCVTIMEO, &timeout).context("could not set SO_RCVTIMEO")?;
    Ok(socket)
}

fn set_int(fd: libc::c_int, option: libc::c_int, value: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    set_option(fd, option, &value)
}

fn set_option<T>(fd: libc::c_int, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a live `T` of the size given, which the kernel only reads.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How many reports the kernel has dropped on this socket so far.
fn drops(socket: &NetlinkSocket) -> io::Result<u32> {
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut length = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `length` bytes into `info`, which has that many.
    let done = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut length,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[SK_MEMINFO_DROPS])
}

fn read_reports(socket: &NetlinkSocket, shared: &Shared, wake: &(dyn Fn() + Send)) {
    // The kernel sends one report per datagram; a large buffer only guards against a change.
    let mut buffer = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::Relaxed) {
        let length = match socket.recv(&mut &mut buffer[..], 0) {
            Ok(length) => length,
            Err(error) => {
                match error.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => {}
                    // ENOBUFS, should NETLINK_NO_ENOBUFS not hold: some were lost, at least one.
                    _ if error.raw_os_error() == Some(libc::ENOBUFS) => {
                        lock(&shared.pending).lost += 1;
                    }
                    _ => return,
                }
                continue;
            }
        };
        let reports = reports_of(buffer.get(..length).unwrap_or_default());
        if reports.is_empty() {
            continue;
        }
        let was_empty = {
            let mut pending = lock(&shared.pending);
            let was_empty = pending.sockets.is_empty();
            for report in reports {
                if pending.sockets.len() < PENDING_LIMIT {
                    pending.sockets.push(report);
                } else {
                    pending.lost += 1;
                }
            }
            was_empty
        };
        if was_empty {
            wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DestroyFeed for Subscription {
    fn take(&mut self) -> DestroyedSince {
        let mut taken = std::mem::take(&mut *lock(&self.shared.pending));
        if let (Some(before), Ok(now)) = (self.drops, drops(&self.socket)) {
            taken.lost += u64::from(now.wrapping_sub(before));
            self.drops = Some(now);
        }
        taken
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// The destroyed sockets a datagram reports; anything else in it (another message type, a
/// report too short to read) is skipped.
pub fn reports_of(mut datagram: &[u8]) -> Vec<Destroyed> {
    let mut reports = Vec::new();
    while let Ok(message) = NetlinkBuffer::new_checked(datagram) {
        if message.message_type() == SOCK_DIAG_BY_FAMILY
            && let Some(report) = report_of(message.payload())
        {
            reports.push(report);
        }
        let step = (message.length() as usize).next_multiple_of(4);
        if step == 0 {
            break;
        }
        datagram = datagram.get(step..).unwrap_or_default();
    }
    reports
}

/// One report: the socket as a dump would read it (with no uid, as the kernel sends none), and
/// for TCP its byte counts.
fn report_of(payload: &[u8]) -> Option<Destroyed> {
    let message = InetResponseBuffer::new_checked(payload).ok()?;
    let mut protocol = None;
    let mut counters = None;
    for attribute in message.nlas().map_while(Result::ok) {
        let value = attribute.value();
        match attribute.kind() {
            INET_DIAG_PROTOCOL => protocol = value.first().copied(),
            INET_DIAG_INFO => {
                let counter = |offset: usize| -> Option<u64> {
                    let bytes = value.get(offset..offset + 8)?;
                    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
                };
                counters = counter(BYTES_ACKED).zip(counter(BYTES_RECEIVED));
            }
            _ => {}
        }
    }
    let proto = match protocol? {
        IPPROTO_TCP => Proto::Tcp,
        IPPROTO_UDP => Proto::Udp,
        _ => return None,
    };
    // Reports carry no congestion algorithm worth sharing between them.
    let mut socket = super::netlink::socket_of(proto, payload, &mut Vec::new()).ok()??;
    socket.uid = None;
    let bytes = counters
        .filter(|_| proto == Proto::Tcp)
        .map(|(acked, received)| TcpBytes { acked, received });
    Some(Destroyed { socket, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::State;

    /// Reports as Linux 6.18 sent them, recorded in a private network namespace
    /// (fixtures/sock-diag/README.md says how).
    fn recorded(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/sock-diag/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[test]
    fn a_closed_connection_is_reported_with_its_ends_cookie_and_bytes() {
        let reports = reports_of(&recorded("tcp-connection.bin"));
        assert_eq!(reports.len(), 1, "{reports:?}");
        let Destroyed { socket, bytes } = &reports[0];
        assert_eq!(socket.proto, Proto::Tcp);
        assert_eq!(socket.state, State::Close);
        assert_eq!(socket.local.to_string(), "127.0.0.1:5000");
        assert_eq!(
            socket.remote.map(|r| r.to_string()).as_deref(),
            Some("127.0.0.1:40000")
        );
        assert_ne!(socket.cookie, 0);
        assert_eq!((socket.uid, socket.inode), (None, 0));
        // The client sent 1000 bytes and a FIN, the server 500 and its FIN.
        assert_eq!(
            *bytes,
            Some(TcpBytes {
                acked: 501,
                received: 1001
            })
        );
    }

    #[test]
    fn udp_sockets_are_reported_without_bytes() {
        let reports = reports_of(&recorded("udp.bin"));
        let summary: Vec<_> = reports
            .iter()
            .map(|r| {
                (
                    r.socket.proto,
                    r.socket.state,
                    r.socket.local.port(),
                    r.bytes,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Proto::Udp, State::Unconn, 6000, None),
                (Proto::Udp, State::Established, 6001, None)
            ]
        );
        assert!(reports[1].socket.local.is_ipv6());
        assert_eq!(reports[1].socket.remote.map(|r| r.port()), Some(6002));
    }

    #[test]
    fn anything_else_in_a_datagram_is_skipped() {
        let mut datagram = recorded("tcp-connection.bin");
        // A message of another type, then a report cut short.
        let mut other = vec![0u8; 20];
        other[..4].copy_from_slice(&20u32.to_ne_bytes());
        other[4..6].copy_from_slice(&3u16.to_ne_bytes());
        datagram.extend(&other);
        let mut cut = recorded("tcp-connection.bin");
        cut.truncate(60);
        cut[..4].copy_from_slice(&60u32.to_ne_bytes());
        datagram.extend(&cut);
        assert_eq!(reports_of(&datagram).len(), 1);
        assert!(reports_of(&[]).is_empty());
        assert!(reports_of(&[1, 2, 3]).is_empty());
    }

    /// The live kernel, in portstat's own namespace (no privilege needed): a connection this
    /// test opens and closes is reported with the cookie a dump gave it.
    #[test]
    fn the_kernel_reports_a_connection_it_destroys() {
        let woken = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&woken);
        let mut feed = subscribe(None, Box::new(move || flag.store(true, Ordering::Relaxed)))
            .expect("subscribe");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let local = client.local_addr().unwrap();
        let dumped = super::super::netlink::read(crate::core::model::TableRequest::ALL)
            .unwrap()
            .sockets
            .into_iter()
            .find(|s| s.local == local && s.proto == Proto::Tcp)
            .expect("the client in the dump");
        let (server, _) = listener.accept().unwrap();
        drop((client, server));
        let mut found = None;
        for _ in 0..100 {
            found = feed
                .take()
                .sockets
                .into_iter()
                .find(|report| report.socket.cookie == dumped.cookie);
            if found.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let report = found.expect("the client's destruction was reported");
        assert_eq!(report.socket.local, local);
        assert!(report.bytes.is_some());
        assert!(woken.load(Ordering::Relaxed));
    }
}
