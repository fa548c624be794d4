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
use crate::engine::{Answer, Ask, ConnId, Engine, NOTICE_MAX_MEMBERS, Refusal, User};
use crate::session::Scope;

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
    pub(super) join: redis::Script,
    pub(super) leave: redis::Script,
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

pub(super) fn unavailable(e: impl std::fmt::Display) -> Refusal {
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
