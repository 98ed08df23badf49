//! portstat: what is using which port on this machine, and is that all right?
//!
//! Data flows one way: `backend` reads the kernel's socket tables into `model::Socket`s,
//! `filter` keeps what the user asked for, `owners` finds the processes holding them,
//! `meaning` adds ranges, services and direction, and `render` writes the result.

pub mod audit;
pub mod backend;
pub mod cgroup;
pub mod cli;
pub mod error;
pub mod filter;
pub mod host;
pub mod list;
pub mod meaning;
pub mod model;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod owners;
pub mod render;
pub mod scan;
pub mod services;
pub mod summary;
pub mod watch;
pub mod who;

use std::io::Write;
use std::process::ExitCode;

/// Runs the parsed command line, writing results to `out` and warnings to `err`.
pub fn run(cli: &cli::Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match &cli.command {
        None => list::run(&cli.list, out, err).map(|()| ExitCode::SUCCESS),
        Some(cli::Command::Who(args)) => who::run(args, out, err),
        Some(cli::Command::Audit(args)) => audit::run(args, out, err),
        Some(cli::Command::Summary(args)) => summary::run(args, out, err),
        Some(cli::Command::Watch(args)) => watch::run_command(args, out, err),
    }
}
