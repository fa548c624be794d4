//! Unit tests of what carries over a reconnect: last ids, the re-join sequence, the
//! fallback when a resume is refused, replay counting, taking the nick back, and
//! `/history`.

use std::time::{Duration, Instant};

use super::reconnect::{NICK_RETRY_EVERY, NICK_RETRY_FOR, REJOIN_TIMEOUT};
use super::*;
use shared::ErrorCode;

fn joined(room: &str, nick: &str, last: u64) -> Frame {
    Frame::Joined {
        room: room.into(),
        nick: nick.into(),
        members: 1,
        last,
    }
}

fn msg(room: &str, from: &str, id: u64, text: &str) -> Frame {
    Frame::RoomMsg {
        room: room.into(),
        from: from.into(),
        id,
        time_ns: 1_700_000_000_000_000_000 + id * 1_000_000_000,
        text: text.into(),
    }
}

fn join(room: &str, since: Option<u64>) -> Frame {
    Frame::Join {
        room: room.into(),
        since,
    }
}

/// `alice` in `lobby` (last id 5) and `rust` (last id 9, current).
fn alice_in_two_rooms() -> Session {
    let mut s = Session::new("guest-1".to_owned(), Clock::utc());
    s.start(Some("alice"), Some("lobby"));
    s.receive(Frame::NickChanged {
        old: "guest-1".into(),
        new: "alice".into(),
    });
    s.receive(joined("lobby", "alice", 3));
    s.receive(msg("lobby", "bob", 4, "four"));
    s.receive(msg("lobby", "bob", 5, "five"));
    s.input("/join rust");
    s.receive(joined("rust", "alice", 9));
    assert!(s.is_idle());
    s
}

#[test]
fn last_id_comes_from_joined_then_from_each_message() {
    let mut s = Session::new("guest-1".to_owned(), Clock::utc());
    s.start(None, Some("lobby"));
    assert_eq!(s.last_seen("lobby"), None);
    s.receive(joined("Lobby", "guest-1", 41));
    assert_eq!(s.last_seen("lobby"), Some(41));
    let r = s.receive(msg("lobby", "bob", 42, "hi"));
    assert_eq!(r.lines, vec!["[lobby] <bob> hi".to_owned()]);
    assert_eq!(s.last_seen("LOBBY"), Some(42));
    // Someone else joining says nothing about our position.
    s.receive(joined("lobby", "bob", 99));
    assert_eq!(s.last_seen("lobby"), Some(42));
    s.input("/leave lobby");
    assert_eq!(s.last_seen("lobby"), None);
}

#[test]
fn history_is_asked_for_the_current_or_named_room_and_shown_as_history_lines() {
    let mut s = alice_in_two_rooms();
    assert_eq!(
        s.input("/history").frames,
        vec![Frame::GetHistory {
            room: "rust".into(),
            before: 0,
            limit: 20
        }]
    );
    assert_eq!(
        s.input("/history lobby 5").frames,
        vec![Frame::GetHistory {
            room: "lobby".into(),
            before: 0,
            limit: 5
        }]
    );
    assert_eq!(
        s.input("/history 100000").frames,
        vec![Frame::GetHistory {
            room: "rust".into(),
            before: 0,
            limit: u16::MAX
        }]
    );
    let r = s.receive(Frame::HistoryPage {
        room: "lobby".into(),
        count: 2,
        more: true,
    });
    assert_eq!(
        r.lines,
        vec!["* history of lobby: 2 messages; older ones not shown".to_owned()]
    );
    let r = s.receive(msg("lobby", "bob", 4, "four"));
    assert_eq!(r.lines, vec!["[lobby] 22:13:24 <bob> four".to_owned()]);
    let r = s.receive(msg("lobby", "bob", 5, "five"));
    assert_eq!(r.lines, vec!["[lobby] 22:13:25 <bob> five".to_owned()]);
    // The page is over: the next message is live again, and history did not move the
    // last id seen.
    assert_eq!(s.last_seen("lobby"), Some(5));
    let r = s.receive(msg("lobby", "bob", 6, "six"));
    assert_eq!(r.lines, vec!["[lobby] <bob> six".to_owned()]);
    assert_eq!(s.last_seen("lobby"), Some(6));
    let mut empty = Session::new("guest-1".to_owned(), Clock::utc());
    assert!(empty.input("/history").lines[0].contains("no room"));
}

#[test]
fn nothing_is_sent_while_offline() {
    let mut s = alice_in_two_rooms();
    s.input("/echo pending");
    assert!(!s.is_idle());
    s.connection_lost();
    assert!(!s.is_online());
    for line in ["hello", "/join other", "/echo x", "/nick bob", "/history"] {
        let r = s.input(line);
        assert!(r.frames.is_empty(), "{line}: {:?}", r.frames);
        assert!(
            r.lines[0].contains("not connected"),
            "{line}: {:?}",
            r.lines
        );
    }
    assert!(s.input("/quit").quit);
    assert_eq!(s.current_room(), Some("rust"));
    assert_eq!(s.last_seen("lobby"), Some(5));
}

#[test]
fn rejoin_takes_the_nick_back_and_resumes_one_room_at_a_time() {
    let mut s = alice_in_two_rooms();
    s.connection_lost();
    let now = Instant::now();
    let r = s.reconnected("guest-7".into(), now);
    // The nick first, then only the oldest room: the next join waits for its replay.
    assert_eq!(
        r.frames,
        vec![
            Frame::SetNick {
                nick: "alice".into()
            },
            join("lobby", Some(5)),
        ]
    );
    assert!(
        r.lines[0].contains("connected again as guest-7"),
        "{:?}",
        r.lines
    );
    assert!(s.is_rejoining());
    assert!(s.input("hello").frames.is_empty());
    let r = s.receive(Frame::NickChanged {
        old: "guest-7".into(),
        new: "alice".into(),
    });
    assert!(
        r.lines.iter().any(|l| l == "* took back nick alice"),
        "{r:?}"
    );
    assert_eq!(s.nick(), "alice");
    let r = s.receive(joined("lobby", "alice", 8));
    assert!(r.frames.is_empty());
    let r = s.receive(Frame::Resumed {
        room: "lobby".into(),
        replayed: 3,
        missed: 0,
    });
    assert!(r.frames.is_empty());
    assert_eq!(r.lines, vec!["* lobby: 3 messages replayed".to_owned()]);
    // A message of another room in between is not part of the replay.
    assert!(s.receive(msg("rust", "bob", 10, "x")).frames.is_empty());
    for id in 6..=7 {
        let r = s.receive(msg("lobby", "bob", id, "missed"));
        assert_eq!(r.lines, vec!["[lobby] <bob> missed".to_owned()]);
        assert!(r.frames.is_empty());
    }
    // The last replayed message: the next room is joined, resuming too.
    let r = s.receive(msg("lobby", "bob", 8, "missed"));
    assert_eq!(r.frames, vec![join("rust", Some(10))]);
    assert_eq!(s.last_seen("lobby"), Some(8));
    s.receive(joined("rust", "alice", 10));
    let r = s.receive(Frame::Resumed {
        room: "rust".into(),
        replayed: 0,
        missed: 0,
    });
    assert!(r.frames.is_empty());
    assert!(r.reconnected);
    assert_eq!(
        r.lines.last().unwrap(),
        "* reconnected, 3 messages replayed"
    );
    assert!(s.is_online());
    assert!(s.is_idle());
    assert_eq!(s.current_room(), Some("rust"));
    assert_eq!(
        s.input("back").frames,
        vec![Frame::Say {
            room: "rust".into(),
            text: "back".into()
        }]
    );
}

#[test]
fn a_refused_resume_joins_without_it_and_says_history_was_not_available() {
    let mut s = alice_in_two_rooms();
    s.connection_lost();
    s.reconnected("alice".into(), Instant::now());
    // Welcomed under our own nick: nothing to take back.
    let r = s.receive(Frame::Error {
        code: ErrorCode::UNKNOWN_MESSAGE_ID,
        text: "unknown message id 5".into(),
    });
    assert_eq!(r.frames, vec![join("lobby", None)]);
    assert!(r.lines[0].contains("lobby: history not available"), "{r:?}");
    assert!(r.ended.is_none());
    // A fresh server counts from the start: Joined.last replaces the old position.
    let r = s.receive(joined("lobby", "alice", 0));
    assert_eq!(r.frames, vec![join("rust", Some(9))]);
    assert_eq!(s.last_seen("lobby"), Some(0));
    s.receive(Frame::Error {
        code: ErrorCode::UNKNOWN_MESSAGE_ID,
        text: "unknown".into(),
    });
    let r = s.receive(joined("rust", "alice", 2));
    assert!(r.reconnected);
    assert_eq!(
        r.lines.last().unwrap(),
        "* reconnected, 0 messages replayed; history not available for lobby, rust"
    );
    assert_eq!(s.last_seen("rust"), Some(2));
    let r = s.receive(msg("rust", "bob", 3, "new"));
    assert_eq!(r.lines, vec!["[rust] <bob> new".to_owned()]);
}

#[test]
fn missed_messages_are_counted_and_a_room_that_cannot_be_joined_is_skipped() {
    let mut s = alice_in_two_rooms();
    s.connection_lost();
    s.reconnected("alice".into(), Instant::now());
    let r = s.receive(Frame::Error {
        code: ErrorCode::INVALID_REQUEST,
        text: "no".into(),
    });
    assert!(r.lines[0].starts_with("! cannot re-join lobby"), "{r:?}");
    assert_eq!(r.frames, vec![join("rust", Some(9))]);
    assert_eq!(s.last_seen("lobby"), None);
    s.receive(joined("rust", "alice", 20));
    let r = s.receive(Frame::Resumed {
        room: "rust".into(),
        replayed: 1,
        missed: 10,
    });
    assert!(r.lines[0].contains("10 no longer kept"), "{r:?}");
    let r = s.receive(msg("rust", "bob", 20, "last"));
    assert!(r.reconnected);
    assert_eq!(
        r.lines.last().unwrap(),
        "* reconnected, 1 message replayed; 10 missed (no longer kept by the server)"
    );
    // Nothing missed while history was kept elsewhere: `Joined.last` is the position.
    assert_eq!(s.last_seen("rust"), Some(20));
}

#[test]
fn an_empty_replay_with_messages_missed_still_moves_to_joined_last() {
    let mut s = Session::new("guest-1".to_owned(), Clock::utc());
    s.start(None, Some("lobby"));
    s.receive(joined("lobby", "guest-1", 4));
    s.connection_lost();
    s.reconnected("guest-2".into(), Instant::now());
    s.receive(joined("lobby", "guest-2", 12));
    let r = s.receive(Frame::Resumed {
        room: "lobby".into(),
        replayed: 0,
        missed: 8,
    });
    assert!(r.reconnected);
    assert_eq!(s.last_seen("lobby"), Some(12));
}

#[test]
fn without_rooms_the_reconnect_is_done_at_once() {
    let mut s = Session::new("guest-1".to_owned(), Clock::utc());
    s.connection_lost();
    let r = s.reconnected("guest-3".into(), Instant::now());
    assert!(r.frames.is_empty());
    assert!(r.reconnected);
    assert_eq!(
        r.lines.last().unwrap(),
        "* reconnected, 0 messages replayed"
    );
    // A guest name is not taken back: it was never chosen.
    assert_eq!(s.nick(), "guest-3");
}

#[test]
fn a_nick_still_held_is_claimed_again_later_then_given_up() {
    let mut s = alice_in_two_rooms();
    s.connection_lost();
    let t0 = Instant::now();
    s.reconnected("guest-7".into(), t0);
    let r = s.receive(Frame::Error {
        code: ErrorCode::NICK_TAKEN,
        text: "taken".into(),
    });
    assert!(r.lines[0].contains("nick alice is still held"), "{r:?}");
    assert!(r.lines[0].contains("staying guest-7"), "{r:?}");
    // The re-join goes on meanwhile, under the guest name.
    s.receive(joined("lobby", "guest-7", 5));
    s.receive(Frame::Resumed {
        room: "lobby".into(),
        replayed: 0,
        missed: 0,
    });
    s.receive(joined("rust", "guest-7", 9));
    let r = s.receive(Frame::Resumed {
        room: "rust".into(),
        replayed: 0,
        missed: 0,
    });
    assert!(
        r.lines
            .last()
            .unwrap()
            .ends_with("; nick alice still held, trying again")
    );
    // The next tick schedules a try; nothing is sent before it is due.
    let t1 = t0 + Duration::from_millis(10);
    assert!(s.tick(t1).frames.is_empty());
    assert_eq!(s.deadline(), Some(t1 + NICK_RETRY_EVERY));
    assert!(s.tick(t1 + NICK_RETRY_EVERY / 2).frames.is_empty());
    let r = s.tick(t1 + NICK_RETRY_EVERY);
    assert_eq!(
        r.frames,
        vec![Frame::SetNick {
            nick: "alice".into()
        }]
    );
    assert_eq!(s.deadline(), None);
    // Still held, and now past the retry window: given up, said once.
    s.receive(Frame::Error {
        code: ErrorCode::NICK_TAKEN,
        text: "taken".into(),
    });
    let r = s.tick(t0 + NICK_RETRY_FOR);
    assert!(
        r.lines[0].contains("gave up taking back nick alice"),
        "{r:?}"
    );
    assert!(s.tick(t0 + NICK_RETRY_FOR * 2).lines.is_empty());
    assert_eq!(s.nick(), "guest-7");
}

#[test]
fn a_nick_claimed_again_and_granted_is_said() {
    let mut s = alice_in_two_rooms();
    s.connection_lost();
    let t0 = Instant::now();
    s.reconnected("guest-7".into(), t0);
    s.receive(Frame::Error {
        code: ErrorCode::NICK_TAKEN,
        text: "taken".into(),
    });
    s.tick(t0);
    s.tick(t0 + NICK_RETRY_EVERY);
    let r = s.receive(Frame::NickChanged {
        old: "guest-7".into(),
        new: "alice".into(),
    });
    assert_eq!(
        r.lines,
        vec![
            "* guest-7 is now known as alice".to_owned(),
            "* took back nick alice".to_owned()
        ]
    );
    assert_eq!(s.nick(), "alice");
}

#[test]
fn losing_the_connection_ends_the_private_chat_and_forgets_pending_answers() {
    let mut s = alice_in_two_rooms();
    s.receive(Frame::ChatStarted { peer: "bob".into() });
    s.input("/echo x");
    s.input("/history");
    let r = s.connection_lost();
    assert_eq!(
        r.lines,
        vec!["* private chat with bob ended: connection lost".to_owned()]
    );
    assert_eq!(s.partner(), None);
    s.reconnected("alice".into(), Instant::now());
    s.receive(joined("lobby", "alice", 5));
    s.receive(Frame::Resumed {
        room: "lobby".into(),
        replayed: 0,
        missed: 0,
    });
    s.receive(joined("rust", "alice", 9));
    s.receive(Frame::Resumed {
        room: "rust".into(),
        replayed: 0,
        missed: 0,
    });
    // The echo and the history asked on the old connection are not waited for.
    assert!(s.is_idle());
}

#[test]
fn a_rejoin_the_server_does_not_finish_is_given_up_at_its_deadline() {
    let mut s = alice_in_two_rooms();
    s.connection_lost();
    let t0 = Instant::now();
    s.reconnected("alice".into(), t0);
    s.receive(joined("lobby", "alice", 5));
    // `Resumed` never comes.
    assert_eq!(s.deadline(), Some(t0 + REJOIN_TIMEOUT));
    assert!(s.tick(t0 + REJOIN_TIMEOUT / 2).lines.is_empty());
    assert!(s.is_rejoining());
    let r = s.tick(t0 + REJOIN_TIMEOUT);
    assert!(r.reconnected);
    assert!(
        r.lines[0].starts_with("! re-joining lobby got no complete answer"),
        "{r:?}"
    );
    assert!(s.is_online());
    assert_eq!(s.deadline(), None);
    // Neither the room that stalled nor the one never reached is assumed joined.
    assert_eq!(s.current_room(), None);
    assert!(!s.input("/join lobby").frames.is_empty());
}
