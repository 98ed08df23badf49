//! `portstat watch`: one line per change (a listener opened or closed, a connection
//! established, changing state or closed) as it happens.
//!
//! It runs for hours, so it stays cheap: every interval it reads the tables (only the states
//! the filters can show), compares them with what it knew, and looks up owners for new sockets
//! only, stopping as soon as it has found them. What it remembers is what exists now, so memory
//! stays flat however many events it has seen.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::backend::{Backend, Source};
use crate::cli::WatchArgs;
use crate::filter::{NetnsSelection, Query};
use crate::host::UserNames;
use crate::model::{Entry, Process, Proto, Socket, State};
use crate::owners::Stop;
use crate::render::endpoint;
use crate::scan::{self, Names};

/// What one watch follows and for how long.
pub struct Options {
    pub interval: Duration,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    pub json: bool,
    pub backend: Backend,
    pub netns: NetnsSelection,
}

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
    fn as_str(self) -> &'static str {
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
        let gone: Vec<Key> = self
            .known
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
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

fn event(change: Change) -> (Event, Socket) {
    let Change {
        kind,
        socket,
        previous,
        processes,
    } = change;
    let event = Event {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
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

fn write_event(event: &Event, socket: &Socket, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *out, event)?;
        writeln!(out)?;
        return Ok(());
    }
    let owners = if event.processes.is_empty() {
        "-".to_string()
    } else {
        event
            .processes
            .iter()
            .map(|p| format!("{}/{}", p.pid, p.name))
            .collect::<Vec<_>>()
            .join(",")
    };
    let state = match event.previous_state {
        Some(previous) => format!("{previous}->{}", event.state),
        None => event.state.to_string(),
    };
    writeln!(
        out,
        "{}  {:<17}  {:<4} {:<22} {:<22} {:<12} {owners}",
        event.time,
        event.event.as_str(),
        event.proto,
        endpoint(socket.local),
        socket.remote.map_or_else(|| "*".to_string(), endpoint),
        state,
    )?;
    Ok(())
}

pub fn run_command(args: &WatchArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let users = (!args.numeric || args.filters.user.is_some()).then(UserNames::load);
    let query = args.filters.query(None, users.as_ref())?;
    let names = Names {
        services: None,
        users: users.as_ref().filter(|_| !args.numeric),
    };
    let options = Options {
        interval: args.interval,
        count: args.count,
        duration: args.duration,
        json: args.json,
        backend: args.backend,
        netns: args.filters.netns.clone().unwrap_or_default(),
    };
    run(&query, names, &options, out, err)
}

pub fn run(
    query: &Query,
    names: Names,
    options: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode> {
    let (stop_tx, stop_rx) = mpsc::channel();
    // Ctrl-C ends the watch like --count does: cleanly, status 0.
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("could not install the Ctrl-C handler")?;

    let started = Instant::now();
    let mut follower = Follower::default();
    let mut printed: u64 = 0;
    let mut warned: HashSet<String> = HashSet::new();
    let mut baseline = true;
    loop {
        let mut tables = scan::read(query, options.backend, &Source::Live, &options.netns)?;
        let candidates = std::mem::take(&mut tables.candidates);
        let mut owner_warnings = Vec::new();
        let events = follower.update(candidates, baseline, |fresh| {
            let (entries, warnings) = tables.describe(fresh, query, &names, Stop::WhenAllFound);
            owner_warnings = warnings;
            entries
        });
        for warning in tables.warnings.iter().chain(&owner_warnings) {
            // Said once: a watch that runs for hours must not repeat itself every second.
            if warned.insert(warning.clone()) {
                writeln!(err, "portstat: warning: {warning}")?;
            }
        }
        if baseline {
            writeln!(
                err,
                "portstat: watching {} sockets; changes follow (Ctrl-C to stop)",
                follower.remembered()
            )?;
            baseline = false;
        }
        for change in events {
            let (printed_event, socket) = event(change);
            write_event(&printed_event, &socket, options.json, out)?;
            printed += 1;
            if options.count.is_some_and(|count| printed >= count) {
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
        }
        out.flush()?;

        let wait = match options.duration {
            Some(limit) => match limit.checked_sub(started.elapsed()) {
                Some(left) => left.min(options.interval),
                None => return Ok(ExitCode::SUCCESS),
            },
            None => options.interval,
        };
        match stop_rx.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(ExitCode::SUCCESS),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// `--interval`: seconds as a number (`0.5`) or a duration (`500ms`, `2s`).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let parsed = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Duration::try_from_secs_f64(seconds).ok()
        }
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero()),
    };
    parsed.ok_or_else(|| {
        format!("{text:?} is not a positive duration (seconds, or e.g. 500ms, 2s, 1m)")
    })
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

    #[test]
    fn intervals_parse_as_seconds_or_durations() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
