//! The reading side of the hostile driver: what comes back, and what it tells.

use std::io::{self, Read};
use std::time::Instant;

use bytes::BufMut;
use shared::Frame;
use shared::frame::types;

use super::wire::put_frame;
use super::{DRAIN_LIMIT, Driver, End, READ_MAX_FRAME, Reader, put_oversize};
use crate::kind::Kind;

impl Driver<'_> {
    pub(super) fn drain_non_reader(&mut self, token: usize) {
        self.read_available(token, DRAIN_LIMIT);
    }

    pub(super) fn on_readable(&mut self, token: usize, closed: bool) {
        let Some(conn) = self.conns[token].as_ref() else {
            return;
        };
        if conn.kind == Kind::NonReader {
            // It does not read, except to learn whether the server gave up on it.
            let peeking = conn.reading_until.is_some_and(|t| Instant::now() < t);
            if closed || peeking {
                self.drain_non_reader(token);
            }
            return;
        }
        if self.read_available(token, usize::MAX) {
            self.flush(token);
        }
    }

    /// Reads what `token` has ready (stopping once more than `limit` bytes came) and
    /// hands it to `on_data`. Returns false once the connection is finished.
    pub(super) fn read_available(&mut self, token: usize, limit: usize) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut total = 0usize;
        let open = loop {
            let Some(conn) = self.conns[token].as_mut() else {
                break false;
            };
            match conn.stream.read(&mut scratch) {
                Ok(0) => {
                    self.finish(token, End::ServerClosed { reset: false });
                    break false;
                }
                Ok(n) => {
                    total = total.saturating_add(n);
                    self.on_data(token, &scratch[..n]);
                    if total > limit {
                        break true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.finish(token, End::ServerClosed { reset: true });
                    break false;
                }
            }
        };
        self.scratch = scratch;
        open
    }

    pub(super) fn on_data(&mut self, token: usize, data: &[u8]) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        match &mut conn.reader {
            Reader::Binary(decoder) => {
                decoder.feed(data);
                loop {
                    let Some(conn) = self.conns[token].as_mut() else {
                        return;
                    };
                    let Reader::Binary(decoder) = &mut conn.reader else {
                        return;
                    };
                    match decoder.decode() {
                        Ok(Some(frame)) => self.on_frame(token, frame),
                        Ok(None) => break,
                        Err(_) => {
                            // The server sent something undecodable: count it as a
                            // code nobody uses, so the verdict shows it.
                            conn.codes.push(0);
                            self.finish(token, End::WeClosed);
                            return;
                        }
                    }
                }
            }
            Reader::Text(buf) => {
                buf.extend_from_slice(data);
                let mut lines = Vec::new();
                while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    lines.push(line);
                }
                if buf.len() > READ_MAX_FRAME {
                    buf.clear();
                }
                for line in lines {
                    self.on_line(token, &line);
                }
            }
        }
    }

    pub(super) fn on_line(&mut self, token: usize, line: &[u8]) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        if let Some(rest) = line.strip_prefix(b"ERR ") {
            let digits: Vec<u8> = rest
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            let code = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            conn.codes.push(code);
        } else if line.starts_with(b"* welcome") {
            conn.welcomed = true;
        } else if line.starts_with(b"* server shutting down") {
            conn.shutdown_seen = true;
        } else if let Some(token_text) = line.strip_prefix(b"PING ") {
            let mut pong = b"PONG ".to_vec();
            pong.extend_from_slice(token_text);
            conn.out.extend_from_slice(&pong);
        }
    }

    pub(super) fn on_frame(&mut self, token: usize, frame: Frame) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        match frame {
            Frame::Welcome { max_frame, .. } => {
                conn.welcomed = true;
                conn.max_frame = max_frame as usize;
                match conn.kind {
                    Kind::Oversize if conn.misbehaving => put_oversize(conn),
                    Kind::Partial | Kind::Stalled => {
                        let len = self.config.partial_frame.min(conn.max_frame).max(2);
                        conn.out.put_u32(len as u32);
                        conn.out.put_u8(types::ECHO);
                        conn.stall_left = self.config.partial_sent.min(len - 2);
                    }
                    Kind::Torn if conn.misbehaving => self.finish(token, End::WeClosed),
                    _ => {}
                }
            }
            Frame::Error { code, .. } => conn.codes.push(code.0),
            // Its rooms are its own: every `Joined` acknowledges one of its joins.
            Frame::Joined { .. } if conn.kind == Kind::RoomHolder => conn.replies += 1,
            Frame::EchoReply { .. } | Frame::RoomMsg { .. } => {
                conn.replies += 1;
                if conn.kind == Kind::Idle && conn.final_sent {
                    conn.final_ok = true;
                    self.finish(token, End::WeClosed);
                }
            }
            Frame::Ping { token: t } => put_frame(&mut conn.out, &Frame::Pong { token: t }),
            Frame::Shutdown { .. } => conn.shutdown_seen = true,
            _ => {}
        }
    }
}
