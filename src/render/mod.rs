//! Turning entries into what a person or a script reads. Every renderer writes to a `Write` and
//! returns its I/O errors, so a closed pipe ends the run quietly instead of panicking.

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;

use crate::model::Entry;

pub mod csv;
pub mod json;
pub mod table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document (schema 1, see README).
    Json,
    /// A header row, then one row per socket.
    Csv,
}

/// What every renderer gets: the entries to show and the context they were captured in.
pub struct Report<'a> {
    pub host: &'a str,
    /// RFC 3339, UTC.
    pub captured_at: &'a str,
    pub entries: &'a [Entry],
    pub warnings: &'a [String],
    /// `--numeric`: no service or user names.
    pub numeric: bool,
}

pub fn write(format: Format, report: &Report, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => table::write(report, &table::Style::detect(), out),
        Format::Json => json::write(report, out, io::stdout().is_terminal()),
        Format::Csv => csv::write(report, out),
    }
}

/// The first few warnings, then a count: a damaged table must not bury the output. JSON keeps
/// them all.
pub fn write_warnings(warnings: &[String], err: &mut dyn Write) -> io::Result<()> {
    const SHOWN: usize = 5;
    for warning in warnings.iter().take(SHOWN) {
        writeln!(err, "portstat: warning: {warning}")?;
    }
    if warnings.len() > SHOWN {
        let more = warnings.len() - SHOWN;
        writeln!(
            err,
            "portstat: warning: and {more} more warnings (all are in --json output)"
        )?;
    }
    Ok(())
}

/// `127.0.0.1:80`, `[::1]:80`: an address and port as people write them.
pub fn endpoint(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_written_as_people_write_them() {
        let parse = |text: &str| text.parse::<SocketAddr>().expect("test address");
        assert_eq!(endpoint(parse("127.0.0.1:80")), "127.0.0.1:80");
        assert_eq!(endpoint(parse("[::1]:80")), "[::1]:80");
        assert_eq!(endpoint(parse("[::]:22")), "[::]:22");
        assert_eq!(
            endpoint(parse("[::ffff:10.0.0.5]:443")),
            "[::ffff:10.0.0.5]:443"
        );
    }
}
