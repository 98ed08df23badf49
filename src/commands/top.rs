//! `portstat top`: the listing as a full-screen live view. A reading thread reads the tables
//! every `--interval` through the listing's own scan (so a refresh costs what `portstat -a`
//! does) and reads a socket's details when the pane asks; this thread takes keys and draws, so
//! a key is answered at once even while a reading of 100k sockets runs.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::scan::{self, Names};
use super::stop::{self, StopOptions};
use super::{Context, Outcome};
use crate::cli::TopArgs;
use crate::core::cgroup;
use crate::core::error::UsageError;
use crate::core::model::{Backend, Extensions, Source, Zones};
use crate::core::query::{NetnsSelection, PortSpec, Query};
use crate::core::services::Services;
use crate::core::top::{Action, Details, Key, Row, RowKey, StopTarget, Tracker, View};
use crate::os::Os;
use crate::os::terminal::{Input, Screen};
use crate::render;

/// How long the key loop waits for a key before it looks for a reading.
const TICK: Duration = Duration::from_millis(50);
/// How often the screen is drawn again with nothing new (rows age, messages go).
const REDRAW: Duration = Duration::from_millis(500);

pub fn run(args: &TopArgs, context: &mut Context) -> Result<Outcome> {
    if args.once {
        let text = snapshot(context, args, &[Step::Read])?;
        context.output.out.write_all(text.as_bytes())?;
        return Ok(Outcome::Pass);
    }
    if !context.output.style.terminal {
        return Err(UsageError(
            "top draws a full-screen view, and standard output is not a terminal (for a \
             listing: portstat -a; for changes line by line: portstat watch)"
                .into(),
        )
        .into());
    }
    let reader = Reader::new(context, args);
    let mut view = View::new();
    view.host = context.os.hostname();
    view.color = context.output.style.color;
    // The first reading comes before the screen: what makes it fail (a namespace that is not
    // there, tables that can't be read) is said as every command says it.
    let first = context.os.monotonic();
    let mut tracker = Tracker::default();
    let reading = reader.read(&mut tracker)?;
    take(context.os, &mut view, Reply::Reading(Ok(reading)));
    let (requests, asked) = mpsc::channel();
    let (replies, answers) = mpsc::channel();
    let screen = Screen::open()?;
    let interval = args.interval;
    std::thread::scope(|scope| {
        let serving = &reader;
        let reading = std::thread::Builder::new()
            .name("top-reader".into())
            .spawn_scoped(scope, move || {
                serving.serve(tracker, first, interval, asked, replies)
            });
        if let Err(error) = reading {
            return Err(anyhow!("could not start the reading thread: {error}"));
        }
        // The screen goes (and the terminal is restored) before the reading thread is waited
        // for: a reading of 100k sockets may still be under way.
        let mut screen = screen;
        interact(
            context.os,
            &mut screen,
            &mut view,
            &reader,
            requests,
            &answers,
        )
    })
}

/// The key loop: readings and details in, keys to actions, the screen drawn.
fn interact(
    os: &dyn Os,
    screen: &mut Screen,
    view: &mut View,
    reader: &Reader,
    requests: Sender<RowKey>,
    answers: &Receiver<Reply>,
) -> Result<Outcome> {
    let mut drawn_at: Option<Duration> = None;
    loop {
        let mut changed = false;
        loop {
            match answers.try_recv() {
                Ok(reply) => {
                    take(os, view, reply);
                    changed = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(anyhow!("the reading thread stopped"));
                }
            }
        }
        let now = os.monotonic();
        view.tick(now);
        if changed || drawn_at.is_none_or(|at| now.saturating_sub(at) >= REDRAW) {
            screen.draw(|frame| render::top::draw(frame, view))?;
            drawn_at = Some(now);
        }
        let Some(input) = screen.next_input(TICK)? else {
            continue;
        };
        if let Input::Ended(status) = input {
            return Ok(Outcome::Signalled(status));
        }
        if let Input::Key(key) = input {
            match view.key(key) {
                Action::Quit => return Ok(Outcome::Pass),
                Action::LoadDetails(row) => {
                    // The reading thread is gone only if it failed: said at the next turn.
                    let _ = requests.send(row);
                }
                Action::PlanStop(target) => plan_stop(reader, view, target),
                Action::Stop(target) => stop(reader, view, &target),
                Action::Nothing => {}
            }
        }
        // A key or a resize is answered with a drawing at once.
        drawn_at = None;
    }
}

fn take(os: &dyn Os, view: &mut View, reply: Reply) {
    match reply {
        Reply::Reading(Ok(reading)) => {
            view.zones = reading.zones;
            view.took = Some(reading.took);
            view.show(reading.rows, reading.warnings, os.monotonic());
        }
        Reply::Reading(Err(why)) => view.say(format!("reading the tables failed: {why}")),
        Reply::Details(row, details) => view.set_details(row, *details),
    }
}

/// `k`: works out what `who --stop` would do for the selected socket, without doing it, and
/// asks about exactly that; a refusal is said instead of asked.
fn plan_stop(reader: &Reader, view: &mut View, mut target: StopTarget) {
    let mut planned = Vec::new();
    let looked = stop::stop(
        reader.os,
        &target.socket,
        &reader.stop_options(),
        &mut |plans| {
            planned = plans.to_vec();
            Ok(false)
        },
        &mut |_| {},
    );
    match looked {
        Err(error) => view.say(format!("{} not stopped: {error:#}", target.pid)),
        Ok(report) if report.plans.is_empty() => {
            view.say(format!("nothing listens on {}", report.target));
        }
        Ok(report) if report.refused() => {
            let why: Vec<String> = report.plans.iter().map(render::stop::plan_text).collect();
            view.say(format!("not stopped: {}", why.join("; ")));
        }
        Ok(_) => {
            target.plans = planned;
            view.ask_stop(target);
        }
    }
}

/// `k`, once confirmed: the same code as `who --stop`, doing only what the confirmation showed.
/// Should what holds the port have changed since (another process, a restart), nothing is done.
fn stop(reader: &Reader, view: &mut View, target: &StopTarget) {
    let result = stop::stop(
        reader.os,
        &target.socket,
        &reader.stop_options(),
        &mut |plans| Ok(plans == target.plans.as_slice()),
        // The view is paused meanwhile; how it ended is said in the status line.
        &mut |_| {},
    );
    match result {
        Err(error) => view.say(format!("{} not stopped: {error:#}", target.pid)),
        Ok(report) if !report.confirmed => view.say(format!(
            "not stopped: what holds {} changed since you were asked",
            report.target
        )),
        Ok(report) => {
            let done: Vec<String> = report.plans.iter().map(render::stop::plan_text).collect();
            let outcome = if report.broken() {
                "a step failed (portstat who --stop says which)".to_string()
            } else if report.free {
                format!("{} is free", report.target)
            } else if !report.held_by_others.is_empty() {
                format!(
                    "{} is held now by what was not stopped (portstat who {} says what)",
                    report.target, target.socket.port
                )
            } else {
                format!(
                    "{} is still held after {:.1}s (portstat who --stop --force ends it with \
                     SIGKILL)",
                    report.target, report.waited
                )
            };
            view.say(format!("{}: {outcome}", done.join("; ")));
        }
    }
}

/// One reading, merged with those before, as the key loop takes it.
struct Reading {
    rows: Arc<Vec<Row>>,
    warnings: Vec<String>,
    zones: Zones,
    took: Duration,
}

enum Reply {
    Reading(Result<Reading, String>),
    Details(RowKey, Box<Details>),
}

/// What the readings ask of the scan: every socket, in every state (the toggles and filters
/// choose among them without a new reading), with owners and names, as `portstat -a` reads.
struct Reader<'a> {
    os: &'a dyn Os,
    backend: Backend,
    netns: NetnsSelection,
    names: Names,
    services: &'static Services,
}

impl<'a> Reader<'a> {
    fn new(context: &'a Context, args: &TopArgs) -> Reader<'a> {
        let numeric = args.numeric.numeric;
        Reader {
            os: context.os,
            backend: args.scan.backend,
            netns: args.scan.netns(),
            names: Names {
                services: (!numeric).then(|| context.services()),
                users: !numeric,
            },
            services: context.services(),
        }
    }

    /// `who --stop`'s defaults, in the namespace and with the backend `top` reads.
    fn stop_options(&self) -> StopOptions {
        StopOptions {
            backend: self.backend,
            netns: self.netns.clone(),
            ..StopOptions::default()
        }
    }

    /// The listing's scan, as `top` reads: live, in its namespaces, with its backend and names.
    fn scan(&self, query: &Query) -> Result<scan::Scan> {
        scan::scan(
            self.os,
            query,
            self.backend,
            &Source::Live,
            &self.netns,
            self.names,
        )
    }

    /// Reads every socket and merges them into `tracker`'s rows.
    fn read(&self, tracker: &mut Tracker) -> Result<Reading> {
        let started = self.os.monotonic();
        let scan = self.scan(&Query::default())?;
        let zones = scan::zones(self.os, &self.netns, &scan.entries);
        let rows = tracker.update(scan.entries, self.os.monotonic());
        Ok(Reading {
            rows,
            warnings: scan.warnings,
            zones,
            took: self.os.monotonic().saturating_sub(started),
        })
    }

    /// The reading thread: a reading every `interval` after the one that started at `last`
    /// (at once again when one takes longer), and between them the details asked for. It ends
    /// when the key loop is gone.
    fn serve(
        &self,
        mut tracker: Tracker,
        mut last: Duration,
        interval: Duration,
        asked: Receiver<RowKey>,
        replies: Sender<Reply>,
    ) {
        loop {
            loop {
                let wait = (last + interval).saturating_sub(self.os.monotonic());
                // Looked at even when the next reading is due at once (readings that take
                // longer than the interval): the key loop gone, this thread must end, or `q`
                // waits for it forever.
                let next = if wait.is_zero() {
                    asked.try_recv().map_err(|error| match error {
                        TryRecvError::Empty => RecvTimeoutError::Timeout,
                        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    })
                } else {
                    asked.recv_timeout(wait)
                };
                match next {
                    Ok(row) => {
                        let details = Box::new(self.details(&row));
                        if replies.send(Reply::Details(row, details)).is_err() {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            last = self.os.monotonic();
            let reading = self
                .read(&mut tracker)
                .map_err(|error| format!("{error:#}"));
            if replies.send(Reply::Reading(reading)).is_err() {
                return;
            }
        }
    }

    /// The socket read again on its own with TCP internals, memory and timers, what manages
    /// its holders, and for a listener the firewall's verdict, as `who` finds them.
    fn details(&self, row: &RowKey) -> Details {
        let mut details = Details::default();
        let query = Query {
            protos: vec![row.proto],
            states: vec![row.state],
            local_ports: Some(PortSpec::from(row.local.port())),
            extensions: Extensions {
                info: true,
                timers: true,
                memory: true,
            },
            ..Query::default()
        };
        let scan = match self.scan(&query) {
            Ok(scan) => scan,
            Err(error) => {
                details.warnings.push(format!("not read again: {error:#}"));
                return details;
            }
        };
        let Some(index) = scan
            .entries
            .iter()
            .position(|entry| RowKey::of(&entry.socket) == *row)
        else {
            return details;
        };
        let entry = &scan.entries[index];
        for process in &entry.processes {
            let manager = self.os.cgroup(process.pid).map(|text| cgroup::parse(&text));
            details
                .managers
                .insert(process.pid, manager.unwrap_or_default());
        }
        if entry.socket.state.is_listening() {
            let bindv6only = self.os.host_facts(None).is_ok_and(|facts| facts.bindv6only);
            let firewalls =
                scan::judge_firewalls(self.os, self.services, &scan, self.backend, bindv6only);
            details.firewall = match firewalls.published.iter().find(|p| p.covers(&scan, entry)) {
                Some(published) => Some(published.reach.clone()),
                None => firewalls.verdicts.get(index).cloned().flatten(),
            };
            details.warnings.extend(firewalls.warnings);
        }
        details.entry = Some(scan.entries[index].clone());
        details
    }
}

/// A step of a scripted session: what `--once` and the tests drive the view with, on the
/// thread that calls, without a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read the tables (as the reading thread does) and give the view the reading.
    Read,
    /// Let the OS's clock run (the fake OS moves to its next reading).
    Wait(Duration),
    /// A key, and what it asks for done (details read, a stop tried).
    Key(Key),
}

/// The screen after `steps`, as text (`--size` columns by rows).
pub fn snapshot(context: &Context, args: &TopArgs, steps: &[Step]) -> Result<String> {
    let os = context.os;
    let reader = Reader::new(context, args);
    let mut view = View::new();
    view.host = os.hostname();
    let mut tracker = Tracker::default();
    for step in steps {
        match *step {
            Step::Read => {
                let reading = reader.read(&mut tracker)?;
                take(os, &mut view, Reply::Reading(Ok(reading)));
            }
            Step::Wait(duration) => {
                os.wait(duration)?;
                view.tick(os.monotonic());
            }
            Step::Key(key) => match view.key(key) {
                Action::LoadDetails(row) => view.set_details(row, reader.details(&row)),
                Action::PlanStop(target) => plan_stop(&reader, &mut view, target),
                Action::Stop(target) => stop(&reader, &mut view, &target),
                Action::Quit | Action::Nothing => {}
            },
        }
    }
    let (columns, rows) = args.size;
    Ok(render::top::text(&mut view, columns, rows))
}
