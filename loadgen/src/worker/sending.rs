//! A thread's sending: the schedule fixed when sending begins (who counts as a
//! receiver, who may send, the churn plan) and each due message handed to its client.

use super::{SECOND_NS, Worker, client_ctx};
use crate::churn::ChurnSchedule;
use crate::client::Status;
use crate::config::Scenario;
use crate::schedule::{Due, Schedule, SendCursor, SendWindow};

impl Worker {
    /// Sending begins: fixes who counts as a receiver and builds the schedule.
    pub(super) fn begin(&mut self, start_ns: u64, measure_ns: u64) -> SendCursor {
        self.rules.measure_from_ns = measure_ns;
        for client in &mut self.clients {
            client.ready_at_start = client.status == Status::Ready;
        }
        for (i, client) in self.clients.iter().enumerate() {
            self.can_send[i] = client.ready_at_start
                && match self.rules.scenario {
                    Scenario::Dm => {
                        let partner = self.group_local[i]
                            + usize::from(client.plan.id == client.plan.group_start);
                        self.clients.get(partner).is_some_and(|p| p.ready_at_start)
                    }
                    Scenario::Echo | Scenario::Room => true,
                };
        }
        let s = &self.shared.settings;
        // No drop in the last second, so every member is back before the drain.
        let churn_until = self.shared.end_ns().saturating_sub(SECOND_NS);
        self.churn = ChurnSchedule::new(s.churn, self.clients.len(), measure_ns, churn_until);
        let schedule = Schedule::new(start_ns, s.rate, s.clients);
        self.rules.schedule = schedule;
        self.rules.send_window = SendWindow::new(start_ns, s.send_window_ns);
        let ids: Vec<u32> = self.clients.iter().map(|c| c.plan.id).collect();
        SendCursor::new(schedule, &ids)
    }

    pub(super) fn send(&mut self, due: Due) {
        if !self.can_send[due.local] {
            return;
        }
        let mut cx = client_ctx(&self.rules, &self.poller, &mut self.tally, &self.shared);
        self.clients[due.local].on_due(due.seq, &mut cx);
    }
}
