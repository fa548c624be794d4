//! A multi-room TCP chat server built as a multithreaded blocking server with a fixed
//! worker pool: one acceptor thread hands each connection to one of N worker threads,
//! each owning a `mio::Poll` and its connections. Shared state (nicks, rooms, private
//! chats) lives behind the engine seam; frames for connections of other workers travel
//! over crossbeam channels.
//!
//! The public surface is what embedders call: [`Server`], [`Config`], [`Running`],
//! [`ShutdownHandle`], [`TlsFiles`], [`TlsError`], [`MAX_LIST_ITEMS`], and the
//! accounts file's edits ([`add_account`], [`remove_account`], [`HashCost`],
//! [`AccountsError`]).
//!
//! Layout:
//! - `config`: [`Config`].
//! - `accounts`: the accounts file, login checks and their throttle;
//!   [`add_account`] and [`remove_account`] for `server account`.
//! - `server`: [`Server`] (bind, run, spawn), [`Running`], [`ShutdownHandle`].
//! - `acceptor`: the acceptor thread.
//! - `worker`: the worker loop, split into the connection table, socket I/O, routing
//!   and shutdown.
//! - `connection`: one connection's socket, decoder, queue, session and lifecycle;
//!   `outbound` (its queue), `rate` (its token bucket), `permit` (its place in the
//!   connection count).
//! - `session`: requests from both framings and the rules that turn them into effects,
//!   without sockets.
//! - `engine`: the engine seam and `MemoryEngine`.
//! - `stats`: counters and close reasons.
//! - `tls`: the certificate store and one connection's TLS session, driven by its
//!   worker.
//! - `metrics`: the Prometheus endpoint (`--metrics`), on a thread of its own.
#![forbid(unsafe_code)]

mod acceptor;
mod accounts;
mod config;
mod connection;
mod engine;
mod metrics;
mod outbound;
mod permit;
mod rate;
mod sched;
mod server;
mod session;
mod stats;
mod tls;
mod worker;

pub use accounts::{AccountsError, HashCost, add_account, remove_account};
pub use config::{ClusterConfig, Config};
pub use engine::valid_node_name;
pub use server::{Running, Server, ShutdownHandle};
pub use session::MAX_LIST_ITEMS;
pub use tls::{TlsError, TlsFiles};
