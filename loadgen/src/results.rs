//! Result files: the summary CSV (one row per run, appended), the percentile spectrum in
//! HdrHistogram's `.hgrm` text format, the per-second series CSV, and the interval log
//! (`.hlog`, V2 deflate-compressed histograms). Readers for each, so runs can be compared,
//! plotted and merged later. `results/README.md` describes the schemas.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogHistogram, IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use crate::recorder::SIGFIG;
use crate::report::{SeriesRow, Summary};

/// `.hgrm` values are milliseconds (the unit HdrHistogram's plotter labels its axis
/// with); histograms hold microseconds.
pub const HGRM_UNIT_RATIO: f64 = 1000.0;

/// Why a result file could not be written or read. The message names the file; what the
/// OS or the CSV layer said is the error's `source`, so a chain printed with `{:#}` holds
/// it once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// Creating or writing a file failed: check that `--out` is a writable directory.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading a file failed: check the path.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A CSV file could not be written or parsed.
    #[error("{}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// What the CSV layer said.
        source: csv::Error,
    },
    /// A file does not have the expected format (not a summary CSV, not an `.hgrm`).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens a file to read, so a missing one is reported as unreadable rather than as a
/// CSV error.
fn open(path: &Path) -> Result<fs::File, ResultsError> {
    fs::File::open(path).map_err(|source| ResultsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> ResultsError + '_ {
    move |source| ResultsError::Csv {
        path: path.to_path_buf(),
        source,
    }
}

/// Where one run's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFiles {
    /// Summary CSV shared by every run with the same label: `OUT/LABEL.csv`.
    pub summary: PathBuf,
    /// Corrected percentile spectrum: `OUT/LABEL-STAMP.hgrm`.
    pub hgrm: PathBuf,
    /// Uncorrected percentile spectrum: `OUT/LABEL-STAMP.uncorrected.hgrm`.
    pub uncorrected_hgrm: PathBuf,
    /// Per-second series: `OUT/LABEL-STAMP.series.csv`.
    pub series: PathBuf,
    /// Interval log: `OUT/LABEL-STAMP.hlog`.
    pub hlog: PathBuf,
}

impl ResultFiles {
    /// Paths for a run labelled `label` that started at `stamp` (`20240501T120005Z`);
    /// a numeric suffix keeps two runs in the same second apart.
    pub fn new(out: &Path, label: &str, stamp: &str) -> Self {
        let mut run = format!("{label}-{stamp}");
        let mut n = 2;
        while out.join(format!("{run}.hgrm")).exists() {
            run = format!("{label}-{stamp}-{n}");
            n += 1;
        }
        Self {
            summary: out.join(format!("{label}.csv")),
            hgrm: out.join(format!("{run}.hgrm")),
            uncorrected_hgrm: out.join(format!("{run}.uncorrected.hgrm")),
            series: out.join(format!("{run}.series.csv")),
            hlog: out.join(format!("{run}.hlog")),
        }
    }
}

/// The file-name stamp of a run that started at `started_at` (RFC 3339 UTC, as in the
/// summary's `started_at`): `2024-05-01T12:00:05Z` -> `20240501T120005Z`.
pub fn stamp_of(started_at: &str) -> String {
    started_at
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

/// One run of a summary CSV and the per-run files that lie beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedRun {
    /// The run's row.
    pub summary: Summary,
    /// Its files (they may be missing: copied without them, or deleted).
    pub files: ResultFiles,
}

/// Every run of the summary CSV at `path`, each with the paths of its per-run files,
/// which loadgen wrote in the same directory. Two runs of a label that started in the
/// same second got the suffixes `-2`, `-3`, ... in row order, as [`ResultFiles::new`]
/// gave them.
pub fn runs_in(path: &Path) -> Result<Vec<LocatedRun>, ResultsError> {
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    let mut seen: std::collections::HashMap<(String, String), usize> = Default::default();
    let runs = read_summaries(path)?
        .into_iter()
        .map(|summary| {
            let stamp = stamp_of(&summary.started_at);
            let n = seen
                .entry((summary.label.clone(), stamp.clone()))
                .or_default();
            *n += 1;
            let run = match *n {
                1 => format!("{}-{stamp}", summary.label),
                n => format!("{}-{stamp}-{n}", summary.label),
            };
            let files = ResultFiles {
                summary: path.to_path_buf(),
                hgrm: dir.join(format!("{run}.hgrm")),
                uncorrected_hgrm: dir.join(format!("{run}.uncorrected.hgrm")),
                series: dir.join(format!("{run}.series.csv")),
                hlog: dir.join(format!("{run}.hlog")),
            };
            LocatedRun { summary, files }
        })
        .collect();
    Ok(runs)
}

/// The run a `.hgrm` (corrected or uncorrected) belongs to, found through the summary
/// CSV beside it (`LABEL.csv` for `LABEL-STAMP.hgrm`); `None` when there is none or no
/// row matches.
pub fn run_of_hgrm(hgrm: &Path) -> Option<LocatedRun> {
    let name = hgrm.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".uncorrected.hgrm")
        .or_else(|| name.strip_suffix(".hgrm"))?;
    let is_stamp = |s: &str| {
        s.len() == 16
            && s.as_bytes()[8] == b'T'
            && s.ends_with('Z')
            && s.chars().filter(char::is_ascii_digit).count() == 14
    };
    // LABEL-STAMP or LABEL-STAMP-N; labels may hold dashes themselves.
    let (rest, last) = stem.rsplit_once('-')?;
    let label = if is_stamp(last) {
        rest
    } else {
        let (label, stamp) = rest.rsplit_once('-')?;
        if !is_stamp(stamp) || last.parse::<u32>().is_err() {
            return None;
        }
        label
    };
    let csv = hgrm.with_file_name(format!("{label}.csv"));
    let stem_of = |p: &Path| p.file_name().map(|n| n.to_owned());
    let wanted = stem_of(&hgrm.with_file_name(format!("{stem}.hgrm")));
    runs_in(&csv)
        .ok()?
        .into_iter()
        .find(|run| stem_of(&run.files.hgrm) == wanted)
}

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

/// Renders `h` (microseconds) as HdrHistogram's percentile distribution text, values in
/// milliseconds, five ticks per half distance: byte for byte what the Java
/// `outputPercentileDistribution(out, 5, 1000.0)` prints.
pub fn hgrm_text(h: &Histogram<u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / HGRM_UNIT_RATIO;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(SIGFIG))).log2().ceil().exp2() as u64;
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / HGRM_UNIT_RATIO,
        h.stdev() / HGRM_UNIT_RATIO
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / HGRM_UNIT_RATIO,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    out
}

/// Writes [`hgrm_text`] of `h` to `path`.
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> Result<(), ResultsError> {
    fs::write(path, hgrm_text(h)).map_err(write_err(path))
}

/// One line of an `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmPoint {
    /// Latency (milliseconds).
    pub value_ms: f64,
    /// Fraction of values at or below it (0..=1).
    pub percentile: f64,
    /// Count of values at or below it.
    pub total_count: u64,
}

/// Reads the points of an `.hgrm` file (header and `#` lines skipped).
pub fn read_hgrm(path: &Path) -> Result<Vec<HgrmPoint>, ResultsError> {
    let not_hgrm = || ResultsError::Format {
        path: path.to_path_buf(),
        reason: "not a .hgrm file".into(),
    };
    let text = fs::read_to_string(path).map_err(|source| match source.kind() {
        // Binary data: an image, a compressed log.
        io::ErrorKind::InvalidData => not_hgrm(),
        _ => ResultsError::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mut points = Vec::new();
    let mut has_header = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Value") {
            has_header = true;
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parsed = (|| {
            Some(HgrmPoint {
                value_ms: fields.first()?.parse().ok()?,
                percentile: fields.get(1)?.parse().ok()?,
                total_count: fields.get(2)?.parse().ok()?,
            })
        })();
        match parsed {
            Some(p) if (0.0..=1.0).contains(&p.percentile) => points.push(p),
            _ => return Err(not_hgrm()),
        }
    }
    if points.is_empty() {
        return Err(if has_header {
            ResultsError::Format {
                path: path.to_path_buf(),
                reason: "no percentile lines (the run recorded no latency)".into(),
            }
        } else {
            not_hgrm()
        });
    }
    Ok(points)
}

/// Tag of the uncorrected histograms in the interval log; corrected ones are untagged so
/// tools that read only untagged intervals see the headline numbers.
pub const UNCORRECTED_TAG: &str = "uncorrected";

/// Builds an interval log in memory, one interval at a time.
pub struct HlogWriter {
    buf: Vec<u8>,
    serializer: V2DeflateSerializer,
}

impl std::fmt::Debug for HlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlogWriter")
            .field("bytes", &self.buf.len())
            .finish()
    }
}

impl HlogWriter {
    /// A log whose interval timestamps count seconds from `base` (the start of the
    /// measured part).
    pub fn new(base: SystemTime, comment: &str) -> Self {
        let mut log = Self {
            buf: Vec::new(),
            serializer: V2DeflateSerializer::new(),
        };
        let header = IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("histogram values and interval max values are microseconds")
            .with_start_time(base)
            .with_base_time(base)
            .begin_log_with(&mut log.buf, &mut log.serializer)
            .map(drop);
        // Writing to a Vec cannot fail.
        debug_assert!(header.is_ok());
        // The legend line the Java HistogramLogWriter writes (readers skip it).
        log.buf.extend_from_slice(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        );
        log
    }

    /// Appends one interval: the corrected histogram untagged, then the uncorrected one
    /// tagged [`UNCORRECTED_TAG`].
    pub fn interval(
        &mut self,
        start: Duration,
        length: Duration,
        corrected: &Histogram<u64>,
        uncorrected: &Histogram<u64>,
    ) -> io::Result<()> {
        // An empty builder writes no header lines.
        let mut w =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.buf, &mut self.serializer)?;
        let io_err = |e| io::Error::other(format!("{e}"));
        w.write_histogram(corrected, start, length, None)
            .map_err(io_err)?;
        w.write_histogram(uncorrected, start, length, Tag::new(UNCORRECTED_TAG))
            .map_err(io_err)?;
        Ok(())
    }

    /// Writes the log to `path`.
    pub fn write(&self, path: &Path) -> Result<(), ResultsError> {
        let mut file = fs::File::create(path).map_err(write_err(path))?;
        file.write_all(&self.buf).map_err(write_err(path))
    }
}

/// One interval read back from an `.hlog`.
#[derive(Debug, Clone)]
pub struct HlogInterval {
    /// Seconds since the log's base time.
    pub start: Duration,
    /// Interval length.
    pub length: Duration,
    /// Tag (`None` for corrected latencies).
    pub tag: Option<String>,
    /// The histogram (microseconds).
    pub histogram: Histogram<u64>,
}

/// Reads every interval of an `.hlog` file.
pub fn read_hlog(path: &Path) -> Result<Vec<HlogInterval>, ResultsError> {
    read_interval_log(path).map(|log| log.intervals)
}

/// An `.hlog` file read back: its base time and its intervals.
#[derive(Debug, Clone)]
pub struct IntervalLog {
    /// `#[BaseTime: ...]`, since the epoch (millisecond precision, as written); interval
    /// starts count from it. `None` if the log has none (then they are absolute).
    pub base_time: Option<Duration>,
    /// Every interval, in file order.
    pub intervals: Vec<HlogInterval>,
}

/// Reads an `.hlog` file: its base time and every interval. A file that holds no
/// interval-log header is refused as [`ResultsError::Format`].
pub fn read_interval_log(path: &Path) -> Result<IntervalLog, ResultsError> {
    let bytes = fs::read(path).map_err(|source| ResultsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |reason: String| ResultsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut deserializer = Deserializer::new();
    let mut log = IntervalLog {
        base_time: None,
        intervals: Vec::new(),
    };
    let mut header = false;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|_| format("not an HdrHistogram interval log".into()))?;
        match entry {
            LogEntry::BaseTime(t) => {
                header = true;
                log.base_time = Some(t);
            }
            LogEntry::StartTime(_) => header = true,
            LogEntry::Interval(ilh) => {
                log.intervals
                    .push(decode_interval(&ilh, &mut deserializer).map_err(format)?);
            }
        }
    }
    if !header && log.intervals.is_empty() {
        return Err(format("not an HdrHistogram interval log".into()));
    }
    Ok(log)
}

fn decode_interval(
    ilh: &IntervalLogHistogram<'_>,
    d: &mut Deserializer,
) -> Result<HlogInterval, String> {
    let raw = base64_decode(ilh.encoded_histogram())?;
    let histogram: Histogram<u64> = d
        .deserialize(&mut io::Cursor::new(raw))
        .map_err(|e| format!("bad histogram: {e:?}"))?;
    Ok(HlogInterval {
        start: ilh.start_timestamp(),
        length: ilh.duration(),
        tag: ilh.tag().map(|t| t.as_str().to_owned()),
        histogram,
    })
}

/// Decodes standard (padded) base64, the encoding of interval log histograms.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = sextet(c).ok_or_else(|| format!("bad base64 character {:?}", c as char))?;
            acc |= v << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return Err("truncated base64".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_before_the_optional_columns_still_read() {
        let dir = std::env::temp_dir().join(format!("lg-old-csv-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let full = dir.join("full.csv");
        let row = Summary {
            label: "echo-binary".into(),
            sent: 10,
            late_sends: 5,
            send_window_us: Some(1000),
            held_sends: Some(2),
            lag_free_p99_us: Some(7),
            trustworthy: Some(false),
            ..example_summary()
        };
        append_summary(&full, &row, "s").expect("written");
        assert_eq!(read_summaries(&full).expect("read"), [row]);
        // The same row as a loadgen without the optional columns wrote it.
        let mut r = csv::Reader::from_path(&full).expect("open");
        let headers = r.headers().expect("header").clone();
        let record = r.records().next().expect("a row").expect("parses");
        let keep: Vec<usize> = (0..headers.len())
            .filter(|&i| !crate::report::OPTIONAL_COLUMNS.contains(&&headers[i]))
            .collect();
        let old = dir.join("old.csv");
        let mut w = csv::Writer::from_path(&old).expect("create");
        w.write_record(keep.iter().map(|&i| &headers[i]))
            .expect("header");
        w.write_record(keep.iter().map(|&i| &record[i]))
            .expect("row");
        w.flush().expect("flushed");
        drop(w);
        let back = read_summaries(&old).expect("an older summary reads");
        let s = &back[0];
        assert_eq!((s.sent, s.late_sends), (10, 5));
        assert_eq!(
            (
                s.send_window_us,
                s.held_sends,
                s.lag_free_p99_us,
                s.trustworthy
            ),
            (None, None, None, None)
        );
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn base64_decodes_padded_input() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Ok(&b"hello"[..]));
        assert_eq!(base64_decode("aGVsbG8h").as_deref(), Ok(&b"hello!"[..]));
        assert_eq!(base64_decode("aGk=").as_deref(), Ok(&b"hi"[..]));
        assert!(base64_decode("a").is_err());
        assert!(base64_decode("a*==").is_err());
    }

    #[test]
    fn hgrm_text_has_the_java_layout() {
        let mut h = crate::recorder::new_histogram();
        for v in 1..=1000 {
            h.saturating_record(v);
        }
        let text = hgrm_text(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        assert_eq!(
            lines.next(),
            Some("       0.001 0.000000000000          1           1.00")
        );
        let last_point = text.lines().rfind(|l| !l.starts_with('#')).expect("lines");
        assert_eq!(last_point, "       1.000 1.000000000000       1000");
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
    }
}
