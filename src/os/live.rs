//! The running machine, as the [`Os`] the commands are given.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use super::host::{self, UserNames};
use super::{DestroyFeed, Os, Wait, probe, processes, signal, tables};
use crate::core::counters::NetStatistics;
use crate::core::firewall::Ruleset;
use crate::core::model::{
    Backend, Holders, InterfaceAddress, Namespace, Process, Proto, Source, TableRead, TableRequest,
};
use crate::core::probe::{ProbeReading, ProbeRequest};
use crate::core::query::NetnsSelection;
use crate::core::stop::Signalled;
use crate::core::verdict::{BindOutcome, ConnectOutcome, HostFacts};

/// This machine. Each user is looked up once, when first asked for; Ctrl-C is caught from the
/// first wait on.
#[derive(Default)]
pub struct LiveOs {
    users: UserNames,
    started: OnceLock<Instant>,
    /// What ends a wait early: Ctrl-C, once caught, and reports of destroyed sockets.
    signals: OnceLock<Signals>,
    interrupts_caught: OnceLock<()>,
}

enum Signal {
    Interrupt,
    // Only the destroy-event reader sends it, and that reader is Linux's.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Reports,
}

struct Signals {
    sender: Sender<Signal>,
    receiver: Mutex<Receiver<Signal>>,
}

impl LiveOs {
    pub fn new() -> LiveOs {
        let os = LiveOs::default();
        os.started.get_or_init(Instant::now);
        os
    }

    fn signals(&self) -> &Signals {
        self.signals.get_or_init(|| {
            let (sender, receiver) = mpsc::channel();
            Signals {
                sender,
                receiver: Mutex::new(receiver),
            }
        })
    }

    /// Runs `f` inside `netns` (here when it is `None` or portstat's own).
    fn inside<T: Send>(
        &self,
        netns: Option<&Namespace>,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T> {
        match netns {
            #[cfg(target_os = "linux")]
            Some(namespace) => super::netns::inside(namespace, f),
            #[cfg(not(target_os = "linux"))]
            Some(_) => Err(crate::core::error::UsageError(
                "--netns is supported on Linux only".into(),
            )
            .into()),
            None => Ok(f()),
        }
    }
}

impl Os for LiveOs {
    fn read_tables(
        &self,
        backend: Backend,
        source: &Source,
        netns: Option<&Namespace>,
        wanted: TableRequest,
    ) -> Result<TableRead> {
        match netns {
            #[cfg(target_os = "linux")]
            Some(namespace) => super::netns::read(namespace, backend, wanted),
            #[cfg(not(target_os = "linux"))]
            Some(_) => Err(crate::core::error::UsageError(
                "--netns is supported on Linux only".into(),
            )
            .into()),
            None => tables::read(backend, source, wanted),
        }
    }

    fn namespaces(&self, selection: &NetnsSelection) -> Result<(Vec<Namespace>, Vec<String>)> {
        #[cfg(target_os = "linux")]
        {
            super::netns::select(selection)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = selection;
            Err(crate::core::error::UsageError("--netns is supported on Linux only".into()).into())
        }
    }

    fn find_holders(&self, wanted: Option<&HashSet<u64>>) -> Holders {
        processes::find_holders(wanted)
    }

    fn processes(&self, pids: &[u32], names: bool) -> HashMap<u32, Arc<Process>> {
        processes::describe_processes(pids, names.then_some(&self.users))
    }

    fn cgroup(&self, pid: u32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
    }

    fn user_name(&self, uid: u32) -> Option<Arc<str>> {
        self.users.name(uid)
    }

    fn user_id(&self, name: &str) -> Option<u32> {
        self.users.uid(name)
    }

    fn host_facts(&self, netns: Option<&Namespace>) -> Result<HostFacts> {
        self.inside(netns, host::facts)
    }

    fn net_statistics(&self, netns: Option<&Namespace>) -> Result<NetStatistics> {
        self.inside(netns, host::net_statistics)?
    }

    fn effective_uid(&self) -> Option<u32> {
        host::effective_uid()
    }

    fn own_pid(&self) -> u32 {
        std::process::id()
    }

    fn signal(&self, pid: u32, started: u64, which: crate::core::stop::Signal) -> Signalled {
        signal::send(pid, started, which)
    }

    fn run_tool(&self, program: &str, args: &[String]) -> Result<String, String> {
        signal::run(program, args)
    }

    fn confirm(&self, question: &str) -> Result<bool> {
        signal::confirm(question)
    }

    fn hostname(&self) -> String {
        host::hostname()
    }

    fn interfaces(&self, netns: Option<&Namespace>) -> Result<Vec<InterfaceAddress>> {
        let found = self
            .inside(netns, if_addrs::get_if_addrs)?
            .context("could not list the network interfaces")?;
        Ok(found
            .into_iter()
            .map(|interface| InterfaceAddress {
                address: interface.ip(),
                prefix: prefix_of(&interface.addr),
                interface: interface.name,
            })
            .collect())
    }

    fn firewall(&self, netns: Option<&Namespace>) -> Result<Ruleset, String> {
        #[cfg(target_os = "linux")]
        {
            if host::effective_uid() != Some(0) {
                return Err(
                    "reading the firewall needs root (its netlink dump and iptables-save \
                            need CAP_NET_ADMIN)"
                        .into(),
                );
            }
            let dumps = self
                .inside(netns, super::firewall::dump)
                .map_err(|error| format!("{error:#}"))??;
            let ruleset = super::firewall::assemble(&dumps);
            // A large ruleset's netlink document is tens of thousands of small allocations:
            // freed on a thread of its own, the command does not wait for that walk (if no
            // thread can start, the closure is dropped, and the document with it, here).
            let _ = std::thread::Builder::new().spawn(move || drop(dumps));
            ruleset
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = netns;
            Err("portstat reads the firewall on Linux only".into())
        }
    }

    fn interface_names(&self, netns: Option<&Namespace>) -> Result<Vec<(u32, String)>> {
        let found = self
            .inside(netns, if_addrs::get_if_addrs)?
            .context("could not list the network interfaces")?;
        let mut names: Vec<(u32, String)> = found
            .into_iter()
            .filter_map(|interface| Some((interface.index?, interface.name)))
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn etc_services(&self) -> Option<String> {
        let bytes = std::fs::read("/etc/services").ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn test_bind(
        &self,
        netns: Option<&Namespace>,
        proto: Proto,
        address: SocketAddr,
        reuse_address: bool,
    ) -> BindOutcome {
        self.inside(netns, || probe::try_bind(proto, address, reuse_address))
            .unwrap_or_else(|error| BindOutcome::Failed(format!("{error:#}")))
    }

    fn test_connect(
        &self,
        netns: Option<&Namespace>,
        address: SocketAddr,
        timeout: Duration,
    ) -> (ConnectOutcome, Duration) {
        self.inside(netns, || probe::connect(address, timeout))
            .unwrap_or_else(|error| (ConnectOutcome::Failed(format!("{error:#}")), Duration::ZERO))
    }

    fn probe(&self, requests: &[ProbeRequest]) -> Vec<ProbeReading> {
        probe::talk_to_all(requests, |request, step, reading, deadline| {
            self.inside(request.netns.as_ref(), || {
                probe::take_step(request, step, reading, deadline)
            })
            .unwrap_or_else(|error| {
                *reading = ProbeReading {
                    connect: Some(ConnectOutcome::Failed(format!("{error:#}"))),
                    ..ProbeReading::default()
                };
                None
            })
        })
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        self.started.get_or_init(Instant::now).elapsed()
    }

    fn catch_interrupts(&self) -> Result<()> {
        if self.interrupts_caught.get().is_some() {
            return Ok(());
        }
        let sender = self.signals().sender.clone();
        ctrlc::set_handler(move || {
            let _ = sender.send(Signal::Interrupt);
        })
        .context("could not install the Ctrl-C handler")?;
        self.interrupts_caught.get_or_init(|| ());
        Ok(())
    }

    fn wait(&self, duration: Duration) -> Result<Wait> {
        let Some(signals) = self.signals.get() else {
            std::thread::sleep(duration);
            return Ok(Wait::Elapsed);
        };
        let receiver = signals
            .receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(match receiver.recv_timeout(duration) {
            Ok(Signal::Interrupt) | Err(RecvTimeoutError::Disconnected) => Wait::Interrupted,
            Ok(Signal::Reports) => Wait::Reports,
            Err(RecvTimeoutError::Timeout) => Wait::Elapsed,
        })
    }

    fn subscribe_destroyed<'a>(
        &'a self,
        netns: Option<&Namespace>,
    ) -> Result<Box<dyn DestroyFeed + 'a>> {
        #[cfg(target_os = "linux")]
        {
            let sender = self.signals().sender.clone();
            let wake = Box::new(move || {
                let _ = sender.send(Signal::Reports);
            });
            super::destroy_events::subscribe(netns.filter(|ns| !ns.own), wake)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = netns;
            Err(anyhow::anyhow!(
                "reports of destroyed sockets are a Linux feature"
            ))
        }
    }

    /// Only a regular file, or standard input, of at most 256 MiB (`USER_FILE_LIMIT`): a FIFO
    /// or a device is refused before a byte is read, so `--input /dev/zero` or a FIFO no one
    /// writes to is an error at once, not a hang or a run out of memory.
    fn read_user_file(&self, path: &Path) -> io::Result<String> {
        /// Snapshots, policies and baselines alike; the largest snapshot of a busy host (100k
        /// sockets) is far below it.
        const USER_FILE_LIMIT: u64 = 256 << 20;
        let bytes = if path == Path::new("-") {
            host::read_limited(io::stdin().lock(), USER_FILE_LIMIT)?
        } else {
            host::read_regular_file(path, USER_FILE_LIMIT)?
        };
        String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    }

    fn replace_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        host::replace_file(path, contents)
    }
}

/// The prefix length of an interface address's netmask (its count of leading ones).
fn prefix_of(address: &if_addrs::IfAddr) -> u8 {
    let ones = match address {
        if_addrs::IfAddr::V4(v4) => u32::from(v4.netmask).leading_ones(),
        if_addrs::IfAddr::V6(v6) => u128::from(v6.netmask).leading_ones(),
    };
    u8::try_from(ones).unwrap_or(0)
}
