//! Asking the kernel directly: a test bind (released at once, never listened on), a
//! connection attempt like `nc -z`, and `--probe`'s talk with a listener, in the calling
//! thread's network namespace.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::tls;
use crate::core::model::{Proto, needs_zone};
use crate::core::probe::{
    AT_ONCE, BANNER_WAIT, KEEP_BYTES, ProbeReading, ProbeRequest, STEP_TIMEOUT, Sending, TOTAL_CAP,
    TlsReading,
};
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
    let outcome = match open(address, timeout) {
        Ok(_) => ConnectOutcome::Accepted,
        Err(outcome) => outcome,
    };
    (outcome, started.elapsed())
}

fn open(address: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectOutcome> {
    if timeout.is_zero() {
        return Err(ConnectOutcome::TimedOut);
    }
    TcpStream::connect_timeout(&address, timeout).map_err(|error| match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectOutcome::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectOutcome::TimedOut,
        _ => ConnectOutcome::Failed(explain(address, error)),
    })
}

/// Runs `talk` for every request, at most [`AT_ONCE`] at a time, each given the run's
/// deadline ([`TOTAL_CAP`] from now); a request not begun by then is left unprobed. Results are
/// in the requests' order.
pub fn talk_to_all(
    requests: &[ProbeRequest],
    talk: impl Fn(&ProbeRequest, Instant) -> ProbeReading + Sync,
) -> Vec<ProbeReading> {
    let deadline = Instant::now() + TOTAL_CAP;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![ProbeReading::default(); requests.len()]);
    let work = || {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(request) = requests.get(index) else {
                break;
            };
            if Instant::now() >= deadline {
                continue;
            }
            let reading = talk(request, deadline);
            results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)[index] = reading;
        }
    };
    std::thread::scope(|scope| {
        let workers = requests.len().min(AT_ONCE);
        // A host at its thread limit still gets its probes, fewer at once.
        for _ in 1..workers {
            if std::thread::Builder::new()
                .spawn_scoped(scope, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One listener, as its request says: connect, listen for [`BANNER_WAIT`], then (if it said
/// nothing and the request allows) a TLS ClientHello on the same connection, and an HTTP request
/// on a new one. Every connection is closed as soon as its step is done.
pub fn talk(request: &ProbeRequest, deadline: Instant) -> ProbeReading {
    let left = |limit: Duration| limit.min(deadline.saturating_duration_since(Instant::now()));
    let mut reading = ProbeReading::default();
    let address = request.address;
    let mut stream = match open(address, left(STEP_TIMEOUT)) {
        Ok(stream) => stream,
        Err(outcome) => {
            reading.connect = Some(outcome);
            return reading;
        }
    };
    reading.connect = Some(ConnectOutcome::Accepted);
    // Nothing waits to be sent: the ClientHello goes out at once, alone.
    let _ = stream.set_nodelay(true);
    let (banner, closed) = listen(&mut stream, left(BANNER_WAIT));
    reading.banner = banner;
    if !reading.banner.is_empty() || closed || request.send == Sending::Nothing {
        return reading;
    }
    if left(STEP_TIMEOUT).is_zero() {
        reading.out_of_time = true;
        return reading;
    }
    let mut handshake = tls::handshake(&mut stream, address, left(STEP_TIMEOUT));
    drop(stream);
    if matches!(handshake, TlsReading::Handshake(_) | TlsReading::Alert(_)) {
        // A second ClientHello, offering TLS 1.0 and 1.1 only, to a server known to be TLS.
        let old = open(address, left(STEP_TIMEOUT))
            .ok()
            .and_then(|mut stream| tls::legacy(&mut stream, left(STEP_TIMEOUT)));
        match (&mut handshake, old) {
            (TlsReading::Handshake(session), Some((version, _))) => {
                session.also_accepts.push(version);
            }
            (TlsReading::Alert(_), Some((version, cipher))) => {
                handshake = TlsReading::Handshake(crate::core::probe::TlsSession {
                    version,
                    cipher,
                    certificate: None,
                    also_accepts: Vec::new(),
                });
            }
            _ => {}
        }
    }
    let tried_http = request.send == Sending::TlsThenHttp
        && matches!(handshake, TlsReading::Silent | TlsReading::NotTls(_));
    if matches!(handshake, TlsReading::Silent) && left(STEP_TIMEOUT).is_zero() {
        reading.out_of_time = true;
    }
    let answered = matches!(&handshake, TlsReading::NotTls(reply) if !reply.is_empty());
    reading.tls = Some(handshake);
    if tried_http && !answered && !reading.out_of_time {
        reading.http = Some(
            open(address, left(STEP_TIMEOUT))
                .ok()
                .map(|mut stream| {
                    let sent = stream
                        .set_write_timeout(Some(left(STEP_TIMEOUT).max(Duration::from_millis(1))))
                        .and_then(|()| stream.write_all(b"HEAD / HTTP/1.0\r\n\r\n"));
                    match sent {
                        Ok(()) => listen(&mut stream, left(STEP_TIMEOUT)).0,
                        Err(_) => Vec::new(),
                    }
                })
                .unwrap_or_default(),
        );
    }
    reading
}

/// What the other end sends within `wait`, up to [`KEEP_BYTES`] or the end of its first line,
/// and whether it closed the connection.
fn listen(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + wait;
    let mut heard = Vec::new();
    let mut buffer = [0u8; KEEP_BYTES];
    while heard.len() < KEEP_BYTES && !heard.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buffer[..KEEP_BYTES - heard.len()]) {
            Ok(0) => return (heard, true),
            Ok(read) => heard.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                let closed = !matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                );
                return (heard, closed);
            }
        }
    }
    (heard, false)
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
