//! Socket I/O of a worker: adopting connections, reading and applying requests,
//! flushing output, and the lingering close.

use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Token};
use shared::{ErrorCode, Incoming, Mode};

use super::routing::RoomOutlet;
use super::{FRAME_BUDGET, LINGER, READ_BUDGET, Worker};
use crate::connection::{ConnState, Connection, ReadOutcome, WaitList};
use crate::engine::{Answer, ConnId, Refusal};
use crate::permit::Permit;
use crate::rate::TokenBucket;
use crate::session::{Context, Origin, Request, Session};
use crate::stats::{CloseReason, WorkerStats};

/// What a session consults, from the state the threads share.
fn context<'a>(shared: &'a super::Shared, outlet: &'a RoomOutlet<'a>) -> Context<'a> {
    Context {
        engine: &*shared.engine,
        outlet,
        stats: &shared.stats,
        max_frame: shared.config.limits.max_frame,
        logins: &shared.logins,
        now: Instant::now(),
    }
}

/// What handling the buffered input of a connection stopped at.
enum Buffered {
    /// No complete message left.
    Drained,
    /// The connection is closing.
    Stop,
    /// Out of rate-limit tokens.
    Throttled,
    /// Handled enough for this turn.
    OutOfBudget,
    /// Waiting for the engine's answer to a request.
    Awaiting,
}

impl Worker {
    pub(super) fn adopt(
        &mut self,
        mut stream: TcpStream,
        peer: std::net::SocketAddr,
        permit: Permit,
    ) {
        let now = Instant::now();
        if self.phase != super::Phase::Running {
            // Shutting down: never adopted; the permit is released with it.
            self.stats().count_close(CloseReason::Shutdown);
            return;
        }
        let tls = match self.shared.tls.as_ref().map(|store| store.session()) {
            None => None,
            Some(Ok(session)) => Some(session),
            Some(Err(e)) => {
                tracing::warn!(%peer, "cannot start a TLS session: {e}");
                self.stats().count_close(CloseReason::TlsError);
                return;
            }
        };
        let id = self.conns.reserve();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(id.slot as usize), Interest::READABLE)
        {
            tracing::warn!(%peer, "cannot register connection: {e}");
            self.conns.unreserve(id);
            self.stats().count_close(CloseReason::Reset);
            return;
        }
        let config = &self.shared.config;
        let bucket = TokenBucket::new(config.rate_limit, config.rate_burst, now);
        let reject = permit.is_reject();
        let conn = Connection::new(id, stream, tls, peer, config.limits, bucket, permit, now);
        self.conns.insert(conn);
        let stats = self.stats();
        WorkerStats::add(&stats.accepted, 1);
        WorkerStats::add(&stats.connections, 1);
        tracing::debug!(%peer, worker = self.index, slot = id.slot, reject, "connection adopted");
    }

    pub(super) fn retry_backlog(&mut self, now: Instant) {
        for _ in 0..self.backlog.len() {
            let Some(slot) = self.backlog.pop_front() else {
                break;
            };
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.waiting = None;
            }
            self.service_read(slot, now, false);
        }
    }

    /// Puts a ready connection on the backlog without reading it.
    pub(super) fn defer_read(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot)
            && conn.waiting.is_none()
        {
            conn.waiting = Some(WaitList::Backlog);
            self.backlog.push_back(slot);
        }
    }

    pub(super) fn retry_throttled(&mut self, now: Instant) {
        if self.throttled.is_empty() {
            return;
        }
        let throttled = std::mem::take(&mut self.throttled);
        for slot in throttled {
            let ready = self
                .conns
                .get(slot)
                .is_some_and(|c| c.bucket.wait(now) == Duration::ZERO);
            if ready {
                if let Some(conn) = self.conns.get_mut(slot) {
                    conn.waiting = None;
                }
                self.service_read(slot, now, false);
            } else {
                self.throttled.push(slot);
            }
        }
    }

    pub(super) fn retry_parked(&mut self, now: Instant) {
        if self.parked.is_empty() || self.inbound_room() == 0 {
            return;
        }
        for slot in std::mem::take(&mut self.parked) {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.waiting = None;
            }
            self.service_read(slot, now, false);
        }
    }

    /// Reads and handles input of one connection until the socket is drained, the read
    /// budget is spent, the rate limit holds it back, or the inbound budget is full and
    /// it is one of the large holders.
    ///
    /// With `short_read_drains`, a read that returns less than asked for counts as having
    /// emptied the socket: new data makes a new edge, so the extra read that would only
    /// say WouldBlock is skipped. Callers pass `false` when the peer may already have
    /// closed (its FIN makes no new edge after the data) or when no event vouches for
    /// the socket's state (backlog and throttle retries).
    pub(super) fn service_read(&mut self, slot: usize, now: Instant, short_read_drains: bool) {
        let Some(mut conn) = self.conns.take(slot) else {
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
                // Read no more: the answer puts the connection back on the backlog.
                Buffered::Stop | Buffered::Awaiting => break,
                Buffered::Throttled => {
                    if conn.throttled_since.is_none() {
                        // Once per episode: the client is told why its answers slow
                        // down, so a load generator does not mistake it for loss.
                        WorkerStats::add(&self.stats().rate_limited, 1);
                        let config = &self.shared.config;
                        let text = format!(
                            "sending faster than {} messages/s (burst {}); the server now reads your messages at that rate",
                            config.rate_limit, config.rate_burst
                        );
                        self.reply_error(&mut conn, Refusal::new(ErrorCode::RATE_LIMITED, text));
                    }
                    let since = *conn.throttled_since.get_or_insert(now);
                    let limit = self.shared.config.flood_close_after;
                    if now.saturating_duration_since(since) > limit {
                        let text = format!("over the rate limit for {limit:?}; closing");
                        self.fail(&mut conn, ErrorCode::FLOOD, &text, CloseReason::Flood);
                        break;
                    }
                    requeue = Some(WaitList::Throttled);
                    break;
                }
                Buffered::OutOfBudget => {
                    requeue = Some(WaitList::Backlog);
                    break;
                }
            }
            if socket_drained {
                conn.throttled_since = None;
                break;
            }
            if budget == 0 {
                requeue = Some(WaitList::Backlog);
                break;
            }
            // What is left undecoded counts against the budget before the next read,
            // so the total is fresh; a read that ended on a frame boundary changes
            // nothing and does not touch the shared counter.
            conn.account_held(&self.shared.stats.inbound);
            // Every connection may hold the small allowance; beyond it, only what the
            // budget has room for. Connections with nothing more allowed wait until
            // the total falls.
            let allowance = super::LARGE_HOLDER.saturating_sub(conn.decoder.buffered());
            let room = self.inbound_room().max(allowance);
            if room == 0 {
                WorkerStats::add(&self.stats().parked, 1);
                requeue = Some(WaitList::Parked);
                break;
            }
            let want = budget.min(self.scratch.len()).min(room);
            match conn.read_some(&mut self.scratch[..want]) {
                Ok(ReadOutcome::Data { fed, wire, drained }) => {
                    socket_drained = short_read_drains && drained;
                    budget = budget.saturating_sub(fed);
                    conn.last_input = now;
                    conn.pinged = false;
                    WorkerStats::add(&self.stats().bytes_in, wire as u64);
                    if matches!(conn.state(), ConnState::Detecting { .. }) {
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
                Ok(ReadOutcome::NotTls(first)) => {
                    self.refuse_plaintext(&mut conn, first);
                    break;
                }
                Ok(ReadOutcome::TlsRefused) => {
                    // The alert rustls queued goes out before the FIN.
                    tracing::debug!(peer = %conn.peer, "TLS refused");
                    conn.begin_close(CloseReason::TlsError, LINGER, now);
                    break;
                }
                Err(e) => {
                    tracing::debug!(peer = %conn.peer, "read error: {e}");
                    conn.close_now(CloseReason::Reset);
                    break;
                }
            }
        }
        conn.account_held(&self.shared.stats.inbound);
        if conn.held == 0 {
            conn.partial_since = None;
        } else if frames > 0 || conn.partial_since.is_none() {
            conn.partial_since = Some(now);
        }
        if !conn.is_closing() && !conn.writable_armed && conn.pending() > 0 {
            // The answers to what was just read leave now, not after every other ready
            // connection has been read: a turn that reads hundreds of sockets would
            // otherwise hold the first one's echo for all of them. What other
            // connections' requests add to its queue later in the turn goes out with
            // the turn's other writes, and so does the output of a connection whose
            // socket was full (it waits for its WRITABLE event, and one write attempt a
            // turn is enough).
            self.write_now(&mut conn);
        }
        let closing_now = conn.closes_now();
        // A connection already waiting on a list is served from there; new readiness
        // edges must not queue it twice.
        let requeue = requeue.filter(|_| !closing_now && conn.waiting.is_none());
        if requeue.is_some() {
            conn.waiting = requeue;
        }
        self.conns.put(slot, conn);
        if closing_now {
            self.mark_close(slot);
        }
        match requeue {
            Some(WaitList::Backlog) => self.backlog.push_back(slot),
            Some(WaitList::Throttled) => self.throttled.push(slot),
            Some(WaitList::Parked) => self.parked.push(slot),
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
            if conn.awaiting {
                return Buffered::Awaiting;
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
                    let request = match incoming {
                        Incoming::Frame(frame) => Request::from_frame(frame),
                        Incoming::Line(line) => match Request::from_line(&line) {
                            Ok(Some(request)) => request,
                            Ok(None) => continue,
                            Err(refusal) => {
                                self.reply_error(conn, refusal);
                                continue;
                            }
                        },
                    };
                    self.apply(conn, request);
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

    /// Applies one request to the connection's session and carries out its effects.
    ///
    /// A room message goes out through the workers' channels, in its room's order (see
    /// `routing`). So that it also keeps its place among the sender's other frames, the
    /// deliveries this worker holds for other workers go out before it, and this
    /// worker's own channel, which now ends with it, is served before anything that
    /// follows (the rest of this request's effects, the next request).
    fn apply(&mut self, conn: &mut Connection, request: Request) {
        let Some(session) = conn.session.as_mut() else {
            return;
        };
        if matches!(request, Request::Say { .. }) {
            self.route_outbox();
        }
        let mut effects = std::mem::take(&mut self.effects);
        let outlet = RoomOutlet::new(&self.shared, self.turn_at, &self.to_wake);
        session.apply(request, &context(&self.shared, &outlet), &mut effects);
        if self.to_wake[self.index].replace(false) {
            // Everything up to the message just sent, however many, and no more: other
            // workers may keep adding behind it.
            let through_own = self.rx.len();
            self.drain_channel_serving(through_own, Some(conn));
        }
        self.carry_out(conn, &mut effects);
        self.effects = effects;
    }

    /// Applies the engine's answer to the request connection `to` waits on, and goes on
    /// with the input it holds.
    pub(super) fn answered(&mut self, to: ConnId, answer: Answer) {
        let slot = to.slot as usize;
        let Some(mut conn) = self.conns.take(slot) else {
            return;
        };
        if conn.id == to
            && let Some(session) = conn.session.as_mut()
        {
            conn.awaiting = false;
            let mut effects = std::mem::take(&mut self.effects);
            let outlet = RoomOutlet::new(&self.shared, self.turn_at, &self.to_wake);
            session.resume(answer, &context(&self.shared, &outlet), &mut effects);
            self.carry_out(&mut conn, &mut effects);
            self.effects = effects;
        }
        let closing_now = conn.closes_now();
        self.conns.put(slot, conn);
        if closing_now {
            self.mark_close(slot);
        } else {
            self.defer_read(slot);
        }
        self.mark_dirty(slot);
    }

    /// Unregisters the connection's session; others are told unless the server is
    /// shutting down (everyone is about to be told that instead, and no client should
    /// hear of others leaving before its own `Shutdown`).
    pub(super) fn depart(&mut self, conn: &mut Connection) {
        let Some(session) = conn.session.as_mut() else {
            return;
        };
        if !session.is_registered() {
            return;
        }
        let announce = self.phase == super::Phase::Running && !self.shared.shutting_down();
        let mut effects = std::mem::take(&mut self.effects);
        let outlet = RoomOutlet::new(&self.shared, self.turn_at, &self.to_wake);
        session.depart(&context(&self.shared, &outlet), announce, &mut effects);
        self.carry_out(conn, &mut effects);
        self.effects = effects;
    }

    /// The first bytes fixed the framing: open a session, or refuse if the server is
    /// full.
    pub(super) fn on_first_bytes(&mut self, conn: &mut Connection) {
        let Some(mode) = conn.mode() else {
            return;
        };
        if conn.is_rejected() {
            self.refuse_full(conn);
            return;
        }
        let origin = Origin {
            addr: conn.peer.ip(),
            tls: conn.is_tls(),
        };
        conn.open(Session::new(conn.id, mode).with_origin(origin));
        // Binary clients are registered once their Hello is accepted, so nothing but
        // the Welcome can reach them first; text clients are greeted at once.
        if mode == Mode::Text
            && let Some(session) = conn.session.as_mut()
        {
            let mut effects = std::mem::take(&mut self.effects);
            let outlet = RoomOutlet::new(&self.shared, self.turn_at, &self.to_wake);
            session.greet(&context(&self.shared, &outlet), &mut effects);
            self.carry_out(conn, &mut effects);
            self.effects = effects;
        }
    }

    /// A plaintext client on the TLS port is told so in plaintext, in the framing its
    /// first byte chose, and closed gracefully, so it reads why instead of a reset.
    fn refuse_plaintext(&mut self, conn: &mut Connection, first: u8) {
        tracing::debug!(peer = %conn.peer, "plaintext client on the TLS port");
        conn.drop_tls();
        let mode = if first == 0 { Mode::Binary } else { Mode::Text };
        let text = "this port speaks TLS; connect with TLS";
        self.enqueue_error(conn, mode, Refusal::new(ErrorCode::MALFORMED, text));
        conn.begin_close(CloseReason::NotTls, LINGER, Instant::now());
    }

    pub(super) fn refuse_full(&mut self, conn: &mut Connection) {
        let mode = conn.mode().unwrap_or(Mode::Text);
        let text = format!(
            "server full ({} connections); try again later",
            self.shared.config.max_connections
        );
        self.enqueue_error(conn, mode, Refusal::new(ErrorCode::SERVER_FULL, text));
        conn.close_now(CloseReason::ServerFull);
    }

    /// Sends an error and closes once it is written, within [`LINGER`].
    pub(super) fn fail(
        &mut self,
        conn: &mut Connection,
        code: ErrorCode,
        text: &str,
        reason: CloseReason,
    ) {
        if let Some(mode) = conn.mode() {
            self.enqueue_error(conn, mode, Refusal::new(code, text));
        }
        conn.begin_close(reason, LINGER, Instant::now());
    }

    /// Closes `conn` once everything queued is written and the peer has closed its side
    /// (or `--shutdown-timeout` passes).
    pub(super) fn close_after_flush(&mut self, conn: &mut Connection, reason: CloseReason) {
        conn.begin_close(reason, self.shared.config.shutdown_timeout, Instant::now());
    }

    /// Writes what `conn` has queued, as far as the socket takes it; a failed write
    /// closes the connection.
    pub(super) fn write_now(&self, conn: &mut Connection) {
        match conn.flush() {
            Ok(n) => WorkerStats::add(&self.stats().bytes_out, n as u64),
            Err(e) => {
                tracing::debug!(peer = %conn.peer, "write error: {e}");
                conn.close_now(CloseReason::Reset);
            }
        }
    }

    pub(super) fn flush_dirty(&mut self, now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        for slot in dirty {
            let Some(mut conn) = self.conns.take(slot) else {
                continue;
            };
            conn.dirty = false;
            self.write_now(&mut conn);
            let pending = conn.pending() > 0;
            if pending != conn.writable_armed && !conn.closes_now() {
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
                        conn.close_now(CloseReason::Reset);
                    }
                }
            }
            if conn.ready_for_fin() {
                // Everything owed is out: send our FIN and wait for the peer's. Nothing
                // more can be sent, so the user leaves its rooms and chats now.
                conn.send_fin(now, LINGER);
                self.depart(&mut conn);
            }
            let peer_done = conn.fin_sent() && conn.discard_input(&mut self.scratch);
            let close = conn.closes_now()
                || (conn.is_closing() && (peer_done || conn.deadline_passed(now)));
            self.conns.put(slot, conn);
            if close {
                self.mark_close(slot);
            }
        }
    }

    pub(super) fn close_marked(&mut self) {
        while let Some(slot) = self.to_close.pop() {
            self.close(slot);
        }
    }

    pub(super) fn close(&mut self, slot: usize) {
        let Some(mut conn) = self.conns.remove(slot) else {
            return;
        };
        let reason = conn.close_reason().unwrap_or(CloseReason::Reset);
        // One last attempt to get a final error or goodbye out, and to leave no unread
        // input behind (which would turn the close into a reset).
        if let Ok(n) = conn.flush() {
            WorkerStats::add(&self.stats().bytes_out, n as u64);
        }
        conn.discard_input(&mut self.scratch);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.backlog.retain(|&s| s != slot);
        self.throttled.retain(|&s| s != slot);
        self.parked.retain(|&s| s != slot);
        conn.release_held(&self.shared.stats.inbound);
        let stats = self.stats();
        stats.count_close(reason);
        stats
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(peer = %conn.peer, reason = reason.name(), "connection closed");
        self.depart(&mut conn);
        // Dropping the connection releases its permit.
    }

    /// Puts a connection taken out of the table back, closing or flushing it as its
    /// state asks.
    pub(super) fn put_back(&mut self, slot: usize, conn: Connection) {
        let close = conn.closes_now();
        let dirty = conn.dirty;
        self.conns.put(slot, conn);
        if close {
            self.mark_close(slot);
        }
        if !dirty {
            self.mark_dirty(slot);
        }
    }
}
