//! The report's per-run SVG charts, drawn with plotters: rates and latency over the
//! seconds of a run.

use plotters::prelude::*;

use crate::plot::{self, ChartFrame, LineStyle};
use crate::report::SeriesRow;

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
pub(super) const CHART: (u32, u32) = (620, 340);

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
pub(super) fn rates_svg(rows: &[SeriesRow]) -> Result<String, String> {
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
pub(super) fn latency_svg(rows: &[SeriesRow]) -> Result<String, String> {
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
