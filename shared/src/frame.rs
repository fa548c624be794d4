//! The binary frame model: every message type both sides can send, its one-byte type
//! code, and the byte layout of its body.
//!
//! A frame on the wire is `LEN (u32, big-endian) | TYPE (u8) | BODY`, where `LEN` counts
//! the type byte plus the body. Body fields are big-endian integers, `str8` strings
//! (a `u8` byte length then UTF-8) for names, and a trailing "rest of frame" field for
//! free text (UTF-8) or opaque payloads (any bytes). `docs/PROTOCOL.md` is the
//! byte-level reference; the tests in `tests/protocol_doc.rs` keep the two in step.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;
use crate::secret::Password;

mod code;
mod decode;
mod wire;

pub use code::ErrorCode;
use wire::{put_count, put_str8};

/// Version of the binary protocol spoken by this crate, sent in `Hello` and `Welcome`.
pub const PROTOCOL_VERSION: u16 = 2;

/// Bytes in the length prefix of a binary frame.
pub const LEN_PREFIX: usize = 4;

/// Longest `str8` field (names): its length must fit in one byte.
pub const MAX_STR8: usize = u8::MAX as usize;

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
        /// To resume: the id of the last room message the client saw. The server
        /// replays every later message it still holds (see [`Frame::Resumed`]).
        since: Option<u64>,
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
    /// Ask for a page of a room's history: the newest `limit` messages with ids below
    /// `before` (0: the newest of all). Answered with [`Frame::HistoryPage`].
    GetHistory {
        /// Room name.
        room: String,
        /// Only messages with smaller ids; 0 for no bound.
        before: u64,
        /// Most messages wanted (the server caps it).
        limit: u16,
    },
    /// Log in to a registered account: the server checks the password and, if it
    /// matches, gives the connection the account's nick (answered with `NickChanged`,
    /// or `Error` 211).
    Login {
        /// The account's nick.
        nick: String,
        /// The password; its `Debug` prints `<redacted>`.
        password: Password,
    },
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
        /// The id of the room's latest message at the join: the joiner receives every
        /// message after it, and resumes from it if nothing newer arrived.
        last: u64,
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
        /// The message's id: strictly increasing within the room, and every member
        /// receives the room's messages in id order.
        id: u64,
        /// When the server received it, nanoseconds since the UNIX epoch.
        time_ns: u64,
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
    /// Answer to `GetHistory`: the next `count` frames are `RoomMsg`s of the page,
    /// oldest first.
    HistoryPage {
        /// Room name.
        room: String,
        /// Messages that follow.
        count: u32,
        /// Whether older messages are still held before the page.
        more: bool,
    },
    /// Answer to a resuming `Join`, after `Joined`: the next `replayed` frames are the
    /// `RoomMsg`s after the client's id that the server still held, oldest first; live
    /// messages follow them, with no gap and no duplicate.
    Resumed {
        /// Room name.
        room: String,
        /// Messages replayed.
        replayed: u32,
        /// Messages after the client's id that history no longer held.
        missed: u64,
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
    pub const GET_HISTORY: u8 = 0x0F;
    pub const LOGIN: u8 = 0x10;
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
    pub const HISTORY_PAGE: u8 = 0x52;
    pub const RESUMED: u8 = 0x53;
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
            Frame::GetHistory { .. } => GET_HISTORY,
            Frame::Login { .. } => LOGIN,
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
            Frame::HistoryPage { .. } => HISTORY_PAGE,
            Frame::Resumed { .. } => RESUMED,
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
            Frame::RoomMsg {
                room, from, text, ..
            } => room.len() + from.len() + text.len() + 18,
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
            Frame::Join { room, since } => {
                put_str8(out, room, "room")?;
                if let Some(since) = since {
                    out.put_u64(*since);
                }
            }
            Frame::Leave { room } | Frame::Who { room } => put_str8(out, room, "room")?,
            Frame::Login { nick, password } => {
                put_str8(out, nick, "nick")?;
                out.put_slice(password.expose().as_bytes());
            }
            Frame::GetHistory {
                room,
                before,
                limit,
            } => {
                put_str8(out, room, "room")?;
                out.put_u64(*before);
                out.put_u16(*limit);
            }
            Frame::HistoryPage { room, count, more } => {
                put_str8(out, room, "room")?;
                out.put_u32(*count);
                out.put_u8(u8::from(*more));
            }
            Frame::Resumed {
                room,
                replayed,
                missed,
            } => {
                put_str8(out, room, "room")?;
                out.put_u32(*replayed);
                out.put_u64(*missed);
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
                last,
            } => {
                put_str8(out, room, "room")?;
                put_str8(out, nick, "nick")?;
                out.put_u32(*members);
                out.put_u64(*last);
            }
            Frame::Left {
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
            Frame::RoomMsg {
                room,
                from,
                id,
                time_ns,
                text,
            } => {
                put_str8(out, room, "room")?;
                put_str8(out, from, "from")?;
                out.put_u64(*id);
                out.put_u64(*time_ns);
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
}

#[cfg(test)]
mod tests;
