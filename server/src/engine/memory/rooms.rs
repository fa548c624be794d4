//! The rooms of [`MemoryEngine`]: the room table, a room's members and log, and the
//! steps the engine's room methods share: fan-out snapshots, memberships, leaving with
//! the table write-locked, evicting history across rooms and forgetting emptied rooms;
//! and what a cluster engine reads of the local state it keeps here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use shared::names::fold;
use shared::{ErrorCode, Mode};

use super::MemoryEngine;
use super::history::{self, RoomLog};
use crate::engine::{
    ConnId, Fanout, Member, Membership, NOTICE_MAX_MEMBERS, Refusal, RoomId, RoomRef, User,
};

#[derive(Debug)]
pub(super) struct Room {
    pub(super) name: Arc<str>,
    /// Member to (framing, membership epoch).
    pub(super) members: HashMap<ConnId, (Mode, u64)>,
    pub(super) fanout: Arc<Fanout>,
    pub(super) log: Mutex<RoomLog>,
}

#[derive(Debug, Default)]
pub(super) struct RoomTable {
    pub(super) next_id: u64,
    pub(super) by_id: HashMap<RoomId, Room>,
    pub(super) by_name: BTreeMap<String, RoomId>,
    /// The rooms each connection is in, in join order.
    pub(super) held: HashMap<ConnId, Vec<RoomId>>,
    pub(super) members: u64,
    /// Rooms with at least one member (the others are kept for their history).
    pub(super) occupied: u64,
}

impl RoomTable {
    /// The room called `room` (case-folded), or "no room is called ROOM".
    pub(super) fn named(&self, room: &str) -> Result<(RoomId, &Room), Refusal> {
        self.by_name
            .get(fold(room).as_ref())
            .and_then(|&rid| Some((rid, self.by_id.get(&rid)?)))
            .ok_or_else(|| Refusal::no_such_room(room))
    }

    /// The room called `room`, if `id` is a member, or why it may not speak there.
    pub(super) fn joined(&self, id: ConnId, room: &str) -> Result<(RoomId, &Room), Refusal> {
        let (rid, entry) = self.named(room)?;
        if !entry.members.contains_key(&id) {
            return Err(Refusal::new(
                ErrorCode::NOT_IN_ROOM,
                format!("you are not in {}; /join it first", entry.name),
            ));
        }
        Ok((rid, entry))
    }
}

impl MemoryEngine {
    pub(super) fn fanout(&self, room: &Room, except: Option<ConnId>) -> Fanout {
        Fanout::build(
            self.workers,
            room.members
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(&id, &(mode, epoch))| (Member { id, epoch }, mode)),
        )
    }

    pub(super) fn membership(
        &self,
        room: &mut Room,
        id: ConnId,
        epoch: u64,
        changed: bool,
    ) -> Membership {
        let notify = if changed && room.members.len() <= NOTICE_MAX_MEMBERS {
            self.fanout(room, Some(id))
        } else {
            Fanout::default()
        };
        Membership {
            room: RoomRef {
                id: RoomId(0),
                name: Arc::clone(&room.name),
            },
            epoch,
            members: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            notify,
            last: room.log.get_mut().last(),
            replay: None,
            arrived: Vec::new(),
        }
    }

    /// Takes `id` out of room `rid` with the table write-locked.
    pub(super) fn leave_locked(
        &self,
        table: &mut RoomTable,
        id: ConnId,
        rid: RoomId,
    ) -> Option<Membership> {
        let room = table.by_id.get_mut(&rid)?;
        let (_, epoch) = room.members.remove(&id)?;
        table.members -= 1;
        room.fanout = Arc::new(self.fanout(room, None));
        let mut membership = self.membership(room, id, epoch, true);
        membership.room.id = rid;
        if room.members.is_empty() {
            table.occupied -= 1;
            if room.log.get_mut().is_empty() {
                let key = fold(&room.name).into_owned();
                table.by_id.remove(&rid);
                table.by_name.remove(&key);
            }
        }
        if let Some(held) = table.held.get_mut(&id) {
            held.retain(|r| *r != rid);
            if held.is_empty() {
                table.held.remove(&id);
            }
        }
        Some(membership)
    }

    /// Brings history back under the budget, if no other thread did meanwhile.
    /// Returns whether some room's history was emptied.
    pub(super) fn evict(&self, table: &RoomTable) -> bool {
        let _evicting = self.evicting.lock();
        let budget = self.limits.budget;
        if self.history_bytes.load(Ordering::Relaxed) <= budget {
            return false;
        }
        // Down to a little under the budget, so evictions come in batches.
        let target = budget - budget / 16;
        history::evict(
            table.by_id.values().map(|room| &room.log),
            &self.history_bytes,
            target,
        )
    }

    /// Forgets the rooms that have neither members nor history.
    pub(super) fn forget_emptied_rooms(&self) {
        let mut table = self.rooms.write();
        let table = &mut *table;
        let gone: Vec<RoomId> = table
            .by_id
            .iter_mut()
            .filter_map(|(rid, room)| {
                (room.members.is_empty() && room.log.get_mut().is_empty()).then_some(*rid)
            })
            .collect();
        for rid in gone {
            if let Some(room) = table.by_id.remove(&rid) {
                table.by_name.remove(fold(&room.name).as_ref());
            }
        }
    }
}

/// "ID is not a message id of ROOM".
pub(super) fn unknown_id(room: &str, id: u64) -> Refusal {
    Refusal::new(
        ErrorCode::UNKNOWN_MESSAGE_ID,
        format!(
            "{id} is not a message id of {room} on this server (from another room, from \
             the future, or from before the server started); nothing replayed"
        ),
    )
}

/// What a cluster engine asks of the local state it keeps in a [`MemoryEngine`]: the
/// local members of a room and each connection's nick.
impl MemoryEngine {
    /// Starts guest numbers at `base` (a cluster hands each node its own block).
    pub(crate) fn with_guest_base(self, base: u64) -> Self {
        self.next_guest.store(base, Ordering::Relaxed);
        self
    }

    /// A room's number, display name and local members, by folded name.
    pub(crate) fn room_snapshot(&self, folded: &str) -> Option<(RoomId, Arc<str>, Arc<Fanout>)> {
        let table = self.rooms.read();
        let rid = *table.by_name.get(folded)?;
        let room = table.by_id.get(&rid)?;
        Some((rid, Arc::clone(&room.name), Arc::clone(&room.fanout)))
    }

    /// The display name of a room `id` is in, or why it may not speak there.
    pub(crate) fn member_of(&self, id: ConnId, room: &str) -> Result<Arc<str>, Refusal> {
        let table = self.rooms.read();
        let (_, entry) = table.joined(id, room)?;
        Ok(Arc::clone(&entry.name))
    }

    /// Local members of a room, by folded name.
    pub(crate) fn local_members(&self, folded: &str) -> usize {
        let table = self.rooms.read();
        table
            .by_name
            .get(folded)
            .and_then(|rid| table.by_id.get(rid))
            .map_or(0, |room| room.members.len())
    }

    /// The local members of the rooms named (folded), each once: those to tell of a
    /// rename said on another node.
    pub(crate) fn members_of(&self, folded: &[&str]) -> Fanout {
        let table = self.rooms.read();
        let mut mates: HashMap<ConnId, Mode> = HashMap::new();
        for name in folded {
            if let Some(room) = table
                .by_name
                .get(*name)
                .and_then(|rid| table.by_id.get(rid))
            {
                mates.extend(room.members.iter().map(|(&m, &(mode, _))| (m, mode)));
            }
        }
        Fanout::build(
            self.workers,
            mates
                .into_iter()
                .map(|(id, mode)| (Member { id, epoch: 0 }, mode)),
        )
    }

    /// A connection's nick and framing.
    pub(crate) fn user_of(&self, id: ConnId) -> Option<User> {
        self.directory.lock().user(id)
    }
}
