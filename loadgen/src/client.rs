//! One simulated client: who it is ([`ClientPlan`]), the run's rules it follows
//! ([`Rules`]), where it is in its life ([`Status`]) and the [`Client`] itself, with the
//! event dispatch and connection loss common to all its parts.
//!
//! A client never blocks: messages are appended to its outbound buffer and written as far
//! as the socket takes them; the rest goes out when the socket turns writable. Everything
//! it reads is decoded incrementally (frames or lines, see `shared::codec`, or a broker's
//! replies, see `broker`) and stamps are checked against the
//! [`crate::verify::SequenceTracker`] of their sender.
//!
//! Layout:
//! - `conn`: the connection (socket, outbound buffer, inbound decoder).
//! - `handshake`: connect, the handshake of each protocol and scenario, the goodbye.
//! - `send`: due messages sent on schedule and within the in-flight window.
//! - `receive`: reads, decoding, and what the server says.
//! - `deliver`: a received stamp checked and its latency recorded.
//! - `broker`: a room member on Redis or NATS.

use std::sync::atomic::AtomicU64;

use mio::Registry;

use crate::churn::RoomCursor;
use crate::clock::Clock;
use crate::config::{Protocol, Scenario};
use crate::fanout::{SenderStreams, StampBase};
use crate::lag;
use crate::poller::Readiness;
use crate::schedule::{Schedule, SendWindow};
use crate::transport::TlsClient;

pub(crate) use crate::tally::{ErrorCounts, Tally};
pub(crate) use crate::wire::encode_message;

mod broker;
mod conn;
mod deliver;
mod handshake;
mod receive;
mod send;

use conn::{Conn, connect_outcome};

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

    /// Handles what the poll reported about this client's socket.
    pub(crate) fn on_event(&mut self, event: &Readiness, cx: &mut Ctx<'_>, scratch: &mut [u8]) {
        let readable = event.readable || event.read_closed || event.error;
        let writable = event.writable || event.write_closed;
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
            let final_edge = event.read_closed || event.error;
            self.read(cx, scratch, final_edge);
        }
    }
}

#[cfg(test)]
mod tests;
