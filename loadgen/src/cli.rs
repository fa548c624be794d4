//! The command line: `loadgen [RUN FLAGS]`, `loadgen compare FILES...`,
//! `loadgen plot FILES... -o OUT.svg`, `loadgen report FILES... -o OUT.html` and
//! `loadgen merge RUNS... -o DIR`. Raw
//! arguments become a validated [`Config`] here, before anything runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use crate::TlsClient;
use crate::config::{
    Config, ConfigError, MAX_RATE, MIN_RATE, Protocol, Scenario, Thresholds, default_threads,
};
use crate::plot::YScale;
use shared::tls::Trust;

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

/// Why command-line arguments do not make a runnable configuration: a usage error, which
/// `loadgen` reports as one line and exit code 2 ([`crate::exit::USAGE`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// clap refused the arguments: an unknown flag, a value of the wrong type, a missing
    /// argument.
    #[error("{}", clap_message(.0))]
    Parse(clap::Error),
    /// `--addr` is not `HOST:PORT`, or its host did not resolve to any address.
    #[error("--addr {addr}: {reason}")]
    Addr {
        /// What was given.
        addr: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// `--total-rate` is not positive and finite, or gives each client a rate outside
    /// what `--rate` accepts.
    #[error(
        "--total-rate must be between {} and {} messages per second for {clients} clients, not {total}",
        plain(MIN_RATE * f64::from(*clients)), plain(MAX_RATE * f64::from(*clients))
    )]
    TotalRate {
        /// What was given.
        total: f64,
        /// `--clients`.
        clients: u32,
    },
    /// The TLS flags do not make a client configuration (an unreadable `--ca`, no
    /// system roots, an address whose host no certificate can name).
    #[error("--tls: {0}")]
    Tls(shared::tls::TrustError),
    /// `--start-at` is in the past, too far ahead, or too soon for the clients to
    /// connect at `--connect-rate` before it.
    #[error("--start-at {given}: {reason}")]
    StartAt {
        /// What was given.
        given: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The flags combine into an unrunnable configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A `--start-at` value as given: an instant, or a delay from when the command line is
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// RFC 3339 UTC (`2026-12-03T15:00:00Z`, fractions of a second allowed).
    At(SystemTime),
    /// `+5s`: that long after now.
    In(Duration),
}

/// Farthest ahead `--start-at` may lie: the run clock's stamps cover the wait too.
pub const MAX_START_LEAD: Duration = Duration::from_secs(24 * 3600);

/// Headroom asked for on top of the estimated ramp: the coordinator needs a moment to
/// publish the start to every thread.
const START_HEADROOM: Duration = Duration::from_millis(100);

/// Parses `--start-at`: `+DURATION` or an RFC 3339 UTC time
/// (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`).
pub fn parse_start_at(text: &str) -> Result<StartAt, String> {
    if let Some(delay) = text.strip_prefix('+') {
        return parse_duration(delay).map(StartAt::In);
    }
    parse_rfc3339_utc(text).map(StartAt::At).ok_or_else(|| {
        "expected an RFC 3339 UTC time like 2026-12-03T15:00:00Z or a delay like +5s".into()
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (a `t`, a space or a lower-case `z` are accepted
/// too, as RFC 3339 allows) to a wall-clock instant.
fn parse_rfc3339_utc(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let zone = b.last()?;
    if b.len() < 20 || !matches!(zone, b'Z' | b'z') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let sep = |i: usize, want: &[u8]| want.contains(b.get(i)?).then_some(());
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt ")?;
    sep(13, b":")?;
    sep(16, b":")?;
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month_days = [
        31,
        28 + u64::from(is_leap(y)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || d == 0
        || d > month_days[m as usize - 1]
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    let fraction = &text[19..text.len() - 1];
    let nanos = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits)
            if !digits.is_empty()
                && digits.len() <= 9
                && digits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            format!("{digits:0<9}").parse::<u32>().ok()?
        }
        _ => return None,
    };
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

/// Days from 1970-01-01 to a proleptic Gregorian date from 1970 on (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The instant a `--start-at` stands for, checked against `now`: not in the past, at
/// most [`MAX_START_LEAD`] ahead, and far enough ahead for `clients` to connect at
/// `connect_rate` (the estimate the ramp takes when nothing is slow).
fn start_instant(
    given: &str,
    start: StartAt,
    now: SystemTime,
    clients: u32,
    connect_rate: f64,
) -> Result<SystemTime, CliError> {
    let err = |reason: String| CliError::StartAt {
        given: given.to_owned(),
        reason,
    };
    let at = match start {
        StartAt::At(at) => at,
        StartAt::In(delay) => now + delay,
    };
    let lead = at.duration_since(now).map_err(|past| {
        err(format!(
            "that is {:.3}s in the past",
            past.duration().as_secs_f64()
        ))
    })?;
    if lead > MAX_START_LEAD {
        return Err(err(format!(
            "that is more than {} hours away",
            MAX_START_LEAD.as_secs() / 3600
        )));
    }
    let ramp_s = f64::from(clients) / connect_rate;
    if connect_rate.is_finite()
        && connect_rate > 0.0
        && lead.as_secs_f64() < ramp_s + START_HEADROOM.as_secs_f64()
    {
        return Err(err(format!(
            "that is in {:.3}s, but connecting {clients} clients at --connect-rate {} takes \
             about {ramp_s:.3}s; start later",
            lead.as_secs_f64(),
            plain(connect_rate)
        )));
    }
    Ok(at)
}

impl RunArgs {
    /// Resolves the address and validates the whole configuration.
    pub fn into_config(self) -> Result<Config, CliError> {
        let start_at = match &self.start_at {
            Some(given) => {
                let start = parse_start_at(given).map_err(|reason| CliError::StartAt {
                    given: given.clone(),
                    reason,
                })?;
                let now = SystemTime::now();
                Some(start_instant(
                    given,
                    start,
                    now,
                    self.clients,
                    self.connect_rate,
                )?)
            }
            None => None,
        };
        let addrs = self
            .addr
            .split(',')
            .map(|one| resolve(one.trim(), &self.addr))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if self.tls {
            let trust = match (self.ca, self.tls_insecure) {
                (Some(ca), _) => Trust::Ca(ca),
                (None, true) => Trust::Insecure,
                (None, false) => Trust::System,
            };
            let config = shared::tls::client_config(&trust).map_err(CliError::Tls)?;
            // Every address is checked against the first one's host name.
            let first = self.addr.split(',').next().unwrap_or_default().trim();
            let name = shared::tls::server_name(first).map_err(CliError::Tls)?;
            Some(TlsClient { config, name })
        } else {
            None
        };
        let config = Config {
            addrs,
            tls,
            clients: self.clients,
            rate: match self.total_rate {
                Some(total) => total_rate_per_client(total, self.clients)?,
                None => self.rate,
            },
            duration: self.duration,
            warmup: self.warmup,
            grace: self.grace,
            connect_rate: self.connect_rate,
            connect_timeout: self.connect_timeout,
            payload: self.payload,
            threads: self.threads,
            scenario: self.scenario,
            room_size: self.room_size,
            protocol: self.protocol,
            out: self.out,
            label: self.label,
            max_in_flight: self.max_in_flight,
            churn: self.churn,
            churn_away: self.churn_away,
            send_window: self.send_window,
            start_at,
            role: self.fanout.role,
            client_offset: self.fanout.client_offset,
            thresholds: Thresholds {
                max_p99: self.max_p99,
                max_loss: self.max_loss,
            },
            progress: !self.quiet,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Each client's share of `--total-rate`; refused, naming that flag, when the share
/// is outside what `--rate` accepts (`--clients 0` is left to [`Config::validate`]).
fn total_rate_per_client(total: f64, clients: u32) -> Result<f64, CliError> {
    if clients == 0 {
        return Ok(total);
    }
    let rate = total / f64::from(clients);
    if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(CliError::TotalRate { total, clients })
    }
}

/// A rate as a person writes it: at most six decimals, no trailing zeros.
fn plain(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Resolves `HOST:PORT` (`127.0.0.1:7878`, `localhost:7878`, `[::1]:7878`), one entry
/// of the `--addr` list `given`; a host with several addresses is reached at the first
/// one the resolver gives.
fn resolve(addr: &str, given: &str) -> Result<SocketAddr, CliError> {
    let err = |reason: String| CliError::Addr {
        addr: given.to_owned(),
        reason: if addr == given {
            reason
        } else {
            format!("{addr:?}: {reason}")
        },
    };
    let mut addrs = addr.to_socket_addrs().map_err(|e| err(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| err("resolves to no address".into()))
}

pub use shared::units::parse_duration;

/// clap's report of a refused command line on one line ([`shared::cli::one_line`]).
fn clap_message(error: &clap::Error) -> String {
    // `StyledStr`'s `Display` is plain text, without colour codes.
    shared::cli::one_line(&error.render().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_into_the_default_config() {
        let cli = Cli::try_parse_from(["loadgen"]).expect("parses");
        assert!(cli.command.is_none());
        let config = cli.run.into_config().expect("valid");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--clients",
            "1000",
            "--rate",
            "50",
            "--scenario",
            "room",
            "--room-size",
            "5",
            "--protocol",
            "text",
            "--max-p99",
            "20ms",
            "--max-loss",
            "0",
            "--label",
            "night",
            "-q",
        ])
        .expect("parses");
        let config = cli.run.into_config().expect("valid");
        assert_eq!(config.clients, 1000);
        assert_eq!(config.rate, 50.0);
        assert_eq!(config.scenario, Scenario::Room);
        assert_eq!(config.room_size, 5);
        assert_eq!(config.protocol, Protocol::Text);
        assert_eq!(config.thresholds.max_p99, Some(Duration::from_millis(20)));
        assert_eq!(config.thresholds.max_loss, Some(0));
        assert_eq!(config.label(), "night");
        assert!(!config.progress);
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from(["loadgen", "compare", "a.csv", "b.csv"]).expect("parses");
        assert!(
            matches!(cli.command, Some(Command::Compare { files, include_interrupted: false }) if files.len() == 2)
        );
        let cli =
            Cli::try_parse_from(["loadgen", "plot", "a.hgrm", "-o", "x.svg"]).expect("parses");
        assert!(
            matches!(cli.command, Some(Command::Plot { output, .. }) if output == std::path::Path::new("x.svg"))
        );
        assert!(
            Cli::try_parse_from(["loadgen", "plot", "a.hgrm"]).is_err(),
            "-o is required"
        );
    }

    #[test]
    fn addr_takes_a_host_name() {
        let cli = Cli::try_parse_from(["loadgen", "--addr", "localhost:7878"]).expect("parses");
        let config = cli.run.into_config().expect("valid");
        assert!(config.addrs[0].ip().is_loopback(), "{:?}", config.addrs);
        assert_eq!(config.addrs[0].port(), 7878);
    }

    #[test]
    fn start_at_parses_rfc3339_utc_and_delays() {
        let at = |secs: u64, nanos: u32| StartAt::At(UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(parse_start_at("1970-01-01T00:00:00Z"), Ok(at(0, 0)));
        assert_eq!(
            parse_start_at("2026-12-03T15:00:00Z"),
            Ok(at(1_796_310_000, 0))
        );
        assert_eq!(
            parse_start_at("2024-02-29t23:59:59.25z"),
            Ok(at(1_709_251_199, 250_000_000))
        );
        assert_eq!(
            parse_start_at("+5s"),
            Ok(StartAt::In(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_start_at("+1500ms"),
            Ok(StartAt::In(Duration::from_millis(1500)))
        );
        for bad in [
            "2026-12-03T15:00:00",
            "2026-12-03T15:00:00+01:00",
            "2025-02-29T00:00:00Z",
            "2026-12-03T24:00:00Z",
            "2026-13-03T15:00:00Z",
            "2026-12-03T15:00:00.Z",
            "15:00",
            "+soon",
            "",
        ] {
            assert!(parse_start_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_start_in_the_past_or_too_soon_for_the_ramp_is_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_310_000);
        let check = |start, clients, connect_rate| {
            start_instant("T", start, now, clients, connect_rate).map_err(|e| e.to_string())
        };
        assert_eq!(
            check(StartAt::At(now - Duration::from_secs(2)), 10, 1000.0),
            Err("--start-at T: that is 2.000s in the past".into())
        );
        assert_eq!(
            check(StartAt::In(Duration::from_millis(500)), 1000, 1000.0),
            Err(
                "--start-at T: that is in 0.500s, but connecting 1000 clients at \
                 --connect-rate 1000 takes about 1.000s; start later"
                    .into()
            )
        );
        assert!(check(StartAt::In(Duration::from_secs(25 * 3600)), 1, 1000.0).is_err());
        assert_eq!(
            check(StartAt::In(Duration::from_secs(2)), 1000, 1000.0),
            Ok(now + Duration::from_secs(2))
        );
        // Through the command line: a usage error naming the flag, on one line.
        let cli =
            Cli::try_parse_from(["loadgen", "--start-at", "2000-01-01T00:00:00Z"]).expect("parses");
        let err = cli.run.into_config().expect_err("in the past");
        assert!(matches!(err, CliError::StartAt { .. }), "{err:?}");
        let cli = Cli::try_parse_from(["loadgen", "--start-at", "noon"]).expect("parses");
        let err = cli.run.into_config().expect_err("not a time").to_string();
        assert!(
            err.starts_with("--start-at noon: expected an RFC 3339"),
            "{err}"
        );
        let cli = Cli::try_parse_from(["loadgen", "--start-at", "+3s"]).expect("parses");
        let config = cli.run.into_config().expect("valid");
        assert!(config.start_at.is_some());
    }

    #[test]
    fn addr_takes_a_list() {
        let cli = Cli::try_parse_from(["loadgen", "--addr", "127.0.0.1:7000, 127.0.0.2:7001"])
            .expect("parses");
        let config = cli.run.into_config().expect("valid");
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:7000".parse().expect("addr"),
            "127.0.0.2:7001".parse().expect("addr"),
        ];
        assert_eq!(config.addrs, want);
        assert_eq!(config.addr_list(), "127.0.0.1:7000,127.0.0.2:7001");
        for bad in ["127.0.0.1:7000,", "127.0.0.1:7000,127.0.0.1", ","] {
            let cli = Cli::try_parse_from(["loadgen", "--addr", bad]).expect("parses");
            let err = cli.run.into_config().expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!("--addr {bad}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn an_addr_without_a_valid_port_is_refused() {
        for addr in ["127.0.0.1", "127.0.0.1:99999", "localhost:port"] {
            let cli = Cli::try_parse_from(["loadgen", "--addr", addr]).expect("parses");
            let err = cli.run.into_config().expect_err(addr);
            assert!(matches!(err, CliError::Addr { .. }), "{addr}: {err:?}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("--addr {addr}: ")),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn clap_errors_become_one_line() {
        let message = |args: &[&str]| {
            let err = Cli::try_parse_from(args).expect_err("refused");
            CliError::Parse(err).to_string()
        };
        assert_eq!(
            message(&["loadgen", "--clients", "many"]),
            "invalid value 'many' for '--clients <CLIENTS>': invalid digit found in string"
        );
        assert_eq!(
            message(&["loadgen", "plot"]),
            "the following required arguments were not provided: --output <OUTPUT>, <FILES>..."
        );
        let unknown = message(&["loadgen", "--client", "5"]);
        assert!(
            unknown.starts_with("unexpected argument '--client' found; tip: "),
            "{unknown}"
        );
        assert!(!unknown.contains("Usage"), "{unknown}");
    }

    #[test]
    fn short_flags_and_aliases_reach_the_config() {
        let cli = Cli::try_parse_from(["loadgen", "-c", "40", "-r", "2.5", "-d", "5s", "-t", "3"])
            .expect("parses");
        let config = cli.run.into_config().expect("valid");
        assert_eq!(config.clients, 40);
        assert_eq!(config.rate, 2.5);
        assert_eq!(config.duration, Duration::from_secs(5));
        assert_eq!(config.threads, 3);
        let cli = Cli::try_parse_from(["loadgen", "--connections", "7"]).expect("parses");
        assert_eq!(cli.run.clients, 7);
    }

    #[test]
    fn total_rate_is_shared_among_the_clients() {
        for args in [
            ["loadgen", "-c", "10", "-R", "1000"],
            ["loadgen", "-c", "10", "--total-rate", "1000"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            let config = cli.run.into_config().expect("valid");
            assert_eq!(config.rate, 100.0, "{args:?}");
            assert_eq!(config.target_rate(), 1000.0, "{args:?}");
        }
    }

    #[test]
    fn a_total_rate_out_of_range_names_that_flag() {
        for (args, expected) in [
            (
                &["loadgen", "-c", "10", "-R", "0"][..],
                "--total-rate must be between 0.01 and 10000000 messages per second for 10 clients, not 0",
            ),
            (
                &["loadgen", "--total-rate", "0"][..],
                "--total-rate must be between 0.1 and 100000000 messages per second for 100 clients, not 0",
            ),
            (
                &["loadgen", "-c", "1000", "-R", "0.5"][..],
                "--total-rate must be between 1 and 1000000000 messages per second for 1000 clients, not 0.5",
            ),
            (&["loadgen", "--total-rate=-5"][..], "not -5"),
            (&["loadgen", "-R", "inf"][..], "not inf"),
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            let err = cli.run.into_config().expect_err("refused");
            assert!(
                matches!(err, CliError::TotalRate { .. }),
                "{args:?}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.starts_with("--total-rate must be"), "{message}");
            assert!(message.ends_with(expected), "{args:?}: {message}");
        }
    }

    #[test]
    fn rate_and_total_rate_exclude_each_other() {
        let err = Cli::try_parse_from(["loadgen", "-r", "5", "-R", "1000"]).expect_err("refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn invalid_combinations_are_refused_before_running() {
        let cli =
            Cli::try_parse_from(["loadgen", "--scenario", "dm", "--clients", "3"]).expect("parses");
        assert!(matches!(
            cli.run.into_config(),
            Err(CliError::Config(ConfigError::OddPairs(3)))
        ));
    }
}
