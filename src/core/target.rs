//! What `portstat who` was asked about: `8080`, `8080/udp`, `:8080`, `127.0.0.1:8080`,
//! `[::1]:8080`, `0.0.0.0:8080`, `[fe80::1%eth0]:8080` or `[fe80::1%2]:8080`, each optionally
//! followed by `/tcp` or `/udp`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

use crate::core::model::{Proto, needs_zone};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub proto: Proto,
    /// The address a new server would bind. Without one, the IPv4 wildcard (what `listen 8080`
    /// means to most servers).
    pub address: IpAddr,
    /// Whether the user named the address (`who 127.0.0.1:80`) or only the port (`who 80`).
    pub address_given: bool,
    pub port: u16,
    /// The zone written after `%` in a link-local IPv6 address: its interface.
    pub zone: Option<Zone>,
    /// That interface's index, the scope id a bind or connect needs, once [`Target::resolve`]
    /// found it; 0 without a zone.
    pub scope_id: u32,
}

/// An interface as a zone names it: by index (`%2`) or by name (`%eth0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Index(u32),
    Name(InterfaceName),
}

/// An interface name, held inline so that a [`Target`] stays `Copy`: at most 15 bytes, the
/// kernel's limit (`IFNAMSIZ` is 16 with the terminating NUL).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InterfaceName {
    bytes: [u8; InterfaceName::MAX],
    len: u8,
}

impl InterfaceName {
    pub const MAX: usize = 15;

    pub fn new(name: &str) -> Option<InterfaceName> {
        let mut bytes = [0; InterfaceName::MAX];
        bytes
            .get_mut(..name.len())?
            .copy_from_slice(name.as_bytes());
        Some(InterfaceName {
            bytes,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Made from a `&str` cut at its own length: always whole UTF-8.
        std::str::from_utf8(self.bytes.get(..usize::from(self.len)).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl fmt::Debug for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Index(index) => write!(f, "{index}"),
            Zone::Name(name) => f.write_str(name.as_str()),
        }
    }
}

impl Target {
    /// A socket's own address, port and protocol, as `who ADDRESS:PORT` would name it.
    pub fn of_socket(socket: &crate::core::model::Socket) -> Target {
        let scope_id = match socket.local {
            SocketAddr::V6(v6) => v6.scope_id(),
            SocketAddr::V4(_) => 0,
        };
        Target {
            proto: socket.proto,
            address: socket.local.ip(),
            address_given: true,
            port: socket.local.port(),
            zone: None,
            scope_id,
        }
    }

    /// The address to bind or connect to: with its scope id, without which the kernel refuses
    /// a link-local address (EINVAL).
    pub fn socket_address(&self) -> SocketAddr {
        match self.address {
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, self.port, 0, self.scope_id)),
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), self.port),
        }
    }

    /// A link-local address asked without a zone: a bind or connect to it fails with EINVAL.
    pub fn lacks_zone(&self) -> bool {
        matches!(self.address, IpAddr::V6(v6) if needs_zone(&v6)) && self.zone.is_none()
    }

    /// Finds the zone's interface among `interfaces` (index and name, of the namespace asked
    /// about): its index becomes the scope id, and a zone given by index is shown by name. An
    /// interface that is not there is named in the error.
    pub fn resolve(mut self, interfaces: &[(u32, String)]) -> Result<Target, String> {
        let Some(zone) = self.zone else {
            return Ok(self);
        };
        let (index, name) = zone
            .find(interfaces)
            .ok_or_else(|| zone.unknown(&self.to_string()))?;
        self.scope_id = index;
        if let Some(name) = InterfaceName::new(name) {
            self.zone = Some(Zone::Name(name));
        }
        Ok(self)
    }
}

impl Zone {
    /// The interface this zone names among `interfaces` (index and name, of one namespace).
    pub fn find(self, interfaces: &[(u32, String)]) -> Option<(u32, &str)> {
        interfaces
            .iter()
            .find(|(index, name)| match self {
                Zone::Index(wanted) => *index == wanted,
                Zone::Name(wanted) => name == wanted.as_str(),
            })
            .map(|(index, name)| (*index, name.as_str()))
    }

    /// The error for a zone no interface has: `of` is what the user wrote it in.
    pub fn unknown(self, of: &str) -> String {
        let what = match self {
            Zone::Index(index) => format!("no network interface has index {index}"),
            Zone::Name(name) => format!("no network interface is named {:?}", name.as_str()),
        };
        format!("{what} (the zone of {of}); see `ip link`")
    }
}

impl Target {
    /// The address and port as people write them, the zone by name where known:
    /// `[fe80::1%eth0]:53`, `127.0.0.1:53`.
    pub fn address_text(&self) -> String {
        match (self.address, self.zone) {
            (IpAddr::V4(v4), _) => format!("{v4}:{}", self.port),
            (IpAddr::V6(v6), None) => format!("[{v6}]:{}", self.port),
            (IpAddr::V6(v6), Some(zone)) => format!("[{v6}%{zone}]:{}", self.port),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address_text(), self.proto.as_str())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Target, String> {
        let (rest, proto) = match text.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Proto::Tcp),
            Some((rest, "udp")) => (rest, Proto::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "unknown protocol {other:?} in {text:?} (tcp or udp)"
                ));
            }
            None => (text, Proto::Tcp),
        };
        let (address, zone, port) = address_and_port(rest, text)?;
        Ok(Target {
            proto,
            address: address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            address_given: address.is_some(),
            port,
            zone,
            scope_id: 0,
        })
    }
}

/// `PORT`, `:PORT`, `ADDRESS:PORT`, `[IPv6]:PORT` or `[IPv6%ZONE]:PORT`, found in `text`.
fn address_and_port(rest: &str, text: &str) -> Result<(Option<IpAddr>, Option<Zone>, u16), String> {
    if zone_without_brackets(rest) {
        return Err(format!(
            "{text:?}: an address with a zone goes in brackets: [ADDRESS%ZONE]:PORT"
        ));
    }
    let (address, port) = split_address(rest)
        .ok_or_else(|| format!("{text:?} is not PORT, :PORT, ADDRESS:PORT or [IPv6]:PORT"))?;
    let (address, zone) = match address {
        None | Some("") => (None, None),
        Some(address) => {
            let (ip, zone) = address_and_zone(address, text)?;
            (Some(ip), zone)
        }
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{port:?} in {text:?} is not a port number (0-65535)"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port {port} is out of range (ports are 0-65535)"))?;
    Ok((address, zone, port))
}

/// An address with its zone, if it has one: `fe80::1%eth0`, `10.0.0.1`.
fn address_and_zone(address: &str, text: &str) -> Result<(IpAddr, Option<Zone>), String> {
    let (bare, zone) = match address.split_once('%') {
        Some((bare, zone)) if bare.contains('%') || zone.contains('%') => {
            return Err(format!("{bare:?} in {text:?} has more than one zone (%)"));
        }
        Some((bare, zone)) => (bare, Some(zone)),
        None => (address, None),
    };
    let ip = bare
        .parse::<IpAddr>()
        .map_err(|_| format!("{bare:?} in {text:?} is not an IPv4 or IPv6 address"))?;
    let zone = zone.map(|zone| parse_zone(ip, zone, text)).transpose()?;
    Ok((ip, zone))
}

/// One end of a connection, as the listing's argument names it: `127.0.0.1:8080`,
/// `[::1]:8080`, `[fe80::1%eth0]:53`, `:8080` or an address alone (`10.0.0.5`, `::1`,
/// `[fe80::1%eth0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Option<IpAddr>,
    /// The interface of a link-local address.
    pub zone: Option<Zone>,
    pub port: Option<u16>,
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        let text = text.trim();
        let alone = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            Some(inner) => Some(inner),
            None => {
                (!zone_without_brackets(text) && text.parse::<IpAddr>().is_ok()).then_some(text)
            }
        };
        if let Some(address) = alone {
            let (ip, zone) = address_and_zone(address, text)?;
            return Ok(Endpoint {
                address: Some(ip),
                zone,
                port: None,
            });
        }
        if !text.contains(':') {
            return Err(format!(
                "{text:?} is not a port list, :PORT, ADDRESS, ADDRESS:PORT or [IPv6]:PORT"
            ));
        }
        let (address, zone, port) = address_and_port(text, text)?;
        Ok(Endpoint {
            address,
            zone,
            port: Some(port),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let address = match (self.address, self.zone) {
            (None, _) => String::new(),
            (Some(IpAddr::V4(v4)), _) => v4.to_string(),
            (Some(IpAddr::V6(v6)), None) => format!("[{v6}]"),
            (Some(IpAddr::V6(v6)), Some(zone)) => format!("[{v6}%{zone}]"),
        };
        match self.port {
            Some(port) => write!(f, "{address}:{port}"),
            None => f.write_str(&address),
        }
    }
}

/// `fe80::1%eth0:80`: a zone outside brackets.
fn zone_without_brackets(text: &str) -> bool {
    text.contains('%') && !text.starts_with('[')
}

/// The zone after `%`: an interface index (`2`) or name (`eth0`), only on an address that
/// needs one (link-local).
fn parse_zone(ip: IpAddr, zone: &str, text: &str) -> Result<Zone, String> {
    let IpAddr::V6(v6) = ip else {
        return Err(format!(
            "{text:?}: a zone (%INTERFACE) belongs to a link-local IPv6 address, not to {ip}"
        ));
    };
    if !needs_zone(&v6) {
        return Err(format!(
            "{text:?}: {v6} is not link-local: a zone (%INTERFACE) belongs only to link-local \
             addresses (fe80::/10), which the kernel binds only together with their interface"
        ));
    }
    if zone.is_empty() {
        return Err(format!(
            "{text:?}: the zone after % is empty: name the interface, [{v6}%eth0]"
        ));
    }
    if zone.bytes().all(|b| b.is_ascii_digit()) {
        return match zone.parse::<u32>() {
            Ok(index) if index > 0 => Ok(Zone::Index(index)),
            _ => Err(format!(
                "{text:?}: zone {zone} is not an interface index (1 and up)"
            )),
        };
    }
    if zone.contains(['/', ' ', ':', ']']) {
        return Err(format!("{text:?}: {zone:?} is not an interface name"));
    }
    InterfaceName::new(zone).map(Zone::Name).ok_or_else(|| {
        format!(
            "{text:?}: {zone:?} is not an interface name (at most {} characters)",
            InterfaceName::MAX
        )
    })
}

/// `80` -> (None, "80"); `:80` -> (Some(""), "80"); `1.2.3.4:80`; `[::1]:80`.
fn split_address(text: &str) -> Option<(Option<&str>, &str)> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (address, port) = bracketed.split_once("]:")?;
        return Some((Some(address), port));
    }
    match text.rsplit_once(':') {
        // A bare IPv6 address without brackets is ambiguous: insist on them.
        Some((address, _)) if address.contains(':') => None,
        Some((address, port)) => Some((Some(address), port)),
        None => Some((None, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_documented_form_parses() {
        let plain = target("8080");
        assert_eq!(
            (plain.proto, plain.port, plain.address_given),
            (Proto::Tcp, 8080, false)
        );
        assert_eq!(plain.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(target("8080/udp").proto, Proto::Udp);
        assert_eq!(target(":8080").port, 8080);
        let v4 = target("127.0.0.1:8080");
        assert_eq!(
            (v4.address.to_string(), v4.address_given),
            ("127.0.0.1".into(), true)
        );
        assert_eq!(target("[::1]:8080").address.to_string(), "::1");
        assert!(target("0.0.0.0:8080").address_given);
        assert_eq!(target("[::]:53/udp").proto, Proto::Udp);
        assert_eq!(target("[::1]:8080").to_string(), "[::1]:8080/tcp");
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        let error = |text: &str| text.parse::<Target>().expect_err(text);
        assert!(error("70000").contains("out of range"));
        assert!(error("abc").contains("not a port number"));
        assert!(error("1.2.3:80").contains("not an IPv4 or IPv6 address"));
        assert!(error("80/sctp").contains("unknown protocol"));
        assert!(error("::1:80").contains("[IPv6]:PORT"));
        assert!(error("[::1]80").contains("[IPv6]:PORT"));
        assert!(error("").contains("not a port number"));
    }

    #[test]
    fn a_link_local_target_keeps_its_zone_by_name_or_index() {
        let named = target("[fe80::7c4b:a1ff:fec6:90b1%va]:53/udp");
        assert_eq!(named.address.to_string(), "fe80::7c4b:a1ff:fec6:90b1");
        assert_eq!(
            (named.proto, named.port, named.address_given),
            (Proto::Udp, 53, true)
        );
        assert_eq!(
            named.zone,
            Some(Zone::Name(InterfaceName::new("va").unwrap()))
        );
        assert_eq!(named.to_string(), "[fe80::7c4b:a1ff:fec6:90b1%va]:53/udp");
        assert!(!named.lacks_zone());
        let indexed = target("[fe80::1%2]:53");
        assert_eq!(indexed.zone, Some(Zone::Index(2)));
        assert_eq!(indexed.to_string(), "[fe80::1%2]:53/tcp");
        assert!(target("[ff02::fb%eth0]:5353/udp").zone.is_some());
        // Without a zone it parses, and is known to need one.
        let bare = target("[fe80::1]:53");
        assert_eq!((bare.zone, bare.lacks_zone()), (None, true));
        assert!(!target("[::1]:53").lacks_zone() && !target("53").lacks_zone());
    }

    #[test]
    fn a_zone_is_resolved_to_its_interface_index_for_the_bind() {
        let interfaces = [(1, "lo".to_string()), (7, "va".to_string())];
        let named = target("[fe80::1%va]:53").resolve(&interfaces).unwrap();
        assert_eq!(named.scope_id, 7);
        assert_eq!(named.socket_address().to_string(), "[fe80::1%7]:53");
        let indexed = target("[fe80::1%7]:53").resolve(&interfaces).unwrap();
        assert_eq!(indexed.scope_id, 7);
        // Shown by name once known.
        assert_eq!(indexed.to_string(), "[fe80::1%va]:53/tcp");
        let unknown = target("[fe80::1%eth9]:53")
            .resolve(&interfaces)
            .unwrap_err();
        assert!(
            unknown.contains("no network interface is named \"eth9\""),
            "{unknown}"
        );
        let unknown = target("[fe80::1%9]:53").resolve(&interfaces).unwrap_err();
        assert!(
            unknown.contains("no network interface has index 9"),
            "{unknown}"
        );
        // No zone: nothing to find, and the address is bound as it is.
        let plain = target("127.0.0.1:53").resolve(&[]).unwrap();
        assert_eq!(plain.socket_address().to_string(), "127.0.0.1:53");
        assert_eq!(target("[::1]:53").socket_address().to_string(), "[::1]:53");
    }

    #[test]
    fn bad_zones_say_what_is_wrong() {
        let error = |text: &str| text.parse::<Target>().expect_err(text);
        assert!(error("127.0.0.1%eth0:53").contains("in brackets"));
        assert!(error("fe80::1%eth0:53").contains("in brackets"));
        assert!(error("[::1%lo]:53").contains("not link-local"));
        assert!(error("[2001:db8::1%eth0]:53").contains("not link-local"));
        assert!(error("[fe80::1%]:53").contains("empty"));
        assert!(error("[fe80::1%0]:53").contains("not an interface index"));
        assert!(error("[fe80::1%99999999999]:53").contains("not an interface index"));
        assert!(error("[fe80::1%a%b]:53").contains("more than one zone"));
        assert!(error("[fe80::1%averyveryverylongname]:53").contains("at most 15"));
        assert!(error("[fe80::1%e:th]:53").contains("not an interface name"));
        assert!(error("[fe80::x%eth0]:53").contains("not an IPv4 or IPv6 address"));
    }
}
