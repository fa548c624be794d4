//! Unit tests of `runner`.

use std::time::Duration;

use super::preflight::preflight_warnings;
use super::*;
use crate::client::ClientPlan;
use crate::config::{Protocol, Scenario};

#[test]
fn rooms_spread_over_threads_and_cover_every_client() {
    let config = Config {
        clients: 23,
        scenario: Scenario::Room,
        room_size: 5,
        threads: 3,
        ..Config::default()
    };
    let plans = plan_clients(&config, "abcd");
    assert_eq!(plans.len(), 3);
    let mut ids: Vec<u32> = plans.iter().flatten().map(|p| p.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..23).collect::<Vec<_>>());
    for (t, thread) in plans.iter().enumerate() {
        assert!(thread.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");
        for p in thread {
            assert_eq!(p.id as usize % 3, t);
            assert_eq!(
                p.room.as_deref(),
                Some(format!("lg-abcd-{}", p.group_start / 5).as_str())
            );
        }
    }
    let last = plans
        .iter()
        .flatten()
        .find(|p| p.id == 22)
        .expect("client 22");
    assert_eq!((last.group_start, last.group_len), (20, 3));
}

#[test]
fn preflight_warns_when_clients_exceed_the_open_files_limit() {
    let config = Config {
        clients: 5000,
        threads: 4,
        ..Config::default()
    };
    let warnings = preflight_warnings(&config, Some(1024));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("--clients 5000 needs about 5080 open files but the limit is 1024"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("about 944 clients"), "{}", warnings[0]);
    assert!(preflight_warnings(&config, Some(1 << 20)).is_empty());
    assert!(preflight_warnings(&config, None).is_empty());
}

#[test]
fn preflight_warns_when_the_ramp_outlasts_the_duration() {
    let config = Config {
        clients: 5000,
        connect_rate: 1000.0,
        duration: Duration::from_secs(2),
        ..Config::default()
    };
    let warnings = preflight_warnings(&config, Some(1 << 20));
    assert_eq!(
        warnings,
        ["connecting 5000 clients at --connect-rate 1000 takes 5.0s, longer than --duration 2.0s"]
    );
    let enough = Config {
        duration: Duration::from_secs(10),
        ..config
    };
    assert!(preflight_warnings(&enough, Some(1 << 20)).is_empty());
}

#[test]
fn preflight_warns_when_rooms_are_split_over_addresses() {
    let two = vec![
        "127.0.0.1:7000".parse().expect("addr"),
        "127.0.0.1:7001".parse().expect("addr"),
    ];
    let room = Config {
        scenario: Scenario::Room,
        addrs: two.clone(),
        ..Config::default()
    };
    let warnings = preflight_warnings(&room, Some(1 << 20));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("--scenario room over 2 addresses"));
    let echo = Config {
        addrs: two,
        ..Config::default()
    };
    assert!(preflight_warnings(&echo, Some(1 << 20)).is_empty());
}

#[test]
fn dm_pairs_know_each_others_nicks() {
    let config = Config {
        clients: 4,
        scenario: Scenario::Dm,
        threads: 8,
        ..Config::default()
    };
    let plans = plan_clients(&config, "beef");
    assert_eq!(plans.len(), 2, "no more threads than groups");
    let all: Vec<&ClientPlan> = plans.iter().flatten().collect();
    let c2 = all.iter().find(|p| p.id == 2).expect("client 2");
    assert_eq!(c2.nick.as_deref(), Some("lgbeef-2"));
    assert_eq!(c2.partner_nick.as_deref(), Some("lgbeef-3"));
    let c3 = all.iter().find(|p| p.id == 3).expect("client 3");
    assert_eq!(c3.partner_nick.as_deref(), Some("lgbeef-2"));
    for p in &all {
        shared::names::validate_nick(p.nick.as_deref().unwrap_or_default()).expect("valid nick");
    }
}

#[test]
fn binary_room_clients_keep_their_server_nicks() {
    let config = Config {
        clients: 4,
        scenario: Scenario::Room,
        protocol: Protocol::Binary,
        ..Config::default()
    };
    assert!(
        plan_clients(&config, "0000")
            .iter()
            .flatten()
            .all(|p| p.nick.is_none())
    );
}
