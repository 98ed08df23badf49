//! From where a listener can be reached, judged from its local address. Pure: the interfaces
//! and the IPv6 sysctl come in as data ([`HostView`]), so offline snapshots use the same code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Loopback,
    /// Private networks (RFC 1918, shared 100.64/10, ULA, link-local, scoped multicast).
    Private,
    /// Globally routable, or at least not in any private range.
    Public,
    /// The wildcard (`0.0.0.0`, `::`): every address the host has now or gets later.
    AllInterfaces,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::Public => "public",
            Class::AllInterfaces => "all-interfaces",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    #[serde(rename = "exposure")]
    pub class: Class,
    /// Only reachable on its own link (169.254/16, fe80::/10, link-scoped multicast).
    pub link_local: bool,
    /// The interface that holds a specific address; `None` offline, for wildcards and loopback,
    /// or when no interface holds it (a non-local bind).
    pub interface: Option<String>,
    /// For `::` only: whether IPv4 connections reach it too. `None` where that can't be known.
    pub dual_stack: Option<bool>,
}

impl Exposure {
    pub fn beyond_loopback(&self) -> bool {
        self.class != Class::Loopback
    }

    /// What the table shows: `all-interfaces, dual-stack`, `private, eth0`, `public`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.class.as_str().to_string()];
        if self.link_local {
            parts.push("link-local".into());
        }
        match self.dual_stack {
            Some(true) => parts.push("dual-stack".into()),
            Some(false) => parts.push("IPv6 only".into()),
            None => {}
        }
        parts.extend(self.interface.clone());
        parts.join(", ")
    }
}

/// What this host says about its addresses. Empty offline: a snapshot holds neither.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    /// Every address an interface holds, with the interface's name; `None` offline.
    pub interfaces: Option<Vec<(IpAddr, String)>>,
    /// `net.ipv6.bindv6only`, the default IPV6_V6ONLY of new sockets; `None` offline.
    pub bindv6only: Option<bool>,
}

impl HostView {
    fn interface_of(&self, address: IpAddr) -> Option<String> {
        let names: Vec<&str> = self
            .interfaces
            .as_ref()?
            .iter()
            .filter(|(ip, _)| ip.to_canonical() == address)
            .map(|(_, name)| name.as_str())
            .collect();
        // A link-local IPv6 address can sit on several interfaces at once.
        (!names.is_empty()).then(|| names.join("+"))
    }
}

/// Classifies a listener's local address. `v6only` is the socket's IPV6_V6ONLY where the
/// backend reported it; it decides whether `::` takes IPv4 too, and the sysctl stands in for it
/// when it is unknown (every socket starts with the sysctl's value).
pub fn classify(address: IpAddr, v6only: Option<bool>, view: &HostView) -> Exposure {
    // `::ffff:127.0.0.1` is IPv4 loopback on an IPv6 socket: judge the IPv4 address.
    let canonical = address.to_canonical();
    let (class, link_local) = match canonical {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    };
    let dual_stack = match address {
        IpAddr::V6(v6) if v6.is_unspecified() => v6only.or(view.bindv6only).map(|only| !only),
        _ => None,
    };
    let interface = matches!(class, Class::Private | Class::Public)
        .then(|| view.interface_of(canonical))
        .flatten();
    Exposure {
        class,
        link_local,
        interface,
        dual_stack,
    }
}

fn classify_v4(ip: Ipv4Addr) -> (Class, bool) {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        (Class::AllInterfaces, false)
    } else if ip.is_loopback() {
        (Class::Loopback, false)
    } else if ip.is_link_local() || (a == 224 && b == 0 && c == 0) {
        (Class::Private, true)
    } else if ip.is_private() || shared_or_scoped(a, b) {
        (Class::Private, false)
    } else {
        (Class::Public, false)
    }
}

/// Shared address space (100.64/10, RFC 6598: carrier-grade NAT) and administratively scoped
/// multicast (239/8, RFC 2365): neither is routed on the internet.
fn shared_or_scoped(a: u8, b: u8) -> bool {
    (a == 100 && (64..128).contains(&b)) || a == 239
}

fn classify_v6(ip: Ipv6Addr) -> (Class, bool) {
    let [first, ..] = ip.segments();
    if ip.is_unspecified() {
        (Class::AllInterfaces, false)
    } else if ip.is_loopback() {
        (Class::Loopback, false)
    } else if first & 0xffc0 == 0xfe80 {
        (Class::Private, true)
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        // Unique local (RFC 4193), and the deprecated site-local range.
        (Class::Private, false)
    } else if ip.is_multicast() {
        // The low nibble of the first segment is the multicast scope (RFC 7346).
        match first & 0x000f {
            0x1 => (Class::Loopback, false),
            0x2 => (Class::Private, true),
            0x3..=0x8 => (Class::Private, false),
            _ => (Class::Public, false),
        }
    } else {
        (Class::Public, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn class(text: &str) -> (Class, bool) {
        let exposure = classify(ip(text), None, &HostView::default());
        (exposure.class, exposure.link_local)
    }

    #[test]
    fn loopback_includes_the_whole_127_range_and_mapped_addresses() {
        for address in [
            "127.0.0.1",
            "127.0.0.53",
            "127.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(class(address), (Class::Loopback, false), "{address}");
        }
    }

    #[test]
    fn wildcards_are_all_interfaces() {
        for address in ["0.0.0.0", "::", "::ffff:0.0.0.0"] {
            assert_eq!(class(address).0, Class::AllInterfaces, "{address}");
        }
    }

    #[test]
    fn private_ranges_are_private_and_the_rest_public() {
        for address in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.10",
            "100.64.0.1",
            "100.127.255.255",
            "fd12:3456::1",
            "fc00::1",
            "239.1.2.3",
            "ff05::2",
            "::ffff:10.0.0.5",
        ] {
            assert_eq!(class(address), (Class::Private, false), "{address}");
        }
        for address in ["169.254.10.1", "fe80::1", "224.0.0.251", "ff02::fb"] {
            assert_eq!(class(address), (Class::Private, true), "{address}");
        }
        for address in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "2a00:1450::1",
            "ff0e::1",
        ] {
            assert_eq!(class(address), (Class::Public, false), "{address}");
        }
    }

    #[test]
    fn ipv6_wildcard_is_dual_stack_unless_v6only() {
        let live = HostView {
            interfaces: Some(Vec::new()),
            bindv6only: Some(false),
        };
        let any = ip("::");
        assert_eq!(classify(any, Some(false), &live).dual_stack, Some(true));
        assert_eq!(classify(any, Some(true), &live).dual_stack, Some(false));
        // The backend could not tell: the sysctl is every socket's default.
        assert_eq!(classify(any, None, &live).dual_stack, Some(true));
        let v6only_default = HostView {
            bindv6only: Some(true),
            ..live.clone()
        };
        assert_eq!(classify(any, None, &v6only_default).dual_stack, Some(false));
        // Offline nothing says which.
        assert_eq!(classify(any, None, &HostView::default()).dual_stack, None);
        assert_eq!(classify(ip("0.0.0.0"), None, &live).dual_stack, None);
        assert_eq!(
            classify(any, Some(false), &live).describe(),
            "all-interfaces, dual-stack"
        );
        assert_eq!(
            classify(any, Some(true), &live).describe(),
            "all-interfaces, IPv6 only"
        );
    }

    #[test]
    fn specific_addresses_are_named_with_their_interface() {
        let view = HostView {
            interfaces: Some(vec![
                (ip("10.0.0.5"), "eth0".into()),
                (ip("203.0.113.7"), "eth1".into()),
                (ip("fe80::1"), "eth0".into()),
                (ip("fe80::1"), "eth1".into()),
                (ip("127.0.0.1"), "lo".into()),
            ]),
            bindv6only: Some(false),
        };
        let exposure = classify(ip("10.0.0.5"), None, &view);
        assert_eq!(exposure.describe(), "private, eth0");
        assert_eq!(
            classify(ip("::ffff:203.0.113.7"), None, &view).describe(),
            "public, eth1"
        );
        assert_eq!(
            classify(ip("fe80::1"), None, &view).describe(),
            "private, link-local, eth0+eth1"
        );
        // Loopback needs no interface name, and an address no interface holds gets none.
        assert_eq!(classify(ip("127.0.0.1"), None, &view).interface, None);
        assert_eq!(classify(ip("192.168.9.9"), None, &view).interface, None);
    }
}
