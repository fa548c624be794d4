//! A load thread: one poll ([`crate::poller::Poller`]), a share of the clients, and the
//! loop that connects them, sends on schedule, reads everything that arrives and reports
//! once a second. The thread sleeps until a socket is ready or the next send (with a send
//! window, the end of the next window that holds one) is due, to the nanosecond.
//!
//! Phases: ramp (connect at the thread's share of `--connect-rate`, finish handshakes),
//! wait for the run-wide start, run (send every message at its intended time, never
//! waiting for replies), drain (stop sending; wait for outstanding messages until they
//! are all in or the grace period ends). Whole groups (a room, a dm pair) live on one
//! thread, so loss and drain accounting never needs another thread's counters.
//!
//! Layout:
//! - `shared`: the stop request, settings and state shared with the coordinator.
//! - `report`: what a thread reports (ready, ticks, totals).
//! - `connect`: the connect ramp, deadlines, churn's drops and reconnects.
//! - `sending`: the schedule fixed at the start, and due sends.
//! - `accounting`: per-second ticks, outstanding deliveries, final totals.

mod accounting;
mod connect;
mod report;
mod sending;
mod shared;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use crate::churn::ChurnSchedule;
use crate::client::{Client, ClientPlan, Ctx, Rules, Status, Tally};
use crate::poller::{self, Poller};
use crate::schedule::{Schedule, SendCursor, SendWindow};
pub(crate) use report::{Report, Tick, WorkerTotals};
pub use shared::StopSignal;
pub(crate) use shared::{Settings, Shared};

const SECOND_NS: u64 = 1_000_000_000;
/// Longest poll sleep, so stop requests and the start signal are noticed promptly.
const MAX_SLEEP_NS: u64 = 50_000_000;
/// Sends handled before the thread looks at its sockets again when it is behind.
const SEND_BATCH: usize = 256;
/// Most sockets reported per wake-up; the rest are reported by the next one.
const EVENTS_PER_WAKE: usize = 1024;

enum Phase {
    Ramp { next: usize, next_ns: u64 },
    Waiting,
    Running { cursor: SendCursor },
    Draining { deadline_ns: u64 },
}

/// What a client's calls need from its thread, taken from the thread's fields one by one
/// so that its clients can be borrowed beside it.
fn client_ctx<'a>(
    rules: &'a Rules,
    poller: &'a Poller,
    tally: &'a mut Tally,
    shared: &'a Shared,
) -> Ctx<'a> {
    Ctx {
        rules,
        registry: poller.registry(),
        clock: shared.clock,
        tally,
        sent: &shared.sent,
    }
}

/// Runs one load thread to the end, reporting to `reports`.
pub(crate) fn run(
    worker: usize,
    plans: Vec<ClientPlan>,
    shared: Arc<Shared>,
    reports: Sender<Report>,
) {
    let outcome = Worker::new(worker, plans, shared, reports.clone()).and_then(Worker::run);
    let report = match outcome {
        Ok(totals) => Report::Done {
            worker,
            totals: Box::new(totals),
        },
        Err(error) => Report::Fatal { worker, error },
    };
    let _ = reports.send(report);
}

struct Worker {
    index: usize,
    poller: Poller,
    clients: Vec<Client>,
    /// Local index of the first member of each client's group (echo and dm, whose
    /// groups live whole on one thread).
    group_local: Vec<usize>,
    /// Whether each client may send (a dm client whose partner never got ready may not).
    can_send: Vec<bool>,
    tally: Tally,
    rules: Rules,
    shared: Arc<Shared>,
    reports: Sender<Report>,
    next_tick_ns: u64,
    errors_reported: u64,
    /// When the next client drops, with `--churn`.
    churn: Option<ChurnSchedule>,
}

impl Worker {
    fn new(
        index: usize,
        plans: Vec<ClientPlan>,
        shared: Arc<Shared>,
        reports: Sender<Report>,
    ) -> io::Result<Self> {
        let poller = Poller::new(EVENTS_PER_WAKE)?;
        let group_local = plans
            .iter()
            .enumerate()
            // Meaningful for whole groups (echo, dm pairs); room members are spread
            // over threads and never look up their group locally.
            .map(|(i, p)| i.saturating_sub((p.id - p.group_start) as usize))
            .collect();
        let s = &shared.settings;
        let rules = Rules {
            protocol: s.protocol,
            scenario: s.scenario,
            payload: s.payload,
            measure_from_ns: u64::MAX,
            max_seq: s.max_seq,
            window: s.window,
            schedule: Schedule::new(0, s.rate, s.clients),
            send_window: SendWindow::new(0, 0),
            tls: s.tls.clone(),
            stamps: s.stamps,
        };
        let next_tick_ns = (shared.clock.now_ns() / SECOND_NS + 1) * SECOND_NS;
        Ok(Self {
            index,
            poller,
            can_send: vec![false; plans.len()],
            clients: plans
                .into_iter()
                .map(|plan| Client::new(plan, s.stamps.role))
                .collect(),
            group_local,
            tally: Tally::default(),
            rules,
            shared,
            reports,
            next_tick_ns,
            errors_reported: 0,
            churn: None,
        })
    }

    fn run(mut self) -> io::Result<WorkerTotals> {
        let clock = self.shared.clock;
        poller::tighten_timer_slack();
        let mut scratch = vec![0u8; 64 << 10];
        let mut phase = Phase::Ramp {
            next: 0,
            next_ns: clock.now_ns(),
        };
        loop {
            let now = clock.now_ns();
            let stop = self.shared.stop_level();
            if stop >= 2 {
                break;
            }
            // Close the second before anything else happens in the next one.
            self.tick_if_due(now);
            let mut sleep_ns = MAX_SLEEP_NS;
            let mut send_at = None;
            let mut next_phase = None;
            match &mut phase {
                Phase::Ramp { next, next_ns } => {
                    if stop > 0 {
                        break;
                    }
                    self.ramp(now, next, next_ns);
                    if *next >= self.clients.len() && self.all_settled() {
                        let ready = self
                            .clients
                            .iter()
                            .filter(|c| c.status == Status::Ready)
                            .count();
                        let _ = self.reports.send(Report::Ready {
                            worker: self.index,
                            ready: ready as u32,
                        });
                        next_phase = Some(Phase::Waiting);
                    } else if *next < self.clients.len() {
                        sleep_ns = sleep_ns.min(next_ns.saturating_sub(now));
                    }
                    // Handshake deadlines are checked every few milliseconds.
                    sleep_ns = sleep_ns.min(5_000_000);
                }
                Phase::Waiting => {
                    if stop > 0 {
                        break;
                    }
                    if let Some((start_ns, measure_ns)) = self.shared.start() {
                        next_phase = Some(Phase::Running {
                            cursor: self.begin(start_ns, measure_ns),
                        });
                    }
                    // The start is published well ahead of time; a short nap catches it.
                    sleep_ns = 5_000_000;
                }
                Phase::Running { cursor } => {
                    if stop > 0 {
                        self.shared.end_early(now);
                        self.churn = None;
                    }
                    sleep_ns = sleep_ns.min(self.churn_step(now, true));
                    let end_ns = self.shared.end_ns();
                    let mut budget = SEND_BATCH;
                    let mut done = true;
                    while let Some(due) = cursor.peek() {
                        if due.at_ns >= end_ns {
                            break;
                        }
                        // With a send window, everything due within one window leaves
                        // at its end: one wake-up for the lot.
                        let release_ns = self.rules.send_window.release_ns(due.at_ns);
                        if release_ns > now {
                            send_at = Some(release_ns);
                            done = false;
                            break;
                        }
                        if budget == 0 {
                            sleep_ns = 0;
                            done = false;
                            break;
                        }
                        budget -= 1;
                        self.send(due);
                        cursor.advance();
                    }
                    if done {
                        self.shared.sending.fetch_sub(1, Ordering::AcqRel);
                        let deadline_ns = end_ns
                            .max(now)
                            .saturating_add(self.shared.settings.grace_ns);
                        next_phase = Some(Phase::Draining { deadline_ns });
                    }
                }
                Phase::Draining { deadline_ns } => {
                    sleep_ns = sleep_ns.min(self.churn_step(now, false));
                    let others_done = self.shared.sending.load(Ordering::Acquire) == 0;
                    if now >= *deadline_ns || (others_done && self.outstanding() == 0) {
                        break;
                    }
                    sleep_ns = sleep_ns.min(*deadline_ns - now);
                }
            }
            if let Some(p) = next_phase {
                phase = p;
                sleep_ns = 0;
            }
            sleep_ns = sleep_ns.min(self.next_tick_ns - now);
            if let Some(at) = send_at {
                sleep_ns = sleep_ns.min(at.saturating_sub(now));
            }
            self.poller.wait(sleep_ns)?;
            // Arrivals read below are stamped after this moment.
            self.tick_if_due(clock.now_ns());
            let mut cx = client_ctx(&self.rules, &self.poller, &mut self.tally, &self.shared);
            for event in self.poller.ready() {
                if let Some(client) = self.clients.get_mut(event.token.0) {
                    client.on_event(event, &mut cx, &mut scratch);
                }
            }
        }
        self.emit_tick(clock.now_ns() / SECOND_NS);
        Ok(self.finish())
    }
}
