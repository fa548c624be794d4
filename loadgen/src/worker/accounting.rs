//! A thread's accounting: per-second ticks to the coordinator, deliveries still
//! outstanding in the drain, and the totals at the end.

use std::sync::atomic::Ordering;

use super::{Report, SECOND_NS, Tick, Worker, WorkerTotals};
use crate::client::Status;
use crate::config::Scenario;

impl Worker {
    /// Measured deliveries still missing at this thread's connected receivers.
    pub(super) fn outstanding(&self) -> u64 {
        match self.rules.stamps.role {
            // Receivers cannot know what senders in other processes sent: they wait
            // out the grace period. Senders do not count deliveries.
            crate::fanout::Role::Receive => return 1,
            crate::fanout::Role::Send => return 0,
            crate::fanout::Role::Both => {}
        }
        let sent = |id: u32| {
            self.shared
                .sent
                .get(id as usize)
                .map_or(0, |n| n.load(Ordering::Relaxed))
        };
        let mut missing = 0;
        // Receivers are sorted by id, so members of one room follow each other: sum the
        // room's counts once, not once per member (a room may hold every client).
        let mut room_cache: Option<(u32, u64)> = None;
        for receiver in &self.clients {
            let present = receiver.ready_at_start && receiver.status == Status::Ready;
            if !present && !receiver.returning() {
                continue;
            }
            let plan = &receiver.plan;
            let expected = match (self.rules.scenario, room_cache) {
                (Scenario::Room, Some((start, total))) if start == plan.group_start => total,
                (scenario, _) => {
                    let total = plan.expected(scenario, sent);
                    if scenario == Scenario::Room {
                        room_cache = Some((plan.group_start, total));
                    }
                    total
                }
            };
            missing += expected.saturating_sub(receiver.received_measured());
        }
        missing
    }

    /// Reports every second that ended by `now`.
    pub(super) fn tick_if_due(&mut self, now: u64) {
        while now >= self.next_tick_ns {
            self.emit_tick(self.next_tick_ns / SECOND_NS - 1);
            self.next_tick_ns += SECOND_NS;
        }
    }

    pub(super) fn emit_tick(&mut self, tick: u64) {
        let (corrected, uncorrected, progress) = self.tally.recorder.take_interval();
        let errors = self.tally.errors.total();
        let report = Tick {
            worker: self.index,
            tick,
            open: self
                .clients
                .iter()
                .filter(|c| c.status == Status::Ready)
                .count() as u32,
            sent_all: std::mem::take(&mut self.tally.sent_all),
            sent_measured: std::mem::take(&mut self.tally.sent_measured),
            received_all: std::mem::take(&mut self.tally.received_all),
            received_measured: std::mem::take(&mut self.tally.received_measured),
            errors: errors - self.errors_reported,
            corrected,
            uncorrected,
            progress,
        };
        self.errors_reported = errors;
        let _ = self.reports.send(Report::Tick(Box::new(report)));
    }

    pub(super) fn finish(mut self) -> WorkerTotals {
        for client in &mut self.clients {
            client.finish(self.poller.registry(), &self.rules);
        }
        let tally = std::mem::take(&mut self.tally);
        WorkerTotals {
            corrected: tally.recorder.corrected,
            uncorrected: tally.recorder.uncorrected,
            lag_free: tally.recorder.lag_free,
            anomalies: tally.anomalies,
            errors: tally.errors,
            lag: tally.lag,
            deferred: tally.deferred,
            churn: tally.churn,
            replay: tally.replay,
            sent_measured: self.clients.iter().map(|c| c.sent_measured).sum(),
            receivers: self
                .clients
                .iter()
                .filter(|c| c.ready_at_start)
                .map(|c| (c.plan.clone(), c.received_measured()))
                .collect(),
            connected: self.clients.iter().filter(|c| c.ready_at_start).count() as u32,
            first_error: tally.first_error,
        }
    }
}
