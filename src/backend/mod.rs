//! The boundary between portstat and the operating system's socket tables. Everything past this
//! module sees only [`Socket`]s, whichever backend produced them.
//!
//! - `procfs` (Linux): `/proc/net/{tcp,tcp6,udp,udp6}`; owners are found afterwards by walking
//!   `/proc/PID/fd`.
//! - `netstat2` (Linux, macOS, Windows): the `netstat2` crate (sock_diag netlink on Linux,
//!   libproc on macOS, the IP Helper API on Windows), which reports owning pids itself.

use std::path::PathBuf;

use anyhow::Result;

use crate::error::UsageError;
use crate::model::{Proto, Socket};

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
pub mod netstat2;
#[cfg(target_os = "linux")]
pub mod procfs;

/// `--backend`: which reader of the kernel's socket tables runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// procfs on Linux (netstat2 if /proc/net can't be read), netstat2 on macOS and Windows
    Auto,
    /// /proc/net tables (Linux only)
    Procfs,
    /// the netstat2 crate (Linux, macOS, Windows)
    Netstat2,
}

/// Which of the four tables a query needs; the others are not read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tables {
    pub tcp: bool,
    pub udp: bool,
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Tables {
    pub const ALL: Tables = Tables {
        tcp: true,
        udp: true,
        ipv4: true,
        ipv6: true,
    };

    pub fn wants(self, proto: Proto, ipv6: bool) -> bool {
        let proto_wanted = match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        proto_wanted && if ipv6 { self.ipv6 } else { self.ipv4 }
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
        (Backend::Netstat2, Source::Recorded(_)) => Err(UsageError(
            "recorded tables (--proc-net) can only be read by the procfs backend".into(),
        )
        .into()),
        (Backend::Procfs, _) | (Backend::Auto, Source::Recorded(_)) => read_procfs(source, wanted),
        (Backend::Netstat2, Source::Live) => read_netstat2(wanted),
        (Backend::Auto, Source::Live) => read_auto(wanted),
    }
}

#[cfg(target_os = "linux")]
fn read_auto(wanted: Tables) -> Result<TableRead> {
    match read_procfs(&Source::Live, wanted) {
        Ok(read) => Ok(read),
        Err(procfs_error) => {
            let mut read = read_netstat2(wanted).map_err(|netstat2_error| {
                netstat2_error.context(format!(
                    "could not read /proc/net ({procfs_error:#}), nor use netstat2 instead"
                ))
            })?;
            read.warnings.insert(
                0,
                format!("could not read /proc/net ({procfs_error:#}): used the netstat2 backend"),
            );
            Ok(read)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn read_auto(wanted: Tables) -> Result<TableRead> {
    read_netstat2(wanted)
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
