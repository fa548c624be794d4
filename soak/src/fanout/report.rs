//! What a fan-out run found: the members' counts summed, and the verdict.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What the members saw, summed, and the verdict.
#[derive(Debug, Clone, Default)]
pub struct FanoutReport {
    /// Members asked for.
    pub members: usize,
    /// Senders among them.
    pub senders: usize,
    /// Members that joined the room before the flood.
    pub joined: usize,
    /// Messages the senders wrote completely (each must reach every member).
    pub sent: u64,
    /// Deliveries due: `sent` times the members.
    pub expected: u64,
    /// Deliveries that arrived in order (a skipped sequence number is lost).
    pub received: u64,
    /// Arrivals of a sequence number at or below one already seen from that sender.
    pub late_or_repeated: u64,
    /// Arrivals that skipped sequence numbers.
    pub gaps: u64,
    /// Members the server closed.
    pub closed_by_server: usize,
    /// Messages the server demonstrably took: all a sender it kept open wrote, and of a
    /// sender it closed, the most any open member got.
    pub accepted: u64,
    /// Of the `accepted` messages, deliveries to members still open at the end that
    /// never arrived: loss among the readers the server kept.
    pub lost_open: u64,
    /// Error codes received, with how often.
    pub codes: BTreeMap<u16, u64>,
    /// How long the senders flooded.
    pub flood: Duration,
    /// From the end of the flood until the last delivery arrived (or the timeout).
    pub drain: Duration,
    /// Delivery delays: send to arrival, 1 ms buckets.
    pub(super) latency: Vec<u64>,
    /// Why the run could not flood (a member that could not connect or join).
    pub failure: Option<String>,
}

impl FanoutReport {
    /// Deliveries due that never arrived.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    /// The `p`-th percentile (0 to 100) of the delivery delay, in whole milliseconds.
    pub fn latency_ms(&self, p: f64) -> Option<u64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, &n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as u64);
            }
        }
        None
    }

    /// Every message arrived at most once and in order everywhere, and every member
    /// the server kept got all of them (members it closed may miss the rest).
    pub fn intact(&self) -> bool {
        self.failure.is_none()
            && self.sent > 0
            && self.joined == self.members
            && self.lost_open == 0
            && self.late_or_repeated == 0
            && self.gaps == 0
    }

    /// Every member joined and got every message once, in order; nobody was closed or
    /// refused; something was sent.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && self.sent > 0
            && self.joined == self.members
            && self.lost() == 0
            && self.late_or_repeated == 0
            && self.gaps == 0
            && self.closed_by_server == 0
            && self.codes.is_empty()
    }
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flood = self.flood.as_secs_f64().max(1e-3);
        let codes = if self.codes.is_empty() {
            "-".to_owned()
        } else {
            let list: Vec<String> = self.codes.iter().map(|(c, n)| format!("{c}x{n}")).collect();
            list.join(",")
        };
        let ms = |p: f64| self.latency_ms(p).map_or("-".to_owned(), |v| v.to_string());
        writeln!(
            f,
            "fanout members={} senders={} joined={} sent={} send_rate_per_s={:.0} expected={} \
             received={} lost={} late_or_repeated={} gaps={} closed_by_server={} \
             accepted={} lost_open={} codes={codes} deliveries_per_s={:.0} flood_s={:.1} drain_ms={} \
             latency_p50_ms={} latency_p99_ms={} latency_max_ms={} intact={} verdict={}",
            self.members,
            self.senders,
            self.joined,
            self.sent,
            self.sent as f64 / flood,
            self.expected,
            self.received,
            self.lost(),
            self.late_or_repeated,
            self.gaps,
            self.closed_by_server,
            self.accepted,
            self.lost_open,
            self.received as f64 / (flood + self.drain.as_secs_f64()),
            self.flood.as_secs_f64(),
            self.drain.as_millis(),
            ms(50.0),
            ms(99.0),
            ms(100.0),
            if self.intact() { "yes" } else { "no" },
            if self.ok() { "ok" } else { "FAIL" },
        )?;
        if let Some(failure) = &self.failure {
            writeln!(f, "fanout stopped early: {failure}")?;
        }
        Ok(())
    }
}
