//! `portstat [OPTIONS]`: list sockets.

use std::cmp::Ordering;
use std::io::Write;

use anyhow::Result;

use crate::backend::Source;
use crate::cli::{ListArgs, SortKey};
use crate::host::{self, UserNames};
use crate::model::Entry;
use crate::owners::Stop;
use crate::render::{self, Report};
use crate::scan::{self, Names};
use crate::services::Services;

pub fn run(args: &ListArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let filters = &args.filters;
    let users = (!args.numeric || filters.user.is_some()).then(UserNames::load);
    let query = filters.query(args.ports_positional.as_ref(), users.as_ref())?;
    let source = args.proc_net.clone().map_or(Source::Live, Source::Recorded);
    let services = (!args.numeric).then(Services::system);
    let names = Names {
        services,
        users: users.as_ref().filter(|_| !args.numeric),
    };
    // A question about given ports is answered once each of their sockets has a holder.
    let stop = if query.ports.is_some() && !query.filters_by_owner() {
        Stop::WhenAllFound
    } else {
        Stop::Never
    };
    let netns = filters.netns.clone().unwrap_or_default();
    let mut scan = scan::scan(&query, args.backend, &source, &netns, names, stop)?;
    sort(&mut scan.entries, args.sort);

    render::write_warnings(&scan.warnings, err)?;
    let host = host::hostname();
    let captured_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let report = Report {
        host: &host,
        captured_at: &captured_at,
        entries: &scan.entries,
        warnings: &scan.warnings,
        numeric: args.numeric,
    };
    render::write(args.format(), &report, out)?;
    out.flush()?;
    Ok(())
}

/// Listeners first, then by port, unless `--sort` says otherwise; ties fall back to that order.
pub fn sort(entries: &mut [Entry], key: Option<SortKey>) {
    entries.sort_by(|a, b| by_key(a, b, key).then_with(|| default_order(a, b)));
}

fn default_order(a: &Entry, b: &Entry) -> Ordering {
    let (sa, sb) = (&a.socket, &b.socket);
    sb.state
        .is_listening()
        .cmp(&sa.state.is_listening())
        .then(sa.local.port().cmp(&sb.local.port()))
        .then(sa.proto.cmp(&sb.proto))
        .then(sa.family().cmp(&sb.family()))
        .then(sa.local.ip().cmp(&sb.local.ip()))
        .then(sa.remote.cmp(&sb.remote))
}

fn by_key(a: &Entry, b: &Entry, key: Option<SortKey>) -> Ordering {
    let first_pid = |e: &Entry| e.processes.first().map(|p| p.pid);
    let first_name = |e: &Entry| e.processes.first().map(|p| p.name.to_lowercase());
    // Sockets without an owner sort after those with one.
    fn owned_first<T: Ord>(x: Option<T>, y: Option<T>) -> Ordering {
        match (x, y) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
    match key {
        None => Ordering::Equal,
        Some(SortKey::Port) => a.socket.local.port().cmp(&b.socket.local.port()),
        Some(SortKey::Proto) => a.socket.proto.cmp(&b.socket.proto),
        Some(SortKey::State) => a.socket.state.as_str().cmp(b.socket.state.as_str()),
        Some(SortKey::Pid) => owned_first(first_pid(a), first_pid(b)),
        Some(SortKey::Process) => owned_first(first_name(a), first_name(b)),
        Some(SortKey::User) => owned_first(a.user.clone(), b.user.clone())
            .then(owned_first(a.socket.uid, b.socket.uid)),
    }
}
