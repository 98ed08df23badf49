//! Whether `portstat serve` keeps its memory flat (issue 17): inside the bench's private
//! network namespace, 1,000 TCP listeners, a `serve` that scans as often as it allows
//! (`--min-interval 10ms`), 1,000 scrapes over HTTP, and the server's resident set size read from
//! `/proc/PID/status` along the way.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct ServeMemory {
    pub listeners: usize,
    /// (scrapes done, RSS in KiB after them).
    pub samples: Vec<(usize, u64)>,
}

impl ServeMemory {
    pub fn section(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "## Serve memory\n\n`portstat serve --min-interval 10ms` (the least it takes: a \
             fresh scan for every scrape 10 ms or more after the last) with {} TCP listeners in the namespace, scraped over HTTP one after \
             another (`xtask/src/serve_memory.rs`); its resident set size:\n",
            self.listeners
        );
        let _ = writeln!(text, "| scrapes | RSS (MiB) |\n|---:|---:|");
        for (scrapes, kib) in &self.samples {
            let _ = writeln!(text, "| {scrapes} | {:.1} |", *kib as f64 / 1024.0);
        }
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            let _ = writeln!(
                text,
                "\nFrom scrape {} to scrape {}: {:+.1} MiB.",
                first.0,
                last.0,
                (last.1 as f64 - first.1 as f64) / 1024.0
            );
        }
        text
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("serve's status: {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no VmRSS in serve's status".to_string())
}

fn scrape(address: SocketAddr) -> Result<usize, String> {
    let mut stream =
        TcpStream::connect(address).map_err(|error| format!("connect to serve: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|error| error.to_string())?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .map_err(|error| format!("scrape: {error}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|error| format!("scrape: {error}"))?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "serve answered {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        ));
    }
    Ok(answer.len())
}

/// Measures in the calling process's (private) network namespace.
pub fn measure(portstat: &Path, scrapes: usize) -> Result<ServeMemory, String> {
    const LISTENERS: usize = 1000;
    let _listeners: Vec<TcpListener> = (0..LISTENERS)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<_, _>>()
        .map_err(|error| format!("listeners: {error}"))?;
    let mut child = Command::new(portstat)
        .args(["serve", "--listen", "127.0.0.1:0", "--min-interval", "10ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("portstat serve: {error}"))?;
    let stdout = child.stdout.take();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout.ok_or("serve's stdout")?)
        .read_line(&mut line)
        .map_err(|error| format!("serve's first line: {error}"))?;
    let address: SocketAddr = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|address| address.parse().ok())
        .ok_or_else(|| format!("serve said {line:?}"))?;
    let checkpoints = [10, 100, 250, 500, 750, scrapes];
    let mut samples = Vec::new();
    for done in 1..=scrapes {
        scrape(address)?;
        if checkpoints.contains(&done) {
            samples.push((done, rss_kib(server.0.id())?));
        }
    }
    Ok(ServeMemory {
        listeners: LISTENERS,
        samples,
    })
}
