//! `--probe` for `audit` and `who`: each TCP listener's plan comes from core (the safety list,
//! the web ports), the OS talks to them all at once, and core says what was heard.

use crate::core::audit::probe_rules;
use crate::core::model::{Entry, Namespace, Proto};
use crate::core::probe::{self, Probe, ProbeMode, ProbeRequest};
use crate::os::Os;

/// The probe of each listener, in order (`None` for UDP, which is never probed). Listeners
/// reached at the same address in the same namespace (SO_REUSEPORT groups) are talked to once.
pub fn listeners(
    os: &dyn Os,
    listeners: &[(&Entry, Option<&Namespace>)],
    mode: ProbeMode,
) -> Vec<Option<Probe>> {
    let mut requests: Vec<ProbeRequest> = Vec::new();
    let mut plans = Vec::new();
    let place: Vec<Option<usize>> = listeners
        .iter()
        .map(|(entry, netns)| {
            if entry.socket.proto != Proto::Tcp {
                return None;
            }
            let address = probe::connect_address(entry.socket.local);
            let netns = netns.cloned();
            if let Some(known) = requests
                .iter()
                .position(|r| r.address == address && r.netns == netns)
            {
                return Some(known);
            }
            let plan = probe_rules::plan(entry.socket.local.port(), &entry.processes, mode);
            requests.push(ProbeRequest {
                netns,
                address,
                send: plan.send,
            });
            plans.push(plan);
            Some(requests.len() - 1)
        })
        .collect();
    if requests.is_empty() {
        return vec![None; listeners.len()];
    }
    let readings = os.probe(&requests);
    let now = os.now();
    let probes: Vec<Probe> = requests
        .iter()
        .zip(&readings)
        .zip(&plans)
        .map(|((request, reading), plan)| {
            probe::classify(request.address, reading, plan.withheld.map(|w| w.id), now)
        })
        .collect();
    place
        .into_iter()
        .map(|index| index.and_then(|i| probes.get(i).cloned()))
        .collect()
}
