//! Asking the kernel directly: a test bind on the asked address (released at once, never
//! listened on) and, on request, a connection attempt like `nc -z`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, SockAddr, Socket, Type};

use super::target::Target;
use crate::model::Proto;

/// How one bind attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindOutcome {
    Bound,
    /// EADDRINUSE
    InUse,
    /// EACCES: a privileged port without the right to bind it.
    PermissionDenied,
    /// EADDRNOTAVAIL: the address is not one of this host's.
    NotAvailable,
    Failed(String),
}

impl BindOutcome {
    pub fn describe(&self) -> String {
        match self {
            BindOutcome::Bound => "bound".into(),
            BindOutcome::InUse => "address already in use (EADDRINUSE)".into(),
            BindOutcome::PermissionDenied => "permission denied (EACCES)".into(),
            BindOutcome::NotAvailable => "address not available (EADDRNOTAVAIL)".into(),
            BindOutcome::Failed(error) => error.clone(),
        }
    }
}

/// A server's two usual ways to bind: with and without SO_REUSEADDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindTest {
    pub address: String,
    pub without_reuseaddr: BindOutcome,
    pub with_reuseaddr: BindOutcome,
}

pub fn test_bind(target: &Target) -> BindTest {
    let address = SocketAddr::new(target.address, target.port);
    BindTest {
        address: crate::render::endpoint(address),
        without_reuseaddr: try_bind(target.proto, address, false),
        with_reuseaddr: try_bind(target.proto, address, true),
    }
}

fn try_bind(proto: Proto, address: SocketAddr, reuse_address: bool) -> BindOutcome {
    let kind = match proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let attempt = || -> io::Result<()> {
        let socket = Socket::new(Domain::for_address(address), kind, None)?;
        socket.set_reuse_address(reuse_address)?;
        socket.bind(&SockAddr::from(address))
        // Dropped here: closed at once, never listened on.
    };
    match attempt() {
        Ok(()) => BindOutcome::Bound,
        Err(error) => match error.kind() {
            io::ErrorKind::AddrInUse => BindOutcome::InUse,
            io::ErrorKind::PermissionDenied => BindOutcome::PermissionDenied,
            io::ErrorKind::AddrNotAvailable => BindOutcome::NotAvailable,
            _ => BindOutcome::Failed(error.to_string()),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectOutcome {
    Accepted,
    Refused,
    TimedOut,
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectTest {
    pub address: String,
    pub outcome: ConnectOutcome,
    /// How long the attempt took, in milliseconds.
    pub millis: f64,
}

/// Tries a TCP connection the way `nc -z` does. A wildcard target is tried on loopback of its
/// family: the wildcard itself is not an address one can connect to.
pub fn test_connect(target: &Target, timeout: Duration) -> ConnectTest {
    let host = match target.address {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let address = SocketAddr::new(host, target.port);
    let started = Instant::now();
    let outcome = match std::net::TcpStream::connect_timeout(&address, timeout) {
        Ok(_) => ConnectOutcome::Accepted,
        Err(error) => match error.kind() {
            io::ErrorKind::ConnectionRefused => ConnectOutcome::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectOutcome::TimedOut,
            _ => ConnectOutcome::Failed(error.to_string()),
        },
    };
    ConnectTest {
        address: crate::render::endpoint(address),
        outcome,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        text.parse().expect("valid target")
    }

    #[test]
    fn bind_test_sees_a_listener_and_a_free_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let held = test_bind(&target(&format!("127.0.0.1:{port}")));
        assert_eq!(held.without_reuseaddr, BindOutcome::InUse);
        assert_eq!(held.with_reuseaddr, BindOutcome::InUse);
        drop(listener);
        let free = test_bind(&target(&format!("127.0.0.1:{port}")));
        assert_eq!(free.with_reuseaddr, BindOutcome::Bound);
    }

    #[test]
    fn bind_test_on_a_foreign_address_is_not_available() {
        // 192.0.2.0/24 is TEST-NET-1: never an address of this host. Nothing is sent.
        let foreign = test_bind(&target("192.0.2.1:8080"));
        assert_eq!(foreign.without_reuseaddr, BindOutcome::NotAvailable);
    }

    #[test]
    fn connect_test_tells_accepted_from_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let open = test_connect(&target(&format!(":{port}")), Duration::from_secs(1));
        assert_eq!(open.outcome, ConnectOutcome::Accepted);
        assert_eq!(open.address, format!("127.0.0.1:{port}"));
        drop(listener);
        let closed = test_connect(
            &target(&format!("127.0.0.1:{port}")),
            Duration::from_secs(1),
        );
        assert_eq!(closed.outcome, ConnectOutcome::Refused);
    }
}
