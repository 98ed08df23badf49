//! Who holds each socket: the socket-inode -> pid join (one pass over `/proc/PID/fd`), and the
//! processes' names, users and command lines (through `sysinfo`, for the pids found only).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::host::UserNames;
use crate::core::model::{Holders, Process};

/// Walks `/proc/*/fd` once, on every core, and records which processes hold the `wanted`
/// socket inodes. Processes that vanish or can't be read are counted, never fatal.
#[cfg(target_os = "linux")]
pub fn find_holders(wanted: Option<&HashSet<u64>>) -> Holders {
    super::fd_walk::find_holders(wanted)
}

#[cfg(not(target_os = "linux"))]
pub fn find_holders(_wanted: Option<&HashSet<u64>>) -> Holders {
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
                .and_then(|(users, uid)| users.of(uid));
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
                ppid: process.parent().map(|parent| parent.as_u32()),
            };
            (pid.as_u32(), Arc::new(described))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let holders = find_holders(Some(&HashSet::from([inode])));
        assert_eq!(holders.pids(inode), [std::process::id()]);
        let described = describe_processes(holders.pids(inode), Some(&UserNames::default()));
        let me = described
            .get(&std::process::id())
            .expect("own process described");
        assert!(me.user.is_some());
        assert!(!me.name.is_empty());
        assert!(!me.cmdline.is_empty());
        assert_eq!(me.ppid, Some(std::os::unix::process::parent_id()));
    }
}
