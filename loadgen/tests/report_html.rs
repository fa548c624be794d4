//! `loadgen report` opened in a real headless Chromium: the page a browser builds holds
//! every run's summary table, charts and per-second series with the values of the CSVs
//! loadgen wrote, the runs render side by side with non-empty charts, and the browser
//! logs nothing to its console. CI installs Chromium (`.ci/run`) and fails without it;
//! elsewhere the test says loudly that it skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Fault, TestServer, loadgen_bin, out_dir, quick_config, run};

/// The Chromium binary on `PATH`, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `args`; returns stdout and the console lines it
/// logged. A fresh profile per call keeps parallel tests apart.
fn browse(
    chromium: &Path,
    out: &Path,
    name: &str,
    args: &[&str],
    page: &Path,
) -> (String, Vec<String>) {
    let profile = out.join(format!("profile-{name}"));
    let output = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {stderr}"
    );
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    )
}

/// A CSV file as rows of (column, value), read without loadgen's own reader (labels,
/// addresses and numbers hold no commas).
fn csv_rows(path: &Path) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

fn field<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    &row.iter().find(|(k, _)| k == name).expect(name).1
}

fn ms(us: &str) -> String {
    format!("{:.3} ms", us.parse::<f64>().expect("number") / 1000.0)
}

/// The part of `dom` from `start` to the next `end` after it.
fn between<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let from = dom
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the page"));
    let rest = &dom[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[test]
fn the_report_renders_in_a_real_browser_with_the_csv_values() {
    let out = out_dir("report-html");
    let server = TestServer::start(Fault::None);
    let mut summaries = Vec::new();
    for (label, rate) in [("alpha", 20.0), ("beta", 40.0)] {
        let mut config = quick_config(server.addr, 2, rate, 2, &out);
        config.label = Some(label.into());
        summaries.push(run(&config).files);
    }
    let html = out.join("report.html");
    let status = Command::new(loadgen_bin())
        .arg("report")
        .args(summaries.iter().map(|f| &f.summary))
        .arg("-o")
        .arg(&html)
        .status()
        .expect("run loadgen report");
    assert!(status.success());

    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed, but CI must run this test (.ci/run installs it)"
        );
        eprintln!(
            "\n!!! SKIPPED the_report_renders_in_a_real_browser_with_the_csv_values: no chromium \
             on PATH (apt-get install chromium) !!!\n"
        );
        return;
    };

    // The DOM the browser built from the page.
    let (dom, console) = browse(&chromium, &out, "dom", &["--dump-dom"], &html);
    assert!(console.is_empty(), "console messages: {console:?}");
    assert_eq!(dom.matches("<section class=\"run\"").count(), 2);
    for (n, files) in summaries.iter().enumerate() {
        let row = &csv_rows(&files.summary)[0];
        let label = field(row, "label");
        let section = between(&dom, &format!("data-label=\"{label}\""), "</section>");
        for (column, shown) in [
            ("label", label.to_owned()),
            ("started_at", field(row, "started_at").to_owned()),
            ("sent", field(row, "sent").to_owned()),
            ("received", field(row, "received").to_owned()),
            ("lost", field(row, "lost").to_owned()),
            ("p50_us", ms(field(row, "p50_us"))),
            ("p99_us", ms(field(row, "p99_us"))),
            ("max_us", ms(field(row, "max_us"))),
        ] {
            let tr = between(section, &format!("<tr data-field=\"{column}\">"), "</tr>");
            assert!(
                tr.ends_with(&format!("<td class=\"num\">{shown}</td>")),
                "run {n} {column}: {tr}"
            );
        }
        // Three charts, each an SVG the browser parsed, with lines in it.
        for chart in ["spectrum", "rates", "latency"] {
            let figure = between(section, &format!("data-chart=\"{chart}\""), "</figure>");
            assert_eq!(figure.matches("<svg").count(), 1, "{chart}");
            assert!(figure.contains("<polyline"), "{chart} has lines");
        }
        // The series table and the rates chart hold every row of the series CSV.
        let series = csv_rows(&files.series);
        assert!(series.len() >= 2, "a 2 s run has at least 2 seconds");
        let rates = between(section, "data-chart=\"rates\"", "</figure>");
        assert!(rates.contains(&format!("data-points=\"{}\"", series.len())));
        let longest = rates
            .split("points=\"")
            .skip(1)
            .map(|p| p[..p.find('"').unwrap_or(0)].split_whitespace().count())
            .max();
        assert_eq!(longest, Some(series.len()), "one point per second");
        for s in &series {
            let second = field(s, "second");
            let tr = between(section, &format!("<tr data-second=\"{second}\">"), "</tr>");
            let cells: Vec<&str> = tr
                .split("<td")
                .skip(1)
                .map(|c| c[c.find('>').expect("td") + 1..].trim_end_matches("</td>"))
                .collect();
            let expected = [
                second.to_owned(),
                field(s, "phase").to_owned(),
                field(s, "connections").to_owned(),
                field(s, "sent").to_owned(),
                field(s, "received").to_owned(),
                ms(field(s, "p50_us")),
                ms(field(s, "p99_us")),
                ms(field(s, "max_us")),
                field(s, "errors").to_owned(),
            ];
            assert_eq!(cells, expected, "series second {second}");
        }
    }
    // Two runs: the side-by-side table with ratios against the first.
    let (alpha, beta) = (
        &csv_rows(&summaries[0].summary)[0],
        &csv_rows(&summaries[1].summary)[0],
    );
    let rate = |row: &[(String, String)]| {
        field(row, "achieved_send_rate")
            .parse::<f64>()
            .expect("rate")
    };
    let ratio = format!("{:.2}x", rate(beta) / rate(alpha));
    let tr = between(&dom, "<tr data-field=\"achieved_send_rate\">", "</tr>");
    assert!(
        tr.contains(&format!("data-run=\"2\" data-ratio=\"{ratio}\"")),
        "{ratio}: {tr}"
    );
    assert!(dom.contains("data-chart=\"spectra\""));

    // Rendered: a page in the same directory reads the report's layout from an iframe
    // (file pages may read each other only with --allow-file-access-from-files).
    let probe = out.join("probe.html");
    std::fs::write(
        &probe,
        r#"<!DOCTYPE html><html><body style="margin:0">
<iframe id="r" src="report.html" style="width:1400px;height:3000px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
document.getElementById("r").addEventListener("load", () => {
  const doc = document.getElementById("r").contentDocument;
  const lines = [];
  for (const s of doc.querySelectorAll("section.run")) {
    const r = s.getBoundingClientRect();
    lines.push(`run ${Math.round(r.left)} ${Math.round(r.top)}`);
  }
  for (const s of doc.querySelectorAll("figure svg")) {
    const r = s.getBoundingClientRect();
    lines.push(`svg ${Math.round(r.width)} ${Math.round(r.height)}`);
  }
  document.getElementById("out").textContent = lines.join("\n");
});
</script></body></html>"#,
    )
    .expect("write probe");
    let (probed, console) = browse(
        &chromium,
        &out,
        "probe",
        &[
            "--allow-file-access-from-files",
            "--window-size=1400,1000",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ],
        &probe,
    );
    assert!(console.is_empty(), "console messages: {console:?}");
    let layout =
        between(&probed, "<pre id=\"out\">", "</pre>").trim_start_matches("<pre id=\"out\">");
    let runs: Vec<(i64, i64)> = layout
        .lines()
        .filter_map(|l| l.strip_prefix("run "))
        .map(|l| {
            let (x, y) = l.split_once(' ').expect("x y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect();
    assert_eq!(runs.len(), 2, "{layout}");
    assert_eq!(runs[0].1, runs[1].1, "runs side by side: {layout}");
    assert!(runs[1].0 > runs[0].0 + 300, "runs side by side: {layout}");
    let svgs: Vec<(i64, i64)> = layout
        .lines()
        .filter_map(|l| l.strip_prefix("svg "))
        .map(|l| {
            let (w, h) = l.split_once(' ').expect("w h");
            (w.parse().expect("w"), h.parse().expect("h"))
        })
        .collect();
    assert_eq!(
        svgs.len(),
        2 * 3 + 1,
        "three charts a run and the spectra: {layout}"
    );
    for (w, h) in svgs {
        assert!(w >= 300 && h >= 150, "a chart drawn {w}x{h}: {layout}");
    }

    // A screenshot, for a person to look at when this fails.
    let png = out.join("report.png");
    browse(
        &chromium,
        &out,
        "shot",
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,2400",
            "--hide-scrollbars",
        ],
        &html,
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot of {size} bytes");
}
