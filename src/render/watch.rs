//! `watch`'s events: a line each for people, one JSON object each (NDJSON) for scripts.

use std::io::{self, Write};

use super::{json, owner_cell};
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
    let state = match event.previous_state {
        Some(previous) => format!("{previous}->{}", event.state),
        None => event.state.to_string(),
    };
    writeln!(
        out,
        "{}  {:<17}  {:<4} {:<22} {:<22} {:<12} {owners}",
        event.time,
        event.event.as_str(),
        event.proto,
        socket.local.to_string(),
        socket
            .remote
            .map_or_else(|| "*".to_string(), |remote| remote.to_string()),
        state,
    )?;
    Ok(())
}
