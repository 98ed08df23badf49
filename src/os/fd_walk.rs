//! The inode -> pid join on Linux: every `/proc/PID/fd/N` link that reads `socket:[INODE]`.
//!
//! This is the cost of knowing owners (`ss -p` and `lsof` pay it too), so it is lean: one
//! `openat` and `getdents` per process and one `readlinkat` per descriptor, into a stack buffer,
//! relative to the open fd directory; processes are shared out among all cores as they come.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ::procfs::process::Process;
use rustix::fd::OwnedFd;
use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

use crate::core::model::{Holders, Stop};

pub fn find_holders(wanted: &HashSet<u64>, stop: Stop) -> Holders {
    let mut holders = Holders::default();
    if wanted.is_empty() {
        return holders;
    }
    let pids = match list_pids() {
        Ok(pids) => pids,
        Err(_) => {
            holders.unreadable += 1;
            return holders;
        }
    };
    let walk = Walk {
        wanted,
        stop,
        pids: &pids,
        next: AtomicUsize::new(0),
        found: Mutex::new(HashSet::new()),
        all_found: AtomicBool::new(false),
    };
    // One more thread than cores: reading /proc stalls on locks now and then, and measured on
    // 2 cores at 1k and 10k sockets, 3 threads beat 2 by 8-14% (4 gained nothing more).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    let results: Vec<Partial> = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads).map(|_| scope.spawn(|| walk.run())).collect();
        let mut results = vec![walk.run()];
        // A worker that panicked found nothing worth trusting; the others' results stand.
        results.extend(workers.into_iter().filter_map(|worker| worker.join().ok()));
        results
    });
    let mut results = results;
    if stop == Stop::WhenAllFound && walk.all_found.load(Ordering::Relaxed) {
        // The walk stopped early, so processes sharing a found socket may not have been
        // visited. Sharing is almost always inheritance (a pre-forked server's workers), so the
        // found holders' descendants are visited too.
        let found: HashSet<u32> = results
            .iter()
            .flat_map(|partial| partial.pairs.iter().map(|&(_, pid)| pid))
            .collect();
        let mut extra = Partial::default();
        let mut link = [0u8; 64];
        for pid in descendants(&found) {
            if let Ok(directory) = open_fd_dir(pid) {
                // A descendant that exits meanwhile simply holds nothing.
                let _ = walk.walk_process(pid, directory, &mut link, &mut extra);
            }
        }
        results.push(extra);
    }
    for partial in results {
        holders.unreadable += partial.unreadable;
        holders.vanished += partial.vanished;
        for (inode, pid) in partial.pairs {
            holders.by_inode.entry(inode).or_default().push(pid);
        }
    }
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
    unreadable: usize,
    vanished: usize,
}

struct Walk<'a> {
    wanted: &'a HashSet<u64>,
    stop: Stop,
    pids: &'a [u32],
    /// The index of the next pid to take: threads share the processes out as they go, so one
    /// process with 20 000 descriptors does not leave the other cores idle.
    next: AtomicUsize,
    /// Distinct wanted inodes found so far (only kept under `Stop::WhenAllFound`).
    found: Mutex<HashSet<u64>>,
    all_found: AtomicBool,
}

impl Walk<'_> {
    fn run(&self) -> Partial {
        let mut partial = Partial::default();
        let mut link = [0u8; 64];
        while !self.all_found.load(Ordering::Relaxed) {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = self.pids.get(index) else {
                break;
            };
            let directory = match open_fd_dir(pid) {
                Ok(directory) => directory,
                Err(Errno::NOENT | Errno::SRCH) => {
                    partial.vanished += 1;
                    continue;
                }
                Err(_) => {
                    partial.unreadable += 1;
                    continue;
                }
            };
            let before = partial.pairs.len();
            match self.walk_process(pid, directory, &mut link, &mut partial) {
                Ok(()) => {}
                Err(Errno::ACCESS) => partial.unreadable += 1,
                Err(_) => partial.vanished += 1,
            }
            if self.stop == Stop::WhenAllFound && partial.pairs.len() > before {
                self.note_found(&partial.pairs[before..]);
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
                // Listing is allowed but reading is not (another user namespace, say): no other
                // descriptor of this process will read either, so stop asking.
                Err(Errno::ACCESS | Errno::PERM) => return Err(Errno::ACCESS),
                // The descriptor closed between listing and reading: skip it.
                Err(_) => continue,
            };
            if let Some(inode) = link.get(..length).and_then(socket_inode)
                && self.wanted.contains(&inode)
            {
                partial.pairs.push((inode, pid));
            }
        }
        Ok(())
    }

    fn note_found(&self, pairs: &[(u64, u32)]) {
        let mut found = self
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        found.extend(pairs.iter().map(|&(inode, _)| inode));
        if found.len() == self.wanted.len() {
            self.all_found.store(true, Ordering::Relaxed);
        }
    }
}

/// Every descendant of `parents` (not themselves), through `/proc/PID/task/TID/children`, as the
/// `procfs` crate reads them (`Process::tasks`, `Task::children`). This runs only after an early
/// stop, over the few processes found, so the crate's extra `O_PATH` opens cost nothing that
/// shows.
fn descendants(parents: &HashSet<u32>) -> Vec<u32> {
    let mut seen: HashSet<u32> = parents.clone();
    let mut queue: Vec<u32> = parents.iter().copied().collect();
    let mut found = Vec::new();
    while let Some(pid) = queue.pop() {
        let Some(tasks) = i32::try_from(pid)
            .ok()
            .and_then(|pid| Process::new(pid).ok()?.tasks().ok())
        else {
            continue;
        };
        // A task or a process that is gone by now has no children to give.
        for children in tasks.flatten().filter_map(|task| task.children().ok()) {
            for child in children {
                if seen.insert(child) {
                    found.push(child);
                    queue.push(child);
                }
            }
        }
    }
    found
}

fn list_pids() -> rustix::io::Result<Vec<u32>> {
    let proc = rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut pids = Vec::new();
    for entry in Dir::new(proc)? {
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

fn open_fd_dir(pid: u32) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        format!("/proc/{pid}/fd"),
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

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12"), None);
    }

    #[test]
    fn early_stop_still_finds_children_that_share_a_socket() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::CommandExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let fd = listener.as_raw_fd();
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .expect("fd metadata")
            .ino();
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
        let holders = find_holders(&HashSet::from([inode]), Stop::WhenAllFound);
        let _ = child.kill();
        let _ = child.wait();
        let mut expected = vec![std::process::id(), child.id()];
        expected.sort_unstable();
        assert_eq!(holders.pids(inode), expected);
    }

    #[test]
    fn descendants_are_children_and_their_children() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("spawn sh");
        let me = std::process::id();
        // The shell forks its sleep soon after it starts.
        let mut found = Vec::new();
        for _ in 0..200 {
            found = descendants(&HashSet::from([me]));
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let grandchildren = descendants(&HashSet::from([shell.id()]));
        let _ = std::process::Command::new("kill")
            .args(grandchildren.iter().map(u32::to_string))
            .status();
        let _ = shell.kill();
        let _ = shell.wait();
        assert!(found.contains(&shell.id()), "{found:?}");
        assert!(!found.contains(&me), "{found:?}");
        assert_eq!(grandchildren.len(), 1, "{grandchildren:?}");
        assert!(found.contains(&grandchildren[0]), "{found:?}");
    }

    #[test]
    fn own_pid_is_listed() {
        let pids = list_pids().expect("list /proc");
        assert!(pids.contains(&std::process::id()));
    }

    #[test]
    fn early_stop_still_finds_every_wanted_socket() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let listeners: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let inodes: HashSet<u64> = listeners
            .iter()
            .map(|l| {
                std::fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
                    .expect("fd metadata")
                    .ino()
            })
            .collect();
        let holders = find_holders(&inodes, Stop::WhenAllFound);
        for inode in &inodes {
            assert_eq!(holders.pids(*inode), [std::process::id()]);
        }
    }
}
