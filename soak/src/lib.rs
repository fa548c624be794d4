//! Tools of the reliability suite (`scripts/soak.sh`): hostile clients that misbehave in
//! every way a chat server must survive, a probe that reads the server's `Stats`, a
//! checker of what a graceful shutdown promises, a room flood that checks every delivery,
//! and a timer of single round trips. The `hostile` binary is a thin CLI over
//! this library; the tests drive the same functions against an in-process server.
//!
//! Layout:
//! - [`kind`]: the ways of misbehaving ([`Kind`]) and what the server should answer.
//! - [`hostile`]: the single-threaded `mio` driver of many hostile connections ([`run`]).
//! - [`report`]: per-kind tallies and verdicts ([`Report`]).
//! - [`probe`]: a blocking binary client; [`fetch_stats`], [`watch_stats`].
//! - [`drain`]: the shutdown drain checker ([`drain::run`]).
//! - [`fanout`]: a room flooded by senders while every member reads ([`fanout::run`]).
//! - [`rtt`]: timed round trips of one request ([`rtt::run`]).
//! - [`cli`]: the command line, validated into the configs above.
//! - [`rng`]: the seeded generator behind the garbage bytes.
#![forbid(unsafe_code)]

pub mod cli;
pub mod drain;
pub mod fanout;
pub mod hostile;
pub mod kind;
pub mod probe;
pub mod report;
pub mod rng;
pub mod rtt;

pub use hostile::{HostileConfig, HostileError, run};
pub use kind::Kind;
pub use probe::{Probe, ProbeError, fetch_stats, watch_stats};
pub use report::{KindReport, Report, Verdict};
