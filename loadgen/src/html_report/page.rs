//! The report page itself: its style sheet, the per-run sections and the comparison
//! of several runs, put together with maud.

use std::path::PathBuf;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts::{CHART, latency_svg, rates_svg};
use super::tables::{compared, ms, run_names, summary_rows};
use super::{ReportError, ReportedRun};
use crate::compare::ratio;
use crate::plot::{self, Spectrum, YScale};
use crate::report::Summary;

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

pub(super) fn one_line(run: &ReportedRun) -> String {
    let s = &run.summary;
    format!(
        " ({}, {} clients x {}/s)",
        s.scenario, s.clients, s.rate_per_client
    )
}

pub(super) fn figure(
    kind: &str,
    points: usize,
    svg: Result<String, String>,
) -> Result<Markup, ReportError> {
    let svg = svg.map_err(ReportError::Draw)?;
    Ok(html! {
        figure.chart data-chart=(kind) data-points=(points) { (PreEscaped(svg)) }
    })
}

pub(super) fn run_section(
    index: usize,
    run: &ReportedRun,
    name: &str,
) -> Result<Markup, ReportError> {
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

pub(super) fn comparison(runs: &[ReportedRun], names: &[String]) -> Result<Markup, ReportError> {
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
