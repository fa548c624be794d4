//! The TCP side: connecting, the `Hello`/`Welcome` handshake, writing frames, and the
//! reader thread that turns the byte stream into [`NetEvent`]s.
//!
//! The socket is blocking. The reader thread owns one handle and blocks in `read`; the
//! event loop owns a [`FrameWriter`] on a clone of the same socket. A write timeout
//! keeps a server that stopped reading from hanging the client. With `--tls` both
//! handles are [`ChatStream`]s on one TLS session.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::Sender;
use shared::text::escape;
use shared::{DecodeError, EncodeError, Frame, FrameDecoder, PROTOCOL_VERSION};

use crate::error::ClientError;
use crate::transport::{ChatStream, TlsSettings};

/// Largest frame we accept from the server. The server's own limit bounds what it
/// relays; this bound only stops a broken peer from making us buffer without end.
const MAX_INCOMING_FRAME: usize = 16 << 20;

/// How long a write may block before the server is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server said in its `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The server's protocol version (equal to ours).
    pub version: u16,
    /// Largest frame length the server accepts.
    pub max_frame: u32,
    /// The nick the server gave us.
    pub nick: String,
}

/// Something the reader thread saw on the socket.
#[derive(Debug)]
pub enum NetEvent {
    /// A complete frame.
    Frame(Frame),
    /// The stream ended; no more events follow.
    Closed(CloseCause),
}

/// Why the stream from the server ended.
#[derive(Debug)]
pub enum CloseCause {
    /// The server closed its side.
    Eof,
    /// Reading failed (reset, ...).
    Io(io::Error),
    /// The server sent bytes that are not a frame.
    Decode(DecodeError),
}

impl CloseCause {
    /// The error this cause means when the close was not announced.
    pub fn into_error(self) -> ClientError {
        match self {
            CloseCause::Eof => ClientError::ConnectionLost {
                reason: "the server closed the connection".to_owned(),
            },
            CloseCause::Io(e) => ClientError::ConnectionLost {
                reason: e.to_string(),
            },
            CloseCause::Decode(e) => ClientError::Protocol {
                reason: escape(&e.to_string()).into_owned(),
            },
        }
    }
}

/// Why a frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The frame cannot be encoded (a name over 255 bytes, ...). Nothing was sent; the
    /// connection is fine.
    #[error("{0}")]
    Encode(#[from] EncodeError),
    /// The frame is larger than the server accepts. Nothing was sent.
    #[error("message of {len} bytes is over the server's limit of {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The server's `max_frame`.
        max: usize,
    },
    /// Writing failed: the connection is gone.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes frames to the server.
#[derive(Debug)]
pub struct FrameWriter {
    stream: ChatStream,
    buf: BytesMut,
    /// The server's `max_frame`: larger frames would get us disconnected.
    max_frame: usize,
}

impl FrameWriter {
    /// Encodes and writes one frame.
    pub fn send(&mut self, frame: &Frame) -> Result<(), SendError> {
        self.buf.clear();
        frame.encode(&mut self.buf)?;
        let len = self.buf.len() - shared::frame::LEN_PREFIX;
        if len > self.max_frame {
            return Err(SendError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        self.stream.write_all(&self.buf)?;
        Ok(())
    }

    /// Sends `Goodbye` and closes our sending side; the server flushes and closes.
    pub fn goodbye(&mut self) {
        let _ = self.send(&Frame::Goodbye {
            reason: "bye".to_owned(),
        });
        self.stream.shutdown_write();
    }

    /// Abandons the connection: both directions are shut, so the reader thread's
    /// `read` returns and the thread ends.
    pub fn close(&self) {
        self.stream.shutdown_both();
    }
}

/// A connection that completed the handshake.
#[derive(Debug)]
pub struct Connected {
    /// Writing half.
    pub writer: FrameWriter,
    /// What the server said.
    pub welcome: Welcome,
    /// Reading half, with whatever arrived after `Welcome`.
    reader: (ChatStream, FrameDecoder),
}

impl Connected {
    /// Starts the reader thread, which sends every frame and finally one
    /// [`NetEvent::Closed`] into `events`. Give it a bounded channel: when the client
    /// falls behind, the reader stops reading and TCP pushes back on the server, whose
    /// slow-consumer limit then decides, instead of this queue growing without end.
    pub fn spawn_reader(&mut self, events: Sender<NetEvent>) -> io::Result<()> {
        let stream = self.reader.0.try_clone()?;
        let decoder = std::mem::replace(&mut self.reader.1, FrameDecoder::new(0));
        thread::Builder::new()
            .name("chat-reader".to_owned())
            .spawn(move || read_loop(stream, decoder, &events))?;
        Ok(())
    }
}

fn read_loop(mut stream: ChatStream, mut decoder: FrameDecoder, events: &Sender<NetEvent>) {
    let mut buf = vec![0u8; 64 << 10];
    let cause = loop {
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => {
                    if events.send(NetEvent::Frame(frame)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = events.send(NetEvent::Closed(CloseCause::Decode(e)));
                    return;
                }
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => break CloseCause::Eof,
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break CloseCause::Io(e),
        }
    };
    let _ = events.send(NetEvent::Closed(cause));
}

/// Connects to the first of `addrs` (what `addr` resolved to) that accepts, runs the
/// TLS handshake with `tls`, says `Hello`, and waits for `Welcome`, each step bounded
/// by `timeout`. Errors name the server by `addr`.
pub fn connect(
    addr: &str,
    addrs: &[SocketAddr],
    tls: Option<&TlsSettings>,
    timeout: Duration,
) -> Result<Connected, ClientError> {
    let connect_error = |source: io::Error| ClientError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let Some(sock) = stream else {
        return Err(connect_error(last));
    };
    let _ = sock.set_nodelay(true);
    sock.set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(connect_error)?;

    let handshake_error = |reason: String| ClientError::Handshake {
        addr: addr.to_owned(),
        reason,
    };
    let mut stream = match tls {
        None => ChatStream::plain(sock),
        Some(settings) => {
            sock.set_read_timeout(Some(timeout))
                .map_err(|e| handshake_error(e.to_string()))?;
            ChatStream::tls(sock, settings).map_err(|e| handshake_error(format!("TLS: {e}")))?
        }
    };
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
    }
    .to_bytes()
    .map_err(|e| handshake_error(e.to_string()))?;
    stream
        .write_all(&hello)
        .map_err(|e| handshake_error(format!("sending hello: {e}")))?;

    let mut decoder = FrameDecoder::new(MAX_INCOMING_FRAME);
    let welcome = read_welcome(&mut stream, &mut decoder, timeout).map_err(|e| match e {
        WelcomeError::Refused(err) => err,
        WelcomeError::Other(reason) => handshake_error(reason),
    })?;
    stream
        .set_read_timeout(None)
        .map_err(|e| handshake_error(e.to_string()))?;
    let writer_stream = stream
        .try_clone()
        .map_err(|e| handshake_error(e.to_string()))?;
    Ok(Connected {
        writer: FrameWriter {
            stream: writer_stream,
            buf: BytesMut::with_capacity(4096),
            max_frame: usize::try_from(welcome.max_frame).unwrap_or(usize::MAX),
        },
        welcome,
        reader: (stream, decoder),
    })
}

enum WelcomeError {
    /// The server answered with a reason to go away (error, shutdown).
    Refused(ClientError),
    /// Anything else, as a message.
    Other(String),
}

fn read_welcome(
    stream: &mut ChatStream,
    decoder: &mut FrameDecoder,
    timeout: Duration,
) -> Result<Welcome, WelcomeError> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        match decoder.decode() {
            Ok(Some(Frame::Welcome {
                version,
                max_frame,
                nick,
            })) => {
                if version != PROTOCOL_VERSION {
                    return Err(WelcomeError::Other(format!(
                        "server speaks protocol {version}, this client {PROTOCOL_VERSION}"
                    )));
                }
                return Ok(Welcome {
                    version,
                    max_frame,
                    nick,
                });
            }
            Ok(Some(Frame::Error { code, text })) => {
                return Err(WelcomeError::Refused(ClientError::Refused {
                    code,
                    text: escape(&text).into_owned(),
                }));
            }
            Ok(Some(Frame::Shutdown { reason })) => {
                return Err(WelcomeError::Refused(ClientError::ServerShutdown {
                    reason: escape(&reason).into_owned(),
                }));
            }
            Ok(Some(Frame::Ping { token })) => {
                let pong = Frame::Pong { token }.to_bytes().map_err(|e| {
                    WelcomeError::Other(format!("cannot encode pong: {e}")) // cannot happen
                })?;
                stream
                    .write_all(&pong)
                    .map_err(|e| WelcomeError::Other(e.to_string()))?;
                continue;
            }
            Ok(Some(other)) => {
                return Err(WelcomeError::Other(format!(
                    "expected a welcome, got frame type 0x{:02x}",
                    other.frame_type()
                )));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(WelcomeError::Other(format!(
                    "not a chat server? {}",
                    escape(&e.to_string())
                )));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WelcomeError::Other(format!(
                "no welcome within {} s",
                timeout.as_secs_f64()
            )));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| WelcomeError::Other(e.to_string()))?;
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(WelcomeError::Other(
                    "the server closed the connection before welcoming us".to_owned(),
                ));
            }
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(WelcomeError::Other(e.to_string())),
        }
    }
}
