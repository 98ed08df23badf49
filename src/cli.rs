//! The command line. Help text here is the user's first documentation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::Backend;
use crate::filter::{PortSpec, RangeFilter, StateSelection, parse_state};
use crate::model::{Family, Proto, State};
use crate::render::Format;
use crate::who::target::Target;

const EXAMPLES: &str = "\
Examples:
  portstat                   listeners and established connections, with owners
  portstat -l                what is listening
  portstat 5432              everything on port 5432 (local or remote)
  portstat -tulpn            the ss/netstat habit works: TCP+UDP listeners, numeric
  portstat -a --state time-wait --port 8000-9000
  portstat --process nginx --json
  portstat -l --format csv > listeners.csv
  portstat who 8080          who holds 8080, and could a server bind it now?";

const WHO_EXAMPLES: &str = "\
Examples:
  portstat who 8080               TCP port 8080 on the IPv4 wildcard (what `listen 8080` binds)
  portstat who 127.0.0.1:8080     a specific address
  portstat who [::]:443           the IPv6 wildcard (dual-stack unless bindv6only)
  portstat who 53/udp
  portstat who 8080 -q && start-server
  portstat why 80 --connect --json

Exit status: 0 when a server could bind now, 1 when it could not, 2 for bad usage.";

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

    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Who holds a port, and could a new server bind it now? (alias: why)
    ///
    /// Lists every socket on the port (listeners with their owners, connections by state,
    /// TIME_WAIT with time left), then says whether a server could bind the address and port
    /// now and, if not, why, in a sentence to act on. A real test bind (with and without
    /// SO_REUSEADDR, released at once, never listened on) confirms the verdict.
    #[command(visible_alias = "why", after_help = WHO_EXAMPLES)]
    Who(WhoArgs),
}

#[derive(Debug, Args)]
pub struct WhoArgs {
    /// PORT, PORT/udp, :PORT, ADDRESS:PORT or [IPv6]:PORT; TCP unless /udp is given
    #[arg(value_name = "TARGET")]
    pub target: Target,

    /// Skip the test bind: the verdict then rests on the socket tables alone
    #[arg(long)]
    pub no_bind: bool,

    /// Also try a TCP connection (on loopback for a wildcard target), like `nc -z`
    #[arg(long)]
    pub connect: bool,

    /// The same facts and verdict as one JSON object (see README)
    #[arg(long)]
    pub json: bool,

    /// Print nothing; only the exit status answers
    #[arg(short, long)]
    pub quiet: bool,

    /// Which reader of the kernel's socket tables to use
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Ports to show, matched against the local or the remote port: 22, 22,80,443, 8000-9000
    #[arg(value_name = "PORTS")]
    pub ports_positional: Option<PortSpec>,

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

    /// Same as the positional PORTS
    #[arg(long, value_name = "SPEC", help_heading = "Which sockets")]
    pub port: Option<PortSpec>,

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

    /// Numeric: no service or user names (and faster)
    #[arg(short = 'n', long, help_heading = "Output")]
    pub numeric: bool,

    /// Accepted for ss/netstat habits; owners are always shown
    #[arg(short = 'p', long = "processes", hide = true)]
    pub processes: bool,

    /// Order of rows [default: listeners first, then by port]
    #[arg(long, value_enum, help_heading = "Output")]
    pub sort: Option<SortKey>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table, help_heading = "Output")]
    pub format: Format,

    /// Same as --format json
    #[arg(long, conflicts_with = "format", help_heading = "Output")]
    pub json: bool,

    /// Which reader of the kernel's socket tables to use
    #[arg(long, value_enum, default_value_t = Backend::Auto, help_heading = "Output")]
    pub backend: Backend,

    /// Read recorded tables (files tcp, tcp6, udp, udp6) from DIR instead of /proc/net
    #[arg(long, value_name = "DIR", hide = true)]
    pub proc_net: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Port,
    Proto,
    State,
    Pid,
    Process,
    User,
}

impl ListArgs {
    pub fn format(&self) -> Format {
        if self.json { Format::Json } else { self.format }
    }

    pub fn ports(&self) -> Option<PortSpec> {
        self.port.clone().or_else(|| self.ports_positional.clone())
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
        assert!(cli.list.tcp && cli.list.udp && cli.list.listening && cli.list.numeric);
        assert_eq!(cli.list.states(), [State::Listen, State::Unconn]);
        let cli = Cli::try_parse_from(["portstat", "-tanp"]).expect("-tanp parses");
        assert!(cli.list.all && cli.list.states().is_empty());
    }

    #[test]
    fn bare_port_argument_is_a_port_filter() {
        let cli = Cli::try_parse_from(["portstat", "8000-9000"]).expect("parses");
        assert!(cli.list.ports().is_some_and(|p| p.contains(8080)));
    }
}
