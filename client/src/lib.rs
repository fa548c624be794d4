//! `chat`, the terminal client of the chat server: a `> ` prompt with line editing and
//! history, incoming messages printed above the line being typed, slash commands as in
//! the server's text mode, and a scriptable plain-line mode when stdin is not a
//! terminal. It speaks the binary protocol of the [`shared`] crate.
//!
//! Everything received is shown through [`shared::text::escape`]: no control or escape
//! sequence from the network reaches the terminal. A session that ends for any reason
//! other than the user leaving ends with one line on stderr and a non-zero exit code
//! (see [`error`] and `docs/CLIENT.md`).
//!
//! A lost connection is not such an end unless `--no-reconnect` is given: the client
//! reconnects with bounded, jittered backoff ([`backoff`]), takes its nick back and
//! re-joins its rooms, resuming each from the last message id it saw, until
//! `--reconnect-for` passes (see `client/README.md`).
//!
//! Layout:
//! - [`cli`]: command-line arguments, the validated [`Config`] and [`UsageError`].
//! - [`app`]: [`Client`] and the event loop joining input, network and Ctrl+C.
//! - [`session`]: the session state machine: commands to frames, frames to lines, and
//!   what carries over a reconnect (rooms, last message ids, nick).
//! - [`backoff`]: when to try reconnecting: [`backoff::Backoff`] and its policy.
//! - [`connection`]: connect, handshake, frame writer and reader thread.
//! - [`transport`]: the socket, plain or TLS ([`TlsSettings`]), shared by reader and
//!   writer.
//! - [`console`]: the rustyline terminal and the plain stdin/stdout console.
//! - [`render`]: how frames and echo timings are shown; local time.
//! - [`error`]: [`ClientError`] and the exit codes.
#![forbid(unsafe_code)]

pub mod app;
pub mod backoff;
pub mod cli;
pub mod connection;
pub mod console;
pub mod error;
pub mod render;
pub mod session;
pub mod transport;

pub use app::{Client, Interrupter};
pub use cli::{Args, Config, Mode, UsageError};
pub use error::ClientError;
pub use transport::TlsSettings;

/// Runs a client until the session ends; see [`Client::run`].
pub fn run(config: Config) -> Result<(), ClientError> {
    Client::new(config).run()
}
