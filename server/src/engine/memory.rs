//! [`MemoryEngine`]: the single-node engine, all state in this process.
//!
//! Three independent locks (parking_lot), each held only for map operations and never
//! while doing I/O, and never two of them at once:
//! - `directory`: nicks, case-folded, both ways, with each user's framing;
//! - `rooms`: a `RwLock` over rooms by number and by folded name, and the rooms each
//!   connection holds (saying something in a room only reads it; joins and leaves
//!   write);
//! - `chats`: private-chat partners and pending requests.
//!
//! Inside `rooms`, each room has a `Mutex` over its log (ids and history, see
//! `history`): taken only with `rooms` held, never two at once, and nothing else is
//! taken while it is held. A message is stamped, kept and handed to the outlet (which
//! only pushes onto channels) under it, which is what gives each room one order.
//! Joins hold `rooms` for writing, so a join falls between two messages: it sees the
//! id of the last, and the membership snapshot of the next includes the joiner.
//! Evicting history across rooms (`evicting`) happens with `rooms` read-locked and no
//! room log held; it then takes the room logs one at a time.
//!
//! A room whose last member leaves is kept while it holds history (its ids go on where
//! they stopped) and forgotten once eviction empties it; such rooms are charged to the
//! history budget and are not listed.
//!
//! Each room keeps a snapshot of its members grouped by worker (`Arc<Fanout>`), rebuilt
//! on every join and leave, so a message costs one clone of that snapshot. Rooms are
//! also indexed by folded name in a `BTreeMap`, so `/rooms` reads the first page in
//! order without copying or sorting every room.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use shared::names::{self, fold};
use shared::{ErrorCode, Frame, Mode, RoomInfo};

mod chats;
mod history;
mod rooms;

use chats::{ChatState, Chats, Ended};
use history::RoomLog;
use rooms::{Room, RoomTable, unknown_id};

use super::{
    ChatEnding, ChatOutcome, ConnId, Departure, Engine, EngineCounts, Fanout, HistoryLimits,
    Listing, MAX_ROOMS_PER_CONNECTION, Member, Membership, NOTICE_MAX_MEMBERS, Outlet, Page,
    Partner, Refusal, Renamed, RoomId, User,
};

#[derive(Debug)]
struct Entry {
    nick: String,
    mode: Mode,
}

#[derive(Debug, Default)]
struct Directory {
    by_nick: HashMap<String, ConnId>,
    by_conn: HashMap<ConnId, Entry>,
}

impl Directory {
    fn user(&self, id: ConnId) -> Option<User> {
        self.by_conn.get(&id).map(|e| User {
            id,
            mode: e.mode,
            nick: e.nick.clone(),
            node: None,
        })
    }
}

/// The in-memory engine. See the module docs for its locks.
#[derive(Debug)]
pub(crate) struct MemoryEngine {
    workers: usize,
    limits: HistoryLimits,
    next_guest: AtomicU64,
    next_epoch: AtomicU64,
    next_chat: AtomicU64,
    directory: Mutex<Directory>,
    rooms: RwLock<RoomTable>,
    chats: Mutex<Chats>,
    /// History bytes held by all rooms, as accounted against `limits.budget`.
    history_bytes: AtomicUsize,
    /// Held by the one thread evicting history across rooms.
    evicting: Mutex<()>,
}

impl MemoryEngine {
    /// An empty engine for a server with `workers` workers, keeping history within
    /// `limits`.
    pub(crate) fn new(workers: usize, limits: HistoryLimits) -> Self {
        Self {
            workers,
            limits,
            next_guest: AtomicU64::new(1),
            next_epoch: AtomicU64::new(1),
            next_chat: AtomicU64::new(1),
            directory: Mutex::new(Directory::default()),
            rooms: RwLock::new(RoomTable::default()),
            chats: Mutex::new(HashMap::new()),
            history_bytes: AtomicUsize::new(0),
            evicting: Mutex::new(()),
        }
    }

    fn users(&self, ids: impl IntoIterator<Item = ConnId>) -> Vec<User> {
        let dir = self.directory.lock();
        ids.into_iter().filter_map(|id| dir.user(id)).collect()
    }

    fn started(
        &self,
        peer: ConnId,
        (chat, ended): (u64, Vec<(ConnId, ConnId, bool)>),
    ) -> ChatOutcome {
        let dir = self.directory.lock();
        let cancelled = ended
            .into_iter()
            .filter_map(|(to, by, declined)| {
                Some(super::Cancelled {
                    to: dir.user(to)?,
                    by: dir.user(by)?.nick,
                    declined,
                })
            })
            .collect();
        match dir.user(peer) {
            Some(peer) => ChatOutcome::Started {
                peer,
                chat,
                cancelled,
            },
            None => ChatOutcome::Busy {
                peer: String::new(),
            },
        }
    }

    fn ending(&self, (partner, declined, withdrawn): Ended) -> ChatEnding {
        let dir = self.directory.lock();
        ChatEnding {
            partner: partner.and_then(|(p, chat)| {
                Some(Partner {
                    user: dir.user(p)?,
                    chat,
                })
            }),
            declined: declined.into_iter().filter_map(|d| dir.user(d)).collect(),
            withdrawn: withdrawn.and_then(|w| dir.user(w)),
        }
    }
}

impl Engine for MemoryEngine {
    fn register(&self, id: ConnId, mode: Mode) -> String {
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
            Entry {
                nick: nick.clone(),
                mode,
            },
        );
        drop(dir);
        self.chats.lock().insert(id, ChatState::default());
        nick
    }

    fn unregister(&self, id: ConnId) -> Departure {
        // Chats first, while the directory still names everyone involved.
        let ended = {
            let mut chats = self.chats.lock();
            let ended = chats::end(&mut chats, id);
            chats.remove(&id);
            ended
        };
        let chat = self.ending(ended);
        let nick = {
            let mut dir = self.directory.lock();
            match dir.by_conn.remove(&id) {
                Some(entry) => {
                    dir.by_nick.remove(fold(&entry.nick).as_ref());
                    entry.nick
                }
                None => String::new(),
            }
        };
        let mut table = self.rooms.write();
        let held = table.held.get(&id).cloned().unwrap_or_default();
        let rooms = held
            .into_iter()
            .filter_map(|rid| self.leave_locked(&mut table, id, rid))
            .collect();
        Departure { nick, rooms, chat }
    }

    fn set_nick(&self, id: ConnId, new: &str) -> Result<Renamed, Refusal> {
        names::validate_nick(new)
            .map_err(|e| Refusal::new(ErrorCode::INVALID_NAME, format!("invalid nick: {e}")))?;
        let folded = fold(new).into_owned();
        let mut dir = self.directory.lock();
        if let Some(&owner) = dir.by_nick.get(&folded)
            && owner != id
        {
            return Err(Refusal::new(
                ErrorCode::NICK_TAKEN,
                format!("nick {new} is taken"),
            ));
        }
        let Some(entry) = dir.by_conn.get_mut(&id) else {
            return Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered"));
        };
        if entry.nick == new {
            return Ok(Renamed {
                old: new.to_owned(),
                changed: false,
            });
        }
        let old = std::mem::replace(&mut entry.nick, new.to_owned());
        dir.by_nick.remove(fold(&old).as_ref());
        dir.by_nick.insert(folded, id);
        Ok(Renamed { old, changed: true })
    }

    fn lookup(&self, nick: &str) -> Option<User> {
        let dir = self.directory.lock();
        let id = *dir.by_nick.get(fold(nick).as_ref())?;
        dir.user(id)
    }

    fn join(&self, id: ConnId, room: &str, since: Option<u64>) -> Result<Membership, Refusal> {
        names::validate_room(room)
            .map_err(|e| Refusal::new(ErrorCode::INVALID_NAME, format!("invalid room: {e}")))?;
        let Some(mode) = self.directory.lock().by_conn.get(&id).map(|e| e.mode) else {
            return Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered"));
        };
        let key = fold(room).into_owned();
        let mut guard = self.rooms.write();
        let table = &mut *guard;
        let existing = table.by_name.get(&key).copied();
        if let Some(rid) = existing
            && let Some(entry) = table.by_id.get_mut(&rid)
            && let Some(&(_, epoch)) = entry.members.get(&id)
        {
            if since.is_some() {
                return Err(Refusal::new(
                    ErrorCode::INVALID_REQUEST,
                    format!(
                        "you are in {} already; resuming applies to a new join",
                        entry.name
                    ),
                ));
            }
            let mut membership = self.membership(entry, id, epoch, false);
            membership.room.id = rid;
            return Ok(membership);
        }
        let held = table.held.get(&id).map_or(0, Vec::len);
        if held >= MAX_ROOMS_PER_CONNECTION {
            return Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                format!("at most {MAX_ROOMS_PER_CONNECTION} rooms per connection"),
            ));
        }
        let replay = match (since, existing.and_then(|rid| table.by_id.get_mut(&rid))) {
            (None, _) => None,
            (Some(since), Some(entry)) => match entry.log.get_mut().since(since) {
                Some(replay) => Some(replay),
                None => return Err(unknown_id(&entry.name, since)),
            },
            (Some(since), None) => return Err(unknown_id(room, since)),
        };
        let rid = match existing {
            Some(rid) => rid,
            None => {
                table.next_id += 1;
                let rid = RoomId(table.next_id);
                table.by_name.insert(key, rid);
                table.by_id.insert(
                    rid,
                    Room {
                        name: Arc::from(room),
                        members: HashMap::new(),
                        fanout: Arc::default(),
                        log: Mutex::new(RoomLog::new(shared::time::unix_nanos())),
                    },
                );
                rid
            }
        };
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        let Some(entry) = table.by_id.get_mut(&rid) else {
            return Err(Refusal::no_such_room(room));
        };
        if entry.members.is_empty() {
            table.occupied += 1;
        }
        entry.members.insert(id, (mode, epoch));
        entry.fanout = Arc::new(self.fanout(entry, None));
        let mut membership = self.membership(entry, id, epoch, true);
        membership.room.id = rid;
        membership.replay = replay;
        table.held.entry(id).or_default().push(rid);
        table.members += 1;
        Ok(membership)
    }

    fn leave(&self, id: ConnId, room: &str) -> Result<Membership, Refusal> {
        let key = fold(room).into_owned();
        let mut table = self.rooms.write();
        let Some(&rid) = table.by_name.get(&key) else {
            return Err(Refusal::no_such_room(room));
        };
        match self.leave_locked(&mut table, id, rid) {
            Some(membership) => Ok(membership),
            None => {
                let name = table.by_id.get(&rid).map_or(room, |r| &r.name);
                Err(Refusal::new(
                    ErrorCode::NOT_IN_ROOM,
                    format!("you are not in {name}"),
                ))
            }
        }
    }

    fn publish(
        &self,
        id: ConnId,
        room: &str,
        from: &str,
        text: String,
        outlet: &dyn Outlet,
    ) -> Result<(), Refusal> {
        let table = self.rooms.read();
        let (rid, entry) = table.joined(id, room)?;
        let change = {
            let mut log = entry.log.lock();
            let (msg_id, time_ns) = log.stamp(shared::time::unix_nanos());
            let message = Frame::RoomMsg {
                room: entry.name.to_string(),
                from: from.to_owned(),
                id: msg_id,
                time_ns,
                text,
            };
            let binary = match message.to_bytes() {
                Ok(binary) => binary,
                Err(e) => {
                    log.unstamp();
                    return Err(Refusal::new(ErrorCode::INVALID_REQUEST, e.to_string()));
                }
            };
            let change = log.keep(&binary, &self.limits);
            outlet.deliver(rid, &message, &binary, &entry.fanout);
            change
        };
        history::account(&self.history_bytes, change);
        if self.history_bytes.load(Ordering::Relaxed) > self.limits.budget {
            let emptied = self.evict(&table);
            drop(table);
            if emptied {
                self.forget_emptied_rooms();
            }
        }
        Ok(())
    }

    fn history(&self, room: &str, before: u64, limit: usize) -> Result<(String, Page), Refusal> {
        let table = self.rooms.read();
        let (_, entry) = table.named(room)?;
        let page = entry.log.lock().page(before, limit);
        match page {
            Some(page) => Ok((entry.name.to_string(), page)),
            None => Err(unknown_id(&entry.name, before)),
        }
    }

    fn room_mates(&self, id: ConnId) -> Fanout {
        let table = self.rooms.read();
        let mut mates: HashMap<ConnId, Mode> = HashMap::new();
        for rid in table.held.get(&id).into_iter().flatten() {
            if let Some(room) = table.by_id.get(rid)
                && room.members.len() <= NOTICE_MAX_MEMBERS
            {
                mates.extend(
                    room.members
                        .iter()
                        .filter(|(m, _)| **m != id)
                        .map(|(&m, &(mode, _))| (m, mode)),
                );
            }
        }
        Fanout::build(
            self.workers,
            mates
                .into_iter()
                .map(|(id, mode)| (Member { id, epoch: 0 }, mode)),
        )
    }

    fn list_rooms(&self, limit: usize) -> Listing<RoomInfo> {
        let table = self.rooms.read();
        let items: Vec<RoomInfo> = table
            .by_name
            .values()
            .filter_map(|rid| table.by_id.get(rid))
            .filter(|r| !r.members.is_empty())
            .take(limit)
            .map(|r| RoomInfo {
                name: r.name.to_string(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
            })
            .collect();
        let hidden = usize::try_from(table.occupied).unwrap_or(usize::MAX) - items.len();
        Listing { items, hidden }
    }

    fn who(&self, room: &str, limit: usize) -> Result<(String, Listing<String>), Refusal> {
        let (name, ids): (String, Vec<ConnId>) = {
            let table = self.rooms.read();
            let (_, entry) = table.named(room)?;
            (
                entry.name.to_string(),
                entry.members.keys().copied().collect(),
            )
        };
        let mut nicks: Vec<String> = {
            let dir = self.directory.lock();
            ids.iter()
                .filter_map(|id| dir.by_conn.get(id).map(|e| e.nick.clone()))
                .collect()
        };
        // Case-folded, like the room list (ties, which unique nicks cannot have, by
        // bytes).
        let order = |a: &String, b: &String| fold(a).cmp(&fold(b)).then_with(|| a.cmp(b));
        let total = nicks.len();
        if total > limit && limit > 0 {
            nicks.select_nth_unstable_by(limit - 1, order);
        }
        nicks.truncate(limit);
        nicks.sort_by(order);
        let hidden = total - nicks.len();
        Ok((
            name,
            Listing {
                items: nicks,
                hidden,
            },
        ))
    }

    fn chat_request(&self, id: ConnId, peer_nick: &str) -> Result<ChatOutcome, Refusal> {
        let peer = self
            .lookup(peer_nick)
            .ok_or_else(|| Refusal::no_such_nick(peer_nick))?;
        if peer.id == id {
            return Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                "you cannot chat with yourself",
            ));
        }
        let mut chats = self.chats.lock();
        chats::check_free(&chats, id)?;
        let Some(peer_state) = chats.get(&peer.id) else {
            return Err(Refusal::no_such_nick(peer_nick));
        };
        if peer_state.partner.is_none() && peer_state.asked == Some(id) {
            let ended = chats::start(
                &mut chats,
                id,
                peer.id,
                self.next_chat.fetch_add(1, Ordering::Relaxed),
            );
            drop(chats);
            return Ok(self.started(peer.id, ended));
        }
        if peer_state.busy_for(id) {
            return Ok(ChatOutcome::Busy { peer: peer.nick });
        }
        let previous = chats.get_mut(&id).and_then(|me| me.asked.replace(peer.id));
        let withdrawn = previous.filter(|p| *p != peer.id);
        if let Some(p) = withdrawn.and_then(|w| chats.get_mut(&w)) {
            p.askers.remove(&id);
        }
        if let Some(p) = chats.get_mut(&peer.id) {
            p.askers.insert(id);
        }
        drop(chats);
        let withdrawn = withdrawn.and_then(|w| self.users([w]).pop());
        Ok(ChatOutcome::Requested { peer, withdrawn })
    }

    fn chat_accept(&self, id: ConnId, peer_nick: &str) -> Result<ChatOutcome, Refusal> {
        let peer = self
            .lookup(peer_nick)
            .ok_or_else(|| Refusal::no_such_nick(peer_nick))?;
        let mut chats = self.chats.lock();
        chats::check_free(&chats, id)?;
        let Some(peer_state) = chats.get(&peer.id) else {
            return Err(Refusal::no_such_nick(peer_nick));
        };
        if peer_state.asked != Some(id) || peer_state.partner.is_some() {
            return Err(Refusal::new(
                ErrorCode::NOT_IN_CHAT,
                format!("{} has not asked you for a private chat", peer.nick),
            ));
        }
        let ended = chats::start(
            &mut chats,
            id,
            peer.id,
            self.next_chat.fetch_add(1, Ordering::Relaxed),
        );
        drop(chats);
        Ok(self.started(peer.id, ended))
    }

    fn chat_partner(&self, id: ConnId) -> Option<Partner> {
        let (partner, chat) = self.chats.lock().get(&id).and_then(|s| s.partner)?;
        let user = self.users([partner]).pop()?;
        Some(Partner { user, chat })
    }

    fn chat_end(&self, id: ConnId) -> ChatEnding {
        let ended = chats::end(&mut self.chats.lock(), id);
        self.ending(ended)
    }

    fn counts(&self) -> EngineCounts {
        let users = self.directory.lock().by_conn.len() as u64;
        let table = self.rooms.read();
        EngineCounts {
            users,
            rooms: table.occupied,
            members: table.members,
            history_bytes: self.history_bytes.load(Ordering::Relaxed) as u64,
        }
    }
}
