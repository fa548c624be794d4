//! `loadgen`: an open-loop load generator for the chat server (and for any line echo
//! server, and Redis pub/sub and NATS as brokers of the room scenario), measuring
//! latency the way wrk2 does.
//!
//! Each client sends on a fixed schedule (`--rate` per second, phases spread evenly over
//! the period) and never waits for a reply. Every message carries its sender, sequence
//! number, intended and actual send times and a checksum; on arrival the corrected
//! latency (from the intended time) and the uncorrected one (from the actual send) go
//! into per-thread HdrHistograms, and every message is accounted for: lost, duplicated,
//! reordered or corrupted. Results land in `--out` as a summary CSV row, `.hgrm`
//! percentile spectra, a per-second series and an interval log; [`compare`], [`plot`]
//! and [`html_report`] read them back, and [`merge`] combines several processes' runs
//! into one. `docs/LOADGEN.md` is the user guide.
//!
//! Layout:
//! - [`config`]: the validated run configuration ([`Config`]).
//! - [`cli`]: the command line, turned into a [`Config`] or a subcommand (`cli::convert`,
//!   `cli::start_at`).
//! - [`runner`]: [`run`], the coordinator: plans clients, starts threads, merges reports,
//!   writes results (`runner::anchor`, `runner::collector`, `runner::summary`, ...).
//! - `worker`: one load thread (mio poll, connect ramp, schedule, drain; `worker::shared`,
//!   `worker::connect`, `worker::sending`, `worker::accounting`, ...).
//! - `client`: one simulated client (`client::conn`, `client::handshake`,
//!   `client::send`, `client::receive`, `client::deliver`); `client::broker` for a room
//!   member on Redis or NATS.
//! - `wire`: a load message's wire form, and the brokers' protocols (`wire::redis`,
//!   `wire::nats`).
//! - [`schedule`]: intended send times, phase spread, the send window.
//! - [`lag`]: late sends told apart: loadgen's own lag or held by the server; trust.
//! - [`stamp`]: the per-message stamp and its binary and ASCII encodings.
//! - [`verify`]: per-sender sequence tracking (duplicates, reordering).
//! - [`recorder`]: latency histograms.
//! - [`progress`]: the live progress line.
//! - [`report`]: the summary row, series rows, verdict and exit codes.
//! - [`results`]: writing and reading result files (`results::csv_files`,
//!   `results::hgrm`, `results::hlog`, `results::locate`).
//! - [`compare`], [`plot`], [`html_report`], [`merge`]: the `compare`, `plot`, `report`
//!   and `merge` subcommands.
//! - [`clock`], [`cpu`], `poller`: run clock, own CPU time, sleeping until a socket is
//!   ready or the next send is due.
//! - [`fanout`]: roles, global client ids and stamps comparable across processes (a
//!   room's senders and receivers in different loadgen processes).
//! - [`clock_offset`]: this machine's wall-clock offset to the server, from `Echo`
//!   round trips, and the bound between processes.
//! - `transport`: a client's socket, plain or TLS ([`TlsClient`]).
#![forbid(unsafe_code)]

mod churn;
pub mod cli;
mod client;
pub mod clock;
pub mod clock_offset;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod fanout;
pub mod html_report;
pub mod lag;
pub mod merge;
pub mod plot;
mod poller;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod results;
pub mod runner;
pub mod schedule;
pub mod stamp;
mod tally;
mod transport;
pub mod verify;
mod wire;
mod worker;

pub use churn::ChurnCounts;
pub use config::{Config, ConfigError, Protocol, Scenario, Thresholds};
pub use report::{Summary, Verdict, exit};
pub use runner::{RunError, RunReport, run};
pub use tally::ErrorCounts;
pub use transport::TlsClient;
pub use worker::StopSignal;
