//! The protocol every part of the chat workspace speaks: the server, the load generator
//! and the terminal client.
//!
//! One TCP port carries two framings, chosen by the first byte a client sends: binary
//! length-prefixed frames for programs (first byte `0x00`) and newline-terminated text
//! lines with slash commands for people (anything else). `docs/PROTOCOL.md` is the
//! byte-level specification.
//!
//! Layout:
//! - [`cli`]: what the binaries share about their command lines.
//! - [`frame`]: the [`Frame`] enum (every message, both directions), type codes, error
//!   codes, and the encoder/decoder of frame bodies.
//! - [`codec`]: incremental decoders ([`FrameDecoder`], [`LineDecoder`],
//!   [`ConnectionDecoder`]) that accept bytes in any chunking and enforce [`Limits`].
//! - [`text`]: slash-command parsing, rendering of server frames as text lines, and
//!   escaping of control characters.
//! - [`names`]: nick and room naming rules and case folding.
//! - [`secret`]: [`Password`], whose `Debug` never shows it.
//! - [`time`]: timestamps carried in echo replies.
//! - [`units`]: parsers of the durations and sizes the command lines take.
//! - [`tls`]: the clients' TLS: which server certificates they trust.
//! - [`error`]: [`DecodeError`] and [`EncodeError`].
#![forbid(unsafe_code)]

pub mod cli;
pub mod codec;
pub mod error;
pub mod frame;
pub mod names;
pub mod secret;
pub mod text;
pub mod time;
pub mod tls;
pub mod units;

pub use codec::{ConnectionDecoder, FrameDecoder, Incoming, LineDecoder, Mode};
pub use error::{DecodeError, EncodeError};
pub use frame::{ErrorCode, Frame, PROTOCOL_VERSION, RoomInfo};
pub use secret::Password;

/// TCP port the server listens on and the tools connect to by default.
pub const DEFAULT_PORT: u16 = 7878;

/// Default largest frame length (`LEN`: type byte plus body): 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Default longest text line, terminator excluded: 4 KiB.
pub const DEFAULT_MAX_LINE: usize = 4 << 10;

/// Size limits a decoder enforces before buffering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted binary frame length (type byte plus body).
    pub max_frame: usize,
    /// Longest accepted text line, terminator excluded.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}
