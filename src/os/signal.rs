//! What `who --stop` does to the machine: a signal through a pidfd, a runtime's or systemd's
//! stop command, a question on the terminal.

use std::io::{self, BufRead, Write};
use std::process::{Command, Stdio};

use anyhow::{Result, anyhow};

use crate::core::stop::{Signal, Signalled};

/// Opens a pidfd for `pid`, then checks that the process it names started at `started` (as
/// `describe_processes` reports it): a pid reused before the pidfd was opened shows another
/// start time, and one that exits after it leaves the pidfd pointing at nothing. So the signal
/// reaches the process the scan saw, or none.
#[cfg(target_os = "linux")]
pub fn send(pid: u32, started: u64, signal: Signal) -> Signalled {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return Signalled::Gone;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        return failure(io::Error::last_os_error());
    }
    let Ok(fd) = i32::try_from(fd) else {
        return Signalled::Failed("pidfd_open returned no descriptor".into());
    };
    // SAFETY: the descriptor was just returned to us and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let now = super::processes::describe_processes(&[pid], None)
        .get(&pid)
        .and_then(|process| process.started);
    if now != Some(started) {
        return Signalled::Gone;
    }
    let number = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: pidfd_send_signal takes a pidfd we own, a signal number, no siginfo and no flags.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            number,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent < 0 {
        return failure(io::Error::last_os_error());
    }
    Signalled::Sent
}

#[cfg(target_os = "linux")]
fn failure(error: io::Error) -> Signalled {
    match error.raw_os_error() {
        Some(libc::ESRCH) => Signalled::Gone,
        Some(libc::EPERM) => Signalled::Denied,
        Some(libc::ENOSYS) => {
            Signalled::Failed("this kernel has no pidfds (Linux 5.3 or later has)".into())
        }
        _ => Signalled::Failed(error.to_string()),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn send(_pid: u32, _started: u64, _signal: Signal) -> Signalled {
    Signalled::Failed("stopping a process is supported on Linux only".into())
}

/// Runs a stop command (or a runtime's query) to its end, its input closed, and returns its
/// standard output; a missing program or a failure is one line.
pub fn run(program: &str, args: &[String]) -> Result<String, String> {
    let shown = std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => format!("{program} is not installed (not found on PATH)"),
            _ => format!("{shown} could not be run: {error}"),
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no message");
    Err(format!("{shown} failed ({}): {why}", output.status))
}

/// Asks on the controlling terminal, whatever standard input and output are (a pipe, a file);
/// yes is `y` or `yes`, in any case.
pub fn confirm(question: &str) -> Result<bool> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| anyhow!("there is no terminal to ask on"))?;
    let mut writer = &tty;
    writer.write_all(question.as_bytes())?;
    writer.flush()?;
    let mut answer = String::new();
    io::BufReader::new(&tty).read_line(&mut answer)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}
