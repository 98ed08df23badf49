//! End-to-end: `portstat who PORT --stop` against real servers on loopback, the test's own
//! children (a plain listener, one that ignores SIGTERM, a pre-forked master with workers), and
//! the refusals: no terminal to ask on, pid 1. The systemd and container paths are tested
//! against the fake OS only (src/commands/stop.rs): there is no systemd here to stop a unit.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// Binds loopback port 0, listens, prints the port, then runs the rest of the script.
const LISTEN: &str = "\
import os, signal, socket, sys, time
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen()
port = s.getsockname()[1]
";

/// A python3 server: killed on drop.
struct Server {
    child: Child,
    /// What its first line said after the port.
    extra: Vec<u32>,
    port: u16,
}

impl Server {
    /// `script` runs after [`LISTEN`] and must print the port (and any pids) on one line.
    fn spawn(script: &str) -> Server {
        let mut child = Command::new("python3")
            .args(["-c", &format!("{LISTEN}{script}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server says its port");
        let mut words = line.split_whitespace().map(|word| word.parse::<u32>());
        let port = words
            .next()
            .and_then(Result::ok)
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let extra = words.map(|word| word.expect("a pid")).collect();
        Server { child, extra, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, waiting at most a few seconds; `None` while it runs.
    fn ended(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for pid in &self.extra {
            // SAFETY: kill(2) on a worker pid this test's server printed; harmless if gone.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SLEEP: &str = "print(port, flush=True)\ntime.sleep(60)\n";

const IGNORES_SIGTERM: &str =
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint(port, flush=True)\ntime.sleep(60)\n";

/// A pre-forked server: two workers share the listener; the master ends them on SIGTERM.
const PRE_FORKED: &str = "\
workers = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        while True:
            time.sleep(60)
    workers.append(pid)
def stop(*_):
    for worker in workers:
        os.kill(worker, signal.SIGTERM)
    for worker in workers:
        os.waitpid(worker, 0)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
print(port, *workers, flush=True)
while True:
    time.sleep(60)
";

/// `who PORT --stop ARGS`, with no controlling terminal (its own session) and no input.
fn stop(port: u16, args: &[&str]) -> Output {
    let mut command = portstat();
    command
        .args(["who", &port.to_string(), "--stop"])
        .args(args)
        .stdin(Stdio::null());
    // SAFETY: setsid between fork and exec: async-signal-safe, touches nothing of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command.output().expect("portstat runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_plain_listener_is_sent_sigterm_and_the_port_is_free_after() {
    let mut server = Server::spawn(SLEEP);
    let output = stop(server.port, &["--yes"]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(
        said.contains("Sent SIGTERM to python3")
            && said.contains(&format!("(pid {})", server.pid())),
        "{said}"
    );
    assert!(said.contains("is free now"), "{said}");
    let status = server.ended().expect("the server has ended");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let again = stop(server.port, &["--yes"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again).contains("nothing to stop"), "{}", text(&again));
}

#[test]
fn one_that_ignores_sigterm_stays_without_force_and_is_killed_with_it() {
    let mut server = Server::spawn(IGNORES_SIGTERM);
    let output = stop(server.port, &["--yes", "--timeout", "500ms"]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("is still held after"), "{said}");
    assert!(said.contains("--force sends SIGKILL"), "{said}");
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "it ignores SIGTERM"
    );

    let output = stop(
        server.port,
        &["--yes", "--timeout", "300ms", "--force", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let signals: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| step["signal"].as_str().expect("a signal step"))
        .collect();
    assert_eq!(signals, ["SIGTERM", "SIGKILL"], "{report:#}");
    assert_eq!(report["free"], true);
    assert_eq!(report["plans"][0]["pid"], server.pid());
    let status = server.ended().expect("killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn a_pre_forked_master_is_signalled_never_a_worker_and_the_port_is_free_after() {
    let mut server = Server::spawn(PRE_FORKED);
    let workers = server.extra.clone();
    assert_eq!(workers.len(), 2);
    let output = stop(server.port, &["--yes", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["plans"][0]["kind"], "process", "{report:#}");
    assert_eq!(report["plans"][0]["pid"], server.pid(), "{report:#}");
    let mut planned_workers: Vec<u64> = report["plans"][0]["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|worker| worker["pid"].as_u64().expect("pid"))
        .collect();
    planned_workers.sort_unstable();
    let mut expected: Vec<u64> = workers.iter().map(|&pid| u64::from(pid)).collect();
    expected.sort_unstable();
    assert_eq!(planned_workers, expected);
    let signalled: Vec<&Value> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| &step["pid"])
        .collect();
    assert_eq!(signalled, [&Value::from(server.pid())], "{report:#}");
    assert_eq!(report["free"], true);
    // The master ended its workers and exited of its own accord.
    assert_eq!(server.ended().expect("ended").code(), Some(0));
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_stopped() {
    let mut server = Server::spawn(SLEEP);
    let output = stop(server.port, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no terminal") && stderr.contains("--yes"),
        "{stderr}"
    );
    assert!(server.child.try_wait().expect("try_wait").is_none());
}

#[test]
fn the_stop_flags_need_stop() {
    for flag in ["--yes", "--force", "--timeout=1s"] {
        let output = portstat()
            .args(["who", "8080", flag])
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{flag}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--stop"),
            "{flag}"
        );
    }
}

/// pid 1 of a new PID namespace holds the port, and runs portstat inside it.
#[test]
#[ignore = "needs root"]
fn root_pid_1_is_never_signalled() {
    let binary = assert_cmd::cargo::cargo_bin("portstat");
    let script = format!(
        "{LISTEN}import subprocess\n\
         r = subprocess.run([{binary:?}, 'who', str(port), '--stop', '--yes', '--json'], \
         capture_output=True)\n\
         print(r.returncode)\n\
         print(r.stdout.decode())\n"
    );
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "python3", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (code, json) = said.split_once('\n').expect("two lines");
    assert_eq!(code, "2", "{said}");
    let report: Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(report["plans"][0]["kind"], "refuse", "{report:#}");
    assert!(
        report["plans"][0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("pid 1")),
        "{report:#}"
    );
    assert_eq!(report["steps"], serde_json::json!([]));
}
