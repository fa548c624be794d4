//! The report's numbers: the summary table's rows, the numbers compared across runs,
//! and each run's name on the page.

use super::ReportedRun;
use crate::report::Summary;

pub(super) fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

pub(super) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The summary table's rows: CSV column, what it is, the value as shown.
pub fn summary_rows(s: &Summary) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("label", "label", s.label.clone()),
        ("started_at", "started", s.started_at.clone()),
        ("scenario", "scenario", s.scenario.clone()),
        ("protocol", "protocol", s.protocol.clone()),
        ("addr", "server", s.addr.clone()),
        ("clients", "clients", s.clients.to_string()),
        ("connected", "connected", s.connected.to_string()),
        ("threads", "load threads", s.threads.to_string()),
        (
            "rate_per_client",
            "rate per client",
            format!("{}/s", s.rate_per_client),
        ),
        (
            "payload_bytes",
            "payload",
            format!("{} bytes", s.payload_bytes),
        ),
        ("room_size", "room size", opt(s.room_size)),
        ("duration_s", "measured", format!("{:.1} s", s.duration_s)),
        ("warmup_s", "warmup", format!("{:.1} s", s.warmup_s)),
        (
            "target_rate",
            "target rate",
            format!("{:.1}/s", s.target_rate),
        ),
        (
            "achieved_send_rate",
            "send rate",
            format!("{:.1}/s", s.achieved_send_rate),
        ),
        (
            "receive_rate",
            "receive rate",
            format!("{:.1}/s", s.receive_rate),
        ),
        ("sent", "sent", s.sent.to_string()),
        ("expected", "expected", s.expected.to_string()),
        ("received", "received", s.received.to_string()),
        ("lost", "lost", s.lost.to_string()),
        ("duplicated", "duplicated", s.duplicated.to_string()),
        ("reordered", "reordered", s.reordered.to_string()),
        ("corrupted", "corrupted", s.corrupted.to_string()),
        ("errors", "errors", s.errors.to_string()),
        (
            "connect_failures",
            "connect failures",
            s.connect_failures.to_string(),
        ),
        ("disconnects", "disconnects", s.disconnects.to_string()),
        (
            "server_errors",
            "server errors",
            s.server_errors.to_string(),
        ),
        ("late_sends", "late sends", s.late_sends.to_string()),
        (
            "deferred_sends",
            "deferred sends",
            s.deferred_sends.to_string(),
        ),
        ("max_send_lag_us", "worst send lag", ms(s.max_send_lag_us)),
        (
            "own_lag_p99_us",
            "own send lag p99",
            opt(s.own_lag_p99_us.map(ms)),
        ),
        ("held_sends", "sends held by the server", opt(s.held_sends)),
        (
            "send_window_us",
            "send window",
            opt(s.send_window_us.map(ms)),
        ),
        ("p50_us", "p50", ms(s.p50_us)),
        ("p90_us", "p90", ms(s.p90_us)),
        ("p99_us", "p99", ms(s.p99_us)),
        ("p999_us", "p99.9", ms(s.p999_us)),
        ("p9999_us", "p99.99", ms(s.p9999_us)),
        ("max_us", "max", ms(s.max_us)),
        ("mean_us", "mean", format!("{:.3} ms", s.mean_us / 1000.0)),
        (
            "uncorrected_p50_us",
            "uncorrected p50",
            ms(s.uncorrected_p50_us),
        ),
        (
            "uncorrected_p99_us",
            "uncorrected p99",
            ms(s.uncorrected_p99_us),
        ),
        (
            "uncorrected_max_us",
            "uncorrected max",
            ms(s.uncorrected_max_us),
        ),
        (
            "lag_free_p999_us",
            "p99.9 without own lag",
            opt(s.lag_free_p999_us.map(ms)),
        ),
        (
            "trustworthy",
            "trustworthy",
            opt(s.trustworthy.map(|t| if t { "yes" } else { "NO" })),
        ),
        (
            "loadgen_cpu_us_per_msg",
            "loadgen CPU per message",
            s.loadgen_cpu_us_per_msg
                .map_or("-".into(), |v| format!("{v:.2} us")),
        ),
        (
            "interrupted",
            "interrupted",
            if s.interrupted { "yes" } else { "no" }.into(),
        ),
    ]
}

/// The numbers compared across runs: CSV column, what it is, the value.
pub(super) fn compared(s: &Summary) -> Vec<(&'static str, &'static str, f64)> {
    vec![
        ("achieved_send_rate", "send rate /s", s.achieved_send_rate),
        ("receive_rate", "receive rate /s", s.receive_rate),
        ("p50_us", "p50 ms", s.p50_us as f64 / 1000.0),
        ("p90_us", "p90 ms", s.p90_us as f64 / 1000.0),
        ("p99_us", "p99 ms", s.p99_us as f64 / 1000.0),
        ("p999_us", "p99.9 ms", s.p999_us as f64 / 1000.0),
        ("max_us", "max ms", s.max_us as f64 / 1000.0),
        ("lost", "lost", s.lost as f64),
        ("errors", "errors", s.errors as f64),
        (
            "loadgen_cpu_us_per_msg",
            "loadgen CPU us/msg",
            s.loadgen_cpu_us_per_msg.unwrap_or(f64::NAN),
        ),
    ]
}

/// A name for each run: its label, with its start time when labels repeat.
pub(super) fn run_names(runs: &[ReportedRun]) -> Vec<String> {
    runs.iter()
        .map(|r| {
            let same = runs
                .iter()
                .filter(|o| o.summary.label == r.summary.label)
                .count();
            if same > 1 {
                format!("{} {}", r.summary.label, r.summary.started_at)
            } else {
                r.summary.label.clone()
            }
        })
        .collect()
}
