//! Issue 18's "at 100k the view stays usable: keys answered within 100 ms while a refresh
//! runs", measured: inside the bench's private namespace, with the farm up, `portstat top
//! --interval 1s` runs on a pseudo-terminal of 150x40; a thread reads the terminal's output
//! as it comes, timestamping each piece; `?` (help) is written N times, each timed from the
//! write to the first output holding the help's frame (its top-right corner `┐`: the table
//! draws no box, so only a popup puts one on screen), then the help is closed with `x` (any
//! key closes it). Each press waits first (up to 2 s) for top's reading thread (`top-reader`)
//! to be running, as /proc says, and then a varied few milliseconds more, so that the keys land
//! inside a refresh, at different points of it. A press counts as during a refresh when that
//! thread was running when the key was written, or used CPU between the write and the answer.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The help's top-right corner: on screen only while a popup is.
const HELP_MARKER: &str = "┐";
/// How long a press may go unanswered before the measurement gives up.
const NO_ANSWER: Duration = Duration::from_secs(5);
const ROWS: u16 = 40;
const COLUMNS: u16 = 150;

pub struct TopKeys {
    /// Write to answer, per press, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// How many presses were written while a refresh ran (see the module's comment).
    pub during_refresh: usize,
}

impl TopKeys {
    pub fn max(&self) -> Option<f64> {
        self.latencies_ms.iter().copied().reduce(f64::max)
    }

    pub fn median(&self) -> Option<f64> {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} presses of `?` ({} during a refresh): median {} ms, max {} ms",
            self.latencies_ms.len(),
            self.during_refresh,
            self.median().map_or("-".into(), |m| format!("{m:.1}")),
            self.max().map_or("-".into(), |m| format!("{m:.1}")),
        )
    }
}

/// `portstat top` on its terminal; killed on drop if `q` did not end it.
struct Top {
    child: Child,
    master: File,
    output: Receiver<(Instant, Vec<u8>)>,
    /// Everything it wrote so far.
    seen: Vec<u8>,
}

impl Drop for Top {
    fn drop(&mut self) {
        let _ = self.master.write_all(b"q");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            // The reading thread may block on a full terminal otherwise.
            while self.output.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Top {
    fn start(portstat: &Path) -> Result<Top, String> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors it opened; no name, termios or size asked.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if opened != 0 {
            return Err(format!("openpty: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: both descriptors were just opened for us and nothing else owns them.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let size = libc::winsize {
            ws_row: ROWS,
            ws_col: COLUMNS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer given.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
            return Err(format!("TIOCSWINSZ: {}", std::io::Error::last_os_error()));
        }
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map(Stdio::from)
                .map_err(|error| format!("dup: {error}"))
        };
        let mut command = Command::new(portstat);
        command
            .args(["top", "--interval", "1s"])
            .env("TERM", "xterm-256color")
            .stdin(dup(&slave)?)
            .stdout(dup(&slave)?)
            .stderr(dup(&slave)?);
        // SAFETY: setsid and TIOCSCTTY between fork and exec are async-signal-safe and touch
        // only the child: the terminal becomes its controlling one, as a shell's would be.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|error| format!("portstat top: {error}"))?;
        drop(slave);
        let master = File::from(master);
        let mut reading = master
            .try_clone()
            .map_err(|error| format!("dup: {error}"))?;
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = vec![0; 1 << 16];
            // EIO once top has ended and the terminal's other side is closed.
            while let Ok(n @ 1..) = reading.read(&mut buffer) {
                if sender.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
        });
        Ok(Top {
            child,
            master,
            output,
            seen: Vec::new(),
        })
    }

    /// Takes in output until `done` says so (given what came since `from` and when the last
    /// piece came), or `limit` has passed: then `None`.
    fn until(
        &mut self,
        from: usize,
        limit: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<Instant>, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok((at, bytes)) => {
                    self.seen.extend_from_slice(&bytes);
                    if done(&self.seen[from..]) {
                        return Ok(Some(at));
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!("portstat top ended ({status:?})"));
                }
            }
        }
    }

    fn press(&mut self, key: &[u8]) -> Result<Instant, String> {
        let at = Instant::now();
        self.master
            .write_all(key)
            .map_err(|error| format!("write to top's terminal: {error}"))?;
        Ok(at)
    }

    /// Waits until the reading thread runs (a refresh is under way), at most 2 s, then `into`
    /// more (less if the refresh ends first).
    fn wait_for_refresh(&mut self, into: Duration) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let running = |top: &Top| {
            top.reader()
                .is_some_and(|(state, _)| matches!(state, 'R' | 'D'))
        };
        while !running(self) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let until = Instant::now() + into;
        while running(self) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Take in what was drawn meanwhile, so the next answer is looked for after it.
        while let Ok((_, bytes)) = self.output.try_recv() {
            self.seen.extend_from_slice(&bytes);
        }
    }

    /// The reading thread's state letter and its CPU time (ticks), from /proc.
    fn reader(&self) -> Option<(char, u64)> {
        let tasks = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(tasks).ok()?.flatten().find_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if comm.trim() != "top-reader" {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let state = fields.first()?.chars().next()?;
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after the state.
            let cpu = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((state, cpu))
        })
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// `presses` presses of `?` against `portstat top` in this namespace.
pub fn measure(portstat: &Path, presses: usize) -> Result<TopKeys, String> {
    let mut top = Top::start(portstat)?;
    // The first reading comes before the screen: once anything is drawn, readings run.
    top.until(0, Duration::from_secs(60), |seen| {
        contains(seen, "portstat")
    })?
    .ok_or("portstat top drew nothing within 60 s")?;
    let _ = top.until(top.seen.len(), Duration::from_millis(1500), |_| false)?;
    let mut latencies_ms = Vec::new();
    let mut during_refresh = 0;
    for n in 0..presses {
        top.wait_for_refresh(Duration::from_millis((n as u64 * 37) % 200));
        let before = top.reader();
        let from = top.seen.len();
        let wrote = top.press(b"?")?;
        let answered = top
            .until(from, NO_ANSWER, |seen| contains(seen, HELP_MARKER))?
            .ok_or_else(|| format!("press {}: no help within {NO_ANSWER:?}", n + 1))?;
        let after = top.reader();
        latencies_ms.push(answered.saturating_duration_since(wrote).as_secs_f64() * 1000.0);
        let running = before.is_some_and(|(state, _)| matches!(state, 'R' | 'D'));
        let worked = before
            .zip(after)
            .is_some_and(|((_, was), (_, is))| is > was);
        if running || worked {
            during_refresh += 1;
        }
        let from = top.seen.len();
        top.press(b"x")?;
        // The help's closing drawn (any output after the key), and a moment for it to settle.
        top.until(from, NO_ANSWER, |seen| !seen.is_empty())?
            .ok_or_else(|| format!("press {}: nothing drawn after closing the help", n + 1))?;
        let _ = top.until(top.seen.len(), Duration::from_millis(100), |_| false)?;
    }
    Ok(TopKeys {
        latencies_ms,
        during_refresh,
    })
}
