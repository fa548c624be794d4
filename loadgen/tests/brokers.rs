//! Against real brokers, Debian's `redis-server` and `nats-server` on a free port of
//! 127.0.0.1: the room scenario publishes to one channel or subject per room and every
//! member receives every message of its room, none lost; a broker that is not what
//! `--protocol` says, or that dies during the run, ends the run with a clear account.

use std::time::{Duration, Instant};

use loadgen::{Config, Protocol, Scenario};

use crate::common::brokers::{Broker, Kind};
use crate::common::{assert_rate_near, loadgen_bin, out_dir, quick_config, run, run_loadgen};

fn room_run(kind: Kind, protocol: Protocol) {
    let broker = Broker::start(kind);
    let name = format!("brokers-room-{}", protocol.name());
    let out = out_dir(&name);
    // Six members in rooms of three: two channels, each message delivered three times.
    let config = Config {
        scenario: Scenario::Room,
        room_size: 3,
        protocol,
        ..quick_config(broker.addr, 6, 20.0, 2, &out)
    };
    let report = run(&config);
    let s = &report.summary;
    assert_eq!(s.connected, 6, "{name}: {:?}", report.warnings);
    assert_eq!(s.errors, 0, "{name}: {:?}", report.warnings);
    assert_eq!(
        (s.lost, s.duplicated, s.reordered, s.corrupted),
        (0, 0, 0, 0),
        "{name}"
    );
    assert!(s.sent > 0, "{name}: nothing sent");
    assert_eq!(
        s.expected,
        s.sent * 3,
        "{name}: deliveries = messages x receivers"
    );
    assert_eq!(s.received, s.expected, "{name}");
    assert_rate_near(s.achieved_send_rate, config.target_rate(), 0.01);
    assert_eq!(s.protocol, protocol.name());
    // Brokers give no room-wide message ids to check an order against.
    assert_eq!(s.order_breaks, None);
    assert!(s.p50_us > 0 && s.p50_us <= s.p99_us, "{name}");
}

#[test]
fn a_room_over_redis_pub_sub_loses_nothing() {
    room_run(Kind::Redis, Protocol::Redis);
}

#[test]
fn a_room_over_nats_loses_nothing() {
    room_run(Kind::Nats, Protocol::Nats);
}

/// NATS pings every 100 ms and drops a connection after one unanswered ping: members
/// that answer stay connected through a quiet run (a message a second), and lose
/// nothing.
#[test]
fn nats_pings_are_answered() {
    let out = out_dir("brokers-nats-pings");
    let conf = out.join("nats.conf");
    std::fs::write(&conf, "ping_interval: \"100ms\"\nping_max: 1\n").expect("write nats.conf");
    let broker = Broker::start_with(Kind::Nats, &["-c", conf.to_str().expect("UTF-8 path")]);
    let config = Config {
        scenario: Scenario::Room,
        room_size: 2,
        protocol: Protocol::Nats,
        ..quick_config(broker.addr, 2, 1.0, 2, &out)
    };
    let report = run(&config);
    let s = &report.summary;
    assert_eq!(
        (s.connected, s.disconnects, s.errors),
        (2, 0, 0),
        "{:?}",
        report.warnings
    );
    assert!(s.sent > 0);
    assert_eq!((s.lost, s.received), (0, s.sent * 2));
}

/// The wrong protocol on the port: no member gets ready, and the one line on stderr
/// says what the port speaks instead, well before the connect timeout.
#[test]
fn a_broker_of_the_other_kind_is_named_not_waited_for() {
    let redis = Broker::start(Kind::Redis);
    let nats = Broker::start(Kind::Nats);
    let out = out_dir("brokers-wrong-protocol");
    let out = out.to_str().expect("UTF-8 path");
    let cases = [
        (
            "nats",
            redis.addr,
            "not a NATS server: it began with \"-ERR",
        ),
        ("redis", nats.addr, "not RESP (is it a Redis server?)"),
    ];
    for (protocol, addr, says) in cases {
        let started = Instant::now();
        let addr = addr.to_string();
        let done = run_loadgen(&[
            "--protocol",
            protocol,
            "--scenario",
            "room",
            "--clients",
            "4",
            "--room-size",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--connect-timeout",
            "30s",
            "--addr",
            &addr,
            "--out",
            out,
            "-q",
        ]);
        assert_eq!(done.code, Some(1), "{protocol}: {}", done.stderr);
        let line = done.stderr_line();
        assert!(
            line.starts_with("loadgen: error: no client could connect"),
            "{line}"
        );
        assert!(line.contains(says), "{protocol}: {line}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{protocol}: took {:?}",
            started.elapsed()
        );
    }
}

/// Redis killed while the room is publishing: the run still ends on time, writes its
/// results, and counts every member's connection as lost.
#[test]
fn a_broker_that_dies_mid_run_ends_the_run_with_every_member_disconnected() {
    let mut redis = Broker::start(Kind::Redis);
    let out = out_dir("brokers-killed");
    let addr = redis.addr.to_string();
    let clients = 4;
    let loadgen = std::process::Command::new(loadgen_bin())
        .args([
            "--protocol",
            "redis",
            "--scenario",
            "room",
            "--clients",
            "4",
            "--room-size",
            "4",
            "--rate",
            "50",
            "--duration",
            "3s",
            "--warmup",
            "0s",
            "--grace",
            "1s",
            "--addr",
            &addr,
            "--out",
            out.to_str().expect("UTF-8 path"),
            "-q",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start loadgen");
    redis.wait_for_traffic(clients);
    let killed = Instant::now();
    redis.kill();
    let output = loadgen.wait_with_output().expect("loadgen output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "took {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read_to_string(out.join("room-redis.csv")).expect("summary written");
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let row: Vec<&str> = rows.next().expect("one run").split(',').collect();
    let column = |name: &str| {
        let i = header.iter().position(|h| *h == name).expect("column");
        row[i].parse::<u64>().expect("a count")
    };
    assert_eq!(column("connected"), 4);
    assert_eq!(column("disconnects"), 4, "{stdout}");
    assert!(column("sent") > 0, "{stdout}");
}

/// Combinations a broker cannot run are usage errors, refused before connecting.
#[test]
fn unsupported_broker_combinations_are_usage_errors() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--protocol", "redis"],
            "--protocol redis only supports --scenario room",
        ),
        (
            &["--protocol", "nats", "--scenario", "dm"],
            "--protocol nats only supports --scenario room",
        ),
        (
            &[
                "--protocol",
                "redis",
                "--scenario",
                "room",
                "--tls",
                "--tls-insecure",
            ],
            "--protocol redis does not support --tls",
        ),
        (
            &["--protocol", "nats", "--scenario", "room", "--churn", "1"],
            "--churn needs --scenario room and --protocol binary",
        ),
    ];
    for (args, says) in cases {
        // Port 9 (discard) on loopback: nothing may connect before the refusal.
        let mut args = args.to_vec();
        args.extend(["--addr", "127.0.0.1:9", "-q"]);
        let done = run_loadgen(&args);
        assert_eq!(done.code, Some(2), "{args:?}: {}", done.stderr);
        assert!(
            done.stderr_line().contains(says),
            "{args:?}: {}",
            done.stderr
        );
    }
}
