//! A blocking binary client with timeouts, for asking the server for its `Stats` from a
//! script (`hostile stats`, once or every so often) and for the round-trip timer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shared::{ErrorCode, Frame, FrameDecoder, PROTOCOL_VERSION};

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Connecting, reading or writing failed: is the server running at that address?
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server closed the connection before answering.
    #[error("the server closed the connection")]
    Closed,
    /// No answer within the timeout: the server is stuck or overloaded.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server sent bytes that are not a valid frame.
    #[error("undecodable frame from the server")]
    Decode(#[from] shared::DecodeError),
    /// The server refused with an error frame (for example 300: server full).
    #[error("the server answered error {code}: {text}")]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// Its text.
        text: String,
    },
}

/// A connected binary client that has been welcomed.
#[derive(Debug)]
pub struct Probe {
    stream: TcpStream,
    decoder: FrameDecoder,
    timeout: Duration,
    buf: Vec<u8>,
}

impl Probe {
    /// Connects, says `Hello` and waits for `Welcome`, each step within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, ProbeError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let mut probe = Self {
            stream,
            decoder: FrameDecoder::new(64 << 20),
            timeout,
            buf: vec![0; 64 << 10],
        };
        probe.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
        })?;
        match probe.recv()? {
            Frame::Welcome { .. } => Ok(probe),
            Frame::Error { code, text } => Err(ProbeError::Refused { code, text }),
            _ => Err(ProbeError::Closed),
        }
    }

    /// Sends one frame.
    pub fn send(&mut self, frame: &Frame) -> Result<(), ProbeError> {
        let mut out = BytesMut::new();
        frame
            .encode(&mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.stream.set_write_timeout(Some(self.timeout))?;
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// Receives the next frame, answering pings on the way.
    pub fn recv(&mut self) -> Result<Frame, ProbeError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(frame) = self.decoder.decode()? {
                if let Frame::Ping { token } = frame {
                    self.send(&Frame::Pong { token })?;
                    continue;
                }
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ProbeError::Timeout(self.timeout));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(ProbeError::Closed),
                Ok(n) => self.decoder.feed(&self.buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ProbeError::Timeout(self.timeout));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Asks for the server's counters.
    pub fn stats(&mut self) -> Result<Vec<(String, u64)>, ProbeError> {
        self.send(&Frame::GetStats)?;
        loop {
            match self.recv()? {
                Frame::Stats { entries } => return Ok(entries),
                Frame::Error { code, text } if code.closes_connection() => {
                    return Err(ProbeError::Refused { code, text });
                }
                _ => {}
            }
        }
    }

    /// Says goodbye and waits (within the timeout) for the server to close.
    pub fn goodbye(mut self) {
        let bye = Frame::Goodbye {
            reason: "probe done".to_owned(),
        };
        if self.send(&bye).is_ok() {
            while self.recv().is_ok() {}
        }
    }
}

/// Connects, fetches the server's `Stats`, and says goodbye.
pub fn fetch_stats(addr: SocketAddr, timeout: Duration) -> Result<Vec<(String, u64)>, ProbeError> {
    let mut probe = Probe::connect(addr, timeout)?;
    let stats = probe.stats()?;
    probe.goodbye();
    Ok(stats)
}

/// Connects once and fetches the server's `Stats` every `interval` for `duration`,
/// handing each snapshot to `sink` with the time since the first request. One
/// connection throughout, so sampling often costs no connection churn.
pub fn watch_stats(
    addr: SocketAddr,
    timeout: Duration,
    interval: Duration,
    duration: Duration,
    mut sink: impl FnMut(Duration, &[(String, u64)]),
) -> Result<(), ProbeError> {
    let mut probe = Probe::connect(addr, timeout)?;
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < duration {
        let stats = probe.stats()?;
        sink(start.elapsed(), &stats);
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    probe.goodbye();
    Ok(())
}
