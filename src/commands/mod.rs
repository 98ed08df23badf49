//! One module per subcommand. Each is given the OS and the output (a [`Context`]) and returns
//! an [`Outcome`]; main turns outcomes and errors into the exit status, in one place.

use std::cell::OnceCell;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::core::error::UsageError;
use crate::core::services::Services;
use crate::os::Os;
use crate::render::Output;

pub mod audit;
pub mod generate;
pub mod list;
pub mod metrics;
pub mod probe;
pub mod scan;
pub mod serve;
pub mod stop;
pub mod summary;
pub mod top;
pub mod watch;
pub mod who;

/// What a command answered, as far as the exit status goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0: listed, a server can bind, the audit passed.
    Pass,
    /// Exit status 1: a server cannot bind, the audit failed, the port is still held after
    /// `who --stop`.
    Fail,
    /// Exit status 2, what happened printed: `who --stop` refused, or a step of it failed.
    Unable,
    /// This exit status, 128 + a signal's number, as a shell reports a process that signal
    /// ended: `top` given SIGTERM or SIGHUP, after it gave the terminal back.
    Signalled(u8),
}

/// What every command is given.
pub struct Context<'a> {
    pub os: &'a dyn Os,
    pub output: Output<'a>,
    services: OnceCell<&'static Services>,
}

impl<'a> Context<'a> {
    pub fn new(os: &'a dyn Os, output: Output<'a>) -> Context<'a> {
        Context {
            os,
            output,
            services: OnceCell::new(),
        }
    }

    /// Service names: the embedded IANA registry under this system's `/etc/services`, read on
    /// first use.
    pub fn services(&self) -> &'static Services {
        self.services
            .get_or_init(|| Services::leaked(self.os.etc_services().as_deref()))
    }

    /// Now, as RFC 3339 in UTC, to the second.
    pub fn captured_at(&self) -> String {
        humantime::format_rfc3339_seconds(self.os.now()).to_string()
    }
}

/// The exit status of a run, decided here once: 0 pass, 1 fail (`who`: cannot bind, or still
/// held after `--stop`; `audit`: failed), 2 bad input or `who --stop` unable to act. A failure to run is 2 for the commands whose 1 is an answer (`who`,
/// `audit`), so `who 8080 -q && start-server` never mistakes "broken" for "busy"; the listing,
/// `summary` and `watch` have no such answer and exit 1. A closed pipe is not a failure.
pub fn exit_status(cli: &Cli, result: &Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Pass) => 0,
        Ok(Outcome::Fail) => 1,
        Ok(Outcome::Unable) => 2,
        Ok(Outcome::Signalled(status)) => *status,
        Err(error) if is_broken_pipe(error) => 0,
        Err(error) if error.is::<UsageError>() => 2,
        Err(_) => match cli.command {
            Some(Command::Who(_) | Command::Audit(_)) => 2,
            _ => 1,
        },
    }
}

/// The reader went away (`portstat | head -1`): not an error worth a word.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs the parsed command line.
pub fn run(cli: &Cli, context: &mut Context) -> Result<Outcome> {
    match &cli.command {
        None if cli.list.summary => {
            let args = crate::cli::SummaryArgs {
                scan: cli.list.scan.clone(),
                top: crate::cli::SUMMARY_TOP,
                json: cli.list.json,
                numeric: cli.list.numeric,
            };
            summary::run(&args, context)
        }
        None => list::run(&cli.list, context),
        Some(Command::Who(args)) if args.stop => stop::run(args, context),
        Some(Command::Who(args)) => who::run(args, context),
        Some(Command::Audit(args)) => audit::run(args, context),
        Some(Command::Summary(args)) => summary::run(args, context),
        Some(Command::Watch(args)) => watch::run(args, context),
        Some(Command::Top(args)) => top::run(args, context),
        Some(Command::Metrics(args)) => metrics::run(args, context),
        Some(Command::Serve(args)) => serve::run(args, context),
        Some(Command::Generate(args)) => generate::run(args, context),
    }
}

/// Runs `side` on another thread while `main` runs on this one, or after it when no thread can
/// be started (a host at its pids limit): both results, either way.
pub fn alongside<A, B: Send>(main: impl FnOnce() -> A, side: impl FnOnce() -> B + Send) -> (A, B) {
    let slot = std::sync::Mutex::new(Some(side));
    let take = || {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    };
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().spawn_scoped(scope, || take().map(|f| f()));
        let first = main();
        let ran = match thread {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        };
        // The thread takes `side` only to run it: what it did not run is still here.
        let second = ran.or_else(|| take().map(|f| f()));
        (first, second.expect("side ran on the thread or runs here"))
    })
}
