//! Server configuration: every knob the CLI exposes, with the defaults documented there.
//! The binary parses durations and sizes with `shared::units`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use shared::Limits;

use crate::tls::TlsFiles;

/// Validated server settings. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Share the address with other listeners that also set SO_REUSEPORT (several
    /// nodes on one host, or a hand-over restart) instead of refusing to start when it
    /// is taken.
    pub share_port: bool,
    /// Serve TLS with this certificate and key (PEM) instead of plaintext.
    pub tls: Option<TlsFiles>,
    /// A TLS handshake that has not finished this long after the connection was
    /// accepted is closed (`tls_handshake_timeout`).
    pub tls_handshake_timeout: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Worker threads; each owns a `mio::Poll` and its connections.
    pub workers: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Connections served at once; newcomers past it get error 300 and are closed.
    pub max_connections: usize,
    /// Frame and line limits enforced by the decoders.
    pub limits: Limits,
    /// Bytes held in incomplete inbound frames and lines, all connections together.
    /// Past it a connection may still hold 16 KiB of incomplete input but reads
    /// nothing more until the total falls, so the large holders wait instead of memory
    /// growing: the total stays under this plus 16 KiB per connection plus one 64 KiB
    /// read per worker.
    pub max_inbound: usize,
    /// An incomplete frame or line must complete within this long, or its connection
    /// is closed with error 302. Zero disables the limit.
    pub frame_timeout: Duration,
    /// Queued outbound bytes per connection before it is closed as a slow consumer.
    pub max_pending: usize,
    /// Room messages kept per room for history and resume; 0 keeps none (ids are
    /// still handed out, and a resume is told how many it missed).
    pub history_messages: usize,
    /// Bytes of history kept per room (encoded messages plus 4 bytes each). At most
    /// half of `max_pending`, so a full replay fits a connection's queue.
    pub history_room_bytes: usize,
    /// Bytes of history kept by all rooms together; past it the oldest messages of the
    /// largest rooms go first. A room with no members is kept only while it has
    /// history, and its bookkeeping (1 KiB) is charged here too. What is charged is what
    /// rooms reserve: 4 KiB chunks of messages and an index.
    pub history_budget: usize,
    /// Messages per second per connection (token bucket refill); 0 disables the limit.
    pub rate_limit: u32,
    /// Token bucket size: messages a connection may send in a burst.
    pub rate_burst: u32,
    /// A connection held back by the rate limit this long without a break is closed as
    /// a flooder (error 303).
    pub flood_close_after: Duration,
    /// Batching window under load; zero disables it. See `Worker::run`.
    pub coalesce: Duration,
    /// A connection that sends nothing this long after connecting is taken to be a
    /// person: it is greeted in text mode. Zero disables it (text clients are then
    /// greeted after their first line).
    pub greet_after: Duration,
    /// Silence after which a connection is closed; a ping is sent at half of it.
    pub idle_timeout: Duration,
    /// How long a graceful shutdown waits for queued output to drain.
    pub shutdown_timeout: Duration,
    /// Interval between summary log lines; zero disables them.
    pub log_interval: Duration,
    /// The accounts file (`NICK HASH` lines), if any: its nicks are reserved for
    /// connections logged in to them. Reloaded by [`crate::ShutdownHandle::reload_accounts`].
    pub accounts: Option<PathBuf>,
    /// Serve a connection that has not logged in only the handshake, `Login`,
    /// keepalives and `Goodbye` (Error 213 for everything else).
    pub require_login: bool,
    /// Check passwords sent over plaintext from any address. Without it a password
    /// over plaintext is accepted from loopback only, and refused unchecked otherwise.
    pub allow_plaintext_login: bool,
    /// Join the cluster of every node that uses this Redis instead of keeping all
    /// state in this process.
    pub cluster: Option<ClusterConfig>,
}

/// How a node joins a cluster through Redis.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub redis: String,
    /// This node's name, unique in the cluster (letters, digits, `.`, `_`, `-`).
    pub node_name: String,
    /// A node that has not renewed its lease this long is taken for dead: its users'
    /// nicks are freed and they are taken out of their rooms.
    pub lease: Duration,
    /// Jobs waiting for Redis, all connections together, past which requests are
    /// refused with error 214 and a guest's claim or a frame for another node is
    /// dropped (counted). Departures and leaves are queued whatever it holds: they are
    /// bounded by the connections and their rooms, and dropping one would leave a nick
    /// claimed.
    pub queue: usize,
}

impl ClusterConfig {
    /// Settings for `redis` with a node name made of the host name and process id.
    pub fn new(redis: impl Into<String>) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().replace(|c: char| !c.is_ascii_alphanumeric(), "-"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        Self {
            redis: redis.into(),
            node_name: format!("{host}-{}", std::process::id()),
            lease: Duration::from_secs(5),
            queue: 65_536,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, shared::DEFAULT_PORT)),
            share_port: false,
            tls: None,
            tls_handshake_timeout: Duration::from_secs(5),
            metrics: None,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            backlog: 1024,
            max_connections: 10_000,
            limits: Limits::default(),
            max_inbound: 64 << 20,
            frame_timeout: Duration::from_secs(30),
            max_pending: 1 << 20,
            history_messages: 1000,
            history_room_bytes: 256 << 10,
            history_budget: 64 << 20,
            rate_limit: 1000,
            rate_burst: 2000,
            flood_close_after: Duration::from_secs(30),
            coalesce: Duration::ZERO,
            greet_after: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(240),
            shutdown_timeout: Duration::from_secs(5),
            log_interval: Duration::from_secs(10),
            accounts: None,
            require_login: false,
            allow_plaintext_login: false,
            cluster: None,
        }
    }
}
