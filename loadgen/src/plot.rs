//! `loadgen plot`: the percentile spectra of one or more runs in one SVG chart, drawn
//! the way HdrHistogram's plotter draws them: latency over a logarithmic `1/(1-p)` axis
//! labelled in percentiles, so the tail gets as much room as the median. The latency
//! axis turns logarithmic by itself when the tail is far above the median, so a 250 ms
//! outlier does not flatten everything below p99. Lines are named after their runs'
//! labels (read from the summary CSV beside each `.hgrm`), the title says what is drawn,
//! and uncorrected spectra appear only when asked for. The same drawing serves the
//! charts of the HTML report.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::report::Summary;
use crate::results::{self, HgrmPoint, ResultsError};

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// An input file could not be read as `.hgrm`.
    #[error(transparent)]
    Input(#[from] ResultsError),
    /// Every input was an uncorrected spectrum, and `--uncorrected` was not given.
    #[error(
        "every input is an uncorrected spectrum (.uncorrected.hgrm); add --uncorrected to draw them"
    )]
    OnlyUncorrected,
    /// Drawing or writing the SVG failed (is the output directory writable?).
    #[error("cannot draw {}: {reason}", path.display())]
    Draw {
        /// Output file.
        path: PathBuf,
        /// What plotters said.
        reason: String,
    },
}

/// How the latency axis is scaled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum YScale {
    /// Logarithmic when the largest value is more than 20 times the lowest median,
    /// linear otherwise.
    #[default]
    Auto,
    /// Logarithmic.
    Log,
    /// Linear from zero.
    Linear,
}

/// Largest value over the lowest median above which [`YScale::Auto`] draws a
/// logarithmic latency axis (its help text says 20).
pub const AUTO_LOG_RATIO: f64 = 20.0;

/// Line colours, chosen to read on white (each at least 3:1 contrast against it, the
/// WCAG threshold for graphics) and to stay apart for colour-blind readers (the
/// Okabe-Ito set without its yellow and sky blue, plus black and brown).
pub const COLOURS: [RGBColor; 6] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0x7B, 0x32, 0x94),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0x8C, 0x56, 0x4B),
];

/// Lines of at most this many points may get a dot at each ([`LineStyle::marked`]).
pub const MARKED_POINTS: usize = 60;

/// Highest `1/(1-p)` drawn: the 99.9999th percentile.
const MAX_X: f64 = 1e6;

/// One line of a spectrum chart.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// Legend text.
    pub legend: String,
    /// The spectrum (from an `.hgrm`).
    pub points: Vec<HgrmPoint>,
    /// Index into [`COLOURS`] (cycled); a run's corrected and uncorrected lines share it.
    pub colour: usize,
    /// Uncorrected spectra are drawn dashed.
    pub uncorrected: bool,
}

/// What `loadgen plot` is asked to do.
#[derive(Debug, Clone)]
pub struct PlotRequest {
    /// `.hgrm` files.
    pub files: Vec<PathBuf>,
    /// SVG to write.
    pub output: PathBuf,
    /// Title instead of the one made from the runs.
    pub title: Option<String>,
    /// Draw each run's uncorrected spectrum too (dashed), and keep uncorrected inputs.
    pub uncorrected: bool,
    /// Latency axis.
    pub y_scale: YScale,
}

/// What `loadgen plot` did.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOutcome {
    /// The title drawn.
    pub title: String,
    /// Uncorrected inputs left out because `--uncorrected` was not given.
    pub left_out_uncorrected: usize,
}

/// A percentile label for an `x = 1/(1-p)` axis position: 10 -> `90%`, 1000 -> `99.9%`.
pub fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = (1.0 - 1.0 / x) * 100.0;
    format!("{}%", trimmed(p, 6))
}

/// A latency label in milliseconds: `0.05`, `1`, `250`.
pub fn ms_label(v: f64) -> String {
    trimmed(v, 3)
}

/// `v` with at most `decimals` decimals and no trailing zeros.
pub(crate) fn trimmed(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn is_uncorrected(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".uncorrected.hgrm")
}

/// Draws the spectra of the request's files into its output SVG.
pub fn plot(request: &PlotRequest) -> Result<PlotOutcome, PlotError> {
    let total = request.files.len();
    let files: Vec<&PathBuf> = request
        .files
        .iter()
        .filter(|f| request.uncorrected || !is_uncorrected(f))
        .collect();
    if files.is_empty() {
        return Err(PlotError::OnlyUncorrected);
    }
    let left_out_uncorrected = total - files.len();
    // Inputs grouped by run (a run's corrected and uncorrected spectra share a colour
    // and sit next to each other), runs in the order first given.
    let mut groups: Vec<(Option<results::LocatedRun>, Vec<PathBuf>)> = Vec::new();
    for file in files {
        let run = results::run_of_hgrm(file);
        let key = run.as_ref().map(|r| r.files.hgrm.clone());
        let found = groups
            .iter_mut()
            .find(|(r, _)| key.is_some() && r.as_ref().map(|r| r.files.hgrm.clone()) == key);
        match found {
            Some((_, group)) => group.push(file.clone()),
            None => groups.push((run, vec![file.clone()])),
        }
    }
    let mut spectra = Vec::new();
    let mut runs: Vec<Option<Summary>> = Vec::new();
    for (colour, (run, mut group)) in groups.into_iter().enumerate() {
        // A corrected input brings its uncorrected sibling along when asked.
        if request.uncorrected
            && let Some(run) = &run
            && group.contains(&run.files.hgrm)
            && !group.contains(&run.files.uncorrected_hgrm)
            && run.files.uncorrected_hgrm.exists()
        {
            group.push(run.files.uncorrected_hgrm.clone());
        }
        group.sort_by_key(|f| is_uncorrected(f));
        for file in &group {
            let legend = run.as_ref().map_or_else(
                || {
                    let name = file.file_name().map_or_else(
                        || file.display().to_string(),
                        |s| s.to_string_lossy().into_owned(),
                    );
                    let stem = name.strip_suffix(".hgrm").unwrap_or(&name);
                    stem.strip_suffix(".uncorrected").unwrap_or(stem).to_owned()
                },
                |r| r.summary.label.clone(),
            );
            spectra.push(Spectrum {
                legend,
                points: results::read_hgrm(file)?,
                colour,
                uncorrected: is_uncorrected(file),
            });
        }
        runs.push(run.map(|r| r.summary));
    }
    disambiguate(&mut spectra, &runs);
    for s in &mut spectra {
        if s.uncorrected {
            s.legend += " (uncorrected)";
        }
    }
    let title = request
        .title
        .clone()
        .unwrap_or_else(|| title(&runs, spectra.iter().any(|s| s.uncorrected)));
    let svg = spectrum_svg(&spectra, &title, request.y_scale, (1100, 650)).map_err(|reason| {
        PlotError::Draw {
            path: request.output.clone(),
            reason,
        }
    })?;
    std::fs::write(&request.output, svg).map_err(|e| PlotError::Draw {
        path: request.output.clone(),
        reason: e.to_string(),
    })?;
    Ok(PlotOutcome {
        title,
        left_out_uncorrected,
    })
}

/// Runs that share a label (repetitions) get their start time in the legend.
fn disambiguate(spectra: &mut [Spectrum], runs: &[Option<Summary>]) {
    // One name per run; a run's lines are adjacent and share its colour index.
    let mut names: Vec<(usize, String)> = spectra
        .iter()
        .map(|s| (s.colour, s.legend.clone()))
        .collect();
    names.dedup();
    for s in spectra.iter_mut() {
        let runs_named = names.iter().filter(|(_, n)| *n == s.legend).count();
        if runs_named > 1
            && let Some(Some(run)) = runs.get(s.colour)
        {
            s.legend = format!("{} {}", s.legend, run.started_at);
        }
    }
}

/// The title made from the runs drawn: what latency, of which load.
pub fn title(runs: &[Option<Summary>], uncorrected: bool) -> String {
    let what = if uncorrected {
        "Corrected (solid) and uncorrected (dashed) latency by percentile"
    } else {
        "Corrected latency by percentile"
    };
    let known: Vec<&Summary> = runs.iter().flatten().collect();
    if known.is_empty() {
        return what.into();
    }
    format!("{what}: {}", describe_load(&known))
}

/// The load of `runs` in words, each property once when the runs share it and as a
/// range when they differ: `echo binary, 1000 clients x 50/s each`.
pub fn describe_load(runs: &[&Summary]) -> String {
    fn distinct<T: PartialEq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
        let mut out: Vec<T> = Vec::new();
        for item in items {
            if !out.contains(&item) {
                out.push(item);
            }
        }
        out
    }
    let scenarios = distinct(
        runs.iter()
            .map(|r| match (r.scenario.as_str(), r.room_size) {
                ("room", Some(size)) => format!("room of {size}"),
                (scenario, _) => scenario.to_owned(),
            }),
    );
    let protocols = distinct(runs.iter().map(|r| r.protocol.clone()));
    let range = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo == hi {
            trimmed(lo, 3)
        } else {
            format!("{}-{}", trimmed(lo, 3), trimmed(hi, 3))
        }
    };
    let clients = range(runs.iter().map(|r| f64::from(r.clients)).collect());
    let rates = range(runs.iter().map(|r| r.rate_per_client).collect());
    format!(
        "{} {}, {clients} clients x {rates}/s each",
        scenarios.join("/"),
        protocols.join("/")
    )
}

/// Whether [`YScale::Auto`] picks a logarithmic axis for these spectra.
pub fn wants_log(spectra: &[Spectrum]) -> bool {
    let lowest_median = spectra
        .iter()
        .filter_map(|s| s.points.iter().find(|p| p.percentile >= 0.5))
        .map(|p| p.value_ms)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let largest = spectra
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.value_ms))
        .fold(0.0, f64::max);
    lowest_median.is_finite() && largest > AUTO_LOG_RATIO * lowest_median
}

/// The spectrum chart as SVG text.
pub fn spectrum_svg(
    spectra: &[Spectrum],
    title: &str,
    scale: YScale,
    size: (u32, u32),
) -> Result<String, String> {
    let log = match scale {
        YScale::Log => true,
        YScale::Linear => false,
        YScale::Auto => wants_log(spectra),
    };
    let x_of = |p: &HgrmPoint| (1.0 / (1.0 - p.percentile)).min(MAX_X);
    let drawn = |s: &Spectrum| -> Vec<HgrmPoint> {
        s.points
            .iter()
            .filter(|p| p.percentile < 1.0)
            .copied()
            .collect()
    };
    let max_x = spectra
        .iter()
        .flat_map(|s| drawn(s).into_iter().map(|p| x_of(&p)))
        .fold(1000.0f64, f64::max)
        .min(MAX_X);
    let values = || {
        spectra
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.value_ms))
    };
    let max_y = values().fold(0.001f64, f64::max);
    // A log axis cannot reach zero: start it under the smallest positive value.
    let min_positive = values().filter(|v| *v > 0.0).fold(max_y, f64::min);
    let lines: Vec<(Vec<(f64, f64)>, &Spectrum)> = spectra
        .iter()
        .map(|s| {
            let line = drawn(s)
                .iter()
                .map(|p| {
                    let y = if log {
                        p.value_ms.max(min_positive)
                    } else {
                        p.value_ms
                    };
                    (x_of(p), y)
                })
                .collect();
            (line, s)
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let chart = ChartFrame {
            title,
            x_desc: "Percentile",
            y_desc: if log {
                "Latency (milliseconds, log scale)"
            } else {
                "Latency (milliseconds)"
            },
            // Spectra rise to the right.
            legend_at: SeriesLabelPosition::UpperLeft,
            x_labels: 10,
        };
        let x = (1.0..max_x).log_scale();
        if log {
            let y = (min_positive / 1.5..max_y * 1.5).log_scale();
            draw_lines(&root, &chart, x, y, &lines, &|x| percentile_label(*x))?;
        } else {
            draw_lines(&root, &chart, x, 0.0..max_y * 1.1, &lines, &|x| {
                percentile_label(*x)
            })?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Title and axis names of a chart.
#[derive(Debug, Clone)]
pub struct ChartFrame<'a> {
    /// Caption.
    pub title: &'a str,
    /// X axis name.
    pub x_desc: &'a str,
    /// Y axis name.
    pub y_desc: &'a str,
    /// Where the legend goes: where the lines are not.
    pub legend_at: SeriesLabelPosition,
    /// How many x labels at most.
    pub x_labels: usize,
}

/// One line drawn by [`draw_lines`]: its points and how it looks.
pub trait LineStyle {
    /// Legend text.
    fn legend(&self) -> &str;
    /// Index into [`COLOURS`].
    fn colour(&self) -> usize;
    /// Drawn dashed.
    fn dashed(&self) -> bool;
    /// Each point gets a dot when the line has at most [`MARKED_POINTS`].
    fn marked(&self) -> bool {
        false
    }
}

impl LineStyle for Spectrum {
    fn legend(&self) -> &str {
        &self.legend
    }
    fn colour(&self) -> usize {
        self.colour
    }
    fn dashed(&self) -> bool {
        self.uncorrected
    }
}

/// Draws `lines` on a white chart with a legend, over any pair of axes (linear or
/// logarithmic), latency labels in plain milliseconds.
pub fn draw_lines<X, Y, L>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    frame: &ChartFrame<'_>,
    x: X,
    y: Y,
    lines: &[(Vec<(f64, f64)>, &L)],
    x_label: &dyn Fn(&f64) -> String,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
    L: LineStyle,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(frame.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(frame.x_desc)
        .y_desc(frame.y_desc)
        .x_label_formatter(x_label)
        .x_labels(frame.x_labels)
        .y_label_formatter(&|v| ms_label(*v))
        .y_labels((root.dim_in_pixel().1 / 60).max(4) as usize)
        .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
        .draw()
        .map_err(|e| err(&e))?;
    for (points, style) in lines {
        let colour = COLOURS[style.colour() % COLOURS.len()];
        let stroke = colour.stroke_width(2);
        if style.dashed() {
            chart
                .draw_series(DashedLineSeries::new(points.iter().copied(), 8, 5, stroke))
                .map_err(|e| err(&e))?
                .label(style.legend())
                .legend(move |(x, y)| {
                    plotters::element::DashedPathElement::new(
                        vec![(x, y), (x + 20, y)],
                        6,
                        3,
                        colour.stroke_width(2),
                    )
                });
        } else {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), stroke))
                .map_err(|e| err(&e))?
                .label(style.legend())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
    }
    // A short run's few seconds are marked, so a lone point is seen at all.
    for (points, style) in lines {
        if style.marked() && points.len() <= MARKED_POINTS {
            let colour = COLOURS[style.colour() % COLOURS.len()];
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(frame.legend_at.clone())
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests;
