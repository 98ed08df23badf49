//! A small HTTP/1.1 server for `portstat serve`: hyper on a single-threaded tokio runtime.
//!
//! One thread does everything, so the handler (a scan) runs one request at a time and needs
//! no locking; connections wait on sockets, not on threads, so a slow or idle client costs a
//! few kilobytes, is cut off by the timeouts below and never delays another client's request
//! beyond the scan that is running.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

/// A request, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub accept: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// A client has this long to send a request's headers (also while a kept-alive connection
/// idles between requests).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// And no connection lasts longer, however it is used: a client that reads its answer
/// slowly is cut off here.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; the next are closed at once.
const MAX_CONNECTIONS: usize = 64;
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A bound listening socket, not yet serving.
pub struct Bound {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
}

/// Binds `address` (port 0: any free port).
pub fn bind(address: SocketAddr) -> Result<Bound> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("could not start the HTTP server's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(address))
        .with_context(|| format!("cannot listen on {address}"))?;
    Ok(Bound { runtime, listener })
}

impl Bound {
    pub fn local_address(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until the process ends, answering every request with `handler`.
    pub fn serve(self, handler: &mut dyn FnMut(&Request) -> Response) -> Result<()> {
        let Bound { runtime, listener } = self;
        let handler = RefCell::new(handler);
        runtime.block_on(async {
            let mut connections = FuturesUnordered::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else {
                            // Out of file descriptors, or a connection reset before it was
                            // accepted: a moment's pause, and on with the others.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        if connections.len() >= MAX_CONNECTIONS {
                            drop(stream);
                            continue;
                        }
                        connections.push(tokio::time::timeout(
                            CONNECTION_TIMEOUT,
                            serve_connection(stream, &handler),
                        ));
                    }
                    Some(_) = connections.next(), if !connections.is_empty() => {}
                }
            }
        })
    }
}

type Handler<'h> = RefCell<&'h mut dyn FnMut(&Request) -> Response>;

async fn serve_connection(stream: tokio::net::TcpStream, handler: &Handler<'_>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(|request: hyper::Request<Incoming>| {
        let asked = Request {
            method: request.method().as_str().to_string(),
            path: request.uri().path().to_string(),
            accept: request
                .headers()
                .get(ACCEPT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string),
        };
        let answer = (handler.borrow_mut())(&asked);
        async move {
            let mut response = hyper::Response::new(Full::new(Bytes::from(answer.body)));
            *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
            Ok::<_, Infallible>(response)
        }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
