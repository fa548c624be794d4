//! Direct messages, private chats (request, accept, BUSY, end) and departures.

use super::*;

#[test]
fn text_users_are_greeted_into_the_lobby_and_see_their_direct_messages() {
    let w = World::new();
    let mut s = Session::new(id(1), Mode::Text);
    let mut out = Vec::new();
    s.greet(&w.ctx(), &mut out);
    let frames = replies(&out);
    assert!(matches!(frames[0], Frame::Welcome { .. }));
    assert!(matches!(frames[1], Frame::Joined { room, .. } if room == DEFAULT_ROOM));
    let _bob = w.binary(2, "bob");
    let out = w.apply(
        &mut s,
        Request::Direct {
            to: "BOB".into(),
            text: "psst".into(),
        },
    );
    assert!(matches!(&out[0], Effect::ReplyText(line) if line == "[dm] -> bob: psst"));
    assert!(matches!(
        sent_to(&out, id(2))[..],
        [(Frame::DirectMsg { text, .. }, Scope::Anyone)] if text == "psst"
    ));
    assert_refused(
        &w.apply(
            &mut s,
            Request::Direct {
                to: "nobody".into(),
                text: "x".into(),
            },
        ),
        ErrorCode::NO_SUCH_NICK,
    );
}

#[test]
fn a_binary_sender_of_a_direct_message_gets_no_copy() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let _bob = w.binary(2, "bob");
    let out = w.apply(
        &mut ann,
        Request::Direct {
            to: "bob".into(),
            text: "hi".into(),
        },
    );
    assert_eq!(out.len(), 1, "{out:?}");
}

#[test]
fn private_chat_request_accept_busy_and_end() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    let mut cat = w.binary(3, "cat");
    let mut dan = w.binary(4, "dan");

    assert_refused(
        &w.apply(&mut ann, Request::ChatAsk("ANN".into())),
        ErrorCode::INVALID_REQUEST,
    );
    assert_refused(
        &w.apply(&mut ann, Request::ChatAsk("nobody".into())),
        ErrorCode::NO_SUCH_NICK,
    );
    assert_refused(
        &w.apply(&mut ann, Request::ChatAccept("bob".into())),
        ErrorCode::NOT_IN_CHAT,
    );
    assert_refused(&w.apply(&mut ann, Request::ChatEnd), ErrorCode::NOT_IN_CHAT);
    assert_refused(
        &w.apply(&mut ann, Request::ChatSay("x".into())),
        ErrorCode::NOT_IN_CHAT,
    );

    let out = w.apply(&mut ann, Request::ChatAsk("bob".into()));
    assert!(
        matches!(sent_to(&out, id(2))[..], [(Frame::ChatRequested { from }, _)] if from == "ann")
    );
    assert!(
        matches!(replies(&out)[..], [Frame::Notice { text }] if text == "asked bob for a private chat")
    );

    // A pending request makes both sides busy for everyone else.
    let out = w.apply(&mut cat, Request::ChatAsk("ann".into()));
    assert_eq!(replies(&out), [&Frame::Busy { peer: "ann".into() }]);
    let out = w.apply(&mut dan, Request::ChatAsk("Bob".into()));
    assert_eq!(replies(&out), [&Frame::Busy { peer: "bob".into() }]);

    let out = w.apply(&mut bob, Request::ChatAccept("ann".into()));
    assert_eq!(replies(&out), [&Frame::ChatStarted { peer: "ann".into() }]);
    let start = match sent_to(&out, id(1))[..] {
        [(Frame::ChatStarted { peer }, scope @ Scope::ChatStart { from, .. })]
            if peer == "bob" && from == id(2) =>
        {
            scope
        }
        ref other => panic!("{other:?}"),
    };
    // The accepter's own state is set at once; the asker's when its frame arrives.
    assert!(ann.admit(start, 0));

    let out = w.apply(&mut cat, Request::ChatAsk("bob".into()));
    assert_eq!(replies(&out), [&Frame::Busy { peer: "bob".into() }]);
    assert_refused(
        &w.apply(&mut ann, Request::ChatAsk("cat".into())),
        ErrorCode::INVALID_REQUEST,
    );

    let out = w.apply(&mut ann, Request::ChatSay("hi".into()));
    let line = match sent_to(&out, id(2))[..] {
        [(Frame::ChatMsg { text, .. }, scope @ Scope::Chat { from, .. })]
            if text == "hi" && from == id(1) =>
        {
            scope
        }
        ref other => panic!("{other:?}"),
    };
    assert!(bob.admit(line, 0));
    assert!(!cat.admit(line, 0), "only the partner takes chat lines");

    let out = w.apply(&mut bob, Request::ChatEnd);
    assert!(
        matches!(replies(&out)[..], [Frame::ChatEnded { peer, reason }] if peer == "ann" && reason == "ended by you")
    );
    let end = match sent_to(&out, id(1))[..] {
        [(Frame::ChatEnded { reason, .. }, scope @ Scope::ChatEnd { .. })]
            if reason == "ended by bob" =>
        {
            scope
        }
        ref other => panic!("{other:?}"),
    };
    assert!(!bob.admit(line, 0), "nothing of the chat after its end");
    assert!(ann.admit(end, 0));
    assert!(!ann.admit(line, 0), "nothing of the chat after its end");
    assert_eq!(w.engine.chat_partner(id(1)), None);
}

#[test]
fn a_chat_started_that_crosses_the_askers_own_end_is_dropped() {
    let w = World::new();
    let mut ann = w.text(1, "ann");
    let mut ben = w.binary(2, "ben");
    w.apply(&mut ann, Request::ChatAsk("ben".into()));
    let started = scope_to(&w.apply(&mut ben, Request::ChatAccept("ann".into())), id(1));
    // Before Ben's ChatStarted reaches her, Ann ends the chat.
    let out = w.apply(&mut ann, Request::ChatEnd);
    assert!(
        matches!(replies(&out)[..], [Frame::ChatEnded { reason, .. }] if reason == "ended by you")
    );
    assert!(!ann.admit(started, 0), "a started chat she has seen end");
    // Her plain lines go to her room, as her screen says.
    let out = w.apply(
        &mut ann,
        Request::Say {
            room: None,
            text: "to the lobby".into(),
        },
    );
    assert!(sent_to(&out, id(2)).is_empty(), "{out:?}");
}

#[test]
fn an_old_chat_end_does_not_end_a_new_chat_with_the_same_partner() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut ben = w.binary(2, "ben");
    w.apply(&mut ann, Request::ChatAsk("ben".into()));
    let first = scope_to(&w.apply(&mut ben, Request::ChatAccept("ann".into())), id(1));
    assert!(ann.admit(first, 0));
    let old_end = scope_to(&w.apply(&mut ben, Request::ChatEnd), id(1));
    // Ann asks again; Ben accepts; Ann's own accept of the new chat is immediate ...
    w.apply(&mut ben, Request::ChatAsk("ann".into()));
    w.apply(&mut ann, Request::ChatAccept("ben".into()));
    // ... and the old ChatEnded, arriving only now, is stale.
    assert!(!ann.admit(old_end, 0));
    let line = scope_to(
        &w.apply(&mut ben, Request::ChatSay("hello again".into())),
        id(1),
    );
    assert!(ann.admit(line, 0), "the new chat's lines arrive");
}

#[test]
fn asking_again_first_withdraws_the_earlier_request() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let _bob = w.binary(2, "bob");
    let _cat = w.binary(3, "cat");
    w.apply(&mut ann, Request::ChatAsk("bob".into()));
    let out = w.apply(&mut ann, Request::ChatAsk("cat".into()));
    assert!(
        matches!(sent_to(&out, id(2))[..], [(Frame::ChatEnded { reason, .. }, _)] if reason == "request withdrawn")
    );
    assert!(matches!(
        sent_to(&out, id(3))[..],
        [(Frame::ChatRequested { .. }, _)]
    ));
}

#[test]
fn starting_a_chat_ends_the_other_requests_of_both_sides() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    let mut cat = w.binary(3, "cat");
    // Cat asks Ann first; then Ann asks Bob (asking is allowed with a request received).
    w.apply(&mut cat, Request::ChatAsk("ann".into()));
    w.apply(&mut ann, Request::ChatAsk("bob".into()));
    // Bob answers by asking back, which accepts.
    let out = w.apply(&mut bob, Request::ChatAsk("ann".into()));
    assert_eq!(replies(&out), [&Frame::ChatStarted { peer: "ann".into() }]);
    assert!(
        matches!(sent_to(&out, id(3))[..], [(Frame::ChatEnded { peer, reason }, _)] if peer == "ann" && reason == "request declined")
    );
    // Cat is free again.
    let out = w.apply(&mut cat, Request::ChatAsk("ann".into()));
    assert_eq!(replies(&out), [&Frame::Busy { peer: "ann".into() }]);
    let _ = &mut cat;
}

#[test]
fn departing_tells_rooms_and_the_chat_partner_unless_the_server_is_shutting_down() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut ann, join("den".into()));
    w.apply(&mut bob, join("den".into()));
    w.apply(&mut ann, Request::ChatAsk("bob".into()));
    w.apply(&mut bob, Request::ChatAsk("ann".into()));
    let mut out = Vec::new();
    ann.depart(&w.ctx(), true, &mut out);
    let to_bob = sent_to(&out, id(2));
    assert!(
        matches!(to_bob[0], (Frame::Left { room, nick, members: 1 }, Scope::Room(_)) if room == "den" && nick == "ann")
    );
    assert!(
        matches!(to_bob[1], (Frame::ChatEnded { reason, .. }, Scope::ChatEnd { .. }) if reason == "ann disconnected")
    );
    assert!(!ann.is_registered());
    assert_eq!(w.engine.lookup("ann"), None, "the nick is free");
    assert_eq!(w.engine.chat_partner(id(2)), None);

    let mut out = Vec::new();
    bob.depart(&w.ctx(), false, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(w.engine.counts().rooms, 0, "the emptied room is gone");
    // Departing twice does nothing.
    bob.depart(&w.ctx(), true, &mut out);
    assert!(out.is_empty());
}

#[test]
fn ending_with_only_requests_pending_tells_both_sides() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    let _cat = w.binary(3, "cat");
    w.apply(&mut bob, Request::ChatAsk("ann".into()));
    let out = w.apply(&mut ann, Request::ChatEnd);
    assert!(
        matches!(sent_to(&out, id(2))[..], [(Frame::ChatEnded { reason, .. }, _)] if reason == "request declined")
    );
    assert_eq!(
        replies(&out),
        [&Frame::Notice {
            text: "declined bob's request".into()
        }]
    );
    w.apply(&mut ann, Request::ChatAsk("cat".into()));
    let out = w.apply(&mut ann, Request::ChatEnd);
    assert!(
        matches!(sent_to(&out, id(3))[..], [(Frame::ChatEnded { reason, .. }, _)] if reason == "request withdrawn")
    );
    assert_eq!(
        replies(&out),
        [&Frame::Notice {
            text: "withdrew your request to cat".into()
        }]
    );
}
