//! Server counters: per-worker atomics summed on demand, so workers never contend on a
//! shared cache line on the hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// Why a connection was closed. Every close has one; each is logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client said goodbye (`/quit` or a `Goodbye` frame).
    Goodbye,
    /// The client closed its side (EOF).
    Eof,
    /// The connection was reset or another I/O error occurred.
    Reset,
    /// The client broke the protocol (bad frame, over-long line, invalid UTF-8, ...).
    ProtocolError,
    /// The client's outbound queue passed `--max-pending`.
    SlowConsumer,
    /// The client was held back by the rate limit for `--flood-close-after` without a
    /// break.
    Flood,
    /// The client stayed silent past `--idle-timeout`.
    Idle,
    /// The server shut down.
    Shutdown,
    /// The server was at `--max-connections`.
    ServerFull,
    /// A frame or line stayed incomplete past `--frame-timeout`.
    StalledFrame,
    /// TLS port: the client spoke plaintext (its first byte was no TLS handshake).
    NotTls,
    /// TLS port: the client's bytes were not acceptable TLS (garbage, a bad or
    /// cut-off record, a failed handshake).
    TlsError,
    /// TLS port: the handshake did not finish within `--tls-handshake-timeout`.
    TlsHandshakeTimeout,
}

impl CloseReason {
    /// Every reason, in the order stats report them.
    pub(crate) const ALL: [CloseReason; 13] = [
        CloseReason::Goodbye,
        CloseReason::Eof,
        CloseReason::Reset,
        CloseReason::ProtocolError,
        CloseReason::SlowConsumer,
        CloseReason::Flood,
        CloseReason::Idle,
        CloseReason::Shutdown,
        CloseReason::ServerFull,
        CloseReason::StalledFrame,
        CloseReason::NotTls,
        CloseReason::TlsError,
        CloseReason::TlsHandshakeTimeout,
    ];

    /// Name used in logs and stats.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CloseReason::Goodbye => "goodbye",
            CloseReason::Eof => "eof",
            CloseReason::Reset => "reset",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Flood => "flood",
            CloseReason::Idle => "idle",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ServerFull => "server_full",
            CloseReason::StalledFrame => "stalled_frame",
            CloseReason::NotTls => "not_tls",
            CloseReason::TlsError => "tls_error",
            CloseReason::TlsHandshakeTimeout => "tls_handshake_timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one worker. Written only by that worker (relaxed atomics), except
/// `backlog`, which the other workers write and which therefore sits on a cache line of
/// its own; read by anyone building a stats snapshot.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    /// Connections owned right now.
    pub(crate) connections: AtomicU64,
    /// Connections ever handed to this worker.
    pub(crate) accepted: AtomicU64,
    /// Frames and lines received.
    pub(crate) messages_in: AtomicU64,
    /// Frames and lines queued for sending.
    pub(crate) messages_out: AtomicU64,
    /// Bytes read from sockets.
    pub(crate) bytes_in: AtomicU64,
    /// Bytes written to sockets.
    pub(crate) bytes_out: AtomicU64,
    /// Waits of one `--coalesce` window between turns.
    pub(crate) coalesce_waits: AtomicU64,
    /// Times a connection began to be held back by the rate limit.
    pub(crate) rate_limited: AtomicU64,
    /// Times a connection was left unread because the inbound budget was full.
    pub(crate) parked: AtomicU64,
    /// Microseconds the worker thread has run, as of its last housekeeping.
    pub(crate) cpu_us: AtomicU64,
    /// Microseconds the worker thread has waited, runnable, for a core (as of its last
    /// housekeeping): time in which none of its connections was served.
    pub(crate) cpu_wait_us: AtomicU64,
    closes: [AtomicU64; CloseReason::ALL.len()],
    /// Deliveries sent to this worker and not yet handled: added by the sender before
    /// it sends, taken off by this worker as it drains its channel.
    backlog: CachePadded<AtomicU64>,
    /// Fan-out times of room messages whose last member this worker served.
    pub(crate) fanout: LatencyHistogram,
}

/// Upper bounds (seconds) of the fan-out time histogram's buckets; a last bucket takes
/// the rest.
pub(crate) const FANOUT_BUCKETS: [f64; 13] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A histogram of durations in fixed buckets ([`FANOUT_BUCKETS`] and the rest), as
/// relaxed atomics: written by one worker, read by the metrics thread.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; FANOUT_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one duration.
    pub(crate) fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = FANOUT_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(FANOUT_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Relaxed);
    }
}

impl WorkerStats {
    /// Counts one close.
    pub(crate) fn count_close(&self, reason: CloseReason) {
        self.closes[reason.index()].fetch_add(1, Relaxed);
    }

    /// Deliveries waiting in this worker's channel.
    pub(crate) fn backlog(&self) -> u64 {
        self.backlog.load(Relaxed)
    }

    /// Counts `n` deliveries sent to this worker.
    pub(crate) fn backlog_add(&self, n: usize) {
        self.backlog.fetch_add(n as u64, Relaxed);
    }

    /// Counts `n` deliveries this worker took from its channel.
    pub(crate) fn backlog_sub(&self, n: usize) {
        self.backlog.fetch_sub(n as u64, Relaxed);
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// All counters of a server: one [`WorkerStats`] per worker plus the acceptor's.
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    /// Per worker; index = worker number.
    pub(crate) workers: Vec<WorkerStats>,
    /// Connections refused at accept time because the server was full.
    pub(crate) refused: AtomicU64,
    /// Failed accepts (such as EMFILE), each followed by a pause.
    pub(crate) accept_errors: AtomicU64,
    /// Bytes held in incomplete inbound frames and lines, all connections together.
    /// Changed only when a connection's share changes, so the common case (reads that
    /// end on a frame boundary) never touches it.
    pub(crate) inbound: CachePadded<AtomicU64>,
    /// Logins refused after checking the password. Shared by the workers: logins are
    /// rare, so the contention a per-worker counter avoids does not arise.
    login_failures: AtomicU64,
    /// Logins refused unchecked because the account or address is throttled.
    login_throttled: AtomicU64,
}

impl Stats {
    /// Counters for `workers` workers, starting now.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            started: Instant::now(),
            workers: (0..workers).map(|_| WorkerStats::default()).collect(),
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            inbound: CachePadded::new(AtomicU64::new(0)),
            login_failures: AtomicU64::new(0),
            login_throttled: AtomicU64::new(0),
        }
    }

    /// Counts a login refused after checking the password.
    pub(crate) fn count_login_failure(&self) {
        self.login_failures.fetch_add(1, Relaxed);
    }

    /// Logins refused after checking the password.
    pub(crate) fn login_failures(&self) -> u64 {
        self.login_failures.load(Relaxed)
    }

    /// Logins refused unchecked by the throttle.
    pub(crate) fn login_throttled(&self) -> u64 {
        self.login_throttled.load(Relaxed)
    }

    /// Counts a login refused unchecked by the throttle.
    pub(crate) fn count_login_throttled(&self) {
        self.login_throttled.fetch_add(1, Relaxed);
    }

    /// The sum of one counter over the workers.
    pub(crate) fn sum(&self, field: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.workers.iter().map(|w| field(w).load(Relaxed)).sum()
    }

    /// Connections open right now.
    pub(crate) fn connections(&self) -> u64 {
        self.sum(|w| &w.connections)
    }

    /// The fan-out histogram over all workers: sum in seconds, count, and the count in
    /// each bucket (not cumulative), the last one for the rest.
    pub(crate) fn fanout_histogram(&self) -> (f64, u64, Vec<u64>) {
        let mut buckets = vec![0u64; FANOUT_BUCKETS.len() + 1];
        let mut sum_ns = 0u64;
        for w in &self.workers {
            for (total, b) in buckets.iter_mut().zip(&w.fanout.buckets) {
                *total += b.load(Relaxed);
            }
            sum_ns = sum_ns.saturating_add(w.fanout.sum_ns.load(Relaxed));
        }
        let count = buckets.iter().sum();
        (sum_ns as f64 / 1e9, count, buckets)
    }

    /// Times connections began to be held back by the rate limit.
    pub(crate) fn rate_limited(&self) -> u64 {
        self.sum(|w| &w.rate_limited)
    }

    /// Closes counted for `reason` across workers.
    pub(crate) fn closes(&self, reason: CloseReason) -> u64 {
        self.sum(|w| &w.closes[reason.index()])
    }

    /// A named snapshot of every counter, as sent in a `Stats` frame.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("uptime_s".to_owned(), self.started.elapsed().as_secs()),
            ("connections".to_owned(), self.connections()),
            ("connections_total".to_owned(), self.sum(|w| &w.accepted)),
            ("messages_in".to_owned(), self.sum(|w| &w.messages_in)),
            ("messages_out".to_owned(), self.sum(|w| &w.messages_out)),
            ("bytes_in".to_owned(), self.sum(|w| &w.bytes_in)),
            ("bytes_out".to_owned(), self.sum(|w| &w.bytes_out)),
            ("workers".to_owned(), self.workers.len() as u64),
            ("coalesce_waits".to_owned(), self.sum(|w| &w.coalesce_waits)),
            ("rate_limited".to_owned(), self.rate_limited()),
            ("accept_errors".to_owned(), self.accept_errors.load(Relaxed)),
            ("inbound_bytes".to_owned(), self.inbound.load(Relaxed)),
            ("inbound_parked".to_owned(), self.sum(|w| &w.parked)),
            ("cpu_wait_us".to_owned(), self.sum(|w| &w.cpu_wait_us)),
            (
                "login_failures".to_owned(),
                self.login_failures.load(Relaxed),
            ),
            (
                "login_throttled".to_owned(),
                self.login_throttled.load(Relaxed),
            ),
        ];
        for (i, w) in self.workers.iter().enumerate() {
            out.push((
                format!("worker{i}_connections"),
                w.connections.load(Relaxed),
            ));
            out.push((format!("worker{i}_backlog"), w.backlog()));
            out.push((format!("worker{i}_cpu_us"), w.cpu_us.load(Relaxed)));
            out.push((
                format!("worker{i}_cpu_wait_us"),
                w.cpu_wait_us.load(Relaxed),
            ));
        }
        for reason in CloseReason::ALL {
            let mut n = self.closes(reason);
            if reason == CloseReason::ServerFull {
                n += self.refused.load(Relaxed);
            }
            out.push((format!("closed_{}", reason.name()), n));
        }
        out
    }
}
