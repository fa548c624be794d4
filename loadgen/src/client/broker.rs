//! A room member on a message broker (Redis pub/sub, NATS): the handshake that
//! subscribes it to its room's channel or subject, and what each thing the broker sends
//! means for the client. The wire formats are in `crate::wire::{redis, nats}`.
//!
//! A member is ready once the broker confirms the subscription (Redis's `subscribe`
//! push, NATS's `PONG` to the `PING` sent after `SUB`), so no measured message can be
//! published before every ready member listens.

use super::conn::Inbox;
use super::{Client, Ctx, Status};
use crate::config::Protocol;
use crate::stamp::Stamp;
use crate::wire::nats::{self, NatsDecoder, NatsError, Op};
use crate::wire::redis::{self, Reply, RespDecoder, RespError};

/// The decoder of a broker connection.
#[derive(Debug)]
pub(super) enum BrokerInbox {
    /// Redis, RESP3.
    Redis(RespDecoder),
    /// NATS; `greeted` once the server's `INFO` arrived, which must come first.
    Nats { decoder: NatsDecoder, greeted: bool },
}

/// What one reply, message or request from the broker means for the client.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A message in the member's room: its stamp, `None` if it did not check out.
    Delivery(Option<Stamp>),
    /// The subscription is in place.
    Subscribed,
    /// Bytes the broker expects back (NATS's `PONG`).
    Answer(&'static [u8]),
    /// An error reply, as text.
    Refused(String),
    /// Nothing for the client to do (greetings, publish counts, other channels).
    Nothing,
}

/// Why the bytes from the broker cannot be understood: most likely the port runs
/// something else.
#[derive(Debug, thiserror::Error)]
enum BrokerError {
    /// `--protocol redis` got bytes that are not RESP (NATS greets with `INFO`).
    #[error("not RESP (is it a Redis server?): {0}")]
    Resp(#[from] RespError),
    /// `--protocol nats` got a line that is not a NATS operation.
    #[error("not the NATS protocol (is it a NATS server?): {0}")]
    Nats(#[from] NatsError),
    /// `--protocol nats` got a NATS-like first line that is not `INFO` (Redis answers
    /// `CONNECT` with `-ERR`).
    #[error("not a NATS server: it began with {0:?} rather than INFO")]
    NoInfo(String),
}

impl BrokerInbox {
    /// The decoder for `protocol` (a broker), with the handshake that subscribes to
    /// `room` appended to `out`.
    pub(super) fn start(protocol: Protocol, room: &str, out: &mut Vec<u8>) -> Self {
        if protocol == Protocol::Nats {
            nats::put_handshake(room, out);
            BrokerInbox::Nats {
                decoder: NatsDecoder::default(),
                greeted: false,
            }
        } else {
            redis::put_handshake(room, out);
            BrokerInbox::Redis(RespDecoder::default())
        }
    }

    /// Appends bytes read from the socket.
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        match self {
            BrokerInbox::Redis(d) => d.feed(bytes),
            BrokerInbox::Nats { decoder, .. } => decoder.feed(bytes),
        }
    }

    /// The next complete thing from the broker, as an [`Event`] for a member of `room`.
    fn next(&mut self, room: &str) -> Result<Option<Event>, BrokerError> {
        let room = room.as_bytes();
        match self {
            BrokerInbox::Redis(d) => Ok(d.decode()?.map(|reply| match reply {
                Reply::Message { channel, payload } if channel == room => {
                    Event::Delivery(Stamp::from_binary(payload).ok())
                }
                Reply::Subscribed { channel } if channel == room => Event::Subscribed,
                Reply::Error(text) => Event::Refused(String::from_utf8_lossy(text).into_owned()),
                _ => Event::Nothing,
            })),
            BrokerInbox::Nats { decoder, greeted } => {
                let Some(op) = decoder.decode()? else {
                    return Ok(None);
                };
                if !*greeted {
                    if op != Op::Info {
                        return Err(BrokerError::NoInfo(describe(&op)));
                    }
                    *greeted = true;
                }
                Ok(Some(match op {
                    Op::Msg { subject, payload } if subject == room => {
                        Event::Delivery(Stamp::from_binary(payload).ok())
                    }
                    Op::Pong => Event::Subscribed,
                    Op::Ping => Event::Answer(nats::PONG),
                    Op::Err(text) => Event::Refused(String::from_utf8_lossy(text).into_owned()),
                    Op::Info | Op::Msg { .. } | Op::Ok => Event::Nothing,
                }))
            }
        }
    }
}

/// An operation as the server sent it, for an error message.
fn describe(op: &Op<'_>) -> String {
    match op {
        Op::Info => "INFO".into(),
        Op::Msg { .. } => "MSG".into(),
        Op::Ping => "PING".into(),
        Op::Pong => "PONG".into(),
        Op::Ok => "+OK".into(),
        Op::Err(text) => format!("-ERR {}", String::from_utf8_lossy(text)),
    }
}

impl Client {
    /// Handles everything buffered from a broker. Returns `false` when the connection
    /// was dropped.
    pub(super) fn drain_broker(&mut self, at: u64, cx: &mut Ctx<'_>) -> bool {
        loop {
            let Some(conn) = &mut self.conn else {
                return false;
            };
            let Inbox::Broker(inbox) = &mut conn.inbox else {
                return true;
            };
            let room = self.plan.room.as_deref().unwrap_or_default();
            match inbox.next(room) {
                Ok(None) => return true,
                Ok(Some(event)) => self.on_broker_event(event, at, cx),
                Err(e) => {
                    cx.tally.errors.protocol_errors += 1;
                    self.lost_connection(cx, e.to_string());
                    return false;
                }
            }
        }
    }

    fn on_broker_event(&mut self, event: Event, at: u64, cx: &mut Ctx<'_>) {
        match event {
            Event::Delivery(stamp) => self.deliver(stamp, at, cx),
            Event::Subscribed => {
                if self.handshaking() {
                    self.status = Status::Ready;
                }
            }
            Event::Answer(bytes) => {
                if let Some(conn) = &mut self.conn {
                    conn.out.extend_from_slice(bytes);
                }
                self.flush(cx);
            }
            Event::Refused(text) if self.handshaking() => {
                self.fail(cx, format!("handshake refused: {text}"));
            }
            Event::Refused(text) => cx.tally.note_error(format!("server error: {text}")),
            Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        client: 1,
        seq: 2,
        scheduled_ns: 3,
        sent_ns: 4,
    };

    fn events(inbox: &mut BrokerInbox, bytes: &[u8]) -> Result<Vec<Event>, String> {
        inbox.feed(bytes);
        let mut got = Vec::new();
        while let Some(event) = inbox.next("lg-1").map_err(|e| e.to_string())? {
            got.push(event);
        }
        Ok(got)
    }

    #[test]
    fn redis_messages_of_the_room_carry_checked_stamps() {
        let mut out = Vec::new();
        let mut inbox = BrokerInbox::start(Protocol::Redis, "lg-1", &mut out);
        assert!(out.starts_with(b"*2\r\n$5\r\nHELLO\r\n"));
        let mut payload = Vec::new();
        STAMP.put_binary(64, &mut payload);
        let message = |channel: &str, payload: &[u8]| {
            let mut m = format!(">3\r\n$7\r\nmessage\r\n$4\r\n{channel}\r\n$64\r\n").into_bytes();
            m.extend_from_slice(payload);
            m.extend_from_slice(b"\r\n");
            m
        };
        // HELLO's map (empty here), then the confirmation (its third element is the
        // connection's subscription count).
        let mut bytes = b"%0\r\n>3\r\n$9\r\nsubscribe\r\n$4\r\nlg-1\r\n:1\r\n".to_vec();
        bytes.extend(message("lg-1", &payload));
        bytes.extend(message("lg-2", &payload));
        // One changed payload byte fails the checksum.
        payload[40] ^= 1;
        bytes.extend(message("lg-1", &payload));
        bytes.extend_from_slice(b":3\r\n-ERR nope\r\n");
        assert_eq!(
            events(&mut inbox, &bytes),
            Ok(vec![
                Event::Nothing,
                Event::Subscribed,
                Event::Delivery(Some(STAMP)),
                Event::Nothing,
                Event::Delivery(None),
                Event::Nothing,
                Event::Refused("ERR nope".into()),
            ])
        );
    }

    #[test]
    fn nats_must_greet_first_and_pings_are_answered() {
        let mut out = Vec::new();
        let mut inbox = BrokerInbox::start(Protocol::Nats, "lg-1", &mut out);
        assert!(out.starts_with(b"CONNECT {"));
        let mut payload = Vec::new();
        STAMP.put_binary(64, &mut payload);
        let mut bytes = b"INFO {}\r\nPONG\r\nPING\r\nMSG lg-1 1 64\r\n".to_vec();
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(b"\r\n");
        assert_eq!(
            events(&mut inbox, &bytes),
            Ok(vec![
                Event::Nothing,
                Event::Subscribed,
                Event::Answer(nats::PONG),
                Event::Delivery(Some(STAMP)),
            ])
        );

        // Redis answering a NATS handshake.
        let mut inbox = BrokerInbox::start(Protocol::Nats, "lg-1", &mut Vec::new());
        let refused = events(&mut inbox, b"-ERR unknown command 'CONNECT'\r\n");
        assert_eq!(
            refused,
            Err("not a NATS server: it began with \"-ERR unknown command 'CONNECT'\" rather than INFO".into())
        );
        // NATS answering a Redis handshake.
        let mut inbox = BrokerInbox::start(Protocol::Redis, "lg-1", &mut Vec::new());
        let refused = events(&mut inbox, b"INFO {}\r\n");
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("is it a Redis server?")),
            "{refused:?}"
        );
    }
}
