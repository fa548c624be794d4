//! The hostile client driver: one thread, one `mio::Poll`, many non-blocking
//! connections, each a small state machine of its [`Kind`]. Slots are connected at
//! `connect_rate`, misbehave, and (with `cycle`) reconnect after `cycle_delay` until the
//! duration runs out; then long-lived kinds are judged (idle clients send their final
//! echo) and everything is closed within `grace`.
//!
//! Memory is bounded by construction: each connection buffers at most one flooder
//! batch of output and whatever the server sent since the last read.
//!
//! Layout: this file holds the driver's loop, timers and connecting; `send` what each
//! kind writes and when, `receive` what comes back, `judge` the verdict on a finished
//! connection, `wire` the bytes and sockets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use shared::frame::types;
use shared::{Frame, FrameDecoder};
use socket2::SockRef;

use crate::kind::Kind;
use crate::report::{KindReport, Report};
use crate::rng::XorShift;

mod judge;
mod receive;
mod send;
mod wire;

use wire::{open_socket, put_frame};

/// Largest frame a hostile client accepts from the server (its max frame plus slack,
/// with room for a raised `--max-frame`).
const READ_MAX_FRAME: usize = 64 << 20;
/// Output a flooder keeps queued; refilled only when drained, so it stays bounded.
const FLOOD_BATCH: usize = 32 << 10;
/// A non-reader drains what it has (and notices a close) this often.
const NON_READER_CHECK: Duration = Duration::from_secs(4);
/// How long a non-reader reads during a check.
const NON_READER_PEEK: Duration = Duration::from_millis(500);
/// How long a non-reader reads at the end of the run to see whether it was closed.
const NON_READER_FINAL_READ: Duration = Duration::from_secs(2);
/// Body bytes of a partial or stalled client's frame, written from here as the socket
/// takes them, so a thousand clients stuck mid-frame cost no memory of their own.
static FILLER: [u8; 16 << 10] = [b'p'; 16 << 10];
/// Send buffer a stalled client asks for: what the server does not read waits as a
/// count here rather than in kernel buffers.
const STALLED_SNDBUF: usize = 64 << 10;
/// Receive buffer asked for by non-readers, so their backlog lands in the server's
/// queue quickly.
const NON_READER_RCVBUF: usize = 4096;
/// Bytes a single drain may read before it stops (a non-reader's backlog).
const DRAIN_LIMIT: usize = 64 << 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct HostileConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Hostile slots (connections at once), spread round-robin over `kinds`.
    pub connections: usize,
    /// Kinds to run.
    pub kinds: Vec<Kind>,
    /// How long to keep misbehaving.
    pub duration: Duration,
    /// New connections per second while ramping up.
    pub connect_rate: f64,
    /// Reconnect a slot after its connection ends (until the duration is over).
    pub cycle: bool,
    /// Pause before a slot reconnects.
    pub cycle_delay: Duration,
    /// After the duration: time for final echoes and drains.
    pub grace: Duration,
    /// How long to wait for the server's answer to a violation before giving up.
    pub answer_timeout: Duration,
    /// Room that non-readers and talkers join; room holders' rooms are named
    /// `ROOM-SLOT-K`.
    pub room: String,
    /// Rooms each room holder joins.
    pub rooms_per_conn: usize,
    /// Talkers to run when non-readers run (0: none).
    pub talkers: usize,
    /// Messages per second per talker.
    pub talk_rate: f64,
    /// Text bytes per talker message.
    pub talk_size: usize,
    /// Pause between the bytes of a slowloris client.
    pub slow_interval: Duration,
    /// Length (type byte plus body) of the frame a partial or stalled client starts;
    /// capped at the server's max frame.
    pub partial_frame: usize,
    /// Body bytes of that frame it sends; capped so that at least one stays missing.
    pub partial_sent: usize,
    /// Protocol-abuse kinds wait a random time up to this after connecting before they
    /// misbehave, so that many are connected at once (0: misbehave at once).
    pub hold: Duration,
    /// Seed of the garbage.
    pub seed: u64,
    /// The server's `--rate-limit`, to judge flooders against.
    pub rate_limit: u32,
    /// The server's `--rate-burst`.
    pub rate_burst: u32,
}

impl Default for HostileConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], shared::DEFAULT_PORT)),
            connections: 100,
            kinds: crate::kind::Kind::PROTOCOL_ABUSE.to_vec(),
            duration: Duration::from_secs(10),
            connect_rate: 2000.0,
            cycle: true,
            cycle_delay: Duration::from_millis(500),
            grace: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(5),
            room: "soak-busy".to_owned(),
            rooms_per_conn: 64,
            talkers: 1,
            talk_rate: 500.0,
            talk_size: 4000,
            slow_interval: Duration::from_millis(50),
            partial_frame: 512 << 10,
            partial_sent: 256 << 10,
            hold: Duration::ZERO,
            seed: 0x5eed_cafe,
            rate_limit: 1000,
            rate_burst: 2000,
        }
    }
}

/// Why a hostile run could not even start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostileError {
    /// Creating the poller failed (out of file descriptors?).
    #[error("cannot create the poller")]
    Poll(#[source] io::Error),
    /// Nothing to run: no connections, or no kinds.
    #[error("nothing to run: give --connections above 0 and at least one kind")]
    Empty,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// EOF or reset from the server; `reset` says which.
    ServerClosed { reset: bool },
    /// We closed it as part of the script (or after the final answer).
    WeClosed,
    /// The server did not answer within the answer timeout.
    Unanswered,
    /// The duration (plus grace) ran out.
    Deadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Open a connection for this slot.
    Connect { slot: usize },
    /// Kind-specific periodic work (slowloris byte, talker message, non-reader check).
    Tick { token: usize, generation: u64 },
    /// The server had its time to answer.
    Answer { token: usize, generation: u64 },
    /// A held connection starts misbehaving.
    Start { token: usize, generation: u64 },
}

/// How server output is read on one connection.
enum Reader {
    Binary(FrameDecoder),
    Text(Vec<u8>),
}

struct Conn {
    kind: Kind,
    slot: usize,
    generation: u64,
    stream: TcpStream,
    connected: bool,
    started: Instant,
    out: BytesMut,
    reader: Reader,
    welcomed: bool,
    max_frame: usize,
    codes: Vec<u16>,
    requests: u64,
    replies: u64,
    shutdown_seen: bool,
    /// Slowloris: the bytes still to trickle out.
    trickle: Bytes,
    /// Slowloris: the `Hello` is out; every later completed frame is an echo request.
    hello_trickled: bool,
    /// Idle: the final echo went out.
    final_sent: bool,
    /// Idle: the final echo came back.
    final_ok: bool,
    /// Close with a reset rather than a FIN.
    reset_on_close: bool,
    /// Non-reader: reads normally until then (a check, or the end of the run).
    reading_until: Option<Instant>,
    /// A held connection's first bytes went out at connect (see [`Driver::prelude`]).
    hello_sent: bool,
    /// A held garbage connection's bytes after its first one, sent when the hold ends.
    held_back: Bytes,
    /// The kind's script has started (for a held connection: its hold is over).
    misbehaving: bool,
    /// Partial and stalled: body bytes still to write, from [`FILLER`].
    stall_left: usize,
}

/// Runs hostile clients as configured and reports what happened.
pub fn run(config: &HostileConfig) -> Result<Report, HostileError> {
    if config.connections == 0 || config.kinds.is_empty() {
        return Err(HostileError::Empty);
    }
    let mut driver = Driver::new(config)?;
    driver.run();
    Ok(driver.into_report())
}

struct Driver<'a> {
    config: &'a HostileConfig,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    peak_open: usize,
    /// Kind of each slot (talkers after the hostile slots).
    slots: Vec<Kind>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    next_generation: u64,
    rng: XorShift,
    report: Report,
    start: Instant,
    deadline: Instant,
    past_deadline: bool,
    /// First connections not yet opened; without `cycle`, the run is over once they are
    /// all opened and closed.
    first_connects_left: usize,
    scratch: Vec<u8>,
}

impl<'a> Driver<'a> {
    fn new(config: &'a HostileConfig) -> Result<Self, HostileError> {
        let poll = Poll::new().map_err(HostileError::Poll)?;
        let mut slots: Vec<Kind> = (0..config.connections)
            .map(|i| config.kinds[i % config.kinds.len()])
            .collect();
        if config.kinds.contains(&Kind::NonReader) {
            slots.extend(std::iter::repeat_n(Kind::Talker, config.talkers));
        }
        let start = Instant::now();
        let mut report = Report {
            rate_limit: config.rate_limit,
            rate_burst: config.rate_burst,
            ..Report::default()
        };
        for &kind in &slots {
            report.kinds.entry(kind).or_default();
        }
        let mut driver = Self {
            config,
            poll,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            peak_open: 0,
            slots,
            timers: BinaryHeap::new(),
            next_generation: 0,
            rng: XorShift::new(config.seed),
            report,
            start,
            deadline: start + config.duration,
            past_deadline: false,
            first_connects_left: 0,
            scratch: vec![0; 64 << 10],
        };
        let rate = config.connect_rate.max(1.0);
        // Talkers first, so the busy room is busy before the non-readers arrive.
        let order: Vec<usize> = (config.connections..driver.slots.len())
            .chain(0..config.connections)
            .collect();
        for (i, slot) in order.into_iter().enumerate() {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            driver.timers.push(Reverse((at, Timer::Connect { slot })));
        }
        driver.first_connects_left = driver.slots.len();
        Ok(driver)
    }

    fn tally(&mut self, kind: Kind) -> &mut KindReport {
        self.report.kinds.entry(kind).or_default()
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let hard_end = self.deadline + self.config.grace;
        loop {
            let now = Instant::now();
            if !self.past_deadline && now >= self.deadline {
                self.past_deadline = true;
                self.on_deadline();
            }
            let all_done = !self.config.cycle && self.first_connects_left == 0 && self.open == 0;
            if all_done || (self.past_deadline && (self.open == 0 || now >= hard_end)) {
                break;
            }
            while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
                if at > now {
                    break;
                }
                self.timers.pop();
                self.on_timer(timer);
            }
            let next = self
                .timers
                .peek()
                .map_or(hard_end, |Reverse((at, _))| *at)
                .min(if self.past_deadline {
                    hard_end
                } else {
                    self.deadline
                });
            let timeout = next.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                break;
            }
            for event in events.iter() {
                let token = event.token().0;
                if event.is_writable() {
                    self.on_writable(token);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(token, event.is_read_closed() || event.is_error());
                }
            }
        }
        for token in 0..self.conns.len() {
            if self.conns[token].is_some() {
                self.finish(token, End::Deadline);
            }
        }
        self.report.elapsed = self.start.elapsed();
        self.report.peak_open = self.peak_open;
    }

    fn into_report(self) -> Report {
        self.report
    }

    // ---- connections -----------------------------------------------------------------

    fn connect(&mut self, slot: usize) {
        let kind = self.slots[slot];
        self.tally(kind).connections += 1;
        let stream = match open_socket(self.config.addr, kind) {
            Ok(s) => s,
            Err(_) => {
                self.tally(kind).connect_failures += 1;
                self.schedule_reconnect(slot);
                return;
            }
        };
        let token = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let mut conn = Conn {
            kind,
            slot,
            generation: self.next_generation,
            stream,
            connected: false,
            started: Instant::now(),
            out: BytesMut::new(),
            reader: if kind.is_binary() {
                Reader::Binary(FrameDecoder::new(READ_MAX_FRAME))
            } else {
                Reader::Text(Vec::new())
            },
            welcomed: false,
            max_frame: shared::DEFAULT_MAX_FRAME,
            codes: Vec::new(),
            requests: 0,
            replies: 0,
            shutdown_seen: false,
            trickle: Bytes::new(),
            hello_trickled: false,
            final_sent: false,
            final_ok: false,
            reset_on_close: false,
            reading_until: None,
            hello_sent: false,
            held_back: Bytes::new(),
            misbehaving: false,
            stall_left: 0,
        };
        self.next_generation += 1;
        if self
            .poll
            .registry()
            .register(
                &mut conn.stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.tally(kind).connect_failures += 1;
            self.free.push(token);
            self.schedule_reconnect(slot);
            return;
        }
        self.conns[token] = Some(conn);
        self.open += 1;
        self.peak_open = self.peak_open.max(self.open);
    }

    fn schedule_reconnect(&mut self, slot: usize) {
        if !self.config.cycle || self.past_deadline {
            return;
        }
        let at = Instant::now() + self.config.cycle_delay;
        if at < self.deadline {
            self.timers.push(Reverse((at, Timer::Connect { slot })));
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Connect { slot } => {
                self.first_connects_left = self.first_connects_left.saturating_sub(1);
                if !self.past_deadline {
                    self.connect(slot);
                }
            }
            Timer::Tick { token, generation } => {
                if self.is_current(token, generation) {
                    self.on_tick(token);
                }
            }
            Timer::Answer { token, generation } => {
                if self.is_current(token, generation) {
                    self.finish(token, End::Unanswered);
                }
            }
            Timer::Start { token, generation } => {
                if self.is_current(token, generation) {
                    self.misbehave(token);
                    self.flush(token);
                }
            }
        }
    }

    fn is_current(&self, token: usize, generation: u64) -> bool {
        matches!(&self.conns[token], Some(c) if c.generation == generation)
    }

    fn timer_in(&mut self, token: usize, after: Duration, make: fn(usize, u64) -> Timer) {
        if let Some(conn) = &self.conns[token] {
            let timer = make(token, conn.generation);
            self.timers.push(Reverse((Instant::now() + after, timer)));
        }
    }

    fn tick_in(&mut self, token: usize, after: Duration) {
        self.timer_in(token, after, |token, generation| Timer::Tick {
            token,
            generation,
        });
    }

    fn answer_timeout(&mut self, token: usize) {
        let after = self.config.answer_timeout;
        self.timer_in(token, after, |token, generation| Timer::Answer {
            token,
            generation,
        });
    }

    fn on_deadline(&mut self) {
        for token in 0..self.conns.len() {
            let Some(conn) = self.conns[token].as_mut() else {
                continue;
            };
            match conn.kind {
                Kind::Idle if conn.welcomed => {
                    conn.final_sent = true;
                    conn.requests += 1;
                    put_frame(
                        &mut conn.out,
                        &Frame::Echo {
                            payload: Bytes::from_static(b"final"),
                        },
                    );
                    self.flush(token);
                }
                Kind::NonReader => {
                    // Read until the server's close shows (it follows the bytes queued
                    // before it), for at most NON_READER_FINAL_READ.
                    let read_for = self.config.grace.min(NON_READER_FINAL_READ);
                    conn.reading_until = Some(Instant::now() + read_for);
                    self.tick_in(token, read_for);
                    self.drain_non_reader(token);
                }
                _ => self.finish(token, End::Deadline),
            }
        }
    }

    fn drop_conn(&mut self, token: usize) -> Option<Conn> {
        let mut conn = self.conns[token].take()?;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.free.push(token);
        self.open -= 1;
        Some(conn)
    }

    /// Ends a connection, judges it, and schedules its slot's next connection.
    fn finish(&mut self, token: usize, end: End) {
        let Some(conn) = self.drop_conn(token) else {
            return;
        };
        if conn.reset_on_close {
            let _ = SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        let hit = judge::judge(&conn, end);
        let lifetime = conn.started.elapsed();
        let slot = conn.slot;
        let t = self.tally(conn.kind);
        t.welcomed += u64::from(conn.welcomed);
        t.requests += conn.requests;
        t.replies += conn.replies;
        for &code in &conn.codes {
            *t.codes.entry(code).or_default() += 1;
        }
        match end {
            End::ServerClosed { reset } => {
                t.server_closed += 1;
                t.resets += u64::from(reset);
            }
            End::WeClosed => t.we_closed += 1,
            End::Unanswered => t.unanswered += 1,
            End::Deadline => t.at_deadline += 1,
        }
        t.shutdowns += u64::from(conn.shutdown_seen);
        match hit {
            Some(true) => t.hits += 1,
            Some(false) => t.misses += 1,
            None => {}
        }
        t.lifetime += lifetime;
        if conn.replies > t.max_replies_one {
            t.max_replies_one = conn.replies;
            t.max_replies_lifetime = lifetime;
        }
        drop(conn);
        self.schedule_reconnect(slot);
    }
}

/// A frame header announcing one byte more than the server's `max_frame`, and a few
/// body bytes the server must never wait for.
fn put_oversize(conn: &mut Conn) {
    let len = conn.max_frame as u32 + 1;
    conn.out.put_u32(len);
    conn.out.put_u8(types::ECHO);
    conn.out.extend_from_slice(&[b'o'; 16]);
}
