//! One look at the machine: read the tables, keep the sockets the query can match, find their
//! owners, and give each its meaning. Every command starts here.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;

use crate::core::cgroup;
use crate::core::error::UsageError;
use crate::core::meaning::{self, Listeners, Meaning, WalkLimits};
use crate::core::model::{
    Backend, ContainerLabel, Entry, EphemeralRange, Namespace, NetnsLabel, Process, Proto, Socket,
    Source, State, TableRead, Zones, zone_of,
};
use crate::core::query::{NetnsSelection, PortSpec, Query};
use crate::core::services::Services;
use crate::os::Os;

/// What a command asks a scan for, beyond the query.
#[derive(Clone, Copy)]
pub struct Names {
    /// Service names for ports; `None` under `--numeric`.
    pub services: Option<&'static Services>,
    /// User names for uids and processes.
    pub users: bool,
}

pub struct Scan {
    pub entries: Vec<Entry>,
    /// The ephemeral range the entries were given meaning with.
    pub ephemeral: EphemeralRange,
    /// What could not be seen: said once, shortly, to the user.
    pub warnings: Vec<String>,
    /// The namespaces read, when `--netns` asked for any; empty for portstat's own.
    pub namespaces: Vec<Namespace>,
}

impl Scan {
    /// The namespace an entry was read in: `None` for portstat's own.
    pub fn namespace_of(&self, entry: &Entry) -> Option<&Namespace> {
        match (&self.namespaces[..], &entry.netns) {
            ([only], _) => Some(only),
            (all, Some(label)) => all.iter().find(|ns| ns.inode == label.inode),
            _ => None,
        }
        .filter(|namespace| !namespace.own)
    }
}

pub fn scan(
    os: &dyn Os,
    query: &Query,
    backend: Backend,
    source: &Source,
    netns: &NetnsSelection,
    names: Names,
) -> Result<Scan> {
    let mut reading = read(os, query, backend, source, netns)?;
    let candidates = std::mem::take(&mut reading.candidates);
    let (entries, owner_warnings) = reading.describe(os, candidates, query, names);
    let mut warnings = reading.warnings;
    warnings.extend(owner_warnings);
    Ok(Scan {
        entries,
        ephemeral: reading.ephemeral,
        warnings,
        namespaces: reading.namespaces,
    })
}

/// The socket tables as read, before any owner is looked up.
pub struct Reading {
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
    /// The namespaces read, when `--netns` asked for any.
    pub namespaces: Vec<Namespace>,
}

/// Reads the tables the query needs, in the namespaces asked for, and keeps the sockets it can
/// match.
pub fn read(
    os: &dyn Os,
    query: &Query,
    backend: Backend,
    source: &Source,
    netns: &NetnsSelection,
) -> Result<Reading> {
    let (read, labels, namespaces) = match (netns, source) {
        (NetnsSelection::Own, _) => (
            os.read_tables(backend, source, None, query.tables())?,
            HashMap::new(),
            Vec::new(),
        ),
        (_, Source::Recorded(_)) => {
            return Err(UsageError(
                "recorded tables (--proc-net) hold one namespace: --netns does not apply".into(),
            )
            .into());
        }
        (selection, Source::Live) => read_namespaces(os, selection, backend, query)?,
    };
    let facts = os.host_facts(None)?;
    let ephemeral = facts.ephemeral;
    let mut warnings = read.warnings;
    warnings.extend(facts.warnings);
    let listeners = Listeners::index(&read.sockets);
    let candidates = read
        .sockets
        .into_iter()
        .filter(|socket| query.matches_socket(socket, ephemeral))
        .collect();
    Ok(Reading {
        candidates,
        listeners,
        ephemeral,
        inodes_known: read.inodes_known,
        warnings,
        labels,
        namespaces,
    })
}

/// The container a namespace belongs to: that of a process inside, when its cgroup names one.
pub fn container_of(os: &dyn Os, namespace: &Namespace) -> Option<ContainerLabel> {
    namespace
        .pid
        .filter(|_| !namespace.own)
        .and_then(|pid| os.cgroup(pid))
        .and_then(|text| cgroup::parse(&text).container)
        .map(ContainerLabel::from)
}

/// What listens at a forward's target.
#[derive(Default)]
pub struct Server {
    /// The namespace's label, as the NETNS column shows it.
    pub netns: Option<String>,
    pub container: Option<ContainerLabel>,
    pub processes: Vec<Arc<Process>>,
}

/// The namespaces a forward's target may be in, with their addresses, looked up once.
#[derive(Default)]
pub struct Servers {
    namespaces: Option<Vec<(Namespace, Vec<IpAddr>)>>,
}

impl Servers {
    /// The namespace that holds a forward's target address, and what listens there on its
    /// port. Nothing when no namespace holds it (another host) or they can't be listed.
    pub fn behind(
        &mut self,
        os: &dyn Os,
        backend: Backend,
        proto: Proto,
        address: IpAddr,
        port: u16,
        services: &'static Services,
    ) -> Server {
        let namespaces = self.namespaces.get_or_insert_with(|| {
            let (found, _) = os.namespaces(&NetnsSelection::All).unwrap_or_default();
            found
                .into_iter()
                .filter(|ns| !ns.own)
                .map(|ns| {
                    let addresses = os.interfaces(Some(&ns)).unwrap_or_default();
                    (ns, addresses.into_iter().map(|a| a.address).collect())
                })
                .collect()
        });
        let Some((namespace, _)) = namespaces
            .iter()
            .find(|(_, addresses)| addresses.contains(&address))
        else {
            return Server::default();
        };
        let container = container_of(os, namespace);
        let query = Query {
            states: vec![State::Listen, State::Unconn],
            protos: vec![proto],
            ports: Some(PortSpec::from(port)),
            local_ports_only: true,
            ..Query::default()
        };
        let names = Names {
            services: Some(services),
            users: true,
        };
        let selection = NetnsSelection::One(namespace.path.display().to_string());
        let processes = scan(os, &query, backend, &Source::Live, &selection, names)
            .map(|found| {
                let mut processes: Vec<Arc<Process>> = found
                    .entries
                    .iter()
                    .flat_map(|entry| entry.processes.iter().cloned())
                    .collect();
                processes.sort_by_key(|p| p.pid);
                processes.dedup_by_key(|p| p.pid);
                processes
            })
            .unwrap_or_default();
        let label = NetnsLabel {
            inode: namespace.inode,
            name: namespace.name.clone(),
            container: container.clone(),
            host: false,
        };
        Server {
            netns: Some(label.short()),
            container,
            processes,
        }
    }
}

/// Namespace labels by namespace inode.
type Labels = HashMap<u64, Arc<NetnsLabel>>;

/// Reads every selected namespace's tables from inside it, each socket marked with its
/// namespace. A namespace that can't be read is a warning, unless it is the only one asked.
fn read_namespaces(
    os: &dyn Os,
    selection: &NetnsSelection,
    backend: Backend,
    query: &Query,
) -> Result<(TableRead, Labels, Vec<Namespace>)> {
    let (namespaces, mut warnings) = os.namespaces(selection)?;
    let mut read = TableRead {
        inodes_known: true,
        ..TableRead::default()
    };
    let mut labels = HashMap::new();
    let only_one = namespaces.len() == 1;
    for namespace in &namespaces {
        let container = container_of(os, namespace);
        let label = NetnsLabel {
            inode: namespace.inode,
            name: namespace.name.clone(),
            container,
            host: namespace.own,
        };
        match os.read_tables(backend, &Source::Live, Some(namespace), query.tables()) {
            Ok(mut tables) => {
                for socket in &mut tables.sockets {
                    socket.netns = namespace.inode;
                }
                read.sockets.append(&mut tables.sockets);
                read.inodes_known &= tables.inodes_known;
                warnings.append(&mut tables.warnings);
                labels.insert(namespace.inode, Arc::new(label));
            }
            Err(error) if only_one => return Err(error),
            Err(error) => warnings.push(format!(
                "network namespace {} not shown: {error:#}",
                label.short()
            )),
        }
    }
    read.warnings = warnings;
    // One namespace shown is labelled nowhere: its output is the same as without --netns.
    if labels.len() < 2 {
        labels.clear();
    }
    Ok((read, labels, namespaces))
}

impl Reading {
    /// Finds the owners of `sockets` (one walk over the processes, for the owners the backend
    /// did not report), gives each its meaning, and keeps those the owner filters match. Also
    /// says what could not be seen.
    pub fn describe(
        &self,
        os: &dyn Os,
        sockets: Vec<Socket>,
        query: &Query,
        names: Names,
    ) -> (Vec<Entry>, Vec<String>) {
        let wanted: HashSet<u64> = sockets
            .iter()
            .filter(|socket| socket.holders.is_none() && socket.inode != 0)
            .map(|socket| socket.inode)
            .collect();
        let walked = if wanted.is_empty() {
            Default::default()
        } else {
            os.find_holders(&wanted)
        };
        let holders_of = |socket: &Socket| -> Vec<u32> {
            match &socket.holders {
                Some(reported) => reported.clone(),
                None => walked.pids(socket.inode).to_vec(),
            }
        };
        let mut all_pids: Vec<u32> = sockets.iter().flat_map(holders_of).collect();
        all_pids.sort_unstable();
        all_pids.dedup();
        let processes = if all_pids.is_empty() {
            HashMap::new()
        } else {
            os.processes(&all_pids, names.users)
        };
        let limits = WalkLimits {
            euid: os.effective_uid(),
            unreadable: &walked.unreadable,
            own_netns: walked.own_netns,
            some_vanished: walked.vanished > 0,
            inodes_known: self.inodes_known,
        };
        let mut user_names = HashMap::new();
        let mut user_of = |uid: u32| -> Option<Arc<str>> {
            user_names
                .entry(uid)
                .or_insert_with(|| os.user_name(uid))
                .clone()
        };

        let meaning = Meaning {
            ephemeral: self.ephemeral,
            listeners: &self.listeners,
            services: names.services,
            labels: &self.labels,
        };
        let entries: Vec<Entry> = sockets
            .into_iter()
            .map(|socket| {
                let owners: Vec<Arc<Process>> = holders_of(&socket)
                    .iter()
                    .filter_map(|pid| processes.get(pid).cloned())
                    .collect();
                let note =
                    meaning::owner_note(&socket, !owners.is_empty(), &self.listeners, limits);
                let user = socket.uid.filter(|_| names.users).and_then(&mut user_of);
                meaning.entry(socket, owners, note, user)
            })
            .filter(|entry| query.matches_owner(entry))
            .collect();
        let warnings = meaning::owner_warnings(&entries, limits);
        (entries, warnings)
    }
}

/// The interface names of the zones the entries' link-local addresses have, looked up once per
/// run in each namespace that has such a socket; nothing is asked when none has. A namespace
/// whose interfaces can't be listed shows its zones by index.
pub fn zones(os: &dyn Os, netns: &NetnsSelection, entries: &[Entry]) -> Zones {
    let mut zones = Zones::default();
    let mut wanted: Vec<u64> = entries
        .iter()
        .filter(|entry| {
            let socket = &entry.socket;
            zone_of(socket.local).is_some() || socket.remote.and_then(zone_of).is_some()
        })
        .map(|entry| entry.socket.netns)
        .collect();
    if wanted.is_empty() {
        return zones;
    }
    wanted.sort_unstable();
    wanted.dedup();
    let namespaces = match netns {
        NetnsSelection::Own => Vec::new(),
        selection => os
            .namespaces(selection)
            .map(|(namespaces, _)| namespaces)
            .unwrap_or_default(),
    };
    for inode in wanted {
        let names = match netns {
            NetnsSelection::Own => os.interface_names(None),
            _ => match namespaces.iter().find(|namespace| namespace.inode == inode) {
                Some(namespace) => os.interface_names(Some(namespace).filter(|ns| !ns.own)),
                None => continue,
            },
        };
        for (index, name) in names.unwrap_or_default() {
            zones.insert(inode, index, &name);
        }
    }
    zones
}
