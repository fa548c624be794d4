//! Result files are written, appended and read back; `compare` and `plot` work on the
//! real files of real runs.

use std::fs;

use loadgen::{compare, plot, results};

use crate::common::{Fault, TestServer, out_dir, quick_config, run};

#[test]
fn runs_append_to_one_summary_and_compare_and_plot_read_them() {
    let server = TestServer::start(Fault::None);
    let out = out_dir("files");
    let mut config = quick_config(server.addr, 2, 20.0, 1, &out);
    config.label = Some("pair".into());
    let first = run(&config);
    config.rate = 40.0;
    let second = run(&config);

    // Both runs share the label's summary CSV; each has its own per-run files.
    assert_eq!(first.files.summary, out.join("pair.csv"));
    assert_eq!(second.files.summary, first.files.summary);
    assert_ne!(first.files.hgrm, second.files.hgrm);
    let rows = results::read_summaries(&first.files.summary).expect("read summary");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], first.summary);
    assert_eq!(rows[1], second.summary);
    let text = fs::read_to_string(&first.files.summary).expect("read csv");
    let header = text.lines().next().expect("header");
    for column in [
        "label",
        "scenario",
        "protocol",
        "clients",
        "rate_per_client",
        "duration_s",
        "target_rate",
        "achieved_send_rate",
        "receive_rate",
        "sent",
        "received",
        "lost",
        "duplicated",
        "reordered",
        "corrupted",
        "errors",
        "late_sends",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "p9999_us",
        "max_us",
        "mean_us",
        "uncorrected_p99_us",
        "addr",
        "started_at",
        "interrupted",
        "loadgen_cpu_us_per_msg",
    ] {
        assert!(
            header.split(',').any(|c| c == column),
            "missing column {column}"
        );
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with("label,")).count(),
        1,
        "one header"
    );

    // The series has one row per measured second.
    let series = results::read_series(&second.files.series).expect("read series");
    assert!(!series.is_empty());
    assert_eq!(series[0].second, 0);
    let sent: u64 = series.iter().map(|r| r.sent).sum();
    let received: u64 = series.iter().map(|r| r.received).sum();
    assert_eq!(sent, second.summary.sent);
    assert_eq!(received, second.summary.received);

    // .hgrm reads back: percentiles rise to 1.0 and counts to the total.
    let points = results::read_hgrm(&second.files.hgrm).expect("read hgrm");
    let last = points.last().expect("points");
    assert_eq!(last.percentile, 1.0);
    assert_eq!(last.total_count, second.summary.received);
    assert!(points.windows(2).all(|w| w[0].value_ms <= w[1].value_ms));

    // compare: both rows, the second with its throughput ratio against the first.
    let runs = compare::load(std::slice::from_ref(&first.files.summary)).expect("load");
    assert_eq!(runs.len(), 2);
    let table = compare::render(&runs);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let origin = first.files.summary.display().to_string();
    assert!(lines[1].contains(&format!("{origin}:1")));
    assert!(lines[2].contains(&format!("{origin}:2")));
    let ratio = second.summary.achieved_send_rate / first.summary.achieved_send_rate;
    assert!(lines[2].contains(&format!("{ratio:.2}x")), "{table}");

    // plot: one SVG with both runs; the uncorrected inputs (a shell glob brings them
    // along) are left out unless asked for.
    let svg = out.join("spectrum.svg");
    let request = plot::PlotRequest {
        files: vec![
            first.files.hgrm.clone(),
            first.files.uncorrected_hgrm.clone(),
            second.files.hgrm.clone(),
            second.files.uncorrected_hgrm.clone(),
        ],
        output: svg.clone(),
        title: None,
        uncorrected: false,
        y_scale: plot::YScale::Auto,
    };
    let outcome = plot::plot(&request).expect("plot");
    assert_eq!(outcome.left_out_uncorrected, 2);
    assert_eq!(
        outcome.title,
        "Corrected latency by percentile: echo binary, 2 clients x 20-40/s each"
    );
    let text = fs::read_to_string(&svg).expect("read svg");
    assert!(text.starts_with("<svg"));
    assert!(text.contains(&outcome.title));
    // Legends are the runs' labels; the two runs share one, so their start times tell
    // them apart.
    for run in [&first, &second] {
        let legend = format!("pair {}", run.summary.started_at);
        assert!(text.contains(&legend), "legend {legend}");
    }
    assert!(
        !text.contains("uncorrected"),
        "no uncorrected line unless asked"
    );
    assert!(text.contains("99.9%"), "percentile axis labels");
    // Every line is drawn in a colour of the palette (which reads on white).
    let palette: Vec<String> = plot::COLOURS
        .iter()
        .map(|c| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2))
        .collect();
    let polylines: Vec<&str> = text.split("<polyline").skip(1).collect();
    assert!(!polylines.is_empty());
    for line in polylines {
        let stroke = line
            .split("stroke=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("stroke");
        assert!(
            palette.iter().any(|c| c.eq_ignore_ascii_case(stroke)),
            "{stroke}"
        );
    }

    // --uncorrected: each run's uncorrected spectrum joins it, dashed, and the title
    // says so; a given title replaces the made one.
    let outcome = plot::plot(&plot::PlotRequest {
        files: vec![first.files.hgrm.clone()],
        uncorrected: true,
        title: Some("mine & yours".into()),
        ..request
    })
    .expect("plot");
    assert_eq!(outcome.left_out_uncorrected, 0);
    let text = fs::read_to_string(&svg).expect("read svg");
    assert!(text.contains("pair (uncorrected)"), "{text}");
    assert!(text.contains("mine &amp; yours"), "the title is escaped");
}

#[test]
fn a_summary_with_other_columns_is_not_appended_to() {
    let out = out_dir("columns");
    let path = out.join("old.csv");
    fs::write(&path, "label,something_else\nx,1\n").expect("write");
    let rows = {
        let server = TestServer::start(Fault::None);
        let mut config = quick_config(server.addr, 1, 10.0, 1, &out);
        config.label = Some("old".into());
        let report = run(&config);
        assert_ne!(report.files.summary, path, "written next to it");
        results::read_summaries(&report.files.summary).expect("read")
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        "label,something_else\nx,1\n"
    );
}

#[test]
fn unreadable_inputs_are_errors() {
    let out = out_dir("bad-inputs");
    let not_hgrm = out.join("x.hgrm");
    fs::write(&not_hgrm, "hello world\n").expect("write");
    assert!(results::read_hgrm(&not_hgrm).is_err());
    assert!(
        plot::plot(&plot::PlotRequest {
            files: vec![not_hgrm],
            output: out.join("x.svg"),
            title: None,
            uncorrected: false,
            y_scale: plot::YScale::Auto,
        })
        .is_err()
    );
    assert!(compare::load(&[out.join("missing.csv")]).is_err());
}
