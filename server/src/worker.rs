//! A worker thread: one `mio::Poll`, the connections the acceptor handed it, and the
//! channel through which other threads reach those connections.
//!
//! The loop blocks in `epoll_wait` and never spins. Each turn it
//! 1. reads ready sockets (edge-triggered, at most [`READ_BUDGET`] bytes per connection
//!    per turn; a connection with more to read goes on the backlog for the next turn, a
//!    connection out of rate-limit tokens waits on the throttled list),
//! 2. drains its channel (new connections, deliveries from other workers),
//! 3. sends the deliveries it produced for other workers, one channel message per
//!    worker per turn,
//! 4. flushes every connection that got output, with vectored writes,
//! 5. closes connections that asked for it, and does housekeeping once a second
//!    (keepalive pings, idle timeouts).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use shared::{ErrorCode, Frame, Incoming, Mode};

use crate::config::Config;
use crate::connection::{Connection, Enqueued, ReadOutcome, TokenBucket};
use crate::hub::{ConnId, Encoded, Fanout, Hub};
use crate::stats::{CloseReason, Stats, WorkerStats};

/// Bytes read from one connection per turn before others get theirs.
pub const READ_BUDGET: usize = 64 << 10;

/// Messages handled from one connection per turn.
const FRAME_BUDGET: usize = 256;

/// With `--coalesce`, a worker waits between turns only while events arrive at this
/// many per window or more: below that, the wait costs a wake-up of its own without
/// saving one.
const COALESCE_MIN_BATCH: f64 = 2.0;

/// A turn that handled this many events or more was already batching on its own, so
/// the worker polls again at once even with `--coalesce` set.
const COALESCE_MAX_EVENTS: usize = 64;

/// How long a closing connection whose output is all sent waits for the peer to close
/// its side. Meanwhile its input is read and thrown away: closing a socket with unread
/// input makes the kernel send a reset, which can destroy replies the peer has not read
/// yet.
pub const LINGER: Duration = Duration::from_secs(2);

/// A connection accepted while the server is full gets this long to send its first byte
/// (so it can be told in its own framing) before it is told in text and closed.
const REJECT_GRACE: Duration = Duration::from_secs(1);

const WAKER: Token = Token(usize::MAX);

/// A message for a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// A newly accepted connection to own.
    Accept {
        /// The socket, not yet registered anywhere.
        stream: TcpStream,
        /// Peer address.
        peer: std::net::SocketAddr,
        /// The server is full: answer error 300 and close.
        reject: bool,
    },
    /// Frames for connections of this worker, in order.
    Deliver(Vec<Delivery>),
}

/// Frames travelling to connections.
#[derive(Debug)]
pub enum Delivery {
    /// One frame for one connection, already encoded in its framing.
    One {
        /// Recipient.
        to: ConnId,
        /// Encoded frame.
        bytes: Bytes,
        /// Whether the recipient still wants it on arrival.
        scope: Scope,
    },
    /// One frame for many connections: the recipients on the receiving worker are
    /// `fanout.per_worker[worker]`.
    Many {
        /// Recipients grouped by worker.
        fanout: Arc<Fanout>,
        /// The frame, encoded once per framing.
        payload: Arc<Encoded>,
        /// Whether each recipient still wants it on arrival.
        scope: Scope,
    },
}

/// What a frame belongs to, checked by the recipient's worker on arrival. A recipient
/// can leave a room or a private chat after a frame was addressed to it and before its
/// worker delivers it; such a frame is dropped, so nothing of a room arrives after the
/// recipient's own `Left`, and nothing of a chat after its `ChatEnded`. Both are judged
/// by the recipient's own state, which only its worker changes, in the order of the
/// frames queued to it.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Nothing: always delivered.
    Anyone,
    /// A room, by display name: delivered to its current members.
    Room(Arc<str>),
    /// A message of the private chat with this connection: delivered while the
    /// recipient's chat (as its queued `ChatStarted` / `ChatEnded` frames left it) is
    /// with that connection.
    Chat(ConnId),
    /// `ChatStarted` from this connection: delivered, and the recipient's chat is now
    /// with it.
    ChatStart(ConnId),
    /// `ChatEnded` from this connection: delivered, and the recipient's chat with it, if
    /// any, is over.
    ChatEnd(ConnId),
}

/// How other threads reach a worker. Shared by the acceptor and every worker.
#[derive(Debug)]
pub struct WorkerHandle {
    /// Deliveries and new connections.
    pub tx: Sender<WorkerMsg>,
    /// Wakes the worker's `Poll`.
    pub waker: Arc<Waker>,
    /// Set by whoever wakes the worker, cleared by the worker before it drains its
    /// channel: a worker with a wake pending is not woken again (wakes coalesce).
    pub wake_pending: AtomicBool,
}

impl WorkerHandle {
    /// Sends `msg` and wakes the worker unless a wake is already pending. Hands the
    /// message back if the worker is gone.
    pub fn send(&self, msg: WorkerMsg) -> Result<(), WorkerMsg> {
        if let Err(e) = self.tx.send(msg) {
            return Err(e.into_inner());
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Err(e) = self.waker.wake()
        {
            tracing::warn!("cannot wake worker: {e}");
        }
        Ok(())
    }
}

/// Everything the threads of one server share.
#[derive(Debug)]
pub struct Shared {
    /// Settings.
    pub config: Config,
    /// Nicks, rooms, chats.
    pub hub: Hub,
    /// Counters.
    pub stats: Stats,
    /// One handle per worker, index = worker number.
    pub workers: Vec<WorkerHandle>,
    /// Set once to start a graceful shutdown.
    pub shutdown: AtomicBool,
    /// Workers that have stopped reading input during a shutdown.
    pub quiesced: AtomicUsize,
    /// Connections open (accepted and not yet closed), rejected ones excluded.
    pub open: AtomicUsize,
    /// Connections accepted while full and not yet answered.
    pub rejecting: AtomicUsize,
}

/// What one worker thread needs besides [`Shared`]: its `Poll` (the waker is in its
/// handle) and the receiving end of its channel.
pub type WorkerParts = (Poll, Receiver<WorkerMsg>);

impl Shared {
    /// The state `config.workers` workers share, and each worker's parts, index = worker
    /// number.
    pub fn new(config: Config) -> io::Result<(Arc<Self>, Vec<WorkerParts>)> {
        let workers = config.workers;
        let mut handles = Vec::with_capacity(workers);
        let mut parts = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (poll, waker) = Worker::make_poll()?;
            let (tx, rx) = crossbeam_channel::unbounded();
            handles.push(WorkerHandle {
                tx,
                waker,
                wake_pending: AtomicBool::new(false),
            });
            parts.push((poll, rx));
        }
        let shared = Arc::new(Shared {
            config,
            hub: Hub::new(workers),
            stats: Stats::new(workers),
            workers: handles,
            shutdown: AtomicBool::new(false),
            quiesced: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            rejecting: AtomicUsize::new(0),
        });
        Ok((shared, parts))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Shutdown begun: no more input is read; waiting until every worker got here.
    Quiescing,
    /// Every worker is quiet: flushing the last output until the deadline.
    Draining(Instant),
}

/// One slot of the connection table.
#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    conn: Option<Connection>,
}

/// A worker thread's state.
pub struct Worker {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    poll: Poll,
    rx: Receiver<WorkerMsg>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    scratch: Box<[u8]>,
    /// Connections with output queued since the last flush.
    dirty: Vec<usize>,
    /// Connections that hit the read budget with input left.
    backlog: VecDeque<usize>,
    /// Connections waiting for rate-limit tokens.
    throttled: Vec<usize>,
    /// Connections to close at the end of the turn.
    to_close: Vec<usize>,
    /// Deliveries for other workers, sent at the end of the turn.
    outbox: Vec<Vec<Delivery>>,
    phase: Phase,
    next_housekeeping: Instant,
    next_ping_token: u64,
}

impl Drop for Worker {
    /// A worker that leaves its loop early (a poll error, a panic) still counts as quiet,
    /// so a graceful shutdown of the others never waits for it.
    fn drop(&mut self) {
        if self.phase == Phase::Running {
            self.phase = Phase::Quiescing;
            self.shared.quiesced.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .finish()
    }
}

impl Worker {
    /// A worker with its own `Poll`; `waker` must have been made from `poll`.
    pub fn new(index: usize, shared: Arc<Shared>, poll: Poll, rx: Receiver<WorkerMsg>) -> Self {
        let workers = shared.workers.len();
        Self {
            index,
            shared,
            poll,
            rx,
            slots: Vec::new(),
            free: Vec::new(),
            scratch: vec![0u8; READ_BUDGET].into_boxed_slice(),
            dirty: Vec::new(),
            backlog: VecDeque::new(),
            throttled: Vec::new(),
            to_close: Vec::new(),
            outbox: (0..workers).map(|_| Vec::new()).collect(),
            phase: Phase::Running,
            next_housekeeping: Instant::now() + Duration::from_secs(1),
            next_ping_token: 1,
        }
    }

    /// Creates the `Poll` and `Waker` for a worker.
    pub fn make_poll() -> io::Result<(Poll, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok((poll, waker))
    }

    pub(crate) fn stats(&self) -> &WorkerStats {
        &self.shared.stats.workers[self.index]
    }

    /// Runs until a shutdown has drained every connection.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let coalesce = self.shared.config.coalesce;
        // Events per second, smoothed over turns; only kept with `--coalesce`.
        let mut event_rate = 0.0_f64;
        let mut last_turn = Instant::now();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(worker = self.index, "poll failed: {e}");
                break;
            }
            let now = Instant::now();
            let ready = events.iter().count();
            if !coalesce.is_zero() {
                let span = now.saturating_duration_since(last_turn).as_secs_f64();
                last_turn = now;
                event_rate = 0.75 * event_rate + 0.25 * ready as f64 / span.max(1e-6);
            }
            let reading = self.phase == Phase::Running;
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let slot = event.token().0;
                if event.is_writable() {
                    self.mark_dirty(slot);
                }
                let input = event.is_readable() || event.is_read_closed();
                if reading && input {
                    // With the peer's FIN already in, only reading to EOF sees it.
                    let short_read_drains = !event.is_read_closed() && !event.is_error();
                    self.service_read(slot, now, short_read_drains);
                } else if input || event.is_error() || event.is_write_closed() {
                    // Closing connections discard input and notice the peer's FIN there.
                    self.mark_dirty(slot);
                }
            }
            self.drain_channel();
            if reading {
                self.retry_backlog(now);
                self.retry_throttled(now);
            }
            self.route_outbox();
            self.flush_dirty(now);
            self.close_marked();
            if now >= self.next_housekeeping {
                self.housekeeping(now);
                self.next_housekeeping = now + Duration::from_secs(1);
            }
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
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.backlog.is_empty()
            || !self.dirty.is_empty()
            || !self.to_close.is_empty()
            || self.outbox.iter().any(|o| !o.is_empty())
        {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut timeout = self.next_housekeeping.saturating_duration_since(now);
        if self.phase != Phase::Running {
            timeout = timeout.min(Duration::from_millis(10));
        }
        for &slot in &self.throttled {
            if let Some(conn) = self.conn(slot) {
                timeout = timeout.min(conn.bucket.wait(now).max(Duration::from_millis(1)));
            }
        }
        Some(timeout)
    }

    pub(crate) fn conn(&self, slot: usize) -> Option<&Connection> {
        self.slots.get(slot).and_then(|s| s.conn.as_ref())
    }

    fn conn_mut(&mut self, slot: usize) -> Option<&mut Connection> {
        self.slots.get_mut(slot).and_then(|s| s.conn.as_mut())
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(conn) = self.conn_mut(slot)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    fn mark_close(&mut self, slot: usize) {
        self.to_close.push(slot);
    }

    // ---- accepting -------------------------------------------------------------------

    fn adopt(&mut self, mut stream: TcpStream, peer: std::net::SocketAddr, reject: bool) {
        let now = Instant::now();
        if self.phase != Phase::Running {
            // Shutting down: never adopted, so never counted as open.
            self.release_open(reject);
            self.stats().count_close(CloseReason::Shutdown);
            return;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot::default());
            self.slots.len() - 1
        });
        let generation = self.slots[slot].generation;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(slot), Interest::READABLE)
        {
            tracing::warn!(%peer, "cannot register connection: {e}");
            self.free.push(slot);
            self.release_open(reject);
            self.stats().count_close(CloseReason::Reset);
            return;
        }
        let config = &self.shared.config;
        let id = ConnId {
            worker: self.index as u32,
            slot: slot as u32,
            generation,
        };
        let bucket = TokenBucket::new(config.rate_limit, config.rate_burst, now);
        let conn = Connection::new(id, stream, peer, config.limits, bucket, reject, now);
        self.slots[slot].conn = Some(conn);
        let stats = self.stats();
        WorkerStats::add(&stats.accepted, 1);
        WorkerStats::add(&stats.connections, 1);
        tracing::debug!(%peer, worker = self.index, slot, reject, "connection adopted");
    }

    fn release_open(&self, reject: bool) {
        let counter = if reject {
            &self.shared.rejecting
        } else {
            &self.shared.open
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }

    fn drain_channel(&mut self) {
        self.shared.workers[self.index]
            .wake_pending
            .swap(false, Ordering::AcqRel);
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                WorkerMsg::Accept {
                    stream,
                    peer,
                    reject,
                } => self.adopt(stream, peer, reject),
                WorkerMsg::Deliver(deliveries) => {
                    for delivery in deliveries {
                        self.deliver_local(delivery);
                    }
                }
            }
        }
    }

    // ---- reading ---------------------------------------------------------------------

    fn retry_backlog(&mut self, now: Instant) {
        for _ in 0..self.backlog.len() {
            let Some(slot) = self.backlog.pop_front() else {
                break;
            };
            if let Some(conn) = self.conn_mut(slot) {
                conn.waiting = false;
            }
            self.service_read(slot, now, false);
        }
    }

    fn retry_throttled(&mut self, now: Instant) {
        if self.throttled.is_empty() {
            return;
        }
        let throttled = std::mem::take(&mut self.throttled);
        for slot in throttled {
            let ready = self
                .conn(slot)
                .is_some_and(|c| c.bucket.wait(now) == Duration::ZERO);
            if ready {
                if let Some(conn) = self.conn_mut(slot) {
                    conn.waiting = false;
                }
                self.service_read(slot, now, false);
            } else {
                self.throttled.push(slot);
            }
        }
    }

    /// Reads and handles input of one connection until the socket is drained, the read
    /// budget is spent, or the rate limit holds it back.
    ///
    /// With `short_read_drains`, a read that returns less than asked for counts as having
    /// emptied the socket: new data makes a new edge, so the extra read that would only
    /// say WouldBlock is skipped. Callers pass `false` when the peer may already have
    /// closed (its FIN makes no new edge after the data) or when no event vouches for
    /// the socket's state (backlog and throttle retries).
    fn service_read(&mut self, slot: usize, now: Instant, short_read_drains: bool) {
        let Some(mut conn) = self.slots.get_mut(slot).and_then(|s| s.conn.take()) else {
            return;
        };
        let mut budget = READ_BUDGET;
        let mut frames = 0;
        let mut requeue = None;
        let mut socket_drained = false;
        loop {
            if conn.is_closing() {
                break;
            }
            match self.handle_buffered(&mut conn, now, &mut frames) {
                Buffered::Drained => {}
                Buffered::Stop => break,
                Buffered::Throttled => {
                    let since = *conn.throttled_since.get_or_insert(now);
                    let limit = self.shared.config.flood_close_after;
                    if now.saturating_duration_since(since) > limit {
                        let text = format!("over the rate limit for {limit:?}; closing");
                        self.fail(&mut conn, ErrorCode::FLOOD, &text, CloseReason::Flood);
                        break;
                    }
                    requeue = Some(Requeue::Throttled);
                    break;
                }
                Buffered::OutOfBudget => {
                    requeue = Some(Requeue::Backlog);
                    break;
                }
            }
            if socket_drained {
                conn.throttled_since = None;
                break;
            }
            if budget == 0 {
                requeue = Some(Requeue::Backlog);
                break;
            }
            let want = budget.min(self.scratch.len());
            match conn.read_some(&mut self.scratch[..want]) {
                Ok(ReadOutcome::Data(n)) => {
                    socket_drained = short_read_drains && n < want;
                    budget -= n;
                    conn.last_input = now;
                    conn.pinged = false;
                    WorkerStats::add(&self.stats().bytes_in, n as u64);
                    if conn.mode.is_none() {
                        self.on_first_bytes(&mut conn);
                    }
                }
                Ok(ReadOutcome::WouldBlock) => {
                    conn.throttled_since = None;
                    break;
                }
                Ok(ReadOutcome::Eof) => {
                    // Complete input before the EOF is still served, and its answers
                    // are flushed: the peer may have only closed its sending side.
                    let _ = self.handle_buffered(&mut conn, now, &mut 0);
                    self.close_after_flush(&mut conn, CloseReason::Eof);
                    break;
                }
                Err(e) => {
                    tracing::debug!(peer = %conn.peer, "read error: {e}");
                    conn.close_now = Some(CloseReason::Reset);
                    break;
                }
            }
        }
        let closing_now = conn.close_now.is_some();
        // A connection already waiting on a list is served from there; new readiness
        // edges must not queue it twice.
        let requeue = requeue.filter(|_| !closing_now && !conn.waiting);
        conn.waiting |= requeue.is_some();
        if let Some(s) = self.slots.get_mut(slot) {
            s.conn = Some(conn);
        }
        if closing_now {
            self.mark_close(slot);
        }
        match requeue {
            Some(Requeue::Backlog) => self.backlog.push_back(slot),
            Some(Requeue::Throttled) => self.throttled.push(slot),
            None => {}
        }
        self.mark_dirty(slot);
    }

    /// Handles complete frames or lines already in the decoder.
    fn handle_buffered(
        &mut self,
        conn: &mut Connection,
        now: Instant,
        frames: &mut usize,
    ) -> Buffered {
        loop {
            if conn.is_closing() {
                return Buffered::Stop;
            }
            if *frames >= FRAME_BUDGET {
                return Buffered::OutOfBudget;
            }
            if !conn.bucket.try_take(now) {
                return Buffered::Throttled;
            }
            match conn.decoder.decode() {
                Ok(Some(incoming)) => {
                    *frames += 1;
                    WorkerStats::add(&self.stats().messages_in, 1);
                    if conn.rejecting {
                        continue;
                    }
                    match incoming {
                        Incoming::Frame(frame) => self.handle_frame(conn, frame),
                        Incoming::Line(line) => self.handle_line(conn, &line),
                    }
                }
                Ok(None) => {
                    conn.bucket.refund();
                    return Buffered::Drained;
                }
                Err(e) => {
                    conn.bucket.refund();
                    tracing::debug!(peer = %conn.peer, "protocol error: {e}");
                    self.fail(conn, e.code(), &e.to_string(), CloseReason::ProtocolError);
                    return Buffered::Stop;
                }
            }
        }
    }

    /// The first bytes fixed the mode: greet, or refuse if the server is full.
    fn on_first_bytes(&mut self, conn: &mut Connection) {
        let Some(mode) = conn.decoder.mode() else {
            return;
        };
        conn.mode = Some(mode);
        if conn.rejecting {
            self.refuse_full(conn);
            return;
        }
        // Binary clients are registered once their Hello is accepted, so nothing but
        // the Welcome can reach them first.
        if mode == Mode::Text {
            self.register(conn, mode);
            self.greet_text(conn);
        }
    }

    /// Gives `conn` a nick and makes it reachable by others.
    pub(crate) fn register(&mut self, conn: &mut Connection, mode: Mode) {
        let nick = self.shared.hub.register(conn.id, mode);
        conn.nick = Some(nick);
    }

    fn refuse_full(&mut self, conn: &mut Connection) {
        let mode = conn.mode.unwrap_or(Mode::Text);
        let frame = Frame::Error {
            code: ErrorCode::SERVER_FULL,
            text: format!(
                "server full ({} connections); try again later",
                self.shared.config.max_connections
            ),
        };
        if let Some(bytes) = Encoded::for_mode(&frame, mode).get(mode) {
            conn.enqueue_final(bytes.clone());
        }
        conn.close_now = Some(CloseReason::ServerFull);
    }

    /// Queues `frame` on `conn` itself, in its framing.
    pub(crate) fn reply(&mut self, conn: &mut Connection, frame: &Frame) {
        let Some(mode) = conn.mode else {
            return;
        };
        match Encoded::for_mode(frame, mode).get(mode) {
            Some(bytes) => self.enqueue(conn, bytes.clone()),
            None if !matches!(frame, Frame::Error { .. }) => {
                let error = Frame::Error {
                    code: ErrorCode::INVALID_REQUEST,
                    text: "the answer does not fit in a frame".to_owned(),
                };
                self.reply(conn, &error);
            }
            None => {}
        }
    }

    fn enqueue(&self, conn: &mut Connection, bytes: Bytes) {
        match conn.enqueue(bytes, self.shared.config.max_pending) {
            Enqueued::Queued => WorkerStats::add(&self.stats().messages_out, 1),
            Enqueued::BecameSlow => self.note_slow_consumer(conn),
            Enqueued::Dropped => {}
        }
    }

    fn note_slow_consumer(&self, conn: &mut Connection) {
        tracing::debug!(peer = %conn.peer, "slow consumer");
        if let Some(mode) = conn.mode {
            let frame = Frame::Error {
                code: ErrorCode::SLOW_CONSUMER,
                text: format!(
                    "more than {} bytes queued for you; closing",
                    self.shared.config.max_pending
                ),
            };
            if let Some(bytes) = Encoded::for_mode(&frame, mode).get(mode) {
                conn.enqueue_final(bytes.clone());
            }
        }
    }

    /// Sends an error and closes after one last write attempt.
    pub(crate) fn fail(
        &mut self,
        conn: &mut Connection,
        code: ErrorCode,
        text: &str,
        reason: CloseReason,
    ) {
        if let Some(mode) = conn.mode {
            let frame = Frame::Error {
                code,
                text: text.to_owned(),
            };
            if let Some(bytes) = Encoded::for_mode(&frame, mode).get(mode) {
                conn.enqueue_final(bytes.clone());
            }
        }
        Self::begin_closing(conn, reason, LINGER);
    }

    /// Closes `conn` once everything queued is written and the peer has closed its side
    /// (or the shutdown timeout passes).
    pub(crate) fn close_after_flush(&mut self, conn: &mut Connection, reason: CloseReason) {
        Self::begin_closing(conn, reason, self.shared.config.shutdown_timeout);
    }

    fn begin_closing(conn: &mut Connection, reason: CloseReason, within: Duration) {
        if conn.closing.is_none() {
            conn.closing = Some(reason);
            conn.closing_deadline = Instant::now().checked_add(within);
        }
    }

    // ---- delivering ------------------------------------------------------------------

    /// Sends `frame` to connection `to` (possibly `me`, possibly on another worker), if
    /// on arrival it is still within `scope`.
    pub(crate) fn send_to(
        &mut self,
        me: &mut Connection,
        to: ConnId,
        mode: Mode,
        frame: &Frame,
        scope: Scope,
    ) {
        let Some(bytes) = Encoded::for_mode(frame, mode).get(mode).cloned() else {
            return;
        };
        if to == me.id {
            self.enqueue(me, bytes);
        } else if to.worker as usize == self.index {
            self.deliver_local(Delivery::One { to, bytes, scope });
        } else if let Some(out) = self.outbox.get_mut(to.worker as usize) {
            out.push(Delivery::One { to, bytes, scope });
        }
    }

    /// Sends `frame` to every recipient of `fanout` (which may include `me`) that on
    /// arrival is still within `scope`.
    pub(crate) fn send_fanout(
        &mut self,
        me: &mut Connection,
        fanout: Arc<Fanout>,
        frame: &Frame,
        scope: Scope,
    ) {
        if fanout.is_empty() {
            return;
        }
        let payload = Arc::new(Encoded::new(frame, fanout.binary > 0, fanout.text > 0));
        for worker in 0..fanout.per_worker.len() {
            if fanout.per_worker[worker].is_empty() {
                continue;
            }
            if worker == self.index {
                for i in 0..fanout.per_worker[worker].len() {
                    let to = fanout.per_worker[worker][i];
                    if to == me.id {
                        if let Some(bytes) = me.mode.and_then(|m| payload.get(m)) {
                            self.enqueue(me, bytes.clone());
                        }
                    } else {
                        self.deliver_to_slot(to, &payload, &scope);
                    }
                }
            } else if let Some(out) = self.outbox.get_mut(worker) {
                out.push(Delivery::Many {
                    fanout: Arc::clone(&fanout),
                    payload: Arc::clone(&payload),
                    scope: scope.clone(),
                });
            }
        }
    }

    fn deliver_local(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::One { to, bytes, scope } => {
                if let Some(slot) = self.live_slot(to)
                    && let Some(mut conn) = self.slots[slot].conn.take()
                {
                    if admit(&mut conn, &scope) {
                        self.enqueue(&mut conn, bytes);
                    }
                    self.put_back(slot, conn);
                }
            }
            Delivery::Many {
                fanout,
                payload,
                scope,
            } => {
                if let Some(list) = fanout.per_worker.get(self.index) {
                    for &to in list {
                        self.deliver_to_slot(to, &payload, &scope);
                    }
                }
            }
        }
    }

    fn deliver_to_slot(&mut self, to: ConnId, payload: &Encoded, scope: &Scope) {
        let Some(slot) = self.live_slot(to) else {
            return;
        };
        let Some(mut conn) = self.slots[slot].conn.take() else {
            return;
        };
        if admit(&mut conn, scope)
            && let Some(bytes) = conn.mode.and_then(|m| payload.get(m))
        {
            self.enqueue(&mut conn, bytes.clone());
        }
        self.put_back(slot, conn);
    }

    fn put_back(&mut self, slot: usize, conn: Connection) {
        let close = conn.close_now.is_some();
        let dirty = conn.dirty;
        self.slots[slot].conn = Some(conn);
        if close {
            self.mark_close(slot);
        }
        if !dirty {
            self.mark_dirty(slot);
        }
    }

    /// The slot of `id` if that connection is still the one living there.
    fn live_slot(&self, id: ConnId) -> Option<usize> {
        let slot = id.slot as usize;
        let s = self.slots.get(slot)?;
        (id.worker as usize == self.index && s.generation == id.generation && s.conn.is_some())
            .then_some(slot)
    }

    fn route_outbox(&mut self) {
        for worker in 0..self.outbox.len() {
            if self.outbox[worker].is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut self.outbox[worker]);
            // A worker that is gone has no connections left to deliver to.
            let _ = self.shared.workers[worker].send(WorkerMsg::Deliver(batch));
        }
    }

    // ---- writing and closing ---------------------------------------------------------

    fn flush_dirty(&mut self, now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        for slot in dirty {
            let Some(mut conn) = self.slots.get_mut(slot).and_then(|s| s.conn.take()) else {
                continue;
            };
            conn.dirty = false;
            match conn.flush() {
                Ok(n) => WorkerStats::add(&self.stats().bytes_out, n as u64),
                Err(e) => {
                    tracing::debug!(peer = %conn.peer, "write error: {e}");
                    if conn.close_now.is_none() {
                        conn.close_now = Some(CloseReason::Reset);
                    }
                }
            }
            let pending = conn.pending() > 0;
            if pending != conn.writable_armed && conn.close_now.is_none() {
                let interest = if pending {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                match self
                    .poll
                    .registry()
                    .reregister(&mut conn.stream, Token(slot), interest)
                {
                    Ok(()) => conn.writable_armed = pending,
                    Err(e) => {
                        tracing::debug!(peer = %conn.peer, "reregister failed: {e}");
                        conn.close_now = Some(CloseReason::Reset);
                    }
                }
            }
            if conn.closing.is_some() && !pending && !conn.write_shut && conn.close_now.is_none() {
                // Everything owed is out: send our FIN and wait for the peer's. Nothing
                // more can be sent, so the user leaves its rooms and chats now.
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                conn.write_shut = true;
                if conn.nick.is_some() {
                    self.announce_departure(&mut conn);
                    conn.nick = None;
                }
                let linger = now.checked_add(LINGER);
                conn.closing_deadline = match (conn.closing_deadline, linger) {
                    (Some(deadline), Some(linger)) => Some(deadline.min(linger)),
                    (deadline, linger) => deadline.or(linger),
                };
            }
            let peer_done = conn.write_shut && conn.discard_input(&mut self.scratch);
            let deadline_passed = conn.closing_deadline.is_some_and(|d| now >= d);
            let close = conn.close_now.is_some()
                || (conn.closing.is_some() && (peer_done || deadline_passed));
            self.slots[slot].conn = Some(conn);
            if close {
                self.mark_close(slot);
            }
        }
    }

    fn close_marked(&mut self) {
        while let Some(slot) = self.to_close.pop() {
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(mut conn) = s.conn.take() else {
            return;
        };
        s.generation = s.generation.wrapping_add(1);
        // The first reason decided wins: a write failing while a connection lingers after
        // a protocol error is still a protocol-error close.
        let reason = conn
            .closing
            .or(conn.close_now)
            .unwrap_or(CloseReason::Reset);
        // One last attempt to get a final error or goodbye out, and to leave no unread
        // input behind (which would turn the close into a reset).
        if let Ok(n) = conn.flush() {
            WorkerStats::add(&self.stats().bytes_out, n as u64);
        }
        conn.discard_input(&mut self.scratch);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.free.push(slot);
        self.backlog.retain(|&s| s != slot);
        self.throttled.retain(|&s| s != slot);
        let stats = self.stats();
        stats.count_close(reason);
        stats
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.release_open(conn.rejecting);
        tracing::debug!(peer = %conn.peer, reason = reason.name(), "connection closed");
        if conn.nick.is_some() {
            self.announce_departure(&mut conn);
        }
        // Announcements may have queued output for others on this worker.
        drop(conn);
    }

    fn housekeeping(&mut self, now: Instant) {
        let idle_timeout = self.shared.config.idle_timeout;
        for slot in 0..self.slots.len() {
            let Some(mut conn) = self.slots[slot].conn.take() else {
                continue;
            };
            let silent = now.saturating_duration_since(conn.last_input);
            if conn.closing_deadline.is_some_and(|d| now >= d) {
                // A closing peer that stopped reading does not hold its slot forever.
                conn.close_now = conn.close_now.or(conn.closing);
            } else if conn.rejecting && conn.mode.is_none() {
                if now.saturating_duration_since(conn.accepted_at) >= REJECT_GRACE {
                    self.refuse_full(&mut conn);
                }
            } else if !conn.is_closing() && !idle_timeout.is_zero() {
                if silent >= idle_timeout {
                    let text = format!("silent for {}s; closing", silent.as_secs());
                    self.fail(&mut conn, ErrorCode::IDLE_TIMEOUT, &text, CloseReason::Idle);
                } else if silent >= idle_timeout / 2 && !conn.pinged && conn.nick.is_some() {
                    conn.pinged = true;
                    let token = self.next_ping_token;
                    self.next_ping_token += 1;
                    self.reply(&mut conn, &Frame::Ping { token });
                }
            }
            self.put_back(slot, conn);
        }
    }

    // ---- shutdown --------------------------------------------------------------------

    /// Moves the shutdown along; true when the worker may exit.
    fn advance_shutdown(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Running => {
                if self.shared.shutdown.load(Ordering::Acquire) {
                    // Everything this worker produced is already in other workers'
                    // channels (route_outbox ran this turn), so counting it quiet is safe.
                    self.phase = Phase::Quiescing;
                    self.shared.quiesced.fetch_add(1, Ordering::AcqRel);
                    // No more input is read, so nothing waits to be read any more.
                    for slot in self.backlog.drain(..).chain(self.throttled.drain(..)) {
                        if let Some(conn) = self.slots.get_mut(slot).and_then(|s| s.conn.as_mut()) {
                            conn.waiting = false;
                        }
                    }
                }
                false
            }
            Phase::Quiescing => {
                if self.shared.quiesced.load(Ordering::Acquire) < self.shared.workers.len() {
                    return false;
                }
                // Nobody produces deliveries any more: take the last ones, then say bye.
                self.drain_channel();
                let deadline = now
                    .checked_add(self.shared.config.shutdown_timeout)
                    .unwrap_or(now + Duration::from_secs(3600));
                for slot in 0..self.slots.len() {
                    let Some(mut conn) = self.slots[slot].conn.take() else {
                        continue;
                    };
                    if conn.mode.is_some() && !conn.rejecting {
                        let frame = Frame::Shutdown {
                            reason: "server shutting down".to_owned(),
                        };
                        self.reply(&mut conn, &frame);
                    }
                    conn.closing = Some(CloseReason::Shutdown);
                    conn.closing_deadline = Some(deadline);
                    self.put_back(slot, conn);
                }
                self.phase = Phase::Draining(deadline);
                false
            }
            Phase::Draining(deadline) => {
                let open = self.slots.iter().any(|s| s.conn.is_some());
                !open || now >= deadline
            }
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(conn) = self.conn_mut(slot)
                && conn.closing.is_none()
                && conn.close_now.is_none()
            {
                conn.close_now = Some(CloseReason::Shutdown);
            }
            self.close(slot);
        }
        // Departure notices to other workers no longer matter: they are shutting down.
        for out in &mut self.outbox {
            out.clear();
        }
    }
}

enum Buffered {
    /// No complete message left.
    Drained,
    /// The connection is closing.
    Stop,
    /// Out of rate-limit tokens.
    Throttled,
    /// Handled enough for this turn.
    OutOfBudget,
}

/// Whether a frame of `scope` arriving for `conn` is delivered; applies the chat changes
/// it carries.
fn admit(conn: &mut Connection, scope: &Scope) -> bool {
    match scope {
        Scope::Anyone => true,
        Scope::Room(room) => conn.rooms.iter().any(|r| **r == **room),
        Scope::Chat(peer) => conn.chat_with == Some(*peer),
        Scope::ChatStart(peer) => {
            conn.chat_with = Some(*peer);
            true
        }
        Scope::ChatEnd(peer) => {
            if conn.chat_with == Some(*peer) {
                conn.chat_with = None;
            }
            true
        }
    }
}

enum Requeue {
    Backlog,
    Throttled,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(workers: usize) -> (Arc<Shared>, Vec<WorkerParts>) {
        Shared::new(Config {
            workers,
            ..Config::default()
        })
        .expect("shared state")
    }

    #[test]
    fn a_worker_that_dies_does_not_hold_up_the_others_shutdown() {
        let (shared, mut parts) = shared(2);
        let (poll, rx) = parts.pop().unwrap();
        let survivor = Worker::new(1, Arc::clone(&shared), poll, rx);
        let survivor = std::thread::spawn(move || survivor.run());
        let (poll, rx) = parts.pop().unwrap();
        let doomed = Worker::new(0, Arc::clone(&shared), poll, rx);
        let died = std::thread::spawn(move || {
            let _worker = doomed;
            panic!("worker 0 dies");
        })
        .join();
        assert!(died.is_err());
        assert_eq!(shared.quiesced.load(Ordering::Acquire), 1);

        shared.shutdown.store(true, Ordering::Release);
        shared.workers[1].waker.wake().unwrap();
        let start = Instant::now();
        while !survivor.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the surviving worker never finished its shutdown"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        survivor.join().unwrap();
        assert_eq!(shared.quiesced.load(Ordering::Acquire), 2);
    }

    #[test]
    fn a_worker_that_stops_normally_is_counted_once() {
        let (shared, mut parts) = shared(1);
        let (poll, rx) = parts.pop().unwrap();
        let worker = Worker::new(0, Arc::clone(&shared), poll, rx);
        shared.shutdown.store(true, Ordering::Release);
        std::thread::spawn(move || worker.run()).join().unwrap();
        assert_eq!(shared.quiesced.load(Ordering::Acquire), 1);
    }
}
