//! The inode -> pid join on Linux: every `/proc/PID/fd/N` link that reads `socket:[INODE]`.
//!
//! This is the cost of knowing owners (`ss -p` and `lsof` pay it too), so it is lean: one
//! `openat` and `getdents` per process and one `readlinkat` per descriptor, into a stack buffer,
//! relative to the open fd directory; processes are shared out among all cores as they come.
//!
//! The walk is always complete, as `ss -p`'s is: a socket can be held by processes in any pid
//! order (a master whose workers got lower pids after a pid wrap) and by processes unrelated to
//! the one that made it (a descriptor passed over a Unix socket with SCM_RIGHTS), so no early
//! stop can know it has found every holder.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{CWD, Dir, Mode, OFlags};
use rustix::io::Errno;

use crate::core::model::{Holders, Unreadable};

pub fn find_holders(wanted: Option<&HashSet<u64>>) -> Holders {
    let mut holders = Holders::default();
    if wanted.is_some_and(HashSet::is_empty) {
        return holders;
    }
    holders.own_netns = netns_of(CWD, "/proc/self/ns/net");
    let proc = match open_dir(CWD, "/proc") {
        Ok(proc) => proc,
        Err(_) => {
            // No process can be looked at: any of them could hold any socket.
            holders.unreadable.push(Unreadable::unknown());
            return holders;
        }
    };
    let pids = match list_pids(&proc) {
        Ok(pids) => pids,
        Err(_) => {
            holders.unreadable.push(Unreadable::unknown());
            return holders;
        }
    };
    let walk = Walk {
        wanted,
        proc: &proc,
        pids: &pids,
        next: AtomicUsize::new(0),
    };
    // One more thread than cores: reading /proc stalls on locks now and then, and measured on
    // 2 cores at 1k and 10k sockets, 3 threads beat 2 by 8-14% (4 gained nothing more).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    let results: Vec<Partial> = std::thread::scope(|scope| {
        // A thread that cannot be had (a process limit, no address space for its stack) leaves
        // its share to the others: the calling thread walks whatever nobody else takes.
        let workers: Vec<_> = (1..threads)
            .map_while(|_| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, || walk.run())
                    .ok()
            })
            .collect();
        let mut results = vec![walk.run()];
        // A worker that panicked found nothing worth trusting; the others' results stand.
        results.extend(workers.into_iter().filter_map(|worker| worker.join().ok()));
        results
    });
    for partial in results {
        holders.vanished += partial.vanished;
        for pid in partial.unreadable {
            holders.unreadable.push(describe_unreadable(&proc, pid));
        }
        for (inode, pid) in partial.pairs {
            holders.by_inode.entry(inode).or_default().push(pid);
        }
    }
    holders
        .unreadable
        .sort_unstable_by_key(|process| process.pid);
    for pids in holders.by_inode.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    holders
}

/// What one thread saw.
#[derive(Default)]
struct Partial {
    pairs: Vec<(u64, u32)>,
    /// Processes whose descriptors could not be read.
    unreadable: Vec<u32>,
    vanished: usize,
}

struct Walk<'a> {
    wanted: Option<&'a HashSet<u64>>,
    /// `/proc`, open: every path is opened relative to it.
    proc: &'a OwnedFd,
    pids: &'a [u32],
    /// The index of the next pid to take: threads share the processes out as they go, so one
    /// process with 20 000 descriptors does not leave the other cores idle.
    next: AtomicUsize,
}

impl Walk<'_> {
    fn run(&self) -> Partial {
        let mut partial = Partial::default();
        let mut link = [0u8; 64];
        let mut path = PidPath::default();
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = self.pids.get(index) else {
                break;
            };
            let directory = match open_dir(self.proc, path.fd_dir(pid)) {
                Ok(directory) => directory,
                Err(Errno::NOENT | Errno::SRCH) => {
                    partial.vanished += 1;
                    continue;
                }
                Err(_) => {
                    partial.unreadable.push(pid);
                    continue;
                }
            };
            match self.walk_process(pid, directory, &mut link, &mut partial) {
                Ok(()) => {}
                Err(Errno::ACCESS) => partial.unreadable.push(pid),
                Err(_) => partial.vanished += 1,
            }
        }
        partial
    }

    fn walk_process(
        &self,
        pid: u32,
        directory: OwnedFd,
        link: &mut [u8; 64],
        partial: &mut Partial,
    ) -> rustix::io::Result<()> {
        let mut entries = Dir::new(directory)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            let length = match rustix::fs::readlinkat_raw(entries.fd()?, name, &mut link[..]) {
                Ok(length) => length,
                // Listing is allowed but reading is not (a non-dumpable or LSM-protected
                // process, another user namespace's): no other descriptor of this process will
                // read either, so stop asking.
                Err(Errno::ACCESS | Errno::PERM) => return Err(Errno::ACCESS),
                // The descriptor closed between listing and reading: skip it.
                Err(_) => continue,
            };
            if let Some(inode) = link.get(..length).and_then(socket_inode)
                && self.wanted.is_none_or(|wanted| wanted.contains(&inode))
            {
                partial.pairs.push((inode, pid));
            }
        }
        Ok(())
    }
}

/// `PID/fd` and `PID/status` relative to `/proc`, written into one buffer per thread.
#[derive(Default)]
struct PidPath(String);

impl PidPath {
    fn fd_dir(&mut self, pid: u32) -> &str {
        self.of(pid, "fd")
    }

    fn of(&mut self, pid: u32, file: &str) -> &str {
        use std::fmt::Write;
        self.0.clear();
        let _ = write!(self.0, "{pid}/{file}");
        &self.0
    }
}

/// What can be learnt of a process whose descriptors can't be read: its uids (from
/// `/proc/PID/status`, which everyone may read) and its network namespace (where the kernel
/// lets `/proc/PID/ns/net` be read: root may, for a process only its descriptors are kept from).
fn describe_unreadable(proc: &OwnedFd, pid: u32) -> Unreadable {
    let mut path = PidPath::default();
    let uids = read_small(proc, path.of(pid, "status"))
        .map(|status| status_uids(&status))
        .unwrap_or_default();
    Unreadable {
        pid: Some(pid),
        uids,
        netns: netns_of(proc, path.of(pid, "ns/net")),
    }
}

fn read_small(dir: &OwnedFd, path: &str) -> Option<String> {
    let file =
        rustix::fs::openat(dir, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut text = Vec::with_capacity(2048);
    let mut buffer = [0u8; 2048];
    loop {
        match rustix::io::read(&file, &mut buffer) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buffer[..n]),
            Err(Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    String::from_utf8(text).ok()
}

/// The distinct uids of a `/proc/PID/status` text's `Uid:` line (real, effective, saved, fs).
fn status_uids(status: &str) -> Vec<u32> {
    let mut uids: Vec<u32> = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|uid| uid.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// The inode a `/proc/.../ns/net` link names (`net:[4026531840]`).
fn netns_of(dir: impl AsFd, path: &str) -> Option<u64> {
    let mut link = [0u8; 64];
    let length = rustix::fs::readlinkat_raw(dir, path, &mut link[..]).ok()?;
    let digits = link
        .get(..length)?
        .strip_prefix(b"net:[")?
        .strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn list_pids(proc: &OwnedFd) -> rustix::io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in Dir::read_from(proc)? {
        let entry = entry?;
        if let Some(pid) = std::str::from_utf8(entry.file_name().to_bytes())
            .ok()
            .and_then(|name| name.parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn open_dir(dir: impl AsFd, path: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `socket:[12345]` -> 12345.
fn socket_inode(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    fn inode_of(fd: &impl AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .expect("fd metadata")
            .ino()
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12"), None);
    }

    #[test]
    fn status_gives_each_distinct_uid_once() {
        let status = "Name:\tnginx\nUmask:\t0022\nUid:\t33\t33\t0\t33\nGid:\t33\t33\t33\t33\n";
        assert_eq!(status_uids(status), [0, 33]);
        assert_eq!(status_uids("Name:\tx\n"), Vec::<u32>::new());
    }

    #[test]
    fn own_network_namespace_is_read() {
        let own = netns_of(CWD, "/proc/self/ns/net").expect("own netns");
        let expected = std::fs::metadata("/proc/self/ns/net").expect("ns").ino();
        assert_eq!(own, expected);
        assert_eq!(netns_of(CWD, "/proc/self/ns/no-such"), None);
    }

    #[test]
    fn a_child_sharing_a_socket_is_listed_beside_its_parent() {
        use std::os::unix::process::CommandExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let fd = listener.as_raw_fd();
        let inode = inode_of(&listener);
        let mut command = std::process::Command::new("sleep");
        command.arg("30");
        // SAFETY: fcntl on our own fd between fork and exec; async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                let flags = rustix::io::fcntl_getfd(rustix::fd::BorrowedFd::borrow_raw(fd))?;
                rustix::io::fcntl_setfd(
                    rustix::fd::BorrowedFd::borrow_raw(fd),
                    flags - rustix::io::FdFlags::CLOEXEC,
                )?;
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn sleep");
        let holders = find_holders(Some(&HashSet::from([inode])));
        let _ = child.kill();
        let _ = child.wait();
        let mut expected = vec![std::process::id(), child.id()];
        expected.sort_unstable();
        assert_eq!(holders.pids(inode), expected);
    }

    #[test]
    fn own_pid_is_listed() {
        let proc = open_dir(CWD, "/proc").expect("open /proc");
        let pids = list_pids(&proc).expect("list /proc");
        assert!(pids.contains(&std::process::id()));
    }

    #[test]
    fn every_wanted_socket_is_found() {
        let listeners: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let inodes: HashSet<u64> = listeners.iter().map(inode_of).collect();
        let holders = find_holders(Some(&inodes));
        for inode in &inodes {
            assert_eq!(holders.pids(*inode), [std::process::id()]);
        }
        assert!(holders.own_netns.is_some());
    }

    #[test]
    fn asked_for_every_socket_the_walk_finds_these_among_them() {
        let listeners: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let holders = find_holders(None);
        for inode in listeners.iter().map(inode_of) {
            assert_eq!(holders.pids(inode), [std::process::id()]);
        }
        assert!(holders.by_inode.len() >= listeners.len());
    }

    #[test]
    fn an_unreadable_process_is_described_by_its_uids() {
        let proc = open_dir(CWD, "/proc").expect("open /proc");
        let me = describe_unreadable(&proc, std::process::id());
        let euid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
        assert_eq!(me.pid, Some(std::process::id()));
        assert!(me.uids.contains(&euid), "{me:?}");
        assert_eq!(me.netns, netns_of(CWD, "/proc/self/ns/net"));
    }
}
