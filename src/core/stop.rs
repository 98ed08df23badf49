//! What ends a listener's hold on a port, decided once: the advice `who` gives ("To free it:
//! ...") and what `who --stop` does are the same [`Stop`], turned into a [`Plan`] here with the
//! safety rules (never pid 1, never portstat itself, never what cannot be seen or another
//! user's process as non-root). Pure.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::core::cgroup::Manager;
use crate::core::firewall::published::{self, Placeholder};
use crate::core::model::{Entry, OwnerNote, Process, Proto};

/// What ends one listener's hold on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A systemd service, with the socket unit that hands it the listener when it is socket
    /// activated (stopped too, or the next connection starts the service again).
    Unit {
        unit: String,
        socket: Option<String>,
    },
    Container(&'static str, String),
    /// A container runtime's process (conmon, docker-proxy, ...) holds the port only to
    /// reserve it for a published port: the container must stop, not the placeholder.
    Published {
        placeholder: Placeholder,
        port: u16,
        proto: Proto,
        /// Why the container could not be found by asking its runtime, when that was tried
        /// (docker-proxy's command line names none): `docker names 2 containers ...`.
        unnamed: Option<String>,
    },
    Kill {
        tops: Vec<u32>,
        rest: Vec<u32>,
        forked: bool,
    },
    /// pid 1 holds it with no service of its own beside it: a socket unit nothing has
    /// activated yet (systemd), or a container's init.
    Init {
        name: String,
    },
    Hidden,
    /// Root may not read the descriptors of a process that could hold it.
    HiddenFromRoot,
    Unseen,
}

/// The processes holding one socket: the top-most (whose parent does not hold it too: a
/// pre-forked server's master) and the rest (its workers).
#[derive(Debug)]
pub struct Holders<'a> {
    pub tops: Vec<&'a Process>,
    pub rest: Vec<&'a Process>,
    /// Every one of `rest` has its parent among the holders, as the OS reported parents;
    /// otherwise the top-most is the likeliest: the first of them to start.
    pub forked: bool,
}

pub fn holders(processes: &[Arc<Process>]) -> Holders<'_> {
    let pids: HashSet<u32> = processes.iter().map(|p| p.pid).collect();
    let child_of_holder = |p: &Process| {
        p.ppid
            .is_some_and(|parent| parent != p.pid && pids.contains(&parent))
    };
    let all = || processes.iter().map(Arc::as_ref);
    let mut tops: Vec<&Process> = all().filter(|p| !child_of_holder(p)).collect();
    if tops.is_empty() || (tops.len() > 1 && tops.iter().any(|p| p.ppid.is_none())) {
        // Without parents to go by, the first to start (then the lowest pid) is the likeliest
        // parent of the others.
        let candidates = if tops.is_empty() {
            all().collect()
        } else {
            tops
        };
        tops = candidates
            .into_iter()
            .min_by_key(|p| (p.started.unwrap_or(u64::MAX), p.pid))
            .into_iter()
            .collect();
    }
    let rest: Vec<&Process> = all()
        .filter(|p| !tops.iter().any(|top| top.pid == p.pid))
        .collect();
    let forked = rest.iter().all(|p| child_of_holder(p));
    Holders { tops, rest, forked }
}

/// The pid of a PID namespace's init, which portstat never signals.
pub const INIT: u32 = 1;

/// The socket unit that activates a service by systemd's default pairing (`Service=` defaults
/// to the socket's own name; an `Accept=yes` socket `foo.socket` starts `foo@N-...service`).
fn socket_unit_of(service: &str) -> String {
    let stem = service.strip_suffix(".service").unwrap_or(service);
    let stem = stem.split_once('@').map_or(stem, |(template, _)| template);
    format!("{stem}.socket")
}

pub fn stop_for(entry: &Entry, managers: &HashMap<u32, Manager>) -> Stop {
    if entry.processes.is_empty() {
        return match entry.owner_note {
            Some(OwnerNote::Hidden) => Stop::Hidden,
            Some(OwnerNote::HiddenFromRoot) => Stop::HiddenFromRoot,
            _ => Stop::Unseen,
        };
    }
    let holders = holders(&entry.processes);
    if let Some(placeholder) = holders.tops.iter().find_map(|p| published::placeholder(p)) {
        return Stop::Published {
            placeholder,
            port: entry.socket.local.port(),
            proto: entry.socket.proto,
            unnamed: None,
        };
    }
    let unit_of = |p: &&Process| managers.get(&p.pid).and_then(|m| m.unit.as_deref());
    if let Some(init) = holders.tops.iter().find(|p| p.pid == INIT) {
        // systemd holds a socket unit's listener and hands it to the service it starts, its
        // child: stopping that service alone leaves the port held, and the next connection
        // starts it again.
        let units: HashSet<&str> = holders.rest.iter().filter_map(unit_of).collect();
        return match units.into_iter().collect::<Vec<_>>()[..] {
            [unit] if init.name == "systemd" => Stop::Unit {
                unit: unit.to_string(),
                socket: Some(socket_unit_of(unit)),
            },
            _ => Stop::Init {
                name: init.name.clone(),
            },
        };
    }
    let units: HashSet<Option<&str>> = holders.tops.iter().map(unit_of).collect();
    if let [Some(unit)] = units.into_iter().collect::<Vec<_>>()[..] {
        return Stop::Unit {
            unit: unit.to_string(),
            socket: None,
        };
    }
    let containers: HashSet<Option<(&'static str, &str)>> = holders
        .tops
        .iter()
        .map(|p| {
            managers
                .get(&p.pid)
                .and_then(|m| m.container.as_ref())
                .map(|c| (c.runtime, c.id.as_str()))
        })
        .collect();
    if let [Some((runtime, id))] = containers.into_iter().collect::<Vec<_>>()[..] {
        return Stop::Container(runtime, id.get(..12).unwrap_or(id).to_string());
    }
    Stop::Kill {
        tops: holders.tops.iter().map(|p| p.pid).collect(),
        rest: holders.rest.iter().map(|p| p.pid).collect(),
        forked: holders.forked,
    }
}

/// One process `--stop` signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: u32,
    /// Seconds since the Unix epoch: the signal goes only to the process that started then
    /// (a pid reused since the scan is left alone).
    pub start_time: Option<u64>,
    pub name: String,
    pub user: Option<Arc<str>>,
}

impl From<&Process> for Holder {
    fn from(process: &Process) -> Holder {
        Holder {
            pid: process.pid,
            start_time: process.started,
            name: process.name.clone(),
            user: process.user.clone(),
        }
    }
}

/// One thing `who --stop` does to free the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Plan {
    /// `systemctl stop` of the unit, and of its socket unit first when socket activated.
    Unit {
        unit: String,
        socket_unit: Option<String>,
    },
    /// `podman stop` or `docker stop`.
    Container { runtime: String, name: String },
    /// SIGTERM to the process whose end frees the port (a pre-forked server's master); its
    /// `workers` hold the port too and get SIGKILL with the master under `--force`.
    Process {
        #[serde(flatten)]
        holder: Holder,
        workers: Vec<Holder>,
    },
    /// What cannot or must not be stopped, and why: nothing is done then.
    Refuse { reason: String },
}

impl Plan {
    /// Whether `now`, planned for what holds the port later, names what this plan stopped: the
    /// same unit, the same container, or one of the same processes (a worker left holding it
    /// once its master exited too). A refusal names nothing.
    pub fn same_holder(&self, now: &Plan) -> bool {
        match (self, now) {
            (Plan::Unit { unit, .. }, Plan::Unit { unit: now, .. }) => unit == now,
            (
                Plan::Container { runtime, name },
                Plan::Container {
                    runtime: now_runtime,
                    name: now_name,
                },
            ) => runtime == now_runtime && name == now_name,
            (Plan::Process { holder, workers }, Plan::Process { holder: now, .. }) => {
                std::iter::once(holder)
                    .chain(workers)
                    .any(|was| was.pid == now.pid && was.start_time == now.start_time)
            }
            _ => false,
        }
    }
}

/// Who asks: never signalled, and as non-root only its own processes are.
#[derive(Debug, Clone)]
pub struct Caller {
    pub pid: u32,
    /// `None` where the platform has no uids.
    pub euid: Option<u32>,
    pub user: Option<Arc<str>>,
}

impl Caller {
    fn is_root(&self) -> bool {
        self.euid == Some(0)
    }
}

/// The plan for every stop the verdict names, in its order. `entries` are the scan's, to
/// describe the processes the stops name.
pub fn plan(stops: &[Stop], entries: &[Entry], caller: &Caller) -> Vec<Plan> {
    let process = |pid: u32| {
        entries
            .iter()
            .flat_map(|entry| &entry.processes)
            .find(|p| p.pid == pid)
            .map(Arc::as_ref)
    };
    let mut plans = Vec::new();
    for stop in stops {
        match stop {
            Stop::Unit { unit, socket } => plans.push(Plan::Unit {
                unit: unit.clone(),
                socket_unit: socket.clone(),
            }),
            Stop::Container(runtime @ ("docker" | "podman"), name) => plans.push(Plan::Container {
                runtime: runtime.to_string(),
                name: name.clone(),
            }),
            Stop::Container(runtime, name) => plans.push(Plan::Refuse {
                reason: format!(
                    "it runs in a {runtime} container ({name}), which portstat does not stop: \
                     stop it with its orchestrator's tools"
                ),
            }),
            Stop::Published {
                placeholder,
                port,
                proto,
                unnamed,
            } => {
                let name = placeholder.container_name.as_deref().or(placeholder
                    .container_id
                    .as_deref()
                    .map(|id| id.get(..12).unwrap_or(id)));
                plans.push(match name {
                    Some(name) => Plan::Container {
                        runtime: placeholder.runtime.to_string(),
                        name: name.to_string(),
                    },
                    None => Plan::Refuse {
                        reason: format!(
                            "{holder} holds it for a {runtime} container it does not name{why}: \
                             find that container with `{runtime} ps --filter \
                             publish={port}/{proto}` and stop it",
                            holder = placeholder.holder,
                            runtime = placeholder.runtime,
                            why = unnamed
                                .as_deref()
                                .map(|why| format!(", and {why}"))
                                .unwrap_or_default(),
                            proto = proto.as_str(),
                        ),
                    },
                });
            }
            Stop::Kill { tops, rest, .. } => {
                for (n, &pid) in tops.iter().enumerate() {
                    // Each worker goes with the top-most holder that forked it, the others with
                    // the first.
                    let workers: Vec<Holder> = rest
                        .iter()
                        .filter_map(|&worker| process(worker))
                        .filter(|worker| {
                            let parent = worker.ppid.filter(|parent| tops.contains(parent));
                            parent == Some(pid) || (parent.is_none() && n == 0)
                        })
                        .map(Holder::from)
                        .collect();
                    plans.push(process_plan(process(pid), pid, workers, caller));
                }
            }
            Stop::Init { name } => plans.push(Plan::Refuse {
                reason: if name == "systemd" {
                    "systemd (pid 1) holds it for a socket unit: `systemctl list-sockets` names \
                     the unit to stop"
                        .into()
                } else {
                    format!(
                        "{name} (pid 1) holds it, and portstat never signals pid 1: stop what \
                         runs it"
                    )
                },
            }),
            Stop::Hidden => plans.push(Plan::Refuse {
                reason: "a process hidden from this user holds it: run as root to see which, \
                         and stop it"
                    .into(),
            }),
            Stop::HiddenFromRoot => plans.push(Plan::Refuse {
                reason: "a process whose descriptors even root may not read holds it".into(),
            }),
            Stop::Unseen => plans.push(Plan::Refuse {
                reason: "no process in view holds it: its holder lives outside this PID \
                         namespace, or just exited"
                    .into(),
            }),
        }
    }
    plans
}

fn process_plan(
    process: Option<&Process>,
    pid: u32,
    workers: Vec<Holder>,
    caller: &Caller,
) -> Plan {
    let refuse = |reason: String| Plan::Refuse { reason };
    let Some(process) = process else {
        return refuse(format!("pid {pid} is no longer in view"));
    };
    let who = format!("{} (pid {pid})", process.name);
    if pid == INIT {
        return refuse(format!(
            "{who} is this PID namespace's init, never signalled"
        ));
    }
    if pid == caller.pid {
        return refuse(format!("{who} is portstat itself"));
    }
    if workers.iter().any(|w| w.pid == caller.pid) {
        return refuse(format!(
            "portstat itself (pid {}) holds it too, with {who}",
            caller.pid
        ));
    }
    if !caller.is_root() {
        let user = |user: &Option<Arc<str>>| user.as_deref().map(str::to_string);
        let mine = user(&caller.user);
        let others: Vec<String> = std::iter::once(Holder::from(process))
            .chain(workers.iter().cloned())
            .filter(|holder| holder.user.is_none() || user(&holder.user) != mine)
            .map(|holder| match holder.user {
                Some(user) => format!("{} (pid {}) runs as {user}", holder.name, holder.pid),
                None => format!(
                    "{} (pid {}) runs as a user not known",
                    holder.name, holder.pid
                ),
            })
            .collect();
        if mine.is_none() || !others.is_empty() {
            return refuse(format!(
                "{}: only root may signal another user's process",
                if others.is_empty() {
                    format!("this user's name is not known, so {who} may not be its own")
                } else {
                    others.join(", ")
                }
            ));
        }
    }
    if process.started.is_none() {
        return refuse(format!(
            "the start time of {who} is not known, so a pid reused since cannot be told apart"
        ));
    }
    Plan::Process {
        holder: Holder::from(process),
        workers,
    }
}

/// A signal `--stop` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Signal {
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

/// How sending a signal through a pidfd ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signalled {
    Sent,
    /// The process had exited, or its pid now names a process started at another time.
    Gone,
    /// EPERM: another user's process.
    Denied,
    Failed(String),
}

/// One thing `--stop` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    Signal {
        signal: Signal,
        pid: u32,
        name: String,
        outcome: Signalled,
    },
    /// A command run (`systemctl stop nginx.service`) and its error, if it failed.
    Command {
        command: Vec<String>,
        error: Option<String>,
    },
}

impl Step {
    pub fn failed(&self) -> bool {
        match self {
            Step::Signal { outcome, .. } => {
                matches!(outcome, Signalled::Denied | Signalled::Failed(_))
            }
            Step::Command { error, .. } => error.is_some(),
        }
    }
}

/// What `who --stop` says as it goes, before the report is complete: each step as it is taken,
/// and each wait as it begins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress<'a> {
    Step(&'a Step),
    /// Looking at `target` again until it is free or `timeout` has passed.
    Waiting {
        target: &'a str,
        timeout: Duration,
    },
}

/// What `who --stop` planned, did and found.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    /// The target, as `who` prints it: `0.0.0.0:8080/tcp`.
    pub target: String,
    pub plans: Vec<Plan>,
    /// `false` when the user said no, or a refusal left nothing to ask.
    pub confirmed: bool,
    pub steps: Vec<Step>,
    /// Whether no listener holds the target afterwards.
    pub free: bool,
    /// How long it waited for the port to be freed, in seconds.
    pub waited: f64,
    /// Still held afterwards, by what was not stopped (another process, unit or container took
    /// the port meanwhile), as what would stop it: `--force` leaves these alone.
    pub held_by_others: Vec<Plan>,
}

impl StopReport {
    pub fn refused(&self) -> bool {
        self.plans
            .iter()
            .any(|plan| matches!(plan, Plan::Refuse { .. }))
    }

    /// Something could not be done: refused, or a step failed.
    pub fn broken(&self) -> bool {
        self.refused() || self.steps.iter().any(Step::failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Socket, State};

    fn process(pid: u32, name: &str, ppid: Option<u32>, user: &str) -> Arc<Process> {
        Arc::new(Process {
            pid,
            name: name.into(),
            user: Some(Arc::from(user)),
            cmdline: name.into(),
            started: Some(1_700_000_000 + u64::from(pid)),
            ppid,
        })
    }

    fn held_by(processes: Vec<Arc<Process>>) -> Entry {
        let socket = Socket::example(Proto::Tcp, "0.0.0.0:8080", None, State::Listen);
        Entry::example(socket, processes)
    }

    fn root() -> Caller {
        Caller {
            pid: 4242,
            euid: Some(0),
            user: Some(Arc::from("root")),
        }
    }

    fn plans_for(entry: &Entry, managers: &HashMap<u32, Manager>, caller: &Caller) -> Vec<Plan> {
        let stop = stop_for(entry, managers);
        plan(&[stop], std::slice::from_ref(entry), caller)
    }

    #[test]
    fn a_pre_forked_server_is_stopped_by_its_master_with_its_workers_beside_it() {
        let entry = held_by(vec![
            process(901, "nginx", Some(900), "www-data"),
            process(900, "nginx", Some(1), "root"),
            process(902, "nginx", Some(900), "www-data"),
        ]);
        let plans = plans_for(&entry, &HashMap::new(), &root());
        let [Plan::Process { holder, workers }] = plans.as_slice() else {
            panic!("{plans:?}");
        };
        assert_eq!(holder.pid, 900);
        assert_eq!(holder.start_time, Some(1_700_000_900));
        let workers: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        assert_eq!(workers, [901, 902]);
    }

    #[test]
    fn pid_1_and_portstat_itself_are_never_signalled() {
        let init = held_by(vec![process(1, "tini", None, "root")]);
        let plans = plans_for(&init, &HashMap::new(), &root());
        assert!(
            matches!(&plans[..], [Plan::Refuse { reason }] if reason.contains("pid 1")),
            "{plans:?}"
        );
        let me = held_by(vec![process(4242, "portstat", Some(10), "root")]);
        let plans = plans_for(&me, &HashMap::new(), &root());
        assert!(
            matches!(&plans[..], [Plan::Refuse { reason }] if reason.contains("portstat itself")),
            "{plans:?}"
        );
    }

    #[test]
    fn as_non_root_only_ones_own_processes_and_never_hidden_ones() {
        let alice = Caller {
            pid: 4242,
            euid: Some(1000),
            user: Some(Arc::from("alice")),
        };
        let own = held_by(vec![process(50, "python3", Some(10), "alice")]);
        assert!(matches!(
            &plans_for(&own, &HashMap::new(), &alice)[..],
            [Plan::Process { .. }]
        ));
        let bobs = held_by(vec![process(60, "python3", Some(10), "bob")]);
        let plans = plans_for(&bobs, &HashMap::new(), &alice);
        assert!(
            matches!(&plans[..], [Plan::Refuse { reason }] if reason.contains("runs as bob")),
            "{plans:?}"
        );
        let mut hidden = held_by(Vec::new());
        hidden.owner_note = Some(OwnerNote::Hidden);
        let plans = plans_for(&hidden, &HashMap::new(), &alice);
        assert!(
            matches!(&plans[..], [Plan::Refuse { reason }] if reason.contains("run as root")),
            "{plans:?}"
        );
    }

    #[test]
    fn a_service_is_stopped_by_its_unit_and_a_socket_activated_one_with_its_socket() {
        let unit = |name: &str| Manager {
            unit: Some(name.into()),
            container: None,
        };
        let service = held_by(vec![process(700, "nginx", Some(1), "root")]);
        let managers = HashMap::from([(700, unit("nginx.service"))]);
        assert_eq!(
            plans_for(&service, &managers, &root()),
            [Plan::Unit {
                unit: "nginx.service".into(),
                socket_unit: None
            }]
        );
        let activated = held_by(vec![
            process(1, "systemd", None, "root"),
            process(800, "cupsd", Some(1), "root"),
        ]);
        let managers = HashMap::from([(800, unit("cups.service"))]);
        assert_eq!(
            plans_for(&activated, &managers, &root()),
            [Plan::Unit {
                unit: "cups.service".into(),
                socket_unit: Some("cups.socket".into())
            }]
        );
        assert_eq!(
            socket_unit_of("sshd@3-10.0.0.1:22-10.0.0.2:5555.service"),
            "sshd.socket"
        );
        // A socket unit nothing has activated: the unit is not known, pid 1 is not signalled.
        let waiting = held_by(vec![process(1, "systemd", None, "root")]);
        let plans = plans_for(&waiting, &HashMap::new(), &root());
        assert!(
            matches!(&plans[..], [Plan::Refuse { reason }] if reason.contains("list-sockets")),
            "{plans:?}"
        );
    }

    #[test]
    fn containers_are_stopped_by_docker_or_podman_only() {
        let id = "4f3c1d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
        let entry = held_by(vec![process(300, "httpd", Some(290), "root")]);
        for (runtime, stops) in [("podman", true), ("docker", true), ("kubepods", false)] {
            let managers = HashMap::from([(
                300,
                Manager {
                    unit: None,
                    container: Some(crate::core::cgroup::Container {
                        runtime,
                        id: id.into(),
                    }),
                },
            )]);
            let plans = plans_for(&entry, &managers, &root());
            match &plans[..] {
                [Plan::Container { runtime: r, name }] if stops => {
                    assert_eq!((r.as_str(), name.as_str()), (runtime, &id[..12]));
                }
                [Plan::Refuse { .. }] if !stops => {}
                other => panic!("{runtime}: {other:?}"),
            }
        }
        let mut conmon = (*process(400, "conmon", Some(1), "root")).clone();
        conmon.cmdline = "/usr/bin/conmon -c 2b2536aa -n web --exit-dir /x".into();
        let published = held_by(vec![Arc::new(conmon)]);
        assert_eq!(
            plans_for(&published, &HashMap::new(), &root()),
            [Plan::Container {
                runtime: "podman".into(),
                name: "web".into()
            }]
        );
    }
}
