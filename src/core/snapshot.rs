//! The JSON snapshot, schema 1, documented in README.md: what `portstat -l --json` writes is
//! what `audit --input` and `--baseline` read back. These are its only types: the writer
//! streams [`Snapshot`]`<`[`Records`]`>` from the entries, the readers get
//! [`Snapshot`]`<Vec<SocketRecord>>`, and every value with a closed set of spellings is read
//! as the enum it was written from, so a snapshot that says `"listen"` is refused rather than
//! read as a host without listeners.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::core::firewall::eval::Reach;
use crate::core::firewall::judge::{ForwardTarget, Passage};
use crate::core::model::{
    Direction, Entry, Extensions, Family, NetnsLabel, OwnerNote, PortRange, Process, Proto,
    SocketMemory, State, TcpInfo, Timer, Zones, zone_of,
};
use crate::core::text::quoted;

pub const SCHEMA: u32 = 1;

/// One snapshot. `S` is how its sockets are held: read back, a `Vec` of records; written,
/// [`Records`], which serializes them one at a time straight from the entries, so 100k sockets
/// never exist twice in memory.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot<'a, S = Vec<SocketRecord<'a>>> {
    pub schema: u32,
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    /// RFC 3339, UTC; kept as written, and refused when it is not such a time.
    #[serde(borrow, deserialize_with = "rfc3339")]
    pub captured_at: Cow<'a, str>,
    pub sockets: S,
    #[serde(borrow)]
    pub warnings: Vec<Cow<'a, str>>,
}

impl<'a> Snapshot<'a, Records<'a>> {
    /// The snapshot of a listing, borrowing everything from it.
    pub fn of(
        host: &'a str,
        captured_at: &'a str,
        entries: &'a [Entry],
        warnings: &'a [String],
    ) -> Snapshot<'a, Records<'a>> {
        Snapshot {
            schema: SCHEMA,
            host: host.into(),
            captured_at: captured_at.into(),
            sockets: Records(entries, None, None, Extensions::NONE),
            warnings: warnings.iter().map(|w| Cow::from(w.as_str())).collect(),
        }
    }
}

/// The sockets of a snapshot being written: each entry becomes a [`SocketRecord`] as it is
/// serialized.
#[derive(Debug)]
/// With the interface names of the zones, when they were looked up.
/// And with what the firewall says of each entry, in order, when it was asked (`--firewall`).
/// And with the extra views asked for (`-i`, `-o`, `-m`).
pub struct Records<'a>(
    pub &'a [Entry],
    pub Option<&'a Zones>,
    pub Option<&'a [Passage]>,
    pub Extensions,
);

impl<'a> Snapshot<'a, Records<'a>> {
    /// With what the firewall says of each entry, in order (`--firewall`).
    pub fn with_firewall(mut self, passages: Option<&'a [Passage]>) -> Snapshot<'a, Records<'a>> {
        self.sockets.2 = passages;
        self
    }

    /// With `timer`, `tcp_info` and `memory` for the views asked for.
    pub fn with_extensions(mut self, extensions: Extensions) -> Snapshot<'a, Records<'a>> {
        self.sockets.3 = extensions;
        self
    }

    /// Zones (of link-local addresses) are written by interface name, from `zones`.
    pub fn with_zones(mut self, zones: &'a Zones) -> Snapshot<'a, Records<'a>> {
        self.sockets.1 = Some(zones);
        self
    }
}

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let zones = self.1;
        let passages = self.2;
        let extensions = self.3;
        serializer.collect_seq(self.0.iter().enumerate().map(|(index, entry)| {
            let mut record =
                SocketRecord::from_entry_in(entry, zones).with_extensions(entry, extensions);
            if let Some(passage) = passages.and_then(|all| all.get(index)) {
                record.firewall = passage.firewall.as_ref().map(Cow::Borrowed);
                record.forward = passage.forward.as_deref().map(Cow::Borrowed);
            }
            record
        }))
    }
}

/// One socket; the field order and names are the promise README.md makes to scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketRecord<'a> {
    #[serde(deserialize_with = "named")]
    pub proto: Proto,
    #[serde(deserialize_with = "named")]
    pub family: Family,
    #[serde(deserialize_with = "ip")]
    pub local_address: IpAddr,
    pub local_port: u16,
    #[serde(default, deserialize_with = "optional_ip")]
    pub remote_address: Option<IpAddr>,
    pub remote_port: Option<u16>,
    #[serde(deserialize_with = "named")]
    pub state: State,
    #[serde(deserialize_with = "named")]
    pub local_range: PortRange,
    #[serde(default, deserialize_with = "optional_named")]
    pub remote_range: Option<PortRange>,
    pub ephemeral: bool,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub local_service: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub remote_service: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "optional_named")]
    pub direction: Option<Direction>,
    pub uid: Option<u32>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub user: Option<Cow<'a, str>>,
    pub inode: u64,
    pub processes: Cow<'a, [Arc<Process>]>,
    #[serde(default, deserialize_with = "optional_named")]
    pub owner_note: Option<OwnerNote>,
    /// The socket's network namespace when several are shown (`--netns all`); `null`
    /// otherwise, and absent from snapshots older than it.
    #[serde(default)]
    pub netns: Option<Cow<'a, NetnsLabel>>,
    /// The zone of a link-local `local_address` (`fe80::1` bound on `eth0`: `"eth0"`), which
    /// the address needs to mean anything: its interface's name, or its index where the name
    /// is unknown. `null` for every other address, and absent from snapshots older than it.
    /// `local_address` stays the bare address, so that it parses as one.
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub local_zone: Option<Cow<'a, str>>,
    /// The same for `remote_address`.
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub remote_zone: Option<Cow<'a, str>>,
    /// `ss`'s Recv-Q: bytes not read yet; for a TCP listener, connections waiting to be
    /// accepted. `null` where the backend can't tell, and absent from snapshots older than it.
    #[serde(default)]
    pub recv_q: Option<u32>,
    /// `ss`'s Send-Q: bytes not acknowledged yet (TCP) or in the send buffer (UDP); for a TCP
    /// listener, its backlog.
    #[serde(default)]
    pub send_q: Option<u32>,
    /// With `-o` only: the running timer, `null` when none runs or the backend can't tell.
    /// Absent without `-o`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub timer: Option<Option<Timer>>,
    /// With `-i` only: TCP internals, `null` where there are none (UDP, TIME_WAIT, request
    /// sockets) or the backend can't read them.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub tcp_info: Option<Option<Cow<'a, TcpInfo>>>,
    /// With `-m` only: socket memory, `null` for TIME_WAIT and request sockets, and where the
    /// backend can't read it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub memory: Option<Option<Cow<'a, SocketMemory>>>,
    /// With `--firewall` only: whether new connections from beyond the host reach this
    /// listener (for a published port, through its forward). Written, never read back.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<Cow<'a, Reach>>,
    /// With `--firewall` only: where a forward takes this port's connections.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Cow<'a, ForwardTarget>>,
}

impl<'a> SocketRecord<'a> {
    /// The record of an entry, its zones by index (no interface names at hand).
    pub fn from_entry(entry: &'a Entry) -> SocketRecord<'a> {
        SocketRecord::from_entry_in(entry, None)
    }

    /// The record of an entry, its zones by interface name where `zones` knows it.
    pub fn from_entry_in(entry: &'a Entry, zones: Option<&Zones>) -> SocketRecord<'a> {
        let socket = &entry.socket;
        let zone = |address: SocketAddr| -> Option<Cow<'a, str>> {
            let index = zone_of(address)?;
            Some(
                match zones.and_then(|zones| zones.zone(socket.netns, address)) {
                    Some(name) => Cow::Owned(name.to_string()),
                    None => Cow::Owned(index.to_string()),
                },
            )
        };
        SocketRecord {
            proto: socket.proto,
            family: socket.family(),
            local_address: socket.local.ip(),
            local_port: socket.local.port(),
            remote_address: socket.remote.map(|remote| remote.ip()),
            remote_port: socket.remote.map(|remote| remote.port()),
            state: socket.state,
            local_range: entry.local_range,
            remote_range: entry.remote_range,
            ephemeral: entry.ephemeral,
            local_service: entry.local_service.map(Cow::from),
            remote_service: entry.remote_service.map(Cow::from),
            direction: entry.direction,
            uid: socket.uid,
            user: entry.user.as_deref().map(Cow::from),
            inode: socket.inode,
            processes: Cow::Borrowed(&entry.processes),
            owner_note: entry.owner_note,
            netns: entry.netns.as_deref().map(Cow::Borrowed),
            local_zone: zone(socket.local),
            remote_zone: socket.remote.and_then(zone),
            recv_q: socket.rx_queue,
            send_q: socket.tx_queue,
            timer: None,
            tcp_info: None,
            memory: None,
            firewall: None,
            forward: None,
        }
    }

    /// With the fields of the views asked for: each present, `null` where the socket has none.
    pub fn with_extensions(mut self, entry: &'a Entry, extensions: Extensions) -> SocketRecord<'a> {
        let details = entry.socket.details.as_deref();
        if extensions.timers {
            self.timer = Some(entry.socket.timer);
        }
        if extensions.info {
            self.tcp_info = Some(details.and_then(|d| d.tcp_info.as_ref()).map(Cow::Borrowed));
        }
        if extensions.memory {
            self.memory = Some(details.and_then(|d| d.memory.as_ref()).map(Cow::Borrowed));
        }
        self
    }
}

/// A field that is absent without its option and `null` with it: present, even as `null`, is
/// `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Reads a JSON document written by portstat. A value that is wrong is named by its path in
/// the document: `sockets[3].state: unknown state "listen" (one of LISTEN, UNCONN, ...)`;
/// text that is not JSON, or not the document at all, is `{not_it}: {serde_json's error}`.
/// The path is tracked only once the document is known to be wrong, so reading a good one
/// costs what serde_json alone does.
pub fn from_json<'de, T: Deserialize<'de>>(text: &'de str, not_it: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|error| {
        if !error.is_data() {
            return format!("{not_it}: {error}");
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
            Err(error) => where_wrong(error, not_it),
            Ok(_) => format!("{not_it}: {error}"),
        }
    })
}

fn where_wrong(error: serde_path_to_error::Error<serde_json::Error>, not_it: &str) -> String {
    let path = error.path().to_string();
    // No path, or one that starts with an index: the document itself is not the object.
    let whole = matches!(
        error.path().iter().next(),
        None | Some(serde_path_to_error::Segment::Seq { .. })
    );
    let inner = error.into_inner();
    if whole || !inner.is_data() {
        return format!("{not_it}: {inner}");
    }
    let located = inner.to_string();
    let place = format!(" at line {} column {}", inner.line(), inner.column());
    format!(
        "{path}: {}",
        located.strip_suffix(&place).unwrap_or(&located)
    )
}

/// The `schema` of a document that could not be read, if it has one: a document of another
/// schema is reported as that, not as whatever field it holds differently.
pub fn schema_of(text: &str) -> Option<u32> {
    #[derive(Deserialize)]
    struct Head {
        schema: u32,
    }
    serde_json::from_str::<Head>(text)
        .ok()
        .map(|head| head.schema)
}

/// The enums of the snapshot whose spellings are a closed set, and what a message calls them.
pub trait Named: Sized + for<'de> Deserialize<'de> {
    const WHAT: &'static str;
}

impl Named for Proto {
    const WHAT: &'static str = "proto";
}
impl Named for Family {
    const WHAT: &'static str = "family";
}
impl Named for State {
    const WHAT: &'static str = "state";
}
impl Named for PortRange {
    const WHAT: &'static str = "port range";
}
impl Named for Direction {
    const WHAT: &'static str = "direction";
}
impl Named for OwnerNote {
    const WHAT: &'static str = "owner note";
}

/// The error the enums' own (derived) `Deserialize` gives when run over one string, turned
/// into `unknown state "listen" (one of LISTEN, UNCONN, ...)` by [`NameVisitor`].
#[derive(Debug)]
enum NameError {
    Unknown {
        name: String,
        expected: &'static [&'static str],
    },
    Other(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Unknown { name, expected } => {
                write!(f, "{} (one of {})", quoted(name), expected.join(", "))
            }
            NameError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for NameError {}

impl de::Error for NameError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        NameError::Other(message.to_string())
    }

    fn unknown_variant(name: &str, expected: &'static [&'static str]) -> Self {
        NameError::Unknown {
            name: name.to_string(),
            expected,
        }
    }
}

/// Reads one of a [`Named`] enum's spellings without copying the string.
struct NameVisitor<T>(PhantomData<T>);

impl<T: Named> Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} name", T::WHAT)
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<T, E> {
        let one = de::value::StrDeserializer::<NameError>::new(name);
        T::deserialize(one).map_err(|error| match error {
            NameError::Unknown { .. } => E::custom(format!("unknown {} {error}", T::WHAT)),
            NameError::Other(message) => E::custom(message),
        })
    }
}

/// `deserialize_with` for a [`Named`] enum: its derived spellings, with an error that lists
/// them.
pub fn named<'de, D: Deserializer<'de>, T: Named>(deserializer: D) -> Result<T, D::Error> {
    deserializer.deserialize_str(NameVisitor(PhantomData))
}

/// [`named`], or `null`.
pub fn optional_named<'de, D: Deserializer<'de>, T: Named>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_option(Optional(NameVisitor(PhantomData)))
}

/// An address as written (`127.0.0.1`, `::ffff:10.0.0.5`, no brackets).
struct IpVisitor;

impl Visitor<'_> for IpVisitor {
    type Value = IpAddr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP address")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<IpAddr, E> {
        text.parse()
            .map_err(|_| E::custom(format!("{} is not an IP address", quoted(text))))
    }
}

/// `deserialize_with` for an address: `"localhost" is not an IP address`.
pub fn ip<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpAddr, D::Error> {
    deserializer.deserialize_str(IpVisitor)
}

/// [`ip`], or `null`.
pub fn optional_ip<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<IpAddr>, D::Error> {
    deserializer.deserialize_option(Optional(IpVisitor))
}

/// A string, borrowed from the document where it holds no escapes.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(text.to_string()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(text))
    }
}

fn optional_text<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    deserializer.deserialize_option(Optional(TextVisitor))
}

/// `captured_at`: kept as written, so it is shown as the snapshot has it.
fn rfc3339<'de: 'a, 'a, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'a, str>, D::Error> {
    let text = deserializer.deserialize_str(TextVisitor)?;
    match humantime::parse_rfc3339(&text) {
        Ok(_) => Ok(text),
        Err(_) => Err(de::Error::custom(format!(
            "{} is not an RFC 3339 time (like 2026-11-25T08:14:08Z)",
            quoted(&text)
        ))),
    }
}

/// `null`, or what the inner visitor reads.
struct Optional<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Optional<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self.0).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{ContainerLabel, Socket};

    /// Entries that between them hold every variant of every enum a record carries.
    fn every_variant() -> Vec<Entry> {
        let states = State::ALL.into_iter();
        let notes = [
            None,
            Some(OwnerNote::Kernel),
            Some(OwnerNote::AcceptQueue),
            Some(OwnerNote::Hidden),
            Some(OwnerNote::Exited),
            Some(OwnerNote::NotFound),
        ];
        let directions = [None, Some(Direction::Inbound), Some(Direction::Outbound)];
        let addresses = [
            ("127.0.0.1:22", Some("127.0.0.1:80")),
            ("[::1]:8080", Some("[::ffff:10.0.0.5]:60000")),
            ("0.0.0.0:60000", None),
            ("[::]:443", None),
            ("10.0.0.1:50000", Some("10.0.0.2:5432")),
        ];
        states
            .enumerate()
            .map(|(index, state)| {
                let proto = if index % 2 == 0 {
                    Proto::Tcp
                } else {
                    Proto::Udp
                };
                let (local, remote) = addresses[index % addresses.len()];
                let socket = Socket::example(proto, local, remote, state);
                let mut entry = Entry::example(
                    socket,
                    vec![Process::example(100 + index as u32, "server", Some("root"))],
                );
                entry.owner_note = notes[index % notes.len()];
                entry.direction = directions[index % directions.len()];
                entry.local_service = (index % 3 == 0).then_some("ssh");
                entry.remote_service = (index % 4 == 1).then_some("http");
                entry.user = (index % 2 == 0).then(|| "root".into());
                entry.ephemeral = index % 5 == 0;
                if index == 3 {
                    entry.netns = Some(Arc::new(NetnsLabel {
                        inode: 4026531840,
                        name: Some("blue".into()),
                        container: Some(ContainerLabel {
                            runtime: "docker".into(),
                            id: "0123456789abcdef".into(),
                        }),
                        host: false,
                    }));
                }
                entry
            })
            .collect()
    }

    fn written(entries: &[Entry]) -> String {
        let warnings = ["owners of 1 sockets hidden: run as root".to_string()];
        let snapshot = Snapshot::of("web-1", "2026-11-25T08:14:08Z", entries, &warnings);
        serde_json::to_string(&snapshot).expect("serializes")
    }

    #[test]
    fn every_variant_written_reads_back_equal() {
        let entries = every_variant();
        let text = written(&entries);
        let read: Snapshot = from_json(&text, "not a snapshot").expect("reads back");
        assert_eq!(read.schema, SCHEMA);
        assert_eq!(read.host, "web-1");
        assert_eq!(read.captured_at, "2026-11-25T08:14:08Z");
        assert_eq!(read.warnings, ["owners of 1 sockets hidden: run as root"]);
        let expected: Vec<SocketRecord> = entries.iter().map(SocketRecord::from_entry).collect();
        assert_eq!(read.sockets, expected);
        // Strings without escapes are borrowed from the text: no allocation per socket.
        assert!(matches!(
            read.sockets[0].local_service,
            Some(Cow::Borrowed("ssh"))
        ));
        assert!(matches!(read.sockets[0].user, Some(Cow::Borrowed("root"))));
        // Every spelling of every enum was written, and came back as itself.
        let seen = |f: fn(&SocketRecord) -> String| {
            let mut all: Vec<String> = read.sockets.iter().map(f).collect();
            all.sort();
            all.dedup();
            all.len()
        };
        assert_eq!(seen(|r| r.state.as_str().into()), State::ALL.len());
        assert_eq!(seen(|r| format!("{:?}", r.owner_note)), 6);
        assert_eq!(seen(|r| format!("{:?}", r.direction)), 3);
        assert_eq!(seen(|r| format!("{:?}", r.proto)), 2);
        assert_eq!(seen(|r| format!("{:?}", r.family)), 2);
        assert_eq!(seen(|r| format!("{:?}", r.local_range)), 3);
        assert_eq!(seen(|r| format!("{:?}", r.remote_range)), 4);
        // Written again, the records are the same bytes.
        let again = serde_json::to_string(&read).expect("serializes");
        assert_eq!(again, text);
    }

    #[test]
    fn enums_are_written_as_their_names() {
        for state in State::ALL {
            assert_eq!(json(&state), format!("\"{}\"", state.as_str()));
        }
        for proto in [Proto::Tcp, Proto::Udp] {
            assert_eq!(json(&proto), format!("\"{}\"", proto.as_str()));
        }
        for family in [Family::Ipv4, Family::Ipv6] {
            assert_eq!(json(&family), format!("\"{}\"", family.as_str()));
        }
        for range in [
            PortRange::WellKnown,
            PortRange::Registered,
            PortRange::Dynamic,
        ] {
            assert_eq!(json(&range), format!("\"{}\"", range.as_str()));
        }
        for direction in [Direction::Inbound, Direction::Outbound] {
            assert_eq!(json(&direction), format!("\"{}\"", direction.as_str()));
        }
        for note in [
            OwnerNote::Kernel,
            OwnerNote::AcceptQueue,
            OwnerNote::Hidden,
            OwnerNote::Exited,
            OwnerNote::NotFound,
        ] {
            assert_eq!(json(&note), format!("\"{}\"", note.code()));
        }
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).expect("serializes")
    }

    /// The written snapshot of [`every_variant`] with the first `"field":"from"` made `to`.
    fn with(field: &str, from: &str, to: &str) -> (String, usize) {
        let text = written(&every_variant());
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let index = value["sockets"]
            .as_array()
            .expect("sockets")
            .iter()
            .position(|s| s[field] == from)
            .expect("a socket has it");
        let needle = format!("\"{field}\":\"{from}\"");
        let at = text.find(&needle).expect("written as expected");
        let mut changed = text.clone();
        changed.replace_range(at..at + needle.len(), &format!("\"{field}\":{to}"));
        (changed, index)
    }

    #[test]
    fn bogus_values_are_refused_naming_their_path() {
        let cases = [
            (
                "state",
                "LISTEN",
                "\"listen\"",
                "unknown state \"listen\" (one of LISTEN, UNCONN, ESTABLISHED, SYN_SENT, \
                 SYN_RECV, NEW_SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, \
                 LAST_ACK, CLOSING)",
            ),
            (
                "proto",
                "tcp",
                "\"sctp\"",
                "unknown proto \"sctp\" (one of tcp, udp)",
            ),
            (
                "family",
                "ipv4",
                "\"inet\"",
                "unknown family \"inet\" (one of ipv4, ipv6)",
            ),
            (
                "local_range",
                "registered",
                "\"Registered\"",
                "unknown port range \"Registered\" (one of well-known, registered, dynamic)",
            ),
            (
                "remote_range",
                "dynamic",
                "\"ephemeral\"",
                "unknown port range \"ephemeral\" (one of well-known, registered, dynamic)",
            ),
            (
                "direction",
                "inbound",
                "\"in\"",
                "unknown direction \"in\" (one of inbound, outbound)",
            ),
            (
                "owner_note",
                "hidden",
                "\"Hidden\"",
                "unknown owner note \"Hidden\" (one of kernel, accept-queue, hidden, exited, \
                 not-found)",
            ),
            (
                "local_address",
                "::1",
                "\"localhost\"",
                "\"localhost\" is not an IP address",
            ),
            (
                "remote_address",
                "127.0.0.1",
                "\"10.0.0.256\"",
                "\"10.0.0.256\" is not an IP address",
            ),
            (
                "state",
                "LISTEN",
                "10",
                "invalid type: integer `10`, expected a state name",
            ),
        ];
        for (field, from, to, why) in cases {
            let (text, index) = with(field, from, to);
            let error = from_json::<Snapshot>(&text, "not a snapshot").expect_err(&text);
            assert_eq!(error, format!("sockets[{index}].{field}: {why}"));
        }
    }

    #[test]
    fn captured_at_must_be_an_rfc_3339_time() {
        let text = written(&every_variant());
        for bogus in [
            "",
            "yesterday",
            "2026-11-25 08:14:08",
            "2026-13-25T08:14:08Z",
        ] {
            let changed = text.replace("2026-11-25T08:14:08Z", bogus);
            let error = from_json::<Snapshot>(&changed, "not a snapshot").expect_err(bogus);
            assert_eq!(
                error,
                format!(
                    "captured_at: {bogus:?} is not an RFC 3339 time (like 2026-11-25T08:14:08Z)"
                )
            );
        }
    }

    #[test]
    fn long_bogus_values_are_quoted_short() {
        let long = "x".repeat(200);
        let (text, index) = with("state", "LISTEN", &format!("\"{long}\""));
        let error = from_json::<Snapshot>(&text, "not a snapshot").expect_err("a long state");
        let shown = "x".repeat(80);
        assert!(
            error.starts_with(&format!(
                "sockets[{index}].state: unknown state \"{shown}\"... (200 bytes) (one of LISTEN, "
            )),
            "{error}"
        );
    }

    #[test]
    fn text_that_is_not_the_document_says_so() {
        let not_it = |text: &str| from_json::<Snapshot>(text, "not a snapshot").expect_err(text);
        assert!(not_it("{").starts_with("not a snapshot: EOF while parsing"));
        assert!(not_it("[1,2]").starts_with("not a snapshot: invalid type"));
        assert!(not_it(r#"{"schema":1}"#).starts_with("not a snapshot: missing field"));
        let text = written(&every_variant());
        assert!(not_it(&format!("{text} x")).starts_with("not a snapshot: trailing characters"));
        assert_eq!(schema_of(r#"{"schema":2,"other":[]}"#), Some(2));
        assert_eq!(schema_of("{"), None);
    }
}
