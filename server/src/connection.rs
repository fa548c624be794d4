//! One client connection as its worker sees it: the socket, the incremental decoder, the
//! outbound queue of shared frames, and the per-connection session state.
//!
//! A `Connection` is owned by exactly one worker thread and never shared; other threads
//! reach it only by sending its worker a delivery addressed to its [`ConnId`].

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use mio::net::TcpStream;
use shared::{ConnectionDecoder, Limits, Mode};

use crate::hub::ConnId;
use crate::stats::CloseReason;

/// Most buffers handed to one `write_vectored` call.
const MAX_IOVECS: usize = 64;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket; `rate == 0` means unlimited.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if self.tokens < 1.0 {
            self.refill(now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gives back a token taken for a message that was not there after all.
    pub fn refund(&mut self) {
        if self.rate != 0.0 {
            self.tokens = (self.tokens + 1.0).min(self.burst);
        }
    }

    /// How long from `now` until a token is available.
    pub fn wait(&self, now: Instant) -> Duration {
        if self.rate == 0.0 || self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        let refill = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        refill.saturating_sub(now.saturating_duration_since(self.updated))
    }
}

/// What [`Connection::enqueue`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued for sending.
    Queued,
    /// Dropped: the connection is closing at once.
    Dropped,
    /// Dropped, and this frame made the connection a slow consumer.
    BecameSlow,
}

/// What reading from the socket produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` bytes were fed to the decoder.
    Data(usize),
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
}

/// A client connection owned by one worker.
#[derive(Debug)]
pub struct Connection {
    /// This connection's id.
    pub id: ConnId,
    /// The non-blocking socket, registered with the owning worker's `Poll`.
    pub stream: TcpStream,
    /// Remote address, for logs.
    pub peer: SocketAddr,
    /// Decoder; its mode becomes known with the first byte.
    pub decoder: ConnectionDecoder,
    /// Framing, once the first byte arrived.
    pub mode: Option<Mode>,
    /// Whether a binary client has sent its `Hello`.
    pub hello_done: bool,
    /// Nick, once registered with the hub.
    pub nick: Option<String>,
    /// Rooms this connection is in (display names), in join order.
    pub rooms: Vec<String>,
    /// Where plain text lines go: the most recently joined room still held.
    pub current_room: Option<String>,
    /// The private-chat partner as far as the frames queued to this connection go: set
    /// with its `ChatStarted`, cleared with its `ChatEnded`. Chat messages are delivered
    /// only while it names their sender.
    pub chat_with: Option<ConnId>,
    out: VecDeque<Bytes>,
    out_bytes: usize,
    /// Whether the first queued frame has been partly written.
    front_partial: bool,
    /// Whether WRITABLE interest is registered (only while output is pending).
    pub writable_armed: bool,
    /// Whether the connection is on the worker's to-flush list.
    pub dirty: bool,
    /// Whether the connection is on the worker's backlog or throttled list.
    pub waiting: bool,
    /// Close once the outbound queue is flushed (goodbye, shutdown, protocol error).
    pub closing: Option<CloseReason>,
    /// Whether our side is shut for writing (all output sent, FIN sent), waiting for the
    /// peer's FIN while discarding its input.
    pub write_shut: bool,
    /// Deadline for `closing`; past it the connection is closed unflushed.
    pub closing_deadline: Option<Instant>,
    /// Close at the end of this turn, after one last write attempt.
    pub close_now: Option<CloseReason>,
    /// When the connection last sent anything.
    pub last_input: Instant,
    /// When the connection was accepted.
    pub accepted_at: Instant,
    /// Whether a keepalive ping is outstanding.
    pub pinged: bool,
    /// Flood control.
    pub bucket: TokenBucket,
    /// Since when the connection has been continuously held back by the rate limit.
    pub throttled_since: Option<Instant>,
    /// Accepted while the server was full: answer error 300 in its mode, then close.
    pub rejecting: bool,
}

impl Connection {
    /// A freshly accepted connection.
    pub fn new(
        id: ConnId,
        stream: TcpStream,
        peer: SocketAddr,
        limits: Limits,
        bucket: TokenBucket,
        rejecting: bool,
        now: Instant,
    ) -> Self {
        Self {
            id,
            stream,
            peer,
            decoder: ConnectionDecoder::new(limits),
            mode: None,
            hello_done: false,
            nick: None,
            rooms: Vec::new(),
            current_room: None,
            chat_with: None,
            out: VecDeque::new(),
            out_bytes: 0,
            front_partial: false,
            writable_armed: false,
            dirty: false,
            waiting: false,
            closing: None,
            write_shut: false,
            closing_deadline: None,
            close_now: None,
            last_input: now,
            accepted_at: now,
            pinged: false,
            bucket,
            throttled_since: None,
            rejecting,
        }
    }

    /// Whether this connection will take no more input.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some() || self.close_now.is_some()
    }

    /// Queued outbound bytes.
    pub fn pending(&self) -> usize {
        self.out_bytes
    }

    /// Queues `bytes` for sending. A connection whose queue already holds
    /// `max_pending` bytes or more is a slow consumer: its queue is dropped (except a
    /// partly written first frame, so the stream stays decodable) and it is marked for
    /// closing. Any single frame fits an empty queue, so the queue never exceeds
    /// `max_pending` plus one frame.
    pub fn enqueue(&mut self, bytes: Bytes, max_pending: usize) -> Enqueued {
        // Nothing follows a close at once, our FIN, or the shutdown notice.
        if self.close_now.is_some()
            || self.write_shut
            || self.closing == Some(CloseReason::Shutdown)
        {
            return Enqueued::Dropped;
        }
        if self.out_bytes >= max_pending {
            let keep = if self.front_partial { 1 } else { 0 };
            self.out.truncate(keep);
            self.out_bytes = self.out.front().map_or(0, Bytes::len);
            self.close_now = Some(CloseReason::SlowConsumer);
            return Enqueued::BecameSlow;
        }
        self.out_bytes += bytes.len();
        self.out.push_back(bytes);
        Enqueued::Queued
    }

    /// Queues `bytes` even past the pending limit (a last error before closing).
    pub fn enqueue_final(&mut self, bytes: Bytes) {
        self.out_bytes += bytes.len();
        self.out.push_back(bytes);
    }

    /// Reads once into `scratch` and feeds the decoder.
    pub fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        loop {
            return match self.stream.read(scratch) {
                Ok(0) => Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.decoder.feed(&scratch[..n]);
                    Ok(ReadOutcome::Data(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Reads and throws away whatever the peer sent, up to 1 MiB per call. Returns true
    /// once the peer has closed its side (or the socket failed).
    pub fn discard_input(&mut self, scratch: &mut [u8]) -> bool {
        for _ in 0..16 {
            match self.stream.read(scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Writes queued output with vectored writes until the queue is empty or the socket
    /// would block. Returns the bytes written.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while !self.out.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, buf) in iov.iter_mut().zip(self.out.iter()) {
                *slot = IoSlice::new(buf);
                count += 1;
            }
            match self.stream.write_vectored(&iov[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    fn consume(&mut self, mut n: usize) {
        self.out_bytes -= n.min(self.out_bytes);
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.out.pop_front();
                self.front_partial = false;
            } else {
                front.advance(n);
                self.front_partial = true;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_bursts_and_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.wait(start) > Duration::ZERO);
        assert_eq!(bucket.wait(start + Duration::from_secs(1)), Duration::ZERO);
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, now);
        for _ in 0..10_000 {
            assert!(bucket.try_take(now));
        }
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;
    use crate::hub::ConnId;

    /// A registered-nowhere connection over a loopback pair whose peer never reads.
    fn stalled_connection() -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, addr) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let now = Instant::now();
        let id = ConnId {
            worker: 0,
            slot: 0,
            generation: 0,
        };
        let conn = Connection::new(
            id,
            TcpStream::from_std(stream),
            addr,
            Limits::default(),
            TokenBucket::new(0, 1, now),
            false,
            now,
        );
        (conn, peer)
    }

    #[test]
    fn slow_consumer_keeps_a_partly_written_frame_so_the_stream_stays_whole() {
        let (mut conn, _peer) = stalled_connection();
        let big = Bytes::from(vec![7u8; 32 << 20]);
        assert_eq!(conn.enqueue(big.clone(), usize::MAX), Enqueued::Queued);
        let written = conn.flush().unwrap();
        assert!(written > 0 && written < big.len(), "wrote {written}");
        let left = conn.pending();
        assert_eq!(left, big.len() - written);
        // The queue is past the limit: the next frame makes it a slow consumer.
        assert_eq!(
            conn.enqueue(Bytes::from_static(b"x"), 1),
            Enqueued::BecameSlow
        );
        assert_eq!(conn.close_now, Some(CloseReason::SlowConsumer));
        assert_eq!(
            conn.pending(),
            left,
            "the partly written frame stays queued"
        );
        // Once closing at once, nothing more is queued.
        assert_eq!(
            conn.enqueue(Bytes::from_static(b"y"), usize::MAX),
            Enqueued::Dropped
        );
    }

    #[test]
    fn any_single_frame_fits_an_empty_queue() {
        let (mut conn, _peer) = stalled_connection();
        let frame = Bytes::from(vec![1u8; 4096]);
        assert_eq!(conn.enqueue(frame.clone(), 1024), Enqueued::Queued);
        assert_eq!(conn.enqueue(frame, 1024), Enqueued::BecameSlow);
        assert_eq!(conn.pending(), 0, "an unwritten queue is dropped whole");
    }
}
