//! One client connection as its worker sees it: the socket, the incremental decoder,
//! the outbound queue, the session, and the lifecycle state.
//!
//! A `Connection` is owned by exactly one worker thread and never shared; other threads
//! reach it only by sending its worker a delivery addressed to its [`ConnId`].
//!
//! Lifecycle ([`ConnState`]): `Detecting` (no byte yet) -> `Open` (the framing is
//! known and a [`Session`] speaks it; a binary session first awaits its `Hello`) ->
//! `Closing` (what is owed is flushed, then the FIN, then the peer's FIN or a
//! deadline). Every transition is a method here; the worker never sets fields of the
//! state by hand.
//!
//! On a TLS port the bytes cross the socket inside a [`TlsSession`]: `Detecting` then
//! also covers the handshake, and the framing is detected on the first decrypted byte.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::TcpStream;
use shared::{ConnectionDecoder, Limits, Mode};

use crate::engine::ConnId;
use crate::outbound::Outbound;
use crate::permit::Permit;
use crate::rate::TokenBucket;
use crate::session::Session;
use crate::stats::CloseReason;
use crate::tls::{TlsRead, TlsSession};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// No byte yet, so the framing is unknown. `reject`: accepted while the server was
    /// full; it is told so in its framing and closed.
    Detecting {
        /// The server was full when it was accepted.
        reject: bool,
    },
    /// The framing is known and the session serves requests.
    Open,
    /// Closing: no more input is served and nothing new is queued.
    Closing(Closing),
}

/// A closing connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closing {
    /// Why; the first reason decided wins.
    pub(crate) reason: CloseReason,
    /// Past it the connection is closed whatever is still queued.
    pub(crate) deadline: Option<Instant>,
    /// Our FIN is sent (everything owed is written); waiting for the peer's.
    pub(crate) fin_sent: bool,
    /// Close at the end of this turn after one last write attempt.
    pub(crate) now: bool,
}

/// Why the worker is not reading a connection for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitList {
    /// It had more input than one turn takes, or a congested worker held reading back.
    Backlog,
    /// Out of rate-limit tokens.
    Throttled,
    /// A large holder of incomplete input while the inbound budget is full.
    Parked,
}

/// What [`Connection::enqueue`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Queued for sending.
    Queued,
    /// Dropped: the connection is closing.
    Dropped,
    /// Dropped, and this frame made the connection a slow consumer.
    BecameSlow,
}

/// What reading from the socket produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Bytes were fed to the decoder.
    Data {
        /// Bytes fed to the decoder (plaintext).
        fed: usize,
        /// Bytes read from the socket (more than `fed` with TLS).
        wire: usize,
        /// The read found the socket empty: a new readiness edge brings more.
        drained: bool,
    },
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
    /// TLS port: the first byte is not TLS (a plaintext client). Carries that byte.
    NotTls(u8),
    /// TLS port: the peer's bytes are not TLS that rustls accepts.
    TlsRefused,
}

/// A client connection owned by one worker.
#[derive(Debug)]
pub(crate) struct Connection {
    /// This connection's id.
    pub(crate) id: ConnId,
    /// The non-blocking socket, registered with the owning worker's `Poll`.
    pub(crate) stream: TcpStream,
    /// On a TLS port, the TLS state every byte passes through; boxed, as it is large
    /// and plaintext connections have none.
    tls: Option<Box<TlsSession>>,
    /// Remote address, for logs.
    pub(crate) peer: SocketAddr,
    /// Decoder; its mode becomes known with the first byte.
    pub(crate) decoder: ConnectionDecoder,
    /// The protocol state, once the framing is known.
    pub(crate) session: Option<Session>,
    state: ConnState,
    out: Outbound,
    /// Whether WRITABLE interest is registered (only while output is pending).
    pub(crate) writable_armed: bool,
    /// Whether the connection is on the worker's to-flush list.
    pub(crate) dirty: bool,
    /// The worker's waiting list the connection is on, if any: the server is holding
    /// its input back.
    pub(crate) waiting: Option<WaitList>,
    /// When the connection last sent anything.
    pub(crate) last_input: Instant,
    /// When the connection was accepted.
    pub(crate) accepted_at: Instant,
    /// Whether a keepalive ping is outstanding.
    pub(crate) pinged: bool,
    /// Flood control.
    pub(crate) bucket: TokenBucket,
    /// Since when the connection has been continuously held back by the rate limit.
    pub(crate) throttled_since: Option<Instant>,
    /// A request was handed to the engine and its answer has not been applied yet: no
    /// further request of this connection is applied meanwhile.
    pub(crate) awaiting: bool,
    /// Bytes of incomplete input this connection has counted in the server's inbound
    /// total (`Stats::inbound`).
    pub(crate) held: usize,
    /// Since when its buffered input has held an incomplete frame or line without any
    /// complete one being decoded.
    pub(crate) partial_since: Option<Instant>,
    /// Its place in the connection counts, released when the connection is dropped.
    _permit: Permit,
}

impl Connection {
    /// A freshly accepted connection; `tls` on a TLS port.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: ConnId,
        stream: TcpStream,
        tls: Option<TlsSession>,
        peer: SocketAddr,
        limits: Limits,
        bucket: TokenBucket,
        permit: Permit,
        now: Instant,
    ) -> Self {
        let reject = permit.is_reject();
        Self {
            id,
            stream,
            tls: tls.map(Box::new),
            peer,
            decoder: ConnectionDecoder::new(limits),
            session: None,
            state: ConnState::Detecting { reject },
            out: Outbound::default(),
            writable_armed: false,
            dirty: false,
            waiting: None,
            last_input: now,
            accepted_at: now,
            pinged: false,
            bucket,
            throttled_since: None,
            awaiting: false,
            held: 0,
            partial_since: None,
            _permit: permit,
        }
    }

    /// The lifecycle state.
    pub(crate) fn state(&self) -> ConnState {
        self.state
    }

    /// Whether the connection is on a TLS port (its bytes pass through rustls).
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The framing, once known.
    pub(crate) fn mode(&self) -> Option<Mode> {
        self.decoder.mode()
    }

    /// Since when the connection can carry the protocol: its acceptance, or on a TLS
    /// port the end of its handshake (`None` while that runs).
    pub(crate) fn ready_since(&self) -> Option<Instant> {
        match &self.tls {
            None => Some(self.accepted_at),
            Some(tls) => tls.ready_at(),
        }
    }

    /// Whether a TLS handshake still runs.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// A plaintext client on the TLS port: it is answered in plaintext from now on
    /// (its refusal, then the close).
    pub(crate) fn drop_tls(&mut self) {
        self.tls = None;
    }

    /// Whether it was accepted while the server was full.
    pub(crate) fn is_rejected(&self) -> bool {
        matches!(self.state, ConnState::Detecting { reject: true })
    }

    /// Whether this connection will take no more input.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(self.state, ConnState::Closing(_))
    }

    /// Whether it is to be closed at the end of this turn.
    pub(crate) fn closes_now(&self) -> bool {
        matches!(self.state, ConnState::Closing(Closing { now: true, .. }))
    }

    /// The close reason, once closing.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            ConnState::Closing(c) => Some(c.reason),
            _ => None,
        }
    }

    /// Detecting -> Open, with the session for the framing just seen.
    pub(crate) fn open(&mut self, session: Session) {
        if matches!(self.state, ConnState::Detecting { .. }) {
            self.state = ConnState::Open;
            self.session = Some(session);
        }
    }

    /// Starts closing gracefully: what is queued is flushed, then the FIN, then the
    /// peer's FIN is awaited, all within `within`. Does nothing if already closing.
    pub(crate) fn begin_close(&mut self, reason: CloseReason, within: Duration, now: Instant) {
        if !self.is_closing() {
            self.state = ConnState::Closing(Closing {
                reason,
                deadline: now.checked_add(within),
                fin_sent: false,
                now: false,
            });
        }
    }

    /// Closes at the end of this turn after one last write attempt. A connection
    /// already closing keeps its first reason.
    pub(crate) fn close_now(&mut self, reason: CloseReason) {
        match &mut self.state {
            ConnState::Closing(c) => c.now = true,
            state => {
                *state = ConnState::Closing(Closing {
                    reason,
                    deadline: None,
                    fin_sent: false,
                    now: true,
                });
            }
        }
    }

    /// Whether everything owed is written and our FIN can go out.
    pub(crate) fn ready_for_fin(&self) -> bool {
        matches!(
            self.state,
            ConnState::Closing(Closing {
                fin_sent: false,
                now: false,
                ..
            })
        ) && self.out.is_empty()
            && !self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Sends our FIN and waits at most `linger` for the peer's.
    pub(crate) fn send_fin(&mut self, now: Instant, linger: Duration) {
        if let ConnState::Closing(c) = &mut self.state {
            if let Some(tls) = &mut self.tls {
                tls.close_notify(&mut self.stream);
            }
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
            c.fin_sent = true;
            let linger = now.checked_add(linger);
            c.deadline = match (c.deadline, linger) {
                (Some(d), Some(l)) => Some(d.min(l)),
                (d, l) => d.or(l),
            };
        }
    }

    /// Whether the FIN is sent.
    pub(crate) fn fin_sent(&self) -> bool {
        matches!(
            self.state,
            ConnState::Closing(Closing { fin_sent: true, .. })
        )
    }

    /// Whether a closing deadline has passed.
    pub(crate) fn deadline_passed(&self, now: Instant) -> bool {
        matches!(self.state, ConnState::Closing(Closing { deadline: Some(d), .. }) if now >= d)
    }

    /// Brings this connection's share of the server's inbound total (`total`) up to
    /// date with what its decoder holds. Touches the shared counter only when the
    /// share changes, so reads that end on a frame boundary never do.
    pub(crate) fn account_held(&mut self, total: &std::sync::atomic::AtomicU64) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.decoder.buffered();
        if now > self.held {
            total.fetch_add((now - self.held) as u64, Relaxed);
        } else if now < self.held {
            total.fetch_sub((self.held - now) as u64, Relaxed);
        }
        self.held = now;
    }

    /// Gives back this connection's share of the inbound total (at close).
    pub(crate) fn release_held(&mut self, total: &std::sync::atomic::AtomicU64) {
        total.fetch_sub(self.held as u64, std::sync::atomic::Ordering::Relaxed);
        self.held = 0;
    }

    /// Queued outbound bytes (plus one while TLS records wait to be written).
    pub(crate) fn pending(&self) -> usize {
        let tls = self.tls.as_ref().is_some_and(|tls| tls.wants_write());
        self.out.len() + usize::from(tls)
    }

    /// Queues `bytes` for sending. A closing connection takes nothing new. A
    /// connection whose queue already holds `max_pending` bytes or more is a slow
    /// consumer: its queue is dropped except a partly written first frame (so the
    /// stream stays decodable), and it starts closing within `grace`; the caller
    /// queues the error with [`Connection::enqueue_final`]. Any single frame fits an
    /// empty queue, so the queue never exceeds `max_pending` plus one frame.
    pub(crate) fn enqueue(
        &mut self,
        bytes: Bytes,
        max_pending: usize,
        grace: Duration,
    ) -> Enqueued {
        if self.is_closing() {
            return Enqueued::Dropped;
        }
        if self.out.len() >= max_pending {
            self.out.drop_unstarted();
            self.begin_close(CloseReason::SlowConsumer, grace, Instant::now());
            return Enqueued::BecameSlow;
        }
        self.out.push(bytes);
        Enqueued::Queued
    }

    /// Queues `bytes` whatever the state and the pending limit: a last error before
    /// closing, or the shutdown notice.
    pub(crate) fn enqueue_final(&mut self, bytes: Bytes) {
        if !self.fin_sent() {
            self.out.push(bytes);
        }
    }

    /// Reads once into `scratch` and feeds the decoder (with TLS: reads and decrypts
    /// until there is plaintext or nothing more to read).
    pub(crate) fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        if let Some(tls) = &mut self.tls {
            return Ok(match tls.read(&mut self.stream, scratch)? {
                TlsRead::Data { n, drained, wire } => {
                    self.decoder.feed(&scratch[..n]);
                    ReadOutcome::Data {
                        fed: n,
                        wire,
                        drained,
                    }
                }
                TlsRead::WouldBlock => ReadOutcome::WouldBlock,
                TlsRead::Eof => ReadOutcome::Eof,
                TlsRead::NotTls(first) => ReadOutcome::NotTls(first),
                TlsRead::Refused => ReadOutcome::TlsRefused,
            });
        }
        loop {
            return match self.stream.read(scratch) {
                Ok(0) => Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.decoder.feed(&scratch[..n]);
                    Ok(ReadOutcome::Data {
                        fed: n,
                        wire: n,
                        drained: n < scratch.len(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Reads and throws away whatever the peer sent, up to 16 reads per call. Returns
    /// true once the peer has closed its side (or the socket failed).
    pub(crate) fn discard_input(&mut self, scratch: &mut [u8]) -> bool {
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

    /// Writes queued output until the queue is empty or the socket would block (with
    /// TLS: encrypting as the TLS buffer limit allows). Returns the socket bytes
    /// written.
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        match &mut self.tls {
            None => self.out.write_to(&mut self.stream),
            Some(tls) => {
                let out = &mut self.out;
                tls.flush(&mut self.stream, |mut sink| out.write_to(&mut sink))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection over a loopback pair whose peer never reads.
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
            None,
            addr,
            Limits::default(),
            TokenBucket::new(0, 1, now),
            std::sync::Arc::new(crate::permit::Admission::default()).admit(false),
            now,
        );
        (conn, peer)
    }

    const GRACE: Duration = Duration::from_secs(2);

    #[test]
    fn slow_consumer_keeps_a_partly_written_frame_and_closes_gracefully() {
        let (mut conn, _peer) = stalled_connection();
        let now = Instant::now();
        let big = Bytes::from(vec![7u8; 32 << 20]);
        assert_eq!(
            conn.enqueue(big.clone(), usize::MAX, GRACE),
            Enqueued::Queued
        );
        let written = conn.flush().unwrap();
        assert!(written > 0 && written < big.len(), "wrote {written}");
        let left = conn.pending();
        assert_eq!(left, big.len() - written);
        // The queue is past the limit: the next frame makes it a slow consumer.
        assert_eq!(
            conn.enqueue(Bytes::from_static(b"x"), 1, GRACE),
            Enqueued::BecameSlow
        );
        assert_eq!(conn.close_reason(), Some(CloseReason::SlowConsumer));
        assert!(!conn.closes_now(), "it gets a grace to finish the frame");
        assert_eq!(
            conn.pending(),
            left,
            "the partly written frame stays queued"
        );
        // Once condemned, nothing new is queued, but the final error is.
        assert_eq!(
            conn.enqueue(Bytes::from_static(b"y"), usize::MAX, GRACE),
            Enqueued::Dropped
        );
        conn.enqueue_final(Bytes::from_static(b"error"));
        assert_eq!(conn.pending(), left + 5);
        assert!(!conn.deadline_passed(now));
        assert!(conn.deadline_passed(Instant::now() + GRACE));
    }

    #[test]
    fn any_single_frame_fits_an_empty_queue() {
        let (mut conn, _peer) = stalled_connection();
        let frame = Bytes::from(vec![1u8; 4096]);
        assert_eq!(conn.enqueue(frame.clone(), 1024, GRACE), Enqueued::Queued);
        assert_eq!(conn.enqueue(frame, 1024, GRACE), Enqueued::BecameSlow);
        assert_eq!(conn.pending(), 0, "an unwritten queue is dropped whole");
    }

    #[test]
    fn the_first_close_reason_wins_and_closing_now_escalates() {
        let (mut conn, _peer) = stalled_connection();
        let now = Instant::now();
        assert_eq!(conn.state(), ConnState::Detecting { reject: false });
        conn.begin_close(CloseReason::ProtocolError, GRACE, now);
        conn.begin_close(CloseReason::Goodbye, GRACE, now);
        assert_eq!(conn.close_reason(), Some(CloseReason::ProtocolError));
        assert!(!conn.closes_now());
        conn.close_now(CloseReason::Reset);
        assert!(conn.closes_now());
        assert_eq!(conn.close_reason(), Some(CloseReason::ProtocolError));
    }

    #[test]
    fn the_fin_goes_out_once_the_queue_is_empty_and_shortens_the_deadline() {
        let (mut conn, _peer) = stalled_connection();
        let now = Instant::now();
        conn.enqueue(Bytes::from_static(b"bye"), usize::MAX, GRACE);
        conn.begin_close(CloseReason::Goodbye, Duration::from_secs(60), now);
        assert!(!conn.ready_for_fin(), "output is still queued");
        conn.flush().unwrap();
        assert!(conn.ready_for_fin());
        conn.send_fin(now, Duration::from_secs(2));
        assert!(conn.fin_sent());
        assert!(!conn.ready_for_fin());
        assert!(conn.deadline_passed(now + Duration::from_secs(2)));
        conn.enqueue_final(Bytes::from_static(b"late"));
        assert_eq!(conn.pending(), 0, "nothing is queued after our FIN");
    }
}
