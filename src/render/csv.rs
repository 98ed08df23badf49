//! CSV: the JSON record's fields, flattened; owners as `pid:name` joined by `;`.
//!
//! Every field is [`printable`]: a control character (an ESC in a process name, a newline in a
//! service name) is written as `\x1b`, never raw, so `cat`ting the file at a terminal is as
//! safe as the table. Quoting would keep the byte and so the terminal would still obey it;
//! JSON is the format that keeps such names exactly (`\u001b`).

use std::io::{self, Write};

use super::{Report, printable};
use crate::core::model::{Direction, NetnsLabel, OwnerNote, PortRange};
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
        ];
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
