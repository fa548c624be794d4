//! The coordinator: [`run`] plans the clients, starts the load threads, collects their
//! reports and writes the result files; [`RunError`] says why a run failed.
//!
//! Layout:
//! - `anchor`: the run clock and where `--start-at` falls on it.
//! - `preflight`: the open-files limit and warnings before a run ([`preflight()`]).
//! - `plan`: clients grouped and dealt to threads.
//! - `collector`: the threads' reports merged per second (progress, series, interval
//!   log) and the timeline published once everyone is connected.
//! - `summary`: the final totals merged into the summary, warnings, result files.

mod anchor;
mod collector;
mod plan;
mod preflight;
mod summary;

use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Config, ConfigError};
use crate::report::{Summary, Verdict, utc_stamps};
use crate::results::{ResultFiles, ResultsError};
use crate::worker::{self, Settings, Shared, StopSignal};
use anchor::Anchor;
use collector::{Collector, LateStart};
use plan::plan_clients;
pub use preflight::preflight;
use preflight::raise_fd_limit;

/// Nanoseconds in a second.
const SECOND_NS: u64 = 1_000_000_000;

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
    let Anchor {
        clock,
        wall_zero,
        start_at_ns,
        anchor_ns,
        missed_by_ns,
    } = Anchor::start(config, started_at);
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

#[cfg(test)]
mod tests;
