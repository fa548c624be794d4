//! A multi-room TCP chat server built as a multithreaded blocking server with a fixed
//! worker pool: one acceptor thread hands each connection to one of N worker threads,
//! each owning a `mio::Poll` and its connections. Rooms, nicks and private chats live in
//! a [`hub::Hub`] behind parking_lot locks; frames for connections of other workers
//! travel over crossbeam channels.
//!
//! Layout:
//! - [`config`]: [`Config`] and the parsers of durations and sizes the CLI uses.
//! - [`server`]: [`Server`] (bind, run, spawn), [`Running`], [`ShutdownHandle`], and the
//!   acceptor.
//! - [`worker`]: the worker loop: reading, routing, batched vectored writes, timers,
//!   shutdown.
//! - [`connection`]: one connection's socket, decoder, outbound queue and rate limiter.
//! - [`requests`]: what each request does, in binary and text mode alike.
//! - [`hub`]: shared state (nicks, rooms, private chats) and fan-out snapshots.
//! - [`stats`]: counters and close reasons.
#![forbid(unsafe_code)]

pub mod config;
pub mod connection;
pub mod hub;
pub mod requests;
pub mod server;
pub mod stats;
pub mod worker;

pub use config::Config;
pub use server::{Running, Server, ShutdownHandle};
