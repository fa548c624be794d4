//! The node's command connection to Redis, on a thread of its own: it carries out the
//! jobs workers hand over (claims, joins, room messages, leaves, departures, direct
//! messages) one after another, in the order they were handed over. Lists and history
//! pages are in `queries`, private chats in `private`, the lease in `lease`.
//!
//! Redis unreachable: every job that needs an answer is answered at once with error
//! 214, a room message reaches this node's members only (id 0), other messages are
//! dropped and counted, and the connection is tried again with backoff (from 50 ms to
//! 500 ms). Once it is back, the node renews its lease and claims its users' nicks and
//! memberships again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use shared::names::{self, fold};
use shared::{ErrorCode, Frame, Mode};

use super::keys::{self, Keys};
use super::{Core, Job, scripts};
use crate::engine::{
    Answer, Ask, ConnId, Engine, Fanout, Membership, NOTICE_MAX_MEMBERS, Refusal, Replay, User,
};
use crate::session::Scope;

/// How long a join waits for its room's subscription to be confirmed.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What a connection holds in Redis, to release it and to claim it again after an
/// outage.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// The nick claimed: its key and owner record.
    pub(super) nick: Option<(String, String)>,
    /// Rooms joined (folded) with the nick recorded there.
    pub(super) rooms: HashSet<String>,
}

pub(super) struct Scripts {
    pub(super) claim: redis::Script,
    release: redis::Script,
    join: redis::Script,
    leave: redis::Script,
    publish: redis::Script,
    pub(super) bury: redis::Script,
    pub(super) chat_request: redis::Script,
    pub(super) chat_accept: redis::Script,
    pub(super) chat_end: redis::Script,
}

/// The command thread's state.
pub(super) struct Bridge {
    pub(super) core: Arc<Core>,
    client: redis::Client,
    pub(super) conn: Option<redis::Connection>,
    pub(super) scripts: Scripts,
    pub(super) held: HashMap<ConnId, Held>,
    /// Connections gone while Redis was unreachable, still to be released there.
    departed: HashMap<ConnId, Held>,
    next_attempt: Instant,
    backoff: Duration,
    pub(super) lease: Duration,
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        ErrorCode::UNAVAILABLE,
        format!("the cluster's Redis is unreachable ({e}); try again shortly"),
    )
}

pub(super) fn unknown_id(room: &str, id: u64) -> Refusal {
    Refusal::new(
        ErrorCode::UNKNOWN_MESSAGE_ID,
        format!(
            "{id} is not a message id of {room} (from another room or from the future); nothing replayed"
        ),
    )
}

impl Bridge {
    pub(super) fn new(
        core: Arc<Core>,
        client: redis::Client,
        conn: redis::Connection,
        lease: Duration,
    ) -> Self {
        Self {
            core,
            client,
            conn: Some(conn),
            scripts: Scripts {
                claim: scripts::claim(),
                release: scripts::release(),
                join: scripts::join(),
                leave: scripts::leave(),
                publish: scripts::publish(),
                bury: scripts::bury(),
                chat_request: scripts::chat_request(),
                chat_accept: scripts::chat_accept(),
                chat_end: scripts::chat_end(),
            },
            held: HashMap::new(),
            departed: HashMap::new(),
            next_attempt: Instant::now(),
            backoff: Duration::from_millis(50),
            lease,
        }
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.core.keys
    }

    /// Serves jobs until told to stop. While Redis is unreachable it tries again on
    /// its own, with backoff, so the node is back within a backoff of Redis.
    pub(super) fn run(mut self, jobs: &Receiver<Job>) {
        let tick = self.lease / 3;
        let mut next_tick = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.heartbeat();
                next_tick = now + tick;
            } else if self.conn.is_none() && now >= self.next_attempt {
                let _ = self.ensure();
            }
            let mut wake = next_tick;
            if self.conn.is_none() {
                wake = wake.min(self.next_attempt.max(now + Duration::from_millis(10)));
            }
            match jobs.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(job) => self.serve(job),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        // Leave cleanly: the other nodes need not wait for the lease.
        let node = self.core.node.clone();
        let _ = self.bury(&node);
    }

    /// Runs `step` on the connection (made again first if it was lost and the backoff
    /// has passed); a failure is noted and told as error 214.
    pub(super) fn with<T>(
        &mut self,
        step: impl FnOnce(&mut redis::Connection, &Scripts) -> redis::RedisResult<T>,
    ) -> Result<T, Refusal> {
        self.ensure()?;
        let result = match self.conn.as_mut() {
            Some(conn) => step(conn, &self.scripts),
            None => return Err(unavailable("not connected")),
        };
        result.map_err(|e| self.failed(&e))
    }

    /// Makes the connection again if it was lost and the backoff has passed.
    fn ensure(&mut self) -> Result<(), Refusal> {
        if self.conn.is_none() {
            let now = Instant::now();
            if now < self.next_attempt {
                return Err(unavailable("reconnecting"));
            }
            match super::command_connection(&self.client, CONNECT_TIMEOUT) {
                Ok(conn) => {
                    tracing::info!("Redis is reachable again");
                    self.conn = Some(conn);
                    self.backoff = Duration::from_millis(50);
                    self.claim_again();
                    if self.conn.is_none() {
                        return Err(unavailable("lost again while claiming this node's users"));
                    }
                    self.core.counters.redis_up.store(true, Ordering::Release);
                    self.release_departed();
                }
                Err(e) => {
                    self.next_attempt = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(Duration::from_millis(500));
                    return Err(unavailable(e));
                }
            }
        }
        Ok(())
    }

    /// Notes a failed command: a lost connection is dropped, to be made again.
    pub(super) fn failed(&mut self, e: &redis::RedisError) -> Refusal {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            if self.conn.take().is_some() {
                tracing::warn!("lost the Redis connection: {e}");
            }
            self.core.counters.redis_up.store(false, Ordering::Release);
        } else {
            tracing::warn!("Redis refused a cluster step: {e}");
        }
        unavailable(e)
    }

    fn serve(&mut self, job: Job) {
        match job {
            Job::Ask { id, mode, ask } => {
                if let Some(answer) = self.answer(id, mode, ask)
                    && let Some(mailbox) = self.core.mailbox.get()
                {
                    mailbox.answer(id, answer);
                }
            }
            Job::Claim { id, mode, nick } => {
                if let Err(refusal) = self.claim(id, mode, &nick) {
                    tracing::warn!(nick, "cannot claim a nick cluster-wide: {}", refusal.text);
                }
            }
            Job::Publish { folded, from, text } => {
                if let Err(refusal) = self.publish(&folded, &from, &text) {
                    // Not published: this node's members still get it (id 0).
                    self.core.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("room message not published: {}", refusal.text);
                    self.core.deliver_local_only(&folded, &from, &text);
                }
            }
            Job::Leave { id, folded } => {
                if let Some(held) = self.held.get_mut(&id) {
                    held.rooms.remove(&folded);
                }
                let _ = self.leave(id, &folded);
            }
            Job::Depart { id } => self.depart(id),
            Job::Send {
                node,
                to,
                frame,
                scope,
            } => {
                self.send_frame(&node, to, &frame, scope);
            }
            Job::Poke => {
                let _ = self.ensure();
            }
            Job::Stop => {}
        }
    }

    /// The answer to `ask`, or `None` when it was already given (a join).
    fn answer(&mut self, id: ConnId, mode: Mode, ask: Ask) -> Option<Answer> {
        Some(match ask {
            Ask::SetNick { nick } => {
                let renamed = self.claim(id, mode, &nick);
                Answer::Nick(nick, renamed)
            }
            Ask::Join { room, since } => {
                // Answered from inside, in order with the room's messages.
                self.join_and_answer(id, &room, since);
                return None;
            }
            Ask::Direct { to, from, text } => Answer::Direct(self.direct(&to, &from, &text), text),
            Ask::Rooms { limit } => Answer::Rooms(self.rooms(limit)),
            Ask::Who { room, limit } => Answer::Who(self.who(&room, limit)),
            Ask::History {
                room,
                before,
                limit,
            } => Answer::History(self.history(&room, before, limit)),
            Ask::ChatRequest { peer } => Answer::Chat(self.chat_request(id, &peer, false)),
            Ask::ChatAccept { peer } => Answer::Chat(self.chat_request(id, &peer, true)),
            Ask::ChatEnd => Answer::ChatEnded(self.chat_end(id)),
        })
    }

    /// Claims `nick` for `id` in Redis, then in the local state.
    fn claim(
        &mut self,
        id: ConnId,
        mode: Mode,
        nick: &str,
    ) -> Result<crate::engine::Renamed, Refusal> {
        names::validate_nick(nick)
            .map_err(|e| Refusal::new(ErrorCode::INVALID_NAME, format!("invalid nick: {e}")))?;
        let node = self.core.node.clone();
        let key = self.keys().nick(&fold(nick));
        let record = keys::nick_record(&node, id, mode, nick);
        let owner = keys::owner(&node, id);
        let member = keys::member(&node, id);
        let (node_nicks, who, users) = (
            self.keys().node_nicks(&node),
            self.keys().who(&member),
            self.keys().node_users(&node),
        );
        let old = self
            .held
            .get(&id)
            .and_then(|h| h.nick.as_ref())
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        let claimed: Result<i64, Refusal> = self.with(|conn, scripts| {
            scripts
                .claim
                .key(&key)
                .key(&node_nicks)
                .key(&who)
                .key(&users)
                .arg(&record)
                .arg(&owner)
                .arg(&old)
                .arg(keys::who_record(mode, nick))
                .arg(&member)
                .invoke(conn)
        });
        if claimed? != 1 {
            return Err(Refusal::new(
                ErrorCode::NICK_TAKEN,
                format!("nick {nick} is taken"),
            ));
        }
        self.held.entry(id).or_default().nick = Some((key, record));
        // Guests are registered locally already; a rename changes the local directory.
        match self.core.memory.user_of(id) {
            Some(user) if user.nick == nick => Ok(crate::engine::Renamed {
                old: nick.to_owned(),
                changed: false,
            }),
            Some(_) => {
                let renamed = self.core.memory.set_nick(id, nick)?;
                self.announce_rename(id, &renamed.old, nick);
                Ok(renamed)
            }
            None => Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered")),
        }
    }

    /// Renames `id` in the member lists of its rooms, and tells the room mates of other
    /// nodes (in rooms small enough for notices); this node's are told by the session.
    fn announce_rename(&mut self, id: ConnId, old: &str, new: &str) {
        let rooms: Vec<String> = self
            .held
            .get(&id)
            .map(|held| held.rooms.iter().cloned().collect())
            .unwrap_or_default();
        if rooms.is_empty() {
            return;
        }
        let keys = self.keys().clone();
        let member = keys::member(&self.core.node, id);
        let mut sizes = redis::pipe();
        for room in &rooms {
            let members = keys.room(room, "members");
            sizes
                .cmd("HSET")
                .arg(&members)
                .arg(&member)
                .arg(new)
                .ignore();
            sizes.cmd("HLEN").arg(members);
        }
        let Ok(sizes) = self.with(|conn, _| sizes.query::<Vec<usize>>(conn)) else {
            return;
        };
        let small: Vec<&str> = rooms
            .iter()
            .zip(sizes)
            .filter(|(_, size)| *size <= NOTICE_MAX_MEMBERS)
            .map(|(room, _)| room.as_str())
            .collect();
        if small.is_empty() {
            return;
        }
        let event = keys::rename_event(&self.core.node, old, new, &small);
        let channel = keys.all_channel();
        let _ = self.with(|conn, _| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&event)
                .query::<i64>(conn)
        });
    }

    /// Joins `id` to `room` and answers it. The joiner is a local member (but pending)
    /// before Redis reads the room's latest id; the messages that reach this node
    /// meanwhile are kept for it rather than delivered, and handed over in the answer,
    /// which goes onto its worker's channel before any later room message can: so it
    /// gets every message after `last` once, in order.
    fn join_and_answer(&mut self, id: ConnId, room: &str, since: Option<u64>) {
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
        }
    }

    /// Takes `id` out of `folded` in Redis; unsubscribes when no local member is left.
    fn leave(&mut self, id: ConnId, folded: &str) -> Result<(), Refusal> {
        let node = self.core.node.clone();
        let keys = self.keys().clone();
        let none_left = self.core.memory.local_members(folded) == 0;
        if none_left {
            self.core.subscriber.unsubscribe(&keys.room_channel(folded));
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

    fn depart(&mut self, id: ConnId) {
        let Some(held) = self.held.remove(&id) else {
            return;
        };
        self.core.partners.lock().remove(&id);
        self.release(id, held);
    }

    /// Ends a departed connection's chat, takes it out of its rooms and releases its
    /// nick in Redis; if Redis fails meanwhile, it is done again once Redis is back.
    fn release(&mut self, id: ConnId, held: Held) {
        let nick = held
            .nick
            .as_ref()
            .and_then(|(_, record)| keys::parse_nick_record(record))
            .map(|owner| owner.nick.to_owned())
            .unwrap_or_default();
        let mut done = self.end_chat_of(id, &nick);
        for folded in &held.rooms {
            done &= self.leave(id, folded).is_ok();
        }
        let node = self.core.node.clone();
        let member = keys::member(&node, id);
        let owner = keys::owner(&node, id);
        let keys = self.keys().clone();
        let who = keys.who(&member);
        let key = held
            .nick
            .as_ref()
            .map_or_else(|| who.clone(), |(key, _)| key.clone());
        let released: Result<i64, Refusal> = self.with(|conn, scripts| {
            scripts
                .release
                .key(&key)
                .key(keys.node_nicks(&node))
                .key(&who)
                .key(keys.node_users(&node))
                .arg(&owner)
                .arg(&member)
                .invoke(conn)
        });
        if !done || released.is_err() {
            self.departed.insert(id, held);
        }
    }

    /// Releases again what departures could not release while Redis was unreachable.
    pub(super) fn release_departed(&mut self) {
        for (id, held) in std::mem::take(&mut self.departed) {
            self.release(id, held);
        }
    }

    fn publish(&mut self, folded: &str, from: &str, text: &str) -> Result<(), Refusal> {
        let keys = self.keys().clone();
        let keep = self.core.history_messages.to_string();
        let now = shared::time::unix_nanos().to_string();
        let published: Result<String, Refusal> = self.with(|conn, scripts| {
            scripts
                .publish
                .key(keys.room(folded, "seq"))
                .key(keys.room(folded, "base"))
                .key(keys.room(folded, "log"))
                .arg(keys.room_channel(folded))
                .arg(&now)
                .arg(from)
                .arg(text)
                .arg(&keep)
                .invoke(conn)
        });
        published.map(drop)
    }

    fn direct(&mut self, to: &str, from: &str, text: &str) -> Result<String, Refusal> {
        let keys = self.keys().clone();
        let record: Result<Option<String>, Refusal> =
            self.with(|conn, _| redis::cmd("GET").arg(keys.nick(&fold(to))).query(conn));
        let record = record?;
        let Some(owner) = record.as_deref().and_then(keys::parse_nick_record) else {
            return Err(Refusal::no_such_nick(to));
        };
        if owner.node == self.core.node {
            // Ours, but gone from the local directory: it just left.
            return Err(Refusal::no_such_nick(to));
        }
        let user = User {
            id: owner.id,
            mode: owner.mode,
            nick: owner.nick.to_owned(),
            node: Some(Arc::from(owner.node)),
        };
        let frame = Frame::DirectMsg {
            from: from.to_owned(),
            text: text.to_owned(),
        };
        if self.tell(&user, frame, Scope::Anyone) {
            Ok(user.nick)
        } else if self.core.counters.redis_up.load(Ordering::Acquire) {
            // Nobody listens on its node's channel: the node is gone.
            Err(Refusal::no_such_nick(to))
        } else {
            Err(unavailable("the message was not sent"))
        }
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

/// A kept message as the binary `RoomMsg` clients are sent.
pub(super) fn encode(room: &str, message: &keys::Envelope<'_>) -> Option<Bytes> {
    Frame::RoomMsg {
        room: room.to_owned(),
        from: message.from.to_owned(),
        id: message.id,
        time_ns: message.time_ns,
        text: message.text.to_owned(),
    }
    .to_bytes()
    .ok()
}
