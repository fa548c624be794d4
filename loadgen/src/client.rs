//! One simulated client: its connection, handshake, outgoing messages and the checks on
//! everything it receives.
//!
//! A client never blocks: messages are appended to its outbound buffer and written as far
//! as the socket takes them; the rest goes out when the socket turns writable. Everything
//! it reads is decoded incrementally (frames or lines, see `shared::codec`, or a broker's
//! replies, see `broker`) and stamps are checked against the [`crate::verify::SequenceTracker`] of their
//! sender.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::transport::{TlsClient, Transport};
use shared::{ErrorCode, Frame, FrameDecoder, LineDecoder, PROTOCOL_VERSION};

use crate::churn::RoomCursor;
use crate::clock::Clock;
use crate::config::{Protocol, Scenario};
use crate::fanout::{SenderStreams, StampBase};
use crate::lag;
use crate::schedule::{Schedule, SendWindow};
use crate::stamp::{ASCII_MARKER, Stamp};
use crate::verify::Arrival;

pub(crate) use crate::tally::{ErrorCounts, Tally};
pub(crate) use crate::wire::encode_message;

mod broker;
use broker::BrokerInbox;

/// Outbound bytes a client may hold before further sends are skipped (and counted as
/// stalled): the server stopped reading.
const MAX_OUTBOUND: usize = 16 << 20;

/// Who a client is and whom it talks to, fixed before the run.
#[derive(Debug, Clone)]
pub(crate) struct ClientPlan {
    /// Global client id (also the schedule phase index).
    pub id: u32,
    /// First global id of the client's group (itself, its pair, or its room).
    pub group_start: u32,
    /// Members in the group.
    pub group_len: u32,
    /// Nick to take (dm scenario, and text-mode rooms); `None` keeps the server's.
    pub nick: Option<String>,
    /// Room to join (room scenario).
    pub room: Option<String>,
    /// Partner's nick (dm scenario).
    pub partner_nick: Option<String>,
}

impl ClientPlan {
    /// Deliveries this client should have received, given every client's count of
    /// measured messages sent.
    pub(crate) fn expected(&self, scenario: Scenario, sent: impl Fn(u32) -> u64) -> u64 {
        match scenario {
            Scenario::Echo => sent(self.id),
            // The partner is the other member of the pair.
            Scenario::Dm => sent(self.group_start + u32::from(self.id == self.group_start)),
            Scenario::Room => (self.group_start..self.group_start + self.group_len)
                .map(sent)
                .sum(),
        }
    }

    /// Whether this client expects messages from group member `sender`.
    pub(crate) fn expects_from(&self, scenario: Scenario, sender: u32) -> bool {
        match scenario {
            Scenario::Echo => sender == self.id,
            Scenario::Dm => sender != self.id,
            Scenario::Room => true,
        }
    }
}

/// Run-wide facts a client needs to send and to judge arrivals.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub protocol: Protocol,
    pub scenario: Scenario,
    /// Payload bytes per message.
    pub payload: usize,
    /// Messages scheduled from this time on are measured (ns on the run clock).
    pub measure_from_ns: u64,
    /// Highest sequence number any client can send; higher ones are forged.
    pub max_seq: u32,
    /// Messages a client may have awaiting their echo; 0 = unlimited (pure open loop).
    pub window: u32,
    /// The send schedule (set when sending begins).
    pub schedule: Schedule,
    /// When due messages leave (set when sending begins).
    pub send_window: SendWindow,
    /// With `--tls`, what every connection's TLS session starts from.
    pub tls: Option<TlsClient>,
    /// Role, global ids and time base of stamps (fan-out across processes).
    pub stamps: StampBase,
}

/// What a client needs from its thread while handling an event or a send.
pub(crate) struct Ctx<'a> {
    pub rules: &'a Rules,
    pub registry: &'a Registry,
    pub clock: Clock,
    pub tally: &'a mut Tally,
    /// Measured messages sent, per global client id, readable by every thread (a room
    /// spans threads). Each entry is written only by its client's thread.
    pub sent: &'a [AtomicU64],
}

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not connecting yet (waiting for its turn in the connect ramp).
    Idle,
    /// TCP connect in progress; fails at `deadline_ns`.
    Connecting { deadline_ns: u64 },
    /// Connected, handshake (hello, nick, join) in progress; fails at `deadline_ns`.
    Handshake { deadline_ns: u64 },
    /// Sending and receiving.
    Ready,
    /// Dropped on purpose by churn; reconnects at `until_ns`. Its due messages wait.
    Away { until_ns: u64 },
    /// Never got ready.
    Failed,
    /// Was ready, then the connection ended.
    Closed,
}

/// The inbound decoder of a connection.
#[derive(Debug)]
enum Inbox {
    Frames(FrameDecoder),
    Lines(LineDecoder),
    Broker(BrokerInbox),
}

/// An open connection.
#[derive(Debug)]
struct Conn {
    stream: Transport,
    token: Token,
    /// Whether WRITABLE is in the registered interest: only while a connect is in
    /// progress or bytes are pending, so a loopback ACK does not wake the thread for
    /// every message.
    writable_interest: bool,
    /// Bytes queued for the server; `out[sent..]` is still to be written.
    out: Vec<u8>,
    sent: usize,
    /// The last write said `WouldBlock`: the socket's send buffer is full. Nothing is
    /// written until a WRITABLE event says it has room again (WRITABLE interest is
    /// registered while anything is pending, and edge-triggered poll reports the change),
    /// so no write is made only to learn that the socket is still full.
    blocked: bool,
    /// When the first measured message queued behind a backlog was sent, until the
    /// backlog clears (the server's lag, see [`crate::lag`]).
    held_since: Option<u64>,
    inbox: Inbox,
}

/// One simulated client.
#[derive(Debug)]
pub(crate) struct Client {
    pub plan: ClientPlan,
    pub status: Status,
    conn: Option<Conn>,
    /// The nick the server knows this client by.
    nick: String,
    /// One tracker per sender: the group's members, or (`--role receive`) every sender
    /// met.
    streams: SenderStreams,
    /// Measured messages this client sent.
    pub sent_measured: u64,
    /// Whether the client was ready when sending began (it then counts as a receiver).
    pub ready_at_start: bool,
    /// Next sequence number to send.
    next_seq: u32,
    /// Sequence numbers below this are due (the schedule reached them).
    due_until: u32,
    /// Own messages sent and not yet echoed (only tracked with a window).
    in_flight: u32,
    /// Distinct measured messages received (from any expected sender).
    received_measured: u64,
    /// Whether the server has told this client it rate-limits it.
    rate_limited: bool,
    /// Position in the room's ids (room scenario, binary).
    cursor: RoomCursor,
    /// Own measured messages that waited for the in-flight window, until their echo.
    deferred: lag::DeferredSends,
}

impl Client {
    pub(crate) fn new(plan: ClientPlan, role: crate::fanout::Role) -> Self {
        let streams = SenderStreams::new(role, plan.group_start, plan.group_len);
        Self {
            nick: plan.nick.clone().unwrap_or_default(),
            plan,
            status: Status::Idle,
            conn: None,
            streams,
            sent_measured: 0,
            ready_at_start: false,
            next_seq: 0,
            due_until: 0,
            in_flight: 0,
            received_measured: 0,
            rate_limited: false,
            cursor: RoomCursor::default(),
            deferred: lag::DeferredSends::default(),
        }
    }

    /// Distinct measured messages received from all senders: the sum of the streams'
    /// unique counts, kept as a running total so accounting is O(1) per client.
    pub(crate) fn received_measured(&self) -> u64 {
        self.received_measured
    }

    /// Starts a non-blocking connect.
    pub(crate) fn connect(
        &mut self,
        addr: SocketAddr,
        token: Token,
        deadline_ns: u64,
        cx: &mut Ctx<'_>,
    ) {
        let result = TcpStream::connect(addr)
            .and_then(|stream| Transport::new(stream, cx.rules.tls.as_ref()))
            .and_then(|mut stream| {
                stream.register(cx.registry, token, Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
        match result {
            Ok(stream) => {
                self.conn = Some(Conn {
                    stream,
                    token,
                    writable_interest: true,
                    out: Vec::new(),
                    sent: 0,
                    blocked: false,
                    held_since: None,
                    inbox: Inbox::Frames(FrameDecoder::new(shared::DEFAULT_MAX_FRAME)),
                });
                self.status = Status::Connecting { deadline_ns };
            }
            Err(e) => self.fail(cx, format!("connect to {addr}: {e}")),
        }
    }

    /// Gives up on a client that never got ready.
    pub(crate) fn fail(&mut self, cx: &mut Ctx<'_>, why: String) {
        self.drop_conn(cx.registry);
        self.status = Status::Failed;
        cx.tally.errors.connect_failures += 1;
        cx.tally.first_error(why);
    }

    fn drop_conn(&mut self, registry: &Registry) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.stream.deregister(registry);
        }
    }

    /// Ends a connection the peer closed or broke.
    fn lost_connection(&mut self, cx: &mut Ctx<'_>, why: String) {
        match self.status {
            Status::Connecting { .. } | Status::Handshake { .. } => self.fail(cx, why),
            Status::Ready => {
                self.drop_conn(cx.registry);
                self.status = Status::Closed;
                cx.tally.errors.disconnects += 1;
            }
            Status::Idle | Status::Failed | Status::Closed | Status::Away { .. } => {
                self.drop_conn(cx.registry);
            }
        }
    }

    /// Churn: drops the connection without a word and stays away until `until_ns`,
    /// then [`Client::connect`] again resumes the room. Only a ready client that has
    /// joined drops. Nothing is sent while away.
    pub(crate) fn drop_for_churn(&mut self, until_ns: u64, cx: &mut Ctx<'_>) -> bool {
        if self.status != Status::Ready || self.cursor.resume_point().is_none() {
            return false;
        }
        self.drop_conn(cx.registry);
        self.status = Status::Away { until_ns };
        cx.tally.churn.reconnects += 1;
        true
    }

    /// Whether the client is away or on its way back (churn), so messages may still
    /// reach it.
    pub(crate) fn returning(&self) -> bool {
        self.ready_at_start
            && matches!(
                self.status,
                Status::Away { .. } | Status::Connecting { .. } | Status::Handshake { .. }
            )
    }

    /// Says goodbye at the end of the run (best effort) and closes.
    pub(crate) fn finish(&mut self, registry: &Registry, rules: &Rules) {
        if let Some(conn) = &mut self.conn {
            match rules.protocol {
                Protocol::Binary => {
                    let bye = Frame::Goodbye {
                        reason: "load run finished".into(),
                    };
                    conn.queue_frame(&bye);
                }
                Protocol::Text => conn.out.extend_from_slice(b"/quit\n"),
                Protocol::Line | Protocol::Redis | Protocol::Nats => {}
            }
            let _ = conn.flush(registry);
        }
        self.drop_conn(registry);
        if self.status == Status::Ready {
            self.status = Status::Closed;
        }
    }

    /// Handles a poll event for this client's socket.
    pub(crate) fn on_event(
        &mut self,
        event: &mio::event::Event,
        cx: &mut Ctx<'_>,
        scratch: &mut [u8],
    ) {
        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
        let writable = event.is_writable() || event.is_write_closed();
        if let Status::Connecting { deadline_ns } = self.status {
            match self
                .conn
                .as_ref()
                .map(|c| connect_outcome(c.stream.socket()))
            {
                Some(Ok(true)) => self.on_connected(deadline_ns, cx),
                Some(Ok(false)) | None => return,
                Some(Err(e)) => {
                    self.fail(cx, format!("connect: {e}"));
                    return;
                }
            }
        }
        if writable && let Some(conn) = &mut self.conn {
            conn.blocked = false;
        }
        if writable || readable {
            self.flush(cx);
        }
        if readable {
            // With the peer's FIN (or an error) already reported, no later edge will
            // come: read until EOF or WouldBlock rather than stop at a short read.
            let final_edge = event.is_read_closed() || event.is_error();
            self.read(cx, scratch, final_edge);
        }
    }

    fn on_connected(&mut self, deadline_ns: u64, cx: &mut Ctx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        let _ = conn.stream.socket().set_nodelay(true);
        let rules = cx.rules;
        match rules.protocol {
            Protocol::Binary => {
                conn.queue_frame(&Frame::Hello {
                    version: PROTOCOL_VERSION,
                });
                match rules.scenario {
                    Scenario::Echo => {}
                    Scenario::Room => conn.queue_frame(&Frame::Join {
                        room: self.plan.room.clone().unwrap_or_default(),
                        since: self.cursor.resume_point(),
                    }),
                    Scenario::Dm => conn.queue_frame(&Frame::SetNick {
                        nick: self.nick.clone(),
                    }),
                }
            }
            Protocol::Text | Protocol::Line => {
                conn.inbox = Inbox::Lines(LineDecoder::new(shared::DEFAULT_MAX_LINE * 4));
                if rules.protocol == Protocol::Text && rules.scenario != Scenario::Echo {
                    conn.out
                        .extend_from_slice(format!("/nick {}\n", self.nick).as_bytes());
                    if let Some(room) = &self.plan.room {
                        conn.out
                            .extend_from_slice(format!("/join {room}\n").as_bytes());
                    }
                }
            }
            Protocol::Redis | Protocol::Nats => {
                let room = self.plan.room.as_deref().unwrap_or_default();
                conn.inbox = Inbox::Broker(BrokerInbox::start(rules.protocol, room, &mut conn.out));
            }
        }
        // Plain echo needs no handshake in text or line mode: the first /echo (or line)
        // tells a chat server which mode this connection speaks.
        let needs_handshake = match rules.protocol {
            Protocol::Binary | Protocol::Redis | Protocol::Nats => true,
            Protocol::Text => rules.scenario != Scenario::Echo,
            Protocol::Line => false,
        };
        self.status = if needs_handshake {
            Status::Handshake { deadline_ns }
        } else {
            Status::Ready
        };
    }

    /// Writes as much of the outbound buffer as the socket takes.
    fn flush(&mut self, cx: &mut Ctx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if let Err(e) = conn.flush(cx.registry) {
            self.lost_connection(cx, format!("write: {e}"));
            return;
        }
        if !conn.backed_up()
            && let Some(since) = conn.held_since.take()
        {
            let now = cx.clock.now_ns();
            cx.tally.lag.backlog_cleared(now.saturating_sub(since));
        }
    }

    /// The schedule reached message `seq`: send it now, or once the in-flight window
    /// has room.
    pub(crate) fn on_due(&mut self, seq: u32, cx: &mut Ctx<'_>) {
        self.due_until = self.due_until.max(seq.saturating_add(1));
        if !cx.rules.stamps.role.sends() {
            return;
        }
        if self.returning() {
            // A client away sends nothing: what falls due meanwhile is skipped, neither
            // sent nor counted, so its absence never shows up as server latency.
            self.next_seq = self.due_until;
            return;
        }
        let window = cx.rules.window;
        if window > 0 && self.in_flight >= window && self.status == Status::Ready {
            if cx.rules.schedule.intended_ns(self.plan.id, seq) >= cx.rules.measure_from_ns {
                cx.tally.deferred += 1;
            }
            return;
        }
        self.pump(Some(seq), cx);
    }

    /// Sends due messages while the window allows. Only a message sent at the moment it
    /// fell due (`on_time`) counts towards the schedule lag: waiting for the window is
    /// the server's doing, not loadgen's.
    fn pump(&mut self, on_time: Option<u32>, cx: &mut Ctx<'_>) {
        let window = cx.rules.window;
        while self.next_seq < self.due_until && (window == 0 || self.in_flight < window) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let scheduled_ns = cx.rules.schedule.intended_ns(self.plan.id, seq);
            let sent_ns = cx.clock.now_ns();
            let stamp = Stamp {
                client: self.plan.id,
                seq,
                scheduled_ns,
                sent_ns,
            };
            let measured = scheduled_ns >= cx.rules.measure_from_ns;
            let held = match &mut self.conn {
                // Queued behind bytes the server has not taken: its lag, not ours.
                Some(conn) if measured && conn.backed_up() => {
                    conn.held_since.get_or_insert(sent_ns);
                    true
                }
                _ => false,
            };
            if !self.send(&stamp, cx) {
                continue;
            }
            if window > 0 {
                self.in_flight += 1;
            }
            cx.tally.sent_all += 1;
            if measured {
                self.sent_measured += 1;
                if let Some(shared) = cx.sent.get(self.plan.id as usize) {
                    shared.store(self.sent_measured, Ordering::Relaxed);
                }
                cx.tally.sent_measured += 1;
                if on_time == Some(seq) {
                    // The window's hold is planned; lag counts from the release.
                    let release_ns = cx.rules.send_window.release_ns(scheduled_ns);
                    cx.tally.lag.record(release_ns, sent_ns);
                } else if window > 0 {
                    self.deferred.push(seq);
                }
                if held {
                    cx.tally.lag.record_held();
                }
            }
        }
    }

    /// Queues one load message and writes it if the socket takes it. Returns whether the
    /// message was queued (the connection is ready and its buffer not full).
    fn send(&mut self, stamp: &Stamp, cx: &mut Ctx<'_>) -> bool {
        if self.status != Status::Ready {
            return false;
        }
        let Some(conn) = &mut self.conn else {
            return false;
        };
        if conn.out.len() - conn.sent > MAX_OUTBOUND {
            cx.tally.errors.stalled_sends += 1;
            return false;
        }
        let wire = cx.rules.stamps.outgoing(stamp);
        encode_message(&wire, cx.rules, &self.plan, &mut conn.out);
        self.flush(cx);
        true
    }

    fn read(&mut self, cx: &mut Ctx<'_>, scratch: &mut [u8], final_edge: bool) {
        loop {
            let Some(conn) = &mut self.conn else { return };
            let n = match conn.stream.read(scratch) {
                Ok(0) => {
                    self.lost_connection(cx, "the server closed the connection".into());
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.lost_connection(cx, format!("read: {e}"));
                    return;
                }
            };
            let drained = conn.stream.drained(n, scratch.len());
            // One timestamp per read: everything in it arrived together.
            let at = cx.clock.now_ns();
            match &mut conn.inbox {
                Inbox::Frames(d) => d.feed(&scratch[..n]),
                Inbox::Lines(d) => d.feed(&scratch[..n]),
                Inbox::Broker(d) => d.feed(&scratch[..n]),
            }
            if !self.drain_inbox(at, cx) || (drained && !final_edge) {
                // A short read emptied the socket; data arriving later raises a new
                // edge, so the extra read that would return WouldBlock is skipped.
                return;
            }
        }
    }

    /// Decodes everything buffered. Returns `false` when the connection was dropped.
    fn drain_inbox(&mut self, at: u64, cx: &mut Ctx<'_>) -> bool {
        loop {
            let Some(conn) = &mut self.conn else {
                return false;
            };
            let decoded = match &mut conn.inbox {
                Inbox::Frames(d) => d.decode().map(|f| f.map(Incoming::Frame)),
                Inbox::Lines(d) => d.decode().map(|l| l.map(Incoming::Line)),
                Inbox::Broker(_) => return self.drain_broker(at, cx),
            };
            match decoded {
                Ok(None) => return true,
                Ok(Some(Incoming::Frame(frame))) => self.on_frame(frame, at, cx),
                Ok(Some(Incoming::Line(line))) => self.on_line(&line, at, cx),
                Err(e) => {
                    cx.tally.errors.protocol_errors += 1;
                    self.lost_connection(cx, format!("undecodable data from the server: {e}"));
                    return false;
                }
            }
        }
    }

    fn handshaking(&self) -> bool {
        matches!(self.status, Status::Handshake { .. })
    }

    fn on_frame(&mut self, frame: Frame, at: u64, cx: &mut Ctx<'_>) {
        let scenario = cx.rules.scenario;
        match frame {
            Frame::EchoReply { payload, .. } if scenario == Scenario::Echo => {
                self.deliver(Stamp::from_binary(&payload).ok(), at, cx);
            }
            Frame::RoomMsg { room, text, id, .. }
                if scenario == Scenario::Room
                    && self.plan.room.as_deref() == Some(room.as_str()) =>
            {
                let fit = self.cursor.message(id);
                if !fit.in_order {
                    cx.tally.churn.order_breaks += 1;
                }
                let stamp = Stamp::from_ascii(text.as_bytes()).ok();
                self.deliver_as(stamp, at, cx, fit.replayed);
            }
            Frame::Resumed {
                room,
                replayed,
                missed,
            } if self.plan.room.as_deref() == Some(room.as_str()) => {
                self.cursor.resumed(replayed);
                cx.tally.churn.missed += missed;
            }
            Frame::DirectMsg { text, .. } if scenario == Scenario::Dm => {
                self.deliver(Stamp::from_ascii(text.as_bytes()).ok(), at, cx);
            }
            Frame::Welcome { version, nick, .. } => {
                if version != PROTOCOL_VERSION {
                    let why =
                        format!("server speaks protocol {version}, loadgen {PROTOCOL_VERSION}");
                    self.fail(cx, why);
                    return;
                }
                if self.plan.nick.is_none() {
                    self.nick = nick;
                }
                if self.handshaking() && scenario == Scenario::Echo {
                    self.status = Status::Ready;
                }
            }
            Frame::Joined {
                room, nick, last, ..
            } if self.handshaking()
                && self.plan.room.as_deref() == Some(room.as_str())
                && nick == self.nick =>
            {
                self.cursor.joined(last);
                self.status = Status::Ready;
            }
            Frame::NickChanged { new, .. }
                if self.handshaking() && scenario == Scenario::Dm && new == self.nick =>
            {
                self.status = Status::Ready;
            }
            Frame::Ping { token } => {
                if let Some(conn) = &mut self.conn {
                    conn.queue_frame(&Frame::Pong { token });
                }
                self.flush(cx);
            }
            Frame::Error { code, text } => self.on_server_error(code, &text, cx),
            Frame::Shutdown { reason } => {
                cx.tally
                    .note_error(format!("server shutting down: {reason}"));
            }
            _ => {}
        }
    }

    /// An `Error` frame or `ERR` line. One whose code closes the connection (server
    /// full, slow consumer, ...) is the reason for the close that follows: the client
    /// counts one error for both, a connect failure while handshaking and a server
    /// error once ready, and lets the connection go without counting a disconnect.
    fn on_server_error(&mut self, code: ErrorCode, text: &str, cx: &mut Ctx<'_>) {
        if code == ErrorCode::RATE_LIMITED {
            // A notice, not a refusal: the server reads this client at its rate limit.
            if !self.rate_limited {
                self.rate_limited = true;
                cx.tally.errors.rate_limited_clients += 1;
            }
            return;
        }
        if self.handshaking() {
            cx.tally.first_error(format!("server error {code}: {text}"));
            self.fail(cx, format!("handshake refused: {code}: {text}"));
            return;
        }
        cx.tally.note_error(format!("server error {code}: {text}"));
        if code.closes_connection() && self.status == Status::Ready {
            self.drop_conn(cx.registry);
            self.status = Status::Closed;
        }
    }

    fn on_line(&mut self, line: &str, at: u64, cx: &mut Ctx<'_>) {
        if cx.rules.protocol == Protocol::Line {
            // A plain echo server sends back only what we sent.
            self.deliver(Stamp::from_ascii(line.as_bytes()).ok(), at, cx);
            return;
        }
        if let Some(rest) = line.strip_prefix("ERR ") {
            let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = ErrorCode(code.parse().unwrap_or(0));
            self.on_server_error(code, text, cx);
            return;
        }
        match cx.rules.scenario {
            Scenario::Echo => {
                // `SECONDS.MICROS:PAYLOAD`
                if let Some((time, payload)) = line.split_once(':')
                    && !time.is_empty()
                    && time.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && payload.as_bytes().first() == Some(&ASCII_MARKER)
                {
                    self.deliver(Stamp::from_ascii(payload.as_bytes()).ok(), at, cx);
                }
            }
            Scenario::Room => {
                let Some(room) = &self.plan.room else { return };
                let Some(rest) = line
                    .strip_prefix('[')
                    .and_then(|l| l.strip_prefix(room.as_str()))
                    .and_then(|l| l.strip_prefix("] "))
                else {
                    return;
                };
                if rest.starts_with('<') {
                    if let Some((_, text)) = rest.split_once("> ") {
                        self.deliver(Stamp::from_ascii(text.as_bytes()).ok(), at, cx);
                    }
                } else if self.handshaking()
                    && rest
                        .strip_prefix("* ")
                        .and_then(|r| r.strip_prefix(self.nick.as_str()))
                        .is_some_and(|r| r.starts_with(" joined"))
                {
                    self.status = Status::Ready;
                }
            }
            Scenario::Dm => {
                if let Some(rest) = line.strip_prefix("[dm] <") {
                    if let Some((_, text)) = rest.split_once("> ") {
                        self.deliver(Stamp::from_ascii(text.as_bytes()).ok(), at, cx);
                    }
                } else if self.handshaking()
                    && line
                        .strip_suffix(self.nick.as_str())
                        .is_some_and(|l| l.ends_with(" is now known as "))
                {
                    self.status = Status::Ready;
                }
            }
        }
    }

    /// Accounts for one received stamp (`None`: it did not check out).
    fn deliver(&mut self, stamp: Option<Stamp>, at: u64, cx: &mut Ctx<'_>) {
        self.deliver_as(stamp, at, cx, false);
    }

    /// [`Client::deliver`], for a message that came live or in a replay: a replayed
    /// one's latency goes to the replay histogram, not with the live ones.
    fn deliver_as(&mut self, stamp: Option<Stamp>, at: u64, cx: &mut Ctx<'_>, replayed: bool) {
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

enum Incoming {
    Frame(Frame),
    Line(String),
}

impl Conn {
    /// Whether bytes wait for the socket (so a new message queues behind them).
    fn backed_up(&self) -> bool {
        self.blocked || self.sent < self.out.len() || self.stream.wants_write()
    }

    /// Appends an encoded frame. Only loadgen's own small frames pass through here, so
    /// encoding cannot fail (a name over 255 bytes would be a loadgen bug).
    fn queue_frame(&mut self, frame: &Frame) {
        let mut buf = BytesMut::new();
        if frame.encode(&mut buf).is_ok() {
            self.out.extend_from_slice(&buf);
        }
    }

    /// Writes until done or the socket would block, and asks for WRITABLE events only
    /// while something is left. Errors mean the connection is gone.
    fn flush(&mut self, registry: &Registry) -> io::Result<()> {
        if self.blocked {
            // Still full: the WRITABLE event that clears `blocked` brings the next try.
            return Ok(());
        }
        // TLS records left over from the handshake or an earlier write go first.
        self.stream.flush()?;
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // TLS records still held: the socket said `WouldBlock` to them.
        if self.stream.wants_write() {
            self.blocked = true;
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > 64 << 10 && self.sent * 2 > self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        let want_writable = !self.out.is_empty() || self.stream.wants_write();
        if want_writable != self.writable_interest {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.stream.reregister(registry, self.token, interest)?;
            self.writable_interest = want_writable;
        }
        Ok(())
    }
}

/// Whether a non-blocking connect finished: `Ok(true)` connected, `Ok(false)` still in
/// progress (spurious wake-up), `Err` failed.
fn connect_outcome(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
