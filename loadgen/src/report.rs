//! What a run produced: the summary row (one line of the summary CSV), the per-second
//! series, and the pass/fail verdict with its exit code.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Exit codes of `loadgen` (documented in `docs/LOADGEN.md`).
pub mod exit {
    /// The run finished and met every threshold.
    pub const OK: i32 = 0;
    /// The run could not be done (nobody connected, results not writable), or `compare`
    /// or `plot` could not read an input or write the chart.
    pub const ERROR: i32 = 1;
    /// Bad command line: what clap refuses (clap's own code), an `--addr` that does not
    /// resolve, and flag values out of range or in combinations that cannot run.
    pub const USAGE: i32 = 2;
    /// The corrected p99 exceeded `--max-p99`.
    pub const P99_EXCEEDED: i32 = 3;
    /// More messages were lost than `--max-loss` allows.
    pub const LOSS_EXCEEDED: i32 = 4;
    /// Both thresholds were missed.
    pub const BOTH_EXCEEDED: i32 = 5;
    /// Ctrl+C ended the run early; results were written, marked interrupted.
    pub const INTERRUPTED: i32 = 130;
}

/// One row of the summary CSV. Column names are the field names; `results/README.md`
/// documents each. Latencies are microseconds, rates messages per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `--label` (default `SCENARIO-PROTOCOL`).
    pub label: String,
    /// `echo`, `room` or `dm`.
    pub scenario: String,
    /// `binary`, `text` or `line`.
    pub protocol: String,
    /// Server address.
    pub addr: String,
    /// Clients asked for.
    pub clients: u32,
    /// Clients that were connected (and done with their handshake) when sending began.
    pub connected: u32,
    /// Load threads.
    pub threads: u32,
    /// Messages per second per client.
    pub rate_per_client: f64,
    /// Payload bytes per message.
    pub payload_bytes: usize,
    /// Members per room (room scenario only).
    pub room_size: Option<u32>,
    /// Measured seconds (shorter than asked when interrupted).
    pub duration_s: f64,
    /// Unmeasured seconds of sending before.
    pub warmup_s: f64,
    /// `clients * rate_per_client`.
    pub target_rate: f64,
    /// Measured messages sent per second.
    pub achieved_send_rate: f64,
    /// Measured deliveries received per second (room: each message counts once per
    /// member).
    pub receive_rate: f64,
    /// Measured messages sent.
    pub sent: u64,
    /// Deliveries expected for them (room: `sent` times the connected members).
    pub expected: u64,
    /// Distinct deliveries received.
    pub received: u64,
    /// `expected - received`: not back within the grace period.
    pub lost: u64,
    /// Deliveries received more than once (extra copies).
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same sender.
    pub reordered: u64,
    /// Payloads whose stamp or checksum did not check out.
    pub corrupted: u64,
    /// Sum of the error columns below plus stalled sends and undecodable data.
    pub errors: u64,
    /// Clients that could not connect or finish their handshake.
    pub connect_failures: u64,
    /// Connections that ended during the run.
    pub disconnects: u64,
    /// Error frames / `ERR` lines received.
    pub server_errors: u64,
    /// Measured sends that left more than 1 ms after their intended time (loadgen's own
    /// lag; waits for the in-flight window are not counted here).
    pub late_sends: u64,
    /// Measured messages that waited for the `--max-in-flight` window (0 without one).
    pub deferred_sends: u64,
    /// Worst lag of a measured send behind its intended time.
    pub max_send_lag_us: u64,
    /// Corrected latency percentiles (from the intended send time).
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// 99.99th percentile.
    pub p9999_us: u64,
    /// Largest corrected latency.
    pub max_us: u64,
    /// Mean corrected latency.
    pub mean_us: f64,
    /// Uncorrected latency (from the actual send) percentiles.
    pub uncorrected_p50_us: u64,
    /// Uncorrected 99th percentile.
    pub uncorrected_p99_us: u64,
    /// Largest uncorrected latency.
    pub uncorrected_max_us: u64,
    /// loadgen's own CPU time (user + system, all threads) per measured message sent,
    /// over the measured seconds; empty where `/proc` is unavailable.
    pub loadgen_cpu_us_per_msg: Option<f64>,
    /// The user-space part of `loadgen_cpu_us_per_msg` (loadgen's own code); the rest is
    /// kernel time, which on loopback includes the server's TCP receive processing.
    pub loadgen_user_us_per_msg: Option<f64>,
    /// Wall-clock start of the run, UTC, RFC 3339.
    pub started_at: String,
    /// Whether Ctrl+C ended the run early.
    pub interrupted: bool,
    /// Room messages whose id was not the member's previous one plus one (a gap, a
    /// repeat, a step back), over all members: 0 unless the room order broke. Binary
    /// room runs only; empty otherwise (and in rows from before the column existed).
    #[serde(default)]
    pub order_breaks: Option<u64>,
    /// Connections dropped and resumed by `--churn` (empty without churn).
    #[serde(default)]
    pub churn_reconnects: Option<u64>,
    /// Measured deliveries that arrived in a replay after a resume; they count in
    /// `received` but not in the latency columns above.
    #[serde(default)]
    pub replayed: Option<u64>,
    /// Messages the server no longer held when a member resumed (its history was too
    /// short for the time away).
    #[serde(default)]
    pub resume_missed: Option<u64>,
    /// Corrected latency of replayed deliveries: 50th percentile.
    #[serde(default)]
    pub replay_p50_us: Option<u64>,
    /// 99th percentile of replayed deliveries.
    #[serde(default)]
    pub replay_p99_us: Option<u64>,
    /// Largest corrected latency of a replayed delivery.
    #[serde(default)]
    pub replay_max_us: Option<u64>,
    /// `--send-window`: messages of a thread due within one window left together at its
    /// end (0: each at its intended time; empty in rows from before the column existed).
    #[serde(default)]
    pub send_window_us: Option<u64>,
    /// loadgen's own lag (a measured send made after its release because loadgen was
    /// not running or was busy, see [`crate::lag`]): 99th percentile.
    #[serde(default)]
    pub own_lag_p99_us: Option<u64>,
    /// Own lag, 99.9th percentile.
    #[serde(default)]
    pub own_lag_p999_us: Option<u64>,
    /// Measured sends held by the server: queued behind bytes the socket had not taken.
    #[serde(default)]
    pub held_sends: Option<u64>,
    /// Longest such backlog, from the first message queued behind it until it cleared.
    #[serde(default)]
    pub held_max_us: Option<u64>,
    /// Corrected latency less each message's own lag: 50th percentile.
    #[serde(default)]
    pub lag_free_p50_us: Option<u64>,
    /// Corrected latency less own lag: 99th percentile.
    #[serde(default)]
    pub lag_free_p99_us: Option<u64>,
    /// Corrected latency less own lag: 99.9th percentile.
    #[serde(default)]
    pub lag_free_p999_us: Option<u64>,
    /// Corrected latency less own lag: largest.
    #[serde(default)]
    pub lag_free_max_us: Option<u64>,
    /// Whether loadgen kept its schedule well enough for the corrected tail to be the
    /// server's: at most 1 in 1000 measured sends late by its own doing
    /// ([`crate::lag::trustworthy`]).
    #[serde(default)]
    pub trustworthy: Option<bool>,
    /// `--role` of a run that was one part of a fan-out over several processes (`send`
    /// or `receive`); `fan-out` in a merged row of such runs; empty otherwise.
    #[serde(default)]
    pub role: Option<String>,
    /// This machine's wall clock against the server's, microseconds (server minus
    /// loadgen), measured with `Echo` round trips before a `--start-at` run; empty
    /// where not measured (no `--start-at`, brokers, line echo servers, probe failed)
    /// and in merged rows.
    #[serde(default)]
    pub clock_offset_us: Option<i64>,
    /// The true offset lies within `clock_offset_us` plus or minus this (half the
    /// smallest probe RTT). In a merged row: the bound on the offset between any two of
    /// the merged processes, i.e. the uncertainty of a latency measured across them.
    #[serde(default)]
    pub clock_offset_bound_us: Option<u64>,
}

/// Summary columns added after the first release: rows without them still read.
pub const OPTIONAL_COLUMNS: [&str; 20] = [
    "order_breaks",
    "churn_reconnects",
    "replayed",
    "resume_missed",
    "replay_p50_us",
    "replay_p99_us",
    "replay_max_us",
    "send_window_us",
    "own_lag_p99_us",
    "own_lag_p999_us",
    "held_sends",
    "held_max_us",
    "lag_free_p50_us",
    "lag_free_p99_us",
    "lag_free_p999_us",
    "lag_free_max_us",
    "trustworthy",
    "role",
    "clock_offset_us",
    "clock_offset_bound_us",
];

/// Latency columns of a summary, taken from a corrected and an uncorrected histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// 50th percentile (us).
    pub p50: u64,
    /// 90th percentile (us).
    pub p90: u64,
    /// 99th percentile (us).
    pub p99: u64,
    /// 99.9th percentile (us).
    pub p999: u64,
    /// 99.99th percentile (us).
    pub p9999: u64,
    /// Largest value (us).
    pub max: u64,
    /// Mean (us).
    pub mean: f64,
}

impl Percentiles {
    /// Reads the percentiles of `h` (zeros when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// One row of the per-second series CSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Seconds since the measured part began (row `n` covers `[n, n+1)`).
    pub second: u64,
    /// `measure` while sending, `drain` while waiting for the last replies.
    pub phase: String,
    /// Ready connections at the end of the second.
    pub connections: u32,
    /// Measured messages sent in this second.
    pub sent: u64,
    /// Measured deliveries received in this second.
    pub received: u64,
    /// Corrected latency of this second's deliveries.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Errors in this second.
    pub errors: u64,
}

/// Whether the run met its thresholds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The corrected p99 exceeded `--max-p99`.
    pub p99_exceeded: bool,
    /// More than `--max-loss` messages were lost.
    pub loss_exceeded: bool,
    /// The run was cut short by Ctrl+C.
    pub interrupted: bool,
}

impl Verdict {
    /// Judges a summary against the thresholds.
    pub fn judge(summary: &Summary, max_p99: Option<Duration>, max_loss: Option<u64>) -> Self {
        Self {
            p99_exceeded: max_p99.is_some_and(|max| u128::from(summary.p99_us) > max.as_micros()),
            loss_exceeded: max_loss.is_some_and(|max| summary.lost > max),
            interrupted: summary.interrupted,
        }
    }

    /// The process exit code for this verdict (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match (self.interrupted, self.p99_exceeded, self.loss_exceeded) {
            (true, _, _) => exit::INTERRUPTED,
            (false, true, true) => exit::BOTH_EXCEEDED,
            (false, true, false) => exit::P99_EXCEEDED,
            (false, false, true) => exit::LOSS_EXCEEDED,
            (false, false, false) => exit::OK,
        }
    }
}

/// One line per threshold that was set, as k6 prints them: the limit, the measured value
/// and `PASS` or `FAIL`, so a non-zero exit code comes with its reason.
pub fn render_thresholds(s: &Summary, thresholds: &crate::config::Thresholds) -> String {
    let ms = |us: u128| format!("{:.3} ms", us as f64 / 1000.0);
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    let mut out = String::new();
    if let Some(max) = thresholds.max_p99 {
        let pass = u128::from(s.p99_us) <= max.as_micros();
        out += &format!(
            "  threshold p99 <= {}: measured {}  {}\n",
            ms(max.as_micros()),
            ms(u128::from(s.p99_us)),
            verdict(pass)
        );
    }
    if let Some(max) = thresholds.max_loss {
        let pass = s.lost <= max;
        out += &format!(
            "  threshold lost <= {max}: measured {}  {}\n",
            s.lost,
            verdict(pass)
        );
    }
    out
}

/// Shortest measured run whose CPU time is split into user and kernel time in the
/// printed account: the kernel counts CPU time in clock ticks (10 ms), so over a second
/// or so the split is mostly rounding.
pub const MIN_CPU_SPLIT_S: f64 = 2.0;

/// The human-readable account of a run that `loadgen` prints when it ends.
pub fn render(s: &Summary, files: &crate::results::ResultFiles) -> String {
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    let mut out = format!(
        "loadgen {}: {} clients ({} connected) x {}/s, {} {} against {} for {:.1}s{}\n",
        s.label,
        s.clients,
        s.connected,
        s.rate_per_client,
        s.scenario,
        s.protocol,
        s.addr,
        s.duration_s,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    out += &format!(
        "  sent     {:>10}  {:>10.1}/s (target {:.0}/s)\n  received {:>10}  {:>10.1}/s of {} expected\n",
        s.sent, s.achieved_send_rate, s.target_rate, s.received, s.receive_rate, s.expected
    );
    out += &format!(
        "  lost {}  duplicated {}  reordered {}  corrupted {}  errors {}  late sends {} (worst lag {} ms)\n",
        s.lost,
        s.duplicated,
        s.reordered,
        s.corrupted,
        s.errors,
        s.late_sends,
        ms(s.max_send_lag_us)
    );
    out += &format!(
        "  latency ms (corrected)    p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {:.3}\n",
        ms(s.p50_us),
        ms(s.p90_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.p9999_us),
        ms(s.max_us),
        s.mean_us / 1000.0
    );
    if let (Some(p50), Some(p99), Some(p999), Some(max)) = (
        s.lag_free_p50_us,
        s.lag_free_p99_us,
        s.lag_free_p999_us,
        s.lag_free_max_us,
    ) {
        out += &format!(
            "  latency ms (own lag out)  p50 {}  p99 {}  p99.9 {}  max {}\n",
            ms(p50),
            ms(p99),
            ms(p999),
            ms(max)
        );
    }
    out += &format!(
        "  latency ms (uncorrected)  p50 {}  p99 {}  max {}\n",
        ms(s.uncorrected_p50_us),
        ms(s.uncorrected_p99_us),
        ms(s.uncorrected_max_us)
    );
    if let (Some(p99), Some(p999), Some(held), Some(held_max)) = (
        s.own_lag_p99_us,
        s.own_lag_p999_us,
        s.held_sends,
        s.held_max_us,
    ) {
        out += &format!(
            "  send lag: loadgen's own p99 {} p99.9 {} max {} ms, {} sends over 1 ms; held by the server {} sends (longest {} ms)\n",
            ms(p99),
            ms(p999),
            ms(s.max_send_lag_us),
            s.late_sends,
            held,
            ms(held_max)
        );
    }
    if let Some(window) = s.send_window_us.filter(|&w| w > 0) {
        out += &format!(
            "  send window {} ms: sends held up to that long, counted in the corrected latency\n",
            ms(window)
        );
    }
    match s.trustworthy {
        Some(true) => {
            out += "  trustworthy: yes (at most 1 in 1000 sends late by loadgen's own doing)\n"
        }
        Some(false) => {
            out += "  trustworthy: NO (more than 1 in 1000 sends late by loadgen's own doing: the corrected tail is partly loadgen's)\n"
        }
        None => {}
    }
    out += &crate::fanout::account_lines(s);
    if let Some(breaks) = s.order_breaks {
        out += &format!("  room order: {breaks} breaks (ids out of sequence at a member)\n");
    }
    if let Some(reconnects) = s.churn_reconnects {
        let replayed = s.replayed.unwrap_or_default();
        out += &format!(
            "  churn: {reconnects} reconnects, {replayed} deliveries replayed (latency ms p50 {} p99 {} max {}), {} no longer held\n",
            ms(s.replay_p50_us.unwrap_or_default()),
            ms(s.replay_p99_us.unwrap_or_default()),
            ms(s.replay_max_us.unwrap_or_default()),
            s.resume_missed.unwrap_or_default()
        );
    }
    if let Some(cpu) = s.loadgen_cpu_us_per_msg {
        match s.loadgen_user_us_per_msg {
            Some(user) if s.duration_s >= MIN_CPU_SPLIT_S => {
                out += &format!(
                    "  loadgen cpu {cpu:.2} us per message ({user:.2} user, {:.2} kernel)\n",
                    cpu - user
                );
            }
            _ => out += &format!("  loadgen cpu {cpu:.2} us per message\n"),
        }
    }
    out += &format!(
        "  results: {} (summary row), {}, {}, {}, {}\n",
        files.summary.display(),
        files.hgrm.display(),
        files.uncorrected_hgrm.display(),
        files.series.display(),
        files.hlog.display()
    );
    out
}

/// Formats a UNIX time as RFC 3339 UTC (`2024-05-01T12:00:00Z`) and as a compact file
/// name stamp (`20240501T120000Z`).
pub fn utc_stamps(unix_secs: u64) -> (String, String) {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    (
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamps(0).0, "1970-01-01T00:00:00Z");
        assert_eq!(utc_stamps(951_782_400).0, "2000-02-29T00:00:00Z");
        let (rfc, file) = utc_stamps(1_714_564_805);
        assert_eq!(rfc, "2024-05-01T12:00:05Z");
        assert_eq!(file, "20240501T120005Z");
    }

    fn cpu_line(duration_s: f64) -> String {
        let s = Summary {
            duration_s,
            loadgen_cpu_us_per_msg: Some(7.5),
            loadgen_user_us_per_msg: Some(2.25),
            ..crate::results::example_summary()
        };
        let files = crate::results::ResultFiles::new(std::path::Path::new("out"), "x", "s");
        render(&s, &files)
            .lines()
            .find(|l| l.contains("loadgen cpu"))
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn the_cpu_split_is_printed_only_for_runs_long_enough_to_measure_it() {
        assert_eq!(
            cpu_line(10.0),
            "  loadgen cpu 7.50 us per message (2.25 user, 5.25 kernel)"
        );
        assert_eq!(cpu_line(1.0), "  loadgen cpu 7.50 us per message");
        assert_eq!(cpu_line(1.9), "  loadgen cpu 7.50 us per message");
    }

    #[test]
    fn exit_codes_follow_the_verdict() {
        let v = |p99, loss, interrupted| {
            Verdict {
                p99_exceeded: p99,
                loss_exceeded: loss,
                interrupted,
            }
            .exit_code()
        };
        assert_eq!(v(false, false, false), exit::OK);
        assert_eq!(v(true, false, false), exit::P99_EXCEEDED);
        assert_eq!(v(false, true, false), exit::LOSS_EXCEEDED);
        assert_eq!(v(true, true, false), exit::BOTH_EXCEEDED);
        assert_eq!(v(true, true, true), exit::INTERRUPTED);
    }
}
