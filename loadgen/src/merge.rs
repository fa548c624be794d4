//! `loadgen merge`: several processes' runs combined into one result, as if one loadgen
//! had produced the whole load.
//!
//! Latency is merged exactly, never averaged: each run's interval log (`.hlog`) holds one
//! histogram per second, and the histograms of the runs are added per wall-clock second
//! (the second an interval starts in, from the log's `BaseTime`). The merged summary's
//! percentiles come from the sum of those histograms; its counts are the inputs' counts
//! added up; its rates are the summed counts over the wall-clock span the runs measured
//! together. The merged row and files are written like a run's, so `compare`, `report`
//! and `plot` read them like any other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::recorder::{merge as add, new_histogram};
use crate::report::{Percentiles, SeriesRow, Summary};
use crate::results::{self, HlogWriter, LocatedRun, ResultFiles, ResultsError, UNCORRECTED_TAG};

/// Why runs could not be merged. Every variant is an input problem (exit code 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A summary CSV, `.hlog` or `.series.csv` could not be read or is not what it
    /// should be; the message names the file.
    #[error(transparent)]
    Input(#[from] ResultsError),
    /// `FILE.csv:N` names a row the file does not have.
    #[error("{arg}: the file has {rows} runs")]
    NoSuchRow {
        /// The argument as given.
        arg: String,
        /// Rows the file has.
        rows: usize,
    },
    /// A summary CSV holds no run.
    #[error("{0}: no runs in it")]
    Empty(String),
    /// Two runs measured different things (scenario, protocol, payload, room size):
    /// their latencies do not belong in one distribution.
    #[error(
        "{first} and {other} differ in {what} ({a} vs {b}); only runs of one load can be merged"
    )]
    Mismatch {
        /// The first run (`PATH:ROW`).
        first: String,
        /// The run that differs.
        other: String,
        /// The column.
        what: &'static str,
        /// The first run's value.
        a: String,
        /// The other's.
        b: String,
    },
    /// A run's interval log has no `BaseTime`, so its seconds cannot be placed.
    #[error("{}: no BaseTime, so its intervals cannot be placed on the wall clock", .0.display())]
    NoBaseTime(PathBuf),
    /// `--label` would make an odd file name.
    #[error("--label may only hold letters, digits and -_. , not {0:?}")]
    BadLabel(String),
    /// The output directory could not be created.
    #[error("cannot create {}", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// What `merge` combined and wrote.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged summary row.
    pub summary: Summary,
    /// Where it and its files went.
    pub files: ResultFiles,
    /// The inputs, as `PATH:ROW`.
    pub inputs: Vec<String>,
    /// Things the user should know (windows that do not coincide).
    pub warnings: Vec<String>,
}

/// One input run with what was read of its files.
struct Input {
    origin: String,
    run: LocatedRun,
    /// Wall-clock second (since the epoch) each `.hlog` interval starts in, with its
    /// corrected and uncorrected histograms.
    seconds: BTreeMap<u64, (Histogram<u64>, Histogram<u64>)>,
    series: Vec<SeriesRow>,
    /// Wall-clock start of the measured part, milliseconds since the epoch.
    base_ms: u64,
}

/// Resolves `RUN` arguments: `FILE.csv` (every run in it) or `FILE.csv:N` (its N-th run,
/// counted from 1 as `compare` shows them).
pub fn locate(args: &[String]) -> Result<Vec<(String, LocatedRun)>, MergeError> {
    let mut out = Vec::new();
    for arg in args {
        let whole = Path::new(arg);
        let (path, row) = match arg.rsplit_once(':') {
            Some((path, n)) if !whole.exists() && n.parse::<usize>().is_ok() => {
                (PathBuf::from(path), n.parse::<usize>().ok())
            }
            _ => (whole.to_path_buf(), None),
        };
        let runs = results::runs_in(&path)?;
        if runs.is_empty() {
            return Err(MergeError::Empty(path.display().to_string()));
        }
        match row {
            Some(n) => {
                let rows = runs.len();
                let run = runs.into_iter().nth(n.wrapping_sub(1)).ok_or_else(|| {
                    MergeError::NoSuchRow {
                        arg: arg.clone(),
                        rows,
                    }
                })?;
                out.push((format!("{}:{n}", path.display()), run));
            }
            None => {
                for (i, run) in runs.into_iter().enumerate() {
                    out.push((format!("{}:{}", path.display(), i + 1), run));
                }
            }
        }
    }
    Ok(out)
}

/// Merges the runs named by `args` and writes the result under `out` as `label`
/// (default `merged-LABEL`, the first run's label).
pub fn merge(args: &[String], out: &Path, label: Option<&str>) -> Result<Merged, MergeError> {
    let located = locate(args)?;
    let label = match label {
        Some(label) => label.to_owned(),
        None => format!("merged-{}", located[0].1.summary.label),
    };
    if !crate::config::label_ok(&label) {
        return Err(MergeError::BadLabel(label));
    }
    check_same_load(&located)?;
    let inputs = located
        .into_iter()
        .map(|(origin, run)| read_input(origin, run))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(out).map_err(|source| MergeError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    write(inputs, out, &label)
}

/// Refuses runs that measured different loads.
fn check_same_load(runs: &[(String, LocatedRun)]) -> Result<(), MergeError> {
    let (first_origin, first) = &runs[0];
    let key = |s: &Summary| -> [(&'static str, String); 4] {
        [
            ("scenario", s.scenario.clone()),
            ("protocol", s.protocol.clone()),
            ("payload_bytes", s.payload_bytes.to_string()),
            (
                "room_size",
                // A fan-out run's room size counts only its own members of each room.
                match (&s.role, s.room_size) {
                    (Some(_), _) => "fan-out".into(),
                    (None, size) => size.map_or_else(String::new, |n| n.to_string()),
                },
            ),
        ]
    };
    let want = key(&first.summary);
    for (origin, run) in &runs[1..] {
        for ((what, a), (_, b)) in want.iter().zip(key(&run.summary)) {
            if *a != b {
                return Err(MergeError::Mismatch {
                    first: first_origin.clone(),
                    other: origin.clone(),
                    what,
                    a: a.clone(),
                    b,
                });
            }
        }
    }
    Ok(())
}

fn read_input(origin: String, run: LocatedRun) -> Result<Input, MergeError> {
    let log = results::read_interval_log(&run.files.hlog)?;
    let base = log
        .base_time
        .ok_or_else(|| MergeError::NoBaseTime(run.files.hlog.clone()))?;
    let base_ms = base.as_millis() as u64;
    let series = results::read_series(&run.files.series)?;
    let mut seconds: BTreeMap<u64, (Histogram<u64>, Histogram<u64>)> = BTreeMap::new();
    for interval in log.intervals {
        let second = (base_ms + interval.start.as_millis() as u64) / 1000;
        let (corrected, uncorrected) = seconds
            .entry(second)
            .or_insert_with(|| (new_histogram(), new_histogram()));
        match interval.tag.as_deref() {
            None => add(corrected, &interval.histogram),
            Some(UNCORRECTED_TAG) => add(uncorrected, &interval.histogram),
            Some(_) => {}
        }
    }
    Ok(Input {
        origin,
        run,
        seconds,
        series,
        base_ms,
    })
}

/// Per wall-clock second, everything the inputs recorded in it.
#[derive(Default)]
struct Second {
    corrected: Option<Histogram<u64>>,
    uncorrected: Option<Histogram<u64>>,
    measuring: bool,
    connections: u32,
    sent: u64,
    received: u64,
    errors: u64,
}

fn write(inputs: Vec<Input>, out: &Path, label: &str) -> Result<Merged, MergeError> {
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    let mut corrected = new_histogram();
    let mut uncorrected = new_histogram();
    for input in &inputs {
        for (&at, (c, u)) in &input.seconds {
            let second = seconds.entry(at).or_default();
            add(second.corrected.get_or_insert_with(new_histogram), c);
            add(second.uncorrected.get_or_insert_with(new_histogram), u);
            add(&mut corrected, c);
            add(&mut uncorrected, u);
        }
        let first = input.base_ms / 1000;
        for row in &input.series {
            let second = seconds.entry(first + row.second).or_default();
            second.measuring |= row.phase == "measure";
            second.connections += row.connections;
            second.sent += row.sent;
            second.received += row.received;
            second.errors += row.errors;
        }
    }
    // The measured windows on the wall clock (milliseconds since the epoch).
    let windows: Vec<(u64, u64)> = inputs
        .iter()
        .map(|i| {
            let len = (i.run.summary.duration_s * 1000.0).round() as u64;
            (i.base_ms, i.base_ms + len)
        })
        .collect();
    let span_start = windows.iter().map(|w| w.0).min().unwrap_or(0);
    let span_end = windows.iter().map(|w| w.1).max().unwrap_or(0);
    let mut warnings = Vec::new();
    if windows.iter().any(|w| *w != windows[0]) {
        let overlap_start = windows.iter().map(|w| w.0).max().unwrap_or(0);
        let overlap_end = windows.iter().map(|w| w.1).min().unwrap_or(0);
        warnings.push(format!(
            "the runs' measured parts do not coincide (they overlap for {:.3}s of {:.3}s); \
             rates are over the whole {:.3}s (start them with one --start-at and one \
             --duration to line them up)",
            overlap_end.saturating_sub(overlap_start) as f64 / 1000.0,
            (span_end - span_start) as f64 / 1000.0,
            (span_end - span_start) as f64 / 1000.0,
        ));
    }
    let duration_s = (span_end - span_start) as f64 / 1000.0;
    let mut summary = summarize(&inputs, label, duration_s, &corrected, &uncorrected);
    fanout_loss(&inputs, &mut summary, &mut warnings)?;

    let started_unix = inputs
        .iter()
        .map(|i| i.run.summary.started_at.as_str())
        .min()
        .unwrap_or_default()
        .to_owned();
    let stamp = results::stamp_of(&started_unix);
    let mut files = ResultFiles::new(out, label, &stamp);
    files.summary = results::append_summary(&files.summary, &summary, &stamp)?;
    results::write_hgrm(&files.hgrm, &corrected)?;
    results::write_hgrm(&files.uncorrected_hgrm, &uncorrected)?;

    // Series and log from the first second any run measured, in wall-clock order.
    let first_second = span_start / 1000;
    let base = UNIX_EPOCH + Duration::from_secs(first_second);
    let comment = format!(
        "loadgen merge {label} of {}",
        inputs
            .iter()
            .map(|i| i.origin.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut hlog = HlogWriter::new(base, &comment);
    let mut series = Vec::new();
    let empty = new_histogram();
    for (&at, second) in seconds.range(first_second..) {
        let offset = at - first_second;
        let c = second.corrected.as_ref().unwrap_or(&empty);
        let u = second.uncorrected.as_ref().unwrap_or(&empty);
        hlog.interval(Duration::from_secs(offset), Duration::from_secs(1), c, u)
            .map_err(|source| ResultsError::Write {
                path: files.hlog.clone(),
                source,
            })?;
        let p = Percentiles::of(c);
        series.push(SeriesRow {
            second: offset,
            phase: if second.measuring { "measure" } else { "drain" }.into(),
            connections: second.connections,
            sent: second.sent,
            received: second.received,
            p50_us: p.p50,
            p90_us: p.p90,
            p99_us: p.p99,
            max_us: p.max,
            errors: second.errors,
        });
    }
    results::write_series(&files.series, &series)?;
    hlog.write(&files.hlog)?;
    Ok(Merged {
        summary,
        files,
        inputs: inputs.into_iter().map(|i| i.origin).collect(),
        warnings,
    })
}

/// For runs that were parts of a fan-out (`--role send` / `receive`), replaces their
/// zero `expected` and `lost` with what their `.rooms.csv` files add up to: every
/// measured message sent into a room is due at every receiving member of it, in any
/// process.
fn fanout_loss(
    inputs: &[Input],
    summary: &mut Summary,
    warnings: &mut Vec<String>,
) -> Result<(), MergeError> {
    let split: Vec<&Input> = inputs
        .iter()
        .filter(|i| {
            let role = i.run.summary.role.as_deref();
            role.is_some() && role != Some(crate::fanout::MERGED_ROLE)
        })
        .collect();
    if split.is_empty() {
        return Ok(());
    }
    let mut rooms = Vec::new();
    for input in &split {
        rooms.extend(crate::fanout::read_rooms(&crate::fanout::rooms_path(
            &input.run.files.series,
        ))?);
    }
    let (expected, received) = crate::fanout::fanout_accounting(&rooms);
    // Ordinary runs, and earlier merges, already know their loss.
    let whole = inputs.iter().filter(|i| {
        let role = i.run.summary.role.as_deref();
        role.is_none() || role == Some(crate::fanout::MERGED_ROLE)
    });
    let (whole_expected, whole_lost) = whole.fold((0, 0), |(e, l), i| {
        (e + i.run.summary.expected, l + i.run.summary.lost)
    });
    summary.expected = whole_expected + expected;
    summary.lost = whole_lost + expected.saturating_sub(received);
    if summary.clock_offset_bound_us.is_none() {
        warnings.push(
            "the clock offset of some run was not measured: latencies across processes \
             carry the machines' unknown clock offset"
                .into(),
        );
    }
    Ok(())
}

/// The merged row: counts added, latency from the merged histograms, rates over
/// `duration_s`.
fn summarize(
    inputs: &[Input],
    label: &str,
    duration_s: f64,
    corrected: &Histogram<u64>,
    uncorrected: &Histogram<u64>,
) -> Summary {
    let rows: Vec<&Summary> = inputs.iter().map(|i| &i.run.summary).collect();
    let first = rows[0];
    let sum = |f: fn(&Summary) -> u64| rows.iter().map(|s| f(s)).sum::<u64>();
    let sum32 = |f: fn(&Summary) -> u32| rows.iter().map(|s| f(s)).sum::<u32>();
    let sum_opt =
        |f: fn(&Summary) -> Option<u64>| rows.iter().filter_map(|s| f(s)).reduce(|a, b| a + b);
    let max_opt = |f: fn(&Summary) -> Option<u64>| rows.iter().filter_map(|s| f(s)).max();
    // CPU per message, weighted by messages sent; only when every run measured it.
    let per_msg = |f: fn(&Summary) -> Option<f64>| {
        let sent = sum(|s| s.sent);
        let total: Option<f64> = rows.iter().map(|s| f(s).map(|v| v * s.sent as f64)).sum();
        total
            .filter(|_| sent > 0)
            .map(|t| (t / sent as f64 * 100.0).round() / 100.0)
    };
    let mut addrs: Vec<&str> = Vec::new();
    for s in &rows {
        for addr in s.addr.split(',') {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    let clients = sum32(|s| s.clients);
    let target_rate: f64 = rows.iter().map(|s| s.target_rate).sum();
    let (sent, received, expected) = (sum(|s| s.sent), sum(|s| s.received), sum(|s| s.expected));
    let per_s = |n: u64| {
        if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        }
    };
    let c = Percentiles::of(corrected);
    let u = Percentiles::of(uncorrected);
    Summary {
        label: label.to_owned(),
        scenario: first.scenario.clone(),
        protocol: first.protocol.clone(),
        addr: addrs.join(","),
        clients,
        connected: sum32(|s| s.connected),
        threads: sum32(|s| s.threads),
        rate_per_client: if clients > 0 {
            target_rate / f64::from(clients)
        } else {
            0.0
        },
        payload_bytes: first.payload_bytes,
        // Fan-out runs each hold part of every room.
        room_size: if first.role.is_some() {
            rows.iter().filter_map(|s| s.room_size).reduce(|a, b| a + b)
        } else {
            first.room_size
        },
        duration_s,
        warmup_s: rows.iter().map(|s| s.warmup_s).fold(0.0, f64::max),
        target_rate,
        achieved_send_rate: per_s(sent),
        receive_rate: per_s(received),
        sent,
        expected,
        received,
        lost: sum(|s| s.lost),
        duplicated: sum(|s| s.duplicated),
        reordered: sum(|s| s.reordered),
        corrupted: sum(|s| s.corrupted),
        errors: sum(|s| s.errors),
        connect_failures: sum(|s| s.connect_failures),
        disconnects: sum(|s| s.disconnects),
        server_errors: sum(|s| s.server_errors),
        late_sends: sum(|s| s.late_sends),
        deferred_sends: sum(|s| s.deferred_sends),
        max_send_lag_us: rows.iter().map(|s| s.max_send_lag_us).max().unwrap_or(0),
        p50_us: c.p50,
        p90_us: c.p90,
        p99_us: c.p99,
        p999_us: c.p999,
        p9999_us: c.p9999,
        max_us: c.max,
        mean_us: (c.mean * 10.0).round() / 10.0,
        uncorrected_p50_us: u.p50,
        uncorrected_p99_us: u.p99,
        uncorrected_max_us: u.max,
        loadgen_cpu_us_per_msg: per_msg(|s| s.loadgen_cpu_us_per_msg),
        loadgen_user_us_per_msg: per_msg(|s| s.loadgen_user_us_per_msg),
        started_at: rows
            .iter()
            .map(|s| s.started_at.as_str())
            .min()
            .unwrap_or_default()
            .to_owned(),
        interrupted: rows.iter().any(|s| s.interrupted),
        order_breaks: sum_opt(|s| s.order_breaks),
        churn_reconnects: sum_opt(|s| s.churn_reconnects),
        replayed: sum_opt(|s| s.replayed),
        resume_missed: sum_opt(|s| s.resume_missed),
        // No per-run histogram of replays is kept, and percentiles are never averaged:
        // only the largest is exact.
        replay_p50_us: None,
        replay_p99_us: None,
        replay_max_us: max_opt(|s| s.replay_max_us),
        send_window_us: max_opt(|s| s.send_window_us),
        // Percentiles are never averaged: without the runs' own-lag and lag-free
        // histograms only the largest value is exact.
        own_lag_p99_us: None,
        own_lag_p999_us: None,
        held_sends: sum_opt(|s| s.held_sends),
        held_max_us: max_opt(|s| s.held_max_us),
        lag_free_p50_us: None,
        lag_free_p99_us: None,
        lag_free_p999_us: None,
        lag_free_max_us: max_opt(|s| s.lag_free_max_us),
        trustworthy: Some(crate::lag::trustworthy(sum(|s| s.late_sends), sent)),
        role: rows
            .iter()
            .any(|s| s.role.is_some())
            .then(|| crate::fanout::MERGED_ROLE.to_owned()),
        clock_offset_us: None,
        clock_offset_bound_us: crate::clock_offset::pair_bound_us(
            &rows
                .iter()
                .map(|s| {
                    Some(crate::clock_offset::ClockOffset {
                        offset_us: s.clock_offset_us?,
                        bound_us: s.clock_offset_bound_us?,
                    })
                })
                .collect::<Vec<_>>(),
        ),
    }
}
