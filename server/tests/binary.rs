//! Tests of the `server` binary itself: flags, the `listening on` line, the worker
//! count, and a graceful exit on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn help_documents_every_flag_with_its_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("--help")
        .output()
        .expect("run server --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--workers",
        "--backlog",
        "--max-connections",
        "--max-frame",
        "--max-line",
        "--max-pending",
        "--rate-limit",
        "--rate-burst",
        "--flood-close-after",
        "--coalesce",
        "--idle-timeout",
        "--shutdown-timeout",
        "--log-interval",
        "--metrics",
        "--tls-cert",
        "--tls-key",
        "--tls-handshake-timeout",
        "--log-format",
        "--verbose",
        "--quiet",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    for default in ["127.0.0.1:7878", "1024", "10000", "1MiB", "4KiB", "240s"] {
        assert!(help.contains(default), "--help lacks default {default}");
    }
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--idle-timeout", "soon"])
        .output()
        .expect("run server");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a duration"));
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--workers", "0", "--bind", "127.0.0.1:0"])
        .output()
        .expect("run server");
    assert_eq!(
        out.status.code(),
        Some(2),
        "range checks are usage errors too"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--bind", "no-such-host.invalid:7878"])
        .output()
        .expect("run server");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-host.invalid"));
    for (flag, value) in [("--coalesce", "20ms"), ("--flood-close-after", "0")] {
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .args([flag, value, "--bind", "127.0.0.1:0"])
            .output()
            .expect("run server");
        assert_eq!(out.status.code(), Some(2), "{flag} {value} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains(flag));
    }
}

#[test]
fn starts_exactly_n_workers_and_exits_zero_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--bind", "127.0.0.1:0", "--workers", "3", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(!addr.ends_with(":0"), "{addr}");

    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.write_all(b"/echo hi\n").unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut greeting = String::new();
    while !greeting.contains(":hi") {
        greeting.clear();
        reader.read_line(&mut greeting).unwrap();
        assert!(!greeting.is_empty(), "closed early");
    }

    // A thread names itself once it first runs, so on a busy machine a worker may
    // still show its parent's name for a moment: wait for the names, then count.
    let count_workers = || {
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("worker-"))
            .count()
    };
    let start = Instant::now();
    while count_workers() < 3 && start.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(count_workers(), 3);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.contains("* server shutting down"), "{rest:?}");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A closed stderr must not stop a graceful shutdown.
#[test]
fn sigterm_shuts_down_even_with_stderr_closed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--log-interval",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on "), "{line:?}");
    drop(child.stderr.take()); // the reading end goes away: writes now fail (EPIPE)
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // Logging to the closed stderr may fail, but the server must have stopped.
            assert!(status.code().is_some(), "killed by a signal: {status:?}");
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the binary with `args`; returns it and the address it printed.
fn start(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    BufReader<std::process::ChildStderr>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr, stderr)
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_second_server_on_a_taken_address_exits_1_unless_told_to_share_it() {
    let (first, addr, _) = start(&["--bind", "127.0.0.1:0", "--workers", "1", "-q"]);
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--bind", &addr, "--workers", "1", "-q"])
        .output()
        .expect("run second server");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use") && stderr.contains("--share-port"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it never said it was listening");
    // On purpose, both share it.
    let (second, shared_addr, _) =
        start(&["--bind", &addr, "--workers", "1", "-q", "--share-port"]);
    assert_eq!(shared_addr, addr);
    stop(second);
    stop(first);
}

#[test]
fn bind_takes_a_host_name() {
    let (child, addr, _) = start(&["--bind", "localhost:0", "--workers", "1", "-q"]);
    let mut client = TcpStream::connect(&addr).expect("connect");
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    client.write_all(b"/echo x\n").expect("send");
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    while !line.ends_with(":x\n") {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "closed early"
        );
    }
    stop(child);
}

#[test]
fn turning_connections_away_is_logged_with_a_count() {
    let (child, addr, mut stderr) = start(&[
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--max-connections",
        "1",
        "--log-interval",
        "0",
    ]);
    let _kept = TcpStream::connect(&addr).expect("connect");
    let mut refused = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(&addr).expect("connect");
        c.write_all(b"hi\n").expect("send");
        refused.push(c);
    }
    let start = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read") > 0,
            "stderr closed"
        );
        if line.contains("turned connections away: server full") {
            assert!(line.contains("count=3"), "{line}");
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "no notice");
    }
    stop(child);
}

#[test]
fn metrics_and_json_logs_when_asked_for() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut listening = String::new();
    stdout.read_line(&mut listening).expect("first line");
    assert!(
        listening.starts_with("listening on 127.0.0.1:"),
        "{listening:?}"
    );
    let mut metrics = String::new();
    stdout.read_line(&mut metrics).expect("second line");
    let addr = metrics
        .trim()
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("unexpected line {metrics:?}"))
        .to_owned();
    let mut scrape = TcpStream::connect(&addr).expect("connect to metrics");
    scrape.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    scrape.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.contains("chat_connections{worker=\"0\"}"),
        "{response}"
    );
    let mut line = String::new();
    stderr.read_line(&mut line).expect("a log line");
    assert!(
        line.starts_with('{')
            && line.trim_end().ends_with('}')
            && line.contains("\"level\":\"INFO\""),
        "not a JSON log line: {line:?}"
    );
    stop(child);
}

#[test]
fn a_taken_metrics_address_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--bind", "127.0.0.1:0", "--metrics", &addr, "-q"])
        .output()
        .expect("run server");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metrics address") && stderr.contains(&addr),
        "{stderr}"
    );
}
