//! Unit tests of `session`.

use super::*;
use shared::ErrorCode;

fn session() -> Session {
    Session::new("guest-1".to_owned(), Clock::utc())
}

#[test]
fn start_sends_nick_then_join() {
    let mut s = session();
    let r = s.start(Some("alice"), Some("lobby"));
    assert_eq!(
        r.frames,
        vec![
            Frame::SetNick {
                nick: "alice".into()
            },
            Frame::Join {
                room: "lobby".into(),
                since: None,
            }
        ]
    );
    assert_eq!(s.current_room(), Some("lobby"));
    assert!(!s.is_idle());
}

#[test]
fn plain_lines_go_to_the_last_joined_room_and_are_not_echoed_locally() {
    let mut s = session();
    s.start(None, Some("lobby"));
    s.input("/join rust");
    let r = s.input("hello");
    assert_eq!(
        r.frames,
        vec![Frame::Say {
            room: "rust".into(),
            text: "hello".into()
        }]
    );
    assert!(r.lines.is_empty());
    s.input("/leave");
    let r = s.input("again");
    assert_eq!(
        r.frames,
        vec![Frame::Say {
            room: "lobby".into(),
            text: "again".into()
        }]
    );
}

#[test]
fn a_line_without_a_room_is_refused_locally() {
    let mut s = session();
    let r = s.input("hello");
    assert!(r.frames.is_empty());
    assert!(r.lines[0].contains("no room"));
}

#[test]
fn chat_accepts_a_pending_request_and_requests_otherwise() {
    let mut s = session();
    assert_eq!(
        s.input("/chat bob").frames,
        vec![Frame::ChatRequest { peer: "bob".into() }]
    );
    s.receive(Frame::ChatRequested {
        from: "Carol".into(),
    });
    assert_eq!(
        s.input("/chat carol").frames,
        vec![Frame::ChatAccept {
            peer: "carol".into()
        }]
    );
    s.receive(Frame::ChatStarted {
        peer: "Carol".into(),
    });
    assert_eq!(s.partner(), Some("Carol"));
    let r = s.input("psst");
    assert_eq!(
        r.frames,
        vec![Frame::ChatSay {
            text: "psst".into()
        }]
    );
    assert_eq!(r.lines, vec!["[chat] <guest-1> psst".to_owned()]);
    assert_eq!(s.input("/chat").frames, vec![Frame::ChatEnd]);
    s.receive(Frame::ChatEnded {
        peer: "Carol".into(),
        reason: "ended by you".into(),
    });
    assert_eq!(s.partner(), None);
}

#[test]
fn server_text_is_escaped() {
    let mut s = session();
    let r = s.receive(Frame::RoomMsg {
        room: "lobby".into(),
        from: "evil\x1b[2J".into(),
        id: 1,
        time_ns: 0,
        text: "\x1b]0;pwned\x07 \u{9b}31m".into(),
    });
    let line = &r.lines[0];
    assert!(
        !line.chars().any(shared::text::is_dangerous_control),
        "{line:?}"
    );
    assert!(line.contains("\\x1b[2J"), "{line:?}");
    assert!(line.contains("\\u{9b}"), "{line:?}");
}

#[test]
fn ping_is_answered_with_pong() {
    let mut s = session();
    let r = s.receive(Frame::Ping { token: 42 });
    assert_eq!(r.frames, vec![Frame::Pong { token: 42 }]);
    assert!(r.lines.is_empty());
}

#[test]
fn echo_reply_shows_three_times_and_round_trip_but_barrier_is_silent() {
    let mut s = session();
    s.input("/echo hi there");
    let barrier = s.barrier();
    assert!(!s.is_idle());
    let r = s.receive(Frame::EchoReply {
        server_time_ns: 1_700_000_000_123_456_789,
        payload: Bytes::from_static(b"hi there"),
    });
    let line = &r.lines[0];
    assert!(line.contains("hi there"), "{line}");
    assert!(line.contains("server 22:13:20.123456"), "{line}");
    assert!(line.contains("round trip"), "{line}");
    assert!(line.ends_with(" ms"), "{line}");
    let Frame::Echo { payload } = barrier else {
        panic!("barrier is an echo");
    };
    let r = s.receive(Frame::EchoReply {
        server_time_ns: 0,
        payload,
    });
    assert!(r.lines.is_empty());
    assert!(s.is_idle());
}

#[test]
fn frames_that_could_not_be_sent_are_not_waited_for() {
    let mut s = session();
    let r = s.input("/echo big");
    s.not_sent(&r.frames[0]);
    let r = s.input(&format!("/join {}", "r".repeat(300)));
    s.not_sent(&r.frames[0]);
    assert!(s.is_idle());
    // A later echo still matches its reply.
    s.input("/echo small");
    let r = s.receive(Frame::EchoReply {
        server_time_ns: 0,
        payload: Bytes::from_static(b"small"),
    });
    assert!(r.lines[0].starts_with("echo \"small\""), "{:?}", r.lines);
}

#[test]
fn closing_errors_and_shutdown_end_the_session() {
    let mut s = session();
    let r = s.receive(Frame::Error {
        code: ErrorCode::NICK_TAKEN,
        text: "taken".into(),
    });
    assert!(r.ended.is_none());
    let r = s.receive(Frame::Error {
        code: ErrorCode::SERVER_FULL,
        text: "full".into(),
    });
    assert!(matches!(r.ended, Some(ClientError::Refused { .. })));
    let r = s.receive(Frame::Shutdown {
        reason: "bye\x1b[31m".into(),
    });
    match r.ended {
        Some(ClientError::ServerShutdown { reason }) => assert_eq!(reason, "bye\\x1b[31m"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn nick_change_of_our_own_updates_the_nick() {
    let mut s = session();
    s.start(Some("alice"), None);
    s.receive(Frame::NickChanged {
        old: "guest-1".into(),
        new: "alice".into(),
    });
    assert_eq!(s.nick(), "alice");
    assert!(s.is_idle());
}

#[test]
fn bad_commands_are_explained_locally() {
    let mut s = session();
    let r = s.input("/frobnicate");
    assert!(r.frames.is_empty());
    assert!(r.lines[0].contains("unknown command"), "{:?}", r.lines);
    assert!(s.input("/quit").quit);
    assert_eq!(s.input("/help").lines.len(), shared::text::HELP.len());
}
