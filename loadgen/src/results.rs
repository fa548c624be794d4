//! Result files: the summary CSV (one row per run, appended), the percentile spectrum in
//! HdrHistogram's `.hgrm` text format, the per-second series CSV, and the interval log
//! (`.hlog`, V2 deflate-compressed histograms). Readers for each, so runs can be compared,
//! plotted and merged later. `results/README.md` describes the schemas.
//!
//! Layout:
//! - `locate`: where a run's files go, and finding them again.
//! - `csv_files`: the summary and series CSV files.
//! - `hgrm`: the `.hgrm` percentile spectrum.
//! - `hlog`: the `.hlog` interval log.

mod csv_files;
mod hgrm;
mod hlog;
mod locate;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(test)]
pub(crate) use csv_files::example_summary;
pub use csv_files::{append_summary, read_series, read_summaries, summary_header, write_series};
pub use hgrm::{HGRM_UNIT_RATIO, HgrmPoint, hgrm_text, read_hgrm, write_hgrm};
pub use hlog::{
    HlogInterval, HlogWriter, IntervalLog, UNCORRECTED_TAG, read_hlog, read_interval_log,
};
pub use locate::{LocatedRun, ResultFiles, run_of_hgrm, runs_in, stamp_of};

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

#[cfg(test)]
mod tests;
