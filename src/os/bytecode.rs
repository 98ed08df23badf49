//! A [`Filter`] as sock_diag bytecode (`INET_DIAG_REQ_BYTECODE`), the program the kernel runs on
//! every socket of a dump before sending it (`inet_diag_bc_run` in `net/ipv4/inet_diag.c`), as
//! `ss 'sport = :22 and dst 10.0.0.0/8'` builds it (`ssfilter_bytecompile` in iproute2's
//! `misc/ss.c`).
//!
//! A program is a sequence of ops `{code: u8, yes: u8, no: u16}`: after a test, the kernel steps
//! `yes` bytes forward when it held and `no` bytes when not; the socket is sent when the steps
//! end exactly at the end of the program, and not when they overshoot it. Here every op's
//! `yes` is its own length (the next op), and a failed test either jumps to another op further
//! on or 4 bytes past the end, which rejects. The kernel refuses (EINVAL) any program whose
//! jumps do not land on an op reached by following `yes` from the start
//! (`inet_diag_bc_audit`); with `yes` always the next op, every op is one of those.

use crate::core::filter::{Filter, Side};
use std::net::IpAddr;

pub const INET_DIAG_BC_JMP: u8 = 1;
pub const INET_DIAG_BC_S_GE: u8 = 2;
pub const INET_DIAG_BC_S_LE: u8 = 3;
pub const INET_DIAG_BC_D_GE: u8 = 4;
pub const INET_DIAG_BC_D_LE: u8 = 5;
pub const INET_DIAG_BC_S_COND: u8 = 7;
pub const INET_DIAG_BC_D_COND: u8 = 8;
/// Newer than the other ops (Linux 4.16, by its uapi history); older kernels refuse a program with it (EINVAL), and the dump is then
/// asked again without one.
pub const INET_DIAG_BC_S_EQ: u8 = 11;
pub const INET_DIAG_BC_D_EQ: u8 = 12;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Longer programs are not sent: each socket of the dump runs through the whole program, and
/// a filter that long (hundreds of port ranges) is better left to the query alone.
const MAX_PROGRAM: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// A port comparison (`S_GE`, `D_EQ`, ...); the port goes in a second op's `no`.
    Port { code: u8, port: u16 },
    /// `S_COND` or `D_COND` with an `inet_diag_hostcond`.
    Host {
        code: u8,
        prefix_len: u8,
        port: Option<u16>,
        address: IpAddr,
    },
    /// Holds never: always takes `no`.
    Jump,
}

impl Test {
    fn length(&self) -> usize {
        match self {
            Test::Port { .. } => 8,
            Test::Host { address, .. } => 4 + 8 + if address.is_ipv4() { 4 } else { 16 },
            Test::Jump => 4,
        }
    }
}

/// Where a failed test goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Otherwise {
    /// The socket is rejected by the piece of program the op belongs to.
    Reject,
    /// The op at this index of the piece (its length: the piece's end, which accepts).
    At(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Op {
    test: Test,
    otherwise: Otherwise,
}

/// The program for `filter`; `None` when it is too long to send.
pub fn compile(filter: &Filter) -> Option<Vec<u8>> {
    assemble(&ops(filter))
}

/// The ops of a piece of program that accepts exactly the sockets `filter` lets through. No
/// ops at all accepts every socket.
fn ops(filter: &Filter) -> Vec<Op> {
    let reject = |test| Op {
        test,
        otherwise: Otherwise::Reject,
    };
    match filter {
        Filter::Port { side, range } => {
            let (eq, ge, le) = match side {
                Side::Local => (INET_DIAG_BC_S_EQ, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE),
                Side::Remote => (INET_DIAG_BC_D_EQ, INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE),
            };
            let (first, last) = (*range.start(), *range.end());
            if first == last {
                return vec![reject(Test::Port {
                    code: eq,
                    port: first,
                })];
            }
            let mut ops = Vec::new();
            if first > 0 {
                ops.push(reject(Test::Port {
                    code: ge,
                    port: first,
                }));
            }
            if last < u16::MAX {
                ops.push(reject(Test::Port {
                    code: le,
                    port: last,
                }));
            }
            ops
        }
        Filter::Host { side, prefix, port } => vec![reject(Test::Host {
            code: match side {
                Side::Local => INET_DIAG_BC_S_COND,
                Side::Remote => INET_DIAG_BC_D_COND,
            },
            prefix_len: prefix.len,
            port: *port,
            address: prefix.address,
        })],
        Filter::All(all) => {
            let mut joined = Vec::new();
            for piece in all.iter().map(ops) {
                let start = joined.len();
                joined.extend(piece.into_iter().map(|op| shifted(op, start)));
            }
            joined
        }
        Filter::Any(any) => {
            let pieces: Vec<Vec<Op>> = any.iter().map(ops).collect();
            if pieces.iter().any(Vec::is_empty) {
                return Vec::new();
            }
            let mut pieces = pieces.into_iter().rev();
            // Nothing to choose from holds never.
            let Some(mut tail) = pieces.next() else {
                return vec![reject(Test::Jump)];
            };
            // A or B: A's rejects go on to B; A's end jumps over B to the end.
            for head in pieces {
                let start = head.len() + 1;
                let end = start + tail.len();
                let mut ops: Vec<Op> = head
                    .into_iter()
                    .map(|op| match op.otherwise {
                        Otherwise::Reject => Op {
                            otherwise: Otherwise::At(start),
                            ..op
                        },
                        Otherwise::At(_) => op,
                    })
                    .collect();
                ops.push(Op {
                    test: Test::Jump,
                    otherwise: Otherwise::At(end),
                });
                ops.extend(tail.into_iter().map(|op| shifted(op, start)));
                tail = ops;
            }
            tail
        }
    }
}

/// An op of a piece placed `by` ops further on.
fn shifted(op: Op, by: usize) -> Op {
    match op.otherwise {
        Otherwise::At(index) => Op {
            otherwise: Otherwise::At(index + by),
            ..op
        },
        Otherwise::Reject => op,
    }
}

/// The bytes of the ops, jumps counted in bytes.
fn assemble(ops: &[Op]) -> Option<Vec<u8>> {
    let mut offsets = Vec::with_capacity(ops.len() + 1);
    let mut total = 0;
    for op in ops {
        offsets.push(total);
        total += op.test.length();
    }
    offsets.push(total);
    if total > MAX_PROGRAM {
        return None;
    }
    let mut code = Vec::with_capacity(total);
    for (op, &offset) in ops.iter().zip(&offsets) {
        let length = op.test.length();
        let no = match op.otherwise {
            Otherwise::Reject => total - offset + 4,
            Otherwise::At(index) => offsets.get(index)? - offset,
        };
        let head = |code: u8| -> Option<[u8; 4]> {
            let [n0, n1] = u16::try_from(no).ok()?.to_ne_bytes();
            Some([code, u8::try_from(length).ok()?, n0, n1])
        };
        match &op.test {
            Test::Jump => code.extend(head(INET_DIAG_BC_JMP)?),
            Test::Port { code: test, port } => {
                code.extend(head(*test)?);
                let [p0, p1] = port.to_ne_bytes();
                code.extend([0, 0, p0, p1]);
            }
            Test::Host {
                code: test,
                prefix_len,
                port,
                address,
            } => {
                code.extend(head(*test)?);
                let family = if address.is_ipv4() { AF_INET } else { AF_INET6 };
                code.extend([family, *prefix_len, 0, 0]);
                code.extend(port.map_or(-1, i32::from).to_ne_bytes());
                match address {
                    IpAddr::V4(v4) => code.extend(v4.octets()),
                    IpAddr::V6(v6) => code.extend(v6.octets()),
                }
            }
        }
    }
    Some(code)
}

/// The kernel's side, for tests: what `inet_diag_bc_audit` accepts and what `inet_diag_bc_run`
/// decides, written from `net/ipv4/inet_diag.c`.
#[cfg(test)]
pub mod kernel {
    use super::*;

    /// What the kernel knows of a socket when it runs a program (`struct inet_diag_entry`).
    pub struct Entry {
        pub family: u8,
        /// 16 bytes; an IPv4 address in the first 4.
        pub source: [u8; 16],
        pub destination: [u8; 16],
        pub sport: u16,
        pub dport: u16,
    }

    fn op(code: &[u8], at: usize) -> Option<(u8, usize, usize)> {
        let bytes = code.get(at..at + 4)?;
        let no = u16::from_ne_bytes([bytes[2], bytes[3]]);
        Some((bytes[0], usize::from(bytes[1]), usize::from(no)))
    }

    /// `valid_cc`: whether following `yes` from the start reaches the op `remaining` bytes
    /// before the end.
    fn on_the_yes_path(code: &[u8], remaining: usize) -> bool {
        let mut len = code.len() as isize;
        let mut at = 0;
        while len >= 0 {
            if remaining as isize > len {
                return false;
            }
            if remaining as isize == len {
                return true;
            }
            let Some((_, yes, _)) = op(code, at) else {
                return false;
            };
            if yes < 4 || yes & 3 != 0 {
                return false;
            }
            len -= yes as isize;
            at += yes;
        }
        false
    }

    /// `inet_diag_bc_audit`: `Err` where the kernel answers EINVAL.
    pub fn audit(code: &[u8]) -> Result<(), String> {
        if code.len() < 4 {
            return Err("shorter than one op".into());
        }
        let mut len = code.len();
        let mut at = 0;
        while len > 0 {
            let (test, yes, no) = op(code, at).ok_or("cut op")?;
            let mut min_len = 4;
            match test {
                INET_DIAG_BC_S_COND | INET_DIAG_BC_D_COND => {
                    min_len += 8;
                    if len < min_len {
                        return Err(format!("hostcond cut at {at}"));
                    }
                    let (family, prefix_len) = (code[at + 4], code[at + 5]);
                    let address = match family {
                        0 => 0,
                        AF_INET => 4,
                        AF_INET6 => 16,
                        other => return Err(format!("family {other} at {at}")),
                    };
                    min_len += address;
                    if len < min_len || usize::from(prefix_len) > 8 * address {
                        return Err(format!("bad hostcond at {at}"));
                    }
                }
                INET_DIAG_BC_S_GE | INET_DIAG_BC_S_LE | INET_DIAG_BC_D_GE | INET_DIAG_BC_D_LE
                | INET_DIAG_BC_S_EQ | INET_DIAG_BC_D_EQ => {
                    min_len += 4;
                    if len < min_len {
                        return Err(format!("port op cut at {at}"));
                    }
                }
                INET_DIAG_BC_JMP | 0 | 6 => {}
                other => return Err(format!("unknown code {other} at {at}")),
            }
            if test != 0 {
                if no < min_len || no > len + 4 || no & 3 != 0 {
                    return Err(format!("bad no {no} at {at}"));
                }
                if no < len && !on_the_yes_path(code, len - no) {
                    return Err(format!("no {no} at {at} lands off the yes path"));
                }
            }
            if yes < min_len || yes > len + 4 || yes & 3 != 0 {
                return Err(format!("bad yes {yes} at {at}"));
            }
            if yes > len {
                return Err(format!("yes {yes} at {at} runs past the end"));
            }
            at += yes;
            len -= yes;
        }
        Ok(())
    }

    fn same_bits(a: &[u8], b: &[u8], bits: usize) -> bool {
        let (whole, rest) = (bits / 8, bits % 8);
        a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) & (0xff << (8 - rest)) == 0)
    }

    /// `inet_diag_bc_run`: whether the socket is sent.
    pub fn run(code: &[u8], entry: &Entry) -> bool {
        let mut len = code.len() as isize;
        let mut at = 0usize;
        while len > 0 {
            let (test, yes, no) = op(code, at).expect("an audited program");
            let port = || u16::from_ne_bytes([code[at + 6], code[at + 7]]);
            let holds = match test {
                0 => true,
                INET_DIAG_BC_JMP => false,
                INET_DIAG_BC_S_EQ => entry.sport == port(),
                INET_DIAG_BC_S_GE => entry.sport >= port(),
                INET_DIAG_BC_S_LE => entry.sport <= port(),
                INET_DIAG_BC_D_EQ => entry.dport == port(),
                INET_DIAG_BC_D_GE => entry.dport >= port(),
                INET_DIAG_BC_D_LE => entry.dport <= port(),
                INET_DIAG_BC_S_COND | INET_DIAG_BC_D_COND => {
                    let (family, prefix_len) = (code[at + 4], usize::from(code[at + 5]));
                    let cond_port = i32::from_ne_bytes(code[at + 8..at + 12].try_into().unwrap());
                    let (address, port) = if test == INET_DIAG_BC_S_COND {
                        (&entry.source, entry.sport)
                    } else {
                        (&entry.destination, entry.dport)
                    };
                    let wanted = &code[at + 12..];
                    if cond_port != -1 && cond_port != i32::from(port) {
                        false
                    } else if family != 0 && family != entry.family {
                        entry.family == AF_INET6
                            && family == AF_INET
                            && address[..10] == [0; 10]
                            && address[10..12] == [0xff, 0xff]
                            && same_bits(&address[12..], wanted, prefix_len)
                    } else {
                        prefix_len == 0 || same_bits(address, wanted, prefix_len)
                    }
                }
                other => panic!("code {other} in a program"),
            };
            let step = if holds { yes } else { no };
            len -= step as isize;
            at += step;
        }
        len == 0
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::kernel::{Entry, audit, run};
    use super::*;
    use crate::core::filter::Prefix;
    use crate::core::model::{Proto, Socket, State};
    use std::net::SocketAddr;

    fn entry(socket: &Socket) -> Entry {
        let bytes = |address: SocketAddr| -> [u8; 16] {
            let mut bytes = [0; 16];
            match address.ip() {
                IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
                IpAddr::V6(v6) => bytes = v6.octets(),
            }
            bytes
        };
        Entry {
            family: if socket.local.is_ipv4() {
                AF_INET
            } else {
                AF_INET6
            },
            source: bytes(socket.local),
            destination: socket.remote.map_or([0; 16], bytes),
            sport: socket.local.port(),
            dport: socket.remote.map_or(0, |remote| remote.port()),
        }
    }

    fn prefix(text: &str) -> Prefix {
        text.parse().unwrap()
    }

    fn port(side: Side, range: std::ops::RangeInclusive<u16>) -> Filter {
        Filter::Port { side, range }
    }

    fn host(side: Side, text: &str, port: Option<u16>) -> Filter {
        Filter::Host {
            side,
            prefix: prefix(text),
            port,
        }
    }

    /// Words of 4 bytes as `code yes no` (ops) or raw, for golden comparisons.
    fn words(code: &[u8]) -> Vec<[u8; 4]> {
        code.chunks(4).map(|w| w.try_into().unwrap()).collect()
    }

    fn op(code: u8, yes: u8, no: u16) -> [u8; 4] {
        let [n0, n1] = no.to_ne_bytes();
        [code, yes, n0, n1]
    }

    #[test]
    fn one_local_port_is_one_equality() {
        let code = compile(&port(Side::Local, 8080..=8080)).unwrap();
        assert_eq!(words(&code), [op(INET_DIAG_BC_S_EQ, 8, 12), op(0, 0, 8080)]);
        audit(&code).unwrap();
    }

    #[test]
    fn a_range_is_two_comparisons_and_open_ends_are_left_out() {
        let code = compile(&port(Side::Remote, 8000..=9000)).unwrap();
        assert_eq!(
            words(&code),
            [
                op(INET_DIAG_BC_D_GE, 8, 20),
                op(0, 0, 8000),
                op(INET_DIAG_BC_D_LE, 8, 12),
                op(0, 0, 9000)
            ]
        );
        let code = compile(&port(Side::Local, 1024..=65535)).unwrap();
        assert_eq!(words(&code), [op(INET_DIAG_BC_S_GE, 8, 12), op(0, 0, 1024)]);
        // Every port: nothing to test, and no program is an empty one.
        assert_eq!(compile(&port(Side::Local, 0..=65535)), Some(Vec::new()));
    }

    #[test]
    fn an_or_jumps_over_its_other_choices() {
        // sport = 22 or dport = 22: the first's failure goes to the second, its success jumps
        // over it to the end.
        let filter = Filter::Any(vec![
            port(Side::Local, 22..=22),
            port(Side::Remote, 22..=22),
        ]);
        let code = compile(&filter).unwrap();
        assert_eq!(
            words(&code),
            [
                op(INET_DIAG_BC_S_EQ, 8, 12),
                op(0, 0, 22),
                op(INET_DIAG_BC_JMP, 4, 12),
                op(INET_DIAG_BC_D_EQ, 8, 12),
                op(0, 0, 22),
            ]
        );
        audit(&code).unwrap();
    }

    #[test]
    fn an_address_prefix_is_a_hostcond() {
        let code = compile(&host(Side::Remote, "10.0.0.0/8", None)).unwrap();
        let mut expected = vec![op(INET_DIAG_BC_D_COND, 16, 20), [AF_INET, 8, 0, 0]];
        expected.push((-1i32).to_ne_bytes());
        expected.push([10, 0, 0, 0]);
        assert_eq!(words(&code), expected);
        let code = compile(&host(Side::Local, "::1", Some(53))).unwrap();
        assert_eq!(code.len(), 28);
        assert_eq!(words(&code)[0], op(INET_DIAG_BC_S_COND, 28, 32));
        assert_eq!(words(&code)[1], [AF_INET6, 128, 0, 0]);
        assert_eq!(words(&code)[2], 53i32.to_ne_bytes());
        assert_eq!(
            &code[12..],
            "::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        audit(&code).unwrap();
    }

    #[test]
    fn nothing_to_choose_from_rejects_everything() {
        let code = compile(&Filter::Any(Vec::new())).unwrap();
        assert_eq!(words(&code), [op(INET_DIAG_BC_JMP, 4, 8)]);
        let listener = Socket::example(Proto::Tcp, "0.0.0.0:22", None, State::Listen);
        assert!(!run(&code, &entry(&listener)));
    }

    #[test]
    fn the_audit_refuses_what_the_kernel_refuses() {
        // A jump into the middle of a port comparison, and one past the end by more than 4.
        let into_data = [
            op(INET_DIAG_BC_JMP, 4, 8),
            op(INET_DIAG_BC_S_EQ, 8, 12),
            op(0, 0, 1),
        ];
        assert!(audit(&into_data.concat()).is_err());
        let far = [op(INET_DIAG_BC_S_EQ, 8, 16), op(0, 0, 1)];
        assert!(audit(&far.concat()).is_err());
        assert!(audit(&[op(99, 4, 8)].concat()).is_err());
        assert!(audit(&[]).is_err());
    }

    /// Filters built like the query builds them, each compiled, audited and run on sockets of
    /// every kind: the kernel decides exactly as [`Filter::matches`] does.
    #[test]
    fn every_program_is_accepted_and_decides_as_the_filter_does() {
        for filter in sample_filters() {
            let code = compile(&filter).unwrap();
            if !code.is_empty() {
                audit(&code).unwrap_or_else(|e| panic!("{filter:?}: {e}"));
            }
            for socket in sample_sockets() {
                assert_eq!(
                    code.is_empty() || run(&code, &entry(&socket)),
                    filter.matches(socket.local, socket.remote),
                    "{filter:?} on {socket:?}"
                );
            }
        }
    }

    pub(crate) fn sample_filters() -> Vec<Filter> {
        let listeners = port(Side::Remote, 0..=0);
        vec![
            port(Side::Local, 8080..=8080),
            port(Side::Local, 1..=1023),
            Filter::ports(Side::Local, &[22..=22, 80..=80, 8000..=9000]),
            Filter::Any(vec![
                Filter::ports(Side::Local, &[22..=22, 443..=443]),
                Filter::ports(Side::Remote, &[22..=22, 443..=443]),
            ]),
            Filter::Any(vec![
                Filter::All(vec![
                    port(Side::Remote, 40000..=40010),
                    host(Side::Local, "127.0.0.0/8", None),
                    Filter::Any(vec![
                        host(Side::Remote, "127.0.0.2", None),
                        host(Side::Remote, "::1", None),
                    ]),
                ]),
                listeners.clone(),
            ]),
            Filter::Any(vec![
                Filter::All(vec![Filter::Any(vec![
                    host(Side::Local, "127.0.0.1", Some(8080)),
                    host(Side::Remote, "127.0.0.1", Some(8080)),
                ])]),
                listeners.clone(),
            ]),
            Filter::All(vec![
                host(Side::Local, "::ffff:127.0.0.0/104", None),
                host(Side::Remote, "0.0.0.0/0", None),
            ]),
            host(Side::Local, "fe80::/10", Some(53)),
            Filter::Any(vec![Filter::Any(vec![]), port(Side::Local, 5..=5)]),
            Filter::All(vec![
                port(Side::Local, 0..=65535),
                port(Side::Remote, 7..=7),
            ]),
        ]
    }

    pub(crate) fn sample_sockets() -> Vec<Socket> {
        let socket = |local, remote, state| Socket::example(Proto::Tcp, local, remote, state);
        vec![
            socket("0.0.0.0:8080", None, State::Listen),
            socket("127.0.0.1:8080", None, State::Listen),
            socket(
                "127.0.0.1:8080",
                Some("127.0.0.2:40005"),
                State::Established,
            ),
            socket(
                "127.0.0.2:40005",
                Some("127.0.0.1:8080"),
                State::Established,
            ),
            socket(
                "[::ffff:127.0.0.1]:8080",
                Some("[::ffff:127.0.0.2]:40001"),
                State::Established,
            ),
            socket("[::1]:443", Some("[::1]:40002"), State::TimeWait),
            socket("[::1]:40002", Some("[::1]:443"), State::Established),
            socket("[fe80::1%2]:53", None, State::Listen),
            socket("10.0.0.1:22", Some("10.9.9.9:7"), State::Established),
            socket("[::]:5", None, State::Listen),
            socket("10.0.0.1:65535", Some("10.0.0.2:0"), State::SynSent),
        ]
    }
}
