//! The kernel's TCP health counters, from `/proc/net/netstat` (`TcpExt:`) and `/proc/net/snmp`
//! (`Tcp:`): each section is a line of names and a line of values, both starting with the
//! section's name. They count since boot, or since the network namespace was made.

use serde::Serialize;

/// The two files as read, in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStatistics {
    /// `/proc/net/netstat`.
    pub netstat: String,
    /// `/proc/net/snmp`.
    pub snmp: String,
}

/// The counters `summary` shows; `None` where the kernel did not print one (or printed it
/// damaged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpCounters {
    /// Connections dropped because a listener's accept queue was full (`TcpExt:
    /// ListenOverflows`).
    pub listen_overflows: Option<u64>,
    /// SYNs and connections a listener dropped, overflows included (`TcpExt: ListenDrops`).
    pub listen_drops: Option<u64>,
    /// Segments sent again (`Tcp: RetransSegs`).
    pub retrans_segs: Option<u64>,
    /// Resets sent (`Tcp: OutRsts`).
    pub out_rsts: Option<u64>,
    /// Established connections reset (`Tcp: EstabResets`).
    pub estab_resets: Option<u64>,
    /// Connection attempts that failed (`Tcp: AttemptFails`).
    pub attempt_fails: Option<u64>,
}

impl TcpCounters {
    /// Reads the counters from the files' text, with a warning for each counter that is not
    /// there or not a number, and for each damaged line. Never fails: what can't be read is
    /// `None`.
    pub fn parse(statistics: &NetStatistics) -> (TcpCounters, Vec<String>) {
        let mut warnings = Vec::new();
        let netstat = section(&statistics.netstat, "TcpExt", "netstat", &mut warnings);
        let snmp = section(&statistics.snmp, "Tcp", "snmp", &mut warnings);
        let mut counter = |pairs: &[(String, String)], file: &str, name: &str| {
            let value = pairs.iter().find(|(key, _)| key == name).map(|(_, v)| v);
            match value.map(|value| value.parse::<u64>()) {
                Some(Ok(value)) => Some(value),
                Some(Err(_)) => {
                    warnings.push(format!(
                        "/proc/net/{file}: {name} is {}, not a count",
                        crate::core::text::quoted(value.map_or("", String::as_str))
                    ));
                    None
                }
                None => {
                    warnings.push(format!("/proc/net/{file} has no {name}"));
                    None
                }
            }
        };
        let counters = TcpCounters {
            listen_overflows: counter(&netstat, "netstat", "ListenOverflows"),
            listen_drops: counter(&netstat, "netstat", "ListenDrops"),
            retrans_segs: counter(&snmp, "snmp", "RetransSegs"),
            out_rsts: counter(&snmp, "snmp", "OutRsts"),
            estab_resets: counter(&snmp, "snmp", "EstabResets"),
            attempt_fails: counter(&snmp, "snmp", "AttemptFails"),
        };
        (counters, warnings)
    }

    /// Counters of several namespaces, added; a counter missing in one is missing.
    pub fn combined(self, other: TcpCounters) -> TcpCounters {
        let sum = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_add(b?));
        TcpCounters {
            listen_overflows: sum(self.listen_overflows, other.listen_overflows),
            listen_drops: sum(self.listen_drops, other.listen_drops),
            retrans_segs: sum(self.retrans_segs, other.retrans_segs),
            out_rsts: sum(self.out_rsts, other.out_rsts),
            estab_resets: sum(self.estab_resets, other.estab_resets),
            attempt_fails: sum(self.attempt_fails, other.attempt_fails),
        }
    }
}

/// The names and values of one section: its first line of names and the line after it.
fn section(
    text: &str,
    name: &str,
    file: &str,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let prefix = format!("{name}:");
    let mut lines = text
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.split_ascii_whitespace().collect::<Vec<_>>());
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        warnings.push(format!(
            "/proc/net/{file} has no {name}: section of names and values"
        ));
        return Vec::new();
    };
    if names.len() != values.len() {
        warnings.push(format!(
            "/proc/net/{file}: the {name}: section has {} names but {} values; only those in \
             step are read",
            names.len(),
            values.len()
        ));
    }
    names
        .into_iter()
        .zip(values)
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(netstat: &str, snmp: &str) -> NetStatistics {
        let read = |name: &str| {
            let path = format!("{}/fixtures/counters/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        NetStatistics {
            netstat: read(netstat),
            snmp: read(snmp),
        }
    }

    #[test]
    fn recorded_counters_are_read() {
        let (counters, warnings) = TcpCounters::parse(&recorded("netstat", "snmp"));
        assert!(warnings.is_empty(), "{warnings:?}");
        // fixtures/counters/snmp: Tcp: ... AttemptFails 3479, EstabResets 3503, RetransSegs 1,
        // OutRsts 6275.
        assert_eq!(counters.attempt_fails, Some(3479));
        assert_eq!(counters.estab_resets, Some(3503));
        assert_eq!(counters.retrans_segs, Some(1));
        assert_eq!(counters.out_rsts, Some(6275));
        assert!(counters.listen_overflows.is_some() && counters.listen_drops.is_some());
    }

    #[test]
    fn damaged_files_are_warnings_never_a_panic() {
        let (counters, warnings) =
            TcpCounters::parse(&recorded("netstat.malformed", "snmp.malformed"));
        // The TcpExt values were cut short: ListenOverflows and ListenDrops are beyond them.
        assert_eq!(counters.listen_overflows, None);
        assert_eq!(counters.retrans_segs, None);
        assert!(
            warnings.iter().any(|w| w.contains("names but")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("has no Tcp: section")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("has no ListenOverflows"))
        );
        let (counters, warnings) = TcpCounters::parse(&NetStatistics::default());
        assert_eq!(counters, TcpCounters::default());
        assert_eq!(warnings.len(), 2 + 6);
        let odd = NetStatistics {
            netstat: "TcpExt: ListenOverflows ListenDrops\nTcpExt: -3 7\n".into(),
            snmp: "Tcp: RetransSegs\nTcp: 5\n".into(),
        };
        let (counters, warnings) = TcpCounters::parse(&odd);
        assert_eq!(
            (counters.listen_overflows, counters.listen_drops),
            (None, Some(7))
        );
        assert_eq!(counters.retrans_segs, Some(5));
        assert!(warnings.iter().any(|w| w.contains("\"-3\", not a count")));
    }

    #[test]
    fn namespaces_add_up() {
        let one = TcpCounters {
            listen_overflows: Some(2),
            retrans_segs: Some(1),
            ..TcpCounters::default()
        };
        let sum = one.combined(one);
        assert_eq!(
            (sum.listen_overflows, sum.retrans_segs, sum.out_rsts),
            (Some(4), Some(2), None)
        );
    }
}
