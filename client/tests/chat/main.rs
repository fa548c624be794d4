//! End-to-end tests of the `chat` binary in piped mode: against fake servers for what
//! the real server never sends (hostile text, refusals, abrupt closes), and against the
//! real server in-process for chatting, echo, private chat and shutdown, also over TLS.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod fake_server;
mod real_server;
mod reconnect;
mod tls;
