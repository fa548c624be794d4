//! The run clock and its anchoring to the wall clock. Without `--start-at` the clock
//! starts now. With it, the measured part's first send falls on a whole second of the
//! run clock that is the same wall-clock second in every process given the same
//! instant, and stamps count from that instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SECOND_NS;
use crate::clock::Clock;
use crate::config::Config;

/// The run clock and where `--start-at` falls on it.
pub(super) struct Anchor {
    /// The run clock.
    pub(super) clock: Clock,
    /// The wall-clock time of the run clock's zero.
    pub(super) wall_zero: SystemTime,
    /// `--start-at` on the run clock: when sending is to begin.
    pub(super) start_at_ns: Option<u64>,
    /// The run-clock time stamps count from (0 without `--start-at`).
    pub(super) anchor_ns: i64,
    /// How long `--start-at` had already passed at the clock's zero (0 if it had not).
    pub(super) missed_by_ns: u64,
}

impl Anchor {
    /// Starts the run clock for `config`; `started_at` (the run's start on the wall
    /// clock) stands in for the clock's zero if that cannot be told.
    pub(super) fn start(config: &Config, started_at: SystemTime) -> Self {
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
            let measure_s = ((at_ns + warmup_ns + SECOND_NS / 2) / SECOND_NS)
                .max(warmup_ns.div_ceil(SECOND_NS));
            let measure_ns = measure_s * SECOND_NS;
            let start_ns = measure_ns.saturating_sub(warmup_ns);
            anchor_ns = start_ns as i64 - moved_ns as i64;
            start_ns
        });
        Self {
            clock,
            wall_zero,
            start_at_ns,
            anchor_ns,
            missed_by_ns,
        }
    }
}
