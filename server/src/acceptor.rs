//! The acceptor thread: accepts connections and hands each to the least-loaded worker,
//! backs off on accept errors such as EMFILE, and logs what the server turns away.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Poll, Token};

use crate::worker::{Shared, WorkerMsg};

/// The listener's token in the acceptor's `Poll`.
pub(crate) const LISTENER: Token = Token(0);
/// The acceptor waker's token.
pub(crate) const ACCEPTOR_WAKER: Token = Token(1);

/// First pause after an accept error such as EMFILE; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Connections accepted past `--max-connections` that may wait at once to be told
/// so in their own framing; beyond it newcomers are closed without a word.
const MAX_REJECTING: usize = 256;

/// How often, at most, the acceptor logs what was turned away or held back.
const NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// Counters the once-a-second notice compares with the last one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Turned {
    server_full: u64,
    accept_errors: u64,
    rate_limited: u64,
}

/// Accepts connections and hands each to a worker.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) poll: Poll,
    pub(crate) shared: Arc<Shared>,
    pub(crate) next_worker: usize,
}

impl Acceptor {
    /// Runs until a shutdown begins. Returns an error if its `Poll` failed.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut backoff: Option<Duration> = None;
        let log_interval = self.shared.config.log_interval;
        let mut next_log = Instant::now() + log_interval;
        let mut next_notice = Instant::now() + NOTICE_INTERVAL;
        let mut turned = self.turned();
        let mut last = (0u64, 0u64, Instant::now());
        loop {
            let now = Instant::now();
            let mut timeout = next_notice.saturating_duration_since(now);
            if let Some(b) = backoff {
                timeout = timeout.min(b);
            }
            if !log_interval.is_zero() {
                timeout = timeout.min(next_log.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            if self.shared.shutting_down() {
                break;
            }
            backoff = self.accept_all(backoff);
            let now = Instant::now();
            if now >= next_notice {
                turned = self.notice(turned);
                next_notice = now + NOTICE_INTERVAL;
            }
            if !log_interval.is_zero() && now >= next_log {
                last = self.log_summary(last, now);
                next_log = now + log_interval;
            }
        }
        tracing::info!("acceptor stopped");
        Ok(())
    }

    fn turned(&self) -> Turned {
        let stats = &self.shared.stats;
        Turned {
            server_full: stats.refused.load(Ordering::Relaxed)
                + stats.closes(crate::stats::CloseReason::ServerFull),
            accept_errors: stats.accept_errors.load(Ordering::Relaxed),
            rate_limited: stats.rate_limited(),
        }
    }

    /// Logs, at most once a second, how many connections were turned away or held
    /// back since the last notice.
    fn notice(&self, before: Turned) -> Turned {
        let now = self.turned();
        let full = now.server_full - before.server_full;
        if full > 0 {
            tracing::warn!(
                count = full,
                max_connections = self.shared.config.max_connections,
                "turned connections away: server full"
            );
        }
        let errors = now.accept_errors - before.accept_errors;
        if errors > 0 {
            tracing::warn!(
                count = errors,
                "accept failed (out of file descriptors?); backing off"
            );
        }
        let limited = now.rate_limited - before.rate_limited;
        if limited > 0 {
            tracing::warn!(
                count = limited,
                rate_limit = self.shared.config.rate_limit,
                "clients held back by the rate limit"
            );
        }
        now
    }

    /// Accepts until the listener would block. Returns the backoff to wait before the
    /// next attempt after an error, `None` when all went well.
    fn accept_all(&mut self, backoff: Option<Duration>) -> Option<Duration> {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    self.hand_off(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_peer_error(&e) => {}
                Err(e) => {
                    let next = backoff.map_or(MIN_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                    self.shared
                        .stats
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("accept failed: {e}; retrying in {next:?}");
                    return Some(next);
                }
            }
        }
    }

    fn hand_off(&mut self, stream: mio::net::TcpStream, peer: SocketAddr) {
        let shared = Arc::clone(&self.shared);
        let admission = &shared.admission;
        let reject = admission.open() >= shared.config.max_connections;
        if reject && admission.rejecting() >= MAX_REJECTING {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let permit = admission.admit(reject);
        let worker = self.pick_worker();
        let msg = WorkerMsg::Accept {
            stream,
            peer,
            permit,
        };
        if shared.workers[worker].send(msg).is_err() {
            // The message, its socket and its permit are dropped together.
            tracing::error!(worker, "worker is gone; connection from {peer} dropped");
        }
    }

    /// The least-loaded worker, scanning from a rotating start so ties spread evenly.
    fn pick_worker(&mut self) -> usize {
        let n = self.shared.workers.len();
        let start = self.next_worker;
        self.next_worker = (self.next_worker + 1) % n;
        (0..n)
            .map(|i| (start + i) % n)
            .min_by_key(|&w| {
                self.shared.stats.workers[w]
                    .connections
                    .load(Ordering::Relaxed)
            })
            .unwrap_or(0)
    }

    fn log_summary(&self, last: (u64, u64, Instant), now: Instant) -> (u64, u64, Instant) {
        let snapshot = self.shared.stats.snapshot();
        let get = |name: &str| {
            snapshot
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| *v)
        };
        let (msgs_in, msgs_out) = (get("messages_in"), get("messages_out"));
        let secs = now
            .saturating_duration_since(last.2)
            .as_secs_f64()
            .max(1e-3);
        tracing::info!(
            connections = get("connections"),
            in_per_s = ((msgs_in - last.0) as f64 / secs).round(),
            out_per_s = ((msgs_out - last.1) as f64 / secs).round(),
            total = get("connections_total"),
            "summary"
        );
        (msgs_in, msgs_out, now)
    }
}

/// Accept errors caused by one peer (it gave up before we accepted): skip it.
fn is_transient_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
