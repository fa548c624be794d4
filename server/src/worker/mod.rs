//! A worker thread: one `mio::Poll`, the connections the acceptor handed it, and the
//! channel through which other threads reach those connections.
//!
//! The loop blocks in `epoll_wait` and never spins. Each turn it
//! 1. reads ready sockets and applies their requests (`io`), at most [`READ_BUDGET`]
//!    bytes per connection per turn, writing each connection's answers right after its
//!    read; a connection with more to read goes on the backlog for the next turn, one
//!    out of rate-limit tokens on the throttled list;
//! 2. drains its channel (new connections, deliveries from other workers), at most
//!    [`DRAIN_BUDGET`] messages per turn;
//! 3. sends the deliveries it produced for other workers, one channel message per
//!    worker per turn (`routing`);
//! 4. flushes every connection that still has output (vectored writes for several
//!    frames);
//! 5. closes connections that asked for it, and once a second sends keepalive pings
//!    and closes idle connections;
//! 6. moves a shutdown along (`shutdown`).
//!
//! Layout: `table` (slots and generations), `io` (reading, writing, lingering close),
//! `housekeeping` (the once-a-second timers), `routing` (effects, deliveries and their
//! scope), `shutdown`.

mod housekeeping;
mod io;
mod routing;
mod shutdown;
mod table;

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};
use parking_lot::Mutex;

use crate::accounts::{AccountStore, LoginThrottle, Logins};
use crate::config::Config;
use crate::connection::Connection;
use crate::engine::{Answer, ClusterEngine, ConnId, Engine, HistoryLimits, MemoryEngine};
use crate::permit::{Admission, Permit};
use crate::session::Effect;
use crate::stats::{Stats, WorkerStats};
use crate::tls::CertStore;

pub(crate) use routing::Delivery;
use shutdown::Phase;
use table::ConnTable;

/// Bytes read from one connection per turn before others get theirs.
pub(crate) const READ_BUDGET: usize = 64 << 10;

/// Messages handled from one connection per turn.
const FRAME_BUDGET: usize = 256;

/// Channel messages (a room message, a batch of other deliveries from one worker's
/// turn, or a new connection) handled per turn, so a flood of deliveries cannot keep a
/// worker from its own sockets; the rest wait for the next turn.
const DRAIN_BUDGET: usize = 4096;

/// Deliveries waiting in a worker's channel past which the workers that feed it stop
/// reading their own sockets for a turn, so the senders' TCP windows push back instead
/// of the channel growing (see [`WorkerHandle`]).
pub(crate) const BACKLOG_HIGH_WATER: usize = 64 * 1024;

/// Incomplete input every connection may hold whatever the `--max-inbound` budget
/// says; beyond it a connection reads only what the budget has room for, and waits
/// (parked) when it has none. Workers read concurrently, so incomplete input stays
/// under `--max-inbound` plus this much per connection plus one read (64 KiB) per
/// worker.
pub(crate) const LARGE_HOLDER: usize = 16 << 10;

/// With `--coalesce`, a worker waits between turns only while events arrive at this
/// many per window or more: below that, the wait costs a wake-up of its own without
/// saving one.
const COALESCE_MIN_BATCH: f64 = 2.0;

/// A turn that handled this many events or more was already batching on its own, so
/// the worker polls again at once even with `--coalesce` set.
const COALESCE_MAX_EVENTS: usize = 64;

/// How long a closing connection whose output is all sent waits for the peer to close
/// its side, and how long a condemned connection (protocol error, slow consumer) gets
/// to receive what it is owed. Meanwhile its input is read and thrown away: closing a
/// socket with unread input makes the kernel send a reset, which can destroy replies
/// the peer has not read yet.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// A connection accepted while the server is full gets this long to send its first byte
/// (so it can be told in its own framing) before it is told in text and closed.
const REJECT_GRACE: Duration = Duration::from_secs(1);

const WAKER: Token = Token(usize::MAX);

/// A message for a worker.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// A newly accepted connection to own.
    Accept {
        /// The socket, not yet registered anywhere.
        stream: TcpStream,
        /// Peer address.
        peer: std::net::SocketAddr,
        /// Its place in the connection counts (a rejecting one if the server is full).
        permit: Permit,
    },
    /// Frames for connections of this worker, in order.
    Deliver(Vec<Delivery>),
    /// One room message for members on this worker, in its room's order.
    Room(Delivery),
    /// The engine's answer to a request a connection of this worker is waiting on.
    Answer {
        /// The waiting connection.
        to: ConnId,
        /// The answer (boxed: it is large and rare).
        answer: Box<Answer>,
    },
}

/// How other threads reach a worker. Shared by the acceptor and every worker.
///
/// The channel is unbounded on purpose: a worker must never block on a send (two
/// workers sending to each other would deadlock), and a message dropped would break
/// "exactly once". Its size is bounded instead by the producers: each delivery in it is
/// counted in the receiver's `backlog` stat, and producers stop reading their sockets
/// while any receiver's backlog is over [`BACKLOG_HIGH_WATER`].
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    /// Deliveries and new connections.
    tx: Sender<WorkerMsg>,
    /// Wakes the worker's `Poll`.
    pub(crate) waker: Arc<Waker>,
    /// Set by whoever wakes the worker, cleared by the worker before it drains its
    /// channel: a worker with a wake pending is not woken again (wakes coalesce).
    wake_pending: AtomicBool,
}

impl WorkerHandle {
    /// Sends `msg` and wakes the worker unless a wake is already pending. Hands the
    /// message back if the worker is gone.
    pub(crate) fn send(&self, msg: WorkerMsg) -> Result<(), WorkerMsg> {
        if let Err(e) = self.tx.send(msg) {
            return Err(e.into_inner());
        }
        self.wake();
        Ok(())
    }

    /// Sends `msg` without waking the worker: the sender wakes it later (at the end of
    /// its turn). Hands the message back if the worker is gone.
    pub(crate) fn push(&self, msg: WorkerMsg) -> Result<(), WorkerMsg> {
        self.tx.send(msg).map_err(|e| e.into_inner())
    }

    /// Wakes the worker unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Err(e) = self.waker.wake()
        {
            tracing::warn!("cannot wake worker: {e}");
        }
    }
}

/// Everything the threads of one server share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Settings.
    pub(crate) config: Config,
    /// Nicks, rooms, chats.
    pub(crate) engine: Box<dyn Engine>,
    /// The certificate new connections get, on a TLS port; replaced on a reload.
    pub(crate) tls: Option<CertStore>,
    /// Counters.
    pub(crate) stats: Stats,
    /// Accounts (replaced whole on a reload), failed-login records, login rules.
    pub(crate) logins: Logins,
    /// One handle per worker, index = worker number.
    pub(crate) workers: Vec<WorkerHandle>,
    /// Wakes the acceptor (to stop it).
    acceptor_waker: Arc<Waker>,
    /// Wakes the metrics thread (to stop it), with `--metrics`.
    metrics_waker: Option<Arc<Waker>>,
    /// Set once to start a graceful shutdown.
    shutdown: AtomicBool,
    /// Workers that have stopped reading input during a shutdown.
    quiesced: AtomicUsize,
    /// Open and rejecting connections, as permits.
    pub(crate) admission: Arc<Admission>,
    /// The first thread failure (a worker or the acceptor that stopped while the
    /// server ran): the server shuts down and reports it.
    failure: Mutex<Option<String>>,
    /// Test hook: worker `n - 1` panics at its next turn (0: none).
    #[cfg(test)]
    pub(crate) panic_worker: AtomicUsize,
}

/// What one worker thread needs besides [`Shared`]: its `Poll` (the waker is in its
/// handle) and the receiving end of its channel.
pub(crate) type WorkerParts = (Poll, Receiver<WorkerMsg>);

impl Shared {
    /// The state `config.workers` workers share, and each worker's parts, index =
    /// worker number.
    pub(crate) fn new(
        config: Config,
        tls: Option<CertStore>,
        accounts: AccountStore,
        acceptor_waker: Arc<Waker>,
        metrics_waker: Option<Arc<Waker>>,
    ) -> std::io::Result<(Arc<Self>, Vec<WorkerParts>)> {
        let workers = config.workers;
        let history = HistoryLimits {
            messages: config.history_messages,
            room_bytes: config.history_room_bytes,
            budget: config.history_budget,
        };
        let mut handles = Vec::with_capacity(workers);
        let mut parts = Vec::with_capacity(workers);
        for _ in 0..workers {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = crossbeam_channel::unbounded();
            handles.push(WorkerHandle {
                tx,
                waker,
                wake_pending: AtomicBool::new(false),
            });
            parts.push((poll, rx));
        }
        let logins = Logins {
            store: accounts,
            throttle: LoginThrottle::default(),
            require_login: config.require_login,
            allow_plaintext: config.allow_plaintext_login,
        };
        let engine: Box<dyn Engine> = match &config.cluster {
            None => Box::new(MemoryEngine::new(workers, history)),
            Some(cluster) => Box::new(ClusterEngine::connect(cluster, workers, history)?),
        };
        let shared = Arc::new(Shared {
            config,
            logins,
            engine,
            tls,
            stats: Stats::new(workers),
            workers: handles,
            acceptor_waker,
            metrics_waker,
            shutdown: AtomicBool::new(false),
            quiesced: AtomicUsize::new(0),
            admission: Arc::new(Admission::default()),
            failure: Mutex::new(None),
            #[cfg(test)]
            panic_worker: AtomicUsize::new(0),
        });
        shared
            .engine
            .attach(Arc::new(routing::Mailroom::new(&shared)));
        Ok((shared, parts))
    }

    /// Whether a shutdown has begun.
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Starts a graceful shutdown: the acceptor stops, every worker is woken. Calling
    /// it again does nothing more.
    pub(crate) fn begin_shutdown(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.acceptor_waker.wake();
        if let Some(waker) = &self.metrics_waker {
            let _ = waker.wake();
        }
        for worker in &self.workers {
            worker.wake_pending.store(true, Ordering::Release);
            let _ = worker.waker.wake();
        }
    }

    /// Records that a thread stopped while the server ran, and shuts the server down:
    /// a half-alive server (a worker's users stuck, newcomers dropped) is worse than a
    /// restart.
    pub(crate) fn fail(&self, cause: String) {
        tracing::error!("{cause}; shutting the server down");
        self.failure.lock().get_or_insert(cause);
        self.begin_shutdown();
    }

    /// The first failure recorded, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }
}

/// A worker thread's state.
pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    poll: Poll,
    rx: Receiver<WorkerMsg>,
    conns: ConnTable,
    scratch: Box<[u8]>,
    /// Connections with output queued since the last flush.
    dirty: Vec<usize>,
    /// Connections that hit the read budget with input left, or whose reading was
    /// deferred while another worker's channel was over its high-water mark.
    backlog: VecDeque<usize>,
    /// Connections waiting for rate-limit tokens.
    throttled: Vec<usize>,
    /// Large holders of incomplete input, left unread while the inbound budget is
    /// full.
    parked: Vec<usize>,
    /// Connections to close at the end of the turn.
    to_close: Vec<usize>,
    /// Deliveries for other workers, sent at the end of the turn.
    outbox: Vec<Vec<Delivery>>,
    /// Workers that room messages were pushed to this turn, to be woken at its end.
    to_wake: Vec<Cell<bool>>,
    /// Reused buffer for the effects of one request.
    effects: Vec<Effect>,
    /// Read times of room messages whose last member this turn served; timed after
    /// the turn's writes.
    fanouts_done: Vec<Instant>,
    phase: Phase,
    /// When this turn's `poll` returned: the read time of what the turn reads.
    turn_at: Instant,
    next_housekeeping: Instant,
    next_ping_token: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .finish()
    }
}

impl Worker {
    /// Worker `index` with its own `Poll` and channel.
    pub(crate) fn new(index: usize, shared: Arc<Shared>, (poll, rx): WorkerParts) -> Self {
        let workers = shared.workers.len();
        Self {
            index,
            shared,
            poll,
            rx,
            conns: ConnTable::new(index),
            scratch: vec![0u8; READ_BUDGET].into_boxed_slice(),
            dirty: Vec::new(),
            backlog: VecDeque::new(),
            throttled: Vec::new(),
            parked: Vec::new(),
            to_close: Vec::new(),
            outbox: (0..workers).map(|_| Vec::new()).collect(),
            to_wake: (0..workers).map(|_| Cell::new(false)).collect(),
            effects: Vec::new(),
            fanouts_done: Vec::new(),
            phase: Phase::Running,
            turn_at: Instant::now(),
            next_housekeeping: Instant::now() + Duration::from_secs(1),
            next_ping_token: 1,
        }
    }

    fn stats(&self) -> &WorkerStats {
        &self.shared.stats.workers[self.index]
    }

    /// Runs until a shutdown has drained every connection. Returns an error if the
    /// worker had to stop early (its `Poll` failed).
    pub(crate) fn run(mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let coalesce = self.shared.config.coalesce;
        // Events per second, smoothed over turns; only kept with `--coalesce`.
        let mut event_rate = 0.0_f64;
        let mut last_turn = Instant::now();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                // Recorded before the drop guard records a vaguer cause.
                self.shared
                    .fail(format!("worker {} poll failed: {e}", self.index));
                return Err(e);
            }
            #[cfg(test)]
            assert_ne!(
                self.shared.panic_worker.load(Ordering::Acquire),
                self.index + 1,
                "worker {} made to panic by a test",
                self.index
            );
            let now = Instant::now();
            self.turn_at = now;
            let ready = events.iter().count();
            if !coalesce.is_zero() {
                let span = now.saturating_duration_since(last_turn).as_secs_f64();
                last_turn = now;
                event_rate = 0.75 * event_rate + 0.25 * ready as f64 / span.max(1e-6);
            }
            let running = self.phase == Phase::Running;
            // Another worker's channel is over its high-water mark: read nothing this
            // turn (TCP pushes back on the senders) but keep delivering and flushing.
            let held_back = running && self.congested();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let slot = event.token().0;
                if event.is_writable() {
                    self.mark_dirty(slot);
                }
                let input = event.is_readable() || event.is_read_closed();
                if running && input && held_back {
                    self.defer_read(slot);
                } else if running && input {
                    // With the peer's FIN already in, only reading to EOF sees it.
                    let short_read_drains = !event.is_read_closed() && !event.is_error();
                    self.service_read(slot, now, short_read_drains);
                } else if input || event.is_error() || event.is_write_closed() {
                    // Closing connections discard input and notice the peer's FIN there.
                    self.mark_dirty(slot);
                }
            }
            self.drain_channel(DRAIN_BUDGET);
            if running && !held_back {
                self.retry_backlog(now);
                self.retry_throttled(now);
                self.retry_parked(now);
            }
            self.route_outbox();
            self.flush_dirty(now);
            self.record_fanouts();
            self.close_marked();
            if now >= self.next_housekeeping {
                self.housekeeping(now);
                self.next_housekeeping = now + Duration::from_secs(1);
            }
            // Departures announced by closes and housekeeping go out this turn too, so
            // a worker that counts itself quiet below has routed everything it made.
            self.route_outbox();
            if self.advance_shutdown(now) {
                break;
            }
            // Batching: wait for the events of the next window and serve them in one
            // turn, while they come often enough to be worth it and turns are small.
            if event_rate * coalesce.as_secs_f64() >= COALESCE_MIN_BATCH
                && ready < COALESCE_MAX_EVENTS
                && self.phase == Phase::Running
            {
                WorkerStats::add(&self.stats().coalesce_waits, 1);
                std::thread::sleep(coalesce);
            }
        }
        self.close_all();
        tracing::debug!(worker = self.index, "worker stopped");
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.dirty.is_empty()
            || !self.to_close.is_empty()
            || !self.rx.is_empty()
            || self.outbox.iter().any(|o| !o.is_empty())
            || self.to_wake.iter().any(Cell::get)
        {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut timeout = self.next_housekeeping.saturating_duration_since(now);
        if !self.backlog.is_empty() {
            // Held back by a congested worker: look again soon, without spinning.
            let wait = if self.congested() {
                Duration::from_millis(1)
            } else {
                Duration::ZERO
            };
            timeout = timeout.min(wait);
        }
        if self.phase != Phase::Running || !self.parked.is_empty() {
            timeout = timeout.min(Duration::from_millis(10));
        }
        for &slot in &self.throttled {
            if let Some(conn) = self.conns.get(slot) {
                timeout = timeout.min(conn.bucket.wait(now).max(Duration::from_millis(1)));
            }
        }
        Some(timeout)
    }

    /// Whether another worker's channel holds more than [`BACKLOG_HIGH_WATER`]
    /// deliveries.
    fn congested(&self) -> bool {
        self.shared
            .stats
            .workers
            .iter()
            .enumerate()
            .any(|(i, w)| i != self.index && w.backlog() >= BACKLOG_HIGH_WATER as u64)
    }

    /// How many more bytes of incomplete input the `--max-inbound` budget has room
    /// for, server-wide.
    fn inbound_room(&self) -> usize {
        let held = self.shared.stats.inbound.load(Ordering::Relaxed);
        let max = self.shared.config.max_inbound as u64;
        usize::try_from(max.saturating_sub(held)).unwrap_or(usize::MAX)
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    fn mark_close(&mut self, slot: usize) {
        self.to_close.push(slot);
    }

    fn drain_channel(&mut self, budget: usize) {
        self.drain_channel_serving(budget, None);
    }

    /// [`Worker::drain_channel`] while connection `me` is being served (out of the
    /// table): what the channel holds for it is delivered to it directly.
    fn drain_channel_serving(&mut self, budget: usize, mut me: Option<&mut Connection>) {
        self.shared.workers[self.index]
            .wake_pending
            .swap(false, Ordering::AcqRel);
        for _ in 0..budget {
            let Ok(msg) = self.rx.try_recv() else {
                break;
            };
            match msg {
                WorkerMsg::Accept {
                    stream,
                    peer,
                    permit,
                } => self.adopt(stream, peer, permit),
                WorkerMsg::Deliver(deliveries) => {
                    self.stats().backlog_sub(deliveries.len());
                    for delivery in deliveries {
                        self.deliver_local(delivery, me.as_deref_mut());
                    }
                }
                WorkerMsg::Room(delivery) => {
                    self.stats().backlog_sub(1);
                    self.deliver_local(delivery, me.as_deref_mut());
                }
                WorkerMsg::Answer { to, answer } => self.answered(to, *answer),
            }
        }
    }
}
