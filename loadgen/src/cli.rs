//! The command line: `loadgen [RUN FLAGS]`, `loadgen compare FILES...`,
//! `loadgen plot FILES... -o OUT.svg`, `loadgen report FILES... -o OUT.html` and
//! `loadgen merge RUNS... -o DIR`. This file defines the arguments ([`Cli`],
//! [`Command`], [`RunArgs`]); raw arguments become a validated [`crate::Config`] before
//! anything runs.
//!
//! Layout:
//! - `convert`: [`RunArgs::into_config`], the run flags checked and turned into a
//!   [`crate::Config`].
//! - `start_at`: `--start-at` parsing and checking.
//! - `error`: [`CliError`], why a command line is refused.

mod convert;
mod error;
mod start_at;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Protocol, Scenario, default_threads};
use crate::plot::YScale;
pub use error::CliError;
pub use shared::units::parse_duration;
pub use start_at::{MAX_START_LEAD, StartAt, parse_start_at};

/// Open-loop load generator with corrected latency (wrk2-style) for the chat server.
///
/// Without a subcommand it runs a load test and appends its results under --out.
/// Durations take a unit: 500ms, 30s, 2m, 1h (a bare number is seconds).
/// Exit codes: 0 ok, 1 error, 2 bad usage, 3 --max-p99 missed, 4 --max-loss missed,
/// 5 both missed, 130 interrupted by Ctrl+C (results still written). Each threshold given
/// is printed after the run with its measured value and PASS or FAIL.
/// docs/LOADGEN.md is the guide.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Subcommand; none runs a load test.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Load test flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put runs from summary CSVs side by side, with ratios against the first row.
    Compare {
        /// Summary CSV files (each may hold many runs).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also show runs cut short by Ctrl+C (left out by default; their numbers cover
        /// only part of a run).
        #[arg(long)]
        include_interrupted: bool,
    },
    /// Write one self-contained HTML page of runs from summary CSVs.
    ///
    /// Per run the summary table, the percentile spectrum and the per-second series
    /// (rates, p50 and p99 over time); several runs side by side, with ratios against
    /// the first. No scripts and nothing loaded from elsewhere: it opens offline.
    Report {
        /// Summary CSV files (each may hold many runs); every run's .hgrm and
        /// .series.csv are read from beside its CSV.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// HTML file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Also show runs cut short by Ctrl+C.
        #[arg(long)]
        include_interrupted: bool,
    },
    /// Combine several loadgen processes' runs into one result, written like a run's.
    ///
    /// Latency histograms are added per wall-clock second from the runs' .hlog files,
    /// counts are summed, percentiles come from the merged distribution and rates from
    /// the summed counts over the span the runs measured.
    Merge {
        /// Runs: a summary CSV (every run in it) or CSV:N (its N-th run, as `compare`
        /// numbers them); each run's .hlog and .series.csv are read from beside it.
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<String>,
        /// Directory for the merged result files (created if missing).
        #[arg(short, long)]
        output: PathBuf,
        /// Name of the merged run [default: merged-LABEL, LABEL the first run's].
        #[arg(long)]
        label: Option<String>,
    },
    /// Draw the percentile spectra of runs (.hgrm files) into one SVG chart.
    Plot {
        /// `.hgrm` files written by loadgen (or any HdrHistogram tool).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// SVG file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Chart title [default: which latency of which load, from the runs' summary
        /// CSVs: "Corrected latency by percentile: echo binary, 1000 clients x 50/s each"].
        #[arg(long)]
        title: Option<String>,
        /// Also draw each run's uncorrected spectrum (dashed). Without it,
        /// `.uncorrected.hgrm` inputs are left out.
        #[arg(long)]
        uncorrected: bool,
        /// Latency axis: logarithmic, linear, or auto (logarithmic when the largest value
        /// is more than 20 times the lowest median).
        #[arg(long, value_enum, default_value_t = YScale::Auto)]
        y_scale: YScale,
    },
}

/// Flags of a load test. Durations take a unit: `500ms`, `30s`, `2m`, `1h` (a bare
/// number is seconds).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server address (host:port), or several separated by commas: client i connects
    /// to address i mod N.
    #[arg(long, default_value_t = format!("127.0.0.1:{}", shared::DEFAULT_PORT))]
    pub addr: String,
    /// Speak TLS, verifying the server's certificate against the system's roots (or
    /// --ca); the certificate must name the host of --addr.
    #[arg(long)]
    pub tls: bool,
    /// With --tls, trust the CA certificates in this PEM file instead of the system's.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "tls_insecure"
    )]
    pub ca: Option<PathBuf>,
    /// With --tls, accept any server certificate without verifying it (benchmarks
    /// against a self-signed certificate; never across a network you do not trust).
    #[arg(long, requires = "tls")]
    pub tls_insecure: bool,
    /// Client connections.
    #[arg(short, long, visible_alias = "connections", default_value_t = 100)]
    pub clients: u32,
    /// Messages per second per client.
    #[arg(short, long, default_value_t = 10.0)]
    pub rate: f64,
    /// Messages per second over all clients, instead of --rate (each client sends
    /// TOTAL / --clients per second).
    #[arg(short = 'R', long, conflicts_with = "rate")]
    pub total_rate: Option<f64>,
    /// Measured duration.
    #[arg(short, long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Sending before the measured part, excluded from results.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Time after the end for replies to arrive before they count as lost.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub grace: Duration,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// Time a client may take to connect and finish its handshake.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Payload bytes per message (at least 64: the stamp).
    #[arg(long, default_value_t = crate::stamp::MIN_PAYLOAD)]
    pub payload: usize,
    /// Load threads (the default is one per core).
    #[arg(short, long, default_value_t = default_threads())]
    pub threads: usize,
    /// What the clients do.
    #[arg(long, value_enum, default_value_t = Scenario::Echo)]
    pub scenario: Scenario,
    /// Members per room (room scenario).
    #[arg(long, default_value_t = 10)]
    pub room_size: u32,
    /// Wire protocol: binary frames, the server's text mode, plain echoed lines, or a
    /// broker's pub/sub (Redis RESP3, NATS; room scenario).
    #[arg(long, value_enum, default_value_t = Protocol::Binary)]
    pub protocol: Protocol,
    /// Directory for result files.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Run name in result files [default: SCENARIO-PROTOCOL].
    #[arg(long)]
    pub label: Option<String>,
    /// Per client, messages awaiting their echo before further sends wait (echo scenario;
    /// 0 = unlimited, pure open loop; 1 = one request at a time, like wrk2).
    #[arg(long, default_value_t = 0)]
    pub max_in_flight: u32,
    /// Percent of clients that drop their connection each second of the measured run
    /// and reconnect, resuming their room from the last message seen (room scenario,
    /// binary); every member must still get every message once and in order.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// How long a dropped client stays away before reconnecting (with --churn).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub churn_away: Duration,
    /// Messages of one load thread that fall due within one window of this width leave
    /// together at its end, so the thread wakes once per window (0 = every message at
    /// its intended time). The hold, at most this long, counts in the corrected latency.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub send_window: Duration,
    /// Begin sending at this wall-clock instant, after connecting: RFC 3339 UTC
    /// (2026-12-03T15:00:00Z) or relative to now (+5s). Lets several loadgen processes
    /// start their schedules together.
    #[arg(long)]
    pub start_at: Option<String>,
    /// Fan-out across processes: --role, --client-offset.
    #[command(flatten)]
    pub fanout: crate::fanout::FanoutArgs,
    /// Fail (exit 3) if the corrected p99 exceeds this [default: no limit].
    #[arg(long, value_parser = parse_duration)]
    pub max_p99: Option<Duration>,
    /// Fail (exit 4) if more messages than this are lost [default: no limit].
    #[arg(long)]
    pub max_loss: Option<u64>,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests;
