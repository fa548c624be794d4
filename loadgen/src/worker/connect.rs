//! A thread's connections: the connect ramp, connect and handshake deadlines, and
//! churn's drops and reconnects.

use mio::Token;

use super::{Worker, client_ctx};
use crate::client::Status;

impl Worker {
    /// Starts due connects and fails clients past their deadline.
    pub(super) fn ramp(&mut self, now: u64, next: &mut usize, next_ns: &mut u64) {
        let s = &self.shared.settings;
        let mut cx = client_ctx(&self.rules, &self.poller, &mut self.tally, &self.shared);
        while *next < self.clients.len() && *next_ns <= now {
            let deadline_ns = now + s.connect_timeout_ns;
            let addr = s.addr_of(self.clients[*next].plan.id);
            self.clients[*next].connect(addr, Token(*next), deadline_ns, &mut cx);
            *next += 1;
            *next_ns += s.connect_interval_ns;
        }
        for client in &mut self.clients {
            match client.status {
                Status::Connecting { deadline_ns } if now >= deadline_ns => {
                    client.fail(&mut cx, "connect timed out".into());
                }
                Status::Handshake { deadline_ns } if now >= deadline_ns => {
                    client.fail(&mut cx, "handshake timed out".into());
                }
                _ => {}
            }
        }
    }

    pub(super) fn all_settled(&self) -> bool {
        self.clients.iter().all(|c| {
            !matches!(
                c.status,
                Status::Idle | Status::Connecting { .. } | Status::Handshake { .. }
            )
        })
    }

    /// Drops the clients churn makes due (while `sending`), reconnects those whose time
    /// away is over and fails those that do not get back in time. Returns how long the
    /// thread may sleep before the next of these.
    pub(super) fn churn_step(&mut self, now: u64, sending: bool) -> u64 {
        let Some(schedule) = &mut self.churn else {
            return u64::MAX;
        };
        let s = &self.shared.settings;
        let mut cx = client_ctx(&self.rules, &self.poller, &mut self.tally, &self.shared);
        if sending {
            while let Some(i) = schedule.due(now) {
                self.clients[i].drop_for_churn(now + s.churn_away_ns, &mut cx);
            }
        }
        let mut wake_ns = if sending {
            schedule.next_ns()
        } else {
            u64::MAX
        };
        for (i, client) in self.clients.iter_mut().enumerate() {
            match client.status {
                Status::Away { until_ns } if until_ns <= now => {
                    let addr = s.addr_of(client.plan.id);
                    client.connect(addr, Token(i), now + s.connect_timeout_ns, &mut cx);
                }
                Status::Away { until_ns } => wake_ns = wake_ns.min(until_ns),
                Status::Connecting { deadline_ns } | Status::Handshake { deadline_ns } => {
                    if now >= deadline_ns {
                        client.fail(&mut cx, "reconnect after churn timed out".into());
                    } else {
                        wake_ns = wake_ns.min(deadline_ns);
                    }
                }
                _ => {}
            }
        }
        wake_ns.saturating_sub(now)
    }
}
