//! The engine: everything connections share. Nick claims, rooms and their members,
//! fan-out snapshots, direct routing and private-chat state all live behind the
//! [`Engine`] trait, so sessions and workers never know which implementation runs.
//! [`MemoryEngine`] (one process, parking_lot locks) is the default.
//!
//! What every engine promises:
//! - **Nick claims are atomic.** Of two connections claiming the same nick (compared
//!   case-folded), exactly one gets it; a nick is free again once its holder renames or
//!   is unregistered.
//! - **Membership has one owner.** The engine alone knows who is in which room. Every
//!   join hands out a [`Membership`] stamped with a fresh epoch; fan-out snapshots name
//!   each member with the epoch of its membership, so a frame addressed to an old
//!   membership (before a leave and re-join) is recognised as stale by an integer
//!   compare on arrival.
//! - **Room ids are never reused**, so a stale frame can never match a new room that
//!   took an old name.
//! - **Private-chat transitions are atomic**: a request, an accept and an end each see
//!   and change both sides' states at once, so two users never both believe they are in
//!   a chat with different partners. Every chat gets a new, larger number.
//! - **One order per room.** Every room message gets an id, strictly increasing within
//!   its room, and is handed to the [`Outlet`] in id order before any later message of
//!   that room, so every member receives the room's messages in the same order. A join
//!   sees a definite latest id: the joiner receives every later message live, and a
//!   resuming joiner gets the kept ones after its own id replayed, so together they
//!   leave no gap and no duplicate.
//! - **History is bounded**: per room by count and bytes, and across rooms by a
//!   budget ([`HistoryLimits`]).
//! - **Answers are immediate and never block on remote I/O**: a method returns from
//!   state it holds. Ordering of other deliveries is the workers' business (see
//!   `worker::routing`). An engine that shares state with other processes answers
//!   what needs that state later, through [`Remote`] (see `remote`).

mod cluster;
mod memory;
mod remote;

use std::sync::Arc;

use bytes::Bytes;
use shared::{ErrorCode, Frame, Mode, RoomInfo};

use crate::session::Scope;

pub(crate) use cluster::ClusterEngine;
pub use cluster::valid_node_name;
pub(crate) use memory::MemoryEngine;
pub(crate) use remote::{Answer, Ask, Mailbox};

/// Most rooms one connection may be in at once.
pub(crate) const MAX_ROOMS_PER_CONNECTION: usize = 64;

/// Rooms up to this size tell their members about joins, leaves and nick changes;
/// larger rooms only tell the person concerned, so N joins never cost O(N^2) notices.
pub(crate) const NOTICE_MAX_MEMBERS: usize = 64;

/// Identifies one connection for its whole life. The generation makes an id of a closed
/// connection never match a new connection that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId {
    /// Worker that owns the connection.
    pub(crate) worker: u32,
    /// Slot in that worker's connection table.
    pub(crate) slot: u32,
    /// Incremented each time the slot is reused.
    pub(crate) generation: u32,
}

/// A room's number. Never reused within one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RoomId(pub u64);

/// One member of a fan-out snapshot: the connection and the epoch of its membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// The connection.
    pub(crate) id: ConnId,
    /// The membership's epoch (0 for recipients that are not room members, such as the
    /// room mates told of a nick change).
    pub(crate) epoch: u64,
}

/// A set of recipients grouped by the worker that owns them.
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    /// `per_worker[w]` lists the recipients owned by worker `w`.
    pub(crate) per_worker: Vec<Vec<Member>>,
    /// Recipients in binary mode.
    pub(crate) binary: usize,
    /// Recipients in text mode.
    pub(crate) text: usize,
}

impl Fanout {
    /// Groups `members` (with their framing) by worker, for a server of `workers`.
    pub(crate) fn build(workers: usize, members: impl Iterator<Item = (Member, Mode)>) -> Self {
        let mut fanout = Fanout {
            per_worker: vec![Vec::new(); workers],
            binary: 0,
            text: 0,
        };
        for (member, mode) in members {
            if let Some(list) = fanout.per_worker.get_mut(member.id.worker as usize) {
                list.push(member);
            }
            match mode {
                Mode::Binary => fanout.binary += 1,
                Mode::Text => fanout.text += 1,
            }
        }
        fanout
    }

    /// Total recipients.
    pub(crate) fn len(&self) -> usize {
        self.binary + self.text
    }

    /// Whether there is nobody to deliver to.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` is among the recipients.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: ConnId) -> bool {
        self.per_worker
            .get(id.worker as usize)
            .is_some_and(|list| list.iter().any(|m| m.id == id))
    }
}

/// A request refused, with the code and text the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Error code.
    pub(crate) code: ErrorCode,
    /// Explanation for the user.
    pub(crate) text: String,
}

impl Refusal {
    /// A refusal with `code` and `text`.
    pub(crate) fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// "no user is called NICK".
    pub(crate) fn no_such_nick(nick: &str) -> Self {
        Self::new(ErrorCode::NO_SUCH_NICK, format!("no user is called {nick}"))
    }

    /// "no room is called ROOM".
    pub(crate) fn no_such_room(room: &str) -> Self {
        Self::new(ErrorCode::NO_SUCH_ROOM, format!("no room is called {room}"))
    }
}

/// A registered user as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// The connection.
    pub(crate) id: ConnId,
    /// Its framing.
    pub(crate) mode: Mode,
    /// Its nick as it chose to write it.
    pub(crate) nick: String,
    /// The cluster node it is on, when that is not this one.
    pub(crate) node: Option<Arc<str>>,
}

/// A room by number and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomRef {
    /// Its number.
    pub(crate) id: RoomId,
    /// Its name as its creator wrote it.
    pub(crate) name: Arc<str>,
}

/// The result of a join or a leave.
#[derive(Debug)]
pub(crate) struct Membership {
    /// The room.
    pub(crate) room: RoomRef,
    /// The epoch of the joining connection's membership (on a leave: of the one that
    /// ended).
    pub(crate) epoch: u64,
    /// Members after the change.
    pub(crate) members: u32,
    /// Other members to notify (empty for rooms over [`NOTICE_MAX_MEMBERS`], and when
    /// nothing changed: a join of a room one is already in).
    pub(crate) notify: Fanout,
    /// The id of the room's latest message at the change.
    pub(crate) last: u64,
    /// For a resuming join: the kept messages after the client's id.
    pub(crate) replay: Option<Replay>,
    /// Room messages after `last` that arrived while the join was under way (a shared
    /// engine's joins take a while), delivered after the replay and before live ones.
    pub(crate) arrived: Vec<Frame>,
}

/// The kept messages after a resuming client's id, oldest first, each encoded as a
/// binary `RoomMsg`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replay {
    /// The messages.
    pub(crate) messages: Vec<Bytes>,
    /// Messages after the client's id that are no longer kept.
    pub(crate) missed: u64,
}

/// A page of a room's history, oldest first, each encoded as a binary `RoomMsg`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Page {
    /// The messages.
    pub(crate) messages: Vec<Bytes>,
    /// Whether older messages are kept before the page.
    pub(crate) more: bool,
}

/// How much history rooms keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryLimits {
    /// Most messages kept per room (0: no history).
    pub(crate) messages: usize,
    /// Most bytes kept per room.
    pub(crate) room_bytes: usize,
    /// Most bytes kept by all rooms together.
    pub(crate) budget: usize,
}

/// Where an engine hands each room message, in the room's order.
pub(crate) trait Outlet {
    /// Delivers `message` (a `RoomMsg`, already encoded as `binary`) to the members in
    /// `fanout`, each checked on arrival against its membership of room `room`. Called
    /// for each room in id order, before any later message of that room: what the
    /// outlet enqueues must reach each member in the order of the calls.
    fn deliver(&self, room: RoomId, message: &Frame, binary: &Bytes, fanout: &Arc<Fanout>);
}

/// The result of a rename.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Renamed {
    /// The nick before.
    pub(crate) old: String,
    /// Whether it changed at all (renaming to one's own nick, byte for byte, does not).
    pub(crate) changed: bool,
}

/// A list cut to a length, with the number of entries left out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Listing<T> {
    /// The entries, sorted.
    pub(crate) items: Vec<T>,
    /// Entries not listed.
    pub(crate) hidden: usize,
}

/// What a private-chat request or accept led to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChatOutcome {
    /// The peer is in a private chat or has a request pending (made or received).
    Busy {
        /// The peer's nick.
        peer: String,
    },
    /// The peer was asked and must be sent `ChatRequested`.
    Requested {
        /// The asked user.
        peer: User,
        /// A user this one had asked before and who must be told the request is
        /// withdrawn.
        withdrawn: Option<User>,
    },
    /// The chat began (the peer had asked first, or this accepted).
    Started {
        /// The partner.
        peer: User,
        /// The chat's number (increasing, never reused).
        chat: u64,
        /// Other requests of either party that ended with it.
        cancelled: Vec<Cancelled>,
    },
}

/// A pending private-chat request that ended because one side started another chat.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cancelled {
    /// Who is told.
    pub(crate) to: User,
    /// The nick of the side that started the other chat.
    pub(crate) by: String,
    /// True if `to` had asked `by` (declined); false if `by` had asked `to`
    /// (withdrawn).
    pub(crate) declined: bool,
}

/// What ending a private chat touched: users to tell it is over.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ChatEnding {
    /// The partner and the chat's number, if a chat was running.
    pub(crate) partner: Option<Partner>,
    /// Users whose pending requests to this user were declined.
    pub(crate) declined: Vec<User>,
    /// The user whose pending request from this user was withdrawn.
    pub(crate) withdrawn: Option<User>,
}

impl ChatEnding {
    /// Whether nothing was running or pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.partner.is_none() && self.declined.is_empty() && self.withdrawn.is_none()
    }
}

/// A private-chat partner and the chat's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partner {
    /// The partner.
    pub(crate) user: User,
    /// The chat's number: every chat gets a new, larger one, so a frame of a chat that
    /// has ended is told apart from one of a new chat with the same partner.
    pub(crate) chat: u64,
}

/// What unregistering a connection ended, for the announcements.
#[derive(Debug, Default)]
pub(crate) struct Departure {
    /// The nick it had.
    pub(crate) nick: String,
    /// Every room it was in.
    pub(crate) rooms: Vec<Membership>,
    /// Its private chat and pending requests.
    pub(crate) chat: ChatEnding,
}

/// Shared state as sessions see it. See the module docs for what every implementation
/// promises.
pub(crate) trait Engine: Send + Sync + std::fmt::Debug {
    /// Registers a connection whose framing is known and gives it a free `guest-N` nick.
    fn register(&self, id: ConnId, mode: Mode) -> String;

    /// Forgets a connection: frees its nick, takes it out of every room (an emptied
    /// room disappears) and ends its chat and pending requests.
    fn unregister(&self, id: ConnId) -> Departure;

    /// Claims `nick` for `id`, releasing its old one.
    fn set_nick(&self, id: ConnId, nick: &str) -> Result<Renamed, Refusal>;

    /// Looks a user up by nick (case-insensitively).
    fn lookup(&self, nick: &str) -> Option<User>;

    /// Adds `id` to `room`, creating the room if needed. Joining a room one is in
    /// changes nothing and notifies nobody. With `since` (the id of the last message
    /// the client saw), the membership carries the kept messages after it; an id this
    /// room never handed out is refused, and nothing changes.
    fn join(&self, id: ConnId, room: &str, since: Option<u64>) -> Result<Membership, Refusal>;

    /// Removes `id` from `room`; an emptied room disappears.
    fn leave(&self, id: ConnId, room: &str) -> Result<Membership, Refusal>;

    /// Says `text` in `room` as `id` (whose nick is `from`): stamps it with the room's
    /// next id and the receive time, keeps it in history and hands it to `outlet` for
    /// every member, the sender included.
    fn publish(
        &self,
        id: ConnId,
        room: &str,
        from: &str,
        text: String,
        outlet: &dyn Outlet,
    ) -> Result<(), Refusal>;

    /// The newest `limit` kept messages of `room` with ids below `before` (0: the
    /// newest of all). An id this room never handed out is refused.
    fn history(&self, room: &str, before: u64, limit: usize) -> Result<(String, Page), Refusal>;

    /// Everyone who shares a notice-sized room with `id`, each once.
    fn room_mates(&self, id: ConnId) -> Fanout;

    /// The first `limit` rooms in name order (case-folded), with member counts.
    fn list_rooms(&self, limit: usize) -> Listing<RoomInfo>;

    /// The room's display name and the first `limit` of its members' nicks, in
    /// case-folded order.
    fn who(&self, room: &str, limit: usize) -> Result<(String, Listing<String>), Refusal>;

    /// Asks `peer` for a private chat on behalf of `id`, or accepts theirs.
    fn chat_request(&self, id: ConnId, peer: &str) -> Result<ChatOutcome, Refusal>;

    /// Accepts `peer`'s pending request.
    fn chat_accept(&self, id: ConnId, peer: &str) -> Result<ChatOutcome, Refusal>;

    /// The private-chat partner of `id`, with the chat's number.
    fn chat_partner(&self, id: ConnId) -> Option<Partner>;

    /// Ends `id`'s private chat, or withdraws and declines its pending requests.
    fn chat_end(&self, id: ConnId) -> ChatEnding;

    /// Counts for stats: registered users and rooms.
    fn counts(&self) -> EngineCounts;

    /// The asynchronous side of an engine shared with other processes; `None` for an
    /// engine that answers everything at once.
    fn remote(&self) -> Option<&dyn Remote> {
        None
    }

    /// Gives the engine the way to the workers, once they exist.
    fn attach(&self, _mailbox: Arc<dyn Mailbox>) {}

    /// Extra `/stats` entries and metrics (the cluster view).
    fn extra_stats(&self) -> Vec<ExtraStat> {
        Vec::new()
    }

    /// Stops the engine's own threads, if any.
    fn stop(&self) {}
}

/// One of an engine's own counters or gauges: `/stats` shows it as `name`, the metrics
/// endpoint as `chat_NAME` (`chat_NAME_total` for a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExtraStat {
    /// Name in `/stats`.
    pub(crate) name: &'static str,
    /// What it counts, for the metrics endpoint.
    pub(crate) help: &'static str,
    /// Whether it only grows (a counter) rather than going up and down (a gauge).
    pub(crate) counter: bool,
    /// The value.
    pub(crate) value: u64,
}

/// Requests an engine answers later (see `remote`).
pub(crate) trait Remote {
    /// Starts `ask` for connection `id` (framing `mode`); its [`Answer`] reaches the
    /// connection's worker through the [`Mailbox`]. Refused at once if the engine
    /// cannot take more work or its store is unreachable.
    fn ask(&self, id: ConnId, mode: Mode, ask: Ask) -> Result<(), Refusal>;

    /// Sends `frame` to connection `to` of cluster node `node`, where it is checked
    /// against `scope` on arrival. Frames of one sender arrive in the order sent; one
    /// that cannot be sent (Redis unreachable) is dropped and counted.
    fn send(&self, node: &str, to: ConnId, frame: Frame, scope: Scope);
}

/// Sizes an engine reports in stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EngineCounts {
    /// Registered users.
    pub(crate) users: u64,
    /// Rooms.
    pub(crate) rooms: u64,
    /// Memberships summed over rooms.
    pub(crate) members: u64,
    /// Bytes of history kept, as accounted against the budget.
    pub(crate) history_bytes: u64,
}
