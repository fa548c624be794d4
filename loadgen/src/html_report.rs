//! `loadgen report`: one self-contained HTML page (inline CSS and SVG, no scripts, no
//! external assets, so it opens offline and can be mailed or archived) with, per run, the
//! summary table, the corrected percentile spectrum and the per-second series (rates,
//! p50 and p99 over time), runs side by side; with several runs, a table of every run's
//! numbers with ratios against the first and their spectra in one chart.
//!
//! Runs are rows of summary CSVs; each finds its `.hgrm` and `.series.csv` beside its
//! CSV ([`results::runs_in`]). A missing file is said on the page, not an error. maud
//! escapes every text it inserts; the SVG charts come from plotters, which escapes its
//! own text.
//!
//! Layout: this file loads the runs and writes the page; `page` renders it, `tables`
//! holds its numbers and `charts` its per-run SVG charts.

mod charts;
mod page;
mod tables;

use std::path::{Path, PathBuf};

use crate::report::{SeriesRow, Summary};
use crate::results::{self, HgrmPoint, LocatedRun, ResultsError};
pub use page::render;
pub use tables::summary_rows;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A summary CSV could not be read.
    #[error(transparent)]
    Input(#[from] ResultsError),
    /// No run is left to report (every row interrupted, without `--include-interrupted`).
    #[error("no runs to report{}", if *.left_out > 0 { format!(" ({} interrupted runs left out; --include-interrupted shows them)", .left_out) } else { String::new() })]
    NoRuns {
        /// Interrupted runs left out.
        left_out: usize,
    },
    /// Drawing a chart failed.
    #[error("cannot draw a chart: {0}")]
    Draw(String),
    /// The page could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// Output file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// One run on the page, with what could be read of its files.
#[derive(Debug, Clone)]
pub struct ReportedRun {
    /// `PATH:ROW` of its summary row.
    pub origin: String,
    /// The summary row.
    pub summary: Summary,
    /// Corrected spectrum, or why it is missing.
    pub spectrum: Result<Vec<HgrmPoint>, String>,
    /// Per-second series, or why it is missing.
    pub series: Result<Vec<SeriesRow>, String>,
}

/// Reads the runs of `files` (every row, in order) and what lies beside them; leaves
/// interrupted runs out unless `include_interrupted`, returning how many were left out.
pub fn load(
    files: &[PathBuf],
    include_interrupted: bool,
) -> Result<(Vec<ReportedRun>, usize), ReportError> {
    let mut runs = Vec::new();
    let mut left_out = 0;
    for file in files {
        for (i, LocatedRun { summary, files }) in results::runs_in(file)?.into_iter().enumerate() {
            if summary.interrupted && !include_interrupted {
                left_out += 1;
                continue;
            }
            let why = |e: ResultsError| format!("{e:#}");
            runs.push(ReportedRun {
                origin: format!("{}:{}", file.display(), i + 1),
                summary,
                spectrum: results::read_hgrm(&files.hgrm).map_err(why),
                series: results::read_series(&files.series).map_err(why),
            });
        }
    }
    if runs.is_empty() {
        return Err(ReportError::NoRuns { left_out });
    }
    Ok((runs, left_out))
}

/// Writes the report of `runs` to `output`.
pub fn write(runs: &[ReportedRun], inputs: &[PathBuf], output: &Path) -> Result<(), ReportError> {
    let page = render(runs, inputs)?;
    std::fs::write(output, page).map_err(|source| ReportError::Write {
        path: output.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
