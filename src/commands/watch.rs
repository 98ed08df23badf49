//! `portstat watch`: one line per change as it happens. It runs for hours, so it stays cheap:
//! every interval it reads the tables (only the states the filters can show), compares them with
//! what it knew, and looks up owners for new sockets only, stopping as soon as it has found them.
//! Between readings it takes the kernel's reports of destroyed sockets, one subscription per
//! namespace watched, so a socket that closes is reported at once, even one no reading saw.

use std::collections::HashSet;

use anyhow::Result;

use super::scan::{self, Names};
use super::{Context, Outcome};
use crate::cli::WatchArgs;
use crate::core::model::{Backend, EphemeralRange, Namespace, Saves, Source};
use crate::core::query::{NetnsSelection, Query};
use crate::core::text;
use crate::core::watch::{Change, Event, Follower};
use crate::os::{DestroyFeed, Os, Wait};
use crate::render::{Output, watch};

pub fn run(args: &WatchArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let numeric = args.numeric.numeric;
    let query = args.filters.query(None, |name| os.user_id(name))?;
    let names = Names {
        services: None,
        users: !numeric,
    };
    let netns = args.scan.netns();
    // Ctrl-C ends the watch like --count does: cleanly, status 0.
    os.catch_interrupts()?;
    let output = &mut context.output;
    let started = os.monotonic();
    let mut follower = Follower::default();
    let mut printer = Printer {
        json: args.json.json,
        count: args.count,
        printed: 0,
    };
    let mut warned: HashSet<String> = HashSet::new();
    let mut baseline = true;
    // Subscribed before the first reading, so no close after it goes unreported.
    let mut reports = Reports::subscribe(os, args.scan.backend, &netns, &query)?;
    loop {
        let mut reading = scan::read(
            os,
            &query,
            args.scan.backend,
            &Source::Live,
            &netns,
            Saves::Cpu,
        )?;
        let ephemeral = reading.ephemeral;
        reports.join(os, &reading.namespaces);
        let candidates = std::mem::take(&mut reading.candidates);
        let mut owner_warnings = Vec::new();
        let changes = follower.update(candidates, baseline, |fresh| {
            let (entries, warnings) = reading.describe(os, fresh, &query, names, None);
            owner_warnings = warnings;
            entries
        });
        // Said once: a watch that runs for hours must not repeat itself every second.
        let fresh_warnings: Vec<String> = std::mem::take(&mut reports.warnings)
            .iter()
            .chain(&reading.warnings)
            .chain(&owner_warnings)
            .filter(|warning| warned.insert(warning.to_string()))
            .cloned()
            .collect();
        output.warnings(&fresh_warnings)?;
        if baseline {
            // The sockets followed are those the filters match, each counted once, so the
            // owner warnings above count among them.
            let unmatched = match follower.unmatched() {
                0 => String::new(),
                n => format!(" ({n} more whose owners do not match --pid/--process)"),
            };
            writeln!(
                output.err,
                "portstat: watching {}{unmatched}; changes follow (Ctrl-C to stop)",
                text::count(follower.followed(), "socket")
            )?;
            baseline = false;
        }
        if printer.print(os, changes, output)? {
            return Ok(Outcome::Pass);
        }

        // Until the next reading, closes are printed as the kernel reports them.
        let next = os.monotonic() + args.interval;
        loop {
            let now = os.monotonic();
            let mut wait = next.saturating_sub(now);
            if let Some(limit) = args.duration {
                match limit.checked_sub(now - started) {
                    Some(left) => wait = wait.min(left),
                    None => return Ok(Outcome::Pass),
                }
            }
            let waited = os.wait(wait)?;
            if waited == Wait::Interrupted {
                return Ok(Outcome::Pass);
            }
            let (closed, lost) = reports.take(&mut follower, &query, ephemeral);
            if lost > 0 && printer.lost(os, lost, output)? {
                return Ok(Outcome::Pass);
            }
            if printer.print(os, closed, output)? {
                return Ok(Outcome::Pass);
            }
            if waited == Wait::Elapsed {
                break;
            }
        }
    }
}

/// Prints events and counts them against `--count`.
struct Printer {
    json: bool,
    count: Option<u64>,
    printed: u64,
}

impl Printer {
    /// Prints the changes; `true` once `--count` events are out.
    fn print(&mut self, os: &dyn Os, changes: Vec<Change>, output: &mut Output) -> Result<bool> {
        for change in changes {
            let (event, socket) = Event::of(change, os.now());
            watch::write(&event, &socket, self.json, output.out)?;
            if self.printed() {
                return Ok(true);
            }
        }
        output.out.flush()?;
        Ok(false)
    }

    fn lost(&mut self, os: &dyn Os, lost: u64, output: &mut Output) -> Result<bool> {
        watch::write_lost(os.now(), lost, self.json, output.out)?;
        let done = self.printed();
        output.out.flush()?;
        Ok(done)
    }

    fn printed(&mut self) -> bool {
        self.printed += 1;
        self.count.is_some_and(|count| self.printed >= count)
    }
}

/// The subscriptions to the kernel's reports of destroyed sockets, one per namespace watched.
struct Reports<'a> {
    feeds: Vec<Feed<'a>>,
    /// Whether to subscribe at all (the backend reads cookies, and a first subscription
    /// worked).
    wanted: bool,
    /// Namespaces subscribed to, or tried.
    tried: HashSet<u64>,
    /// What is not seen, said once with the reading's warnings.
    warnings: Vec<String>,
}

struct Feed<'a> {
    /// The inode readings mark the namespace's sockets with (0: portstat's own, alone).
    netns: u64,
    feed: Box<dyn DestroyFeed + 'a>,
}

/// What the watch says when no report comes: closes are seen by reading the tables only.
fn unseen(why: &str) -> String {
    format!("sockets that open and close between two readings are not seen: {why}")
}

impl<'a> Reports<'a> {
    fn subscribe(
        os: &'a dyn Os,
        backend: Backend,
        netns: &NetnsSelection,
        query: &Query,
    ) -> Result<Reports<'a>> {
        let mut reports = Reports {
            feeds: Vec::new(),
            wanted: matches!(backend, Backend::Auto | Backend::Netlink),
            tried: HashSet::new(),
            warnings: Vec::new(),
        };
        if !reports.wanted {
            // procfs and netstat2 read no cookies, to match a report with what a reading saw.
            let name = match backend {
                Backend::Procfs => "procfs",
                _ => "netstat2",
            };
            reports.warnings.push(unseen(&format!(
                "the {name} backend does not follow the kernel's reports of closed sockets \
                 (the netlink backend does)"
            )));
            return Ok(reports);
        }
        match netns {
            NetnsSelection::Own => match os.subscribe_destroyed(None) {
                Ok(feed) => reports.feeds.push(Feed { netns: 0, feed }),
                Err(error) => {
                    reports.wanted = false;
                    reports.warnings.push(unseen(&format!(
                        "could not subscribe to the kernel's reports of closed sockets \
                         ({error:#})"
                    )));
                }
            },
            selection => {
                let (namespaces, _) = os.namespaces(selection)?;
                reports.join(os, &namespaces);
            }
        }
        if !reports.feeds.is_empty() && (query.filters_by_owner() || query.uid.is_some()) {
            reports.warnings.push(
                "sockets that open and close between two readings have no owner or user to \
                 match --pid, --process or --user: they are not shown"
                    .into(),
            );
        }
        Ok(reports)
    }

    /// Subscribes in the namespaces not tried yet (`--netns`: a namespace may appear later).
    fn join(&mut self, os: &'a dyn Os, namespaces: &[Namespace]) {
        if !self.wanted {
            return;
        }
        for namespace in namespaces {
            if !self.tried.insert(namespace.inode) {
                continue;
            }
            match os.subscribe_destroyed(Some(namespace)) {
                Ok(feed) => self.feeds.push(Feed {
                    netns: namespace.inode,
                    feed,
                }),
                Err(error) => self.warnings.push(unseen(&format!(
                    "could not subscribe to the kernel's reports of closed sockets in network \
                     namespace {} ({error:#})",
                    namespace.inode
                ))),
            }
        }
    }

    /// The closes reported since the last take, and how many reports were lost.
    fn take(
        &mut self,
        follower: &mut Follower,
        query: &Query,
        ephemeral: EphemeralRange,
    ) -> (Vec<Change>, u64) {
        let mut changes = Vec::new();
        let mut lost = 0;
        for Feed { netns, feed } in &mut self.feeds {
            let mut taken = feed.take();
            lost += taken.lost;
            if taken.sockets.is_empty() {
                continue;
            }
            for report in &mut taken.sockets {
                report.socket.netns = *netns;
            }
            // No owner nor uid is known of a socket no reading saw.
            let shown = |socket: &_| {
                query.matches_socket(socket, ephemeral)
                    && !query.filters_by_owner()
                    && query.uid.is_none()
            };
            changes.extend(follower.destroyed(taken.sockets, shown));
        }
        (changes, lost)
    }
}
