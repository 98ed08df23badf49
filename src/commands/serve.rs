//! `portstat serve`: the metrics over HTTP. The server (src/os/http.rs) runs one request at a
//! time on one thread, so scans never overlap; a scrape within `--min-interval` of the last
//! scan is answered from it.

use std::time::Duration;

use anyhow::Result;

use super::metrics::{Exporter, Scrape};
use super::{Context, Outcome};
use crate::cli::ServeArgs;
use crate::os::http::{self, Request, Response};
use crate::render::metrics::Dialect;

const INDEX: &str = "<!DOCTYPE html>
<html><head><title>portstat</title></head><body>
<h1>portstat</h1>
<p>What is using which port on this host: <a href=\"/metrics\">/metrics</a>
(Prometheus text format; OpenMetrics when the scraper asks for it).</p>
</body></html>
";

/// The last scan, and when it was taken (on the monotonic clock).
struct Cached {
    at: Duration,
    scrape: Scrape,
}

pub fn run(args: &ServeArgs, context: &mut Context) -> Result<Outcome> {
    let exporter = Exporter::new(&args.exporter, context)?;
    let server = http::bind(args.listen)?;
    let address = server.local_address()?;
    if !address.ip().is_loopback() {
        context.output.warnings(&[format!(
            "serving on {address}, beyond loopback: whoever reaches it can read this host's \
             listeners and processes"
        )])?;
    }
    writeln!(context.output.out, "serving http://{address}/metrics")?;
    context.output.out.flush()?;
    let mut cached: Option<Cached> = None;
    let mut said: Vec<String> = Vec::new();
    let mut handler = |request: &Request| -> Response {
        answer(
            request,
            &exporter,
            context,
            &mut cached,
            &mut said,
            args.min_interval,
        )
    };
    server.serve(&mut handler)?;
    Ok(Outcome::Pass)
}

fn answer(
    request: &Request,
    exporter: &Exporter,
    context: &mut Context,
    cached: &mut Option<Cached>,
    said: &mut Vec<String>,
    min_interval: Duration,
) -> Response {
    let text = |status: u16, body: &str| Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    };
    if request.method != "GET" && request.method != "HEAD" {
        return text(405, "only GET and HEAD\n");
    }
    match request.path.as_str() {
        "/" => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: INDEX.to_string(),
        },
        "/metrics" => {
            let now = context.os.monotonic();
            let fresh = cached
                .as_ref()
                .filter(|c| now.saturating_sub(c.at) < min_interval);
            let scrape = match fresh {
                Some(cached) => &cached.scrape,
                None => match exporter.scrape(context) {
                    Ok(scrape) => {
                        // On standard error as every command says them, but only when they
                        // change: a server scraped every 15 s would repeat them all day.
                        let new: Vec<String> = scrape
                            .warnings
                            .iter()
                            .filter(|w| !said.contains(w))
                            .cloned()
                            .collect();
                        let _ = context.output.warnings(&new);
                        said.clone_from(&scrape.warnings);
                        &cached.insert(Cached { at: now, scrape }).scrape
                    }
                    Err(error) => return text(500, &format!("the scan failed: {error:#}\n")),
                },
            };
            let dialect = Dialect::negotiate(request.accept.as_deref());
            Response {
                status: 200,
                content_type: dialect.content_type(),
                body: scrape.text(dialect).to_string(),
            }
        }
        _ => text(404, "not found: try /metrics\n"),
    }
}
