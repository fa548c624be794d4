//! The coordinator: plans the clients, starts the load threads, publishes the timeline
//! once everyone is connected, merges the threads' per-second reports (live progress,
//! series, interval log) and their final totals, and writes the result files.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hdrhistogram::Histogram;

use crate::client::{ClientPlan, ErrorCounts};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Scenario};
use crate::cpu::{CpuTime, process_cpu_time};
use crate::lag::SendLag;
use crate::progress::{self, Progress, Schedule};
use crate::recorder::{merge, new_histogram};
use crate::report::{Percentiles, SeriesRow, Summary, Verdict, utc_stamps};
use crate::results::{self, HlogWriter, ResultFiles, ResultsError};
use crate::verify::Anomalies;
use crate::worker::{self, Report, Settings, Shared, StopSignal, Tick, WorkerTotals};

const SECOND_NS: u64 = 1_000_000_000;
/// Time between publishing the start and the first send, so every thread sees it.
const START_MARGIN_NS: u64 = 50_000_000;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is not runnable; fix the named flag.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Not one client connected: is the server running at that address?
    #[error("no client could connect to {addr}{}", first_error.as_ref().map(|e| format!(" (first error: {e})")).unwrap_or_default())]
    NoConnections {
        /// The address tried.
        addr: String,
        /// The first error seen.
        first_error: Option<String>,
    },
    /// A load thread could not start (poll or timer creation failed: out of file
    /// descriptors?).
    #[error("load thread {worker} failed")]
    Thread {
        /// Thread index.
        worker: usize,
        /// What failed.
        source: io::Error,
    },
    /// A load thread panicked: a bug in loadgen.
    #[error("load thread {0} panicked")]
    Panicked(usize),
    /// The output directory or a result file could not be written.
    #[error(transparent)]
    Results(#[from] ResultsError),
}

/// What [`run`] returns: the summary, where it was written, warnings for the user and
/// the threshold verdict.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The summary row (also appended to `files.summary`).
    pub summary: Summary,
    /// Files written.
    pub files: ResultFiles,
    /// Things the user should know (late sends, loss, errors).
    pub warnings: Vec<String>,
    /// Thresholds met or missed.
    pub verdict: Verdict,
}

/// Runs one load test as configured, until its duration is over or `stop` is raised,
/// then writes the result files.
pub fn run(config: &Config, stop: &StopSignal) -> Result<RunReport, RunError> {
    config.validate()?;
    std::fs::create_dir_all(&config.out).map_err(|source| ResultsError::Write {
        path: config.out.clone(),
        source,
    })?;
    // If the limit is not enough, connects fail with "too many open files" and are
    // counted; `preflight` warns about it before the run.
    let _ = raise_fd_limit(config);
    let started_at = SystemTime::now();
    let unix = started_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (started_rfc, stamp) = utc_stamps(unix.as_secs());
    let label = config.label();
    let files = ResultFiles::new(&config.out, &label, &stamp);
    // Before anything else connects: the offset matters only where processes are lined
    // up by the wall clock.
    let probe = config
        .start_at
        .map(|_| crate::clock_offset::for_run(config));

    let clock = match config.start_at {
        Some(at) => {
            // Put the first send of the measured part on a whole second of the run clock,
            // so per-second ticks line up with the wall-clock seconds of `at` (and of
            // every other process given the same instant).
            // The clock's zero goes where `at + warmup` minus whole seconds lies, at
            // most a second before now (also when `at` has passed).
            let phase = |t: SystemTime| {
                u64::from(
                    t.duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos(),
                )
            };
            let measure_phase = phase(at + config.warmup);
            let now_phase = phase(SystemTime::now());
            Clock::start_ahead(Duration::from_nanos(
                (now_phase + SECOND_NS - measure_phase) % SECOND_NS,
            ))
        }
        None => Clock::start(),
    };
    // The wall-clock time of the run clock's zero, read right after the clock.
    let wall_zero = {
        let ns = clock.now_ns();
        SystemTime::now()
            .checked_sub(Duration::from_nanos(ns))
            .unwrap_or(started_at)
    };
    // Rounded so that the measured part starts exactly on a whole second of the run
    // clock (it is within microseconds of one already).
    let warmup_ns = config.warmup.as_nanos() as u64;
    let mut missed_by_ns = 0;
    // Stamps count from the `--start-at` instant as mapped onto the run clock here
    // (`anchor_ns`), so that another process's stamps read right on this clock. It is
    // the start exactly, not the instant read again, so every process's measured part
    // begins at the same stamp time (`--warmup`) to the nanosecond.
    let mut anchor_ns = 0i64;
    let start_at_ns = config.start_at.map(|at| {
        // An instant before the clock's zero moves forward by whole seconds, keeping
        // its place in the second (the publishing coordinator then warns it is late).
        let (at_ns, moved_ns) = match at.duration_since(wall_zero) {
            Ok(ahead) => (ahead.as_nanos() as u64, 0),
            Err(behind) => {
                let behind_ns = behind.duration().as_nanos() as u64;
                missed_by_ns = behind_ns;
                let moved_ns = behind_ns.div_ceil(SECOND_NS) * SECOND_NS;
                (moved_ns - behind_ns, moved_ns)
            }
        };
        let measure_s =
            ((at_ns + warmup_ns + SECOND_NS / 2) / SECOND_NS).max(warmup_ns.div_ceil(SECOND_NS));
        let measure_ns = measure_s * SECOND_NS;
        let start_ns = measure_ns.saturating_sub(warmup_ns);
        anchor_ns = start_ns as i64 - moved_ns as i64;
        start_ns
    });
    let token = crate::fanout::room_token(
        config.role,
        config.start_at,
        format!(
            "{:04x}",
            (std::process::id() ^ unix.subsec_nanos() ^ unix.as_secs() as u32) & 0xffff
        ),
    );
    let plans = plan_clients(config, &token);
    let threads = plans.len();
    let period_s = 1.0 / config.rate;
    let max_seq = ((config.warmup + config.duration).as_secs_f64() / period_s).ceil() + 2.0;
    let settings = Settings {
        addrs: config.addrs.clone(),
        tls: config.tls.clone(),
        protocol: config.protocol,
        scenario: config.scenario,
        payload: config.payload,
        rate: config.rate,
        clients: config.clients,
        connect_interval_ns: (threads as f64 / config.connect_rate * 1e9) as u64,
        connect_timeout_ns: config.connect_timeout.as_nanos() as u64,
        grace_ns: config.grace.as_nanos() as u64,
        max_seq: match config.role {
            // Senders elsewhere may send at any rate.
            crate::fanout::Role::Receive => crate::fanout::FOREIGN_MAX_SEQ,
            _ => max_seq.min(f64::from(u32::MAX)) as u32,
        },
        window: config.max_in_flight,
        churn: config.churn,
        churn_away_ns: config.churn_away.as_nanos() as u64,
        send_window_ns: config.send_window.as_nanos() as u64,
        stamps: crate::fanout::StampBase {
            role: config.role,
            client_offset: config.client_offset,
            anchor_ns,
        },
    };
    let shared = Arc::new(Shared::new(clock, settings, stop.clone(), threads));
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::with_capacity(threads);
    for (index, plan) in plans.into_iter().enumerate() {
        let thread_shared = Arc::clone(&shared);
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || worker::run(index, plan, thread_shared, tx));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(source) => {
                shared.abort();
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(RunError::Thread {
                    worker: index,
                    source,
                });
            }
        }
    }
    drop(tx);

    let mut collector = Collector::new(config, &shared, threads, wall_zero, &label);
    collector.start_at_ns = start_at_ns;
    collector.probe = probe;
    if missed_by_ns > 0 {
        collector.late_start = Some(LateStart {
            late_ns: missed_by_ns,
            shift_s: missed_by_ns.div_ceil(SECOND_NS),
        });
    }
    let outcome = collector.collect(&rx, &handles);
    for handle in handles {
        let _ = handle.join();
    }
    outcome?;
    collector.finish(config, files, started_rfc, &stamp)
}

/// File descriptors a run needs: one per client, plus a poll, a timer and a waker per
/// thread and the result files.
fn fds_needed(config: &Config) -> u64 {
    u64::from(config.clients) + 64 + 4 * config.threads as u64
}

/// Raises the soft RLIMIT_NOFILE towards what `config` needs, as far as the hard limit
/// allows; returns the soft limit now in force (`None` if it could not be read).
fn raise_fd_limit(config: &Config) -> Option<u64> {
    rlimit::increase_nofile_limit(fds_needed(config)).ok()
}

/// Warnings about a configuration that will run but not as asked, for the user to see
/// before it starts: more clients than the open-files limit lets loadgen open (after
/// raising the soft limit as far as it may), or a connect ramp that takes longer than
/// the measured duration.
pub fn preflight(config: &Config) -> Vec<String> {
    preflight_warnings(config, raise_fd_limit(config))
}

/// [`preflight`] given the open-files limit loadgen can reach.
fn preflight_warnings(config: &Config, fd_limit: Option<u64>) -> Vec<String> {
    let mut warnings = Vec::new();
    let needed = fds_needed(config);
    if let Some(limit) = fd_limit
        && limit < needed
    {
        let fit = limit.saturating_sub(needed - u64::from(config.clients));
        warnings.push(format!(
            "--clients {} needs about {needed} open files but the limit is {limit} \
             (ulimit -n); about {fit} clients can connect, the rest will fail",
            config.clients
        ));
    }
    if config.addrs.len() > 1 && config.scenario != Scenario::Echo {
        warnings.push(format!(
            "--scenario {} over {} addresses: client i talks to address i mod {}, so rooms \
             and dm pairs are split over the servers; servers that do not share rooms and \
             nicks deliver only within each, and the rest counts as lost",
            config.scenario.name(),
            config.addrs.len(),
            config.addrs.len()
        ));
    }
    let ramp_s = f64::from(config.clients) / config.connect_rate;
    if ramp_s > config.duration.as_secs_f64() {
        warnings.push(format!(
            "connecting {} clients at --connect-rate {} takes {ramp_s:.1}s, longer than \
             --duration {:.1}s",
            config.clients,
            config.connect_rate,
            config.duration.as_secs_f64()
        ));
    }
    warnings
}

/// Splits the clients into groups (one client, a dm pair, or a room) and deals them to
/// threads: echo clients and dm pairs whole and round-robin (a pair's partner must be
/// on its thread), room members round-robin by id, so a big room spreads over every
/// thread (room accounting reads other threads' send counts).
pub(crate) fn plan_clients(config: &Config, token: &str) -> Vec<Vec<ClientPlan>> {
    let size = config.group_size();
    let groups = config.clients.div_ceil(size);
    let units = match config.scenario {
        Scenario::Room => config.clients,
        Scenario::Echo | Scenario::Dm => groups,
    };
    let threads = config.threads.min(units as usize).max(1);
    let mut plans: Vec<Vec<ClientPlan>> = vec![Vec::new(); threads];
    for group in 0..groups {
        let start = group * size;
        let len = size.min(config.clients - start);
        // Nicks carry global ids (`--client-offset`), unique across processes.
        let nick = |id: u32| format!("lg{token}-{}", id + config.client_offset);
        for id in start..start + len {
            let (nick_name, room, partner_nick) = match config.scenario {
                Scenario::Echo => (None, None, None),
                Scenario::Dm => {
                    let partner = if id == start { start + 1 } else { start };
                    (Some(nick(id)), None, Some(nick(partner)))
                }
                Scenario::Room => {
                    // Binary clients are told apart by their stamps; text clients need
                    // a known nick to recognise their own join line.
                    let own =
                        (config.protocol != crate::config::Protocol::Binary).then(|| nick(id));
                    (own, Some(format!("lg-{token}-{group}")), None)
                }
            };
            let thread = match config.scenario {
                Scenario::Room => id as usize % threads,
                Scenario::Echo | Scenario::Dm => group as usize % threads,
            };
            plans[thread].push(ClientPlan {
                id,
                group_start: start,
                group_len: len,
                nick: nick_name,
                room,
                partner_nick,
            });
        }
    }
    plans
}

/// The run's timeline on the run clock, fixed once every thread is ready.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    start_ns: u64,
    measure_ns: u64,
    /// First tick of the measured part (`measure_ns` is on a whole second).
    measure_tick: u64,
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

struct Collector<'a> {
    shared: &'a Shared,
    threads: usize,
    clients: u32,
    progress: bool,
    warmup_ns: u64,
    duration_ns: u64,
    ready: Vec<bool>,
    ready_clients: u32,
    done: Vec<Option<Box<WorkerTotals>>>,
    /// Highest tick each thread reported.
    last_tick: Vec<Option<u64>>,
    pending: BTreeMap<u64, TickSum>,
    /// Next tick to complete.
    next_tick: u64,
    timeline: Option<Timeline>,
    interrupted: bool,
    series: Vec<SeriesRow>,
    /// Created at the first measured tick, with the measurement start as base time.
    hlog: Option<HlogWriter>,
    label: String,
    /// Process CPU time when each tick completed.
    cpu_at: BTreeMap<u64, CpuTime>,
    /// Messages sent (warmup included) in each tick.
    sent_in: BTreeMap<u64, u64>,
    /// Wall-clock time of the run clock's zero (the base of the interval log's times).
    started_at: SystemTime,
    progress_errors: u64,
    /// `--start-at` on the run clock: when sending is to begin.
    start_at_ns: Option<u64>,
    /// Set when sending could not begin at `--start-at`.
    late_start: Option<LateStart>,
    /// The clock-offset probe's outcome (runs with `--start-at`).
    probe: Option<crate::clock_offset::Probe>,
}

/// How a `--start-at` was missed.
#[derive(Debug, Clone, Copy)]
struct LateStart {
    /// How long after the instant the clients were ready.
    late_ns: u64,
    /// Whole seconds sending began after the instant.
    shift_s: u64,
}

impl<'a> Collector<'a> {
    fn new(
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
    fn collect(
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

    /// Merges the threads' totals and writes every result file.
    fn finish(
        mut self,
        config: &Config,
        files: ResultFiles,
        started_rfc: String,
        stamp: &str,
    ) -> Result<RunReport, RunError> {
        let mut corrected = new_histogram();
        let mut uncorrected = new_histogram();
        let mut lag_free = new_histogram();
        let mut anomalies = Anomalies::default();
        let mut errors = ErrorCounts::default();
        let mut lag = SendLag::default();
        let mut deferred = 0;
        let mut churn = crate::churn::ChurnCounts::default();
        let mut replay = new_histogram();
        let (mut sent, mut connected) = (0, 0);
        let sent_by = |id: u32| {
            self.shared
                .sent
                .get(id as usize)
                .map_or(0, |n| n.load(std::sync::atomic::Ordering::Relaxed))
        };
        // Every thread has ended, so the send counts are final.
        let mut room_sent: BTreeMap<u32, u64> = BTreeMap::new();
        let (mut expected, mut received) = (0u64, 0u64);
        let mut first_error = None;
        let mut rooms = crate::fanout::RoomTallies::new(config);
        for totals in self.done.iter().flatten() {
            merge(&mut corrected, &totals.corrected);
            merge(&mut uncorrected, &totals.uncorrected);
            merge(&mut lag_free, &totals.lag_free);
            anomalies.merge(totals.anomalies);
            errors.merge(totals.errors);
            lag.merge(&totals.lag);
            deferred += totals.deferred;
            churn.merge(totals.churn);
            merge(&mut replay, &totals.replay);
            sent += totals.sent_measured;
            for (plan, got) in &totals.receivers {
                rooms.add(plan, sent_by(plan.id), *got);
                if config.role.is_split() {
                    // Who else is in the room, and what they sent, only `merge` knows.
                    received += got;
                    continue;
                }
                expected += match config.scenario {
                    Scenario::Room => *room_sent
                        .entry(plan.group_start)
                        .or_insert_with(|| plan.expected(config.scenario, sent_by)),
                    scenario => plan.expected(scenario, sent_by),
                };
                received += got;
            }
            connected += totals.connected;
            if first_error.is_none() {
                first_error.clone_from(&totals.first_error);
            }
        }
        if connected == 0 && !(self.interrupted && self.timeline.is_none()) {
            return Err(RunError::NoConnections {
                addr: config.addr_list(),
                first_error,
            });
        }
        let (duration_ns, cpu_per_msg) = match self.timeline {
            Some(t) => {
                let end_ns = self.shared.end_ns();
                let duration_ns = end_ns.saturating_sub(t.measure_ns);
                (
                    duration_ns,
                    self.cpu_per_message(t.measure_tick, end_ns / SECOND_NS),
                )
            }
            None => (0, None),
        };
        let round2 = |v: f64| (v * 100.0).round() / 100.0;
        let duration_s = duration_ns as f64 / 1e9;
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let c = Percentiles::of(&corrected);
        let u = Percentiles::of(&uncorrected);
        let f = Percentiles::of(&lag_free);
        let summary = Summary {
            label: config.label(),
            scenario: config.scenario.name().into(),
            protocol: config.protocol.name().into(),
            addr: config.addr_list(),
            clients: config.clients,
            connected,
            threads: self.threads as u32,
            rate_per_client: config.rate,
            payload_bytes: config.payload,
            room_size: (config.scenario == Scenario::Room).then_some(config.room_size),
            duration_s,
            warmup_s: config.warmup.as_secs_f64(),
            target_rate: if config.role.sends() {
                config.target_rate()
            } else {
                0.0
            },
            achieved_send_rate: per_s(sent),
            receive_rate: per_s(received),
            sent,
            expected,
            received,
            lost: expected.saturating_sub(received),
            duplicated: anomalies.duplicated,
            reordered: anomalies.reordered,
            corrupted: anomalies.corrupted,
            errors: errors.total(),
            connect_failures: errors.connect_failures,
            disconnects: errors.disconnects,
            server_errors: errors.server_errors,
            late_sends: lag.late,
            deferred_sends: deferred,
            max_send_lag_us: lag.max_ns / 1000,
            p50_us: c.p50,
            p90_us: c.p90,
            p99_us: c.p99,
            p999_us: c.p999,
            p9999_us: c.p9999,
            max_us: c.max,
            mean_us: (c.mean * 10.0).round() / 10.0,
            uncorrected_p50_us: u.p50,
            uncorrected_p99_us: u.p99,
            uncorrected_max_us: u.max,
            loadgen_cpu_us_per_msg: cpu_per_msg.map(|(total, _)| round2(total)),
            loadgen_user_us_per_msg: cpu_per_msg.map(|(_, user)| round2(user)),
            started_at: started_rfc,
            interrupted: self.interrupted,
            order_breaks: (config.scenario == Scenario::Room
                && config.protocol == crate::config::Protocol::Binary)
                .then_some(churn.order_breaks),
            churn_reconnects: (config.churn > 0.0).then_some(churn.reconnects),
            replayed: (config.churn > 0.0).then_some(churn.replayed),
            resume_missed: (config.churn > 0.0).then_some(churn.missed),
            replay_p50_us: (config.churn > 0.0).then(|| Percentiles::of(&replay).p50),
            replay_p99_us: (config.churn > 0.0).then(|| Percentiles::of(&replay).p99),
            replay_max_us: (config.churn > 0.0).then(|| Percentiles::of(&replay).max),
            send_window_us: Some(config.send_window.as_micros() as u64),
            own_lag_p99_us: Some(lag.own_us_at(0.99)),
            own_lag_p999_us: Some(lag.own_us_at(0.999)),
            held_sends: Some(lag.held),
            held_max_us: Some(lag.held_max_ns / 1000),
            lag_free_p50_us: Some(f.p50),
            lag_free_p99_us: Some(f.p99),
            lag_free_p999_us: Some(f.p999),
            lag_free_max_us: Some(f.max),
            trustworthy: Some(crate::lag::trustworthy(lag.late, sent)),
            role: config
                .role
                .is_split()
                .then(|| config.role.name().to_owned()),
            clock_offset_us: self
                .probe
                .as_ref()
                .and_then(|p| p.measured())
                .map(|c| c.offset_us),
            clock_offset_bound_us: self
                .probe
                .as_ref()
                .and_then(|p| p.measured())
                .map(|c| c.bound_us),
        };

        let mut warnings: Vec<String> = crate::lag::warning(&summary).into_iter().collect();
        if let Some(late) = self.late_start {
            warnings.push(format!(
                "the clients were ready only {:.3}s after --start-at, so sending began {} s \
                 later than asked (on the same wall-clock second grid)",
                late.late_ns as f64 / 1e9,
                late.shift_s
            ));
        }
        if summary.connect_failures > 0 {
            warnings.push(format!(
                "{} of {} clients could not connect",
                summary.connect_failures, summary.clients
            ));
        }
        if errors.rate_limited_clients > 0 {
            warnings.push(format!(
                "the server rate-limited {} of {} clients (error 209); see its --rate-limit: \
                 it read their messages only at that rate, so the {} messages counted lost \
                 include those it had not yet read when the run ended",
                errors.rate_limited_clients, summary.clients, summary.lost
            ));
        }
        match &self.probe {
            Some(crate::clock_offset::Probe::Failed(why)) => {
                warnings.push(format!("clock offset to the server not measured: {why}"));
            }
            Some(crate::clock_offset::Probe::NoEcho(protocol)) => warnings.push(format!(
                "clock offset to the server not measured (--protocol {protocol} has no Echo): \
                 latencies across machines carry their clocks' unknown offset"
            )),
            _ => {}
        }
        if let Some(e) = first_error {
            warnings.push(format!("first error: {e}"));
        }
        if summary.interrupted {
            warnings.push("interrupted: results cover only part of the run".into());
        }

        let mut files = files;
        files.summary = results::append_summary(&files.summary, &summary, stamp)?;
        results::write_hgrm(&files.hgrm, &corrected)?;
        results::write_hgrm(&files.uncorrected_hgrm, &uncorrected)?;
        results::write_series(&files.series, &self.series)?;
        let comment = format!("loadgen run {}", self.label);
        let hlog = self
            .hlog
            .take()
            .unwrap_or_else(|| HlogWriter::new(self.started_at, &comment));
        hlog.write(&files.hlog)?;
        rooms.write(&files.series)?;
        let verdict = Verdict::judge(
            &summary,
            config.thresholds.max_p99,
            config.thresholds.max_loss,
        );
        Ok(RunReport {
            summary,
            files,
            warnings,
            verdict,
        })
    }

    /// CPU time (total, user) in microseconds per message sent over the measured ticks
    /// `[first, end)`.
    fn cpu_per_message(&self, first: u64, end: u64) -> Option<(f64, f64)> {
        let before = *self.cpu_at.get(&first.checked_sub(1)?)?;
        let last = (first..end).rev().find(|k| self.cpu_at.contains_key(k))?;
        let after = *self.cpu_at.get(&last)?;
        let sent: u64 = self.sent_in.range(first..=last).map(|(_, n)| n).sum();
        if sent == 0 {
            return None;
        }
        let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / sent as f64;
        Some((
            per_msg(after.total().saturating_sub(before.total())),
            per_msg(after.user.saturating_sub(before.user)),
        ))
    }
}

fn empty_totals() -> WorkerTotals {
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

#[cfg(test)]
mod tests;
