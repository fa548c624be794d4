//! Fan-out under overload (`hostile fanout`): `members` connections join one room,
//! `senders` of them write `Say` frames into it as fast as their sockets take them (the
//! server is meant to run without a rate limit), and every member reads everything.
//! After `duration` the senders stop queueing (what they queued still goes out) and
//! everyone reads until each member has every sender's every message, or `drain_timeout`
//! passes.
//!
//! Each message's text starts with its sender, a sequence number and its send time, so
//! each member counts exactly what was lost, repeated or reordered, and how late each
//! delivery was. Senders are members too: the server sends a message back to its author.
//! A member the server closes (a slow consumer) misses the rest; the report tells the
//! loss among the members it kept (`lost_open`) from the deliveries that never had a
//! reader, and a sender it closed is owed to the others only what the server read.
//!
//! One thread, one `mio::Poll`. The thread reads before it writes: senders queue more
//! only while no member has unread data beyond one read turn, so the tool's own readers
//! keep up with what the server sends as long as the tool gets CPU. Memory is bounded: a
//! sender queues one batch at a time, and a member holds at most one read turn plus one
//! frame of input.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use shared::frame::{LEN_PREFIX, types};
use shared::{Frame, PROTOCOL_VERSION};

/// Say frames queued per sender at a time; refilled only once written.
const SEND_BATCH: usize = 32 << 10;
/// Bytes read from one member per turn before the others get theirs.
const READ_TURN: usize = 256 << 10;
/// Largest frame accepted from the server.
const READ_MAX_FRAME: usize = 16 << 20;
/// Delivery delays are counted in 1 ms buckets up to this many; later ones in the last.
const LATENCY_BUCKETS: usize = 60_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections in the room, senders included.
    pub members: usize,
    /// Members that flood the room.
    pub senders: usize,
    /// The room.
    pub room: String,
    /// Text bytes per message (at least what the stamp needs).
    pub size: usize,
    /// How long the senders flood.
    pub duration: Duration,
    /// After the flood: how long deliveries may take to arrive.
    pub drain_timeout: Duration,
    /// Time for every member to connect and join.
    pub join_timeout: Duration,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], shared::DEFAULT_PORT)),
            members: 100,
            senders: 4,
            room: "soak-fanout".to_owned(),
            size: 64,
            duration: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(20),
            join_timeout: Duration::from_secs(20),
        }
    }
}

/// One connection in the room.
struct Member {
    stream: TcpStream,
    /// What the server sent and is not handled yet.
    input: BytesMut,
    out: BytesMut,
    /// Our nick, from `Welcome`; our own `Joined` carries it.
    nick: Option<String>,
    joined: bool,
    /// Closed by the server (EOF, reset or a write error).
    closed: bool,
    /// Sender number, if this member floods.
    sender: Option<usize>,
    /// Sender: the next sequence number to queue (= messages queued so far).
    next_seq: u64,
    /// Per sender: the next sequence number expected from it.
    expect: Vec<u64>,
    /// Messages that arrived in order (a skipped one never counts).
    received: u64,
    /// A write stopped without `WouldBlock`: no writable edge will come, so write again
    /// next turn.
    write_again: bool,
    /// A read stopped at [`READ_TURN`] with data left: read again next turn.
    read_again: bool,
}

/// The message stamp: `SENDER:SEQ:MICROS:`, then filler.
fn stamp(out: &mut String, sender: usize, seq: u64, micros: u64, size: usize) {
    use std::fmt::Write as _;
    out.clear();
    let _ = write!(out, "{sender}:{seq}:{micros}:");
    while out.len() < size {
        out.push('x');
    }
}

/// Runs the flood and reports what every member saw.
pub fn run(config: &FanoutConfig) -> FanoutReport {
    let mut report = FanoutReport {
        members: config.members,
        senders: config.senders.min(config.members),
        latency: vec![0; LATENCY_BUCKETS],
        ..FanoutReport::default()
    };
    match Flood::new(config) {
        Ok(mut flood) => flood.run(&mut report),
        Err(e) => report.failure = Some(format!("cannot create the poller: {e}")),
    }
    report
}

struct Flood<'a> {
    config: &'a FanoutConfig,
    poll: Poll,
    members: Vec<Member>,
    scratch: Vec<u8>,
    text: String,
    /// Time zero of the stamps.
    epoch: Instant,
    /// Senders queue messages (between the joins and the end of the flood).
    flooding: bool,
    /// Some member had more to read than one turn takes: senders wait.
    readers_behind: bool,
}

impl<'a> Flood<'a> {
    fn new(config: &'a FanoutConfig) -> io::Result<Self> {
        Ok(Self {
            config,
            poll: Poll::new()?,
            members: Vec::with_capacity(config.members),
            scratch: vec![0; READ_TURN],
            text: String::new(),
            epoch: Instant::now(),
            flooding: false,
            readers_behind: false,
        })
    }

    fn run(&mut self, report: &mut FanoutReport) {
        let senders = report.senders;
        for i in 0..self.config.members {
            if let Err(e) = self.connect(i, senders) {
                report.failure = Some(format!("member {i} cannot connect: {e}"));
                return;
            }
        }
        let mut events = Events::with_capacity(1024);
        // Everyone joins before anyone floods.
        let join_deadline = Instant::now() + self.config.join_timeout;
        while self.members.iter().any(|m| !m.joined && !m.closed) {
            if Instant::now() >= join_deadline {
                break;
            }
            self.turn(&mut events, join_deadline, report);
        }
        report.joined = self.members.iter().filter(|m| m.joined).count();
        if report.joined < self.config.members {
            report.failure = Some(format!(
                "{} of {} members joined within {:?}",
                report.joined, self.config.members, self.config.join_timeout
            ));
            self.tally(report);
            return;
        }
        let start = Instant::now();
        let flood_end = start + self.config.duration;
        self.flooding = true;
        for i in 0..self.members.len() {
            self.flush(i);
        }
        while Instant::now() < flood_end {
            self.turn(&mut events, flood_end, report);
        }
        self.flooding = false;
        report.flood = start.elapsed();
        let sent: u64 = self.members.iter().map(|m| m.next_seq).sum();
        report.sent = sent;
        report.expected = sent * self.config.members as u64;
        let drain_end = Instant::now() + self.config.drain_timeout;
        while !self.all_delivered() && Instant::now() < drain_end {
            self.turn(&mut events, drain_end, report);
        }
        report.drain = flood_end.elapsed();
        self.tally(report);
    }

    fn connect(&mut self, index: usize, senders: usize) -> io::Result<()> {
        let std_stream =
            std::net::TcpStream::connect_timeout(&self.config.addr, self.config.join_timeout)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut out = BytesMut::new();
        put(
            &mut out,
            &Frame::Hello {
                version: PROTOCOL_VERSION,
            },
        );
        put(
            &mut out,
            &Frame::Join {
                room: self.config.room.clone(),
                since: None,
            },
        );
        self.members.push(Member {
            stream,
            input: BytesMut::with_capacity(2 * READ_TURN),
            out,
            nick: None,
            joined: false,
            closed: false,
            sender: (index < senders).then_some(index),
            next_seq: 0,
            expect: vec![0; senders],
            received: 0,
            write_again: true,
            read_again: false,
        });
        Ok(())
    }

    /// Whether every open member has every message the senders queued.
    fn all_delivered(&self) -> bool {
        let due = self.due();
        self.members
            .iter()
            .filter(|m| !m.closed)
            .all(|m| m.expect == due && m.out.is_empty())
    }

    /// Per sender, the messages every member still open must get: all it queued if it
    /// is open (its socket is drained to the server); if the server closed it, what it
    /// read from it before, which is the most any open member got (each message the
    /// server reads goes to every member).
    fn due(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter_map(|m| m.sender.map(|s| (s, m)))
            .map(|(s, sender)| {
                if sender.closed {
                    let open = self.members.iter().filter(|m| !m.closed);
                    open.map(|m| m.expect[s]).max().unwrap_or(0)
                } else {
                    sender.next_seq
                }
            })
            .collect()
    }

    /// One poll and what it reported; returns at `until` at the latest.
    fn turn(&mut self, events: &mut Events, until: Instant, report: &mut FanoutReport) {
        let busy = self
            .members
            .iter()
            .any(|m| !m.closed && (m.write_again || m.read_again));
        let timeout = if busy {
            Duration::ZERO
        } else {
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100))
        };
        if let Err(e) = self.poll.poll(events, Some(timeout))
            && e.kind() != io::ErrorKind::Interrupted
        {
            report
                .failure
                .get_or_insert_with(|| format!("poll failed: {e}"));
            return;
        }
        for event in events.iter() {
            let i = event.token().0;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                self.members[i].read_again = true;
            }
            if event.is_writable() {
                self.members[i].write_again = true;
            }
        }
        for i in 0..self.members.len() {
            if self.members[i].read_again {
                self.read(i, report);
            }
        }
        self.readers_behind = self.members.iter().any(|m| m.read_again && !m.closed);
        for i in 0..self.members.len() {
            if self.members[i].write_again {
                self.flush(i);
            }
        }
    }

    fn read(&mut self, i: usize, report: &mut FanoutReport) {
        let mut total = 0;
        let member = &mut self.members[i];
        member.read_again = false;
        while !member.closed {
            match member.stream.read(&mut self.scratch) {
                Ok(0) => member.closed = true,
                Ok(n) => {
                    member.input.extend_from_slice(&self.scratch[..n]);
                    total += n;
                    if total >= READ_TURN {
                        member.read_again = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => member.closed = true,
            }
        }
        let now_us = self.epoch.elapsed().as_micros() as u64;
        while let Some((frame_type, len)) = next_frame(&member.input) {
            if len == 0 || len > READ_MAX_FRAME {
                *report.codes.entry(0).or_default() += 1;
                member.closed = true;
                break;
            }
            let body = &member.input[LEN_PREFIX + 1..LEN_PREFIX + len];
            if frame_type == types::ROOM_MSG {
                // Read in place: a million deliveries a second must not allocate.
                match room_msg_stamp(body) {
                    Some((sender, seq, sent_us)) if sender < member.expect.len() => {
                        let next = &mut member.expect[sender];
                        if seq < *next {
                            report.late_or_repeated += 1;
                        } else {
                            if seq > *next {
                                report.gaps += 1;
                            }
                            *next = seq + 1;
                            member.received += 1;
                            report.received += 1;
                            let ms = (now_us.saturating_sub(sent_us) / 1000) as usize;
                            report.latency[ms.min(LATENCY_BUCKETS - 1)] += 1;
                        }
                    }
                    _ => *report.codes.entry(0).or_default() += 1,
                }
            } else {
                let body = Bytes::copy_from_slice(body);
                match Frame::decode(frame_type, body) {
                    Ok(Frame::Welcome { nick, .. }) => member.nick = Some(nick),
                    Ok(Frame::Joined { nick, .. })
                        if member.nick.as_deref() == Some(nick.as_str()) =>
                    {
                        member.joined = true;
                    }
                    Ok(Frame::Ping { token }) => {
                        put(&mut member.out, &Frame::Pong { token });
                        member.write_again = true;
                    }
                    Ok(Frame::Error { code, .. }) => {
                        *report.codes.entry(code.0).or_default() += 1;
                    }
                    Ok(_) => {}
                    Err(_) => *report.codes.entry(0).or_default() += 1,
                }
            }
            member.input.advance(LEN_PREFIX + len);
        }
    }

    /// Writes what the member has queued; a sender in the flood refills its batch.
    fn flush(&mut self, i: usize) {
        let epoch = self.epoch;
        let size = self.config.size;
        let room = &self.config.room;
        let flooding = self.flooding;
        let readers_behind = self.readers_behind;
        let member = &mut self.members[i];
        member.write_again = false;
        // Refills per call, so reading gets its turn; past them, write again next turn.
        let mut refills = 4;
        while !member.closed {
            if member.out.is_empty() {
                let Some(sender) = member.sender.filter(|_| flooding) else {
                    return;
                };
                if refills == 0 || readers_behind {
                    member.write_again = true;
                    return;
                }
                refills -= 1;
                while member.out.len() < SEND_BATCH {
                    let micros = epoch.elapsed().as_micros() as u64;
                    stamp(&mut self.text, sender, member.next_seq, micros, size);
                    put(
                        &mut member.out,
                        &Frame::Say {
                            room: room.clone(),
                            text: self.text.clone(),
                        },
                    );
                    member.next_seq += 1;
                }
            }
            match member.stream.write(&member.out) {
                Ok(0) => member.closed = true,
                Ok(n) => member.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => member.closed = true,
            }
        }
    }

    fn tally(&self, report: &mut FanoutReport) {
        report.closed_by_server = self.members.iter().filter(|m| m.closed).count();
        let due = self.due();
        report.accepted = due.iter().sum();
        report.lost_open = self
            .members
            .iter()
            .filter(|m| !m.closed)
            .map(|m| report.accepted.saturating_sub(m.received))
            .sum();
    }
}

/// The type and length (type byte plus body) of the complete frame at the start of
/// `buf`, if there is one.
fn next_frame(buf: &[u8]) -> Option<(u8, usize)> {
    let header: [u8; LEN_PREFIX] = buf.get(..LEN_PREFIX)?.try_into().ok()?;
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > READ_MAX_FRAME {
        // Broken framing: the caller gives up on the connection at once.
        return Some((0, len));
    }
    (buf.len() >= LEN_PREFIX + len).then(|| (buf[LEN_PREFIX], len))
}

/// The stamp of a `RoomMsg` body (`room` and `from` as one length byte plus bytes,
/// the message's id and time as two `u64`s, then the text), without decoding the
/// strings.
fn room_msg_stamp(body: &[u8]) -> Option<(usize, u64, u64)> {
    let room = usize::from(*body.first()?);
    let from = usize::from(*body.get(1 + room)?);
    let text = body.get(2 + room + from + 16..)?;
    let mut fields = text.splitn(4, |&b| b == b':');
    let mut number = || -> Option<u64> {
        let digits = fields.next()?;
        if digits.is_empty() || digits.len() > 19 {
            return None;
        }
        digits.iter().try_fold(0u64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    let sender = usize::try_from(number()?).ok()?;
    let seq = number()?;
    let micros = number()?;
    fields.next()?;
    Some((sender, seq, micros))
}

/// Appends a frame; frames built here always fit their wire form.
fn put(out: &mut BytesMut, frame: &Frame) {
    let _ = frame.encode(out);
}

mod report;
#[cfg(test)]
mod tests;

pub use report::FanoutReport;
