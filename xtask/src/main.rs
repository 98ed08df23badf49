//! `cargo xtask <task>`: portstat's own tools. None of this is built by `cargo test` or
//! shipped; each task is a module of its own.

mod bench;
mod check;
mod deb;
mod farm;
mod firewall_cost;
mod fixtures;
#[cfg(test)] // the bench compiles it on its own (measure.rs says why); a module for the tests
mod measure;
mod probe_cost;
mod ruleset;
mod serve_memory;
mod services;
mod test;
mod top_keys;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "portstat's own tools")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// The benchmark, as root: portstat against ss, netstat and lsof on socket farms of 50, 1k,
    /// 10k and 100k sockets; rewrites BENCHMARKS.md
    Bench(bench::BenchArgs),
    /// A socket farm: N real loopback sockets in every state, held by a few processes
    Farm(farm::FarmArgs),
    /// One worker of a socket farm (started by `farm`)
    #[command(hide = true)]
    FarmWorker(farm::WorkerArgs),
    /// Regenerate data/iana-services.tsv from data/iana-service-names-port-numbers.csv
    Services(services::ServicesArgs),
    /// Re-record fixtures/proc-net/ from the kernel, as root, in a private network namespace
    Fixtures(fixtures::FixturesArgs),
    /// Run every test: `cargo test --workspace`, with the ignored tests this user can run
    Test(test::TestArgs),
    /// The layering invariant: only src/os/ and src/main.rs touch the OS, no import cycles
    Check(check::CheckArgs),
    /// The Debian package (cargo-deb): binary, man page and completions, its file list checked
    Deb(deb::DebArgs),
    /// The bench's firewall cost alone, as root, in a private network namespace: what reading
    /// and judging a 1,000-rule ruleset adds to `portstat audit`
    FirewallCost(firewall_cost::FirewallCostArgs),
    /// The bench's probe cost alone, as root, in a private network namespace: `audit --probe`
    /// over 100 listeners of many kinds (issue 19: within 3 s)
    ProbeCost(probe_cost::ProbeCostArgs),
}

fn main() -> ExitCode {
    let xtask = Xtask::parse();
    match xtask.task {
        Task::Bench(args) => bench::run(&args, task_arguments("bench")),
        Task::Farm(args) => farm::run(&args),
        Task::FarmWorker(args) => farm::worker(&args),
        Task::Services(args) => services::run(&args),
        Task::Fixtures(args) => fixtures::run(&args),
        Task::Test(args) => test::run(&args),
        Task::Check(args) => check::run(&args),
        Task::Deb(args) => deb::run(&args),
        Task::FirewallCost(args) => firewall_cost::task(&args),
        Task::ProbeCost(args) => probe_cost::task(&args),
    }
}

/// Moves the calling thread, and what it starts from then on, into a new network namespace
/// with loopback up: the measurements that bind fixed ports or load a firewall run there.
pub fn private_netns() -> Result<(), String> {
    // SAFETY: unshare(CLONE_NEWNET) changes only the calling thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (needs root)",
            std::io::Error::last_os_error()
        ));
    }
    let status = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .map_err(|error| format!("ip link set lo up: {error}"))?;
    if !status.success() {
        return Err(format!("ip link set lo up: {status}"));
    }
    Ok(())
}

/// The repository's root (the parent of this crate's folder), wherever xtask is run from.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Builds the portstat binary with a cargo profile and returns where it went (under
/// `CARGO_TARGET_DIR` when set): the benchmark and the package build the same way.
pub fn build_portstat(profile: &str) -> Result<PathBuf, String> {
    let root = repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--profile", profile, "--package", "portstat"])
        .args(["--bin", "portstat"])
        .status()
        .map_err(|error| format!("cargo build: {error}"))?;
    if !status.success() {
        return Err(format!("cargo build --profile {profile} failed: {status}"));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join(profile).join("portstat"))
}

/// The arguments given after the task's name, as given.
fn task_arguments(task: &str) -> Vec<String> {
    std::env::args()
        .skip(1)
        .skip_while(|arg| arg != task)
        .skip(1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Task, clap::Error> {
        Xtask::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .map(|xtask| xtask.task)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn bench_defaults_and_options() {
        let Task::Bench(args) = parse(&["bench"]).unwrap() else {
            panic!("not bench")
        };
        let scales: Vec<(&str, usize)> = args
            .scales
            .iter()
            .map(|s| (s.name.as_str(), s.sockets))
            .collect();
        assert_eq!(
            scales,
            [
                ("small", 50),
                ("1k", 1000),
                ("10k", 10_000),
                ("100k", 100_000)
            ]
        );
        assert_eq!((args.runs, args.slow_runs, args.session_secs), (10, 3, 50));
        assert!(args.portstat.is_none() && !args.no_build && !args.verbose);
        assert!(args.out.is_none());

        let Task::Bench(args) = parse(&[
            "bench",
            "--scales",
            "1k,2500",
            "--runs",
            "5",
            "--portstat",
            "/tmp/portstat",
            "--out",
            "/tmp/b.md",
            "--verbose",
        ])
        .unwrap() else {
            panic!("not bench")
        };
        assert_eq!(args.scales.len(), 2);
        assert_eq!(args.scales[1].sockets, 2500);
        assert_eq!(args.runs, 5);
        assert_eq!(args.portstat.as_deref(), Some(Path::new("/tmp/portstat")));
        assert!(args.verbose);
    }

    #[test]
    fn bench_rejects_bad_values() {
        for bad in [
            &["bench", "--scales", "huge"][..],
            &["bench", "--scales", "0"],
            &["bench", "--runs", "0"],
            &["bench", "--runs", "x"],
            &["bench", "--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn farm_needs_a_positive_socket_count() {
        let Task::Farm(args) = parse(&["farm", "--sockets", "1000", "--netns"]).unwrap() else {
            panic!("not farm")
        };
        assert_eq!(
            (args.sockets, args.seconds, args.workers),
            (1000, 120, None)
        );
        assert!(args.netns);
        assert!(parse(&["farm"]).is_err());
        assert!(parse(&["farm", "--sockets", "0"]).is_err());
        assert!(parse(&["farm", "--sockets", "10", "--workers", "0"]).is_err());
        let Task::FarmWorker(worker) = parse(&["farm-worker", "1", "500", "42", "420"]).unwrap()
        else {
            panic!("not farm-worker")
        };
        assert_eq!(
            (worker.index, worker.share, worker.master, worker.seconds),
            (1, 500, 42, 420)
        );
    }

    #[test]
    fn services_paths_default_to_the_repository_data() {
        let Task::Services(args) = parse(&["services"]).unwrap() else {
            panic!("not services")
        };
        assert_eq!(
            args.input,
            Path::new("data/iana-service-names-port-numbers.csv")
        );
        assert_eq!(args.output, Path::new("data/iana-services.tsv"));
        let Task::Services(args) = parse(&["services", "in.csv", "-o", "/tmp/out.tsv"]).unwrap()
        else {
            panic!("not services")
        };
        assert_eq!(args.input, Path::new("in.csv"));
        assert_eq!(args.output, Path::new("/tmp/out.tsv"));
    }

    #[test]
    fn test_passes_what_follows_the_double_dash() {
        let Task::Test(args) = parse(&["test"]).unwrap() else {
            panic!("not test")
        };
        assert!(args.args.is_empty());
        let Task::Test(args) = parse(&["test", "--", "who", "--nocapture"]).unwrap() else {
            panic!("not test")
        };
        assert_eq!(args.args, ["who", "--nocapture"]);
    }
}
