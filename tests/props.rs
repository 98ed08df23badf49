//! Property tests for every parser portstat has (issue 14), through the crate's public API
//! only: no input makes one panic, a bad /proc/net row costs that row alone, and what is
//! written from generated values reads back as those values. The same parsers have fuzz
//! targets in `fuzz/` for longer runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use portstat::core::audit::{listener, policy};
use portstat::core::cgroup;
use portstat::core::model::{Proto, State};
use portstat::core::query::PortSpec;
use portstat::core::services::Services;
use portstat::core::target::{Target, Zone};
use portstat::os::procfs::parse_table;
use proptest::prelude::*;

/// Any text: arbitrary strings, and arbitrary bytes read as lossy UTF-8.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}

/// Text made of the characters a parser cares about, so that inputs come near its syntax.
fn near(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)]
}

// ---- /proc/net tables -------------------------------------------------------------------

const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

/// One generated socket row and what it must parse to.
#[derive(Debug, Clone)]
struct Row {
    v6: bool,
    local: [u32; 4],
    local_port: u16,
    remote: [u32; 4],
    remote_port: u16,
    state: u8,
    uid: u32,
    inode: u64,
    timer: bool,
}

impl Row {
    fn line(&self, sl: usize) -> String {
        let addr = |words: &[u32; 4]| -> String {
            if self.v6 {
                words.iter().map(|w| format!("{w:08X}")).collect()
            } else {
                format!("{:08X}", words[0])
            }
        };
        format!(
            "{sl:4}: {}:{:04X} {}:{:04X} {:02X} 00000000:00000000 {:02X}:{:08X} 00000000 {:5} {:8} {} 1 0000000000000000 100 0 0 10 0",
            addr(&self.local),
            self.local_port,
            addr(&self.remote),
            self.remote_port,
            self.state,
            u8::from(self.timer),
            u32::from(self.timer) * 100,
            self.uid,
            0,
            self.inode,
        )
    }
}

fn row(proto: Proto) -> impl Strategy<Value = Row> {
    let states: Vec<u8> = match proto {
        Proto::Tcp => (1..=11).collect(),
        Proto::Udp => vec![1, 7],
    };
    (
        any::<bool>(),
        any::<[u32; 4]>(),
        any::<u16>(),
        any::<[u32; 4]>(),
        any::<u16>(),
        proptest::sample::select(states),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(v6, local, local_port, remote, remote_port, state, uid, inode, timer)| Row {
                v6,
                local,
                local_port,
                remote,
                remote_port,
                state,
                uid,
                inode,
                timer,
            },
        )
}

/// Ways to spoil a row so that it is refused, each with a warning.
fn corrupt(line: &str, how: u8, at: usize) -> String {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    match how % 6 {
        // Cut short: keep 1 to 9 of the 10 fields a row needs.
        0 => fields.truncate(1 + at % 9),
        // A sl field that is not a number.
        1 => fields[0] = "x:".into(),
        // An address with a digit that is not hex.
        2 => fields[1] = fields[1].replacen(|c: char| c.is_ascii_hexdigit(), "G", 1),
        // A state no table holds.
        3 => fields[3] = "FF".into(),
        // An inode that is not a number.
        4 => fields[9] = format!("{}z", fields[9]),
        // A remote address of the other family.
        _ => {
            let (_, port) = fields[2].split_once(':').unwrap_or_default();
            let other = if fields[2].len() > 13 {
                "00000000"
            } else {
                "00000000000000000000000000000000"
            };
            fields[2] = format!("{other}:{port}");
        }
    }
    fields.join(" ")
}

fn table_rows() -> impl Strategy<Value = (Proto, Vec<Row>)> {
    proto().prop_flat_map(|proto| (Just(proto), proptest::collection::vec(row(proto), 1..40)))
}

proptest! {
    #[test]
    fn procfs_tables_never_panic(text in any_text(), proto in proto()) {
        let (mut sockets, mut warnings) = (Vec::new(), Vec::new());
        parse_table(&text, proto, "/proc/net/tcp", &mut sockets, &mut warnings);
    }

    #[test]
    fn procfs_tables_near_the_syntax_never_panic(
        lines in proptest::collection::vec(near("0123456789abcdefABCDEFG: -+\t", 160), 0..12),
        proto in proto(),
    ) {
        let text = format!("{HEADER}\n{}", lines.join("\n"));
        let (mut sockets, mut warnings) = (Vec::new(), Vec::new());
        parse_table(&text, proto, "t", &mut sockets, &mut warnings);
        let rows = lines.iter().filter(|l| !l.trim().is_empty()).count();
        prop_assert_eq!(sockets.len() + warnings.len(), rows);
    }

    #[test]
    fn valid_tables_parse_whole((proto, rows) in table_rows()) {
        let text: String = std::iter::once(HEADER.to_string())
            .chain(rows.iter().enumerate().map(|(sl, row)| row.line(sl)))
            .map(|line| line + "\n")
            .collect();
        let (mut sockets, mut warnings) = (Vec::new(), Vec::new());
        parse_table(&text, proto, "/proc/net/x", &mut sockets, &mut warnings);
        prop_assert_eq!(&warnings, &Vec::<String>::new());
        prop_assert_eq!(sockets.len(), rows.len());
        for (socket, row) in sockets.iter().zip(&rows) {
            prop_assert_eq!(socket.proto, proto);
            prop_assert_eq!(socket.local.port(), row.local_port);
            prop_assert_eq!(socket.local.is_ipv6(), row.v6);
            prop_assert_eq!(socket.uid, Some(row.uid));
            prop_assert_eq!(socket.inode, row.inode);
            prop_assert_eq!(socket.timer.is_some(), row.timer);
            let listening = matches!(socket.state, State::Listen | State::Unconn);
            prop_assert_eq!(listening, row.state == if proto == Proto::Tcp { 0x0A } else { 7 });
        }
    }

    #[test]
    fn a_bad_row_costs_that_row_only(
        (proto, rows) in table_rows(),
        pick in any::<prop::sample::Index>(),
        how in any::<u8>(),
        at in any::<usize>(),
    ) {
        let bad = pick.index(rows.len());
        let mut text = format!("{HEADER}\n");
        for (sl, row) in rows.iter().enumerate() {
            let line = row.line(sl);
            let line = if sl == bad { corrupt(&line, how, at) } else { line };
            text.push_str(&line);
            text.push('\n');
        }
        let (mut sockets, mut warnings) = (Vec::new(), Vec::new());
        parse_table(&text, proto, "/proc/net/tcp6", &mut sockets, &mut warnings);
        prop_assert_eq!(sockets.len(), rows.len() - 1, "{}", text);
        prop_assert_eq!(warnings.len(), 1, "{}", text);
        let line_number = format!("/proc/net/tcp6 line {}:", bad + 2);
        prop_assert!(warnings[0].starts_with(&line_number), "{}", warnings[0]);
        let inodes: Vec<u64> = sockets.iter().map(|s| s.inode).collect();
        let expected: Vec<u64> = rows
            .iter()
            .enumerate()
            .filter(|&(sl, _)| sl != bad)
            .map(|(_, row)| row.inode)
            .collect();
        prop_assert_eq!(inodes, expected);
    }
}

// ---- port specs -------------------------------------------------------------------------

fn port_ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    proptest::collection::vec(
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        1..8,
    )
}

fn spec_text(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

proptest! {
    #[test]
    fn port_specs_never_panic(text in any_text()) {
        let _ = text.parse::<PortSpec>();
    }

    #[test]
    fn port_specs_near_the_syntax_never_panic(text in near("0123456789,- +65535", 40)) {
        let _ = text.parse::<PortSpec>();
    }

    #[test]
    fn written_port_specs_read_back(ranges in port_ranges(), probes in any::<[u16; 8]>()) {
        let text = spec_text(&ranges);
        let spec: PortSpec = text.parse().map_err(TestCaseError::fail)?;
        let inside = |port: u16| ranges.iter().any(|&(a, b)| (a..=b).contains(&port));
        let ends = ranges.iter().flat_map(|&(a, b)| [a, b, a.wrapping_sub(1), b.wrapping_add(1)]);
        for port in probes.into_iter().chain(ends) {
            prop_assert_eq!(spec.contains(port), inside(port), "{} {}", text, port);
        }
        let single = (ranges.len() == 1 && ranges[0].0 == ranges[0].1).then_some(ranges[0].0);
        prop_assert_eq!(spec.single(), single);
        // Spaces around the parts change nothing.
        let spaced = text.replace(',', " , ");
        prop_assert_eq!(spaced.parse::<PortSpec>(), Ok(spec));
    }

    #[test]
    fn backwards_ranges_are_refused(a in any::<u16>(), b in any::<u16>()) {
        prop_assume!(a != b);
        let (low, high) = (a.min(b), a.max(b));
        let backwards = format!("{high}-{low}");
        prop_assert!(backwards.parse::<PortSpec>().is_err());
    }
}

// ---- who targets ------------------------------------------------------------------------

/// A target as generated values: (address, zone), port, protocol written or not.
#[derive(Debug, Clone)]
struct TargetParts {
    address: Option<IpAddr>,
    zone: Option<Zone>,
    port: u16,
    proto: Option<Proto>,
}

impl TargetParts {
    fn text(&self) -> String {
        let address = match (self.address, self.zone) {
            (None, _) => String::new(),
            (Some(IpAddr::V4(v4)), _) => format!("{v4}:"),
            (Some(IpAddr::V6(v6)), None) => format!("[{v6}]:"),
            (Some(IpAddr::V6(v6)), Some(zone)) => format!("[{v6}%{zone}]:"),
        };
        let proto = self
            .proto
            .map(|p| format!("/{}", p.as_str()))
            .unwrap_or_default();
        format!("{address}{}{proto}", self.port)
    }
}

fn zone() -> impl Strategy<Value = Zone> {
    prop_oneof![
        (1..=u32::MAX).prop_map(Zone::Index),
        "[a-z][a-z0-9_.-]{0,14}".prop_map(|name| {
            Zone::Name(portstat::core::target::InterfaceName::new(&name).expect("15 bytes at most"))
        }),
    ]
}

fn target_parts() -> impl Strategy<Value = TargetParts> {
    let link_local = (any::<[u16; 7]>(), 0u16..0x40).prop_map(|(rest, low)| {
        let mut segments = [0xfe80 | low; 8];
        segments[1..].copy_from_slice(&rest);
        Ipv6Addr::from(segments)
    });
    let address = prop_oneof![
        Just((None, None)),
        any::<Ipv4Addr>().prop_map(|v4| (Some(IpAddr::V4(v4)), None)),
        any::<Ipv6Addr>().prop_map(|v6| (Some(IpAddr::V6(v6)), None)),
        (link_local, zone()).prop_map(|(v6, zone)| (Some(IpAddr::V6(v6)), Some(zone))),
    ];
    (address, any::<u16>(), proptest::option::of(proto())).prop_map(
        |((address, zone), port, proto)| TargetParts {
            address,
            zone,
            port,
            proto,
        },
    )
}

proptest! {
    #[test]
    fn targets_never_panic(text in any_text()) {
        let _ = text.parse::<Target>();
    }

    #[test]
    fn targets_near_the_syntax_never_panic(
        text in near("0123456789abcdef.:[]%/tcpudpeth ", 48),
    ) {
        if let Ok(target) = text.parse::<Target>() {
            // Whatever parses, its Display parses too.
            let again = target.to_string();
            prop_assert!(again.parse::<Target>().is_ok(), "{:?} -> {:?}", text, again);
        }
    }

    #[test]
    fn written_targets_read_back(parts in target_parts()) {
        let text = parts.text();
        let target: Target = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(target.proto, parts.proto.unwrap_or(Proto::Tcp));
        prop_assert_eq!(target.port, parts.port);
        prop_assert_eq!(target.address_given, parts.address.is_some());
        prop_assert_eq!(target.address, parts.address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        prop_assert_eq!(target.zone, parts.zone);
        // Display writes what parse reads: the same target, its address now given.
        let shown = target.to_string();
        let again: Target = shown.parse().map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(again, Target { address_given: true, ..target });
        prop_assert_eq!(again.to_string(), shown);
    }
}

// ---- intervals --------------------------------------------------------------------------

proptest! {
    #[test]
    fn intervals_never_panic(text in any_text()) {
        let _ = portstat::cli::parse::interval(&text);
    }

    #[test]
    fn intervals_near_the_syntax_never_panic(text in near("0123456789.e-+ msuhinfNaI", 24)) {
        if let Ok(duration) = portstat::cli::parse::interval(&text) {
            prop_assert!(duration >= Duration::from_millis(10), "{:?}", text);
        }
    }

    #[test]
    fn written_intervals_read_back(millis in 0u64..100_000_000, seconds in 1u64..1_000_000) {
        let parsed = portstat::cli::parse::interval(&format!("{millis}ms"));
        if millis < 10 {
            prop_assert!(parsed.is_err());
        } else {
            prop_assert_eq!(parsed, Ok(Duration::from_millis(millis)));
        }
        prop_assert_eq!(portstat::cli::parse::interval(&seconds.to_string()), Ok(Duration::from_secs(seconds)));
        prop_assert_eq!(portstat::cli::parse::interval(&format!("{seconds}s")), Ok(Duration::from_secs(seconds)));
    }
}

// ---- policies ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct AllowParts {
    ranges: Vec<(u16, u16)>,
    as_integer: bool,
    proto: Option<Proto>,
    loopback: Option<bool>,
    process: Option<String>,
}

fn allow_parts() -> impl Strategy<Value = AllowParts> {
    (
        port_ranges(),
        any::<bool>(),
        proptest::option::of(proto()),
        proptest::option::of(any::<bool>()),
        proptest::option::of("[a-z][a-z0-9 _./-]{0,14}"),
    )
        .prop_map(
            |(ranges, as_integer, proto, loopback, process)| AllowParts {
                ranges,
                as_integer,
                proto,
                loopback,
                process,
            },
        )
}

impl AllowParts {
    fn port_value(&self) -> String {
        if self.as_integer {
            self.ranges[0].0.to_string()
        } else {
            format!("\"{}\"", spec_text(&self.ranges))
        }
    }
}

proptest! {
    #[test]
    fn policies_never_panic(text in any_text()) {
        let _ = policy::parse(&text);
    }

    #[test]
    fn policies_near_the_syntax_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("[[allow]]".to_string()),
                Just("[[require]]".to_string()),
                near("portscpelyrqwh =\"0123456789,-[]{}.#\n", 30),
            ],
            0..10,
        ),
    ) {
        let text = lines.join("\n");
        if let Err(error) = policy::parse(&text) {
            let _ = error.in_file("portstat.toml");
        }
    }

    #[test]
    fn written_policies_read_back(
        allows in proptest::collection::vec(allow_parts(), 0..6),
        requires in proptest::collection::vec((port_ranges(), proptest::option::of(proto())), 0..4),
    ) {
        let mut text = String::from("# generated\n");
        for allow in &allows {
            text.push_str(&format!("[[allow]]\nport = {}\n", allow.port_value()));
            if let Some(proto) = allow.proto {
                text.push_str(&format!("proto = \"{}\"\n", proto.as_str()));
            }
            if let Some(loopback) = allow.loopback {
                text.push_str(&format!("scope = \"{}\"\n", if loopback { "loopback" } else { "any" }));
            }
            if let Some(process) = &allow.process {
                text.push_str(&format!("process = \"{process}\"\n"));
            }
        }
        for (ranges, proto) in &requires {
            text.push_str(&format!("\n[[require]]\nport = \"{}\"\n", spec_text(ranges)));
            if let Some(proto) = proto {
                text.push_str(&format!("proto = \"{}\"\n", proto.as_str()));
            }
        }
        let parsed = policy::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e:?}")))?;
        prop_assert_eq!(parsed.allow.len(), allows.len());
        prop_assert_eq!(parsed.require.len(), requires.len());
        for (got, want) in parsed.allow.iter().zip(&allows) {
            prop_assert_eq!(got.proto, want.proto);
            prop_assert_eq!(&got.process, &want.process);
            let loopback = matches!(got.scope, policy::Scope::Loopback);
            prop_assert_eq!(loopback, want.loopback == Some(true));
            if want.as_integer {
                prop_assert_eq!(got.ports.single(), Some(want.ranges[0].0));
            } else {
                for &(first, last) in &want.ranges {
                    prop_assert!(got.ports.contains(first) && got.ports.contains(last));
                }
            }
        }
        for (got, (ranges, proto)) in parsed.require.iter().zip(&requires) {
            prop_assert_eq!(got.proto, *proto);
            for &(first, last) in ranges {
                prop_assert!(got.ports.contains(first) && got.ports.contains(last));
            }
        }
    }
}

// ---- snapshots --------------------------------------------------------------------------

/// One generated socket record of a snapshot: (proto, address, port, state, uid, inode).
type RecordParts = (Proto, IpAddr, u16, State, Option<u32>, u64);

fn record_parts() -> impl Strategy<Value = RecordParts> {
    let states = proptest::sample::select(State::ALL.to_vec());
    (
        proto(),
        any::<IpAddr>(),
        any::<u16>(),
        states,
        any::<Option<u32>>(),
        any::<u64>(),
    )
}

fn record_json((proto, address, port, state, uid, inode): &RecordParts) -> serde_json::Value {
    let range = match port {
        0..=1023 => "well-known",
        1024..=49151 => "registered",
        _ => "dynamic",
    };
    let listening = matches!(state, State::Listen | State::Unconn);
    let state = serde_json::to_value(state).expect("a state serializes");
    serde_json::json!({
        "proto": proto.as_str(),
        "family": if address.is_ipv4() { "ipv4" } else { "ipv6" },
        "local_address": address.to_string(),
        "local_port": port,
        "remote_address": if listening { serde_json::Value::Null } else { "10.0.0.2".into() },
        "remote_port": if listening { serde_json::Value::Null } else { 50000.into() },
        "state": state,
        "local_range": range,
        "remote_range": if listening { serde_json::Value::Null } else { "dynamic".into() },
        "ephemeral": false,
        "local_service": null,
        "remote_service": null,
        "direction": null,
        "uid": uid,
        "user": null,
        "inode": inode,
        "processes": [{"pid": 42, "name": "server", "user": null, "cmdline": "server --port"}],
        "owner_note": null,
    })
}

proptest! {
    #[test]
    fn snapshots_never_panic(text in any_text()) {
        let services = Services::with_system_services(None);
        let _ = listener::from_snapshot_text(&text, &services);
    }

    #[test]
    fn damaged_snapshots_never_panic(
        records in proptest::collection::vec(record_parts(), 0..6),
        cut in any::<prop::sample::Index>(),
        junk in near("{}[],:\"0123456789.-enulltruefalse", 8),
    ) {
        let document = serde_json::json!({
            "schema": 1, "host": "h", "captured_at": "2026-01-01T00:00:00Z",
            "sockets": records.iter().map(record_json).collect::<Vec<_>>(), "warnings": [],
        })
        .to_string();
        let at = cut.index(document.len() + 1);
        let damaged = format!("{}{junk}{}", &document[..at], &document[at..]);
        let services = Services::with_system_services(None);
        let _ = listener::from_snapshot_text(&damaged, &services);
    }

    #[test]
    fn written_snapshots_read_back(
        host in "[a-z][a-z0-9-]{0,20}",
        records in proptest::collection::vec(record_parts(), 0..20),
        warnings in proptest::collection::vec(any::<String>(), 0..3),
    ) {
        let document = serde_json::json!({
            "schema": 1,
            "host": host,
            "captured_at": "2026-11-25T08:14:08Z",
            "sockets": records.iter().map(record_json).collect::<Vec<_>>(),
            "warnings": warnings,
        });
        let text = serde_json::to_string_pretty(&document).expect("JSON");
        let services = Services::with_system_services(None);
        let read = listener::from_snapshot_text(&text, &services).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&read.host, &host);
        prop_assert_eq!(&read.warnings, &warnings);
        let listening: Vec<_> = records
            .iter()
            .filter(|(_, _, _, state, _, _)| matches!(state, State::Listen | State::Unconn))
            .collect();
        prop_assert_eq!(read.listeners.len(), listening.len());
        for (got, (proto, address, port, _, uid, _)) in read.listeners.iter().zip(listening) {
            prop_assert_eq!((got.proto, got.address, got.port, got.uid), (*proto, *address, *port, *uid));
        }
    }
}

// ---- /etc/services and cgroups ----------------------------------------------------------

proptest! {
    #[test]
    fn etc_services_never_panic(text in any_text(), port in any::<u16>(), proto in proto()) {
        let services = Services::with_system_services(Some(&text));
        let _ = services.name(port, proto);
        let _ = services.description(port, proto);
    }

    #[test]
    fn written_etc_services_read_back(
        entries in proptest::collection::btree_map(
            (any::<u16>(), prop_oneof![Just("tcp"), Just("udp")]),
            "[a-z][a-z0-9-]{0,14}",
            0..30,
        ),
        comment in "[ -~]{0,30}",
    ) {
        let mut text = format!("# {comment}\n\n");
        for ((port, proto), name) in &entries {
            text.push_str(&format!("{name}\t{port}/{proto}\talias-{name}  # {comment}\n"));
        }
        let services = Services::with_system_services(Some(&text));
        for ((port, proto), name) in &entries {
            let proto = if *proto == "tcp" { Proto::Tcp } else { Proto::Udp };
            prop_assert_eq!(services.name(*port, proto), Some(name.as_str()));
        }
    }

    #[test]
    fn cgroups_never_panic(text in any_text()) {
        let _ = cgroup::parse(&text);
    }

    #[test]
    fn cgroups_near_the_syntax_never_panic(
        lines in proptest::collection::vec(near("0123456789abcdef:/.-=scopeservicedockerkubepods", 90), 0..6),
    ) {
        let _ = cgroup::parse(&lines.join("\n"));
    }

    #[test]
    fn written_cgroups_read_back(
        unit in "[a-z][a-z0-9@_-]{0,20}",
        slices in proptest::collection::vec("[a-z][a-z0-9_-]{0,10}\\.slice", 0..3),
        id in "[0-9a-f]{64}",
        v1 in proptest::collection::btree_map(2u32..20, "[a-z_]{1,10}", 0..4),
    ) {
        let prefix: String = slices.iter().map(|slice| format!("/{slice}")).collect();
        let v1: String = v1
            .iter()
            .map(|(number, controller)| format!("{number}:{controller}:/user.slice\n"))
            .collect();
        let service = cgroup::parse(&format!("{v1}0::{prefix}/{unit}.service\n"));
        prop_assert_eq!(service.unit, Some(format!("{unit}.service")));
        prop_assert_eq!(service.container, None);
        let docker = cgroup::parse(&format!("{v1}0::{prefix}/docker-{id}.scope\n"));
        prop_assert_eq!(docker.unit, None);
        let container = docker.container.ok_or_else(|| TestCaseError::fail("no container"))?;
        prop_assert_eq!((container.runtime, container.id), ("docker", id));
    }
}
