//! `cargo xtask services`: generates data/iana-services.tsv from IANA's "Service Name and
//! Transport Protocol Port Number Registry" (CSV), a copy of which lives in the repository at
//! data/iana-service-names-port-numbers.csv.
//!
//! ```sh
//! cargo xtask services [REGISTRY_CSV] [-o OUTPUT_TSV]
//! ```
//!
//! Both paths are relative to the repository root, whatever the current directory is.
//!
//! Kept: records with a service name, a port or port range (a range is expanded to every port in
//! it) and protocol tcp or udp. Dropped: Reserved/Unassigned rows (no name), name-only
//! registrations (no port) and sctp/dccp. When several names share a (port, protocol) pair, the
//! first one in the registry's order wins (the registry lists a pair's names oldest first, so
//! this is the earliest registered: 42/tcp is `name`, not `nameserver`; 80/tcp is `http`, not
//! `www`).
//!
//! Output: `#` comment lines, then one line per (port, protocol), sorted by port then protocol:
//! `port<TAB>proto<TAB>name<TAB>description`, where runs of whitespace (tabs, newlines) in the
//! description are collapsed to one space and the ends trimmed. The description may be empty.
//! The output depends only on the input: running it twice gives identical bytes.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

const DEFAULT_INPUT: &str = "data/iana-service-names-port-numbers.csv";
const DEFAULT_OUTPUT: &str = "data/iana-services.tsv";
const PROTOCOLS: [&str; 2] = ["tcp", "udp"];
const COLUMNS: [&str; 4] = [
    "Service Name",
    "Port Number",
    "Transport Protocol",
    "Description",
];

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// The registry CSV, from the repository root
    #[arg(default_value = DEFAULT_INPUT)]
    pub input: PathBuf,
    /// The TSV to write, from the repository root
    #[arg(short, long, default_value = DEFAULT_OUTPUT)]
    pub output: PathBuf,
}

pub fn run(args: &ServicesArgs) -> ExitCode {
    match generate(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("services: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn generate(args: &ServicesArgs) -> Result<()> {
    let root = crate::repo_root();
    let input = root.join(&args.input);
    let output = root.join(&args.output);
    let file = std::fs::File::open(&input).with_context(|| format!("{}", input.display()))?;
    let registry = read_registry(file).with_context(|| format!("{}", input.display()))?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&output, registry.tsv()).with_context(|| format!("{}", output.display()))?;
    eprintln!(
        "{}: {} entries from {} of {} records",
        output.display(),
        registry.entries.len(),
        registry.kept,
        registry.records
    );
    Ok(())
}

/// The registry's tcp and udp names, one per (port, protocol).
#[derive(Debug, Default)]
struct Registry {
    /// (port, protocol) -> (name, description), the first in registry order.
    entries: BTreeMap<(u16, String), (String, String)>,
    /// Records read.
    records: usize,
    /// Records with a name, a port (range) and tcp/udp.
    kept: usize,
}

/// Whitespace as Python's `str.split()` sees it: Unicode White_Space, and the information
/// separators U+001C..U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Every run of whitespace (tabs and newlines included) collapsed to one space; ends trimmed.
fn clean(text: &str) -> String {
    text.split(is_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `22` -> 22..=22; `6000-6063` -> 6000..=6063; None when it is not a port or port range.
fn parse_ports(field: &str) -> Option<RangeInclusive<u16>> {
    let field = field.trim_matches(is_space);
    let (first, last) = match field.split_once('-') {
        Some((first, last)) => (first, Some(last)),
        None => (field, None),
    };
    let number = python_int;
    let low = number(first)?;
    let high = match last {
        Some(last) => number(last)?,
        None => low,
    };
    if !(0 <= low && low <= high && high <= 65535) {
        return None;
    }
    Some(low as u16..=high as u16)
}

/// A decimal integer as Python's `int(text)` reads it: surrounding whitespace, a sign, and
/// single underscores between digits allowed (`1_000`). Non-ASCII digits are not supported.
fn python_int(text: &str) -> Option<i64> {
    let text = text.trim_matches(is_space);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let well_formed = digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.ends_with(|c: char| c.is_ascii_digit())
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let value: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -value } else { value })
}

fn read_registry(input: impl Read) -> Result<Registry> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|header| header == name);
    let mut missing: Vec<&str> = COLUMNS
        .into_iter()
        .filter(|name| column(name).is_none())
        .collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        bail!("missing columns: {}", missing.join(", "));
    }
    let [name_at, port_at, proto_at, description_at] = COLUMNS.map(|name| column(name).unwrap());
    let mut registry = Registry::default();
    for record in reader.records() {
        let record = record?;
        let field = |at: usize| record.get(at).unwrap_or("");
        registry.records += 1;
        let name = clean(field(name_at));
        let proto = clean(field(proto_at)).to_lowercase();
        let ports = parse_ports(field(port_at));
        let Some(ports) = ports.filter(|_| !name.is_empty() && PROTOCOLS.contains(&&*proto)) else {
            continue;
        };
        registry.kept += 1;
        let description = clean(field(description_at));
        for port in ports {
            // First in registry order wins: later names for the same pair are aliases.
            registry
                .entries
                .entry((port, proto.clone()))
                .or_insert_with(|| (name.clone(), description.clone()));
        }
    }
    Ok(registry)
}

impl Registry {
    /// The TSV: the header comment, then one line per (port, protocol).
    fn tsv(&self) -> String {
        let header = [
            "IANA Service Name and Transport Protocol Port Number Registry, tcp and udp service names.".to_string(),
            "Source: https://www.iana.org/assignments/service-names-port-numbers/ (registry as of".to_string(),
            "2024-04-30, taken from a CC0-licensed CSV mirror: iana-service-names-port-numbers.csv).".to_string(),
            format!("Generated by: cargo xtask services (from {DEFAULT_INPUT})"),
            "Do not edit by hand; rerun the generator instead.".to_string(),
            format!(
                "{} registry records read; {} with a name, a port (range) and tcp/udp;",
                self.records, self.kept
            ),
            format!(
                "{} entries below (port ranges expanded, one per port/proto).",
                self.entries.len()
            ),
            "Several names for one port/proto: the first in registry order (the earliest".to_string(),
            "registered) is kept, e.g. 42/tcp is `name`, not `nameserver`. Names are per protocol:".to_string(),
            "a port/proto pair absent here has no IANA name (reserved or unassigned), e.g. 2375/udp.".to_string(),
            "Format: port<TAB>proto<TAB>name<TAB>description (description may be empty).".to_string(),
        ];
        let mut text = String::new();
        for line in header {
            text.push_str("# ");
            text.push_str(&line);
            text.push('\n');
        }
        for ((port, proto), (name, description)) in &self.entries {
            text.push_str(&format!("{port}\t{proto}\t{name}\t{description}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Service Name,Port Number,Transport Protocol,Description,Assignee,Contact
,0,tcp,Reserved,,
name,42,tcp,Host Name Server,,
nameserver,42,tcp,Host Name Server,,
name,42,udp,\"Host Name
  Server\",,
x11,6000-6063,tcp,X Window System,,
x11,6000-6063,udp,X Window System,,
dns-llq,,,\"DNS Long-Lived Queries\",,
sctp-only,5000,sctp,Over SCTP,,
Upper,7,TCP,\tTabbed   description\t,,
short,9,udp
";

    fn registry() -> Registry {
        read_registry(SAMPLE.as_bytes()).unwrap()
    }

    fn get<'a>(registry: &'a Registry, port: u16, proto: &str) -> Option<(&'a str, &'a str)> {
        registry
            .entries
            .get(&(port, proto.to_string()))
            .map(|(name, description)| (name.as_str(), description.as_str()))
    }

    #[test]
    fn counts_records_and_kept_ones() {
        let registry = registry();
        assert_eq!(registry.records, 10);
        // Kept: name x3 (42/tcp twice, 42/udp), x11 x2, Upper, short.
        assert_eq!(registry.kept, 7);
        assert_eq!(registry.entries.len(), 2 + 64 * 2 + 2);
    }

    #[test]
    fn the_first_registered_name_wins() {
        assert_eq!(
            get(&registry(), 42, "tcp"),
            Some(("name", "Host Name Server"))
        );
    }

    #[test]
    fn a_quoted_multi_line_description_becomes_one_line() {
        assert_eq!(
            get(&registry(), 42, "udp"),
            Some(("name", "Host Name Server"))
        );
        assert_eq!(
            get(&registry(), 7, "tcp"),
            Some(("Upper", "Tabbed description"))
        );
    }

    #[test]
    fn a_range_is_expanded_to_every_port() {
        let registry = registry();
        for port in 6000..=6063 {
            assert_eq!(get(&registry, port, "tcp").unwrap().0, "x11");
            assert_eq!(get(&registry, port, "udp").unwrap().0, "x11");
        }
        assert_eq!(get(&registry, 5999, "tcp"), None);
        assert_eq!(get(&registry, 6064, "tcp"), None);
    }

    #[test]
    fn name_only_reserved_and_sctp_rows_are_dropped() {
        let registry = registry();
        assert!(registry.entries.values().all(|(name, _)| name != "dns-llq"));
        assert_eq!(get(&registry, 0, "tcp"), None);
        assert_eq!(get(&registry, 5000, "tcp"), None);
        // A short row (no description column) still counts, with an empty description.
        assert_eq!(get(&registry, 9, "udp"), Some(("short", "")));
    }

    #[test]
    fn the_tsv_is_sorted_by_port_then_protocol() {
        let tsv = registry().tsv();
        let header: Vec<&str> = tsv.lines().take_while(|l| l.starts_with("# ")).collect();
        assert_eq!(header.len(), 11);
        assert!(header[5].contains("10 registry records read; 7 with a name"));
        assert!(header[6].starts_with("# 132 entries below"));
        let body: Vec<&str> = tsv.lines().skip(11).collect();
        assert_eq!(
            &body[..4],
            [
                "7\ttcp\tUpper\tTabbed description",
                "9\tudp\tshort\t",
                "42\ttcp\tname\tHost Name Server",
                "42\tudp\tname\tHost Name Server",
            ]
        );
        assert_eq!(body[4], "6000\ttcp\tx11\tX Window System");
        assert_eq!(body[5], "6000\tudp\tx11\tX Window System");
        assert_eq!(body.len(), 132);
        assert!(tsv.ends_with("6063\tudp\tx11\tX Window System\n"));
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(parse_ports("22"), Some(22..=22));
        assert_eq!(parse_ports(" 6000-6063 "), Some(6000..=6063));
        assert_eq!(parse_ports("65535"), Some(65535..=65535));
        assert_eq!(parse_ports("+1_0 - 12"), Some(10..=12));
        for bad in [
            "", "65536", "9-3", "-5", "http", "1-", "1-70000", "_1", "1__0", "1_",
        ] {
            assert_eq!(parse_ports(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn missing_columns_are_an_error() {
        let error = read_registry("Service Name,Port Number\nx,1\n".as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "missing columns: Description, Transport Protocol"
        );
    }

    #[test]
    fn whitespace_as_python_splits_it() {
        assert_eq!(clean("  a\t\tb\r\n c\u{a0}d\u{1f}e  "), "a b c d e");
        assert_eq!(clean(" \n "), "");
    }
}
