//! Why a session ended other than by the user's choice, and the exit code each reason
//! maps to.
//!
//! Every variant's text is one line meant for stderr: text that came from the server is
//! escaped before it gets here, so printing it cannot drive the terminal.

use std::io;
use std::time::Duration;

use shared::ErrorCode;

/// Exit code: the user left (`/quit`, Ctrl+C, Ctrl+D, end of piped input).
pub const EXIT_OK: u8 = 0;
/// Exit code: a local failure (the terminal or standard input failed, a thread could not
/// start).
pub const EXIT_LOCAL: u8 = 1;
/// Exit code: bad command-line arguments (clap's own convention): what clap refuses,
/// and every [`crate::cli::UsageError`] found after parsing, before connecting.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the server could not be reached or did not welcome us.
pub const EXIT_CONNECT: u8 = 3;
/// Exit code: the connection broke or the server closed it without notice (and, unless
/// `--no-reconnect`, no reconnect succeeded within `--reconnect-for`).
pub const EXIT_CONNECTION_LOST: u8 = 4;
/// Exit code: the server announced its shutdown.
pub const EXIT_SERVER_SHUTDOWN: u8 = 5;
/// Exit code: the server closed the connection with an error, or broke the protocol.
pub const EXIT_PROTOCOL: u8 = 6;

/// Why the client stopped without the user asking it to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing accepted a TCP connection at any address `--addr` resolved to. Check
    /// that the server runs and `--addr` names its host and port.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The `--addr` given.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A TCP connection was made but the server did not answer `Hello` with `Welcome`
    /// (not a chat server, a different protocol version, or too slow).
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The `--addr` given.
        addr: String,
        /// What went wrong, already escaped.
        reason: String,
    },
    /// The connection broke or the server closed it without saying why.
    #[error("connection to the server lost: {reason}")]
    ConnectionLost {
        /// What happened, already escaped.
        reason: String,
    },
    /// The server sent `Shutdown`: it is stopping and closes every connection.
    #[error("server shut down: {reason}")]
    ServerShutdown {
        /// The server's reason, already escaped.
        reason: String,
    },
    /// The server reported an error that closes the connection (codes `1xx` and `3xx`,
    /// such as server full or idle timeout).
    #[error("server closed the connection: error {code}: {text}")]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's detail, already escaped.
        text: String,
    },
    /// The server sent bytes that are not a valid frame; the stream cannot be trusted.
    #[error("server broke the protocol: {reason}")]
    Protocol {
        /// What was wrong, already escaped.
        reason: String,
    },
    /// Something on this machine failed: reading standard input, starting a thread.
    #[error("{0}")]
    Local(String),
    /// The connection was lost and no reconnect succeeded within `--reconnect-for`.
    /// Check that the server runs; `--reconnect-for` sets how long to keep trying.
    #[error(
        "connection to the server lost ({cause}); not reconnected within {:.0} s ({attempts} attempts, last: {last})",
        .tried_for.as_secs_f64()
    )]
    GaveUp {
        /// Why the connection was lost, already escaped.
        cause: String,
        /// How long reconnecting was tried.
        tried_for: Duration,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed, already escaped.
        last: String,
    },
}

impl ClientError {
    /// Whether reconnecting may help: the connection broke, the server shut down, or
    /// it closed the connection for a reason of the moment (`3xx`: full, idle, slow).
    /// Not after a protocol error, which would only happen again.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::ConnectionLost { .. } | ClientError::ServerShutdown { .. } => true,
            ClientError::Refused { code, .. } => code.0 / 100 == 3,
            _ => false,
        }
    }

    /// The process exit code for this reason (documented in `docs/CLIENT.md`).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Connect { .. } | ClientError::Handshake { .. } => EXIT_CONNECT,
            ClientError::ConnectionLost { .. } | ClientError::GaveUp { .. } => EXIT_CONNECTION_LOST,
            ClientError::ServerShutdown { .. } => EXIT_SERVER_SHUTDOWN,
            ClientError::Refused { .. } | ClientError::Protocol { .. } => EXIT_PROTOCOL,
            ClientError::Local(_) => EXIT_LOCAL,
        }
    }
}
