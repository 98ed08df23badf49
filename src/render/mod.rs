//! Turning what a command found into what a person or a script reads. Every renderer writes to
//! the [`Output`] made once in main and returns its I/O errors, so a closed pipe ends the run
//! quietly instead of panicking.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use crate::core::firewall::eval::{Reach, Verdict};
use crate::core::firewall::judge::Passage;
use crate::core::model::{Entry, Extensions, Zones};

pub mod audit;
pub mod csv;
pub mod json;
pub mod metrics;
pub mod probe;
pub mod stop;
pub mod summary;
pub mod table;
pub mod top;
pub mod watch;
pub mod who;

/// What a coloured cell or word says, and so its colour: the same word always gets the same
/// colour, in tables and in text reports alike. Colour is never the only sign (the word is
/// there too), and JSON, CSV and metrics never carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// A socket state: listening green, established cyan, closing ones yellow.
    State,
    /// An audit severity: high red, medium yellow, low cyan.
    Severity,
    /// A firewall verdict: open red (anyone gets in), restricted yellow, blocked green,
    /// unknown grey.
    Verdict,
    /// pass green, fail red; `who`'s "can bind" green, "cannot bind" red.
    Outcome,
}

impl Paint {
    /// The colour of a cell or word, or none (plain).
    pub fn color(self, text: &str) -> Option<anstyle::AnsiColor> {
        use anstyle::AnsiColor::{BrightBlack, Cyan, Green, Red, Yellow};
        let word = text.split_whitespace().next().unwrap_or("");
        match self {
            Paint::State => match word {
                "LISTEN" | "UNCONN" => Some(Green),
                "ESTABLISHED" => Some(Cyan),
                "TIME_WAIT" | "CLOSE_WAIT" | "FIN_WAIT1" | "FIN_WAIT2" | "LAST_ACK" | "CLOSING" => {
                    Some(Yellow)
                }
                _ => None,
            },
            Paint::Severity => match word {
                "high" => Some(Red),
                "medium" => Some(Yellow),
                "low" => Some(Cyan),
                _ => None,
            },
            Paint::Verdict => match word {
                "open" => Some(Red),
                "restricted" => Some(Yellow),
                "blocked" => Some(Green),
                "unknown" => Some(BrightBlack),
                _ => None,
            },
            Paint::Outcome => match word {
                "pass" | "PASS" | "can" => Some(Green),
                "fail" | "FAIL" | "cannot" => Some(Red),
                _ => None,
            },
        }
    }
}

impl Style {
    /// `text` with its first word in that word's colour ("open to 10.0.0.0/8 ...").
    pub fn paint_first_word(&self, paint: Paint, text: &str) -> String {
        let end = text
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(text.len());
        let (word, rest) = text.split_at(end);
        format!("{}{rest}", self.paint(paint, word))
    }

    /// `text` in its colour (bold), when colour is on and it has one.
    pub fn paint(&self, paint: Paint, text: &str) -> String {
        match paint.color(text).filter(|_| self.color) {
            Some(color) => {
                let style = anstyle::Style::new().fg_color(Some(color.into())).bold();
                format!("{style}{text}{style:#}")
            }
            None => text.to_string(),
        }
    }
}

/// How output is drawn, decided once in main from the terminal and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Standard output is a terminal: JSON is indented, tables are fitted to `width`.
    pub terminal: bool,
    /// The terminal's width in columns, when there is one to fit.
    pub width: Option<u16>,
    /// Colours and bold headers: `--color`, else NO_COLOR, CLICOLOR_FORCE and CLICOLOR, else
    /// whether standard output is a terminal.
    pub color: bool,
}

/// Where a command writes: results to `out`, warnings to `err`, drawn in `style`.
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub style: Style,
}

/// What a renderer wrote, for tests.
#[cfg(test)]
pub fn captured(style: Style, write: impl FnOnce(&mut Output) -> io::Result<()>) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = Output {
        out: &mut out,
        err: &mut err,
        style,
    };
    write(&mut output).expect("write to memory");
    String::from_utf8(out).expect("renderers write UTF-8")
}

/// `text` safe to print to a terminal: every string that came from another process, a file or
/// a host (process names, command lines, users, services, units, containers, hosts, interface
/// names) goes through here before a table or text report writes it, so a process named
/// `\e[2J` cannot clear the reader's screen. Control characters (C0 including newline and tab,
/// DEL, C1) are shown as `\x1b`, those above ASCII as `\u{9b}`, and so are the bidirectional
/// overrides and isolates (U+202A-U+202E, U+2066-U+2069) that would reorder what follows.
/// Everything else, a backslash too, is left as it is. JSON keeps the exact text, escaped by
/// its own rules (`\u001b`).
pub fn printable(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            escaped.push(c);
        } else if c.is_ascii() {
            let _ = write!(escaped, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(escaped)
}

/// The owner cell of every report: `pid/name` for each holder, or, when none is shown, why.
pub fn owner_cell<'a>(holders: impl IntoIterator<Item = (u32, &'a str)>, why_none: &str) -> String {
    let cells: Vec<String> = holders
        .into_iter()
        .map(|(pid, name)| format!("{pid}/{name}"))
        .collect();
    if cells.is_empty() {
        why_none.to_string()
    } else {
        cells.join(", ")
    }
}

impl Output<'_> {
    /// One JSON document, by the one rule every command follows: indented for a person at a
    /// terminal, one compact line for a pipe or a file (what scripts and `jq` read, and several
    /// times faster to write).
    pub fn json(&mut self, document: &impl Serialize) -> io::Result<()> {
        json::document(document, self.style.terminal, self.out)
    }

    /// The warnings policy of every command: the first few on standard error, then a count, so
    /// a damaged table does not bury the output; JSON documents carry them all.
    pub fn warnings(&mut self, warnings: &[String]) -> io::Result<()> {
        const SHOWN: usize = 5;
        for warning in warnings.iter().take(SHOWN) {
            writeln!(self.err, "portstat: warning: {}", printable(warning))?;
        }
        if warnings.len() > SHOWN {
            let more = warnings.len() - SHOWN;
            writeln!(
                self.err,
                "portstat: warning: and {more} more warnings (all are in --json output)"
            )?;
        }
        Ok(())
    }
}

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
    /// The interface names of link-local addresses' zones.
    pub zones: &'a Zones,
    /// What the firewall says of each entry, in order, when it was asked (`--firewall`).
    pub firewall: Option<&'a [Passage]>,
    /// The extra views asked for (`-i`, `-o`, `-m`).
    pub extensions: Extensions,
}

pub fn write(format: Format, report: &Report, output: &mut Output) -> io::Result<()> {
    match format {
        Format::Table => table::write(report, &output.style, output.out),
        Format::Json => json::write(report, output),
        Format::Csv => csv::write(report, output.out),
    }
}

/// A FIREWALL cell: the verdict, `restricted` with who gets through; `-` where none was
/// reached (loopback, or the firewall was not asked).
pub fn verdict_cell(reach: Option<&Reach>) -> String {
    match reach {
        None => "-".into(),
        Some(reach) if reach.verdict == Verdict::Restricted => {
            format!("restricted: {}", reach.sources.join(", "))
        }
        Some(reach) => reach.verdict.as_str().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        for text in [
            "nginx",
            "",
            "/usr/bin/python3 -m http.server",
            "C:\\path",
            "café 名前",
        ] {
            assert!(matches!(printable(text), std::borrow::Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("\x1b[2J\x1b]0;pwn\x07"),
            "\\x1b[2J\\x1b]0;pwn\\x07"
        );
        assert_eq!(printable("a\nb\tc\rd\0"), "a\\x0ab\\x09c\\x0dd\\x00");
        assert_eq!(printable("del\x7f"), "del\\x7f");
        // C1: CSI and OSC as single characters.
        assert_eq!(printable("\u{9b}2J\u{9d}"), "\\u{9b}2J\\u{9d}");
    }

    #[test]
    fn bidirectional_overrides_are_escaped() {
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(
            printable("\u{202a}\u{2066}x\u{2069}"),
            "\\u{202a}\\u{2066}x\\u{2069}"
        );
        // Ordinary text around them, and other non-ASCII text, is kept.
        assert_eq!(printable("é\u{2067}ü"), "é\\u{2067}ü");
    }

    #[test]
    fn the_escaped_text_has_no_control_characters_left() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let escaped = printable(&all);
        assert!(!escaped.chars().any(char::is_control));
        assert!(!escaped.contains('\u{202e}'));
    }
}
