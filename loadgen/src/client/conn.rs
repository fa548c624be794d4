//! A client's connection: the socket (plain or TLS, see `crate::transport`), the
//! outbound buffer written as far as the socket takes it, and the inbound decoder.

use std::io::{self, Write};

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use shared::{Frame, FrameDecoder, LineDecoder};

use super::broker::BrokerInbox;
use crate::transport::Transport;

/// The inbound decoder of a connection.
#[derive(Debug)]
pub(super) enum Inbox {
    Frames(FrameDecoder),
    Lines(LineDecoder),
    Broker(BrokerInbox),
}

/// An open connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: Transport,
    pub(super) token: Token,
    /// Whether WRITABLE is in the registered interest: only while a connect is in
    /// progress or bytes are pending, so a loopback ACK does not wake the thread for
    /// every message.
    pub(super) writable_interest: bool,
    /// Bytes queued for the server; `out[sent..]` is still to be written.
    pub(super) out: Vec<u8>,
    pub(super) sent: usize,
    /// The last write said `WouldBlock`: the socket's send buffer is full. Nothing is
    /// written until a WRITABLE event says it has room again (WRITABLE interest is
    /// registered while anything is pending, and edge-triggered poll reports the change),
    /// so no write is made only to learn that the socket is still full.
    pub(super) blocked: bool,
    /// When the first measured message queued behind a backlog was sent, until the
    /// backlog clears (the server's lag, see [`crate::lag`]).
    pub(super) held_since: Option<u64>,
    pub(super) inbox: Inbox,
}

impl Conn {
    /// Whether bytes wait for the socket (so a new message queues behind them).
    pub(super) fn backed_up(&self) -> bool {
        self.blocked || self.sent < self.out.len() || self.stream.wants_write()
    }

    /// Appends an encoded frame. Only loadgen's own small frames pass through here, so
    /// encoding cannot fail (a name over 255 bytes would be a loadgen bug).
    pub(super) fn queue_frame(&mut self, frame: &Frame) {
        let mut buf = BytesMut::new();
        if frame.encode(&mut buf).is_ok() {
            self.out.extend_from_slice(&buf);
        }
    }

    /// Writes until done or the socket would block, and asks for WRITABLE events only
    /// while something is left. Errors mean the connection is gone.
    pub(super) fn flush(&mut self, registry: &Registry) -> io::Result<()> {
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
pub(super) fn connect_outcome(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}
