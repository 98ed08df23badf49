//! The JSON snapshot: schema 1, documented in README.md. A saved snapshot is read back by later
//! commands, so the record types deserialize too.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::Report;
use crate::model::{Entry, NetnsLabel, Process};
use std::sync::Arc;

pub const SCHEMA: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot<'a> {
    pub schema: u32,
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    #[serde(borrow)]
    pub captured_at: Cow<'a, str>,
    #[serde(borrow)]
    pub sockets: Vec<SocketRecord<'a>>,
    #[serde(borrow)]
    pub warnings: Vec<Cow<'a, str>>,
}

/// One socket; the field order and names are the promise README.md makes to scripts.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct SocketRecord<'a> {
    pub proto: Cow<'a, str>,
    pub family: Cow<'a, str>,
    pub local_address: String,
    pub local_port: u16,
    pub remote_address: Option<String>,
    pub remote_port: Option<u16>,
    pub state: Cow<'a, str>,
    pub local_range: Cow<'a, str>,
    pub remote_range: Option<Cow<'a, str>>,
    pub ephemeral: bool,
    pub local_service: Option<Cow<'a, str>>,
    pub remote_service: Option<Cow<'a, str>>,
    pub direction: Option<Cow<'a, str>>,
    pub uid: Option<u32>,
    pub user: Option<Cow<'a, str>>,
    pub inode: u64,
    pub processes: Vec<Arc<Process>>,
    pub owner_note: Option<Cow<'a, str>>,
    /// The socket's network namespace when several are shown (`--netns all`); `null`
    /// otherwise, and absent from snapshots older than it.
    #[serde(default)]
    pub netns: Option<NetnsLabel>,
}

impl<'a> SocketRecord<'a> {
    pub fn from_entry(entry: &'a Entry) -> SocketRecord<'a> {
        let socket = &entry.socket;
        SocketRecord {
            proto: socket.proto.as_str().into(),
            family: socket.family().as_str().into(),
            local_address: socket.local.ip().to_string(),
            local_port: socket.local.port(),
            remote_address: socket.remote.map(|remote| remote.ip().to_string()),
            remote_port: socket.remote.map(|remote| remote.port()),
            state: socket.state.as_str().into(),
            local_range: entry.local_range.as_str().into(),
            remote_range: entry.remote_range.map(|range| range.as_str().into()),
            ephemeral: entry.ephemeral,
            local_service: entry.local_service.map(Cow::from),
            remote_service: entry.remote_service.map(Cow::from),
            direction: entry.direction.map(|direction| direction.as_str().into()),
            uid: socket.uid,
            user: entry.user.as_deref().map(Cow::from),
            inode: socket.inode,
            processes: entry.processes.clone(),
            owner_note: entry.owner_note.map(|note| note.code().into()),
            netns: entry.netns.as_deref().cloned(),
        }
    }
}

/// The snapshot as written: the same shape as [`Snapshot`], with sockets serialized one at a
/// time straight from the entries, so 100k sockets never exist twice in memory.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    schema: u32,
    host: &'a str,
    captured_at: &'a str,
    sockets: Records<'a>,
    warnings: &'a [String],
}

struct Records<'a>(&'a [Entry]);

impl Serialize for Records<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(SocketRecord::from_entry))
    }
}

/// Writes the snapshot: indented for a person at a terminal, one compact line for a pipe or a
/// file (what scripts and `jq` read, and several times faster to write).
pub fn write(report: &Report, out: &mut dyn Write, pretty: bool) -> io::Result<()> {
    let snapshot = SnapshotOut {
        schema: SCHEMA,
        host: report.host,
        captured_at: report.captured_at,
        sockets: Records(report.entries),
        warnings: report.warnings,
    };
    if pretty {
        serde_json::to_writer_pretty(&mut *out, &snapshot)?;
    } else {
        serde_json::to_writer(&mut *out, &snapshot)?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortRange, Proto, Socket, State};

    #[test]
    fn written_snapshot_reads_back_with_every_field() {
        let entry = Entry {
            socket: Socket::example(
                Proto::Tcp,
                "[::1]:8080",
                Some("[::1]:50000"),
                State::Established,
            ),
            user: Some("alice".into()),
            processes: vec![Arc::new(Process {
                pid: 7,
                name: "server".into(),
                user: Some("alice".into()),
                cmdline: "server --port 8080".into(),
                started: None,
            })],
            owner_note: None,
            local_range: PortRange::Registered,
            remote_range: Some(PortRange::Dynamic),
            ephemeral: false,
            local_service: Some("http-alt"),
            remote_service: None,
            direction: Some(crate::model::Direction::Inbound),
            netns: None,
        };
        let report = Report {
            host: "web-1",
            captured_at: "2026-11-25T08:00:00Z",
            entries: std::slice::from_ref(&entry),
            warnings: &["a warning".to_string()],
            numeric: false,
        };
        for pretty in [false, true] {
            let mut out = Vec::new();
            write(&report, &mut out, pretty).expect("write to memory");
            let text = String::from_utf8(out).expect("utf-8");
            assert_eq!(text.lines().count() == 1, !pretty);
            let snapshot: Snapshot = serde_json::from_str(&text).expect("reads back");
            assert_eq!(snapshot.schema, 1);
            assert_eq!(snapshot.host, "web-1");
            assert_eq!(snapshot.warnings, ["a warning"]);
            assert_eq!(snapshot.sockets, [SocketRecord::from_entry(&entry)]);
            let record = &snapshot.sockets[0];
            assert_eq!(record.local_address, "::1");
            assert_eq!(record.remote_port, Some(50000));
            assert_eq!(record.direction.as_deref(), Some("inbound"));
            assert_eq!(record.processes[0].cmdline, "server --port 8080");
        }
    }
}
