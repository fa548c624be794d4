//! The shutdown drain checker: clients that send numbered echoes at a steady rate until
//! the server shuts down, and check what a graceful shutdown promises. For each client:
//!
//! - replies arrive in request order with no gap (a gap would be a request the server
//!   read but whose reply it dropped, since later requests were answered);
//! - a `Shutdown` notice arrives after the last reply, and nothing after it;
//! - the server then closes the connection (EOF, or a reset when requests the server
//!   no longer read were still in its socket; counted apart).
//!
//! Requests sent after the server stopped reading get no reply; they were never accepted
//! (the socket buffer held them), and are reported as the unanswered tail. Whether the
//! server *read* any of those without answering cannot be told from outside; the
//! in-process test (`tests/drain.rs`) closes that gap by comparing with the server's own
//! `messages_in` / `messages_out` after it stopped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shared::{Frame, FrameDecoder, PROTOCOL_VERSION};

/// What to run.
#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Clients (two threads each).
    pub clients: usize,
    /// Echo requests per second per client.
    pub rate: f64,
    /// Give up (and fail) if the server has not shut down within this time.
    pub max_duration: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], shared::DEFAULT_PORT)),
            clients: 20,
            rate: 200.0,
            max_duration: Duration::from_secs(60),
        }
    }
}

/// What one client saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOutcome {
    /// Connected and welcomed.
    pub welcomed: bool,
    /// Echo requests completely written.
    pub sent: u64,
    /// Echo replies received.
    pub replies: u64,
    /// Replies whose sequence number was not the next expected one.
    pub out_of_order: u64,
    /// A `Shutdown` notice arrived.
    pub shutdown_seen: bool,
    /// Frames that arrived after the `Shutdown` notice.
    pub frames_after_shutdown: u64,
    /// The server closed the connection after the notice (EOF or reset).
    pub closed_after_shutdown: bool,
    /// The connection ended with a reset or another read error (after the notice this
    /// happens when our last requests were still unread in the server's socket).
    pub reset: bool,
    /// Error frames received.
    pub errors: u64,
}

/// What every client saw, summed, and the verdict.
#[derive(Debug, Clone, Default)]
pub struct DrainReport {
    /// Per client.
    pub clients: Vec<ClientOutcome>,
    /// How long it took.
    pub elapsed: Duration,
}

impl DrainReport {
    fn sum(&self, f: impl Fn(&ClientOutcome) -> u64) -> u64 {
        self.clients.iter().map(f).sum()
    }

    /// Echo requests written.
    pub fn sent(&self) -> u64 {
        self.sum(|c| c.sent)
    }

    /// Echo replies received.
    pub fn replies(&self) -> u64 {
        self.sum(|c| c.replies)
    }

    /// Problems found; empty when the shutdown kept every promise.
    pub fn problems(&self) -> Vec<String> {
        let n = self.clients.len() as u64;
        let mut problems = Vec::new();
        let count = |f: &dyn Fn(&ClientOutcome) -> bool| {
            self.clients.iter().filter(|c| f(c)).count() as u64
        };
        let welcomed = count(&|c| c.welcomed);
        if welcomed < n {
            problems.push(format!("{} of {n} clients were not welcomed", n - welcomed));
        }
        let ooo = self.sum(|c| c.out_of_order);
        if ooo > 0 {
            problems.push(format!("{ooo} replies out of order or missing"));
        }
        let notice = count(&|c| c.shutdown_seen);
        if notice < welcomed {
            problems.push(format!(
                "{} clients got no Shutdown notice",
                welcomed - notice
            ));
        }
        let after = self.sum(|c| c.frames_after_shutdown);
        if after > 0 {
            problems.push(format!("{after} frames arrived after a Shutdown notice"));
        }
        let closed = count(&|c| c.closed_after_shutdown);
        if closed < notice {
            problems.push(format!(
                "{} clients saw no close after the notice",
                notice - closed
            ));
        }
        let errors = self.sum(|c| c.errors);
        if errors > 0 {
            problems.push(format!("{errors} error frames"));
        }
        problems
    }
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |p: fn(&ClientOutcome) -> bool| self.clients.iter().filter(|c| p(c)).count();
        writeln!(
            f,
            "drain clients={} welcomed={} sent={} replies={} unanswered_tail={} \
             out_of_order={} shutdown_notices={} frames_after_shutdown={} \
             closed_after_notice={} resets={} errors={} elapsed_s={:.1}",
            self.clients.len(),
            count(|c| c.welcomed),
            self.sent(),
            self.replies(),
            self.sent().saturating_sub(self.replies()),
            self.sum(|c| c.out_of_order),
            count(|c| c.shutdown_seen),
            self.sum(|c| c.frames_after_shutdown),
            count(|c| c.closed_after_shutdown),
            count(|c| c.reset),
            self.sum(|c| c.errors),
            self.elapsed.as_secs_f64(),
        )?;
        let problems = self.problems();
        if problems.is_empty() {
            writeln!(f, "drain verdict=ok")
        } else {
            writeln!(f, "drain verdict=FAIL ({})", problems.join("; "))
        }
    }
}

/// Runs the clients until the server shuts down (or `max_duration` passes).
pub fn run(config: &DrainConfig) -> DrainReport {
    let start = Instant::now();
    let threads: Vec<_> = (0..config.clients)
        .map(|id| {
            let config = config.clone();
            std::thread::spawn(move || client(&config, id as u64))
        })
        .collect();
    let clients = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_default())
        .collect();
    DrainReport {
        clients,
        elapsed: start.elapsed(),
    }
}

fn encode(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    let _ = frame.encode(&mut out);
    out.freeze()
}

fn client(config: &DrainConfig, id: u64) -> ClientOutcome {
    let mut outcome = ClientOutcome::default();
    let deadline = Instant::now() + config.max_duration;
    let Ok(mut stream) = TcpStream::connect_timeout(&config.addr, Duration::from_secs(5)) else {
        return outcome;
    };
    let _ = stream.set_nodelay(true);
    let hello = encode(&Frame::Hello {
        version: PROTOCOL_VERSION,
    });
    if stream.write_all(&hello).is_err() {
        return outcome;
    }
    let Ok(writer_stream) = stream.try_clone() else {
        return outcome;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let welcomed = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let welcomed = Arc::clone(&welcomed);
        let interval = Duration::from_secs_f64(1.0 / config.rate.max(0.1));
        std::thread::spawn(move || write_echoes(writer_stream, id, interval, &stop, &welcomed))
    };
    read_replies(&mut stream, deadline, &mut outcome, &welcomed, &stop);
    stop.store(true, Ordering::Release);
    outcome.sent = writer.join().unwrap_or(0);
    outcome
}

/// Sends numbered echoes every `interval` (on a fixed schedule) until told to stop or a
/// write fails; returns how many were completely written.
fn write_echoes(
    mut stream: TcpStream,
    id: u64,
    interval: Duration,
    stop: &AtomicBool,
    welcomed: &AtomicBool,
) -> u64 {
    let mut seq = 0u64;
    let mut next = Instant::now();
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    while !stop.load(Ordering::Acquire) {
        if !welcomed.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
            next = Instant::now();
            continue;
        }
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&id.to_be_bytes());
        payload[8..].copy_from_slice(&seq.to_be_bytes());
        let frame = encode(&Frame::Echo {
            payload: Bytes::copy_from_slice(&payload),
        });
        if stream.write_all(&frame).is_err() {
            break;
        }
        seq += 1;
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    seq
}

fn read_replies(
    stream: &mut TcpStream,
    deadline: Instant,
    outcome: &mut ClientOutcome,
    welcomed: &AtomicBool,
    stop: &AtomicBool,
) {
    let mut decoder = FrameDecoder::new(64 << 20);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        loop {
            let frame = match decoder.decode() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => {
                    outcome.errors += 1;
                    return;
                }
            };
            if outcome.shutdown_seen {
                outcome.frames_after_shutdown += 1;
                continue;
            }
            match frame {
                Frame::Welcome { .. } => {
                    outcome.welcomed = true;
                    welcomed.store(true, Ordering::Release);
                }
                Frame::EchoReply { payload, .. } => {
                    let seq = payload
                        .get(8..16)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_be_bytes);
                    if seq != Some(outcome.replies) {
                        outcome.out_of_order += 1;
                    }
                    outcome.replies += 1;
                }
                Frame::Shutdown { .. } => {
                    // A client told of a shutdown stops sending.
                    outcome.shutdown_seen = true;
                    stop.store(true, Ordering::Release);
                }
                Frame::Ping { token } => {
                    let _ = stream.write_all(&encode(&Frame::Pong { token }));
                }
                Frame::Error { .. } => outcome.errors += 1,
                _ => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_secs(1))));
        match stream.read(&mut buf) {
            Ok(0) => {
                outcome.closed_after_shutdown = outcome.shutdown_seen;
                return;
            }
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                outcome.reset = true;
                outcome.closed_after_shutdown = outcome.shutdown_seen;
                return;
            }
        }
    }
}
