//! The table people read: one row per socket, fitted to the terminal.

use std::io::{self, Write};
use std::ops::RangeInclusive;

use comfy_table::{
    Attribute, Cell, ColumnConstraint, ContentArrangement, LineStyle, Table, TableStyle, Width,
};

use super::{Report, Style};
use crate::core::model::{Direction, Entry, Family};

/// A bold header underlined, and nothing else: rows stay easy to scan and to copy.
const UNDERLINED_HEADER: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));

pub fn write(report: &Report, style: &Style, out: &mut dyn Write) -> io::Result<()> {
    // Entries carry a namespace only when several namespaces are shown.
    let with_netns = report.entries.iter().any(|entry| entry.netns.is_some());
    let mut header = Vec::new();
    if with_netns {
        header.push("NETNS");
    }
    header.extend(["PROTO", "LOCAL", "REMOTE", "STATE", "RANGE"]);
    if !report.numeric {
        header.push("SERVICE");
    }
    header.extend(["PID/PROGRAM", "USER"]);
    // Only services and owners may wrap; addresses, states, ranges and users stay whole.
    let first_wrappable = 5 + usize::from(with_netns);
    let last_wrappable = first_wrappable + usize::from(!report.numeric);
    let mut table = styled(&header, style, first_wrappable..=last_wrappable);
    for entry in report.entries {
        let mut cells = Vec::new();
        if with_netns {
            cells.push(
                entry
                    .netns
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |ns| ns.short()),
            );
        }
        cells.extend(row(entry, report.numeric));
        table.add_row(cells);
    }
    write_lines(&table, out)
}

/// A table drawn as every portstat table is: plain, space-aligned lines off a terminal; fitted
/// to the terminal's width with a bold, underlined header on one. Only the columns in
/// `wrappable` may wrap.
pub fn styled(header: &[&str], style: &Style, wrappable: RangeInclusive<usize>) -> Table {
    let mut table = Table::new();
    // The terminal was looked at once, in main: comfy-table is told, never asks itself.
    table.force_no_tty();
    if style.color {
        table.load_style(UNDERLINED_HEADER).enforce_styling();
    } else {
        table.load_style(TableStyle::new());
    }
    match style.width {
        Some(width) => {
            table.set_width(width);
            table.set_content_arrangement(ContentArrangement::Dynamic);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(header.iter().map(|title| {
        let cell = Cell::new(title);
        if style.color {
            cell.add_attribute(Attribute::Bold)
        } else {
            cell
        }
    }));
    for column in table.column_iter_mut() {
        // No leading blank, two spaces between columns, as ss and netstat print.
        column.set_padding((0, 2));
        column.set_constraint(if wrappable.contains(&column.index) {
            ColumnConstraint::LowerBoundary(Width::Fixed(10))
        } else {
            ColumnConstraint::ContentWidth
        });
    }
    table
}

/// Writes the table without the trailing blanks comfy-table pads lines with.
pub fn write_lines(table: &Table, out: &mut dyn Write) -> io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn row(entry: &Entry, numeric: bool) -> Vec<String> {
    let socket = &entry.socket;
    let proto = match socket.family() {
        Family::Ipv4 => socket.proto.as_str().to_string(),
        Family::Ipv6 => format!("{}6", socket.proto.as_str()),
    };
    let range = if entry.ephemeral {
        format!("{}, eph", entry.local_range.as_str())
    } else {
        entry.local_range.as_str().to_string()
    };
    let mut cells = vec![
        proto,
        socket.local.to_string(),
        socket
            .remote
            .map_or_else(|| "*".to_string(), |remote| remote.to_string()),
        socket.state.as_str().to_string(),
        range,
    ];
    if !numeric {
        cells.push(service(entry));
    }
    cells.push(owners(entry));
    let uid = || {
        socket
            .uid
            .map_or_else(|| "-".to_string(), |uid| uid.to_string())
    };
    cells.push(entry.user.as_deref().map_or_else(uid, str::to_string));
    cells
}

/// The service that matters: a listener's or inbound connection's own port, an outbound
/// connection's remote port; connections say which way they go.
fn service(entry: &Entry) -> String {
    let (name, way) = match entry.direction {
        None => (entry.local_service, ""),
        Some(Direction::Inbound) => (entry.local_service, " (in)"),
        Some(Direction::Outbound) => (entry.remote_service, " (out)"),
    };
    format!("{}{way}", name.unwrap_or("-"))
}

fn owners(entry: &Entry) -> String {
    if entry.processes.is_empty() {
        return entry
            .owner_note
            .map_or("-", |note| note.describe())
            .to_string();
    }
    entry
        .processes
        .iter()
        .map(|p| format!("{}/{}", p.pid, p.name))
        .collect::<Vec<_>>()
        .join(", ")
}
