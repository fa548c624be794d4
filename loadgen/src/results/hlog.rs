//! The interval log (`.hlog`, V2 deflate-compressed histograms, base64 in text lines):
//! built in memory during the run, written at its end, and read back.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogHistogram, IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use super::{ResultsError, write_err};

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
pub(super) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
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
