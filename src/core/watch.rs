//! Following changes between readings of the tables: which sockets opened, changed state or
//! closed, and the kernel's reports of sockets destroyed in between. Pure: readings and reports
//! in, changes out. What it remembers is what exists now (and the cookies of what closed in the
//! last two readings), so memory stays flat however many events it has seen.

use foldhash::{HashMap, HashSet, HashSetExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::core::model::{Destroyed, Entry, Process, Proto, Socket, State, TcpBytes};

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
/// tell a connection that lives on from a new one at the same addresses. The kernel's socket
/// cookie (netlink backend only) is what a destroy report names a socket by: [`Follower`]
/// finds a followed socket by it, never by its key.
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
    /// For a close: whether a reading saw the socket open (false: it opened and closed between
    /// two readings, and only the kernel's report of its end tells of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_open: Option<bool>,
    /// For a TCP close the kernel reported: tcp_info's counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
}

/// One change the follower saw, before it is printed.
pub struct Change {
    pub kind: Kind,
    pub socket: Socket,
    /// The state it left, for a state change.
    pub previous: Option<State>,
    /// Its owners, as first seen.
    pub processes: Vec<Arc<Process>>,
    /// For a close, whether a reading saw it open.
    pub seen_open: bool,
    /// For a TCP close the kernel reported, its byte counts.
    pub bytes: Option<TcpBytes>,
}

impl Change {
    fn new(kind: Kind, socket: Socket, processes: Vec<Arc<Process>>) -> Change {
        Change {
            kind,
            socket,
            previous: None,
            processes,
            seen_open: true,
            bytes: None,
        }
    }

    fn closed(known: Known, bytes: Option<TcpBytes>) -> Change {
        let kind = if known.socket.state.is_listening() {
            Kind::ListenerClosed
        } else {
            Kind::ConnectionClosed
        };
        Change {
            bytes,
            ..Change::new(kind, known.socket, known.processes)
        }
    }
}

/// A socket's cookie in its namespace: what a destroy report names it by.
type Cookie = (u64, u64);

fn cookie(socket: &Socket) -> Option<Cookie> {
    (socket.cookie != 0).then_some((socket.netns, socket.cookie))
}

/// How long the cookie of a closed socket is remembered, in readings: long enough for a report
/// that comes after the reading that missed the socket, and for the TIME_WAIT a connection
/// leaves behind to show up in the next reading.
const REMEMBER_CLOSED: u64 = 2;

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
    /// The followed sockets by cookie.
    by_cookie: HashMap<Cookie, Key>,
    /// How many followed sockets have no cookie (a backend without them): reports are matched
    /// to those by their addresses instead.
    cookieless: usize,
    /// Sockets whose close was reported lately, with the reading it was reported at: a report
    /// of one of them comes late and is not a close again, and a TIME_WAIT with its cookie is
    /// the rest of that close.
    closed: HashMap<Cookie, u64>,
    /// Readings taken so far.
    readings: u64,
}

impl Follower {
    fn follow(&mut self, key: Key, known: Known) {
        match cookie(&known.socket) {
            Some(cookie) => {
                self.by_cookie.insert(cookie, key);
            }
            None => self.cookieless += 1,
        }
        if let Some(old) = self.known.insert(key, known) {
            self.unindex(&old.socket);
        }
    }

    fn unfollow(&mut self, key: &Key) -> Option<Known> {
        let known = self.known.remove(key)?;
        self.unindex(&known.socket);
        Some(known)
    }

    fn unindex(&mut self, socket: &Socket) {
        match cookie(socket) {
            Some(cookie) => {
                self.by_cookie.remove(&cookie);
            }
            None => self.cookieless = self.cookieless.saturating_sub(1),
        }
    }

    /// A followed socket changed (state, owners) and stays under its key.
    fn refollow(&mut self, key: Key, socket: Socket) {
        if let Some(mut known) = self.unfollow(&key) {
            known.socket = socket;
            self.follow(key, known);
        }
    }

    fn remember_closed(&mut self, socket: &Socket) {
        if let Some(cookie) = cookie(socket) {
            self.closed.insert(cookie, self.readings);
        }
    }

    /// Takes the kernel's reports of destroyed sockets: a followed one is closed now, with the
    /// counts the report carries; one no reading saw is closed with `seen_open` false when
    /// `shown` (the query's socket-level and owner filters) accepts it as it is matched. A
    /// socket that was never bound (local port 0) was in no table and is not one to report; a
    /// report of a close already reported is dropped.
    ///
    /// An unseen socket is matched as a connection (ESTABLISHED) when it has a peer, else as a
    /// listener (LISTEN for TCP, UNCONN for UDP): the report only says how it ended (TCP: in
    /// CLOSE, which it shows), and has no uid and no owner to match.
    pub fn destroyed(
        &mut self,
        reports: Vec<Destroyed>,
        mut shown: impl FnMut(&Socket) -> bool,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for Destroyed { socket, bytes } in reports {
            let cookie = cookie(&socket);
            if cookie.is_some_and(|cookie| self.closed.contains_key(&cookie)) {
                continue;
            }
            self.remember_closed(&socket);
            let followed = cookie
                .and_then(|cookie| self.by_cookie.get(&cookie).copied())
                .or_else(|| self.followed_at(&socket));
            if let Some(known) = followed.and_then(|key| self.unfollow(&key)) {
                changes.push(Change::closed(known, bytes));
                continue;
            }
            if socket.local.port() == 0 {
                continue;
            }
            let matched = Socket {
                state: match (socket.proto, socket.remote) {
                    (_, Some(_)) => State::Established,
                    (Proto::Tcp, None) => State::Listen,
                    (Proto::Udp, None) => State::Unconn,
                },
                ..socket.clone()
            };
            if !shown(&matched) {
                continue;
            }
            let kind = if matched.state.is_listening() {
                Kind::ListenerClosed
            } else {
                Kind::ConnectionClosed
            };
            changes.push(Change {
                seen_open: false,
                bytes,
                ..Change::new(kind, socket, Vec::new())
            });
        }
        changes
    }

    /// A followed socket without a cookie at the report's addresses: only where the backend
    /// gives no cookies, so this walk is never made on every report of a netlink watch.
    fn followed_at(&self, socket: &Socket) -> Option<Key> {
        if self.cookieless == 0 {
            return None;
        }
        self.known
            .iter()
            .find(|(_, known)| {
                known.socket.cookie == 0
                    && tuple(&known.socket) == tuple(socket)
                    && !matches!(known.socket.state, State::TimeWait)
            })
            .map(|(&key, _)| key)
    }

    /// Takes one reading of the tables (already filtered by the query's socket-level filters)
    /// and returns the changes since the last: sockets closed, then state changes, then sockets
    /// opened. `describe` looks up the owners of new sockets and drops those the owner filters
    /// reject. The first reading only sets the baseline.
    pub fn update(
        &mut self,
        mut current: Vec<Socket>,
        baseline: bool,
        describe: impl FnOnce(Vec<Socket>) -> Vec<Entry>,
    ) -> Vec<Change> {
        // Two rows with one key are one socket as far as anyone can tell (a backend without
        // inodes): the first stands for both, so every count is of the sockets followed.
        let mut seen: HashSet<Key> = HashSet::with_capacity(current.len());
        // `retain` moves no socket before the first duplicate, and most readings have none.
        current.retain(|socket| seen.insert(key(socket)));
        self.readings += 1;
        let readings = self.readings;
        self.closed
            .retain(|_, reported| *reported + REMEMBER_CLOSED >= readings);
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
            .filter_map(|key| Some((key, self.unfollow(&key)?)))
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
            if let Some(known) = self.known.get(&key) {
                if known.socket.state == socket.state {
                    continue;
                }
                if goes_on(known.socket.state, socket.state) {
                    changed.push(Change {
                        previous: Some(known.socket.state),
                        ..Change::new(Kind::StateChanged, socket.clone(), known.processes.clone())
                    });
                    self.refollow(key, socket);
                } else if let Some(old) = self.unfollow(&key) {
                    // A new connection at the addresses of one that ended.
                    closed.push(old);
                    fresh.push(socket);
                }
                continue;
            }
            // What a connection the kernel reported destroyed leaves behind (its TIME_WAIT):
            // that close was said already.
            if cookie(&socket).is_some_and(|cookie| self.closed.contains_key(&cookie)) {
                self.ignored.insert(key);
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
                            previous: Some(known.socket.state),
                            ..Change::new(
                                Kind::StateChanged,
                                socket.clone(),
                                known.processes.clone(),
                            )
                        });
                    }
                    if known.processes.is_empty() && socket.inode != 0 {
                        relook.insert(key);
                        fresh.push(socket.clone());
                    }
                    known.socket = socket;
                    self.follow(key, known);
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
                opened.push(Change::new(
                    kind,
                    entry.socket.clone(),
                    entry.processes.clone(),
                ));
            }
            self.follow(
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
        for known in &closed {
            self.remember_closed(&known.socket);
        }
        let closed = closed.into_iter().map(|known| Change::closed(known, None));
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
            seen_open,
            bytes,
        } = change;
        let closed = matches!(kind, Kind::ListenerClosed | Kind::ConnectionClosed);
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
            seen_open: closed.then_some(seen_open),
            bytes_acked: bytes.map(|bytes| bytes.acked),
            bytes_received: bytes.map(|bytes| bytes.received),
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

    /// A socket as the netlink backend reads it: with a cookie.
    fn with_cookie(socket: &Socket, cookie: u64) -> Socket {
        Socket {
            cookie,
            ..socket.clone()
        }
    }

    /// The kernel's report of a socket's end: TCP in CLOSE, no uid, no inode.
    fn report(socket: &Socket, bytes: Option<TcpBytes>) -> Destroyed {
        Destroyed {
            socket: Socket {
                state: match socket.proto {
                    Proto::Tcp => State::Close,
                    Proto::Udp => socket.state,
                },
                uid: None,
                inode: 0,
                ..socket.clone()
            },
            bytes,
        }
    }

    fn every(_: &Socket) -> bool {
        true
    }

    #[test]
    fn a_followed_socket_reported_destroyed_closes_at_once_and_once() {
        let mut follower = Follower::default();
        let connection = with_cookie(
            &socket("127.0.0.1:80", Some("127.0.0.1:5000"), State::Established),
            77,
        );
        follower.update(vec![connection.clone()], true, entries);
        let bytes = Some(TcpBytes {
            acked: 501,
            received: 1001,
        });
        let events = follower.destroyed(vec![report(&connection, bytes)], every);
        assert_eq!(kinds(&events), [Kind::ConnectionClosed]);
        let closed = &events[0];
        // As last seen, with its owner, and the counts of the report.
        assert_eq!(closed.socket.state, State::Established);
        assert_eq!(pids(closed), [9]);
        assert!(closed.seen_open);
        assert_eq!(closed.bytes, bytes);
        assert_eq!(follower.followed(), 0);
        // The next reading does not see it: nothing more to say.
        assert!(follower.update(vec![], false, entries).is_empty());
        // A report repeated (or one for a close a reading saw first) is no second close.
        assert!(
            follower
                .destroyed(vec![report(&connection, bytes)], every)
                .is_empty()
        );
    }

    #[test]
    fn a_close_a_reading_saw_first_is_not_reported_again_by_a_late_report() {
        let mut follower = Follower::default();
        let listener = with_cookie(&socket("0.0.0.0:22", None, State::Listen), 5);
        follower.update(vec![listener.clone()], true, entries);
        let events = follower.update(vec![], false, entries);
        assert_eq!(kinds(&events), [Kind::ListenerClosed]);
        assert!(events[0].seen_open && events[0].bytes.is_none());
        assert!(
            follower
                .destroyed(vec![report(&listener, None)], every)
                .is_empty()
        );
        // Remembered for two readings only: memory stays flat.
        follower.update(vec![], false, entries);
        follower.update(vec![], false, entries);
        follower.update(vec![], false, entries);
        assert!(follower.closed.is_empty());
    }

    #[test]
    fn a_socket_no_reading_saw_is_reported_closed_unseen_as_the_filters_match_it() {
        let mut follower = Follower::default();
        follower.update(vec![], true, entries);
        let connection = with_cookie(
            &socket("127.0.0.1:40000", Some("127.0.0.1:80"), State::Established),
            90,
        );
        let listener = with_cookie(&socket("127.0.0.1:8081", None, State::Listen), 91);
        let udp = with_cookie(
            &Socket::example(Proto::Udp, "127.0.0.1:53", None, State::Unconn),
            92,
        );
        let never_bound = with_cookie(&socket("0.0.0.0:0", None, State::Close), 93);
        let mut matched = Vec::new();
        let events = follower.destroyed(
            vec![
                report(
                    &connection,
                    Some(TcpBytes {
                        acked: 12,
                        received: 1,
                    }),
                ),
                report(&listener, None),
                report(&udp, None),
                report(&never_bound, None),
            ],
            |socket| {
                matched.push(socket.state);
                socket.local.port() != 8081
            },
        );
        // Matched as what it was (a connection, a listener, a bound UDP socket), shown as
        // the kernel reported it; the never-bound one is not even asked about.
        assert_eq!(matched, [State::Established, State::Listen, State::Unconn]);
        assert_eq!(
            kinds(&events),
            [Kind::ConnectionClosed, Kind::ListenerClosed]
        );
        assert!(events.iter().all(|change| !change.seen_open));
        assert!(events.iter().all(|change| change.processes.is_empty()));
        assert_eq!(events[0].socket.state, State::Close);
        assert_eq!(events[0].bytes.map(|b| b.acked), Some(12));
        assert_eq!(events[1].socket.state, State::Unconn);
        assert_eq!(follower.followed(), 0);
    }

    #[test]
    fn the_time_wait_a_reported_close_leaves_is_not_an_open_nor_a_second_close() {
        let mut follower = Follower::default();
        let connection = with_cookie(
            &socket("127.0.0.1:40000", Some("127.0.0.1:80"), State::Established),
            40,
        );
        follower.update(vec![connection.clone()], true, entries);
        let events = follower.destroyed(vec![report(&connection, None)], every);
        assert_eq!(kinds(&events), [Kind::ConnectionClosed]);
        // It keeps the connection's cookie, as the kernel's TIME_WAIT does.
        let time_wait = Socket {
            state: State::TimeWait,
            inode: 0,
            ..connection
        };
        for _ in 0..3 {
            assert!(
                follower
                    .update(vec![time_wait.clone()], false, entries)
                    .is_empty()
            );
        }
        assert!(follower.update(vec![], false, entries).is_empty());
        assert_eq!(follower.remembered(), 0);
    }

    #[test]
    fn a_time_wait_followed_from_a_reading_still_closes_when_it_ends() {
        // The kernel reports no TIME_WAIT's end: that close comes from the readings.
        let mut follower = Follower::default();
        let time_wait = with_cookie(
            &with_inode(
                &socket("127.0.0.1:40000", Some("127.0.0.1:80"), State::TimeWait),
                0,
            ),
            41,
        );
        follower.update(vec![time_wait], true, entries);
        assert_eq!(
            kinds(&follower.update(vec![], false, entries)),
            [Kind::ConnectionClosed]
        );
    }

    #[test]
    fn without_cookies_a_report_is_matched_by_its_addresses() {
        let mut follower = Follower::default();
        let connection = socket("127.0.0.1:80", Some("127.0.0.1:5000"), State::Established);
        let other = socket("127.0.0.1:80", Some("127.0.0.1:5001"), State::Established);
        follower.update(vec![connection.clone(), other], true, entries);
        let events = follower.destroyed(vec![report(&connection, None)], every);
        assert_eq!(kinds(&events), [Kind::ConnectionClosed]);
        assert!(events[0].seen_open);
        assert_eq!(events[0].socket.remote, connection.remote);
        assert_eq!(follower.followed(), 1);
    }

    #[test]
    fn the_cookie_index_follows_a_connection_through_its_changes() {
        let mut follower = Follower::default();
        let queued = with_cookie(
            &with_inode(
                &socket("10.0.0.5:80", Some("10.0.0.9:50000"), State::Established),
                0,
            ),
            60,
        );
        follower.update(vec![queued.clone()], true, entries);
        // accept()ed (an inode now), then closed by the peer.
        let accepted = with_inode(&queued, 12);
        follower.update(vec![accepted.clone()], false, entries);
        let closing = Socket {
            state: State::CloseWait,
            ..accepted
        };
        follower.update(vec![closing.clone()], false, entries);
        let events = follower.destroyed(vec![report(&closing, None)], every);
        assert_eq!(kinds(&events), [Kind::ConnectionClosed]);
        assert_eq!(events[0].socket.state, State::CloseWait);
        assert!(follower.by_cookie.is_empty() && follower.cookieless == 0);
    }
}
