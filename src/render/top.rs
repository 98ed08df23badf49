//! `top`'s screen, drawn with ratatui: a title line, the table (only the rows that fit are
//! built, so 100k sockets cost what a screenful does), a status line, and over them the
//! details pane, the stop confirmation or the help. Every cell a process or the network
//! chose (names, command lines) is escaped as everywhere else.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use ratatui::Frame;
use ratatui::backend::TestBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Table, TableState, Wrap,
};

use super::table::{info_cell, memory_cell, shorten, timer_cell};
use super::{Paint, owner_cell, printable, verdict_cell};
use crate::core::model::{Entry, Family, Proto};
use crate::core::top::{self, Column, Details, FILTER_FIELDS, Mode, Pane, Row, StopTarget, View};

/// Draws the whole screen. The view learns how many rows fit, to keep the selection in sight.
pub fn draw(frame: &mut Frame, view: &mut View) {
    let area = frame.area();
    let [title, table, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    // The header takes one line of the table's area.
    view.scroll(usize::from(table.height.saturating_sub(1)));
    frame.render_widget(
        Paragraph::new(title_line(view)).style(Style::new().add_modifier(Modifier::REVERSED)),
        title,
    );
    draw_table(frame, view, table);
    frame.render_widget(Paragraph::new(status_line(view)), status);
    match &view.mode {
        Mode::Details => {
            if let Some(pane) = &view.pane {
                draw_details(frame, view, pane, area);
            }
        }
        Mode::Confirm(target) => {
            if let Some(pane) = &view.pane {
                draw_details(frame, view, pane, area);
            }
            draw_confirm(frame, target, area);
        }
        Mode::Help => draw_help(frame, area),
        Mode::Table | Mode::Filter { .. } => {}
    }
}

/// The screen drawn into a buffer of `columns` x `rows` and given back as text, one line per
/// row without trailing blanks: `top --once`, and the tests' snapshots.
pub fn text(view: &mut View, columns: u16, rows: u16) -> String {
    let mut terminal = match ratatui::Terminal::new(TestBackend::new(columns, rows)) {
        Ok(terminal) => terminal,
        Err(never) => match never {},
    };
    if let Err(never) = terminal.draw(|frame| draw(frame, view)) {
        match never {}
    }
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn title_line(view: &View) -> String {
    let sort = match view.sort {
        None => "listeners, port".to_string(),
        Some((column, descending)) => {
            format!(
                "{} {}",
                column.title(),
                if descending { "desc" } else { "asc" }
            )
        }
    };
    // The reading's number tells a watcher (and the tmux tests) which refresh is on screen.
    let took = view.took.map_or_else(String::new, |took| {
        format!("  reading {} in {} ms", view.readings, took.as_millis())
    });
    format!(
        " portstat top  {}  {} of {} sockets  {}, {}  sort: {sort}{took}",
        printable(&view.host),
        view.visible_len(),
        view.total(),
        view.protos.describe(),
        view.states.describe(),
    )
}

fn status_line(view: &View) -> Line<'static> {
    if let Mode::Filter { input, .. } = &view.mode {
        let mut spans = vec![
            Span::styled("/", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(printable(input).into_owned()),
            Span::styled(" ", Style::new().add_modifier(Modifier::REVERSED)),
        ];
        if let Some(message) = view.message() {
            spans.push(Span::styled(
                format!("  {}", printable(message)),
                ink(view, Color::Red),
            ));
        }
        return Line::from(spans);
    }
    if let Some(message) = view.message() {
        return Line::from(Span::styled(
            printable(message).into_owned(),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    let mut spans = Vec::new();
    if !view.filter.is_empty() {
        spans.push(Span::styled(
            format!("filter: {}  ", printable(&view.filter.text)),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    spans.push(Span::raw(
        "Enter details  k stop  / filter  1-9 sort  ? help  q quit",
    ));
    let warnings = match view.warnings.len() {
        0 => String::new(),
        1 => format!("  warning: {}", printable(&view.warnings[0])),
        n => format!("  {n} warnings, first: {}", printable(&view.warnings[0])),
    };
    spans.push(Span::styled(warnings, ink(view, Color::Yellow)));
    Line::from(spans)
}

fn cell_text(row: &Row, column: Column, view: &View) -> String {
    let entry = &row.entry;
    let socket = &entry.socket;
    let queue = |queue: Option<u32>| queue.map_or_else(|| "-".into(), |q| q.to_string());
    let text = match column {
        Column::Netns => entry
            .netns
            .as_ref()
            .map_or_else(|| "-".to_string(), |ns| ns.short()),
        Column::Proto => match socket.family() {
            Family::Ipv4 => socket.proto.as_str().to_string(),
            Family::Ipv6 => format!("{}6", socket.proto.as_str()),
        },
        Column::Local => view.zones.address(socket.netns, socket.local),
        Column::Remote => socket.remote.map_or_else(
            || "*".to_string(),
            |remote| view.zones.address(socket.netns, remote),
        ),
        Column::State => socket.state.as_str().to_string(),
        Column::RecvQ => queue(socket.rx_queue),
        Column::SendQ => queue(socket.tx_queue),
        Column::Service => top::service(entry).unwrap_or("-").to_string(),
        Column::Process => owner_cell(
            entry.processes.iter().map(|p| (p.pid, p.name.as_str())),
            entry.owner_note.map_or("-", |note| note.describe()),
        ),
        Column::User => entry.user.as_deref().map_or_else(
            || {
                socket
                    .uid
                    .map_or_else(|| "-".to_string(), |uid| uid.to_string())
            },
            str::to_string,
        ),
    };
    printable(&text).into_owned()
}

fn draw_table(frame: &mut Frame, view: &View, area: Rect) {
    let columns = view.columns();
    let height = usize::from(area.height.saturating_sub(1));
    let cells: Vec<(&Row, Vec<String>)> = view
        .visible_rows(view.offset, height)
        .map(|row| {
            let texts = columns.iter().map(|&c| cell_text(row, c, view)).collect();
            (row, texts)
        })
        .collect();
    // Columns as wide as what this screenful holds (the widest cell, or the title), and when
    // the screen is narrower, owners, services, users and addresses give way, shortened with
    // an ellipsis.
    let mut widths: Vec<usize> = columns.iter().map(|c| c.title().len() + 1).collect();
    for (_, texts) in &cells {
        for (width, text) in widths.iter_mut().zip(texts) {
            *width = (*width).max(unicode_width::UnicodeWidthStr::width(text.as_str()));
        }
    }
    // The selection's symbol and the mark take a column each, and a space follows every
    // column but the last.
    let room = usize::from(area.width).saturating_sub(2 + columns.len());
    let mut over = widths.iter().sum::<usize>().saturating_sub(room);
    for (giving, least) in [
        (Column::Process, 12),
        (Column::Service, 7),
        (Column::User, 6),
        (Column::Remote, 16),
        (Column::Local, 16),
    ] {
        if over == 0 {
            break;
        }
        if let Some(place) = columns.iter().position(|&c| c == giving) {
            let width = &mut widths[place];
            let given = over.min(width.saturating_sub(least));
            *width -= given;
            over -= given;
        }
    }
    let constraints: Vec<Constraint> = widths
        .iter()
        .map(|&width| Constraint::Length(u16::try_from(width).unwrap_or(u16::MAX)))
        .collect();
    let titles = columns.iter().map(|column| {
        let (arrow, look) = match view.sort {
            Some((c, descending)) if c == *column => (
                if descending { "v" } else { "^" },
                Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            ),
            _ => ("", Style::new().add_modifier(Modifier::BOLD)),
        };
        Cell::from(format!("{}{arrow}", column.title())).style(look)
    });
    // The first column is the mark's.
    let header = TableRow::new(std::iter::once(Cell::from(" ")).chain(titles));
    let now = view.now;
    let rows = cells.into_iter().map(|(row, texts)| {
        let look = if row.is_closed() {
            ink(view, Color::Red).add_modifier(Modifier::DIM | Modifier::CROSSED_OUT)
        } else if row.is_new(now) {
            ink(view, Color::Green).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let cells = columns
            .iter()
            .zip(texts)
            .zip(&widths)
            .map(|((column, text), &width)| {
                let mut cell = Cell::from(shorten(&text, width));
                if *column == Column::State
                    && !row.is_closed()
                    && !row.is_new(now)
                    && let Some(color) = Paint::State.color(&text)
                {
                    cell = cell.style(ink(view, color_of(color)));
                }
                cell
            });
        // The mark says it without colour: + new, - closed.
        let mark = if row.is_closed() {
            "-"
        } else if row.is_new(now) {
            "+"
        } else {
            " "
        };
        TableRow::new(std::iter::once(Cell::from(mark)).chain(cells)).style(look)
    });
    let mut all_constraints = vec![Constraint::Length(1)];
    all_constraints.extend(constraints);
    let table = Table::new(rows, all_constraints)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    let mut state = TableState::default();
    if let Some(cursor) = view.cursor() {
        state.select(Some(cursor - view.offset));
    }
    frame.render_stateful_widget(table, area, &mut state);
    if view.visible_len() == 0 && area.height > 2 {
        let why = if view.readings == 0 {
            "reading the socket tables..."
        } else {
            "no socket to show: t u l e a change what shows, / the filter"
        };
        let line = Rect {
            y: area.y + 2,
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(format!("  {why}")), line);
    }
}

/// Text in `color`, when colour is on (`--color`, NO_COLOR, ...); the marks and words say the
/// same without it.
fn ink(view: &View, color: Color) -> Style {
    if view.color {
        Style::new().fg(color)
    } else {
        Style::new()
    }
}

fn color_of(color: anstyle::AnsiColor) -> Color {
    use anstyle::AnsiColor as A;
    match color {
        A::Black => Color::Black,
        A::Red => Color::Red,
        A::Green => Color::Green,
        A::Yellow => Color::Yellow,
        A::Blue => Color::Blue,
        A::Magenta => Color::Magenta,
        A::Cyan => Color::Cyan,
        A::White => Color::Gray,
        A::BrightBlack => Color::DarkGray,
        A::BrightRed => Color::LightRed,
        A::BrightGreen => Color::LightGreen,
        A::BrightYellow => Color::LightYellow,
        A::BrightBlue => Color::LightBlue,
        A::BrightMagenta => Color::LightMagenta,
        A::BrightCyan => Color::LightCyan,
        A::BrightWhite => Color::White,
    }
}

/// A box of `width` x `height` at the middle of `area`, no bigger than it.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn popup(frame: &mut Frame, area: Rect, title: &str, text: Text<'static>) {
    frame.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(format!(" {title} "));
    frame.render_widget(
        Paragraph::new(text).block(block).wrap(Wrap { trim: false }),
        area,
    );
}

fn started(seconds: Option<u64>) -> Option<String> {
    seconds.map(|seconds| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string()
    })
}

/// The details pane: the `who` report's facts for one socket.
fn details_lines(view: &View, pane: &Pane) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let loaded = pane.details.as_ref();
    // The socket as read again with its internals, else as the row had it.
    let entry: &Entry = loaded
        .and_then(|details| details.entry.as_ref())
        .unwrap_or(&pane.entry);
    let socket = &entry.socket;
    let no_managers = HashMap::new();
    let managers = loaded.map_or(&no_managers, |details| &details.managers);
    let facts = super::who::listener(entry, managers, &view.zones);
    let mut lines = Vec::new();
    let remote = socket.remote.map_or_else(
        || "*".to_string(),
        |remote| view.zones.address(socket.netns, remote),
    );
    let proto = match socket.family() {
        Family::Ipv4 => socket.proto.as_str().to_string(),
        Family::Ipv6 => format!("{}6", socket.proto.as_str()),
    };
    lines.push(Line::from(Span::styled(
        printable(&format!(
            "{proto} {} -> {remote}  {}",
            facts.local, socket.state
        ))
        .into_owned(),
        bold,
    )));
    if let Some(netns) = &entry.netns {
        lines.push(Line::from(format!(
            "network namespace {}",
            printable(&netns.short())
        )));
    }
    let service = top::service(entry).map_or_else(String::new, |s| format!(", service {s}"));
    let ephemeral = if entry.ephemeral { ", ephemeral" } else { "" };
    lines.push(Line::from(format!(
        "port range {}{ephemeral}{}",
        entry.local_range.as_str(),
        printable(&service)
    )));
    let queue = |queue: Option<u32>| queue.map_or_else(|| "-".into(), |q| q.to_string());
    let queues = if socket.state.is_listening() && socket.proto == Proto::Tcp {
        match facts.backlog {
            Some(backlog) => format!(
                "accept queue {}/{backlog}{}",
                facts.accept_queue,
                if facts.queue_full { " FULL" } else { "" }
            ),
            None => format!("accept queue {}", facts.accept_queue),
        }
    } else {
        format!(
            "recv-q {}, send-q {}",
            queue(socket.rx_queue),
            queue(socket.tx_queue)
        )
    };
    lines.push(Line::from(format!("queues: {queues}")));
    let creator = facts
        .user
        .clone()
        .or_else(|| facts.uid.map(|uid| uid.to_string()));
    if let Some(creator) = creator {
        lines.push(Line::from(format!("created by {}", printable(&creator))));
    }
    lines.push(Line::from(""));
    if facts.owners.is_empty() {
        let why = entry
            .owner_note
            .map_or("no process found", |note| note.describe());
        lines.push(Line::from(format!("holder: none shown {why}")));
    } else {
        lines.push(Line::from(Span::styled("holders:", bold)));
    }
    for owner in &facts.owners {
        let about = super::who::owner_facts(owner);
        lines.push(Line::from(
            printable(&format!("  {} ({})", owner.name, about.join(", "))).into_owned(),
        ));
        if !owner.cmdline.is_empty() {
            lines.push(Line::from(format!("    {}", printable(&owner.cmdline))));
        }
    }
    lines.push(Line::from(""));
    if let Some(timer) = socket.timer {
        lines.push(Line::from(timer_cell(timer)));
    }
    match loaded {
        None => lines.push(Line::from(
            "reading its TCP internals, memory and firewall verdict...",
        )),
        Some(details) => details_tail(view, &mut lines, entry, details),
    }
    lines
}

fn details_tail(view: &View, lines: &mut Vec<Line<'static>>, entry: &Entry, details: &Details) {
    let extra = entry.socket.details.as_deref();
    if let Some(info) = extra.and_then(|d| d.tcp_info.as_ref()) {
        lines.push(Line::from(format!("tcp: {}", info_cell(info))));
    }
    if let Some(memory) = extra.and_then(|d| d.memory.as_ref()) {
        lines.push(Line::from(format!("memory: {}", memory_cell(memory))));
    }
    if details.entry.is_none() {
        lines.push(Line::from("gone since it was read: no internals to show"));
    }
    if entry.socket.state.is_listening() {
        match &details.firewall {
            Some(reach) => lines.push(Line::from(format!(
                "firewall: {}",
                printable(&reach.describe())
            ))),
            None if details.warnings.is_empty() => {
                lines.push(Line::from(format!("firewall: {}", verdict_cell(None))));
            }
            None => {}
        }
    }
    for warning in &details.warnings {
        lines.push(Line::from(Span::styled(
            format!("note: {}", printable(warning)),
            ink(view, Color::Yellow),
        )));
    }
}

fn draw_details(frame: &mut Frame, view: &View, pane: &Pane, area: Rect) {
    let width = area.width.saturating_sub(4).min(110);
    let mut lines = details_lines(view, pane);
    lines.push(Line::from(""));
    lines.push(Line::from("k stop its holder   Esc or Enter close"));
    // As tall as its lines (a long command line wraps: one more each), within the screen.
    let tall = lines.len()
        + 2
        + lines
            .iter()
            .filter(|l| l.width() + 2 > usize::from(width))
            .count();
    let height = area
        .height
        .saturating_sub(2)
        .min(u16::try_from(tall).unwrap_or(u16::MAX));
    popup(
        frame,
        centered(area, width, height),
        "socket",
        Text::from(lines),
    );
}

fn draw_confirm(frame: &mut Frame, target: &StopTarget, area: Rect) {
    let started = started(target.started).map_or_else(
        || "start time unknown".to_string(),
        |at| format!("started {at}"),
    );
    let mut lines = vec![
        Line::from(
            printable(&format!(
                "Stop {} (pid {}, {started})?",
                target.name, target.pid
            ))
            .into_owned(),
        ),
        Line::from(""),
    ];
    // What `who --stop` will do, as it says it: a unit or a container is stopped as a whole.
    lines.extend(
        target
            .plans
            .iter()
            .map(|plan| Line::from(printable(&super::stop::plan_text(plan)).into_owned())),
    );
    lines.push(Line::from(""));
    lines.push(Line::from("y stop it   any other key: no"));
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    popup(frame, centered(area, 70, height), "stop", Text::from(lines));
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let keys = [
        ("Up Down PgUp PgDn Home End", "move"),
        (
            "Enter",
            "details of the socket: holders, command line, unit, queues, internals",
        ),
        ("k", "stop the socket's holder (asks first)"),
        ("1-9", "sort by that column; again: the other way"),
        ("< > Left Right", "sort by the column beside"),
        ("r", "reverse the sort"),
        ("0", "the listing's order: listeners first, then by port"),
        ("t u", "TCP only, UDP only (again: both)"),
        (
            "l e a",
            "listening, established, all states (again: the first two)",
        ),
        (
            "/",
            "filter: words, or field:value; Enter keeps it, Esc drops it",
        ),
        ("?", "this help"),
        ("q Esc Ctrl-C", "quit"),
    ];
    let mut lines: Vec<Line<'static>> = keys
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{key:>26}  "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "filter fields: {} (port:5432 process:postgres state:listen user:www-data)",
        FILTER_FIELDS.map(|f| format!("{f}:")).join(" ")
    )));
    lines.push(Line::from(
        "rows: + new (a few seconds), - closed (shown briefly before they go)",
    ));
    lines.push(Line::from("any key closes this help"));
    popup(frame, centered(area, 100, 20), "keys", Text::from(lines));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Socket, State};

    fn colours(color: bool) -> Vec<Color> {
        let mut view = View::new();
        view.color = color;
        let listener = |port: u16| {
            let socket =
                Socket::example(Proto::Tcp, &format!("0.0.0.0:{port}"), None, State::Listen);
            Entry::example(
                Socket {
                    inode: port.into(),
                    ..socket
                },
                Vec::new(),
            )
        };
        view.update(vec![listener(22)], Vec::new(), Duration::ZERO);
        // 80 is new, 22 closed: both coloured when colour is on.
        view.update(vec![listener(80)], Vec::new(), Duration::from_secs(1));
        let mut terminal = match ratatui::Terminal::new(TestBackend::new(100, 8)) {
            Ok(terminal) => terminal,
            Err(never) => match never {},
        };
        if let Err(never) = terminal.draw(|frame| draw(frame, &mut view)) {
            match never {}
        }
        let buffer = terminal.backend().buffer();
        let mut found: Vec<Color> = buffer.content().iter().map(|cell| cell.fg).collect();
        found.sort_by_key(|c| format!("{c:?}"));
        found.dedup();
        found
    }

    #[test]
    fn colour_marks_new_and_closed_rows_and_is_left_out_when_off() {
        let on = colours(true);
        assert!(
            on.contains(&Color::Green) && on.contains(&Color::Red),
            "{on:?}"
        );
        assert_eq!(colours(false), [Color::Reset]);
    }
}
