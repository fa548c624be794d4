//! [`Effect`]: what applying a request asks the worker to do. A session never touches a
//! socket or a channel; it lists effects, and the worker that owns the connection
//! carries them out in order.

use std::sync::Arc;

use bytes::Bytes;
use shared::{Frame, Mode};

use crate::engine::{ConnId, Fanout, Refusal, RoomId};
use crate::stats::CloseReason;

/// One thing to do after a request.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Queue this frame for the requesting connection, in its framing.
    Reply(Frame),
    /// Queue this ready-made line for the requesting connection, which speaks text
    /// (escaping is the session's job).
    ReplyText(String),
    /// Queue this frame, already encoded in binary (a kept room message), for the
    /// requesting connection, which speaks binary.
    ReplyEncoded(Bytes),
    /// Send this frame to one connection (possibly on another worker), if on arrival it
    /// is still within `scope`.
    Send {
        /// Recipient.
        to: ConnId,
        /// Its framing.
        mode: Mode,
        /// The frame.
        frame: Frame,
        /// Checked on arrival.
        scope: Scope,
    },
    /// Send this frame to a connection of another cluster node, if on arrival it is
    /// still within `scope`.
    SendRemote {
        /// The recipient's node.
        node: Arc<str>,
        /// Recipient (on that node).
        to: ConnId,
        /// The frame.
        frame: Frame,
        /// Checked on arrival.
        scope: Scope,
    },
    /// Send this frame to every recipient of `fanout` (which may include the requesting
    /// connection) that on arrival is still within `scope`.
    Fanout {
        /// Recipients grouped by worker.
        fanout: Arc<Fanout>,
        /// The frame, encoded once per framing.
        frame: Frame,
        /// Checked on arrival.
        scope: Scope,
    },
    /// Take this many more rate-limit tokens from the requesting connection.
    Charge(u32),
    /// Send the error (if any) and close: a protocol violation.
    Fail {
        /// Error sent first, past the pending limit.
        error: Refusal,
        /// Why the connection closes.
        reason: CloseReason,
    },
    /// Close once everything queued has been written (goodbye).
    CloseAfterFlush(CloseReason),
    /// The request was handed to the engine, which answers later: apply none of the
    /// connection's further requests until the answer has been applied.
    Await,
}

/// What a delivered frame belongs to, checked by the recipient's worker on arrival. A
/// recipient can leave a room or a private chat after a frame was addressed to it and
/// before its worker delivers it; such a frame is dropped, so nothing of a room arrives
/// after the recipient's own `Left`, and nothing of a chat after its `ChatEnded`. Both
/// are judged by the recipient's session, which only its worker changes, in the order
/// of the frames queued to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Nothing: always delivered.
    Anyone,
    /// A room: delivered to a recipient whose membership of the room has the epoch the
    /// fan-out snapshot named (a member that left and joined again has a new epoch).
    Room(RoomId),
    /// A message of private chat number `chat` from connection `from`: delivered while
    /// the recipient's chat (as its queued `ChatStarted` / `ChatEnded` frames left it)
    /// is that chat.
    Chat {
        /// The sender.
        from: ConnId,
        /// The chat's number.
        chat: u64,
    },
    /// `ChatStarted` of chat `chat` with `from`: delivered, and the recipient's chat is
    /// now that one, unless the recipient has already seen that chat end (its own
    /// `ChatEnd` crossed this frame): then it is dropped.
    ChatStart {
        /// The partner.
        from: ConnId,
        /// The chat's number.
        chat: u64,
    },
    /// `ChatEnded` of chat `chat` from `from`: delivered, and that chat is over for the
    /// recipient, unless it has already seen it end.
    ChatEnd {
        /// The partner.
        from: ConnId,
        /// The chat's number.
        chat: u64,
    },
}
