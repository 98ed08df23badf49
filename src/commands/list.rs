//! `portstat [OPTIONS]`: list sockets.

use anyhow::Result;

use super::scan::{self, Names, Scan};
use super::{Context, Outcome};
use crate::cli::ListArgs;
use crate::core::firewall::judge::Passage;
use crate::core::model::Source;
use crate::core::query::sort;
use crate::render::{self, Report};

pub fn run(args: &ListArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let filters = &args.filters;
    let numeric = args.numeric.numeric;
    let mut query = filters.query(args.selector.as_ref(), |name| os.user_id(name))?;
    scan::find_endpoint_zone(os, &mut query, &args.scan.netns())?;
    query.extensions = args.extensions();
    let source = args.proc_net.clone().map_or(Source::Live, Source::Recorded);
    let names = Names {
        services: (!numeric).then(|| context.services()),
        users: !numeric,
    };
    let mut scan = scan::scan(
        os,
        &query,
        args.scan.backend,
        &source,
        &args.scan.netns(),
        names,
    )?;
    sort(&mut scan.entries, args.sort);
    let firewall = args.firewall.then(|| passages(context, &scan, args));
    if let Some((_, warnings)) = &firewall {
        scan.warnings.extend(warnings.iter().cloned());
    }

    let captured_at = context.captured_at();
    let output = &mut context.output;
    output.warnings(&scan.warnings)?;
    let report = Report {
        host: &os.hostname(),
        captured_at: &captured_at,
        entries: &scan.entries,
        warnings: &scan.warnings,
        numeric,
        zones: &scan::zones(os, &args.scan.netns(), &scan.entries),
        firewall: firewall.as_ref().map(|(passages, _)| passages.as_slice()),
        extensions: args.extensions(),
    };
    render::write(args.format(), &report, output)?;
    Ok(Outcome::Pass)
}

/// What the firewall says of each entry: its verdict, or for a port a forward takes, the
/// forward's verdict and target; with the warnings of what could not be read.
fn passages(context: &Context, scan: &Scan, args: &ListArgs) -> (Vec<Passage>, Vec<String>) {
    let os = context.os;
    let bindv6only = os.host_facts(None).is_ok_and(|facts| facts.bindv6only);
    let firewalls =
        scan::judge_firewalls(os, context.services(), scan, args.scan.backend, bindv6only);
    let passages = scan
        .entries
        .iter()
        .zip(firewalls.verdicts)
        .map(
            |(entry, firewall)| match firewalls.published.iter().find(|p| p.covers(scan, entry)) {
                Some(published) => Passage {
                    firewall: Some(published.reach.clone()),
                    forward: Some(published.target.clone()),
                },
                None => Passage {
                    firewall,
                    forward: None,
                },
            },
        )
        .collect();
    (passages, firewalls.warnings)
}
