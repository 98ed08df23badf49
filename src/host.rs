//! Facts about the machine portstat runs on: its ephemeral port range, who is asking, its name
//! and its users. Each is read once per run.

use std::collections::HashMap;

use crate::model::EphemeralRange;

const PORT_RANGE_SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The ephemeral port range outgoing connections draw from. Where the sysctl can't be read (not
/// Linux, or a locked-down /proc), Linux's default range stands in.
pub fn ephemeral_range() -> EphemeralRange {
    std::fs::read_to_string(PORT_RANGE_SYSCTL)
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(EphemeralRange::LINUX_DEFAULT)
}

/// Parses the sysctl's `first<whitespace>last` form.
pub fn parse_port_range(text: &str) -> Option<EphemeralRange> {
    let mut numbers = text.split_ascii_whitespace().map(str::parse::<u16>);
    let first = numbers.next()?.ok()?;
    let last = numbers.next()?.ok()?;
    (first <= last && numbers.next().is_none()).then_some(EphemeralRange { first, last })
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

pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_string())
}

/// uid -> user name, from the system's user database.
#[derive(Debug, Default)]
pub struct UserNames(HashMap<u32, String>);

impl UserNames {
    pub fn load() -> UserNames {
        let Ok(users) = sysinfo::Users::new_with_refreshed_list() else {
            return UserNames::default();
        };
        UserNames(
            users
                .iter()
                .map(|user| (**user.id(), user.name().to_string()))
                .collect(),
        )
    }

    pub fn name(&self, uid: u32) -> Option<&str> {
        self.0.get(&uid).map(String::as_str)
    }

    pub fn uid(&self, name: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|(_, known)| known.as_str() == name)
            .map(|(uid, _)| *uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_sysctl_parses_tab_separated_pair() {
        assert_eq!(
            parse_port_range("32768\t60999\n"),
            Some(EphemeralRange {
                first: 32768,
                last: 60999
            })
        );
    }

    #[test]
    fn malformed_port_range_sysctl_is_rejected() {
        assert_eq!(parse_port_range(""), None);
        assert_eq!(parse_port_range("32768"), None);
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("1 2 3"), None);
        assert_eq!(parse_port_range("a b"), None);
    }

    #[test]
    fn root_is_in_the_user_database() {
        assert_eq!(UserNames::load().name(0), Some("root"));
    }
}
