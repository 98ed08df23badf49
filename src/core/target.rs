//! What `portstat who` was asked about: `8080`, `8080/udp`, `:8080`, `127.0.0.1:8080`,
//! `[::1]:8080`, `0.0.0.0:8080`, each optionally followed by `/tcp` or `/udp`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::core::model::Proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub proto: Proto,
    /// The address a new server would bind. Without one, the IPv4 wildcard (what `listen 8080`
    /// means to most servers).
    pub address: IpAddr,
    /// Whether the user named the address (`who 127.0.0.1:80`) or only the port (`who 80`).
    pub address_given: bool,
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(v4) => write!(f, "{v4}:{}/{}", self.port, self.proto.as_str()),
            IpAddr::V6(v6) => write!(f, "[{v6}]:{}/{}", self.port, self.proto.as_str()),
        }
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
        let (address, port) = split_address(rest)
            .ok_or_else(|| format!("{text:?} is not PORT, :PORT, ADDRESS:PORT or [IPv6]:PORT"))?;
        let address =
            match address {
                None | Some("") => None,
                Some(address) => Some(address.parse::<IpAddr>().map_err(|_| {
                    format!("{address:?} in {text:?} is not an IPv4 or IPv6 address")
                })?),
            };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{port:?} in {text:?} is not a port number (0-65535)"
            ));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("port {port} is out of range (ports are 0-65535)"))?;
        Ok(Target {
            proto,
            address: address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            address_given: address.is_some(),
            port,
        })
    }
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
}
