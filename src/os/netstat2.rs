//! The `netstat2` crate: sock_diag netlink on Linux, libproc on macOS, the IP Helper API on
//! Windows. It reports owning pids itself (on Linux by its own walk of `/proc/PID/fd`).
//!
//! What it cannot tell, and so neither can portstat through it: a UDP socket's peer and state
//! (every UDP socket reads as `UNCONN` without a remote end), queue sizes and timers, and on
//! macOS and Windows socket inodes and uids.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};

use ::netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, SocketInfo, TcpState};
use anyhow::{Result, anyhow};

use crate::core::model::TABLES;
use crate::core::model::{Proto, Socket, State, TableRead, TableRequest};

pub fn read(wanted: TableRequest) -> Result<TableRead> {
    let mut read = TableRead {
        inodes_known: cfg!(target_os = "linux"),
        ..TableRead::default()
    };
    let (families, protocols) = flags(wanted.clone());
    if families.is_empty() || protocols.is_empty() {
        return Ok(read);
    }
    let (infos, owners_known) = match quietly(|| ::netstat2::get_sockets_info(families, protocols))
    {
        Some(Ok(infos)) => (infos, true),
        // One table failing fails the whole call: ask for each alone, keep what answers.
        Some(Err(_)) => (table_by_table(wanted, &mut read.warnings)?, true),
        None => (
            without_owners(families, protocols, &mut read.warnings)?,
            false,
        ),
    };
    let mut unknown_states = 0;
    for info in infos {
        match socket(info, owners_known) {
            Some(socket) => read.sockets.push(socket),
            None => unknown_states += 1,
        }
    }
    if unknown_states > 0 {
        read.warnings.push(format!(
            "{unknown_states} sockets in a TCP state netstat2 does not name were skipped"
        ));
    }
    Ok(read)
}

fn flags(wanted: TableRequest) -> (AddressFamilyFlags, ProtocolFlags) {
    let mut families = AddressFamilyFlags::empty();
    families.set(AddressFamilyFlags::IPV4, wanted.ipv4);
    families.set(AddressFamilyFlags::IPV6, wanted.ipv6);
    let mut protocols = ProtocolFlags::empty();
    protocols.set(ProtocolFlags::TCP, wanted.tcp);
    protocols.set(ProtocolFlags::UDP, wanted.udp);
    (families, protocols)
}

fn table_by_table(wanted: TableRequest, warnings: &mut Vec<String>) -> Result<Vec<SocketInfo>> {
    let mut infos = Vec::new();
    let mut any_read = false;
    for (name, proto, ipv6) in TABLES.into_iter().filter(|&(_, p, v6)| wanted.wants(p, v6)) {
        let (families, protocols) = flags(wanted.only(proto, ipv6));
        match quietly(|| ::netstat2::get_sockets_info(families, protocols)) {
            Some(Ok(mut table)) => {
                any_read = true;
                infos.append(&mut table);
            }
            Some(Err(error)) => warnings.push(format!("netstat2 could not read {name}: {error}")),
            None => warnings.push(format!("netstat2 failed reading {name}")),
        }
    }
    if any_read {
        Ok(infos)
    } else {
        Err(anyhow!(
            "netstat2 could not read any socket table ({})",
            warnings.join("; ")
        ))
    }
}

/// netstat2 panics on Linux when it can't list `/proc`. The tables themselves come from
/// netlink, so read them without pids; the caller then looks for owners itself and says what it
/// could not see.
#[cfg(target_os = "linux")]
fn without_owners(
    families: AddressFamilyFlags,
    protocols: ProtocolFlags,
    warnings: &mut Vec<String>,
) -> Result<Vec<SocketInfo>> {
    let infos = quietly(|| {
        ::netstat2::iterate_sockets_info_without_pids(families, protocols)?
            .collect::<Result<Vec<_>, _>>()
    })
    .ok_or_else(|| anyhow!("netstat2 failed reading the socket tables"))??;
    warnings.push("netstat2 could not list processes (is /proc readable?)".into());
    Ok(infos)
}

#[cfg(not(target_os = "linux"))]
fn without_owners(
    _families: AddressFamilyFlags,
    _protocols: ProtocolFlags,
    _warnings: &mut Vec<String>,
) -> Result<Vec<SocketInfo>> {
    Err(anyhow!("netstat2 failed reading the socket tables"))
}

/// Runs `f`, turning a panic into `None` without letting the panic print anything.
fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    result.ok()
}

/// The model's socket for one netstat2 row; `None` for a TCP state it does not name. Without
/// `owners_known` its pids were never looked up: `holders` stays `None` rather than claiming
/// that nobody holds it.
fn socket(info: SocketInfo, owners_known: bool) -> Option<Socket> {
    let (proto, local, remote, state) = match &info.protocol_socket_info {
        ProtocolSocketInfo::Tcp(tcp) => {
            let remote = SocketAddr::new(tcp.remote_addr, tcp.remote_port);
            let no_peer = tcp.remote_addr.is_unspecified() && tcp.remote_port == 0;
            (
                Proto::Tcp,
                SocketAddr::new(tcp.local_addr, tcp.local_port),
                (!no_peer).then_some(remote),
                tcp_state(tcp.state)?,
            )
        }
        ProtocolSocketInfo::Udp(udp) => (
            Proto::Udp,
            SocketAddr::new(udp.local_addr, udp.local_port),
            None,
            State::Unconn,
        ),
    };
    let mut holders = info.associated_pids.clone();
    holders.sort_unstable();
    holders.dedup();
    Some(Socket {
        proto,
        local,
        remote,
        state,
        tx_queue: None,
        rx_queue: None,
        timer: None,
        uid: uid(&info),
        inode: inode(&info),
        holders: owners_known.then_some(holders),
        v6only: None,
        netns: 0,
        cookie: 0,
        details: None,
    })
}

fn tcp_state(state: TcpState) -> Option<State> {
    Some(match state {
        TcpState::Listen => State::Listen,
        TcpState::SynSent => State::SynSent,
        TcpState::SynReceived => State::SynRecv,
        TcpState::Established => State::Established,
        TcpState::FinWait1 => State::FinWait1,
        TcpState::FinWait2 => State::FinWait2,
        TcpState::CloseWait => State::CloseWait,
        TcpState::Closing => State::Closing,
        TcpState::LastAck => State::LastAck,
        TcpState::TimeWait => State::TimeWait,
        // Windows' DELETE_TCB is a connection being torn down: closed, as far as anyone can use.
        TcpState::Closed | TcpState::DeleteTcb => State::Close,
        TcpState::Unknown => return None,
    })
}

#[cfg(target_os = "linux")]
fn uid(info: &SocketInfo) -> Option<u32> {
    Some(info.uid)
}

#[cfg(not(target_os = "linux"))]
fn uid(_info: &SocketInfo) -> Option<u32> {
    None
}

#[cfg(target_os = "linux")]
fn inode(info: &SocketInfo) -> u64 {
    u64::from(info.inode)
}

#[cfg(not(target_os = "linux"))]
fn inode(_info: &SocketInfo) -> u64 {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use ::netstat2::{TcpSocketInfo, UdpSocketInfo};

    fn info(protocol_socket_info: ProtocolSocketInfo, pids: Vec<u32>) -> SocketInfo {
        SocketInfo {
            protocol_socket_info,
            associated_pids: pids,
            inode: 42,
            uid: 1000,
        }
    }

    fn tcp(local: &str, remote: &str, state: TcpState) -> ProtocolSocketInfo {
        let local: SocketAddr = local.parse().expect("address");
        let remote: SocketAddr = remote.parse().expect("address");
        ProtocolSocketInfo::Tcp(TcpSocketInfo {
            local_addr: local.ip(),
            local_port: local.port(),
            remote_addr: remote.ip(),
            remote_port: remote.port(),
            state,
        })
    }

    #[test]
    fn listener_has_no_remote_and_sorted_unique_holders() {
        let row = info(
            tcp("0.0.0.0:80", "0.0.0.0:0", TcpState::Listen),
            vec![9, 3, 9],
        );
        let socket = socket(row, true).expect("known state");
        assert_eq!(socket.state, State::Listen);
        assert_eq!(socket.remote, None);
        assert_eq!(socket.holders, Some(vec![3, 9]));
        assert_eq!((socket.uid, socket.inode), (Some(1000), 42));
    }

    #[test]
    fn connection_keeps_its_peer_and_ipv4_mapped_addresses() {
        let row = info(
            tcp(
                "[::ffff:127.0.0.1]:80",
                "[::ffff:127.0.0.1]:5000",
                TcpState::Established,
            ),
            vec![],
        );
        let socket = socket(row, true).expect("known state");
        assert_eq!(socket.local.to_string(), "[::ffff:127.0.0.1]:80");
        assert_eq!(socket.remote.map(|r| r.port()), Some(5000));
        assert_eq!(socket.holders, Some(vec![]));
    }

    #[test]
    fn udp_reads_as_unconnected_without_a_peer() {
        let udp = ProtocolSocketInfo::Udp(UdpSocketInfo {
            local_addr: "::1".parse().expect("address"),
            local_port: 53,
        });
        let socket = socket(info(udp, vec![1]), true).expect("udp");
        assert_eq!(
            (socket.proto, socket.state, socket.remote),
            (Proto::Udp, State::Unconn, None)
        );
    }

    #[test]
    fn states_map_and_unknown_ones_are_dropped() {
        assert_eq!(tcp_state(TcpState::SynReceived), Some(State::SynRecv));
        assert_eq!(tcp_state(TcpState::DeleteTcb), Some(State::Close));
        assert_eq!(tcp_state(TcpState::TimeWait), Some(State::TimeWait));
        assert_eq!(tcp_state(TcpState::Unknown), None);
        let row = info(tcp("127.0.0.1:1", "127.0.0.1:2", TcpState::Unknown), vec![]);
        assert_eq!(socket(row, true), None);
    }

    #[test]
    fn owners_not_looked_up_stay_unknown_rather_than_empty() {
        let row = info(tcp("127.0.0.1:80", "0.0.0.0:0", TcpState::Listen), vec![]);
        assert_eq!(socket(row, false).expect("listen").holders, None);
    }

    #[test]
    fn a_panic_is_caught_quietly() {
        assert_eq!(quietly(|| 7), Some(7));
        assert_eq!(
            quietly(|| -> u8 { panic!("netstat2 could not list /proc") }),
            None
        );
    }
}
