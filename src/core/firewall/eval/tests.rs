use std::net::IpAddr;

use super::*;
use crate::core::firewall::{BaseChain, MarkValue};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// `a.b.c.d/len`, `a:b::/len` or a single address.
fn net(text: &str) -> AddressRange {
    match text.split_once('/') {
        Some((address, length)) => {
            AddressRange::prefix(ip(address), length.parse().expect("test prefix length"))
                .expect("test prefix")
        }
        None => AddressRange::single(ip(text)),
    }
}

fn is(test: Test) -> Match {
    Match::is(test)
}

fn not(test: Test) -> Match {
    Match::not(test)
}

fn tcp() -> Match {
    is(Test::L4Proto(vec![6]))
}

fn dport(port: u16) -> Match {
    is(Test::DestinationPort(vec![PortSpan::single(port)]))
}

fn saddr(prefixes: &[&str]) -> Test {
    Test::SourceAddress(prefixes.iter().map(|text| net(text)).collect())
}

fn daddr(prefixes: &[&str]) -> Test {
    Test::DestinationAddress(prefixes.iter().map(|text| net(text)).collect())
}

fn iif(name: &str) -> Test {
    Test::InInterface(vec![name.to_string()])
}

fn oif(name: &str) -> Test {
    Test::OutInterface(vec![name.to_string()])
}

fn ct(states: &[ConnectionState]) -> Match {
    is(Test::ConnectionState(states.to_vec()))
}

fn rule(handle: u64, text: &str, matches: Vec<Match>, action: Action) -> Rule {
    Rule {
        handle,
        text: text.to_string(),
        comment: None,
        matches,
        marks: Vec::new(),
        action,
    }
}

/// A table of one tool: the chains are built through it.
#[derive(Clone, Copy)]
struct Table {
    origin: Origin,
    family: TableFamily,
    name: &'static str,
}

const INET_FILTER: Table = Table {
    origin: Origin::Nftables,
    family: TableFamily::Inet,
    name: "filter",
};

impl Table {
    fn base(
        self,
        name: &str,
        hook: Hook,
        priority: i32,
        kind: ChainKind,
        policy: Policy,
        rules: Vec<Rule>,
    ) -> Chain {
        Chain {
            origin: self.origin,
            family: self.family,
            table: self.name.to_string(),
            name: name.to_string(),
            base: Some(BaseChain {
                hook,
                priority,
                kind,
                policy,
                device: None,
            }),
            rules,
        }
    }

    fn input(self, policy: Policy, rules: Vec<Rule>) -> Chain {
        self.base("input", Hook::Input, 0, ChainKind::Filter, policy, rules)
    }

    fn regular(self, name: &str, rules: Vec<Rule>) -> Chain {
        Chain {
            origin: self.origin,
            family: self.family,
            table: self.name.to_string(),
            name: name.to_string(),
            base: None,
            rules,
        }
    }
}

/// The namespace a question is asked in.
struct Host {
    destinations: Vec<IpAddr>,
    interfaces: Vec<String>,
    local: Vec<IpAddr>,
    networks: Vec<(AddressRange, String)>,
}

impl Host {
    /// One address, 192.0.2.10 on eth0.
    fn v4() -> Host {
        Host {
            destinations: vec![ip("192.0.2.10")],
            interfaces: vec!["eth0".into()],
            local: vec![ip("127.0.0.1"), ip("192.0.2.10")],
            networks: vec![(net("192.0.2.0/24"), "eth0".into())],
        }
    }

    /// 192.0.2.10 on eth0, 198.51.100.10 on eth1.
    fn two_interfaces() -> Host {
        Host {
            destinations: vec![ip("192.0.2.10"), ip("198.51.100.10")],
            interfaces: vec!["eth0".into(), "eth1".into()],
            local: vec![ip("127.0.0.1"), ip("192.0.2.10"), ip("198.51.100.10")],
            networks: vec![
                (net("192.0.2.0/24"), "eth0".into()),
                (net("198.51.100.0/24"), "eth1".into()),
            ],
        }
    }

    /// A wildcard `[::]` listener's view: 192.0.2.10 and 2001:db8::10 on eth0.
    fn dual_stack() -> Host {
        Host {
            destinations: vec![ip("192.0.2.10"), ip("2001:db8::10")],
            interfaces: vec!["eth0".into()],
            local: vec![
                ip("127.0.0.1"),
                ip("::1"),
                ip("192.0.2.10"),
                ip("2001:db8::10"),
            ],
            networks: vec![
                (net("192.0.2.0/24"), "eth0".into()),
                (net("2001:db8::/64"), "eth0".into()),
            ],
        }
    }

    fn question(&self, proto: Proto, port: u16) -> Question<'_> {
        Question {
            proto,
            port,
            destinations: &self.destinations,
            interfaces: &self.interfaces,
            local_addresses: &self.local,
            networks: &self.networks,
        }
    }
}

fn ruleset(chains: Vec<Chain>) -> Ruleset {
    Ruleset {
        chains,
        ..Ruleset::default()
    }
}

fn tcp_reach(chains: Vec<Chain>, host: &Host, port: u16) -> Reach {
    reach_listener(&ruleset(chains), &host.question(Proto::Tcp, port))
}

/// The `ssh` accept of the tests: `tcp dport 22 accept`, handle 2.
fn accept_ssh() -> Rule {
    rule(
        2,
        "tcp dport 22 accept",
        vec![tcp(), dport(22)],
        Action::Accept,
    )
}

fn rule_text(reach: &Reach) -> Option<&str> {
    reach.rule.as_ref().map(|rule| rule.text.as_str())
}

#[test]
fn an_empty_ruleset_is_open_with_no_rule() {
    let reach = tcp_reach(Vec::new(), &Host::v4(), 8080);
    assert_eq!(reach.verdict, Verdict::Open);
    assert_eq!(reach.rule, None);
    assert!(reach.sources.is_empty());
    assert_eq!(reach.reason, None);
}

#[test]
fn policy_drop_lets_only_the_accepted_port_in() {
    let chains = || vec![INET_FILTER.input(Policy::Drop, vec![accept_ssh()])];
    let ssh = tcp_reach(chains(), &Host::v4(), 22);
    assert_eq!(ssh.verdict, Verdict::Open);
    let accept = ssh.rule.expect("the accepting rule");
    assert_eq!(accept.handle, Some(2));
    assert_eq!(accept.chain, "input");
    assert_eq!(accept.family, TableFamily::Inet);

    let redis = tcp_reach(chains(), &Host::v4(), 6379);
    assert_eq!(redis.verdict, Verdict::Blocked);
    let policy = redis.rule.expect("the policy");
    assert_eq!(policy.handle, None);
    assert_eq!(policy.text, "policy drop");
    // UDP 22 isn't what the rule accepts.
    let udp = reach_listener(&ruleset(chains()), &Host::v4().question(Proto::Udp, 22));
    assert_eq!(udp.verdict, Verdict::Blocked);
}

#[test]
fn a_source_prefix_restricts_to_it() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![rule(
            4,
            "ip saddr 10.0.0.0/8 tcp dport 6379 accept",
            vec![is(saddr(&["10.0.0.0/8"])), tcp(), dport(6379)],
            Action::Accept,
        )],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 6379);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["10.0.0.0/8"]);
    assert_eq!(reach.rule.and_then(|rule| rule.handle), Some(4));
}

#[test]
fn adjacent_prefixes_merge_into_one() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![
            rule(
                1,
                "ip saddr { 10.0.0.0/9, 192.168.1.7 } accept",
                vec![is(saddr(&["10.0.0.0/9", "192.168.1.7"]))],
                Action::Accept,
            ),
            rule(
                2,
                "ip saddr { 10.128.0.0/10, 10.192.0.0/10 } accept",
                vec![is(saddr(&["10.128.0.0/10", "10.192.0.0/10"]))],
                Action::Accept,
            ),
        ],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 5432);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["10.0.0.0/8", "192.168.1.7/32"]);
    // Rule 1 lets one address more through than rule 2 does.
    assert_eq!(reach.rule.and_then(|rule| rule.handle), Some(1));
}

#[test]
fn an_interface_accept_restricts_to_the_interface() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![rule(
            3,
            "iifname \"eth1\" accept",
            vec![is(iif("eth1"))],
            Action::Accept,
        )],
    )];
    let reach = tcp_reach(chains, &Host::two_interfaces(), 9000);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["iif eth1"]);
}

#[test]
fn sources_name_prefixes_per_interface_and_everyone_per_interface() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![
            rule(
                1,
                "iifname \"eth1\" accept",
                vec![is(iif("eth1"))],
                Action::Accept,
            ),
            rule(
                2,
                "iifname \"eth0\" ip saddr 10.1.0.0/16 accept",
                vec![is(iif("eth0")), is(saddr(&["10.1.0.0/16"]))],
                Action::Accept,
            ),
        ],
    )];
    let reach = tcp_reach(chains, &Host::two_interfaces(), 9000);
    assert_eq!(reach.verdict, Verdict::Restricted);
    // 10.1.0.0/16 gets in on both interfaces, so it is named once, without an interface.
    assert_eq!(reach.sources, ["10.1.0.0/16", "iif eth1"]);

    let only_eth0 = vec![INET_FILTER.input(
        Policy::Drop,
        vec![rule(
            2,
            "iifname \"eth0\" ip saddr 10.1.0.0/16 accept",
            vec![is(iif("eth0")), is(saddr(&["10.1.0.0/16"]))],
            Action::Accept,
        )],
    )];
    let reach = tcp_reach(only_eth0, &Host::two_interfaces(), 9000);
    assert_eq!(reach.sources, ["10.1.0.0/16 via eth0"]);
}

#[test]
fn destinations_that_differ_are_named() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![rule(
            1,
            "ip daddr 198.51.100.10 accept",
            vec![is(daddr(&["198.51.100.10"]))],
            Action::Accept,
        )],
    )];
    // A wildcard listener on both addresses: only one of them is reachable.
    let host = Host {
        interfaces: vec!["eth0".into()],
        ..Host::two_interfaces()
    };
    let reach = tcp_reach(chains, &host, 9000);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["0.0.0.0/0 to 198.51.100.10"]);
}

#[test]
fn an_accept_ends_only_its_own_base_chain() {
    let other = Table {
        origin: Origin::Nftables,
        family: TableFamily::Ip,
        name: "strict",
    };
    let chains = vec![
        INET_FILTER.input(Policy::Accept, vec![accept_ssh()]),
        other.base(
            "input",
            Hook::Input,
            10,
            ChainKind::Filter,
            Policy::Drop,
            Vec::new(),
        ),
    ];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Blocked);
    let policy = reach.rule.expect("the later chain's policy");
    assert_eq!(
        (policy.table.as_str(), policy.text.as_str()),
        ("strict", "policy drop")
    );
}

#[test]
fn base_chains_run_in_priority_order() {
    let late = Table {
        name: "late",
        ..INET_FILTER
    };
    // Listed first but runs second: its accept never sees the packet that the drop stops.
    let chains = vec![
        late.base(
            "input",
            Hook::Input,
            10,
            ChainKind::Filter,
            Policy::Accept,
            vec![accept_ssh()],
        ),
        INET_FILTER.base(
            "input",
            Hook::Input,
            -10,
            ChainKind::Filter,
            Policy::Accept,
            vec![rule(
                7,
                "tcp dport 22 drop",
                vec![tcp(), dport(22)],
                Action::Drop,
            )],
        ),
    ];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Blocked);
    assert_eq!(rule_text(&reach), Some("tcp dport 22 drop"));
}

#[test]
fn established_accept_does_not_let_a_new_packet_in() {
    let chains = vec![INET_FILTER.input(
        Policy::Accept,
        vec![
            rule(
                1,
                "ct state established,related accept",
                vec![ct(&[
                    ConnectionState::Established,
                    ConnectionState::Related,
                ])],
                Action::Accept,
            ),
            rule(2, "drop", Vec::new(), Action::Drop),
        ],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 443);
    assert_eq!(reach.verdict, Verdict::Blocked);
    assert_eq!(rule_text(&reach), Some("drop"));

    let new_accepted = vec![INET_FILTER.input(
        Policy::Drop,
        vec![rule(
            1,
            "ct state new tcp dport 443 accept",
            vec![ct(&[ConnectionState::New]), tcp(), dport(443)],
            Action::Accept,
        )],
    )];
    assert_eq!(
        tcp_reach(new_accepted, &Host::v4(), 443).verdict,
        Verdict::Open
    );
}

#[test]
fn a_jump_comes_back_at_the_end_of_the_chain() {
    let chains = || {
        vec![
            INET_FILTER.input(
                Policy::Drop,
                vec![rule(
                    1,
                    "jump services",
                    Vec::new(),
                    Action::Jump("services".into()),
                )],
            ),
            INET_FILTER.regular("services", vec![accept_ssh()]),
        ]
    };
    let ssh = tcp_reach(chains(), &Host::v4(), 22);
    assert_eq!(ssh.verdict, Verdict::Open);
    assert_eq!(
        ssh.rule.map(|rule| rule.chain),
        Some("services".to_string())
    );
    // Not accepted there: back in input, on to its policy.
    let other = tcp_reach(chains(), &Host::v4(), 23);
    assert_eq!(other.verdict, Verdict::Blocked);
    assert_eq!(rule_text(&other), Some("policy drop"));
}

#[test]
fn a_return_goes_back_to_the_rule_after_the_jump() {
    let chains = vec![
        INET_FILTER.input(
            Policy::Drop,
            vec![
                rule(
                    1,
                    "jump sources",
                    Vec::new(),
                    Action::Jump("sources".into()),
                ),
                accept_ssh(),
            ],
        ),
        INET_FILTER.regular(
            "sources",
            vec![
                rule(
                    1,
                    "ip saddr 10.0.0.0/8 return",
                    vec![is(saddr(&["10.0.0.0/8"]))],
                    Action::Return,
                ),
                rule(2, "drop", Vec::new(), Action::Drop),
            ],
        ),
    ];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["10.0.0.0/8"]);
    assert_eq!(rule_text(&reach), Some("tcp dport 22 accept"));
}

#[test]
fn a_goto_does_not_come_back() {
    let chains = |action: Action| {
        vec![
            INET_FILTER.input(
                Policy::Accept,
                vec![
                    rule(
                        1,
                        "tcp dport 22 goto/jump check",
                        vec![tcp(), dport(22)],
                        action,
                    ),
                    rule(2, "tcp dport 22 drop", vec![tcp(), dport(22)], Action::Drop),
                ],
            ),
            INET_FILTER.regular(
                "check",
                vec![rule(
                    1,
                    "ip saddr 10.0.0.0/8 drop",
                    vec![is(saddr(&["10.0.0.0/8"]))],
                    Action::Drop,
                )],
            ),
        ]
    };
    // goto: the end of `check` is the end of input, its policy accept; rule 2 is never reached.
    let goto = tcp_reach(chains(Action::Goto("check".into())), &Host::v4(), 22);
    assert_eq!(goto.verdict, Verdict::Restricted);
    assert_eq!(
        goto.sources,
        [
            "0.0.0.0/5",
            "8.0.0.0/7",
            "11.0.0.0/8",
            "12.0.0.0/6",
            "16.0.0.0/4",
            "32.0.0.0/3",
            "64.0.0.0/2",
            "128.0.0.0/1"
        ]
    );
    assert_eq!(rule_text(&goto), Some("policy accept"));
    // jump: back in input, where rule 2 drops the rest.
    let jump = tcp_reach(chains(Action::Jump("check".into())), &Host::v4(), 22);
    assert_eq!(jump.verdict, Verdict::Blocked);
}

#[test]
fn a_return_in_a_base_chain_meets_its_policy() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![
            rule(
                1,
                "tcp dport 22 return",
                vec![tcp(), dport(22)],
                Action::Return,
            ),
            accept_ssh(),
        ],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Blocked);
    assert_eq!(rule_text(&reach), Some("policy drop"));
}

#[test]
fn a_jump_loop_is_unknown() {
    let chains = vec![
        INET_FILTER.input(
            Policy::Drop,
            vec![rule(1, "jump a", Vec::new(), Action::Jump("a".into()))],
        ),
        INET_FILTER.regular(
            "a",
            vec![rule(1, "jump b", Vec::new(), Action::Jump("b".into()))],
        ),
        INET_FILTER.regular(
            "b",
            vec![rule(1, "goto a", Vec::new(), Action::Goto("a".into()))],
        ),
    ];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Unknown);
    assert!(
        reach
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains("loops")),
        "{reach:?}"
    );
    assert_eq!(reach.rule.map(|rule| rule.chain), Some("b".to_string()));
}

#[test]
fn a_jump_to_a_chain_that_wasnt_read_is_unknown() {
    let chains = vec![INET_FILTER.input(
        Policy::Accept,
        vec![rule(
            1,
            "jump missing",
            Vec::new(),
            Action::Jump("missing".into()),
        )],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Unknown);
    assert_eq!(
        reach.reason.as_deref(),
        Some("the rule jumps to chain `missing`, which wasn't read")
    );
}

#[test]
fn an_unknown_match_decides_only_where_it_matters() {
    let marked_drop = || {
        rule(
            5,
            "tcp dport 22 meta mark 0x1 drop",
            vec![tcp(), dport(22), is(Test::Unknown("meta mark 0x1".into()))],
            Action::Drop,
        )
    };
    let chains = || vec![INET_FILTER.input(Policy::Accept, vec![marked_drop()])];
    let ssh = tcp_reach(chains(), &Host::v4(), 22);
    assert_eq!(ssh.verdict, Verdict::Unknown);
    assert_eq!(
        ssh.reason.as_deref(),
        Some("the rule tests `meta mark 0x1`")
    );
    assert_eq!(ssh.rule.and_then(|rule| rule.handle), Some(5));
    // Another port: the rule's dport already fails, whatever the mark.
    assert_eq!(tcp_reach(chains(), &Host::v4(), 80).verdict, Verdict::Open);

    // An unknown match on a rule that only counts can't change anything.
    let counting = vec![INET_FILTER.input(
        Policy::Drop,
        vec![
            rule(
                1,
                "meta mark 0x1 counter",
                vec![is(Test::Unknown("meta mark 0x1".into()))],
                Action::Continue,
            ),
            accept_ssh(),
        ],
    )];
    assert_eq!(tcp_reach(counting, &Host::v4(), 22).verdict, Verdict::Open);
}

#[test]
fn an_unknown_part_keeps_what_is_known_to_get_through() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![
            rule(
                1,
                "ip saddr 10.0.0.0/8 accept",
                vec![is(saddr(&["10.0.0.0/8"]))],
                Action::Accept,
            ),
            rule(
                2,
                "tcp dport 22 queue",
                vec![tcp(), dport(22)],
                Action::Unknown("queue".into()),
            ),
        ],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Unknown);
    assert_eq!(reach.sources, ["10.0.0.0/8"]);
    assert_eq!(
        reach.reason.as_deref(),
        Some("the rule's action `queue` isn't modelled")
    );
}

#[test]
fn a_source_port_test_is_unknown_unless_it_covers_every_port() {
    let chains = |spans: Vec<PortSpan>| {
        vec![INET_FILTER.input(
            Policy::Drop,
            vec![rule(
                1,
                "udp sport 67 udp dport 68 accept",
                vec![
                    is(Test::L4Proto(vec![17])),
                    is(Test::SourcePort(spans)),
                    is(Test::DestinationPort(vec![PortSpan::single(68)])),
                ],
                Action::Accept,
            )],
        )]
    };
    let question = Host::v4();
    let dhcp = reach_listener(
        &ruleset(chains(vec![PortSpan::single(67)])),
        &question.question(Proto::Udp, 68),
    );
    assert_eq!(dhcp.verdict, Verdict::Unknown);
    assert!(
        dhcp.reason
            .is_some_and(|reason| reason.contains("source port"))
    );
    let any_port = reach_listener(
        &ruleset(chains(vec![PortSpan {
            first: 0,
            last: u16::MAX,
        }])),
        &question.question(Proto::Udp, 68),
    );
    assert_eq!(any_port.verdict, Verdict::Open);
}

#[test]
fn negated_matches_invert() {
    let chains = vec![INET_FILTER.input(
        Policy::Accept,
        vec![rule(
            1,
            "ip saddr != 192.168.0.0/16 tcp dport 22 drop",
            vec![not(saddr(&["192.168.0.0/16"])), tcp(), dport(22)],
            Action::Drop,
        )],
    )];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["192.168.0.0/16"]);
    assert_eq!(rule_text(&reach), Some("policy accept"));
}

#[test]
fn inet_chains_see_both_families_ip6_chains_only_v6() {
    let inet = vec![INET_FILTER.input(Policy::Drop, Vec::new())];
    let both = tcp_reach(inet, &Host::dual_stack(), 80);
    assert_eq!(both.verdict, Verdict::Blocked);

    let ip6 = Table {
        family: TableFamily::Ip6,
        ..INET_FILTER
    };
    let v6_only = || vec![ip6.input(Policy::Drop, Vec::new())];
    assert_eq!(tcp_reach(v6_only(), &Host::v4(), 80).verdict, Verdict::Open);
    let dual = tcp_reach(v6_only(), &Host::dual_stack(), 80);
    assert_eq!(dual.verdict, Verdict::Restricted);
    assert_eq!(dual.sources, ["0.0.0.0/0"]);
}

#[test]
fn an_ip_address_test_never_holds_for_v6_packets_even_negated() {
    let chains = vec![INET_FILTER.input(
        Policy::Accept,
        vec![rule(
            1,
            "ip saddr != 10.0.0.0/8 drop",
            vec![not(saddr(&["10.0.0.0/8"]))],
            Action::Drop,
        )],
    )];
    let host = Host {
        destinations: vec![ip("2001:db8::10")],
        ..Host::dual_stack()
    };
    assert_eq!(tcp_reach(chains, &host, 80).verdict, Verdict::Open);
}

#[test]
fn a_v6_prefix_restricts_v6() {
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![rule(
            1,
            "ip6 saddr 2001:db8:1::/48 accept",
            vec![is(saddr(&["2001:db8:1::/48"]))],
            Action::Accept,
        )],
    )];
    let reach = tcp_reach(chains, &Host::dual_stack(), 80);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["2001:db8:1::/48"]);
}

#[test]
fn a_netdev_ingress_drop_stops_its_device_only() {
    let netdev = Table {
        origin: Origin::Nftables,
        family: TableFamily::Netdev,
        name: "edge",
    };
    let mut ingress = netdev.base(
        "ingress",
        Hook::Ingress,
        0,
        ChainKind::Filter,
        Policy::Accept,
        vec![rule(
            1,
            "tcp dport 22 drop",
            vec![tcp(), dport(22)],
            Action::Drop,
        )],
    );
    if let Some(base) = ingress.base.as_mut() {
        base.device = Some("eth0".into());
    }
    let reach = tcp_reach(vec![ingress.clone()], &Host::two_interfaces(), 22);
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["iif eth1"]);
    assert_eq!(rule_text(&reach), None);

    let blocked = tcp_reach(vec![ingress], &Host::v4(), 22);
    assert_eq!(blocked.verdict, Verdict::Blocked);
    assert_eq!(
        blocked.rule.map(|rule| rule.family),
        Some(TableFamily::Netdev)
    );
}

#[test]
fn an_ingress_chain_without_a_device_is_unknown() {
    let netdev = Table {
        origin: Origin::Nftables,
        family: TableFamily::Netdev,
        name: "edge",
    };
    let chains = vec![netdev.base(
        "ingress",
        Hook::Ingress,
        0,
        ChainKind::Filter,
        Policy::Accept,
        Vec::new(),
    )];
    let reach = tcp_reach(chains, &Host::v4(), 22);
    assert_eq!(reach.verdict, Verdict::Unknown);
    assert!(
        reach
            .reason
            .is_some_and(|reason| reason.contains("devices"))
    );
}

#[test]
fn the_out_interface_before_routing_is_empty() {
    // iptables-nft and nft read a missing out interface as "": `oifname != "eth0"` holds.
    let chains = vec![INET_FILTER.input(
        Policy::Drop,
        vec![
            rule(
                1,
                "oifname \"eth0\" accept",
                vec![is(oif("eth0"))],
                Action::Accept,
            ),
            rule(
                2,
                "oifname != \"eth0\" tcp dport 22 accept",
                vec![not(oif("eth0")), tcp(), dport(22)],
                Action::Accept,
            ),
        ],
    )];
    let ruleset = ruleset(chains);
    let host = Host::v4();
    let ssh = reach_listener(&ruleset, &host.question(Proto::Tcp, 22));
    assert_eq!(
        (ssh.verdict, rule_text(&ssh)),
        (
            Verdict::Open,
            Some("oifname != \"eth0\" tcp dport 22 accept")
        )
    );
    let web = reach_listener(&ruleset, &host.question(Proto::Tcp, 80));
    assert_eq!(web.verdict, Verdict::Blocked);
}

#[test]
fn no_interface_or_destination_is_unknown_not_guessed() {
    let host = Host {
        interfaces: Vec::new(),
        ..Host::v4()
    };
    let reach = tcp_reach(Vec::new(), &host, 22);
    assert_eq!(reach.verdict, Verdict::Unknown);
    assert!(reach.reason.is_some());
    let host = Host {
        destinations: Vec::new(),
        ..Host::v4()
    };
    assert_eq!(tcp_reach(Vec::new(), &host, 22).verdict, Verdict::Unknown);
}

#[test]
fn a_redirect_to_another_port_takes_packets_away_from_the_listener() {
    let nat = Table {
        name: "nat",
        ..INET_FILTER
    };
    let chains = || {
        vec![nat.base(
            "prerouting",
            Hook::Prerouting,
            -100,
            ChainKind::Nat,
            Policy::Accept,
            vec![rule(
                1,
                "tcp dport 80 redirect to :8080",
                vec![tcp(), dport(80)],
                Action::Dnat {
                    address: None,
                    ports: Some(PortSpan::single(8080)),
                    local: true,
                },
            )],
        )]
    };
    let web = tcp_reach(chains(), &Host::v4(), 80);
    assert_eq!(web.verdict, Verdict::Blocked);
    assert_eq!(rule_text(&web), Some("tcp dport 80 redirect to :8080"));
    // The redirect's target is untouched.
    assert_eq!(
        tcp_reach(chains(), &Host::v4(), 8080).verdict,
        Verdict::Open
    );
}

#[test]
fn only_the_first_nat_chain_translates() {
    let nat = Table {
        name: "nat",
        ..INET_FILTER
    };
    let dnat_80 = |handle: u64, to: u16| {
        rule(
            handle,
            "tcp dport 80 redirect",
            vec![tcp(), dport(80)],
            Action::Dnat {
                address: None,
                ports: Some(PortSpan::single(to)),
                local: true,
            },
        )
    };
    let chains = vec![
        nat.base(
            "second",
            Hook::Prerouting,
            0,
            ChainKind::Nat,
            Policy::Accept,
            vec![dnat_80(2, 9090)],
        ),
        nat.base(
            "first",
            Hook::Prerouting,
            -100,
            ChainKind::Nat,
            Policy::Accept,
            vec![dnat_80(1, 80)],
        ),
    ];
    // `first` keeps port 80; `second` never sees the connection.
    let reach = tcp_reach(chains, &Host::v4(), 80);
    assert_eq!(reach.verdict, Verdict::Open);
}

/// Docker's iptables (iptables-nft) for `docker run -p 8080:80` on 172.17.0.2, and an INPUT
/// with policy drop that only lets ssh in: the published port is reachable anyway.
fn docker(user_rules: Vec<Rule>) -> Ruleset {
    let nat = Table {
        origin: Origin::IptablesNft,
        family: TableFamily::Ip,
        name: "nat",
    };
    let filter = Table {
        name: "filter",
        ..nat
    };
    let dnat = rule(
        2,
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
        vec![not(iif("docker0")), tcp(), dport(8080)],
        Action::Dnat {
            address: Some(ip("172.17.0.2")),
            ports: Some(PortSpan::single(80)),
            local: false,
        },
    );
    let mut user = user_rules;
    user.push(rule(
        user.len() as u64 + 1,
        "-A DOCKER-USER -j RETURN",
        Vec::new(),
        Action::Return,
    ));
    ruleset(vec![
        nat.base(
            "PREROUTING",
            Hook::Prerouting,
            -100,
            ChainKind::Nat,
            Policy::Accept,
            vec![rule(
                1,
                "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
                vec![is(Test::DestinationType(vec![AddressType::Local]))],
                Action::Jump("DOCKER".into()),
            )],
        ),
        nat.base(
            "POSTROUTING",
            Hook::Postrouting,
            100,
            ChainKind::Nat,
            Policy::Accept,
            vec![rule(
                1,
                "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
                vec![is(saddr(&["172.17.0.0/16"])), not(oif("docker0"))],
                Action::Unknown("MASQUERADE".into()),
            )],
        ),
        nat.regular(
            "DOCKER",
            vec![
                rule(
                    1,
                    "-A DOCKER -i docker0 -j RETURN",
                    vec![is(iif("docker0"))],
                    Action::Return,
                ),
                dnat,
            ],
        ),
        filter.base(
            "INPUT",
            Hook::Input,
            0,
            ChainKind::Filter,
            Policy::Drop,
            vec![rule(
                1,
                "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
                vec![tcp(), dport(22)],
                Action::Accept,
            )],
        ),
        filter.base(
            "FORWARD",
            Hook::Forward,
            0,
            ChainKind::Filter,
            Policy::Drop,
            vec![
                rule(1, "-A FORWARD -j DOCKER-USER", Vec::new(), Action::Jump("DOCKER-USER".into())),
                rule(
                    2,
                    "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
                    Vec::new(),
                    Action::Jump("DOCKER-ISOLATION-STAGE-1".into()),
                ),
                rule(
                    3,
                    "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                    vec![
                        is(oif("docker0")),
                        ct(&[ConnectionState::Related, ConnectionState::Established]),
                    ],
                    Action::Accept,
                ),
                rule(
                    4,
                    "-A FORWARD -o docker0 -j DOCKER",
                    vec![is(oif("docker0"))],
                    Action::Jump("DOCKER".into()),
                ),
                rule(
                    5,
                    "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
                    vec![is(iif("docker0")), not(oif("docker0"))],
                    Action::Accept,
                ),
            ],
        ),
        filter.regular("DOCKER-USER", user),
        filter.regular(
            "DOCKER-ISOLATION-STAGE-1",
            vec![
                rule(
                    1,
                    "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
                    vec![is(iif("docker0")), not(oif("docker0"))],
                    Action::Jump("DOCKER-ISOLATION-STAGE-2".into()),
                ),
                rule(2, "-A DOCKER-ISOLATION-STAGE-1 -j RETURN", Vec::new(), Action::Return),
            ],
        ),
        filter.regular(
            "DOCKER-ISOLATION-STAGE-2",
            vec![
                rule(
                    1,
                    "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
                    vec![is(oif("docker0"))],
                    Action::Drop,
                ),
                rule(2, "-A DOCKER-ISOLATION-STAGE-2 -j RETURN", Vec::new(), Action::Return),
            ],
        ),
        filter.regular(
            "DOCKER",
            vec![rule(
                1,
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
                vec![
                    is(daddr(&["172.17.0.2"])),
                    not(iif("docker0")),
                    is(oif("docker0")),
                    tcp(),
                    dport(80),
                ],
                Action::Accept,
            )],
        ),
    ])
}

fn docker_host() -> Host {
    Host {
        destinations: vec![ip("192.0.2.10")],
        interfaces: vec!["eth0".into()],
        local: vec![ip("127.0.0.1"), ip("192.0.2.10"), ip("172.17.0.1")],
        networks: vec![
            (net("192.0.2.0/24"), "eth0".into()),
            (net("172.17.0.0/16"), "docker0".into()),
        ],
    }
}

#[test]
fn docker_publishes_past_an_input_policy_drop() {
    let ruleset = docker(Vec::new());
    let found = forwards(&ruleset);
    assert_eq!(found.len(), 1, "{found:?}");
    let forward = &found[0];
    assert_eq!(forward.proto, Proto::Tcp);
    assert!(forward.host_addresses.is_empty());
    assert_eq!(forward.host_ports, PortSpan::single(8080));
    assert_eq!(forward.to_address, ip("172.17.0.2"));
    assert_eq!(forward.to_port, 80);
    assert_eq!(forward.rule.chain, "DOCKER");
    assert_eq!(forward.rule.handle, Some(2));

    let host = docker_host();
    let published = reach_forward(&ruleset, &host.question(Proto::Tcp, 8080), forward);
    assert_eq!(published.verdict, Verdict::Open, "{published:?}");
    let accept = published.rule.expect("the accepting rule");
    assert_eq!(
        (accept.table.as_str(), accept.chain.as_str()),
        ("filter", "DOCKER")
    );

    // A host listener on the published port never sees these packets: the DNAT takes them.
    let shadowed = reach_listener(&ruleset, &host.question(Proto::Tcp, 8080));
    assert_eq!(shadowed.verdict, Verdict::Blocked);
    assert_eq!(shadowed.rule.map(|rule| rule.handle), Some(Some(2)));
    // And the host's own ports are as INPUT says.
    assert_eq!(
        reach_listener(&ruleset, &host.question(Proto::Tcp, 22)).verdict,
        Verdict::Open
    );
    let other = reach_listener(&ruleset, &host.question(Proto::Tcp, 8081));
    assert_eq!(
        (other.verdict, rule_text(&other)),
        (Verdict::Blocked, Some("policy drop"))
    );
}

#[test]
fn docker_user_rules_restrict_a_published_port() {
    let ruleset = docker(vec![rule(
        1,
        "-A DOCKER-USER ! -s 10.0.0.0/8 -j DROP",
        vec![not(saddr(&["10.0.0.0/8"]))],
        Action::Drop,
    )]);
    let forward = forwards(&ruleset).into_iter().next().expect("the forward");
    let reach = reach_forward(
        &ruleset,
        &docker_host().question(Proto::Tcp, 8080),
        &forward,
    );
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["10.0.0.0/8"]);
}

#[test]
fn a_forward_to_an_unknown_network_is_unknown_where_the_out_interface_is_tested() {
    let ruleset = docker(Vec::new());
    let forward = forwards(&ruleset).into_iter().next().expect("the forward");
    let host = Host {
        networks: vec![(net("192.0.2.0/24"), "eth0".into())],
        ..docker_host()
    };
    let reach = reach_forward(&ruleset, &host.question(Proto::Tcp, 8080), &forward);
    assert_eq!(reach.verdict, Verdict::Unknown);
    assert!(
        reach
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains("172.17.0.2")),
        "{reach:?}"
    );
}

#[test]
fn forwards_follow_the_path_s_requirements() {
    let nat = Table {
        origin: Origin::Nftables,
        family: TableFamily::Inet,
        name: "nat",
    };
    let dnat = |handle: u64, text: &str, matches: Vec<Match>, to: &str, ports: Option<PortSpan>| {
        rule(
            handle,
            text,
            matches,
            Action::Dnat {
                address: Some(ip(to)),
                ports,
                local: false,
            },
        )
    };
    let ruleset = ruleset(vec![
        nat.base(
            "prerouting",
            Hook::Prerouting,
            -100,
            ChainKind::Nat,
            Policy::Accept,
            vec![
                rule(
                    1,
                    "ip daddr 192.0.2.10 tcp dport 8000-8999 jump published",
                    vec![
                        is(daddr(&["192.0.2.10"])),
                        tcp(),
                        is(Test::DestinationPort(vec![PortSpan {
                            first: 8000,
                            last: 8999,
                        }])),
                    ],
                    Action::Jump("published".into()),
                ),
                // Reached twice over: listed once.
                rule(
                    2,
                    "jump published",
                    vec![
                        is(daddr(&["192.0.2.10"])),
                        tcp(),
                        is(Test::DestinationPort(vec![PortSpan {
                            first: 8000,
                            last: 8999,
                        }])),
                    ],
                    Action::Jump("published".into()),
                ),
                // Only for established packets: nat never sees them.
                rule(
                    3,
                    "ct state established dnat",
                    vec![ct(&[ConnectionState::Established]), dport(9000)],
                    Action::Jump("published".into()),
                ),
                // Only for v6 destinations, but translates to v4: never applies.
                rule(
                    4,
                    "ip6 daddr 2001:db8::/32 dnat to 10.0.0.9",
                    vec![is(daddr(&["2001:db8::/32"]))],
                    Action::Dnat {
                        address: Some(ip("10.0.0.9")),
                        ports: None,
                        local: false,
                    },
                ),
            ],
        ),
        nat.regular(
            "published",
            vec![
                dnat(
                    1,
                    "tcp dport { 8080, 8443 } dnat ip to 10.0.0.2:80",
                    vec![is(Test::DestinationPort(vec![
                        PortSpan::single(8080),
                        PortSpan::single(8443),
                    ]))],
                    "10.0.0.2",
                    Some(PortSpan::single(80)),
                ),
                dnat(
                    2,
                    "tcp dport 8100-8199 dnat ip to 10.0.0.3",
                    vec![is(Test::DestinationPort(vec![PortSpan {
                        first: 8100,
                        last: 8199,
                    }]))],
                    "10.0.0.3",
                    None,
                ),
                // 9000 is outside what the jump allows.
                dnat(
                    3,
                    "tcp dport 9000 dnat ip to 10.0.0.4",
                    vec![dport(9000)],
                    "10.0.0.4",
                    None,
                ),
            ],
        ),
    ]);
    let found = forwards(&ruleset);
    let summary: Vec<String> = found
        .iter()
        .map(|forward| {
            let hosts: Vec<String> = forward
                .host_addresses
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "{} [{}]:{} -> {}:{}",
                forward.proto.as_str(),
                hosts.join(","),
                forward.host_ports,
                forward.to_address,
                forward.to_port
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "tcp [192.0.2.10]:8080 -> 10.0.0.2:80",
            "tcp [192.0.2.10]:8443 -> 10.0.0.2:80",
            "tcp [192.0.2.10]:8100-8199 -> 10.0.0.3:8100",
        ]
    );
}

#[test]
fn a_forward_s_host_addresses_narrow_the_destinations() {
    let nat = Table {
        origin: Origin::Nftables,
        family: TableFamily::Ip,
        name: "nat",
    };
    let filter = Table {
        name: "filter",
        ..nat
    };
    let ruleset = ruleset(vec![
        nat.base(
            "prerouting",
            Hook::Prerouting,
            -100,
            ChainKind::Nat,
            Policy::Accept,
            vec![rule(
                1,
                "ip daddr 198.51.100.10 tcp dport 2222 dnat to 10.9.0.2:22",
                vec![is(daddr(&["198.51.100.10"])), tcp(), dport(2222)],
                Action::Dnat {
                    address: Some(ip("10.9.0.2")),
                    ports: Some(PortSpan::single(22)),
                    local: false,
                },
            )],
        ),
        filter.base(
            "forward",
            Hook::Forward,
            0,
            ChainKind::Filter,
            Policy::Drop,
            vec![rule(
                1,
                "iifname \"eth1\" accept",
                vec![is(iif("eth1"))],
                Action::Accept,
            )],
        ),
    ]);
    let forward = forwards(&ruleset).into_iter().next().expect("the forward");
    assert_eq!(forward.host_addresses, [net("198.51.100.10")]);
    let mut host = Host::two_interfaces();
    host.networks.push((net("10.9.0.0/24"), "br0".into()));
    let reach = reach_forward(&ruleset, &host.question(Proto::Tcp, 2222), &forward);
    // 192.0.2.10 isn't one of the forward's addresses, so it isn't tried.
    assert_eq!(reach.verdict, Verdict::Restricted);
    assert_eq!(reach.sources, ["iif eth1"]);
}

#[test]
fn port_spans_and_address_ranges_print_and_serialize_as_text() {
    assert_eq!(PortSpan::single(8080).to_string(), "8080");
    assert_eq!(
        PortSpan {
            first: 8000,
            last: 8100
        }
        .to_string(),
        "8000-8100"
    );
    assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("10.0.0.1").to_string(), "10.0.0.1");
    assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
    let ragged = AddressRange {
        first: ip("10.0.0.1"),
        last: ip("10.0.0.5"),
    };
    assert_eq!(ragged.to_string(), "10.0.0.1-10.0.0.5");
    let forward = forwards(&docker(Vec::new()))
        .into_iter()
        .next()
        .expect("the forward");
    let json = serde_json::to_value(&forward).expect("serializable");
    assert_eq!(json["host_ports"], "8080");
    assert_eq!(json["proto"], "tcp");
    assert_eq!(json["to_address"], "172.17.0.2");
    assert_eq!(json["rule"]["origin"], "iptables-nft");
    let reach = serde_json::to_value(Reach {
        verdict: Verdict::Restricted,
        sources: vec!["10.0.0.0/8".into()],
        rule: None,
        reason: None,
    })
    .expect("serializable");
    assert_eq!(reach["verdict"], "restricted");
}

/// 1,000 rules in one chain, half of them limited to a source prefix, asked about 1,000
/// listeners on two interfaces and two addresses each.
fn thousand_rules() -> (Ruleset, Host) {
    let rules = (0..1000u16)
        .map(|at| {
            let port = 10000 + at;
            if at % 2 == 0 {
                rule(
                    u64::from(at),
                    &format!("tcp dport {port} accept"),
                    vec![tcp(), dport(port)],
                    Action::Accept,
                )
            } else {
                let prefix = format!("10.{}.0.0/16", at % 250);
                rule(
                    u64::from(at),
                    &format!("ip saddr {prefix} tcp dport {port} accept"),
                    vec![is(saddr(&[&prefix])), tcp(), dport(port)],
                    Action::Accept,
                )
            }
        })
        .collect();
    let chains = vec![INET_FILTER.input(Policy::Drop, rules)];
    (ruleset(chains), Host::two_interfaces())
}

fn ask_thousand(evaluator: &Evaluator, host: &Host) -> Vec<Reach> {
    (0..1000u16)
        .map(|at| evaluator.reach_listener(&host.question(Proto::Tcp, 10000 + at)))
        .collect()
}

#[test]
fn a_thousand_rules_and_a_thousand_listeners() {
    let (ruleset, host) = thousand_rules();
    let evaluator = Evaluator::new(&ruleset);
    let answers = ask_thousand(&evaluator, &host);
    for (at, reach) in answers.iter().enumerate() {
        if at % 2 == 0 {
            assert_eq!(reach.verdict, Verdict::Open, "port {}", 10000 + at);
        } else {
            assert_eq!(reach.verdict, Verdict::Restricted, "port {}", 10000 + at);
            assert_eq!(reach.sources, [format!("10.{}.0.0/16", at % 250)]);
        }
    }
    let unlisted = evaluator.reach_listener(&host.question(Proto::Tcp, 9999));
    assert_eq!(unlisted.verdict, Verdict::Blocked);
}

/// `cargo test --release --lib firewall::eval::tests::timing -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check: run it in release"]
fn timing_a_thousand_rules_and_a_thousand_listeners() {
    let (ruleset, host) = thousand_rules();
    let start = std::time::Instant::now();
    let evaluator = Evaluator::new(&ruleset);
    let answers = ask_thousand(&evaluator, &host);
    let elapsed = start.elapsed();
    assert_eq!(answers.len(), 1000);
    println!("1000 rules x 1000 listeners (2 interfaces x 2 addresses): {elapsed:?}");
}

#[test]
fn ct_status_dnat_holds_only_after_a_translation() {
    // firewalld's input: `ct status dnat accept` first, a reject at the end.
    let firewalld = Table {
        name: "firewalld",
        ..INET_FILTER
    };
    let input = firewalld.base(
        "filter_INPUT",
        Hook::Input,
        10,
        ChainKind::Filter,
        Policy::Accept,
        vec![
            rule(
                1,
                "ct status dnat accept",
                vec![ct(&[ConnectionState::Dnat])],
                Action::Accept,
            ),
            accept_ssh(),
            rule(
                3,
                "reject with icmpx admin-prohibited",
                Vec::new(),
                Action::Reject,
            ),
        ],
    );
    let listener = tcp_reach(vec![input.clone()], &Host::v4(), 8080);
    assert_eq!(listener.verdict, Verdict::Blocked);
    assert_eq!(
        rule_text(&listener),
        Some("reject with icmpx admin-prohibited")
    );

    // A DNAT to a local address takes the input path, where the same rule now holds.
    let nat = firewalld.base(
        "nat_PREROUTING",
        Hook::Prerouting,
        -100,
        ChainKind::Nat,
        Policy::Accept,
        vec![rule(
            1,
            "tcp dport 8080 dnat ip to 192.0.2.10:80",
            vec![tcp(), dport(8080)],
            Action::Dnat {
                address: Some(ip("192.0.2.10")),
                ports: Some(PortSpan::single(80)),
                local: false,
            },
        )],
    );
    let ruleset = ruleset(vec![nat, input]);
    let forward = forwards(&ruleset).into_iter().next().expect("the forward");
    let reach = reach_forward(&ruleset, &Host::v4().question(Proto::Tcp, 8080), &forward);
    assert_eq!(reach.verdict, Verdict::Open);
    assert_eq!(rule_text(&reach), Some("ct status dnat accept"));
}

#[test]
fn a_forward_chain_accepting_dnat_state_lets_the_forward_through() {
    // netavark's forward: `-d 10.88.0.0/16 -m conntrack --ctstate DNAT -j ACCEPT`, policy drop.
    let nat = Table {
        origin: Origin::IptablesNft,
        family: TableFamily::Ip,
        name: "nat",
    };
    let filter = Table {
        name: "filter",
        ..nat
    };
    let ruleset = ruleset(vec![
        nat.base(
            "PREROUTING",
            Hook::Prerouting,
            -100,
            ChainKind::Nat,
            Policy::Accept,
            vec![rule(
                1,
                "-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.2:80",
                vec![tcp(), dport(8080)],
                Action::Dnat {
                    address: Some(ip("10.88.0.2")),
                    ports: Some(PortSpan::single(80)),
                    local: false,
                },
            )],
        ),
        filter.base(
            "FORWARD",
            Hook::Forward,
            0,
            ChainKind::Filter,
            Policy::Drop,
            vec![rule(
                1,
                "-A FORWARD -d 10.88.0.0/16 -m conntrack --ctstate DNAT -j ACCEPT",
                vec![is(daddr(&["10.88.0.0/16"])), ct(&[ConnectionState::Dnat])],
                Action::Accept,
            )],
        ),
    ]);
    let forward = forwards(&ruleset).into_iter().next().expect("the forward");
    let mut host = Host::v4();
    host.networks.push((net("10.88.0.0/16"), "podman0".into()));
    let reach = reach_forward(&ruleset, &host.question(Proto::Tcp, 8080), &forward);
    assert_eq!(reach.verdict, Verdict::Open);
    assert_eq!(
        reach.rule.map(|rule| rule.chain),
        Some("FORWARD".to_string())
    );
}

fn mark_is(mark: Mark, mask: u32, value: u32) -> Match {
    is(Test::Mark {
        mark,
        mask,
        values: vec![(value, value)],
    })
}

fn marking(handle: u64, text: &str, matches: Vec<Match>, marks: Vec<MarkSet>) -> Rule {
    Rule {
        marks,
        ..rule(handle, text, matches, Action::Continue)
    }
}

fn set(mark: Mark, value: MarkValue) -> MarkSet {
    MarkSet {
        mark,
        value: Ok(value),
    }
}

/// A prerouting (mangle-like) chain that marks, and an input chain with policy drop that
/// accepts by the mark.
fn marked_input(marks: Vec<Rule>, accept: Match) -> Vec<Chain> {
    vec![
        INET_FILTER.base(
            "prerouting",
            Hook::Prerouting,
            -150,
            ChainKind::Filter,
            Policy::Accept,
            marks,
        ),
        INET_FILTER.input(
            Policy::Drop,
            vec![rule(9, "marked accept", vec![accept], Action::Accept)],
        ),
    ]
}

#[test]
fn a_mark_set_in_prerouting_is_what_input_tests() {
    let chains = marked_input(
        vec![marking(
            1,
            "meta mark set meta mark | 0x2000",
            Vec::new(),
            vec![set(Mark::Packet, MarkValue::of(Mark::Packet).or(0x2000))],
        )],
        mark_is(Mark::Packet, 0x2000, 0x2000),
    );
    let reach = tcp_reach(chains, &Host::v4(), 8080);
    assert_eq!(reach.verdict, Verdict::Open, "{reach:?}");
    assert_eq!(rule_text(&reach), Some("marked accept"));

    // Never set: a new packet's mark is 0, and `ct mark` is another mark.
    let unmarked = marked_input(Vec::new(), mark_is(Mark::Packet, 0x2000, 0x2000));
    assert_eq!(
        tcp_reach(unmarked, &Host::v4(), 8080).verdict,
        Verdict::Blocked
    );
    let other = marked_input(
        vec![marking(
            1,
            "meta mark set 0x2000",
            Vec::new(),
            vec![set(Mark::Packet, MarkValue::constant(0x2000))],
        )],
        mark_is(Mark::Connection, 0x2000, 0x2000),
    );
    assert_eq!(
        tcp_reach(other, &Host::v4(), 8080).verdict,
        Verdict::Blocked
    );
}

#[test]
fn where_a_rule_splits_the_sources_each_part_keeps_its_own_marks() {
    let chains = marked_input(
        vec![marking(
            1,
            "ip saddr 10.0.0.0/8 ct mark set 0x1",
            vec![is(saddr(&["10.0.0.0/8"]))],
            vec![set(Mark::Connection, MarkValue::constant(1))],
        )],
        mark_is(Mark::Connection, u32::MAX, 1),
    );
    let reach = tcp_reach(chains, &Host::v4(), 443);
    assert_eq!(reach.verdict, Verdict::Restricted, "{reach:?}");
    assert_eq!(reach.sources, ["10.0.0.0/8"]);
}

#[test]
fn xor_and_and_compute_the_mark_and_a_save_copies_it_to_the_connection() {
    // mark = 0 ^ 0xff = 0xff; & 0x0f = 0x0f; ct = mark & 0xf0 = 0 (xor 0x30: 0x30).
    let chains = marked_input(
        vec![
            marking(
                1,
                "meta mark set meta mark ^ 0xff",
                Vec::new(),
                vec![set(Mark::Packet, MarkValue::of(Mark::Packet).xor(0xff))],
            ),
            marking(
                2,
                "meta mark set meta mark & 0x0f",
                Vec::new(),
                vec![set(Mark::Packet, MarkValue::of(Mark::Packet).and(0x0f))],
            ),
            marking(
                3,
                "ct mark set meta mark & 0xf0 ^ 0x30",
                Vec::new(),
                vec![set(
                    Mark::Connection,
                    MarkValue::of(Mark::Packet).and(0xf0).xor(0x30),
                )],
            ),
        ],
        mark_is(Mark::Connection, u32::MAX, 0x30),
    );
    assert_eq!(
        tcp_reach(chains.clone(), &Host::v4(), 80).verdict,
        Verdict::Open
    );
    let mut packet = chains;
    packet[1].rules = vec![rule(
        9,
        "meta mark 0x0f accept",
        vec![mark_is(Mark::Packet, u32::MAX, 0x0f)],
        Action::Accept,
    )];
    assert_eq!(tcp_reach(packet, &Host::v4(), 80).verdict, Verdict::Open);
}

#[test]
fn a_mark_set_from_what_the_model_cant_compute_is_unknown_for_the_packets_it_marks() {
    let chains = marked_input(
        vec![
            marking(
                1,
                "ip saddr 10.0.0.0/8 meta mark set jhash ip saddr mod 2",
                vec![is(saddr(&["10.0.0.0/8"]))],
                vec![MarkSet {
                    mark: Mark::Packet,
                    value: Err("jhash ip saddr mod 2".into()),
                }],
            ),
            // Copies the unknown mark on: the connection's is unknown for them too.
            marking(
                2,
                "ct mark set meta mark",
                Vec::new(),
                vec![set(Mark::Connection, MarkValue::of(Mark::Packet))],
            ),
        ],
        mark_is(Mark::Connection, 0x1, 0x1),
    );
    let reach = tcp_reach(chains, &Host::v4(), 80);
    assert_eq!(reach.verdict, Verdict::Unknown, "{reach:?}");
    let reason = reach.reason.unwrap_or_default();
    assert!(
        reason.contains("ct mark") && reason.contains("jhash"),
        "{reason}"
    );
    // The other sources were judged: their mark is 0, so the input drops them.
    assert_eq!(reach.sources, Vec::<String>::new());
}
