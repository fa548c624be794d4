//! Joining and leaving rooms, on the command thread: a join that stays exact while
//! the room is busy (see [`Bridge::join_and_answer`]), resumes, and leaves.

use bytes::Bytes;
use shared::ErrorCode;
use shared::names::{self, fold};

use super::bridge::{Bridge, encode, unavailable, unknown_id};
use super::keys;
use crate::engine::{
    Answer, ConnId, Engine, Fanout, Membership, NOTICE_MAX_MEMBERS, Refusal, Replay,
};

/// How long a join waits for its room's subscription to be confirmed.
const SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Bridge {
    /// Joins `id` to `room` and answers it. The joiner is a local member (but pending)
    /// before Redis reads the room's latest id; the messages that reach this node
    /// meanwhile are kept for it rather than delivered, and handed over in the answer,
    /// which goes onto its worker's channel before any later room message can: so it
    /// gets every message after `last` once, in order.
    pub(super) fn join_and_answer(&mut self, id: ConnId, room: &str, since: Option<u64>) {
        let joined = self.join(id, room, since);
        let Some(mailbox) = self.core.mailbox.get().cloned() else {
            return;
        };
        match joined {
            Err(refusal) => mailbox.answer(id, Answer::Joined(Err(refusal))),
            Ok((mut membership, new)) => {
                let rid = membership.room.id;
                let last = membership.last;
                let mut pending = self.core.pending.lock();
                let arrived = pending.remove(&(rid, id)).unwrap_or_default();
                membership.arrived = arrived
                    .into_iter()
                    .filter(|(msg_id, _)| *msg_id > last)
                    .map(|(_, frame)| frame)
                    .collect();
                if new {
                    // Messages up to `last` still on their way are not for the joiner.
                    self.core.joined_at(rid, id, last);
                }
                mailbox.answer(id, Answer::Joined(Ok(membership)));
                drop(pending);
            }
        }
    }

    /// The join itself (see [`Bridge::join_and_answer`]): the membership, and whether it
    /// is new.
    fn join(
        &mut self,
        id: ConnId,
        room: &str,
        since: Option<u64>,
    ) -> Result<(Membership, bool), Refusal> {
        names::validate_room(room)
            .map_err(|e| Refusal::new(ErrorCode::INVALID_NAME, format!("invalid room: {e}")))?;
        let Some(user) = self.core.memory.user_of(id) else {
            return Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered"));
        };
        let already = self.core.memory.member_of(id, room).ok();
        if since.is_some()
            && let Some(name) = &already
        {
            return Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                format!("you are in {name} already; resuming applies to a new join"),
            ));
        }
        let folded = fold(room).into_owned();
        let channel = self.keys().room_channel(&folded);
        if !self.core.subscriber.subscribe(&channel, SUBSCRIBE_WAIT) {
            self.unsubscribe_if_unused(&folded);
            return Err(unavailable("the room's subscription was not confirmed"));
        }
        let node = self.core.node.clone();
        let keys = self.keys().clone();
        // The room's display name, as the node that created it wrote it.
        let name_key = keys.room(&folded, "name");
        let known: Option<String> =
            match self.with(|conn, _| redis::cmd("GET").arg(&name_key).query(conn)) {
                Ok(known) => known,
                Err(refusal) => {
                    self.unsubscribe_if_unused(&folded);
                    return Err(refusal);
                }
            };
        let display = known.unwrap_or_else(|| room.to_owned());
        // A local member first, pending: the room's messages from now on are kept for
        // it (the per-connection room limit is checked here, before Redis changes).
        let mut membership = match self.core.memory.join(id, &display, None) {
            Ok(membership) => membership,
            Err(refusal) => {
                self.unsubscribe_if_unused(&folded);
                return Err(refusal);
            }
        };
        let rid = membership.room.id;
        let new = already.is_none();
        if new {
            self.core.pending.lock().insert((rid, id), Vec::new());
        }
        let undo = |bridge: &mut Self| {
            if new {
                bridge.core.pending.lock().remove(&(rid, id));
                let _ = bridge.core.memory.leave(id, &display);
            }
            bridge.unsubscribe_if_unused(&folded);
        };
        let since_arg = since.map(|s| s.to_string()).unwrap_or_default();
        let now = shared::time::unix_nanos().to_string();
        let joined: Result<redis::Value, Refusal> = self.with(|conn, scripts| {
            scripts
                .join
                .key(keys.room(&folded, "members"))
                .key(&name_key)
                .key(keys.room(&folded, "seq"))
                .key(keys.room(&folded, "base"))
                .key(keys.room(&folded, "log"))
                .key(keys.rooms())
                .key(keys.node_rooms(&node))
                .arg(keys::owner(&node, id).trim_end_matches('|'))
                .arg(&user.nick)
                .arg(&display)
                .arg(&now)
                .arg(&folded)
                .arg(&since_arg)
                .arg(&channel)
                .arg(NOTICE_MAX_MEMBERS)
                .invoke(conn)
        });
        let parsed = joined.and_then(|joined| {
            parse_join(joined).ok_or_else(|| {
                Refusal::new(ErrorCode::INVALID_REQUEST, "unexpected answer from Redis")
            })
        });
        let (members, name, last, log) = match parsed {
            Ok(parsed) => parsed,
            Err(refusal) => {
                undo(self);
                return Err(refusal);
            }
        };
        if members < 0 {
            undo(self);
            return Err(unknown_id(&name, since.unwrap_or(0)));
        }
        self.held
            .entry(id)
            .or_default()
            .rooms
            .insert(folded.clone());
        // Messages missed by the subscription are found from here on.
        self.core.delivered.lock().entry(folded).or_insert(last);
        // The members, local ones included, are told through the room's channel.
        membership.notify = Fanout::default();
        membership.last = last;
        membership.members = u32::try_from(members).unwrap_or(u32::MAX);
        if let Some(since) = since {
            membership.replay = Some(replay(&name, since, last, &log));
        }
        Ok((membership, new))
    }

    /// Unsubscribes from `folded`'s channel when no local member is left in it.
    fn unsubscribe_if_unused(&self, folded: &str) {
        if self.core.memory.local_members(folded) == 0 {
            self.core
                .subscriber
                .unsubscribe(&self.keys().room_channel(folded));
            self.core.forget_room_if_unused(folded);
        }
    }

    /// Takes `id` out of `folded` in Redis; unsubscribes when no local member is left.
    pub(super) fn leave(&mut self, id: ConnId, folded: &str) -> Result<(), Refusal> {
        let node = self.core.node.clone();
        let keys = self.keys().clone();
        let none_left = self.core.memory.local_members(folded) == 0;
        if none_left {
            self.core.subscriber.unsubscribe(&keys.room_channel(folded));
            self.core.forget_room_if_unused(folded);
        }
        let left: Result<i64, Refusal> = self.with(|conn, scripts| {
            scripts
                .leave
                .key(keys.room(folded, "members"))
                .key(keys.rooms())
                .key(keys.node_rooms(&node))
                .arg(keys::owner(&node, id).trim_end_matches('|'))
                .arg(folded)
                .arg(if none_left { "1" } else { "0" })
                .arg(keys.room_channel(folded))
                .arg(NOTICE_MAX_MEMBERS)
                .invoke(conn)
        });
        left.map(drop)
    }
}

/// `{members, name, last, log}` from the join script.
fn parse_join(value: redis::Value) -> Option<(i64, String, u64, Vec<Vec<u8>>)> {
    let redis::Value::Array(items) = value else {
        return None;
    };
    let members: i64 = redis::from_redis_value_ref(items.first()?).ok()?;
    let name: String = redis::from_redis_value_ref(items.get(1)?).ok()?;
    let last: u64 = redis::from_redis_value_ref(items.get(2)?).ok()?;
    let log = match items.get(3) {
        Some(value) => redis::from_redis_value_ref(value).ok()?,
        None => Vec::new(),
    };
    Some((members, name, last, log))
}

/// The kept messages after `since`, and how many after it are no longer kept.
fn replay(room: &str, since: u64, last: u64, log: &[Vec<u8>]) -> Replay {
    let messages: Vec<Bytes> = log
        .iter()
        .filter_map(|entry| keys::parse_envelope(entry))
        .filter(|message| message.id > since)
        .filter_map(|message| encode(room, &message))
        .collect();
    let missed = last.saturating_sub(since) - messages.len() as u64;
    Replay { messages, missed }
}
