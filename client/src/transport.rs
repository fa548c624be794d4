//! [`ChatStream`]: the blocking socket to the server, plain or inside TLS, shared by the
//! reader thread and the writer.
//!
//! With TLS both handles share one rustls session behind a mutex. The reader blocks in
//! the socket read *without* the lock (so the writer can send meanwhile), then takes
//! it to decrypt what arrived; the writer takes it to encrypt and write a frame. The
//! reader reads at most 4 KiB at a time and only when no decrypted bytes are left, so
//! rustls never holds more than a record of plaintext.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use shared::tls::rustls::pki_types::ServerName;
use shared::tls::rustls::{ClientConfig, ClientConnection};

/// What the client needs to start a TLS session: the trusted roots (`--ca` or the
/// system's) and the name the server's certificate must carry (the host of `--addr`).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration.
    pub config: Arc<ClientConfig>,
    /// The name to verify.
    pub name: ServerName<'static>,
}

/// One handle on the connection; [`ChatStream::try_clone`] makes another on the same
/// socket and session.
#[derive(Debug)]
pub struct ChatStream {
    sock: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
}

impl ChatStream {
    /// A plaintext stream.
    pub fn plain(sock: TcpStream) -> Self {
        Self { sock, tls: None }
    }

    /// Runs the TLS handshake on `sock` (bounded by its read and write timeouts).
    pub fn tls(mut sock: TcpStream, settings: &TlsSettings) -> io::Result<Self> {
        let mut conn = ClientConnection::new(Arc::clone(&settings.config), settings.name.clone())
            .map_err(io::Error::other)?;
        // Frames are written whole and flushed at once: no limit needed on what waits.
        conn.set_buffer_limit(None);
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(Self {
            sock,
            tls: Some(Arc::new(Mutex::new(conn))),
        })
    }

    /// Another handle on the same connection.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            sock: self.sock.try_clone()?,
            tls: self.tls.clone(),
        })
    }

    /// Bounds blocking reads.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    /// Shuts both directions, so a thread blocked reading returns.
    pub fn shutdown_both(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Closes our sending side (with TLS, after a `close_notify`).
    pub fn shutdown_write(&mut self) {
        if let Some(tls) = &self.tls {
            let mut conn = lock(tls);
            conn.send_close_notify();
            let _ = write_records(&mut conn, &mut self.sock);
        }
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

fn lock(tls: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
    tls.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_records(conn: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

impl Read for ChatStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.sock.read(buf);
        };
        loop {
            match lock(tls).reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server's FIN without a close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let mut raw = [0u8; 4096];
            let n = self.sock.read(&mut raw)?;
            let mut conn = lock(tls);
            let mut rest = &raw[..n];
            loop {
                // A slice of 0 bytes tells rustls of the EOF.
                let taken = conn.read_tls(&mut rest)?;
                conn.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if taken == 0 || rest.is_empty() {
                    break;
                }
            }
            write_records(&mut conn, &mut self.sock)?;
        }
    }
}

impl Write for ChatStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.sock.write(buf);
        };
        let mut conn = lock(tls);
        let n = conn.writer().write(buf)?;
        write_records(&mut conn, &mut self.sock)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.tls {
            None => self.sock.flush(),
            Some(tls) => write_records(&mut lock(tls), &mut self.sock),
        }
    }
}
