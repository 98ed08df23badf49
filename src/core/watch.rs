//! Following changes between readings of the tables: which sockets opened, changed state or
//! closed. Pure: readings in, changes out. What it remembers is what exists now, so memory stays
//! flat however many events it has seen.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::core::model::{Entry, Process, Proto, Socket, State};

/// A connection's namespace, protocol and two ends: the kernel holds at most one such socket
/// at a time.
type Tuple = (u64, Proto, SocketAddr, Option<SocketAddr>);

fn tuple(socket: &Socket) -> Tuple {
    (socket.netns, socket.proto, socket.local, socket.remote)
}

/// What tells one socket from another across readings.
///
/// An address is not enough: when one process closes a listener and another binds the same
/// address between two readings, the two are different sockets, and both events are due. A
/// socket a file refers to has an inode, which no other socket of the host has while it lives,
/// so that is its key. A socket with inode 0 has no file (a TIME_WAIT, a connection orphaned by
/// `close()`, one waiting in an accept queue; or any socket of a backend without inodes) and is
/// known by its addresses; [`goes_on`] and the follower's matching across the two kinds of key
/// tell a connection that lives on from a new one at the same addresses. (The kernel's socket
/// cookie, which sock_diag reports for every socket, would identify all of them alike.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    File {
        netns: u64,
        proto: Proto,
        inode: u64,
    },
    Fileless(Tuple),
}

fn key(socket: &Socket) -> Key {
    if socket.inode == 0 {
        Key::Fileless(tuple(socket))
    } else {
        Key::File {
            netns: socket.netns,
            proto: socket.proto,
            inode: socket.inode,
        }
    }
}

/// How far a TCP connection has come: it moves forward only, so a socket at the same addresses
/// in an earlier stage (an ESTABLISHED where a TIME_WAIT was) is a new connection.
fn stage(state: State) -> u8 {
    match state {
        State::Listen | State::Unconn => 0,
        State::SynSent | State::SynRecv | State::NewSynRecv => 1,
        State::Established => 2,
        State::FinWait1 | State::CloseWait => 3,
        State::FinWait2 | State::Closing | State::LastAck => 4,
        State::TimeWait | State::Close => 5,
    }
}

/// Whether a socket seen in state `before` can be the same one now seen in state `now`.
fn goes_on(before: State, now: State) -> bool {
    stage(now) >= stage(before)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    ListenerOpened,
    ListenerClosed,
    ConnectionOpened,
    StateChanged,
    ConnectionClosed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ListenerOpened => "listener-opened",
            Kind::ListenerClosed => "listener-closed",
            Kind::ConnectionOpened => "connection-opened",
            Kind::StateChanged => "state-changed",
            Kind::ConnectionClosed => "connection-closed",
        }
    }
}

/// One change, as printed.
#[derive(Debug, Serialize)]
pub struct Event {
    pub time: String,
    pub event: Kind,
    pub proto: &'static str,
    pub family: &'static str,
    pub local_address: String,
    pub local_port: u16,
    pub remote_address: Option<String>,
    pub remote_port: Option<u16>,
    pub state: &'static str,
    /// The state it left, for `state-changed`.
    pub previous_state: Option<&'static str>,
    pub processes: Vec<Arc<Process>>,
}

/// One change the follower saw, before it is printed.
pub struct Change {
    pub kind: Kind,
    pub socket: Socket,
    /// The state it left, for a state change.
    pub previous: Option<State>,
    /// Its owners, as first seen.
    pub processes: Vec<Arc<Process>>,
}

/// What is known of a socket being followed.
struct Known {
    socket: Socket,
    processes: Vec<Arc<Process>>,
}

/// The sockets followed now, and those seen but not followed (their owner did not match the
/// filters), so neither is looked up twice.
#[derive(Default)]
pub struct Follower {
    known: HashMap<Key, Known>,
    ignored: HashSet<Key>,
}

impl Follower {
    /// Takes one reading of the tables (already filtered by the query's socket-level filters)
    /// and returns the changes since the last: sockets closed, then state changes, then sockets
    /// opened. `describe` looks up the owners of new sockets and drops those the owner filters
    /// reject. The first reading only sets the baseline.
    pub fn update(
        &mut self,
        current: Vec<Socket>,
        baseline: bool,
        describe: impl FnOnce(Vec<Socket>) -> Vec<Entry>,
    ) -> Vec<Change> {
        // Two rows with one key are one socket as far as anyone can tell (a backend without
        // inodes): the first stands for both, so every count is of the sockets followed.
        let mut seen: HashSet<Key> = HashSet::with_capacity(current.len());
        let current: Vec<Socket> = current
            .into_iter()
            .filter(|socket| seen.insert(key(socket)))
            .collect();
        // Followed until now and absent from this reading: closed, or a connection that goes
        // on under the other kind of key (orphaned by close(), or accept()ed).
        let absent: Vec<Key> = self
            .known
            .keys()
            .filter(|key| !seen.contains(key))
            .copied()
            .collect();
        let mut gone: HashMap<Key, Known> = absent
            .into_iter()
            .filter_map(|key| self.known.remove_entry(&key))
            .collect();
        let mut gone_by_tuple: HashMap<Tuple, Key> = gone
            .iter()
            .filter(|(_, known)| known.socket.remote.is_some())
            .map(|(&key, known)| (tuple(&known.socket), key))
            .collect();

        let mut closed = Vec::new();
        let mut changed = Vec::new();
        let mut fresh = Vec::new();
        // Accept()ed from a queue, where no owner could be seen: owners are looked up now.
        let mut relook: HashSet<Key> = HashSet::new();
        for socket in current {
            let key = key(&socket);
            if self.ignored.contains(&key) {
                continue;
            }
            if let Some(known) = self.known.get_mut(&key) {
                if known.socket.state == socket.state {
                    continue;
                }
                if goes_on(known.socket.state, socket.state) {
                    changed.push(Change {
                        kind: Kind::StateChanged,
                        socket: socket.clone(),
                        previous: Some(known.socket.state),
                        processes: known.processes.clone(),
                    });
                    known.socket = socket;
                } else if let Some(old) = self.known.remove(&key) {
                    // A new connection at the addresses of one that ended.
                    closed.push(old);
                    fresh.push(socket);
                }
                continue;
            }
            let continued = gone_by_tuple
                .get(&tuple(&socket))
                .copied()
                .filter(|old_key| {
                    matches!(old_key, Key::Fileless(_)) != matches!(key, Key::Fileless(_))
                        && goes_on(gone[old_key].socket.state, socket.state)
                });
            match continued.and_then(|old_key| gone.remove(&old_key)) {
                Some(mut known) => {
                    gone_by_tuple.remove(&tuple(&socket));
                    if known.socket.state != socket.state {
                        changed.push(Change {
                            kind: Kind::StateChanged,
                            socket: socket.clone(),
                            previous: Some(known.socket.state),
                            processes: known.processes.clone(),
                        });
                    }
                    if known.processes.is_empty() && socket.inode != 0 {
                        relook.insert(key);
                        fresh.push(socket.clone());
                    }
                    known.socket = socket;
                    self.known.insert(key, known);
                }
                None => fresh.push(socket),
            }
        }

        let fresh_keys: Vec<Key> = fresh
            .iter()
            .map(key)
            .filter(|key| !relook.contains(key))
            .collect();
        let described = if fresh.is_empty() {
            Vec::new()
        } else {
            describe(fresh)
        };
        let followed: HashSet<Key> = described.iter().map(|entry| key(&entry.socket)).collect();
        self.ignored
            .extend(fresh_keys.into_iter().filter(|k| !followed.contains(k)));
        let mut opened = Vec::new();
        for entry in described {
            let key = key(&entry.socket);
            if relook.contains(&key) {
                if let Some(known) = self.known.get_mut(&key) {
                    known.processes = entry.processes;
                }
                continue;
            }
            let kind = if entry.socket.state.is_listening() {
                Kind::ListenerOpened
            } else {
                Kind::ConnectionOpened
            };
            if !baseline {
                opened.push(Change {
                    kind,
                    socket: entry.socket.clone(),
                    previous: None,
                    processes: entry.processes.clone(),
                });
            }
            self.known.insert(
                key,
                Known {
                    socket: entry.socket,
                    processes: entry.processes,
                },
            );
        }

        closed.extend(gone.into_values());
        // In a stable order: the same readings print the same lines.
        closed.sort_unstable_by_key(|known| {
            let socket = &known.socket;
            (socket.proto, socket.local, socket.remote, socket.inode)
        });
        let closed = closed.into_iter().map(|known| Change {
            kind: if known.socket.state.is_listening() {
                Kind::ListenerClosed
            } else {
                Kind::ConnectionClosed
            },
            socket: known.socket,
            previous: None,
            processes: known.processes,
        });
        self.ignored.retain(|key| seen.contains(key));
        closed.chain(changed).chain(opened).collect()
    }

    /// How many sockets are followed: those that match every filter.
    pub fn followed(&self) -> usize {
        self.known.len()
    }

    /// How many sockets are seen but not followed: their owners do not match the owner
    /// filters (`--pid`, `--process`).
    pub fn unmatched(&self) -> usize {
        self.ignored.len()
    }

    /// How many sockets are remembered: those that exist now, no more.
    pub fn remembered(&self) -> usize {
        self.known.len() + self.ignored.len()
    }
}

impl Event {
    /// What is printed of a change seen at `time`.
    pub fn of(change: Change, time: SystemTime) -> (Event, Socket) {
        let Change {
            kind,
            socket,
            previous,
            processes,
        } = change;
        let event = Event {
            time: humantime::format_rfc3339_millis(time).to_string(),
            event: kind,
            proto: socket.proto.as_str(),
            family: socket.family().as_str(),
            local_address: socket.local.ip().to_string(),
            local_port: socket.local.port(),
            remote_address: socket.remote.map(|remote| remote.ip().to_string()),
            remote_port: socket.remote.map(|remote| remote.port()),
            state: socket.state.as_str(),
            previous_state: previous.map(State::as_str),
            processes,
        };
        (event, socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket with an inode of its own: one per address pair, as a test writes them.
    fn socket(local: &str, remote: Option<&str>, state: State) -> Socket {
        let socket = Socket::example(Proto::Tcp, local, remote, state);
        let inode = u64::from(socket.local.port()) * 100_000
            + u64::from(socket.remote.map_or(0, |remote| remote.port()));
        Socket { inode, ..socket }
    }

    fn with_inode(socket: &Socket, inode: u64) -> Socket {
        Socket {
            inode,
            ..socket.clone()
        }
    }

    /// Owners by inode, as the walk would find them.
    fn owned_by(owners: &[(u64, u32, &'static str)]) -> impl Fn(Vec<Socket>) -> Vec<Entry> {
        let owners = owners.to_vec();
        move |sockets| {
            sockets
                .into_iter()
                .map(|socket| {
                    let processes = owners
                        .iter()
                        .filter(|(inode, _, _)| *inode == socket.inode)
                        .map(|&(_, pid, name)| Process::example(pid, name, None))
                        .collect();
                    Entry::example(socket, processes)
                })
                .collect()
        }
    }

    fn pids(change: &Change) -> Vec<u32> {
        change.processes.iter().map(|p| p.pid).collect()
    }

    fn entries(sockets: Vec<Socket>) -> Vec<Entry> {
        sockets
            .into_iter()
            .map(|socket| Entry::example(socket, vec![Process::example(9, "server", None)]))
            .collect()
    }

    fn kinds(events: &[Change]) -> Vec<Kind> {
        events.iter().map(|change| change.kind).collect()
    }

    #[test]
    fn the_first_reading_is_a_baseline_and_changes_follow() {
        let mut follower = Follower::default();
        let listener = socket("127.0.0.1:80", None, State::Listen);
        assert!(
            follower
                .update(vec![listener.clone()], true, entries)
                .is_empty()
        );
        let connection = socket("127.0.0.1:80", Some("127.0.0.1:5000"), State::Established);
        let events = follower.update(vec![listener.clone(), connection.clone()], false, entries);
        assert_eq!(kinds(&events), [Kind::ConnectionOpened]);
        assert_eq!(events[0].processes[0].pid, 9);
        let closing = Socket {
            state: State::CloseWait,
            ..connection
        };
        let events = follower.update(vec![listener.clone(), closing.clone()], false, entries);
        assert_eq!(kinds(&events), [Kind::StateChanged]);
        assert_eq!(events[0].previous, Some(State::Established));
        // close(): the kernel finishes the connection alone, no file (inode) refers to it now;
        // it is the same connection.
        let orphan = Socket {
            state: State::LastAck,
            inode: 0,
            ..closing
        };
        let events = follower.update(vec![listener.clone(), orphan], false, entries);
        assert_eq!(kinds(&events), [Kind::StateChanged]);
        assert_eq!(events[0].previous, Some(State::CloseWait));
        let events = follower.update(vec![], false, entries);
        let mut closed = kinds(&events);
        closed.sort_by_key(|kind| kind.as_str());
        assert_eq!(closed, [Kind::ConnectionClosed, Kind::ListenerClosed]);
        // The closed events still name the owner, though the socket is gone.
        assert!(
            events
                .iter()
                .all(|change| change.processes[0].name == "server")
        );
        assert_eq!(follower.remembered(), 0);
    }

    #[test]
    fn owners_are_looked_up_for_new_sockets_only() {
        let mut follower = Follower::default();
        let listener = socket("127.0.0.1:80", None, State::Listen);
        follower.update(vec![listener.clone()], true, entries);
        let mut lookups = 0;
        for _ in 0..5 {
            follower.update(vec![listener.clone()], false, |fresh| {
                lookups += 1;
                entries(fresh)
            });
        }
        assert_eq!(lookups, 0);
    }

    #[test]
    fn sockets_the_owner_filters_reject_are_not_looked_up_again() {
        let mut follower = Follower::default();
        let other = socket("127.0.0.1:81", None, State::Listen);
        let mut lookups = 0;
        for _ in 0..3 {
            let events = follower.update(vec![other.clone()], false, |_| {
                lookups += 1;
                Vec::new()
            });
            assert!(events.is_empty());
        }
        assert_eq!(lookups, 1);
        follower.update(vec![], false, entries);
        assert_eq!(follower.remembered(), 0);
    }

    #[test]
    fn memory_stays_flat_over_many_events() {
        let mut follower = Follower::default();
        for round in 0..1000u16 {
            let local = format!("127.0.0.1:{}", 10000 + round);
            let events = follower.update(vec![socket(&local, None, State::Listen)], false, entries);
            assert!(!events.is_empty());
            assert!(follower.remembered() <= 1);
        }
    }

    #[test]
    fn a_listener_bound_where_another_was_released_is_a_close_and_an_open() {
        // Process A (pid 100) held 127.0.0.1:8080 as inode 10; between two readings it closed
        // it and process B (pid 200) bound the same address: inode 11.
        let owners = owned_by(&[(10, 100, "old-server"), (11, 200, "new-server")]);
        let mut follower = Follower::default();
        let a = with_inode(&socket("127.0.0.1:8080", None, State::Listen), 10);
        let b = with_inode(&a, 11);
        assert!(follower.update(vec![a], true, &owners).is_empty());
        let events = follower.update(vec![b.clone()], false, &owners);
        assert_eq!(kinds(&events), [Kind::ListenerClosed, Kind::ListenerOpened]);
        assert_eq!(pids(&events[0]), [100]);
        assert_eq!(events[0].socket.inode, 10);
        assert_eq!(pids(&events[1]), [200]);
        assert_eq!(events[1].socket.inode, 11);
        assert_eq!(follower.followed(), 1);
        // B goes on as itself.
        assert!(follower.update(vec![b], false, &owners).is_empty());
    }

    #[test]
    fn listeners_sharing_an_address_are_followed_one_by_one() {
        // Two SO_REUSEPORT listeners on one address: two sockets, two owners.
        let owners = owned_by(&[(10, 100, "worker"), (11, 101, "worker")]);
        let mut follower = Follower::default();
        let first = with_inode(&socket("0.0.0.0:80", None, State::Listen), 10);
        let second = with_inode(&first, 11);
        follower.update(vec![first.clone(), second], true, &owners);
        assert_eq!(follower.followed(), 2);
        let events = follower.update(vec![first], false, &owners);
        assert_eq!(kinds(&events), [Kind::ListenerClosed]);
        assert_eq!(pids(&events[0]), [101]);
    }

    #[test]
    fn a_connection_accepted_from_the_queue_goes_on_and_gains_its_owner() {
        let owners = owned_by(&[(12, 300, "server")]);
        let mut follower = Follower::default();
        let queued = with_inode(
            &socket("10.0.0.5:80", Some("10.0.0.9:50000"), State::Established),
            0,
        );
        follower.update(vec![queued.clone()], true, &owners);
        let accepted = with_inode(&queued, 12);
        assert!(follower.update(vec![accepted], false, &owners).is_empty());
        let events = follower.update(vec![], false, &owners);
        assert_eq!(kinds(&events), [Kind::ConnectionClosed]);
        assert_eq!(pids(&events[0]), [300]);
    }

    #[test]
    fn a_new_connection_where_a_time_wait_was_is_a_close_and_an_open() {
        let owners = owned_by(&[]);
        let mut follower = Follower::default();
        let time_wait = with_inode(
            &socket("10.0.0.5:80", Some("10.0.0.9:50000"), State::TimeWait),
            0,
        );
        follower.update(vec![time_wait.clone()], true, &owners);
        // The peer reused its port: a new handshake, waiting in the accept queue.
        let again = Socket {
            state: State::Established,
            ..time_wait
        };
        let events = follower.update(vec![again], false, &owners);
        assert_eq!(
            kinds(&events),
            [Kind::ConnectionClosed, Kind::ConnectionOpened]
        );
        assert_eq!(events[0].socket.state, State::TimeWait);
        assert_eq!(events[1].socket.state, State::Established);
    }

    #[test]
    fn two_rows_with_one_key_count_once() {
        // A backend without inodes: two listeners on one address look alike.
        let mut follower = Follower::default();
        let listener = with_inode(&socket("0.0.0.0:80", None, State::Listen), 0);
        let mut described = 0;
        follower.update(vec![listener.clone(), listener], true, |fresh| {
            described = fresh.len();
            entries(fresh)
        });
        assert_eq!(described, 1);
        assert_eq!(follower.followed(), 1);
    }
}
