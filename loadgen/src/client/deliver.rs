//! Arrival checks: a received stamp verified against its sender's stream and the
//! run's rules, and its latency recorded (live, replayed, or before the measured part).

use super::{Client, Ctx};
use crate::lag;
use crate::stamp::Stamp;
use crate::verify::Arrival;

impl Client {
    /// Accounts for one received stamp (`None`: it did not check out).
    pub(super) fn deliver(&mut self, stamp: Option<Stamp>, at: u64, cx: &mut Ctx<'_>) {
        self.deliver_as(stamp, at, cx, false);
    }

    /// [`Client::deliver`], for a message that came live or in a replay: a replayed
    /// one's latency goes to the replay histogram, not with the live ones.
    pub(super) fn deliver_as(
        &mut self,
        stamp: Option<Stamp>,
        at: u64,
        cx: &mut Ctx<'_>,
        replayed: bool,
    ) {
        let rules = cx.rules;
        let tally = &mut *cx.tally;
        let Some(stamp) = stamp.map(|s| rules.stamps.incoming(s)) else {
            tally.anomalies.corrupted += 1;
            return;
        };
        if !rules.stamps.role.receives() {
            return;
        }
        if !self.streams.accepts(stamp.client)
            || !self.plan.expects_from(rules.scenario, stamp.client)
            || stamp.seq > rules.max_seq
            || stamp.sent_ns < stamp.scheduled_ns
        {
            // Checksum fine but not a message this client can receive: forged or
            // misrouted.
            tally.anomalies.corrupted += 1;
            return;
        }
        tally.received_all += 1;
        let corrected = at.saturating_sub(stamp.scheduled_ns);
        let uncorrected = at.saturating_sub(stamp.sent_ns);
        let measured = stamp.scheduled_ns >= rules.measure_from_ns;
        let first = if measured {
            let arrival = self.streams.record(stamp.client, stamp.seq);
            tally.anomalies.note(arrival);
            arrival != Arrival::Duplicate
        } else {
            true
        };
        if first && replayed {
            if measured {
                tally.churn.replayed += 1;
                tally.received_measured += 1;
                self.received_measured += 1;
                crate::recorder::record_us(&mut tally.replay, corrected);
            }
        } else if first && measured {
            // A message that waited for the in-flight window left when the server let
            // it: none of that wait is loadgen's own lag.
            let deferred = stamp.client == self.plan.id && self.deferred.take(stamp.seq);
            let own_lag_ns = if deferred {
                0
            } else {
                let release_ns = rules.send_window.release_ns(stamp.scheduled_ns);
                lag::own_lag_ns(release_ns, stamp.sent_ns)
            };
            tally
                .recorder
                .record_measured(corrected, uncorrected, own_lag_ns);
            tally.received_measured += 1;
            self.received_measured += 1;
        } else if first {
            tally.recorder.record(corrected, uncorrected, false);
        }
        if rules.window > 0 && stamp.client == self.plan.id && first {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.pump(None, cx);
        }
    }
}
