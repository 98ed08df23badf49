//! The JSON snapshot: schema 1, documented in README.md. A saved snapshot is read back by later
//! commands, so the record types deserialize too.

use std::io::{self, Write};

use serde::Serialize;

use super::{Output, Report};
use crate::core::snapshot::Snapshot;

/// Any JSON document, indented or on one line, ending with a newline.
pub fn document(document: &impl Serialize, pretty: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut chunks = Chunks::new(out);
    if pretty {
        serde_json::to_writer_pretty(&mut chunks, document)?;
    } else {
        serde_json::to_writer(&mut chunks, document)?;
    }
    chunks.buffer.push(b'\n');
    chunks.drain()
}

/// How much of a document is gathered before it goes to the output.
const CHUNK: usize = 64 * 1024;

/// serde_json writes every token (a quote, a colon, a key) with a `write_all` of its own: into
/// a `dyn Write` each is a call through the vtable, a tenth of a 10k-socket listing's time.
/// Gathered here in a plain vector, they inline to copies, and the output sees 64 KiB at once.
struct Chunks<'a> {
    buffer: Vec<u8>,
    out: &'a mut dyn Write,
}

impl<'a> Chunks<'a> {
    fn new(out: &'a mut dyn Write) -> Chunks<'a> {
        Chunks {
            buffer: Vec::with_capacity(CHUNK),
            out,
        }
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }
}

impl Write for Chunks<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.drain()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

/// Writes the listing's snapshot, streamed from the entries.
pub fn write(report: &Report, output: &mut Output) -> io::Result<()> {
    let snapshot = Snapshot::of(
        report.host,
        report.captured_at,
        report.entries,
        report.warnings,
    )
    .with_zones(report.zones)
    .with_firewall(report.firewall)
    .with_extensions(report.extensions);
    output.json(&snapshot)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::model::Process;
    use crate::core::model::{Direction, Entry, PortRange, Proto, Socket, State};
    use crate::core::snapshot::SocketRecord;

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
                ppid: None,
            })],
            owner_note: None,
            local_range: PortRange::Registered,
            remote_range: Some(PortRange::Dynamic),
            ephemeral: false,
            local_service: Some("http-alt"),
            remote_service: None,
            direction: Some(crate::core::model::Direction::Inbound),
            netns: None,
        };
        let report = Report {
            host: "web-1",
            captured_at: "2026-11-25T08:00:00Z",
            entries: std::slice::from_ref(&entry),
            warnings: &["a warning".to_string()],
            numeric: false,
            zones: &Default::default(),
            firewall: None,
            extensions: Default::default(),
        };
        for pretty in [false, true] {
            let style = crate::render::Style {
                terminal: pretty,
                ..Default::default()
            };
            let text = crate::render::captured(style, |output| write(&report, output));
            assert_eq!(text.lines().count() == 1, !pretty);
            let snapshot: Snapshot = serde_json::from_str(&text).expect("reads back");
            assert_eq!(snapshot.schema, 1);
            assert_eq!(snapshot.host, "web-1");
            assert_eq!(snapshot.warnings, ["a warning"]);
            assert_eq!(snapshot.sockets, [SocketRecord::from_entry(&entry)]);
            let record = &snapshot.sockets[0];
            assert_eq!(record.local_address.to_string(), "::1");
            assert_eq!(record.remote_port, Some(50000));
            assert_eq!(record.direction, Some(Direction::Inbound));
            assert_eq!(record.processes[0].cmdline, "server --port 8080");
            // Without -i, -o, -m their fields are absent, not null.
            assert!(!text.contains("\"timer\"") && !text.contains("tcp_info"));
        }
    }

    #[test]
    fn details_are_written_null_where_missing_and_read_back() {
        use crate::core::model::{Extensions, SocketDetails, TcpInfo, Timer, TimerKind};
        let mut with = Entry::example(
            Socket::example(
                Proto::Tcp,
                "127.0.0.1:1",
                Some("127.0.0.1:2"),
                State::Established,
            ),
            Vec::new(),
        );
        with.socket.timer = Some(Timer {
            kind: TimerKind::Keepalive,
            expires_ms: 7_140_000,
            retrans: 1,
        });
        with.socket.details = Some(Box::new(SocketDetails {
            tcp_info: Some(TcpInfo {
                congestion: Some("cubic".into()),
                bytes_acked: Some(1001),
                ..TcpInfo::default()
            }),
            memory: None,
        }));
        let mut without = with.clone();
        (without.socket.timer, without.socket.details) = (None, None);
        without.socket.tx_queue = None;
        let entries = [with, without];
        let report = Report {
            host: "h",
            captured_at: "2026-11-25T08:00:00Z",
            entries: &entries,
            warnings: &[],
            numeric: true,
            zones: &Default::default(),
            firewall: None,
            extensions: Extensions {
                info: true,
                timers: true,
                memory: true,
            },
        };
        let text = crate::render::captured(Default::default(), |output| write(&report, output));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = &value["sockets"][0];
        assert_eq!(
            first["timer"],
            serde_json::json!({"kind": "keepalive", "expires_ms": 7140000, "retrans": 1})
        );
        assert_eq!(first["tcp_info"]["bytes_acked"], 1001);
        assert_eq!(first["tcp_info"]["congestion"], "cubic");
        assert!(first["tcp_info"]["bytes_sent"].is_null());
        assert!(first["memory"].is_null());
        let second = &value["sockets"][1];
        for field in ["timer", "tcp_info", "memory", "send_q"] {
            assert!(second[field].is_null(), "{field}: {second}");
        }
        assert_eq!(second["recv_q"], 0);
        let snapshot: Snapshot = serde_json::from_str(&text).expect("reads back");
        assert_eq!(
            snapshot.sockets[0].timer.unwrap().unwrap().expires_ms,
            7_140_000
        );
        assert_eq!(snapshot.sockets[1].timer, Some(None));
        assert_eq!(snapshot.sockets[1].memory, Some(None));
        assert_eq!(snapshot.sockets[1].send_q, None);
    }
}
