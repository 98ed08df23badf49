//! `watch`'s events: a line each for people, one JSON object each (NDJSON) for scripts.

use std::io::{self, Write};
use std::time::SystemTime;

use serde::Serialize;

use super::{json, owner_cell, printable};
use crate::core::model::Socket;
use crate::core::watch::Event;

/// One event: a JSON object on a line of its own (NDJSON), or a line of columns.
pub fn write(event: &Event, socket: &Socket, json: bool, out: &mut dyn Write) -> io::Result<()> {
    if json {
        // A stream of events is one object per line, at a terminal too.
        return json::document(event, false, out);
    }
    let owners = owner_cell(
        event.processes.iter().map(|p| (p.pid, p.name.as_str())),
        "-",
    );
    // The state column is as wide as the widest state; a change says where it came from, and a
    // close what the kernel told of it, after the owners, so the columns stay aligned.
    let mut was = event
        .previous_state
        .map_or_else(String::new, |previous| format!("  (was {previous})"));
    if event.seen_open == Some(false) {
        was.push_str("  (opened and closed between readings)");
    }
    if let (Some(acked), Some(received)) = (event.bytes_acked, event.bytes_received) {
        was.push_str(&format!("  bytes_acked:{acked} bytes_received:{received}"));
    }
    writeln!(
        out,
        "{}  {:<17}  {:<4} {:<22} {:<22} {:<12} {}{was}",
        event.time,
        event.event.as_str(),
        event.proto,
        socket.local.to_string(),
        socket
            .remote
            .map_or_else(|| "*".to_string(), |remote| remote.to_string()),
        event.state,
        printable(&owners),
    )?;
    Ok(())
}

/// `events-lost`: reports of destroyed sockets the kernel dropped, or portstat could not keep.
#[derive(Serialize)]
struct Lost {
    time: String,
    event: &'static str,
    lost: u64,
}

/// Says that `lost` reports of closed sockets were lost at `time`: never silently.
pub fn write_lost(time: SystemTime, lost: u64, json: bool, out: &mut dyn Write) -> io::Result<()> {
    let event = Lost {
        time: humantime::format_rfc3339_millis(time).to_string(),
        event: "events-lost",
        lost,
    };
    if json {
        return json::document(&event, false, out);
    }
    writeln!(
        out,
        "{}  {:<17}  {} lost: the kernel's queue of closed sockets overflowed, so sockets that \
         opened and closed meanwhile may be missing (those followed show at the next reading)",
        event.time,
        event.event,
        crate::core::text::count(usize::try_from(lost).unwrap_or(usize::MAX), "event"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Process, Proto, State};
    use crate::core::watch::{Change, Kind};

    fn line(kind: Kind, socket: &Socket, previous: Option<State>) -> String {
        let change = Change {
            kind,
            socket: socket.clone(),
            previous,
            processes: vec![Process::example(1301, "postgres", None)],
            seen_open: true,
            bytes: None,
        };
        let time = humantime::parse_rfc3339("2026-11-25T08:00:01.000Z").expect("a time");
        let (event, socket) = Event::of(change, time);
        let mut out = Vec::new();
        write(&event, &socket, false, &mut out).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_state_change_keeps_the_columns_aligned() {
        let opened = Socket::example(
            Proto::Tcp,
            "127.0.0.1:5432",
            Some("127.0.0.1:40001"),
            State::NewSynRecv,
        );
        let changed = Socket {
            state: State::CloseWait,
            ..opened.clone()
        };
        let opened = line(Kind::ConnectionOpened, &opened, None);
        let changed = line(Kind::StateChanged, &changed, Some(State::Established));
        let owner_column = |line: &str| line.find("1301/postgres").expect("owner");
        assert_eq!(
            owner_column(&opened),
            owner_column(&changed),
            "{opened}{changed}"
        );
        assert!(
            changed.trim_end().ends_with("(was ESTABLISHED)"),
            "{changed}"
        );
    }
}
