//! [`ErrorCode`]: the numeric codes of `Error` frames and `ERR` lines.

/// A numeric error code carried by [`Frame::Error`] and by `ERR` lines in text mode.
///
/// A newtype rather than an enum so a client can show codes a newer server invents.
/// Codes `1xx` are protocol violations (the server closes the connection after sending
/// them), `2xx` refuse one request (the connection stays open), `3xx` are server-side
/// reasons to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// A frame or line could not be parsed (bad field lengths, trailing bytes, ...).
    pub const MALFORMED: Self = Self(100);
    /// A binary frame announced a length over the server's frame limit.
    pub const FRAME_TOO_LARGE: Self = Self(101);
    /// A text line grew past the server's line limit without a newline.
    pub const LINE_TOO_LONG: Self = Self(102);
    /// Text that must be UTF-8 was not.
    pub const INVALID_UTF8: Self = Self(103);
    /// A binary frame carried a type code this server does not know.
    pub const UNKNOWN_TYPE: Self = Self(104);
    /// The client's `Hello` asked for a protocol version the server does not speak.
    pub const VERSION_MISMATCH: Self = Self(105);
    /// The first binary frame was not `Hello`.
    pub const HELLO_REQUIRED: Self = Self(106);
    /// A client sent a frame only a server may send (or a second `Hello`).
    pub const UNEXPECTED_FRAME: Self = Self(107);
    /// A text line started with `/` but named no known command.
    pub const UNKNOWN_COMMAND: Self = Self(200);
    /// A command had missing or extra arguments.
    pub const BAD_ARGUMENTS: Self = Self(201);
    /// The nick is already in use (compared case-insensitively).
    pub const NICK_TAKEN: Self = Self(202);
    /// A nick or room name breaks the naming rules.
    pub const INVALID_NAME: Self = Self(203);
    /// No connected user has that nick.
    pub const NO_SUCH_NICK: Self = Self(204);
    /// No room has that name.
    pub const NO_SUCH_ROOM: Self = Self(205);
    /// The request needs membership of a room the client is not in.
    pub const NOT_IN_ROOM: Self = Self(206);
    /// The request needs a private chat (or an invitation) the client does not have.
    pub const NOT_IN_CHAT: Self = Self(207);
    /// The request makes no sense in the current state (e.g. chatting with yourself).
    pub const INVALID_REQUEST: Self = Self(208);
    /// The client sends faster than the rate limit: from now on the server reads its
    /// messages only at that rate. Sent once each time the client starts to be held
    /// back; nothing is refused or lost.
    pub const RATE_LIMITED: Self = Self(209);
    /// A resume or history id that this room never handed out: from the future, from
    /// another room, or from before the server (re)started. Nothing is replayed.
    pub const UNKNOWN_MESSAGE_ID: Self = Self(210);
    /// A login failed: no such account, a wrong password, too many recent failures
    /// (the text says when to try again), or a password sent in the clear from another
    /// host (use TLS). The connection stays open and keeps its nick.
    pub const LOGIN_FAILED: Self = Self(211);
    /// The nick belongs to a registered account: only a connection logged in to it
    /// (`/login NICK PASSWORD`) may take it.
    pub const NICK_REGISTERED: Self = Self(212);
    /// The server runs with `--require-login`: log in first. Only `Hello`, `Login`,
    /// `Ping`, `Pong`, `Goodbye` (and `/help`) are served before that.
    pub const LOGIN_REQUIRED: Self = Self(213);
    /// A cluster node cannot reach its shared store (Redis) or has more work queued
    /// for it than it holds: the request was not carried out. Try again shortly.
    pub const UNAVAILABLE: Self = Self(214);
    /// The server is at `--max-connections`; the connection is closed.
    pub const SERVER_FULL: Self = Self(300);
    /// The client did not read and its outbound queue passed `--max-pending`.
    pub const SLOW_CONSUMER: Self = Self(301);
    /// The client stayed silent past `--idle-timeout`.
    pub const IDLE_TIMEOUT: Self = Self(302);
    /// The client kept sending faster than the rate limit for too long.
    pub const FLOOD: Self = Self(303);

    /// Every code defined by this protocol version, for documentation and tests.
    pub const ALL: [Self; 27] = [
        Self::MALFORMED,
        Self::FRAME_TOO_LARGE,
        Self::LINE_TOO_LONG,
        Self::INVALID_UTF8,
        Self::UNKNOWN_TYPE,
        Self::VERSION_MISMATCH,
        Self::HELLO_REQUIRED,
        Self::UNEXPECTED_FRAME,
        Self::UNKNOWN_COMMAND,
        Self::BAD_ARGUMENTS,
        Self::NICK_TAKEN,
        Self::INVALID_NAME,
        Self::NO_SUCH_NICK,
        Self::NO_SUCH_ROOM,
        Self::NOT_IN_ROOM,
        Self::NOT_IN_CHAT,
        Self::INVALID_REQUEST,
        Self::RATE_LIMITED,
        Self::UNKNOWN_MESSAGE_ID,
        Self::LOGIN_FAILED,
        Self::NICK_REGISTERED,
        Self::LOGIN_REQUIRED,
        Self::UNAVAILABLE,
        Self::SERVER_FULL,
        Self::SLOW_CONSUMER,
        Self::IDLE_TIMEOUT,
        Self::FLOOD,
    ];

    /// Short kebab-case name of the code, or `unknown` for codes this version lacks.
    pub fn name(self) -> &'static str {
        match self.0 {
            100 => "malformed",
            101 => "frame-too-large",
            102 => "line-too-long",
            103 => "invalid-utf8",
            104 => "unknown-type",
            105 => "version-mismatch",
            106 => "hello-required",
            107 => "unexpected-frame",
            200 => "unknown-command",
            201 => "bad-arguments",
            202 => "nick-taken",
            203 => "invalid-name",
            204 => "no-such-nick",
            205 => "no-such-room",
            206 => "not-in-room",
            207 => "not-in-chat",
            208 => "invalid-request",
            209 => "rate-limited",
            210 => "unknown-message-id",
            211 => "login-failed",
            212 => "nick-registered",
            213 => "login-required",
            214 => "unavailable",
            300 => "server-full",
            301 => "slow-consumer",
            302 => "idle-timeout",
            303 => "flood",
            _ => "unknown",
        }
    }

    /// Whether the server closes the connection after sending this code.
    pub fn closes_connection(self) -> bool {
        self.0 < 200 || self.0 >= 300
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.name())
    }
}
