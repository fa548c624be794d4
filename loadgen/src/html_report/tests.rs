use super::tables::run_names;
use super::*;
use crate::results::example_summary;

fn run(label: &str, p99_us: u64, with_files: bool) -> ReportedRun {
    let summary = Summary {
        label: label.into(),
        scenario: "echo".into(),
        protocol: "binary".into(),
        clients: 10,
        rate_per_client: 5.0,
        started_at: "2024-05-01T12:00:05Z".into(),
        p50_us: 100,
        p99_us,
        ..example_summary()
    };
    let points = vec![
        HgrmPoint {
            value_ms: 0.1,
            percentile: 0.0,
            total_count: 1,
        },
        HgrmPoint {
            value_ms: p99_us as f64 / 1000.0,
            percentile: 0.99,
            total_count: 99,
        },
        HgrmPoint {
            value_ms: p99_us as f64 / 1000.0,
            percentile: 1.0,
            total_count: 100,
        },
    ];
    let rows = (0..3)
        .map(|second| SeriesRow {
            second,
            phase: "measure".into(),
            connections: 10,
            sent: 50,
            received: 50,
            p50_us: 100,
            p90_us: 150,
            p99_us,
            max_us: p99_us,
            errors: 0,
        })
        .collect();
    ReportedRun {
        origin: format!("{label}.csv:1"),
        summary,
        spectrum: if with_files {
            Ok(points)
        } else {
            Err("cannot read x.hgrm".into())
        },
        series: if with_files {
            Ok(rows)
        } else {
            Err("cannot read x.series.csv".into())
        },
    }
}

#[test]
fn text_from_the_inputs_is_escaped() {
    let mut hostile = run("a", 200, false);
    hostile.origin = "<script>alert(1)</script>&.csv:1".into();
    hostile.summary.addr = "\"><img src=x>".into();
    let page = render(&[hostile], &[PathBuf::from("<b>.csv")]).expect("renders");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;.csv:1"));
    assert!(page.contains("&lt;b&gt;.csv"));
    assert!(page.contains("&quot;&gt;&lt;img src=x&gt;"));
}

#[test]
fn the_page_needs_nothing_from_outside() {
    let page = render(&[run("a", 200, true), run("b", 300, true)], &[]).expect("renders");
    for outside in ["src=", "<link", "url(", "@import", "<script", "https:"] {
        assert!(!page.contains(outside), "{outside}");
    }
    // The only URL is the SVG namespace, which is a name, not a fetch.
    assert_eq!(
        page.matches("http://").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
}

#[test]
fn several_runs_get_ratios_against_the_first() {
    let page = render(&[run("a", 200, true), run("b", 300, true)], &[]).expect("renders");
    assert!(page.contains("<table class=\"comparison\">"));
    assert!(
        page.contains("data-run=\"2\" data-ratio=\"1.50x\">0.300 (1.50x)"),
        "{page}"
    );
    assert!(page.contains("data-chart=\"spectra\""));
    let one = render(&[run("a", 200, true)], &[]).expect("renders");
    assert!(
        !one.contains("comparison"),
        "one run has nothing to compare"
    );
}

#[test]
fn each_run_has_its_table_and_charts_or_says_what_is_missing() {
    let page = render(&[run("a", 200, true)], &[]).expect("renders");
    for chart in ["spectrum", "rates", "latency"] {
        assert!(page.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    assert!(
        page.contains("<tr data-field=\"p99_us\"><th>p99</th><td class=\"num\">0.200 ms</td></tr>")
    );
    assert_eq!(page.matches("<tr data-second=").count(), 3);
    let page = render(&[run("a", 200, false)], &[]).expect("renders");
    assert!(page.contains("No spectrum: cannot read x.hgrm"));
    assert!(page.contains("No per-second series: cannot read x.series.csv"));
    assert!(!page.contains("data-chart"));
}

#[test]
fn repeated_labels_are_told_apart_by_start_time() {
    let mut b = run("a", 300, true);
    b.summary.started_at = "2024-05-01T12:01:05Z".into();
    let names = run_names(&[run("a", 200, true), b, run("c", 1, true)]);
    assert_eq!(
        names,
        ["a 2024-05-01T12:00:05Z", "a 2024-05-01T12:01:05Z", "c"]
    );
}
