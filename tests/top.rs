//! Issue 18: `portstat top`. The screen as ratatui draws it (a test backend) against fake hosts,
//! compared with `tests/golden/top_*.txt` (`PORTSTAT_BLESS=1` rewrites them); and end to end
//! under tmux (`tmux_*`, ignored unless tmux is in PATH: `cargo xtask test` runs them) against
//! real sockets: a listener opened while `top` runs appears within one refresh, `/` narrows
//! the rows, `q` exits 0 and gives the terminal back.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use portstat::cli::{Cli, Command as Sub};
use portstat::commands::Context;
use portstat::commands::top::{Step, snapshot};
use portstat::core::top::Key;
use portstat::render::{Output, Style};

use crate::golden::{check, host, run_with};

const PIPED: Style = Style {
    terminal: false,
    width: None,
    color: false,
};

/// The screen of `portstat top ARGS` on a fake host after `steps`.
fn screen(name: &str, args: &[&str], steps: &[Step]) -> String {
    screen_as(name, None, args, steps)
}

/// The same, run by `euid` instead of the host's user.
fn screen_as(name: &str, euid: Option<u32>, args: &[&str], steps: &[Step]) -> String {
    let mut os = host(name);
    if euid.is_some() {
        os.euid = euid;
    }
    let mut argv = vec!["portstat", "top"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(&argv).expect("top's arguments parse");
    let Some(Sub::Top(top)) = &cli.command else {
        panic!("not top: {cli:?}");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let output = Output {
        out: &mut out,
        err: &mut err,
        style: PIPED,
    };
    let context = Context::new(&os, output);
    snapshot(&context, top, steps).expect("the screen is drawn")
}

fn keys(text: &str) -> Vec<Step> {
    text.chars().map(|c| Step::Key(Key::Char(c))).collect()
}

fn steps(parts: &[&[Step]]) -> Vec<Step> {
    parts.concat()
}

const SIZE: [&str; 2] = ["--size", "120x24"];

#[test]
fn top_first_screen() {
    let shown = screen("web-1", &SIZE, &[Step::Read]);
    // The hidden owner (web-1 is read as root) is said as such; TIME_WAIT is not shown by
    // default.
    assert!(shown.contains("(hidden: unreadable to"), "{shown}");
    assert!(!shown.contains("TIME_WAIT"), "{shown}");
    check("top_first_screen", &shown);
}

#[test]
fn top_without_root_hidden_owners_are_shown_as_such() {
    let shown = screen_as("web-1", Some(1001), &SIZE, &[Step::Read]);
    let row = shown
        .lines()
        .find(|line| line.contains("127.0.0.1:9000"))
        .unwrap_or_else(|| panic!("no 9000 in\n{shown}"));
    assert!(row.contains("(hidden: another"), "{shown}");
}

#[test]
fn top_new_and_closed_rows() {
    let shown = screen(
        "web-1",
        &SIZE,
        &[Step::Read, Step::Wait(Duration::from_secs(1)), Step::Read],
    );
    // web-1's second reading: a listener on 8443 (new, +), Redis gone (closed, -).
    let line = |needle: &str| {
        shown
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{shown}"))
            .to_string()
    };
    // The mark is the column after the selection's.
    assert_eq!(line("0.0.0.0:8443").get(..2), Some(" +"), "{shown}");
    assert_eq!(line("redis").get(..2), Some(" -"), "{shown}");
    check("top_new_and_closed_rows", &shown);
}

#[test]
fn top_filter_words_narrow_the_rows() {
    let all = steps(&[
        &[Step::Read, Step::Key(Key::Char('/'))],
        &keys("process:nginx state:listen"),
        &[Step::Key(Key::Enter)],
    ]);
    let shown = screen("web-1", &SIZE, &all);
    assert!(
        shown.contains("filter: process:nginx state:listen"),
        "{shown}"
    );
    assert!(!shown.contains("sshd"), "{shown}");
    check("top_filter", &shown);
}

#[test]
fn top_a_bad_filter_word_is_said_and_not_taken() {
    let all = steps(&[
        &[Step::Read, Step::Key(Key::Char('/'))],
        &keys("colour:red"),
        &[Step::Key(Key::Enter)],
    ]);
    let shown = screen("web-1", &SIZE, &all);
    assert!(shown.contains("unknown filter word colour"), "{shown}");
    let shown = screen("web-1", &SIZE, &steps(&[&all, &[Step::Key(Key::Esc)]]));
    assert!(shown.contains("sshd"), "{shown}");
    assert!(!shown.contains("filter:"), "{shown}");
}

#[test]
fn top_every_state_sorted_by_process_descending() {
    let all = steps(&[&[Step::Read], &keys("a88")]);
    let shown = screen("web-1", &SIZE, &all);
    assert!(shown.contains("TIME_WAIT"), "{shown}");
    assert!(shown.contains("PID/PROGRAMv"), "{shown}");
    check("top_all_by_process_desc", &shown);
}

#[test]
fn top_udp_listeners_only() {
    let all = steps(&[&[Step::Read], &keys("ul")]);
    let shown = screen("web-1", &SIZE, &all);
    assert!(!shown.contains("tcp "), "{shown}");
    assert!(shown.contains("udp"), "{shown}");
    check("top_udp_listening", &shown);
}

#[test]
fn top_details_pane_shows_holders_unit_queues_and_the_firewall() {
    // nginx's IPv4 listener is the second row (listeners first, by port: 22, then 80).
    let all = steps(&[
        &[Step::Read, Step::Key(Key::Char('/'))],
        &keys("port:80 proto:tcp state:listen"),
        &[Step::Key(Key::Enter), Step::Key(Key::Enter)],
    ]);
    let shown = screen("web-1", &["--size", "120x30"], &all);
    assert!(shown.contains("holders:"), "{shown}");
    assert!(shown.contains("unit nginx.service"), "{shown}");
    assert!(shown.contains("accept queue"), "{shown}");
    assert!(shown.contains("firewall: "), "{shown}");
    check("top_details", &shown);
}

#[test]
fn top_details_pane_has_tcp_internals() {
    let all = steps(&[
        &[Step::Read, Step::Key(Key::Char('/'))],
        &keys("state:established port:8080"),
        &[Step::Key(Key::Enter), Step::Key(Key::Enter)],
    ]);
    let shown = screen("busy-1", &["--size", "140x30"], &all);
    assert!(shown.contains("tcp: "), "{shown}");
    assert!(shown.contains("memory: "), "{shown}");
    check("top_details_internals", &shown);
}

#[test]
fn top_k_shows_who_stops_plan_with_pid_name_and_start_time_and_carries_it_out_on_yes() {
    let base = steps(&[
        &[Step::Read, Step::Key(Key::Char('/'))],
        &keys("process:postgres state:listen"),
        &[Step::Key(Key::Enter), Step::Key(Key::Char('k'))],
    ]);
    let asked = screen("web-1", &SIZE, &base);
    assert!(asked.contains("Stop postgres (pid"), "{asked}");
    assert!(asked.contains("started 20"), "{asked}");
    check("top_confirm_stop", &asked);
    let answered = screen(
        "web-1",
        &SIZE,
        &steps(&[&base, &[Step::Key(Key::Char('y'))]]),
    );
    // The fake host's postgres runs in a systemd unit: the unit is stopped, as `who --stop`
    // would, and the fake's tables still hold the port afterwards.
    assert!(
        answered.contains(
            "systemctl stop postgresql@15-main.service: 127.0.0.1:5432/tcp is still held"
        ),
        "{answered}"
    );
}

#[test]
fn top_help_lists_the_keys_and_filter_words() {
    let shown = screen("web-1", &SIZE, &[Step::Read, Step::Key(Key::Char('?'))]);
    assert!(
        shown.contains("port: process: state: user: pid: proto:"),
        "{shown}"
    );
    check("top_help", &shown);
}

#[test]
fn top_off_a_terminal_says_so_and_exits_2() {
    let os = host("web-1");
    let run = run_with(&os, PIPED, &["top"]);
    assert!(run.contains("standard output is not a terminal"), "{run}");
    assert!(run.ends_with("--- exit status 2\n"), "{run}");
}

#[test]
fn top_once_prints_one_screen() {
    let os = host("web-1");
    let run = run_with(&os, PIPED, &["top", "--once", "--size", "100x12"]);
    assert!(
        run.contains("portstat top  web-1  15 of 17 sockets"),
        "{run}"
    );
    assert!(run.ends_with("--- exit status 0\n"), "{run}");
    assert_eq!(
        run.lines()
            .filter(|l| !l.starts_with("$ ") && !l.starts_with("---"))
            .count(),
        12,
        "{run}"
    );
}

/// A tmux session running `portstat top`, killed when dropped.
struct Tmux {
    session: String,
    status: tempfile::TempDir,
}

impl Tmux {
    fn start(args: &str) -> Tmux {
        let status = tempfile::tempdir().expect("temporary directory");
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let session = format!(
            "portstat-top-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let binary = assert_cmd::cargo::cargo_bin("portstat");
        let exit = status.path().join("exit");
        // The shell writes top's exit status and the terminal's modes after it, then tells the
        // test through a tmux channel.
        let command = format!(
            "{} top {args}; echo $? > {}; stty -a > {}; tmux wait-for -S {session}-done; sleep 30",
            binary.display(),
            exit.display(),
            status.path().join("stty").display()
        );
        let started = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", "150", "-y", "40"])
            .arg(command)
            .status()
            .expect("tmux runs");
        assert!(started.success(), "tmux new-session failed");
        Tmux { session, status }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits up to `limit` for the screen to hold `wanted`.
    fn wait_for(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return Ok(screen);
            }
            if started.elapsed() > limit {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&self, keys: &[&str]) {
        let sent = Command::new("tmux")
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(sent.success());
    }

    fn alternate_screen(&self) -> bool {
        self.pane("#{alternate_on}") == "1"
    }

    /// A pane's format variable (`#{alternate_on}`).
    fn pane(&self, format: &str) -> String {
        let output = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.session, format])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The pid of `portstat top`: the child of the pane's shell.
    fn top_pid(&self) -> Option<u32> {
        let shell: u32 = self.pane("#{pane_pid}").parse().ok()?;
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
                let (comm, rest) = stat.rsplit_once(')')?;
                let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
                (ppid == shell && comm.ends_with("(portstat")).then_some(pid)
            })
    }

    /// `stty -a` as the shell saw the terminal once top had ended.
    fn modes_after(&self) -> Option<String> {
        read(&self.status.path().join("stty"))
    }

    fn exit_status(&self) -> Option<String> {
        let exit = self.status.path().join("exit");
        let waited = Command::new("timeout")
            .args(["10", "tmux", "wait-for", &format!("{}-done", self.session)])
            .status()
            .expect("tmux wait-for");
        if !waited.success() {
            return None;
        }
        read(&exit)
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

#[test]
#[ignore = "needs tmux"]
fn tmux_a_new_listener_shows_within_a_refresh_the_filter_narrows_and_q_restores() {
    let top = Tmux::start("--interval 1");
    let first = top
        .wait_for(Duration::from_secs(10), |s| {
            s.contains("portstat top") && s.contains(" sockets ")
        })
        .unwrap_or_else(|screen| panic!("top did not draw:\n{screen}"));
    assert!(
        top.alternate_screen(),
        "not on the alternate screen:\n{first}"
    );

    // A listener opened while top runs is on screen within one refresh: the header numbers the
    // readings, so the first reading begun after the bind is known without a clock. Reading
    // N+1 may have begun before the bind, as N was on screen after it; N+2 began after N+1 was
    // taken in, so after this screen, so after the bind.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let after_bind = reading_number(&top.screen()).expect("a reading number in the header");
    let seen = top
        .wait_for(Duration::from_secs(30), |s| {
            reading_number(s).is_some_and(|n| n >= after_bind + 2)
        })
        .unwrap_or_else(|screen| panic!("no second refresh after the bind:\n{screen}"));
    assert!(
        seen.contains(&address),
        "{address} not shown by the first refresh begun after it was opened:\n{seen}"
    );
    let row = seen
        .lines()
        .find(|line| line.contains(&address))
        .expect("its row");
    assert!(row.contains("LISTEN"), "{row}");

    // `/` and the port narrow the rows to that listener.
    let port = listener.local_addr().expect("address").port().to_string();
    top.send(&["/"]);
    top.send(&["-l", &format!("port:{port}")]);
    top.send(&["Enter"]);
    let narrowed = top
        .wait_for(Duration::from_secs(3), |s| {
            s.contains(&format!("filter: port:{port}")) && s.contains(" 1 of ")
        })
        .unwrap_or_else(|screen| panic!("the filter did not narrow:\n{screen}"));
    let rows: Vec<&str> = narrowed.lines().filter(|l| l.contains(":")).collect();
    assert!(rows.iter().any(|l| l.contains(&address)), "{narrowed}");

    // q quits with status 0 and leaves the alternate screen.
    top.send(&["q"]);
    let status = top.exit_status();
    assert_eq!(status.as_deref(), Some("0"), "{}", top.screen());
    assert!(!top.alternate_screen(), "still on the alternate screen");
    drop(listener);
}

#[test]
#[ignore = "needs tmux"]
fn tmux_keys_are_answered_at_once_and_ctrl_c_quits() {
    let top = Tmux::start("--interval 0.2");
    top.wait_for(Duration::from_secs(10), |s| s.contains(" sockets "))
        .unwrap_or_else(|screen| panic!("top did not draw:\n{screen}"));
    // How fast keys are answered is the benchmark's to measure; here, that they are at all.
    top.send(&["?"]);
    top.wait_for(Duration::from_secs(10), |s| s.contains("this help"))
        .unwrap_or_else(|screen| panic!("no help:\n{screen}"));
    top.send(&["Escape"]);
    top.send(&["C-c"]);
    assert_eq!(top.exit_status().as_deref(), Some("0"), "{}", top.screen());
    assert!(!top.alternate_screen());
}

/// The number of the reading on screen, from the header's "reading N in M ms".
fn reading_number(screen: &str) -> Option<u64> {
    let header = screen.lines().next()?;
    let after = header.split(" reading ").nth(1)?;
    after.split(' ').next()?.parse().ok()
}

#[test]
#[ignore = "needs tmux"]
fn tmux_sigterm_and_sighup_restore_the_terminal_and_exit_128_plus_the_signal() {
    for (signal, status) in [(libc::SIGTERM, "143"), (libc::SIGHUP, "129")] {
        let top = Tmux::start("--interval 1");
        let drawn = top
            .wait_for(Duration::from_secs(10), |s| s.contains(" sockets "))
            .unwrap_or_else(|screen| panic!("top did not draw:\n{screen}"));
        assert!(
            top.alternate_screen(),
            "not on the alternate screen:\n{drawn}"
        );
        let pid = top.top_pid().expect("top's pid");
        assert_eq!(top.pane("#{cursor_flag}"), "0", "top hides the cursor");
        // SAFETY: kill(2) on the portstat this test started.
        let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(sent, 0);
        assert_eq!(
            top.exit_status().as_deref(),
            Some(status),
            "{}",
            top.screen()
        );
        assert!(!top.alternate_screen(), "still on the alternate screen");
        assert_eq!(
            top.pane("#{cursor_flag}"),
            "1",
            "the cursor is hidden still"
        );
        // Raw mode is gone: the shell's terminal echoes and reads lines again.
        let modes = top.modes_after().expect("stty -a ran");
        let words: Vec<&str> = modes.split_whitespace().collect();
        assert!(
            words.contains(&"icanon") && words.contains(&"echo"),
            "{modes}"
        );
    }
}
