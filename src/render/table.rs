//! The table people read: one row per socket, fitted to the terminal.

use std::io::{self, Write};

use anstyle::AnsiColor;
use comfy_table::{
    Attribute, Cell, ColumnConstraint, ContentArrangement, LineStyle, Table, TableStyle,
};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::{Paint, Report, Style, owner_cell, printable};
use crate::core::firewall::judge::Passage;
use crate::core::model::{
    Direction, Entry, Extensions, Family, SocketMemory, TcpInfo, Timer, Zones,
};

/// A bold header underlined, and nothing else: rows stay easy to scan and to copy.
const UNDERLINED_HEADER: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));

pub fn write(report: &Report, style: &Style, out: &mut dyn Write) -> io::Result<()> {
    // Entries carry a namespace only when several namespaces are shown.
    let with_netns = report.entries.iter().any(|entry| entry.netns.is_some());
    let mut columns = Vec::new();
    if with_netns {
        columns.push(Column::new("NETNS", Give::Shorten(8)));
    }
    let extensions = report.extensions;
    columns.extend([
        Column::new("PROTO", Give::Whole),
        Column::new("LOCAL", Give::Whole),
        Column::new("REMOTE", Give::Whole),
        Column::new("STATE", Give::Whole).painted(Paint::State),
    ]);
    if extensions.info {
        columns.extend([
            Column::new("RECV-Q", Give::Whole),
            Column::new("SEND-Q", Give::Whole),
        ]);
    }
    columns.push(Column::new("RANGE", Give::Drop(1)));
    if !report.numeric {
        columns.push(Column::new("SERVICE", Give::Drop(3)));
    }
    columns.extend([
        Column::new("PID/PROGRAM", Give::Shorten(12)),
        Column::new("USER", Give::Drop(2)),
    ]);
    if extensions.timers {
        columns.push(Column::new("TIMER", Give::Whole));
    }
    if extensions.memory {
        columns.push(Column::new("MEMORY", Give::Shorten(12)));
    }
    if extensions.info {
        columns.push(Column::new("INFO", Give::Wrap(24)));
    }
    if report.firewall.is_some() {
        columns.push(Column::new("FIREWALL", Give::Shorten(10)).painted(Paint::Verdict));
    }
    let rows = report.entries.iter().enumerate().map(|(index, entry)| {
        let mut cells = Vec::new();
        if with_netns {
            cells.push(
                entry
                    .netns
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |ns| ns.short()),
            );
        }
        cells.extend(row(entry, report.numeric, report.zones, extensions));
        let details = entry.socket.details.as_deref();
        if extensions.timers {
            cells.push(entry.socket.timer.map_or_else(|| "-".into(), timer_cell));
        }
        if extensions.memory {
            cells.push(
                details
                    .and_then(|d| d.memory.as_ref())
                    .map_or_else(|| "-".into(), memory_cell),
            );
        }
        if extensions.info {
            cells.push(
                details
                    .and_then(|d| d.tcp_info.as_ref())
                    .map_or_else(|| "-".into(), info_cell),
            );
        }
        if let Some(passages) = report.firewall {
            cells.push(passages.get(index).map_or_else(|| "-".into(), passage));
        }
        cells
    });
    Grid::new(columns, rows.collect()).write(style, out)
}

/// The FIREWALL cell: the verdict, and for a published port where it is forwarded.
fn passage(passage: &Passage) -> String {
    let verdict = super::verdict_cell(passage.firewall.as_ref());
    match &passage.forward {
        Some(forward) => {
            let container = match (&forward.runtime, &forward.container) {
                (Some(runtime), Some(name)) => format!(" ({runtime} {name})"),
                _ => String::new(),
            };
            format!(
                "{verdict}, forwarded to {}{container}",
                std::net::SocketAddr::new(forward.to_address, forward.to_port)
            )
        }
        None => verdict.to_string(),
    }
}

/// How a column gives way when the terminal is narrower than the table would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Give {
    /// Never: addresses, states and ports are copied as they are.
    Whole,
    /// Cells are shortened with an ellipsis, to no fewer than this many columns.
    Shorten(usize),
    /// Cells are wrapped at spaces, to no fewer than this many columns.
    Wrap(usize),
    /// The column is left out, lowest rank first, once the shortened and wrapped columns are
    /// at their least and the table is still too wide.
    Drop(u8),
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub give: Give,
    /// How its cells are coloured, when colour is on.
    pub paint: Option<Paint>,
}

impl Column {
    pub fn new(title: &'static str, give: Give) -> Column {
        Column {
            title,
            give,
            paint: None,
        }
    }

    pub fn painted(self, paint: Paint) -> Column {
        Column {
            paint: Some(paint),
            ..self
        }
    }
}

/// A table of text cells, fitted to the terminal when there is one: columns are dropped,
/// shortened or wrapped as each column's [`Give`] allows, in that documented order, and a cell
/// is never cut inside a word without an ellipsis to say so. Off a terminal every cell is
/// whole, one line per row (what scripts and `grep` read).
pub struct Grid {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

/// Two spaces between columns, as ss and netstat print.
const GAP: usize = 2;

/// The most characters a cell shows, at a terminal or not: longer ones (a 2 MB service name in
/// /etc/services, a podman command line) end in an ellipsis at this many, ellipsis included,
/// so drawing the table stays fast (comfy-table's work grows with the square of a cell's
/// length). JSON keeps whole values.
pub const CELL_CAP: usize = 1000;

/// A cell as the table shows it: printable (see [`printable`]) and at most [`CELL_CAP`]
/// characters.
fn cell_text(cell: &str) -> String {
    let cell = printable(cell);
    match cell.char_indices().nth(CELL_CAP) {
        None => cell.into_owned(),
        Some(_) => {
            let mut capped: String = cell.chars().take(CELL_CAP - 1).collect();
            capped.push('…');
            capped
        }
    }
}

impl Grid {
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<String>>) -> Grid {
        Grid { columns, rows }
    }

    pub fn write(self, style: &Style, out: &mut dyn Write) -> io::Result<()> {
        let Grid { columns, rows } = self;
        // Every cell made safe and bounded once, before it is measured: names and command
        // lines come from other processes and files.
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|row| row.iter().map(|cell| cell_text(cell)).collect())
            .collect();
        let mut widths: Vec<usize> = columns.iter().map(|c| text_width(c.title)).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(text_width(cell));
            }
        }
        let shown = match style.width {
            Some(terminal) => fit(&columns, &mut widths, usize::from(terminal)),
            None => vec![true; columns.len()],
        };
        let mut table = Table::new();
        // The terminal was looked at once, in main: comfy-table is told, never asks itself.
        table.force_no_tty();
        table.set_content_arrangement(ContentArrangement::Disabled);
        // The header's underline is for a terminal; `--color always` into a pipe keeps the
        // plain layout that scripts and `grep` read, coloured.
        if style.color && style.terminal {
            table.load_style(UNDERLINED_HEADER);
        } else {
            table.load_style(TableStyle::new());
        }
        if style.color {
            table.enforce_styling();
        }
        let kept: Vec<usize> = (0..columns.len()).filter(|&i| shown[i]).collect();
        table.set_header(kept.iter().map(|&i| {
            let cell = Cell::new(columns[i].title);
            if style.color {
                cell.add_attribute(Attribute::Bold)
            } else {
                cell
            }
        }));
        for row in rows {
            let cells = kept.iter().map(|&i| {
                let cell = row.get(i).map_or("", String::as_str);
                let text = match (columns[i].give, style.width) {
                    (_, None) | (Give::Whole | Give::Drop(_), _) => cell.to_string(),
                    (Give::Shorten(_), Some(_)) => shorten(cell, widths[i]),
                    (Give::Wrap(_), Some(_)) => wrap(cell, widths[i]),
                };
                let color = columns[i]
                    .paint
                    .filter(|_| style.color)
                    .and_then(|paint| paint.color(cell));
                match color {
                    Some(color) => Cell::new(text).fg(table_color(color)),
                    None => Cell::new(text),
                }
            });
            table.add_row(cells.collect::<Vec<_>>());
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, GAP as u16));
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
        write_lines(&table, out)
    }
}

fn table_color(color: AnsiColor) -> comfy_table::Color {
    match color {
        AnsiColor::Red => comfy_table::Color::Red,
        AnsiColor::Green => comfy_table::Color::Green,
        AnsiColor::Yellow => comfy_table::Color::Yellow,
        AnsiColor::Cyan => comfy_table::Color::Cyan,
        AnsiColor::Magenta => comfy_table::Color::Magenta,
        AnsiColor::Blue => comfy_table::Color::Blue,
        _ => comfy_table::Color::DarkGrey,
    }
}

/// Decides which columns show and how wide the shortened and wrapped ones are, for a terminal
/// `terminal` columns wide. Returns which columns are shown; `widths` become the widths to use.
fn fit(columns: &[Column], widths: &mut [usize], terminal: usize) -> Vec<bool> {
    let mut shown = vec![true; columns.len()];
    let flexible = |give: Give| matches!(give, Give::Shorten(_) | Give::Wrap(_));
    // The least each column can take: its minimum (never narrower than its title), or all of
    // it when it does not give.
    let least: Vec<usize> = (0..columns.len())
        .map(|i| match columns[i].give {
            Give::Shorten(min) | Give::Wrap(min) => {
                widths[i].min(min.max(text_width(columns[i].title)))
            }
            _ => widths[i],
        })
        .collect();
    let needed = |shown: &[bool], at_least: bool| -> usize {
        let count = shown.iter().filter(|&&s| s).count();
        (0..columns.len())
            .filter(|&i| shown[i])
            .map(|i| if at_least { least[i] } else { widths[i] })
            .sum::<usize>()
            + GAP * count.saturating_sub(1)
    };
    // Drop columns, lowest rank first, while even the least the others can take is too wide.
    let mut droppable: Vec<(u8, usize)> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.give {
            Give::Drop(rank) => Some((rank, i)),
            _ => None,
        })
        .collect();
    droppable.sort_unstable();
    for (_, i) in droppable {
        if needed(&shown, false) <= terminal || needed(&shown, true) <= terminal {
            break;
        }
        shown[i] = false;
    }
    let total = needed(&shown, false);
    if total <= terminal {
        return shown;
    }
    // Each flexible column gets its least, then what is left is shared out, the columns that
    // want the least more first, so a short one is whole before a long one grows.
    let fixed: usize = (0..columns.len())
        .filter(|&i| shown[i] && !flexible(columns[i].give))
        .map(|i| widths[i])
        .sum::<usize>()
        + GAP * shown.iter().filter(|&&s| s).count().saturating_sub(1);
    let mut flex: Vec<usize> = (0..columns.len())
        .filter(|&i| shown[i] && flexible(columns[i].give))
        .collect();
    let floor: usize = flex.iter().map(|&i| least[i]).sum();
    let mut spare = terminal.saturating_sub(fixed).saturating_sub(floor);
    flex.sort_by_key(|&i| widths[i] - least[i]);
    let mut count = flex.len();
    for i in flex {
        let more = (widths[i] - least[i]).min(spare / count.max(1));
        widths[i] = least[i] + more;
        spare -= more;
        count -= 1;
    }
    shown
}

/// Columns a text takes on a terminal.
fn text_width(text: &str) -> usize {
    text.lines().map(UnicodeWidthStr::width).max().unwrap_or(0)
}

/// `text` in at most `width` columns: whole if it fits, else cut with an ellipsis.
pub fn shorten(text: &str, width: usize) -> String {
    if text_width(text) <= width {
        return text.to_string();
    }
    let mut shortened = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        shortened.push(c);
        used += w;
    }
    shortened.push('…');
    shortened
}

/// `text` in lines of at most `width` columns, broken at spaces; a word longer than a line is
/// shortened with an ellipsis rather than cut.
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let word = shorten(word, width);
        if !line.is_empty() && text_width(&line) + 1 + text_width(&word) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    lines.push(line);
    lines.join("\n")
}

/// Writes the table without the trailing blanks comfy-table pads lines with.
pub fn write_lines(table: &Table, out: &mut dyn Write) -> io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn row(entry: &Entry, numeric: bool, zones: &Zones, extensions: Extensions) -> Vec<String> {
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
        zones.address(socket.netns, socket.local),
        socket.remote.map_or_else(
            || "*".to_string(),
            |remote| zones.address(socket.netns, remote),
        ),
        socket.state.as_str().to_string(),
    ];
    if extensions.info {
        let queue = |queue: Option<u32>| queue.map_or_else(|| "-".into(), |q| q.to_string());
        cells.extend([queue(socket.rx_queue), queue(socket.tx_queue)]);
    }
    cells.push(range);
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

/// The TIMER cell, as `ss -o` prints it: `timer:(keepalive,119min,0)`.
pub fn timer_cell(timer: Timer) -> String {
    format!(
        "timer:({},{},{})",
        timer.kind.as_str(),
        milliseconds(timer.expires_ms),
        timer.retrans
    )
}

/// A time left as `ss` writes it (`print_ms_timer`): `119min`, `1min5sec`, `59sec`, `2.500sec`,
/// `200ms`; the smaller units are left out once the larger ones are large.
fn milliseconds(total: u32) -> String {
    let minutes = total / 60_000;
    let mut seconds = total / 1000 % 60;
    let mut millis = total % 1000;
    let mut text = String::new();
    if minutes > 0 {
        millis = 0;
        text.push_str(&format!("{minutes}min"));
        if minutes > 9 {
            seconds = 0;
        }
    }
    if seconds > 0 {
        if seconds > 9 {
            millis = 0;
        }
        text.push_str(&format!(
            "{seconds}{}",
            if millis > 0 { "." } else { "sec" }
        ));
    }
    if millis > 0 {
        let unit = if seconds > 0 { "sec" } else { "ms" };
        text.push_str(&format!("{millis:03}{unit}"));
    }
    if text.is_empty() {
        text.push_str("0ms");
    }
    text
}

/// The MEMORY cell, as `ss -m` prints it: `skmem:(r0,rb131072,t0,tb87040,f0,w0,o0,bl0,d0)`;
/// what the kernel did not send is left out.
pub fn memory_cell(memory: &SocketMemory) -> String {
    let fields = [
        ("r", memory.rmem_alloc),
        ("rb", memory.rcvbuf),
        ("t", memory.wmem_alloc),
        ("tb", memory.sndbuf),
        ("f", memory.fwd_alloc),
        ("w", memory.wmem_queued),
        ("o", memory.optmem),
        ("bl", memory.backlog),
        ("d", memory.drops),
    ];
    let shown: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| Some(format!("{name}{}", (*value)?)))
        .collect();
    format!("skmem:({})", shown.join(","))
}

/// The INFO cell, in `ss -i`'s words and order: the congestion algorithm, `rto` and `rtt` in
/// milliseconds, windows, byte counts; what is 0 or unknown is left out, as ss does.
pub fn info_cell(info: &TcpInfo) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(algorithm) = &info.congestion {
        parts.push(algorithm.to_string());
    }
    let ms = |us: u32| f64::from(us) / 1000.0;
    if let Some(rto) = info.rto_us.filter(|&rto| rto > 0) {
        parts.push(format!("rto:{}", ms(rto)));
    }
    if let Some(rtt) = info.rtt_us.filter(|&rtt| rtt > 0) {
        parts.push(format!(
            "rtt:{}/{}",
            ms(rtt),
            ms(info.rttvar_us.unwrap_or_default())
        ));
    }
    let counters = [
        ("mss", info.snd_mss.map(u64::from)),
        ("rcvmss", info.rcv_mss.map(u64::from)),
        ("cwnd", info.cwnd.map(u64::from)),
        // The kernel's "no threshold yet" is TCP_INFINITE_SSTHRESH; ss shows one below 0xffff.
        (
            "ssthresh",
            info.ssthresh.filter(|&s| s < 0xffff).map(u64::from),
        ),
        ("bytes_sent", info.bytes_sent),
        ("bytes_acked", info.bytes_acked),
        ("bytes_received", info.bytes_received),
        ("lastsnd", info.last_send_ms.map(u64::from)),
        ("lastrcv", info.last_recv_ms.map(u64::from)),
    ];
    for (name, value) in counters {
        if let Some(value) = value.filter(|&value| value > 0) {
            parts.push(format!("{name}:{value}"));
        }
    }
    if let Some(rate) = info.delivery_rate.filter(|&rate| rate > 0) {
        parts.push(format!("delivery_rate:{}", bits_per_second(rate)));
    }
    if let Some(unacked) = info.unacked.filter(|&unacked| unacked > 0) {
        parts.push(format!("unacked:{unacked}"));
    }
    let (retrans, total) = (info.retrans.unwrap_or(0), info.total_retrans.unwrap_or(0));
    if retrans > 0 || total > 0 {
        parts.push(format!("retrans:{retrans}/{total}"));
    }
    if let Some(notsent) = info.notsent_bytes.filter(|&notsent| notsent > 0) {
        parts.push(format!("notsent:{notsent}"));
    }
    if let Some(min) = info.min_rtt_us.filter(|&min| min > 0) {
        parts.push(format!("minrtt:{}", ms(min)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// A rate of bytes per second as bits per second, as `ss` writes it (`sprint_bw`): `1.2Gbps`.
fn bits_per_second(bytes: u64) -> String {
    let bits = bytes as f64 * 8.0;
    if bits > 1e9 {
        format!("{:.1}Gbps", bits / 1e9)
    } else if bits > 1e6 {
        format!("{:.1}Mbps", bits / 1e6)
    } else if bits > 1e3 {
        format!("{:.1}Kbps", bits / 1e3)
    } else {
        format!("{bits}bps")
    }
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
    owner_cell(
        entry.processes.iter().map(|p| (p.pid, p.name.as_str())),
        entry.owner_note.map_or("-", |note| note.describe()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(style: Style, rows: Vec<Vec<String>>) -> String {
        let columns = vec![
            Column::new("PORT", Give::Whole),
            Column::new("SERVICE", Give::Drop(1)),
            Column::new("PROGRAM", Give::Shorten(12)),
        ];
        let mut out = Vec::new();
        Grid::new(columns, rows)
            .write(&style, &mut out)
            .expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn timers_read_as_ss_prints_them() {
        let cases = [
            (7_140_000, "119min"),
            (65_000, "1min5sec"),
            (600_000, "10min"),
            (59_000, "59sec"),
            (2_500, "2.500sec"),
            (12_500, "12sec"),
            (200, "200ms"),
            (0, "0ms"),
        ];
        for (ms, text) in cases {
            assert_eq!(milliseconds(ms), text, "{ms}");
        }
        let timer = Timer {
            kind: crate::core::model::TimerKind::Keepalive,
            expires_ms: 7_140_000,
            retrans: 0,
        };
        assert_eq!(timer_cell(timer), "timer:(keepalive,119min,0)");
    }

    #[test]
    fn memory_and_info_read_as_ss_prints_them() {
        let mut memory = SocketMemory {
            rmem_alloc: Some(0),
            rcvbuf: Some(131072),
            wmem_alloc: Some(0),
            sndbuf: Some(87040),
            fwd_alloc: Some(0),
            wmem_queued: Some(0),
            optmem: Some(0),
            backlog: Some(0),
            drops: Some(0),
        };
        assert_eq!(
            memory_cell(&memory),
            "skmem:(r0,rb131072,t0,tb87040,f0,w0,o0,bl0,d0)"
        );
        (memory.backlog, memory.drops) = (None, None);
        assert_eq!(
            memory_cell(&memory),
            "skmem:(r0,rb131072,t0,tb87040,f0,w0,o0)"
        );
        let info = TcpInfo {
            congestion: Some("cubic".into()),
            rtt_us: Some(50),
            rttvar_us: Some(25),
            rto_us: Some(204_000),
            cwnd: Some(10),
            ssthresh: Some(0x7fff_ffff),
            bytes_sent: Some(5),
            bytes_acked: Some(6),
            bytes_received: Some(0),
            delivery_rate: Some(1_500_000_000),
            total_retrans: Some(2),
            ..TcpInfo::default()
        };
        assert_eq!(
            info_cell(&info),
            "cubic rto:204 rtt:0.05/0.025 cwnd:10 bytes_sent:5 bytes_acked:6 \
             delivery_rate:12.0Gbps retrans:0/2"
        );
        assert_eq!(info_cell(&TcpInfo::default()), "-");
    }

    #[test]
    fn a_huge_cell_is_capped_with_an_ellipsis_off_a_terminal() {
        // A 2 MB service name took comfy-table over a minute; capped, it is drawn at once.
        let huge = "s".repeat(2_000_000);
        let text = drawn(
            Style::default(),
            vec![vec!["80".into(), huge, "1/nginx".into()]],
        );
        let row = text.lines().nth(1).expect("a row");
        let service = row.split_whitespace().nth(1).expect("service cell");
        assert_eq!(service.chars().count(), CELL_CAP);
        assert!(service.ends_with('…'));
        assert!(row.ends_with("1/nginx"), "{row}");
    }

    #[test]
    fn a_cell_at_the_cap_is_whole() {
        let exact = "x".repeat(CELL_CAP);
        let text = drawn(
            Style::default(),
            vec![vec!["80".into(), exact.clone(), "-".into()]],
        );
        assert!(text.contains(&exact) && !text.contains('…'), "{text}");
    }

    #[test]
    fn cells_are_printable_and_measured_escaped() {
        let style = Style {
            terminal: true,
            width: Some(80),
            color: false,
        };
        let text = drawn(
            style,
            vec![vec![
                "80".into(),
                "http".into(),
                "1/\x1b[2J\u{202e}x".into(),
            ]],
        );
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains("1/\\x1b[2J\\u{202e}x"), "{text}");
    }
}
