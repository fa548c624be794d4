//! Corrected latency counts from the intended send time, so a server stall shows in it
//! even when the sender was held back; the uncorrected latency hides what the sender
//! was made to wait. Histograms from threads and intervals merge exactly.

use std::time::Duration;

use loadgen::results;

use crate::common::{Fault, TestServer, out_dir, quick_config, run};

const STALL: Fault = Fault::Stall {
    after: Duration::from_millis(500),
    length: Duration::from_secs(1),
};

/// With one message in flight per client (a closed-loop client, like wrk2's), messages
/// due during the stall go out late, after it: corrected latency shows the stall, the
/// uncorrected latency only for the one message per client that was waiting inside it.
#[test]
fn a_stall_shows_in_corrected_but_not_uncorrected_latency() {
    let server = TestServer::start(STALL);
    let out = out_dir("stall-window");
    let mut config = quick_config(server.addr, 4, 100.0, 3, &out);
    config.max_in_flight = 1;
    let report = run(&config);
    let s = &report.summary;
    assert!(
        s.p99_us >= 800_000,
        "corrected p99 {} us should show the 1 s stall",
        s.p99_us
    );
    assert!(
        s.uncorrected_p99_us * 4 < s.p99_us,
        "uncorrected p99 {} us should be far below corrected p99 {} us",
        s.uncorrected_p99_us,
        s.p99_us
    );
    assert!(
        s.uncorrected_max_us >= 500_000,
        "the message caught in the stall waited"
    );
    assert!(s.deferred_sends > 0, "messages waited for the window");
    assert_eq!(s.lost, 0);
}

/// In pure open loop nothing waits for replies: every message due during the stall
/// left on time, so both latencies show the stall.
#[test]
fn open_loop_keeps_sending_through_a_stall() {
    let server = TestServer::start(STALL);
    let out = out_dir("stall-open");
    let report = run(&quick_config(server.addr, 4, 100.0, 3, &out));
    let s = &report.summary;
    assert!(s.p99_us >= 800_000, "corrected p99 {} us", s.p99_us);
    assert!(
        s.uncorrected_p99_us >= 500_000,
        "uncorrected p99 {} us",
        s.uncorrected_p99_us
    );
    assert_eq!(s.deferred_sends, 0);
    assert_eq!(s.lost, 0);
    // Sends kept their schedule although no reply came for a second.
    crate::common::assert_rate_near(s.achieved_send_rate, 400.0, 0.01);
}

/// The interval log's histograms add up to exactly the run's histogram, and the `.hgrm`
/// written for the run is exactly the spectrum of that sum.
#[test]
fn interval_histograms_merge_exactly_into_the_run_histogram() {
    let server = TestServer::start(Fault::None);
    let out = out_dir("merge");
    let report = run(&quick_config(server.addr, 3, 40.0, 2, &out));
    let intervals = results::read_hlog(&report.files.hlog).expect("read hlog");
    assert!(intervals.len() >= 4, "corrected and uncorrected per second");
    let mut corrected = loadgen::recorder::new_histogram();
    let mut uncorrected = loadgen::recorder::new_histogram();
    for interval in &intervals {
        match interval.tag.as_deref() {
            None => loadgen::recorder::merge(&mut corrected, &interval.histogram),
            Some(results::UNCORRECTED_TAG) => {
                loadgen::recorder::merge(&mut uncorrected, &interval.histogram)
            }
            Some(other) => panic!("unexpected tag {other}"),
        }
    }
    assert_eq!(corrected.len(), report.summary.received);
    assert_eq!(corrected.value_at_quantile(0.99), report.summary.p99_us);
    assert_eq!(corrected.max(), report.summary.max_us);
    assert_eq!(
        uncorrected.value_at_quantile(0.99),
        report.summary.uncorrected_p99_us
    );
    let hgrm = std::fs::read_to_string(&report.files.hgrm).expect("read hgrm");
    assert_eq!(hgrm, results::hgrm_text(&corrected));
    let hgrm = std::fs::read_to_string(&report.files.uncorrected_hgrm).expect("read hgrm");
    assert_eq!(hgrm, results::hgrm_text(&uncorrected));
}

/// A send window changes only when the bytes leave: a server stall of 200 ms still shows
/// in full in the corrected latency with `--send-window 1ms`, as with no window. Some
/// client falls due within 2.5 ms after the stall begins (4 clients x 100/s) and its
/// echo cannot come back before the stall ends, whatever the machine's load.
#[test]
fn a_server_stall_shows_in_full_with_the_send_window_on() {
    let server_stall = Fault::Stall {
        after: Duration::from_millis(400),
        length: Duration::from_millis(200),
    };
    for window in [Duration::from_millis(1), Duration::ZERO] {
        let server = TestServer::start(server_stall);
        let out = out_dir(&format!("stall-send-window-{}us", window.as_micros()));
        let mut config = quick_config(server.addr, 4, 100.0, 2, &out);
        config.send_window = window;
        let s = run(&config).summary;
        assert_eq!(s.send_window_us, Some(window.as_micros() as u64));
        assert!(
            s.max_us >= 195_000,
            "window {window:?}: corrected max {} us should hold the 200 ms stall",
            s.max_us
        );
        // The stall is the server's: whatever part of it is not in the lag-free latency
        // must have been loadgen's own lag.
        let lag_free_max = s.lag_free_max_us.expect("lag-free latency recorded");
        assert!(
            lag_free_max + s.max_send_lag_us >= 195_000,
            "window {window:?}: lag-free max {lag_free_max} us + own lag {} us",
            s.max_send_lag_us
        );
        assert_eq!(s.lost, 0);
        assert_eq!(s.sent, s.received);
    }
}
