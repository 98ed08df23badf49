//! One look at the machine: read the tables, keep the sockets the query can match, find their
//! owners, and give each its meaning. Every command starts here.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;

use crate::backend::{self, Backend, Source};
use crate::filter::Query;
use crate::host::{self, UserNames};
use crate::meaning::{Listeners, Meaning};
use crate::model::{Entry, OwnerNote, Process, Socket};
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
    names: Names,
    stop: Stop,
) -> Result<Scan> {
    let read = backend::read(backend, source, query.tables())?;
    let mut warnings = read.warnings;
    let ephemeral = host::ephemeral_range();
    // Every listener counts for direction and accept queues, even ones the query hides.
    let listeners = Listeners::index(&read.sockets);
    let candidates: Vec<_> = read
        .sockets
        .into_iter()
        .filter(|socket| query.matches_socket(socket, ephemeral))
        .collect();

    // Owners the backend did not report are found by one walk over the processes.
    let wanted: HashSet<u64> = candidates
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
    let mut all_pids: Vec<u32> = candidates.iter().flat_map(holders_of).collect();
    all_pids.sort_unstable();
    all_pids.dedup();
    let processes = owners::describe_processes(&all_pids, names.users);
    let limits = WalkLimits {
        euid: host::effective_uid(),
        some_unreadable: walked.unreadable > 0,
        some_vanished: walked.vanished > 0,
        inodes_known: read.inodes_known,
    };

    let meaning = Meaning {
        ephemeral,
        listeners: &listeners,
        services: names.services,
        users: names.users,
    };
    let entries: Vec<Entry> = candidates
        .into_iter()
        .map(|socket| {
            let owners: Vec<Arc<Process>> = holders_of(&socket)
                .iter()
                .filter_map(|pid| processes.get(pid).cloned())
                .collect();
            let note = owners::owner_note(&socket, !owners.is_empty(), &listeners, limits);
            meaning.entry(socket, owners, note)
        })
        .filter(|entry| query.matches_owner(entry))
        .collect();

    warnings.extend(owner_warnings(&entries, limits));
    Ok(Scan { entries, warnings })
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
