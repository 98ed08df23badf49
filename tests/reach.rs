//! End-to-end: portstat's firewall verdicts against the ground truth. Each test loads a firewall
//! into the server namespace of a [`Lab`], asks `portstat audit --json` and `portstat who`
//! there, and compares the verdict with real connections from the client namespace, from two
//! sources (10.231.0.2 and 10.231.0.3). Published ports come from real rootful podman
//! ([`Podman`]), so the forward is netavark's own DNAT, and from real dockerd 20.10
//! ([`Docker`]), with and without its userland proxy. Root only.
//!
//! The JSON is read through the small helpers below, so the field names are in one place:
//! each listener of `audit --json` has `"firewall": {"verdict", "sources", "rule": {"family",
//! "table", "chain", "handle", "text"} | null}`; a published port is an extra listener with
//! `"forward": {"to_address", "to_port", "netns", "container", "runtime"}`.
// These tests drive real namespaces, firewalls and containers.

use std::net::IpAddr;

use serde_json::Value;

use crate::common::*;
use crate::lab::*;

// ----- reading portstat's answers -----

/// `portstat audit --json --fail-on never` in the lab's server namespace.
fn audit(lab: &Lab) -> Value {
    let output = lab
        .portstat(&["audit", "--json", "--fail-on", "never"])
        .output()
        .expect("portstat runs");
    assert!(
        output.status.success(),
        "portstat audit: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("audit prints JSON")
}

fn listeners(report: &Value) -> &Vec<Value> {
    report["listeners"]
        .as_array()
        .expect("listeners is an array")
}

fn is_forward(listener: &Value) -> bool {
    !listener["forward"].is_null()
}

/// The socket listening on `port` (TCP), not a forward.
fn listener_on(report: &Value, port: u16) -> &Value {
    listeners(report)
        .iter()
        .find(|l| l["port"] == port && l["proto"] == "tcp" && !is_forward(l))
        .unwrap_or_else(|| panic!("no listener on {port} in {report:#}"))
}

/// The published port `port`: a forward to a container.
fn forward_on(report: &Value, port: u16) -> &Value {
    listeners(report)
        .iter()
        .find(|l| l["port"] == port && is_forward(l))
        .unwrap_or_else(|| panic!("no forward on {port} in {report:#}"))
}

fn verdict(listener: &Value) -> &str {
    listener["firewall"]["verdict"]
        .as_str()
        .unwrap_or_else(|| panic!("no firewall verdict in {listener:#}"))
}

fn sources(listener: &Value) -> Vec<&str> {
    listener["firewall"]["sources"]
        .as_array()
        .unwrap_or_else(|| panic!("no firewall sources in {listener:#}"))
        .iter()
        .map(|s| s.as_str().expect("a source is a string"))
        .collect()
}

/// The deciding rule's field (`family`, `table`, `chain`, `handle`, `text`).
fn rule_field<'a>(listener: &'a Value, field: &str) -> &'a Value {
    let rule = &listener["firewall"]["rule"];
    assert!(rule.is_object(), "no deciding rule in {listener:#}");
    &rule[field]
}

fn rule_text(listener: &Value) -> &str {
    rule_field(listener, "text")
        .as_str()
        .expect("the rule's text is a string")
}

fn forward_field<'a>(listener: &'a Value, field: &str) -> &'a Value {
    &listener["forward"][field]
}

/// `portstat who PORT` in the server namespace: what it prints.
fn who(lab: &Lab, port: u16) -> String {
    let output = lab
        .portstat(&["who", &port.to_string()])
        .output()
        .expect("portstat runs");
    let code = output.status.code();
    // 1 when the port is taken, as it is in every test here.
    assert!(
        matches!(code, Some(0 | 1)),
        "portstat who: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// who's `Firewall: ` line.
fn firewall_line(text: &str) -> &str {
    text.lines()
        .find(|line| line.starts_with("Firewall: "))
        .unwrap_or_else(|| panic!("no Firewall: line in\n{text}"))
}

// ----- the ground truth -----

/// Whether a connection to `port` on the server is established from each client address.
struct Truth {
    from_client: bool,
    from_other_client: bool,
}

fn measure(lab: &Lab, port: u16) -> Truth {
    Truth {
        from_client: lab.connects(CLIENT, addr(SERVER, port)),
        from_other_client: lab.connects(OTHER_CLIENT, addr(SERVER, port)),
    }
}

/// The verdict the ground truth calls for.
fn verdict_of(truth: &Truth) -> &'static str {
    match (truth.from_client, truth.from_other_client) {
        (true, true) => "open",
        (false, false) => "blocked",
        _ => "restricted",
    }
}

/// portstat's verdict on `listener` is `expected`, and the measured truth agrees: a test whose
/// firewall does not do what it says fails here, not in portstat.
fn assert_verdict(listener: &Value, expected: &str, truth: &Truth) {
    assert_eq!(
        verdict_of(truth),
        expected,
        "the lab's firewall does not do what the test says"
    );
    assert_eq!(verdict(listener), expected, "{listener:#}");
}

fn http_answers(lab: &Lab, source: IpAddr, port: u16) -> bool {
    lab.http_get(source, addr(SERVER, port))
        .is_some_and(|page| page.contains(INDEX_MARKER))
}

// ----- plain listeners -----

#[test]
#[ignore = "needs root"]
fn root_reach_no_firewall_is_open() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    let truth = measure(&lab, 5000);

    let report = audit(&lab);
    let web = listener_on(&report, 5000);
    assert_verdict(web, "open", &truth);
    assert_eq!(web["firewall"]["rule"], Value::Null, "{web:#}");
    let text = who(&lab, 5000);
    assert!(firewall_line(&text).contains("open"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn root_reach_nft_drop_is_blocked() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    let _other = lab.listen(Proto::Tcp, addr(SERVER, 5001));
    lab.nft(DROP_5000_NFT);

    let report = audit(&lab);
    let web = listener_on(&report, 5000);
    assert_verdict(web, "blocked", &measure(&lab, 5000));
    assert_eq!(rule_field(web, "family"), "inet");
    assert_eq!(rule_field(web, "table"), "pstest");
    assert_eq!(rule_field(web, "chain"), "input");
    assert!(rule_field(web, "handle").is_u64(), "{web:#}");
    assert!(rule_text(web).contains("tcp dport 5000 drop"), "{web:#}");
    // The rule is about 5000 only.
    assert_verdict(listener_on(&report, 5001), "open", &measure(&lab, 5001));
    let text = who(&lab, 5000);
    assert!(firewall_line(&text).contains("blocked"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn root_reach_nft_accept_from_one_source_is_restricted() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(ONLY_FROM_OTHER_CLIENT_NFT);

    let report = audit(&lab);
    let web = listener_on(&report, 5000);
    assert_verdict(web, "restricted", &measure(&lab, 5000));
    assert_eq!(sources(web), ["10.231.0.3/32"]);
    assert_eq!(rule_field(web, "chain"), "input");
    assert!(
        rule_text(web).contains("ip saddr 10.231.0.3 accept"),
        "{web:#}"
    );
    let text = who(&lab, 5000);
    let line = firewall_line(&text);
    assert!(
        line.contains("restricted") && line.contains("10.231.0.3"),
        "{text}"
    );
}

/// Marks the packets of one client in prerouting, copies the mark to the connection, and
/// accepts by the connection's mark: what netavark's nftables driver does for a published port.
const ACCEPT_BY_MARK_NFT: &str = "table inet pstest {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        ip saddr 10.231.0.3 meta mark set meta mark | 0x10
        ct mark set meta mark & 0x10
    }
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        ct mark & 0x10 == 0x10 tcp dport 5000 accept
    }
}
";

#[test]
#[ignore = "needs root"]
fn root_reach_nft_accept_by_a_mark_set_for_one_source_is_restricted() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(ACCEPT_BY_MARK_NFT);

    let report = audit(&lab);
    let web = listener_on(&report, 5000);
    assert_verdict(web, "restricted", &measure(&lab, 5000));
    assert_eq!(sources(web), ["10.231.0.3/32"], "{web:#}");
    assert_eq!(rule_field(web, "chain"), "input");
    assert!(rule_text(web).starts_with("ct mark & "), "{web:#}");
}

/// The iptables variants of the two rulesets above; `legacy` picks the backend.
fn iptables_case(legacy: bool) {
    {
        let lab = Lab::new();
        let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
        lab.iptables_restore(DROP_5000_IPTABLES, legacy, false);
        let report = audit(&lab);
        let web = listener_on(&report, 5000);
        assert_verdict(web, "blocked", &measure(&lab, 5000));
        assert_eq!(rule_field(web, "family"), "ip");
        assert_eq!(rule_field(web, "table"), "filter");
        assert_eq!(rule_field(web, "chain"), "INPUT");
        assert_eq!(rule_field(web, "handle"), 1);
        assert_eq!(
            rule_text(web),
            "-A INPUT -p tcp -m tcp --dport 5000 -j DROP"
        );
    }
    {
        let lab = Lab::new();
        let _web = lab.listen(Proto::Tcp, addr(SERVER, 5000));
        lab.iptables_restore(ONLY_FROM_OTHER_CLIENT_IPTABLES, legacy, false);
        let report = audit(&lab);
        let web = listener_on(&report, 5000);
        assert_verdict(web, "restricted", &measure(&lab, 5000));
        assert_eq!(sources(web), ["10.231.0.3/32"]);
        assert_eq!(rule_text(web), "-A INPUT -s 10.231.0.3/32 -j ACCEPT");
    }
}

#[test]
#[ignore = "needs root"]
fn root_reach_iptables_nft_blocked_and_restricted() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    iptables_case(false);
}

#[test]
#[ignore = "needs root"]
fn root_reach_iptables_legacy_blocked_and_restricted() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    iptables_case(true);
}

// ----- a port published by podman -----

#[test]
#[ignore = "needs root"]
fn root_reach_podman_published_port_is_a_forward_to_the_container() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let podman = Podman::start(&lab);
    assert!(http_answers(&lab, CLIENT, 8080));

    let report = audit(&lab);
    let published = forward_on(&report, 8080);
    assert_eq!(
        forward_field(published, "to_address"),
        podman.address().to_string().as_str()
    );
    assert!(
        podman.address().to_string().starts_with("10.88."),
        "podman's default network"
    );
    assert_eq!(forward_field(published, "to_port"), 80);
    assert_eq!(forward_field(published, "container"), podman.name());
    assert_eq!(forward_field(published, "runtime"), "podman");
    assert!(
        !forward_field(published, "netns").is_null(),
        "{published:#}"
    );
    assert_verdict(published, "open", &measure(&lab, 8080));

    let text = who(&lab, 8080);
    assert!(firewall_line(&text).contains("open"), "{text}");
    assert!(text.contains(podman.name()), "{text}");
    assert!(
        text.contains(&format!("podman stop {}", podman.name())),
        "{text}"
    );
    // conmon holds the host-side socket, but killing it is no way to free the port.
    let conmon = podman.conmon_pid().to_string();
    assert!(!text.contains(&format!("kill {conmon}")), "{text}");
    assert!(text.contains("served there by busybox"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn root_reach_an_input_drop_does_not_block_a_published_port() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let podman = Podman::start(&lab);
    let _plain = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(INPUT_POLICY_DROP_NFT);
    // The DNAT comes first: the published port is forwarded, never delivered locally.
    assert!(http_answers(&lab, CLIENT, 8080));

    let report = audit(&lab);
    assert_verdict(forward_on(&report, 8080), "open", &measure(&lab, 8080));
    assert_verdict(listener_on(&report, 5000), "blocked", &measure(&lab, 5000));
    drop(podman);
}

#[test]
#[ignore = "needs root"]
fn root_reach_a_forward_drop_blocks_a_published_port() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let podman = Podman::start(&lab);
    let _plain = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(FORWARD_TO_CONTAINERS_DROP_NFT);

    let report = audit(&lab);
    let published = forward_on(&report, 8080);
    assert_verdict(published, "blocked", &measure(&lab, 8080));
    assert_eq!(rule_field(published, "chain"), "forward");
    assert_verdict(listener_on(&report, 5000), "open", &measure(&lab, 5000));
    let text = who(&lab, 8080);
    assert!(firewall_line(&text).contains("blocked"), "{text}");
    drop(podman);
}

// ----- a port published by real dockerd -----

/// The socket (not a forward) listening on `address`:`port` (TCP), if any.
fn socket_at<'a>(report: &'a Value, address: &str, port: u16) -> Option<&'a Value> {
    listeners(report)
        .iter()
        .find(|l| l["address"] == address && l["port"] == port && !is_forward(l))
}

/// The ground truth of who's `Verdict: cannot bind`: a server binding `0.0.0.0:port` in the
/// server namespace now gets EADDRINUSE.
fn bind_is_refused(lab: &Lab, port: u16) -> bool {
    in_namespace(lab.server_path(), move || {
        matches!(
            std::net::TcpListener::bind(("0.0.0.0", port)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
        )
    })
}

/// What a port published by [`Docker`] looks like to `audit --json`: a forward to the
/// container on docker0 (172.17.0.0/16), port 80, docker's, by docker's DNAT in its nat
/// chain DOCKER, served by the container's busybox in the container's namespace.
fn assert_docker_forward(published: &Value, docker: &Docker) {
    assert_eq!(
        forward_field(published, "to_address"),
        docker.address().to_string().as_str(),
        "{published:#}"
    );
    assert!(
        docker.address().to_string().starts_with("172.17.0."),
        "docker's default bridge"
    );
    assert_eq!(forward_field(published, "to_port"), 80, "{published:#}");
    assert_eq!(
        forward_field(published, "runtime"),
        "docker",
        "{published:#}"
    );
    // The container is known by its cgroup (`/pstest-docker-PID-N/<id>`): docker-proxy's and
    // dockerd's command lines name no container.
    assert_eq!(
        forward_field(published, "container"),
        docker.id(),
        "{published:#}"
    );
    assert_eq!(
        forward_field(published, "netns"),
        format!("docker:{}", &docker.id()[..12]).as_str(),
        "{published:#}"
    );
    let rule = &published["forward"]["rule"];
    assert_eq!(rule["table"], "nat", "{published:#}");
    assert_eq!(rule["chain"], "DOCKER", "{published:#}");
    let dnat = format!(
        "--dport 8080 -j DNAT --to-destination {}:80",
        docker.address()
    );
    assert!(
        rule["text"]
            .as_str()
            .is_some_and(|text| text.contains(&dnat)),
        "{published:#}"
    );
    let server = &published["processes"][0];
    assert_eq!(server["name"], "busybox", "{published:#}");
    assert_eq!(
        server["pid"],
        u64::from(docker.container_pid()),
        "{published:#}"
    );
}

/// `who 8080` for a port docker publishes: the forward, the container behind it, and the
/// advice to stop the container (`docker stop` with its name or id, or how to find it with
/// `docker ps --filter publish=8080`), never to kill what holds the host side (`holders`).
fn assert_docker_who(text: &str, docker: &Docker, holders: &[u32]) {
    assert!(
        text.contains("Published: port 8080 is forwarded to"),
        "{text}"
    );
    assert!(text.contains(&format!("{}:80", docker.address())), "{text}");
    assert!(
        text.contains(&format!(
            "served there by busybox (pid {})",
            docker.container_pid()
        )),
        "{text}"
    );
    let stop_by_name = text.contains(&format!("docker stop {}", docker.name()));
    let stop_by_id = text.contains(&format!("docker stop {}", &docker.id()[..12]));
    let find_and_stop = text.contains("docker ps --filter publish=8080");
    assert!(stop_by_name || stop_by_id || find_and_stop, "{text}");
    for pid in holders {
        assert!(!text.contains(&format!("kill {pid}")), "{text}");
    }
    assert!(firewall_line(text).contains("open"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn root_reach_docker_published_port_is_a_forward_to_the_container() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let docker = Docker::start(&lab, true);
    assert!(http_answers(&lab, CLIENT, 8080));
    assert_eq!(
        docker.proxy_pids().len(),
        2,
        "docker-proxy for 0.0.0.0 and [::]"
    );

    let report = audit(&lab);
    let published = forward_on(&report, 8080);
    assert_docker_forward(published, &docker);
    assert_verdict(published, "open", &measure(&lab, 8080));
    // Docker 20.10 publishes IPv6 through docker-proxy on [::]:8080 alone (no ip6 DNAT):
    // delivered locally, and open with no firewall.
    let v6 = socket_at(&report, "::", 8080).unwrap_or_else(|| panic!("no [::]:8080 {report:#}"));
    assert_eq!(v6["processes"][0]["name"], "docker-proxy", "{v6:#}");
    assert!(lab.connects(CLIENT_V6, addr(SERVER_V6, 8080)));
    assert!(
        lab.http_get(CLIENT_V6, addr(SERVER_V6, 8080))
            .is_some_and(|page| page.contains(INDEX_MARKER)),
        "docker-proxy relays IPv6 to the container"
    );
    assert_eq!(verdict(v6), "open", "{v6:#}");

    let text = who(&lab, 8080);
    assert_docker_who(&text, &docker, docker.proxy_pids());
    // docker-proxy holds 0.0.0.0:8080 (and [::]:8080): nothing else can bind it.
    assert!(bind_is_refused(&lab, 8080));
    assert!(text.contains("Verdict: cannot bind"), "{text}");
    assert!(text.contains("docker-proxy (pid"), "{text}");

    // docker-proxy's command line names no container: `--stop` asks this dockerd (the
    // client's environment, as the test's docker client has it) which one publishes 8080.
    let mut stop = lab.portstat(&["who", "8080", "--stop", "--yes", "--timeout", "20s"]);
    for (key, value) in docker.command().get_envs() {
        match value {
            Some(value) => stop.env(key, value),
            None => stop.env_remove(key),
        };
    }
    let output = stop.output().expect("portstat runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains(&format!("Ran docker stop {}.", docker.name())),
        "{said}"
    );
    assert!(said.contains("is free now"), "{said}");
}

#[test]
#[ignore = "needs root"]
fn root_reach_docker_without_userland_proxy_is_a_forward_held_by_dockerd() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let docker = Docker::start(&lab, false);
    assert!(http_answers(&lab, CLIENT, 8080));
    assert!(docker.proxy_pids().is_empty(), "no docker-proxy");

    let report = audit(&lab);
    let published = forward_on(&report, 8080);
    assert_docker_forward(published, &docker);
    assert_verdict(published, "open", &measure(&lab, 8080));
    // Without its proxy dockerd 20.10 still holds 0.0.0.0:8080 itself, so no other server
    // takes the port; [::]:8080 is neither held nor DNAT'd (no --ip6tables): refused.
    let held = socket_at(&report, "0.0.0.0", 8080)
        .unwrap_or_else(|| panic!("no 0.0.0.0:8080 socket in {report:#}"));
    assert_eq!(held["processes"][0]["name"], "dockerd", "{held:#}");
    assert_eq!(
        held["processes"][0]["pid"],
        u64::from(docker.dockerd_pid()),
        "{held:#}"
    );
    assert!(socket_at(&report, "::", 8080).is_none(), "{report:#}");
    assert!(!lab.connects(CLIENT_V6, addr(SERVER_V6, 8080)));

    let text = who(&lab, 8080);
    assert_docker_who(&text, &docker, &[docker.dockerd_pid()]);
    assert!(bind_is_refused(&lab, 8080));
    assert!(text.contains("Verdict: cannot bind"), "{text}");
    assert!(
        text.contains(&format!("dockerd (pid {}", docker.dockerd_pid())),
        "{text}"
    );
    assert!(!text.contains("systemctl stop"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn root_reach_an_input_drop_does_not_block_a_docker_published_port() {
    assert!(is_root(), "run as root");
    let _serial = serial();
    let lab = Lab::new();
    let docker = Docker::start(&lab, true);
    let _plain = lab.listen(Proto::Tcp, addr(SERVER, 5000));
    lab.nft(INPUT_POLICY_DROP_NFT);
    // docker's DNAT comes first: the published port is forwarded, never delivered locally.
    assert!(http_answers(&lab, CLIENT, 8080));

    let report = audit(&lab);
    let published = forward_on(&report, 8080);
    assert_docker_forward(published, &docker);
    assert_verdict(published, "open", &measure(&lab, 8080));
    assert_verdict(listener_on(&report, 5000), "blocked", &measure(&lab, 5000));
    // IPv6 has no DNAT: it is delivered to docker-proxy on [::]:8080, and the input chain
    // drops it.
    let v6 = socket_at(&report, "::", 8080).unwrap_or_else(|| panic!("no [::]:8080 {report:#}"));
    assert!(!lab.connects(CLIENT_V6, addr(SERVER_V6, 8080)));
    assert_eq!(verdict(v6), "blocked", "{v6:#}");

    let text = who(&lab, 8080);
    assert_docker_who(&text, &docker, docker.proxy_pids());
    drop(docker);
}
