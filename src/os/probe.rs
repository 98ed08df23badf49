//! Asking the kernel directly: a test bind (released at once, never listened on), a
//! connection attempt like `nc -z`, and `--probe`'s talk with a listener, in the calling
//! thread's network namespace.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex};
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

/// A part of one listener's probe, queued on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Connect, the banner wait and the ClientHellos: [`talk`].
    Talk,
    /// `HEAD / HTTP/1.0` on a new connection: [`ask_http`].
    Http,
}

/// Runs `talk` for every request, at most [`AT_ONCE`] at a time, each given the run's
/// deadline ([`TOTAL_CAP`] from now). A request's HTTP step, when its talk says one is due, is
/// queued behind every talk: the workers then end on short steps, not on a silent listener's
/// last two waits in a row. A talk not begun by the deadline is left unprobed, an HTTP step out
/// of time. Results are in the requests' order.
pub fn talk_to_all(
    requests: &[ProbeRequest],
    talk: impl Fn(&ProbeRequest, Step, &mut ProbeReading, Instant) -> Option<Step> + Sync,
) -> Vec<ProbeReading> {
    let deadline = Instant::now() + TOTAL_CAP;
    let queue = Mutex::new(Queue {
        steps: (0..requests.len())
            .map(|index| (index, Step::Talk))
            .collect(),
        running: 0,
    });
    let changed = Condvar::new();
    let results = Mutex::new(vec![ProbeReading::default(); requests.len()]);
    let work = || {
        loop {
            let (index, step) = {
                let mut queue = lock(&queue);
                loop {
                    if let Some(next) = queue.steps.pop_front() {
                        queue.running += 1;
                        break next;
                    }
                    // Nothing queued and no step running that could queue one: all done.
                    if queue.running == 0 {
                        return;
                    }
                    queue = changed
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            let mut reading = std::mem::take(&mut lock(&results)[index]);
            let next = match requests.get(index) {
                Some(request) if Instant::now() < deadline => {
                    talk(request, step, &mut reading, deadline)
                }
                _ => {
                    // A talk not begun is left unprobed; an HTTP request not sent is out of time.
                    reading.out_of_time |= step == Step::Http;
                    None
                }
            };
            lock(&results)[index] = reading;
            let mut queue = lock(&queue);
            queue.steps.extend(next.map(|next| (index, next)));
            queue.running -= 1;
            drop(queue);
            changed.notify_all();
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

/// The steps waiting for a worker, and how many are being taken (each may queue another).
struct Queue {
    steps: VecDeque<(usize, Step)>,
    running: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One step of a listener's probe, into `reading`; the step due next, if any.
pub fn take_step(
    request: &ProbeRequest,
    step: Step,
    reading: &mut ProbeReading,
    deadline: Instant,
) -> Option<Step> {
    match step {
        Step::Talk => {
            *reading = talk(request, deadline);
            http_due(request, reading).then_some(Step::Http)
        }
        Step::Http => {
            reading.http = Some(ask_http(request.address, deadline));
            None
        }
    }
}

/// One listener, as its request says: connect, listen for [`BANNER_WAIT`], then (if it said
/// nothing and the request allows) a TLS ClientHello on the same connection, and to a TLS server
/// one offering TLS 1.0/1.1 only on a new one. Every connection is closed as soon as its step
/// is done. The HTTP request is a step of its own ([`ask_http`]).
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
    if matches!(handshake, TlsReading::Silent) && left(STEP_TIMEOUT).is_zero() {
        reading.out_of_time = true;
    }
    reading.tls = Some(handshake);
    reading
}

/// Whether a talk leaves the listener's HTTP request to be sent: the request allows it and the
/// ClientHello got no answer (neither TLS nor anything else).
fn http_due(request: &ProbeRequest, reading: &ProbeReading) -> bool {
    request.send == Sending::TlsThenHttp
        && !reading.out_of_time
        && match &reading.tls {
            Some(TlsReading::Silent) => true,
            Some(TlsReading::NotTls(reply)) => reply.is_empty(),
            _ => false,
        }
}

/// `HEAD / HTTP/1.0` on a new connection to `address`, and the first words of the reply.
pub fn ask_http(address: SocketAddr, deadline: Instant) -> Vec<u8> {
    let left = |limit: Duration| limit.min(deadline.saturating_duration_since(Instant::now()));
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
        .unwrap_or_default()
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
    use std::sync::atomic::{AtomicUsize, Ordering};

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
    fn every_talk_is_done_and_each_http_step_after_its_own_talk() {
        let requests: Vec<ProbeRequest> = (1..=40)
            .map(|port| ProbeRequest {
                netns: None,
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                send: if port % 3 == 0 {
                    Sending::TlsThenHttp
                } else {
                    Sending::Tls
                },
            })
            .collect();
        let steps = Mutex::new(Vec::new());
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let readings = talk_to_all(&requests, |request, step, reading, _| {
            let port = request.address.port();
            steps.lock().expect("steps").push((port, step));
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            match step {
                Step::Talk => {
                    assert_eq!(*reading, ProbeReading::default());
                    reading.banner = port.to_string().into_bytes();
                    (request.send == Sending::TlsThenHttp).then_some(Step::Http)
                }
                Step::Http => {
                    assert_eq!(reading.banner, port.to_string().into_bytes());
                    reading.http = Some(b"HTTP/1.0 200 OK".to_vec());
                    None
                }
            }
        });
        for (request, reading) in requests.iter().zip(&readings) {
            let port = request.address.port();
            assert_eq!(reading.banner, port.to_string().into_bytes());
            assert_eq!(reading.http.is_some(), port % 3 == 0, "port {port}");
        }
        let most = most.into_inner();
        assert!((2..=AT_ONCE).contains(&most), "{most} steps at once");
        let steps = steps.into_inner().expect("steps");
        assert_eq!(steps.len(), 40 + 13);
        for port in (3..=40).step_by(3) {
            let at = |step| steps.iter().position(|s| *s == (port, step));
            assert!(at(Step::Talk) < at(Step::Http), "port {port}: {steps:?}");
        }
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
