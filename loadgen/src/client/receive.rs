//! A client's receiving: reads from the socket, decodes frames or lines, and handles
//! what the server says (messages, handshake replies, pings, errors).

use std::io::{self, Read};

use shared::{ErrorCode, Frame, PROTOCOL_VERSION};

use super::conn::Inbox;
use super::{Client, Ctx, Status};
use crate::config::{Protocol, Scenario};
use crate::stamp::{ASCII_MARKER, Stamp};

enum Incoming {
    Frame(Frame),
    Line(String),
}

impl Client {
    pub(super) fn read(&mut self, cx: &mut Ctx<'_>, scratch: &mut [u8], final_edge: bool) {
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
    pub(super) fn drain_inbox(&mut self, at: u64, cx: &mut Ctx<'_>) -> bool {
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

    pub(super) fn on_frame(&mut self, frame: Frame, at: u64, cx: &mut Ctx<'_>) {
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
    pub(super) fn on_server_error(&mut self, code: ErrorCode, text: &str, cx: &mut Ctx<'_>) {
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

    pub(super) fn on_line(&mut self, line: &str, at: u64, cx: &mut Ctx<'_>) {
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
}
