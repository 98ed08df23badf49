//! Which listeners deserve a person's attention, and why. The port rules are data in one
//! table, [`PORT_RULES`] (README.md shows the same table); two more rules look at owners and at
//! how a process binds its other sockets, and `probe_rules` at what `--probe` heard. Pure:
//! listeners in, findings out.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;

use super::exposure::Class;
pub use super::finding::{Finding, Severity};
use super::listener::Listener;
use super::probe_rules;
use crate::core::firewall::eval::Verdict;
use crate::core::model::{OwnerNote, Proto};

/// `--fail-on`: the least severity that fails the run, or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// High findings fail the run
    High,
    /// Medium and high findings fail the run
    Medium,
    /// Every finding but info fails the run
    Low,
    /// Every finding fails the run
    Info,
    /// Only report: findings never fail the run (policy and drift violations still do).
    Never,
}

impl FailOn {
    pub fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::High => Some(Severity::High),
            FailOn::Medium => Some(Severity::Medium),
            FailOn::Low => Some(Severity::Low),
            FailOn::Info => Some(Severity::Info),
            FailOn::Never => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.threshold().map_or("never", Severity::as_str)
    }
}

/// A service that should not be reachable beyond loopback as it stands.
#[derive(Debug)]
pub struct PortRule {
    pub id: &'static str,
    pub service: &'static str,
    /// `None`: TCP and UDP.
    pub proto: Option<Proto>,
    pub ports: RangeInclusive<u16>,
    pub severity: Severity,
    /// No finding when the same host also listens beyond loopback on this port (same
    /// protocol): the encrypted twin is there, and the plain port is most likely a redirect or
    /// a STARTTLS entry.
    pub unless_also: Option<u16>,
    pub reason: &'static str,
}

const fn rule(
    id: &'static str,
    service: &'static str,
    proto: Option<Proto>,
    ports: RangeInclusive<u16>,
    severity: Severity,
    reason: &'static str,
) -> PortRule {
    PortRule {
        id,
        service,
        proto,
        ports,
        severity,
        unless_also: None,
        reason,
    }
}

const fn unless_also(rule: PortRule, port: u16) -> PortRule {
    PortRule {
        unless_also: Some(port),
        ..rule
    }
}

const TCP: Option<Proto> = Some(Proto::Tcp);
const UDP: Option<Proto> = Some(Proto::Udp);
const BOTH: Option<Proto> = None;
use Severity::{High, Info, Low, Medium};

// Severities: `high` for what is unauthenticated by default, hands out code execution, or sends
// logins in clear text; `medium` for what authenticates but should still sit behind a firewall;
// `low`/`info` for what is usually deliberate. The default `--fail-on high` thus fails on what
// is almost never right beyond loopback.
#[rustfmt::skip] // a table: one rule per entry reads better than rustfmt's one argument per line
pub const PORT_RULES: &[PortRule] = &[
    // Plaintext remote login, mail and file transfer.
    rule("telnet", "telnet", TCP, 23..=23, High,
        "telnet sends logins and sessions in clear text: use SSH and remove the telnet server"),
    rule("ftp", "ftp", TCP, 21..=21, Medium,
        "FTP sends passwords in clear text: use SFTP or FTPS, or bind it to 127.0.0.1"),
    rule("rexec", "exec", TCP, 512..=512, High,
        "rexec sends passwords in clear text: use SSH and disable it"),
    rule("rlogin", "login", TCP, 513..=513, High,
        "rlogin trusts host names and sends sessions in clear text: use SSH and disable it"),
    // 514/udp is syslog: only TCP is rsh.
    rule("rsh", "shell", TCP, 514..=514, High,
        "rsh runs commands for trusted hosts without a password, in clear text: use SSH and disable it"),
    unless_also(rule("pop3", "pop3", TCP, 110..=110, Medium,
        "POP3 without TLS and no POP3S on 995: serve POP3S on 995 and close 110 (or require STLS)"), 995),
    unless_also(rule("imap", "imap", TCP, 143..=143, Medium,
        "IMAP without TLS and no IMAPS on 993: serve IMAPS on 993 and close 143 (or require STARTTLS)"), 993),
    unless_also(rule("smtp-submission", "submission", TCP, 587..=587, Low,
        "mail submission with no implicit-TLS port 465 (RFC 8314): require STARTTLS before AUTH on 587, or add 465"), 465),
    unless_also(rule("http", "http", TCP, 80..=80, Info,
        "plain HTTP and no HTTPS on 443: serve HTTPS and redirect 80 to it"), 443),
    rule("tftp", "tftp", UDP, 69..=69, Medium,
        "TFTP has no authentication: serve files over HTTPS or SFTP, or bind it to the provisioning network only"),
    // Data stores and caches.
    rule("mysql", "mysql", TCP, 3306..=3306, Medium,
        "MySQL reachable beyond loopback: set bind-address to 127.0.0.1, or firewall it to the hosts that need it"),
    rule("postgresql", "postgresql", TCP, 5432..=5432, Medium,
        "PostgreSQL reachable beyond loopback: narrow listen_addresses and pg_hba.conf to the clients that need it"),
    rule("redis", "redis", TCP, 6379..=6379, High,
        "Redis has no password by default and CONFIG SET writes files: bind 127.0.0.1, or require a password (requirepass/ACL) and firewall it"),
    rule("mongodb", "mongodb", TCP, 27017..=27017, High,
        "MongoDB without authorization gives every client every database: set bindIp to 127.0.0.1 or enable authorization"),
    rule("memcached", "memcached", BOTH, 11211..=11211, High,
        "memcached has no authentication and over UDP amplifies DDoS traffic: bind 127.0.0.1 (-l) and disable UDP (-U 0)"),
    rule("elasticsearch", "elasticsearch", TCP, 9200..=9200, High,
        "Elasticsearch's HTTP API reads and deletes every index: set network.host to 127.0.0.1 or enable security (TLS and users)"),
    rule("elasticsearch-transport", "elasticsearch", TCP, 9300..=9300, Medium,
        "Elasticsearch's node-to-node transport: firewall it to the cluster's own nodes"),
    rule("couchdb", "couchdb", TCP, 5984..=5984, Medium,
        "CouchDB's HTTP API reachable beyond loopback: bind it to 127.0.0.1, or serve it over TLS with admin accounts set"),
    rule("cassandra", "cassandra", TCP, 9042..=9042, High,
        "Cassandra's default authenticator lets anyone in: enable PasswordAuthenticator and firewall 9042 to its clients"),
    rule("etcd", "etcd", TCP, 2379..=2379, High,
        "etcd holds cluster state and secrets: require client certificates (--client-cert-auth) or bind it to 127.0.0.1"),
    // Remote control and debugging.
    rule("docker-api", "docker", TCP, 2375..=2375, High,
        "the Docker API without TLS is root on this host for anyone who reaches it: use the unix socket, or TLS on 2376"),
    rule("rdp", "rdp", BOTH, 3389..=3389, Medium,
        "RDP reachable beyond loopback: put it behind a VPN or RD Gateway and require NLA"),
    rule("vnc", "vnc", TCP, 5900..=5903, High,
        "VNC is often unencrypted with weak or no password: bind it to 127.0.0.1 and tunnel it over SSH"),
    rule("node-inspector", "node-inspector", TCP, 9229..=9229, High,
        "the Node.js inspector runs any code a client sends: use --inspect=127.0.0.1:9229, and never in production"),
    rule("jupyter", "jupyter", TCP, 8888..=8888, Medium,
        "8888 is Jupyter's port, which runs code for whoever holds its token, over plain HTTP by default: bind 127.0.0.1 and use an SSH tunnel"),
    rule("x11", "x11", TCP, 6000..=6063, High,
        "X11 over TCP lets any client read keystrokes and the screen: start the X server with -nolisten tcp and use ssh -X"),
    rule("smb", "microsoft-ds", TCP, 445..=445, Medium,
        "SMB reachable beyond loopback: firewall it to the LAN, never the internet, and disable SMBv1"),
    rule("netbios-ssn", "netbios-ssn", TCP, 139..=139, Medium,
        "SMB over NetBIOS (legacy): disable it (smb ports = 445) or firewall it to the LAN"),
    rule("netbios-ns", "netbios", UDP, 137..=138, Low,
        "NetBIOS name and datagram services announce host and user names: disable them (nmbd) unless a legacy client needs them"),
];

pub const OWNER_HIDDEN: &str = "owner-hidden";
pub const LOOPBACK_INTENDED: &str = "loopback-intended";

/// Every finding about `listeners`, most severe first.
pub fn evaluate(listeners: &[Listener]) -> Vec<Finding> {
    let index = Index::new(listeners);
    let mut findings = Vec::new();
    for (position, listener) in listeners.iter().enumerate() {
        if !listener.exposure.beyond_loopback() {
            // Loopback is this host's own business: even Redis without a password is fine there.
            continue;
        }
        let before = findings.len();
        for rule in PORT_RULES.iter().filter(|rule| applies(rule, listener)) {
            let twin = rule
                .unless_also
                .is_some_and(|port| index.listens_beyond_loopback(listener, port));
            if !twin && !probe_rules::superseded(rule.id, listener) {
                findings.push(Finding {
                    listener: position,
                    rule: rule.id,
                    severity: rule.severity,
                    service: Some(rule.service),
                    reason: rule.reason.to_string(),
                    allowed: false,
                    blocked: false,
                });
            }
        }
        let port_rule_fired = findings.len() > before;
        if listener.processes.is_empty() {
            findings.push(Finding {
                listener: position,
                rule: OWNER_HIDDEN,
                severity: Severity::Low,
                service: None,
                reason: why_no_owner(listener.owner_note).to_string(),
                allowed: false,
                blocked: false,
            });
        } else if !port_rule_fired {
            // A port rule's reason already says where to bind: one finding says it once.
            findings.extend(loopback_intended(listeners, &index, position));
        }
    }
    findings.extend(probe_rules::findings(listeners));
    for finding in &mut findings {
        finding.blocked = listeners[finding.listener]
            .firewall
            .as_ref()
            .is_some_and(|reach| reach.verdict == Verdict::Blocked);
        if let Some(forward) = &listeners[finding.listener].forward {
            // DNAT happens before the INPUT chain: rules there never see these connections.
            finding.reason = format!(
                "{} (published: forwarded to {}, around the INPUT chain)",
                finding.reason,
                std::net::SocketAddr::new(forward.to_address, forward.to_port)
            );
        }
    }
    findings.sort_by_cached_key(|finding| {
        let place = listeners
            .get(finding.listener)
            .map(|l| (l.host.clone(), l.port, l.proto, l.address));
        (std::cmp::Reverse(finding.severity), place, finding.rule)
    });
    findings
}

fn applies(rule: &PortRule, listener: &Listener) -> bool {
    // A published port is the service behind it: Redis published on 16379 is still Redis.
    let port = listener
        .forward
        .as_ref()
        .map_or(listener.port, |f| f.to_port);
    rule.ports.contains(&port) && rule.proto.is_none_or(|proto| proto == listener.proto)
}

/// Who listens where, gathered once per audit, so that the questions asked of each listener are
/// lookups rather than a pass over every other listener (100k sockets would be 10^10 pairs).
struct Index<'a> {
    /// (host, protocol, port) of every listener beyond loopback.
    beyond: HashSet<(&'a str, Proto, u16)>,
    /// The listeners each process (host, pid) holds.
    owners: HashMap<(&'a str, u32), Holdings>,
}

#[derive(Default)]
struct Holdings {
    /// Indexes into the listeners, ascending, each once.
    listeners: Vec<usize>,
    /// How many of them listen beyond loopback.
    beyond: usize,
}

impl<'a> Index<'a> {
    fn new(listeners: &'a [Listener]) -> Index<'a> {
        let mut beyond = HashSet::new();
        let mut owners: HashMap<(&'a str, u32), Holdings> = HashMap::new();
        for (position, listener) in listeners.iter().enumerate() {
            let reachable = listener.exposure.beyond_loopback();
            if reachable {
                beyond.insert((listener.host.as_str(), listener.proto, listener.port));
            }
            for process in &listener.processes {
                let holdings = owners
                    .entry((listener.host.as_str(), process.pid))
                    .or_default();
                // A pid listed twice for one socket holds it once.
                if holdings.listeners.last() != Some(&position) {
                    holdings.listeners.push(position);
                    holdings.beyond += usize::from(reachable);
                }
            }
        }
        Index { beyond, owners }
    }

    fn listens_beyond_loopback(&self, of: &Listener, port: u16) -> bool {
        self.beyond.contains(&(of.host.as_str(), of.proto, port))
    }
}

/// Why a listener shows no owner, from its snapshot `owner_note`, and that root would see it.
fn why_no_owner(note: Option<OwnerNote>) -> &'static str {
    match note {
        Some(OwnerNote::Hidden) => {
            "owner hidden: this user can't read its process's /proc/PID/fd; root would see which program accepts connections here"
        }
        Some(OwnerNote::HiddenFromRoot) => {
            "owner hidden even from root: the kernel refuses to show the /proc/PID/fd of a process that could hold it (not dumpable, guarded by a security module, or in another user namespace); find the program from its configuration"
        }
        Some(OwnerNote::NotFound) => {
            "no process in this PID namespace holds it (a container's, or it closed during the scan); root in the host's PID namespace would see its program"
        }
        Some(OwnerNote::Exited) => {
            "its process exited during the scan: audit again, as root, to see which program listens here"
        }
        _ => "no owner was reported for it; root would see which program accepts connections here",
    }
}

/// A TCP wildcard listener whose process binds every other listener it has to loopback: the
/// loopback binds show the intent, so the wildcard most likely slipped (a debug port, a default
/// the configuration missed). UDP is left out: a client's unconnected UDP socket sits on the
/// wildcard without anyone choosing it.
fn loopback_intended(listeners: &[Listener], index: &Index, position: usize) -> Option<Finding> {
    let listener = listeners.get(position)?;
    if listener.proto != Proto::Tcp || listener.exposure.class != Class::AllInterfaces {
        return None;
    }
    let itself = usize::from(listener.exposure.beyond_loopback());
    let mut holdings = Vec::new();
    for process in &listener.processes {
        let held = index.owners.get(&(listener.host.as_str(), process.pid))?;
        if held.beyond > itself {
            // Another listener of the same process is reachable beyond loopback: deliberate.
            return None;
        }
        holdings.push(held);
    }
    // Only a process's one listener beyond loopback gets this far, so each process's
    // listeners are listed at most once: the work is bounded by the number of listeners.
    let mut others: Vec<usize> = match holdings.as_slice() {
        [one] => one.listeners.clone(),
        many => {
            let mut all: Vec<usize> = many
                .iter()
                .flat_map(|h| h.listeners.iter().copied())
                .collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    };
    others.retain(|&other| other != position);
    let siblings: Vec<&Listener> = others
        .iter()
        .filter_map(|&other| listeners.get(other))
        .collect();
    if siblings.is_empty() || siblings.iter().any(|s| s.exposure.beyond_loopback()) {
        return None;
    }
    let owner = listener.processes.first()?;
    let ports: Vec<String> = siblings.iter().map(|s| s.endpoint()).collect();
    Some(Finding {
        listener: position,
        rule: LOOPBACK_INTENDED,
        severity: Severity::Info,
        service: None,
        reason: format!(
            "{} (pid {}) binds its other listeners to loopback only ({}): bind this one to 127.0.0.1 too unless other hosts need it",
            owner.name,
            owner.pid,
            ports.join(", ")
        ),
        allowed: false,
        blocked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::exposure::{self, HostView};
    use crate::core::model::Process;
    use std::sync::Arc;

    fn listener(host: &str, proto: Proto, address: &str, port: u16, pid: Option<u32>) -> Listener {
        let address = address.parse().expect("test address");
        Listener {
            host: host.into(),
            proto,
            family: "ipv4",
            address,
            port,
            exposure: exposure::classify(address, None, &HostView::default()),
            service: None,
            uid: Some(0),
            user: None,
            processes: pid
                .map(|pid| {
                    Arc::new(Process {
                        pid,
                        name: format!("proc{pid}"),
                        user: None,
                        cmdline: String::new(),
                        started: None,
                        ppid: None,
                    })
                })
                .into_iter()
                .collect(),
            owner_note: pid.is_none().then_some(OwnerNote::Hidden),
            firewall: None,
            forward: None,
            probe: None,
        }
    }

    fn rules_of(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn rule_ids_are_unique_and_reasons_are_one_line() {
        let mut ids: Vec<&str> = PORT_RULES.iter().map(|r| r.id).collect();
        ids.extend([OWNER_HIDDEN, LOOPBACK_INTENDED]);
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count);
        for rule in PORT_RULES {
            assert!(
                !rule.reason.contains('\n') && rule.reason.contains(':'),
                "{}",
                rule.id
            );
            assert!(rule.ports.start() <= rule.ports.end(), "{}", rule.id);
        }
    }

    #[test]
    fn a_blocked_listener_is_marked_and_a_published_one_is_judged_by_its_target() {
        use crate::core::firewall::eval::{Reach, RuleRef, Verdict};
        use crate::core::firewall::judge::ForwardTarget;
        use crate::core::firewall::{Origin, TableFamily};
        let rule = RuleRef {
            origin: Origin::IptablesNft,
            family: TableFamily::Ip,
            table: "nat".into(),
            chain: "DOCKER".into(),
            handle: Some(2),
            text: "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 16379 -j DNAT".into(),
        };
        let reach = |verdict| Reach {
            verdict,
            sources: Vec::new(),
            rule: None,
            reason: None,
        };
        let mut blocked = listener("h", Proto::Tcp, "0.0.0.0", 6379, Some(1));
        blocked.firewall = Some(reach(Verdict::Blocked));
        // Redis in a container, published on host port 16379: no rule knows 16379.
        let mut published = listener("h", Proto::Tcp, "0.0.0.0", 16379, Some(2));
        published.firewall = Some(reach(Verdict::Open));
        published.forward = Some(Arc::new(ForwardTarget {
            to_address: "172.17.0.2".parse().unwrap(),
            to_port: 6379,
            netns: None,
            container: Some("cache".into()),
            container_id: None,
            runtime: Some("docker".into()),
            rule,
        }));
        let findings = evaluate(&[blocked, published]);
        assert_eq!(rules_of(&findings), ["redis", "redis"]);
        // Listener 0 is the blocked one on 6379, listener 1 the published one on 16379.
        let on = |port: u16| {
            let index = usize::from(port == 16379);
            findings
                .iter()
                .find(|f| f.listener == index)
                .expect("finding")
        };
        assert!(on(6379).blocked);
        assert!(!on(16379).blocked);
        assert!(
            on(16379)
                .reason
                .contains("forwarded to 172.17.0.2:6379, around the INPUT chain"),
            "{}",
            on(16379).reason
        );
        assert!(!on(6379).reason.contains("forwarded"));
    }

    #[test]
    fn risky_services_are_flagged_beyond_loopback_only() {
        let listeners = vec![
            listener("h", Proto::Tcp, "0.0.0.0", 6379, Some(1)),
            listener("h", Proto::Tcp, "127.0.0.1", 3306, Some(2)),
            listener("h", Proto::Tcp, "10.0.0.5", 5432, Some(3)),
            listener("h", Proto::Tcp, "203.0.113.9", 23, Some(4)),
            listener("h", Proto::Tcp, "::1", 9229, Some(5)),
        ];
        let findings = evaluate(&listeners);
        assert_eq!(rules_of(&findings), ["telnet", "redis", "postgresql"]);
        assert_eq!(findings[0].severity, Severity::High);
        assert_eq!(findings[2].severity, Severity::Medium);
        assert_eq!(findings[1].service, Some("redis"));
    }

    #[test]
    fn protocols_and_port_ranges_are_respected() {
        let listeners = vec![
            listener("h", Proto::Udp, "0.0.0.0", 514, Some(1)), // syslog, not rsh
            listener("h", Proto::Tcp, "0.0.0.0", 514, Some(2)),
            listener("h", Proto::Tcp, "0.0.0.0", 6010, Some(3)),
            listener("h", Proto::Tcp, "0.0.0.0", 6064, Some(4)),
            listener("h", Proto::Udp, "0.0.0.0", 11211, Some(5)),
            listener("h", Proto::Udp, "0.0.0.0", 138, Some(6)),
        ];
        let findings = evaluate(&listeners);
        let flagged: Vec<(u16, &str)> = findings
            .iter()
            .map(|f| (listeners[f.listener].port, f.rule))
            .collect();
        assert_eq!(
            flagged,
            [
                (514, "rsh"),
                (6010, "x11"),
                (11211, "memcached"),
                (138, "netbios-ns")
            ]
        );
    }

    #[test]
    fn plain_ports_with_an_encrypted_twin_are_not_flagged() {
        let alone = vec![listener("h", Proto::Tcp, "0.0.0.0", 80, Some(1))];
        let findings = evaluate(&alone);
        assert_eq!(rules_of(&findings), ["http"]);
        assert_eq!(findings[0].severity, Severity::Info);
        let with_https = vec![
            listener("h", Proto::Tcp, "0.0.0.0", 80, Some(1)),
            listener("h", Proto::Tcp, "::", 443, Some(1)),
        ];
        assert!(evaluate(&with_https).is_empty());
        // The twin must be on the same host, and reachable itself.
        let elsewhere = vec![
            listener("a", Proto::Tcp, "0.0.0.0", 110, Some(1)),
            listener("b", Proto::Tcp, "0.0.0.0", 995, Some(1)),
            listener("a", Proto::Tcp, "127.0.0.1", 995, Some(1)),
        ];
        assert_eq!(rules_of(&evaluate(&elsewhere)), ["pop3"]);
    }

    #[test]
    fn hidden_owners_are_named_beyond_loopback_with_the_reason() {
        let listeners = vec![
            listener("h", Proto::Tcp, "0.0.0.0", 4000, None),
            listener("h", Proto::Tcp, "127.0.0.1", 4001, None),
        ];
        let findings = evaluate(&listeners);
        assert_eq!(rules_of(&findings), [OWNER_HIDDEN]);
        assert_eq!(findings[0].severity, Severity::Low);
        assert!(findings[0].reason.contains("root would see"));
        assert!(why_no_owner(Some(OwnerNote::NotFound)).contains("PID namespace"));
        assert!(why_no_owner(Some(OwnerNote::Exited)).contains("as root"));
        assert!(!why_no_owner(Some(OwnerNote::HiddenFromRoot)).contains("root would see"));
    }

    #[test]
    fn a_wildcard_among_loopback_listeners_of_one_process_is_info() {
        let listeners = vec![
            listener("h", Proto::Tcp, "127.0.0.1", 3000, Some(7)),
            listener("h", Proto::Tcp, "0.0.0.0", 3001, Some(7)),
            // Another process's wildcard listener alone: no hint of intent either way.
            listener("h", Proto::Tcp, "0.0.0.0", 4000, Some(8)),
            // The same pid on another host is another process.
            listener("g", Proto::Tcp, "0.0.0.0", 3001, Some(7)),
        ];
        let findings = evaluate(&listeners);
        assert_eq!(rules_of(&findings), [LOOPBACK_INTENDED]);
        assert_eq!(listeners[findings[0].listener].port, 3001);
        assert_eq!(listeners[findings[0].listener].host, "h");
        assert!(findings[0].reason.contains("127.0.0.1:3000"));

        // A process that also binds another address on purpose is left alone.
        let deliberate = vec![
            listener("h", Proto::Tcp, "127.0.0.1", 3000, Some(7)),
            listener("h", Proto::Tcp, "0.0.0.0", 3001, Some(7)),
            listener("h", Proto::Tcp, "10.0.0.5", 3002, Some(7)),
        ];
        assert!(evaluate(&deliberate).is_empty());
        // A port rule already says where to bind it.
        let redis = vec![
            listener("h", Proto::Tcp, "127.0.0.1", 3000, Some(7)),
            listener("h", Proto::Tcp, "0.0.0.0", 6379, Some(7)),
        ];
        assert_eq!(rules_of(&evaluate(&redis)), ["redis"]);
    }

    #[test]
    fn fail_on_thresholds_order_severities() {
        assert!(Severity::High > Severity::Medium && Severity::Low > Severity::Info);
        assert_eq!(FailOn::Medium.threshold(), Some(Severity::Medium));
        assert_eq!(FailOn::Never.threshold(), None);
        assert_eq!(FailOn::Never.as_str(), "never");
    }

    /// The pairwise comparison `Index` replaced: every listener against every other.
    fn loopback_intended_pairwise(listeners: &[Listener], index: usize) -> Option<String> {
        let listener = &listeners[index];
        if listener.proto != Proto::Tcp || listener.exposure.class != Class::AllInterfaces {
            return None;
        }
        let pids: Vec<u32> = listener.processes.iter().map(|p| p.pid).collect();
        let siblings: Vec<&Listener> = listeners
            .iter()
            .enumerate()
            .filter(|&(other, sibling)| {
                other != index
                    && sibling.host == listener.host
                    && sibling.processes.iter().any(|p| pids.contains(&p.pid))
            })
            .map(|(_, sibling)| sibling)
            .collect();
        if siblings.is_empty() || siblings.iter().any(|s| s.exposure.beyond_loopback()) {
            return None;
        }
        let ports: Vec<String> = siblings.iter().map(|s| s.endpoint()).collect();
        Some(ports.join(", "))
    }

    #[test]
    fn the_index_answers_as_the_pairwise_comparison_did() {
        // A small deterministic mix: two hosts, a few pids (one socket held by two of them,
        // one by the same pid twice), loopback, wildcard and specific addresses, both protocols.
        let addresses = ["127.0.0.1", "0.0.0.0", "127.0.0.1", "::", "10.0.0.5", "::1"];
        let mut seed = 14u32;
        let mut next = |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) % n
        };
        let mut found = 0;
        for round in 0..200 {
            let count = 1 + round % 12;
            let mut listeners: Vec<Listener> = (0..count)
                .map(|_| {
                    let host = ["h", "g"][next(2) as usize];
                    let proto = [Proto::Tcp, Proto::Tcp, Proto::Udp][next(3) as usize];
                    let address = addresses[next(addresses.len() as u32) as usize];
                    let port = [80, 443, 110, 995, 3000, 3001, 6379][next(7) as usize];
                    let pid = [None, Some(1), Some(2), Some(3)][next(4) as usize];
                    listener(host, proto, address, port, pid)
                })
                .collect();
            if let Some(shared) = listeners.iter_mut().find(|l| !l.processes.is_empty()) {
                let again = Arc::clone(&shared.processes[0]);
                shared.processes.push(again);
                let mut other = (*shared.processes[0]).clone();
                other.pid += 1;
                shared.processes.push(Arc::new(other));
            }
            let index = Index::new(&listeners);
            for (position, of) in listeners.iter().enumerate() {
                let indexed = loopback_intended(&listeners, &index, position);
                let expected = loopback_intended_pairwise(&listeners, position);
                found += usize::from(expected.is_some());
                assert_eq!(
                    indexed.as_ref().map(|f| f.reason.clone()),
                    expected.map(|ports| {
                        let owner = &of.processes[0];
                        format!(
                            "{} (pid {}) binds its other listeners to loopback only ({ports}): bind this one to 127.0.0.1 too unless other hosts need it",
                            owner.name, owner.pid
                        )
                    }),
                    "round {round}, listener {position}: {listeners:?}"
                );
                for port in [443, 995, 3000] {
                    let pairwise = listeners.iter().any(|other| {
                        other.host == of.host
                            && other.proto == of.proto
                            && other.port == port
                            && other.exposure.beyond_loopback()
                    });
                    assert_eq!(index.listens_beyond_loopback(of, port), pairwise);
                }
            }
        }
        assert!(
            found >= 10,
            "only {found} loopback-intended cases were compared"
        );
    }
}
