//! Delivering what the subscription brings: room messages in id order (repeats
//! dropped, missed ones read back from the room's log), joins and leaves, frames for
//! local users; and room messages said while Redis is unreachable, to this node only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shared::{Frame, Mode};

use super::keys::{self, Keys};
use super::subscriber::Handler;
use super::{Core, bridge};
use crate::engine::{ConnId, Fanout, Member, Partner, RoomId, User};
use crate::session::Scope;

/// A command connection made when needed.
pub(super) struct Fetcher {
    client: redis::Client,
    conn: Option<redis::Connection>,
}

impl Fetcher {
    pub(super) fn new(client: redis::Client) -> Self {
        Self { client, conn: None }
    }

    /// The kept messages of `folded` (envelopes, oldest first).
    fn log(&mut self, keys: &Keys, folded: &str) -> redis::RedisResult<Vec<Vec<u8>>> {
        if self.conn.is_none() {
            self.conn = Some(
                self.client
                    .get_connection_with_timeout(Duration::from_millis(500))?,
            );
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let log = redis::cmd("LRANGE")
            .arg(keys.room(folded, "log"))
            .arg(0)
            .arg(-1)
            .query(conn);
        if log.is_err() {
            self.conn = None;
        }
        log
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("node", &self.node).finish()
    }
}

impl Core {
    pub(super) fn joined_at(&self, room: RoomId, id: ConnId, last: u64) {
        self.joined_at
            .lock()
            .entry(room)
            .or_default()
            .insert(id, last);
    }

    /// Tells a room's local members of a join or leave (not the one who joined).
    fn deliver_event(&self, folded: &str, event: &keys::Event<'_>) {
        let Some((room, name, fanout)) = self.memory.room_snapshot(folded) else {
            return;
        };
        let me = event.node == self.node;
        let members = fanout
            .per_worker
            .iter()
            .flatten()
            .filter(|m| !(me && m.id == event.id));
        let fanout = Arc::new(Fanout::build(
            fanout.per_worker.len(),
            members.map(|&m| (m, self.mode_of(m.id))),
        ));
        let (room_name, nick, members) = (name.to_string(), event.nick.to_owned(), event.members);
        let frame = if event.joined {
            Frame::Joined {
                room: room_name,
                nick,
                members,
                last: event.last,
            }
        } else {
            Frame::Left {
                room: room_name,
                nick,
                members,
            }
        };
        if let (Ok(binary), Some(mailbox)) = (frame.to_bytes(), self.mailbox.get()) {
            mailbox.room(room, &frame, &binary, &fanout);
        }
    }

    /// Delivers `frame` to local connection `to`, within `scope`, from a user of
    /// `from_node` (`None`: this one); a chat's start and end update `to`'s partner.
    pub(super) fn deliver_frame(
        &self,
        to: ConnId,
        frame: Frame,
        scope: Scope,
        from_node: Option<&str>,
    ) {
        let Some(user) = self.memory.user_of(to) else {
            return;
        };
        match (&frame, scope) {
            (Frame::ChatStarted { peer }, Scope::ChatStart { from, chat }) => {
                let partner = User {
                    id: from,
                    mode: from_node.map_or_else(|| self.mode_of(from), |_| Mode::Binary),
                    nick: peer.clone(),
                    node: from_node.map(Arc::from),
                };
                let partner = Partner {
                    user: partner,
                    chat,
                };
                self.partners.lock().insert(to, partner);
            }
            (Frame::ChatEnded { .. }, Scope::ChatEnd { chat, .. }) => {
                let mut partners = self.partners.lock();
                if partners.get(&to).is_some_and(|p| p.chat == chat) {
                    partners.remove(&to);
                }
            }
            _ => {}
        }
        if let Some(mailbox) = self.mailbox.get() {
            mailbox.send(to, user.mode, frame, scope);
        }
    }

    fn mode_of(&self, id: ConnId) -> Mode {
        self.memory
            .user_of(id)
            .map_or(Mode::Binary, |user| user.mode)
    }

    /// Delivers a room message from the room's channel: repeats (ids already
    /// delivered) are dropped, and messages missed before it are read back from the
    /// room's log and delivered first.
    fn deliver_room(&self, folded: &str, payload: &[u8]) {
        let Some(message) = keys::parse_envelope(payload) else {
            tracing::warn!(room = folded, "unreadable room message from Redis");
            return;
        };
        let last = self.delivered.lock().get(folded).copied().unwrap_or(0);
        if message.id <= last {
            return;
        }
        if last != 0 && message.id > last + 1 {
            self.counters.gaps.fetch_add(1, Ordering::Relaxed);
            self.catch_up(folded, message.id);
        }
        self.deliver_message(folded, &message);
    }

    /// Delivers the kept messages of `folded` after the last delivered and before
    /// `until`.
    fn catch_up(&self, folded: &str, until: u64) {
        let log = match self.fetcher.lock().log(&self.keys, folded) {
            Ok(log) => log,
            Err(e) => {
                tracing::warn!(room = folded, "cannot read missed messages back: {e}");
                return;
            }
        };
        for entry in &log {
            let Some(message) = keys::parse_envelope(entry) else {
                continue;
            };
            let last = self.delivered.lock().get(folded).copied().unwrap_or(0);
            if message.id > last && message.id < until {
                self.counters.recovered.fetch_add(1, Ordering::Relaxed);
                self.deliver_message(folded, &message);
            }
        }
    }

    fn deliver_message(&self, folded: &str, message: &keys::Envelope<'_>) {
        {
            let mut delivered = self.delivered.lock();
            // Only rooms with members here are followed (a joiner is one before Redis
            // reads the room's latest id): a message still on its way after the last
            // member left must not bring the room's entry back.
            if self.memory.local_members(folded) == 0 {
                return;
            }
            let last = delivered.entry(folded.to_owned()).or_insert(0);
            *last = (*last).max(message.id);
        }
        let Some((room, name, fanout)) = self.memory.room_snapshot(folded) else {
            return;
        };
        let Some(binary) = bridge::encode(&name, message) else {
            return;
        };
        let frame = Frame::RoomMsg {
            room: name.to_string(),
            from: message.from.to_owned(),
            id: message.id,
            time_ns: message.time_ns,
            text: message.text.to_owned(),
        };
        // Held until the message is on the workers' channels: a join's answer goes
        // either before it (and the joiner gets it live) or after it (and the joiner
        // gets it in the answer).
        let mut pending = self.pending.lock();
        let mut left_out: Vec<ConnId> = Vec::new();
        for ((pending_room, joiner), kept) in pending.iter_mut() {
            if *pending_room == room {
                kept.push((message.id, frame.clone()));
                left_out.push(*joiner);
            }
        }
        if message.id != 0 {
            let mut joined_at = self.joined_at.lock();
            if let Some(waiting) = joined_at.get_mut(&room) {
                waiting.retain(|_, last| *last >= message.id);
                left_out.extend(waiting.keys().copied());
                if waiting.is_empty() {
                    joined_at.remove(&room);
                }
            }
        }
        let fanout = if left_out.is_empty() {
            fanout
        } else {
            let members = fanout
                .per_worker
                .iter()
                .flatten()
                .filter(|m| !left_out.contains(&m.id));
            Arc::new(Fanout::build(
                fanout.per_worker.len(),
                members.map(|&m: &Member| (m, self.mode_of(m.id))),
            ))
        };
        if let Some(mailbox) = self.mailbox.get() {
            mailbox.room(room, &frame, &binary, &fanout);
        }
        drop(pending);
    }

    /// Delivers a message to this node's members of `folded` only, with id 0: Redis is
    /// unreachable, so it gets no id, is not kept and reaches no other node.
    pub(super) fn deliver_local_only(&self, folded: &str, from: &str, text: &str) {
        self.counters.local_only.fetch_add(1, Ordering::Relaxed);
        let message = keys::Envelope {
            id: 0,
            time_ns: shared::time::unix_nanos(),
            from,
            text,
        };
        let Some((room, name, fanout)) = self.memory.room_snapshot(folded) else {
            return;
        };
        if let (Some(binary), Some(mailbox)) = (bridge::encode(&name, &message), self.mailbox.get())
        {
            let frame = Frame::RoomMsg {
                room: name.to_string(),
                from: from.to_owned(),
                id: 0,
                time_ns: message.time_ns,
                text: text.to_owned(),
            };
            mailbox.room(room, &frame, &binary, &fanout);
        }
    }
}

impl Core {
    /// Stops following `folded` once no member of it is left here, so the rooms this
    /// node tracks are those its users are in, not every room they ever joined.
    pub(super) fn forget_room_if_unused(&self, folded: &str) {
        let mut delivered = self.delivered.lock();
        if self.memory.local_members(folded) == 0 {
            delivered.remove(folded);
        }
    }

    /// Rooms whose latest delivered id this node tracks.
    pub(super) fn rooms_followed(&self) -> usize {
        self.delivered.lock().len()
    }

    /// Tells this node's members of the rooms named of a rename said on another node.
    fn deliver_rename(&self, payload: &[u8]) {
        let Some((node, old, new, rooms)) = keys::parse_rename(payload) else {
            tracing::warn!("unreadable rename from Redis");
            return;
        };
        if node == self.node {
            return;
        }
        let fanout = Arc::new(self.memory.members_of(&rooms));
        let frame = Frame::NickChanged {
            old: old.to_owned(),
            new: new.to_owned(),
        };
        if let Some(mailbox) = self.mailbox.get() {
            mailbox.notice(&frame, &fanout);
        }
    }
}

impl Handler for Core {
    fn message(&self, channel: &str, payload: &[u8]) {
        // Workers behind: read nothing more until they catch up. Redis buffers what
        // waits, and past its limit for subscribers drops this connection; the
        // messages missed meanwhile are read back from the rooms' logs.
        while self.mailbox.get().is_some_and(|m| m.congested()) && !self.subscriber.stopping() {
            self.counters.held_back.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.keys.is_all_channel(channel) {
            return self.deliver_rename(payload);
        }
        if let Some(folded) = self.keys.room_of_channel(channel) {
            return match keys::parse_event(payload) {
                Some(event) => self.deliver_event(folded, &event),
                None => self.deliver_room(folded, payload),
            };
        }
        let envelope = keys::parse_frame_envelope(payload);
        let Some((envelope, frame)) = envelope.and_then(|e| {
            let frame = Frame::from_encoded(&bytes::Bytes::copy_from_slice(e.frame)).ok()?;
            Some((e, frame))
        }) else {
            tracing::warn!(channel, "unreadable frame from Redis");
            return;
        };
        let from_node = (envelope.from_node != self.node).then_some(envelope.from_node);
        self.deliver_frame(envelope.to, frame, envelope.scope, from_node);
    }

    fn reconnected(&self) {
        // What was published meanwhile and is still kept is read back now, in order;
        // the subscription delivers what follows (repeats are dropped by id).
        let rooms: Vec<String> = self.delivered.lock().keys().cloned().collect();
        for folded in rooms {
            if self.memory.local_members(&folded) > 0 {
                self.catch_up(&folded, u64::MAX);
            }
        }
    }
}
