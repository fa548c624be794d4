//! The live progress line that `loadgen` prints on stderr once a second: where the run
//! is (phase and clock), connections, rates and the last second's latency. Pure
//! formatting, so what a user sees at every phase is tested without running load.

/// The run's timeline on the run clock (nanoseconds since loadgen started), known once
/// every thread has connected its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// First send (warmup begins).
    pub start_ns: u64,
    /// The measured part begins.
    pub measure_ns: u64,
    /// The measured part ends; the drain follows.
    pub end_ns: u64,
}

/// Where a run is at a moment of the run clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Clients are connecting and finishing their handshakes; nothing is sent yet.
    Connecting,
    /// Sending, not measured.
    Warmup,
    /// Sending, measured.
    Measure,
    /// No more sends; waiting for the last replies.
    Drain,
}

impl Phase {
    /// The phase at `now_ns` (the end of the second being reported). Before the schedule
    /// is fixed, and until its first send, clients are still connecting.
    pub fn at(now_ns: u64, schedule: Option<Schedule>) -> Self {
        match schedule {
            None => Self::Connecting,
            Some(s) if now_ns <= s.start_ns => Self::Connecting,
            Some(s) if now_ns <= s.measure_ns => Self::Warmup,
            Some(s) if now_ns <= s.end_ns => Self::Measure,
            Some(_) => Self::Drain,
        }
    }

    /// The word the progress line shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Warmup => "warmup",
            Self::Measure => "measure",
            Self::Drain => "drain",
        }
    }
}

/// One second of the run, all threads together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Seconds of the run clock at the end of this second (1 for the first).
    pub elapsed_s: u64,
    /// The timeline, once fixed.
    pub schedule: Option<Schedule>,
    /// Ready connections.
    pub open: u32,
    /// Clients asked for.
    pub clients: u32,
    /// Messages sent in this second (warmup included).
    pub sent: u64,
    /// Deliveries received in this second (warmup included).
    pub received: u64,
    /// Corrected p50 and p99 of this second's deliveries (`None` when there were none).
    pub latency_us: Option<(u64, u64)>,
    /// Errors so far.
    pub errors: u64,
}

/// Formats one progress line:
///
/// ```text
/// [   14s/   24s] measure    conns 1000/1000 sent 50000/s recv 49999/s p50 0.103ms p99 4.895ms errors 0
/// ```
///
/// The clock is the run clock (connecting included) over the planned end of the
/// measured part; it stops at that end, so the drain never shows more than the total.
pub fn line(p: &Progress) -> String {
    let phase = Phase::at(p.elapsed_s * 1_000_000_000, p.schedule);
    let total_s = p.schedule.map(|s| s.end_ns.div_ceil(1_000_000_000));
    let elapsed = total_s.map_or(p.elapsed_s, |total| p.elapsed_s.min(total));
    let total = total_s.map_or("?".to_string(), |t| format!("{t}s"));
    let ms = |us: u64| format!("{:.3}ms", us as f64 / 1000.0);
    let (p50, p99) = p
        .latency_us
        .map_or(("-".to_string(), "-".to_string()), |(p50, p99)| {
            (ms(p50), ms(p99))
        });
    format!(
        "[{:>5}/{total:>5}] {:<10} conns {}/{} sent {}/s recv {}/s p50 {p50} p99 {p99} errors {}",
        format!("{elapsed}s"),
        phase.name(),
        p.open,
        p.clients,
        p.sent,
        p.received,
        p.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Connecting ends at 2 s, 3 s of warmup, 10 s measured.
    fn schedule() -> Schedule {
        Schedule {
            start_ns: 2 * S,
            measure_ns: 5 * S,
            end_ns: 15 * S,
        }
    }

    fn at(elapsed_s: u64, schedule: Option<Schedule>) -> String {
        line(&Progress {
            elapsed_s,
            schedule,
            open: 10,
            clients: 10,
            sent: 100,
            received: 99,
            latency_us: Some((103, 4895)),
            errors: 0,
        })
    }

    #[test]
    fn phases_before_the_measured_part_are_named() {
        assert!(
            at(1, None).contains("] connecting conns"),
            "{}",
            at(1, None)
        );
        assert!(at(2, Some(schedule())).contains("] connecting "));
        assert!(at(3, Some(schedule())).contains("] warmup "));
        assert!(at(5, Some(schedule())).contains("] warmup "));
        assert!(at(6, Some(schedule())).contains("] measure "));
        assert!(at(16, Some(schedule())).contains("] drain "));
        for line in [at(1, None), at(3, Some(schedule()))] {
            assert!(!line.contains("ramp") && !line.contains("ready"), "{line}");
        }
    }

    #[test]
    fn the_clock_never_passes_the_total() {
        assert_eq!(
            at(6, Some(schedule())),
            "[   6s/  15s] measure    conns 10/10 sent 100/s recv 99/s p50 0.103ms p99 4.895ms errors 0"
        );
        for elapsed in [15, 16, 17, 40] {
            let line = at(elapsed, Some(schedule()));
            assert!(line.starts_with("[  15s/  15s] "), "{line}");
        }
        // A measured end off a whole second rounds the total up, not the clock past it.
        let odd = Schedule {
            end_ns: 14 * S + S / 2,
            ..schedule()
        };
        assert!(at(16, Some(odd)).starts_with("[  15s/  15s] drain"));
    }

    #[test]
    fn the_clock_runs_freely_while_the_total_is_unknown() {
        assert!(at(7, None).starts_with("[   7s/    ?] connecting"));
    }

    #[test]
    fn a_second_without_deliveries_shows_dashes() {
        let p = Progress {
            elapsed_s: 1,
            schedule: None,
            open: 0,
            clients: 5,
            sent: 0,
            received: 0,
            latency_us: None,
            errors: 2,
        };
        assert!(line(&p).ends_with("p50 - p99 - errors 2"), "{}", line(&p));
    }
}
