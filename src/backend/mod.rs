//! The boundary between portstat and the operating system's socket tables. Everything past this
//! module sees only [`Socket`]s, whichever backend produced them.
//!
//! - `netlink` (Linux): the kernel's sock_diag netlink interface, as `ss` reads it; owners are
//!   found afterwards by walking `/proc/PID/fd`.
//! - `procfs` (Linux): `/proc/net/{tcp,tcp6,udp,udp6}`; owners found the same way.
//! - `netstat2` (Linux, macOS, Windows): the `netstat2` crate (sock_diag netlink on Linux,
//!   libproc on macOS, the IP Helper API on Windows), which reports owning pids itself.

use std::path::PathBuf;

use anyhow::Result;

use crate::error::UsageError;
use crate::model::{Proto, Socket, State};

#[cfg(target_os = "linux")]
pub mod netlink;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
pub mod netstat2;
#[cfg(target_os = "linux")]
pub mod procfs;

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

/// A set of socket states, one bit per [`State`]; cheap to copy, so [`Tables`] stays `Copy`.
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

/// Which of the four tables a query needs, and in which states; the other tables are not read
/// at all. Backends that can ask the kernel for given states only (netlink) do; the others read
/// every state, and the query filters afterwards anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tables {
    pub tcp: bool,
    pub udp: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// The states worth reading; empty means every state.
    pub states: StateSet,
    /// Only sockets whose local port is this one are wanted (`who`); backends that can ask the
    /// kernel to filter (netlink) do, the others read everything.
    pub local_port: Option<u16>,
}

impl Tables {
    pub const ALL: Tables = Tables {
        tcp: true,
        udp: true,
        ipv4: true,
        ipv6: true,
        states: StateSet::EMPTY,
        local_port: None,
    };

    pub fn wants(self, proto: Proto, ipv6: bool) -> bool {
        let proto_wanted = match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        proto_wanted && if ipv6 { self.ipv6 } else { self.ipv4 }
    }

    /// Just one table (`proto`, and IPv6 or IPv4), in the same states.
    pub fn only(self, proto: Proto, ipv6: bool) -> Tables {
        Tables {
            tcp: proto == Proto::Tcp,
            udp: proto == Proto::Udp,
            ipv4: !ipv6,
            ipv6,
            states: self.states,
            local_port: self.local_port,
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

/// Reads the wanted tables with the chosen backend.
pub fn read(backend: Backend, source: &Source, wanted: Tables) -> Result<TableRead> {
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
fn read_auto(wanted: Tables) -> Result<TableRead> {
    let netlink_error = match netlink::read_tables(wanted) {
        Ok((mut read, failures)) => {
            for failure in failures {
                from_procfs_instead(&mut read, &failure);
            }
            return Ok(read);
        }
        Err(error) => error,
    };
    match read_procfs(&Source::Live, wanted) {
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
    match procfs::read(std::path::Path::new("/proc/net"), failure.only) {
        Ok(mut table) => {
            read.warnings.push(format!(
                "sock_diag netlink could not read {} ({:#}): read /proc/net/{} instead",
                failure.table, failure.error, failure.table
            ));
            read.sockets.append(&mut table.sockets);
            read.warnings.append(&mut table.warnings);
        }
        Err(procfs_error) => read.warnings.push(format!(
            "{}; nor could /proc/net/{} be read ({procfs_error:#})",
            failure.warning(),
            failure.table
        )),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_auto(wanted: Tables) -> Result<TableRead> {
    read_netstat2(wanted)
}

#[cfg(target_os = "linux")]
fn read_netlink(wanted: Tables) -> Result<TableRead> {
    netlink::read(wanted)
}

#[cfg(not(target_os = "linux"))]
fn read_netlink(_wanted: Tables) -> Result<TableRead> {
    Err(
        UsageError("the netlink backend exists on Linux only: use --backend netstat2".into())
            .into(),
    )
}

#[cfg(target_os = "linux")]
fn read_procfs(source: &Source, wanted: Tables) -> Result<TableRead> {
    let dir = match source {
        Source::Live => std::path::Path::new("/proc/net"),
        Source::Recorded(dir) => dir.as_path(),
    };
    procfs::read(dir, wanted)
}

#[cfg(not(target_os = "linux"))]
fn read_procfs(_source: &Source, _wanted: Tables) -> Result<TableRead> {
    Err(UsageError("the procfs backend exists on Linux only: use --backend netstat2".into()).into())
}

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
fn read_netstat2(wanted: Tables) -> Result<TableRead> {
    netstat2::read(wanted)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn read_netstat2(_wanted: Tables) -> Result<TableRead> {
    anyhow::bail!(
        "portstat has no socket-table backend for this operating system ({}): it supports Linux, \
         macOS and Windows",
        std::env::consts::OS
    )
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
        let wanted = Tables {
            states: StateSet::of([State::Listen]),
            ..Tables::ALL
        };
        let udp6 = wanted.only(Proto::Udp, true);
        assert!(udp6.wants(Proto::Udp, true));
        assert!(!udp6.wants(Proto::Udp, false) && !udp6.wants(Proto::Tcp, true));
        assert_eq!(udp6.states, wanted.states);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_table_netlink_could_not_dump_is_read_from_proc_net() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("address");
        let failure = netlink::Failure {
            table: "tcp",
            only: Tables::ALL.only(Proto::Tcp, false),
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
