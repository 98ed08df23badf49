//! `who --stop`: the question asked before anything is stopped, what is done, one line per
//! step as it is taken, then the result. JSON is the [`StopReport`] itself.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::core::stop::{Holder, Plan, Progress, Signalled, Step, StopReport};
use crate::core::target::Target;
use crate::render::printable;

/// `who --stop --json`: the report, under the schema every JSON document carries.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub schema: u32,
    #[serde(flatten)]
    pub report: &'a StopReport,
}

impl Document<'_> {
    pub fn of(report: &StopReport) -> Document<'_> {
        Document { schema: 1, report }
    }
}

/// `python3 (pid 77, user root, started 2026-12-02T12:40:00Z)`: what tells this process from
/// one that took its pid since.
fn holder_text(holder: &Holder) -> String {
    let mut facts = vec![format!("pid {}", holder.pid)];
    facts.extend(holder.user.as_deref().map(|user| format!("user {user}")));
    facts.extend(holder.start_time.map(|seconds| {
        let time = UNIX_EPOCH + Duration::from_secs(seconds);
        format!("started {}", humantime::format_rfc3339_seconds(time))
    }));
    format!("{} ({})", holder.name, facts.join(", "))
}

fn pids(holders: &[Holder]) -> String {
    let list: Vec<String> = holders.iter().map(|h| h.pid.to_string()).collect();
    match holders {
        [_] => format!("pid {}", list.join(", ")),
        _ => format!("pids {}", list.join(", ")),
    }
}

/// What a plan does, as said before doing it.
pub fn plan_text(plan: &Plan) -> String {
    let text = match plan {
        Plan::Unit {
            unit,
            socket_unit: Some(socket),
        } => format!("systemctl stop {socket} {unit} (socket activated)"),
        Plan::Unit {
            unit,
            socket_unit: None,
        } => format!("systemctl stop {unit}"),
        Plan::Container { runtime, name } => format!("{runtime} stop {name}"),
        Plan::Process { holder, workers } if workers.is_empty() => {
            format!("SIGTERM to {}", holder_text(holder))
        }
        Plan::Process { holder, workers } => format!(
            "SIGTERM to {}, which ends {} holding it too (SIGKILL to them as well with --force)",
            holder_text(holder),
            pids(workers)
        ),
        Plan::Refuse { reason } => format!("not stopped: {reason}"),
    };
    printable(&text).into_owned()
}

/// What a plan would stop, named: `unit nginx.service`, `podman container web`, a process.
fn holder_of(plan: &Plan) -> String {
    let text = match plan {
        Plan::Unit { unit, .. } => format!("unit {unit}"),
        Plan::Container { runtime, name } => format!("{runtime} container {name}"),
        Plan::Process { holder, .. } => holder_text(holder),
        Plan::Refuse { reason } => reason.clone(),
    };
    printable(&text).into_owned()
}

/// The confirmation asked on the terminal.
pub fn question(target: &Target, plans: &[Plan]) -> String {
    let actions: Vec<String> = plans.iter().map(plan_text).collect();
    match actions.as_slice() {
        [one] => format!("Free {target}: {one}? [y/N] "),
        _ => format!(
            "Free {target}:\n{}\nDo all of these? [y/N] ",
            actions
                .iter()
                .map(|action| format!("  {action}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn step_text(step: &Step) -> String {
    let text = match step {
        Step::Signal {
            signal,
            pid,
            name,
            outcome,
        } => {
            let signal = signal.name();
            match outcome {
                Signalled::Sent => format!("Sent {signal} to {name} (pid {pid})."),
                Signalled::Gone => format!(
                    "{name} (pid {pid}) had exited already (or its pid names another process \
                     now): no {signal} sent."
                ),
                Signalled::Denied => {
                    format!("Not permitted to send {signal} to {name} (pid {pid}).")
                }
                Signalled::Failed(error) => {
                    format!("Could not send {signal} to {name} (pid {pid}): {error}.")
                }
            }
        }
        Step::Command {
            command,
            error: None,
        } => format!("Ran {}.", command.join(" ")),
        Step::Command {
            error: Some(error), ..
        } => format!("Failed: {error}."),
    };
    printable(&text).into_owned()
}

/// Seconds to a tenth: `0.3s`.
fn seconds(waited: f64) -> String {
    format!("{waited:.1}s")
}

/// One line as `--stop` goes: a step it took, or the wait it begins.
pub fn progress(progress: &Progress, out: &mut dyn Write) -> io::Result<()> {
    match progress {
        Progress::Step(step) => writeln!(out, "{}", step_text(step))?,
        Progress::Waiting { target, timeout } => writeln!(
            out,
            "Waiting up to {} for {target} to be free ...",
            seconds(timeout.as_secs_f64())
        )?,
    }
    out.flush()
}

/// The end of `--stop`: why nothing was done, or how it ended. The steps were said as they
/// were taken ([`progress`]).
pub fn text(report: &StopReport, force: bool, out: &mut dyn Write) -> io::Result<()> {
    let target = &report.target;
    if report.plans.is_empty() {
        return writeln!(out, "{target} is free: nothing holds it, nothing to stop.");
    }
    if report.refused() {
        for plan in &report.plans {
            if let Plan::Refuse { reason } = plan {
                writeln!(out, "Refused: {}.", printable(reason))?;
            }
        }
        return writeln!(out, "Nothing was stopped; {target} is still held.");
    }
    if !report.confirmed {
        return writeln!(out, "Nothing was stopped; {target} is still held.");
    }
    if !report.free && !report.held_by_others.is_empty() {
        let others: Vec<String> = report.held_by_others.iter().map(holder_of).collect();
        let hint = if force {
            " (--force ends only what was confirmed)"
        } else {
            ""
        };
        return writeln!(
            out,
            "{target} is still held after {}, now by what was not stopped: {}{hint}.",
            seconds(report.waited),
            others.join("; ")
        );
    }
    if report.free {
        writeln!(
            out,
            "{target} is free now (after {}).",
            seconds(report.waited)
        )
    } else {
        let hint = if force {
            ""
        } else {
            "; --force sends SIGKILL once the timeout has passed"
        };
        writeln!(
            out,
            "{target} is still held after {}{hint}.",
            seconds(report.waited)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stop::Signal;

    fn holder(pid: u32) -> Holder {
        Holder {
            pid,
            start_time: Some(1_764_057_600),
            name: "python3".into(),
            user: Some("root".into()),
        }
    }

    #[test]
    fn the_question_names_pid_name_and_start_time() {
        let target: Target = "8080".parse().expect("target");
        let plan = Plan::Process {
            holder: holder(77),
            workers: vec![holder(78), holder(79)],
        };
        assert_eq!(
            question(&target, &[plan]),
            "Free 0.0.0.0:8080/tcp: SIGTERM to python3 (pid 77, user root, started \
             2025-11-25T08:00:00Z), which ends pids 78, 79 holding it too (SIGKILL to them as \
             well with --force)? [y/N] "
        );
    }

    #[test]
    fn one_line_per_step_then_the_result() {
        let report = StopReport {
            target: "0.0.0.0:8080/tcp".into(),
            plans: vec![Plan::Process {
                holder: holder(77),
                workers: Vec::new(),
            }],
            confirmed: true,
            steps: vec![
                Step::Signal {
                    signal: Signal::Term,
                    pid: 77,
                    name: "python3".into(),
                    outcome: Signalled::Sent,
                },
                Step::Command {
                    command: vec!["systemctl".into(), "stop".into(), "x.service".into()],
                    error: Some("systemctl is not installed (not found on PATH)".into()),
                },
            ],
            free: false,
            waited: 5.04,
            held_by_others: Vec::new(),
        };
        let mut out = Vec::new();
        for step in &report.steps {
            progress(&Progress::Step(step), &mut out).expect("written");
        }
        let waiting = Progress::Waiting {
            target: &report.target,
            timeout: std::time::Duration::from_secs(5),
        };
        progress(&waiting, &mut out).expect("written");
        text(&report, false, &mut out).expect("written");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Sent SIGTERM to python3 (pid 77).\n\
             Failed: systemctl is not installed (not found on PATH).\n\
             Waiting up to 5.0s for 0.0.0.0:8080/tcp to be free ...\n\
             0.0.0.0:8080/tcp is still held after 5.0s; --force sends SIGKILL once the timeout \
             has passed.\n"
        );
    }
}
