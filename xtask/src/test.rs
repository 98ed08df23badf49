//! `cargo xtask test`: the project's one test command.
//!
//! ```sh
//! cargo xtask test                  # every test this user can run
//! cargo xtask test -- who           # what follows `--` goes to the test binaries
//! ```
//!
//! It runs `cargo test --workspace`. Tests that need something not every machine or user has
//! are `#[ignore = "..."]`d, and their names say what they need: a test whose name starts with
//! `root_` needs root (more such groups go into [`CAPABILITIES`]). Before running, it lists the
//! ignored tests (`-- --list --ignored`), and prints one line saying which groups are included
//! and which stay ignored, and why. When every group's need is met it passes
//! `-- --include-ignored` (ignored tests of no group then run too); when none is, the ignored
//! tests stay ignored and show as such in cargo's summary; when only some are, a second run
//! takes the ignored tests of the groups whose need is met (`--ignored --exact NAME...`). The
//! exit status is cargo test's (the first failing run's). As root it first installs the Debian
//! packages the tests run, when missing (`.ci/install`).

use std::process::{Command, ExitCode, Stdio};

use clap::Args;

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Arguments for the test binaries (filters, `--nocapture`, ...), after `--`
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Something a group of tests needs, known by the prefix of their names.
#[derive(Clone, Copy)]
pub struct Capability {
    /// Test names (their last `::` segment) start with this.
    pub prefix: &'static str,
    /// What the tests need, after "tests that need": `root`.
    pub need: &'static str,
    /// Said when the need is met, and when it is not: `root`, `not root`.
    pub met: &'static str,
    pub unmet: &'static str,
    /// Whether this process has it.
    pub available: fn() -> bool,
}

pub const CAPABILITIES: &[Capability] = &[
    Capability {
        prefix: "root_",
        need: "root",
        met: "root",
        unmet: "not root",
        available: is_root,
    },
    Capability {
        prefix: "promtool_",
        need: "promtool",
        met: "promtool in PATH",
        unmet: "no promtool in PATH (Debian package prometheus)",
        available: has_promtool,
    },
    Capability {
        prefix: "tmux_",
        need: "tmux",
        met: "tmux in PATH",
        unmet: "no tmux in PATH (Debian package tmux)",
        available: || in_path("tmux"),
    },
    Capability {
        prefix: "man_",
        need: "man",
        met: "man in PATH",
        unmet: "no man in PATH (Debian package man-db)",
        available: || in_path("man"),
    },
];

fn has_promtool() -> bool {
    in_path("promtool")
}

fn in_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn run(args: &TestArgs) -> ExitCode {
    let root = crate::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo_test = || {
        let mut command = Command::new(&cargo);
        command.current_dir(&root).args(["test", "--workspace"]);
        command
    };
    // The user chose which ignored tests run: theirs is the only run.
    if args
        .args
        .iter()
        .any(|arg| arg == "--ignored" || arg == "--include-ignored")
    {
        println!(
            "xtask test: the ignored tests as asked ({})",
            args.args.join(" ")
        );
        return status(cargo_test().arg("--").args(&args.args));
    }
    // A fresh machine gets the packages the tests run (servers, firewalls, runtimes) first;
    // only root can install them, and without them those tests fail rather than skip.
    if is_root() {
        let installed = status(Command::new(root.join(".ci/install")).current_dir(&root));
        if installed != ExitCode::SUCCESS {
            eprintln!("xtask test: .ci/install could not install the packages the tests need");
            return installed;
        }
    }
    // Build first, with cargo's usual progress, then list the ignored tests quietly.
    let built = status(cargo_test().arg("--no-run"));
    if built != ExitCode::SUCCESS {
        return built;
    }
    let ignored = match list_ignored(cargo_test(), &args.args) {
        Ok(names) => names,
        Err(error) => {
            eprintln!("xtask test: listing the ignored tests: {error}");
            return ExitCode::FAILURE;
        }
    };
    let available: Vec<bool> = CAPABILITIES.iter().map(|c| (c.available)()).collect();
    let plan = plan(CAPABILITIES, &available, &ignored);
    println!("xtask test: {}", plan.line);
    for extra in &plan.runs {
        let outcome = status(cargo_test().arg("--").args(extra).args(&args.args));
        if outcome != ExitCode::SUCCESS {
            return outcome;
        }
    }
    ExitCode::SUCCESS
}

/// Runs a command; its exit status (1 when it could not run, or died of a signal).
fn status(command: &mut Command) -> ExitCode {
    match command.status() {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(error) => {
            eprintln!("xtask test: cargo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The full names of the ignored tests that the user's arguments select.
fn list_ignored(mut cargo_test: Command, user_args: &[String]) -> Result<Vec<String>, String> {
    let output = cargo_test
        .args(["--quiet", "--", "--list", "--ignored"])
        .args(user_args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(parse_list(&String::from_utf8_lossy(&output.stdout)))
}

/// The test names in libtest's `--list` output (`path::name: test` lines; benches are not).
fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

/// What runs, and the line that says so.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub line: String,
    /// One `cargo test --workspace` per entry, with these test-binary arguments first.
    pub runs: Vec<Vec<String>>,
}

/// The group of a test: the first capability whose prefix its name (last segment) starts with.
fn group_of(capabilities: &[Capability], name: &str) -> Option<usize> {
    // A doc test's name is `path - item (line N)`: not a group member.
    let last = name.rsplit("::").next().unwrap_or(name);
    capabilities
        .iter()
        .position(|capability| last.starts_with(capability.prefix))
}

fn tests(n: usize) -> String {
    format!("{n} {}", if n == 1 { "test" } else { "tests" })
}

/// Decides the runs for these ignored tests, given which capabilities are available.
pub fn plan(capabilities: &[Capability], available: &[bool], ignored: &[String]) -> Plan {
    let mut members = vec![Vec::new(); capabilities.len()];
    let mut others = 0;
    for name in ignored {
        match group_of(capabilities, name) {
            Some(group) => members[group].push(name.clone()),
            None => others += 1,
        }
    }
    let every_need_met = available.iter().all(|&a| a);
    let mut parts = Vec::new();
    for ((capability, &has), names) in capabilities.iter().zip(available).zip(&members) {
        let one = names.len() == 1;
        let need = if one { "needs" } else { "need" };
        parts.push(if has {
            format!(
                "{}: {} that {need} {} included",
                capability.met,
                tests(names.len()),
                capability.need
            )
        } else {
            format!(
                "{}: {} that {need} {} {} ignored",
                capability.unmet,
                tests(names.len()),
                capability.need,
                if one { "stays" } else { "stay" }
            )
        });
    }
    if others > 0 {
        let is = if others == 1 { "is" } else { "are" };
        parts.push(if every_need_met {
            format!(
                "{} ignored for other reasons {is} included (--include-ignored)",
                tests(others)
            )
        } else {
            let stay = if others == 1 { "stays" } else { "stay" };
            format!("{} ignored for other reasons {stay} ignored", tests(others))
        });
    }
    let mut runs = Vec::new();
    if every_need_met {
        runs.push(vec!["--include-ignored".to_string()]);
    } else {
        runs.push(Vec::new());
        let runnable: Vec<String> = members
            .iter()
            .zip(available)
            .filter(|&(_, &has)| has)
            .flat_map(|(names, _)| names.iter().cloned())
            .collect();
        if !runnable.is_empty() {
            let mut second = vec!["--ignored".to_string(), "--exact".to_string()];
            second.extend(runnable);
            runs.push(second);
        }
    }
    Plan {
        line: parts.join("; "),
        runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &[Capability] = &[CAPABILITIES[0]];

    const ROOT_AND_NET: &[Capability] = &[
        CAPABILITIES[0],
        Capability {
            prefix: "net_",
            need: "the network",
            met: "online",
            unmet: "offline",
            available: || false,
        },
    ];

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_list_output_is_parsed() {
        let text = "who::root_binds_80: test\nroot_netns_all: test\nbench_x: bench\n\
                    src/lib.rs - run (line 3): test\n\n3 tests, 1 benchmark\n";
        assert_eq!(
            parse_list(text),
            [
                "who::root_binds_80",
                "root_netns_all",
                "src/lib.rs - run (line 3)"
            ]
        );
    }

    #[test]
    fn groups_go_by_the_last_segment() {
        assert_eq!(group_of(CAPABILITIES, "who::root_binds_80"), Some(0));
        assert_eq!(group_of(CAPABILITIES, "root_netns"), Some(0));
        assert_eq!(group_of(CAPABILITIES, "root_tests::binds"), None);
        assert_eq!(group_of(CAPABILITIES, "slow_thing"), None);
        assert_eq!(
            group_of(CAPABILITIES, "metrics::promtool_accepts_it"),
            Some(1)
        );
        assert_eq!(group_of(CAPABILITIES, "top::tmux_q_quits"), Some(2));
    }

    #[test]
    fn as_root_every_ignored_test_runs() {
        let ignored = names(&["a::root_x", "root_y", "slow"]);
        let plan = plan(ROOT, &[true], &ignored);
        assert_eq!(
            plan.line,
            "root: 2 tests that need root included; \
             1 test ignored for other reasons is included (--include-ignored)"
        );
        assert_eq!(plan.runs, [["--include-ignored"]]);
    }

    #[test]
    fn without_root_they_stay_ignored() {
        let ignored = names(&["a::root_x", "root_y", "b::root_z"]);
        let plan = plan(ROOT, &[false], &ignored);
        assert_eq!(plan.line, "not root: 3 tests that need root stay ignored");
        assert_eq!(plan.runs, [Vec::<String>::new()]);
    }

    #[test]
    fn no_ignored_tests() {
        let plan = plan(ROOT, &[false], &[]);
        assert_eq!(plan.line, "not root: 0 tests that need root stay ignored");
        let plan = super::plan(ROOT, &[true], &names(&["root_one"]));
        assert_eq!(plan.line, "root: 1 test that needs root included");
    }

    #[test]
    fn with_some_needs_met_a_second_run_takes_those_groups() {
        let ignored = names(&["a::root_x", "net_fetch", "slow"]);
        let plan = plan(ROOT_AND_NET, &[true, false], &ignored);
        assert_eq!(
            plan.line,
            "root: 1 test that needs root included; \
             offline: 1 test that needs the network stays ignored; \
             1 test ignored for other reasons stays ignored"
        );
        assert_eq!(
            plan.runs,
            [names(&[]), names(&["--ignored", "--exact", "a::root_x"])]
        );
    }
}
