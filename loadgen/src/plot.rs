//! `loadgen plot`: the percentile spectra of one or more runs in one SVG chart, drawn
//! the way HdrHistogram's plotter draws them: latency over a logarithmic `1/(1-p)` axis
//! labelled in percentiles, so the tail gets as much room as the median.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::results::{self, HgrmPoint, ResultsError};

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// An input file could not be read as `.hgrm`.
    #[error(transparent)]
    Input(#[from] ResultsError),
    /// Drawing or writing the SVG failed (is the output directory writable?).
    #[error("cannot draw {}: {reason}", path.display())]
    Draw {
        /// Output file.
        path: PathBuf,
        /// What plotters said.
        reason: String,
    },
}

/// Highest `1/(1-p)` drawn: the 99.9999th percentile.
const MAX_X: f64 = 1e6;

/// A percentile label for an `x = 1/(1-p)` axis position: 10 -> `90%`, 1000 -> `99.9%`.
pub fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = (1.0 - 1.0 / x) * 100.0;
    let mut text = format!("{p:.6}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    format!("{text}%")
}

/// Draws the spectra of `files` into `output`.
pub fn plot(files: &[PathBuf], output: &Path, title: &str) -> Result<(), PlotError> {
    let mut series: Vec<(String, Vec<HgrmPoint>)> = Vec::new();
    for file in files {
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        series.push((name, results::read_hgrm(file)?));
    }
    let draw_err = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: output.to_path_buf(),
        reason: e.to_string(),
    };
    let x_of = |p: &HgrmPoint| (1.0 / (1.0 - p.percentile)).min(MAX_X);
    let max_x = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().filter(|p| p.percentile < 1.0).map(x_of))
        .fold(1000.0f64, f64::max)
        .min(MAX_X);
    let max_y = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.value_ms))
        .fold(0.001f64, f64::max)
        * 1.1;

    let root = SVGBackend::new(output, (1100, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..max_x).log_scale(), 0.0..max_y)
        .map_err(|e| draw_err(&e))?;
    chart
        .configure_mesh()
        .x_desc("Percentile")
        .y_desc("Latency (milliseconds)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| draw_err(&e))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.percentile < 1.0)
            .map(|p| (x_of(p), p.value_ms))
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| draw_err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(&e))?;
    root.present().map_err(|e| draw_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_like_hdrhistogram_plots() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e6), "99.9999%");
    }
}
