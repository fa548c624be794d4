//! Unit tests of `cli`.

use std::net::SocketAddr;
use std::time::UNIX_EPOCH;

use super::start_at::start_instant;
use super::*;
use crate::config::{Config, ConfigError};

#[test]
fn defaults_parse_into_the_default_config() {
    let cli = Cli::try_parse_from(["loadgen"]).expect("parses");
    assert!(cli.command.is_none());
    let config = cli.run.into_config().expect("valid");
    assert_eq!(config, Config::default());
}

#[test]
fn flags_reach_the_config() {
    let cli = Cli::try_parse_from([
        "loadgen",
        "--clients",
        "1000",
        "--rate",
        "50",
        "--scenario",
        "room",
        "--room-size",
        "5",
        "--protocol",
        "text",
        "--max-p99",
        "20ms",
        "--max-loss",
        "0",
        "--label",
        "night",
        "-q",
    ])
    .expect("parses");
    let config = cli.run.into_config().expect("valid");
    assert_eq!(config.clients, 1000);
    assert_eq!(config.rate, 50.0);
    assert_eq!(config.scenario, Scenario::Room);
    assert_eq!(config.room_size, 5);
    assert_eq!(config.protocol, Protocol::Text);
    assert_eq!(config.thresholds.max_p99, Some(Duration::from_millis(20)));
    assert_eq!(config.thresholds.max_loss, Some(0));
    assert_eq!(config.label(), "night");
    assert!(!config.progress);
}

#[test]
fn subcommands_parse() {
    let cli = Cli::try_parse_from(["loadgen", "compare", "a.csv", "b.csv"]).expect("parses");
    assert!(
        matches!(cli.command, Some(Command::Compare { files, include_interrupted: false }) if files.len() == 2)
    );
    let cli = Cli::try_parse_from(["loadgen", "plot", "a.hgrm", "-o", "x.svg"]).expect("parses");
    assert!(
        matches!(cli.command, Some(Command::Plot { output, .. }) if output == std::path::Path::new("x.svg"))
    );
    assert!(
        Cli::try_parse_from(["loadgen", "plot", "a.hgrm"]).is_err(),
        "-o is required"
    );
}

#[test]
fn addr_takes_a_host_name() {
    let cli = Cli::try_parse_from(["loadgen", "--addr", "localhost:7878"]).expect("parses");
    let config = cli.run.into_config().expect("valid");
    assert!(config.addrs[0].ip().is_loopback(), "{:?}", config.addrs);
    assert_eq!(config.addrs[0].port(), 7878);
}

#[test]
fn start_at_parses_rfc3339_utc_and_delays() {
    let at = |secs: u64, nanos: u32| StartAt::At(UNIX_EPOCH + Duration::new(secs, nanos));
    assert_eq!(parse_start_at("1970-01-01T00:00:00Z"), Ok(at(0, 0)));
    assert_eq!(
        parse_start_at("2026-12-03T15:00:00Z"),
        Ok(at(1_796_310_000, 0))
    );
    assert_eq!(
        parse_start_at("2024-02-29t23:59:59.25z"),
        Ok(at(1_709_251_199, 250_000_000))
    );
    assert_eq!(
        parse_start_at("+5s"),
        Ok(StartAt::In(Duration::from_secs(5)))
    );
    assert_eq!(
        parse_start_at("+1500ms"),
        Ok(StartAt::In(Duration::from_millis(1500)))
    );
    for bad in [
        "2026-12-03T15:00:00",
        "2026-12-03T15:00:00+01:00",
        "2025-02-29T00:00:00Z",
        "2026-12-03T24:00:00Z",
        "2026-13-03T15:00:00Z",
        "2026-12-03T15:00:00.Z",
        "15:00",
        "+soon",
        "",
    ] {
        assert!(parse_start_at(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_start_in_the_past_or_too_soon_for_the_ramp_is_refused() {
    let now = UNIX_EPOCH + Duration::from_secs(1_796_310_000);
    let check = |start, clients, connect_rate| {
        start_instant("T", start, now, clients, connect_rate).map_err(|e| e.to_string())
    };
    assert_eq!(
        check(StartAt::At(now - Duration::from_secs(2)), 10, 1000.0),
        Err("--start-at T: that is 2.000s in the past".into())
    );
    assert_eq!(
        check(StartAt::In(Duration::from_millis(500)), 1000, 1000.0),
        Err(
            "--start-at T: that is in 0.500s, but connecting 1000 clients at \
             --connect-rate 1000 takes about 1.000s; start later"
                .into()
        )
    );
    assert!(check(StartAt::In(Duration::from_secs(25 * 3600)), 1, 1000.0).is_err());
    assert_eq!(
        check(StartAt::In(Duration::from_secs(2)), 1000, 1000.0),
        Ok(now + Duration::from_secs(2))
    );
    // Through the command line: a usage error naming the flag, on one line.
    let cli =
        Cli::try_parse_from(["loadgen", "--start-at", "2000-01-01T00:00:00Z"]).expect("parses");
    let err = cli.run.into_config().expect_err("in the past");
    assert!(matches!(err, CliError::StartAt { .. }), "{err:?}");
    let cli = Cli::try_parse_from(["loadgen", "--start-at", "noon"]).expect("parses");
    let err = cli.run.into_config().expect_err("not a time").to_string();
    assert!(
        err.starts_with("--start-at noon: expected an RFC 3339"),
        "{err}"
    );
    let cli = Cli::try_parse_from(["loadgen", "--start-at", "+3s"]).expect("parses");
    let config = cli.run.into_config().expect("valid");
    assert!(config.start_at.is_some());
}

#[test]
fn addr_takes_a_list() {
    let cli = Cli::try_parse_from(["loadgen", "--addr", "127.0.0.1:7000, 127.0.0.2:7001"])
        .expect("parses");
    let config = cli.run.into_config().expect("valid");
    let want: Vec<SocketAddr> = vec![
        "127.0.0.1:7000".parse().expect("addr"),
        "127.0.0.2:7001".parse().expect("addr"),
    ];
    assert_eq!(config.addrs, want);
    assert_eq!(config.addr_list(), "127.0.0.1:7000,127.0.0.2:7001");
    for bad in ["127.0.0.1:7000,", "127.0.0.1:7000,127.0.0.1", ","] {
        let cli = Cli::try_parse_from(["loadgen", "--addr", bad]).expect("parses");
        let err = cli.run.into_config().expect_err(bad);
        assert!(
            err.to_string().starts_with(&format!("--addr {bad}: ")),
            "{err}"
        );
    }
}

#[test]
fn an_addr_without_a_valid_port_is_refused() {
    for addr in ["127.0.0.1", "127.0.0.1:99999", "localhost:port"] {
        let cli = Cli::try_parse_from(["loadgen", "--addr", addr]).expect("parses");
        let err = cli.run.into_config().expect_err(addr);
        assert!(matches!(err, CliError::Addr { .. }), "{addr}: {err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("--addr {addr}: ")),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
}

#[test]
fn clap_errors_become_one_line() {
    let message = |args: &[&str]| {
        let err = Cli::try_parse_from(args).expect_err("refused");
        CliError::Parse(err).to_string()
    };
    assert_eq!(
        message(&["loadgen", "--clients", "many"]),
        "invalid value 'many' for '--clients <CLIENTS>': invalid digit found in string"
    );
    assert_eq!(
        message(&["loadgen", "plot"]),
        "the following required arguments were not provided: --output <OUTPUT>, <FILES>..."
    );
    let unknown = message(&["loadgen", "--client", "5"]);
    assert!(
        unknown.starts_with("unexpected argument '--client' found; tip: "),
        "{unknown}"
    );
    assert!(!unknown.contains("Usage"), "{unknown}");
}

#[test]
fn short_flags_and_aliases_reach_the_config() {
    let cli = Cli::try_parse_from(["loadgen", "-c", "40", "-r", "2.5", "-d", "5s", "-t", "3"])
        .expect("parses");
    let config = cli.run.into_config().expect("valid");
    assert_eq!(config.clients, 40);
    assert_eq!(config.rate, 2.5);
    assert_eq!(config.duration, Duration::from_secs(5));
    assert_eq!(config.threads, 3);
    let cli = Cli::try_parse_from(["loadgen", "--connections", "7"]).expect("parses");
    assert_eq!(cli.run.clients, 7);
}

#[test]
fn total_rate_is_shared_among_the_clients() {
    for args in [
        ["loadgen", "-c", "10", "-R", "1000"],
        ["loadgen", "-c", "10", "--total-rate", "1000"],
    ] {
        let cli = Cli::try_parse_from(args).expect("parses");
        let config = cli.run.into_config().expect("valid");
        assert_eq!(config.rate, 100.0, "{args:?}");
        assert_eq!(config.target_rate(), 1000.0, "{args:?}");
    }
}

#[test]
fn a_total_rate_out_of_range_names_that_flag() {
    for (args, expected) in [
        (
            &["loadgen", "-c", "10", "-R", "0"][..],
            "--total-rate must be between 0.01 and 10000000 messages per second for 10 clients, not 0",
        ),
        (
            &["loadgen", "--total-rate", "0"][..],
            "--total-rate must be between 0.1 and 100000000 messages per second for 100 clients, not 0",
        ),
        (
            &["loadgen", "-c", "1000", "-R", "0.5"][..],
            "--total-rate must be between 1 and 1000000000 messages per second for 1000 clients, not 0.5",
        ),
        (&["loadgen", "--total-rate=-5"][..], "not -5"),
        (&["loadgen", "-R", "inf"][..], "not inf"),
    ] {
        let cli = Cli::try_parse_from(args).expect("parses");
        let err = cli.run.into_config().expect_err("refused");
        assert!(
            matches!(err, CliError::TotalRate { .. }),
            "{args:?}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.starts_with("--total-rate must be"), "{message}");
        assert!(message.ends_with(expected), "{args:?}: {message}");
    }
}

#[test]
fn rate_and_total_rate_exclude_each_other() {
    let err = Cli::try_parse_from(["loadgen", "-r", "5", "-R", "1000"]).expect_err("refused");
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
}

#[test]
fn invalid_combinations_are_refused_before_running() {
    let cli =
        Cli::try_parse_from(["loadgen", "--scenario", "dm", "--clients", "3"]).expect("parses");
    assert!(matches!(
        cli.run.into_config(),
        Err(CliError::Config(ConfigError::OddPairs(3)))
    ));
}
