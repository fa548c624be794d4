//! Where a run's files go ([`ResultFiles`]) and how they are found again: the runs of a
//! summary CSV with their per-run files, and the run an `.hgrm` belongs to.

use std::path::{Path, PathBuf};

use super::{ResultsError, read_summaries};
use crate::report::Summary;

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
