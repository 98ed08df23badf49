//! `portstat [OPTIONS]`: list sockets.

use anyhow::Result;

use super::scan::{self, Names};
use super::{Context, Outcome};
use crate::cli::ListArgs;
use crate::core::model::Source;
use crate::core::query::sort;
use crate::render::{self, Report};

pub fn run(args: &ListArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let filters = &args.filters;
    let numeric = args.numeric.numeric;
    let query = filters.query(args.ports_positional.as_ref(), |name| os.user_id(name))?;
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
    };
    render::write(args.format(), &report, output)?;
    Ok(Outcome::Pass)
}
