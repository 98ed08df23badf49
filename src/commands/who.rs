//! `portstat who PORT` (alias `why`): who holds a port, and could a new server bind it now?

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::scan::{self, Names, Servers};
use super::{Context, Outcome};
use crate::cli::WhoArgs;
use crate::core::cgroup;
use crate::core::error::UsageError;
use crate::core::firewall::Ruleset;
use crate::core::firewall::eval::Reach;
use crate::core::firewall::judge::{Judge, Network};
use crate::core::model::{Backend, Entry, Namespace, Source};
use crate::core::query::{NetnsSelection, PortSpec, Query};
use crate::core::target::Target;
use crate::core::verdict::{self, BindOutcome, BindTest, ConnectTest, HostFacts};
use crate::os::Os;
use crate::render::who::{self, Published, WhoReport};

/// How long `--connect` waits for an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub fn run(args: &WhoArgs, context: &mut Context) -> Result<Outcome> {
    let os = context.os;
    let target = args.target;
    let query = Query {
        protos: vec![target.proto],
        local_ports: Some(PortSpec::from(target.port)),
        ..Query::default()
    };
    let names = Names {
        services: Some(context.services()),
        users: true,
    };
    let netns = args.scan.netns();
    let (target, namespace) = resolve(os, target, &netns)?;
    // Every holder of a listener matters here (a shared socket changes the verdict): the walk
    // over the processes is complete, as for every command.
    // The firewall's tools take milliseconds to start and dump: they run while the scan does.
    let (scan, ruleset) = super::alongside(
        || scan::scan(os, &query, args.scan.backend, &Source::Live, &netns, names),
        || (!args.quiet).then(|| os.firewall(namespace.as_ref())),
    );
    let scan = scan?;
    let entries = scan.entries;

    let managers = managers(os, &entries);

    let facts = os.host_facts(namespace.as_ref())?;
    // The scan read the host's own settings; a namespace has its own port range.
    let mut warnings = scan.warnings;
    for warning in &facts.warnings {
        if !warnings.contains(warning) {
            warnings.push(warning.clone());
        }
    }
    let test =
        (!args.no_bind).then(|| test_bind(os, namespace.as_ref(), &target, &entries, &facts));
    let connect = args
        .connect
        .then(|| test_connect(os, namespace.as_ref(), &target));
    let verdict = verdict::decide(&target, &entries, &facts, &managers, test.as_ref());

    if !args.quiet {
        let report = WhoReport::new(
            &target,
            &entries,
            &facts,
            &managers,
            context.services(),
            &scan::zones(os, &netns, &entries),
            &verdict,
            test.as_ref(),
            connect.as_ref(),
            &warnings,
        );
        let mut report = report;
        if let Some(mode) = args.probe {
            let listening: Vec<(&Entry, Option<&Namespace>)> = entries
                .iter()
                .filter(|entry| entry.socket.state.is_listening())
                .map(|entry| (entry, namespace.as_ref()))
                .collect();
            let probes = super::probe::listeners(os, &listening, mode);
            for (listener, probe) in report.listeners.iter_mut().zip(probes) {
                listener.probe = probe;
            }
        }
        let (firewall, published) = firewall(
            context,
            args.scan.backend,
            namespace.as_ref(),
            ruleset.unwrap_or_else(|| Err("not read".into())),
            &target,
            &facts,
            &entries,
        );
        report.firewall = firewall;
        report.published = published;
        let output = &mut context.output;
        if args.json.json {
            output.json(&report)?;
        } else {
            who::text(&report, &output.style, output.out)?;
        }
        output.warnings(&warnings)?;
    }
    Ok(if verdict.can_bind {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

/// The namespace a `--netns` selection names (`None`: portstat's own), and the target with its
/// zone resolved to that namespace's interface index.
pub(super) fn resolve(
    os: &dyn Os,
    target: Target,
    netns: &NetnsSelection,
) -> Result<(Target, Option<Namespace>)> {
    // The sysctls, the test bind and the connection all belong to the namespace asked about.
    let namespace: Option<Namespace> = match netns {
        NetnsSelection::Own => None,
        NetnsSelection::All => {
            return Err(UsageError(
                "who asks about one network namespace: give --netns a pid, a name or a path".into(),
            )
            .into());
        }
        one => os
            .namespaces(one)?
            .0
            .into_iter()
            .next()
            .filter(|ns| !ns.own),
    };
    // A zone names an interface of the namespace asked about; its index is the scope id the
    // test bind and connect need.
    let target = match target.zone {
        Some(_) => target
            .resolve(&os.interface_names(namespace.as_ref())?)
            .map_err(UsageError)?,
        None => target,
    };
    Ok((target, namespace))
}

/// What manages each process holding a listener (a systemd unit, a container).
pub(super) fn managers(os: &dyn Os, entries: &[Entry]) -> HashMap<u32, cgroup::Manager> {
    entries
        .iter()
        .filter(|entry| entry.socket.state.is_listening())
        .flat_map(|entry| entry.processes.iter().map(|p| p.pid))
        .map(|pid| {
            let manager = os.cgroup(pid).map(|text| cgroup::parse(&text));
            (pid, manager.unwrap_or_default())
        })
        .collect()
}

/// The firewall's verdict on new connections to the target from beyond the host, and the
/// forwards of its port with what serves them.
fn firewall(
    context: &Context,
    backend: Backend,
    namespace: Option<&Namespace>,
    ruleset: Result<Ruleset, String>,
    target: &Target,
    facts: &HostFacts,
    entries: &[Entry],
) -> (Option<Reach>, Vec<Published>) {
    let os = context.os;
    let addresses = os.interfaces(namespace).unwrap_or_default();
    let network = Network::of(&addresses).with_forwarding(facts.forwarding);
    let judge = Judge::new(&ruleset, &network);
    let dual_stack = target.address.is_ipv6() && !facts.bindv6only;
    let reach = judge.listener(target.proto, target.address, target.port, dual_stack);
    let entries: Vec<&Entry> = entries.iter().collect();
    let published = scan::published_ports(
        os,
        context.services(),
        backend,
        &judge,
        &entries,
        namespace,
        &mut Servers::default(),
    )
    .into_iter()
    .filter(|port| {
        port.forward.proto == target.proto && port.forward.host_ports.contains(target.port)
    })
    .map(|port| {
        let mut forward = Arc::unwrap_or_clone(port.target);
        forward.to_port = forward
            .to_port
            .saturating_add(target.port - port.forward.host_ports.first);
        Published {
            target: forward,
            firewall: port.reach,
            processes: port.processes,
        }
    })
    .collect();
    (reach, published)
}

/// A server's two usual ways to bind: without SO_REUSEADDR, then with it where that is safe
/// (never beside a live UDP socket, whose datagrams it could take: see
/// `verdict::may_test_with_reuseaddr`).
fn test_bind(
    os: &dyn Os,
    netns: Option<&Namespace>,
    target: &Target,
    entries: &[Entry],
    facts: &HostFacts,
) -> BindTest {
    let address = target.socket_address();
    let without_reuseaddr = os.test_bind(netns, target.proto, address, false);
    let with_reuseaddr =
        if verdict::may_test_with_reuseaddr(target, entries, facts, &without_reuseaddr) {
            os.test_bind(netns, target.proto, address, true)
        } else {
            BindOutcome::Skipped
        };
    BindTest {
        address: target.address_text(),
        without_reuseaddr,
        with_reuseaddr,
    }
}

/// A wildcard target is tried on loopback of its family: the wildcard itself is not an address
/// one can connect to.
fn test_connect(os: &dyn Os, netns: Option<&Namespace>, target: &Target) -> ConnectTest {
    let host = match target.address {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let (address, shown) = if host == target.address {
        (target.socket_address(), target.address_text())
    } else {
        let address = SocketAddr::new(host, target.port);
        (address, address.to_string())
    };
    let (outcome, took) = os.test_connect(netns, address, CONNECT_TIMEOUT);
    ConnectTest {
        address: shown,
        outcome,
        millis: took.as_secs_f64() * 1000.0,
    }
}
