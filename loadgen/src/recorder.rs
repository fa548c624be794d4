//! Latency recording: per-thread HdrHistograms of the corrected latency (from the
//! intended send time, the headline number) and the uncorrected one (from the actual
//! send), for the whole run and for the current one-second interval.
//!
//! Values are microseconds from 1 us to 60 s with 3 significant figures; anything slower
//! is clamped to 60 s (it is still counted). Threads record into their own recorder and
//! the histograms are merged after the run (and per interval for the time series).

use hdrhistogram::Histogram;

/// Lowest recordable latency (us).
pub const LOWEST_US: u64 = 1;
/// Highest recordable latency (us): 60 s.
pub const HIGHEST_US: u64 = 60_000_000;
/// Significant figures kept.
pub const SIGFIG: u8 = 3;

/// An empty histogram with the recorder's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Nanoseconds as whole microseconds within the recordable range.
fn to_us(ns: u64) -> u64 {
    (ns / 1_000).clamp(LOWEST_US, HIGHEST_US)
}

/// Records a latency of `ns` nanoseconds into `histogram`, as the recorder does.
pub fn record_us(histogram: &mut Histogram<u64>, ns: u64) {
    histogram.saturating_record(to_us(ns));
}

/// One thread's latency histograms.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    /// Corrected latency of every measured message (now - intended send time).
    pub corrected: Histogram<u64>,
    /// Uncorrected latency of every measured message (now - actual send time).
    pub uncorrected: Histogram<u64>,
    /// `corrected`, for the current interval only.
    pub interval_corrected: Histogram<u64>,
    /// `uncorrected`, for the current interval only.
    pub interval_uncorrected: Histogram<u64>,
    /// Corrected latency of every message, warmup included, for the live progress line.
    pub progress: Histogram<u64>,
    /// Corrected latency of every measured message less loadgen's own lag in sending it
    /// (see [`crate::lag`]): what the latency would have been had loadgen kept its plan.
    pub lag_free: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            interval_corrected: new_histogram(),
            interval_uncorrected: new_histogram(),
            progress: new_histogram(),
            lag_free: new_histogram(),
        }
    }
}

impl LatencyRecorder {
    /// Records one measured arrival whose sender's own lag was `own_lag_ns`: its
    /// corrected latency less that lag goes to `lag_free`; the rest as [`Self::record`].
    pub fn record_measured(&mut self, corrected_ns: u64, uncorrected_ns: u64, own_lag_ns: u64) {
        self.record(corrected_ns, uncorrected_ns, true);
        record_us(&mut self.lag_free, corrected_ns.saturating_sub(own_lag_ns));
    }

    /// Records one arrival. Warmup arrivals (`measured == false`) only feed the progress
    /// line.
    pub fn record(&mut self, corrected_ns: u64, uncorrected_ns: u64, measured: bool) {
        let corrected = to_us(corrected_ns);
        self.progress.saturating_record(corrected);
        if measured {
            let uncorrected = to_us(uncorrected_ns);
            self.corrected.saturating_record(corrected);
            self.uncorrected.saturating_record(uncorrected);
            self.interval_corrected.saturating_record(corrected);
            self.interval_uncorrected.saturating_record(uncorrected);
        }
    }

    /// Hands out the interval histograms `(corrected, uncorrected, progress)` and starts
    /// new intervals.
    pub fn take_interval(&mut self) -> (Histogram<u64>, Histogram<u64>, Histogram<u64>) {
        let out = (
            self.interval_corrected.clone(),
            self.interval_uncorrected.clone(),
            self.progress.clone(),
        );
        self.interval_corrected.reset();
        self.interval_uncorrected.reset();
        self.progress.reset();
        out
    }
}

/// Adds `from` into `into`. Both come from [`new_histogram`], so the bounds always match.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(e) = into.add(from) {
        // Unreachable with matching bounds; count nothing rather than crash a report.
        debug_assert!(false, "histogram merge failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_and_warmup_arrivals_go_to_the_right_histograms() {
        let mut r = LatencyRecorder::default();
        r.record(5_000_000, 1_000, true);
        r.record(7_000_000, 2_000, false);
        assert_eq!(r.corrected.len(), 1);
        assert_eq!(r.uncorrected.len(), 1);
        assert_eq!(r.progress.len(), 2);
        assert!(r.corrected.equivalent(5_000, r.corrected.max()));
        assert_eq!(r.uncorrected.max(), 1);
        let (c, u, p) = r.take_interval();
        assert_eq!((c.len(), u.len(), p.len()), (1, 1, 2));
        assert_eq!(r.interval_corrected.len(), 0);
        assert_eq!(r.corrected.len(), 1, "run totals survive an interval");
    }

    #[test]
    fn extremes_are_clamped_not_lost() {
        let mut r = LatencyRecorder::default();
        r.record(0, 0, true);
        r.record(3_600_000_000_000, 3_600_000_000_000, true);
        assert_eq!(r.corrected.len(), 2);
        assert_eq!(r.corrected.min(), 1);
        assert!(r.corrected.equivalent(r.corrected.max(), HIGHEST_US));
    }

    #[test]
    fn merging_per_thread_histograms_is_exact() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        let mut all = new_histogram();
        for v in 1..5_000u64 {
            let v = v * 37 % 100_000 + 1;
            if v % 3 == 0 { &mut a } else { &mut b }.saturating_record(v);
            all.saturating_record(v);
        }
        let mut merged = new_histogram();
        merge(&mut merged, &a);
        merge(&mut merged, &b);
        assert_eq!(merged, all);
    }
}
