//! Hostile input (issue 14): files a user names that could hang portstat or eat its memory (a
//! FIFO, `/dev/zero`), and recorded socket tables damaged in ways that once cost more than the
//! damaged line (an invalid UTF-8 byte, a missing column, a missing header).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{portstat, sockets};

const RECORDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/proc-net/recorded");
const AUDIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/audit");

/// Runs `command`, failing the test (and killing portstat) if it has not ended within 20 s.
fn promptly(command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portstat starts");
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(Duration::from_secs(20)) {
        Ok(output) => output.expect("portstat runs"),
        Err(_) => {
            // SAFETY: kill(2) on the child this test started, which has not been reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("portstat {command:?} still running after 20 s");
        }
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit status 2 and a one-line error that says `says`.
fn bad_input(output: &Output, says: &str) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.starts_with("portstat: "), "{message}");
    assert!(message.contains(says), "wanted {says:?}: {message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success());
}

#[test]
fn a_fifo_as_input_policy_or_baseline_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().expect("utf-8 path");
    let snapshot = format!("{AUDIT}/web-1.json");
    for (args, what) in [
        (vec!["--input", fifo], "snapshot"),
        (vec!["--input", &snapshot, "--policy", fifo], "policy"),
        (vec!["--input", &snapshot, "--baseline", fifo], "baseline"),
    ] {
        let output = promptly(portstat().arg("audit").args(&args));
        bad_input(&output, &format!("{fifo}: not a regular file (a FIFO)"));
        assert!(
            stderr(&output).contains(&format!("cannot read {what}")),
            "{args:?}"
        );
    }
}

#[test]
fn a_device_as_input_is_refused_and_standard_input_is_capped() {
    for device in ["/dev/zero", "/dev/urandom"] {
        let output = promptly(portstat().args(["audit", "--input", device]));
        bad_input(
            &output,
            &format!("{device}: not a regular file (a character device)"),
        );
    }
    let zero = std::fs::File::open("/dev/zero").expect("/dev/zero");
    let output = promptly(portstat().args(["audit", "--input", "-"]).stdin(zero));
    bad_input(
        &output,
        "cannot read snapshot -: larger than the 256 MiB limit",
    );
    // A snapshot on standard input is still read.
    let snapshot = std::fs::File::open(format!("{AUDIT}/web-1.json")).expect("snapshot");
    let output = promptly(
        portstat()
            .args(["audit", "--input", "-", "--json"])
            .stdin(snapshot),
    );
    assert_ne!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_fifo_as_a_recorded_table_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::copy(format!("{RECORDED}/udp"), dir.path().join("udp")).expect("copy");
    let fifo = dir.path().join("tcp");
    mkfifo(&fifo);
    let output = promptly(portstat().arg("--proc-net").arg(dir.path()).arg("-a"));
    bad_input(
        &output,
        &format!(
            "cannot read socket table {}: not a regular file (a FIFO)",
            fifo.display()
        ),
    );
}

/// A directory holding the recorded `table`, changed by `damage`.
fn damaged(table: &str, damage: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut bytes = std::fs::read(format!("{RECORDED}/{table}")).expect("fixture");
    damage(&mut bytes);
    let path = dir.path().join(table);
    std::fs::write(&path, bytes).expect("write table");
    (dir, path)
}

/// `--json` output on recorded tables: the sockets' local ports and the warnings about the
/// tables (not those about owners, which depend on this machine's processes).
fn listed(dir: &Path) -> (Vec<u64>, Vec<String>) {
    let output = promptly(
        portstat()
            .arg("--proc-net")
            .arg(dir)
            .args(["-a", "-n", "--json"]),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let ports = sockets(&document)
        .iter()
        .map(|s| s["local_port"].as_u64().expect("port"))
        .collect();
    let warnings = document["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("a string").to_string())
        .filter(|w| w.starts_with(&dir.display().to_string()))
        .collect();
    (ports, warnings)
}

/// Byte offset of the start of 1-based line `number`.
fn line_start(bytes: &[u8], number: usize) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(number - 2)
        .map(|(at, _)| at + 1)
        .expect("line exists")
}

#[test]
fn an_invalid_utf8_byte_loses_only_its_line() {
    let (dir, path) = damaged("tcp", |bytes| {
        let at = line_start(bytes, 3) + 60;
        bytes[at] = 0xff;
    });
    let (ports, warnings) = listed(dir.path());
    assert_eq!(ports.len(), 15, "{ports:?}");
    assert_eq!(
        warnings,
        [format!(
            "{} line 3: not valid UTF-8 (byte 0xff at column 61), line skipped",
            path.display()
        )]
    );
}

#[test]
fn a_line_missing_a_column_is_skipped_with_a_warning() {
    // Line 2's timeout column taken out: its inode would have been read from the refcount.
    let (dir, path) = damaged("udp", |bytes| {
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut fields: Vec<&str> = lines[1].split_ascii_whitespace().collect();
        fields.remove(8);
        lines[1] = fields.join(" ");
        *bytes = (lines.join("\n") + "\n").into_bytes();
    });
    let (ports, warnings) = listed(dir.path());
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "{} line 2: 12 fields where a udp line has 13 or more: a column is missing",
            path.display()
        )),
        "{warnings:?}"
    );
}

#[test]
fn a_table_without_its_header_keeps_its_first_socket_with_a_warning() {
    let (dir, path) = damaged("udp", |bytes| {
        let body = line_start(bytes, 2);
        bytes.drain(..body);
    });
    let (ports, warnings) = listed(dir.path());
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert_eq!(
        warnings,
        [format!(
            "{} line 1: a socket where the header line should be (no header?); read as a socket",
            path.display()
        )]
    );
}
