//! [`TokenBucket`]: the per-connection rate limit.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, holding at most `burst`. Expensive
/// requests may [`charge`](TokenBucket::charge) it below zero; the connection then waits
/// until the refill brings it back.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket; `rate == 0` means unlimited.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if self.tokens < 1.0 {
            self.refill(now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` more tokens for a request already admitted, going below zero if need
    /// be (at most one burst below), so the connection's next request waits longer.
    pub(crate) fn charge(&mut self, n: u32) {
        if self.rate != 0.0 {
            self.tokens = (self.tokens - f64::from(n)).max(-self.burst);
        }
    }

    /// Gives back a token taken for a message that was not there after all.
    pub(crate) fn refund(&mut self) {
        if self.rate != 0.0 {
            self.tokens = (self.tokens + 1.0).min(self.burst);
        }
    }

    /// How long from `now` until a token is available.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        if self.rate == 0.0 || self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        let refill = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        refill.saturating_sub(now.saturating_duration_since(self.updated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_bursts_and_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.wait(start) > Duration::ZERO);
        assert_eq!(bucket.wait(start + Duration::from_secs(1)), Duration::ZERO);
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, now);
        bucket.charge(1000);
        for _ in 0..10_000 {
            assert!(bucket.try_take(now));
        }
    }

    #[test]
    fn a_charge_delays_the_next_request_by_its_cost() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, 100, start);
        assert!(bucket.try_take(start));
        bucket.charge(149);
        // 99 - 149 = -50 tokens: 51 to refill at 100/s is 510 ms.
        assert!(!bucket.try_take(start));
        let wait = bucket.wait(start);
        assert!(
            wait > Duration::from_millis(500) && wait < Duration::from_millis(520),
            "{wait:?}"
        );
        assert!(bucket.try_take(start + Duration::from_millis(520)));
    }

    #[test]
    fn a_charge_never_goes_more_than_a_burst_below_zero() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, 10, start);
        bucket.charge(1_000_000);
        // At most 10 below zero: 11 tokens to refill, 110 ms.
        assert!(bucket.wait(start) <= Duration::from_millis(110));
    }
}
