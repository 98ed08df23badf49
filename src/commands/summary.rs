//! `portstat summary`: counts, the busiest processes, ephemeral-port pressure.

use anyhow::Result;

use super::scan::{self, Names};
use super::{Context, Outcome};
use crate::cli::SummaryArgs;
use crate::core::model::Source;
use crate::core::query::Query;
use crate::core::snapshot::SCHEMA;
use crate::core::summary::{pressure_warnings, summarize};
use crate::render::summary;

pub fn run(args: &SummaryArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let names = Names {
        services: None,
        users: !args.numeric.numeric,
    };
    let scan = scan::scan(
        os,
        &Query::default(),
        args.scan.backend,
        &Source::Live,
        &args.scan.netns(),
        names,
    )?;
    let summary = summarize(&scan.entries, scan.ephemeral, args.top);
    let mut warnings = scan.warnings;
    warnings.extend(pressure_warnings(&summary));
    let captured_at = context.captured_at();
    let output = &mut context.output;
    if args.json.json {
        output.json(&summary::Document {
            schema: SCHEMA,
            host: &os.hostname(),
            captured_at: &captured_at,
            summary: &summary,
            warnings: &warnings,
        })?;
    } else {
        summary::text(&summary, output.out)?;
    }
    output.warnings(&warnings)?;
    Ok(Outcome::Pass)
}
