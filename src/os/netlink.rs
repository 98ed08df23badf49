//! Linux: the kernel's socket tables over sock_diag netlink (`NETLINK_SOCK_DIAG`), the interface
//! `ss` reads.
//!
//! One `SOCK_DIAG_BY_FAMILY` dump request (`inet_diag_req_v2`, `NLM_F_DUMP`) per wanted table
//! (tcp, tcp6, udp, udp6), or one `TCPDIAG_GETSOCK` request for both TCP tables (see
//! [`both_tcp_request`]), asking the kernel only for the states the query can show; the kernel
//! answers with one `inet_diag_msg` per socket (`inet_sk_diag_fill`, `inet_twsk_diag_fill` and
//! `inet_req_diag_fill` in `net/ipv4/inet_diag.c`), batched into datagrams of at most 32 KiB, and
//! ends the dump with `NLMSG_DONE`. Unlike `/proc/net/tcp`, whose every read walks the whole
//! established hash table again, a dump walks it once.
//!
//! Each message becomes the [`Socket`] the procfs backend would read from the same socket's
//! `/proc/net` line: the kernel fills both from the same fields. Two fields differ at the source:
//! a listener's `tx_queue` is its backlog (`/proc/net/tcp` prints 0), and timers come in
//! milliseconds rather than clock ticks.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use netlink_packet_core::{
    DoneBuffer, ErrorBuffer, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_CONG, INET_DIAG_INFO, INET_DIAG_SKMEMINFO, INET_DIAG_SKV6ONLY,
    IPPROTO_TCP, IPPROTO_UDP, SOCK_DIAG_BY_FAMILY, TCP_LISTEN,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseBuffer, SocketId, SocketIdBuffer, StateFlags,
};
use netlink_packet_utils::ParseableParametrized;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket as NetlinkSocket, SocketAddr as NetlinkAddr};

use super::bytecode;
use super::kernel::{EVERY_STATE, kernel_state, state_of};
use crate::core::model::TABLES;
use crate::core::model::{
    Extensions, Proto, Saves, Socket, SocketDetails, SocketMemory, State, StateSet, TableRead,
    TableRequest, TcpInfo, Timer, TimerKind, needs_zone,
};

/// The kernel fills a dump datagram up to the largest receive buffer seen, capped at 32 KiB
/// (`netlink_recvmsg`); twice that leaves room, and a datagram that still does not fit is an
/// error, never silently cut.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Netlink messages are padded to 4-byte boundaries.
const ALIGN: usize = 4;

/// A wanted table the kernel would not dump.
#[derive(Debug)]
pub struct Failure {
    /// Its `/proc/net` name: `tcp`, `tcp6`, `udp`, `udp6`.
    pub table: &'static str,
    /// That table alone, as [`TableRequest`], to read it some other way.
    pub only: TableRequest,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn warning(&self) -> String {
        format!(
            "sock_diag netlink could not read {} ({:#})",
            self.table, self.error
        )
    }
}

/// Reads the wanted tables. A table the kernel would not dump (its sock_diag module missing,
/// say) is a warning and the others are still read; it is an error when every wanted table
/// failed. Asking for no table at all reads nothing and succeeds.
pub fn read(wanted: TableRequest) -> Result<TableRead> {
    let (mut read, failures) = read_tables(wanted)?;
    read.warnings.extend(failures.iter().map(Failure::warning));
    Ok(read)
}

/// Like [`read`], but hands back the tables that failed instead of warning about them, so the
/// caller can read them elsewhere.
pub fn read_tables(wanted: TableRequest) -> Result<(TableRead, Vec<Failure>)> {
    let mut read = TableRead {
        inodes_known: true,
        ..TableRead::default()
    };
    let walks = walks(&wanted);
    if walks.is_empty() {
        return Ok((read, Vec::new()));
    }
    // Two walks of the established hash table (one per family, when time is what a request
    // saves) run side by side on two threads.
    let heavy = walks
        .iter()
        .filter(|walk| walk.proto() == Proto::Tcp && walks_connections(&wanted))
        .count();
    let wanted = &wanted;
    let bytecode = wanted.filter.as_deref().and_then(bytecode::compile);
    let bytecode = bytecode.as_deref();
    // Sequence numbers three apart: a walk of both TCP tables that fails is asked again as
    // two, on the same link, and each request's answer must be told from another's.
    let numbered = (1..).step_by(3).zip(walks.iter().copied());
    let mut outcomes: Vec<Walked> = if heavy >= 2 {
        let walk_alone = move |sequence: u32, walk: Walk| -> Vec<Walked> {
            match Link::open().context("could not open a sock_diag netlink socket") {
                Ok(mut link) => walk.run(&mut link, sequence, wanted, bytecode),
                Err(error) => walk.failed(error),
            }
        };
        std::thread::scope(|scope| {
            // A table whose thread cannot be had (a process limit, no address space for its
            // stack) is dumped here, on the calling thread, while the others run.
            let handles: Vec<_> = numbered
                .map(|(sequence, walk)| {
                    let handle = std::thread::Builder::new()
                        .spawn_scoped(scope, move || walk_alone(sequence, walk))
                        .ok();
                    (sequence, walk, handle)
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(sequence, walk, handle)| match handle {
                    Some(handle) => handle
                        .join()
                        .unwrap_or_else(|_| walk.failed(anyhow!("the dump thread failed"))),
                    None => walk_alone(sequence, walk),
                })
                .collect()
        })
    } else {
        let mut link = Link::open().context("could not open a sock_diag netlink socket")?;
        numbered
            .flat_map(|(sequence, walk)| walk.run(&mut link, sequence, wanted, bytecode))
            .collect()
    };

    // The largest table's vector becomes the result and the others are appended to it: it
    // usually has room already (vectors grow by doubling), so at 100k sockets the tables are
    // not held twice, as copying them all into a new vector would.
    let largest = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, walked)| {
            Some((walked.dumped.as_ref().ok()?.sockets.capacity(), index))
        })
        .max()
        .map(|(_, index)| index);
    if let Some(Some(Walked {
        dumped: Ok(dumped), ..
    })) = largest.map(|index| outcomes.get_mut(index))
    {
        read.sockets = std::mem::take(&mut dumped.sockets);
    }
    let mut failures = Vec::new();
    let mut any_read = false;
    for Walked { walk, dumped } in outcomes {
        let table = walk.tables();
        match dumped {
            Ok(mut dumped) => {
                any_read = true;
                read.sockets.append(&mut dumped.sockets);
                if dumped.unknown_states > 0 {
                    read.warnings.push(format!(
                        "{table}: {} sockets in a state portstat does not know were skipped \
                         (sock_diag netlink)",
                        dumped.unknown_states
                    ));
                }
                if dumped.malformed > 0 {
                    read.warnings.push(format!(
                        "{table}: {} malformed sock_diag netlink messages were skipped",
                        dumped.malformed
                    ));
                }
            }
            Err(error) => failures.push(Failure {
                table,
                only: walk.only(wanted),
                error,
            }),
        }
    }

    if !any_read && !failures.is_empty() {
        let failed = failures.len();
        let each: Vec<String> = failures
            .iter()
            .map(|failure| format!("{}: {:#}", failure.table, failure.error))
            .collect();
        return Err(anyhow!("{}", each.join("; ")).context(format!(
            "could not read any socket table over sock_diag netlink ({failed} failed)"
        )));
    }
    fill_request_uids(&mut read.sockets);
    Ok((read, failures))
}

/// One dump request's worth of the wanted tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// One of [`TABLES`]: its name, protocol and whether it is IPv6's.
    Table(&'static str, Proto, bool),
    /// Both TCP tables in one walk of the kernel's TCP hash tables (see [`both_tcp_request`]),
    /// where two requests, one per family, would each walk all of them.
    BothTcp,
}

/// The walks that read the wanted tables, in [`TABLES`]' order. Both TCP tables are one walk,
/// except when the request saves time and asks for connections: two walks, one per family,
/// then finish sooner side by side than the one, on a machine with a core to spare.
fn walks(wanted: &TableRequest) -> Vec<Walk> {
    let mut walks: Vec<Walk> = TABLES
        .into_iter()
        .filter(|&(_, proto, ipv6)| wanted.wants(proto, ipv6))
        .map(|(table, proto, ipv6)| Walk::Table(table, proto, ipv6))
        .collect();
    let apart = wanted.saves == Saves::Time && walks_connections(wanted);
    if wanted.wants(Proto::Tcp, false) && wanted.wants(Proto::Tcp, true) && !apart {
        walks.retain(|walk| walk.proto() != Proto::Tcp);
        walks.insert(0, Walk::BothTcp);
    }
    walks
}

/// Whether the TCP tables are asked for more than listeners: the kernel then walks its whole
/// established hash table, every socket of every namespace, for each request.
fn walks_connections(wanted: &TableRequest) -> bool {
    state_mask(Proto::Tcp, wanted.states) & !(1 << TCP_LISTEN) != 0
}

/// What one request read.
struct Walked {
    walk: Walk,
    dumped: Result<Dumped>,
}

impl Walk {
    fn proto(self) -> Proto {
        match self {
            Walk::Table(_, proto, _) => proto,
            Walk::BothTcp => Proto::Tcp,
        }
    }

    /// The `/proc/net` names of the tables it reads.
    fn tables(self) -> &'static str {
        match self {
            Walk::Table(table, _, _) => table,
            Walk::BothTcp => "tcp and tcp6",
        }
    }

    /// Just its tables, as [`TableRequest`], to read them some other way.
    fn only(self, wanted: &TableRequest) -> TableRequest {
        match self {
            Walk::Table(_, proto, ipv6) => wanted.only(proto, ipv6),
            Walk::BothTcp => TableRequest {
                udp: false,
                ..wanted.clone()
            },
        }
    }

    /// The two single-family walks that read what [`Walk::BothTcp`] does.
    fn apart(self) -> Vec<Walk> {
        match self {
            Walk::BothTcp => TABLES
                .into_iter()
                .filter(|&(_, proto, _)| proto == Proto::Tcp)
                .map(|(table, proto, ipv6)| Walk::Table(table, proto, ipv6))
                .collect(),
            table => vec![table],
        }
    }

    /// Dumps its tables over `link`, asking with sequence numbers from `sequence` on (three at
    /// most). A kernel that refuses the walk of both TCP tables (it is the older request, and
    /// a kernel could drop it) is asked for each table alone.
    fn run(
        self,
        link: &mut Link,
        sequence: u32,
        wanted: &TableRequest,
        bytecode: Option<&[u8]>,
    ) -> Vec<Walked> {
        match dump(link, sequence, self, wanted, bytecode) {
            Err(_) if self == Walk::BothTcp => (sequence + 1..)
                .zip(self.apart())
                .flat_map(|(sequence, table)| table.run(link, sequence, wanted, bytecode))
                .collect(),
            dumped => vec![Walked { walk: self, dumped }],
        }
    }

    /// Every table it reads failed with `error`.
    fn failed(self, error: anyhow::Error) -> Vec<Walked> {
        self.apart()
            .into_iter()
            .map(|walk| Walked {
                walk,
                dumped: Err(anyhow!("{error:#}")),
            })
            .collect()
    }

    /// Its dump request, for the kernel states in `states`.
    fn request(
        self,
        sequence: u32,
        states: u32,
        bytecode: Option<&[u8]>,
        extensions: Extensions,
    ) -> Vec<u8> {
        match self {
            Walk::Table(_, proto, ipv6) => {
                request(sequence, proto, ipv6, states, bytecode, extensions)
            }
            Walk::BothTcp => both_tcp_request(sequence, states, bytecode, extensions),
        }
    }
}

/// One table as dumped: all of it or, on error, none of it.
struct Dumped {
    sockets: Vec<Socket>,
    unknown_states: usize,
    malformed: usize,
}

fn dump(
    link: &mut Link,
    sequence: u32,
    walk: Walk,
    wanted: &TableRequest,
    bytecode: Option<&[u8]>,
) -> Result<Dumped> {
    let mut sockets = Vec::new();
    let proto = walk.proto();
    let states = state_mask(proto, wanted.states);
    let mut dump = Dump::new(sequence, proto, &mut sockets);
    if states != 0 {
        let asked = link.dump(
            &walk.request(sequence, states, bytecode, wanted.extensions),
            &mut dump,
        );
        match asked {
            // A kernel older than an op the program uses refuses it: the query filters anyway,
            // so the same dump without one loses nothing.
            Err(error) if bytecode.is_some() && errno(&error) == Some(libc::EINVAL) => link.dump(
                &walk.request(sequence, states, None, wanted.extensions),
                &mut dump,
            )?,
            asked => asked?,
        }
    }
    let (unknown_states, malformed) = (dump.unknown_states, dump.malformed);
    Ok(Dumped {
        sockets,
        unknown_states,
        malformed,
    })
}

fn errno(error: &anyhow::Error) -> Option<i32> {
    error
        .downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
}

/// The request's `idiag_states` bitmask: bit N asks for kernel state N (see
/// [`kernel_state`]). An empty set asks for every state `/proc/net` shows.
fn state_mask(proto: Proto, states: StateSet) -> u32 {
    if states.is_empty() {
        return EVERY_STATE;
    }
    states
        .iter()
        .filter_map(|state| kernel_state(proto, state))
        .fold(0, |mask, number| mask | 1 << number)
}

/// One `SOCK_DIAG_BY_FAMILY` dump request for a table, with the filter program the kernel runs
/// on each socket, if any.
fn request(
    sequence: u32,
    proto: Proto,
    ipv6: bool,
    states: u32,
    bytecode: Option<&[u8]>,
    extensions: Extensions,
) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = sequence;
    let inet = InetRequest {
        family: if ipv6 { AF_INET6 } else { AF_INET },
        protocol: match proto {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        },
        extensions: extension_flags(proto, extensions),
        // The crate names bits 1 to 11; the kernel adds TCP_NEW_SYN_RECV (12) to SYN_RECV itself.
        states: StateFlags::from_bits_truncate(states),
        socket_id: if ipv6 {
            SocketId::new_v6()
        } else {
            SocketId::new_v4()
        },
    };
    let mut message = NetlinkMessage::new(header, SockDiagMessage::InetRequest(inet).into());
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    if let Some(code) = bytecode.filter(|code| !code.is_empty()) {
        append_bytecode(&mut bytes, code);
    }
    bytes
}

/// `TCPDIAG_GETSOCK` (`linux/inet_diag.h`): the request before `SOCK_DIAG_BY_FAMILY`.
const TCPDIAG_GETSOCK: u16 = 18;

/// One dump request for both TCP tables: the older `TCPDIAG_GETSOCK` with its `inet_diag_req`,
/// which the kernel still answers (`inet_diag_rcv_msg_compat`) by dumping with `sdiag_family`
/// AF_UNSPEC, every family in one walk. The hash tables are shared by every namespace and sized
/// by the host's memory (262,144 established buckets at 24 GiB), so a walk costs milliseconds
/// even where there are no sockets; one walk instead of two is about 30% less CPU for a TCP dump
/// at 10k sockets. The answers are `inet_diag_msg`s, typed `TCPDIAG_GETSOCK`; states,
/// extensions and the filter program mean what they mean in a v2 request.
fn both_tcp_request(
    sequence: u32,
    states: u32,
    bytecode: Option<&[u8]>,
    extensions: Extensions,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + 60);
    // nlmsghdr: length (set once the message is whole), type, flags, sequence, port 0.
    bytes.extend(0u32.to_ne_bytes());
    bytes.extend(TCPDIAG_GETSOCK.to_ne_bytes());
    bytes.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    bytes.extend(sequence.to_ne_bytes());
    bytes.extend(0u32.to_ne_bytes());
    // inet_diag_req: idiag_family (a dump ignores it), idiag_src_len, idiag_dst_len,
    // idiag_ext; a zeroed inet_diag_sockid (every socket); idiag_states; idiag_dbs (unused).
    bytes.extend([
        AF_INET,
        0,
        0,
        extension_flags(Proto::Tcp, extensions).bits(),
    ]);
    bytes.extend([0; 48]);
    bytes.extend(states.to_ne_bytes());
    bytes.extend(0u32.to_ne_bytes());
    let length = (bytes.len() as u32).to_ne_bytes();
    bytes[..4].copy_from_slice(&length);
    if let Some(code) = bytecode.filter(|code| !code.is_empty()) {
        append_bytecode(&mut bytes, code);
    }
    bytes
}

/// The attributes the kernel is asked to add to each socket (`idiag_ext`): only what `-i` and
/// `-m` show, so the default listing's dump is what it always was. UDP has no `tcp_info` nor a
/// congestion algorithm.
fn extension_flags(proto: Proto, extensions: Extensions) -> ExtensionFlags {
    let mut flags = ExtensionFlags::empty();
    if extensions.info && proto == Proto::Tcp {
        flags |= ExtensionFlags::INFO | ExtensionFlags::CONG;
    }
    if extensions.memory {
        flags |= ExtensionFlags::SKMEMINFO;
    }
    flags
}

/// `INET_DIAG_REQ_BYTECODE`: the attribute that carries the filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;

/// Appends the program as the request's attribute. Programs are made of 4-byte ops, so the
/// attribute needs no padding; [`bytecode::compile`] keeps them far below the 64 KiB an
/// attribute's length can say.
fn append_bytecode(request: &mut Vec<u8>, code: &[u8]) {
    let attribute_length = (4 + code.len()) as u16;
    request.extend(attribute_length.to_ne_bytes());
    request.extend(INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    request.extend(code);
    // The netlink header's first field is the whole message's length.
    let total = (request.len() as u32).to_ne_bytes();
    if let Some(header) = request.get_mut(..4) {
        header.copy_from_slice(&total);
    }
}

/// A sock_diag netlink socket connected to the kernel, with its receive buffer.
struct Link {
    socket: NetlinkSocket,
    buffer: Vec<u8>,
}

impl Link {
    fn open() -> io::Result<Link> {
        let mut socket = NetlinkSocket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&NetlinkAddr::new(0, 0))?;
        Ok(Link {
            socket,
            buffer: vec![0; RECEIVE_BUFFER],
        })
    }

    /// Sends one dump request (see [`request`]) and reads its answer to the end (`NLMSG_DONE`)
    /// into `dump`.
    fn dump(&mut self, request: &[u8], dump: &mut Dump<'_>) -> Result<()> {
        self.socket
            .send(request, 0)
            .context("could not send the dump request")?;
        loop {
            // MSG_TRUNC: the datagram's real length, even when it did not fit.
            let length = match self.socket.recv(&mut &mut self.buffer[..], libc::MSG_TRUNC) {
                Ok(length) => length,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).context("could not receive the dump"),
            };
            if length > self.buffer.len() {
                bail!(
                    "a {length}-byte netlink datagram did not fit the {}-byte receive buffer",
                    self.buffer.len()
                );
            }
            let datagram = self.buffer.get(..length).unwrap_or_default();
            if datagram.is_empty() {
                bail!("the kernel ended the dump without NLMSG_DONE");
            }
            if dump.take(datagram)? {
                return Ok(());
            }
        }
    }
}

/// One table's dump as it arrives.
struct Dump<'a> {
    sequence: u32,
    proto: Proto,
    sockets: &'a mut Vec<Socket>,
    unknown_states: usize,
    malformed: usize,
    /// The congestion algorithms seen so far, each once: thousands of sockets share `cubic`.
    congestion: Vec<Arc<str>>,
}

impl<'a> Dump<'a> {
    fn new(sequence: u32, proto: Proto, sockets: &'a mut Vec<Socket>) -> Dump<'a> {
        Dump {
            sequence,
            proto,
            sockets,
            unknown_states: 0,
            malformed: 0,
            congestion: Vec::new(),
        }
    }

    /// Takes one datagram's messages; `true` once the dump is done. Messages of another request
    /// (left over from a dump abandoned midway) are ignored. A message that can't be a socket
    /// is counted and skipped; broken framing, `NLMSG_ERROR` or a failed `NLMSG_DONE` fail the
    /// dump.
    fn take(&mut self, mut datagram: &[u8]) -> Result<bool> {
        while !datagram.is_empty() {
            let message = NetlinkBuffer::new_checked(datagram)
                .map_err(|error| anyhow!("malformed netlink message: {error}"))?;
            let payload = message.payload();
            if message.sequence_number() == self.sequence {
                match message.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        let error = ErrorBuffer::new_checked(payload)
                            .map_err(|error| anyhow!("malformed NLMSG_ERROR: {error}"))?;
                        // Code 0 is an acknowledgement, which a dump does not ask for.
                        if let Some(code) = error.code() {
                            return Err(os_error(code.get()))
                                .context("the kernel refused the dump");
                        }
                    }
                    NLMSG_DONE => {
                        let done = DoneBuffer::new_checked(payload)
                            .map_err(|error| anyhow!("malformed NLMSG_DONE: {error}"))?;
                        if done.code() < 0 {
                            return Err(os_error(done.code()))
                                .context("the kernel ended the dump with an error");
                        }
                        return Ok(true);
                    }
                    NLMSG_OVERRUN => bail!("the kernel reported a netlink overrun"),
                    SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                        match socket_of(self.proto, payload, &mut self.congestion) {
                            Ok(Some(socket)) => self.sockets.push(socket),
                            Ok(None) => self.unknown_states += 1,
                            Err(()) => self.malformed += 1,
                        }
                    }
                    // No other message type answers a dump; nothing to learn from one.
                    _ => {}
                }
            }
            let step = (message.length() as usize).next_multiple_of(ALIGN);
            datagram = datagram.get(step..).unwrap_or_default();
        }
        Ok(false)
    }
}

/// The kernel sends errors as negative errno values.
fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

/// One `inet_diag_msg` as a socket: `Ok(None)` for a state portstat does not know, `Err` for a
/// message too short or of another address family.
///
/// The header is read in place through the crate's view, `InetResponseBuffer`, and its
/// attribute iterator; addresses, ports and the bound interface through the crate's owned
/// `SocketId::parse_with_param` (the `ParseableParametrized` trait of `netlink-packet-utils`),
/// which copies them out of the `SocketIdBuffer` without allocating (only its error, for an
/// unknown family, is a string). Not `InetResponseHeader::parse`: its `Timer` drops a
/// TIME_WAIT socket's expiry, which `/proc/net/tcp` shows; nor `InetResponse`, which would
/// collect every attribute (`Nla::parse` allocates for each kind it does not name) when only
/// one is wanted. So a socket costs no allocation.
pub(super) fn socket_of(
    proto: Proto,
    payload: &[u8],
    congestion: &mut Vec<Arc<str>>,
) -> Result<Option<Socket>, ()> {
    let message = InetResponseBuffer::new_checked(payload).map_err(|_| ())?;
    let bytes = message.socket_id();
    let id = SocketIdBuffer::new_checked(&bytes).map_err(|_| ())?;
    let id = SocketId::parse_with_param(&id, message.family()).map_err(|_| ())?;
    let local = zoned(id.source_address, id.source_port, id.interface_id);
    let remote = zoned(id.destination_address, id.destination_port, id.interface_id);
    let Some(state) = state_of(proto, message.state()) else {
        return Ok(None);
    };
    let attributes = attributes(&message, congestion);
    Ok(Some(Socket {
        proto,
        local,
        // As procfs: no peer when the remote end is the unspecified address and port 0.
        remote: (!(remote.ip().is_unspecified() && remote.port() == 0)).then_some(remote),
        state,
        tx_queue: Some(message.send_queue()),
        rx_queue: Some(message.recv_queue()),
        timer: TimerKind::of(message.timer()).map(|kind| Timer {
            kind,
            expires_ms: message.expires(),
            retrans: message.retransmits(),
        }),
        uid: Some(message.uid()),
        inode: message.inode().into(),
        holders: None,
        v6only: attributes.v6only,
        netns: 0,
        cookie: cookie_of(id.cookie),
        details: attributes.details,
    }))
}

/// `idiag_cookie`: two 32-bit halves in the host's byte order, the low one first.
fn cookie_of(bytes: [u8; 8]) -> u64 {
    let [a, b, c, d, e, f, g, h] = bytes;
    u64::from(u32::from_ne_bytes([a, b, c, d])) | u64::from(u32::from_ne_bytes([e, f, g, h])) << 32
}

/// What the attributes after an `inet_diag_msg` hold.
#[derive(Debug, Default)]
struct Attributes {
    v6only: Option<bool>,
    details: Option<Box<SocketDetails>>,
}

/// One walk over a socket's attributes. The crate's iterator steps over those not named here
/// (its `kind` masks off the NLA_F_* flag bits) and ends at a broken one. A socket carries
/// details only when the kernel sent some: it sends `INET_DIAG_INFO`, `INET_DIAG_CONG` and
/// `INET_DIAG_SKMEMINFO` only when asked, and never for TIME_WAIT and request sockets.
fn attributes(message: &InetResponseBuffer<&[u8]>, congestion: &mut Vec<Arc<str>>) -> Attributes {
    let mut found = Attributes::default();
    let mut info: Option<TcpInfo> = None;
    let mut algorithm: Option<Arc<str>> = None;
    let mut memory: Option<SocketMemory> = None;
    for attribute in message.nlas().map_while(Result::ok) {
        let value = attribute.value();
        match attribute.kind() {
            INET_DIAG_SKV6ONLY => found.v6only = value.first().map(|&flag| flag != 0),
            INET_DIAG_INFO => info = Some(tcp_info(value)),
            INET_DIAG_CONG => algorithm = congestion_name(value, congestion),
            INET_DIAG_SKMEMINFO => memory = Some(socket_memory(value)),
            _ => {}
        }
    }
    if info.is_some() || algorithm.is_some() || memory.is_some() {
        let tcp_info = match (info, algorithm) {
            (None, None) => None,
            (info, algorithm) => Some(TcpInfo {
                congestion: algorithm,
                ..info.unwrap_or_default()
            }),
        };
        found.details = Some(Box::new(SocketDetails { tcp_info, memory }));
    }
    found
}

/// `INET_DIAG_CONG`: the algorithm's name, NUL-terminated; shared with every other socket of
/// the dump that uses it.
fn congestion_name(value: &[u8], seen: &mut Vec<Arc<str>>) -> Option<Arc<str>> {
    let name = value.split(|&byte| byte == 0).next().unwrap_or_default();
    let name = std::str::from_utf8(name)
        .ok()
        .filter(|name| !name.is_empty())?;
    if let Some(known) = seen.iter().find(|known| &***known == name) {
        return Some(Arc::clone(known));
    }
    let new: Arc<str> = Arc::from(name);
    seen.push(Arc::clone(&new));
    Some(new)
}

/// A native-endian field of a kernel struct at `offset`, `None` where the struct ends first.
fn field<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset + N)?.try_into().ok()
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    field(bytes, offset).map(u32::from_ne_bytes)
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    field(bytes, offset).map(u64::from_ne_bytes)
}

/// `struct tcp_info` (`include/uapi/linux/tcp.h`), read by offset: the kernel sends as much of
/// it as it knows, so an older kernel's shorter struct leaves the later fields `None`.
pub fn tcp_info(bytes: &[u8]) -> TcpInfo {
    TcpInfo {
        congestion: None,
        rto_us: u32_at(bytes, 8),
        snd_mss: u32_at(bytes, 16),
        rcv_mss: u32_at(bytes, 20),
        unacked: u32_at(bytes, 24),
        retrans: u32_at(bytes, 36),
        last_send_ms: u32_at(bytes, 44),
        last_recv_ms: u32_at(bytes, 52),
        rtt_us: u32_at(bytes, 68),
        rttvar_us: u32_at(bytes, 72),
        ssthresh: u32_at(bytes, 76),
        cwnd: u32_at(bytes, 80),
        total_retrans: u32_at(bytes, 100),
        bytes_acked: u64_at(bytes, 120),
        bytes_received: u64_at(bytes, 128),
        notsent_bytes: u32_at(bytes, 144),
        min_rtt_us: u32_at(bytes, 148),
        delivery_rate: u64_at(bytes, 160),
        bytes_sent: u64_at(bytes, 200),
    }
}

/// `INET_DIAG_SKMEMINFO`: `u32`s indexed by `SK_MEMINFO_*` (`include/uapi/linux/sock_diag.h`).
pub fn socket_memory(bytes: &[u8]) -> SocketMemory {
    let at = |index: usize| u32_at(bytes, 4 * index);
    SocketMemory {
        rmem_alloc: at(0),
        rcvbuf: at(1),
        wmem_alloc: at(2),
        sndbuf: at(3),
        fwd_alloc: at(4),
        wmem_queued: at(5),
        optmem: at(6),
        backlog: at(7),
        drops: at(8),
    }
}

/// An address of the socket with its zone: `idiag_if` is the interface the socket is bound to
/// (`sk_bound_dev_if`, set by a bind or connect to a link-local address with a scope id, by
/// SO_BINDTODEVICE, and inherited by accepted connections), which `ss` prints as `%ifname`.
/// It becomes the scope id of the addresses that need one (link-local, as `getsockname` and
/// `getpeername` give them); an IPv4 address, or an IPv6 one that needs no zone, has none.
/// An IPv6 socket's IPv4-mapped address stays IPv6, as in `/proc/net/tcp6`.
fn zoned(ip: IpAddr, port: u16, interface: u32) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) if interface != 0 && needs_zone(&v6) => {
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, interface))
        }
        ip => SocketAddr::new(ip, port),
    }
}

/// sock_diag reports a request socket (a connection in its listener's SYN queue, `SYN_RECV`
/// without an inode) with uid 0, where `/proc/net/tcp` prints its listener's uid. Give it the
/// uid of the listener it belongs to: the TCP listener on its local port bound to its address,
/// else the wildcard of its family, else a dual-stack `::`.
fn fill_request_uids(sockets: &mut [Socket]) {
    let listeners: Vec<(SocketAddr, Option<u32>)> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == State::Listen)
        .map(|s| (s.local, s.uid))
        .collect();
    if listeners.is_empty() {
        return;
    }
    for socket in sockets.iter_mut().filter(|s| {
        s.proto == Proto::Tcp && s.state == State::SynRecv && s.inode == 0 && s.uid == Some(0)
    }) {
        let local = socket.local;
        let on_port = || {
            listeners
                .iter()
                .filter(move |(listener, _)| listener.port() == local.port())
        };
        let exact = on_port().find(|(listener, _)| {
            listener.ip().to_canonical() == local.ip().to_canonical()
                && !listener.ip().is_unspecified()
        });
        let wildcard = || {
            on_port().find(|(listener, _)| {
                listener.ip().is_unspecified() && listener.is_ipv4() == local.is_ipv4()
            })
        };
        let dual_stack =
            || on_port().find(|(listener, _)| listener.is_ipv6() && listener.ip().is_unspecified());
        if let Some((_, uid)) = exact.or_else(wildcard).or_else(dual_stack) {
            socket.uid = *uid;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::filter::{Filter, Side};

    /// One netlink message: header, then `payload`, padded.
    fn message(kind: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
        let length = 16 + payload.len();
        let mut bytes = vec![0u8; length.next_multiple_of(ALIGN)];
        let mut buffer = NetlinkBuffer::new(&mut bytes[..]);
        buffer.set_length(length as u32);
        buffer.set_message_type(kind);
        buffer.set_sequence_number(sequence);
        buffer.payload_mut()[..payload.len()].copy_from_slice(payload);
        bytes
    }

    struct Diag {
        state: u8,
        local: SocketAddr,
        remote: SocketAddr,
        timer: u8,
        expires: u32,
        rqueue: u32,
        wqueue: u32,
        uid: u32,
        inode: u32,
        v6only: Option<bool>,
        interface: u32,
    }

    fn diag(state: u8, local: &str, remote: &str) -> Diag {
        Diag {
            state,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            timer: 0,
            expires: 0,
            rqueue: 0,
            wqueue: 0,
            uid: 1000,
            inode: 42,
            v6only: None,
            interface: 0,
        }
    }

    /// An `inet_diag_msg` as the kernel sends it.
    fn payload(diag: &Diag) -> Vec<u8> {
        let mut bytes = vec![0u8; 72];
        let mut buffer = InetResponseBuffer::new(&mut bytes[..]);
        buffer.set_family(if diag.local.is_ipv6() {
            AF_INET6
        } else {
            AF_INET
        });
        buffer.set_state(diag.state);
        buffer.set_timer(diag.timer);
        buffer.set_expires(diag.expires);
        buffer.set_recv_queue(diag.rqueue);
        buffer.set_send_queue(diag.wqueue);
        buffer.set_uid(diag.uid);
        buffer.set_inode(diag.inode);
        let mut id = SocketIdBuffer::new(buffer.socket_id_mut());
        id.source_port_mut()
            .copy_from_slice(&diag.local.port().to_be_bytes());
        id.destination_port_mut()
            .copy_from_slice(&diag.remote.port().to_be_bytes());
        let octets = |address: SocketAddr| match address.ip() {
            IpAddr::V4(ip) => {
                let mut all = [0u8; 16];
                all[..4].copy_from_slice(&ip.octets());
                all
            }
            IpAddr::V6(ip) => ip.octets(),
        };
        id.set_interface_id(diag.interface);
        id.source_address_mut().copy_from_slice(&octets(diag.local));
        id.destination_address_mut()
            .copy_from_slice(&octets(diag.remote));
        if let Some(v6only) = diag.v6only {
            // An attribute of 5 bytes (header and one u8), padded to 8.
            bytes.extend(5u16.to_ne_bytes());
            bytes.extend(INET_DIAG_SKV6ONLY.to_ne_bytes());
            bytes.extend([u8::from(v6only), 0, 0, 0]);
        }
        bytes
    }

    fn response(sequence: u32, diag: &Diag) -> Vec<u8> {
        message(SOCK_DIAG_BY_FAMILY, sequence, &payload(diag))
    }

    fn done(sequence: u32, code: i32) -> Vec<u8> {
        message(NLMSG_DONE, sequence, &code.to_ne_bytes())
    }

    /// Feeds datagrams to a dump of `proto` with sequence 1.
    fn take_all(proto: Proto, datagrams: &[Vec<u8>]) -> (Result<bool>, Vec<Socket>, usize, usize) {
        let mut sockets = Vec::new();
        let mut dump = Dump::new(1, proto, &mut sockets);
        let mut result = Ok(false);
        for datagram in datagrams {
            result = dump.take(datagram);
            if !matches!(result, Ok(false)) {
                break;
            }
        }
        let counts = (dump.unknown_states, dump.malformed);
        (result, sockets, counts.0, counts.1)
    }

    fn one(proto: Proto, diag: &Diag) -> Socket {
        let (result, sockets, _, _) = take_all(proto, &[response(1, diag)]);
        assert!(matches!(result, Ok(false)));
        assert_eq!(sockets.len(), 1);
        sockets.into_iter().next().unwrap()
    }

    #[test]
    fn a_listener_has_no_peer_and_keeps_queues_uid_and_inode() {
        let mut listener = diag(10, "127.0.0.1:8080", "0.0.0.0:0");
        (listener.rqueue, listener.wqueue) = (2, 4096);
        let socket = one(Proto::Tcp, &listener);
        let expected = Socket {
            proto: Proto::Tcp,
            local: "127.0.0.1:8080".parse().unwrap(),
            remote: None,
            state: State::Listen,
            tx_queue: Some(4096),
            rx_queue: Some(2),
            timer: None,
            uid: Some(1000),
            inode: 42,
            holders: None,
            v6only: None,
            netns: 0,
            cookie: 0,
            details: None,
        };
        assert_eq!(socket, expected);
    }

    #[test]
    fn ipv4_mapped_addresses_stay_ipv6_and_a_peer_is_kept() {
        let socket = one(
            Proto::Tcp,
            &diag(1, "[::ffff:127.0.0.1]:80", "[::ffff:127.0.0.1]:5000"),
        );
        assert_eq!(socket.local.to_string(), "[::ffff:127.0.0.1]:80");
        assert_eq!(
            socket.remote.map(|r| r.to_string()),
            Some("[::ffff:127.0.0.1]:5000".to_string())
        );
        assert_eq!(socket.state, State::Established);
        let listener6 = one(Proto::Tcp, &diag(10, "[::]:443", "[::]:0"));
        assert_eq!((listener6.remote, listener6.local.is_ipv6()), (None, true));
    }

    #[test]
    fn v6only_comes_from_its_attribute() {
        let mut listener = diag(10, "[::]:443", "[::]:0");
        assert_eq!(one(Proto::Tcp, &listener).v6only, None);
        listener.v6only = Some(true);
        assert_eq!(one(Proto::Tcp, &listener).v6only, Some(true));
        listener.v6only = Some(false);
        assert_eq!(one(Proto::Tcp, &listener).v6only, Some(false));
        // Other attributes before it are stepped over; a broken one ends the search.
        let after_header = |extra: &[u8]| {
            let mut bytes = payload(&diag(10, "[::]:443", "[::]:0"));
            bytes.extend(extra);
            attributes(
                &InetResponseBuffer::new_checked(&bytes[..]).unwrap(),
                &mut Vec::new(),
            )
            .v6only
        };
        let mut other = vec![8, 0, 10, 0, 6, 0, 0, 0]; // INET_DIAG_PROTOCOL
        other.extend([5, 0, 11, 0, 1, 0, 0, 0]);
        assert_eq!(after_header(&other), Some(true));
        // The type's flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) are not the type.
        assert_eq!(after_header(&[5, 0, 11, 0x40, 0, 0, 0, 0]), Some(false));
        assert_eq!(after_header(&[5, 0, 11, 0]), None);
        assert_eq!(after_header(&[2, 0, 11, 0, 1]), None);
        assert_eq!(after_header(&[200, 0, 11, 0, 1]), None);
        assert_eq!(after_header(&[4, 0, 11, 0]), None);
        assert_eq!(after_header(&[]), None);
    }

    #[test]
    fn a_link_local_address_keeps_its_interface_as_the_scope_id() {
        let mut bound = diag(10, "[fe80::7c4b:a1ff:fec6:90b1]:53", "[::]:0");
        bound.interface = 7;
        let socket = one(Proto::Tcp, &bound);
        assert_eq!(socket.local.to_string(), "[fe80::7c4b:a1ff:fec6:90b1%7]:53");
        assert_eq!(socket.remote, None);
        // A connection: both link-local ends are on that interface, as getpeername says.
        let mut connected = diag(1, "[fe80::1]:40000", "[fe80::2]:53");
        connected.interface = 3;
        let socket = one(Proto::Tcp, &connected);
        assert_eq!(socket.local.to_string(), "[fe80::1%3]:40000");
        assert_eq!(socket.remote.unwrap().to_string(), "[fe80::2%3]:53");
        // SO_BINDTODEVICE on addresses that need no zone: none is made up.
        let mut global = diag(1, "[2001:db8::1]:40000", "[fe80::2]:53");
        global.interface = 3;
        let socket = one(Proto::Tcp, &global);
        assert_eq!(socket.local.to_string(), "[2001:db8::1]:40000");
        assert_eq!(socket.remote.unwrap().to_string(), "[fe80::2%3]:53");
        let mut v4 = diag(7, "10.0.0.1:68", "0.0.0.0:0");
        v4.interface = 3;
        assert_eq!(one(Proto::Udp, &v4).local.to_string(), "10.0.0.1:68");
        // Not bound to an interface: no zone.
        let free = one(Proto::Udp, &diag(7, "[fe80::1]:53", "[::]:0"));
        assert_eq!(free.local.to_string(), "[fe80::1]:53");
    }

    #[test]
    fn udp_is_unconn_or_established_with_its_peer() {
        let unconn = one(Proto::Udp, &diag(7, "0.0.0.0:53", "0.0.0.0:0"));
        assert_eq!((unconn.state, unconn.remote), (State::Unconn, None));
        let connected = one(Proto::Udp, &diag(1, "127.0.0.1:4000", "127.0.0.1:53"));
        assert_eq!(connected.state, State::Established);
        assert_eq!(connected.remote, Some("127.0.0.1:53".parse().unwrap()));
        // A peer on port 0 of a real address is still a peer, as procfs reads it.
        let odd = one(Proto::Udp, &diag(1, "127.0.0.1:4000", "127.0.0.2:0"));
        assert!(odd.remote.is_some());
    }

    #[test]
    fn timers_run_in_milliseconds_and_time_wait_has_no_inode() {
        let mut time_wait = diag(6, "127.0.0.1:40000", "127.0.0.1:8080");
        (time_wait.timer, time_wait.expires) = (3, 59_250);
        (time_wait.uid, time_wait.inode) = (0, 0);
        let socket = one(Proto::Tcp, &time_wait);
        assert_eq!(socket.state, State::TimeWait);
        assert_eq!(
            socket.timer,
            Some(Timer {
                kind: TimerKind::Timewait,
                expires_ms: 59_250,
                retrans: 0
            })
        );
        assert_eq!(
            socket.timer.map(Timer::left),
            Some(Duration::from_millis(59_250))
        );
        assert_eq!((socket.uid, socket.inode), (Some(0), 0));
        let mut idle = diag(1, "127.0.0.1:1", "127.0.0.1:2");
        idle.expires = 500; // no timer runs: expires means nothing
        assert_eq!(one(Proto::Tcp, &idle).timer, None);
    }

    /// A recorded answer (`fixtures/sock-diag/`) as the socket it reads as.
    fn recorded(proto: Proto, payload: &[u8]) -> Socket {
        socket_of(proto, payload, &mut Vec::new())
            .expect("a well-formed message")
            .expect("a known state")
    }

    const LISTEN: &[u8] = include_bytes!("../../fixtures/sock-diag/tcp-listen.bin");
    const UNREAD: &[u8] = include_bytes!("../../fixtures/sock-diag/tcp-unread.bin");
    const KEEPALIVE: &[u8] = include_bytes!("../../fixtures/sock-diag/tcp-keepalive-client.bin");
    const UDP_UNREAD: &[u8] = include_bytes!("../../fixtures/sock-diag/udp-unread.bin");

    #[test]
    fn recorded_tcp_info_congestion_and_memory_decode() {
        let listener = recorded(Proto::Tcp, LISTEN);
        assert_eq!(listener.state, State::Listen);
        // One connection waits to be accepted, against a backlog of 8.
        assert_eq!((listener.rx_queue, listener.tx_queue), (Some(1), Some(8)));
        let details = listener.details.expect("details");
        let info = details.tcp_info.expect("tcp_info");
        assert_eq!(info.congestion.as_deref(), Some("bbr"));
        assert_eq!(info.cwnd, Some(10));
        assert_eq!(info.bytes_acked, Some(0));
        let memory = details.memory.expect("memory");
        assert_eq!(memory.rcvbuf, Some(131072));
        assert_eq!(memory.sndbuf, Some(16384));
        assert_eq!(memory.drops, Some(0));

        let unread = recorded(Proto::Tcp, UNREAD);
        assert_eq!((unread.rx_queue, unread.tx_queue), (Some(1000), Some(0)));
        assert_eq!(unread.timer, None);
        let details = unread.details.expect("details");
        let info = details.tcp_info.expect("tcp_info");
        assert_eq!(info.bytes_received, Some(1000));
        assert_eq!((info.rtt_us, info.rttvar_us), (Some(8), Some(4)));
        assert_eq!(info.rto_us, Some(204_000));
        assert_eq!(
            (info.last_send_ms, info.last_recv_ms),
            (Some(204), Some(204))
        );
        let memory = details.memory.expect("memory");
        assert_eq!(
            (memory.rmem_alloc, memory.fwd_alloc),
            (Some(1832), Some(2264))
        );

        let client = recorded(Proto::Tcp, KEEPALIVE);
        assert_eq!(
            client.timer,
            Some(Timer {
                kind: TimerKind::Keepalive,
                expires_ms: 7_199_800,
                retrans: 0
            })
        );
        let info = client.details.expect("details").tcp_info.expect("tcp_info");
        // The SYN counts as one byte acknowledged.
        assert_eq!(
            (info.bytes_sent, info.bytes_acked),
            (Some(1000), Some(1001))
        );
        assert_eq!(info.delivery_rate, Some(2_944_000_000));
        assert_eq!((info.cwnd, info.total_retrans), (Some(11), Some(0)));
        assert_eq!(info.ssthresh, Some(0x7fff_ffff));

        // UDP: memory, and no tcp_info (the kernel sends none).
        let udp = recorded(Proto::Udp, UDP_UNREAD);
        assert_eq!((udp.state, udp.rx_queue), (State::Unconn, Some(832)));
        let details = udp.details.expect("details");
        assert_eq!(details.tcp_info, None);
        assert_eq!(details.memory.expect("memory").rmem_alloc, Some(832));
    }

    #[test]
    fn sockets_of_a_dump_share_one_congestion_name() {
        let mut seen = Vec::new();
        let first = socket_of(Proto::Tcp, UNREAD, &mut seen).unwrap().unwrap();
        let second = socket_of(Proto::Tcp, KEEPALIVE, &mut seen)
            .unwrap()
            .unwrap();
        let name = |socket: &Socket| {
            socket
                .details
                .as_ref()
                .unwrap()
                .tcp_info
                .as_ref()
                .unwrap()
                .congestion
                .clone()
                .unwrap()
        };
        assert!(Arc::ptr_eq(&name(&first), &name(&second)));
        assert_eq!(seen.len(), 1);
        // A name that is empty or not UTF-8 is no name.
        assert_eq!(congestion_name(b"\0", &mut seen), None);
        assert_eq!(congestion_name(&[0xff, 0], &mut seen), None);
        assert_eq!(
            congestion_name(b"cubic", &mut seen).as_deref(),
            Some("cubic")
        );
    }

    /// The `INET_DIAG_INFO` value of a recorded answer.
    fn info_value(payload: &[u8]) -> Vec<u8> {
        let message = InetResponseBuffer::new_checked(payload).unwrap();
        let attribute = message
            .nlas()
            .map_while(Result::ok)
            .find(|attribute| attribute.kind() == INET_DIAG_INFO)
            .unwrap();
        attribute.value().to_vec()
    }

    #[test]
    fn an_older_kernels_shorter_tcp_info_leaves_later_fields_absent() {
        let whole = info_value(KEEPALIVE);
        assert_eq!(whole.len(), 280);
        // Before Linux 3.15 the struct ended at tcpi_total_retrans (104 bytes).
        let old = tcp_info(&whole[..104]);
        assert_eq!(old.cwnd, Some(11));
        assert_eq!(old.total_retrans, Some(0));
        assert_eq!((old.bytes_acked, old.bytes_received), (None, None));
        assert_eq!(
            (old.bytes_sent, old.delivery_rate, old.min_rtt_us),
            (None, None, None)
        );
        // Linux 4.6 to 4.8: up to tcpi_min_rtt (152 bytes): no delivery rate nor bytes sent.
        let middle = tcp_info(&whole[..152]);
        assert_eq!(middle.bytes_acked, Some(1001));
        assert!(middle.min_rtt_us.is_some());
        assert_eq!((middle.delivery_rate, middle.bytes_sent), (None, None));
        // A field cut in the middle is absent too; nothing at all reads as nothing.
        assert_eq!(tcp_info(&whole[..122]).bytes_acked, None);
        assert_eq!(tcp_info(&[]), TcpInfo::default());
        // The same through a whole message: an INFO attribute of 104 bytes.
        let mut message = payload(&diag(1, "127.0.0.1:1", "127.0.0.1:2"));
        message.extend((4u16 + 104).to_ne_bytes());
        message.extend(INET_DIAG_INFO.to_ne_bytes());
        message.extend(&whole[..104]);
        let socket = recorded(Proto::Tcp, &message);
        let info = socket.details.unwrap().tcp_info.unwrap();
        assert_eq!(
            (info.cwnd, info.bytes_acked, info.congestion),
            (Some(11), None, None)
        );
        // Memory without backlog and drops, which later kernels added.
        let memory = socket_memory(&[
            1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0,
        ]);
        assert_eq!((memory.rmem_alloc, memory.optmem), (Some(1), Some(7)));
        assert_eq!((memory.backlog, memory.drops), (None, None));
    }

    #[test]
    fn without_extensions_a_socket_has_no_details_and_the_request_asks_none() {
        assert_eq!(
            one(Proto::Tcp, &diag(1, "127.0.0.1:1", "127.0.0.1:2")).details,
            None
        );
        let ext = |proto, info, memory| {
            let extensions = Extensions {
                info,
                timers: true,
                memory,
            };
            let bytes = request(1, proto, false, EVERY_STATE, None, extensions);
            NetlinkBuffer::new_checked(&bytes[..]).unwrap().payload()[2]
        };
        assert_eq!(ext(Proto::Tcp, false, false), 0, "-o needs nothing extra");
        // INET_DIAG_INFO (bit 1) and INET_DIAG_CONG (bit 3); INET_DIAG_SKMEMINFO (bit 6).
        assert_eq!(ext(Proto::Tcp, true, false), 1 << 1 | 1 << 3);
        assert_eq!(ext(Proto::Tcp, true, true), 1 << 1 | 1 << 3 | 1 << 6);
        assert_eq!(ext(Proto::Udp, true, false), 0, "UDP has no tcp_info");
        assert_eq!(ext(Proto::Udp, true, true), 1 << 6);
    }

    #[test]
    fn the_state_mask_asks_for_exactly_the_states_wanted() {
        assert_eq!(state_mask(Proto::Tcp, StateSet::EMPTY), EVERY_STATE);
        assert_eq!(state_mask(Proto::Udp, StateSet::EMPTY), EVERY_STATE);
        let listening = StateSet::of([State::Listen, State::Unconn]);
        assert_eq!(state_mask(Proto::Tcp, listening), 1 << 10);
        // UDP sockets are only ever 7 or 1, but the mask is the exact inverse of `state_of`.
        assert_eq!(state_mask(Proto::Udp, listening), 1 << 10 | 1 << 7);
        let default_view = StateSet::of([State::Listen, State::Unconn, State::Established]);
        assert_eq!(state_mask(Proto::Tcp, default_view), 1 << 10 | 1 << 1);
        let connected_udp = StateSet::of([State::Unconn, State::Established]);
        assert_eq!(state_mask(Proto::Udp, connected_udp), 1 << 7 | 1 << 1);
        let waits = StateSet::of([State::TimeWait, State::NewSynRecv]);
        assert_eq!(state_mask(Proto::Tcp, waits), 1 << 6 | 1 << 3);
        assert_eq!(state_mask(Proto::Tcp, StateSet::of([State::Unconn])), 0);
    }

    /// Checks `bytes` is one whole dump request of `kind` numbered `sequence`; its payload.
    fn dump_payload(bytes: &[u8], kind: u16, sequence: u32) -> &[u8] {
        let message = NetlinkBuffer::new_checked(bytes).unwrap();
        assert_eq!(message.length() as usize, bytes.len());
        assert_eq!(message.message_type(), kind);
        assert_eq!(message.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(message.sequence_number(), sequence);
        message.payload()
    }

    #[test]
    fn the_request_is_an_inet_diag_req_v2_dump() {
        let bytes = request(7, Proto::Udp, true, 1 << 7 | 1 << 1, None, Extensions::NONE);
        let inet = dump_payload(&bytes, SOCK_DIAG_BY_FAMILY, 7);
        assert_eq!(inet.len(), 56);
        assert_eq!((inet[0], inet[1], inet[2]), (AF_INET6, IPPROTO_UDP, 0));
        let states = u32::from_ne_bytes(inet[4..8].try_into().unwrap());
        assert_eq!(states, 1 << 7 | 1 << 1);
        assert!(
            inet[8..].iter().all(|&b| b == 0),
            "no socket id: every socket"
        );
        let tcp4 = request(1, Proto::Tcp, false, EVERY_STATE, None, Extensions::NONE);
        let inet = NetlinkBuffer::new_checked(&tcp4[..]).unwrap().payload();
        assert_eq!((inet[0], inet[1]), (AF_INET, IPPROTO_TCP));
    }

    #[test]
    fn both_tcp_tables_are_one_tcpdiag_getsock_dump() {
        let bytes = both_tcp_request(5, 1 << 10 | 1 << 1, None, Extensions::NONE);
        // inet_diag_req: 4 bytes, a 48-byte socket id, states, dbs.
        let inet = dump_payload(&bytes, TCPDIAG_GETSOCK, 5);
        assert_eq!(inet.len(), 60);
        assert_eq!(inet[3], 0, "no extensions unless asked");
        assert!(inet[4..52].iter().all(|&b| b == 0), "every socket");
        let states = u32::from_ne_bytes(inet[52..56].try_into().unwrap());
        assert_eq!(states, 1 << 10 | 1 << 1);
        let info = Extensions {
            info: true,
            ..Extensions::NONE
        };
        let with_info = both_tcp_request(5, EVERY_STATE, None, info);
        let inet = NetlinkBuffer::new_checked(&with_info[..])
            .unwrap()
            .payload();
        assert_eq!(
            inet[3],
            (ExtensionFlags::INFO | ExtensionFlags::CONG).bits()
        );
        // The filter program follows as its attribute, as in a v2 request.
        let code = bytecode::compile(&Filter::ports(Side::Local, &[22..=22])).unwrap();
        let filtered = both_tcp_request(5, EVERY_STATE, Some(&code), Extensions::NONE);
        let message = NetlinkBuffer::new_checked(&filtered[..]).unwrap();
        assert_eq!(message.length() as usize, filtered.len());
        assert_eq!(&message.payload()[60 + 4..], &code[..]);
    }

    #[test]
    fn both_tcp_tables_are_walked_once_and_udp_apart() {
        let walk = |wanted: &TableRequest| walks(wanted);
        let udp = [
            Walk::Table("udp", Proto::Udp, false),
            Walk::Table("udp6", Proto::Udp, true),
        ];
        let frugal = TableRequest {
            saves: Saves::Cpu,
            ..TableRequest::ALL
        };
        assert_eq!(walk(&frugal), [&[Walk::BothTcp][..], &udp].concat());
        // Saving time, connections are walked once per family, side by side.
        assert_eq!(
            walk(&TableRequest::ALL),
            [&Walk::BothTcp.apart()[..], &udp].concat()
        );
        // Listeners alone are no walk of the established table: one request is less.
        let listeners = TableRequest {
            states: StateSet::of([State::Listen, State::Unconn]),
            ..TableRequest::ALL
        };
        assert_eq!(walk(&listeners), [&[Walk::BothTcp][..], &udp].concat());
        let ipv4 = TableRequest {
            ipv6: false,
            ..TableRequest::ALL
        };
        assert_eq!(
            walk(&ipv4),
            [
                Walk::Table("tcp", Proto::Tcp, false),
                Walk::Table("udp", Proto::Udp, false)
            ]
        );
        let tcp6 = TableRequest {
            udp: false,
            ipv4: false,
            ..TableRequest::ALL
        };
        assert_eq!(walk(&tcp6), [Walk::Table("tcp6", Proto::Tcp, true)]);
        // Asked apart, and read another way on failure, it is the two TCP tables.
        assert_eq!(
            Walk::BothTcp.apart(),
            walk(&TableRequest {
                udp: false,
                ..ipv4.clone()
            })
            .into_iter()
            .chain(walk(&tcp6))
            .collect::<Vec<_>>()
        );
        let only = Walk::BothTcp.only(&TableRequest::ALL);
        assert!(only.wants(Proto::Tcp, false) && only.wants(Proto::Tcp, true));
        assert!(!only.wants(Proto::Udp, false) && !only.wants(Proto::Udp, true));
        let failed = Walk::BothTcp.failed(anyhow!("no netlink"));
        let tables: Vec<_> = failed.iter().map(|walked| walked.walk.tables()).collect();
        assert_eq!(tables, ["tcp", "tcp6"]);
        assert!(failed.iter().all(|walked| {
            walked
                .dumped
                .as_ref()
                .is_err_and(|error| error.to_string() == "no netlink")
        }));
    }

    /// The live kernel: one walk of both TCP tables sends what the two per-family requests do.
    #[test]
    fn one_walk_of_both_tcp_tables_reads_what_two_requests_do() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let clients = [
            std::net::TcpStream::connect(v4.local_addr().unwrap()).unwrap(),
            std::net::TcpStream::connect(v6.local_addr().unwrap()).unwrap(),
        ];
        let ours: Vec<SocketAddr> = [v4.local_addr().unwrap(), v6.local_addr().unwrap()]
            .into_iter()
            .chain(clients.iter().map(|client| client.local_addr().unwrap()))
            .collect();
        let read = |walks: &[Walk]| {
            let mut link = Link::open().unwrap();
            let walked: Vec<Walked> = (1..)
                .step_by(3)
                .zip(walks)
                .flat_map(|(sequence, walk)| {
                    walk.run(&mut link, sequence, &TableRequest::ALL, None)
                })
                .collect();
            let done: Vec<Walk> = walked.iter().map(|walked| walked.walk).collect();
            let mut sockets: Vec<Socket> = walked
                .into_iter()
                .flat_map(|walked| walked.dumped.unwrap().sockets)
                .filter(|socket| {
                    ours.contains(&socket.local)
                        || socket.remote.is_some_and(|remote| ours.contains(&remote))
                })
                .collect();
            sockets.sort_by_key(|socket| (socket.local, socket.remote));
            (done, sockets)
        };
        let (done, one) = read(&[Walk::BothTcp]);
        assert_eq!(done, [Walk::BothTcp], "this kernel answers the one walk");
        let (_, two) = read(&Walk::BothTcp.apart());
        // Two listeners, and both ends of each connection.
        assert_eq!(one.len(), 6, "{one:?}");
        assert!(one.iter().any(|socket| socket.local.is_ipv6()));
        assert!(one.iter().any(|socket| socket.local.is_ipv4()));
        assert_eq!(one, two);
        drop(clients);
    }

    #[test]
    fn a_dump_reads_every_message_of_every_datagram_until_done() {
        let mut first = response(1, &diag(10, "0.0.0.0:22", "0.0.0.0:0"));
        first.extend(message(NLMSG_NOOP, 1, &[]));
        first.extend(response(1, &diag(1, "10.0.0.1:22", "10.0.0.2:50000")));
        let mut second = response(1, &diag(6, "10.0.0.1:22", "10.0.0.3:50001"));
        second.extend(done(1, 0));
        let (result, sockets, _, _) = take_all(Proto::Tcp, &[first, second]);
        assert!(matches!(result, Ok(true)));
        let states: Vec<_> = sockets.iter().map(|s| s.state).collect();
        assert_eq!(states, [State::Listen, State::Established, State::TimeWait]);
    }

    #[test]
    fn messages_of_another_request_are_ignored() {
        let mut datagram = response(9, &diag(10, "0.0.0.0:22", "0.0.0.0:0"));
        datagram.extend(done(9, 0));
        datagram.extend(response(1, &diag(10, "0.0.0.0:80", "0.0.0.0:0")));
        datagram.extend(done(1, 0));
        let (result, sockets, _, _) = take_all(Proto::Tcp, &[datagram]);
        assert!(matches!(result, Ok(true)));
        assert_eq!(sockets.len(), 1);
        assert_eq!(sockets[0].local.port(), 80);
    }

    #[test]
    fn an_error_message_fails_the_dump_with_its_errno() {
        let mut nack = (-libc::EAFNOSUPPORT).to_ne_bytes().to_vec();
        nack.extend([0u8; 16]); // the request's header, echoed
        let (result, _, _, _) = take_all(Proto::Tcp, &[message(NLMSG_ERROR, 1, &nack)]);
        let error = result.unwrap_err();
        let io = error.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::EAFNOSUPPORT));
        assert!(format!("{error:#}").contains("refused"), "{error:#}");
        // A plain acknowledgement is no error.
        let ack = message(NLMSG_ERROR, 1, &[0u8; 20]);
        let (result, _, _, _) = take_all(Proto::Tcp, &[ack, done(1, 0)]);
        assert!(matches!(result, Ok(true)));
    }

    #[test]
    fn a_failed_done_fails_the_dump() {
        let (result, _, _, _) = take_all(Proto::Udp, &[done(1, -libc::ENOENT)]);
        let error = result.unwrap_err();
        let io = error.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn broken_framing_fails_and_bad_sockets_are_counted() {
        let mut cut = response(1, &diag(10, "0.0.0.0:22", "0.0.0.0:0"));
        cut.truncate(40);
        let (result, _, _, _) = take_all(Proto::Tcp, &[cut]);
        assert!(result.is_err());
        let overrun = message(NLMSG_OVERRUN, 1, &[]);
        assert!(take_all(Proto::Tcp, &[overrun]).0.is_err());

        let mut unknown = diag(13, "0.0.0.0:22", "0.0.0.0:0");
        unknown.uid = 5;
        let mut other_family = payload(&diag(10, "0.0.0.0:23", "0.0.0.0:0"));
        other_family[0] = 1; // AF_UNIX
        let short = message(SOCK_DIAG_BY_FAMILY, 1, &[0u8; 20]);
        let mut datagram = response(1, &unknown);
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, 1, &other_family));
        datagram.extend(short);
        datagram.extend(done(1, 0));
        let (result, sockets, unknown_states, malformed) = take_all(Proto::Tcp, &[datagram]);
        assert!(matches!(result, Ok(true)));
        assert!(sockets.is_empty());
        assert_eq!((unknown_states, malformed), (1, 2));
    }

    #[test]
    fn request_sockets_take_their_listeners_uid() {
        let socket = |local: &str, state, uid, inode| Socket {
            uid: Some(uid),
            inode,
            ..Socket::example(Proto::Tcp, local, None, state)
        };
        let mut sockets = vec![
            socket("0.0.0.0:22", State::Listen, 1000, 1),
            socket("127.0.0.1:22", State::Listen, 1001, 2),
            socket("[::]:80", State::Listen, 1002, 3),
            socket("127.0.0.1:22", State::SynRecv, 0, 0),
            socket("10.0.0.1:22", State::SynRecv, 0, 0),
            socket("10.0.0.1:80", State::SynRecv, 0, 0),
            socket("[::1]:80", State::SynRecv, 0, 0),
            socket("10.0.0.1:9", State::SynRecv, 0, 0),
            socket("10.0.0.1:22", State::TimeWait, 0, 0),
        ];
        fill_request_uids(&mut sockets);
        let uids: Vec<_> = sockets.iter().map(|s| s.uid).collect();
        assert_eq!(
            uids,
            [1000, 1001, 1002, 1001, 1000, 1002, 1002, 0, 0].map(Some)
        );
    }

    #[test]
    fn asking_for_no_table_reads_nothing() {
        let none = TableRequest {
            tcp: false,
            udp: false,
            ..TableRequest::ALL
        };
        let read = read(none).unwrap();
        assert!(read.sockets.is_empty() && read.warnings.is_empty());
    }

    /// The live kernel: netlink and /proc/net see this test's listener alike.
    #[test]
    fn netlink_and_proc_net_agree_on_a_live_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let udp_local = udp.local_addr().unwrap();
        let find = |read: &TableRead, local: SocketAddr, proto: Proto| {
            let found: Vec<Socket> = read
                .sockets
                .iter()
                .filter(|s| s.local == local && s.proto == proto)
                .cloned()
                .collect();
            assert_eq!(found.len(), 1, "{found:?}");
            found.into_iter().next().unwrap()
        };
        let netlink = read(TableRequest::ALL).unwrap();
        let procfs =
            super::super::procfs::read(std::path::Path::new("/proc/net"), TableRequest::ALL)
                .unwrap();
        assert!(netlink.inodes_known);
        let (from_netlink, from_procfs) = (
            find(&netlink, local, Proto::Tcp),
            find(&procfs, local, Proto::Tcp),
        );
        // A listener's tx_queue is its backlog over netlink; /proc/net/tcp does not print it.
        assert!(from_netlink.tx_queue.is_some_and(|backlog| backlog > 0));
        assert_eq!(
            Socket {
                tx_queue: None,
                cookie: 0,
                ..from_netlink
            },
            from_procfs
        );
        // Only netlink knows whether an IPv6 socket is IPV6_V6ONLY; binding a specific IPv6
        // address makes it so.
        let udp6 = find(&netlink, udp_local, Proto::Udp);
        assert_eq!(udp6.v6only, Some(true));
        assert_eq!(
            Socket {
                v6only: None,
                netns: 0,
                cookie: 0,
                ..udp6
            },
            find(&procfs, udp_local, Proto::Udp)
        );

        let listening = TableRequest {
            states: StateSet::of([State::Listen, State::Unconn]),
            ..TableRequest::ALL
        };
        let only_listeners = read(listening).unwrap();
        assert!(
            only_listeners
                .sockets
                .iter()
                .all(|s| s.state.is_listening())
        );
        find(&only_listeners, local, Proto::Tcp);
    }

    #[test]
    fn the_kernel_sends_only_the_local_port_asked_for() {
        let wanted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = wanted.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(wanted.local_addr().unwrap()).unwrap();
        let asked = TableRequest {
            filter: Some(std::sync::Arc::new(Filter::ports(
                Side::Local,
                &[port..=port],
            ))),
            ..TableRequest::ALL
        };
        let read = read(asked).unwrap();
        assert!(
            read.sockets.iter().all(|s| s.local.port() == port),
            "{:?}",
            read.sockets
        );
        // The listener and the accepted connection: the client's side has another local port.
        assert_eq!(read.sockets.len(), 2, "{:?}", read.sockets);
        assert!(read.sockets.iter().any(|s| s.state == State::Listen));
        drop((other, client));
    }

    #[test]
    fn the_request_carries_the_program_as_its_bytecode_attribute() {
        let filter = Filter::Any(vec![
            Filter::ports(Side::Local, &[22..=22]),
            Filter::ports(Side::Remote, &[22..=22]),
        ]);
        let code = bytecode::compile(&filter).unwrap();
        let bytes = request(
            3,
            Proto::Tcp,
            false,
            EVERY_STATE,
            Some(&code),
            Extensions::NONE,
        );
        let message = NetlinkBuffer::new_checked(&bytes[..]).unwrap();
        assert_eq!(message.length() as usize, bytes.len());
        let attribute = &message.payload()[56..];
        let length = u16::from_ne_bytes([attribute[0], attribute[1]]);
        let kind = u16::from_ne_bytes([attribute[2], attribute[3]]);
        assert_eq!((usize::from(length), kind), (4 + code.len(), 1));
        assert_eq!(&attribute[4..], &code[..]);
        // Without a program, or with an empty one (every socket), there is no attribute.
        assert_eq!(
            request(3, Proto::Tcp, false, EVERY_STATE, None, Extensions::NONE).len(),
            16 + 56
        );
        assert_eq!(
            request(
                3,
                Proto::Tcp,
                false,
                EVERY_STATE,
                Some(&[]),
                Extensions::NONE
            )
            .len(),
            16 + 56
        );
    }

    /// The live kernel accepts every program the compiler's tests build (a malformed one gets
    /// EINVAL), and sends exactly the sockets the filter lets through.
    #[test]
    fn the_kernel_accepts_every_program_and_filters_as_the_filter_does() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (client_end, server_end) =
            (client.local_addr().unwrap(), listener.local_addr().unwrap());
        let mut filters = bytecode::tests::sample_filters();
        filters.push(Filter::Any(vec![
            Filter::Host {
                side: Side::Local,
                prefix: crate::core::filter::Prefix::host(client_end.ip()),
                port: Some(client_end.port()),
            },
            Filter::Host {
                side: Side::Remote,
                prefix: crate::core::filter::Prefix::host(client_end.ip()),
                port: Some(client_end.port()),
            },
        ]));
        let mut link = Link::open().unwrap();
        for (sequence, filter) in (10..).zip(&filters) {
            let code = bytecode::compile(filter).unwrap();
            for ipv6 in [false, true] {
                let mut sockets = Vec::new();
                let mut dump = Dump::new(sequence, Proto::Tcp, &mut sockets);
                let asked = request(
                    sequence,
                    Proto::Tcp,
                    ipv6,
                    EVERY_STATE,
                    Some(&code),
                    Extensions::NONE,
                );
                link.dump(&asked, &mut dump)
                    .unwrap_or_else(|e| panic!("{filter:?}: {e:#}"));
                assert!(
                    sockets
                        .iter()
                        .all(|socket| filter.matches(socket.local, socket.remote)),
                    "{filter:?}: {sockets:?}"
                );
            }
        }
        // A jump into a port comparison's data: the kernel's audit refuses it.
        let malformed = [[1u8, 4, 8, 0], [11, 8, 12, 0], [0, 0, 1, 0]].concat();
        let mut sockets = Vec::new();
        let mut dump = Dump::new(2, Proto::Tcp, &mut sockets);
        let asked = request(
            2,
            Proto::Tcp,
            false,
            EVERY_STATE,
            Some(&malformed),
            Extensions::NONE,
        );
        let refused = link.dump(&asked, &mut dump);
        assert_eq!(
            refused.as_ref().err().and_then(errno),
            Some(libc::EINVAL),
            "{refused:?}"
        );
        // The last filter: both sides of the one connection, and nothing else.
        let code = bytecode::compile(filters.last().unwrap()).unwrap();
        let mut sockets = Vec::new();
        let mut dump = Dump::new(1, Proto::Tcp, &mut sockets);
        let asked = request(
            1,
            Proto::Tcp,
            false,
            EVERY_STATE,
            Some(&code),
            Extensions::NONE,
        );
        link.dump(&asked, &mut dump).unwrap();
        let mut ends: Vec<_> = sockets.iter().map(|s| (s.local, s.remote)).collect();
        ends.sort();
        let mut expected = vec![
            (client_end, Some(server_end)),
            (server_end, Some(client_end)),
        ];
        expected.sort();
        assert_eq!(ends, expected);
    }
}
