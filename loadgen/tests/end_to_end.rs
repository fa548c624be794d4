//! Against the real chat server, started in-process on 127.0.0.1:0: every scenario and
//! protocol runs clean (no loss, no errors) at the target rate.

use loadgen::{Config, Protocol, Scenario};

use crate::common::{assert_rate_near, out_dir, quick_config, real_server, run};

fn check(scenario: Scenario, protocol: Protocol, clients: u32) {
    let server = real_server();
    let name = format!("e2e-{}-{}", scenario.name(), protocol.name());
    let out = out_dir(&name);
    let config = Config {
        scenario,
        room_size: 3,
        ..quick_config(server.local_addr(), clients, 20.0, 2, &out)
    };
    let report = run(&config);
    let s = &report.summary;
    assert_eq!(s.connected, clients, "{name}: {:?}", report.warnings);
    assert_eq!(s.errors, 0, "{name}: {:?}", report.warnings);
    assert_eq!(
        (s.lost, s.duplicated, s.reordered, s.corrupted),
        (0, 0, 0, 0),
        "{name}"
    );
    assert_rate_near(s.achieved_send_rate, config.target_rate(), 0.01);
    let fan_out = match scenario {
        // Four clients in rooms of three: rooms of 3 and 1.
        Scenario::Room => (3 * 3 + 1) as f64 / 4.0,
        Scenario::Echo | Scenario::Dm => 1.0,
    };
    // Clients send within one message of each other, so this holds to a few messages.
    let want = s.sent as f64 * fan_out;
    assert!(
        (s.expected as f64 - want).abs() <= 4.0,
        "{name}: expected {} for sent {}",
        s.expected,
        s.sent
    );
    assert_eq!(s.received, s.expected, "{name}");
    assert_rate_near(s.receive_rate, config.target_rate() * fan_out, 0.01);
    assert!(s.p50_us > 0 && s.p50_us <= s.p99_us, "{name}");
}

#[test]
fn echo_binary() {
    check(Scenario::Echo, Protocol::Binary, 4);
}

#[test]
fn echo_text() {
    check(Scenario::Echo, Protocol::Text, 4);
}

#[test]
fn room_binary() {
    check(Scenario::Room, Protocol::Binary, 4);
}

#[test]
fn room_text() {
    check(Scenario::Room, Protocol::Text, 4);
}

#[test]
fn dm_binary() {
    check(Scenario::Dm, Protocol::Binary, 4);
}

#[test]
fn dm_text() {
    check(Scenario::Dm, Protocol::Text, 4);
}

#[test]
fn a_client_turned_away_by_a_full_server_is_one_error() {
    for protocol in [Protocol::Binary, Protocol::Text] {
        let config = server::Config {
            bind: "127.0.0.1:0".parse().expect("addr"),
            workers: 2,
            max_connections: 2,
            ..server::Config::default()
        };
        let server = server::Server::bind(config).expect("bind server").spawn();
        let name = format!("e2e-full-{}", protocol.name());
        let out = out_dir(&name);
        let config = Config {
            protocol,
            ..quick_config(server.local_addr(), 4, 10.0, 1, &out)
        };
        let report = run(&config);
        let s = &report.summary;
        // Two clients fit; the other two are refused with `server-full` and closed.
        // Binary clients are refused in their handshake; text echo clients have none,
        // so they count as connected until the refusal arrives.
        if protocol == Protocol::Binary {
            assert_eq!(s.connected, 2, "{name}: {s:?}");
            assert_eq!(s.connect_failures, 2, "{name}: {s:?}");
        }
        assert_eq!(s.errors, 2, "{name}: {s:?} {:?}", report.warnings);
        assert_eq!(s.disconnects, 0, "{name}: {s:?}");
    }
}

/// A server holding a client back with its rate limit says so (error 209), and loadgen
/// reports it in words instead of counting it as an error or leaving the loss
/// unexplained.
#[test]
fn a_rate_limited_client_is_reported_plainly_not_as_an_error() {
    let config = server::Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        rate_limit: 200,
        rate_burst: 20,
        ..server::Config::default()
    };
    let server = server::Server::bind(config).expect("bind server").spawn();
    let out = out_dir("e2e-rate-limited");
    let report = run(&quick_config(server.local_addr(), 1, 2000.0, 1, &out));
    let s = &report.summary;
    assert_eq!(s.errors, 0, "{s:?} {:?}", report.warnings);
    assert_eq!(s.server_errors, 0, "{s:?}");
    assert!(
        s.lost > 0,
        "held back at 200/s, it cannot all be answered: {s:?}"
    );
    assert!(
        report.warnings.iter().any(|w| w.starts_with(
            "the server rate-limited 1 of 1 clients (error 209); see its --rate-limit"
        )),
        "{:?}",
        report.warnings
    );
}

/// Members of a room drop and come back during the run, resuming from the last message
/// they saw: every member still gets every message once and in the room's order, and
/// what came in a replay is counted apart from the live traffic.
#[test]
fn churned_room_members_resume_and_lose_nothing() {
    let server = real_server();
    let out = out_dir("e2e-churn");
    let config = Config {
        scenario: Scenario::Room,
        room_size: 20,
        // 20 % of 20 clients a second over 3 s: about a dozen drops.
        churn: 20.0,
        churn_away: std::time::Duration::from_millis(150),
        ..quick_config(server.local_addr(), 20, 20.0, 4, &out)
    };
    let report = run(&config);
    let s = &report.summary;
    assert_eq!(s.connected, 20, "{:?}", report.warnings);
    assert_eq!(s.errors, 0, "{:?}", report.warnings);
    assert_eq!(
        (s.lost, s.duplicated, s.reordered, s.corrupted),
        (0, 0, 0, 0)
    );
    assert_eq!(s.order_breaks, Some(0));
    assert_eq!(s.resume_missed, Some(0));
    let reconnects = s.churn_reconnects.unwrap();
    assert!((8..=16).contains(&reconnects), "{reconnects} reconnects");
    let replayed = s.replayed.unwrap();
    // Each drop of 150 ms misses about 20 clients x 20/s x 0.15 s = 60 messages.
    assert!(
        replayed >= reconnects * 20,
        "{replayed} replayed for {reconnects} drops"
    );
    assert_eq!(s.received, s.expected);
    // A replayed message waited for its member to come back; live ones did not.
    assert!(s.replay_p50_us.unwrap() > s.p50_us);
    assert!(s.replay_max_us.unwrap() >= 50_000, "{:?}", s.replay_max_us);
    let text = std::fs::read_to_string(&report.files.summary).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(",replay_p50_us,replay_p99_us,replay_max_us")
    );
}

/// Without churn, a binary room run still checks the room order and finds it whole.
#[test]
fn a_binary_room_run_reports_an_unbroken_room_order() {
    let server = real_server();
    let out = out_dir("e2e-room-order");
    let config = Config {
        scenario: Scenario::Room,
        room_size: 4,
        ..quick_config(server.local_addr(), 8, 50.0, 2, &out)
    };
    let s = run(&config).summary;
    assert_eq!(s.order_breaks, Some(0));
    assert_eq!(s.churn_reconnects, None);
    assert_eq!(s.lost, 0);
}

/// `--addr A,B`: client i goes to address i mod 2, so each of two servers serves half of
/// the clients and sees half of the echo requests, and the summary names both.
#[test]
fn an_echo_run_spreads_its_clients_over_two_servers() {
    let (a, b) = (real_server(), real_server());
    let out = out_dir("e2e-two-servers");
    let config = Config {
        addrs: vec![a.local_addr(), b.local_addr()],
        ..quick_config(a.local_addr(), 6, 20.0, 2, &out)
    };
    let report = run(&config);
    let s = &report.summary;
    assert_eq!(s.connected, 6, "{:?}", report.warnings);
    assert_eq!((s.errors, s.lost), (0, 0), "{:?}", report.warnings);
    assert_eq!(s.addr, format!("{},{}", a.local_addr(), b.local_addr()));
    let stat = |server: &server::Running, name: &str| {
        let stats = server.handle().stats();
        stats.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    };
    for server in [&a, &b] {
        assert_eq!(stat(server, "connections_total"), Some(3));
        // Every measured message went to its client's server; the few extra are the
        // handshakes.
        let messages_in = stat(server, "messages_in").expect("messages_in");
        assert!(
            messages_in >= s.sent / 2 && messages_in <= s.sent / 2 + 3 * 4,
            "{messages_in} messages in for {} sent in all",
            s.sent
        );
    }
    // The summary row reads back with the list in its addr column.
    let rows = loadgen::results::read_summaries(&report.files.summary).expect("summary");
    assert_eq!(rows[0].addr, s.addr);
}
