//! Who holds each socket: the socket-inode -> pid join (one pass over `/proc/PID/fd`), the
//! processes' names, users and command lines (through `sysinfo`, for the pids found only), and
//! why a socket has no visible owner.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use crate::host::UserNames;

#[cfg(target_os = "linux")]
mod fd_walk;
use crate::meaning::Listeners;
use crate::model::{OwnerNote, Process, Socket, State};

/// The result of one walk over every process's open files.
#[derive(Debug, Default)]
pub struct Holders {
    /// Socket inode -> the pids holding it, each once, in ascending order.
    pub by_inode: HashMap<u64, Vec<u32>>,
    /// Processes whose descriptors could not be read (another user's, without root).
    pub unreadable: usize,
    /// Processes that exited while the walk was under way.
    pub vanished: usize,
}

impl Holders {
    pub fn pids(&self, inode: u64) -> &[u32] {
        self.by_inode.get(&inode).map_or(&[], Vec::as_slice)
    }
}

/// When the walk over the processes may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Walk every process: a socket shared by several processes lists all of them.
    Never,
    /// Stop once every wanted socket has a holder: a targeted question needs no more.
    WhenAllFound,
}

/// Walks `/proc/*/fd` once, on every core, and records which processes hold the `wanted`
/// socket inodes. Processes that vanish or can't be read are counted, never fatal.
#[cfg(target_os = "linux")]
pub fn find_holders(wanted: &HashSet<u64>, stop: Stop) -> Holders {
    fd_walk::find_holders(wanted, stop)
}

#[cfg(not(target_os = "linux"))]
pub fn find_holders(_wanted: &HashSet<u64>, _stop: Stop) -> Holders {
    Holders::default()
}

/// A sysinfo view of just these processes, refreshed for `kind`: never a full system
/// refresh. `None` when there is nothing to look at.
fn processes(pids: &[u32], kind: ProcessRefreshKind) -> Option<System> {
    if pids.is_empty() {
        return None;
    }
    let mut system = System::new().ok()?;
    let sysinfo_pids: Vec<Pid> = pids.iter().map(|&pid| Pid::from_u32(pid)).collect();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&sysinfo_pids),
        true,
        kind.without_tasks(),
    );
    Some(system)
}

/// Names, users, command lines and start times of the given processes. A pid that has exited by now is
/// missing from the result.
pub fn describe_processes(pids: &[u32], users: Option<&UserNames>) -> HashMap<u32, Arc<Process>> {
    let kind = ProcessRefreshKind::nothing()
        .with_cmd(UpdateKind::Always)
        .with_user(UpdateKind::Always);
    let Some(system) = processes(pids, kind) else {
        return HashMap::new();
    };
    system
        .processes()
        .iter()
        .map(|(pid, process)| {
            let user = users
                .zip(process.user_id())
                .and_then(|(users, uid)| users.of(uid))
                .cloned();
            let cmdline = process
                .cmd()
                .iter()
                .map(|arg| arg.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ");
            let described = Process {
                pid: pid.as_u32(),
                name: process.name().to_string_lossy().into_owned(),
                user,
                cmdline,
                started: Some(process.start_time()),
            };
            (pid.as_u32(), Arc::new(described))
        })
        .collect()
}

/// What the walk knew when it found no process for a socket.
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// This process's effective uid (`None` where the platform has none).
    pub euid: Option<u32>,
    /// Some processes' descriptors could not be read.
    pub some_unreadable: bool,
    /// Some processes exited while the walk was under way.
    pub some_vanished: bool,
    /// The backend reports socket inodes, so inode 0 means no file refers to the socket.
    pub inodes_known: bool,
}

/// Why `socket` has no owner in the walk, or `None` when it has one.
pub fn owner_note(
    socket: &Socket,
    has_owner: bool,
    listeners: &Listeners,
    limits: WalkLimits,
) -> Option<OwnerNote> {
    if has_owner {
        return None;
    }
    let fileless = if limits.inodes_known {
        socket.inode == 0
    } else {
        socket.state == State::TimeWait
    };
    if fileless {
        // A completed handshake the server has not accept()ed yet has no file, hence no inode;
        // neither has a socket the kernel is finishing after its process closed it.
        let waits_for_accept = matches!(
            socket.state,
            State::Established | State::SynRecv | State::NewSynRecv | State::CloseWait
        ) && listeners.covers(socket.netns, socket.proto, socket.local);
        return Some(if waits_for_accept {
            OwnerNote::AcceptQueue
        } else {
            OwnerNote::Kernel
        });
    }
    let is_root = limits.euid == Some(0);
    let someone_elses = limits.euid.is_none_or(|euid| Some(euid) != socket.uid);
    Some(if limits.some_unreadable && (someone_elses || is_root) {
        OwnerNote::Hidden
    } else if limits.some_vanished {
        OwnerNote::Exited
    } else {
        OwnerNote::NotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;

    fn socket(local: &str, remote: Option<&str>, state: State, uid: u32, inode: u64) -> Socket {
        Socket {
            uid: Some(uid),
            inode,
            ..Socket::example(Proto::Tcp, local, remote, state)
        }
    }

    const USER: WalkLimits = WalkLimits {
        euid: Some(1000),
        some_unreadable: true,
        some_vanished: false,
        inodes_known: true,
    };

    #[test]
    fn owned_sockets_need_no_note() {
        let s = socket("127.0.0.1:80", None, State::Listen, 0, 5);
        assert_eq!(owner_note(&s, true, &Listeners::default(), USER), None);
    }

    #[test]
    fn time_wait_is_kernel_owned() {
        let s = socket(
            "127.0.0.1:5000",
            Some("127.0.0.1:80"),
            State::TimeWait,
            0,
            0,
        );
        assert_eq!(
            owner_note(&s, false, &Listeners::default(), USER),
            Some(OwnerNote::Kernel)
        );
    }

    #[test]
    fn unaccepted_connection_waits_in_the_listeners_queue() {
        let listener = socket("127.0.0.1:80", None, State::Listen, 0, 5);
        let listeners = Listeners::index([&listener]);
        let queued = socket(
            "127.0.0.1:80",
            Some("127.0.0.1:5000"),
            State::Established,
            0,
            0,
        );
        assert_eq!(
            owner_note(&queued, false, &listeners, USER),
            Some(OwnerNote::AcceptQueue)
        );
    }

    #[test]
    fn another_users_socket_is_hidden_from_a_non_root_caller() {
        let s = socket("127.0.0.1:80", None, State::Listen, 0, 9);
        assert_eq!(
            owner_note(&s, false, &Listeners::default(), USER),
            Some(OwnerNote::Hidden)
        );
    }

    #[test]
    fn own_socket_without_holder_was_not_found() {
        let s = socket("127.0.0.1:80", None, State::Listen, 1000, 9);
        assert_eq!(
            owner_note(&s, false, &Listeners::default(), USER),
            Some(OwnerNote::NotFound)
        );
        let root = WalkLimits {
            euid: Some(0),
            some_unreadable: false,
            some_vanished: false,
            inodes_known: true,
        };
        assert_eq!(
            owner_note(&s, false, &Listeners::default(), root),
            Some(OwnerNote::NotFound)
        );
    }

    #[test]
    fn holder_missing_after_a_process_exited_mid_walk_is_reported_as_exited() {
        let s = socket("127.0.0.1:80", None, State::Listen, 0, 9);
        let root = WalkLimits {
            euid: Some(0),
            some_unreadable: false,
            some_vanished: true,
            inodes_known: true,
        };
        assert_eq!(
            owner_note(&s, false, &Listeners::default(), root),
            Some(OwnerNote::Exited)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn walk_finds_this_process_holding_its_own_socket() {
        use std::os::unix::fs::MetadataExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let inode = {
            use std::os::fd::AsRawFd;
            let path = format!("/proc/self/fd/{}", listener.as_raw_fd());
            std::fs::metadata(path).expect("fd metadata").ino()
        };
        let holders = find_holders(&HashSet::from([inode]), Stop::Never);
        assert_eq!(holders.pids(inode), [std::process::id()]);
        let described = describe_processes(holders.pids(inode), Some(&UserNames::load()));
        let me = described
            .get(&std::process::id())
            .expect("own process described");
        assert!(me.user.is_some());
        assert!(!me.name.is_empty());
        assert!(!me.cmdline.is_empty());
    }
}
