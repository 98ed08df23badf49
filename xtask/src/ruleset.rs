//! The ruleset the firewall-cost measurement loads, and the test that checks the netlink reader
//! reads it as `nft` does (tests/nfnl.rs includes this file): one generator for both.

/// The generated ruleset: an inet filter input chain of `rules` rules over prefixes, port sets
/// and a jump, and a nat table with DNATs, the kinds of rule a real host carries.
pub fn generated(rules: usize) -> String {
    use std::fmt::Write as _;
    let mut text = String::from("flush ruleset\ntable inet filter {\n");
    text.push_str("  set web { type inet_service; elements = { 80, 443, 8080 } }\n");
    text.push_str("  chain admin {\n    ip saddr 10.200.0.0/16 accept\n    return\n  }\n");
    text.push_str("  chain input {\n    type filter hook input priority filter; policy drop;\n");
    text.push_str("    ct state established,related accept\n    iif lo accept\n");
    text.push_str("    tcp dport @web accept\n    tcp dport 22 jump admin\n");
    let nat = rules / 10;
    for i in 0..rules - nat - 4 {
        let (a, b) = (i / 250 % 250, i % 250);
        let port = 20000 + (i % 5000);
        let _ = writeln!(text, "    ip saddr 10.{a}.{b}.0/24 tcp dport {port} accept");
    }
    text.push_str("  }\n}\ntable ip nat {\n");
    text.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat;\n");
    for i in 0..nat {
        let _ = writeln!(
            text,
            "    tcp dport {} dnat to 10.201.{}.{}:80",
            40000 + i,
            i / 250,
            i % 250 + 1
        );
    }
    text.push_str("  }\n}\n");
    text
}
