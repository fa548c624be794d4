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
