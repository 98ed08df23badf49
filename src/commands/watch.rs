//! `portstat watch`: one line per change as it happens. It runs for hours, so it stays cheap:
//! every interval it reads the tables (only the states the filters can show), compares them with
//! what it knew, and looks up owners for new sockets only, stopping as soon as it has found them.

use std::collections::HashSet;

use anyhow::Result;

use super::scan::{self, Names};
use super::{Context, Outcome};
use crate::cli::WatchArgs;
use crate::core::model::Source;
use crate::core::text;
use crate::core::watch::{Event, Follower};
use crate::os::Wait;
use crate::render::watch;

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
    let mut printed: u64 = 0;
    let mut warned: HashSet<String> = HashSet::new();
    let mut baseline = true;
    loop {
        let mut reading = scan::read(os, &query, args.scan.backend, &Source::Live, &netns)?;
        let candidates = std::mem::take(&mut reading.candidates);
        let mut owner_warnings = Vec::new();
        let changes = follower.update(candidates, baseline, |fresh| {
            let (entries, warnings) = reading.describe(os, fresh, &query, names);
            owner_warnings = warnings;
            entries
        });
        // Said once: a watch that runs for hours must not repeat itself every second.
        let fresh_warnings: Vec<String> = reading
            .warnings
            .iter()
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
        for change in changes {
            let (event, socket) = Event::of(change, os.now());
            watch::write(&event, &socket, args.json.json, output.out)?;
            printed += 1;
            if args.count.is_some_and(|count| printed >= count) {
                output.out.flush()?;
                return Ok(Outcome::Pass);
            }
        }
        output.out.flush()?;

        let wait = match args.duration {
            Some(limit) => match limit.checked_sub(os.monotonic() - started) {
                Some(left) => left.min(args.interval),
                None => return Ok(Outcome::Pass),
            },
            None => args.interval,
        };
        if os.wait(wait)? == Wait::Interrupted {
            return Ok(Outcome::Pass);
        }
    }
}
