//! `portstat who PORT` (alias `why`): who holds a port, and could a new server bind it now?

pub mod probe;
pub mod render;
pub mod target;
pub mod verdict;

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use crate::backend::Source;
use crate::cgroup;
use crate::cli::WhoArgs;
use crate::error::UsageError;
use crate::filter::{NetnsSelection, PortSpec, Query};
use crate::host::{self, UserNames};
use crate::owners::Stop;
use crate::scan::{self, Names};
use crate::services::Services;
use render::WhoReport;
use verdict::HostFacts;

/// How long `--connect` waits for an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `f` in the network namespace selected: here for portstat's own, else on a thread that
/// has joined it (setns moves only the calling thread).
fn inside<T: Send>(netns: &NetnsSelection, f: impl FnOnce() -> T + Send) -> Result<T> {
    match netns {
        NetnsSelection::One(spec) => run_in_namespace(spec, f),
        NetnsSelection::Own | NetnsSelection::All => Ok(f()),
    }
}

#[cfg(target_os = "linux")]
fn run_in_namespace<T: Send>(spec: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let namespace = crate::netns::resolve(spec)?;
    if namespace.own {
        return Ok(f());
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| namespace.enter().map(|()| f()))
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread inside the namespace failed")))
    })
}

#[cfg(not(target_os = "linux"))]
fn run_in_namespace<T: Send>(_spec: &str, _f: impl FnOnce() -> T + Send) -> Result<T> {
    Err(UsageError("--netns is supported on Linux only".into()).into())
}

pub fn run(args: &WhoArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let target = args.target;
    let users = UserNames::load();
    let query = Query {
        protos: vec![target.proto],
        ports: Some(PortSpec::from(target.port)),
        local_ports_only: true,
        ..Query::default()
    };
    let names = Names {
        services: Some(Services::system()),
        users: Some(&users),
    };
    // Every holder of a listener matters here (a shared socket changes the verdict): the walk
    // stops once each socket has one, then looks through the holders' children.
    let netns = args.netns.clone().unwrap_or_default();
    if netns == NetnsSelection::All {
        return Err(UsageError(
            "who asks about one network namespace: give --netns a pid, a name or a path".into(),
        )
        .into());
    }
    let scan = scan::scan(
        &query,
        args.backend,
        &Source::Live,
        &netns,
        names,
        Stop::WhenAllFound,
    )?;
    let entries = scan.entries;

    let owner_pids: Vec<u32> = entries
        .iter()
        .filter(|entry| entry.socket.state.is_listening())
        .flat_map(|entry| entry.processes.iter().map(|p| p.pid))
        .collect();
    let managers: HashMap<u32, cgroup::Manager> = owner_pids
        .iter()
        .map(|&pid| (pid, cgroup::of_process(pid)))
        .collect();

    // The sysctls, the test bind and the connection all belong to the namespace asked about.
    let (facts, test, connect) = inside(&netns, || {
        let reserved = host::reserved_ports();
        let facts = HostFacts {
            bindv6only: host::bindv6only(),
            unprivileged_port_start: host::unprivileged_port_start(),
            may_bind_privileged: host::may_bind_privileged_ports(),
            ephemeral: host::ephemeral_range(),
            reserved: !reserved.is_empty()
                && reserved
                    .parse::<PortSpec>()
                    .is_ok_and(|ports| ports.contains(target.port)),
        };
        let test = (!args.no_bind).then(|| probe::test_bind(&target));
        let connect = args
            .connect
            .then(|| probe::test_connect(&target, CONNECT_TIMEOUT));
        (facts, test, connect)
    })?;
    let verdict = verdict::decide(&target, &entries, &facts, &managers, test.as_ref());

    if !args.quiet {
        let report = WhoReport::new(
            &target,
            &entries,
            &facts,
            &managers,
            &verdict,
            test.as_ref(),
            connect.as_ref(),
            &scan.warnings,
        );
        if args.json {
            render::json(&report, out)?;
        } else {
            render::text(&report, out)?;
        }
        out.flush()?;
        for warning in &scan.warnings {
            writeln!(err, "portstat: warning: {warning}")?;
        }
    }
    Ok(if verdict.can_bind {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
