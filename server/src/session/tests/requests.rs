//! The handshake, echo, nicks, stats, goodbye, and the two framings.

use super::*;

#[test]
fn a_binary_session_serves_nothing_before_its_hello() {
    let w = World::new();
    let mut s = Session::new(id(1), Mode::Binary);
    let out = w.apply(&mut s, Request::Echo(Bytes::from_static(b"x")));
    assert!(matches!(
        out.as_slice(),
        [Effect::Fail { error, reason: CloseReason::ProtocolError }] if error.code == ErrorCode::HELLO_REQUIRED
    ));
    assert_eq!(w.engine.counts().users, 0);

    let mut s = Session::new(id(2), Mode::Binary);
    let out = w.apply(&mut s, Request::Hello { version: 999 });
    assert!(matches!(
        out.as_slice(),
        [Effect::Fail { error, .. }] if error.code == ErrorCode::VERSION_MISMATCH && error.text.contains("999")
    ));

    let mut s = Session::new(id(3), Mode::Binary);
    let out = w.apply(
        &mut s,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    assert!(
        matches!(replies(&out)[..], [Frame::Welcome { nick, .. }] if nick.starts_with("guest-"))
    );
    assert!(s.is_registered());
}

#[test]
fn a_second_hello_is_refused_with_a_true_reason_and_no_close() {
    let w = World::new();
    let mut s = w.binary(1, "ann");
    let out = w.apply(
        &mut s,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    let text = assert_refused(&out, ErrorCode::INVALID_REQUEST);
    assert!(text.contains("Hello was already received"), "{text}");
    assert!(s.is_registered());
}

#[test]
fn echo_returns_the_payload_with_the_server_time() {
    let w = World::new();
    let mut s = w.binary(1, "ann");
    let out = w.apply(&mut s, Request::Echo(Bytes::from_static(b"\x00\xffhi")));
    assert!(matches!(
        replies(&out)[..],
        [Frame::EchoReply { server_time_ns, payload }] if *server_time_ns > 0 && payload.as_ref() == b"\x00\xffhi"
    ));
}

#[test]
fn nicks_are_unique_case_insensitively_and_bad_ones_say_why() {
    let w = World::new();
    let mut ann = w.binary(1, "Ann");
    let mut other = w.binary(2, "bob");
    let text = assert_refused(
        &w.apply(&mut other, Request::SetNick("ANN".into())),
        ErrorCode::NICK_TAKEN,
    );
    assert!(text.contains("ANN"), "{text}");
    let text = assert_refused(
        &w.apply(&mut other, Request::SetNick("has space".into())),
        ErrorCode::INVALID_NAME,
    );
    assert!(text.starts_with("invalid nick: "), "{text}");
    assert!(
        text.len() > "invalid nick: ".len(),
        "the reason is given: {text}"
    );
    // Case changes are renames like any other.
    let out = w.apply(&mut ann, Request::SetNick("ann".into()));
    assert_eq!(
        replies(&out),
        [&Frame::NickChanged {
            old: "Ann".into(),
            new: "ann".into()
        }]
    );
    assert_eq!(w.engine.lookup("ANN").map(|u| u.id), Some(id(1)));
    assert_eq!(ann.nick(), Some("ann"));
}

#[test]
fn stats_read_as_lines_in_text_mode_and_as_one_frame_in_binary() {
    let w = World::new();
    let mut text = w.text(1, "ann");
    let out = w.apply(&mut text, Request::Stats);
    let lines: Vec<&str> = out
        .iter()
        .filter_map(|e| match e {
            Effect::ReplyText(line) => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines[0], "* stats:");
    assert!(lines.contains(&"*   users 1"), "{lines:?}");
    assert!(lines.contains(&"*   rooms 1"), "{lines:?}");
    let mut bin = w.binary(2, "bob");
    let out = w.apply(&mut bin, Request::Stats);
    assert!(
        matches!(replies(&out)[..], [Frame::Stats { entries }] if entries.iter().any(|(k, v)| k == "users" && *v == 2))
    );
}

#[test]
fn goodbye_and_server_only_frames_close() {
    let w = World::new();
    let mut text = w.text(1, "ann");
    let out = w.apply(&mut text, Request::Goodbye);
    assert!(matches!(
        &out[..],
        [
            Effect::Reply(Frame::Goodbye { .. }),
            Effect::CloseAfterFlush(CloseReason::Goodbye)
        ]
    ));
    let mut bin = w.binary(2, "bob");
    let out = w.apply(&mut bin, Request::Goodbye);
    assert!(matches!(
        &out[..],
        [Effect::CloseAfterFlush(CloseReason::Goodbye)]
    ));
    let out = w.apply(&mut bin, Request::ServerOnly(0x81));
    assert!(matches!(
        &out[..],
        [Effect::Fail { error, reason: CloseReason::ProtocolError }] if error.code == ErrorCode::UNEXPECTED_FRAME && error.text.contains("0x81")
    ));
    let out = w.apply(&mut bin, Request::Ping(7));
    assert_eq!(replies(&out), [&Frame::Pong { token: 7 }]);
    assert!(w.apply(&mut bin, Request::Pong).is_empty());
}

#[test]
fn both_framings_make_the_same_requests() {
    assert_eq!(
        Request::from_frame(Frame::Say {
            room: "den".into(),
            text: "hi".into()
        }),
        Request::Say {
            room: Some("den".into()),
            text: "hi".into()
        }
    );
    assert_eq!(
        Request::from_line("/chat bob"),
        Ok(Some(Request::ChatAsk("bob".into())))
    );
    assert_eq!(
        Request::from_frame(Frame::ChatRequest { peer: "bob".into() }),
        Request::ChatAsk("bob".into())
    );
    assert_eq!(Request::from_line("/chat"), Ok(Some(Request::ChatEnd)));
    assert_eq!(Request::from_line("/quit"), Ok(Some(Request::Goodbye)));
    assert_eq!(
        Request::from_frame(Frame::Goodbye { reason: "x".into() }),
        Request::Goodbye
    );
    assert_eq!(Request::from_line(""), Ok(None));
    assert_eq!(
        Request::from_line("/frobnicate").map_err(|r| r.code),
        Err(ErrorCode::UNKNOWN_COMMAND)
    );
    assert!(matches!(
        Request::from_frame(Frame::Notice { text: "x".into() }),
        Request::ServerOnly(_)
    ));
}

#[test]
fn help_lists_every_command_as_notices() {
    let w = World::new();
    let mut s = w.text(1, "ann");
    let out = w.apply(&mut s, Request::Help);
    let lines: Vec<&str> = replies(&out)
        .iter()
        .filter_map(|f| match f {
            Frame::Notice { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, shared::text::HELP);
    assert!(lines.iter().any(|l| l.starts_with("/chat NICK")));
}
