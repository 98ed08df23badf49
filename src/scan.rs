//! One look at the machine: read the tables, keep the sockets the query can match, find their
//! owners, and give each its meaning. Every command starts here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Result;

use crate::backend::{self, Backend, Source, TableRead};
use crate::error::UsageError;
use crate::filter::{NetnsSelection, Query};
use crate::host::{self, UserNames};
use crate::meaning::{Listeners, Meaning};
use crate::model::{Entry, EphemeralRange, NetnsLabel, OwnerNote, Process, Socket};
#[cfg(target_os = "linux")]
use crate::netns;
use crate::owners::{self, Stop, WalkLimits};
use crate::services::Services;

/// Whether to look up names (services, users) or stay numeric.
pub struct Names<'a> {
    pub services: Option<&'static Services>,
    pub users: Option<&'a UserNames>,
}

pub struct Scan {
    pub entries: Vec<Entry>,
    /// What could not be seen: said once, shortly, to the user.
    pub warnings: Vec<String>,
}

pub fn scan(
    query: &Query,
    backend: Backend,
    source: &Source,
    netns: &NetnsSelection,
    names: Names,
    stop: Stop,
) -> Result<Scan> {
    let mut tables = read(query, backend, source, netns)?;
    let candidates = std::mem::take(&mut tables.candidates);
    let (entries, owner_warnings) = tables.describe(candidates, query, &names, stop);
    let mut warnings = tables.warnings;
    warnings.extend(owner_warnings);
    Ok(Scan { entries, warnings })
}

/// The socket tables as read, before any owner is looked up.
pub struct Tables {
    /// The sockets the query can still match (owner filters aside).
    pub candidates: Vec<Socket>,
    /// Every listener read, including ones the query hides: direction and accept queues need
    /// them.
    pub listeners: Listeners,
    pub ephemeral: EphemeralRange,
    pub inodes_known: bool,
    pub warnings: Vec<String>,
    /// Namespace labels by inode, when more than one namespace was read.
    pub labels: HashMap<u64, Arc<NetnsLabel>>,
}

/// Reads the tables the query needs, in the namespaces asked for, and keeps the sockets it can
/// match.
pub fn read(
    query: &Query,
    backend: Backend,
    source: &Source,
    netns: &NetnsSelection,
) -> Result<Tables> {
    let (read, labels) = match (netns, source) {
        (NetnsSelection::Own, _) => (
            backend::read(backend, source, query.tables())?,
            HashMap::new(),
        ),
        (_, Source::Recorded(_)) => {
            return Err(UsageError(
                "recorded tables (--proc-net) hold one namespace: --netns does not apply".into(),
            )
            .into());
        }
        (selection, Source::Live) => read_namespaces(selection, backend, query)?,
    };
    let ephemeral = host::ephemeral_range();
    let listeners = Listeners::index(&read.sockets);
    let candidates = read
        .sockets
        .into_iter()
        .filter(|socket| query.matches_socket(socket, ephemeral))
        .collect();
    Ok(Tables {
        candidates,
        listeners,
        ephemeral,
        inodes_known: read.inodes_known,
        warnings: read.warnings,
        labels,
    })
}

/// Reads every selected namespace's tables from inside it, each socket marked with its
/// namespace. A namespace that can't be read is a warning, unless it is the only one asked.
#[cfg(target_os = "linux")]
fn read_namespaces(
    selection: &NetnsSelection,
    backend: Backend,
    query: &Query,
) -> Result<(TableRead, HashMap<u64, Arc<NetnsLabel>>)> {
    let (namespaces, mut warnings) = netns::select(selection)?;
    let mut read = TableRead {
        inodes_known: true,
        ..TableRead::default()
    };
    let mut labels = HashMap::new();
    let only_one = namespaces.len() == 1;
    for namespace in &namespaces {
        match namespace.read(backend, query.tables()) {
            Ok(mut tables) => {
                for socket in &mut tables.sockets {
                    socket.netns = namespace.inode;
                }
                read.sockets.append(&mut tables.sockets);
                read.inodes_known &= tables.inodes_known;
                warnings.append(&mut tables.warnings);
                labels.insert(namespace.inode, Arc::new(namespace.label()));
            }
            Err(error) if only_one => return Err(error),
            Err(error) => warnings.push(format!(
                "network namespace {} not shown: {error:#}",
                namespace.label().short()
            )),
        }
    }
    read.warnings = warnings;
    // One namespace shown is labelled nowhere: its output is the same as without --netns.
    if labels.len() < 2 {
        labels.clear();
    }
    Ok((read, labels))
}

#[cfg(not(target_os = "linux"))]
fn read_namespaces(
    _selection: &NetnsSelection,
    _backend: Backend,
    _query: &Query,
) -> Result<(TableRead, HashMap<u64, Arc<NetnsLabel>>)> {
    Err(UsageError("--netns is supported on Linux only".into()).into())
}

impl Tables {
    /// Finds the owners of `sockets` (one walk over the processes, for the owners the backend
    /// did not report), gives each its meaning, and keeps those the owner filters match. Also
    /// says what could not be seen.
    pub fn describe(
        &self,
        sockets: Vec<Socket>,
        query: &Query,
        names: &Names,
        stop: Stop,
    ) -> (Vec<Entry>, Vec<String>) {
        let wanted: HashSet<u64> = sockets
            .iter()
            .filter(|socket| socket.holders.is_none() && socket.inode != 0)
            .map(|socket| socket.inode)
            .collect();
        let walked = owners::find_holders(&wanted, stop);
        let holders_of = |socket: &Socket| -> Vec<u32> {
            match &socket.holders {
                Some(reported) => reported.clone(),
                None => walked.pids(socket.inode).to_vec(),
            }
        };
        let mut all_pids: Vec<u32> = sockets.iter().flat_map(holders_of).collect();
        all_pids.sort_unstable();
        all_pids.dedup();
        let processes = owners::describe_processes(&all_pids, names.users);
        let limits = WalkLimits {
            euid: host::effective_uid(),
            some_unreadable: walked.unreadable > 0,
            some_vanished: walked.vanished > 0,
            inodes_known: self.inodes_known,
        };

        let meaning = Meaning {
            ephemeral: self.ephemeral,
            listeners: &self.listeners,
            services: names.services,
            users: names.users,
            labels: &self.labels,
        };
        let entries: Vec<Entry> = sockets
            .into_iter()
            .map(|socket| {
                let owners: Vec<Arc<Process>> = holders_of(&socket)
                    .iter()
                    .filter_map(|pid| processes.get(pid).cloned())
                    .collect();
                let note = owners::owner_note(&socket, !owners.is_empty(), &self.listeners, limits);
                meaning.entry(socket, owners, note)
            })
            .filter(|entry| query.matches_owner(entry))
            .collect();
        let warnings = owner_warnings(&entries, limits);
        (entries, warnings)
    }
}

fn owner_warnings(entries: &[Entry], limits: WalkLimits) -> Vec<String> {
    let count = |wanted: OwnerNote| {
        entries
            .iter()
            .filter(|entry| entry.owner_note == Some(wanted))
            .count()
    };
    let mut warnings = Vec::new();
    let hidden = count(OwnerNote::Hidden);
    if hidden > 0 {
        warnings.push(if limits.euid == Some(0) {
            format!("owners of {hidden} sockets hidden: their /proc/PID/fd could not be read")
        } else {
            format!("owners of {hidden} sockets hidden: run as root")
        });
    }
    let exited = count(OwnerNote::Exited);
    if exited > 0 {
        warnings.push(format!(
            "owners of {exited} sockets not found: processes exited during the scan"
        ));
    }
    let not_found = count(OwnerNote::NotFound);
    if not_found > 0 {
        warnings.push(format!(
            "owners of {not_found} sockets not found: closed during the scan, or held outside \
             this PID namespace"
        ));
    }
    warnings
}
