//! The ways a hostile client misbehaves, and what the server is expected to answer.

use std::fmt;
use std::str::FromStr;

use shared::ErrorCode;

/// One way of misbehaving (or, for [`Kind::Idle`], of merely holding a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Random bytes with a random first byte (so text or binary mode), ending in a
    /// newline. Expected: some 1xx error and a close, or no answer to an incomplete frame.
    Garbage,
    /// A binary frame header announcing `max_frame + 1` bytes right after `Welcome`.
    /// Expected: error 101 and a close, without the body ever being sent.
    Oversize,
    /// A text line that is not UTF-8. Expected: `ERR 103` and a close.
    BadUtf8Line,
    /// A binary `Say` frame whose text is not UTF-8. Expected: error 103 and a close.
    BadUtf8Frame,
    /// `Hello`, then half of an `Echo` frame, then a close (FIN). Expected: `Welcome`,
    /// no error; the server counts an EOF.
    Torn,
    /// Connect and close at once without sending a byte; half of them (at random) with a
    /// reset (linger 0). Expected: nothing.
    Instant,
    /// `Hello` and `Echo` frames written one byte at a time. Expected: every echo is
    /// answered once its last byte arrives.
    Slowloris,
    /// `Echo` frames as fast as the socket takes them, reading the replies. Expected:
    /// replies at about the server's `--rate-limit`, error 209 (rate-limited) when the
    /// limit starts holding it back and no other, no close (within 30 s).
    Flooder,
    /// Joins a busy room with a tiny receive buffer and never reads. Expected: closed
    /// as a slow consumer (error 301 if the server could still write it).
    NonReader,
    /// Sends large messages to the busy room so non-readers fall behind; reads
    /// everything. Added automatically when non-readers run.
    Talker,
    /// `Hello`, then silence (answering pings); at the end one `Echo`, which must be
    /// answered. Expected: `Welcome` and the final echo reply.
    Idle,
    /// `Hello`, then the first part of a large frame, then nothing: a client stuck
    /// mid-frame, meant to be killed with SIGKILL. Expected: `Welcome`, no error.
    Partial,
    /// Like [`Kind::Partial`], but waits for the server to give up on the frame.
    /// Expected: `Welcome`, then error 302 and a close once the server's
    /// `--frame-timeout` has passed (so run longer than that).
    Stalled,
    /// `Hello`, then joins `--rooms-per-conn` rooms of its own (`ROOM-SLOT-K`), then
    /// silence (answering pings): it fills the server with rooms. Expected: every join
    /// acknowledged (`Joined`), no error.
    RoomHolder,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 14] = [
        Kind::Garbage,
        Kind::Oversize,
        Kind::BadUtf8Line,
        Kind::BadUtf8Frame,
        Kind::Torn,
        Kind::Instant,
        Kind::Slowloris,
        Kind::Flooder,
        Kind::NonReader,
        Kind::Talker,
        Kind::Idle,
        Kind::Partial,
        Kind::Stalled,
        Kind::RoomHolder,
    ];

    /// The protocol violations of the "1,000 hostile clients" soak case.
    pub const PROTOCOL_ABUSE: [Kind; 6] = [
        Kind::Garbage,
        Kind::Oversize,
        Kind::BadUtf8Line,
        Kind::BadUtf8Frame,
        Kind::Torn,
        Kind::Instant,
    ];

    /// Name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Garbage => "garbage",
            Kind::Oversize => "oversize",
            Kind::BadUtf8Line => "bad-utf8-line",
            Kind::BadUtf8Frame => "bad-utf8-frame",
            Kind::Torn => "torn",
            Kind::Instant => "instant",
            Kind::Slowloris => "slowloris",
            Kind::Flooder => "flooder",
            Kind::NonReader => "non-reader",
            Kind::Talker => "talker",
            Kind::Idle => "idle",
            Kind::Partial => "partial",
            Kind::Stalled => "stalled",
            Kind::RoomHolder => "room-holder",
        }
    }

    /// The error code this kind must provoke, if exactly one is expected.
    pub fn expected_code(self) -> Option<ErrorCode> {
        match self {
            Kind::Oversize => Some(ErrorCode::FRAME_TOO_LARGE),
            Kind::BadUtf8Line | Kind::BadUtf8Frame => Some(ErrorCode::INVALID_UTF8),
            Kind::Stalled => Some(ErrorCode::IDLE_TIMEOUT),
            _ => None,
        }
    }

    /// Whether this kind speaks the binary protocol from its first byte (garbage picks
    /// per connection).
    pub fn is_binary(self) -> bool {
        !matches!(self, Kind::BadUtf8Line | Kind::Instant | Kind::Garbage)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind name that is not one of [`Kind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}; kinds: {list}", list = Kind::ALL.map(Kind::name).join(", "))]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Parses a comma-separated list of kinds; `all` means the nine kinds before `talker`
/// in [`Kind::ALL`] (the ones after it talk, hold a connection, get stuck mid-frame or
/// fill the server with rooms), `abuse` the protocol violations of
/// [`Kind::PROTOCOL_ABUSE`].
pub fn parse_kinds(list: &str) -> Result<Vec<Kind>, UnknownKind> {
    let mut kinds = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "all" => kinds.extend(Kind::ALL.into_iter().take_while(|&k| k != Kind::Talker)),
            "abuse" => kinds.extend(Kind::PROTOCOL_ABUSE),
            other => kinds.push(other.parse()?),
        }
    }
    kinds.dedup();
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>(), Ok(kind));
        }
        assert!("nope".parse::<Kind>().is_err());
    }

    #[test]
    fn kind_lists_expand() {
        assert_eq!(parse_kinds("abuse").unwrap(), Kind::PROTOCOL_ABUSE.to_vec());
        assert_eq!(parse_kinds("all").unwrap().len(), 9);
        assert_eq!(
            parse_kinds("idle, flooder").unwrap(),
            vec![Kind::Idle, Kind::Flooder]
        );
        assert!(parse_kinds("idle,bogus").is_err());
    }
}
