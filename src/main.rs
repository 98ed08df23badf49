use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use portstat::cli::{Cli, ColorWhen};
use portstat::commands::{self, Context, Outcome};
use portstat::core::error::UsageError;
use portstat::os::LiveOs;
use portstat::render::{Output, Style};

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
    let os = LiveOs::new();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut err = io::stderr();
    let output = Output {
        out: &mut out,
        err: &mut err,
        style: style(stdout.is_terminal(), cli.color),
    };
    let mut context = Context::new(&os, output);
    let result = commands::run(&cli, &mut context);
    let result = result.and_then(|outcome| out.flush().map(|()| outcome).map_err(Into::into));
    exit_status(&cli, result)
}

/// The terminal and the environment, looked at once for the whole run. `--color` wins; then,
/// as anstream decides (and so clap's own help): NO_COLOR turns colour off, CLICOLOR_FORCE on
/// even off a terminal, CLICOLOR=0 off; else a terminal that is not TERM=dumb gets it.
fn style(terminal: bool, when: ColorWhen) -> Style {
    let width = terminal
        .then(|| terminal_size::terminal_size().map(|(width, _)| width.0))
        .flatten();
    let color = match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto if anstyle_query::no_color() => false,
        ColorWhen::Auto if anstyle_query::clicolor_force() => true,
        ColorWhen::Auto if anstyle_query::clicolor() == Some(false) => false,
        ColorWhen::Auto => terminal && anstyle_query::term_supports_color(),
    };
    Style {
        terminal,
        width,
        color,
    }
}

/// clap quotes the offending value whole (`invalid value '...'`): at most 80 characters of it.
fn shorten_quotes(message: &str) -> String {
    const SHOWN: usize = 80;
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find('\'') {
        let (before, quoted) = rest.split_at(start + 1);
        out.push_str(before);
        let Some(end) = quoted.find('\'') else {
            rest = quoted;
            break;
        };
        let value = &quoted[..end];
        match value.char_indices().nth(SHOWN) {
            Some((cut, _)) => {
                out.push_str(&value[..cut]);
                out.push_str(&format!("... ({} bytes)", value.len()));
            }
            None => out.push_str(value),
        }
        out.push('\'');
        rest = &quoted[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Says what went wrong, if anything, and exits as `commands::exit_status` decides.
fn exit_status(cli: &Cli, result: anyhow::Result<Outcome>) -> ExitCode {
    let status = commands::exit_status(cli, &result);
    match &result {
        Err(error) if commands::is_broken_pipe(error) => {}
        Err(error) if error.is::<UsageError>() => {
            let _ = writeln!(io::stderr(), "portstat: {error}");
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "portstat: {error:#}");
        }
        Ok(_) => {}
    }
    ExitCode::from(status)
}

/// clap's message on one line, without its `error:` prefix and usage footer, but with the
/// valid values when it lists them; `--help` has the rest.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let mut lines = rendered.lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    let mut message = shorten_quotes(first.strip_prefix("error: ").unwrap_or(first));
    // "the following required arguments were not provided:" lists them on the next lines.
    if message.ends_with(':') {
        let listed: Vec<&str> = lines.clone().take_while(|line| !line.is_empty()).collect();
        message = format!("{message} {}", listed.join(", "));
    }
    match lines.find(|line| line.starts_with("[possible values:")) {
        Some(values) => {
            let values = values.trim_start_matches('[').trim_end_matches(']');
            format!("{message}: {values} (see portstat --help)")
        }
        None => format!("{message} (see portstat --help)"),
    }
}
