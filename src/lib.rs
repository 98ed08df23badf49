//! portstat: what is using which port on this machine, and is that all right?
//!
//! Layers, each using only those before it: `core` (plain data and pure logic), `os` (the only
//! code that touches the operating system, behind the [`os::Os`] trait), `render` (every way
//! of printing), `commands` (one module per subcommand, given an `Os` and an
//! [`render::Output`]), `cli` (the command line). `main.rs` builds the live OS and the output
//! and turns what a command returns into the exit status.

pub mod cli;
pub mod commands;
pub mod core;
pub mod os;
pub mod render;
