//! The `hostile` binary: a command line that cannot run exits 2, a failure to do what
//! was asked exits 1, each with one line on stderr.

mod common;

use common::{closed_port, run_hostile};

#[test]
fn usage_errors_exit_2_with_one_line() {
    // Every case names a port nobody listens on, so a case that is wrongly accepted
    // fails on its exit code without bothering a server on the default port.
    let addr = closed_port().to_string();
    let addr = addr.as_str();
    let cases: &[(&[&str], &str)] = &[
        // Refused by clap.
        (&["--frobnicate"], "unexpected argument '--frobnicate'"),
        (
            &["--addr", addr, "--connections", "many"],
            "invalid value 'many' for '--connections",
        ),
        (
            &["stats", "--addr", addr, "--timeout", "soon"],
            "invalid value 'soon' for '--timeout",
        ),
        (
            &["drain", "--addr", addr, "--clients"],
            "a value is required for '--clients",
        ),
        // Refused after parsing.
        (&["--addr", "127.0.0.1"], "--addr 127.0.0.1: "),
        (
            &["stats", "--addr", "127.0.0.1:99999"],
            "--addr 127.0.0.1:99999: ",
        ),
        (
            &["--addr", addr, "--connections", "0"],
            "--connections above 0",
        ),
        (
            &["--addr", addr, "--kinds", "nice"],
            "unknown kind \"nice\"",
        ),
        (
            &["--addr", addr, "--connect-rate", "0"],
            "--connect-rate must be positive",
        ),
        (
            &["--addr", addr, "--talk-rate=-1"],
            "--talk-rate must be positive",
        ),
        (
            &["drain", "--addr", addr, "--clients", "0"],
            "--clients must be at least 1",
        ),
        (
            &["drain", "--addr", addr, "--rate", "0"],
            "--rate must be positive",
        ),
        (
            &["fanout", "--addr", addr, "--members", "3", "--senders", "4"],
            "--senders at most --members",
        ),
        (
            &["stats", "--addr", addr, "--watch", "often"],
            "invalid value 'often' for '--watch",
        ),
        (
            &["rtt", "--addr", addr, "--count", "0"],
            "--count must be at least 1",
        ),
        (
            &["rtt", "--addr", addr, "--request", "list"],
            "unknown request \"list\"",
        ),
        (
            &[
                "--addr",
                addr,
                "--partial-frame",
                "1KiB",
                "--partial-sent",
                "1KiB",
            ],
            "--partial-sent 1024 must be below",
        ),
    ];
    for (args, expected) in cases {
        let run = run_hostile(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        let line = run.stderr_line();
        assert!(line.starts_with("hostile: "), "{args:?}: {line}");
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

#[test]
fn stats_from_a_closed_port_exits_1_with_one_line() {
    let addr = closed_port().to_string();
    let run = run_hostile(&["stats", "--addr", &addr, "--timeout", "5s"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let line = run.stderr_line();
    assert!(
        line.starts_with(&format!("hostile: cannot read stats from {addr}: ")),
        "{line}"
    );
    assert_eq!(line.matches("os error").count(), 1, "said once: {line}");
}
