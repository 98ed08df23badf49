//! The JSON snapshot, schema 1, documented in README.md: what `portstat -l --json` writes is
//! what `audit --input` and `--baseline` read back, so the record types deserialize too.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::model::{Entry, NetnsLabel, Process};

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
