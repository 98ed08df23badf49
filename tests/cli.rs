//! End-to-end: bad input, recorded tables, closed pipes. What a user sees when things go wrong.
// These tests drive real Linux sockets and /proc.

use std::io::Read;
use std::process::Stdio;

use crate::common::*;

/// Runs portstat with `args`, expecting exit status 2 and a one-line error containing `says`.
fn usage_error(args: &[&str], says: &str) {
    let output = portstat().args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("portstat: "), "{stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

#[test]
fn bad_port_specs_are_usage_errors() {
    usage_error(&["--port", "70000"], "port 70000 is out of range");
    usage_error(&["--port", "9-3"], "runs backwards");
    usage_error(&["--port", "http"], "\"http\" is not a port number");
    usage_error(&["--port", "22,"], "empty port");
    usage_error(&["99999"], "out of range");
}

#[test]
fn bad_states_flags_and_values_are_usage_errors() {
    usage_error(&["--state", "BOGUS"], "unknown state \"BOGUS\"");
    usage_error(&["--bogus"], "unexpected argument '--bogus'");
    usage_error(&["-z"], "unexpected argument '-z'");
    usage_error(&["--range", "huge"], "invalid value 'huge'");
    usage_error(&["--sort", "size"], "invalid value 'size'");
    usage_error(&["--format", "xml"], "invalid value 'xml'");
    usage_error(&["--pid", "abc"], "invalid value 'abc'");
    usage_error(&["--user", "no-such-user-xyz"], "no such user");
    usage_error(&["--json", "--format", "csv"], "cannot be used with");
}

#[test]
fn state_names_are_accepted_in_any_spelling() {
    for spelling in ["time-wait", "TIME_WAIT", "Time_Wait", "timewait"] {
        let output = portstat()
            .args(["--state", spelling, "--port", "1"])
            .output()
            .expect("runs");
        assert!(output.status.success(), "{spelling}");
    }
}

#[test]
fn help_and_version_succeed() {
    let help = portstat().arg("--help").output().expect("runs");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--listening",
        "--all",
        "--port",
        "--state",
        "--range",
        "--json",
        "Examples:",
    ] {
        assert!(text.contains(option), "help lacks {option}");
    }
    let version = portstat().arg("--version").output().expect("runs");
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("portstat "));
}

#[test]
fn malformed_table_lines_are_skipped_with_a_warning_and_the_rest_shown() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/malformed");
    let output = portstat()
        .args(["--proc-net", fixtures, "-a", "-n", "--json"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("malformed/tcp line 3: bad local address"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let ports: Vec<u64> = sockets(&document)
        .iter()
        .map(|s| s["local_port"].as_u64().expect("port"))
        .collect();
    assert_eq!(ports.len(), 5, "{ports:?}");
    let warnings = document["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("line 7: unknown state"))),
        "{warnings:?}"
    );
}

#[test]
fn many_warnings_are_summarised_on_stderr() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/malformed");
    let output = portstat()
        .args(["--proc-net", fixtures, "-a", "-n"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.lines().count() <= 6, "{stderr}");
    assert!(stderr.contains("more warnings"), "{stderr}");
}

#[test]
fn empty_tables_are_not_an_error() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/empty");
    let document = json_from(
        portstat()
            .args(["--proc-net", fixtures, "-a"])
            .arg("--json"),
    );
    assert!(sockets(&document).is_empty());
}

#[test]
fn missing_tables_are_a_clear_fatal_error() {
    let empty = tempfile::tempdir().expect("temp dir");
    let output = portstat()
        .args(["--proc-net"])
        .arg(empty.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("portstat: ") && stderr.contains("no socket tables"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_zero() {
    let mut child = portstat()
        .args(["-a", "-n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // the reader goes away before portstat writes
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

#[test]
fn every_kernel_state_is_read_and_the_default_view_keeps_listeners_and_established() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/every-state");
    let all = json_from(portstat().args(["--proc-net", fixtures, "-a", "-n", "--json"]));
    let states: Vec<&str> = sockets(&all)
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    for state in [
        "LISTEN",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "CLOSING",
        "NEW_SYN_RECV",
    ] {
        assert!(states.contains(&state), "{state} missing from {states:?}");
    }
    let default = json_from(portstat().args(["--proc-net", fixtures, "-n", "--json"]));
    let mut shown: Vec<&str> = sockets(&default)
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    shown.sort();
    shown.dedup();
    assert_eq!(shown, ["ESTABLISHED", "LISTEN"]);
    let closing = json_from(portstat().args([
        "--proc-net",
        fixtures,
        "-n",
        "--state",
        "close-wait,last_ack",
        "--json",
    ]));
    let mut picked: Vec<&str> = sockets(&closing)
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    picked.sort();
    assert_eq!(picked, ["CLOSE_WAIT", "LAST_ACK"]);
}

#[test]
fn a_bad_choice_lists_the_valid_ones() {
    usage_error(
        &["--sort", "bogus"],
        "possible values: port, proto, state, pid, process, user",
    );
    usage_error(
        &["--range", "low"],
        "possible values: well-known, registered, dynamic, ephemeral",
    );
}

#[test]
fn a_netns_path_that_is_not_a_network_namespace_is_bad_input() {
    for (path, what) in [
        ("/tmp", "a directory"),
        ("/etc/passwd", "a file"),
        ("/proc/self/ns/mnt", "a namespace of another kind"),
        ("/dev/null", "a device"),
    ] {
        usage_error(
            &["-l", "--netns", path],
            &format!("is not a network namespace ({what})"),
        );
    }
}

#[test]
fn a_fifo_given_as_netns_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let started = std::time::Instant::now();
    usage_error(
        &["-l", "--netns", fifo.to_str().expect("utf-8 path")],
        "is not a network namespace (a FIFO)",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
