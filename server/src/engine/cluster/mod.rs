//! [`ClusterEngine`]: several server nodes sharing one world through Redis
//! (`server --redis redis://HOST:PORT[/DB]`).
//!
//! Each node keeps its own connections' state in a [`MemoryEngine`] (nicks, local room
//! members with their epochs, private chats) and shares what others must see through
//! Redis (see `keys` for the names, `scripts` for the atomic steps):
//! - **Nicks** are claimed in Redis (a key per nick, set only if free), so two
//!   connections on different nodes never hold the same nick. A worker never waits:
//!   the claim is an [`Ask`] carried out on the node's command thread (`bridge`), and
//!   the connection reads nothing more until the answer is applied.
//! - **Rooms**: a room message is one script call that takes the room's next id, keeps
//!   the message in the room's log (capped at `--history-messages`) and publishes it on
//!   the room's channel. Redis runs scripts one at a time, so the channel carries a
//!   room's messages in id order, and every node (the sender's too) delivers them from
//!   there: one publish per message, and a node subscribes only to rooms it has local
//!   members in. The subscription is confirmed before a join reads the room's latest id,
//!   so the joiner gets every later message and none from before (those up to its join
//!   are held back from it on arrival).
//! - **Direct messages** to a user of another node go to that node's channel.
//! - **Leases**: a node renews its lease every third of `--node-lease`; a node whose
//!   lease ran out is buried by the first live node to notice: its nicks are freed and
//!   its users taken out of their rooms.
//!
//! - **Private chats**: every user's chat state (partner, request made, requests
//!   received) is kept in Redis and changed by one script per request, accept or end,
//!   so both sides change at once wherever they are; frames for a user of another
//!   node go to that node's channel.
//!
//! - **Renames** go out on a channel every node subscribes to, for room mates on
//!   other nodes.
//!
//! Not shared: accounts (each node reads its own accounts file; a login then claims its
//! nick cluster-wide like a rename).

mod bridge;
mod delivery;
mod keys;
mod lease;
mod private;
mod queries;
mod resp;
mod rooms;
mod scripts;
mod subscriber;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use shared::names::fold;
use shared::{ErrorCode, Frame, Mode, RoomInfo};

use super::{
    Ask, ChatEnding, ChatOutcome, ConnId, Departure, Engine, EngineCounts, ExtraStat, Fanout,
    HistoryLimits, Listing, Mailbox, Membership, MemoryEngine, Outlet, Page, Partner, Refusal,
    Remote, Renamed, RoomId, User,
};
use crate::config::ClusterConfig;
use crate::session::Scope;
use bridge::Bridge;
use delivery::Fetcher;
use keys::Keys;
pub use keys::valid_node_name;
use subscriber::{Endpoint, Subscriber};

/// Longest wait for one Redis reply: a Redis that stops answering (paused, swamped)
/// is treated as unreachable after it, instead of holding the command thread.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens a command connection whose replies may take at most [`REPLY_TIMEOUT`].
fn command_connection(
    client: &redis::Client,
    connect: Duration,
) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(connect)?;
    conn.set_read_timeout(Some(REPLY_TIMEOUT))?;
    conn.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(conn)
}

/// Guest numbers handed to a node at a time.
const GUEST_BLOCK: u64 = 1_000_000;

/// Work for the command thread.
#[derive(Debug)]
enum Job {
    /// Carry out a request and answer the connection.
    Ask { id: ConnId, mode: Mode, ask: Ask },
    /// Claim a nick given out locally (a guest nick, a login).
    Claim {
        id: ConnId,
        mode: Mode,
        nick: String,
    },
    /// Say something in a room.
    Publish {
        folded: String,
        from: String,
        text: String,
    },
    /// A local leave.
    Leave { id: ConnId, folded: String },
    /// A connection is gone: release its nick and memberships, end its chat.
    Depart { id: ConnId },
    /// Send a frame to a connection of another node.
    Send {
        node: Arc<str>,
        to: ConnId,
        frame: Frame,
        scope: Scope,
    },
    /// Nothing: wakes the command thread, which tries to reconnect on any job.
    Poke,
    /// End the thread.
    Stop,
}

/// Counters for `/stats`.
#[derive(Debug, Default)]
struct Counters {
    redis_up: AtomicBool,
    /// Live nodes at the last heartbeat, this one included.
    nodes: AtomicU64,
    /// Room messages that could not be published (Redis unreachable).
    dropped: AtomicU64,
    /// Requests refused because the queue to Redis was full.
    refused: AtomicU64,
    /// Times a room message arrived with an id past the next one expected: the
    /// subscription missed some (Redis restarted or the connection was lost).
    gaps: AtomicU64,
    /// Missed messages found in the room's log and delivered late, in order.
    recovered: AtomicU64,
    /// Room messages delivered to this node's members only, with id 0, because Redis
    /// was unreachable.
    local_only: AtomicU64,
    /// Milliseconds the subscriber waited for congested workers.
    held_back: AtomicU64,
}

/// Room messages (id and frame) kept for a joiner while its join is under way.
type Arrived = Vec<(u64, Frame)>;

/// What the engine, its command thread and its subscriber share.
struct Core {
    node: String,
    keys: Keys,
    memory: MemoryEngine,
    history_messages: usize,
    mailbox: OnceLock<Arc<dyn Mailbox>>,
    subscriber: Subscriber,
    /// Per local room: members whose join saw a latest id; messages up to it reach
    /// them by replay or not at all.
    joined_at: Mutex<HashMap<RoomId, HashMap<ConnId, u64>>>,
    /// The private-chat partner of each local user, as the frames delivered to it
    /// (and its own requests' answers) left it.
    partners: Mutex<HashMap<ConnId, Partner>>,
    /// Joins under way, by room and joiner: the room messages (id and frame) that
    /// arrived meanwhile, kept for the joiner's answer. Held while a room message is
    /// handed to the workers and while a join's answer is, so one always goes first.
    pending: Mutex<HashMap<(RoomId, ConnId), Arrived>>,
    /// Per room (folded): the latest id delivered, to find gaps and drop repeats.
    delivered: Mutex<HashMap<String, u64>>,
    /// The subscriber's own command connection, to read missed messages back from a
    /// room's log.
    fetcher: Mutex<Fetcher>,
    counters: Counters,
}

/// The cluster engine (see the module docs).
#[derive(Debug)]
pub(crate) struct ClusterEngine {
    core: Arc<Core>,
    jobs: Sender<Job>,
    /// Jobs that may be refused or dropped are not queued past this many waiting.
    queue: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl ClusterEngine {
    /// Joins the cluster of `config.redis`: reaches Redis (failing if it cannot),
    /// takes a block of guest numbers, and starts the command and subscriber threads.
    pub(crate) fn connect(
        config: &ClusterConfig,
        workers: usize,
        history: HistoryLimits,
    ) -> std::io::Result<Self> {
        let client = redis::Client::open(config.redis.as_str())
            .map_err(|e| io_error(format!("--redis {}: {e}", config.redis)))?;
        let info = client.get_connection_info();
        let redis::ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(io_error(format!(
                "--redis {}: only redis://HOST:PORT is supported",
                config.redis
            )));
        };
        let settings = info.redis_settings();
        let endpoint = Endpoint {
            host,
            port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
        };
        let keys = Keys::new(settings.db());
        let mut conn = command_connection(&client, Duration::from_secs(2))
            .map_err(|e| io_error(format!("cannot reach Redis at {}: {e}", config.redis)))?;
        let guests: u64 = redis::cmd("INCR")
            .arg(keys.guests())
            .query(&mut conn)
            .map_err(|e| io_error(format!("Redis at {}: {e}", config.redis)))?;
        let memory = MemoryEngine::new(workers, history).with_guest_base(guests * GUEST_BLOCK);
        let core = Arc::new(Core {
            node: config.node_name.clone(),
            keys,
            memory,
            history_messages: history.messages,
            mailbox: OnceLock::new(),
            subscriber: Subscriber::new(endpoint),
            joined_at: Mutex::default(),
            partners: Mutex::default(),
            pending: Mutex::default(),
            delivered: Mutex::default(),
            fetcher: Mutex::new(Fetcher::new(client.clone())),
            counters: Counters::default(),
        });
        core.counters.redis_up.store(true, Ordering::Release);
        core.counters.nodes.store(1, Ordering::Relaxed);
        // Unbounded, but only cleanups (departures, leaves) are queued past `queue`;
        // they are bounded by the connections and their rooms.
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut bridge = Bridge::new(Arc::clone(&core), client, conn, config.lease);
        // A node of the same name that died before may have left claims behind.
        bridge.bury_self();
        let subscriber = {
            let core = Arc::clone(&core);
            std::thread::Builder::new()
                .name("redis-sub".into())
                .spawn(move || core.subscriber.run(&*core))?
        };
        let node_channel = core.keys.node_channel(&core.node);
        let wait = Duration::from_secs(2);
        let all_channel = core.keys.all_channel();
        if !core.subscriber.subscribe(&node_channel, wait)
            || !core.subscriber.subscribe(&all_channel, wait)
        {
            core.subscriber.stop();
            let _ = subscriber.join();
            return Err(io_error(format!(
                "Redis at {} did not confirm a subscription",
                config.redis
            )));
        }
        let commands = std::thread::Builder::new()
            .name("redis-cmd".into())
            .spawn(move || bridge.run(&rx))?;
        tracing::info!(node = core.node, redis = config.redis, "joined the cluster");
        Ok(Self {
            core,
            jobs: tx,
            queue: config.queue,
            threads: Mutex::new(vec![subscriber, commands]),
        })
    }

    /// Hands `job` to the command thread; refused with error 214 when Redis is
    /// unreachable or the queue is full.
    fn hand_over(&self, job: Job) -> Result<(), Refusal> {
        if !self.core.counters.redis_up.load(Ordering::Acquire) {
            drop(job);
            let _ = self.jobs.send(Job::Poke);
            return Err(Refusal::new(
                ErrorCode::UNAVAILABLE,
                "the cluster's Redis is unreachable; try again shortly",
            ));
        }
        if self.jobs.len() >= self.queue {
            self.core.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::new(
                ErrorCode::UNAVAILABLE,
                "this node has too much work queued for Redis; try again shortly",
            ));
        }
        self.jobs
            .send(job)
            .map_err(|_| Refusal::new(ErrorCode::UNAVAILABLE, "this node is leaving the cluster"))
    }

    /// Hands over a job nobody waits for (a guest's claim, a frame for another node):
    /// past the queue's bound it is dropped, counted.
    fn hand_over_quietly(&self, job: Job) {
        if self.jobs.len() >= self.queue || self.jobs.send(job).is_err() {
            self.core.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands over a cleanup (a departure, a leave), whatever the queue holds: dropping
    /// it would leave a nick claimed or a membership listed for as long as this node
    /// lives. Cleanups are bounded by the connections and the rooms they are in.
    fn hand_over_cleanup(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

impl Remote for ClusterEngine {
    fn ask(&self, id: ConnId, mode: Mode, ask: Ask) -> Result<(), Refusal> {
        self.hand_over(Job::Ask { id, mode, ask })
    }

    fn send(&self, node: &str, to: ConnId, frame: Frame, scope: Scope) {
        let node = Arc::from(node);
        self.hand_over_quietly(Job::Send {
            node,
            to,
            frame,
            scope,
        });
    }
}

impl Engine for ClusterEngine {
    fn register(&self, id: ConnId, mode: Mode) -> String {
        let nick = self.core.memory.register(id, mode);
        let claim = Job::Claim {
            id,
            mode,
            nick: nick.clone(),
        };
        self.hand_over_quietly(claim);
        nick
    }

    fn unregister(&self, id: ConnId) -> Departure {
        let mut departure = self.core.memory.unregister(id);
        // Members are told through the rooms' channels, local ones included, and the
        // chat's partner and askers by the command thread, which ends the chat.
        for membership in &mut departure.rooms {
            membership.notify = Fanout::default();
        }
        departure.chat = ChatEnding::default();
        self.hand_over_cleanup(Job::Depart { id });
        departure
    }

    fn set_nick(&self, id: ConnId, nick: &str) -> Result<Renamed, Refusal> {
        // Sessions ask for renames (`Ask::SetNick`); this immediate form renames
        // locally and claims the nick behind it.
        let renamed = self.core.memory.set_nick(id, nick)?;
        if let Some(user) = self.core.memory.user_of(id) {
            let nick = nick.to_owned();
            self.hand_over_quietly(Job::Claim {
                id,
                mode: user.mode,
                nick,
            });
        }
        Ok(renamed)
    }

    fn lookup(&self, nick: &str) -> Option<User> {
        self.core.memory.lookup(nick)
    }

    fn join(&self, id: ConnId, room: &str, since: Option<u64>) -> Result<Membership, Refusal> {
        self.core.memory.join(id, room, since)
    }

    fn leave(&self, id: ConnId, room: &str) -> Result<Membership, Refusal> {
        let mut membership = self.core.memory.leave(id, room)?;
        membership.notify = Fanout::default();
        let folded = fold(room).into_owned();
        self.hand_over_cleanup(Job::Leave { id, folded });
        Ok(membership)
    }

    fn publish(
        &self,
        id: ConnId,
        room: &str,
        from: &str,
        text: String,
        _outlet: &dyn Outlet,
    ) -> Result<(), Refusal> {
        let name = self.core.memory.member_of(id, room)?;
        let folded = fold(&name).into_owned();
        if !self.core.counters.redis_up.load(Ordering::Acquire) {
            // Poke the command thread, which reconnects on work.
            let _ = self.jobs.try_send(Job::Poke);
            self.core.deliver_local_only(&folded, from, &text);
            return Ok(());
        }
        let from = from.to_owned();
        self.hand_over(Job::Publish { folded, from, text })
    }

    fn history(&self, room: &str, before: u64, limit: usize) -> Result<(String, Page), Refusal> {
        self.core.memory.history(room, before, limit)
    }

    fn room_mates(&self, id: ConnId) -> Fanout {
        self.core.memory.room_mates(id)
    }

    fn list_rooms(&self, limit: usize) -> Listing<RoomInfo> {
        self.core.memory.list_rooms(limit)
    }

    fn who(&self, room: &str, limit: usize) -> Result<(String, Listing<String>), Refusal> {
        self.core.memory.who(room, limit)
    }

    fn chat_request(&self, id: ConnId, peer: &str) -> Result<ChatOutcome, Refusal> {
        self.core.memory.chat_request(id, peer)
    }

    fn chat_accept(&self, id: ConnId, peer: &str) -> Result<ChatOutcome, Refusal> {
        self.core.memory.chat_accept(id, peer)
    }

    fn chat_partner(&self, id: ConnId) -> Option<Partner> {
        self.core.partners.lock().get(&id).cloned()
    }

    fn chat_end(&self, id: ConnId) -> ChatEnding {
        self.core.memory.chat_end(id)
    }

    fn counts(&self) -> EngineCounts {
        self.core.memory.counts()
    }

    fn remote(&self) -> Option<&dyn Remote> {
        Some(self)
    }

    fn attach(&self, mailbox: Arc<dyn Mailbox>) {
        let _ = self.core.mailbox.set(mailbox);
    }

    fn extra_stats(&self) -> Vec<ExtraStat> {
        let c = &self.core.counters;
        let up = c.redis_up.load(Ordering::Acquire) && self.core.subscriber.is_up();
        let stat = |name, help, counter, value| ExtraStat {
            name,
            help,
            counter,
            value,
        };
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            stat(
                "cluster_nodes",
                "Live cluster nodes at the last lease renewal, this one included.",
                false,
                get(&c.nodes),
            ),
            stat(
                "cluster_redis_up",
                "1 while both connections to Redis are up.",
                false,
                u64::from(up),
            ),
            stat(
                "cluster_rooms_followed",
                "Rooms this node follows: those its users are in.",
                false,
                self.core.rooms_followed() as u64,
            ),
            stat(
                "cluster_queued",
                "Jobs waiting for the node's Redis command thread.",
                false,
                self.jobs.len() as u64,
            ),
            stat(
                "cluster_refused",
                "Requests refused (error 214) or jobs dropped: the queue to Redis was full.",
                true,
                get(&c.refused),
            ),
            stat(
                "cluster_dropped",
                "Room messages and frames not published: Redis was unreachable.",
                true,
                get(&c.dropped),
            ),
            stat(
                "cluster_gaps",
                "Times the subscription found room messages missing.",
                true,
                get(&c.gaps),
            ),
            stat(
                "cluster_recovered",
                "Missed room messages read back from the rooms' logs.",
                true,
                get(&c.recovered),
            ),
            stat(
                "cluster_local_only",
                "Room messages delivered to this node's members only (id 0): Redis was unreachable.",
                true,
                get(&c.local_only),
            ),
            stat(
                "cluster_held_back_ms",
                "Milliseconds the subscriber waited for congested workers.",
                true,
                get(&c.held_back),
            ),
        ]
    }

    fn stop(&self) {
        let _ = self.jobs.send_timeout(Job::Stop, Duration::from_secs(1));
        self.core.subscriber.stop();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}
