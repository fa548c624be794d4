//! Incremental decoders: binary frames, text lines, and the per-connection decoder that
//! picks one of them from the first byte a client sends.
//!
//! Each decoder owns a buffer that the caller fills with whatever a read returned, in any
//! chunking. Decoding is two-pass, after mini-redis: first check that a whole frame or
//! line is buffered (cheap, allocation-free, and "not yet" is `Ok(None)`, not an error),
//! then build it and advance the buffer. Nothing is decoded as text before its frame or
//! line is complete, so a UTF-8 character split across reads is never seen half.
//!
//! Limits are enforced before data is kept: a frame header announcing more than
//! `max_frame` bytes is rejected as soon as its four length bytes arrive, and a line is
//! rejected as soon as more than `max_line + 1` bytes (the extra one may be the `\r` of
//! `\r\n`) are buffered without a newline. After draining (calling `decode` until it
//! returns `Ok(None)` or an error that consumed nothing), a decoder never holds more
//! than one incomplete frame (`4 + max_frame` bytes) or line (`max_line + 1` bytes).

use bytes::{Buf, BytesMut};

use crate::Limits;
use crate::error::DecodeError;
use crate::frame::{Frame, LEN_PREFIX};

/// Decodes length-prefixed binary frames from a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder that rejects frames whose length exceeds `max_frame`.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Appends bytes read from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Checks whether a complete frame is buffered: `Ok(Some(len))` with its length
    /// (type byte plus body), `Ok(None)` if more bytes are needed.
    fn check(&self) -> Result<Option<usize>, DecodeError> {
        let Some(header) = self.buf.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        if len > self.max_frame {
            return Err(DecodeError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        Ok(Some(len))
    }

    /// Decodes the next complete frame, `Ok(None)` if none is complete yet.
    ///
    /// An error in a frame's length prefix (`EmptyFrame`, `FrameTooLarge`) loses the
    /// stream's framing: it is returned again by every later call, and everything
    /// buffered after the prefix is dropped so a flood cannot pile up behind it. An error
    /// inside a complete frame (`Malformed`, `UnknownType`, `InvalidUtf8`) consumes that
    /// frame only. Either way the peer broke the protocol; a server closes the connection.
    pub fn decode(&mut self) -> Result<Option<Frame>, DecodeError> {
        let len = match self.check() {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(e) => {
                // Keep the bad prefix so the error stays sticky; drop the rest.
                self.buf.truncate(LEN_PREFIX);
                return Err(e);
            }
        };
        self.buf.advance(LEN_PREFIX);
        let mut frame = self.buf.split_to(len);
        let frame_type = frame[0];
        frame.advance(1);
        Frame::decode(frame_type, frame.freeze()).map(Some)
    }
}

/// Decodes `\n`-terminated UTF-8 lines (a trailing `\r` is dropped) from a byte stream.
#[derive(Debug)]
pub struct LineDecoder {
    buf: BytesMut,
    /// Prefix of `buf` already searched for `\n`, so a long line is scanned once.
    scanned: usize,
    max_line: usize,
    /// Set once the line being received has passed `max_line` without a newline: its
    /// bytes are dropped as they arrive, up to and including its newline.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder that rejects lines longer than `max_line` bytes (terminator excluded).
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            max_line,
            discarding: false,
        }
    }

    /// Appends bytes read from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Decodes the next complete line without its terminator, `Ok(None)` if none is
    /// complete yet.
    ///
    /// A line over `max_line` is `LineTooLong`, returned as soon as the limit is passed
    /// and again by every call until the line's newline arrives; its bytes are dropped
    /// rather than buffered. Decoding then resumes with the next line. Invalid UTF-8
    /// consumes its line only. Either way the peer broke the protocol; a server closes
    /// the connection.
    pub fn decode(&mut self) -> Result<Option<String>, DecodeError> {
        let Some(pos) = memchr::memchr(b'\n', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            // One extra byte may be the `\r` of a `\r\n` still to come.
            if self.discarding || self.buf.len() > self.max_line.saturating_add(1) {
                self.discarding = true;
                self.buf.clear();
                self.scanned = 0;
                return Err(DecodeError::LineTooLong { max: self.max_line });
            }
            return Ok(None);
        };
        let end = self.scanned + pos;
        if self.discarding {
            // The newline ends the over-long line whose head was already dropped.
            self.buf.advance(end + 1);
            self.scanned = 0;
            self.discarding = false;
            return Err(DecodeError::LineTooLong { max: self.max_line });
        }
        let mut line = self.buf.split_to(end + 1);
        self.scanned = 0;
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.truncate(end - 1);
        }
        if line.len() > self.max_line {
            return Err(DecodeError::LineTooLong { max: self.max_line });
        }
        match String::from_utf8(line.to_vec()) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(DecodeError::InvalidUtf8 {
                frame_type: None,
                valid_up_to: e.utf8_error().valid_up_to(),
            }),
        }
    }
}

/// The framing a connection speaks, chosen by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Length-prefixed binary frames (the first byte is `0x00`, the high byte of the
    /// first frame's length).
    Binary,
    /// Newline-terminated text lines (any other first byte).
    Text,
}

impl Mode {
    /// The mode a connection whose first byte is `first` speaks.
    ///
    /// A frame length is at most 16 MiB in practice, so a binary stream always starts
    /// with `0x00`, which never begins a text line.
    pub fn detect(first: u8) -> Mode {
        if first == 0x00 {
            Mode::Binary
        } else {
            Mode::Text
        }
    }
}

/// One unit of input from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A binary frame.
    Frame(Frame),
    /// A text line, terminator removed.
    Line(String),
}

/// A server connection's decoder: detects the mode from the first byte, then decodes
/// frames or lines.
#[derive(Debug)]
pub enum ConnectionDecoder {
    /// No byte seen yet; holds nothing.
    Detecting(Limits),
    /// Binary mode.
    Binary(FrameDecoder),
    /// Text mode.
    Text(LineDecoder),
}

impl ConnectionDecoder {
    /// A decoder that has not seen any byte yet.
    pub fn new(limits: Limits) -> Self {
        ConnectionDecoder::Detecting(limits)
    }

    /// The detected mode, `None` before the first byte.
    pub fn mode(&self) -> Option<Mode> {
        match self {
            ConnectionDecoder::Detecting(_) => None,
            ConnectionDecoder::Binary(_) => Some(Mode::Binary),
            ConnectionDecoder::Text(_) => Some(Mode::Text),
        }
    }

    /// Appends bytes read from the peer, detecting the mode on the first one.
    pub fn feed(&mut self, data: &[u8]) {
        if let ConnectionDecoder::Detecting(limits) = *self {
            let Some(&first) = data.first() else {
                return;
            };
            *self = match Mode::detect(first) {
                Mode::Binary => ConnectionDecoder::Binary(FrameDecoder::new(limits.max_frame)),
                Mode::Text => ConnectionDecoder::Text(LineDecoder::new(limits.max_line)),
            };
        }
        match self {
            ConnectionDecoder::Detecting(_) => {}
            ConnectionDecoder::Binary(d) => d.feed(data),
            ConnectionDecoder::Text(d) => d.feed(data),
        }
    }

    /// Takes a peer that has sent nothing yet to speak text (a person who waits to be
    /// greeted). Does nothing once the mode is known.
    pub fn assume_text(&mut self) {
        if let ConnectionDecoder::Detecting(limits) = *self {
            *self = ConnectionDecoder::Text(LineDecoder::new(limits.max_line));
        }
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        match self {
            ConnectionDecoder::Detecting(_) => 0,
            ConnectionDecoder::Binary(d) => d.buffered(),
            ConnectionDecoder::Text(d) => d.buffered(),
        }
    }

    /// Decodes the next complete frame or line, `Ok(None)` if none is complete yet.
    pub fn decode(&mut self) -> Result<Option<Incoming>, DecodeError> {
        match self {
            ConnectionDecoder::Detecting(_) => Ok(None),
            ConnectionDecoder::Binary(d) => Ok(d.decode()?.map(Incoming::Frame)),
            ConnectionDecoder::Text(d) => Ok(d.decode()?.map(Incoming::Line)),
        }
    }
}

#[cfg(test)]
mod tests;
