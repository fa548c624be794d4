//! Accounting for every measured message: which sequence numbers of one sender reached
//! one receiver, in what order, and how often.
//!
//! A receiver keeps one [`SequenceTracker`] per sender it expects messages from (itself
//! in the echo scenario, its partner in dm, every room member in the room scenario).
//! Loss is not tracked here: it is `expected - unique` at the end of the run, where
//! `expected` comes from the senders' counts (see [`crate::report`]).

/// What the arrival of one sequence number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First arrival, after every lower number seen so far.
    InOrder,
    /// First arrival, but a higher number came before it.
    Reordered,
    /// Seen before.
    Duplicate,
}

/// The set of sequence numbers one receiver got from one sender.
#[derive(Debug, Clone, Default)]
pub struct SequenceTracker {
    /// Bit `n` is set once sequence number `n` arrived.
    seen: Vec<u64>,
    /// Highest sequence number that arrived, if any.
    highest: Option<u32>,
    /// Distinct sequence numbers that arrived.
    unique: u64,
}

impl SequenceTracker {
    /// Notes the arrival of `seq`. The caller bounds `seq` (see
    /// [`crate::schedule::Schedule`]) so a forged number cannot grow the set without limit.
    pub fn record(&mut self, seq: u32) -> Arrival {
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            return Arrival::Duplicate;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(high) if seq < high => Arrival::Reordered,
            _ => {
                self.highest = Some(seq);
                Arrival::InOrder
            }
        }
    }

    /// Distinct sequence numbers that arrived.
    pub fn unique(&self) -> u64 {
        self.unique
    }
}

/// Counts of what went wrong with measured messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Arrivals of a sequence number seen before.
    pub duplicated: u64,
    /// First arrivals after a higher sequence number from the same sender.
    pub reordered: u64,
    /// Payloads whose stamp did not check out (bad checksum, unknown sender, impossible
    /// sequence number, or a reply that is not one of ours).
    pub corrupted: u64,
}

impl Anomalies {
    /// Adds another thread's counts.
    pub fn merge(&mut self, other: Anomalies) {
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
    }

    /// Counts one arrival.
    pub fn note(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::InOrder => {}
            Arrival::Reordered => self.reordered += 1,
            Arrival::Duplicate => self.duplicated += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_reordered_and_duplicates_are_told_apart() {
        let mut t = SequenceTracker::default();
        let mut counts = Anomalies::default();
        for seq in [0, 1, 3, 2, 2, 5, 4, 0, 200, 100] {
            counts.note(t.record(seq));
        }
        assert_eq!(t.unique(), 8);
        assert_eq!(counts.duplicated, 2);
        assert_eq!(counts.reordered, 3); // 2 after 3, 4 after 5, 100 after 200
        assert_eq!(counts.corrupted, 0);
    }

    #[test]
    fn first_arrival_is_in_order_at_any_number() {
        let mut t = SequenceTracker::default();
        assert_eq!(t.record(1000), Arrival::InOrder);
        assert_eq!(t.record(1000), Arrival::Duplicate);
        assert_eq!(t.record(999), Arrival::Reordered);
        assert_eq!(t.record(1001), Arrival::InOrder);
    }
}
