//! `cargo xtask check`: the layering invariant.
//!
//! portstat is layered as
//!
//! ```text
//! src/main.rs        parse, build the live OS and the output, map outcomes to exit status
//! src/cli/           clap definitions
//! src/os/            the only code that touches the OS
//! src/core/          plain data and pure logic
//! src/commands/      one module per subcommand
//! src/render/        table, JSON, CSV, text output
//! ```
//!
//! and this task holds it to that with two checks over every `src/**/*.rs` (parsed with
//! `syn`; `#[cfg(test)]` and `#[test]` items are skipped entirely, tests may do anything):
//!
//! 1. No source outside `src/os/` and `src/main.rs` names anything that reaches the OS:
//!    `std::fs`, `File::open`, the OS crates (`rustix`, `libc`, `procfs`, ...),
//!    `is_terminal`, clocks, `std::env::var`, `std::thread::sleep`, the standard streams,
//!    `std::process::exit` (the full list is [`scan::FORBIDDEN_CRATES`] and
//!    [`scan::forbidden_name`]).
//! 2. No import cycles between modules: every reference from one module to another is an
//!    edge between the two children of their lowest common ancestor that contain them
//!    (a parent using its child, or a child its parent, is no edge), and no such sibling
//!    graph may have a cycle.

mod cycles;
mod scan;
#[cfg(test)]
mod tests;
mod tree;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// `cargo xtask check`: hold the crate to its layers (the OS only in src/os and
/// src/main.rs, no import cycles between modules).
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The workspace to check (its `src/` is read); default: this workspace.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

/// What one check run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Modules in the tree, the crate root and inline modules included.
    pub modules: usize,
    /// References from one module to another.
    pub references: usize,
    /// Files that could not be read or parsed, `mod` declarations without a file.
    pub broken: Vec<String>,
    /// `file:LINE: names `X` (...)`, sorted by file and line.
    pub forbidden: Vec<String>,
    /// `cycle: a -> b (...) -> a (...)`, one line per cycle.
    pub cycles: Vec<String>,
}

impl Report {
    /// Every problem, in the order they are printed.
    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.broken
            .iter()
            .chain(&self.forbidden)
            .chain(&self.cycles)
    }

    pub fn is_ok(&self) -> bool {
        self.problems().next().is_none()
    }
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let root = args.root.clone().unwrap_or_else(workspace_root);
    let report = match check(&root) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("check: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if report.is_ok() {
        println!(
            "layers ok: {} modules, {} references, no forbidden names outside src/os and src/main.rs, no cycles",
            report.modules, report.references
        );
        return ExitCode::SUCCESS;
    }
    for problem in report.problems() {
        println!("{problem}");
    }
    let mut counts = Vec::new();
    if !report.broken.is_empty() {
        counts.push(format!("{} unreadable", report.broken.len()));
    }
    counts.push(format!(
        "{} forbidden names outside src/os and src/main.rs",
        report.forbidden.len()
    ));
    counts.push(format!("{} cycles", report.cycles.len()));
    println!(
        "layers broken: {} ({} modules, {} references)",
        counts.join(", "),
        report.modules,
        report.references
    );
    ExitCode::FAILURE
}

/// The workspace this xtask was built in: the parent of xtask's own manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Both checks over `root/src`.
pub fn check(root: &Path) -> Result<Report> {
    let src = root.join("src");
    if !src.is_dir() {
        bail!("{} has no src/ directory", root.display());
    }
    let crate_name = crate_name(root)?;
    let tree = tree::load(root, &crate_name)?;
    let mut report = Report {
        modules: tree.modules.len(),
        broken: tree.broken.clone(),
        ..Report::default()
    };

    let scanned = scan::scan(&tree);
    report.forbidden = scanned
        .forbidden
        .iter()
        .map(|hit| {
            format!(
                "{}:{}: names `{}` (only src/os/ and src/main.rs may)",
                hit.file, hit.line, hit.name
            )
        })
        .collect();
    let references: Vec<_> = scanned
        .references
        .into_iter()
        .filter_map(|r| {
            let to = tree.module_of(&r.path);
            (to != r.from).then_some(cycles::Reference {
                from: r.from,
                to,
                file: r.file,
                line: r.line,
                path: r.path,
            })
        })
        .collect();
    report.references = references.len();
    report.cycles = cycles::find(&references);
    Ok(report)
}

/// The library's name as code spells it (`portstat`), from `[package] name` in
/// `root/Cargo.toml`; the directory's name when there is none.
fn crate_name(root: &Path) -> Result<String> {
    let manifest = root.join("Cargo.toml");
    let mut name = None;
    if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let mut in_package = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_package = line == "[package]";
            } else if in_package
                && let Some(value) = line.strip_prefix("name")
                && let Some(value) = value.trim_start().strip_prefix('=')
            {
                name = Some(value.trim().trim_matches('"').to_string());
                break;
            }
        }
    }
    let name = match name {
        Some(name) => name,
        None => root
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "portstat".to_string()),
    };
    Ok(name.replace('-', "_"))
}
