//! The open-loop send schedule: when every client is *supposed* to send each message.
//!
//! Client `c` of `N` sends message `k` at `start + phase(c) + k * period`, with
//! `period = 1 / rate` and `phase(c) = c * period / N`: the clients' phases are spread
//! evenly over one period, so `N` clients produce a steady stream instead of `N`-message
//! bursts. The schedule never looks at replies; a message that goes out late is still
//! stamped with its intended time, and the lag is counted ([`crate::lag::SendLag`]).

/// A send that leaves more than this after its intended time counts as late.
///
/// One millisecond: far above the microseconds a timed wake-up normally takes, and
/// far below the latencies a chat server is judged by.
pub const LATE_SEND_THRESHOLD_NS: u64 = 1_000_000;

/// Intended send times of every client's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time of the first message of client 0, on the run clock (ns).
    start_ns: u64,
    /// Time between two messages of one client (ns), at least 1.
    period_ns: u64,
    /// Number of clients the phases are spread over, at least 1.
    clients: u32,
}

impl Schedule {
    /// `clients` clients sending `rate` messages per second each, from `start_ns` on.
    pub fn new(start_ns: u64, rate: f64, clients: u32) -> Self {
        let period = (1e9 / rate).round();
        let period_ns = if period.is_finite() && period >= 1.0 {
            period as u64
        } else {
            1
        };
        Self {
            start_ns,
            period_ns,
            clients: clients.max(1),
        }
    }

    /// Time between two messages of one client.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Offset of `client`'s first message from the start: spread evenly over one period.
    pub fn phase_ns(&self, client: u32) -> u64 {
        (u128::from(client) * u128::from(self.period_ns) / u128::from(self.clients)) as u64
    }

    /// When `client` should send message number `seq`.
    pub fn intended_ns(&self, client: u32, seq: u32) -> u64 {
        self.start_ns + self.phase_ns(client) + u64::from(seq) * self.period_ns
    }

    /// The sequence numbers whose intended time lies in `[from_ns, to_ns)` for `client`,
    /// as a half-open range.
    pub fn seqs_between(&self, client: u32, from_ns: u64, to_ns: u64) -> std::ops::Range<u64> {
        let first = self.start_ns + self.phase_ns(client);
        let index = |t: u64| -> u64 {
            if t <= first {
                0
            } else {
                (t - first).div_ceil(self.period_ns)
            }
        };
        index(from_ns)..index(to_ns).max(index(from_ns))
    }
}

/// When the messages of a thread leave: with a window of width `W > 0`, the sends that
/// fall due within one window of the run's grid (`start + k * W`) leave together at its
/// end, so the thread wakes once per window instead of once per message.
///
/// A message is never sent before its intended time, so the hold (at most `W`) counts in
/// its corrected latency like any other delay: the window can make results worse by up
/// to `W`, never better. With `W = 0` every message is released at its intended time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// Start of the grid (the schedule's start, ns on the run clock).
    start_ns: u64,
    /// Width of a window (ns); 0 sends every message at its intended time.
    width_ns: u64,
}

impl SendWindow {
    /// Windows of `width_ns` laid from `start_ns` on (0: no window).
    pub fn new(start_ns: u64, width_ns: u64) -> Self {
        Self { start_ns, width_ns }
    }

    /// Width of a window (ns).
    pub fn width_ns(&self) -> u64 {
        self.width_ns
    }

    /// When a message intended at `at_ns` is released: the end of the window that holds
    /// it (`at_ns` itself when it lies on the grid, or without a window).
    pub fn release_ns(&self, at_ns: u64) -> u64 {
        if self.width_ns == 0 || at_ns <= self.start_ns {
            return at_ns;
        }
        let into = at_ns - self.start_ns;
        self.start_ns + into.div_ceil(self.width_ns) * self.width_ns
    }
}

/// Walks one thread's clients through the schedule in time order.
///
/// All clients share one period, so sorting them by phase once gives the order of every
/// round: the next send is always the cursor's entry, found in O(1) without a heap.
#[derive(Debug, Clone)]
pub struct SendCursor {
    schedule: Schedule,
    /// `(phase, local index, global client id)`, sorted by phase.
    order: Vec<(u64, usize, u32)>,
    /// Position in `order` of the next send.
    pos: usize,
    /// Sequence number of the current round.
    round: u32,
}

/// One scheduled send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index of the client in the thread's list.
    pub local: usize,
    /// Global client id.
    pub client: u32,
    /// Sequence number of the message.
    pub seq: u32,
    /// Intended send time (ns on the run clock).
    pub at_ns: u64,
}

impl SendCursor {
    /// A cursor over `clients` (global ids, in the thread's local order), starting at
    /// sequence number 0.
    pub fn new(schedule: Schedule, clients: &[u32]) -> Self {
        let mut order: Vec<(u64, usize, u32)> = clients
            .iter()
            .enumerate()
            .map(|(local, &client)| (schedule.phase_ns(client), local, client))
            .collect();
        order.sort_unstable();
        Self {
            schedule,
            order,
            pos: 0,
            round: 0,
        }
    }

    /// The next send, or `None` if the thread has no clients.
    pub fn peek(&self) -> Option<Due> {
        let &(phase, local, client) = self.order.get(self.pos)?;
        Some(Due {
            local,
            client,
            seq: self.round,
            at_ns: self.schedule.start_ns + phase + u64::from(self.round) * self.schedule.period_ns,
        })
    }

    /// Moves past the send `peek` returned.
    pub fn advance(&mut self) {
        self.pos += 1;
        if self.pos >= self.order.len() {
            self.pos = 0;
            self.round = self.round.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_follow_the_period() {
        let s = Schedule::new(1_000, 50.0, 1);
        assert_eq!(s.period_ns(), 20_000_000);
        assert_eq!(s.intended_ns(0, 0), 1_000);
        assert_eq!(s.intended_ns(0, 1), 20_001_000);
        assert_eq!(s.intended_ns(0, 50), 1_000_001_000);
    }

    #[test]
    fn phases_are_spread_evenly_over_one_period() {
        let s = Schedule::new(0, 10.0, 4);
        let phases: Vec<u64> = (0..4).map(|c| s.phase_ns(c)).collect();
        assert_eq!(phases, [0, 25_000_000, 50_000_000, 75_000_000]);
        // 1000 clients: no two share a phase and all lie within one period.
        let s = Schedule::new(0, 50.0, 1000);
        let mut phases: Vec<u64> = (0..1000).map(|c| s.phase_ns(c)).collect();
        phases.dedup();
        assert_eq!(phases.len(), 1000);
        assert!(phases.iter().all(|&p| p < s.period_ns()));
        let gaps: Vec<u64> = phases.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 20_000), "even gaps: {gaps:?}");
    }

    #[test]
    fn cursor_yields_sends_in_time_order() {
        let s = Schedule::new(0, 100.0, 6);
        // This thread owns clients 5, 1, 3 (out of order on purpose).
        let mut cursor = SendCursor::new(s, &[5, 1, 3]);
        let mut last = 0;
        let mut seen = Vec::new();
        for _ in 0..9 {
            let due = cursor.peek().expect("clients present");
            assert!(due.at_ns >= last);
            assert_eq!(due.at_ns, s.intended_ns(due.client, due.seq));
            last = due.at_ns;
            seen.push((due.client, due.seq, due.local));
            cursor.advance();
        }
        assert_eq!(
            seen,
            [
                (1, 0, 1),
                (3, 0, 2),
                (5, 0, 0),
                (1, 1, 1),
                (3, 1, 2),
                (5, 1, 0),
                (1, 2, 1),
                (3, 2, 2),
                (5, 2, 0)
            ]
        );
        assert_eq!(SendCursor::new(s, &[]).peek(), None);
    }

    #[test]
    fn seqs_between_counts_sends_in_a_window() {
        let s = Schedule::new(1_000, 10.0, 2); // period 100 ms, client 1 at +50 ms
        assert_eq!(s.seqs_between(0, 0, 1_000), 0..0);
        assert_eq!(s.seqs_between(0, 0, 1_001), 0..1);
        assert_eq!(s.seqs_between(0, 1_000, 1_000_001_000), 0..10);
        assert_eq!(s.seqs_between(1, 1_000, 1_000_001_000), 0..10);
        assert_eq!(s.seqs_between(0, 300_000_000, 1_000_001_000), 3..10);
        assert_eq!(s.seqs_between(0, 500, 100), 0..0);
    }

    #[test]
    fn a_send_window_releases_at_the_end_of_the_window_and_never_early() {
        let w = SendWindow::new(1_000, 1_000_000);
        assert_eq!(w.release_ns(1_000), 1_000);
        assert_eq!(w.release_ns(1_001), 1_001_000);
        assert_eq!(w.release_ns(1_000_999), 1_001_000);
        assert_eq!(w.release_ns(1_001_000), 1_001_000);
        assert_eq!(w.release_ns(1_001_001), 2_001_000);
        // Every release lies at or after the intended time and less than a window later.
        for at in (0..5_000_000).step_by(7_919) {
            let r = w.release_ns(at);
            assert!(r >= at && r - at < 1_000_000, "{at} -> {r}");
        }
        // No window: every message leaves at its intended time.
        let none = SendWindow::new(1_000, 0);
        assert_eq!(none.release_ns(123_456), 123_456);
    }
}
