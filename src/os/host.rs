//! Facts about the machine portstat runs on: its ephemeral port range, who is asking, its name
//! and its users. Each is read once per run.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::model::EphemeralRange;
use crate::core::verdict::HostFacts;

const PORT_RANGE_SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The ephemeral port range outgoing connections draw from. Where the sysctl can't be read (not
/// Linux, or a locked-down /proc), Linux's default range stands in.
pub fn ephemeral_range() -> EphemeralRange {
    std::fs::read_to_string(PORT_RANGE_SYSCTL)
        .ok()
        .and_then(|text| EphemeralRange::parse(&text))
        .unwrap_or(EphemeralRange::LINUX_DEFAULT)
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

/// The settings that bear on binding a port, read now (in the calling thread's namespace).
pub fn facts() -> HostFacts {
    let reserved = reserved_ports();
    HostFacts {
        bindv6only: bindv6only(),
        unprivileged_port_start: unprivileged_port_start(),
        may_bind_privileged: may_bind_privileged_ports(),
        ephemeral: ephemeral_range(),
        // An unreadable or odd list reserves nothing portstat can name.
        reserved: reserved.parse().unwrap_or_default(),
    }
}

pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_string())
}

/// The system's users, by id: names for socket uids and for processes' users.
#[derive(Debug, Default)]
pub struct UserNames(HashMap<sysinfo::Uid, Arc<str>>);

impl UserNames {
    pub fn load() -> UserNames {
        let Ok(users) = sysinfo::Users::new_with_refreshed_list() else {
            return UserNames::default();
        };
        UserNames(
            users
                .iter()
                .map(|user| (user.id().clone(), Arc::from(user.name())))
                .collect(),
        )
    }

    /// The name of a numeric uid, as socket tables give them.
    pub fn name(&self, uid: u32) -> Option<&Arc<str>> {
        self.of(&uid_from_number(uid)?)
    }

    /// The name of a process's user, as sysinfo gives it (a SID on Windows).
    pub fn of(&self, uid: &sysinfo::Uid) -> Option<&Arc<str>> {
        self.0.get(uid)
    }

    /// The numeric uid of a user name, where uids are numbers.
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|(_, known)| &***known == name)
            .and_then(|(uid, _)| number_of_uid(uid))
    }
}

#[cfg(unix)]
fn uid_from_number(number: u32) -> Option<sysinfo::Uid> {
    sysinfo::Uid::try_from(number as usize).ok()
}

#[cfg(unix)]
fn number_of_uid(uid: &sysinfo::Uid) -> Option<u32> {
    Some(**uid)
}

// Windows names users by SID: no socket table gives a number to look up.
#[cfg(not(unix))]
fn uid_from_number(_number: u32) -> Option<sysinfo::Uid> {
    None
}

#[cfg(not(unix))]
fn number_of_uid(_uid: &sysinfo::Uid) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_the_user_database() {
        let users = UserNames::load();
        assert_eq!(users.name(0).map(|name| &**name), Some("root"));
        assert_eq!(users.uid("root"), Some(0));
        assert_eq!(users.uid("no-such-user-xyz"), None);
    }
}
