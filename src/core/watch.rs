//! Following changes between readings of the tables: which sockets opened, changed state or
//! closed. Pure: readings in, changes out. What it remembers is what exists now, so memory stays
//! flat however many events it has seen.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::core::model::{Entry, Process, Proto, Socket, State};

/// A socket as the tables identify it.
type Key = (Proto, SocketAddr, Option<SocketAddr>);

fn key(socket: &Socket) -> Key {
    (socket.proto, socket.local, socket.remote)
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
    /// and returns the changes since the last. `describe` looks up the owners of new sockets
    /// and drops those the owner filters reject. The first reading only sets the baseline.
    pub fn update(
        &mut self,
        current: Vec<Socket>,
        baseline: bool,
        describe: impl FnOnce(Vec<Socket>) -> Vec<Entry>,
    ) -> Vec<Change> {
        let mut events = Vec::new();
        let mut seen: HashSet<Key> = HashSet::with_capacity(current.len());
        let mut fresh = Vec::new();
        for socket in current {
            let key = key(&socket);
            seen.insert(key);
            if self.ignored.contains(&key) {
                continue;
            }
            match self.known.get_mut(&key) {
                Some(known) if known.socket.state != socket.state => {
                    let previous = known.socket.state;
                    known.socket = socket.clone();
                    events.push(Change {
                        kind: Kind::StateChanged,
                        socket,
                        previous: Some(previous),
                        processes: known.processes.clone(),
                    });
                }
                Some(_) => {}
                None => fresh.push(socket),
            }
        }
        let fresh_keys: Vec<Key> = fresh.iter().map(key).collect();
        let described = if fresh.is_empty() {
            Vec::new()
        } else {
            describe(fresh)
        };
        let followed: HashSet<Key> = described.iter().map(|entry| key(&entry.socket)).collect();
        self.ignored
            .extend(fresh_keys.into_iter().filter(|k| !followed.contains(k)));
        for entry in described {
            let kind = if entry.socket.state.is_listening() {
                Kind::ListenerOpened
            } else {
                Kind::ConnectionOpened
            };
            if !baseline {
                events.push(Change {
                    kind,
                    socket: entry.socket.clone(),
                    previous: None,
                    processes: entry.processes.clone(),
                });
            }
            self.known.insert(
                key(&entry.socket),
                Known {
                    socket: entry.socket,
                    processes: entry.processes,
                },
            );
        }
        let mut gone: Vec<Key> = self
            .known
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        // In a stable order: the same readings print the same lines.
        gone.sort_unstable();
        for key in gone {
            if let Some(known) = self.known.remove(&key) {
                let kind = if known.socket.state.is_listening() {
                    Kind::ListenerClosed
                } else {
                    Kind::ConnectionClosed
                };
                events.push(Change {
                    kind,
                    socket: known.socket,
                    previous: None,
                    processes: known.processes,
                });
            }
        }
        self.ignored.retain(|key| seen.contains(key));
        events
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

    fn socket(local: &str, remote: Option<&str>, state: State) -> Socket {
        Socket::example(Proto::Tcp, local, remote, state)
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
        let events = follower.update(vec![listener.clone(), closing], false, entries);
        assert_eq!(kinds(&events), [Kind::StateChanged]);
        assert_eq!(events[0].previous, Some(State::Established));
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
}
