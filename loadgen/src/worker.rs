//! A load thread: one `mio::Poll`, a share of the clients, and the loop that connects
//! them, sends on schedule, reads everything that arrives and reports once a second.
//!
//! Phases: ramp (connect at the thread's share of `--connect-rate`, finish handshakes),
//! wait for the run-wide start, run (send every message at its intended time, never
//! waiting for replies), drain (stop sending; wait for outstanding messages until they
//! are all in or the grace period ends). Whole groups (a room, a dm pair) live on one
//! thread, so loss and drain accounting never needs another thread's counters.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};

use crate::churn::{ChurnCounts, ChurnSchedule};
use crate::client::{Client, ClientPlan, Ctx, ErrorCounts, Rules, Status, Tally};
use crate::clock::Clock;
use crate::config::{Protocol, Scenario};
use crate::lag::SendLag;
use crate::schedule::{Schedule, SendCursor, SendWindow};
use crate::timer::SendTimer;
use crate::verify::Anomalies;

const TIMER: Token = Token(usize::MAX - 1);
const SECOND_NS: u64 = 1_000_000_000;
/// Longest poll sleep, so stop requests and the start signal are noticed promptly.
const MAX_SLEEP_NS: u64 = 50_000_000;
/// Sends handled before the thread looks at its sockets again when it is behind.
const SEND_BATCH: usize = 256;

/// Asks a run to end early: the first request stops sending and drains, the second
/// abandons the drain. Clones share the same flag (the Ctrl+C handler holds one).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicU8>);

impl StopSignal {
    /// A signal nobody has raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal one level (stop, then abort).
    pub fn stop(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                Some(l.saturating_add(1).min(2))
            });
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.level() >= 1
    }

    fn level(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// Fixed facts every thread needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Server addresses; client `id` connects to `addrs[id % len]` (never empty).
    pub addrs: Vec<std::net::SocketAddr>,
    /// With `--tls`, the clients' TLS configuration.
    pub tls: Option<crate::transport::TlsClient>,
    pub protocol: Protocol,
    pub scenario: Scenario,
    pub payload: usize,
    pub rate: f64,
    /// Clients over all threads (phases are spread over all of them).
    pub clients: u32,
    /// Time between two connects on one thread.
    pub connect_interval_ns: u64,
    pub connect_timeout_ns: u64,
    pub grace_ns: u64,
    pub max_seq: u32,
    /// In-flight window per client (0 = unlimited).
    pub window: u32,
    /// Percent of clients dropped per second of the measured run (0: no churn).
    pub churn: f64,
    /// How long a dropped client stays away.
    pub churn_away_ns: u64,
    /// Width of the send window (0: every message at its intended time).
    pub send_window_ns: u64,
    /// Role, global ids and time base of stamps (fan-out across processes).
    pub stamps: crate::fanout::StampBase,
}

impl Settings {
    /// The server client `id` talks to: address `id mod N` of the list.
    pub(crate) fn addr_of(&self, id: u32) -> std::net::SocketAddr {
        self.addrs[id as usize % self.addrs.len()]
    }
}

/// State shared by the coordinating thread and the load threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub clock: Clock,
    pub settings: Settings,
    pub stop: StopSignal,
    /// When sending starts (run clock, ns); 0 until the coordinator publishes it.
    /// Written once, after `measure_ns` and `end_ns` (release/acquire).
    start_ns: AtomicU64,
    /// Messages scheduled at or after this are measured.
    measure_ns: AtomicU64,
    /// No message scheduled at or after this is sent. Lowered (never raised) when the
    /// run is stopped early.
    end_ns: AtomicU64,
    /// Set by the coordinator to end every thread at once (a thread failed, or nobody
    /// connected); unlike `stop` it does not mark the run as interrupted.
    abort: AtomicBool,
    /// Measured messages sent, per global client id. Written only by the client's
    /// thread; read by every thread (a room spans threads) and by the coordinator after
    /// all threads ended.
    pub sent: Vec<AtomicU64>,
    /// Threads still sending. A thread may end its drain only when it is zero: until
    /// then room mates on other threads may send more.
    sending: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(clock: Clock, settings: Settings, stop: StopSignal, threads: usize) -> Self {
        let sent = (0..settings.clients).map(|_| AtomicU64::new(0)).collect();
        Self {
            sent,
            sending: AtomicUsize::new(threads),
            clock,
            settings,
            stop,
            start_ns: AtomicU64::new(0),
            measure_ns: AtomicU64::new(u64::MAX),
            end_ns: AtomicU64::new(u64::MAX),
            abort: AtomicBool::new(false),
        }
    }

    /// Ends every thread as soon as it looks.
    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// How far the run should wind down: 0 carry on, 1 stop sending and drain, 2 quit.
    fn stop_level(&self) -> u8 {
        if self.abort.load(Ordering::Acquire) {
            2
        } else {
            self.stop.level()
        }
    }

    /// Publishes the run's timeline; `start_ns` must be positive.
    pub(crate) fn publish(&self, start_ns: u64, measure_ns: u64, end_ns: u64) {
        self.measure_ns.store(measure_ns, Ordering::Relaxed);
        self.end_ns.fetch_min(end_ns, Ordering::Relaxed);
        self.start_ns.store(start_ns.max(1), Ordering::Release);
    }

    fn start(&self) -> Option<(u64, u64)> {
        match self.start_ns.load(Ordering::Acquire) {
            0 => None,
            t0 => Some((t0, self.measure_ns.load(Ordering::Relaxed))),
        }
    }

    /// End of sending (run clock, ns).
    pub(crate) fn end_ns(&self) -> u64 {
        self.end_ns.load(Ordering::Acquire)
    }

    fn end_early(&self, now_ns: u64) {
        self.end_ns.fetch_min(now_ns, Ordering::AcqRel);
    }
}

/// One thread's numbers for one second of the run clock.
#[derive(Debug)]
pub(crate) struct Tick {
    pub worker: usize,
    /// Second index on the run clock: the tick covers `[tick, tick + 1)` seconds.
    pub tick: u64,
    /// Ready connections at the end of the tick.
    pub open: u32,
    pub sent_all: u64,
    pub sent_measured: u64,
    pub received_all: u64,
    pub received_measured: u64,
    pub errors: u64,
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub progress: Histogram<u64>,
}

/// One thread's results.
#[derive(Debug)]
pub(crate) struct WorkerTotals {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// Corrected latency less each message's own send lag.
    pub lag_free: Histogram<u64>,
    pub anomalies: Anomalies,
    pub errors: ErrorCounts,
    pub lag: SendLag,
    /// Measured messages that waited for the in-flight window.
    pub deferred: u64,
    /// Reconnects, replays and the room-order check.
    pub churn: ChurnCounts,
    /// Corrected latency of replayed messages.
    pub replay: Histogram<u64>,
    pub sent_measured: u64,
    /// `(plan, distinct measured deliveries)` of every client that was ready when
    /// sending began; the coordinator turns them into expected and lost counts.
    pub receivers: Vec<(ClientPlan, u64)>,
    /// Clients ready when sending began.
    pub connected: u32,
    pub first_error: Option<String>,
}

/// What a thread tells the coordinator.
#[derive(Debug)]
pub(crate) enum Report {
    /// Every client of the thread is connected (or failed); waiting for the start.
    Ready {
        worker: usize,
        /// Clients that are ready.
        ready: u32,
    },
    /// A second went by.
    Tick(Box<Tick>),
    /// The thread finished.
    Done {
        worker: usize,
        totals: Box<WorkerTotals>,
    },
    /// The thread could not run (poll or timer creation failed).
    Fatal { worker: usize, error: io::Error },
}

enum Phase {
    Ramp { next: usize, next_ns: u64 },
    Waiting,
    Running { cursor: SendCursor },
    Draining { deadline_ns: u64 },
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
    poll: Poll,
    clients: Vec<Client>,
    /// Local index of the first member of each client's group (echo and dm, whose
    /// groups live whole on one thread).
    group_local: Vec<usize>,
    /// Whether each client may send (a dm client whose partner never got ready may not).
    can_send: Vec<bool>,
    timer: SendTimer,
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
        let poll = Poll::new()?;
        let timer = SendTimer::new(poll.registry(), TIMER)?;
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
            poll,
            can_send: vec![false; plans.len()],
            clients: plans
                .into_iter()
                .map(|plan| Client::new(plan, s.stamps.role))
                .collect(),
            group_local,
            timer,
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
        let mut events = Events::with_capacity(1024);
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
            let mut timeout = Duration::from_nanos(sleep_ns);
            if let Some(at) = send_at
                && let Some(t) = self.timer.wake_at(at, now)?
            {
                timeout = timeout.min(t);
            }
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // Arrivals read below are stamped after this moment.
            self.tick_if_due(clock.now_ns());
            let mut cx = Ctx {
                rules: &self.rules,
                registry: self.poll.registry(),
                clock,
                tally: &mut self.tally,
                sent: &self.shared.sent,
            };
            for event in events.iter() {
                if event.token() == TIMER {
                    self.timer.fired();
                    continue;
                }
                if let Some(client) = self.clients.get_mut(event.token().0) {
                    client.on_event(event, &mut cx, &mut scratch);
                }
            }
        }
        self.emit_tick(clock.now_ns() / SECOND_NS);
        Ok(self.finish())
    }

    /// Starts due connects and fails clients past their deadline.
    fn ramp(&mut self, now: u64, next: &mut usize, next_ns: &mut u64) {
        let s = &self.shared.settings;
        let mut cx = Ctx {
            rules: &self.rules,
            registry: self.poll.registry(),
            clock: self.shared.clock,
            tally: &mut self.tally,
            sent: &self.shared.sent,
        };
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

    fn all_settled(&self) -> bool {
        self.clients.iter().all(|c| {
            !matches!(
                c.status,
                Status::Idle | Status::Connecting { .. } | Status::Handshake { .. }
            )
        })
    }

    /// Sending begins: fixes who counts as a receiver and builds the schedule.
    fn begin(&mut self, start_ns: u64, measure_ns: u64) -> SendCursor {
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

    fn send(&mut self, due: crate::schedule::Due) {
        if !self.can_send[due.local] {
            return;
        }
        let mut cx = Ctx {
            rules: &self.rules,
            registry: self.poll.registry(),
            clock: self.shared.clock,
            tally: &mut self.tally,
            sent: &self.shared.sent,
        };
        self.clients[due.local].on_due(due.seq, &mut cx);
    }

    /// Drops the clients churn makes due (while `sending`), reconnects those whose time
    /// away is over and fails those that do not get back in time. Returns how long the
    /// thread may sleep before the next of these.
    fn churn_step(&mut self, now: u64, sending: bool) -> u64 {
        let Some(schedule) = &mut self.churn else {
            return u64::MAX;
        };
        let s = &self.shared.settings;
        let mut cx = Ctx {
            rules: &self.rules,
            registry: self.poll.registry(),
            clock: self.shared.clock,
            tally: &mut self.tally,
            sent: &self.shared.sent,
        };
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

    /// Measured deliveries still missing at this thread's connected receivers.
    fn outstanding(&self) -> u64 {
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
    fn tick_if_due(&mut self, now: u64) {
        while now >= self.next_tick_ns {
            self.emit_tick(self.next_tick_ns / SECOND_NS - 1);
            self.next_tick_ns += SECOND_NS;
        }
    }

    fn emit_tick(&mut self, tick: u64) {
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

    fn finish(mut self) -> WorkerTotals {
        for client in &mut self.clients {
            client.finish(self.poll.registry(), &self.rules);
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
