//! The audit's one view of a listening socket, whether this host's scan or a saved snapshot
//! produced it. Both go through the snapshot record, so a live audit and an offline audit of
//! the same host's `portstat -l --json` see the same listeners.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::exposure::{self, Exposure, HostView};
use crate::core::firewall::eval::Reach;
use crate::core::firewall::judge::ForwardTarget;
use crate::core::model::{Entry, OwnerNote, Process, Proto};
use crate::core::probe::Probe;
use crate::core::services::Services;
use crate::core::snapshot::{SCHEMA, Snapshot, SocketRecord, from_json, schema_of};

#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub host: String,
    pub proto: Proto,
    pub family: &'static str,
    pub address: IpAddr,
    pub port: u16,
    #[serde(flatten)]
    pub exposure: Exposure,
    pub service: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub processes: Vec<Arc<Process>>,
    /// Why no process is shown (`hidden`, `not-found`, `exited`), as in the snapshot.
    pub owner_note: Option<OwnerNote>,
    /// Whether new connections from beyond the host get through its firewall: `null` offline,
    /// and for what only loopback reaches.
    pub firewall: Option<Reach>,
    /// For a published port (a DNAT): where connections to it really go. The listener is then
    /// the host side of the forward, and its processes are the server's at the target.
    pub forward: Option<Arc<ForwardTarget>>,
    /// What it speaks, with `--probe` (left out of JSON without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
}

impl Listener {
    /// A live socket: the snapshot record plus what only a live scan knows (IPV6_V6ONLY).
    pub fn from_entry(
        host: &str,
        entry: &Entry,
        view: &HostView,
        services: &Services,
    ) -> Result<Listener, String> {
        let record = SocketRecord::from_entry(entry);
        Ok(Listener::from_record(
            host,
            &record,
            entry.socket.v6only,
            view,
            services,
        ))
    }

    /// A record of a scan or of a snapshot; its values were typed when it was read.
    pub fn from_record(
        host: &str,
        record: &SocketRecord,
        v6only: Option<bool>,
        view: &HostView,
        services: &Services,
    ) -> Listener {
        let address = record.local_address;
        let service = record
            .local_service
            .as_deref()
            .or_else(|| services.name(record.local_port, record.proto))
            .map(str::to_string);
        Listener {
            host: host.to_string(),
            proto: record.proto,
            family: if address.is_ipv4() { "ipv4" } else { "ipv6" },
            address,
            port: record.local_port,
            exposure: exposure::classify(address, v6only, view),
            service,
            uid: record.uid,
            user: record.user.as_deref().map(str::to_string),
            processes: record.processes.to_vec(),
            owner_note: record.owner_note,
            firewall: None,
            forward: None,
            probe: None,
        }
    }

    /// `tcp 0.0.0.0:6379 (redis-server)`: how messages name a listener.
    pub fn label(&self) -> String {
        let names = self.process_names();
        let owner = if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        };
        format!("{} {}{owner}", self.proto.as_str(), self.endpoint())
    }

    pub fn endpoint(&self) -> String {
        std::net::SocketAddr::new(self.address, self.port).to_string()
    }

    pub fn process_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.processes.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// One host's listeners, as a scan or a saved snapshot holds them.
#[derive(Debug, Clone)]
pub struct HostListeners {
    pub host: String,
    /// RFC 3339, UTC.
    pub captured_at: String,
    pub listeners: Vec<Listener>,
    pub warnings: Vec<String>,
}

/// Parses a saved `portstat --json` document: its host and its listeners (TCP LISTEN, UDP
/// UNCONN), classified from their addresses alone. Every socket's values are checked, not
/// only the listeners': a snapshot that misspells a state would otherwise hide its listeners.
pub fn from_snapshot_text(text: &str, services: &Services) -> Result<HostListeners, String> {
    let schema_error = |schema: u32| {
        format!("snapshot schema {schema} is not the schema {SCHEMA} this portstat reads")
    };
    let snapshot: Snapshot = from_json(text, "not a portstat JSON snapshot").map_err(|why| {
        // A document of another schema is that, whatever else it holds differently.
        match schema_of(text) {
            Some(schema) if schema != SCHEMA => schema_error(schema),
            _ => why,
        }
    })?;
    if snapshot.schema != SCHEMA {
        return Err(schema_error(snapshot.schema));
    }
    let listeners = listeners_of(&snapshot, services);
    let warnings = snapshot.warnings.iter().map(|w| w.to_string()).collect();
    Ok(HostListeners {
        host: snapshot.host.to_string(),
        captured_at: snapshot.captured_at.to_string(),
        listeners,
        warnings,
    })
}

pub fn listeners_of(snapshot: &Snapshot, services: &Services) -> Vec<Listener> {
    snapshot
        .sockets
        .iter()
        .filter(|record| record.state.is_listening())
        .map(|record| {
            Listener::from_record(&snapshot.host, record, None, &HostView::default(), services)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{OwnerNote, Socket, State};

    fn entry(local: &str, state: State, v6only: Option<bool>) -> Entry {
        let mut socket = Socket::example(Proto::Tcp, local, None, state);
        socket.v6only = v6only;
        Entry {
            user: Some("redis".into()),
            ..Entry::example(
                socket,
                vec![Process::example(42, "redis-server", Some("redis"))],
            )
        }
    }

    #[test]
    fn live_entries_keep_v6only_and_find_a_service_name() {
        let view = HostView {
            interfaces: Some(Vec::new()),
            bindv6only: Some(false),
        };
        let listener = Listener::from_entry(
            "web-1",
            &entry("[::]:6379", State::Listen, Some(true)),
            &view,
            &Services::with_system_services(None),
        )
        .expect("valid entry");
        assert_eq!(listener.exposure.dual_stack, Some(false));
        assert_eq!(listener.service.as_deref(), Some("redis"));
        assert_eq!(listener.family, "ipv6");
        assert_eq!(listener.label(), "tcp [::]:6379 (redis-server)");
    }

    #[test]
    fn snapshots_yield_only_their_listeners() {
        let listen = entry("0.0.0.0:6379", State::Listen, None);
        let mut established = entry("10.0.0.1:6379", State::Established, None);
        established.socket.remote = Some("10.0.0.2:50000".parse().expect("address"));
        let mut hidden = entry("127.0.0.1:9000", State::Listen, None);
        hidden.processes.clear();
        hidden.owner_note = Some(OwnerNote::Hidden);
        let snapshot: Snapshot = Snapshot {
            schema: 1,
            host: "db-1".into(),
            captured_at: "2026-01-01T00:00:00Z".into(),
            sockets: [&listen, &established, &hidden]
                .map(SocketRecord::from_entry)
                .into(),
            warnings: vec!["owners of 1 sockets hidden: run as root".into()],
        };
        let text = serde_json::to_string(&snapshot).expect("serializes");
        let read =
            from_snapshot_text(&text, &Services::with_system_services(None)).expect("reads back");
        assert_eq!(read.host, "db-1");
        assert_eq!(read.warnings.len(), 1);
        let listeners = read.listeners;
        assert_eq!(listeners.len(), 2);
        assert!(listeners.iter().all(|l| l.host == "db-1"));
        assert_eq!(listeners[1].owner_note, Some(OwnerNote::Hidden));
        // Offline nothing tells whether a wildcard is dual-stack or which interface holds what.
        assert_eq!(listeners[0].exposure.dual_stack, None);
    }

    #[test]
    fn malformed_snapshots_say_what_is_wrong() {
        let err = |text: &str| {
            from_snapshot_text(text, &Services::with_system_services(None)).expect_err(text)
        };
        assert!(err("{").contains("not a portstat JSON snapshot"));
        assert!(
            err(r#"{"schema":2,"host":"h","captured_at":"","sockets":[],"warnings":[]}"#)
                .contains("schema 2")
        );
        let listen = entry("0.0.0.0:6379", State::Listen, None);
        let snapshot = Snapshot {
            schema: 1,
            host: "h".into(),
            captured_at: "2026-01-01T00:00:00Z".into(),
            sockets: vec![SocketRecord::from_entry(&listen)],
            warnings: Vec::new(),
        };
        let text = serde_json::to_string(&snapshot).expect("serializes");
        let text = text.replace("\"0.0.0.0\"", "\"not-an-ip\"");
        assert_eq!(
            err(&text),
            "sockets[0].local_address: \"not-an-ip\" is not an IP address"
        );
        // Not only listeners: a misspelt state is refused, not read as "no listener".
        let text = serde_json::to_string(&snapshot).expect("serializes");
        let text = text.replace("\"LISTEN\"", "\"listen\"");
        assert!(
            err(&text).starts_with("sockets[0].state: unknown state \"listen\" (one of LISTEN, "),
            "{}",
            err(&text)
        );
    }
}
