//! Several loadgen processes working as one: `--start-at` lines up their schedules, and
//! `loadgen merge` combines their results.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadgen::results;

use crate::common::{Fault, TestServer, loadgen_bin, out_dir};

/// A short echo run against `addr`, starting at `start_at`, results in `out`.
fn spawn_at(addr: std::net::SocketAddr, start_at: &str, out: &Path, label: &str) -> Child {
    Command::new(loadgen_bin())
        .args(["--addr", &addr.to_string()])
        .args(["--clients", "4", "--rate", "50", "--threads", "1"])
        .args(["--duration", "1s", "--warmup", "0s", "--grace", "1s"])
        .args(["--start-at", start_at, "--quiet", "--label", label])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen")
}

/// RFC 3339 UTC of `t`, with milliseconds.
fn rfc3339(t: SystemTime) -> String {
    let unix = t.duration_since(UNIX_EPOCH).expect("after 1970");
    let (whole, _) = loadgen::report::utc_stamps(unix.as_secs());
    format!(
        "{}.{:03}Z",
        whole.trim_end_matches('Z'),
        unix.subsec_millis()
    )
}

fn wait_ok(child: Child) {
    let output = child.wait_with_output().expect("loadgen ends");
    assert!(
        output.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two processes started 700 ms apart, given the same `--start-at`, send their first
/// messages within a few milliseconds of each other and of that instant, and their
/// interval logs share one base time.
#[test]
fn two_processes_given_one_start_at_begin_together() {
    let (a, b) = (
        TestServer::start(Fault::None),
        TestServer::start(Fault::None),
    );
    let out = out_dir("multi-start-at");
    let (wall, mono) = (SystemTime::now(), Instant::now());
    // 2.5 s ahead, in whole milliseconds (what the RFC 3339 text holds).
    let ms = (wall + Duration::from_millis(2500))
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let start = rfc3339(at);
    // The same instant on the monotonic clock the servers stamp with.
    let named = mono + at.duration_since(wall).expect("ahead");
    let first = spawn_at(a.addr, &start, &out, "a");
    std::thread::sleep(Duration::from_millis(700));
    let second = spawn_at(b.addr, &start, &out, "b");
    wait_ok(first);
    wait_ok(second);

    let first_a = *a.first_echo.get().expect("server a got an echo");
    let first_b = *b.first_echo.get().expect("server b got an echo");
    let apart = if first_a > first_b {
        first_a - first_b
    } else {
        first_b - first_a
    };
    println!("first sends {apart:?} apart");
    assert!(
        apart < Duration::from_millis(20),
        "first sends {apart:?} apart"
    );
    for got in [first_a, first_b] {
        let off = if got > named {
            got - named
        } else {
            named - got
        };
        println!("first send {off:?} off --start-at");
        assert!(
            off < Duration::from_millis(30),
            "first send {off:?} off --start-at"
        );
    }

    let base = |label: &str| {
        let run = &results::runs_in(&out.join(format!("{label}.csv"))).expect("summary")[0];
        results::read_interval_log(&run.files.hlog)
            .expect("hlog")
            .base_time
            .expect("base time")
    };
    let (base_a, base_b) = (base("a"), base("b"));
    let diff = base_a.abs_diff(base_b);
    assert!(diff <= Duration::from_millis(1), "{base_a:?} vs {base_b:?}");
    let want = Duration::from_millis(ms);
    assert!(
        base_a.abs_diff(want) <= Duration::from_millis(2),
        "{base_a:?} vs {want:?}"
    );
}

/// A `--start-at` the clients miss (here: already past when the run begins) is kept on
/// its wall-clock second grid: sending begins whole seconds later, with a warning.
#[test]
fn a_missed_start_at_begins_whole_seconds_later() {
    let server = TestServer::start(Fault::None);
    let out = out_dir("multi-late-start");
    let at = SystemTime::now() - Duration::from_millis(300);
    let config = loadgen::Config {
        start_at: Some(at),
        ..crate::common::quick_config(server.addr, 2, 20.0, 1, &out)
    };
    let report = crate::common::run(&config);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("after --start-at, so sending began")),
        "{:?}",
        report.warnings
    );
    let base = results::read_interval_log(&report.files.hlog)
        .expect("hlog")
        .base_time
        .expect("base time");
    let at = at.duration_since(UNIX_EPOCH).expect("after 1970");
    let shift = base.saturating_sub(at);
    let whole = Duration::from_secs(shift.as_secs_f64().round() as u64);
    assert!(whole >= Duration::from_secs(1), "{shift:?}");
    assert!(
        shift.abs_diff(whole) <= Duration::from_millis(2),
        "{shift:?}"
    );
}

/// Runs `loadgen merge ARGS`; its exit code, stdout and stderr.
fn merge_cmd(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let output = Command::new(loadgen_bin())
        .arg("merge")
        .args(args)
        .output()
        .expect("run loadgen merge");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn only_run(csv: &Path) -> results::LocatedRun {
    let mut runs = results::runs_in(csv).expect("summary");
    assert_eq!(runs.len(), 1, "{}", csv.display());
    runs.remove(0)
}

/// Two processes against one server, started together: the merged run holds the sum
/// of their counts, its p99 lies between theirs, and its files add up like a run's.
#[test]
fn merging_two_processes_adds_their_counts_and_latencies() {
    let server = crate::common::real_server();
    let out = out_dir("multi-merge-two");
    let start = rfc3339(SystemTime::now() + Duration::from_millis(1500));
    let a = spawn_at(server.local_addr(), &start, &out, "a");
    let b = spawn_at(server.local_addr(), &start, &out, "b");
    wait_ok(a);
    wait_ok(b);
    let merged_dir = out.join("merged");
    let (code, stdout, stderr) = merge_cmd(&[
        out.join("a.csv").as_os_str(),
        out.join("b.csv").as_os_str(),
        "-o".as_ref(),
        merged_dir.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("merged 2 runs: "), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");

    let (ra, rb) = (only_run(&out.join("a.csv")), only_run(&out.join("b.csv")));
    let m = only_run(&merged_dir.join("merged-a.csv"));
    let (a, b, s) = (&ra.summary, &rb.summary, &m.summary);
    assert_eq!(s.sent, a.sent + b.sent);
    assert_eq!(s.expected, a.expected + b.expected);
    assert_eq!(s.received, a.received + b.received);
    assert_eq!(s.lost, 0);
    assert_eq!(s.clients, 8);
    assert_eq!(s.target_rate, 400.0);
    assert_eq!(s.duration_s, 1.0);
    assert_eq!(s.achieved_send_rate, s.sent as f64);
    let (lo, hi) = (a.p99_us.min(b.p99_us), a.p99_us.max(b.p99_us));
    assert!(
        lo <= s.p99_us && s.p99_us <= hi,
        "{lo} <= {} <= {hi}",
        s.p99_us
    );
    assert_eq!(s.max_us, a.max_us.max(b.max_us));

    // The merged spectrum counts every delivery; the log adds up to it; the series
    // sums to the summary.
    let points = results::read_hgrm(&m.files.hgrm).expect("merged hgrm");
    assert_eq!(points.last().expect("points").total_count, s.received);
    let log = results::read_interval_log(&m.files.hlog).expect("merged hlog");
    let logged: u64 = log
        .intervals
        .iter()
        .filter(|i| i.tag.is_none())
        .map(|i| i.histogram.len())
        .sum();
    assert_eq!(logged, s.received);
    let series = results::read_series(&m.files.series).expect("merged series");
    assert_eq!(series.iter().map(|r| r.sent).sum::<u64>(), s.sent);
    assert_eq!(series.iter().map(|r| r.received).sum::<u64>(), s.received);
    assert_eq!(series[0].connections, 8);

    // compare reads the merged row like any other.
    let output = Command::new(loadgen_bin())
        .arg("compare")
        .arg(out.join("a.csv"))
        .arg(merged_dir.join("merged-a.csv"))
        .output()
        .expect("run compare");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("merged-a"));
}

/// A run merged with itself: every count doubles, every percentile stays.
#[test]
fn a_run_merged_with_itself_doubles_counts_and_keeps_percentiles() {
    let server = TestServer::start(Fault::None);
    let out = out_dir("multi-merge-self");
    let config = crate::common::quick_config(server.addr, 3, 40.0, 2, &out);
    let run = crate::common::run(&config).summary;
    let csv = out.join("echo-binary.csv");
    let merged = loadgen::merge::merge(
        &[csv.display().to_string(), format!("{}:1", csv.display())],
        &out.join("m"),
        Some("twice"),
    )
    .expect("merge");
    let s = &merged.summary;
    assert_eq!(merged.inputs.len(), 2);
    assert_eq!(
        (
            s.sent,
            s.expected,
            s.received,
            s.lost,
            s.clients,
            s.connected
        ),
        (
            2 * run.sent,
            2 * run.expected,
            2 * run.received,
            2 * run.lost,
            6,
            6
        )
    );
    assert_eq!(s.duration_s, run.duration_s);
    assert_eq!(s.achieved_send_rate, 2.0 * run.achieved_send_rate);
    assert_eq!(
        (s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us),
        (run.p50_us, run.p90_us, run.p99_us, run.p999_us, run.max_us)
    );
    assert_eq!(
        (s.uncorrected_p50_us, s.uncorrected_p99_us),
        (run.uncorrected_p50_us, run.uncorrected_p99_us)
    );
    assert_eq!(s.label, "twice");
    assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
}

/// Inputs that cannot be merged are refused with one line and exit code 1.
#[test]
fn bad_merge_inputs_are_refused_with_one_line() {
    let server = crate::common::real_server();
    let out = out_dir("multi-merge-bad");
    let echo = crate::common::run(&crate::common::quick_config(
        server.local_addr(),
        2,
        20.0,
        1,
        &out,
    ));
    let dm = crate::common::run(&loadgen::Config {
        scenario: loadgen::Scenario::Dm,
        ..crate::common::quick_config(server.local_addr(), 2, 20.0, 1, &out)
    });
    let refused = |args: &[&std::ffi::OsStr], want: &str| {
        let mut all = args.to_vec();
        let dir = out.join("merged");
        all.extend(["-o".as_ref(), dir.as_os_str()]);
        let (code, stdout, stderr) = merge_cmd(&all);
        assert_eq!(code, Some(loadgen::exit::ERROR), "{stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("loadgen: error: ") && stderr.contains(want),
            "{stderr}"
        );
    };
    refused(
        &[echo.files.summary.as_os_str(), dm.files.summary.as_os_str()],
        "differ in scenario (echo vs dm); only runs of one load can be merged",
    );
    refused(
        &[echo.files.summary.as_os_str(), echo.files.hgrm.as_os_str()],
        "not a loadgen summary CSV",
    );
    let bad_row = format!("{}:7", echo.files.summary.display());
    refused(
        &[echo.files.summary.as_os_str(), bad_row.as_ref()],
        "the file has 1 runs",
    );
    std::fs::remove_file(&dm.files.hlog).expect("remove hlog");
    refused(
        &[dm.files.summary.as_os_str(), dm.files.summary.as_os_str()],
        ".hlog: No such file or directory",
    );
    // A bad label is a usage error.
    let dir = out.join("merged");
    let (code, _, stderr) = merge_cmd(&[
        echo.files.summary.as_os_str(),
        "--label".as_ref(),
        "a/b".as_ref(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    assert_eq!(code, Some(loadgen::exit::USAGE), "{stderr}");
}

/// Runs one after the other do not measure the same seconds: the merge still adds them
/// up, takes its rates over the whole span and says the windows do not coincide.
#[test]
fn merging_runs_that_did_not_start_together_warns_and_spans_both() {
    let server = TestServer::start(Fault::None);
    let out = out_dir("multi-merge-apart");
    let config = crate::common::quick_config(server.addr, 2, 20.0, 1, &out);
    let first = crate::common::run(&config).summary;
    let second = crate::common::run(&config).summary;
    let csv = out.join("echo-binary.csv");
    let merged =
        loadgen::merge::merge(&[csv.display().to_string()], &out.join("m"), None).expect("merge");
    let s = &merged.summary;
    assert_eq!(s.label, "merged-echo-binary");
    assert_eq!(s.sent, first.sent + second.sent);
    assert!(s.duration_s > 2.0, "{}", s.duration_s);
    assert!((s.achieved_send_rate - s.sent as f64 / s.duration_s).abs() < 1e-9);
    assert_eq!(merged.warnings.len(), 1, "{:?}", merged.warnings);
    assert!(
        merged.warnings[0].starts_with("the runs' measured parts do not coincide"),
        "{:?}",
        merged.warnings
    );
    let series = results::read_series(&merged.files.series).expect("series");
    assert_eq!(series.iter().map(|r| r.sent).sum::<u64>(), s.sent);
}
