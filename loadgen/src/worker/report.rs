//! What a load thread tells the coordinator ([`Report`]): that its clients are ready,
//! each second's numbers ([`Tick`]), and its totals at the end ([`WorkerTotals`]).

use std::io;

use hdrhistogram::Histogram;

use crate::churn::ChurnCounts;
use crate::client::{ClientPlan, ErrorCounts};
use crate::lag::SendLag;
use crate::verify::Anomalies;

/// One thread's numbers for one second of the run clock.
#[derive(Debug)]
pub(crate) struct Tick {
    pub worker: usize,
    /// Second index on the run clock: the tick covers `[tick, tick + 1)` seconds.
    pub tick: u64,
    /// Ready connections at the end of the tick.
    pub open: u32,
    pub sent_all: u64,
    pub sent_measured: u64,
    pub received_all: u64,
    pub received_measured: u64,
    pub errors: u64,
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub progress: Histogram<u64>,
}

/// One thread's results.
#[derive(Debug)]
pub(crate) struct WorkerTotals {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// Corrected latency less each message's own send lag.
    pub lag_free: Histogram<u64>,
    pub anomalies: Anomalies,
    pub errors: ErrorCounts,
    pub lag: SendLag,
    /// Measured messages that waited for the in-flight window.
    pub deferred: u64,
    /// Reconnects, replays and the room-order check.
    pub churn: ChurnCounts,
    /// Corrected latency of replayed messages.
    pub replay: Histogram<u64>,
    pub sent_measured: u64,
    /// `(plan, distinct measured deliveries)` of every client that was ready when
    /// sending began; the coordinator turns them into expected and lost counts.
    pub receivers: Vec<(ClientPlan, u64)>,
    /// Clients ready when sending began.
    pub connected: u32,
    pub first_error: Option<String>,
}

/// What a thread tells the coordinator.
#[derive(Debug)]
pub(crate) enum Report {
    /// Every client of the thread is connected (or failed); waiting for the start.
    Ready {
        worker: usize,
        /// Clients that are ready.
        ready: u32,
    },
    /// A second went by.
    Tick(Box<Tick>),
    /// The thread finished.
    Done {
        worker: usize,
        totals: Box<WorkerTotals>,
    },
    /// The thread could not run (its poll could not be created or waited on).
    Fatal { worker: usize, error: io::Error },
}
