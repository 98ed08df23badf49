//! Reading the socket tables with the backend asked for, and auto's fallbacks. Everything past
//! this module sees only `Socket`s, whichever backend produced them.
//!
//! - `netlink` (Linux): the kernel's sock_diag netlink interface, as `ss` reads it; owners are
//!   found afterwards by walking `/proc/PID/fd`.
//! - `procfs` (Linux): `/proc/net/{tcp,tcp6,udp,udp6}`; owners found the same way.
//! - `netstat2` (Linux, macOS, Windows): the `netstat2` crate (sock_diag netlink on Linux,
//!   libproc on macOS, the IP Helper API on Windows), which reports owning pids itself.

use anyhow::Result;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
use super::netstat2;
#[cfg(target_os = "linux")]
use super::{netlink, procfs};
use crate::core::error::UsageError;
#[cfg(target_os = "linux")]
use crate::core::model::Extensions;
use crate::core::model::{Backend, Source, TableRead, TableRequest};

/// Reads the wanted tables with the chosen backend.
pub fn read(backend: Backend, source: &Source, wanted: TableRequest) -> Result<TableRead> {
    match (backend, source) {
        (Backend::Netlink | Backend::Netstat2, Source::Recorded(_)) => Err(UsageError(
            "recorded tables (--proc-net) can only be read by the procfs backend".into(),
        )
        .into()),
        (Backend::Procfs, _) | (Backend::Auto, Source::Recorded(_)) => read_procfs(source, wanted),
        (Backend::Netlink, Source::Live) => read_netlink(wanted),
        (Backend::Netstat2, Source::Live) => read_netstat2(wanted),
        (Backend::Auto, Source::Live) => read_auto(wanted),
    }
}

/// Linux: netlink; the tables it could not dump from `/proc/net` instead; everything from
/// `/proc/net` when netlink fails altogether, and from netstat2 when that fails too.
#[cfg(target_os = "linux")]
fn read_auto(wanted: TableRequest) -> Result<TableRead> {
    let netlink_error = match netlink::read_tables(wanted.clone()) {
        Ok((mut read, failures)) => {
            for failure in failures {
                from_procfs_instead(&mut read, &failure);
            }
            return Ok(read);
        }
        Err(error) => error,
    };
    match read_procfs(&Source::Live, wanted.clone()) {
        Ok(mut read) => {
            read.warnings.insert(
                0,
                format!(
                    "could not use sock_diag netlink ({netlink_error:#}): used the procfs backend"
                ),
            );
            Ok(read)
        }
        Err(procfs_error) => {
            let mut read = read_netstat2(wanted).map_err(|netstat2_error| {
                netstat2_error.context(format!(
                    "could not use sock_diag netlink ({netlink_error:#}), nor read /proc/net \
                     ({procfs_error:#}), nor use netstat2 instead"
                ))
            })?;
            read.warnings.insert(
                0,
                format!(
                    "could not use sock_diag netlink ({netlink_error:#}) nor read /proc/net \
                     ({procfs_error:#}): used the netstat2 backend"
                ),
            );
            Ok(read)
        }
    }
}

/// One table netlink could not dump (its sock_diag module missing, say), read from `/proc/net`.
#[cfg(target_os = "linux")]
fn from_procfs_instead(read: &mut TableRead, failure: &netlink::Failure) {
    match procfs::read(std::path::Path::new("/proc/net"), failure.only.clone()) {
        Ok(mut table) => {
            read.warnings.push(format!(
                "sock_diag netlink could not read {} ({:#}): read /proc/net/{} instead",
                failure.table, failure.error, failure.table
            ));
            read.sockets.append(&mut table.sockets);
            read.warnings.append(&mut table.warnings);
            read.warnings.extend(procfs_lacks(failure.only.extensions));
        }
        Err(procfs_error) => read.warnings.push(format!(
            "{}; nor could /proc/net/{} be read ({procfs_error:#})",
            failure.warning(),
            failure.table
        )),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_auto(wanted: TableRequest) -> Result<TableRead> {
    read_netstat2(wanted)
}

#[cfg(target_os = "linux")]
fn read_netlink(wanted: TableRequest) -> Result<TableRead> {
    netlink::read(wanted)
}

#[cfg(not(target_os = "linux"))]
fn read_netlink(_wanted: TableRequest) -> Result<TableRead> {
    Err(
        UsageError("the netlink backend exists on Linux only: use --backend netstat2".into())
            .into(),
    )
}

#[cfg(target_os = "linux")]
fn read_procfs(source: &Source, wanted: TableRequest) -> Result<TableRead> {
    let dir = match source {
        Source::Live => std::path::Path::new("/proc/net"),
        Source::Recorded(dir) => dir.as_path(),
    };
    let asked = wanted.extensions;
    let mut read = procfs::read(dir, wanted)?;
    read.warnings.extend(procfs_lacks(asked));
    Ok(read)
}

/// What `-i` and `-m` asked for that /proc/net does not print, said once (its queues and
/// timers are there; a TCP listener's backlog is not).
#[cfg(target_os = "linux")]
fn procfs_lacks(asked: Extensions) -> Option<String> {
    let (what, fields) = match (asked.info, asked.memory) {
        (false, false) => return None,
        (true, false) => ("TCP internals (-i)", "tcp_info is"),
        (false, true) => ("socket memory (-m)", "memory is"),
        (true, true) => (
            "TCP internals (-i) or socket memory (-m)",
            "tcp_info and memory are",
        ),
    };
    Some(format!(
        "the procfs backend can't read {what} nor a TCP listener's backlog (SEND-Q): {fields} \
         null; the netlink backend reads them"
    ))
}

#[cfg(not(target_os = "linux"))]
fn read_procfs(_source: &Source, _wanted: TableRequest) -> Result<TableRead> {
    Err(UsageError("the procfs backend exists on Linux only: use --backend netstat2".into()).into())
}

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
fn read_netstat2(wanted: TableRequest) -> Result<TableRead> {
    let asked = wanted.extensions;
    let mut read = netstat2::read(wanted)?;
    if asked.any() {
        read.warnings.push(
            "the netstat2 backend reads no queues, timers, TCP internals or socket memory: \
             recv_q, send_q, timer, tcp_info and memory are null"
                .to_string(),
        );
    }
    Ok(read)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn read_netstat2(_wanted: TableRequest) -> Result<TableRead> {
    anyhow::bail!(
        "portstat has no socket-table backend for this operating system ({}): it supports Linux, \
         macOS and Windows",
        std::env::consts::OS
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::core::model::Proto;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_table_netlink_could_not_dump_is_read_from_proc_net() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("address");
        let failure = netlink::Failure {
            table: "tcp",
            only: TableRequest::ALL.only(Proto::Tcp, false),
            error: anyhow::anyhow!("No such file or directory (os error 2)"),
        };
        let mut read = TableRead::default();
        from_procfs_instead(&mut read, &failure);
        assert!(read.sockets.iter().any(|s| s.local == local));
        assert!(
            read.sockets
                .iter()
                .all(|s| s.proto == Proto::Tcp && s.local.is_ipv4())
        );
        assert_eq!(
            read.warnings,
            [
                "sock_diag netlink could not read tcp (No such file or directory (os error 2)): \
              read /proc/net/tcp instead"
            ]
        );
    }
}
