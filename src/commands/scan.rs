//! One look at the machine: read the tables, keep the sockets the query can match, find their
//! owners, and give each its meaning. Every command starts here.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;

use crate::core::cgroup;
use crate::core::error::UsageError;
use crate::core::firewall::eval::{Forward, Reach};
use crate::core::firewall::judge::{ForwardTarget, Judge, Network};
use crate::core::firewall::published;
use crate::core::meaning::{self, Listeners, Meaning, WalkLimits};
use crate::core::model::{
    Backend, ContainerLabel, Entry, EphemeralRange, Holders, Namespace, NetnsLabel, Process, Proto,
    Saves, Socket, Source, State, TableRead, TableRequest, Zones, zone_of,
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
    // The walk over every process's descriptors needs nothing from the tables when it looks
    // for every socket: it runs while they are dumped (one core dumps TCP, the walk takes the
    // other). Not when a port is asked for: a port nobody uses then needs no walk at all.
    let early = matches!(source, Source::Live)
        && backend != Backend::Netstat2
        && query.ports.is_none()
        && query.local_ports.is_none()
        && query.remote_ports.is_none()
        && query.endpoint.is_none();
    let (reading, walked) = if early {
        super::alongside(
            || read(os, query, backend, source, netns, Saves::Time),
            || Some(os.find_holders(None)),
        )
    } else {
        (read(os, query, backend, source, netns, Saves::Time), None)
    };
    let mut reading = reading?;
    let candidates = std::mem::take(&mut reading.candidates);
    let (entries, owner_warnings) = reading.describe(os, candidates, query, names, walked);
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
    saves: Saves,
) -> Result<Reading> {
    let wanted = TableRequest {
        saves,
        ..query.tables()
    };
    let (read, labels, namespaces) = match (netns, source) {
        (NetnsSelection::Own, _) => (
            os.read_tables(backend, source, None, wanted)?,
            HashMap::new(),
            Vec::new(),
        ),
        (_, Source::Recorded(_)) => {
            return Err(UsageError(
                "recorded tables (--proc-net) hold one namespace: --netns does not apply".into(),
            )
            .into());
        }
        (selection, Source::Live) => read_namespaces(os, selection, backend, &wanted)?,
    };
    let facts = os.host_facts(None)?;
    let ephemeral = facts.ephemeral;
    let mut warnings = read.warnings;
    warnings.extend(facts.warnings);
    let listeners = Listeners::index(&read.sockets);
    // `retain`, not a filtering collect: it moves no socket before the first it drops, and
    // most readings drop none.
    let mut candidates = read.sockets;
    candidates.retain(|socket| query.matches_socket(socket, ephemeral));
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

/// What the firewalls of a scan's namespaces say of it.
pub struct Firewalls {
    /// The verdict on each entry of the scan, in order: listeners (and bound UDP sockets)
    /// only, and none for what only loopback reaches.
    pub verdicts: Vec<Option<Reach>>,
    /// Every port the firewalls forward (DNAT), with what serves it.
    pub published: Vec<PublishedPort>,
    /// Namespaces whose firewall could not be read, and why.
    pub warnings: Vec<String>,
}

/// A forward of one namespace's firewall.
pub struct PublishedPort {
    /// The inode of the namespace whose firewall forwards it; `None` for portstat's own.
    pub netns: Option<u64>,
    pub forward: Forward,
    /// Whether new connections from beyond the host get through.
    pub reach: Reach,
    pub target: Arc<ForwardTarget>,
    /// What listens at the target.
    pub processes: Vec<Arc<Process>>,
}

impl PublishedPort {
    /// Whether this forward takes the connections meant for an entry's port.
    pub fn covers(&self, scan: &Scan, entry: &Entry) -> bool {
        scan.namespace_of(entry).map(|ns| ns.inode) == self.netns
            && entry.socket.state.is_listening()
            && entry.socket.proto == self.forward.proto
            && self.forward.host_ports.contains(entry.socket.local.port())
    }
}

/// Reads the firewall of every namespace the scan saw and judges its listeners, and finds the
/// ports each forwards, the server behind each and the container that publishes it.
pub fn judge_firewalls(
    os: &dyn Os,
    services: &'static Services,
    scan: &Scan,
    backend: Backend,
    bindv6only: bool,
) -> Firewalls {
    let mut namespaces: Vec<Option<&Namespace>> = Vec::new();
    for entry in &scan.entries {
        let namespace = scan.namespace_of(entry);
        if !namespaces.contains(&namespace) {
            namespaces.push(namespace);
        }
    }
    let mut firewalls = Firewalls {
        verdicts: vec![None; scan.entries.len()],
        published: Vec::new(),
        warnings: Vec::new(),
    };
    let mut servers = Servers::default();
    for namespace in namespaces {
        let addresses = os.interfaces(namespace).unwrap_or_default();
        let forwarding = os
            .host_facts(namespace)
            .map_or([None, None], |facts| facts.forwarding);
        let network = Network::of(&addresses).with_forwarding(forwarding);
        let ruleset = os.firewall(namespace);
        if let Err(why) = &ruleset {
            firewalls.warnings.push(format!(
                "the firewall{} was not read, so its verdicts are unknown and the ports it \
                 forwards are not shown: {why}",
                namespace.map_or(String::new(), |ns| format!(
                    " of network namespace {}",
                    ns.inode
                ))
            ));
        }
        let judge = Judge::new(&ruleset, &network);
        let in_namespace = |entry: &&Entry| scan.namespace_of(entry) == namespace;
        for (verdict, entry) in firewalls.verdicts.iter_mut().zip(&scan.entries) {
            let socket = &entry.socket;
            if !in_namespace(&entry) || !socket.state.is_listening() {
                continue;
            }
            let address = socket.local.ip();
            let dual_stack = address.is_ipv6()
                && address.is_unspecified()
                && !socket.v6only.unwrap_or(bindv6only);
            *verdict = judge.listener(socket.proto, address, socket.local.port(), dual_stack);
        }
        let entries: Vec<&Entry> = scan.entries.iter().filter(in_namespace).collect();
        firewalls.published.extend(published_ports(
            os,
            services,
            backend,
            &judge,
            &entries,
            namespace,
            &mut servers,
        ));
    }
    firewalls
}

/// The ports a namespace's firewall forwards, each with the server behind it and the
/// container that publishes it (named by the placeholder among `entries` that holds the port,
/// or by the target's cgroup).
pub fn published_ports(
    os: &dyn Os,
    services: &'static Services,
    backend: Backend,
    judge: &Judge,
    entries: &[&Entry],
    namespace: Option<&Namespace>,
    servers: &mut Servers,
) -> Vec<PublishedPort> {
    let mut published = Vec::new();
    for (forward, reach) in judge.forwards() {
        let server = servers.behind(
            os,
            backend,
            forward.proto,
            forward.to_address,
            forward.to_port,
            services,
        );
        let placeholder = entries
            .iter()
            .filter(|e| e.socket.state.is_listening() && e.socket.proto == forward.proto)
            .filter(|e| forward.host_ports.contains(e.socket.local.port()))
            .flat_map(|e| e.processes.iter())
            .find_map(|process| published::placeholder(process));
        let runtime = placeholder
            .as_ref()
            .map(|p| p.runtime.to_string())
            .or_else(|| server.container.as_ref().map(|c| c.runtime.clone()));
        let container_id = placeholder
            .as_ref()
            .and_then(|p| p.container_id.clone())
            .or_else(|| server.container.as_ref().map(|c| c.id.clone()));
        let target = Arc::new(ForwardTarget {
            to_address: forward.to_address,
            to_port: forward.to_port,
            netns: server.netns,
            container: placeholder
                .as_ref()
                .and_then(|p| p.container_name.clone())
                .or_else(|| container_id.clone()),
            container_id,
            runtime,
            rule: forward.rule.clone(),
        });
        published.push(PublishedPort {
            netns: namespace.map(|ns| ns.inode),
            forward,
            reach,
            target,
            processes: server.processes,
        });
    }
    published
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
            local_ports: Some(PortSpec::from(port)),
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
    wanted: &TableRequest,
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
        match os.read_tables(backend, &Source::Live, Some(namespace), wanted.clone()) {
            Ok(mut tables) => {
                for socket in &mut tables.sockets {
                    socket.netns = namespace.inode;
                }
                read.sockets.append(&mut tables.sockets);
                read.inodes_known &= tables.inodes_known;
                // What a backend can't read it says in every namespace: once is enough.
                for warning in tables.warnings {
                    if !warnings.contains(&warning) {
                        warnings.push(warning);
                    }
                }
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
    /// says what could not be seen. `early`: a walk for every socket made while the tables
    /// were read.
    pub fn describe(
        &self,
        os: &dyn Os,
        sockets: Vec<Socket>,
        query: &Query,
        names: Names,
        early: Option<Holders>,
    ) -> (Vec<Entry>, Vec<String>) {
        let wanted: HashSet<u64> = sockets
            .iter()
            .filter(|socket| socket.holders.is_none() && socket.inode != 0)
            .map(|socket| socket.inode)
            .collect();
        let walked = match early {
            _ if wanted.is_empty() => Default::default(),
            None => os.find_holders(Some(&wanted)),
            Some(mut walked) => {
                // A socket opened after the early walk passed its process: looked for again,
                // as the walk after the tables would have found it.
                let missed: HashSet<u64> = wanted
                    .into_iter()
                    .filter(|inode| !walked.by_inode.contains_key(inode))
                    .collect();
                if !missed.is_empty() {
                    let again = os.find_holders(Some(&missed));
                    walked.by_inode.extend(again.by_inode);
                    walked.vanished += again.vanished;
                }
                walked
            }
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

/// Looks up the interface the query's endpoint names by its zone (`[fe80::1%eth0]:53`) in
/// each namespace read: a socket matches on the interface of that name or index in its own
/// namespace. A zone no namespace has is bad input, as for `who`.
pub fn find_endpoint_zone(os: &dyn Os, query: &mut Query, netns: &NetnsSelection) -> Result<()> {
    let Some(endpoint) = query.endpoint else {
        return Ok(());
    };
    let Some(zone) = endpoint.zone else {
        return Ok(());
    };
    let namespaces = match netns {
        NetnsSelection::Own => vec![(0, None)],
        selection => os
            .namespaces(selection)?
            .0
            .into_iter()
            .map(|namespace| (namespace.inode, Some(namespace)))
            .collect(),
    };
    for (inode, namespace) in &namespaces {
        let inside = namespace.as_ref().filter(|namespace| !namespace.own);
        // A namespace whose interfaces can't be listed has none of them to match.
        let interfaces = os.interface_names(inside).unwrap_or_default();
        if let Some((index, _)) = zone.find(&interfaces) {
            query.endpoint_scopes.push((*inode, index));
        }
    }
    if query.endpoint_scopes.is_empty() {
        return Err(UsageError(zone.unknown(&endpoint.to_string())).into());
    }
    Ok(())
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
