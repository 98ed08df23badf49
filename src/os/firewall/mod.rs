//! Readers of the host's firewall rules, one per tool, into [`crate::core::firewall`]'s model,
//! and the dump of every tool's output from inside the namespace being inspected.
//!
//! nftables' ruleset is read from the kernel over netlink ([`netlink`]); `nft -j list ruleset`
//! is run instead only when that dump fails.
//!
//! iptables-nft's tables show in nftables' ruleset too, but only as opaque `xt` expressions
//! (a DNAT's target is lost), so those tables are read from `iptables-nft-save` and left out of
//! nft's. Legacy iptables tables are invisible to nft: they are read with
//! `iptables-legacy-save` whenever the kernel says the namespace has any.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::core::firewall::{Chain, Origin, Ruleset, TableFamily};

pub mod iptables;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod nft;

/// What each tool printed inside one namespace; `None` where a tool did not run.
#[derive(Debug, Default)]
pub struct Dumps {
    /// nftables' ruleset as the kernel dumped it, as an nft JSON document ([`netlink`]).
    pub netlink: Option<serde_json::Value>,
    /// `nft -j list ruleset`, run when the netlink dump failed.
    pub nft: Option<Vec<u8>>,
    /// `iptables-nft-save`, `ip6tables-nft-save`.
    pub iptables_nft: [Option<String>; 2],
    /// `iptables-legacy-save`, `ip6tables-legacy-save`.
    pub iptables_legacy: [Option<String>; 2],
}

const FAMILIES: [TableFamily; 2] = [TableFamily::Ip, TableFamily::Ip6];

/// One ruleset from every dump: nft's tables, less those iptables-nft manages (its save text
/// shows them whole, with iptables' rule numbers and text); plus the legacy iptables tables.
pub fn assemble(dumps: &Dumps) -> Result<Ruleset, String> {
    let mut ruleset = Ruleset::default();
    let mut native = Vec::new();
    if let Some(document) = &dumps.netlink {
        native = nft::parse_document(document)
            .map_err(|error| format!("nf_tables netlink: {error:#}"))?;
        ruleset.read.push("nf_tables netlink".into());
    } else if let Some(json) = &dumps.nft {
        native = nft::parse(json).map_err(|error| format!("nft -j list ruleset: {error:#}"))?;
        ruleset.read.push("nft".into());
    }
    let mut taken = Vec::new();
    for (dump, family) in dumps.iptables_nft.iter().zip(FAMILIES) {
        let Some(text) = dump else { continue };
        let iptables::Parsed { chains, gaps } =
            iptables::parse_with_gaps(text, family, Origin::IptablesNft)
                .map_err(|error| format!("{}: {error:#}", save_tool(family, "nft")))?;
        // A native nft table that merely has an iptables name (`ip nat` made with nft) is one
        // the save tool can only call incompatible: it stays nft's, whole.
        let foreign = incompatible_tables(text);
        let about_foreign = |gap: &String| {
            foreign
                .iter()
                .any(|t| gap.contains(&format!("table {t} ")) || gap.contains(&format!("`{t}'")))
        };
        let chains: Vec<Chain> = chains
            .into_iter()
            .filter(|chain| !foreign.contains(&chain.table))
            .collect();
        ruleset
            .gaps
            .extend(gaps.into_iter().filter(|gap| !about_foreign(gap)));
        if !chains.is_empty() {
            ruleset.read.push(save_tool(family, "nft"));
        }
        taken.extend(chains);
    }
    native.retain(|chain| {
        !taken
            .iter()
            .any(|t| t.family == chain.family && t.table == chain.table)
    });
    // nft's own tables first: the order tables were listed in is the tie-break between base
    // chains of one priority.
    ruleset.chains = native;
    ruleset.chains.extend(taken);
    for (dump, family) in dumps.iptables_legacy.iter().zip(FAMILIES) {
        let Some(text) = dump else { continue };
        let iptables::Parsed { chains, gaps } =
            iptables::parse_with_gaps(text, family, Origin::IptablesLegacy)
                .map_err(|error| format!("{}: {error:#}", save_tool(family, "legacy")))?;
        ruleset.gaps.extend(gaps);
        ruleset.read.push(save_tool(family, "legacy"));
        ruleset.chains.extend(chains);
    }
    Ok(ruleset)
}

/// The tables iptables-nft-save says it can't show (`# Table `nat' contains incompatible
/// base-chains, use 'nft' tool to list them.`): nft's own, not iptables'.
fn incompatible_tables(save: &str) -> Vec<String> {
    save.lines()
        .filter(|line| line.starts_with('#') && line.contains("incompatible"))
        .filter_map(|line| {
            let start = line.find('`')? + 1;
            let end = start + line[start..].find('\'')?;
            Some(line[start..end].to_string())
        })
        .collect()
}

/// Whether nft's dump holds tables iptables-nft may manage, in the ip and the ip6 family, for
/// which its save tool runs: tables of the names iptables uses that have a chain of iptables'
/// built-in names (INPUT, PREROUTING, ...) or a rule with an `xt` expression (a match or target
/// nft can't show, a DNAT's target among them). A table of those names made with nft, with
/// nft's own chain names and no `xt` in it, is whole in nft's dump and starts no process
/// (running the save tool anyway would only cost time: `assemble` leaves a table it calls
/// incompatible to nft). A dump that is not nft JSON says yes, so nothing is missed.
fn iptables_named_tables(json: &[u8]) -> [bool; 2] {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(document) => iptables_named_tables_of(&document),
        Err(_) => [true, true],
    }
}

fn iptables_named_tables_of(document: &serde_json::Value) -> [bool; 2] {
    const NAMES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];
    const BUILT_IN: [&str; 5] = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
    let mut found = [false, false];
    let objects = document["nftables"].as_array().into_iter().flatten();
    for object in objects {
        let Some(item) = object.get("chain").or_else(|| object.get("rule")) else {
            continue;
        };
        let index = match item.get("family").and_then(Value::as_str) {
            Some("ip") => 0,
            Some("ip6") => 1,
            _ => continue,
        };
        let named = item
            .get("table")
            .and_then(Value::as_str)
            .is_some_and(|name| NAMES.contains(&name));
        // The name and family first: walking a rule for `xt` is the dear part.
        if found[index] || !named {
            continue;
        }
        found[index] = match item.get("name").and_then(Value::as_str) {
            Some(name) => BUILT_IN.contains(&name),
            None => item.get("expr").is_some_and(holds_xt),
        };
    }
    found
}

/// Whether an `xt` expression is anywhere in `value`.
fn holds_xt(value: &Value) -> bool {
    match value {
        Value::Object(object) => object.contains_key("xt") || object.values().any(holds_xt),
        Value::Array(items) => items.iter().any(holds_xt),
        _ => false,
    }
}

fn save_tool(family: TableFamily, variant: &str) -> String {
    let prefix = if family == TableFamily::Ip6 {
        "ip6"
    } else {
        "ip"
    };
    format!("{prefix}tables-{variant}-save")
}

/// Reads nftables' ruleset and runs every other tool inside the calling thread's network
/// namespace. A ruleset neither netlink nor nft could read, or legacy tables without the tool
/// that reads them, is an error: the ruleset would be partial, and a verdict on part of a
/// firewall is a guess.
pub fn dump() -> Result<Dumps, String> {
    let mut dumps = Dumps::default();
    // nftables first: the iptables-nft save tools are needed only when it has tables of
    // iptables' names (each tool is a process start and a netlink dump, which who and audit
    // wait for).
    let named = match read_nf_tables() {
        Ok(document) => {
            let named = iptables_named_tables_of(&document);
            dumps.netlink = Some(document);
            named
        }
        // A dump the reader could not make whole: nft reads the same kernel its own way.
        Err(netlink_error) => {
            let nft = tool("nft").ok_or_else(|| {
                format!(
                    "the nftables ruleset can't be read ({netlink_error}), and nft is not \
                     installed to read it instead (install nftables)"
                )
            })?;
            let nft = finish(start(&nft, &["-j", "list", "ruleset"])?)?;
            let named = iptables_named_tables(&nft);
            dumps.nft = Some(nft);
            named
        }
    };
    let mut saves = Vec::new();
    for (index, family) in FAMILIES.into_iter().enumerate() {
        // Without iptables-nft-save its tables stay in nft's dump as `xt` expressions, which
        // the evaluator treats as unknown: partial, but never wrong.
        if named[index]
            && let Some(save) = tool(&save_tool(family, "nft"))
        {
            saves.push((false, index, start(&save, &[])?));
        }
        let legacy = legacy_tables(family);
        if !legacy.is_empty() {
            let name = save_tool(family, "legacy");
            let save = tool(&name).ok_or_else(|| {
                format!(
                    "this namespace has legacy {} tables ({}), and {name} is not installed to \
                     read them",
                    if family == TableFamily::Ip6 {
                        "ip6tables"
                    } else {
                        "iptables"
                    },
                    legacy.join(", ")
                )
            })?;
            saves.push((true, index, start(&save, &[])?));
        }
    }
    for (legacy, index, child) in saves {
        let text = Some(text(finish(child)?));
        if legacy {
            dumps.iptables_legacy[index] = text;
        } else {
            dumps.iptables_nft[index] = text;
        }
    }
    Ok(dumps)
}

#[cfg(target_os = "linux")]
fn read_nf_tables() -> Result<serde_json::Value, String> {
    netlink::read()
}

/// nf_tables netlink is Linux's; elsewhere `dump` goes straight to nft.
#[cfg(not(target_os = "linux"))]
fn read_nf_tables() -> Result<serde_json::Value, String> {
    Err("nf_tables netlink exists on Linux only".into())
}

/// The legacy iptables tables the kernel holds for the calling thread's namespace.
fn legacy_tables(family: TableFamily) -> Vec<String> {
    let file = if family == TableFamily::Ip6 {
        "ip6_tables_names"
    } else {
        "ip_tables_names"
    };
    std::fs::read_to_string(Path::new("/proc/thread-self/net").join(file))
        .map(|names| names.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A tool in PATH or in the system directories root's PATH has (tests and cron jobs often
/// run without /usr/sbin).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A tool started, with its name for messages.
struct Running {
    name: String,
    child: std::process::Child,
}

fn start(program: &Path, args: &[&str]) -> Result<Running, String> {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("{name} could not run: {error}"))?;
    Ok(Running { name, child })
}

fn finish(running: Running) -> Result<Vec<u8>, String> {
    let Running { name, child } = running;
    let output = child
        .wait_with_output()
        .map_err(|error| format!("{name} could not run: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(format!("{name} failed ({}): {first}", output.status));
    }
    Ok(output.stdout)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The readers and the evaluator together, on rulesets captured from real tools: real
/// rootful podman (netavark, iptables-nft), real dockerd 20.10, real ufw, and the nftables
/// layouts of Docker 29, netavark's nft driver and firewalld (see each fixture's README).
#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use super::*;
    use crate::core::firewall::eval::Verdict;
    use crate::core::firewall::judge::{Judge, Network};
    use crate::core::model::{InterfaceAddress, Proto};

    fn fixture(path: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/firewall")
            .join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn network(addresses: &[(&str, u8, &str)]) -> Network {
        let addresses: Vec<InterfaceAddress> = addresses
            .iter()
            .map(|(address, prefix, interface)| InterfaceAddress {
                address: address.parse().expect("address"),
                prefix: *prefix,
                interface: interface.to_string(),
            })
            .collect();
        Network::of(&addresses)
    }

    fn wildcard() -> IpAddr {
        "0.0.0.0".parse().unwrap()
    }

    /// The lab's server namespace with podman's bridge, as `ip -j addr` recorded it.
    fn podman_network() -> Network {
        network(&[
            ("127.0.0.1", 8, "lo"),
            ("10.231.0.1", 24, "lab-srv"),
            ("fd00:231::1", 64, "lab-srv"),
            ("10.88.0.1", 16, "podman0"),
            ("fe80::d4b5:17ff:fed3:e8a8", 64, "veth0"),
        ])
    }

    fn podman(dir: &str) -> Result<Ruleset, String> {
        assemble(&Dumps {
            netlink: None,
            nft: Some(fixture(&format!("{dir}/nft.json")).into_bytes()),
            iptables_nft: [
                Some(fixture(&format!("{dir}/iptables-nft-save.txt"))),
                Some(fixture(&format!("{dir}/ip6tables-nft-save.txt"))),
            ],
            iptables_legacy: [None, None],
        })
    }

    #[test]
    fn real_podman_publishes_8080_around_an_input_drop_and_a_forward_drop_stops_it() {
        let network = podman_network();
        // As captured: no firewall of the user's, only netavark's rules.
        let ruleset = podman("podman");
        let judge = Judge::new(&ruleset, &network);
        let forwards = judge.forwards();
        assert_eq!(forwards.len(), 1, "{forwards:?}");
        let (forward, reach) = &forwards[0];
        assert_eq!(
            (forward.proto, forward.host_ports.first),
            (Proto::Tcp, 8080)
        );
        assert_eq!(
            (forward.to_address.to_string(), forward.to_port),
            ("10.88.0.2".into(), 80)
        );
        assert_eq!(reach.verdict, Verdict::Open, "{reach:?}");
        // conmon's own socket on 0.0.0.0:8080 is never reached: the DNAT comes first.
        let conmon = judge
            .listener(Proto::Tcp, wildcard(), 8080, false)
            .expect("judged");
        assert_eq!(conmon.verdict, Verdict::Blocked, "{conmon:?}");
        assert!(conmon.rule.expect("the DNAT").text.contains("DNAT"));

        // The ground truth of these two was measured with real connects (ground-truth.json).
        let ruleset = podman("podman/input-drop");
        let judge = Judge::new(&ruleset, &network);
        assert_eq!(judge.forwards()[0].1.verdict, Verdict::Open);
        let plain = judge
            .listener(Proto::Tcp, wildcard(), 5000, false)
            .expect("judged");
        assert_eq!(plain.verdict, Verdict::Blocked, "{plain:?}");

        let ruleset = podman("podman/forward-drop");
        let judge = Judge::new(&ruleset, &network);
        assert_eq!(judge.forwards()[0].1.verdict, Verdict::Blocked);

        // The same rules on a host that does not forward: nothing gets through.
        let ruleset = podman("podman");
        let network = podman_network().with_forwarding([Some(false), Some(true)]);
        let judge = Judge::new(&ruleset, &network);
        let (_, reach) = &judge.forwards()[0];
        assert_eq!(reach.verdict, Verdict::Blocked);
        assert!(
            reach
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains("net.ipv4.ip_forward = 0"),
            "{reach:?}"
        );
    }

    fn docker_network() -> Network {
        network(&[
            ("127.0.0.1", 8, "lo"),
            ("10.0.0.5", 24, "eth0"),
            ("172.17.0.1", 16, "docker0"),
        ])
    }

    #[test]
    fn real_docker_publishes_8080_whether_or_not_its_proxy_runs() {
        for (file, origin) in [
            ("iptables/docker.v4", "nft"),
            ("iptables/docker-noproxy.v4", "nft"),
            ("iptables/docker-legacy.v4", "legacy"),
        ] {
            let mut dumps = Dumps::default();
            let text = Some(fixture(file));
            if origin == "nft" {
                dumps.iptables_nft[0] = text;
            } else {
                dumps.iptables_legacy[0] = text;
            }
            let ruleset = assemble(&dumps);
            let network = docker_network();
            let judge = Judge::new(&ruleset, &network);
            let forwards = judge.forwards();
            assert_eq!(forwards.len(), 1, "{file}: {forwards:?}");
            let (forward, reach) = &forwards[0];
            assert_eq!(forward.host_ports.first, 8080, "{file}");
            assert_eq!(forward.to_address.to_string(), "172.17.0.2", "{file}");
            assert_eq!(forward.to_port, 80, "{file}");
            assert_eq!(reach.verdict, Verdict::Open, "{file}: {reach:?}");
        }
    }

    #[test]
    fn real_ufw_opens_ssh_restricts_redis_and_drops_the_rest() {
        let ruleset = assemble(&Dumps {
            iptables_nft: [Some(fixture("iptables/ufw.v4")), None],
            ..Dumps::default()
        });
        let network = network(&[("127.0.0.1", 8, "lo"), ("10.0.0.5", 24, "eth0")]);
        let judge = Judge::new(&ruleset, &network);
        let verdict = |port| {
            judge
                .listener(Proto::Tcp, wildcard(), port, false)
                .expect("judged")
        };
        assert_eq!(verdict(22).verdict, Verdict::Open, "{:?}", verdict(22));
        let redis = verdict(6379);
        assert_eq!(redis.verdict, Verdict::Restricted, "{redis:?}");
        assert_eq!(redis.sources, ["10.0.0.0/8"]);
        assert_eq!(
            verdict(8080).verdict,
            Verdict::Blocked,
            "{:?}",
            verdict(8080)
        );
        // `ufw limit` is a rate limit: whether a connection gets through depends on the rate.
        assert_eq!(
            verdict(2222).verdict,
            Verdict::Unknown,
            "{:?}",
            verdict(2222)
        );
    }

    #[test]
    fn nftables_layouts_of_docker_29_netavark_and_firewalld() {
        let nft = |name: &str| {
            assemble(&Dumps {
                nft: Some(fixture(&format!("nft/{name}.json")).into_bytes()),
                ..Dumps::default()
            })
        };
        // netavark's nft driver accepts forwarded connections by the conntrack mark its DNAT
        // chain sets (`ct mark set meta mark | 0x1000`), which its forward chain tests.
        for (name, network, to, verdict) in [
            ("docker29", docker_network(), "172.17.0.2", Verdict::Open),
            ("netavark", podman_network(), "10.88.0.2", Verdict::Open),
        ] {
            let ruleset = nft(name);
            let judge = Judge::new(&ruleset, &network);
            let forwards = judge.forwards();
            assert_eq!(forwards.len(), 1, "{name}: {forwards:?}");
            assert_eq!(forwards[0].0.to_address.to_string(), to, "{name}");
            assert_eq!(forwards[0].0.to_port, 80, "{name}");
            assert_eq!(
                forwards[0].1.verdict, verdict,
                "{name}: {:?}",
                forwards[0].1
            );
        }
        let ruleset = nft("netavark");
        let podman = podman_network();
        let judge = Judge::new(&ruleset, &podman);
        let (_, reach) = &judge.forwards()[0];
        let rule = reach.rule.as_ref().expect("the deciding rule");
        assert_eq!(
            (rule.chain.as_str(), rule.text.as_str()),
            ("FORWARD", "ct mark & 0x00001000 == 0x00001000 accept"),
            "{reach:?}"
        );
        assert!(reach.sources.is_empty(), "open from any source: {reach:?}");
        let ruleset = nft("firewalld");
        let network = network(&[("127.0.0.1", 8, "lo"), ("10.0.0.5", 24, "eth0")]);
        let judge = Judge::new(&ruleset, &network);
        let ssh = judge
            .listener(Proto::Tcp, wildcard(), 22, false)
            .expect("judged");
        assert_eq!(ssh.verdict, Verdict::Open, "{ssh:?}");
        let redis = judge
            .listener(Proto::Tcp, wildcard(), 6379, false)
            .expect("judged");
        assert_eq!(redis.verdict, Verdict::Blocked, "{redis:?}");
    }

    #[test]
    fn iptables_mark_and_connmark_carry_the_marks_a_later_table_tests() {
        // From 10.0.0.0/8: mark 0x10, saved to the connection (0x10), or'ed 0x100 (0x110),
        // restored to the packet (0x110). From anywhere else: 0, 0x100, 0x100.
        let save = "*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -s 10.0.0.0/8 -j MARK --set-xmark 0x10/0xffffffff
-A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff
-A PREROUTING -j CONNMARK --set-xmark 0x100/0x100
-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
*filter
:INPUT DROP [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m connmark --mark 0x110 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -m mark ! --mark 0x0/0xff -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -m mark --mark 0x100/0x100 -j ACCEPT
COMMIT
";
        let ruleset = assemble(&Dumps {
            iptables_nft: [Some(save.into()), None],
            ..Dumps::default()
        });
        let network = network(&[("127.0.0.1", 8, "lo"), ("10.0.0.5", 24, "eth0")]);
        let judge = Judge::new(&ruleset, &network);
        let verdict = |port| judge.listener(Proto::Tcp, wildcard(), port, false);
        let ssh = verdict(22).expect("judged");
        assert_eq!(ssh.verdict, Verdict::Restricted, "{ssh:?}");
        assert_eq!(ssh.sources, ["10.0.0.0/8"]);
        let http = verdict(80).expect("judged");
        assert_eq!(http.sources, ["10.0.0.0/8"], "{http:?}");
        let https = verdict(443).expect("judged");
        assert_eq!(https.verdict, Verdict::Open, "{https:?}");

        // A shift is not modelled: the mark it sets is unknown, and so is what tests it.
        let shifted = save.replace("--ctmask 0xff\n", "--ctmask 0xff --left-shift-mark 1\n");
        let ruleset = assemble(&Dumps {
            iptables_nft: [Some(shifted), None],
            ..Dumps::default()
        });
        let judge = Judge::new(&ruleset, &network);
        let ssh = judge
            .listener(Proto::Tcp, wildcard(), 22, false)
            .expect("judged");
        assert_eq!(ssh.verdict, Verdict::Unknown, "{ssh:?}");
        let reason = ssh.reason.unwrap_or_default();
        assert!(reason.contains("--left-shift-mark"), "{reason}");
    }

    #[test]
    fn a_native_table_with_an_iptables_name_stays_nfts_and_the_save_tools_run_only_when_needed() {
        let named = |path: &str| iptables_named_tables(fixture(path).as_bytes());
        // Real podman (netavark on iptables-nft): IPv4 tables only.
        assert_eq!(named("podman/nft.json"), [true, false]);
        assert_eq!(named("nft/iptables-nft.json"), [true, false]);
        assert_eq!(named("nft/docker29.json"), [false, false]);
        // A native `ip nat` table of nft's own, with nft's chain names and no xt in it: no
        // save tool runs.
        let native = r#"{"nftables": [{"table": {"family": "ip", "name": "nat"}},
            {"chain": {"family": "ip", "table": "nat", "name": "prerouting", "handle": 1,
             "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
            {"rule": {"family": "ip", "table": "nat", "chain": "prerouting", "handle": 2,
             "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
             "field": "dport"}}, "right": 40000}}, {"dnat": {"addr": "10.201.0.1",
             "port": 80}}]}}]}"#;
        assert_eq!(iptables_named_tables(native.as_bytes()), [false, false]);
        assert_eq!(iptables_named_tables(b"garbage"), [true, true]);
        let save = "# Table `nat' contains incompatible base-chains, use 'nft' tool to list them.\n\
                    *nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(incompatible_tables(save), ["nat"]);
        let assembled = assemble(&Dumps {
            nft: Some(fixture("nft/basic.json").into_bytes()),
            iptables_nft: [Some(save.into()), None],
            ..Dumps::default()
        })
        .expect("assembled");
        assert!(assembled.gaps.is_empty(), "{:?}", assembled.gaps);
        assert!(
            assembled
                .chains
                .iter()
                .all(|c| c.origin == crate::core::firewall::Origin::Nftables)
        );
        assert_eq!(assembled.read, ["nft"]);
    }

    #[test]
    fn iptables_nft_tables_are_read_from_the_save_text_not_from_nfts_xt_expressions() {
        let ruleset = assemble(&Dumps {
            nft: Some(fixture("podman/nft.json").into_bytes()),
            iptables_nft: [Some(fixture("podman/iptables-nft-save.txt")), None],
            ..Dumps::default()
        })
        .expect("assembled");
        let nat: Vec<_> = ruleset
            .chains
            .iter()
            .filter(|c| c.family == crate::core::firewall::TableFamily::Ip && c.table == "nat")
            .collect();
        assert!(!nat.is_empty());
        assert!(
            nat.iter()
                .all(|c| c.origin == crate::core::firewall::Origin::IptablesNft)
        );
        assert_eq!(ruleset.read, ["nft", "iptables-nft-save"]);
    }
}
