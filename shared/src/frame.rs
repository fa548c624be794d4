//! The binary frame model: every message type both sides can send, its one-byte type
//! code, and the byte layout of its body.
//!
//! A frame on the wire is `LEN (u32, big-endian) | TYPE (u8) | BODY`, where `LEN` counts
//! the type byte plus the body. Body fields are big-endian integers, `str8` strings
//! (a `u8` byte length then UTF-8) for names, and a trailing "rest of frame" field for
//! free text (UTF-8) or opaque payloads (any bytes). `docs/PROTOCOL.md` is the
//! byte-level reference; the tests in `tests/protocol_doc.rs` keep the two in step.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

/// Version of the binary protocol spoken by this crate, sent in `Hello` and `Welcome`.
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes in the length prefix of a binary frame.
pub const LEN_PREFIX: usize = 4;

/// Longest `str8` field (names): its length must fit in one byte.
pub const MAX_STR8: usize = u8::MAX as usize;

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
    /// The server is at `--max-connections`; the connection is closed.
    pub const SERVER_FULL: Self = Self(300);
    /// The client did not read and its outbound queue passed `--max-pending`.
    pub const SLOW_CONSUMER: Self = Self(301);
    /// The client stayed silent past `--idle-timeout`.
    pub const IDLE_TIMEOUT: Self = Self(302);
    /// The client kept sending faster than the rate limit for too long.
    pub const FLOOD: Self = Self(303);

    /// Every code defined by this protocol version, for documentation and tests.
    pub const ALL: [Self; 22] = [
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

/// One room in a [`Frame::RoomList`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Members at the time of the listing.
    pub members: u32,
}

/// Every message of the protocol, in both directions.
///
/// Client-to-server frames have type codes `0x01..=0x3F`, server-to-client frames
/// `0x40..=0x7F`; `Ping`, `Pong` and `Goodbye` may travel either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// First frame of a binary connection: the protocol version the client speaks.
    Hello {
        /// Must equal the server's [`PROTOCOL_VERSION`].
        version: u16,
    },
    /// Change the sender's nick.
    SetNick {
        /// Requested nick.
        nick: String,
    },
    /// Join (and create if needed) a room.
    Join {
        /// Room name.
        room: String,
    },
    /// Leave a room.
    Leave {
        /// Room name.
        room: String,
    },
    /// Send text to a room the sender is in.
    Say {
        /// Target room.
        room: String,
        /// Message text.
        text: String,
    },
    /// Send a direct message to one user.
    Direct {
        /// Recipient nick.
        to: String,
        /// Message text.
        text: String,
    },
    /// Ask a user for a private 1:1 chat (accepts theirs if they already asked).
    ChatRequest {
        /// Nick of the wanted partner.
        peer: String,
    },
    /// Accept a pending private-chat request from `peer`.
    ChatAccept {
        /// Nick of the user who asked.
        peer: String,
    },
    /// End the private chat, or withdraw and decline pending requests.
    ChatEnd,
    /// Send text to the private-chat partner.
    ChatSay {
        /// Message text.
        text: String,
    },
    /// Ask the server to echo `payload` with its receive time.
    Echo {
        /// Opaque bytes, returned unchanged.
        payload: Bytes,
    },
    /// Ask for the room list.
    ListRooms,
    /// Ask who is in a room.
    Who {
        /// Room name.
        room: String,
    },
    /// Ask for server statistics.
    GetStats,
    /// Liveness probe; the other side answers with `Pong` carrying the same token.
    Ping {
        /// Opaque token.
        token: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The token of the `Ping` being answered.
        token: u64,
    },
    /// The sender is closing the connection; the server flushes what it owes first.
    Goodbye {
        /// Free-form reason, may be empty.
        reason: String,
    },
    /// Answer to `Hello`.
    Welcome {
        /// The server's protocol version.
        version: u16,
        /// Largest frame length (`LEN`) the server accepts.
        max_frame: u32,
        /// Nick assigned to this connection.
        nick: String,
    },
    /// A nick changed (the sender's own, or a room mate's).
    NickChanged {
        /// Previous nick.
        old: String,
        /// New nick.
        new: String,
    },
    /// Someone (possibly the receiver) joined a room.
    Joined {
        /// Room name.
        room: String,
        /// Who joined.
        nick: String,
        /// Members after the join.
        members: u32,
    },
    /// Someone (possibly the receiver) left a room.
    Left {
        /// Room name.
        room: String,
        /// Who left.
        nick: String,
        /// Members after the departure.
        members: u32,
    },
    /// Answer to `ListRooms`.
    RoomList {
        /// Every room with its member count.
        rooms: Vec<RoomInfo>,
    },
    /// Answer to `Who`.
    WhoList {
        /// Room name.
        room: String,
        /// Members' nicks.
        nicks: Vec<String>,
    },
    /// A message in a room.
    RoomMsg {
        /// Room name.
        room: String,
        /// Sender nick.
        from: String,
        /// Message text.
        text: String,
    },
    /// A direct message.
    DirectMsg {
        /// Sender nick.
        from: String,
        /// Message text.
        text: String,
    },
    /// `from` asks the receiver for a private chat.
    ChatRequested {
        /// Who asked.
        from: String,
    },
    /// A private chat with `peer` began.
    ChatStarted {
        /// The partner.
        peer: String,
    },
    /// A private chat with `peer` ended.
    ChatEnded {
        /// The former partner.
        peer: String,
        /// Why it ended.
        reason: String,
    },
    /// `peer` is in another private chat, or has a request pending (made or received),
    /// and cannot take this one.
    Busy {
        /// The busy user.
        peer: String,
    },
    /// A message from the private-chat partner.
    ChatMsg {
        /// Sender nick.
        from: String,
        /// Message text.
        text: String,
    },
    /// Answer to `Echo`.
    EchoReply {
        /// Server receive time, nanoseconds since the UNIX epoch.
        server_time_ns: u64,
        /// The request's payload, byte for byte.
        payload: Bytes,
    },
    /// Answer to `GetStats`: named counters.
    Stats {
        /// `(name, value)` pairs in the server's order.
        entries: Vec<(String, u64)>,
    },
    /// A request failed, or (for closing codes) the connection is about to close.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail.
        text: String,
    },
    /// The server is shutting down; it flushes and closes every connection.
    Shutdown {
        /// Human-readable reason.
        reason: String,
    },
    /// Informational text for a person (help, confirmations).
    Notice {
        /// The text.
        text: String,
    },
}

/// Type codes, one per [`Frame`] variant.
pub mod types {
    #![allow(missing_docs)]
    pub const HELLO: u8 = 0x01;
    pub const SET_NICK: u8 = 0x02;
    pub const JOIN: u8 = 0x03;
    pub const LEAVE: u8 = 0x04;
    pub const SAY: u8 = 0x05;
    pub const DIRECT: u8 = 0x06;
    pub const CHAT_REQUEST: u8 = 0x07;
    pub const CHAT_ACCEPT: u8 = 0x08;
    pub const CHAT_END: u8 = 0x09;
    pub const CHAT_SAY: u8 = 0x0A;
    pub const ECHO: u8 = 0x0B;
    pub const LIST_ROOMS: u8 = 0x0C;
    pub const WHO: u8 = 0x0D;
    pub const GET_STATS: u8 = 0x0E;
    pub const PING: u8 = 0x20;
    pub const PONG: u8 = 0x21;
    pub const GOODBYE: u8 = 0x22;
    pub const WELCOME: u8 = 0x40;
    pub const NICK_CHANGED: u8 = 0x41;
    pub const JOINED: u8 = 0x42;
    pub const LEFT: u8 = 0x43;
    pub const ROOM_LIST: u8 = 0x44;
    pub const WHO_LIST: u8 = 0x45;
    pub const ROOM_MSG: u8 = 0x46;
    pub const DIRECT_MSG: u8 = 0x47;
    pub const CHAT_REQUESTED: u8 = 0x48;
    pub const CHAT_STARTED: u8 = 0x49;
    pub const CHAT_ENDED: u8 = 0x4A;
    pub const BUSY: u8 = 0x4B;
    pub const CHAT_MSG: u8 = 0x4C;
    pub const ECHO_REPLY: u8 = 0x4D;
    pub const STATS: u8 = 0x4E;
    pub const ERROR: u8 = 0x4F;
    pub const SHUTDOWN: u8 = 0x50;
    pub const NOTICE: u8 = 0x51;
}

impl Frame {
    /// The frame's one-byte type code.
    pub fn frame_type(&self) -> u8 {
        use types::*;
        match self {
            Frame::Hello { .. } => HELLO,
            Frame::SetNick { .. } => SET_NICK,
            Frame::Join { .. } => JOIN,
            Frame::Leave { .. } => LEAVE,
            Frame::Say { .. } => SAY,
            Frame::Direct { .. } => DIRECT,
            Frame::ChatRequest { .. } => CHAT_REQUEST,
            Frame::ChatAccept { .. } => CHAT_ACCEPT,
            Frame::ChatEnd => CHAT_END,
            Frame::ChatSay { .. } => CHAT_SAY,
            Frame::Echo { .. } => ECHO,
            Frame::ListRooms => LIST_ROOMS,
            Frame::Who { .. } => WHO,
            Frame::GetStats => GET_STATS,
            Frame::Ping { .. } => PING,
            Frame::Pong { .. } => PONG,
            Frame::Goodbye { .. } => GOODBYE,
            Frame::Welcome { .. } => WELCOME,
            Frame::NickChanged { .. } => NICK_CHANGED,
            Frame::Joined { .. } => JOINED,
            Frame::Left { .. } => LEFT,
            Frame::RoomList { .. } => ROOM_LIST,
            Frame::WhoList { .. } => WHO_LIST,
            Frame::RoomMsg { .. } => ROOM_MSG,
            Frame::DirectMsg { .. } => DIRECT_MSG,
            Frame::ChatRequested { .. } => CHAT_REQUESTED,
            Frame::ChatStarted { .. } => CHAT_STARTED,
            Frame::ChatEnded { .. } => CHAT_ENDED,
            Frame::Busy { .. } => BUSY,
            Frame::ChatMsg { .. } => CHAT_MSG,
            Frame::EchoReply { .. } => ECHO_REPLY,
            Frame::Stats { .. } => STATS,
            Frame::Error { .. } => ERROR,
            Frame::Shutdown { .. } => SHUTDOWN,
            Frame::Notice { .. } => NOTICE,
        }
    }

    /// Whether a client may send this frame to a server.
    pub fn is_client_frame(&self) -> bool {
        self.frame_type() < types::WELCOME
    }

    /// Whether a server may send this frame to a client.
    pub fn is_server_frame(&self) -> bool {
        matches!(
            self,
            Frame::Ping { .. } | Frame::Pong { .. } | Frame::Goodbye { .. }
        ) || self.frame_type() >= types::WELCOME
    }

    /// Appends the encoded frame (length prefix included) to `out`.
    ///
    /// On error nothing is appended. Errors only arise from fields too long for their
    /// wire form (a name over 255 bytes, a list over 65535 items, a frame over 4 GiB).
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u32(0);
        out.put_u8(self.frame_type());
        if let Err(e) = self.encode_body(out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start - LEN_PREFIX;
        let Ok(len32) = u32::try_from(len) else {
            out.truncate(start);
            return Err(EncodeError::FrameTooLarge { len });
        };
        out[start..start + LEN_PREFIX].copy_from_slice(&len32.to_be_bytes());
        Ok(())
    }

    /// Encodes the frame into a fresh shareable buffer (one encode, many recipients).
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(self.size_hint());
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    /// A cheap upper-bound guess of the encoded size, for reserving buffers.
    fn size_hint(&self) -> usize {
        let body = match self {
            Frame::Say { room, text } => room.len() + text.len() + 1,
            Frame::Direct { to, text } => to.len() + text.len() + 1,
            Frame::Echo { payload } => payload.len(),
            Frame::EchoReply { payload, .. } => payload.len() + 8,
            Frame::RoomMsg { room, from, text } => room.len() + from.len() + text.len() + 2,
            Frame::DirectMsg { from, text } | Frame::ChatMsg { from, text } => {
                from.len() + text.len() + 1
            }
            _ => 64,
        };
        LEN_PREFIX + 1 + body
    }

    fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Frame::Hello { version } => out.put_u16(*version),
            Frame::SetNick { nick } => put_str8(out, nick, "nick")?,
            Frame::Join { room } | Frame::Leave { room } | Frame::Who { room } => {
                put_str8(out, room, "room")?
            }
            Frame::Say { room, text } => {
                put_str8(out, room, "room")?;
                out.put_slice(text.as_bytes());
            }
            Frame::Direct { to, text } => {
                put_str8(out, to, "to")?;
                out.put_slice(text.as_bytes());
            }
            Frame::ChatRequest { peer }
            | Frame::ChatAccept { peer }
            | Frame::ChatStarted { peer }
            | Frame::Busy { peer } => put_str8(out, peer, "peer")?,
            Frame::ChatEnd | Frame::ListRooms | Frame::GetStats => {}
            Frame::ChatSay { text } | Frame::Notice { text } => out.put_slice(text.as_bytes()),
            Frame::Echo { payload } => out.put_slice(payload),
            Frame::Ping { token } | Frame::Pong { token } => out.put_u64(*token),
            Frame::Goodbye { reason } | Frame::Shutdown { reason } => {
                out.put_slice(reason.as_bytes())
            }
            Frame::Welcome {
                version,
                max_frame,
                nick,
            } => {
                out.put_u16(*version);
                out.put_u32(*max_frame);
                put_str8(out, nick, "nick")?;
            }
            Frame::NickChanged { old, new } => {
                put_str8(out, old, "old")?;
                put_str8(out, new, "new")?;
            }
            Frame::Joined {
                room,
                nick,
                members,
            }
            | Frame::Left {
                room,
                nick,
                members,
            } => {
                put_str8(out, room, "room")?;
                put_str8(out, nick, "nick")?;
                out.put_u32(*members);
            }
            Frame::RoomList { rooms } => {
                put_count(out, rooms.len(), "rooms")?;
                for room in rooms {
                    put_str8(out, &room.name, "room")?;
                    out.put_u32(room.members);
                }
            }
            Frame::WhoList { room, nicks } => {
                put_str8(out, room, "room")?;
                put_count(out, nicks.len(), "nicks")?;
                for nick in nicks {
                    put_str8(out, nick, "nick")?;
                }
            }
            Frame::RoomMsg { room, from, text } => {
                put_str8(out, room, "room")?;
                put_str8(out, from, "from")?;
                out.put_slice(text.as_bytes());
            }
            Frame::DirectMsg { from, text } | Frame::ChatMsg { from, text } => {
                put_str8(out, from, "from")?;
                out.put_slice(text.as_bytes());
            }
            Frame::ChatRequested { from } => put_str8(out, from, "from")?,
            Frame::ChatEnded { peer, reason } => {
                put_str8(out, peer, "peer")?;
                out.put_slice(reason.as_bytes());
            }
            Frame::EchoReply {
                server_time_ns,
                payload,
            } => {
                out.put_u64(*server_time_ns);
                out.put_slice(payload);
            }
            Frame::Stats { entries } => {
                put_count(out, entries.len(), "entries")?;
                for (name, value) in entries {
                    put_str8(out, name, "stat name")?;
                    out.put_u64(*value);
                }
            }
            Frame::Error { code, text } => {
                out.put_u16(code.0);
                out.put_slice(text.as_bytes());
            }
        }
        Ok(())
    }

    /// Decodes a frame from its type code and body (everything after the type byte).
    ///
    /// The body must be exactly one frame's worth: trailing bytes are an error.
    pub fn decode(frame_type: u8, body: Bytes) -> Result<Frame, DecodeError> {
        use types::*;
        let mut r = BodyReader {
            frame_type,
            buf: body,
        };
        let frame = match frame_type {
            HELLO => Frame::Hello { version: r.u16()? },
            SET_NICK => Frame::SetNick { nick: r.str8()? },
            JOIN => Frame::Join { room: r.str8()? },
            LEAVE => Frame::Leave { room: r.str8()? },
            SAY => Frame::Say {
                room: r.str8()?,
                text: r.rest_text()?,
            },
            DIRECT => Frame::Direct {
                to: r.str8()?,
                text: r.rest_text()?,
            },
            CHAT_REQUEST => Frame::ChatRequest { peer: r.str8()? },
            CHAT_ACCEPT => Frame::ChatAccept { peer: r.str8()? },
            CHAT_END => Frame::ChatEnd,
            CHAT_SAY => Frame::ChatSay {
                text: r.rest_text()?,
            },
            ECHO => Frame::Echo {
                payload: r.rest_bytes(),
            },
            LIST_ROOMS => Frame::ListRooms,
            WHO => Frame::Who { room: r.str8()? },
            GET_STATS => Frame::GetStats,
            PING => Frame::Ping { token: r.u64()? },
            PONG => Frame::Pong { token: r.u64()? },
            GOODBYE => Frame::Goodbye {
                reason: r.rest_text()?,
            },
            WELCOME => Frame::Welcome {
                version: r.u16()?,
                max_frame: r.u32()?,
                nick: r.str8()?,
            },
            NICK_CHANGED => Frame::NickChanged {
                old: r.str8()?,
                new: r.str8()?,
            },
            JOINED => Frame::Joined {
                room: r.str8()?,
                nick: r.str8()?,
                members: r.u32()?,
            },
            LEFT => Frame::Left {
                room: r.str8()?,
                nick: r.str8()?,
                members: r.u32()?,
            },
            ROOM_LIST => {
                let count = r.u16()?;
                // Each entry is at least 5 bytes; never trust `count` for allocation.
                let mut rooms = Vec::with_capacity(usize::from(count).min(r.buf.len() / 5));
                for _ in 0..count {
                    rooms.push(RoomInfo {
                        name: r.str8()?,
                        members: r.u32()?,
                    });
                }
                Frame::RoomList { rooms }
            }
            WHO_LIST => {
                let room = r.str8()?;
                let count = r.u16()?;
                let mut nicks = Vec::with_capacity(usize::from(count).min(r.buf.len()));
                for _ in 0..count {
                    nicks.push(r.str8()?);
                }
                Frame::WhoList { room, nicks }
            }
            ROOM_MSG => Frame::RoomMsg {
                room: r.str8()?,
                from: r.str8()?,
                text: r.rest_text()?,
            },
            DIRECT_MSG => Frame::DirectMsg {
                from: r.str8()?,
                text: r.rest_text()?,
            },
            CHAT_REQUESTED => Frame::ChatRequested { from: r.str8()? },
            CHAT_STARTED => Frame::ChatStarted { peer: r.str8()? },
            CHAT_ENDED => Frame::ChatEnded {
                peer: r.str8()?,
                reason: r.rest_text()?,
            },
            BUSY => Frame::Busy { peer: r.str8()? },
            CHAT_MSG => Frame::ChatMsg {
                from: r.str8()?,
                text: r.rest_text()?,
            },
            ECHO_REPLY => Frame::EchoReply {
                server_time_ns: r.u64()?,
                payload: r.rest_bytes(),
            },
            STATS => {
                let count = r.u16()?;
                let mut entries = Vec::with_capacity(usize::from(count).min(r.buf.len() / 9));
                for _ in 0..count {
                    entries.push((r.str8()?, r.u64()?));
                }
                Frame::Stats { entries }
            }
            ERROR => Frame::Error {
                code: ErrorCode(r.u16()?),
                text: r.rest_text()?,
            },
            SHUTDOWN => Frame::Shutdown {
                reason: r.rest_text()?,
            },
            NOTICE => Frame::Notice {
                text: r.rest_text()?,
            },
            other => return Err(DecodeError::UnknownType { frame_type: other }),
        };
        r.finish()?;
        Ok(frame)
    }
}

fn put_str8(out: &mut BytesMut, s: &str, field: &'static str) -> Result<(), EncodeError> {
    let Ok(len) = u8::try_from(s.len()) else {
        return Err(EncodeError::FieldTooLong {
            field,
            len: s.len(),
            max: MAX_STR8,
        });
    };
    out.put_u8(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_count(out: &mut BytesMut, count: usize, field: &'static str) -> Result<(), EncodeError> {
    let Ok(count16) = u16::try_from(count) else {
        return Err(EncodeError::FieldTooLong {
            field,
            len: count,
            max: usize::from(u16::MAX),
        });
    };
    out.put_u16(count16);
    Ok(())
}

/// Reads the fields of one frame body front to back.
struct BodyReader {
    frame_type: u8,
    buf: Bytes,
}

impl BodyReader {
    fn short(&self, field: &'static str) -> DecodeError {
        DecodeError::Malformed {
            frame_type: self.frame_type,
            reason: field,
        }
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let Some(head) = self.buf.get(..N) else {
            return Err(self.short(field));
        };
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        let _ = self.buf.split_to(N);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.take::<2>("truncated u16 field")
            .map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take::<4>("truncated u32 field")
            .map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.take::<8>("truncated u64 field")
            .map(u64::from_be_bytes)
    }

    fn str8(&mut self) -> Result<String, DecodeError> {
        let [len] = self.take::<1>("missing string length")?;
        let len = usize::from(len);
        if self.buf.len() < len {
            return Err(self.short("string longer than the frame"));
        }
        let raw = self.buf.split_to(len);
        utf8(self.frame_type, &raw)
    }

    fn rest_text(&mut self) -> Result<String, DecodeError> {
        let raw = std::mem::take(&mut self.buf);
        utf8(self.frame_type, &raw)
    }

    fn rest_bytes(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.short("trailing bytes after the last field"))
        }
    }
}

fn utf8(frame_type: u8, raw: &[u8]) -> Result<String, DecodeError> {
    match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(DecodeError::InvalidUtf8 {
            frame_type: Some(frame_type),
            valid_up_to: e.valid_up_to(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    /// Encodes, checks the length prefix, and decodes the body back.
    fn round_trip(frame: &Frame) -> Frame {
        let bytes = frame.to_bytes().unwrap();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(
            len,
            bytes.len() - LEN_PREFIX,
            "LEN counts type byte and body"
        );
        assert_eq!(bytes[LEN_PREFIX], frame.frame_type());
        let mut out = BytesMut::from(&b"prefix"[..]);
        frame.encode(&mut out).unwrap();
        assert_eq!(&out[..6], b"prefix", "encode appends");
        assert_eq!(&out[6..], &bytes[..]);
        Frame::decode(bytes[LEN_PREFIX], bytes.slice(LEN_PREFIX + 1..)).unwrap()
    }

    /// One value of every variant, with awkward contents: empty, non-ASCII, control
    /// characters, binary payloads, maximum-length names.
    pub(crate) fn samples() -> Vec<Frame> {
        let long = "é".repeat(127) + "x"; // 255 bytes
        vec![
            Frame::Hello { version: 0 },
            Frame::Hello { version: u16::MAX },
            Frame::SetNick { nick: s("") },
            Frame::SetNick { nick: long.clone() },
            Frame::Join {
                room: s("Ünïcødé")
            },
            Frame::Leave { room: s("lobby") },
            Frame::Say {
                room: s("lobby"),
                text: s(""),
            },
            Frame::Say {
                room: s("r"),
                text: s("multi\nline \u{1b}[31m 😀 \r\n"),
            },
            Frame::Direct {
                to: s("bob"),
                text: s("hi"),
            },
            Frame::ChatRequest { peer: s("bob") },
            Frame::ChatAccept { peer: s("alice") },
            Frame::ChatEnd,
            Frame::ChatSay { text: s("") },
            Frame::Echo {
                payload: Bytes::new(),
            },
            Frame::Echo {
                payload: Bytes::from_static(&[0, 0xff, 0x80, b'\n', 0xc3]),
            },
            Frame::ListRooms,
            Frame::Who { room: s("lobby") },
            Frame::GetStats,
            Frame::Ping { token: 0 },
            Frame::Ping { token: u64::MAX },
            Frame::Pong { token: 1 },
            Frame::Goodbye { reason: s("") },
            Frame::Welcome {
                version: 1,
                max_frame: u32::MAX,
                nick: s("guest-1"),
            },
            Frame::NickChanged {
                old: s("a"),
                new: long,
            },
            Frame::Joined {
                room: s("lobby"),
                nick: s("a"),
                members: 0,
            },
            Frame::Left {
                room: s("lobby"),
                nick: s("a"),
                members: u32::MAX,
            },
            Frame::RoomList { rooms: vec![] },
            Frame::RoomList {
                rooms: vec![
                    RoomInfo {
                        name: s("a"),
                        members: 1,
                    },
                    RoomInfo {
                        name: s(""),
                        members: 7,
                    },
                ],
            },
            Frame::WhoList {
                room: s("lobby"),
                nicks: vec![],
            },
            Frame::WhoList {
                room: s("lobby"),
                nicks: vec![s("a"), s(""), s("ß")],
            },
            Frame::RoomMsg {
                room: s("lobby"),
                from: s("alice"),
                text: s("hello"),
            },
            Frame::DirectMsg {
                from: s("alice"),
                text: s(""),
            },
            Frame::ChatRequested { from: s("alice") },
            Frame::ChatStarted { peer: s("bob") },
            Frame::ChatEnded {
                peer: s("bob"),
                reason: s(""),
            },
            Frame::Busy { peer: s("carol") },
            Frame::ChatMsg {
                from: s("alice"),
                text: s("hey"),
            },
            Frame::EchoReply {
                server_time_ns: u64::MAX,
                payload: Bytes::from_static(&[0xff; 3]),
            },
            Frame::Stats { entries: vec![] },
            Frame::Stats {
                entries: vec![(s("connections"), 0), (s("bytes"), u64::MAX)],
            },
            Frame::Error {
                code: ErrorCode(9999),
                text: s("future code"),
            },
            Frame::Shutdown { reason: s("bye") },
            Frame::Notice { text: s("* hi *") },
        ]
    }

    #[test]
    fn every_variant_round_trips() {
        let samples = samples();
        let mut types: Vec<u8> = samples.iter().map(Frame::frame_type).collect();
        types.dedup();
        assert_eq!(types.len(), 35, "one sample per variant at least");
        for frame in samples {
            assert_eq!(round_trip(&frame), frame);
        }
    }

    #[test]
    fn big_lists_and_payloads_round_trip() {
        let nicks: Vec<String> = (0..u16::MAX).map(|i| i.to_string()).collect();
        let frame = Frame::WhoList {
            room: s("big"),
            nicks,
        };
        assert_eq!(round_trip(&frame), frame);
        let frame = Frame::Echo {
            payload: Bytes::from(vec![0xab; 1 << 20]),
        };
        assert_eq!(round_trip(&frame), frame);
    }

    #[test]
    fn type_codes_are_unique_and_in_their_ranges() {
        let mut seen = std::collections::BTreeSet::new();
        for frame in samples() {
            let t = frame.frame_type();
            seen.insert(t);
            match t {
                0x01..=0x1f => assert!(frame.is_client_frame() && !frame.is_server_frame()),
                0x20..=0x3f => assert!(frame.is_client_frame() && frame.is_server_frame()),
                0x40..=0x7f => assert!(!frame.is_client_frame() && frame.is_server_frame()),
                _ => panic!("type {t:#04x} out of range"),
            }
        }
        assert_eq!(seen.len(), 35);
    }

    #[test]
    fn an_over_long_name_is_refused_and_nothing_is_appended() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let err = Frame::SetNick {
            nick: "x".repeat(256),
        }
        .encode(&mut out)
        .unwrap_err();
        assert_eq!(
            err,
            EncodeError::FieldTooLong {
                field: "nick",
                len: 256,
                max: 255
            }
        );
        assert_eq!(&out[..], b"keep");
        // The failing field may come after fields already written.
        let err = Frame::RoomMsg {
            room: s("lobby"),
            from: "y".repeat(300),
            text: s("hi"),
        }
        .encode(&mut out)
        .unwrap_err();
        assert!(matches!(
            err,
            EncodeError::FieldTooLong { field: "from", .. }
        ));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn an_over_long_list_is_refused() {
        let frame = Frame::WhoList {
            room: s("r"),
            nicks: vec![String::new(); 65_536],
        };
        let err = frame.to_bytes().unwrap_err();
        assert_eq!(
            err,
            EncodeError::FieldTooLong {
                field: "nicks",
                len: 65_536,
                max: 65_535
            }
        );
        let frame = Frame::Stats {
            entries: vec![(s("n"), 1); 65_536],
        };
        assert!(matches!(
            frame.to_bytes(),
            Err(EncodeError::FieldTooLong {
                field: "entries",
                ..
            })
        ));
    }

    fn decode(frame_type: u8, body: &[u8]) -> Result<Frame, DecodeError> {
        Frame::decode(frame_type, Bytes::copy_from_slice(body))
    }

    fn malformed(frame_type: u8, reason: &'static str) -> DecodeError {
        DecodeError::Malformed { frame_type, reason }
    }

    #[test]
    fn truncated_integers_are_malformed() {
        use types::*;
        assert_eq!(
            decode(HELLO, &[]),
            Err(malformed(HELLO, "truncated u16 field"))
        );
        assert_eq!(
            decode(HELLO, &[1]),
            Err(malformed(HELLO, "truncated u16 field"))
        );
        assert_eq!(
            decode(PING, &[0; 7]),
            Err(malformed(PING, "truncated u64 field"))
        );
        assert_eq!(
            decode(WELCOME, &[0, 1, 0, 0, 0]),
            Err(malformed(WELCOME, "truncated u32 field"))
        );
        assert_eq!(
            decode(JOINED, &[1, b'r', 1, b'n', 0, 0, 2]),
            Err(malformed(JOINED, "truncated u32 field"))
        );
        assert_eq!(
            decode(ERROR, &[0]),
            Err(malformed(ERROR, "truncated u16 field"))
        );
        assert_eq!(
            decode(ECHO_REPLY, &[0; 4]),
            Err(malformed(ECHO_REPLY, "truncated u64 field"))
        );
    }

    #[test]
    fn truncated_strings_are_malformed() {
        use types::*;
        assert_eq!(
            decode(JOIN, &[]),
            Err(malformed(JOIN, "missing string length"))
        );
        assert_eq!(
            decode(JOIN, &[5, b'l', b'o']),
            Err(malformed(JOIN, "string longer than the frame"))
        );
        assert_eq!(
            decode(NICK_CHANGED, &[1, b'a']),
            Err(malformed(NICK_CHANGED, "missing string length"))
        );
        assert_eq!(
            decode(SAY, &[]),
            Err(malformed(SAY, "missing string length"))
        );
    }

    #[test]
    fn list_counts_beyond_the_body_are_malformed() {
        use types::*;
        // Count 65535 with no entries: must fail without allocating for 65535.
        assert_eq!(
            decode(ROOM_LIST, &[0xff, 0xff]),
            Err(malformed(ROOM_LIST, "missing string length"))
        );
        assert_eq!(
            decode(WHO_LIST, &[1, b'r', 0, 2, 1, b'a']),
            Err(malformed(WHO_LIST, "missing string length"))
        );
        assert_eq!(
            decode(STATS, &[0, 1, 1, b'n', 0, 0]),
            Err(malformed(STATS, "truncated u64 field"))
        );
        assert_eq!(
            decode(ROOM_LIST, &[0]),
            Err(malformed(ROOM_LIST, "truncated u16 field"))
        );
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        use types::*;
        let trailing = "trailing bytes after the last field";
        for (t, body) in [
            (HELLO, &[0, 1, 0][..]),
            (CHAT_END, &[0][..]),
            (LIST_ROOMS, &[1, 2][..]),
            (GET_STATS, &[0][..]),
            (JOIN, &[1, b'a', b'b'][..]),
            (PING, &[0; 9][..]),
            (WELCOME, &[0, 1, 0, 0, 0, 1, 0, 0][..]),
            (ROOM_LIST, &[0, 0, 0][..]),
            (STATS, &[0, 0, 9][..]),
        ] {
            assert_eq!(
                decode(t, body),
                Err(malformed(t, trailing)),
                "type {t:#04x}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_reported_with_its_position() {
        use types::*;
        assert_eq!(
            decode(JOIN, &[3, b'a', 0xff, b'b']),
            Err(DecodeError::InvalidUtf8 {
                frame_type: Some(JOIN),
                valid_up_to: 1
            })
        );
        assert_eq!(
            decode(SAY, &[1, b'r', b'o', b'k', 0xc3]),
            Err(DecodeError::InvalidUtf8 {
                frame_type: Some(SAY),
                valid_up_to: 2
            })
        );
        // A surrogate encoded in UTF-8 (CESU) is not UTF-8.
        assert!(matches!(
            decode(NOTICE, &[0xed, 0xa0, 0x80]),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
        // Payloads are bytes, not text.
        assert!(decode(ECHO, &[0xff, 0xfe]).is_ok());
        assert!(decode(ECHO_REPLY, &[0, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_ok());
    }

    #[test]
    fn unknown_types_are_rejected() {
        let known: Vec<u8> = samples().iter().map(Frame::frame_type).collect();
        for t in 0..=u8::MAX {
            if !known.contains(&t) {
                assert_eq!(
                    decode(t, &[]),
                    Err(DecodeError::UnknownType { frame_type: t })
                );
            }
        }
    }

    #[test]
    fn empty_bodies_decode_where_allowed() {
        use types::*;
        assert_eq!(decode(CHAT_END, &[]), Ok(Frame::ChatEnd));
        assert_eq!(decode(LIST_ROOMS, &[]), Ok(Frame::ListRooms));
        assert_eq!(decode(GET_STATS, &[]), Ok(Frame::GetStats));
        assert_eq!(decode(CHAT_SAY, &[]), Ok(Frame::ChatSay { text: s("") }));
        assert_eq!(decode(GOODBYE, &[]), Ok(Frame::Goodbye { reason: s("") }));
        assert_eq!(
            decode(ECHO, &[]),
            Ok(Frame::Echo {
                payload: Bytes::new()
            })
        );
    }

    #[test]
    fn error_codes_have_names_and_close_by_range() {
        let mut previous = 0;
        for code in ErrorCode::ALL {
            assert!(code.0 > previous, "ALL is sorted and unique");
            previous = code.0;
            assert_ne!(code.name(), "unknown", "{}", code.0);
            assert_eq!(code.closes_connection(), !(200..300).contains(&code.0));
            assert_eq!(code.to_string(), format!("{} {}", code.0, code.name()));
        }
        assert_eq!(ErrorCode(999).name(), "unknown");
        assert!(ErrorCode(999).closes_connection());
        assert!(!ErrorCode(250).closes_connection());
        assert_eq!(ErrorCode::NO_SUCH_NICK.to_string(), "204 no-such-nick");
        assert!(ErrorCode::MALFORMED.closes_connection());
        assert!(!ErrorCode::NICK_TAKEN.closes_connection());
        assert!(ErrorCode::IDLE_TIMEOUT.closes_connection());
    }
}
