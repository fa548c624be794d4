//! State shared by all workers: who is connected under which nick, which rooms exist
//! and who is in them, and who is in a private chat with whom.
//!
//! Three independent locks (parking_lot), each held only for map operations and never
//! while sending on a channel or doing I/O:
//! - `directory` (nicks, case-folded, both ways),
//! - `rooms` (a `RwLock`: saying something in a room only reads it; joins and leaves
//!   write),
//! - `chats` (private-chat pairs and pending requests).
//!
//! Lock order: `directory` may be taken before `rooms` or `chats`; `rooms` and `chats`
//! are never held together. Each room keeps a snapshot of its members grouped by worker
//! (`Arc<Fanout>`), rebuilt on every join and leave, so a message costs one lock-free
//! clone of that snapshot and one channel send per worker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use shared::names::{self, fold};
use shared::{ErrorCode, Frame, Mode, RoomInfo};

/// Most rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 64;

/// Rooms up to this size tell their members about joins, leaves and nick changes;
/// larger rooms only tell the person concerned, so N joins never cost O(N^2) notices.
pub const NOTICE_MAX_MEMBERS: usize = 64;

/// Identifies one connection for its whole life. The generation makes an id of a closed
/// connection never match a new connection that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// Worker that owns the connection.
    pub worker: u32,
    /// Slot in that worker's connection table.
    pub slot: u32,
    /// Incremented each time the slot is reused.
    pub generation: u32,
}

/// One frame encoded once per framing that its recipients need; shared by all of them.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The binary frame, if any recipient is in binary mode.
    pub binary: Option<Bytes>,
    /// The rendered text line, if any recipient is in text mode.
    pub text: Option<Bytes>,
}

impl Encoded {
    /// Encodes `frame` for the framings asked for.
    pub fn new(frame: &Frame, binary: bool, text: bool) -> Self {
        let binary = if binary {
            match frame.to_bytes() {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!("cannot encode {frame:?}: {e}");
                    None
                }
            }
        } else {
            None
        };
        let text = if text {
            let mut out = bytes::BytesMut::new();
            shared::text::render_line(frame, &mut out).then(|| out.freeze())
        } else {
            None
        };
        Self { binary, text }
    }

    /// Encodes `frame` for one framing.
    pub fn for_mode(frame: &Frame, mode: Mode) -> Self {
        Self::new(frame, mode == Mode::Binary, mode == Mode::Text)
    }

    /// The bytes for a recipient speaking `mode`.
    pub fn get(&self, mode: Mode) -> Option<&Bytes> {
        match mode {
            Mode::Binary => self.binary.as_ref(),
            Mode::Text => self.text.as_ref(),
        }
    }
}

/// A set of recipients grouped by the worker that owns them.
#[derive(Debug, Default)]
pub struct Fanout {
    /// `per_worker[w]` lists the recipients owned by worker `w`.
    pub per_worker: Vec<Vec<ConnId>>,
    /// Recipients in binary mode.
    pub binary: usize,
    /// Recipients in text mode.
    pub text: usize,
}

impl Fanout {
    fn build<'a>(workers: usize, members: impl Iterator<Item = (&'a ConnId, &'a Mode)>) -> Self {
        let mut fanout = Fanout {
            per_worker: vec![Vec::new(); workers],
            binary: 0,
            text: 0,
        };
        for (&id, &mode) in members {
            if let Some(list) = fanout.per_worker.get_mut(id.worker as usize) {
                list.push(id);
            }
            match mode {
                Mode::Binary => fanout.binary += 1,
                Mode::Text => fanout.text += 1,
            }
        }
        fanout
    }

    /// Total recipients.
    pub fn len(&self) -> usize {
        self.binary + self.text
    }

    /// Whether there is nobody to deliver to.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request refused, with the code and text the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Error code.
    pub code: ErrorCode,
    /// Explanation for the user.
    pub text: String,
}

impl Refusal {
    fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    fn no_such_nick(nick: &str) -> Self {
        Self::new(ErrorCode::NO_SUCH_NICK, format!("no user is called {nick}"))
    }
}

#[derive(Debug)]
struct User {
    nick: String,
    mode: Mode,
}

#[derive(Debug, Default)]
struct Directory {
    by_nick: HashMap<String, ConnId>,
    by_conn: HashMap<ConnId, User>,
}

#[derive(Debug)]
struct Room {
    name: String,
    members: HashMap<ConnId, Mode>,
    fanout: Arc<Fanout>,
}

#[derive(Debug, Default)]
struct ChatState {
    partner: Option<ConnId>,
    /// The user this one asked for a chat, awaiting an answer.
    asked: Option<ConnId>,
    /// Users who asked this one and await an answer.
    askers: HashSet<ConnId>,
}

/// The result of a room join or leave.
#[derive(Debug)]
pub struct Membership {
    /// The room's display name.
    pub room: String,
    /// Members after the change.
    pub members: u32,
    /// Other members to notify (empty for rooms over [`NOTICE_MAX_MEMBERS`]).
    pub notify: Fanout,
}

/// What a private-chat request led to.
#[derive(Debug, PartialEq, Eq)]
pub enum ChatOutcome {
    /// The peer is in another private chat.
    Busy,
    /// The peer was asked; `peer` must be sent `ChatRequested`.
    Requested {
        /// The asked user.
        peer: ConnId,
    },
    /// The chat began (the peer had asked first, or this accepted).
    Started {
        /// The partner.
        peer: ConnId,
    },
}

/// What ending a private chat touched: users to tell it is over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChatEnding {
    /// The partner, if a chat was running.
    pub partner: Option<ConnId>,
    /// Users whose pending requests to this user were declined.
    pub declined: Vec<ConnId>,
    /// The user whose pending request from this user was withdrawn.
    pub withdrawn: Option<ConnId>,
}

/// The shared state. See the module docs for the lock order.
#[derive(Debug)]
pub struct Hub {
    workers: usize,
    next_guest: AtomicU64,
    directory: Mutex<Directory>,
    rooms: RwLock<HashMap<String, Room>>,
    chats: Mutex<HashMap<ConnId, ChatState>>,
}

impl Hub {
    /// An empty hub for a server with `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            next_guest: AtomicU64::new(1),
            directory: Mutex::new(Directory::default()),
            rooms: RwLock::new(HashMap::new()),
            chats: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a connection whose mode is now known and gives it a free `guest-N` nick.
    pub fn register(&self, id: ConnId, mode: Mode) -> String {
        let mut dir = self.directory.lock();
        let nick = loop {
            let n = self.next_guest.fetch_add(1, Ordering::Relaxed);
            let nick = format!("guest-{n}");
            if !dir.by_nick.contains_key(&nick) {
                break nick;
            }
        };
        dir.by_nick.insert(nick.clone(), id);
        dir.by_conn.insert(
            id,
            User {
                nick: nick.clone(),
                mode,
            },
        );
        drop(dir);
        self.chats.lock().insert(id, ChatState::default());
        nick
    }

    /// Looks a user up by nick (case-insensitively).
    pub fn lookup(&self, nick: &str) -> Option<(ConnId, Mode)> {
        let dir = self.directory.lock();
        let id = *dir.by_nick.get(fold(nick).as_ref())?;
        dir.by_conn.get(&id).map(|u| (id, u.mode))
    }

    /// The nick and mode of a connection.
    pub fn user(&self, id: ConnId) -> Option<(String, Mode)> {
        self.directory
            .lock()
            .by_conn
            .get(&id)
            .map(|u| (u.nick.clone(), u.mode))
    }

    /// Renames `id` to `new`; returns the old nick.
    pub fn set_nick(&self, id: ConnId, new: &str) -> Result<String, Refusal> {
        names::validate_nick(new)
            .map_err(|e| Refusal::new(ErrorCode::INVALID_NAME, format!("invalid nick: {e}")))?;
        let folded = fold(new).into_owned();
        let mut dir = self.directory.lock();
        match dir.by_nick.get(&folded) {
            Some(&owner) if owner != id => {
                return Err(Refusal::new(
                    ErrorCode::NICK_TAKEN,
                    format!("nick {new} is taken"),
                ));
            }
            _ => {}
        }
        let Some(user) = dir.by_conn.get_mut(&id) else {
            return Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered"));
        };
        let old = std::mem::replace(&mut user.nick, new.to_owned());
        dir.by_nick.remove(fold(&old).as_ref());
        dir.by_nick.insert(folded, id);
        Ok(old)
    }

    /// Adds `id` to `room`, creating it if needed. `rooms_held` is how many rooms the
    /// connection is already in.
    pub fn join(
        &self,
        id: ConnId,
        mode: Mode,
        room: &str,
        rooms_held: usize,
    ) -> Result<Membership, Refusal> {
        names::validate_room(room)
            .map_err(|e| Refusal::new(ErrorCode::INVALID_NAME, format!("invalid room: {e}")))?;
        let key = fold(room).into_owned();
        let mut rooms = self.rooms.write();
        let entry = rooms.entry(key).or_insert_with(|| Room {
            name: room.to_owned(),
            members: HashMap::new(),
            fanout: Arc::default(),
        });
        if !entry.members.contains_key(&id) {
            if rooms_held >= MAX_ROOMS_PER_CONNECTION {
                let name = entry.name.clone();
                if entry.members.is_empty() {
                    rooms.remove(fold(&name).as_ref());
                }
                return Err(Refusal::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("at most {MAX_ROOMS_PER_CONNECTION} rooms per connection"),
                ));
            }
            entry.members.insert(id, mode);
            entry.fanout = Arc::new(Fanout::build(self.workers, entry.members.iter()));
        }
        Ok(self.membership(entry, id))
    }

    fn membership(&self, room: &Room, except: ConnId) -> Membership {
        let notify = if room.members.len() <= NOTICE_MAX_MEMBERS {
            Fanout::build(
                self.workers,
                room.members.iter().filter(|(id, _)| **id != except),
            )
        } else {
            Fanout::default()
        };
        Membership {
            room: room.name.clone(),
            members: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            notify,
        }
    }

    /// Removes `id` from `room`; an empty room disappears.
    pub fn leave(&self, id: ConnId, room: &str) -> Result<Membership, Refusal> {
        let key = fold(room).into_owned();
        let mut rooms = self.rooms.write();
        let Some(entry) = rooms.get_mut(&key) else {
            return Err(Refusal::new(
                ErrorCode::NO_SUCH_ROOM,
                format!("no room is called {room}"),
            ));
        };
        if entry.members.remove(&id).is_none() {
            return Err(Refusal::new(
                ErrorCode::NOT_IN_ROOM,
                format!("you are not in {}", entry.name),
            ));
        }
        entry.fanout = Arc::new(Fanout::build(self.workers, entry.members.iter()));
        let membership = self.membership(entry, id);
        if entry.members.is_empty() {
            rooms.remove(&key);
        }
        Ok(membership)
    }

    /// The recipients of a message `id` says in `room` (the sender included), and the
    /// room's display name.
    pub fn room_fanout(&self, id: ConnId, room: &str) -> Result<(String, Arc<Fanout>), Refusal> {
        let rooms = self.rooms.read();
        let Some(entry) = rooms.get(fold(room).as_ref()) else {
            return Err(Refusal::new(
                ErrorCode::NO_SUCH_ROOM,
                format!("no room is called {room}"),
            ));
        };
        if !entry.members.contains_key(&id) {
            return Err(Refusal::new(
                ErrorCode::NOT_IN_ROOM,
                format!("you are not in {}; /join it first", entry.name),
            ));
        }
        Ok((entry.name.clone(), Arc::clone(&entry.fanout)))
    }

    /// Every room with its member count, sorted by name.
    pub fn list_rooms(&self) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self
            .rooms
            .read()
            .values()
            .map(|r| RoomInfo {
                name: r.name.clone(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// The room's display name and its members' nicks, sorted.
    pub fn who(&self, room: &str) -> Result<(String, Vec<String>), Refusal> {
        let (name, ids): (String, Vec<ConnId>) = {
            let rooms = self.rooms.read();
            let Some(entry) = rooms.get(fold(room).as_ref()) else {
                return Err(Refusal::new(
                    ErrorCode::NO_SUCH_ROOM,
                    format!("no room is called {room}"),
                ));
            };
            (entry.name.clone(), entry.members.keys().copied().collect())
        };
        let dir = self.directory.lock();
        let mut nicks: Vec<String> = ids
            .iter()
            .filter_map(|id| dir.by_conn.get(id).map(|u| u.nick.clone()))
            .collect();
        nicks.sort();
        Ok((name, nicks))
    }

    /// Everyone who shares a notice-sized room with `id` (each once), for nick-change
    /// notices.
    pub fn room_mates(&self, id: ConnId, rooms_held: &[String]) -> Fanout {
        let rooms = self.rooms.read();
        let mut mates: HashMap<ConnId, Mode> = HashMap::new();
        for room in rooms_held {
            if let Some(entry) = rooms.get(fold(room).as_ref())
                && entry.members.len() <= NOTICE_MAX_MEMBERS
            {
                mates.extend(entry.members.iter().filter(|(m, _)| **m != id));
            }
        }
        Fanout::build(self.workers, mates.iter())
    }

    /// Asks `peer_nick` for a private chat on behalf of `id`, or accepts theirs.
    pub fn chat_request(&self, id: ConnId, peer_nick: &str) -> Result<ChatOutcome, Refusal> {
        let (peer, _) = self
            .lookup(peer_nick)
            .ok_or_else(|| Refusal::no_such_nick(peer_nick))?;
        if peer == id {
            return Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                "you cannot chat with yourself",
            ));
        }
        let mut chats = self.chats.lock();
        Self::check_free(&chats, id)?;
        let Some(peer_state) = chats.get(&peer) else {
            return Err(Refusal::no_such_nick(peer_nick));
        };
        if peer_state.partner.is_some() {
            return Ok(ChatOutcome::Busy);
        }
        if peer_state.asked == Some(id) {
            Self::start_chat(&mut chats, id, peer);
            return Ok(ChatOutcome::Started { peer });
        }
        let previous = chats.get_mut(&id).and_then(|me| me.asked.replace(peer));
        if let Some(previous) = previous.filter(|p| *p != peer)
            && let Some(p) = chats.get_mut(&previous)
        {
            p.askers.remove(&id);
        }
        if let Some(p) = chats.get_mut(&peer) {
            p.askers.insert(id);
        }
        Ok(ChatOutcome::Requested { peer })
    }

    /// Accepts `peer_nick`'s pending request.
    pub fn chat_accept(&self, id: ConnId, peer_nick: &str) -> Result<ChatOutcome, Refusal> {
        let (peer, _) = self
            .lookup(peer_nick)
            .ok_or_else(|| Refusal::no_such_nick(peer_nick))?;
        let mut chats = self.chats.lock();
        Self::check_free(&chats, id)?;
        let Some(peer_state) = chats.get(&peer) else {
            return Err(Refusal::no_such_nick(peer_nick));
        };
        if peer_state.asked != Some(id) {
            return Err(Refusal::new(
                ErrorCode::NOT_IN_CHAT,
                format!("{peer_nick} has not asked you for a private chat"),
            ));
        }
        if peer_state.partner.is_some() {
            return Ok(ChatOutcome::Busy);
        }
        Self::start_chat(&mut chats, id, peer);
        Ok(ChatOutcome::Started { peer })
    }

    fn check_free(chats: &HashMap<ConnId, ChatState>, id: ConnId) -> Result<(), Refusal> {
        match chats.get(&id) {
            Some(me) if me.partner.is_some() => Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                "you are already in a private chat; /chat alone ends it",
            )),
            Some(_) => Ok(()),
            None => Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered")),
        }
    }

    fn start_chat(chats: &mut HashMap<ConnId, ChatState>, a: ConnId, b: ConnId) {
        for (me, other) in [(a, b), (b, a)] {
            let asked = chats.get_mut(&me).and_then(|s| {
                s.partner = Some(other);
                s.asked.take()
            });
            if let Some(asked) = asked
                && let Some(s) = chats.get_mut(&asked)
            {
                s.askers.remove(&me);
            }
        }
    }

    /// The private-chat partner of `id`.
    pub fn chat_partner(&self, id: ConnId) -> Option<ConnId> {
        self.chats.lock().get(&id).and_then(|s| s.partner)
    }

    /// Ends `id`'s private chat, or withdraws and declines its pending requests.
    pub fn chat_end(&self, id: ConnId) -> ChatEnding {
        let mut chats = self.chats.lock();
        Self::end_locked(&mut chats, id)
    }

    fn end_locked(chats: &mut HashMap<ConnId, ChatState>, id: ConnId) -> ChatEnding {
        let Some(me) = chats.get_mut(&id) else {
            return ChatEnding::default();
        };
        let partner = me.partner.take();
        let withdrawn = me.asked.take();
        let declined: Vec<ConnId> = me.askers.drain().collect();
        if let Some(p) = partner.and_then(|p| chats.get_mut(&p)) {
            p.partner = None;
        }
        if let Some(w) = withdrawn.and_then(|w| chats.get_mut(&w)) {
            w.askers.remove(&id);
        }
        for asker in &declined {
            if let Some(a) = chats.get_mut(asker) {
                a.asked = None;
            }
        }
        ChatEnding {
            partner,
            declined,
            withdrawn,
        }
    }

    /// Forgets a closed connection: frees its nick, takes it out of `rooms_held`, and
    /// ends its chat. Returns the room changes and chat ending to announce.
    pub fn unregister(&self, id: ConnId, rooms_held: &[String]) -> (Vec<Membership>, ChatEnding) {
        {
            let mut dir = self.directory.lock();
            if let Some(user) = dir.by_conn.remove(&id) {
                dir.by_nick.remove(fold(&user.nick).as_ref());
            }
        }
        let left = rooms_held
            .iter()
            .filter_map(|room| self.leave(id, room).ok())
            .collect();
        let mut chats = self.chats.lock();
        let ending = Self::end_locked(&mut chats, id);
        chats.remove(&id);
        (left, ending)
    }

    /// Number of registered users (for tests and stats).
    pub fn users(&self) -> usize {
        self.directory.lock().by_conn.len()
    }

    /// Number of rooms.
    pub fn rooms(&self) -> usize {
        self.rooms.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u32) -> ConnId {
        ConnId {
            worker: slot % 2,
            slot,
            generation: 0,
        }
    }

    #[test]
    fn nicks_are_unique_case_insensitively() {
        let hub = Hub::new(2);
        hub.register(id(1), Mode::Binary);
        hub.register(id(2), Mode::Text);
        assert!(hub.set_nick(id(1), "Alice").is_ok());
        let taken = hub.set_nick(id(2), "alice").unwrap_err();
        assert_eq!(taken.code, ErrorCode::NICK_TAKEN);
        assert_eq!(hub.lookup("ALICE"), Some((id(1), Mode::Binary)));
        let bad = hub.set_nick(id(2), "a b").unwrap_err();
        assert_eq!(bad.code, ErrorCode::INVALID_NAME);
    }

    #[test]
    fn rooms_group_members_by_worker_and_vanish_when_empty() {
        let hub = Hub::new(2);
        for s in 0..4 {
            hub.register(id(s), Mode::Binary);
            hub.join(id(s), Mode::Binary, "Lobby", 0).unwrap();
        }
        let (name, fanout) = hub.room_fanout(id(0), "lobby").unwrap();
        assert_eq!(name, "Lobby");
        assert_eq!(fanout.per_worker[0].len(), 2);
        assert_eq!(fanout.per_worker[1].len(), 2);
        for s in 0..4 {
            hub.leave(id(s), "lobby").unwrap();
        }
        assert_eq!(hub.rooms(), 0);
    }

    #[test]
    fn busy_peer_refuses_a_third_user() {
        let hub = Hub::new(1);
        for (s, nick) in [(1, "a"), (2, "b"), (3, "c")] {
            hub.register(id(s), Mode::Text);
            hub.set_nick(id(s), nick).unwrap();
        }
        assert_eq!(
            hub.chat_request(id(1), "b"),
            Ok(ChatOutcome::Requested { peer: id(2) })
        );
        assert_eq!(
            hub.chat_request(id(2), "a"),
            Ok(ChatOutcome::Started { peer: id(1) })
        );
        assert_eq!(hub.chat_request(id(3), "a"), Ok(ChatOutcome::Busy));
        let (_, ending) = hub.unregister(id(1), &[]);
        assert_eq!(ending.partner, Some(id(2)));
        assert_eq!(hub.chat_partner(id(2)), None);
    }
}
