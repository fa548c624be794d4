//! TLS on the chat port: the certificate store (loaded at start, reloaded on request
//! without touching open sessions) and [`TlsSession`], one connection's rustls state
//! driven from its worker's non-blocking socket with `read_tls`, `process_new_packets`
//! and `write_tls`. No thread of its own: the worker that owns the socket does the
//! cryptography in its turn.
//!
//! Memory per TLS connection, besides what a plaintext connection holds:
//! - received records: rustls buffers at most one record (about 16.4 KiB) once the
//!   handshake is done, and at most 64 KiB of handshake messages before;
//! - decrypted input: `read_tls` stops taking bytes once 16 KiB of plaintext wait, and
//!   the worker moves plaintext into the connection's decoder before it reads more,
//!   where the `--max-inbound` budget applies as for plaintext;
//! - output: queued frames stay in the connection's `Outbound` (bounded by
//!   `--max-pending`) and are encrypted only while rustls holds less than
//!   [`TLS_BUFFER_LIMIT`] of records not yet written, so a slow reader costs at most
//!   that plus one record on top of its queue.

use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

/// Encrypted output rustls may hold per connection before the worker stops moving
/// queued frames into it (rustls's own default, set explicitly so the bound is ours).
pub(crate) const TLS_BUFFER_LIMIT: usize = 64 << 10;

/// The first byte of every TLS connection: the content type of a handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Where the server's certificate chain and private key are read from, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate could not be loaded. The server keeps serving with the
/// certificate it had (on a reload) or does not start (at start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file cannot be read or is not PEM. Point `--tls-cert` at a PEM
    /// file holding the chain, leaf first.
    #[error("cannot read certificates from {}: {source}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file cannot be read or holds no private key. Point `--tls-key` at the
    /// PEM private key of the certificate.
    #[error("cannot read a private key from {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the pair (for example a key that does not belong to the
    /// certificate).
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A reload was asked of a server started without `--tls-cert`.
    #[error("the server serves no TLS")]
    NotEnabled,
}

/// The configuration new TLS connections start with. Read by the workers at every
/// accepted connection (a read lock and an `Arc` clone), replaced as a whole by
/// [`CertStore::reload`]: a session keeps the `Arc` it started with, so a reload never
/// touches connections already open.
#[derive(Debug)]
pub(crate) struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl CertStore {
    /// Reads the certificate and key.
    pub(crate) fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(config),
        })
    }

    /// Reads the files again; new handshakes use them from now on. On failure the
    /// certificate in use stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self.current.write() = config;
        Ok(())
    }

    /// A server session for a newly accepted connection.
    pub(crate) fn session(&self) -> Result<TlsSession, rustls::Error> {
        let config = Arc::clone(&self.current.read());
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(TlsSession {
            conn,
            seen_first_byte: false,
            last_read_short: false,
            wire_read: 0,
            ready_at: None,
            failed: false,
        })
    }
}

fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.clone(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |source| TlsError::Certificates {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// What reading a TLS connection produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TlsRead {
    /// `n` bytes of plaintext are in the caller's buffer. `drained`: the socket was
    /// found empty and no plaintext is left in rustls, so only a new readiness edge
    /// brings more. `wire`: bytes read from the socket since the last `Data`.
    Data {
        /// Plaintext bytes.
        n: usize,
        /// Socket and rustls both empty.
        drained: bool,
        /// Socket bytes behind it (handshake included).
        wire: usize,
    },
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed: its `close_notify`, or its FIN after the handshake.
    Eof,
    /// The first byte is not a TLS handshake record: a plaintext client on the TLS
    /// port. Carries that byte (`00` for a binary client).
    NotTls(u8),
    /// What the peer sent is not TLS rustls accepts (garbage, a bad or cut-off
    /// record, a failed handshake). An alert may be queued for writing.
    Refused,
}

/// One connection's TLS state, owned by its worker like the connection.
#[derive(Debug)]
pub(crate) struct TlsSession {
    conn: ServerConnection,
    /// Whether the first byte was looked at (plaintext clients are told apart by it).
    seen_first_byte: bool,
    /// Whether the last `read_tls` got less than it asked for (the socket is empty).
    last_read_short: bool,
    /// Socket bytes read since the last `Data` was reported.
    wire_read: usize,
    /// When the handshake finished.
    ready_at: Option<Instant>,
    /// rustls reported an error: no `close_notify` follows its alert.
    failed: bool,
}

impl TlsSession {
    /// When the handshake finished; `None` while it runs.
    pub(crate) fn ready_at(&self) -> Option<Instant> {
        self.ready_at
    }

    /// Whether the handshake is still running.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether encrypted output waits to be written.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Reads plaintext into `buf`: what rustls already decrypted first, else one read
    /// from the socket, decrypted, and so on until there is plaintext or nothing more
    /// to read.
    pub(crate) fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<TlsRead> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) if !buf.is_empty() => return Ok(TlsRead::Eof),
                Ok(n) => {
                    return Ok(TlsRead::Data {
                        n,
                        drained: self.last_read_short && n < buf.len(),
                        wire: std::mem::take(&mut self.wire_read),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(TlsRead::Eof),
                Err(e) => return Err(e),
            }
            if !self.seen_first_byte {
                let mut first = [0u8; 1];
                match stream.peek(&mut first) {
                    Ok(0) => return Ok(TlsRead::Eof),
                    Ok(_) if first[0] != HANDSHAKE_RECORD => return Ok(TlsRead::NotTls(first[0])),
                    Ok(_) => self.seen_first_byte = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(TlsRead::WouldBlock);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let mut probe = ShortReadProbe {
                stream,
                short: false,
            };
            match self.conn.read_tls(&mut probe) {
                // A FIN before the handshake finished cuts it off; after it, the reader
                // reports the end above.
                Ok(0) if self.conn.is_handshaking() => return Ok(self.refuse()),
                Ok(0) => {}
                Ok(n) => {
                    self.wire_read += n;
                    self.last_read_short = probe.short;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The deframer's own limits (an oversized handshake message).
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(self.refuse()),
                Err(e) => return Err(e),
            }
            let was_handshaking = self.conn.is_handshaking();
            if let Err(e) = self.conn.process_new_packets() {
                tracing::debug!("TLS error: {e}");
                return Ok(self.refuse());
            }
            if was_handshaking && !self.conn.is_handshaking() {
                self.ready_at = Some(Instant::now());
            }
        }
    }

    fn refuse(&mut self) -> TlsRead {
        self.failed = true;
        TlsRead::Refused
    }

    /// Encrypts what `plaintext` holds as far as [`TLS_BUFFER_LIMIT`] allows and writes
    /// records to `stream` until they are all out or the socket is full. `plaintext`
    /// writes into a sink and returns how much it moved. Returns the socket bytes
    /// written.
    pub(crate) fn flush(
        &mut self,
        stream: &mut TcpStream,
        mut plaintext: impl FnMut(&mut dyn Write) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut written = 0;
        loop {
            let moved = if self.failed {
                0
            } else {
                plaintext(&mut PlaintextSink(&mut self.conn))?
            };
            let mut wrote = false;
            while self.conn.wants_write() {
                match self.conn.write_tls(stream) {
                    Ok(n) => {
                        written += n;
                        wrote = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if moved == 0 && !wrote {
                return Ok(written);
            }
        }
    }

    /// Queues a `close_notify` (unless the session failed) and writes what fits.
    pub(crate) fn close_notify(&mut self, stream: &mut TcpStream) {
        if !self.failed {
            self.conn.send_close_notify();
        }
        while self.conn.wants_write() {
            match self.conn.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
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

/// rustls's plaintext writer, saying `WouldBlock` (instead of writing nothing) once
/// its buffer limit is reached, so an `Outbound` stops there and keeps the rest.
struct PlaintextSink<'a>(&'a mut ServerConnection);

impl Write for PlaintextSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.0.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
