//! Asking the kernel directly: a test bind (released at once, never listened on) and a
//! connection attempt like `nc -z`, in the calling thread's network namespace.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::core::model::{Proto, needs_zone};
use crate::core::verdict::{BindOutcome, ConnectOutcome};

pub fn try_bind(proto: Proto, address: SocketAddr, reuse_address: bool) -> BindOutcome {
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
            _ => BindOutcome::Failed(explain(address, error)),
        },
    }
}

/// A link-local address without a zone is refused with EINVAL, which `Invalid argument` does
/// not explain: say what the kernel wants instead.
fn explain(address: SocketAddr, error: io::Error) -> String {
    match address {
        SocketAddr::V6(v6)
            if error.kind() == io::ErrorKind::InvalidInput
                && v6.scope_id() == 0
                && needs_zone(v6.ip()) =>
        {
            format!(
                "{} is link-local: the kernel needs its interface as a zone to use it (EINVAL \
                 without one); ask about [{}%INTERFACE]:{}",
                v6.ip(),
                v6.ip(),
                v6.port()
            )
        }
        _ => error.to_string(),
    }
}

pub fn connect(address: SocketAddr, timeout: Duration) -> (ConnectOutcome, Duration) {
    let started = Instant::now();
    let outcome = match std::net::TcpStream::connect_timeout(&address, timeout) {
        Ok(_) => ConnectOutcome::Accepted,
        Err(error) => match error.kind() {
            io::ErrorKind::ConnectionRefused => ConnectOutcome::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectOutcome::TimedOut,
            _ => ConnectOutcome::Failed(explain(address, error)),
        },
    };
    (outcome, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn bind_test_sees_a_listener_and_a_free_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let held = listener.local_addr().expect("address");
        assert_eq!(try_bind(Proto::Tcp, held, false), BindOutcome::InUse);
        assert_eq!(try_bind(Proto::Tcp, held, true), BindOutcome::InUse);
        drop(listener);
        assert_eq!(try_bind(Proto::Tcp, held, true), BindOutcome::Bound);
    }

    #[test]
    fn bind_test_on_a_foreign_address_is_not_available() {
        // 192.0.2.0/24 is TEST-NET-1: never an address of this host. Nothing is sent.
        let foreign = address("192.0.2.1:8080");
        assert_eq!(
            try_bind(Proto::Tcp, foreign, false),
            BindOutcome::NotAvailable
        );
    }

    #[test]
    fn a_link_local_bind_without_a_zone_says_the_kernel_needs_one() {
        // An unprivileged port: below 1024 a user without the capability gets EACCES first.
        let outcome = try_bind(Proto::Udp, address("[fe80::1]:5353"), false);
        let BindOutcome::Failed(message) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            message.contains("needs its interface as a zone"),
            "{message}"
        );
        assert!(message.contains("[fe80::1%INTERFACE]:5353"), "{message}");
    }

    #[test]
    fn connect_test_tells_accepted_from_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("address");
        assert_eq!(
            connect(open, Duration::from_secs(1)).0,
            ConnectOutcome::Accepted
        );
        drop(listener);
        assert_eq!(
            connect(open, Duration::from_secs(1)).0,
            ConnectOutcome::Refused
        );
    }
}
