//! The sending side of the hostile driver: what each kind writes, and when.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use shared::frame::types;
use shared::{Frame, FrameDecoder};

use super::wire::{echo_frame, fill_flood, hello, put_frame};
use super::{
    Driver, End, FILLER, FLOOD_BATCH, NON_READER_CHECK, NON_READER_PEEK, READ_MAX_FRAME, Reader,
    Timer, put_oversize,
};
use crate::kind::Kind;

impl Driver<'_> {
    pub(super) fn on_writable(&mut self, token: usize) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        if !conn.connected {
            let failed =
                !matches!(conn.stream.take_error(), Ok(None)) || conn.stream.peer_addr().is_err();
            if failed {
                let kind = conn.kind;
                let slot = conn.slot;
                self.drop_conn(token);
                self.tally(kind).connect_failures += 1;
                self.schedule_reconnect(slot);
                return;
            }
            conn.connected = true;
            let held = Kind::PROTOCOL_ABUSE.contains(&conn.kind) && !self.config.hold.is_zero();
            if held {
                self.prelude(token);
                let millis = self.config.hold.as_millis() as u64;
                let after = Duration::from_millis(self.rng.below(millis + 1));
                self.timer_in(token, after, |token, generation| Timer::Start {
                    token,
                    generation,
                });
            } else {
                self.misbehave(token);
            }
        }
        self.flush(token);
    }

    /// What a held connection sends at once, before its hold: the server greets a
    /// client that stays silent (`--greet-after`) as a person, in text, so a binary
    /// client speaks first. Binary kinds send their `Hello`; garbage sends its first
    /// byte, which fixes its framing, and keeps the rest for later.
    pub(super) fn prelude(&mut self, token: usize) {
        let garbage = match self.conns[token].as_ref().map(|c| c.kind) {
            Some(Kind::Garbage) => Some(self.garbage()),
            _ => None,
        };
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        match conn.kind {
            Kind::Garbage => {
                if let Some(mut bytes) = garbage {
                    if bytes.first() == Some(&0) {
                        conn.reader = Reader::Binary(FrameDecoder::new(READ_MAX_FRAME));
                    }
                    conn.out.extend_from_slice(&bytes.split_to(1));
                    conn.held_back = bytes;
                }
            }
            Kind::Oversize | Kind::Torn | Kind::BadUtf8Frame => {
                put_frame(&mut conn.out, &hello());
                conn.hello_sent = true;
            }
            _ => {}
        }
    }

    /// Random bytes ending in a newline; half start like a binary frame, half like text.
    pub(super) fn garbage(&mut self) -> Bytes {
        let len = 64 + self.rng.below(2000) as usize;
        let mut bytes = vec![0u8; len];
        self.rng.fill(&mut bytes);
        if self.rng.below(2) == 0 {
            bytes[0] = 0;
        } else {
            bytes[0] = bytes[0].max(1);
        }
        bytes[len - 1] = b'\n';
        Bytes::from(bytes)
    }

    /// Starts the kind's script once connected (and held, for the abuse kinds).
    pub(super) fn misbehave(&mut self, token: usize) {
        let fresh_garbage = match self.conns[token].as_ref() {
            Some(c) if c.kind == Kind::Garbage && c.held_back.is_empty() => Some(self.garbage()),
            _ => None,
        };
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        conn.misbehaving = true;
        match conn.kind {
            Kind::Garbage => {
                let bytes = match fresh_garbage {
                    Some(bytes) => {
                        if bytes.first() == Some(&0) {
                            conn.reader = Reader::Binary(FrameDecoder::new(READ_MAX_FRAME));
                        }
                        bytes
                    }
                    None => std::mem::take(&mut conn.held_back),
                };
                conn.out.extend_from_slice(&bytes);
                self.answer_timeout(token);
            }
            Kind::Oversize | Kind::Torn | Kind::BadUtf8Frame => {
                if !conn.hello_sent {
                    put_frame(&mut conn.out, &hello());
                    conn.hello_sent = true;
                }
                let mut close_now = false;
                match conn.kind {
                    Kind::BadUtf8Frame => {
                        // Say { room: "lobby", text: FF FE }, written by hand.
                        let body: &[u8] = b"\x05lobby\xff\xfe";
                        conn.out.put_u32(1 + body.len() as u32);
                        conn.out.put_u8(types::SAY);
                        conn.out.extend_from_slice(body);
                    }
                    Kind::Torn => {
                        let echo = echo_frame(&[b't'; 48]);
                        conn.out.extend_from_slice(&echo[..echo.len() / 2]);
                        // Welcomed during the hold: nothing more will come to close on.
                        close_now = conn.welcomed;
                    }
                    Kind::Oversize if conn.welcomed => put_oversize(conn),
                    _ => {}
                }
                if close_now {
                    self.flush(token);
                    self.finish(token, End::WeClosed);
                    return;
                }
                self.answer_timeout(token);
            }
            Kind::BadUtf8Line => {
                conn.out
                    .extend_from_slice(b"soak \xff\xfe\xfd is not utf-8\n");
                self.answer_timeout(token);
            }
            Kind::Instant => {
                conn.reset_on_close = self.rng.below(2) == 1;
                self.finish(token, End::WeClosed);
            }
            Kind::Slowloris => {
                let mut script = BytesMut::new();
                put_frame(&mut script, &hello());
                conn.trickle = script.freeze();
                let interval = self.config.slow_interval;
                self.tick_in(token, interval);
            }
            Kind::Flooder | Kind::Idle | Kind::Partial | Kind::Stalled => {
                put_frame(&mut conn.out, &hello());
            }
            Kind::RoomHolder => {
                put_frame(&mut conn.out, &hello());
                for k in 0..self.config.rooms_per_conn {
                    let room = format!("{}-{}-{k}", self.config.room, conn.slot);
                    put_frame(&mut conn.out, &Frame::Join { room, since: None });
                    conn.requests += 1;
                }
            }
            Kind::NonReader | Kind::Talker => {
                put_frame(&mut conn.out, &hello());
                let room = self.config.room.clone();
                put_frame(&mut conn.out, &Frame::Join { room, since: None });
                let after = if conn.kind == Kind::Talker {
                    Duration::from_secs_f64(1.0 / self.config.talk_rate.max(0.1))
                } else {
                    NON_READER_CHECK
                };
                self.tick_in(token, after);
            }
        }
    }

    pub(super) fn on_tick(&mut self, token: usize) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        match conn.kind {
            Kind::Slowloris => {
                if conn.trickle.is_empty() {
                    let seq = conn.requests.to_be_bytes();
                    conn.trickle = echo_frame(&seq);
                }
                let byte = conn.trickle.split_to(1);
                conn.out.extend_from_slice(&byte);
                if conn.trickle.is_empty() {
                    if conn.hello_trickled {
                        conn.requests += 1;
                    } else {
                        conn.hello_trickled = true;
                    }
                }
                let interval = self.config.slow_interval;
                self.tick_in(token, interval);
                self.flush(token);
            }
            Kind::Talker => {
                if conn.out.len() < FLOOD_BATCH {
                    let text = "t".repeat(self.config.talk_size);
                    let room = self.config.room.clone();
                    put_frame(&mut conn.out, &Frame::Say { room, text });
                    conn.requests += 1;
                }
                let after = Duration::from_secs_f64(1.0 / self.config.talk_rate.max(0.1));
                self.tick_in(token, after);
                self.flush(token);
            }
            Kind::NonReader if self.past_deadline => self.finish(token, End::Deadline),
            Kind::NonReader => {
                // Read for a moment: a close by the server is only visible after the
                // bytes queued before it, since a full window holds back the FIN too.
                conn.reading_until = Some(Instant::now() + NON_READER_PEEK);
                self.drain_non_reader(token);
                self.tick_in(token, NON_READER_CHECK);
            }
            _ => {}
        }
    }

    pub(super) fn flush(&mut self, token: usize) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        if !conn.connected {
            return;
        }
        let kind = conn.kind;
        let mut written = 0u64;
        let mut end = None;
        // A flooder refills at most this often per call, so reading gets its turn.
        let mut refills = 4;
        loop {
            if kind == Kind::Flooder && conn.out.is_empty() && conn.welcomed && refills > 0 {
                refills -= 1;
                fill_flood(&mut conn.out, &mut conn.requests);
            }
            let from_out = !conn.out.is_empty();
            let chunk: &[u8] = if from_out {
                &conn.out
            } else if conn.stall_left > 0 {
                &FILLER[..conn.stall_left.min(FILLER.len())]
            } else {
                break;
            };
            match conn.stream.write(chunk) {
                Ok(0) => {
                    end = Some(End::ServerClosed { reset: true });
                    break;
                }
                Ok(n) => {
                    if from_out {
                        conn.out.advance(n);
                    } else {
                        conn.stall_left -= n;
                    }
                    written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    end = Some(End::ServerClosed { reset: true });
                    break;
                }
            }
        }
        self.tally(kind).bytes_sent += written;
        if let Some(end) = end {
            self.finish(token, end);
        }
    }
}
