//! What a load thread accumulates from its clients: error counts, latencies, anomalies,
//! churn and the per-second progress counts.

use crate::churn::ChurnCounts;
use crate::lag::SendLag;
use crate::recorder::LatencyRecorder;
use crate::verify::Anomalies;

/// Counts a client reports to its thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Clients that could not connect or finish their handshake in time.
    pub connect_failures: u64,
    /// Ready connections that ended before the run did (reset, EOF, server close).
    pub disconnects: u64,
    /// Error frames or `ERR` lines from the server (and shutdown notices).
    pub server_errors: u64,
    /// Bytes that could not be decoded as frames or lines (the connection is dropped).
    pub protocol_errors: u64,
    /// Sends skipped because the connection's outbound buffer was full.
    pub stalled_sends: u64,
    /// Clients the server told it is holding back with its rate limit (error 209,
    /// rate-limited). Not an error, so not in [`ErrorCounts::total`]: it explains loss.
    pub rate_limited_clients: u64,
}

impl ErrorCounts {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect_failures
            + self.disconnects
            + self.server_errors
            + self.protocol_errors
            + self.stalled_sends
    }

    /// Adds another thread's counts.
    pub fn merge(&mut self, other: ErrorCounts) {
        self.connect_failures += other.connect_failures;
        self.disconnects += other.disconnects;
        self.server_errors += other.server_errors;
        self.protocol_errors += other.protocol_errors;
        self.stalled_sends += other.stalled_sends;
        self.rate_limited_clients += other.rate_limited_clients;
    }
}

/// What a thread accumulates from its clients' arrivals.
#[derive(Debug)]
pub(crate) struct Tally {
    pub recorder: LatencyRecorder,
    pub anomalies: Anomalies,
    pub errors: ErrorCounts,
    /// Arrivals of any stamp (warmup included) this interval, for progress.
    pub received_all: u64,
    /// First-time arrivals of measured messages this interval.
    pub received_measured: u64,
    /// First error text a server sent, to show the user.
    pub first_error: Option<String>,
    /// Messages sent this interval (warmup included), for progress.
    pub sent_all: u64,
    /// Measured messages sent this interval.
    pub sent_measured: u64,
    /// Lag of measured sends: loadgen's own, and held by the server.
    pub lag: SendLag,
    /// Measured messages that had to wait for the in-flight window.
    pub deferred: u64,
    /// Reconnects, replays and the room-order check.
    pub churn: ChurnCounts,
    /// Corrected latency of measured messages that arrived in a replay (kept apart from
    /// the live ones in `recorder`).
    pub replay: hdrhistogram::Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            recorder: LatencyRecorder::default(),
            anomalies: Anomalies::default(),
            errors: ErrorCounts::default(),
            received_all: 0,
            received_measured: 0,
            first_error: None,
            sent_all: 0,
            sent_measured: 0,
            lag: SendLag::default(),
            deferred: 0,
            churn: ChurnCounts::default(),
            replay: crate::recorder::new_histogram(),
        }
    }
}

impl Tally {
    pub(crate) fn first_error(&mut self, text: String) {
        if self.first_error.is_none() {
            self.first_error = Some(text);
        }
    }

    pub(crate) fn note_error(&mut self, text: String) {
        self.errors.server_errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(text);
        }
    }
}
