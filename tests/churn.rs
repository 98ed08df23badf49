//! Churn (issue 14): processes that fork, exec, pass sockets over unix sockets (SCM_RIGHTS) and
//! exit abruptly (`tests/churn_worker.py`, logging every socket each of them holds), while
//! portstat runs list, who, summary and audit over and over. No run may fail, panic or print
//! invalid JSON, and no socket of the churn may be attributed to a pid that never held it.
//!
//! It lasts `PORTSTAT_CHURN_SECS` seconds (default 15, at most 60).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// One portstat run's command line, and the exit statuses that mean it worked.
struct Run {
    args: Vec<String>,
    statuses: &'static [i32],
    json: bool,
}

fn runs(port: Option<u16>) -> Vec<Run> {
    let run = |args: &[&str], statuses, json| Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        statuses,
        json,
    };
    let port = port.map_or("1".to_string(), |p| p.to_string());
    vec![
        run(&["-a", "-n", "--json"], &[0], true),
        run(&["-l"], &[0], false),
        run(&["-a", "--format", "csv"], &[0], false),
        // who: 0 can bind, 1 cannot (the churn holds it).
        run(&["who", &port, "--json"], &[0, 1], true),
        run(&["who", &port], &[0, 1], false),
        run(&["summary", "--json"], &[0], true),
        // audit: 0 pass, 1 findings.
        run(&["audit", "--json"], &[0, 1], true),
        run(&["audit"], &[0, 1], false),
    ]
}

/// Which pids the log says held each socket inode, and the listener ports it opened.
fn read_log(text: &str) -> (HashMap<u64, HashSet<u64>>, Vec<u16>, bool) {
    let mut held: HashMap<u64, HashSet<u64>> = HashMap::new();
    let mut ports = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["PORT", port] => ports.push(port.parse().expect("port")),
            ["DONE"] => done = true,
            [pid, inode] => {
                let pid = pid.parse().expect("pid");
                held.entry(inode.parse().expect("inode"))
                    .or_default()
                    .insert(pid);
            }
            _ => panic!("bad churn log line {line:?}"),
        }
    }
    (held, ports, done)
}

#[test]
fn churn_never_fails_panics_or_misattributes_a_socket() {
    let seconds: u64 = std::env::var("PORTSTAT_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .min(60);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("churn.log");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/churn_worker.py");
    let seed = std::process::id();
    let mut worker = Command::new("python3")
        .arg(&script)
        .arg(&log)
        .arg(seconds.to_string())
        .arg(seed.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 runs tests/churn_worker.py (.ci/run installs python3)");

    // Every (inode, pid) portstat attributed, with the run that said so.
    let mut attributed: Vec<(u64, u64)> = Vec::new();
    let mut failures = Vec::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let port = text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("PORT ")?.parse().ok());
        for run in runs(port) {
            let output = portstat().args(&run.args).output().expect("portstat runs");
            count += 1;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let status = output.status.code();
            if !status.is_some_and(|code| run.statuses.contains(&code))
                || stderr.contains("panicked")
                || stderr.contains("internal error")
            {
                failures.push(format!("{:?}: {:?}\n{stderr}", run.args, output.status));
                continue;
            }
            if !run.json {
                continue;
            }
            let document: Value = match serde_json::from_slice(&output.stdout) {
                Ok(document) => document,
                Err(error) => {
                    failures.push(format!("{:?}: invalid JSON: {error}", run.args));
                    continue;
                }
            };
            if run.args[0] == "-a" {
                for socket in sockets(&document) {
                    let Some(inode) = socket["inode"].as_u64() else {
                        continue;
                    };
                    for pid in pids(socket) {
                        attributed.push((inode, pid));
                    }
                }
            }
        }
    }
    let finished = worker.wait().expect("worker ends");
    assert!(finished.success(), "the churn worker failed: {finished}");
    let (held, ports, done) = read_log(&std::fs::read_to_string(&log).expect("churn log"));
    assert!(done, "the churn worker did not finish its log");

    assert!(
        failures.is_empty(),
        "{} of {count} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Only the churn's own sockets can be checked: for those the log knows every holder.
    let checked: Vec<&(u64, u64)> = attributed
        .iter()
        .filter(|(inode, _)| held.contains_key(inode))
        .collect();
    let wrong: Vec<String> = checked
        .iter()
        .filter(|(inode, pid)| !held[inode].contains(pid))
        .map(|(inode, pid)| format!("socket {inode} attributed to pid {pid}, which never held it"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The test could have failed: the churn was seen, many times, by many processes.
    let holders: HashSet<u64> = checked.iter().map(|(_, pid)| *pid).collect();
    assert!(
        ports.len() >= 10,
        "the churn opened only {} listeners",
        ports.len()
    );
    assert!(
        checked.len() >= 50 && holders.len() >= 5,
        "only {} attributions of churn sockets, to {} processes, were seen in {count} runs",
        checked.len(),
        holders.len()
    );
    eprintln!(
        "churn: {count} runs, {} attributions of {} churn sockets to {} processes, all right",
        checked.len(),
        held.len(),
        holders.len()
    );
}
