//! The only code that touches the operating system. Everything else is given an [`Os`] and sees
//! plain data: [`LiveOs`] asks this machine, [`FakeOs`] answers from data a test wrote down.
//!
//! Calls are per scan, never per socket, so the seam costs nothing measurable.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::core::counters::NetStatistics;
use crate::core::firewall::Ruleset;
use crate::core::model::{
    Backend, DestroyedSince, Holders, InterfaceAddress, Namespace, Process, Proto, Source,
    TableRead, TableRequest,
};
use crate::core::probe::{ProbeReading, ProbeRequest};
use crate::core::query::NetnsSelection;
use crate::core::stop::{Signal, Signalled};
use crate::core::verdict::{BindOutcome, ConnectOutcome, HostFacts};

#[cfg(target_os = "linux")]
mod bytecode;
#[cfg(target_os = "linux")]
mod destroy_events;
pub mod fake;
#[cfg(target_os = "linux")]
mod fd_walk;
pub mod firewall;
mod host;
pub mod http;
#[cfg(target_os = "linux")]
mod kernel;
pub mod live;
#[cfg(target_os = "linux")]
mod netlink;
#[cfg(target_os = "linux")]
mod netns;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
mod netstat2;
mod probe;
mod processes;
#[cfg(target_os = "linux")]
pub mod procfs;
mod signal;
mod tables;
pub mod terminal;
mod tls;

pub use fake::FakeOs;
pub use live::LiveOs;

/// How a wait between two readings ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The time went by.
    Elapsed,
    /// The user asked to stop (Ctrl-C), or there is nothing more to read (a fake's last reading).
    Interrupted,
    /// Reports of destroyed sockets arrived on a [`DestroyFeed`] before the time went by.
    Reports,
}

/// One network namespace's reports of destroyed sockets, as they arrive.
pub trait DestroyFeed: Send {
    /// Every socket reported destroyed since the last call, oldest first, and how many reports
    /// were lost.
    fn take(&mut self) -> DestroyedSince;
}

/// Everything portstat asks of the operating system. `netns: None` is portstat's own network
/// namespace.
pub trait Os: Sync {
    /// The socket tables `wanted`, read by `backend` from `source`, inside `netns`.
    fn read_tables(
        &self,
        backend: Backend,
        source: &Source,
        netns: Option<&Namespace>,
        wanted: TableRequest,
    ) -> Result<TableRead>;

    /// The network namespaces a selection names, with what could not be seen.
    fn namespaces(&self, selection: &NetnsSelection) -> Result<(Vec<Namespace>, Vec<String>)>;

    /// Which processes hold the `wanted` socket inodes (`None`: every socket any process
    /// holds): one walk over every process's files, always complete (any process may hold any
    /// socket), with what could not be read.
    fn find_holders(&self, wanted: Option<&HashSet<u64>>) -> Holders;

    /// Names, command lines, start times (and, with `names`, users) of these processes; a pid
    /// that is gone by now is missing from the result.
    fn processes(&self, pids: &[u32], names: bool) -> HashMap<u32, Arc<Process>>;

    /// The text of a process's cgroup membership (`/proc/PID/cgroup`), if it can be read.
    fn cgroup(&self, pid: u32) -> Option<String>;

    /// The name of a user id, from the system's user database.
    fn user_name(&self, uid: u32) -> Option<Arc<str>>;

    /// The id of a user name.
    fn user_id(&self, name: &str) -> Option<u32>;

    /// The settings that bear on binding ports, as seen inside `netns`.
    fn host_facts(&self, netns: Option<&Namespace>) -> Result<HostFacts>;

    /// The kernel's network statistics (`/proc/net/netstat`, `/proc/net/snmp`) inside `netns`.
    fn net_statistics(&self, netns: Option<&Namespace>) -> Result<NetStatistics>;

    /// This process's effective uid, where the platform has one.
    fn effective_uid(&self) -> Option<u32>;

    /// This process's pid: `who --stop` never signals it.
    fn own_pid(&self) -> u32;

    /// Sends `signal` through a pidfd to `pid`, only while it is the process that started at
    /// `started` (seconds since the Unix epoch, as [`Os::processes`] reports it): a pid reused
    /// since is never signalled.
    fn signal(&self, pid: u32, started: u64, signal: Signal) -> Signalled;

    /// Runs `program` with `args` to its end (`systemctl stop nginx.service`, `docker ps ...`)
    /// and returns its standard output; a missing program or a failure is one line saying so.
    fn run_tool(&self, program: &str, args: &[String]) -> Result<String, String>;

    /// Asks `question` on the controlling terminal and says whether the answer was yes; an
    /// error when there is no terminal.
    fn confirm(&self, question: &str) -> Result<bool>;

    fn hostname(&self) -> String;

    /// Every address an interface holds inside `netns`, with its prefix and interface.
    fn interfaces(&self, netns: Option<&Namespace>) -> Result<Vec<InterfaceAddress>>;

    /// The firewall inside `netns`: nftables and iptables (nft and legacy) rules as one
    /// ruleset, or why it could not be read (not root, a tool missing).
    fn firewall(&self, netns: Option<&Namespace>) -> Result<Ruleset, String>;

    /// Every interface with an address, as its index and name, inside `netns`: the zones of
    /// link-local addresses (a socket's scope id is its interface's index).
    fn interface_names(&self, netns: Option<&Namespace>) -> Result<Vec<(u32, String)>>;

    /// The system's `/etc/services`, if there is one.
    fn etc_services(&self) -> Option<String>;

    /// Binds a new socket to `address` (with or without SO_REUSEADDR) inside `netns` and closes
    /// it at once, never listening on it.
    fn test_bind(
        &self,
        netns: Option<&Namespace>,
        proto: Proto,
        address: SocketAddr,
        reuse_address: bool,
    ) -> BindOutcome;

    /// Tries a TCP connection like `nc -z`, inside `netns`; returns how it ended and how long it
    /// took.
    fn test_connect(
        &self,
        netns: Option<&Namespace>,
        address: SocketAddr,
        timeout: Duration,
    ) -> (ConnectOutcome, Duration);

    /// Talks to this host's own TCP listeners as each request allows (`--probe`), inside their
    /// namespaces: at most `core::probe::AT_ONCE` at once, all within `core::probe::TOTAL_CAP`,
    /// every connection closed as soon as its step is done. Readings in the requests' order.
    fn probe(&self, requests: &[ProbeRequest]) -> Vec<ProbeReading>;

    /// The wall clock.
    fn now(&self) -> SystemTime;

    /// A clock that only goes forward, from an arbitrary start.
    fn monotonic(&self) -> Duration;

    /// From now on, Ctrl-C ends the current or next [`Os::wait`] instead of the process.
    fn catch_interrupts(&self) -> Result<()>;

    /// Waits `duration`, or less if the user asks to stop (Ctrl-C, once caught) or a
    /// subscription has reports waiting.
    fn wait(&self, duration: Duration) -> Result<Wait>;

    /// Subscribes to the kernel's reports of TCP and UDP sockets destroyed inside `netns`, from
    /// now on (sock_diag's destroy groups, Linux only).
    fn subscribe_destroyed<'a>(
        &'a self,
        netns: Option<&Namespace>,
    ) -> Result<Box<dyn DestroyFeed + 'a>>;

    /// A file the user named (`-` is standard input).
    fn read_user_file(&self, path: &Path) -> io::Result<String>;

    /// Replaces `path` with `contents` atomically: written to a temporary file beside it and
    /// renamed over it, so a reader (node_exporter's textfile collector) sees the old file or
    /// the new one, never half of one.
    fn replace_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
}
