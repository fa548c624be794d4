//! Every message is accounted for: against servers that drop, duplicate, reorder or
//! corrupt answers, loadgen counts exactly what the server did.

use std::sync::atomic::Ordering;

use loadgen::Protocol;

use crate::common::{Fault, TestServer, out_dir, quick_config, run};

fn run_against(fault: Fault, protocol: Protocol, name: &str) -> (loadgen::Summary, TestServer) {
    let server = TestServer::start(fault);
    let out = out_dir(name);
    let mut config = quick_config(server.addr, 3, 50.0, 2, &out);
    config.protocol = protocol;
    config.grace = std::time::Duration::from_millis(500);
    let report = run(&config);
    (report.summary, server)
}

#[test]
fn dropped_answers_count_as_lost() {
    let (s, server) = run_against(Fault::Drop { every: 7 }, Protocol::Binary, "drop");
    let dropped = server.counts.dropped.load(Ordering::Relaxed);
    assert!(dropped >= 10, "the server dropped {dropped}");
    assert_eq!(s.lost, dropped);
    assert_eq!(s.received + s.lost, s.expected);
    assert_eq!((s.duplicated, s.reordered, s.corrupted), (0, 0, 0));
}

#[test]
fn duplicated_answers_are_counted_once_as_duplicates() {
    let (s, server) = run_against(Fault::Duplicate { every: 5 }, Protocol::Binary, "dup");
    let duplicated = server.counts.duplicated.load(Ordering::Relaxed);
    assert!(duplicated >= 10);
    assert_eq!(s.duplicated, duplicated);
    assert_eq!(s.lost, 0);
    assert_eq!(
        s.received, s.expected,
        "a duplicate is not a second delivery"
    );
    assert_eq!((s.reordered, s.corrupted), (0, 0));
}

#[test]
fn reordered_answers_are_counted() {
    let (s, server) = run_against(Fault::Reorder { every: 6 }, Protocol::Binary, "reorder");
    let reordered = server.counts.reordered.load(Ordering::Relaxed);
    assert!(reordered >= 10);
    assert_eq!(s.reordered, reordered);
    assert_eq!((s.lost, s.duplicated, s.corrupted), (0, 0, 0));
}

#[test]
fn corrupted_binary_payloads_fail_their_checksum() {
    let (s, server) = run_against(Fault::Corrupt { every: 4 }, Protocol::Binary, "corrupt-bin");
    let corrupted = server.counts.corrupted.load(Ordering::Relaxed);
    assert!(corrupted >= 10);
    assert_eq!(s.corrupted, corrupted);
    // A corrupted answer is not a delivery: its message is lost.
    assert_eq!(s.lost, corrupted);
}

#[test]
fn corrupted_lines_fail_their_checksum() {
    let (s, server) = run_against(Fault::Corrupt { every: 4 }, Protocol::Line, "corrupt-line");
    let corrupted = server.counts.corrupted.load(Ordering::Relaxed);
    assert!(corrupted >= 10);
    assert_eq!(s.corrupted, corrupted);
    assert_eq!(s.lost, corrupted);
}

/// `--protocol line` against a plain line echo server: every line comes back.
#[test]
fn line_protocol_measures_a_plain_echo_server() {
    let (s, _server) = run_against(Fault::None, Protocol::Line, "line");
    assert_eq!(s.protocol, "line");
    assert_eq!(s.sent, s.expected);
    assert_eq!(s.received, s.sent);
    assert_eq!(
        (s.lost, s.duplicated, s.reordered, s.corrupted, s.errors),
        (0, 0, 0, 0, 0)
    );
    assert!(s.p50_us > 0);
}

/// A server that closes connections mid-run (its last answer and the FIN arrive
/// together): every disconnect is counted, nothing is sent on a closed connection (the
/// shortfall shows in the send rate, not as loss), and the run does not hang.
#[test]
fn closed_connections_are_counted_and_their_messages_lost() {
    let started = std::time::Instant::now();
    let (s, server) = run_against(Fault::Close { after: 20 }, Protocol::Binary, "close");
    assert_eq!(server.counts.echoes.load(Ordering::Relaxed), 3 * 20);
    assert_eq!(s.disconnects, 3);
    assert_eq!(s.errors, 3);
    assert_eq!(s.sent, 3 * 20);
    assert_eq!(
        s.received,
        3 * 20,
        "the answer that came with the FIN was read"
    );
    assert_eq!(s.lost, 0);
    assert!(s.achieved_send_rate < s.target_rate / 2.0);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
