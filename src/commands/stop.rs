//! `portstat who TARGET --stop`: ends what holds the port, in the way that frees it (the plan
//! is what `who`'s advice names, see `core::stop`), then waits for the port to be free. `top`
//! calls [`stop`] too, with a confirmation of its own.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Result;

use super::scan::{self, Names};
use super::{Context, Outcome, who};
use crate::cli::WhoArgs;
use crate::core::error::UsageError;
use crate::core::firewall::published;
use crate::core::model::{Backend, Entry, Proto, Source};
use crate::core::query::{NetnsSelection, PortSpec, Query};
use crate::core::stop::{self, Caller, Plan, Progress, Signal, Signalled, Step, Stop, StopReport};
use crate::core::target::Target;
use crate::core::verdict::{self, HostFacts};
use crate::os::{Os, Wait};
use crate::render;

/// How long `--stop` waits for the port to be free unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the port is looked at again while waiting.
const POLL: Duration = Duration::from_millis(100);

/// How long the port may take to be free after SIGKILL (`--force`): the kernel closes a
/// killed process's sockets as it reaps it.
const AFTER_KILL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct StopOptions {
    /// How long to wait for the port to be free after stopping.
    pub timeout: Duration,
    /// SIGKILL (or the runtime's kill) once `timeout` has passed with the port still held.
    pub force: bool,
    pub backend: Backend,
    pub netns: NetnsSelection,
}

impl Default for StopOptions {
    fn default() -> StopOptions {
        StopOptions {
            timeout: DEFAULT_TIMEOUT,
            force: false,
            backend: Backend::Auto,
            netns: NetnsSelection::Own,
        }
    }
}

/// Plans how to free `target`, asks `confirm` (given the plans, none of them a refusal; an
/// error ends the stop with nothing done), carries the plans out and waits for the port to be
/// free, telling `progress` each step and each wait as it comes. Nothing is done when the port
/// is free already or any plan is a refusal.
pub fn stop(
    os: &dyn Os,
    target: &Target,
    options: &StopOptions,
    confirm: &mut dyn FnMut(&[Plan]) -> Result<bool>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<StopReport> {
    let (target, namespace) = who::resolve(os, *target, &options.netns)?;
    let facts = os.host_facts(namespace.as_ref())?;
    let look = Look {
        os,
        target: &target,
        facts: &facts,
        options,
        asked_docker: RefCell::default(),
    };
    let (entries, stops) = look.now()?;
    let euid = os.effective_uid();
    let caller = Caller {
        pid: os.own_pid(),
        euid,
        user: euid.and_then(|uid| os.user_name(uid)),
    };
    let mut report = StopReport {
        target: target.to_string(),
        plans: stop::plan(&stops, &entries, &caller),
        confirmed: false,
        steps: Vec::new(),
        free: stops.is_empty(),
        held_by_others: Vec::new(),
        waited: 0.0,
    };
    if report.plans.is_empty() || report.refused() || !confirm(&report.plans)? {
        return Ok(report);
    }
    report.confirmed = true;
    let mut steps = Steps {
        done: Vec::new(),
        progress,
    };
    for plan in &report.plans {
        carry_out(os, plan, &mut steps);
    }
    let began = os.monotonic();
    let all_failed = steps.done.iter().all(Step::failed);
    let mut held = if all_failed {
        // Nothing was done that could free it, so there is nothing to wait for or escalate:
        // one look says how it stands.
        let (entries, stops) = look.now()?;
        (!stops.is_empty()).then_some((entries, stops))
    } else {
        look.until_free(options.timeout, steps.progress)?
    };
    if let Some((entries, stops)) = held.as_ref().filter(|_| options.force && !all_failed) {
        let before = steps.done.len();
        let now = stop::plan(stops, entries, &caller);
        kill(os, &report.plans, &now, entries, &mut steps);
        if steps.done[before..].iter().any(|step| !step.failed()) {
            held = look.until_free(AFTER_KILL, steps.progress)?;
        }
    }
    report.steps = steps.done;
    report.waited = os.monotonic().saturating_sub(began).as_secs_f64();
    report.free = held.is_none();
    if let Some((entries, stops)) = &held {
        report.held_by_others = stop::plan(stops, entries, &caller)
            .into_iter()
            .filter(|now| !report.plans.iter().any(|was| was.same_holder(now)))
            .collect();
    }
    Ok(report)
}

/// The container docker says publishes a port, as (id, name), or why there is not one.
type Published = Result<(String, String), String>;

/// The port, looked at again.
struct Look<'a> {
    os: &'a dyn Os,
    target: &'a Target,
    facts: &'a HostFacts,
    options: &'a StopOptions,
    /// docker's answers, by published port: asked once per stop, not at every look.
    asked_docker: RefCell<HashMap<(u16, Proto), Published>>,
}

impl Look<'_> {
    /// The sockets on the port and what holds it (empty: it is free).
    fn now(&self) -> Result<(Vec<Entry>, Vec<Stop>)> {
        let query = Query {
            protos: vec![self.target.proto],
            local_ports: Some(PortSpec::from(self.target.port)),
            ..Query::default()
        };
        let names = Names {
            services: None,
            users: true,
        };
        let scan = scan::scan(
            self.os,
            &query,
            self.options.backend,
            &Source::Live,
            &self.options.netns,
            names,
        )?;
        let managers = who::managers(self.os, &scan.entries);
        let mut stops = verdict::stops(self.target, &scan.entries, self.facts, &managers);
        for stop in &mut stops {
            self.name_container(stop);
        }
        Ok((scan.entries, stops))
    }

    /// docker-proxy's command line (and dockerd's, without the userland proxy) names no
    /// container, only the port it publishes: docker is asked which container that is. Left
    /// unnamed (and so refused) unless docker names exactly one.
    fn name_container(&self, stop: &mut Stop) {
        let Stop::Published {
            placeholder,
            port,
            proto,
            unnamed,
        } = stop
        else {
            return;
        };
        let named = placeholder.container_name.is_some() || placeholder.container_id.is_some();
        if placeholder.runtime != "docker" || named {
            return;
        }
        let mut asked = self.asked_docker.borrow_mut();
        let answer = asked
            .entry((*port, *proto))
            .or_insert_with(|| ask_docker(self.os, *port, *proto));
        match answer {
            Ok((id, name)) => {
                placeholder.container_id = Some(id.clone());
                placeholder.container_name = Some(name.clone());
            }
            Err(why) => *unnamed = Some(why.clone()),
        }
    }

    /// Looks until the port is free (`None`) or `timeout` has passed (the sockets still on it,
    /// and what holds it).
    fn until_free(
        &self,
        timeout: Duration,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Option<(Vec<Entry>, Vec<Stop>)>> {
        let target = self.target.to_string();
        progress(Progress::Waiting {
            target: &target,
            timeout,
        });
        let deadline = self.os.monotonic() + timeout;
        loop {
            let (entries, stops) = self.now()?;
            if stops.is_empty() {
                return Ok(None);
            }
            let now = self.os.monotonic();
            if now >= deadline || self.os.wait(POLL.min(deadline - now))? == Wait::Interrupted {
                return Ok(Some((entries, stops)));
            }
        }
    }
}

/// The one container docker says publishes `port`.
fn ask_docker(os: &dyn Os, port: u16, proto: Proto) -> Published {
    let args = published::docker_ps_args(port, proto.as_str());
    let listing = os
        .run_tool("docker", &args)
        .map_err(|error| format!("docker could not be asked ({error})"))?;
    match published::publishing(&listing).as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("docker names no container publishing it".into()),
        many => {
            let names: Vec<&str> = many.iter().map(|(_, name)| name.as_str()).collect();
            Err(format!(
                "docker names {} containers publishing it ({})",
                many.len(),
                names.join(", ")
            ))
        }
    }
}

/// The steps taken so far, each told as it is taken.
struct Steps<'a> {
    done: Vec<Step>,
    progress: &'a mut dyn FnMut(Progress<'_>),
}

impl Steps<'_> {
    fn push(&mut self, step: Step) {
        (self.progress)(Progress::Step(&step));
        self.done.push(step);
    }
}

fn carry_out(os: &dyn Os, plan: &Plan, steps: &mut Steps) {
    match plan {
        Plan::Unit { unit, socket_unit } => {
            // The socket unit first, or a connection meanwhile starts the service again.
            let mut args = vec!["stop".to_string()];
            args.extend(socket_unit.iter().cloned());
            args.push(unit.clone());
            steps.push(command(os, "systemctl", args));
        }
        Plan::Container { runtime, name } => {
            steps.push(command(os, runtime, vec!["stop".into(), name.clone()]));
        }
        Plan::Process { holder, .. } => {
            steps.push(signal(os, holder, Signal::Term));
        }
        Plan::Refuse { .. } => {}
    }
}

/// `--force`, the port still held: SIGKILL to the planned processes that still hold a listener
/// on it (the master and its workers, who would otherwise keep it); the manager's kill for
/// units and containers that still hold it, as `now` (the plans for what holds it now) says.
/// A process, unit or container that took the port since is not touched: it was not
/// confirmed.
fn kill(os: &dyn Os, plans: &[Plan], now: &[Plan], entries: &[Entry], steps: &mut Steps) {
    let still_holds = |plan: &Plan| now.iter().any(|now| plan.same_holder(now));
    let holding: HashSet<u32> = entries
        .iter()
        .filter(|entry| entry.socket.state.is_listening())
        .flat_map(|entry| entry.processes.iter().map(|p| p.pid))
        .collect();
    for plan in plans {
        match plan {
            Plan::Unit { .. } | Plan::Container { .. } if !still_holds(plan) => {}
            Plan::Unit { unit, .. } => steps.push(command(
                os,
                "systemctl",
                vec!["kill".into(), "--signal=SIGKILL".into(), unit.clone()],
            )),
            Plan::Container { runtime, name } => {
                steps.push(command(os, runtime, vec!["kill".into(), name.clone()]));
            }
            Plan::Process { holder, workers } => {
                for process in std::iter::once(holder).chain(workers) {
                    if holding.contains(&process.pid) {
                        steps.push(signal(os, process, Signal::Kill));
                    }
                }
            }
            Plan::Refuse { .. } => {}
        }
    }
}

fn command(os: &dyn Os, program: &str, args: Vec<String>) -> Step {
    let error = os.run_tool(program, &args).err();
    let mut command = vec![program.to_string()];
    command.extend(args);
    Step::Command { command, error }
}

fn signal(os: &dyn Os, holder: &stop::Holder, signal: Signal) -> Step {
    // The plan refuses a process whose start time is unknown.
    let outcome = match holder.start_time {
        Some(started) => os.signal(holder.pid, started, signal),
        None => Signalled::Failed("its start time is not known".into()),
    };
    Step::Signal {
        signal,
        pid: holder.pid,
        name: holder.name.clone(),
        outcome,
    }
}

/// The exit status's answer: free afterwards, still held, or nothing could be done.
pub fn outcome(report: &StopReport) -> Outcome {
    if report.free {
        Outcome::Pass
    } else if report.broken() {
        Outcome::Unable
    } else {
        Outcome::Fail
    }
}

pub fn run(args: &WhoArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let options = StopOptions {
        timeout: args.timeout.unwrap_or(DEFAULT_TIMEOUT),
        force: args.force,
        backend: args.scan.backend,
        netns: args.scan.netns(),
    };
    let target = args.target;
    let mut confirm = |plans: &[Plan]| -> Result<bool> {
        if args.yes {
            return Ok(true);
        }
        os.confirm(&render::stop::question(&target, plans))
            .map_err(|error| {
                UsageError(format!(
                    "who --stop asks before it stops anything, and {error}: give --yes to stop \
                     without asking"
                ))
                .into()
            })
    };
    let (quiet, json) = (args.quiet, args.json.json);
    let output = &mut context.output;
    // Each step is said as it is taken, not after the wait: one that hangs or takes seconds
    // shows what it is waiting on. A failed write stops the telling, not the stop.
    let mut told = Ok(());
    let mut progress = |progress: Progress<'_>| {
        if !quiet && !json && told.is_ok() {
            told = render::stop::progress(&progress, output.out);
        }
    };
    let report = stop(os, &target, &options, &mut confirm, &mut progress)?;
    told?;
    if !quiet {
        if json {
            output.json(&render::stop::Document::of(&report))?;
        } else {
            render::stop::text(&report, options.force, output.out)?;
        }
    }
    Ok(outcome(&report))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::model::{Process, Proto, Socket, State};
    use crate::os::FakeOs;

    const STARTED: u64 = 1_764_000_000;

    fn listener(inode: u64) -> Socket {
        Socket {
            inode,
            ..Socket::example(Proto::Tcp, "0.0.0.0:8080", None, State::Listen)
        }
    }

    fn process(pid: u32, ppid: u32) -> Process {
        Process {
            ppid: Some(ppid),
            started: Some(STARTED + u64::from(pid)),
            ..(*Process::example(pid, "server", Some("root"))).clone()
        }
    }

    /// A host where `holders` hold the listener on 8080 for `held` readings, then nothing does.
    fn host(holders: &[Process], held: usize) -> FakeOs {
        let mut fake = FakeOs::default();
        fake.readings = vec![vec![listener(7)]; held];
        fake.readings.push(Vec::new());
        fake.holders
            .insert(7, holders.iter().map(|process| process.pid).collect());
        for process in holders {
            fake.processes.insert(process.pid, process.clone());
        }
        fake
    }

    fn options(force: bool) -> StopOptions {
        StopOptions {
            timeout: Duration::from_secs(1),
            force,
            ..StopOptions::default()
        }
    }

    fn run_stop(fake: &FakeOs, force: bool) -> StopReport {
        let target: Target = "8080".parse().expect("target");
        stop(
            fake,
            &target,
            &options(force),
            &mut |_| Ok(true),
            &mut |_| {},
        )
        .expect("stops")
    }

    fn signalled(fake: &FakeOs) -> Vec<(u32, Signal)> {
        let sent = fake.signalled.lock().expect("not poisoned");
        sent.iter().map(|&(pid, _, signal)| (pid, signal)).collect()
    }

    #[test]
    fn a_plain_listener_gets_sigterm_with_its_start_time_and_the_port_is_free_after() {
        let fake = host(&[process(77, 10)], 2);
        let report = run_stop(&fake, false);
        assert_eq!(
            *fake.signalled.lock().expect("not poisoned"),
            [(77, STARTED + 77, Signal::Term)]
        );
        assert!(report.free && report.confirmed, "{report:?}");
        assert_eq!(report.waited, 0.2);
        assert_eq!(outcome(&report), Outcome::Pass);
    }

    #[test]
    fn one_that_ignores_sigterm_is_still_held_after_the_timeout_and_killed_only_with_force() {
        let fake = host(&[process(77, 10)], 100);
        let report = run_stop(&fake, false);
        assert_eq!(signalled(&fake), [(77, Signal::Term)]);
        assert!(!report.free);
        assert_eq!(report.waited, 1.0);
        assert_eq!(outcome(&report), Outcome::Fail);

        // Held through the timeout (readings 0..=10) and one look after SIGKILL.
        let fake = host(&[process(77, 10)], 12);
        let report = run_stop(&fake, true);
        assert_eq!(signalled(&fake), [(77, Signal::Term), (77, Signal::Kill)]);
        assert!(report.free, "{report:?}");
        assert_eq!(outcome(&report), Outcome::Pass);
    }

    #[test]
    fn a_pre_forked_master_is_signalled_not_its_workers_and_force_kills_the_workers_left() {
        let holders = [process(900, 1), process(901, 900), process(902, 900)];
        let fake = host(&holders, 2);
        let report = run_stop(&fake, true);
        assert_eq!(signalled(&fake), [(900, Signal::Term)]);
        assert!(report.free);

        // The master exits but its workers keep the port: under --force they get SIGKILL, the
        // master (gone from the port) nothing more.
        let mut fake = host(&holders, 10);
        fake.readings.insert(10, vec![listener(8)]);
        fake.holders.insert(8, vec![901, 902]);
        let report = run_stop(&fake, true);
        assert_eq!(
            signalled(&fake),
            [
                (900, Signal::Term),
                (901, Signal::Kill),
                (902, Signal::Kill)
            ]
        );
        assert!(report.free, "{report:?}");
    }

    #[test]
    fn without_a_terminal_nothing_is_stopped() {
        let fake = host(&[process(77, 10)], 2);
        let target: Target = "8080".parse().expect("target");
        let asked = stop(
            &fake,
            &target,
            &options(false),
            &mut |plans| fake.confirm(&render::stop::question(&target, plans)),
            &mut |_| {},
        );
        let error = asked.expect_err("no terminal");
        assert!(error.to_string().contains("no terminal"), "{error}");
        assert!(signalled(&fake).is_empty());
        let asked = fake.asked.lock().expect("not poisoned");
        assert!(
            asked[0].contains("server (pid 77, user root, started"),
            "{asked:?}"
        );
    }

    #[test]
    fn pid_1_is_refused_without_asking_and_the_exit_says_so() {
        let fake = host(
            &[Process {
                ppid: None,
                ..process(1, 0)
            }],
            2,
        );
        let target: Target = "8080".parse().expect("target");
        let mut asked = false;
        let report = stop(
            &fake,
            &target,
            &options(false),
            &mut |_| {
                asked = true;
                Ok(true)
            },
            &mut |_| {},
        )
        .expect("plans");
        assert!(!asked && report.refused() && !report.confirmed);
        assert!(signalled(&fake).is_empty());
        assert_eq!(outcome(&report), Outcome::Unable);
    }

    #[test]
    fn a_user_may_not_stop_another_users_process() {
        let mut fake = host(&[process(77, 10)], 2);
        fake.euid = Some(1000);
        fake.users.insert(1000, Arc::from("alice"));
        let report = run_stop(&fake, false);
        assert!(report.refused(), "{report:?}");
        assert!(signalled(&fake).is_empty());
    }

    #[test]
    fn a_systemd_service_is_stopped_by_its_unit_and_a_missing_systemctl_says_so() {
        let mut fake = host(&[process(700, 1)], 2);
        fake.cgroups
            .insert(700, "0::/system.slice/nginx.service\n".into());
        let report = run_stop(&fake, false);
        assert_eq!(
            *fake.ran.lock().expect("not poisoned"),
            [["systemctl", "stop", "nginx.service"]]
        );
        assert!(signalled(&fake).is_empty());
        assert_eq!(outcome(&report), Outcome::Pass);

        let mut fake = host(&[process(700, 1)], 100);
        fake.cgroups
            .insert(700, "0::/system.slice/nginx.service\n".into());
        fake.tool_errors.insert(
            "systemctl".into(),
            "systemctl is not installed (not found on PATH)".into(),
        );
        let report = run_stop(&fake, true);
        // A step that failed frees nothing: no wait, and no kill after it.
        assert_eq!(report.waited, 0.0);
        assert_eq!(fake.ran.lock().expect("not poisoned").len(), 1);
        assert_eq!(outcome(&report), Outcome::Unable);
    }

    #[test]
    fn a_podman_container_is_stopped_by_podman_and_killed_by_it_under_force() {
        let id = "4f3c1d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
        let mut fake = host(&[process(300, 290)], 100);
        fake.cgroups.insert(
            300,
            format!("0::/machine.slice/libpod-{id}.scope/container\n"),
        );
        let report = run_stop(&fake, true);
        assert_eq!(
            *fake.ran.lock().expect("not poisoned"),
            [["podman", "stop", &id[..12]], ["podman", "kill", &id[..12]]]
        );
        assert_eq!(outcome(&report), Outcome::Fail);
    }

    /// What was written, and the fake's clock when each piece of it was.
    struct Clocked<'a> {
        os: &'a FakeOs,
        text: String,
        /// Where each write ended in `text`, and when it was written.
        writes: Vec<(usize, Duration)>,
    }

    impl Clocked<'_> {
        /// When `what` had been written in full.
        fn when(&self, what: &str) -> Duration {
            let end = self.text.find(what).map(|at| at + what.len());
            let end = end.unwrap_or_else(|| panic!("{what:?} not in {:?}", self.text));
            let write = self.writes.iter().find(|&&(ended, _)| ended >= end);
            write.expect("written").1
        }
    }

    impl std::io::Write for Clocked<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.text.push_str(&String::from_utf8_lossy(bytes));
            self.writes.push((self.text.len(), self.os.monotonic()));
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_step_is_written_before_the_wait_and_the_result_after_it() {
        use clap::Parser;

        let fake = host(&[process(77, 10)], 3);
        let cli = crate::cli::Cli::try_parse_from(["portstat", "who", "8080", "--stop", "--yes"])
            .expect("parses");
        let Some(crate::cli::Command::Who(args)) = &cli.command else {
            panic!("not who: {cli:?}");
        };
        let mut out = Clocked {
            os: &fake,
            text: String::new(),
            writes: Vec::new(),
        };
        let mut err = Vec::new();
        let output = crate::render::Output {
            out: &mut out,
            err: &mut err,
            style: crate::render::Style {
                terminal: false,
                width: None,
                color: false,
            },
        };
        let mut context = Context::new(&fake, output);
        let outcome = run(args, &mut context).expect("stops");
        assert_eq!(outcome, Outcome::Pass);
        // The fake's clock moves only while the port is waited on (three looks, 0.3s).
        assert_eq!(out.when("Sent SIGTERM to server (pid 77)."), Duration::ZERO);
        assert_eq!(
            out.when("Waiting up to 5.0s for 0.0.0.0:8080/tcp to be free ..."),
            Duration::ZERO
        );
        assert_eq!(
            out.when("is free now (after 0.3s)"),
            Duration::from_millis(300)
        );
    }

    /// `fake`, where after the first reading `holder` (with `cgroup`) holds the port instead.
    fn taken_over(mut fake: FakeOs, holder: Process, cgroup: &str) -> FakeOs {
        fake.readings.truncate(1);
        fake.readings.extend(vec![vec![listener(8)]; 100]);
        fake.holders.insert(8, vec![holder.pid]);
        fake.cgroups.insert(holder.pid, cgroup.into());
        fake.processes.insert(holder.pid, holder);
        fake
    }

    fn ran(fake: &FakeOs) -> Vec<Vec<String>> {
        fake.ran.lock().expect("not poisoned").clone()
    }

    fn said(report: &StopReport) -> String {
        let mut out = Vec::new();
        render::stop::text(report, true, &mut out).expect("written");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn force_kills_a_unit_only_while_that_unit_still_holds_the_port() {
        let nginx = "0::/system.slice/nginx.service\n";
        let mut fake = host(&[process(700, 1)], 100);
        fake.cgroups.insert(700, nginx.into());
        let report = run_stop(&fake, true);
        assert_eq!(
            ran(&fake),
            [
                vec!["systemctl", "stop", "nginx.service"],
                vec!["systemctl", "kill", "--signal=SIGKILL", "nginx.service"]
            ]
        );
        assert!(report.held_by_others.is_empty(), "{report:?}");
        assert_eq!(outcome(&report), Outcome::Fail);

        // Another service took the port once nginx stopped: it is named, and nothing is killed.
        let mut fake = host(&[process(700, 1)], 1);
        fake.cgroups.insert(700, nginx.into());
        let apache = "0::/system.slice/apache2.service\n";
        let fake = taken_over(fake, process(800, 1), apache);
        let report = run_stop(&fake, true);
        assert_eq!(ran(&fake), [["systemctl", "stop", "nginx.service"]]);
        assert_eq!(
            report.held_by_others,
            [Plan::Unit {
                unit: "apache2.service".into(),
                socket_unit: None
            }]
        );
        assert_eq!(outcome(&report), Outcome::Fail);
        assert!(
            said(&report).contains("now by what was not stopped: unit apache2.service"),
            "{}",
            said(&report)
        );
    }

    #[test]
    fn force_kills_a_container_only_while_that_container_still_holds_the_port() {
        let id = "4f3c1d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
        let mut fake = host(&[process(300, 290)], 1);
        fake.cgroups.insert(
            300,
            format!("0::/machine.slice/libpod-{id}.scope/container\n"),
        );
        // A plain process, in no unit or container, took the port.
        let fake = taken_over(fake, process(555, 10), "0::/user.slice\n");
        let report = run_stop(&fake, true);
        assert_eq!(ran(&fake), [["podman", "stop", &id[..12]]]);
        assert!(signalled(&fake).is_empty());
        assert!(
            matches!(&report.held_by_others[..], [Plan::Process { holder, .. }] if holder.pid == 555),
            "{report:?}"
        );
        assert_eq!(outcome(&report), Outcome::Fail);
        assert!(
            said(&report).contains("now by what was not stopped: server (pid 555"),
            "{}",
            said(&report)
        );
    }

    fn docker_proxy(pid: u32) -> Process {
        Process {
            name: "docker-proxy".into(),
            cmdline: "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 \
                      -container-ip 172.17.0.2 -container-port 80"
                .into(),
            ..process(pid, 1)
        }
    }

    #[test]
    fn docker_proxy_s_container_is_the_one_docker_says_publishes_the_port() {
        let ps = [
            "docker",
            "ps",
            "--filter",
            "publish=8080/tcp",
            "--format",
            "{{.ID}} {{.Names}}",
        ];
        let mut fake = host(&[docker_proxy(500)], 3);
        fake.tool_outputs
            .insert("docker".into(), "0123456789ab web\n".into());
        let report = run_stop(&fake, false);
        assert_eq!(
            report.plans,
            [Plan::Container {
                runtime: "docker".into(),
                name: "web".into()
            }]
        );
        // Asked once, however often the port is looked at.
        assert_eq!(ran(&fake), [ps.to_vec(), vec!["docker", "stop", "web"]]);
        assert!(signalled(&fake).is_empty());
        assert_eq!(outcome(&report), Outcome::Pass);

        let refusal = |fake: &FakeOs| {
            let report = run_stop(fake, false);
            assert_eq!(outcome(&report), Outcome::Unable);
            match &report.plans[..] {
                [Plan::Refuse { reason }] => reason.clone(),
                other => panic!("not refused: {other:?}"),
            }
        };
        let mut fake = host(&[docker_proxy(500)], 3);
        fake.tool_outputs.insert(
            "docker".into(),
            "0123456789ab web\nba9876543210 api,api-alias\n".into(),
        );
        let reason = refusal(&fake);
        assert!(
            reason.contains("docker names 2 containers publishing it (web, api)")
                && reason.contains("`docker ps --filter publish=8080/tcp`"),
            "{reason}"
        );
        assert_eq!(ran(&fake), [ps]);

        let mut fake = host(&[docker_proxy(500)], 3);
        fake.tool_errors.insert(
            "docker".into(),
            "docker is not installed (not found on PATH)".into(),
        );
        let reason = refusal(&fake);
        assert!(
            reason.contains("docker could not be asked (docker is not installed")
                && reason.contains("`docker ps --filter publish=8080/tcp`"),
            "{reason}"
        );
        assert!(signalled(&fake).is_empty());
    }

    #[test]
    fn a_free_port_needs_nothing() {
        let fake = host(&[], 0);
        let report = run_stop(&fake, false);
        assert!(report.free && report.plans.is_empty());
        assert_eq!(outcome(&report), Outcome::Pass);
    }
}
