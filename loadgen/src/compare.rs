//! `loadgen compare`: runs from one or more summary CSVs side by side, each number with
//! its ratio against the first run.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::report::Summary;
use crate::results::{self, ResultsError};

/// One run and where it came from.
#[derive(Debug, Clone)]
pub struct ComparedRun {
    /// `PATH:ROW`, the path as given (row numbers start at 1, header excluded).
    pub origin: String,
    /// The run.
    pub summary: Summary,
}

/// Reads every row of every file, in order.
pub fn load(files: &[PathBuf]) -> Result<Vec<ComparedRun>, ResultsError> {
    let mut runs = Vec::new();
    for file in files {
        let rows = results::read_summaries(file)?;
        // The path as given: two directories may hold files of the same name.
        let name = file.display().to_string();
        for (i, summary) in rows.into_iter().enumerate() {
            runs.push(ComparedRun {
                origin: format!("{name}:{}", i + 1),
                summary,
            });
        }
    }
    Ok(runs)
}

/// Leaves out runs that Ctrl+C cut short (their numbers cover only part of a run)
/// unless `include_interrupted`; returns the runs kept and how many were left out.
pub fn select(runs: Vec<ComparedRun>, include_interrupted: bool) -> (Vec<ComparedRun>, usize) {
    if include_interrupted {
        return (runs, 0);
    }
    let total = runs.len();
    let kept: Vec<ComparedRun> = runs
        .into_iter()
        .filter(|r| !r.summary.interrupted)
        .collect();
    let left_out = total - kept.len();
    (kept, left_out)
}

/// The line `compare` prints under its table when it left runs out, empty otherwise.
pub fn left_out_note(left_out: usize) -> String {
    match left_out {
        0 => String::new(),
        1 => "left out 1 interrupted run (--include-interrupted shows it)\n".into(),
        n => format!("left out {n} interrupted runs (--include-interrupted shows them)\n"),
    }
}

/// `value / base` as `1.25x`; `1.00x` for two zeros, `-` when only the base is zero.
pub(crate) fn ratio(value: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}x", value / base)
    } else if value == 0.0 {
        "1.00x".into()
    } else {
        "-".into()
    }
}

/// Renders the comparison table: one line per run; throughput, p50, p99, p99.9 and max
/// each followed by their ratio to the first run.
pub fn render(runs: &[ComparedRun]) -> String {
    let Some(base) = runs.first().map(|r| &r.summary) else {
        return "no runs\n".into();
    };
    let header = [
        "#",
        "run",
        "label",
        "started_at",
        "clients",
        "target/s",
        "sent/s",
        "",
        "recv/s",
        "",
        "p50_us",
        "",
        "p99_us",
        "",
        "p999_us",
        "",
        "max_us",
        "",
        "lost",
        "errors",
        "late",
        "cpu_us/msg",
        "note",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (i, run) in runs.iter().enumerate() {
        let s = &run.summary;
        let mut note = Vec::new();
        if s.interrupted {
            note.push("interrupted");
        }
        if s.late_sends > 0 {
            note.push("late sends");
        }
        if s.trustworthy == Some(false) {
            note.push("not trustworthy");
        }
        rows.push(vec![
            (i + 1).to_string(),
            run.origin.clone(),
            s.label.clone(),
            s.started_at.clone(),
            s.clients.to_string(),
            format!("{:.0}", s.target_rate),
            format!("{:.1}", s.achieved_send_rate),
            ratio(s.achieved_send_rate, base.achieved_send_rate),
            format!("{:.1}", s.receive_rate),
            ratio(s.receive_rate, base.receive_rate),
            s.p50_us.to_string(),
            ratio(s.p50_us as f64, base.p50_us as f64),
            s.p99_us.to_string(),
            ratio(s.p99_us as f64, base.p99_us as f64),
            s.p999_us.to_string(),
            ratio(s.p999_us as f64, base.p999_us as f64),
            s.max_us.to_string(),
            ratio(s.max_us as f64, base.max_us as f64),
            s.lost.to_string(),
            s.errors.to_string(),
            s.late_sends.to_string(),
            s.loadgen_cpu_us_per_msg
                .map_or("-".into(), |v| format!("{v:.2}")),
            note.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if c <= 3 || c == row.len() - 1 {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:>w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(row: usize, interrupted: bool) -> ComparedRun {
        let mut summary = crate::results::example_summary();
        summary.interrupted = interrupted;
        ComparedRun {
            origin: format!("a.csv:{row}"),
            summary,
        }
    }

    #[test]
    fn interrupted_runs_are_left_out_unless_asked_for() {
        let runs = vec![run(1, false), run(2, true), run(3, false), run(4, true)];
        let (kept, left_out) = select(runs.clone(), false);
        let origins: Vec<&str> = kept.iter().map(|r| r.origin.as_str()).collect();
        assert_eq!(origins, ["a.csv:1", "a.csv:3"]);
        assert_eq!(left_out, 2);
        assert_eq!(
            left_out_note(left_out),
            "left out 2 interrupted runs (--include-interrupted shows them)\n"
        );
        let (kept, left_out) = select(runs, true);
        assert_eq!(kept.len(), 4);
        assert_eq!(left_out_note(left_out), "");
    }
}
