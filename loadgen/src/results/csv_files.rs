//! The CSV files: the summary (one row per run, appended; a new header goes to a new
//! file) and the per-second series, written and read back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{ResultsError, csv_err, open, write_err};
use crate::report::{SeriesRow, Summary};

/// Column names of the summary CSV, in order.
pub fn summary_header() -> Vec<String> {
    // Serializing a row with headers yields the names serde derives from the fields.
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.serialize(example_summary());
    let bytes = w.into_inner().unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A summary with every field zero or empty (for the header and for tests).
pub(crate) fn example_summary() -> Summary {
    Summary {
        label: String::new(),
        scenario: String::new(),
        protocol: String::new(),
        addr: String::new(),
        clients: 0,
        connected: 0,
        threads: 0,
        rate_per_client: 0.0,
        payload_bytes: 0,
        room_size: None,
        duration_s: 0.0,
        warmup_s: 0.0,
        target_rate: 0.0,
        achieved_send_rate: 0.0,
        receive_rate: 0.0,
        sent: 0,
        expected: 0,
        received: 0,
        lost: 0,
        duplicated: 0,
        reordered: 0,
        corrupted: 0,
        errors: 0,
        connect_failures: 0,
        disconnects: 0,
        server_errors: 0,
        late_sends: 0,
        deferred_sends: 0,
        max_send_lag_us: 0,
        p50_us: 0,
        p90_us: 0,
        p99_us: 0,
        p999_us: 0,
        p9999_us: 0,
        max_us: 0,
        mean_us: 0.0,
        uncorrected_p50_us: 0,
        uncorrected_p99_us: 0,
        uncorrected_max_us: 0,
        loadgen_cpu_us_per_msg: None,
        loadgen_user_us_per_msg: None,
        started_at: String::new(),
        interrupted: false,
        order_breaks: None,
        churn_reconnects: None,
        replayed: None,
        resume_missed: None,
        replay_p50_us: None,
        replay_p99_us: None,
        replay_max_us: None,
        send_window_us: None,
        own_lag_p99_us: None,
        own_lag_p999_us: None,
        held_sends: None,
        held_max_us: None,
        lag_free_p50_us: None,
        lag_free_p99_us: None,
        lag_free_p999_us: None,
        lag_free_max_us: None,
        trustworthy: None,
        role: None,
        clock_offset_us: None,
        clock_offset_bound_us: None,
    }
}

/// Appends `row` to the summary CSV at `path`, writing the header first if the file is
/// new or empty. A file whose header differs (another loadgen version) is left alone and
/// the row goes to `PATH-STEM.NEW-STAMP.csv` instead; the path actually written is
/// returned.
pub fn append_summary(path: &Path, row: &Summary, stamp: &str) -> Result<PathBuf, ResultsError> {
    let header = summary_header();
    let existing = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ResultsError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut target = path.to_path_buf();
    let mut write_header = true;
    if let Some(text) = &existing {
        match text.lines().next() {
            None => {}
            Some(first) if first.split(',').eq(header.iter().map(String::as_str)) => {
                write_header = false;
            }
            Some(_) => {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("summary");
                target = path.with_file_name(format!("{stem}.{stamp}.csv"));
            }
        }
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&target)
        .map_err(write_err(&target))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(write_header)
        .from_writer(file);
    w.serialize(row).map_err(csv_err(&target))?;
    w.flush().map_err(write_err(&target))?;
    Ok(target)
}

/// Reads every row of a summary CSV, by column name (extra columns are ignored). A file
/// that lacks a summary column, or whose rows do not parse as summaries, is reported as
/// [`ResultsError::Format`] "not a loadgen summary CSV" rather than with the CSV layer's
/// account of which field failed.
pub fn read_summaries(path: &Path) -> Result<Vec<Summary>, ResultsError> {
    let not_summary = || ResultsError::Format {
        path: path.to_path_buf(),
        reason: "not a loadgen summary CSV".into(),
    };
    let mut r = csv::Reader::from_reader(open(path)?);
    let headers = r.headers().map_err(|_| not_summary())?.clone();
    if !summary_header()
        .iter()
        .filter(|column| !crate::report::OPTIONAL_COLUMNS.contains(&column.as_str()))
        .all(|column| headers.iter().any(|h| h == column))
    {
        return Err(not_summary());
    }
    r.deserialize()
        .map(|row| {
            row.map_err(|e| match e.kind() {
                csv::ErrorKind::Io(_) => csv_err(path)(e),
                _ => not_summary(),
            })
        })
        .collect()
}

/// Writes the per-second series.
pub fn write_series(path: &Path, rows: &[SeriesRow]) -> Result<(), ResultsError> {
    let file = fs::File::create(path).map_err(write_err(path))?;
    let mut w = csv::Writer::from_writer(file);
    if rows.is_empty() {
        // Still write the header so the file is a valid, empty series.
        w.write_record([
            "second",
            "phase",
            "connections",
            "sent",
            "received",
            "p50_us",
            "p90_us",
            "p99_us",
            "max_us",
            "errors",
        ])
        .map_err(csv_err(path))?;
    }
    for row in rows {
        w.serialize(row).map_err(csv_err(path))?;
    }
    w.flush().map_err(write_err(path))
}

/// Reads a per-second series.
pub fn read_series(path: &Path) -> Result<Vec<SeriesRow>, ResultsError> {
    let mut r = csv::Reader::from_reader(open(path)?);
    r.deserialize()
        .map(|row| row.map_err(csv_err(path)))
        .collect()
}
