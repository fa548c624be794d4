//! The asynchronous side of the engine seam, for engines whose state is shared with
//! other processes (the Redis cluster). A worker never waits on such an engine: a
//! request whose answer needs the shared store is handed over as an [`Ask`], the
//! session waits (its connection's further requests stay unread, in order), and the
//! [`Answer`] reaches the connection's worker through its channel, where the session
//! finishes the request exactly as it would have with an immediate answer.
//!
//! Deliveries that come from other nodes (room messages, direct messages) reach the
//! workers through the [`Mailbox`] the server attaches to the engine once its workers
//! exist.

use std::sync::Arc;

use bytes::Bytes;
use shared::{Frame, Mode, RoomInfo};

use super::{
    ChatEnding, ChatOutcome, ConnId, Fanout, Listing, Membership, Page, Refusal, Renamed, RoomId,
};
use crate::session::Scope;

/// A request handed to a shared engine, answered later with an [`Answer`].
#[derive(Debug)]
pub(crate) enum Ask {
    /// Claim a nick cluster-wide (the connection's old nick is released with it).
    SetNick {
        /// The nick asked for.
        nick: String,
    },
    /// Join (and possibly resume) a room.
    Join {
        /// The room as the client wrote it.
        room: String,
        /// The last message id the client saw.
        since: Option<u64>,
    },
    /// Send a direct message to a user on another node.
    Direct {
        /// The recipient's nick.
        to: String,
        /// The sender's nick.
        from: String,
        /// The text.
        text: String,
    },
    /// The room list.
    Rooms {
        /// Most rooms listed.
        limit: usize,
    },
    /// A room's members.
    Who {
        /// The room.
        room: String,
        /// Most members listed.
        limit: usize,
    },
    /// Ask a user for a private chat, or accept theirs.
    ChatRequest {
        /// The user's nick.
        peer: String,
    },
    /// Accept a user's pending request.
    ChatAccept {
        /// The user's nick.
        peer: String,
    },
    /// End the private chat, or withdraw and decline pending requests.
    ChatEnd,
    /// A page of a room's history.
    History {
        /// The room.
        room: String,
        /// Messages with ids below this (0: the newest).
        before: u64,
        /// Most messages.
        limit: usize,
    },
}

/// The answer to an [`Ask`], in the shape the immediate engine methods return.
#[derive(Debug)]
pub(crate) enum Answer {
    /// To [`Ask::SetNick`]: the nick asked for, and the outcome.
    Nick(String, Result<Renamed, Refusal>),
    /// To [`Ask::Join`].
    Joined(Result<Membership, Refusal>),
    /// To [`Ask::Direct`]: the recipient's nick as it chose to write it.
    Direct(Result<String, Refusal>, String),
    /// To [`Ask::Rooms`].
    Rooms(Result<Listing<RoomInfo>, Refusal>),
    /// To [`Ask::Who`].
    Who(Result<(String, Listing<String>), Refusal>),
    /// To [`Ask::History`].
    History(Result<(String, Page), Refusal>),
    /// To [`Ask::ChatRequest`] and [`Ask::ChatAccept`].
    Chat(Result<ChatOutcome, Refusal>),
    /// To [`Ask::ChatEnd`].
    ChatEnded(ChatEnding),
}

/// Where a shared engine's threads hand what they finish: answers to waiting sessions
/// and deliveries that came from other nodes. Implemented by the workers' routing.
pub(crate) trait Mailbox: Send + Sync {
    /// Hands `answer` to the worker of connection `to`.
    fn answer(&self, to: ConnId, answer: Answer);

    /// Delivers a room message (encoded as `binary`) to the local members in `fanout`,
    /// each checked on arrival against its membership of `room`. Calls for one room
    /// must reach each member in the order they are made.
    fn room(&self, room: RoomId, message: &Frame, binary: &Bytes, fanout: &Arc<Fanout>);

    /// Delivers `frame` to every connection in `fanout`, whatever it is in.
    fn notice(&self, frame: &Frame, fanout: &Arc<Fanout>);

    /// Whether some worker has more deliveries waiting than it should take: the
    /// caller holds back what it reads from elsewhere until this clears, so the
    /// backlog stays bounded and the sender (Redis) feels the push-back.
    fn congested(&self) -> bool;

    /// Delivers `frame` to one local connection in framing `mode`, if it is still
    /// there and on arrival within `scope`.
    fn send(&self, to: ConnId, mode: Mode, frame: Frame, scope: Scope);
}
