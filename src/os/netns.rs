//! Network namespaces: which exist (grouping processes on `/proc/PID/ns/net`, plus the named
//! ones under `/run/netns` that no process holds), how to name them, and reading a
//! namespace's socket tables from inside it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use super::tables;
use crate::core::error::UsageError;
use crate::core::model::{Backend, Namespace, Source, TableRead, TableRequest};
use crate::core::query::NetnsSelection;

/// Where `ip netns` keeps named namespaces.
const NAMED: &str = "/run/netns";

/// The namespaces the selection names, with what could not be seen.
pub fn select(selection: &NetnsSelection) -> Result<(Vec<Namespace>, Vec<String>)> {
    match selection {
        NetnsSelection::Own => Ok((vec![own()?], Vec::new())),
        NetnsSelection::All => Ok(discover()),
        NetnsSelection::One(spec) => Ok((vec![resolve(spec)?], Vec::new())),
    }
}

fn own() -> Result<Namespace> {
    let inode = inode_of(Path::new("/proc/self/ns/net"))
        .context("could not read this process's network namespace")?;
    Ok(Namespace {
        inode,
        name: named().remove(&inode),
        path: PathBuf::from("/proc/self/ns/net"),
        pid: Some(std::process::id()),
        own: true,
    })
}

/// Every namespace: one per distinct `/proc/PID/ns/net`, plus the named ones no process holds.
pub fn discover() -> (Vec<Namespace>, Vec<String>) {
    let own_inode = inode_of(Path::new("/proc/self/ns/net")).ok();
    let mut by_inode: BTreeMap<u64, Namespace> = BTreeMap::new();
    let mut unreadable = 0;
    let pids = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        match inode_of(&path) {
            Ok(inode) => {
                by_inode.entry(inode).or_insert(Namespace {
                    inode,
                    name: None,
                    path,
                    pid: Some(pid),
                    own: Some(inode) == own_inode,
                });
            }
            // A process that exited meanwhile is simply not there; another user's is hidden.
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => unreadable += 1,
            Err(_) => {}
        }
    }
    for (inode, name) in named() {
        let namespace = by_inode.entry(inode).or_insert(Namespace {
            inode,
            name: None,
            path: PathBuf::from(NAMED).join(&name),
            pid: None,
            own: Some(inode) == own_inode,
        });
        namespace.name = Some(name);
    }
    let mut warnings = Vec::new();
    if unreadable > 0 {
        let remedy = if super::host::effective_uid() == Some(0) {
            "permission denied"
        } else {
            "run as root to see every namespace"
        };
        warnings.push(format!(
            "the network namespaces of {unreadable} processes could not be read ({remedy})"
        ));
    }
    (by_inode.into_values().collect(), warnings)
}

/// `--netns PID|NAME|PATH`.
pub fn resolve(spec: &str) -> Result<Namespace> {
    let own_inode = inode_of(Path::new("/proc/self/ns/net")).ok();
    let (path, pid) = if let Ok(pid) = spec.parse::<u32>() {
        (PathBuf::from(format!("/proc/{pid}/ns/net")), Some(pid))
    } else if spec.contains('/') {
        (PathBuf::from(spec), None)
    } else {
        (PathBuf::from(NAMED).join(spec), None)
    };
    let inode = inode_of(&path).map_err(|error| {
        UsageError(format!(
            "no network namespace {spec:?} ({}: {error}); give all, a pid, a name under \
             {NAMED}, or a path",
            path.display()
        ))
    })?;
    if pid.is_none() {
        is_network_namespace(&path).map_err(|why| {
            UsageError(format!(
                "--netns {}: {} is not a network namespace ({why})",
                crate::core::text::quoted(spec),
                path.display()
            ))
        })?;
    }
    let name = named().remove(&inode);
    Ok(Namespace {
        inode,
        name,
        path,
        // A process inside lets a user without root read the tables through /proc/PID/net, as
        // `--netns all` does.
        pid: pid.or_else(|| member_of(inode)),
        own: Some(inode) == own_inode,
    })
}

/// Whether `path` is a network namespace (a `/proc/PID/ns/net` link or a bind mount of one, as
/// under /run/netns): a namespace file (nsfs) whose type is CLONE_NEWNET. Opened without
/// blocking, so a FIFO given here is refused rather than waited on; what it is otherwise says
/// why not.
fn is_network_namespace(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    // From linux/nsfs.h: _IO(0xb7, 0x3).
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let metadata = std::fs::metadata(path).map_err(|error| error.to_string())?;
    let kind = metadata.file_type();
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "a file"
    };
    if !kind.is_file() {
        return Err(what.into());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| error.to_string())?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: fstatfs writes into a zeroed statfs we own; fd is open for the call.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between libc targets
    if stats.f_type as i64 != NSFS_MAGIC {
        return Err(what.into());
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the namespace the fd refers to.
    let kind = unsafe { libc::ioctl(fd, NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err("a namespace of another kind".into());
    }
    Ok(())
}

/// A process whose network namespace is `inode`, if this user can see one.
fn member_of(inode: u64) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| inode_of(Path::new(&format!("/proc/{pid}/ns/net"))).ok() == Some(inode))
}

/// The namespace a file is (a `/proc/PID/ns/net` link or a bind mount under /run/netns).
fn inode_of(path: &Path) -> std::io::Result<u64> {
    std::fs::metadata(path).map(|metadata| metadata.ino())
}

/// `ip netns` names by namespace inode.
fn named() -> BTreeMap<u64, String> {
    std::fs::read_dir(NAMED)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            Some((inode_of(&entry.path()).ok()?, name))
        })
        .collect()
}

/// Reads the wanted tables as seen from inside this namespace. As root, a thread joins the
/// namespace (setns) and asks the kernel there; otherwise, or if that fails, the tables
/// are read through `/proc/PID/net` of a process inside it.
pub fn read(namespace: &Namespace, backend: Backend, wanted: TableRequest) -> Result<TableRead> {
    if namespace.own {
        return tables::read(backend, &Source::Live, wanted);
    }
    let inside =
        inside(namespace, || read_from_inside(backend, wanted.clone())).and_then(|read| read);
    match (inside, namespace.pid) {
        (Ok(read), _) => Ok(read),
        (Err(error), Some(pid)) => {
            let mut read = tables::read(
                Backend::Procfs,
                &Source::Recorded(PathBuf::from(format!("/proc/{pid}/net"))),
                wanted,
            )
            .with_context(|| format!("could not read network namespace {}", namespace.inode))?;
            read.warnings.push(format!(
                "network namespace {} read through /proc/{pid}/net ({error:#})",
                namespace.inode
            ));
            Ok(read)
        }
        (Err(error), None) => {
            // Only where it is the reason: root that could not enter has another one.
            let remedy = if super::host::effective_uid() == Some(0) {
                ""
            } else {
                " (root is needed)"
            };
            Err(error.context(format!(
                "could not enter network namespace {}{remedy}",
                namespace.path.display()
            )))
        }
    }
}

/// On a thread of its own: setns changes only the calling thread's namespace.
fn read_from_inside(backend: Backend, wanted: TableRequest) -> Result<TableRead> {
    match backend {
        Backend::Auto | Backend::Netlink => {
            tables::read(Backend::Netlink, &Source::Live, wanted.clone()).or_else(|_| {
                // /proc/net follows the process, not the thread: ask for the thread's own.
                let own_tables = Source::Recorded(PathBuf::from("/proc/thread-self/net"));
                tables::read(Backend::Procfs, &own_tables, wanted)
            })
        }
        Backend::Procfs => tables::read(
            Backend::Procfs,
            &Source::Recorded(PathBuf::from("/proc/thread-self/net")),
            wanted,
        ),
        Backend::Netstat2 => tables::read(Backend::Netstat2, &Source::Live, wanted),
    }
}

/// Runs `f` on a thread that has joined `namespace` (setns moves only the calling thread), or
/// here for portstat's own.
pub fn inside<T: Send>(namespace: &Namespace, f: impl FnOnce() -> T + Send) -> Result<T> {
    if namespace.own {
        return Ok(f());
    }
    std::thread::scope(|scope| {
        // Never setns on the calling thread: that would move the whole process's view of
        // the network (and every later read) into the other namespace.
        std::thread::Builder::new()
            .spawn_scoped(scope, || enter(namespace).map(|()| f()))
            .map_err(|error| {
                anyhow!("a thread is needed to enter a network namespace, and none could be started ({error})")
            })?
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the thread inside the namespace failed")))
    })
}

/// Moves the calling thread into this namespace.
fn enter(namespace: &Namespace) -> Result<()> {
    let path = &namespace.path;
    let file =
        std::fs::File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("could not enter network namespace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_found_and_is_among_all() {
        let own = select(&NetnsSelection::Own).expect("own").0;
        assert_eq!(own.len(), 1);
        assert!(own[0].own);
        let (all, _) = discover();
        assert!(all.iter().any(|ns| ns.inode == own[0].inode && ns.own));
        let by_pid = resolve(&std::process::id().to_string()).expect("resolve own pid");
        assert_eq!(by_pid.inode, own[0].inode);
        assert!(by_pid.own);
    }

    #[test]
    fn unknown_namespaces_are_usage_errors() {
        let error = resolve("no-such-namespace-xyz").expect_err("unknown name");
        assert!(error.is::<UsageError>());
        assert!(error.to_string().contains("/run/netns"));
    }
}
