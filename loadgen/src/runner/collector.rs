//! The collector: receives the load threads' reports, publishes the timeline once every
//! thread is ready, and completes each second of all threads together (live progress,
//! series rows, interval log).

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hdrhistogram::Histogram;

use super::{RunError, SECOND_NS};
use crate::client::ErrorCounts;
use crate::config::Config;
use crate::cpu::{CpuTime, process_cpu_time};
use crate::lag::SendLag;
use crate::progress::{self, Progress, Schedule};
use crate::recorder::{merge, new_histogram};
use crate::report::{Percentiles, SeriesRow};
use crate::results::HlogWriter;
use crate::verify::Anomalies;
use crate::worker::{Report, Shared, Tick, WorkerTotals};

/// Time between publishing the start and the first send, so every thread sees it.
const START_MARGIN_NS: u64 = 50_000_000;

/// The run's timeline on the run clock, fixed once every thread is ready.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeline {
    pub(super) start_ns: u64,
    pub(super) measure_ns: u64,
    /// First tick of the measured part (`measure_ns` is on a whole second).
    pub(super) measure_tick: u64,
}

/// Per-second numbers of all threads together.
#[derive(Debug)]
struct TickSum {
    reports: usize,
    open: u32,
    sent_all: u64,
    sent_measured: u64,
    received_all: u64,
    received_measured: u64,
    errors: u64,
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    progress: Histogram<u64>,
}

impl TickSum {
    fn new() -> Self {
        Self {
            reports: 0,
            open: 0,
            sent_all: 0,
            sent_measured: 0,
            received_all: 0,
            received_measured: 0,
            errors: 0,
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            progress: new_histogram(),
        }
    }

    fn add(&mut self, t: &Tick) {
        self.reports += 1;
        self.open += t.open;
        self.sent_all += t.sent_all;
        self.sent_measured += t.sent_measured;
        self.received_all += t.received_all;
        self.received_measured += t.received_measured;
        self.errors += t.errors;
        merge(&mut self.corrected, &t.corrected);
        merge(&mut self.uncorrected, &t.uncorrected);
        merge(&mut self.progress, &t.progress);
    }
}

pub(super) struct Collector<'a> {
    pub(super) shared: &'a Shared,
    pub(super) threads: usize,
    pub(super) clients: u32,
    pub(super) progress: bool,
    pub(super) warmup_ns: u64,
    pub(super) duration_ns: u64,
    pub(super) ready: Vec<bool>,
    pub(super) ready_clients: u32,
    pub(super) done: Vec<Option<Box<WorkerTotals>>>,
    /// Highest tick each thread reported.
    pub(super) last_tick: Vec<Option<u64>>,
    pending: BTreeMap<u64, TickSum>,
    /// Next tick to complete.
    pub(super) next_tick: u64,
    pub(super) timeline: Option<Timeline>,
    pub(super) interrupted: bool,
    pub(super) series: Vec<SeriesRow>,
    /// Created at the first measured tick, with the measurement start as base time.
    pub(super) hlog: Option<HlogWriter>,
    pub(super) label: String,
    /// Process CPU time when each tick completed.
    pub(super) cpu_at: BTreeMap<u64, CpuTime>,
    /// Messages sent (warmup included) in each tick.
    pub(super) sent_in: BTreeMap<u64, u64>,
    /// Wall-clock time of the run clock's zero (the base of the interval log's times).
    pub(super) started_at: SystemTime,
    pub(super) progress_errors: u64,
    /// `--start-at` on the run clock: when sending is to begin.
    pub(super) start_at_ns: Option<u64>,
    /// Set when sending could not begin at `--start-at`.
    pub(super) late_start: Option<LateStart>,
    /// The clock-offset probe's outcome (runs with `--start-at`).
    pub(super) probe: Option<crate::clock_offset::Probe>,
}

/// How a `--start-at` was missed.
#[derive(Debug, Clone, Copy)]
pub(super) struct LateStart {
    /// How long after the instant the clients were ready.
    pub(super) late_ns: u64,
    /// Whole seconds sending began after the instant.
    pub(super) shift_s: u64,
}

impl<'a> Collector<'a> {
    pub(super) fn new(
        config: &Config,
        shared: &'a Shared,
        threads: usize,
        started_at: SystemTime,
        label: &str,
    ) -> Self {
        Self {
            shared,
            threads,
            clients: config.clients,
            progress: config.progress,
            warmup_ns: config.warmup.as_nanos() as u64,
            duration_ns: config.duration.as_nanos() as u64,
            ready: vec![false; threads],
            ready_clients: 0,
            done: (0..threads).map(|_| None).collect(),
            last_tick: vec![None; threads],
            pending: BTreeMap::new(),
            next_tick: 0,
            timeline: None,
            interrupted: false,
            series: Vec::new(),
            hlog: None,
            label: label.to_owned(),
            cpu_at: BTreeMap::new(),
            sent_in: BTreeMap::new(),
            started_at,
            progress_errors: 0,
            start_at_ns: None,
            late_start: None,
            probe: None,
        }
    }

    /// Receives reports until every thread is done.
    pub(super) fn collect(
        &mut self,
        rx: &Receiver<Report>,
        handles: &[JoinHandle<()>],
    ) -> Result<(), RunError> {
        let mut fatal = None;
        while self.done.iter().any(Option::is_none) {
            if self.shared.stop.is_stopped() {
                self.interrupted = true;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(report) => self.on_report(report, &mut fatal),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for (i, handle) in handles.iter().enumerate() {
                if self.done[i].is_none() && handle.is_finished() {
                    // A thread sends Done before it ends, so once it has ended its
                    // reports are all in the channel.
                    while let Ok(report) = rx.try_recv() {
                        self.on_report(report, &mut fatal);
                    }
                    if self.done[i].is_none() {
                        // Ended without a Done report: it panicked.
                        self.shared.abort();
                        self.done[i] = Some(Box::new(empty_totals()));
                        fatal.get_or_insert(RunError::Panicked(i));
                    }
                }
            }
            if self.timeline.is_none() && self.all_ready() && !self.shared.stop.is_stopped() {
                if self.ready_clients == 0 {
                    // Nobody to measure: end now and report the connect failures.
                    self.shared.abort();
                } else {
                    self.publish_timeline();
                }
            }
            self.complete_ticks();
        }
        if self.shared.stop.is_stopped() && self.ready_clients > 0 {
            self.interrupted = true;
        }
        self.complete_ticks();
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn on_report(&mut self, report: Report, fatal: &mut Option<RunError>) {
        match report {
            Report::Ready { worker, ready } => {
                self.ready[worker] = true;
                self.ready_clients += ready;
            }
            Report::Tick(tick) => {
                self.last_tick[tick.worker] = Some(tick.tick);
                self.pending
                    .entry(tick.tick)
                    .or_insert_with(TickSum::new)
                    .add(&tick);
            }
            Report::Done { worker, totals } => self.done[worker] = Some(totals),
            Report::Fatal { worker, error } => {
                // Stop everyone; report the first failure.
                self.shared.abort();
                self.done[worker] = Some(Box::new(empty_totals()));
                fatal.get_or_insert(RunError::Thread {
                    worker,
                    source: error,
                });
            }
        }
    }

    fn all_ready(&self) -> bool {
        self.ready
            .iter()
            .zip(&self.done)
            .all(|(&r, d)| r || d.is_some())
    }

    fn publish_timeline(&mut self) {
        let now = self.shared.clock.now_ns();
        let earliest_ns = now + START_MARGIN_NS;
        let (start_ns, measure_ns) = match self.start_at_ns {
            Some(at_ns) => {
                // Too late for the instant asked for: begin whole seconds later, so the
                // seconds still line up with other processes given the same instant.
                let late_ns = earliest_ns.saturating_sub(at_ns);
                let shift_s = late_ns.div_ceil(SECOND_NS);
                if late_ns > 0 {
                    let before = self.late_start.map_or(0, |l| l.shift_s);
                    let missed_ns = self.late_start.map_or(0, |l| l.late_ns);
                    self.late_start = Some(LateStart {
                        late_ns: missed_ns.max(late_ns),
                        shift_s: before + shift_s,
                    });
                }
                let start_ns = at_ns + shift_s * SECOND_NS;
                (start_ns, start_ns + self.warmup_ns)
            }
            None => {
                // The measured part starts on a whole second of the run clock, so
                // per-second ticks and series rows line up with it.
                let measure_ns = (earliest_ns + self.warmup_ns).div_ceil(SECOND_NS) * SECOND_NS;
                (measure_ns - self.warmup_ns, measure_ns)
            }
        };
        let end_ns = measure_ns + self.duration_ns;
        self.shared.publish(start_ns, measure_ns, end_ns);
        self.timeline = Some(Timeline {
            start_ns,
            measure_ns,
            measure_tick: measure_ns / SECOND_NS,
        });
    }

    /// Completes, in order, every tick all live threads have reported.
    fn complete_ticks(&mut self) {
        loop {
            let k = self.next_tick;
            let complete = (0..self.threads).all(|w| {
                self.last_tick[w].is_some_and(|t| t >= k)
                    || (self.done[w].is_some() && self.last_tick[w].is_none_or(|t| t < k))
            });
            let any_left = self.pending.range(k..).next().is_some();
            if !complete || !any_left {
                return;
            }
            let sum = self.pending.remove(&k).unwrap_or_else(TickSum::new);
            if let Some(cpu) = process_cpu_time() {
                self.cpu_at.insert(k, cpu);
            }
            self.sent_in.insert(k, sum.sent_all);
            self.on_tick(k, &sum);
            self.next_tick += 1;
        }
    }

    fn on_tick(&mut self, k: u64, sum: &TickSum) {
        self.progress_errors += sum.errors;
        if self.progress {
            eprintln!("{}", self.progress_line(k, sum));
        }
        let Some(t) = self.timeline else { return };
        if k < t.measure_tick {
            return;
        }
        let end_tick = self.shared.end_ns().div_ceil(SECOND_NS);
        let c = Percentiles::of(&sum.corrected);
        let second = k - t.measure_tick;
        self.series.push(SeriesRow {
            second,
            phase: if k < end_tick { "measure" } else { "drain" }.into(),
            connections: sum.open,
            sent: sum.sent_measured,
            received: sum.received_measured,
            p50_us: c.p50,
            p90_us: c.p90,
            p99_us: c.p99,
            max_us: c.max,
            errors: sum.errors,
        });
        let base = self.started_at + Duration::from_nanos(t.measure_ns);
        let comment = format!("loadgen run {}", self.label);
        let hlog = self
            .hlog
            .get_or_insert_with(|| HlogWriter::new(base, &comment));
        if let Err(e) = hlog.interval(
            Duration::from_secs(second),
            Duration::from_secs(1),
            &sum.corrected,
            &sum.uncorrected,
        ) {
            // In-memory writes only fail on a serializer bug; keep the run's other files.
            eprintln!("loadgen: warning: interval log: {e}");
        }
    }

    fn progress_line(&self, k: u64, sum: &TickSum) -> String {
        let latency_us = (!sum.progress.is_empty()).then(|| {
            (
                sum.progress.value_at_quantile(0.5),
                sum.progress.value_at_quantile(0.99),
            )
        });
        progress::line(&Progress {
            elapsed_s: k + 1,
            schedule: self.timeline.map(|t| Schedule {
                start_ns: t.start_ns,
                measure_ns: t.measure_ns,
                end_ns: self.shared.end_ns(),
            }),
            open: sum.open,
            clients: self.clients,
            sent: sum.sent_all,
            received: sum.received_all,
            latency_us,
            errors: self.progress_errors,
        })
    }
}

pub(super) fn empty_totals() -> WorkerTotals {
    WorkerTotals {
        corrected: new_histogram(),
        uncorrected: new_histogram(),
        lag_free: new_histogram(),
        anomalies: Anomalies::default(),
        errors: ErrorCounts::default(),
        lag: SendLag::default(),
        deferred: 0,
        churn: crate::churn::ChurnCounts::default(),
        replay: new_histogram(),
        sent_measured: 0,
        receivers: Vec::new(),
        connected: 0,
        first_error: None,
    }
}
