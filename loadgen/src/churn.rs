//! Churn: room members that drop their connection during the run and come back, resuming
//! from the last room message they saw; and the check, per member, that a room's ids
//! arrive one by one whether live or replayed.
//!
//! [`ChurnSchedule`] spreads the drops of one thread evenly over the measured run,
//! visiting its clients round-robin. [`RoomCursor`] follows one member through its
//! room's ids: the join's last id, each message, and each replay announced by
//! `Resumed`.

/// Where a room member is in its room's sequence of ids.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomCursor {
    /// The last id received: the first join's `last`, then each message's id.
    last: Option<u64>,
    /// Messages of the current replay still to come.
    replaying: u32,
}

/// How one room message fitted the member's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// It came in a replay (between `Resumed` and the live traffic).
    pub replayed: bool,
    /// Its id was the last one plus one.
    pub in_order: bool,
}

impl RoomCursor {
    /// The id to resume from after a drop, once the member has joined.
    pub(crate) fn resume_point(&self) -> Option<u64> {
        self.last
    }

    /// The member's own `Joined` with the room's `last` id. Only a first join sets the
    /// position: after a resume, the replay continues from the member's own last id.
    pub(crate) fn joined(&mut self, last: u64) {
        if self.last.is_none() {
            self.last = Some(last);
        }
    }

    /// `Resumed`: the next `replayed` messages are a replay.
    pub(crate) fn resumed(&mut self, replayed: u32) {
        self.replaying = replayed;
    }

    /// Notes message `id`.
    pub(crate) fn message(&mut self, id: u64) -> Fit {
        let in_order = self.last.is_none_or(|last| id == last.wrapping_add(1));
        self.last = Some(id);
        let replayed = self.replaying > 0;
        self.replaying = self.replaying.saturating_sub(1);
        Fit { replayed, in_order }
    }
}

/// What churn did on one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChurnCounts {
    /// Connections dropped on purpose (each followed by a reconnect).
    pub reconnects: u64,
    /// Measured messages that arrived in a replay rather than live.
    pub replayed: u64,
    /// Messages the server said it no longer held when a member resumed.
    pub missed: u64,
    /// Room messages whose id was not the previous one plus one (a gap, a repeat or a
    /// step back): any is a broken room order.
    pub order_breaks: u64,
}

impl ChurnCounts {
    /// Adds another thread's counts.
    pub fn merge(&mut self, other: ChurnCounts) {
        self.reconnects += other.reconnects;
        self.replayed += other.replayed;
        self.missed += other.missed;
        self.order_breaks += other.order_breaks;
    }
}

/// When the clients of one thread drop: every `interval_ns` the next client in turn,
/// within `[from_ns, until_ns)`.
#[derive(Debug, Clone)]
pub(crate) struct ChurnSchedule {
    interval_ns: u64,
    next_ns: u64,
    until_ns: u64,
    next_client: usize,
    clients: usize,
}

impl ChurnSchedule {
    /// Drops of `percent` of `clients` per second, between `from_ns` and `until_ns`;
    /// `None` when that is no drop at all.
    pub(crate) fn new(percent: f64, clients: usize, from_ns: u64, until_ns: u64) -> Option<Self> {
        let per_second = clients as f64 * percent / 100.0;
        if per_second.is_nan() || per_second <= 0.0 || clients == 0 {
            return None;
        }
        let interval_ns = (1e9 / per_second).max(1.0) as u64;
        Some(Self {
            interval_ns,
            // Half an interval in, so threads do not all drop at the same instant.
            next_ns: from_ns + interval_ns / 2,
            until_ns,
            next_client: 0,
            clients,
        })
    }

    /// The next client (local index) to drop by `now_ns`, if one is due.
    pub(crate) fn due(&mut self, now_ns: u64) -> Option<usize> {
        if self.next_ns > now_ns || self.next_ns >= self.until_ns {
            return None;
        }
        self.next_ns += self.interval_ns;
        let client = self.next_client;
        self.next_client = (self.next_client + 1) % self.clients;
        Some(client)
    }

    /// When the next drop is due (`u64::MAX`: none left).
    pub(crate) fn next_ns(&self) -> u64 {
        if self.next_ns >= self.until_ns {
            u64::MAX
        } else {
            self.next_ns
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_follows_live_messages_and_replays() {
        let mut c = RoomCursor::default();
        assert_eq!(c.resume_point(), None);
        c.joined(100);
        assert_eq!(c.resume_point(), Some(100));
        let live = Fit {
            replayed: false,
            in_order: true,
        };
        assert_eq!(c.message(101), live);
        assert_eq!(c.message(102), live);
        // Dropped after 102; the resume's own Joined names a later last id.
        c.joined(105);
        assert_eq!(c.resume_point(), Some(102));
        c.resumed(3);
        for id in 103..=105 {
            assert_eq!(
                c.message(id),
                Fit {
                    replayed: true,
                    in_order: true
                }
            );
        }
        assert_eq!(c.message(106), live);
    }

    #[test]
    fn gaps_repeats_and_steps_back_break_the_order() {
        let mut c = RoomCursor::default();
        c.joined(0);
        assert!(c.message(1).in_order);
        assert!(!c.message(3).in_order, "a gap");
        assert!(!c.message(3).in_order, "a repeat");
        assert!(!c.message(2).in_order, "a step back");
        assert!(c.message(3).in_order);
    }

    #[test]
    fn drops_are_spread_evenly_and_round_robin_within_the_window() {
        // 10 % of 20 clients per second: two drops a second, every 500 ms.
        let mut s = ChurnSchedule::new(10.0, 20, 1_000_000_000, 3_000_000_000).unwrap();
        assert_eq!(s.next_ns(), 1_250_000_000);
        assert_eq!(s.due(1_249_999_999), None);
        assert_eq!(s.due(1_250_000_000), Some(0));
        assert_eq!(s.due(1_250_000_000), None);
        let mut dropped = Vec::new();
        while let Some(i) = s.due(10_000_000_000) {
            dropped.push(i);
        }
        // 1.75 s, 2.25 s and 2.75 s; nothing at or after the end.
        assert_eq!(dropped, [1, 2, 3]);
        assert_eq!(s.next_ns(), u64::MAX);
        assert!(ChurnSchedule::new(0.0, 20, 0, 1).is_none());
        assert!(ChurnSchedule::new(5.0, 0, 0, 1).is_none());
    }
}
