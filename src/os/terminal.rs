//! The terminal `top` draws on: raw mode and the alternate screen while it runs, its key and
//! resize events translated into the view's keys, and the terminal given back as it was when
//! `top` ends, by any way: a return, an error, a panic on any thread, or SIGTERM or SIGHUP.
//! The only code that touches the tty.

use std::io::{self, IsTerminal, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::core::top::Key;

/// Whether the terminal is in `top`'s modes now: restoring twice (a panic, then the drop) must
/// not print the escapes twice.
static TAKEN: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();
static SIGNALS: Once = Once::new();
/// The exit status a SIGTERM or SIGHUP asked for (128 + the signal, as shells report it), 0
/// while none came.
static ENDED_BY: AtomicU8 = AtomicU8::new(0);

/// How long the key loop has to give the terminal back after SIGTERM or SIGHUP before the
/// signal's thread does it: the loop looks every tick, unless it is busy (`k` waiting for a
/// port to be free).
#[cfg(unix)]
const SIGNAL_GRACE: Duration = Duration::from_millis(500);

/// What happened at the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Key(Key),
    /// The window changed size: draw again.
    Resize,
    /// SIGTERM or SIGHUP: end now, with this exit status (143, 129).
    Ended(u8),
}

/// The terminal, taken over for a full-screen view until dropped.
pub struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

/// Whether standard output is a terminal one can draw on.
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

impl Screen {
    pub fn open() -> io::Result<Screen> {
        // A panic restores the terminal before its message is printed, so the message is
        // readable and the shell usable.
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        SIGNALS.call_once(catch_termination);
        terminal::enable_raw_mode()?;
        TAKEN.store(true, Ordering::SeqCst);
        let mut stdout = io::stdout();
        if let Err(error) = execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(error);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(error) => {
                restore();
                Err(error)
            }
        }
    }

    pub fn draw(&mut self, draw: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        self.terminal.draw(draw).map(|_| ())
    }

    /// The next key or resize, waiting at most `timeout`; `None` when none came.
    pub fn next_input(&mut self, timeout: Duration) -> io::Result<Option<Input>> {
        let ended = |status: u8| (status != 0).then_some(Input::Ended(status));
        if let Some(ended) = ended(ENDED_BY.load(Ordering::SeqCst)) {
            return Ok(Some(ended));
        }
        if !event::poll(timeout)? {
            if let Some(ended) = ended(ENDED_BY.load(Ordering::SeqCst)) {
                return Ok(Some(ended));
            }
            return Ok(None);
        }
        Ok(match event::read()? {
            Event::Key(key) => translate(key).map(Input::Key),
            Event::Resize(..) => Some(Input::Resize),
            _ => None,
        })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen and raw mode, and shows the cursor, once.
fn restore() {
    if TAKEN.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

/// SIGTERM (`kill`, a service manager) and SIGHUP (the terminal closed) would end `top` with
/// the terminal left in raw mode on the alternate screen. A thread takes them instead: it tells
/// the key loop, which returns and so restores the terminal; should the loop not have done so
/// within [`SIGNAL_GRACE`], the thread restores it itself. Then it ends the process with 128 +
/// the signal, as the signal itself would have been reported. Without the thread (it could not
/// be started) the signals keep their default action.
#[cfg(unix)]
fn catch_termination() {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    use signal_hook::iterator::Signals;

    // Registered on the thread, which is then sure to be there to take them.
    let (registered, ready) = std::sync::mpsc::channel();
    let started = std::thread::Builder::new()
        .name("top-signals".into())
        .spawn(move || {
            let signals = Signals::new([SIGTERM, SIGHUP]);
            let _ = registered.send(());
            let Some(signal) = signals.ok().and_then(|mut s| s.forever().next()) else {
                return;
            };
            let status = u8::try_from(128 + signal).unwrap_or(u8::MAX);
            ENDED_BY.store(status, Ordering::SeqCst);
            let asked = std::time::Instant::now();
            while TAKEN.load(Ordering::SeqCst) && asked.elapsed() < SIGNAL_GRACE {
                std::thread::sleep(Duration::from_millis(10));
            }
            restore();
            std::process::exit(i32::from(status));
        });
    if started.is_ok() {
        let _ = ready.recv();
    }
}

#[cfg(not(unix))]
fn catch_termination() {}

fn translate(key: KeyEvent) -> Option<Key> {
    // Terminals that report releases (kitty's protocol, Windows) would act twice.
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        _ => return None,
    })
}
