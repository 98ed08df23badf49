//! CSV: the JSON record's fields, flattened; owners as `pid:name` joined by `;`.
//!
//! Every field is [`printable`]: a control character (an ESC in a process name, a newline in a
//! service name) is written as `\x1b`, never raw, so `cat`ting the file at a terminal is as
//! safe as the table. Quoting would keep the byte and so the terminal would still obey it;
//! JSON is the format that keeps such names exactly (`\u001b`).

use std::io::{self, Write};

use super::{Report, printable};
use crate::core::model::{Direction, NetnsLabel, OwnerNote, PortRange, SocketMemory, TcpInfo};
use crate::core::snapshot::SocketRecord;

pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    records(report, out).map_err(io_error)
}

/// The I/O error inside a CSV error as it is, so a closed pipe is seen as one and ends the run
/// quietly with 0 as the other formats do (the csv crate's own conversion hides its kind).
fn io_error(error: ::csv::Error) -> io::Error {
    if !error.is_io_error() {
        return io::Error::other(error);
    }
    match error.into_kind() {
        ::csv::ErrorKind::Io(error) => error,
        kind => io::Error::other(format!("{kind:?}")),
    }
}

fn records(report: &Report, out: &mut dyn Write) -> Result<(), ::csv::Error> {
    let mut writer = ::csv::Writer::from_writer(out);
    let mut header = vec![
        "proto",
        "family",
        "local_address",
        "local_port",
        "remote_address",
        "remote_port",
        "state",
        "local_range",
        "remote_range",
        "ephemeral",
        "local_service",
        "remote_service",
        "direction",
        "uid",
        "user",
        "inode",
        "processes",
        "owner_note",
        "netns",
        "local_zone",
        "remote_zone",
    ];
    header.extend(["recv_q", "send_q"]);
    let extensions = report.extensions;
    if extensions.timers {
        header.extend(TIMER_COLUMNS);
    }
    if extensions.info {
        header.extend(TCP_INFO_COLUMNS);
    }
    if extensions.memory {
        header.extend(MEMORY_COLUMNS);
    }
    // With --firewall: the verdict, and where a forward takes the port (`10.88.0.2:80`).
    if report.firewall.is_some() {
        header.extend(["firewall", "forwarded_to"]);
    }
    writer.write_record(header)?;
    for (index, entry) in report.entries.iter().enumerate() {
        let record = SocketRecord::from_entry_in(entry, Some(report.zones));
        let processes = record
            .processes
            .iter()
            .map(|p| format!("{}:{}", p.pid, p.name))
            .collect::<Vec<_>>()
            .join(";");
        let text = |value: Option<&str>| value.unwrap_or_default().to_string();
        let number = |value: Option<u16>| value.map(|v| v.to_string()).unwrap_or_default();
        let mut fields = vec![
            record.proto.as_str().to_string(),
            record.family.as_str().to_string(),
            record.local_address.to_string(),
            record.local_port.to_string(),
            record
                .remote_address
                .map(|address| address.to_string())
                .unwrap_or_default(),
            number(record.remote_port),
            record.state.as_str().to_string(),
            record.local_range.as_str().to_string(),
            text(record.remote_range.map(PortRange::as_str)),
            record.ephemeral.to_string(),
            text(record.local_service.as_deref()),
            text(record.remote_service.as_deref()),
            text(record.direction.map(Direction::as_str)),
            record.uid.map(|uid| uid.to_string()).unwrap_or_default(),
            text(record.user.as_deref()),
            record.inode.to_string(),
            processes,
            text(record.owner_note.map(OwnerNote::code)),
            record
                .netns
                .as_deref()
                .map(NetnsLabel::short)
                .unwrap_or_default(),
            text(record.local_zone.as_deref()),
            text(record.remote_zone.as_deref()),
            optional(record.recv_q),
            optional(record.send_q),
        ];
        let socket = &entry.socket;
        let details = socket.details.as_deref();
        if extensions.timers {
            let timer = socket.timer;
            fields.extend([
                text(timer.map(|t| t.kind.as_str())),
                optional(timer.map(|t| t.expires_ms)),
                optional(timer.map(|t| t.retrans)),
            ]);
        }
        if extensions.info {
            fields.extend(tcp_info_fields(details.and_then(|d| d.tcp_info.as_ref())));
        }
        if extensions.memory {
            fields.extend(memory_fields(details.and_then(|d| d.memory.as_ref())));
        }
        if let Some(passages) = report.firewall {
            let passage = passages.get(index);
            let verdict = passage
                .and_then(|p| p.firewall.as_ref())
                .map(|reach| reach.verdict.as_str());
            fields.push(text(verdict));
            fields.push(
                passage
                    .and_then(|p| p.forward.as_ref())
                    .map(|f| std::net::SocketAddr::new(f.to_address, f.to_port).to_string())
                    .unwrap_or_default(),
            );
        }
        writer.write_record(fields.iter().map(|field| printable(field).into_owned()))?;
    }
    writer.flush()?;
    Ok(())
}

/// `null` is an empty field.
fn optional(value: Option<impl ToString>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

/// With `-o`: the JSON `timer` object's fields.
const TIMER_COLUMNS: [&str; 3] = ["timer_kind", "timer_expires_ms", "timer_retrans"];

/// With `-i`: the JSON `tcp_info` object's fields, in its order.
const TCP_INFO_COLUMNS: [&str; 19] = [
    "congestion",
    "rtt_us",
    "rttvar_us",
    "min_rtt_us",
    "rto_us",
    "cwnd",
    "ssthresh",
    "snd_mss",
    "rcv_mss",
    "unacked",
    "retrans",
    "total_retrans",
    "bytes_acked",
    "bytes_received",
    "bytes_sent",
    "notsent_bytes",
    "delivery_rate",
    "last_send_ms",
    "last_recv_ms",
];

fn tcp_info_fields(info: Option<&TcpInfo>) -> [String; 19] {
    let Some(info) = info else {
        return Default::default();
    };
    [
        optional(info.congestion.as_deref()),
        optional(info.rtt_us),
        optional(info.rttvar_us),
        optional(info.min_rtt_us),
        optional(info.rto_us),
        optional(info.cwnd),
        optional(info.ssthresh),
        optional(info.snd_mss),
        optional(info.rcv_mss),
        optional(info.unacked),
        optional(info.retrans),
        optional(info.total_retrans),
        optional(info.bytes_acked),
        optional(info.bytes_received),
        optional(info.bytes_sent),
        optional(info.notsent_bytes),
        optional(info.delivery_rate),
        optional(info.last_send_ms),
        optional(info.last_recv_ms),
    ]
}

/// With `-m`: the JSON `memory` object's fields, in its order.
const MEMORY_COLUMNS: [&str; 9] = [
    "rmem_alloc",
    "rcvbuf",
    "wmem_alloc",
    "sndbuf",
    "fwd_alloc",
    "wmem_queued",
    "optmem",
    "backlog",
    "drops",
];

fn memory_fields(memory: Option<&SocketMemory>) -> [String; 9] {
    let Some(memory) = memory else {
        return Default::default();
    };
    [
        memory.rmem_alloc,
        memory.rcvbuf,
        memory.wmem_alloc,
        memory.sndbuf,
        memory.fwd_alloc,
        memory.wmem_queued,
        memory.optmem,
        memory.backlog,
        memory.drops,
    ]
    .map(optional)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSV columns are the JSON objects' keys, in the same order.
    #[test]
    fn extension_columns_are_the_json_fields() {
        let keys = |value: serde_json::Value| -> Vec<String> {
            value.as_object().unwrap().keys().cloned().collect()
        };
        let info = serde_json::to_value(TcpInfo::default()).unwrap();
        let mut expected = keys(info);
        let mut columns: Vec<String> = TCP_INFO_COLUMNS.map(String::from).to_vec();
        // serde_json's map is sorted unless preserve_order is on: compare as sets, then order
        // against the struct's own field order through the filled row.
        expected.sort();
        columns.sort();
        assert_eq!(columns, expected);
        let memory = serde_json::to_value(SocketMemory::default()).unwrap();
        let mut expected = keys(memory);
        let mut columns: Vec<String> = MEMORY_COLUMNS.map(String::from).to_vec();
        expected.sort();
        columns.sort();
        assert_eq!(columns, expected);
        let timer = crate::core::model::Timer {
            kind: crate::core::model::TimerKind::On,
            expires_ms: 1,
            retrans: 2,
        };
        let mut expected: Vec<String> = keys(serde_json::to_value(timer).unwrap())
            .into_iter()
            .map(|key| format!("timer_{key}"))
            .collect();
        expected.sort();
        let mut columns = TIMER_COLUMNS.map(String::from).to_vec();
        columns.sort();
        assert_eq!(columns, expected);
    }
}
