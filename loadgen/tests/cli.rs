//! The `loadgen` binary: help with every default, exit codes and one-line messages for
//! usage errors and failures, missed thresholds, no server and Ctrl+C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen::{exit, results};

use crate::common::{Fault, TestServer, loadgen_bin, out_dir, real_server, run_loadgen};

fn quick_args(addr: std::net::SocketAddr, out: &std::path::Path) -> Vec<String> {
    [
        "--addr",
        &addr.to_string(),
        "--clients",
        "2",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--grace",
        "500ms",
        "--quiet",
        "--out",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn help_shows_every_default() {
    let output = Command::new(loadgen_bin())
        .arg("--help")
        .output()
        .expect("run loadgen");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for default in [
        "[default: 127.0.0.1:7878]",
        "[default: 100]",
        "[default: 10]",
        "[default: 30s]",
        "[default: 3s]",
        "[default: 2s]",
        "[default: 1000]",
        "[default: 5s]",
        "[default: 64]",
        "[default: echo]",
        "[default: binary]",
        "[default: results]",
        "[default: SCENARIO-PROTOCOL]",
        "[default: no limit]",
        "[default: 0]",
        "--threads",
        "--room-size",
        "--connect-rate",
        "--max-loss",
        "compare",
        "plot",
        "report",
    ] {
        assert!(help.contains(default), "--help lacks {default}:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        // Refused by clap.
        (
            &["--clients", "many"],
            "invalid value 'many' for '--clients",
        ),
        (&["--frobnicate"], "unexpected argument '--frobnicate'"),
        (
            &["--rate", "5", "--total-rate", "1000"],
            "cannot be used with",
        ),
        (&["-R", "1000", "-r", "5"], "cannot be used with"),
        (
            &["--duration", "3 weeks"],
            "invalid value '3 weeks' for '--duration",
        ),
        (
            &["compare"],
            "required arguments were not provided: <FILES>",
        ),
        (
            &["compare", "--bogus", "a.csv"],
            "unexpected argument '--bogus'",
        ),
        (
            &["plot", "a.hgrm"],
            "required arguments were not provided: --output",
        ),
        // Refused after parsing.
        (&["--addr", "127.0.0.1"], "--addr 127.0.0.1: "),
        (&["--addr", "127.0.0.1:99999"], "--addr 127.0.0.1:99999: "),
        (&["--clients", "0"], "--clients must be at least 1"),
        (&["--rate", "0"], "--rate must be between"),
        (&["-R", "0"], "--total-rate must be between"),
        (&["--total-rate", "0"], "--total-rate must be between"),
        (&["--threads", "0"], "--threads must be at least 1"),
        (&["--duration", "0s"], "--duration must be longer than zero"),
        (
            &["--connect-timeout", "0s"],
            "--connect-timeout must be longer than zero",
        ),
        (&["--payload", "10"], "--payload must be at least 64 bytes"),
        (
            &["--scenario", "dm", "--clients", "3"],
            "--clients must be even",
        ),
        (&["--label", "../x"], "--label may only hold"),
        (
            &["--churn", "5"],
            "--churn needs --scenario room and --protocol binary",
        ),
        (
            &["--scenario", "room", "--churn", "200"],
            "--churn must be a percentage",
        ),
    ];
    for (args, expected) in cases {
        let run = run_loadgen(args);
        assert_eq!(run.code, Some(exit::USAGE), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        let line = run.stderr_line();
        assert!(line.starts_with("loadgen: error: "), "{args:?}: {line}");
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

#[test]
fn addr_takes_a_host_name() {
    // --addr is resolved before the other flags are checked, so a complaint about
    // --clients shows that localhost was accepted, without connecting anywhere.
    let run = run_loadgen(&["--addr", "localhost:7878", "--clients", "0"]);
    assert_eq!(run.code, Some(exit::USAGE), "{}", run.stderr);
    assert_eq!(
        run.stderr_line(),
        "loadgen: error: --clients must be at least 1"
    );
}

#[test]
fn unreadable_inputs_exit_1_with_one_line() {
    let out = out_dir("cli-unreadable");
    let csv = out.join("missing.csv").display().to_string();
    let hgrm = out.join("missing.hgrm").display().to_string();
    let svg = out.join("x.svg").display().to_string();
    let html = out.join("x.html").display().to_string();
    for (args, file) in [
        (vec!["compare", csv.as_str()], &csv),
        (vec!["plot", hgrm.as_str(), "-o", svg.as_str()], &hgrm),
        (vec!["report", csv.as_str(), "-o", html.as_str()], &csv),
    ] {
        let run = run_loadgen(&args);
        assert_eq!(run.code, Some(exit::ERROR), "{args:?}: {}", run.stderr);
        let line = run.stderr_line();
        assert!(
            line.starts_with(&format!("loadgen: error: cannot read {file}: ")),
            "{line}"
        );
        assert_eq!(line.matches("os error").count(), 1, "said once: {line}");
    }
}

#[test]
fn inputs_of_the_wrong_kind_are_named_in_one_line() {
    let out = out_dir("cli-wrong-kind");
    let hgrm = out.join("run.hgrm");
    std::fs::write(
        &hgrm,
        "       Value     Percentile TotalCount 1/(1-Percentile)\n\n       0.100 0.000000000000          1           1.00\n",
    )
    .expect("write");
    let other_csv = out.join("other.csv");
    std::fs::write(&other_csv, "name,age\nann,3\n").expect("write");
    let svg = out.join("x.svg").display().to_string();
    let (hgrm, other_csv) = (hgrm.display().to_string(), other_csv.display().to_string());
    for (args, expected) in [
        (
            vec!["compare", hgrm.as_str()],
            format!("loadgen: error: {hgrm}: not a loadgen summary CSV"),
        ),
        (
            vec!["compare", other_csv.as_str()],
            format!("loadgen: error: {other_csv}: not a loadgen summary CSV"),
        ),
        (
            vec!["plot", other_csv.as_str(), "-o", svg.as_str()],
            format!("loadgen: error: {other_csv}: not a .hgrm file"),
        ),
    ] {
        let run = run_loadgen(&args);
        assert_eq!(run.code, Some(exit::ERROR), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr_line(), expected, "{args:?}");
    }
}

#[test]
fn no_server_exits_1_with_a_reason() {
    // Bind then drop a listener: nobody listens on that port afterwards.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let out = out_dir("cli-refused");
    let output = Command::new(loadgen_bin())
        .args(quick_args(addr, &out))
        .output()
        .expect("run loadgen");
    assert_eq!(output.status.code(), Some(exit::ERROR));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "loadgen: error: no client could connect to {addr}"
        )),
        "{stderr}"
    );
}

#[test]
fn missed_thresholds_have_their_own_exit_codes() {
    let server = TestServer::start(Fault::Drop { every: 5 });
    let out = out_dir("cli-thresholds");
    let run = |extra: &[&str]| {
        let output = Command::new(loadgen_bin())
            .args(quick_args(server.addr, &out))
            .args(extra)
            .output()
            .expect("run loadgen");
        output.status.code()
    };
    // Every message takes at least a microsecond, and every fifth is dropped.
    assert_eq!(
        run(&["--max-p99", "1us", "--max-loss", "1000000"]),
        Some(exit::P99_EXCEEDED)
    );
    assert_eq!(run(&["--max-loss", "0"]), Some(exit::LOSS_EXCEEDED));
    assert_eq!(
        run(&["--max-p99", "1us", "--max-loss", "0"]),
        Some(exit::BOTH_EXCEEDED)
    );
    assert_eq!(
        run(&["--max-p99", "60s", "--max-loss", "1000000"]),
        Some(exit::OK)
    );
}

#[test]
fn thresholds_are_printed_with_their_measured_value() {
    let server = real_server();
    let out = out_dir("cli-threshold-lines");
    let output = Command::new(loadgen_bin())
        .args(quick_args(server.local_addr(), &out))
        // No reply takes under a microsecond; a clean server loses nothing.
        .args(["--max-p99", "1us", "--max-loss", "1000000"])
        .output()
        .expect("run loadgen");
    assert_eq!(output.status.code(), Some(exit::P99_EXCEEDED));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("threshold "))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("threshold p99 <= 0.001 ms: measured ")
            && lines[0].ends_with("  FAIL"),
        "{stdout}"
    );
    assert_eq!(
        lines[1], "threshold lost <= 1000000: measured 0  PASS",
        "{stdout}"
    );
}

#[test]
fn ctrl_c_ends_the_run_early_and_still_writes_results() {
    let server = TestServer::start(Fault::None);
    let out = out_dir("cli-interrupt");
    let mut args = quick_args(server.addr, &out);
    let duration = args.iter().position(|a| a == "--duration").expect("flag") + 1;
    args[duration] = "60s".into();
    args.extend(["--label".to_string(), "cut".to_string()]);
    let child = Command::new(loadgen_bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    // Let it measure for a moment, then interrupt it like Ctrl+C does.
    std::thread::sleep(Duration::from_millis(2500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let started = Instant::now();
    let output = child.wait_with_output().expect("wait loadgen");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped promptly"
    );
    assert_eq!(output.status.code(), Some(exit::INTERRUPTED));
    let rows = results::read_summaries(&out.join("cut.csv")).expect("summary written");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(row.interrupted);
    assert!(
        row.duration_s > 0.0 && row.duration_s < 30.0,
        "duration {}",
        row.duration_s
    );
    assert!(row.sent > 0);
    assert_eq!(row.lost, 0, "the drain waited for the last answers");

    // compare leaves the cut-short run out unless asked, and says so.
    let summary = out.join("cut.csv").display().to_string();
    let compared = run_loadgen(&["compare", &summary]);
    assert_eq!(compared.code, Some(exit::OK), "{}", compared.stderr);
    assert_eq!(
        compared.stdout,
        "no runs\nleft out 1 interrupted run (--include-interrupted shows it)\n"
    );
    let compared = run_loadgen(&["compare", "--include-interrupted", &summary]);
    assert_eq!(compared.code, Some(exit::OK), "{}", compared.stderr);
    assert!(
        compared.stdout.contains("cut.csv:1") && compared.stdout.contains("interrupted"),
        "{}",
        compared.stdout
    );
}
