//! `cargo xtask <task>`: portstat's own tools. None of this is built by `cargo test` or
//! shipped; each task is a module of its own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "portstat's own tools")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {}

fn main() -> ExitCode {
    let xtask = Xtask::parse();
    match xtask.task {}
}
