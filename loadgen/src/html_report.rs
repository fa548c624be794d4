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

use std::path::{Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use plotters::prelude::*;

use crate::compare::ratio;
use crate::plot::{self, ChartFrame, LineStyle, Spectrum, YScale};
use crate::report::{SeriesRow, Summary};
use crate::results::{self, HgrmPoint, LocatedRun, ResultsError};

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

/// One line of a series chart.
struct Line {
    legend: String,
    colour: usize,
    dashed: bool,
}

impl LineStyle for Line {
    fn legend(&self) -> &str {
        &self.legend
    }
    fn colour(&self) -> usize {
        self.colour
    }
    fn dashed(&self) -> bool {
        self.dashed
    }
    fn marked(&self) -> bool {
        true
    }
}

/// Per-run chart size: two runs fit side by side on a laptop screen.
const CHART: (u32, u32) = (620, 340);

/// A chart of values over the seconds of a run.
fn series_svg(
    title: &str,
    y_desc: &str,
    lines: &[(Vec<(f64, f64)>, Line)],
    log: bool,
) -> Result<String, String> {
    let max_x = lines
        .iter()
        .flat_map(|(pts, _)| pts.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let values = || lines.iter().flat_map(|(pts, _)| pts.iter().map(|p| p.1));
    let max_y = values().fold(0.001f64, f64::max);
    let min_positive = values().filter(|v| *v > 0.0).fold(max_y, f64::min);
    let drawn: Vec<(Vec<(f64, f64)>, &Line)> = lines
        .iter()
        .map(|(pts, line)| {
            let pts = if log {
                pts.iter().map(|&(x, y)| (x, y.max(min_positive))).collect()
            } else {
                pts.clone()
            };
            (pts, line)
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART).into_drawing_area();
        let frame = ChartFrame {
            title,
            x_desc: "Second of the measured part",
            y_desc,
            // Rates fall at the end; latency is where it is.
            legend_at: SeriesLabelPosition::LowerLeft,
            // Whole seconds only.
            x_labels: (max_x as usize + 1).min(12),
        };
        let x_label = |x: &f64| format!("{}s", plot::trimmed(*x, 1));
        if log {
            let y = (min_positive / 1.5..max_y * 1.5).log_scale();
            plot::draw_lines(&root, &frame, 0.0..max_x, y, &drawn, &x_label)?;
        } else {
            plot::draw_lines(
                &root,
                &frame,
                0.0..max_x,
                0.0..max_y * 1.1,
                &drawn,
                &x_label,
            )?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The rates chart of a run: measured messages sent and deliveries received per second.
fn rates_svg(rows: &[SeriesRow]) -> Result<String, String> {
    let line = |f: fn(&SeriesRow) -> u64| -> Vec<(f64, f64)> {
        rows.iter()
            .map(|r| (r.second as f64, f(r) as f64))
            .collect()
    };
    let lines = [
        (
            line(|r| r.sent),
            Line {
                legend: "sent/s".into(),
                colour: 0,
                dashed: false,
            },
        ),
        (
            line(|r| r.received),
            Line {
                legend: "received/s".into(),
                colour: 1,
                dashed: true,
            },
        ),
    ];
    series_svg("Messages per second", "per second", &lines, false)
}

/// The latency chart of a run: each second's corrected p50 and p99.
fn latency_svg(rows: &[SeriesRow]) -> Result<String, String> {
    // Seconds without deliveries (the drain's end) have no latency to draw.
    let line = |f: fn(&SeriesRow) -> u64| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.received > 0)
            .map(|r| (r.second as f64, f(r) as f64 / 1000.0))
            .collect()
    };
    let (p50, p99) = (line(|r| r.p50_us), line(|r| r.p99_us));
    let lowest = p50
        .iter()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let highest = p99.iter().map(|p| p.1).fold(0.0, f64::max);
    let log = lowest.is_finite() && highest > plot::AUTO_LOG_RATIO * lowest;
    let y_desc = if log {
        "milliseconds, log scale"
    } else {
        "milliseconds"
    };
    let lines = [
        (
            p50,
            Line {
                legend: "p50".into(),
                colour: 0,
                dashed: false,
            },
        ),
        (
            p99,
            Line {
                legend: "p99".into(),
                colour: 1,
                dashed: false,
            },
        ),
    ];
    series_svg("Corrected latency per second", y_desc, &lines, log)
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
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
fn compared(s: &Summary) -> Vec<(&'static str, &'static str, f64)> {
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
fn run_names(runs: &[ReportedRun]) -> Vec<String> {
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

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #111; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; }
h2 { font-size: 1.2rem; margin: 1.2rem 0 .4rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
.origin, .note { color: #555; font-size: .85rem; }
.runs { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1.5rem; }
.run { border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem; min-width: 0; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { padding: .15rem .6rem; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .6rem 0; }
figure svg { max-width: 100%; height: auto; display: block; }
.missing { color: #a00; }
.overflow { overflow-x: auto; }
";

/// The whole page.
pub fn render(runs: &[ReportedRun], inputs: &[PathBuf]) -> Result<String, ReportError> {
    let names = run_names(runs);
    let mut sections = Vec::new();
    for (i, (run, name)) in runs.iter().zip(&names).enumerate() {
        sections.push(run_section(i + 1, run, name)?);
    }
    let comparison = if runs.len() > 1 {
        Some(comparison(runs, &names)?)
    } else {
        None
    };
    let title = match runs {
        [one] => format!("loadgen report: {}{}", names[0], one_line(one)),
        _ => format!("loadgen report: {} runs", runs.len()),
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.origin {
                    "From "
                    @for (i, input) in inputs.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (input.display()) }
                    }
                    ". Latencies are corrected (timed from each message's intended send time) unless marked uncorrected."
                }
                @if let Some(comparison) = comparison { (comparison) }
                h2 { "Runs" }
                div.runs { @for section in sections { (section) } }
            }
        }
    };
    Ok(page.into_string())
}

fn one_line(run: &ReportedRun) -> String {
    let s = &run.summary;
    format!(
        " ({}, {} clients x {}/s)",
        s.scenario, s.clients, s.rate_per_client
    )
}

fn figure(kind: &str, points: usize, svg: Result<String, String>) -> Result<Markup, ReportError> {
    let svg = svg.map_err(ReportError::Draw)?;
    Ok(html! {
        figure.chart data-chart=(kind) data-points=(points) { (PreEscaped(svg)) }
    })
}

fn run_section(index: usize, run: &ReportedRun, name: &str) -> Result<Markup, ReportError> {
    let s = &run.summary;
    let spectrum = match &run.spectrum {
        Ok(points) => {
            let drawn = points.iter().filter(|p| p.percentile < 1.0).count();
            let line = Spectrum {
                legend: name.to_owned(),
                points: points.clone(),
                colour: 0,
                uncorrected: false,
            };
            let svg = plot::spectrum_svg(
                &[line],
                "Corrected latency by percentile",
                YScale::Auto,
                CHART,
            );
            figure("spectrum", drawn, svg)?
        }
        Err(why) => html! { p.missing { "No spectrum: " (why) } },
    };
    let series = match &run.series {
        Ok(rows) if !rows.is_empty() => {
            let with_latency = rows.iter().filter(|r| r.received > 0).count();
            html! {
                (figure("rates", rows.len(), rates_svg(rows))?)
                (figure("latency", with_latency, latency_svg(rows))?)
                details {
                    summary { "Per-second series (" (rows.len()) " seconds)" }
                    div.overflow {
                        table.series {
                            thead { tr {
                                th { "second" } th { "phase" } th { "connections" } th { "sent" }
                                th { "received" } th { "p50" } th { "p99" } th { "max" } th { "errors" }
                            } }
                            tbody {
                                @for r in rows {
                                    tr data-second=(r.second) {
                                        td.num { (r.second) } td { (r.phase) } td.num { (r.connections) }
                                        td.num { (r.sent) } td.num { (r.received) } td.num { (ms(r.p50_us)) }
                                        td.num { (ms(r.p99_us)) } td.num { (ms(r.max_us)) } td.num { (r.errors) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(_) => html! { p.missing { "The per-second series is empty." } },
        Err(why) => html! { p.missing { "No per-second series: " (why) } },
    };
    Ok(html! {
        section.run id={ "run-" (index) } data-label=(s.label) data-started=(s.started_at) {
            h3 { (index) ". " (name) }
            p.origin { code { (run.origin) } }
            @if s.interrupted { p.missing { "Interrupted: the numbers cover only part of the run." } }
            table.summary {
                tbody {
                    @for (field, what, value) in summary_rows(s) {
                        tr data-field=(field) { th { (what) } td.num { (value) } }
                    }
                }
            }
            (spectrum)
            (series)
        }
    })
}

fn comparison(runs: &[ReportedRun], names: &[String]) -> Result<Markup, ReportError> {
    let base = compared(&runs[0].summary);
    let rows: Vec<Vec<(f64, String)>> = runs
        .iter()
        .map(|r| {
            compared(&r.summary)
                .iter()
                .zip(&base)
                .map(|((_, _, v), (_, _, b))| (*v, ratio(*v, *b)))
                .collect()
        })
        .collect();
    let spectra: Vec<Spectrum> = runs
        .iter()
        .zip(names)
        .enumerate()
        .filter_map(|(i, (run, name))| {
            run.spectrum.as_ref().ok().map(|points| Spectrum {
                legend: name.clone(),
                points: points.clone(),
                colour: i,
                uncorrected: false,
            })
        })
        .collect();
    let summaries: Vec<Option<Summary>> = runs.iter().map(|r| Some(r.summary.clone())).collect();
    let chart = if spectra.is_empty() {
        html! {}
    } else {
        let svg = plot::spectrum_svg(
            &spectra,
            &plot::title(&summaries, false),
            YScale::Auto,
            (1100, 560),
        );
        figure("spectra", spectra.len(), svg)?
    };
    let number = |v: f64| {
        if v.is_nan() {
            "-".to_string()
        } else if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    Ok(html! {
        h2 { "Side by side" }
        p.note { "Each number with its ratio to run 1." }
        div.overflow {
            table.comparison {
                thead { tr {
                    th { "" }
                    @for (i, name) in names.iter().enumerate() { th data-run=(i + 1) { (i + 1) ". " (name) } }
                } }
                tbody {
                    @for (m, (field, what, _)) in base.iter().enumerate() {
                        tr data-field=(field) {
                            th { (what) }
                            @for (i, row) in rows.iter().enumerate() {
                                td.num data-run=(i + 1) data-ratio=(row[m].1) {
                                    (number(row[m].0)) " (" (row[m].1) ")"
                                }
                            }
                        }
                    }
                }
            }
        }
        (chart)
    })
}

#[cfg(test)]
mod tests;
