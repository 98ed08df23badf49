//! CSV: the JSON record's fields, flattened; owners as `pid:name` joined by `;`.

use std::io::{self, Write};

use super::Report;
use crate::core::model::{Direction, NetnsLabel, OwnerNote, PortRange};
use crate::core::snapshot::SocketRecord;

pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    writer.write_record([
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
    ])?;
    for entry in report.entries {
        let record = SocketRecord::from_entry_in(entry, Some(report.zones));
        let processes = record
            .processes
            .iter()
            .map(|p| format!("{}:{}", p.pid, p.name))
            .collect::<Vec<_>>()
            .join(";");
        let text = |value: Option<&str>| value.unwrap_or_default().to_string();
        let number = |value: Option<u16>| value.map(|v| v.to_string()).unwrap_or_default();
        writer.write_record([
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
        ])?;
    }
    writer.flush()
}
