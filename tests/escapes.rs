//! Names from other processes never reach the reader's terminal raw (issue 14 #3): a process
//! whose name is an escape sequence is listed with the sequence escaped by the table, `who`,
//! `summary` and CSV, and kept exactly, JSON-escaped, by `--json`. And CSV into a closed pipe
//! ends quietly, as the other formats do (issue 14 #6).

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::common::{portstat, serial, wait_for_json, with_local_port};

/// Clears the screen, sets the window title and rings the bell: 12 bytes, within the 15 the
/// kernel keeps of a process name.
const HOSTILE: &str = "\x1b[2J\x1b]0;pwn\x07";

/// `sleep` run under a name that is an escape sequence (the kernel names a process after the
/// file it executes, here a symlink), holding `listener`. Killed on drop.
struct Hostile {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Hostile {
    fn spawn(listener: &TcpListener) -> Hostile {
        let dir = tempfile::tempdir().expect("temporary directory");
        let link = dir.path().join(HOSTILE);
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("a sleep binary");
        std::os::unix::fs::symlink(sleep, &link).expect("symlink");
        let fd = listener.as_raw_fd();
        let mut command = Command::new(&link);
        command.arg("60").stdin(Stdio::null());
        // SAFETY: fcntl on a descriptor this process owns is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn the hostile sleep");
        Hostile { child, _dir: dir }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout_of(args: &[&str]) -> Vec<u8> {
    let output = portstat().args(args).output().expect("portstat runs");
    // `who` exits 1 for "cannot bind", the answer here: the port is held.
    assert!(
        output.status.success() || (args[0] == "who" && output.status.code() == Some(1)),
        "portstat {args:?}: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.stderr.contains(&0x1b),
        "portstat {args:?} wrote a raw ESC to stderr"
    );
    output.stdout
}

fn assert_escaped(args: &[&str], stdout: &[u8], expect_name: bool) {
    let text = String::from_utf8_lossy(stdout);
    assert!(
        !stdout.contains(&0x1b) && !stdout.contains(&0x07),
        "portstat {args:?} wrote a raw control character: {text:?}"
    );
    if expect_name {
        assert!(
            text.contains("\\x1b[2J\\x1b]0;pwn\\x07"),
            "portstat {args:?} does not show the name escaped: {text}"
        );
    }
}

#[test]
fn a_process_named_with_escapes_is_shown_escaped_everywhere() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let hostile = Hostile::spawn(&listener);
    let pid = u64::from(hostile.child.id());
    let port_arg = port.to_string();

    // JSON keeps the name exactly, escaped by JSON's rules.
    let document = wait_for_json(&["-l", &port_arg], |document| {
        with_local_port(document, port).iter().any(|s| {
            s["processes"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["pid"] == pid))
        })
    });
    let socket = with_local_port(&document, port)[0].clone();
    let process = socket["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("the hostile sleep holds port {port}: {document}"))
        .clone();
    assert_eq!(process["name"], HOSTILE, "{process}");
    let raw = stdout_of(&["-l", &port_arg, "--json"]);
    let raw = String::from_utf8(raw).expect("utf-8");
    assert!(raw.contains("\\u001b[2J\\u001b]0;pwn\\u0007"), "{raw}");
    assert!(!raw.contains('\x1b'), "{raw:?}");

    for (args, expect_name) in [
        (vec!["-l", port_arg.as_str()], true),
        (vec!["-l"], true),
        (vec!["-l", port_arg.as_str(), "--format", "csv"], true),
        (vec!["who", port_arg.as_str(), "--no-bind"], true),
        (vec!["summary", "--top", "100000"], true),
    ] {
        let stdout = stdout_of(&args);
        assert_escaped(&args, &stdout, expect_name);
    }
    drop(hostile);
}

#[test]
fn csv_into_a_closed_pipe_ends_quietly() {
    let mut child = portstat()
        .args(["-a", "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portstat runs");
    // The reader goes away before portstat writes a byte, as `| head -c 0` would.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("portstat ends");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    // Nothing but the warnings this host may have (owners hidden even from root).
    let said: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.starts_with("portstat: warning: "))
        .collect();
    assert!(said.is_empty(), "{stderr}");
}
