//! A room's senders in one loadgen process and its receivers in another (`--role send`,
//! `--role receive`), stamps compared across the processes, the clock-offset bound in
//! the summaries, and `merge` computing the loss neither process knows alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadgen::results;

use crate::common::{loadgen_bin, out_dir, run_loadgen};

/// A one-second room run in `role` against `addr`, starting at `start_at`.
fn spawn_role(
    addr: std::net::SocketAddr,
    start_at: &str,
    out: &Path,
    role: &str,
    clients: &str,
    offset: &str,
) -> Child {
    Command::new(loadgen_bin())
        .args(["--addr", &addr.to_string(), "--scenario", "room"])
        .args(["--role", role, "--client-offset", offset])
        .args(["--clients", clients, "--room-size", clients])
        .args(["--rate", "50", "--threads", "1"])
        .args(["--duration", "1s", "--warmup", "0s", "--grace", "1s"])
        .args(["--start-at", start_at, "--quiet", "--label", role])
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

/// Waits for `child` and returns its stdout, failing the test if it did not succeed.
fn wait_ok(child: Child) -> String {
    let output = child.wait_with_output().expect("loadgen ends");
    assert!(
        output.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn only_run(csv: &Path) -> results::LocatedRun {
    let mut runs = results::runs_in(csv).expect("summary");
    assert_eq!(runs.len(), 1, "{}", csv.display());
    runs.remove(0)
}

/// Two senders in one process, three receivers in another, one room: every message the
/// senders sent reaches every receiver, the receivers' latencies (their clock minus the
/// senders' intended times) are positive and small, and both summaries carry a small
/// clock-offset bound. `merge` then computes the loss from both processes' room files.
#[test]
fn senders_and_receivers_in_two_processes_share_a_room() {
    let server = crate::common::real_server();
    let addr = server.local_addr();
    let out = out_dir("fanout-two-processes");
    let start = rfc3339(SystemTime::now() + Duration::from_secs(3));
    let receiver = spawn_role(addr, &start, &out, "receive", "3", "2");
    let sender = spawn_role(addr, &start, &out, "send", "2", "0");
    let send_out = wait_ok(sender);
    let receive_out = wait_ok(receiver);
    println!("{send_out}\n{receive_out}");

    let s = only_run(&out.join("send.csv"));
    let r = only_run(&out.join("receive.csv"));
    let (send, recv) = (&s.summary, &r.summary);
    assert_eq!(send.role.as_deref(), Some("send"));
    assert_eq!(recv.role.as_deref(), Some("receive"));
    assert!(send.sent >= 2 * 45, "sent {}", send.sent);
    assert_eq!(send.received, 0, "senders do not count deliveries");
    assert_eq!(recv.sent, 0, "receivers send nothing");
    assert_eq!(recv.connected, 3);
    assert_eq!(
        recv.received,
        send.sent * 3,
        "every message at every receiver"
    );
    assert_eq!(recv.duplicated + recv.reordered + recv.corrupted, 0);
    assert_eq!(recv.errors, 0);
    // Cross-process latencies: positive and, on loopback, far below a second.
    assert!(recv.p50_us > 0, "p50 {}", recv.p50_us);
    assert!(recv.max_us < 1_000_000, "max {} us", recv.max_us);
    for summary in [send, recv] {
        let bound = summary
            .clock_offset_bound_us
            .expect("offset bound measured");
        let offset = summary.clock_offset_us.expect("offset measured");
        println!("{}: clock offset {offset} us +- {bound} us", summary.label);
        assert!(bound < 5_000, "bound {bound} us");
        // One machine, one clock: the offset is within its bound (plus rounding).
        assert!(offset.unsigned_abs() <= bound + 1, "offset {offset} us");
    }
    assert!(
        receive_out.contains("clock offset to the server"),
        "{receive_out}"
    );

    // The merged view knows what neither process does alone: the loss.
    let merged_dir = out.join("merged");
    let output = Command::new(loadgen_bin())
        .arg("merge")
        .arg(out.join("send.csv"))
        .arg(out.join("receive.csv"))
        .arg("-o")
        .arg(&merged_dir)
        .output()
        .expect("run loadgen merge");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let m = only_run(&merged_dir.join("merged-send.csv")).summary;
    assert_eq!(m.sent, send.sent);
    assert_eq!(m.expected, send.sent * 3);
    assert_eq!(m.received, recv.received);
    assert_eq!(m.lost, 0);
    let pair = m.clock_offset_bound_us.expect("pair bound");
    let (a, b) = (
        send.clock_offset_bound_us.unwrap_or_default(),
        recv.clock_offset_bound_us.unwrap_or_default(),
    );
    assert!(pair >= a + b, "pair bound {pair} below {a} + {b}");
    assert!(pair < 10_000, "pair bound {pair} us");
    assert!(
        stdout.contains("clock offset between the processes at most"),
        "{stdout}"
    );
}

/// Split roles only make sense where senders and receivers meet in rooms, with the
/// schedules anchored at one instant.
#[test]
fn roles_outside_the_room_scenario_are_usage_errors() {
    let refused = |args: &[&str], says: &str| {
        let finished = run_loadgen(args);
        assert_eq!(finished.code, Some(2), "{args:?}: {}", finished.stderr);
        let line = finished.stderr_line();
        assert!(line.contains(says), "{args:?}: {line}");
    };
    refused(
        &["--role", "receive", "--start-at", "+5s", "-c", "2"],
        "--role receive needs --scenario room",
    );
    refused(
        &[
            "--role",
            "send",
            "--scenario",
            "room",
            "--churn",
            "5",
            "--start-at",
            "+5s",
        ],
        "--role send does not support --churn",
    );
    refused(
        &["--role", "receive", "--scenario", "room"],
        "--role receive needs --start-at",
    );
    refused(
        &[
            "--scenario",
            "room",
            "-c",
            "10",
            "--client-offset",
            "4294967290",
        ],
        "--client-offset 4294967290 with --clients 10",
    );
}
