//! [`Transport`]: a client's non-blocking socket, plain or inside TLS, behind `Read`
//! and `Write` so the client code is the same for both.
//!
//! With TLS, `write` hands plaintext to rustls and writes the records it makes as far
//! as the socket takes them; records left over wait in rustls (at most its 64 KiB
//! buffer limit; past it `write` says `WouldBlock` and the client keeps the rest in
//! its own buffer) and go out on the next `write` or `flush`. `read` returns
//! decrypted bytes, reading and decrypting one socket read at a time, and writes what
//! the handshake needs to send back. No extra thread and no extra copy of the
//! plaintext besides rustls's own.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use shared::tls::rustls::pki_types::ServerName;
use shared::tls::rustls::{ClientConfig, ClientConnection};

/// What a TLS client needs to start a session: the configuration (trusted roots or
/// none) and the name the server's certificate must carry.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// Shared by every connection of a run.
    pub config: Arc<ClientConfig>,
    /// The host of `--addr`.
    pub name: ServerName<'static>,
}

impl PartialEq for TlsClient {
    /// The same configuration (the same `Arc`) and name.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.name == other.name
    }
}

/// A client's socket, plain or TLS.
#[derive(Debug)]
pub(crate) struct Transport {
    stream: TcpStream,
    tls: Option<Box<TlsState>>,
}

#[derive(Debug)]
struct TlsState {
    conn: ClientConnection,
    /// Whether the last socket read got less than it asked for (the socket is empty).
    last_read_short: bool,
}

impl Transport {
    /// Wraps a connecting socket; with `tls` the ClientHello is queued at once and
    /// goes out on the first `flush`.
    pub(crate) fn new(stream: TcpStream, tls: Option<&TlsClient>) -> io::Result<Self> {
        let tls = match tls {
            None => None,
            Some(tls) => {
                let conn = ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
                    .map_err(io::Error::other)?;
                Some(Box::new(TlsState {
                    conn,
                    last_read_short: false,
                }))
            }
        };
        Ok(Self { stream, tls })
    }

    /// The socket, for registration and connect checks.
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.stream
    }

    pub(crate) fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.register(&mut self.stream, token, interest)
    }

    pub(crate) fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.reregister(&mut self.stream, token, interest)
    }

    pub(crate) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.stream)
    }

    /// Whether TLS records wait for the socket to take them.
    pub(crate) fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.wants_write())
    }

    /// Whether a read that returned `n` of `len` bytes found the socket empty, so a
    /// new readiness edge will bring what comes next (with TLS, only when the socket
    /// read itself was short and no decrypted bytes are left).
    pub(crate) fn drained(&self, n: usize, len: usize) -> bool {
        n < len && self.tls.as_ref().is_none_or(|t| t.last_read_short)
    }
}

/// Writes the records rustls holds until it holds none or the socket is full.
fn write_records(conn: &mut ClientConnection, stream: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.stream.read(buf);
        };
        loop {
            match tls.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server's FIN without a close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let mut probe = ShortReadProbe {
                stream: &mut self.stream,
                short: false,
            };
            tls.conn.read_tls(&mut probe)?;
            tls.last_read_short = probe.short;
            tls.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Handshake replies, key updates, alerts.
            write_records(&mut tls.conn, &mut self.stream)?;
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.stream.write(buf);
        };
        let mut n = tls.conn.writer().write(buf)?;
        write_records(&mut tls.conn, &mut self.stream)?;
        if n == 0 && !buf.is_empty() {
            // rustls's buffer was at its limit; once the socket took those records it
            // takes more. `WouldBlock` only when the socket itself is full, so a
            // WRITABLE event is sure to follow.
            n = tls.conn.writer().write(buf)?;
            write_records(&mut tls.conn, &mut self.stream)?;
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        Ok(n)
    }

    /// Writes the TLS records left over; never blocks (what the socket does not take
    /// stays for the next call).
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            None => Ok(()),
            Some(tls) => write_records(&mut tls.conn, &mut self.stream),
        }
    }
}

/// A socket read that remembers whether it got less than asked for.
struct ShortReadProbe<'a> {
    stream: &'a mut TcpStream,
    short: bool,
}

impl Read for ShortReadProbe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}
