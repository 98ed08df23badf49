//! `portstat summary`: counts, the busiest processes, ephemeral-port pressure.

use anyhow::Result;

use super::scan::{self, Names};
use super::{Context, Outcome};
use crate::cli::SummaryArgs;
use crate::core::counters::TcpCounters;
use crate::core::model::{Namespace, Source};
use crate::core::query::Query;
use crate::core::snapshot::SCHEMA;
use crate::core::summary::{pressure_warnings, summarize};
use crate::os::Os;
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
    let mut warnings = scan.warnings;
    let counters = tcp_counters(os, &scan.namespaces, &mut warnings);
    let summary = summarize(&scan.entries, scan.ephemeral, args.top, counters);
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

/// The TCP counters of the namespaces the scan read, added up; `None` when none could be read.
fn tcp_counters(
    os: &dyn Os,
    namespaces: &[Namespace],
    warnings: &mut Vec<String>,
) -> Option<TcpCounters> {
    let inside: Vec<Option<&Namespace>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces
            .iter()
            .map(|namespace| Some(namespace).filter(|namespace| !namespace.own))
            .collect()
    };
    let mut total: Option<TcpCounters> = None;
    for namespace in inside {
        match os.net_statistics(namespace) {
            Ok(statistics) => {
                let (counters, problems) = TcpCounters::parse(&statistics);
                warnings.extend(problems);
                total = Some(total.map_or(counters, |total| total.combined(counters)));
            }
            Err(error) => warnings.push(format!("TCP counters not shown: {error:#}")),
        }
    }
    total
}
