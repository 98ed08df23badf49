//! The command line. Help text here is the user's first documentation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::core::audit::rules::FailOn;
use crate::core::error::UsageError;
use crate::core::filter::Prefix;
use crate::core::model::{Backend, Extensions, Family, Proto, State};
use crate::core::probe::ProbeMode;
use crate::core::query::{
    NetnsSelection, PortSpec, Query, RangeFilter, Selector, SortKey, StateSelection, parse_state,
};
use crate::core::target::Target;
use crate::render::Format;

pub mod parse;

const EXAMPLES: &str = "\
Examples:
  portstat                   listeners and established connections, with owners
  portstat -l                what is listening
  portstat 5432              everything on port 5432 (local or remote)
  portstat -tulpn            the ss/netstat habit works: TCP+UDP listeners, numeric
  portstat --state time-wait --port 8000-9000
  portstat --process nginx --json
  portstat -l --format csv > listeners.csv
  portstat who 8080          who holds 8080, and could a server bind it now?
  portstat audit             what is reachable from beyond this host, and is it risky?";

const WHO_EXAMPLES: &str = "\
Examples:
  portstat who 8080               TCP port 8080 on the IPv4 wildcard (what `listen 8080` binds)
  portstat who 127.0.0.1:8080     a specific address
  portstat who [::]:443           the IPv6 wildcard (dual-stack unless bindv6only)
  portstat who 53/udp
  portstat who 8080 -q && start-server
  portstat why 80 --connect --json
  portstat who 8080 --stop        end what holds it (asks first), like fuser -k 8080/tcp

Exit status: 0 when a server could bind now, 1 when it could not, 2 for bad usage or when\nthe question could not be answered (the socket tables could not be read). With --stop: 0 when\nthe port is free afterwards, 1 when it is still held, 2 when nothing was done (refused, no\nterminal to ask on without --yes) or a step failed.";

const AUDIT_EXAMPLES: &str = "\
Examples:
  portstat audit                                 this host: exposure and risky listeners
  portstat audit --listeners                     also every listener with its exposure
  portstat audit --policy portstat.toml          and check them against an allow-list
  portstat audit --baseline approved.json        and report listeners new or gone since then
  portstat -l --json > approved.json             save a baseline (or: portstat audit --json)
  portstat audit --input web-1.json --input web-2.json --fail-on medium
                                                 saved snapshots of other hosts, e.g. in CI

Exit status: 0 when no finding is at or above --fail-on and there is no policy or drift
violation; 1 otherwise; 2 for bad usage, an unreadable or malformed policy, snapshot or
baseline, or socket tables that can't be read.";

/// What is using which port on this machine, and is that all right?
///
/// Lists TCP and UDP sockets (IPv4 and IPv6) with the processes that hold them, the IANA range
/// of each port, whether it is in this host's ephemeral range, the service it usually carries,
/// and for connections, whether they came in or went out. Without options: listening sockets
/// and established connections.
#[derive(Debug, Parser)]
#[command(
    name = "portstat",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Colours in tables and reports: auto (a terminal, unless NO_COLOR, CLICOLOR=0 or
    /// TERM=dumb; CLICOLOR_FORCE forces them), always or never. Never in JSON, CSV or metrics
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto, global = true, help_heading = "Output")]
    pub color: ColorWhen,

    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Who holds a port, and could a new server bind it now?
    ///
    /// Lists every socket on the port (listeners with their owners, connections by state,
    /// TIME_WAIT with time left), then says whether a server could bind the address and port
    /// now and, if not, why, in a sentence to act on. A real test bind (with and without
    /// SO_REUSEADDR, released at once, never listened on) confirms the verdict. As root it also
    /// reads the firewall: whether new connections from beyond this host reach the port, and,
    /// for a port a container runtime publishes, where they are forwarded and what serves them.
    #[command(visible_alias = "why", after_help = WHO_EXAMPLES)]
    Who(WhoArgs),

    /// Audit the listeners: what is reachable from beyond this host, is it risky, does it keep
    /// to a policy, what changed?
    ///
    /// Classifies every TCP listener and bound UDP socket by exposure (loopback,
    /// all-interfaces, or a specific private or public address with its interface), reports
    /// findings from a table of risky services (plaintext logins, data stores, remote-control
    /// and debug ports) and unseen owners, checks an optional TOML allow-list and an optional
    /// baseline, and ends with a one-line summary. As root it reads the firewall: each
    /// listener's verdict (open, restricted to some sources, blocked, or unknown), and every
    /// port it forwards (DNAT, as Docker and podman publish ports) audited as a listener of its
    /// own. The exit status suits CI (below).
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),

    /// The whole picture: counts per protocol, family and state, the processes with the most
    /// sockets, and ephemeral-port pressure per destination
    ///
    /// Every socket is counted, in every state. For outgoing connections, the local ports in
    /// use towards each destination (remote address, port and protocol, from one local address)
    /// are measured against this host's ephemeral range: over 50% is a warning, over 80% port
    /// exhaustion close at hand, naming the processes behind it.
    Summary(SummaryArgs),

    /// Follow changes as they happen: one line per listener opened or closed, connection
    /// opened, changing state or closed
    ///
    /// The usual filters narrow what is followed (default: listeners and established
    /// connections). Owners are looked up for new sockets only. Ctrl-C or a closed pipe ends it
    /// with status 0.
    #[command(after_help = WATCH_EXAMPLES)]
    Watch(WatchArgs),

    /// A full-screen live view: the listing, read again every second, new sockets highlighted
    /// and closed ones shown briefly before they go
    ///
    /// Sort by any column, show TCP or UDP, listeners, connections or every state, filter with
    /// words (`/port:5432 process:postgres state:listen user:www-data`), open a socket's
    /// details (Enter: its holders, command lines, units or containers, queues, TCP internals,
    /// the firewall's verdict) or stop its holder (k, after a confirmation). `?` lists the
    /// keys; q, Esc or Ctrl-C quit. Standard output must be a terminal.
    #[command(after_help = TOP_EXAMPLES)]
    Top(TopArgs),

    /// This host's listeners, sockets and ephemeral ports as Prometheus metrics
    ///
    /// Prints the Prometheus text format (or OpenMetrics with --openmetrics), for
    /// node_exporter's textfile collector (--output) or any scraper. Every listener is a
    /// `portstat_listener_info` series; counts per state, accept queues, ephemeral-port use
    /// towards the busiest destinations, and with --audit, --policy or --baseline the audit's
    /// findings and drift. No label carries a pid or a client's port (see README, "Metrics").
    #[command(after_help = METRICS_EXAMPLES)]
    Metrics(MetricsArgs),

    /// Serve the metrics over HTTP for Prometheus to scrape (`/metrics`), on loopback unless
    /// told otherwise
    ///
    /// One scan at a time; a scrape sooner than --min-interval after the last scan gets that
    /// scan's answer. Takes the same options as `metrics`.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),

    /// Generate the man page or a shell's completion script
    ///
    /// `man` writes one page covering every subcommand to standard output (`--dir DIR`: one
    /// page per command, portstat.1, portstat-who.1, ..., into DIR); `complete-SHELL` writes
    /// SHELL's completion script.
    #[command(after_help = GENERATE_EXAMPLES)]
    Generate(GenerateArgs),
}

const GENERATE_EXAMPLES: &str = "\
Examples:
  portstat generate man | man -l -
  portstat generate man --dir /usr/local/share/man/man1
  portstat generate complete-bash > /etc/bash_completion.d/portstat
  portstat generate complete-zsh > \"${fpath[1]}/_portstat\"
  portstat generate complete-fish > ~/.config/fish/completions/portstat.fish";

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// What `portstat generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompletePowershell,
    CompleteElvish,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(value_enum)]
    pub what: Generated,

    /// With `man`: one page per command, written into DIR
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const METRICS_EXAMPLES: &str = "\
Examples:
  portstat metrics                                   print the metrics
  portstat metrics --audit --output /var/lib/node_exporter/portstat.prom
                                                     for node_exporter's textfile collector
  portstat metrics --netns all --leave-out user,unit fewer labels, every namespace
  portstat metrics --baseline approved.json          portstat_drift{kind} against a baseline";

const SERVE_EXAMPLES: &str = "\
Examples:
  portstat serve                                 http://127.0.0.1:9916/metrics
  portstat serve --listen 10.0.0.5:9916 --audit  beyond loopback, with audit findings
  curl -s localhost:9916/metrics | promtool check metrics";

/// What the metrics say: shared by `metrics` and `serve`.
#[derive(Debug, Args)]
pub struct ExporterArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// Also export the audit's findings (portstat_audit_findings{severity,rule})
    #[arg(long, help_heading = "Metrics")]
    pub audit: bool,

    /// Check listeners against this TOML policy (as audit does): findings and
    /// portstat_policy_violations
    #[arg(long, value_name = "FILE", help_heading = "Metrics")]
    pub policy: Option<PathBuf>,

    /// Compare with this saved `portstat -l --json` or `audit --json`: portstat_drift{kind}
    #[arg(long, value_name = "FILE", help_heading = "Metrics")]
    pub baseline: Option<PathBuf>,

    /// How many of the busiest destinations get a portstat_ephemeral_ports_in_use series
    #[arg(long, value_name = "N", default_value_t = 10, help_heading = "Metrics")]
    pub top: usize,

    /// Labels to leave out of every series (series that then look alike merge)
    #[arg(
        long,
        value_enum,
        value_name = "LABEL[,LABEL]",
        value_delimiter = ',',
        help_heading = "Metrics"
    )]
    pub leave_out: Vec<crate::render::metrics::Label>,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub exporter: ExporterArgs,

    /// Write to FILE atomically (a temporary file beside it, renamed over it) instead of
    /// standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The OpenMetrics text format instead of Prometheus's 0.0.4
    #[arg(long)]
    pub openmetrics: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub exporter: ExporterArgs,

    /// Where to listen; an address beyond loopback exposes this host's listeners to whoever
    /// reaches it. Port 0 picks a free port (printed)
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:9916")]
    pub listen: std::net::SocketAddr,

    /// Scrapes closer together than this share one scan: seconds (5) or a duration (500ms)
    #[arg(long, value_name = "TIME", default_value = "5", value_parser = parse::interval)]
    pub min_interval: std::time::Duration,
}

/// Where the socket tables come from: shared by every command that scans this host.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Which reader of the kernel's socket tables to use
    #[arg(long, value_enum, default_value_t = Backend::Auto, help_heading = "Scanning")]
    pub backend: Backend,

    /// Network namespaces to read: all, or one by pid, `ip netns` name or path [default:
    /// portstat's own]. Other namespaces than one's own need root (all: see README)
    #[arg(long, value_name = "all|PID|NAME|PATH", help_heading = "Scanning")]
    pub netns: Option<NetnsSelection>,
}

impl ScanArgs {
    pub fn netns(&self) -> NetnsSelection {
        self.netns.clone().unwrap_or_default()
    }
}

/// `--json`: shared by every command.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// The same facts as JSON (see README): indented at a terminal, one line otherwise
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// `-n`: shared by the commands that name users and services.
#[derive(Debug, Clone, Copy, Args)]
pub struct NumericArg {
    /// Numeric: no service or user names (and faster)
    #[arg(short = 'n', long, help_heading = "Output")]
    pub numeric: bool,
}

/// How many processes and destinations `summary` lists unless told.
pub const SUMMARY_TOP: usize = 10;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// How many processes and destinations to list
    #[arg(long, value_name = "N", default_value_t = SUMMARY_TOP)]
    pub top: usize,

    #[command(flatten)]
    pub json: JsonArg,

    #[command(flatten)]
    pub numeric: NumericArg,
}

const WATCH_EXAMPLES: &str = "\
Examples:
  portstat watch                    listeners and connections coming and going
  portstat watch -l                 listeners only
  portstat watch --port 5432 --json newline-delimited JSON events for a log
  portstat watch -a --interval 0.2 --duration 30s";

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub scan: ScanArgs,

    /// Time between two readings of the tables: seconds (0.5) or a duration (500ms, 2s); at
    /// least 10ms
    #[arg(long, value_name = "TIME", default_value = "1", value_parser = parse::interval)]
    pub interval: std::time::Duration,

    /// Stop after this many events
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Stop after this long: seconds or a duration (90s, 5m, 2h)
    #[arg(long, value_name = "TIME", value_parser = parse::interval)]
    pub duration: Option<std::time::Duration>,

    #[command(flatten)]
    pub json: JsonArg,

    #[command(flatten)]
    pub numeric: NumericArg,
}

const TOP_EXAMPLES: &str = "\
Examples:
  portstat top                     every socket, read again each second
  portstat top --interval 250ms    more often
  portstat top --netns all         every network namespace (root), with a NETNS column

Keys: arrows, PgUp/PgDn, Home/End move; 1-9 sort by that column (again: the other way), < >
move the sort, r reverses it, 0 goes back to the listing's order; t TCP, u UDP, l listening,
e established, a all states (the same key again: back); / filter; Enter details; k stop the
holder; ? help; q, Esc or Ctrl-C quit.";

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// Time between two readings of the tables: seconds (0.5) or a duration (500ms, 2s); at
    /// least 10ms
    #[arg(long, value_name = "TIME", default_value = "1", value_parser = parse::interval)]
    pub interval: std::time::Duration,

    #[command(flatten)]
    pub numeric: NumericArg,

    /// One reading drawn into a screen of --size and printed as text, without a terminal (for
    /// the benchmark and tests)
    #[arg(long, hide = true)]
    pub once: bool,

    /// The screen --once draws: COLUMNSxROWS
    #[arg(long, hide = true, value_name = "COLSxROWS", default_value = "160x50", value_parser = parse::screen_size)]
    pub size: (u16, u16),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// Audit a snapshot saved with `portstat -l --json` instead of this host (`-` reads stdin);
    /// repeat for several hosts, one snapshot each
    #[arg(long, value_name = "FILE", conflicts_with_all = ["backend", "netns"])]
    pub input: Vec<PathBuf>,

    /// Check listeners against this TOML policy: [[allow]] port, proto, scope, process;
    /// [[require]] port, proto (see README)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Report listeners new or gone since this saved `portstat -l --json` or
    /// `portstat audit --json`
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// The least severity that fails the run (exit 1); `never` only reports findings
    #[arg(long, value_enum, value_name = "SEVERITY", default_value_t = FailOn::High)]
    pub fail_on: FailOn,

    /// Also list every listener with its exposure, before the findings
    #[arg(long)]
    pub listeners: bool,

    /// One row per host (listeners, findings by severity, violations, drift, pass or fail)
    /// instead of the findings: for many `--input` snapshots
    #[arg(long, conflicts_with = "listeners")]
    pub summary: bool,

    /// Talk to each TCP listener (inside its namespace) to learn what it speaks: a banner
    /// (SSH, SMTP, ...), else TLS with its certificate; HTTP on web ports, or on every port with
    /// =http. Services on the safety list (Redis, memcached, debuggers, printers) are only
    /// listened to. Findings: expired or expiring certificates, self-signed, TLS 1.0/1.1,
    /// plain HTTP, a port that speaks otherwise than it promises (see README)
    #[arg(
        long,
        value_enum,
        value_name = "http",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "tls",
        conflicts_with = "input"
    )]
    pub probe: Option<ProbeMode>,

    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct WhoArgs {
    /// PORT, PORT/udp, :PORT, ADDRESS:PORT or [IPv6]:PORT; TCP unless /udp is given
    #[arg(value_name = "TARGET")]
    pub target: Target,

    #[command(flatten)]
    pub scan: ScanArgs,

    /// Skip the test bind: the verdict then rests on the socket tables alone
    #[arg(long)]
    pub no_bind: bool,

    /// Also try a TCP connection (on loopback for a wildcard target), like `nc -z`
    #[arg(long)]
    pub connect: bool,

    /// Talk to each TCP listener on the port to learn what it speaks (a banner, TLS and its
    /// certificate, HTTP on web ports or with =http); the safety list's services are only
    /// listened to (see README)
    #[arg(
        long,
        value_enum,
        value_name = "http",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "tls"
    )]
    pub probe: Option<ProbeMode>,

    #[command(flatten)]
    pub json: JsonArg,

    /// Print nothing; only the exit status answers
    #[arg(short, long)]
    pub quiet: bool,

    /// End what holds the port, in the way that frees it: `systemctl stop` of its systemd unit
    /// (and socket unit), `podman stop`/`docker stop` of its container, else SIGTERM to the
    /// process whose end frees it (a server's master, not a worker); then wait for the port to
    /// be free. Asks on the terminal first; never signals pid 1 or portstat itself
    #[arg(long, help_heading = "Stopping", conflicts_with_all = ["probe", "connect"])]
    pub stop: bool,

    /// Stop without asking
    #[arg(short = 'y', long, requires = "stop", help_heading = "Stopping")]
    pub yes: bool,

    /// When the port is still held after --timeout, SIGKILL what was stopped (`systemctl kill`,
    /// `podman kill`/`docker kill` for units and containers) and wait briefly again
    #[arg(long, requires = "stop", help_heading = "Stopping")]
    pub force: bool,

    /// How long to wait for the port to be free [default: 5s]
    #[arg(long, value_name = "TIME", requires = "stop", value_parser = parse::interval, help_heading = "Stopping")]
    pub timeout: Option<std::time::Duration>,
}

/// Which sockets to show: shared by the listing and `watch`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Listening sockets: TCP LISTEN and bound, unconnected UDP (UNCONN)
    #[arg(short = 'l', long, help_heading = "Which sockets")]
    pub listening: bool,

    /// Established connections (TCP ESTABLISHED, connected UDP)
    #[arg(short = 'e', long, help_heading = "Which sockets")]
    pub established: bool,

    /// Sockets in every state (TIME_WAIT, CLOSE_WAIT, SYN_SENT, ...)
    #[arg(short = 'a', long, help_heading = "Which sockets")]
    pub all: bool,

    /// Only these states, in any case, with - or _: listen, unconn, established, syn-sent,
    /// syn-recv, new-syn-recv, fin-wait1, fin-wait2, time-wait, close, close-wait, last-ack,
    /// closing. Replaces -l/-e/-a
    #[arg(long, value_name = "STATE[,STATE]", value_delimiter = ',', value_parser = parse_state, help_heading = "Which sockets")]
    pub state: Vec<State>,

    /// TCP only
    #[arg(short = 't', long, help_heading = "Which sockets")]
    pub tcp: bool,

    /// UDP only
    #[arg(short = 'u', long, help_heading = "Which sockets")]
    pub udp: bool,

    /// IPv4 only
    #[arg(short = '4', long, help_heading = "Which sockets")]
    pub ipv4: bool,

    /// IPv6 only (IPv4-mapped addresses on IPv6 sockets included)
    #[arg(short = '6', long, help_heading = "Which sockets")]
    pub ipv6: bool,

    /// Ports to show, matched against the local or the remote port: 22, 22,80,443, 8000-9000
    #[arg(long, value_name = "SPEC", help_heading = "Which sockets")]
    pub port: Option<PortSpec>,

    /// Local port: 22, 22,80,443, 8000-9000
    #[arg(
        long,
        visible_alias = "sport",
        value_name = "SPEC",
        help_heading = "Which sockets"
    )]
    pub local_port: Option<PortSpec>,

    /// Remote port: 22, 22,80,443, 8000-9000 (sockets without a peer have none)
    #[arg(
        long,
        visible_alias = "dport",
        value_name = "SPEC",
        help_heading = "Which sockets"
    )]
    pub remote_port: Option<PortSpec>,

    /// Local address in a prefix: 127.0.0.1, 10.0.0.0/8, ::1, fe80::/10; a list is any of
    /// them. An IPv4 prefix also matches IPv4-mapped IPv6 addresses (::ffff:10.0.0.1)
    #[arg(
        long,
        visible_alias = "src",
        value_name = "ADDR[/LEN][,...]",
        value_delimiter = ',',
        help_heading = "Which sockets"
    )]
    pub local: Vec<Prefix>,

    /// Remote address in a prefix, as --local (sockets without a peer have none)
    #[arg(
        long,
        visible_alias = "dst",
        value_name = "ADDR[/LEN][,...]",
        value_delimiter = ',',
        help_heading = "Which sockets"
    )]
    pub remote: Vec<Prefix>,

    /// Sockets held by these processes
    #[arg(
        long,
        value_name = "PID[,PID]",
        value_delimiter = ',',
        help_heading = "Which sockets"
    )]
    pub pid: Vec<u32>,

    /// Sockets held by a process whose name contains NAME (case-insensitive)
    #[arg(long, value_name = "NAME", help_heading = "Which sockets")]
    pub process: Option<String>,

    /// Sockets created by this user (name or uid)
    #[arg(long, value_name = "NAME|UID", help_heading = "Which sockets")]
    pub user: Option<String>,

    /// Local port in an IANA range (well-known 0-1023, registered 1024-49151, dynamic
    /// 49152-65535) or in this host's ephemeral range (net.ipv4.ip_local_port_range)
    #[arg(long, value_enum, help_heading = "Which sockets")]
    pub range: Option<RangeFilter>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Ports matched against the local or the remote port (22, 22,80,443, 8000-9000), or one
    /// end matched against the local or the remote end (127.0.0.1:8080, [::1]:8080,
    /// [fe80::1%eth0]:53, :8080, 10.0.0.5)
    #[arg(value_name = "PORTS|ENDPOINT")]
    pub selector: Option<Selector>,

    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub scan: ScanArgs,

    #[command(flatten)]
    pub numeric: NumericArg,

    /// Accepted for ss/netstat habits; owners are always shown
    #[arg(short = 'p', long = "processes", hide = true)]
    pub processes: bool,

    /// The summary instead of the listing, as `ss -s` and `netstat -s`: `portstat summary`
    #[arg(short = 's', long = "summary", help_heading = "Output")]
    pub summary: bool,

    /// Order of rows [default: listeners first, then by port]
    #[arg(long, value_enum, help_heading = "Output")]
    pub sort: Option<SortKey>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table, conflicts_with = "json", help_heading = "Output")]
    pub format: Format,

    /// Same as --format json
    #[command(flatten)]
    pub json: JsonArg,

    /// Also read the firewall (needs root): whether each listener is reachable from beyond
    /// this host, and where published ports are forwarded (as audit does)
    #[arg(long, help_heading = "Output", conflicts_with = "proc_net")]
    pub firewall: bool,

    /// Queues and TCP internals, as `ss -i`: RECV-Q and SEND-Q columns, and round-trip time,
    /// congestion window, bytes acknowledged, received and sent (netlink backend)
    #[arg(short = 'i', long, help_heading = "Output")]
    pub info: bool,

    /// Timers, as `ss -o`: which timer runs (on, keepalive, timewait, persist), time left,
    /// retransmissions
    #[arg(short = 'o', long, help_heading = "Output")]
    pub timers: bool,

    /// Socket memory, as `ss -m`: receive and send buffers and what they hold (netlink
    /// backend)
    #[arg(short = 'm', long, help_heading = "Output")]
    pub memory: bool,

    /// Read recorded tables (files tcp, tcp6, udp, udp6) from DIR instead of /proc/net
    #[arg(long, value_name = "DIR", hide = true)]
    pub proc_net: Option<PathBuf>,
}

impl ListArgs {
    pub fn extensions(&self) -> Extensions {
        Extensions {
            info: self.info,
            timers: self.timers,
            memory: self.memory,
        }
    }

    pub fn format(&self) -> Format {
        if self.json.json {
            Format::Json
        } else {
            self.format
        }
    }
}

impl FilterArgs {
    /// The query these options ask; ports the listing's argument names stand in for `--port`
    /// when it is absent, an endpoint it names is one more filter. A user name is resolved
    /// through `user_id`.
    pub fn query(
        &self,
        selector: Option<&Selector>,
        user_id: impl Fn(&str) -> Option<u32>,
    ) -> Result<Query, UsageError> {
        let (ports, endpoint) = match selector {
            Some(Selector::Ports(ports)) => (Some(ports), None),
            Some(Selector::Endpoint(endpoint)) => (None, Some(*endpoint)),
            None => (None, None),
        };
        let uid = match self.user.as_deref() {
            None => None,
            Some(user) => Some(match user.parse::<u32>() {
                Ok(uid) => uid,
                Err(_) => {
                    user_id(user).ok_or_else(|| UsageError(format!("no such user: {user:?}")))?
                }
            }),
        };
        Ok(Query {
            states: self.states(),
            protos: self.protos(),
            families: self.families(),
            ports: self.port.clone().or_else(|| ports.cloned()),
            local_ports: self.local_port.clone(),
            remote_ports: self.remote_port.clone(),
            local_addresses: self.local.clone(),
            remote_addresses: self.remote.clone(),
            endpoint,
            endpoint_scopes: Vec::new(),
            pids: self.pid.clone(),
            process: self.process.as_ref().map(|name| name.to_lowercase()),
            uid,
            range: self.range,
            extensions: Extensions::NONE,
        })
    }

    pub fn states(&self) -> Vec<State> {
        StateSelection {
            listening: self.listening,
            established: self.established,
            all: self.all,
            states: self.state.clone(),
        }
        .resolve()
    }

    pub fn protos(&self) -> Vec<Proto> {
        let mut protos = Vec::new();
        if self.tcp {
            protos.push(Proto::Tcp);
        }
        if self.udp {
            protos.push(Proto::Udp);
        }
        protos
    }

    pub fn families(&self) -> Vec<Family> {
        let mut families = Vec::new();
        if self.ipv4 {
            families.push(Family::Ipv4);
        }
        if self.ipv6 {
            families.push(Family::Ipv6);
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ss_style_bundled_flags_parse() {
        let cli = Cli::try_parse_from(["portstat", "-tulpn"]).expect("-tulpn parses");
        let filters = &cli.list.filters;
        assert!(filters.tcp && filters.udp && filters.listening && cli.list.numeric.numeric);
        assert_eq!(filters.states(), [State::Listen, State::Unconn]);
        let cli = Cli::try_parse_from(["portstat", "-tanp"]).expect("-tanp parses");
        assert!(cli.list.filters.all && cli.list.filters.states().is_empty());
    }

    #[test]
    fn ss_style_extension_flags_bundle() {
        let cli = Cli::try_parse_from(["portstat", "-tuanpi"]).expect("-tuanpi parses");
        let list = &cli.list;
        assert!(list.filters.tcp && list.filters.udp && list.filters.all && list.numeric.numeric);
        assert_eq!(
            list.extensions(),
            Extensions {
                info: true,
                ..Extensions::NONE
            }
        );
        let cli = Cli::try_parse_from(["portstat", "-tno"]).expect("-tno parses");
        assert!(cli.list.timers && !cli.list.info && !cli.list.memory);
        let cli = Cli::try_parse_from(["portstat", "-tm"]).expect("-tm parses");
        assert!(cli.list.memory && cli.list.filters.tcp);
        let cli = Cli::try_parse_from(["portstat", "-l", "--info", "--timers", "--memory"])
            .expect("long forms parse");
        assert!(cli.list.extensions().info && cli.list.extensions().timers);
        assert!(cli.list.extensions().memory);
        assert_eq!(
            Cli::try_parse_from(["portstat"]).unwrap().list.extensions(),
            Extensions::NONE
        );
    }

    #[test]
    fn bare_port_argument_is_a_port_filter() {
        let cli = Cli::try_parse_from(["portstat", "8000-9000"]).expect("parses");
        let query = cli
            .list
            .filters
            .query(cli.list.selector.as_ref(), |_| None)
            .expect("query");
        assert!(query.ports.is_some_and(|p| p.contains(8080)));
    }
}
