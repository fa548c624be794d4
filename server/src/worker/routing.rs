//! Carrying out a session's effects: replies in the connection's framing, deliveries to
//! connections on this worker or (through the outbox, one channel message per worker
//! per turn) on others, each checked against its [`Scope`] on arrival; and the
//! [`RoomOutlet`] through which the engine hands out room messages.
//!
//! Order: a sender's requests are applied one after another by its worker, local
//! recipients get their frames at once, and each other worker receives them through one
//! FIFO channel, so every recipient sees each sender's frames once and in order.
//!
//! Room messages keep one order per room across senders: the engine calls the outlet
//! for each room in id order while it holds the room, and the outlet pushes the message
//! at once onto the channel of every worker with members in it, the sender's own worker
//! included. Each channel is FIFO, so every worker, and so every member, receives a
//! room's messages in id order. Workers other than the sender's are woken at the end of
//! the sender's turn, as for the outbox.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use shared::{ErrorCode, Frame, Mode};

use super::{LINGER, Shared, Worker, WorkerMsg};
use crate::connection::{Connection, Enqueued};
use crate::engine::{Answer, ConnId, Fanout, Mailbox, Member, Outlet, Refusal, RoomId};
use crate::session::{Effect, Scope};
use crate::stats::WorkerStats;

/// One frame encoded once per framing that its recipients need; shared by all of them.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    binary: Option<Bytes>,
    text: Option<Bytes>,
    /// For a room message: when its turn began and how many recipients are still to
    /// be served; the worker that serves the last one records the fan-out time.
    clock: Option<(Instant, AtomicUsize)>,
}

impl Encoded {
    /// Encodes `frame` for the framings asked for.
    fn new(frame: &Frame, binary: bool, text: bool) -> Self {
        let binary = if binary {
            match frame.to_bytes() {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!("cannot encode {frame:?}: {e}");
                    None
                }
            }
        } else {
            None
        };
        let text = if text {
            let mut out = bytes::BytesMut::new();
            shared::text::render_line(frame, &mut out).then(|| out.freeze())
        } else {
            None
        };
        Self {
            binary,
            text,
            clock: None,
        }
    }

    /// The bytes of `frame` in `mode`, if it can be encoded.
    fn one(frame: &Frame, mode: Mode) -> Option<Bytes> {
        Self::new(frame, mode == Mode::Binary, mode == Mode::Text).take(mode)
    }

    fn take(self, mode: Mode) -> Option<Bytes> {
        match mode {
            Mode::Binary => self.binary,
            Mode::Text => self.text,
        }
    }

    fn get(&self, mode: Mode) -> Option<&Bytes> {
        match mode {
            Mode::Binary => self.binary.as_ref(),
            Mode::Text => self.text.as_ref(),
        }
    }
}

/// Frames travelling to connections of another worker.
#[derive(Debug)]
pub(crate) enum Delivery {
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

/// Hands the engine's room messages to the workers of their members (see the module
/// docs), on behalf of a worker serving a request whose input was read at `read_at`.
pub(crate) struct RoomOutlet<'a> {
    shared: &'a Shared,
    read_at: Instant,
    /// Set for each worker sent to: the worker wakes the others at the end of its turn
    /// and serves its own channel at once (see `Worker::apply`).
    to_wake: &'a [Cell<bool>],
}

impl<'a> RoomOutlet<'a> {
    pub(crate) fn new(shared: &'a Shared, read_at: Instant, to_wake: &'a [Cell<bool>]) -> Self {
        Self {
            shared,
            read_at,
            to_wake,
        }
    }
}

impl Outlet for RoomOutlet<'_> {
    fn deliver(&self, room: RoomId, message: &Frame, binary: &Bytes, fanout: &Arc<Fanout>) {
        if fanout.is_empty() {
            return;
        }
        let text = (fanout.text > 0)
            .then(|| {
                let mut out = bytes::BytesMut::new();
                shared::text::render_line(message, &mut out).then(|| out.freeze())
            })
            .flatten();
        let payload = Arc::new(Encoded {
            binary: Some(binary.clone()),
            text,
            clock: Some((self.read_at, AtomicUsize::new(fanout.len()))),
        });
        for (worker, members) in fanout.per_worker.iter().enumerate() {
            if members.is_empty() {
                continue;
            }
            let delivery = Delivery::Many {
                fanout: Arc::clone(fanout),
                payload: Arc::clone(&payload),
                scope: Scope::Room(room),
            };
            let stats = &self.shared.stats.workers[worker];
            stats.backlog_add(1);
            // A worker that is gone has no connections left to deliver to.
            if self.shared.workers[worker]
                .push(WorkerMsg::Room(delivery))
                .is_err()
            {
                stats.backlog_sub(1);
            } else if let Some(flag) = self.to_wake.get(worker) {
                flag.set(true);
            }
        }
    }
}

/// The workers as a shared engine's threads reach them (see `engine::remote`): answers
/// and deliveries from other nodes are pushed onto the owning worker's channel, which
/// is woken at once. Holds the server weakly: the engine lives inside it.
pub(crate) struct Mailroom {
    shared: Weak<Shared>,
}

impl Mailroom {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        Self {
            shared: Arc::downgrade(shared),
        }
    }

    fn send(shared: &Shared, worker: usize, msg: WorkerMsg, deliveries: usize) {
        let Some(handle) = shared.workers.get(worker) else {
            return;
        };
        let stats = &shared.stats.workers[worker];
        stats.backlog_add(deliveries);
        if handle.send(msg).is_err() {
            stats.backlog_sub(deliveries);
        }
    }
}

impl Mailroom {
    /// Pushes `frame` to the workers of `fanout`'s recipients, within `scope`.
    fn fan_out(&self, frame: &Frame, binary: Option<Bytes>, fanout: &Arc<Fanout>, scope: Scope) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if fanout.is_empty() {
            return;
        }
        let mut payload = Encoded::new(
            frame,
            binary.is_none() && fanout.binary > 0,
            fanout.text > 0,
        );
        if binary.is_some() {
            payload.binary = binary;
        }
        let payload = Arc::new(payload);
        for (worker, members) in fanout.per_worker.iter().enumerate() {
            if members.is_empty() {
                continue;
            }
            let delivery = Delivery::Many {
                fanout: Arc::clone(fanout),
                payload: Arc::clone(&payload),
                scope,
            };
            Self::send(&shared, worker, WorkerMsg::Room(delivery), 1);
        }
    }
}

impl Mailbox for Mailroom {
    fn notice(&self, frame: &Frame, fanout: &Arc<Fanout>) {
        self.fan_out(frame, None, fanout, Scope::Anyone);
    }

    fn congested(&self) -> bool {
        self.shared.upgrade().is_some_and(|shared| {
            shared
                .stats
                .workers
                .iter()
                .any(|w| w.backlog() >= super::BACKLOG_HIGH_WATER as u64)
        })
    }

    fn answer(&self, to: ConnId, answer: Answer) {
        if let Some(shared) = self.shared.upgrade() {
            Self::send(
                &shared,
                to.worker as usize,
                WorkerMsg::Answer {
                    to,
                    answer: Box::new(answer),
                },
                0,
            );
        }
    }

    fn room(&self, room: RoomId, message: &Frame, binary: &Bytes, fanout: &Arc<Fanout>) {
        self.fan_out(message, Some(binary.clone()), fanout, Scope::Room(room));
    }

    fn send(&self, to: ConnId, mode: Mode, frame: Frame, scope: Scope) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(bytes) = Encoded::one(&frame, mode) else {
            return;
        };
        let delivery = Delivery::One { to, bytes, scope };
        Self::send(
            &shared,
            to.worker as usize,
            WorkerMsg::Deliver(vec![delivery]),
            1,
        );
    }
}

impl Worker {
    /// Carries out `effects` (emptying it) for the connection that made them.
    pub(super) fn carry_out(&mut self, conn: &mut Connection, effects: &mut Vec<Effect>) {
        for effect in effects.drain(..) {
            match effect {
                Effect::Reply(frame) => self.reply(conn, &frame),
                Effect::ReplyText(mut line) => {
                    line.push('\n');
                    self.enqueue(conn, Bytes::from(line));
                }
                Effect::ReplyEncoded(bytes) => self.enqueue(conn, bytes),
                Effect::Send {
                    to,
                    mode,
                    frame,
                    scope,
                } => self.send_to(conn, to, mode, &frame, scope),
                Effect::Fanout {
                    fanout,
                    frame,
                    scope,
                } => self.send_fanout(conn, fanout, &frame, scope),
                Effect::Charge(tokens) => conn.bucket.charge(tokens),
                Effect::Fail { error, reason } => {
                    self.fail(conn, error.code, &error.text, reason);
                }
                Effect::CloseAfterFlush(reason) => self.close_after_flush(conn, reason),
                Effect::Await => conn.awaiting = true,
                Effect::SendRemote {
                    node,
                    to,
                    frame,
                    scope,
                } => {
                    if let Some(remote) = self.shared.engine.remote() {
                        remote.send(&node, to, frame, scope);
                    }
                }
            }
        }
    }

    /// Queues `frame` on `conn` itself, in its framing.
    pub(super) fn reply(&mut self, conn: &mut Connection, frame: &Frame) {
        let Some(mode) = conn.mode() else {
            return;
        };
        match Encoded::one(frame, mode) {
            Some(bytes) => self.enqueue(conn, bytes),
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

    /// Queues `frame` on `conn` even though it is closing (the shutdown notice for a
    /// client still being sent what it is owed).
    pub(super) fn reply_final(&self, conn: &mut Connection, frame: &Frame) {
        if let Some(bytes) = conn.mode().and_then(|mode| Encoded::one(frame, mode)) {
            conn.enqueue_final(bytes);
        }
    }

    /// Queues an error answer (not closing).
    pub(super) fn reply_error(&mut self, conn: &mut Connection, refusal: Refusal) {
        let frame = Frame::Error {
            code: refusal.code,
            text: refusal.text,
        };
        self.reply(conn, &frame);
    }

    /// Queues a last error past the pending limit.
    pub(super) fn enqueue_error(&self, conn: &mut Connection, mode: Mode, refusal: Refusal) {
        let frame = Frame::Error {
            code: refusal.code,
            text: refusal.text,
        };
        if let Some(bytes) = Encoded::one(&frame, mode) {
            conn.enqueue_final(bytes);
        }
    }

    fn enqueue(&self, conn: &mut Connection, bytes: Bytes) {
        let max_pending = self.shared.config.max_pending;
        match conn.enqueue(bytes, max_pending, LINGER) {
            Enqueued::Queued => {
                WorkerStats::add(&self.stats().messages_out, 1);
                // Output is written once a turn, but one turn can bring a member more
                // than its limit (a drained channel full of a flooded room): past half
                // of it, write now, so a member that reads promptly is never taken
                // for a slow consumer.
                if conn.pending() >= max_pending / 2 {
                    self.write_now(conn);
                }
            }
            Enqueued::BecameSlow => {
                tracing::debug!(peer = %conn.peer, "slow consumer");
                if let Some(mode) = conn.mode() {
                    let text = format!("more than {max_pending} bytes queued for you; closing");
                    self.enqueue_error(conn, mode, Refusal::new(ErrorCode::SLOW_CONSUMER, text));
                }
            }
            Enqueued::Dropped => {}
        }
    }

    /// Sends `frame` to connection `to` (possibly `me`, possibly on another worker), if
    /// on arrival it is still within `scope`.
    fn send_to(
        &mut self,
        me: &mut Connection,
        to: ConnId,
        mode: Mode,
        frame: &Frame,
        scope: Scope,
    ) {
        let Some(bytes) = Encoded::one(frame, mode) else {
            return;
        };
        if to == me.id {
            self.enqueue(me, bytes);
        } else if to.worker as usize == self.index {
            self.deliver_local(Delivery::One { to, bytes, scope }, None);
        } else if let Some(out) = self.outbox.get_mut(to.worker as usize) {
            out.push(Delivery::One { to, bytes, scope });
        }
    }

    /// Sends `frame` to every recipient of `fanout` (which may include `me`) that on
    /// arrival is still within `scope`.
    fn send_fanout(
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
                    let member = fanout.per_worker[worker][i];
                    if member.id == me.id {
                        if let Some(bytes) = me.mode().and_then(|m| payload.get(m)) {
                            self.enqueue(me, bytes.clone());
                        }
                    } else {
                        self.deliver_to_member(member, &payload, scope);
                    }
                }
                self.served(&payload, fanout.per_worker[worker].len());
            } else if let Some(out) = self.outbox.get_mut(worker) {
                out.push(Delivery::Many {
                    fanout: Arc::clone(&fanout),
                    payload: Arc::clone(&payload),
                    scope,
                });
            }
        }
    }

    /// Delivers to connections of this worker; `me` is the connection being served,
    /// out of the table meanwhile, if any.
    pub(super) fn deliver_local(&mut self, delivery: Delivery, mut me: Option<&mut Connection>) {
        match delivery {
            Delivery::One { to, bytes, scope } => match me {
                Some(me) if me.id == to => {
                    if admit(me, scope, 0) {
                        self.enqueue(me, bytes);
                    }
                }
                _ => {
                    if let Some(slot) = self.conns.live_slot(to)
                        && let Some(mut conn) = self.conns.take(slot)
                    {
                        if admit(&mut conn, scope, 0) {
                            self.enqueue(&mut conn, bytes);
                        }
                        self.put_back(slot, conn);
                    }
                }
            },
            Delivery::Many {
                fanout,
                payload,
                scope,
            } => {
                if let Some(list) = fanout.per_worker.get(self.index) {
                    for &member in list {
                        match me.as_deref_mut() {
                            Some(me) if me.id == member.id => {
                                if admit(me, scope, member.epoch)
                                    && let Some(bytes) = me.mode().and_then(|m| payload.get(m))
                                {
                                    self.enqueue(me, bytes.clone());
                                }
                            }
                            _ => self.deliver_to_member(member, &payload, scope),
                        }
                    }
                    self.served(&payload, list.len());
                }
            }
        }
    }

    /// Counts `n` recipients of a room message served (one atomic operation per worker
    /// and message, not per member). The worker that serves the last one times the
    /// message once this turn's writes are done.
    fn served(&mut self, payload: &Encoded, n: usize) {
        if let Some((read_at, remaining)) = &payload.clock
            && remaining.fetch_sub(n, Ordering::AcqRel) == n
        {
            self.fanouts_done.push(*read_at);
        }
    }

    /// Records the fan-out time of the room messages whose last member this turn
    /// served, now that this turn's output has been written.
    pub(super) fn record_fanouts(&mut self) {
        if self.fanouts_done.is_empty() {
            return;
        }
        let now = Instant::now();
        for read_at in self.fanouts_done.drain(..) {
            self.shared.stats.workers[self.index]
                .fanout
                .record(now.saturating_duration_since(read_at));
        }
    }

    fn deliver_to_member(&mut self, member: Member, payload: &Encoded, scope: Scope) {
        let Some(slot) = self.conns.live_slot(member.id) else {
            return;
        };
        let Some(mut conn) = self.conns.take(slot) else {
            return;
        };
        if admit(&mut conn, scope, member.epoch)
            && let Some(bytes) = conn.mode().and_then(|m| payload.get(m))
        {
            self.enqueue(&mut conn, bytes.clone());
        }
        self.put_back(slot, conn);
    }

    /// Sends each other worker the deliveries of this turn, one message per worker,
    /// and wakes the workers the room outlet sent to.
    pub(super) fn route_outbox(&mut self) {
        for (worker, flag) in self.to_wake.iter().enumerate() {
            if flag.replace(false) && worker != self.index {
                self.shared.workers[worker].wake();
            }
        }
        for worker in 0..self.outbox.len() {
            if self.outbox[worker].is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut self.outbox[worker]);
            let count = batch.len();
            let stats = &self.shared.stats.workers[worker];
            stats.backlog_add(count);
            // A worker that is gone has no connections left to deliver to.
            if self.shared.workers[worker]
                .send(WorkerMsg::Deliver(batch))
                .is_err()
            {
                stats.backlog_sub(count);
            }
        }
    }
}

/// Whether a frame of `scope` for membership `epoch` is still wanted by `conn`.
fn admit(conn: &mut Connection, scope: Scope, epoch: u64) -> bool {
    conn.session
        .as_mut()
        .is_some_and(|session| session.admit(scope, epoch))
}
