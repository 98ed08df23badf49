//! What reading and judging the firewall costs `audit` (issue 15's target: at most 50 ms more
//! on a 1,000-rule ruleset). Run by the bench inside its private network namespace: a veth
//! interface with an address beyond loopback (so every listener has a question to answer),
//! 100 TCP listeners, and `portstat audit` timed with no ruleset and with a generated
//! 1,000-rule nftables ruleset (sets, prefixes, jumps, a NAT table), in alternating rounds.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct FirewallCost {
    pub rules: usize,
    pub without_ms: f64,
    pub with_ms: f64,
    pub runs: usize,
}

impl FirewallCost {
    pub fn added_ms(&self) -> f64 {
        self.with_ms - self.without_ms
    }

    pub fn section(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "## Firewall cost\n\n`portstat audit --json` on 100 TCP listeners and an address \
             beyond loopback, with no ruleset and with a generated {}-rule nftables ruleset \
             (`xtask/src/firewall_cost.rs`), {} alternating runs each, medians:\n",
            self.rules, self.runs
        );
        let _ = writeln!(text, "| ruleset | median ms |\n|---|---:|");
        let _ = writeln!(text, "| none | {:.1} |", self.without_ms);
        let _ = writeln!(text, "| {} rules | {:.1} |", self.rules, self.with_ms);
        let _ = writeln!(
            text,
            "\nAdded by reading (the nf_tables netlink dump, the iptables save tools where \
             needed) and judging: {:.1} ms (target: at most 50 ms).",
            self.added_ms()
        );
        text
    }
}

fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("{program}: {error}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|error| format!("{program}: {error}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| format!("{program}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Measures, in the calling process's (private) network namespace.
pub fn measure(portstat: &Path, rules: usize, runs: usize) -> Result<FirewallCost, String> {
    // A veth pair: this kernel may have no dummy driver.
    run(
        "ip",
        &[
            "link", "add", "pbench0", "type", "veth", "peer", "name", "pbench1",
        ],
        None,
    )?;
    run(
        "ip",
        &["addr", "add", "10.99.0.1/24", "dev", "pbench0"],
        None,
    )?;
    run("ip", &["link", "set", "pbench0", "up"], None)?;
    let listeners: Vec<TcpListener> = (0..100)
        .map(|_| TcpListener::bind(("0.0.0.0", 0)))
        .collect::<Result<_, _>>()
        .map_err(|error| format!("listeners: {error}"))?;
    let generated = crate::ruleset::generated(rules);
    let audit = || -> Result<f64, String> {
        let started = Instant::now();
        let status = Command::new(portstat)
            .args(["audit", "--json", "--fail-on", "never"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|error| format!("portstat: {error}"))?;
        if !status.success() {
            return Err(format!("portstat audit: {status}"));
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        run("nft", &["flush", "ruleset"], None)?;
        without.push(audit()?);
        run("nft", &["-f", "-"], Some(&generated))?;
        with.push(audit()?);
    }
    run("nft", &["flush", "ruleset"], None)?;
    run("ip", &["link", "del", "pbench0"], None)?;
    drop(listeners);
    Ok(FirewallCost {
        rules,
        without_ms: median(without),
        with_ms: median(with),
        runs,
    })
}

#[derive(clap::Args, Debug)]
pub struct FirewallCostArgs {
    /// The portstat binary to measure (build it with `cargo build --release`)
    #[arg(long, default_value = "target/release/portstat")]
    portstat: std::path::PathBuf,
    /// Rules in the generated ruleset
    #[arg(long, default_value_t = 1000)]
    rules: usize,
    /// Alternating runs with and without the ruleset
    #[arg(long, default_value_t = 15)]
    runs: usize,
}

/// `cargo xtask firewall-cost`: [`measure`] in a namespace of its own, printed as the bench's
/// section (BENCHMARKS.md is left alone).
pub fn task(args: &FirewallCostArgs) -> std::process::ExitCode {
    if let Err(error) = crate::private_netns() {
        eprintln!("firewall-cost: {error}");
        return std::process::ExitCode::FAILURE;
    }
    match measure(&args.portstat, args.rules, args.runs) {
        Ok(cost) => {
            println!("{}", cost.section());
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("firewall-cost: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
