//! Whose doing a send's lag was, and when loadgen's own lag is too much for a run's tail
//! to be the server's.
//!
//! A measured message is *released* at its intended time, or with a send window at the
//! end of its window ([`crate::schedule::SendWindow`]). Two kinds of lag follow:
//!
//! - **own lag**: loadgen reached the message after its release, because its thread was
//!   not running (the machine was busy) or was still busy with earlier work. The socket
//!   would have taken the bytes; the delay is loadgen's, not the server's.
//! - **held by the server**: loadgen reached the message on time, but bytes written
//!   before it were still waiting for the socket (the server was not reading fast
//!   enough), so the message queued behind them. The delay is the server's.
//!
//! Both count in the corrected latency, which always runs from the intended time. Own
//! lag is also taken out of it per message ([`crate::recorder::LatencyRecorder`]'s
//! `lag_free`), so a run shows both; and a run whose own lag is large is marked as not
//! trustworthy ([`trustworthy`]) rather than passing its tail off as the server's.

use hdrhistogram::Histogram;

use crate::recorder::{self, new_histogram};
use crate::report::Summary;
use crate::schedule::LATE_SEND_THRESHOLD_NS;

/// Measured sends that may be late (more than [`LATE_SEND_THRESHOLD_NS`] of own lag) in
/// a trustworthy run, per thousand sent: 1, i.e. 0.1 %.
///
/// Then loadgen's own lag can move the corrected percentiles up to p99.9 by at most a
/// millisecond; beyond that, the 99.9th percentile and everything above it may be
/// loadgen's stalls rather than the server's.
pub const MAX_LATE_PER_THOUSAND: u64 = 1;

/// Whether a run with `late` late sends out of `sent` measured ones is trustworthy: at
/// most [`MAX_LATE_PER_THOUSAND`] per thousand of its sends left late by loadgen's own
/// doing.
pub fn trustworthy(late: u64, sent: u64) -> bool {
    late.saturating_mul(1000) <= sent.saturating_mul(MAX_LATE_PER_THOUSAND)
}

/// How far behind their release measured sends left, told apart by whose doing it was.
#[derive(Debug, Clone, PartialEq)]
pub struct SendLag {
    /// Sends whose own lag exceeded [`LATE_SEND_THRESHOLD_NS`].
    pub late: u64,
    /// Largest own lag (ns).
    pub max_ns: u64,
    /// Own lag of every measured send made when it fell due (us; from 1 us, as the
    /// latency histograms). Sends that waited for the `--max-in-flight` window are not
    /// in it: that wait is the server's.
    pub own: Histogram<u64>,
    /// Sends queued behind bytes the socket had not yet taken: held by the server.
    pub held: u64,
    /// Longest time such a backlog took to clear (ns), from the first message queued
    /// behind it.
    pub held_max_ns: u64,
}

impl Default for SendLag {
    fn default() -> Self {
        Self {
            late: 0,
            max_ns: 0,
            own: new_histogram(),
            held: 0,
            held_max_ns: 0,
        }
    }
}

impl SendLag {
    /// Notes a send released at `release_ns` that loadgen made at `actual_ns`.
    pub fn record(&mut self, release_ns: u64, actual_ns: u64) {
        let lag = own_lag_ns(release_ns, actual_ns);
        if lag > LATE_SEND_THRESHOLD_NS {
            self.late += 1;
        }
        self.max_ns = self.max_ns.max(lag);
        recorder::record_us(&mut self.own, lag);
    }

    /// Notes a send queued behind bytes the socket had not taken.
    pub fn record_held(&mut self) {
        self.held += 1;
    }

    /// A backlog that held sends cleared after `ns`.
    pub fn backlog_cleared(&mut self, ns: u64) {
        self.held_max_ns = self.held_max_ns.max(ns);
    }

    /// The own lag at `quantile` (us; 0 without sends).
    pub fn own_us_at(&self, quantile: f64) -> u64 {
        if self.own.is_empty() {
            0
        } else {
            self.own.value_at_quantile(quantile)
        }
    }

    /// Combines another thread's lag.
    pub fn merge(&mut self, other: &SendLag) {
        self.late += other.late;
        self.max_ns = self.max_ns.max(other.max_ns);
        recorder::merge(&mut self.own, &other.own);
        self.held += other.held;
        self.held_max_ns = self.held_max_ns.max(other.held_max_ns);
    }
}

/// The warning a run's own lag calls for, if any: with late sends, how many and how
/// late; in a run that is not [`trustworthy`], that its corrected tail is loadgen's and
/// what the latency is without loadgen's own lag.
pub fn warning(s: &Summary) -> Option<String> {
    if s.late_sends == 0 {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let share = 100.0 * s.late_sends as f64 / s.sent.max(1) as f64;
    let head = format!(
        "loadgen fell behind its own schedule: {} of {} sends ({share:.2} %) left more than \
         1 ms after their release (worst {:.3} ms)",
        s.late_sends,
        s.sent,
        ms(s.max_send_lag_us)
    );
    if s.trustworthy != Some(false) {
        return Some(format!("{head}; the corrected latencies include this lag"));
    }
    Some(format!(
        "{head}, more than the {MAX_LATE_PER_THOUSAND} in 1000 a trustworthy run allows: \
         the run is NOT TRUSTWORTHY, its corrected tail (p99.9 {:.3} ms, max {:.3} ms) \
         is partly loadgen's own stalls; without them p99.9 {:.3} ms, max {:.3} ms. Give \
         loadgen more CPU (fewer clients per thread, a quieter machine) or a wider \
         --send-window",
        ms(s.p999_us),
        ms(s.max_us),
        ms(s.lag_free_p999_us.unwrap_or_default()),
        ms(s.lag_free_max_us.unwrap_or_default()),
    ))
}

/// Own lag of a send released at `release_ns` and made at `actual_ns`: never negative
/// (a clock read a hair early is no lag).
pub fn own_lag_ns(release_ns: u64, actual_ns: u64) -> u64 {
    actual_ns.saturating_sub(release_ns)
}

/// The sequence numbers of a client's measured messages that waited for its
/// `--max-in-flight` window and whose echo has not come back yet.
///
/// Bounded by the window: a message in it holds one of the window's slots until its echo
/// arrives, and a lost echo keeps its slot (and its entry) for good, so at most `window`
/// entries ever exist. Empty without a window.
#[derive(Debug, Default)]
pub(crate) struct DeferredSends(Vec<u32>);

impl DeferredSends {
    pub(crate) fn push(&mut self, seq: u32) {
        self.0.push(seq);
    }

    /// Whether no deferred message awaits its echo.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `seq` was deferred; forgets it.
    pub(crate) fn take(&mut self, seq: u32) -> bool {
        match self.0.iter().position(|&s| s == seq) {
            Some(i) => {
                self.0.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_sends_are_detected_past_the_threshold() {
        let mut lag = SendLag::default();
        lag.record(1_000, 1_000);
        lag.record(1_000, 900); // early (clock granularity) is not negative lag
        lag.record(0, LATE_SEND_THRESHOLD_NS);
        assert_eq!(lag.late, 0);
        lag.record(0, LATE_SEND_THRESHOLD_NS + 1);
        lag.record(5, 5_000_005);
        assert_eq!(lag.late, 2);
        assert_eq!(lag.max_ns, 5_000_000);
        assert_eq!(lag.own.len(), 5);
        let mut other = SendLag {
            late: 3,
            max_ns: 7,
            ..SendLag::default()
        };
        other.merge(&lag);
        assert_eq!((other.late, other.max_ns), (5, 5_000_000));
        assert_eq!(other.own.len(), 5);
    }

    #[test]
    fn own_lag_and_held_sends_are_counted_apart() {
        let mut lag = SendLag::default();
        // 98 sends 20 us after release, two 3 ms behind: loadgen's own doing.
        for i in 0..100u64 {
            let behind = if i < 98 { 20_000 } else { 3_000_000 };
            lag.record(i * 1_000_000, i * 1_000_000 + behind);
        }
        // Three sends queued behind a backlog that took 40 ms to clear: the server's.
        lag.record_held();
        lag.record_held();
        lag.record_held();
        lag.backlog_cleared(40_000_000);
        lag.backlog_cleared(10_000_000);
        assert_eq!(lag.late, 2);
        assert_eq!(lag.held, 3);
        assert_eq!(lag.held_max_ns, 40_000_000);
        // The server's backlog is not loadgen's lag.
        assert_eq!(lag.max_ns, 3_000_000);
        assert!(lag.own.equivalent(lag.own_us_at(0.5), 20));
        assert!(lag.own.equivalent(lag.own_us_at(0.99), 3_000));
        let mut total = SendLag::default();
        total.merge(&lag);
        total.merge(&lag);
        assert_eq!((total.late, total.held), (4, 6));
        assert_eq!(total.own.len(), 200);
    }

    #[test]
    fn only_a_run_past_the_limit_is_called_untrustworthy() {
        let run = |late: u64| {
            let s = Summary {
                sent: 100_000,
                late_sends: late,
                max_send_lag_us: 18_000,
                p999_us: 18_500,
                max_us: 19_000,
                lag_free_p999_us: Some(900),
                lag_free_max_us: Some(2_000),
                trustworthy: Some(trustworthy(late, 100_000)),
                ..crate::results::example_summary()
            };
            warning(&s)
        };
        assert_eq!(run(0), None);
        let within = run(100).expect("late sends are always told");
        assert!(within.contains("100 of 100000 sends (0.10 %)"), "{within}");
        assert!(!within.contains("NOT TRUSTWORTHY"), "{within}");
        let past = run(101).expect("late sends are always told");
        assert!(past.contains("NOT TRUSTWORTHY"), "{past}");
        assert!(past.contains("p99.9 18.500 ms"), "{past}");
        assert!(
            past.contains("without them p99.9 0.900 ms, max 2.000 ms"),
            "{past}"
        );
    }

    #[test]
    fn a_run_is_trustworthy_up_to_one_late_send_per_thousand() {
        assert!(trustworthy(0, 0));
        assert!(trustworthy(0, 10));
        assert!(trustworthy(1, 1_000));
        assert!(!trustworthy(2, 1_000));
        assert!(trustworthy(300, 300_000));
        assert!(!trustworthy(301, 300_000));
        assert!(!trustworthy(1, 999));
        assert!(!trustworthy(1, 0));
    }
}
