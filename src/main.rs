use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use portstat::cli::Cli;
use portstat::error::UsageError;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        // A panic is a bug; say so in one line rather than with a backtrace.
        let _ = writeln!(io::stderr(), "portstat: internal error: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            let _ = writeln!(io::stderr(), "portstat: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let result = portstat::run(&cli, &mut out, &mut io::stderr());
    let result = result.and_then(|code| out.flush().map(|()| code).map_err(Into::into));
    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) if error.is::<UsageError>() => {
            let _ = writeln!(io::stderr(), "portstat: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "portstat: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message without its `error:` prefix and usage footer; `--help` has the rest.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    format!("{message} (see portstat --help)")
}

/// The reader went away (`portstat | head -1`): not an error worth a word.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
