//! End-to-end: the nftables reader over netlink (`src/os/firewall/netlink.rs`) reads what nft
//! reads. Each ruleset (the nft fixtures, podman's iptables-nft tables, a generated 1,000-rule
//! one) is loaded into a private network namespace this test creates (`unshare -n`, nothing
//! outside it is touched), and the model made from the kernel's dump must equal the model of
//! `nft -j list ruleset` there, rule for rule. `PORTSTAT_RECORD=1` also writes each dump to
//! `fixtures/firewall/netlink/NAME.bin`, the recorded data of the decoder's unit tests.
//! Root only.
// These tests load rulesets with nft inside private network namespaces.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use portstat::core::firewall::{Chain, Match, Test};
use portstat::os::firewall::{netlink, nft};

use crate::common::*;

/// A fixture: its name, the program that loads it (reading the file on standard input), the
/// file, and the `nft -j list ruleset` capture of the same ruleset its dump is compared with
/// offline (recorded beside the dump when there was none).
const RULESETS: &[(&str, &[&str], &str, &str)] = &[
    ("basic", NFT, "nft/basic.nft", "nft/basic.json"),
    ("docker29", NFT, "nft/docker29.nft", "nft/docker29.json"),
    ("netavark", NFT, "nft/netavark.nft", "nft/netavark.json"),
    ("firewalld", NFT, "nft/firewalld.nft", "nft/firewalld.json"),
    (
        "hostile",
        &["nft", "-j", "-f", "-"],
        "nft/hostile.nft.json",
        "nft/hostile.json",
    ),
    (
        "iptables-nft",
        RESTORE,
        "nft/iptables-nft.rules",
        "nft/iptables-nft.json",
    ),
    (
        "podman",
        RESTORE,
        "podman/iptables-nft-save.txt",
        "netlink/podman.json",
    ),
    (
        "coverage",
        NFT,
        "netlink/coverage.nft",
        "netlink/coverage.json",
    ),
    (
        "web-1",
        NFT,
        "../hosts/web-1/firewall/ruleset.nft",
        "../hosts/web-1/firewall/nft.json",
    ),
];

const NFT: &[&str] = &["nft", "-f", "-"];
const RESTORE: &[&str] = &["iptables-nft-restore"];

/// A path under fixtures/firewall.
fn fixture(path: &str) -> PathBuf {
    root().join("fixtures/firewall").join(path)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(program: &[&str], input: &[u8]) {
    let mut child = Command::new(program[0])
        .args(&program[1..])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the loader runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("the ruleset is written");
    let output = child.wait_with_output().expect("the loader ends");
    assert!(
        output.status.success(),
        "{}: {}",
        program.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn nft_json() -> Vec<u8> {
    let output = Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .output()
        .expect("nft runs");
    assert!(output.status.success(), "nft -j list ruleset");
    output.stdout
}

/// What each reader makes of `input` loaded by `program` in a fresh namespace.
struct Both {
    capture: netlink::Capture,
    netlink: Vec<Chain>,
    nft: Vec<Chain>,
    json: Vec<u8>,
    netlink_ms: f64,
    nft_ms: f64,
}

fn both(program: &'static [&'static str], input: Vec<u8>) -> Both {
    let netns = PrivateNetns::new();
    netns.run(move || {
        load(program, &input);
        let started = Instant::now();
        let capture = netlink::capture().expect("the kernel dumps the ruleset");
        let document = netlink::decode(&capture).expect("the dump decodes");
        let netlink = nft::parse_document(&document).expect("the document parses");
        let netlink_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let json = nft_json();
        let nft = nft::parse(&json).expect("nft's JSON parses");
        let nft_ms = started.elapsed().as_secs_f64() * 1000.0;
        Both {
            capture,
            netlink,
            nft,
            json,
            netlink_ms,
            nft_ms,
        }
    })
}

/// Unknown tests and actions compared by kind only: their text is each reader's rendering
/// of what it could not model.
fn same_match(a: &Match, b: &Match) -> bool {
    match (&a.test, &b.test) {
        (Test::Unknown(_), Test::Unknown(_)) => a.negated == b.negated,
        _ => a == b,
    }
}

/// Every difference between the two readers' models, one line each; the rules' texts apart.
fn differences(netlink: &[Chain], nft: &[Chain]) -> (Vec<String>, Vec<String>) {
    let mut model = Vec::new();
    let mut text = Vec::new();
    let names = |chains: &[Chain]| -> Vec<String> {
        chains
            .iter()
            .map(|c| format!("{} {} {}", c.family.as_str(), c.table, c.name))
            .collect()
    };
    if names(netlink) != names(nft) {
        model.push(format!(
            "chains: netlink {:?}\n   nft {:?}",
            names(netlink),
            names(nft)
        ));
        return (model, text);
    }
    for (ours, theirs) in netlink.iter().zip(nft) {
        let name = format!("{} {} {}", ours.family.as_str(), ours.table, ours.name);
        // nft 1.0.6's JSON leaves out the device of a netdev chain on a recent kernel (which
        // sends it as NFTA_HOOK_DEVS); the netlink reader has it.
        let device_left_out =
            |a: &Option<portstat::core::firewall::BaseChain>,
             b: &Option<portstat::core::firewall::BaseChain>| {
                matches!((a, b), (Some(a), Some(b)) if b.device.is_none()
                && portstat::core::firewall::BaseChain { device: None, ..a.clone() } == *b)
            };
        if (ours.base != theirs.base && !device_left_out(&ours.base, &theirs.base))
            || ours.origin != theirs.origin
        {
            model.push(format!("{name}: {:?} != {:?}", ours.base, theirs.base));
        }
        if ours.rules.len() != theirs.rules.len() {
            model.push(format!(
                "{name}: {} rules != {}",
                ours.rules.len(),
                theirs.rules.len()
            ));
            continue;
        }
        for (a, b) in ours.rules.iter().zip(&theirs.rules) {
            let matches = a.matches.len() == b.matches.len()
                && a.matches
                    .iter()
                    .zip(&b.matches)
                    .all(|(x, y)| same_match(x, y));
            let actions = match (&a.action, &b.action) {
                (
                    portstat::core::firewall::Action::Unknown(_),
                    portstat::core::firewall::Action::Unknown(_),
                ) => true,
                (x, y) => x == y,
            };
            if !matches || !actions || a.handle != b.handle || a.comment != b.comment {
                model.push(format!(
                    "{name} #{}: `{}`\n   netlink {:?} {:?}\n   nft     {:?} {:?}",
                    b.handle, b.text, a.matches, a.action, b.matches, b.action
                ));
            }
            if a.text != b.text {
                text.push(format!("{name}: `{}` != `{}`", a.text, b.text));
            }
        }
    }
    (model, text)
}

#[test]
#[ignore = "needs root"]
fn root_netlink_reads_every_fixture_ruleset_as_nft_does() {
    let record = std::env::var_os("PORTSTAT_RECORD").is_some();
    let mut failures = Vec::new();
    for (name, program, file, json) in RULESETS {
        let input = std::fs::read(fixture(file)).expect("the fixture");
        let read = both(program, input);
        assert!(!read.nft.is_empty(), "{name}: nft read no chain");
        if std::env::var_os("PORTSTAT_SHOW").is_some() {
            for chain in &read.netlink {
                for rule in &chain.rules {
                    eprintln!(
                        "{name} {}: {} => {:?} {:?}",
                        chain.name, rule.text, rule.matches, rule.action
                    );
                }
            }
        }
        let (model, text) = differences(&read.netlink, &read.nft);
        for line in &text {
            eprintln!("{name}: text: {line}");
        }
        failures.extend(model.into_iter().map(|line| format!("{name}: {line}")));
        if record {
            let path = fixture(&format!("netlink/{name}.bin"));
            std::fs::write(&path, &read.capture.messages).expect("the fixture is written");
            if json.starts_with("netlink/") {
                std::fs::write(fixture(json), &read.json).expect("the JSON is written");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[path = "../xtask/src/ruleset.rs"]
mod ruleset;

#[test]
#[ignore = "needs root"]
fn root_netlink_reads_a_thousand_rules_as_nft_does_and_says_how_long_it_took() {
    let read = both(&["nft", "-f", "-"], ruleset::generated(1000).into_bytes());
    let rules: usize = read.nft.iter().map(|c| c.rules.len()).sum();
    assert!(rules >= 1000, "{rules} rules");
    let (model, text) = differences(&read.netlink, &read.nft);
    assert!(model.is_empty(), "{}", model.join("\n"));
    assert!(text.is_empty(), "{}", text.join("\n"));
    // A figure, not an assertion: the speed is measured in xtask bench.
    eprintln!(
        "1,000 rules: netlink dump + decode + model {:.1} ms, nft -j + model {:.1} ms",
        read.netlink_ms, read.nft_ms
    );
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect("runs");
    assert!(status.success(), "{program} {}", args.join(" "));
}

/// `portstat audit --json` inside `netns`; with `hide_nft`, in a private mount namespace whose
/// nft is /dev/null, so portstat finds no nft to run.
fn audit(netns: &PrivateNetns, hide_nft: bool) -> serde_json::Value {
    let portstat = portstat().get_program().to_owned();
    let portstat = portstat.to_string_lossy();
    let net = format!("--net={}", netns.path());
    let mut script = String::new();
    if hide_nft {
        for nft in ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"] {
            if Path::new(nft).is_file() {
                script += &format!("mount --bind /dev/null {nft} && ");
            }
        }
    }
    script += &format!("exec nsenter {net} -- {portstat} audit --json --fail-on never");
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare runs");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("audit prints JSON")
}

/// (port, verdict, deciding rule's text) of each TCP listener.
fn verdicts(report: &serde_json::Value) -> Vec<(u64, String, String)> {
    let mut found: Vec<(u64, String, String)> = report["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .filter(|l| l["proto"] == "tcp")
        .map(|l| {
            (
                l["port"].as_u64().unwrap_or(0),
                l["firewall"]["verdict"].as_str().unwrap_or("").to_owned(),
                l["firewall"]["rule"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
#[ignore = "needs root"]
fn root_audit_judges_by_the_netlink_dump_and_needs_no_nft() {
    let netns = PrivateNetns::new();
    let input = std::fs::read(fixture("../hosts/web-1/firewall/ruleset.nft")).expect("fixture");
    let listeners = netns.run(move || {
        // Both ends of the pair in this private namespace: an address beyond loopback for the
        // listeners to be judged on.
        run(
            "ip",
            &[
                "link", "add", "pnfnl0", "type", "veth", "peer", "name", "pnfnl1",
            ],
        );
        run("ip", &["addr", "add", "10.77.0.1/24", "dev", "pnfnl0"]);
        run("ip", &["link", "set", "pnfnl0", "up"]);
        run("ip", &["link", "set", "pnfnl1", "up"]);
        load(NFT, &input);
        [22, 80, 6379].map(|port| {
            std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind in the namespace")
        })
    });
    let with_nft = verdicts(&audit(&netns, false));
    let without = verdicts(&audit(&netns, true));
    assert_eq!(with_nft, without);
    let expected = [
        (22, "open", "tcp dport 22 accept"),
        (80, "open", "tcp dport @web accept"),
        (6379, "blocked", "policy drop"),
    ];
    let expected: Vec<(u64, String, String)> = expected
        .iter()
        .map(|(p, v, t)| (*p, v.to_string(), t.to_string()))
        .collect();
    assert_eq!(without, expected);
    drop(listeners);
}
