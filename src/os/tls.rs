//! The TLS part of `--probe`: a ClientHello through rustls, whose verifier accepts any
//! certificate (it is only read, never trusted), the certificate's fields through x509-parser,
//! and a hand-made ClientHello offering only TLS 1.0 and 1.1, which rustls does not speak, to
//! learn whether a server still accepts them (read as far as its ServerHello).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::core::probe::{Certificate, KEEP_BYTES, TlsReading, TlsSession};

/// Accepts every certificate and signature: the probe reads the certificate to report on it,
/// and sends nothing after the handshake.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(rustls::ALL_VERSIONS)
                .map_err(|error| format!("TLS setup: {error}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// The stream, keeping the first bytes the server sends: when they are not TLS, they say what
/// the listener is (an HTTP server answers `400 Bad Request`).
struct Kept<'a> {
    stream: &'a mut TcpStream,
    kept: Vec<u8>,
}

impl Read for Kept<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.stream.read(buffer)?;
        let room = KEEP_BYTES.saturating_sub(self.kept.len()).min(read);
        self.kept.extend_from_slice(&buffer[..room]);
        Ok(read)
    }
}

impl Write for Kept<'_> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.stream.write(buffer)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A TLS handshake on `stream` (connected to `address`), within `timeout`.
pub fn handshake(stream: &mut TcpStream, address: SocketAddr, timeout: Duration) -> TlsReading {
    let config = match config() {
        Ok(config) => config,
        Err(why) => return TlsReading::Failed(why),
    };
    // An address as the name: rustls sends no SNI for it, and the verifier ignores it anyway.
    let name = ServerName::IpAddress(address.ip().into());
    let mut connection = match ClientConnection::new(config, name) {
        Ok(connection) => connection,
        Err(error) => return TlsReading::Failed(format!("TLS setup: {error}")),
    };
    let deadline = Instant::now() + timeout;
    let mut kept = Kept {
        stream,
        kept: Vec::new(),
    };
    while connection.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || kept.stream.set_read_timeout(Some(left)).is_err() {
            return TlsReading::Silent;
        }
        if let Err(error) = connection.complete_io(&mut kept) {
            return not_tls(&kept.kept, &error);
        }
    }
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "?".to_string(),
    };
    let cipher = connection
        .negotiated_cipher_suite()
        .map_or_else(|| "?".to_string(), |suite| format!("{:?}", suite.suite()));
    let certificate = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| certificate(der));
    TlsReading::Handshake(TlsSession {
        version,
        cipher,
        certificate,
        also_accepts: Vec::new(),
    })
}

/// Why a handshake failed, from the bytes the server sent.
fn not_tls(kept: &[u8], error: &io::Error) -> TlsReading {
    match kept {
        // An alert record: a TLS server that refused this ClientHello.
        [0x15, 0x03, _, _, _, _, description, ..] => TlsReading::Alert(*description),
        [0x16, 0x03, ..] => TlsReading::Failed(format!("TLS handshake failed: {error}")),
        [] if matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) =>
        {
            TlsReading::Silent
        }
        _ => TlsReading::NotTls(kept.to_vec()),
    }
}

/// The fields of a DER certificate; `None` when it does not parse.
pub fn certificate(der: &[u8]) -> Option<Certificate> {
    let (_, parsed) = X509Certificate::from_der(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(extension)) = parsed.subject_alternative_name() {
        for name in &extension.value.general_names {
            match name {
                GeneralName::DNSName(dns) => sans.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => sans.push(Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).ok()?).to_string()),
                    16 => sans.push(Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).ok()?).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let validity = parsed.validity();
    let self_signed = parsed.subject().as_raw() == parsed.issuer().as_raw()
        && parsed.verify_signature(None).is_ok();
    Some(Certificate {
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        sans,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        self_signed,
    })
}

/// A ClientHello offering TLS 1.1 at most, with the cipher suites TLS 1.0 and 1.1 servers
/// have: the server's ServerHello says which of the two it accepts, an alert that it takes
/// neither.
fn legacy_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02];
    // The random need not be random: nothing follows the ServerHello.
    hello.extend((0..32u8).map(|i| i.wrapping_mul(73).wrapping_add(11)));
    hello.push(0); // no session id
    let suites: [u16; 9] = [
        0xc014, 0xc013, 0xc00a, 0xc009, 0x0039, 0x0033, 0x0035, 0x002f, 0x000a,
    ];
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        hello.extend_from_slice(&suite.to_be_bytes());
    }
    hello.extend_from_slice(&[0x01, 0x00]); // compression: none
    let extensions: [u8; 18] = [
        // supported_groups: x25519, secp256r1, secp384r1
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18,
        // ec_point_formats: uncompressed
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,
    ];
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// The version and cipher suite of a ServerHello at the start of `reply`, if it holds one.
fn server_hello(reply: &[u8]) -> Option<(u16, u16)> {
    // Record header (5), handshake header (4), version (2), random (32), session id.
    let [0x16, 0x03, _, _, _, 0x02, _, _, _, major, minor, rest @ ..] = reply else {
        return None;
    };
    let session = usize::from(*rest.get(32)?);
    let suite = rest.get(33 + session..35 + session)?;
    Some((
        u16::from_be_bytes([*major, *minor]),
        u16::from_be_bytes([suite[0], suite[1]]),
    ))
}

/// Whether a server at `address` accepts TLS 1.0 or 1.1: the version it picked and its cipher
/// suite, or `None`.
pub fn legacy(stream: &mut TcpStream, timeout: Duration) -> Option<(String, String)> {
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream.write_all(&legacy_client_hello()).ok()?;
    let deadline = Instant::now() + timeout;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 512];
    while reply.len() < 5 + 4 + 2 + 32 + 1 + 32 + 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => reply.extend_from_slice(&buffer[..read]),
        }
        if reply.first() != Some(&0x16) {
            break;
        }
    }
    let (version, suite) = server_hello(&reply)?;
    let version = match version {
        0x0301 => "TLS1.0",
        0x0302 => "TLS1.1",
        _ => return None,
    };
    Some((version.to_string(), legacy_suite_name(suite)))
}

fn legacy_suite_name(suite: u16) -> String {
    match suite {
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA".into(),
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into(),
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA".into(),
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA".into(),
        0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA".into(),
        0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA".into(),
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA".into(),
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA".into(),
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA".into(),
        other => format!("0x{other:04x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_hello_is_well_formed() {
        let hello = legacy_client_hello();
        let record = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(hello.len(), 5 + record);
        let handshake = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(record, 4 + handshake);
        assert_eq!((hello[5], hello[9], hello[10]), (0x01, 0x03, 0x02));
    }

    #[test]
    fn a_server_hello_gives_version_and_suite() {
        let mut reply = vec![
            0x16, 0x03, 0x01, 0x00, 0x4a, 0x02, 0x00, 0x00, 0x46, 0x03, 0x01,
        ];
        reply.extend([7u8; 32]);
        reply.push(2);
        reply.extend([9, 9, 0xc0, 0x13, 0x00]);
        assert_eq!(server_hello(&reply), Some((0x0301, 0xc013)));
        assert_eq!(server_hello(&reply[..40]), None);
        assert_eq!(server_hello(b"HTTP/1.1 400 Bad Request\r\n"), None);
        assert_eq!(
            legacy_suite_name(0xc013),
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        );
    }

    #[test]
    fn what_a_failed_handshake_heard_says_what_it_was() {
        let timeout = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(not_tls(&[], &timeout), TlsReading::Silent);
        let closed = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(not_tls(&[], &closed), TlsReading::NotTls(Vec::new()));
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46];
        assert_eq!(not_tls(&alert, &closed), TlsReading::Alert(0x46));
        let http = b"HTTP/1.1 400 Bad Request\r\n";
        assert_eq!(not_tls(http, &closed), TlsReading::NotTls(http.to_vec()));
    }
}
