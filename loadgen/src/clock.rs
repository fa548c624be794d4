//! The run clock: monotonic nanoseconds since one `Instant` taken when the run starts.
//!
//! Every thread shares the same base, so a stamp written by one thread and read by another
//! (room and dm scenarios) gives a valid difference. Wall-clock time is used only to name
//! result files and to stamp `started_at`.

use std::time::Instant;

/// Monotonic nanoseconds since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// A clock that reads `ahead` now: its zero lies `ahead` in the past (used to put a
    /// `--start-at` instant on a whole second of the run clock). Falls back to zero now
    /// if the monotonic clock has not been running that long.
    pub fn start_ahead(ahead: std::time::Duration) -> Self {
        let now = Instant::now();
        Self {
            base: now.checked_sub(ahead).unwrap_or(now),
        }
    }

    /// Nanoseconds since the clock started.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
