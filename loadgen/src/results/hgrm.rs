//! The percentile spectrum in HdrHistogram's `.hgrm` text format, written byte for byte
//! as the Java tool prints it, and read back.

use std::fs;
use std::io;
use std::path::Path;

use hdrhistogram::Histogram;

use super::{ResultsError, write_err};
use crate::recorder::SIGFIG;

/// `.hgrm` values are milliseconds (the unit HdrHistogram's plotter labels its axis
/// with); histograms hold microseconds.
pub const HGRM_UNIT_RATIO: f64 = 1000.0;

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
