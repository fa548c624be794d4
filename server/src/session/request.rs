//! [`Request`]: what a client asks, whichever framing it speaks. Binary frames and text
//! commands are both turned into one of these before anything is done with them.

use bytes::Bytes;
use shared::text::{self, Command};
use shared::{Frame, Password};

use crate::engine::Refusal;

/// One client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Binary handshake with the client's protocol version.
    Hello {
        /// The version the client speaks.
        version: u16,
    },
    /// Echo the payload with the server's time.
    Echo(Bytes),
    /// Say something in a room; `None` (a plain text line) means the private-chat
    /// partner if there is one, else the current room.
    Say {
        /// The room, if named.
        room: Option<String>,
        /// The message.
        text: String,
    },
    /// Change nick.
    SetNick(String),
    /// Join a room; resuming after message `since` if given.
    Join {
        /// The room.
        room: String,
        /// The id of the last message the client saw.
        since: Option<u64>,
    },
    /// A page of a room's history (`room` `None`: the current room).
    History {
        /// The room, if named.
        room: Option<String>,
        /// Only messages with smaller ids (0: no bound).
        before: u64,
        /// How many (`None`: the default).
        limit: Option<u32>,
    },
    /// Leave a room (`None`: the current one).
    Leave(Option<String>),
    /// List rooms.
    Rooms,
    /// List a room's members (`None`: the current room).
    Who(Option<String>),
    /// A direct message.
    Direct {
        /// Recipient nick.
        to: String,
        /// The message.
        text: String,
    },
    /// Ask for a private chat, or accept the peer's request (`/chat NICK`, binary
    /// `ChatRequest`).
    ChatAsk(String),
    /// Accept a pending request (binary `ChatAccept`).
    ChatAccept(String),
    /// End the private chat or the pending requests.
    ChatEnd,
    /// A line of the private chat.
    ChatSay(String),
    /// Log in to a registered account and take its nick.
    Login {
        /// The account's nick.
        nick: String,
        /// The password; its `Debug` prints `<redacted>`.
        password: Password,
    },
    /// Server counters.
    Stats,
    /// The command list (text mode).
    Help,
    /// A keepalive ping from the client.
    Ping(u64),
    /// An answer to the server's ping.
    Pong,
    /// The client leaves.
    Goodbye,
    /// A frame only servers send (its type code): a protocol violation.
    ServerOnly(u8),
}

impl Request {
    /// The request a binary frame makes.
    pub(crate) fn from_frame(frame: Frame) -> Request {
        match frame {
            Frame::Hello { version } => Request::Hello { version },
            Frame::Echo { payload } => Request::Echo(payload),
            Frame::Say { room, text } => Request::Say {
                room: Some(room),
                text,
            },
            Frame::SetNick { nick } => Request::SetNick(nick),
            Frame::Join { room, since } => Request::Join { room, since },
            Frame::GetHistory {
                room,
                before,
                limit,
            } => Request::History {
                room: Some(room),
                before,
                limit: Some(u32::from(limit)),
            },
            Frame::Leave { room } => Request::Leave(Some(room)),
            Frame::Direct { to, text } => Request::Direct { to, text },
            Frame::ChatRequest { peer } => Request::ChatAsk(peer),
            Frame::ChatAccept { peer } => Request::ChatAccept(peer),
            Frame::ChatEnd => Request::ChatEnd,
            Frame::ChatSay { text } => Request::ChatSay(text),
            Frame::ListRooms => Request::Rooms,
            Frame::Who { room } => Request::Who(Some(room)),
            Frame::GetStats => Request::Stats,
            Frame::Login { nick, password } => Request::Login { nick, password },
            Frame::Ping { token } => Request::Ping(token),
            Frame::Pong { .. } => Request::Pong,
            Frame::Goodbye { .. } => Request::Goodbye,
            other => Request::ServerOnly(other.frame_type()),
        }
    }

    /// The request a text line makes: `Ok(None)` for an empty line, a refusal for a
    /// line that starts with `/` but is no valid command.
    pub(crate) fn from_line(line: &str) -> Result<Option<Request>, Refusal> {
        let command = match text::parse_command(line) {
            Ok(Some(command)) => command,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Refusal::new(e.code, e.message)),
        };
        Ok(Some(match command {
            Command::Say(text) => Request::Say { room: None, text },
            Command::Echo(payload) => Request::Echo(Bytes::from(payload)),
            Command::Nick(nick) => Request::SetNick(nick),
            Command::Join(room) => Request::Join { room, since: None },
            Command::History { room, count } => Request::History {
                room,
                before: 0,
                limit: count,
            },
            Command::Leave(room) => Request::Leave(room),
            Command::Rooms => Request::Rooms,
            Command::Who(room) => Request::Who(room),
            Command::Msg { to, text } => Request::Direct { to, text },
            Command::Chat(Some(peer)) => Request::ChatAsk(peer),
            Command::Chat(None) => Request::ChatEnd,
            Command::Login { nick, password } => Request::Login { nick, password },
            Command::Stats => Request::Stats,
            Command::Help => Request::Help,
            Command::Quit => Request::Goodbye,
        }))
    }

    /// Rate-limit tokens this request costs beyond the one every message pays: listing
    /// requests do work proportional to the server's size, and a login is what a
    /// password guesser repeats, so they cost more.
    pub(crate) fn extra_cost(&self) -> u32 {
        match self {
            Request::Rooms | Request::Who(_) => LIST_COST - 1,
            Request::Stats => STATS_COST - 1,
            Request::History { .. } => HISTORY_COST - 1,
            Request::Login { .. } => LOGIN_COST - 1,
            _ => 0,
        }
    }
}

/// Rate-limit tokens a `/rooms` or `/who` costs.
pub(crate) const LIST_COST: u32 = 100;

/// Rate-limit tokens a `/stats` costs.
pub(crate) const STATS_COST: u32 = 10;

/// Rate-limit tokens a history page costs.
pub(crate) const HISTORY_COST: u32 = 10;

/// Rate-limit tokens a login attempt costs: with the default limit, one connection
/// tries at most 10 passwords a second after a burst of 20, so a guessing flood is read
/// at that pace instead of competing with honest clients for the workers.
pub(crate) const LOGIN_COST: u32 = 100;
