//! Facts about the machine portstat runs on: its ephemeral port range, who is asking, its name
//! and its users. Each is read once per run.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
#[cfg(not(unix))]
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};

use crate::core::counters::NetStatistics;
use crate::core::model::EphemeralRange;
use crate::core::verdict::HostFacts;

const PORT_RANGE_SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The ephemeral port range outgoing connections draw from. Where the sysctl does not exist (not
/// Linux) Linux's default range stands in; where it can't be read or makes no sense, the default
/// stands in with a warning.
pub fn ephemeral_range() -> (EphemeralRange, Option<String>) {
    match std::fs::read_to_string(PORT_RANGE_SYSCTL) {
        Ok(text) => EphemeralRange::from_sysctl(&text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            (EphemeralRange::LINUX_DEFAULT, None)
        }
        Err(error) => {
            let default = EphemeralRange::LINUX_DEFAULT;
            let warning = format!(
                "could not read {PORT_RANGE_SYSCTL} ({error}): assuming Linux's default, {}-{}",
                default.first, default.last
            );
            (default, Some(warning))
        }
    }
}

/// The effective uid of this process, where the platform has one.
pub fn effective_uid() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        procfs::process::Process::myself()
            .and_then(|me| me.uid())
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// `net.ipv4.ip_unprivileged_port_start`: ports below it need root or CAP_NET_BIND_SERVICE.
/// Linux's default, 1024, where it can't be read.
pub fn unprivileged_port_start() -> u16 {
    read_number("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap_or(1024)
}

/// `net.ipv6.bindv6only`: 0 (the default) makes an IPv6 wildcard socket accept IPv4 too.
pub fn bindv6only() -> bool {
    read_number::<u8>("/proc/sys/net/ipv6/bindv6only").is_some_and(|value| value != 0)
}

/// `net.ipv4.ip_local_reserved_ports`, as written there (`8080,9000-9010`); empty when none.
pub fn reserved_ports() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
        .map(|text| text.trim().to_string())
        .unwrap_or_default()
}

/// Whether this process may bind ports below `ip_unprivileged_port_start`: root, or
/// CAP_NET_BIND_SERVICE in its effective set.
pub fn may_bind_privileged_ports() -> bool {
    const CAP_NET_BIND_SERVICE: u32 = 10;
    #[cfg(target_os = "linux")]
    {
        effective_uid() == Some(0)
            || procfs::process::Process::myself()
                .and_then(|me| me.status())
                .is_ok_and(|status| status.capeff & (1 << CAP_NET_BIND_SERVICE) != 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = CAP_NET_BIND_SERVICE;
        true
    }
}

fn read_number<T: std::str::FromStr>(path: &str) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads a file a user named (or whose directory they named), refusing what could hang or never
/// end: anything but a regular file (a FIFO would block the open or the read forever, and
/// `/dev/zero` never ends) is refused before it is opened, and again, on the opened file, after
/// an open that never blocks (`O_NONBLOCK`). At most `limit` bytes are read: a longer file (or
/// one growing while read) is an error. Files in `/proc` say they hold 0 bytes; they are read
/// to their end like any other regular file.
pub(super) fn read_regular_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    refuse_irregular(&std::fs::metadata(path)?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    refuse_irregular(&metadata)?;
    if metadata.len() > limit {
        return Err(too_large(limit));
    }
    read_limited(file, limit)
}

/// Writes `contents` to a new file beside `path` and renames it over `path`. What `path` names
/// now, if anything, must be a regular file: a FIFO or a device stays as it is.
pub(super) fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => refuse_irregular(&metadata)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Reads `reader` to its end, or fails once it has given more than `limit` bytes.
pub(super) fn read_limited(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

fn too_large(limit: u64) -> io::Error {
    let limit = if limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} byte")
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than the {limit} limit"),
    )
}

/// An error unless `metadata` is a regular file's, naming what it is instead.
fn refuse_irregular(metadata: &std::fs::Metadata) -> io::Result<()> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    if kind.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "not a regular file (a directory)",
        ));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({})", special_kind(&kind)),
    ))
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_kind: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Whether an error from [`read_regular_file`] refused a special file (a FIFO, a device, a
/// socket): neither a regular file nor a directory.
#[cfg(target_os = "linux")]
pub(super) fn is_special_file(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidInput
}

/// The settings that bear on binding a port, read now (in the calling thread's namespace).
pub fn facts() -> HostFacts {
    let reserved = reserved_ports();
    let (ephemeral, warning) = ephemeral_range();
    HostFacts {
        bindv6only: bindv6only(),
        unprivileged_port_start: unprivileged_port_start(),
        may_bind_privileged: may_bind_privileged_ports(),
        ephemeral,
        warnings: warning.into_iter().collect(),
        forwarding: [
            read_number::<u8>("/proc/sys/net/ipv4/ip_forward").map(|on| on != 0),
            read_number::<u8>("/proc/sys/net/ipv6/conf/all/forwarding").map(|on| on != 0),
        ],
        // An unreadable or odd list reserves nothing portstat can name.
        reserved: reserved.parse().unwrap_or_default(),
    }
}

/// The network statistics of the calling thread's namespace: `/proc/net` follows the process,
/// so the thread's own (`thread-self`), which `setns` moved.
pub fn net_statistics() -> anyhow::Result<NetStatistics> {
    use anyhow::Context;
    let read = |name: &str| {
        let path = format!("/proc/thread-self/net/{name}");
        std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))
    };
    Ok(NetStatistics {
        netstat: read("netstat")?,
        snmp: read("snmp")?,
    })
}

pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_string())
}

/// The system's users, looked up in its user database as they are asked for
/// (`getpwuid_r`/`getpwnam_r`, so NSS: `/etc/passwd`, LDAP, systemd's dynamic users), each
/// once per run. Every user is there, whatever its shell: `memcache` with `/bin/false`, daemon
/// users with `nologin`. Where there is no such database (Windows), sysinfo's list of users.
#[derive(Debug, Default)]
pub struct UserNames {
    by_uid: Mutex<HashMap<u32, Option<Arc<str>>>>,
    by_name: Mutex<HashMap<String, Option<u32>>>,
    #[cfg(not(unix))]
    listed: OnceLock<HashMap<sysinfo::Uid, Arc<str>>>,
}

impl UserNames {
    /// The name of a numeric uid, as socket tables give them.
    pub fn name(&self, uid: u32) -> Option<Arc<str>> {
        let mut cache = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(uid)
            .or_insert_with(|| self.look_up_uid(uid))
            .clone()
    }

    /// The name of a process's user, as sysinfo gives it (a SID on Windows).
    pub fn of(&self, uid: &sysinfo::Uid) -> Option<Arc<str>> {
        #[cfg(unix)]
        {
            self.name(**uid)
        }
        #[cfg(not(unix))]
        {
            self.listed().get(uid).cloned()
        }
    }

    /// The numeric uid of a user name, where uids are numbers.
    pub fn uid(&self, name: &str) -> Option<u32> {
        let mut cache = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&known) = cache.get(name) {
            return known;
        }
        let uid = self.look_up_name(name);
        cache.insert(name.to_string(), uid);
        uid
    }

    #[cfg(unix)]
    fn look_up_uid(&self, uid: u32) -> Option<Arc<str>> {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
        Some(Arc::from(user.name))
    }

    #[cfg(unix)]
    fn look_up_name(&self, name: &str) -> Option<u32> {
        let user = nix::unistd::User::from_name(name).ok()??;
        Some(user.uid.as_raw())
    }

    // Windows names users by SID: no socket table gives a number to look up.
    #[cfg(not(unix))]
    fn look_up_uid(&self, _uid: u32) -> Option<Arc<str>> {
        None
    }

    #[cfg(not(unix))]
    fn look_up_name(&self, _name: &str) -> Option<u32> {
        None
    }

    #[cfg(not(unix))]
    fn listed(&self) -> &HashMap<sysinfo::Uid, Arc<str>> {
        self.listed.get_or_init(|| {
            sysinfo::Users::new_with_refreshed_list()
                .map(|users| {
                    users
                        .iter()
                        .map(|user| (user.id().clone(), Arc::from(user.name())))
                        .collect()
                })
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_the_user_database() {
        let users = UserNames::default();
        assert_eq!(users.name(0).as_deref(), Some("root"));
        assert_eq!(users.uid("root"), Some(0));
        assert_eq!(users.uid("no-such-user-xyz"), None);
        // Asked again, from the cache.
        assert_eq!(users.uid("no-such-user-xyz"), None);
        assert_eq!(users.name(0).as_deref(), Some("root"));
    }

    /// Users whose shell is `/bin/false` or `nologin` (most daemon users) are users too;
    /// sysinfo's list leaves them out. Debian's base system has several (`daemon`, `bin`,
    /// `nobody`); whichever this machine has is checked.
    #[cfg(unix)]
    #[test]
    fn users_without_a_login_shell_have_names() {
        let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
        let no_login: Vec<(String, u32)> = passwd
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                let shell = *fields.get(6)?;
                (shell.ends_with("nologin") || shell.ends_with("false"))
                    .then(|| Some((fields[0].to_string(), fields.get(2)?.parse().ok()?)))?
            })
            .collect();
        assert!(!no_login.is_empty(), "no nologin user in /etc/passwd");
        let users = UserNames::default();
        let shared = |uid: u32| no_login.iter().filter(|(_, other)| *other == uid).count() > 1;
        for (name, uid) in no_login.iter().filter(|(_, uid)| !shared(*uid)) {
            let (name, uid) = (name.clone(), *uid);
            assert_eq!(users.name(uid).as_deref(), Some(name.as_str()), "uid {uid}");
            assert_eq!(users.uid(&name), Some(uid), "{name}");
        }
    }
}
