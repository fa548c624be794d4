//! When to try reconnecting: exponential backoff with full jitter, bounded per wait and
//! in total, without I/O or clocks so unit tests drive it with a seeded generator.
//!
//! Attempt `n` (1-based) waits a uniformly random time in `[0, min(max, first * 2^(n-1))]`
//! ("full jitter"): clients cut off together by one server restart spread their
//! reconnects over the window instead of arriving in one burst. Every wait is at most
//! [`ReconnectPolicy::max_delay`], and the whole effort ends once
//! [`ReconnectPolicy::give_up_after`] has passed since the connection was lost.

use std::time::Duration;

/// How `chat` reconnects after losing its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Ceiling of the first wait; each later attempt doubles it.
    pub first_delay: Duration,
    /// Ceiling of every wait.
    pub max_delay: Duration,
    /// No attempt starts once this long has passed since the connection was lost.
    pub give_up_after: Duration,
}

impl ReconnectPolicy {
    /// 250 ms doubling to at most 8 s, giving up after `give_up_after`.
    pub fn new(give_up_after: Duration) -> Self {
        ReconnectPolicy {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            give_up_after,
        }
    }
}

/// A small, seedable pseudo-random generator (SplitMix64): jitter needs spread, not
/// unpredictability, and a seed makes the schedule reproducible in tests.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator seeded from the clock and the process id, so that clients started
    /// together do not draw the same waits.
    pub fn from_entropy() -> Self {
        let pid = u64::from(std::process::id());
        SplitMix64::new(shared::time::unix_nanos() ^ pid.rotate_left(32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniformly random fraction in `[0, 1]`.
    fn fraction(&mut self) -> f64 {
        // 53 bits: exactly representable in an f64.
        (self.next_u64() >> 11) as f64 / ((1u64 << 53) - 1) as f64
    }
}

/// The waits between reconnect attempts. [`Backoff::next_delay`] draws the wait before
/// the next attempt; [`Backoff::reset`] starts over once a connection is back.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    rng: SplitMix64,
    /// Attempts drawn since the last reset.
    attempts: u32,
}

impl Backoff {
    /// A schedule for `policy` drawing its jitter from `rng`.
    pub fn new(policy: ReconnectPolicy, rng: SplitMix64) -> Self {
        Backoff {
            policy,
            rng,
            attempts: 0,
        }
    }

    /// The policy it follows.
    pub fn policy(&self) -> &ReconnectPolicy {
        &self.policy
    }

    /// The number of the attempt the last [`next_delay`](Backoff::next_delay) was for
    /// (1 for the first after a reset).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The ceiling of the wait before attempt `attempt` (1-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.policy
            .first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max_delay)
    }

    /// The wait before the next attempt: uniform in `[0, ceiling]` (full jitter).
    pub fn next_delay(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        self.ceiling(self.attempts).mul_f64(self.rng.fraction())
    }

    /// Back to the first, shortest wait: the connection is back.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(seed: u64) -> Backoff {
        Backoff::new(
            ReconnectPolicy::new(Duration::from_secs(300)),
            SplitMix64::new(seed),
        )
    }

    #[test]
    fn ceilings_double_from_250_ms_up_to_8_s() {
        let b = backoff(1);
        let ceilings: Vec<u128> = (1..=8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        // No overflow however long it goes on.
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn every_wait_is_within_its_ceiling() {
        for seed in 0..50 {
            let mut b = backoff(seed);
            for attempt in 1..=40 {
                let delay = b.next_delay();
                assert_eq!(b.attempts(), attempt);
                assert!(delay <= b.ceiling(attempt), "{seed}/{attempt}: {delay:?}");
                assert!(delay <= Duration::from_secs(8), "{delay:?}");
            }
        }
    }

    #[test]
    fn waits_are_jittered_not_fixed() {
        // Attempt 6 onwards has an 8 s ceiling: a fixed schedule would give 8 s each time.
        let mut b = backoff(7);
        let delays: Vec<Duration> = (0..30).map(|_| b.next_delay()).skip(5).collect();
        let min = delays.iter().min().copied().unwrap_or_default();
        let max = delays.iter().max().copied().unwrap_or_default();
        assert!(max - min > Duration::from_secs(2), "{delays:?}");
        // Two clients with different seeds do not wait the same.
        let (mut a, mut c) = (backoff(1), backoff(2));
        let a: Vec<Duration> = (0..5).map(|_| a.next_delay()).collect();
        let c: Vec<Duration> = (0..5).map(|_| c.next_delay()).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn same_seed_same_schedule() {
        let (mut a, mut b) = (backoff(42), backoff(42));
        for _ in 0..10 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn reset_starts_over_with_the_shortest_wait() {
        let mut b = backoff(3);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.attempts(), 10);
        b.reset();
        assert_eq!(b.attempts(), 0);
        let delay = b.next_delay();
        assert_eq!(b.attempts(), 1);
        assert!(delay <= Duration::from_millis(250), "{delay:?}");
    }

    #[test]
    fn fractions_cover_the_unit_interval() {
        let mut rng = SplitMix64::new(0);
        let draws: Vec<f64> = (0..1000).map(|_| rng.fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..=1.0).contains(f)));
        assert!(draws.iter().any(|f| *f < 0.1) && draws.iter().any(|f| *f > 0.9));
    }
}
