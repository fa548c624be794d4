//! What the coordinator and the load threads share: the stop request
//! ([`StopSignal`]), the run's fixed [`Settings`], and the [`Shared`] state through
//! which the timeline is published and send counts are read across threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::clock::Clock;
use crate::config::{Protocol, Scenario};

/// Asks a run to end early: the first request stops sending and drains, the second
/// abandons the drain. Clones share the same flag (the Ctrl+C handler holds one).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicU8>);

impl StopSignal {
    /// A signal nobody has raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal one level (stop, then abort).
    pub fn stop(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                Some(l.saturating_add(1).min(2))
            });
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.level() >= 1
    }

    fn level(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// Fixed facts every thread needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Server addresses; client `id` connects to `addrs[id % len]` (never empty).
    pub addrs: Vec<std::net::SocketAddr>,
    /// With `--tls`, the clients' TLS configuration.
    pub tls: Option<crate::transport::TlsClient>,
    pub protocol: Protocol,
    pub scenario: Scenario,
    pub payload: usize,
    pub rate: f64,
    /// Clients over all threads (phases are spread over all of them).
    pub clients: u32,
    /// Time between two connects on one thread.
    pub connect_interval_ns: u64,
    pub connect_timeout_ns: u64,
    pub grace_ns: u64,
    pub max_seq: u32,
    /// In-flight window per client (0 = unlimited).
    pub window: u32,
    /// Percent of clients dropped per second of the measured run (0: no churn).
    pub churn: f64,
    /// How long a dropped client stays away.
    pub churn_away_ns: u64,
    /// Width of the send window (0: every message at its intended time).
    pub send_window_ns: u64,
    /// Role, global ids and time base of stamps (fan-out across processes).
    pub stamps: crate::fanout::StampBase,
}

impl Settings {
    /// The server client `id` talks to: address `id mod N` of the list.
    pub(crate) fn addr_of(&self, id: u32) -> std::net::SocketAddr {
        self.addrs[id as usize % self.addrs.len()]
    }
}

/// State shared by the coordinating thread and the load threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub clock: Clock,
    pub settings: Settings,
    pub stop: StopSignal,
    /// When sending starts (run clock, ns); 0 until the coordinator publishes it.
    /// Written once, after `measure_ns` and `end_ns` (release/acquire).
    start_ns: AtomicU64,
    /// Messages scheduled at or after this are measured.
    measure_ns: AtomicU64,
    /// No message scheduled at or after this is sent. Lowered (never raised) when the
    /// run is stopped early.
    end_ns: AtomicU64,
    /// Set by the coordinator to end every thread at once (a thread failed, or nobody
    /// connected); unlike `stop` it does not mark the run as interrupted.
    abort: AtomicBool,
    /// Measured messages sent, per global client id. Written only by the client's
    /// thread; read by every thread (a room spans threads) and by the coordinator after
    /// all threads ended.
    pub sent: Vec<AtomicU64>,
    /// Threads still sending. A thread may end its drain only when it is zero: until
    /// then room mates on other threads may send more.
    pub(super) sending: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(clock: Clock, settings: Settings, stop: StopSignal, threads: usize) -> Self {
        let sent = (0..settings.clients).map(|_| AtomicU64::new(0)).collect();
        Self {
            sent,
            sending: AtomicUsize::new(threads),
            clock,
            settings,
            stop,
            start_ns: AtomicU64::new(0),
            measure_ns: AtomicU64::new(u64::MAX),
            end_ns: AtomicU64::new(u64::MAX),
            abort: AtomicBool::new(false),
        }
    }

    /// Ends every thread as soon as it looks.
    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// How far the run should wind down: 0 carry on, 1 stop sending and drain, 2 quit.
    pub(super) fn stop_level(&self) -> u8 {
        if self.abort.load(Ordering::Acquire) {
            2
        } else {
            self.stop.level()
        }
    }

    /// Publishes the run's timeline; `start_ns` must be positive.
    pub(crate) fn publish(&self, start_ns: u64, measure_ns: u64, end_ns: u64) {
        self.measure_ns.store(measure_ns, Ordering::Relaxed);
        self.end_ns.fetch_min(end_ns, Ordering::Relaxed);
        self.start_ns.store(start_ns.max(1), Ordering::Release);
    }

    pub(super) fn start(&self) -> Option<(u64, u64)> {
        match self.start_ns.load(Ordering::Acquire) {
            0 => None,
            t0 => Some((t0, self.measure_ns.load(Ordering::Relaxed))),
        }
    }

    /// End of sending (run clock, ns).
    pub(crate) fn end_ns(&self) -> u64 {
        self.end_ns.load(Ordering::Acquire)
    }

    pub(super) fn end_early(&self, now_ns: u64) {
        self.end_ns.fetch_min(now_ns, Ordering::AcqRel);
    }
}
