//! End-to-end: scans under resource limits (issue 14 #1). A thread that cannot be had (a
//! process limit of 1 for an unprivileged user, or too little address space for its stack)
//! must not crash a scan: the work is done on the calling thread instead.

use std::ffi::OsString;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use crate::common::*;

/// The commands that scan: each must finish with 0 or 1, never 101 (a panic).
const SCANS: &[&[&str]] = &[
    &["-l"],
    &["-a", "--json"],
    &["who", "1"],
    &["summary"],
    &["audit"],
];

fn binary() -> OsString {
    portstat().get_program().to_os_string()
}

/// The tests here run as nobody one at a time: under a process limit of 1, a second process of
/// nobody's makes the kernel refuse the next one's exec (`EAGAIN` after setuid).
static AS_NOBODY: Mutex<()> = Mutex::new(());

/// `prlimit LIMIT -- setpriv (as nobody) PROGRAM ARGS`: root runs prlimit, so the limit is set
/// before the uid changes and applies to nobody, whom it binds. Other tests run commands as
/// nobody too; while one does, exec is refused under `--nproc=1`, and this waits and retries.
fn as_nobody_under(limit: &str, program: impl Into<OsString>, args: &[&str]) -> Output {
    let program = program.into();
    let mut attempts = 0;
    loop {
        let output = Command::new("prlimit")
            .arg(limit)
            .arg("--")
            .args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ])
            .arg(&program)
            .args(args)
            .env_remove("NO_COLOR")
            .current_dir("/")
            .output()
            .expect("prlimit and setpriv run");
        let refused = output.status.code() == Some(126)
            && String::from_utf8_lossy(&output.stderr).contains("setpriv: failed to execute");
        attempts += 1;
        if !refused || attempts == 100 {
            return output;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_scans(limit: &str) {
    for args in SCANS {
        let output = as_nobody_under(limit, binary(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "portstat {args:?} under {limit} as nobody: {}\nstderr: {stderr}",
            output.status
        );
        assert!(
            !stderr.contains("panicked"),
            "portstat {args:?} under {limit} as nobody panicked: {stderr}"
        );
        if args.contains(&"--json") {
            let document: serde_json::Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|error| {
                    panic!("portstat {args:?} under {limit}: invalid JSON ({error})")
                });
            assert!(document["sockets"].is_array(), "{document}");
        }
    }
}

#[test]
#[ignore = "needs root"]
fn root_scans_survive_when_no_thread_can_be_started() {
    assert!(is_root(), "run as root");
    let _alone = AS_NOBODY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = "--nproc=1:1";
    // The premise: as nobody with a process limit of 1, nothing more can be started (nobody
    // typically has no other processes, and the shell itself is the one allowed).
    let probe = as_nobody_under(limit, "sh", &["-c", "/bin/true; /bin/true"]);
    assert!(
        !probe.status.success(),
        "a second process could be started as nobody under {limit}: the test proves nothing"
    );
    check_scans(limit);
}

#[test]
#[ignore = "needs root"]
fn root_scans_survive_a_small_address_space() {
    assert!(is_root(), "run as root");
    let _alone = AS_NOBODY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = format!("--as={}", 60 * 1024 * 1024);
    let start = as_nobody_under(&limit, binary(), &["--version"]);
    if !matches!(start.status.code(), Some(0)) {
        // Not portstat's doing: the binary (a debug build is large) or the runtime could not
        // even be loaded in this much address space.
        eprintln!(
            "skipped: portstat does not start under {limit}: {}",
            start.status
        );
        return;
    }
    check_scans(&limit);
}
