//! Logins: the right and wrong password, registered nicks, `--require-login`, the
//! throttle on an injected clock, the plaintext rule, and redaction.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use shared::Password;

use super::*;
use crate::accounts::{AccountStore, Accounts, HashCost, LoginThrottle};

/// A plaintext connection from another host.
const REMOTE: Origin = Origin {
    addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    tls: false,
};

/// A world whose accounts are `alice` (password `right pw`) and `bob` (`bobpw`).
fn world(require_login: bool, allow_plaintext: bool) -> World {
    let mut text = String::new();
    for (nick, pw) in [("alice", "right pw"), ("Bob", "bobpw")] {
        let hash = HashCost::TEST.hash(&Password::new(pw)).unwrap();
        text.push_str(&format!("{nick} {hash}\n"));
    }
    let accounts = Accounts::parse(&text, Path::new("test")).unwrap();
    let mut w = World::new();
    w.logins = Logins {
        store: AccountStore::with(accounts),
        throttle: LoginThrottle::default(),
        require_login,
        allow_plaintext,
    };
    w
}

fn login(nick: &str, pw: &str) -> Request {
    Request::Login {
        nick: nick.to_owned(),
        password: Password::new(pw),
    }
}

fn hello(w: &World, slot: u32, origin: Origin) -> Session {
    let mut s = Session::new(id(slot), Mode::Binary).with_origin(origin);
    w.apply(
        &mut s,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    s
}

#[test]
fn the_right_password_logs_in_and_takes_the_nick() {
    let w = world(false, false);
    let mut s = hello(&w, 1, Origin::LOOPBACK);
    let out = w.apply(&mut s, login("ALICE", "right pw"));
    assert!(
        matches!(replies(&out)[..], [Frame::NickChanged { old, new }] if old.starts_with("guest-") && new == "ALICE"),
        "{out:?}"
    );
    assert_eq!(s.account(), Some("alice"));
    assert_eq!(s.nick(), Some("ALICE"));
    // Logged in, it may change nick and come back to its own.
    let out = w.apply(&mut s, Request::SetNick("other".to_owned()));
    assert!(matches!(replies(&out)[..], [Frame::NickChanged { .. }]));
    let out = w.apply(&mut s, Request::SetNick("alice".to_owned()));
    assert!(matches!(replies(&out)[..], [Frame::NickChanged { new, .. }] if new == "alice"));
    // But not to someone else's account.
    let out = w.apply(&mut s, Request::SetNick("bob".to_owned()));
    assert_refused(&out, ErrorCode::NICK_REGISTERED);
}

#[test]
fn a_wrong_password_or_unknown_account_is_refused_and_counted() {
    let w = world(false, false);
    let mut s = w.text(1, "ann");
    for (nick, pw) in [
        ("alice", "zq1 guess"),
        ("alice", ""),
        ("nobody", "zq2 guess"),
        ("bad/nick", "zq3 guess"),
    ] {
        let out = w.apply(&mut s, login(nick, pw));
        let text = assert_refused(&out, ErrorCode::LOGIN_FAILED);
        assert!(text.contains("login failed"), "{text}");
        assert!(!text.contains("zq"), "{text}");
    }
    assert_eq!(s.account(), None);
    assert_eq!(s.nick(), Some("ann"));
    let stats = w.stats.snapshot();
    assert!(
        stats.contains(&("login_failures".to_owned(), 3)),
        "{stats:?}"
    );
}

#[test]
fn a_registered_nick_is_refused_to_a_guest() {
    let w = world(false, false);
    let mut s = w.binary(1, "ann");
    for nick in ["alice", "Alice", "BOB"] {
        let out = w.apply(&mut s, Request::SetNick(nick.to_owned()));
        let text = assert_refused(&out, ErrorCode::NICK_REGISTERED);
        assert!(text.contains("/login"), "{text}");
    }
    assert_eq!(s.nick(), Some("ann"));
    // An unregistered nick is still free to take.
    let out = w.apply(&mut s, Request::SetNick("carol".to_owned()));
    assert!(matches!(replies(&out)[..], [Frame::NickChanged { new, .. }] if new == "carol"));
}

#[test]
fn require_login_serves_only_the_handshake_login_keepalives_and_goodbye() {
    let w = world(true, false);
    let mut s = hello(&w, 1, Origin::LOOPBACK);
    for request in [
        Request::SetNick("zed".to_owned()),
        join("lobby".to_owned()),
        Request::Say {
            room: None,
            text: "hi".to_owned(),
        },
        Request::Stats,
        Request::Rooms,
        Request::Echo(Bytes::from_static(b"x")),
    ] {
        let out = w.apply(&mut s, request.clone());
        let text = assert_refused(&out, ErrorCode::LOGIN_REQUIRED);
        assert!(text.contains("/login"), "{request:?}: {text}");
    }
    let out = w.apply(&mut s, Request::Ping(7));
    assert!(matches!(replies(&out)[..], [Frame::Pong { token: 7 }]));
    let out = w.apply(&mut s, login("bob", "bobpw"));
    assert!(matches!(replies(&out)[..], [Frame::NickChanged { new, .. }] if new == "bob"));
    let out = w.apply(&mut s, join("lobby".to_owned()));
    assert!(
        matches!(replies(&out)[..], [Frame::Joined { .. }]),
        "{out:?}"
    );
    let out = w.apply(&mut s, Request::Goodbye);
    assert!(matches!(out[..], [Effect::CloseAfterFlush(_)]));
    // A text client is greeted as ever, and goodbye works before a login.
    let mut t = Session::new(id(2), Mode::Text);
    let mut out = Vec::new();
    t.greet(&w.ctx(), &mut out);
    assert!(matches!(
        replies(&out)[..],
        [Frame::Welcome { .. }, Frame::Joined { .. }]
    ));
    let out = w.apply(&mut t, Request::Goodbye);
    assert!(out.iter().any(|e| matches!(e, Effect::CloseAfterFlush(_))));
}

#[test]
fn failures_throttle_the_account_and_the_address_without_checking() {
    let w = world(false, false);
    let mut s = hello(&w, 1, Origin::LOOPBACK);
    for _ in 0..3 {
        let out = w.apply(&mut s, login("alice", "guess"));
        assert!(assert_refused(&out, ErrorCode::LOGIN_FAILED).contains("login failed"));
    }
    // Inside the wait even the right password is refused, unchecked.
    let out = w.apply(&mut s, login("alice", "right pw"));
    let text = assert_refused(&out, ErrorCode::LOGIN_FAILED);
    assert!(text.contains("try again in 1 s"), "{text}");
    // The same address is throttled for another account too.
    let out = w.apply(&mut s, login("bob", "bobpw"));
    assert!(assert_refused(&out, ErrorCode::LOGIN_FAILED).contains("try again"));
    let stats = w.stats.snapshot();
    assert!(
        stats.contains(&("login_failures".to_owned(), 3)),
        "{stats:?}"
    );
    assert!(
        stats.contains(&("login_throttled".to_owned(), 2)),
        "{stats:?}"
    );
    // A second later it is checked again; one more failure doubles the wait.
    w.now.set(w.now.get() + Duration::from_secs(1));
    let out = w.apply(&mut s, login("alice", "guess"));
    assert!(assert_refused(&out, ErrorCode::LOGIN_FAILED).contains("login failed"));
    let out = w.apply(&mut s, login("alice", "right pw"));
    assert!(assert_refused(&out, ErrorCode::LOGIN_FAILED).contains("try again in 2 s"));
    w.now.set(w.now.get() + Duration::from_secs(2));
    let out = w.apply(&mut s, login("alice", "right pw"));
    assert!(matches!(replies(&out)[..], [Frame::NickChanged { new, .. }] if new == "alice"));
}

#[test]
fn a_password_over_plaintext_from_another_host_is_refused_unchecked() {
    let w = world(false, false);
    let mut s = hello(&w, 1, REMOTE);
    let out = w.apply(&mut s, login("alice", "right pw"));
    let text = assert_refused(&out, ErrorCode::LOGIN_FAILED);
    assert!(text.contains("TLS"), "{text}");
    assert!(
        w.stats
            .snapshot()
            .contains(&("login_failures".to_owned(), 0))
    );
    // Over TLS the same host may log in.
    let mut s = hello(
        &w,
        2,
        Origin {
            tls: true,
            ..REMOTE
        },
    );
    let out = w.apply(&mut s, login("alice", "right pw"));
    assert!(
        matches!(replies(&out)[..], [Frame::NickChanged { .. }]),
        "{out:?}"
    );
    // Loopback is loopback also as an IPv4-mapped IPv6 address.
    let mapped = Origin {
        addr: "::ffff:127.0.0.1".parse().unwrap(),
        tls: false,
    };
    let mut s = hello(&w, 4, mapped);
    let out = w.apply(&mut s, login("bob", "bobpw"));
    assert!(
        matches!(replies(&out)[..], [Frame::NickChanged { .. }]),
        "{out:?}"
    );
    // And with --allow-plaintext-login over plaintext too.
    let w = world(false, true);
    let mut s = hello(&w, 3, REMOTE);
    let out = w.apply(&mut s, login("bob", "bobpw"));
    assert!(
        matches!(replies(&out)[..], [Frame::NickChanged { .. }]),
        "{out:?}"
    );
}

#[test]
fn a_password_never_shows_in_debug_output() {
    let request = login("alice", "right pw");
    let shown = format!("{request:?}");
    assert!(
        !shown.contains("right pw") && shown.contains("<redacted>"),
        "{shown}"
    );
    let request = Request::from_line("/login alice right pw")
        .unwrap()
        .unwrap();
    assert_eq!(request, login("alice", "right pw"));
    assert!(!format!("{request:?}").contains("right pw"));
    let frame = Frame::Login {
        nick: "alice".to_owned(),
        password: Password::new("right pw"),
    };
    assert!(!format!("{frame:?}").contains("right pw"));
    let w = world(false, false);
    let mut s = hello(&w, 1, Origin::LOOPBACK);
    let out = w.apply(&mut s, login("alice", "right pw"));
    assert!(!format!("{out:?}{s:?}").contains("right pw"));
}

#[test]
fn a_login_attempt_costs_as_much_as_a_listing() {
    let w = world(false, false);
    let mut s = hello(&w, 1, Origin::LOOPBACK);
    let out = w.apply(&mut s, login("alice", "wrong"));
    assert!(
        matches!(out[0], Effect::Charge(n) if n == crate::session::request::LOGIN_COST - 1),
        "{out:?}"
    );
}

#[test]
fn a_guess_during_the_wait_costs_a_seconds_worth_of_tokens() {
    let w = world(false, false);
    let mut s = hello(&w, 1, Origin::LOOPBACK);
    for _ in 0..3 {
        w.apply(&mut s, login("alice", "wrong"));
    }
    let out = w.apply(&mut s, login("alice", "wrong"));
    let charged: u32 = out
        .iter()
        .filter_map(|e| match e {
            Effect::Charge(n) => Some(*n),
            _ => None,
        })
        .sum();
    assert_eq!(
        charged,
        crate::session::request::LOGIN_COST - 1 + crate::session::login::THROTTLED_LOGIN_COST,
        "{out:?}"
    );
    assert_eq!(w.stats.login_throttled(), 1);
}
