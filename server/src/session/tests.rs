//! Session rules, without sockets: every request, refusal and private-chat transition
//! applied to a real [`MemoryEngine`], checked by the effects it lists.

use bytes::Bytes;
use shared::{ErrorCode, Frame, Mode, PROTOCOL_VERSION};

use super::request::{LIST_COST, STATS_COST};
use super::*;
use crate::engine::{ConnId, MemoryEngine};

struct World {
    engine: MemoryEngine,
    stats: Stats,
}

impl World {
    fn new() -> Self {
        Self {
            engine: MemoryEngine::new(2),
            stats: Stats::new(2),
        }
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            engine: &self.engine,
            stats: &self.stats,
            max_frame: 1 << 20,
        }
    }

    /// A binary session past its Hello, named `nick`.
    fn binary(&self, slot: u32, nick: &str) -> Session {
        let mut s = Session::new(id(slot), Mode::Binary);
        self.apply(
            &mut s,
            Request::Hello {
                version: PROTOCOL_VERSION,
            },
        );
        self.apply(&mut s, Request::SetNick(nick.to_owned()));
        s
    }

    /// A greeted text session (in the lobby), named `nick`.
    fn text(&self, slot: u32, nick: &str) -> Session {
        let mut s = Session::new(id(slot), Mode::Text);
        s.greet(&self.ctx(), &mut Vec::new());
        self.apply(&mut s, Request::SetNick(nick.to_owned()));
        s
    }

    fn apply(&self, session: &mut Session, request: Request) -> Vec<Effect> {
        let mut out = Vec::new();
        session.apply(request, &self.ctx(), &mut out);
        out
    }
}

fn id(slot: u32) -> ConnId {
    ConnId {
        worker: slot % 2,
        slot,
        generation: 0,
    }
}

/// The frames replied to the requester.
fn replies(effects: &[Effect]) -> Vec<&Frame> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// The one reply (besides a charge), which must be an error with `code`.
fn assert_refused(effects: &[Effect], code: ErrorCode) -> String {
    let effects: Vec<&Effect> = effects
        .iter()
        .filter(|e| !matches!(e, Effect::Charge(_)))
        .collect();
    match effects.as_slice() {
        [Effect::Reply(Frame::Error { code: c, text })] if *c == code => text.clone(),
        other => panic!("expected a refusal with {code:?}, got {other:?}"),
    }
}

/// The frames sent to `to`, with their scope.
fn sent_to(effects: &[Effect], to: ConnId) -> Vec<(&Frame, Scope)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to: t,
                frame,
                scope,
                ..
            } if *t == to => Some((frame, *scope)),
            Effect::Fanout {
                fanout,
                frame,
                scope,
            } if fanout.contains(to) => Some((frame, *scope)),
            _ => None,
        })
        .collect()
}

fn fanouts(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Fanout { .. }))
        .count()
}

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
fn renames_reach_room_mates_but_renaming_to_ones_own_nick_tells_nobody() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut ann, Request::Join("den".into()));
    w.apply(&mut bob, Request::Join("den".into()));
    let out = w.apply(&mut ann, Request::SetNick("anne".into()));
    assert_eq!(sent_to(&out, id(2)).len(), 1, "{out:?}");
    let out = w.apply(&mut ann, Request::SetNick("anne".into()));
    assert_eq!(fanouts(&out), 0, "{out:?}");
    assert_eq!(replies(&out).len(), 1);
}

#[test]
fn joining_tells_members_and_joining_again_tells_nobody() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    let out = w.apply(&mut ann, Request::Join("Den".into()));
    assert!(matches!(replies(&out)[..], [Frame::Joined { room, members: 1, .. }] if room == "Den"));
    assert_eq!(fanouts(&out), 0, "nobody else to tell");
    let out = w.apply(&mut bob, Request::Join("den".into()));
    assert!(matches!(replies(&out)[..], [Frame::Joined { room, members: 2, .. }] if room == "Den"));
    assert!(
        matches!(sent_to(&out, id(1))[..], [(Frame::Joined { nick, .. }, Scope::Room(_))] if nick == "bob")
    );
    let out = w.apply(&mut bob, Request::Join("DEN".into()));
    assert!(matches!(
        replies(&out)[..],
        [Frame::Joined { members: 2, .. }]
    ));
    assert_eq!(
        fanouts(&out),
        0,
        "joining a room one is in broadcasts nothing"
    );
}

#[test]
fn a_frame_for_an_old_membership_is_not_delivered_after_leaving_and_joining_again() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut ann, Request::Join("den".into()));
    w.apply(&mut bob, Request::Join("den".into()));
    // Ann says something; the snapshot names Bob's membership as it is now.
    let out = w.apply(
        &mut ann,
        Request::Say {
            room: Some("den".into()),
            text: "old".into(),
        },
    );
    let (fanout, scope) = match &out[..] {
        [Effect::Fanout { fanout, scope, .. }] => (Arc::clone(fanout), *scope),
        other => panic!("{other:?}"),
    };
    let bob_epoch = fanout.per_worker[0]
        .iter()
        .find(|m| m.id == id(2))
        .map(|m| m.epoch)
        .unwrap();
    assert!(
        bob.admit(scope, bob_epoch),
        "delivered while still a member"
    );
    // Before it arrives, Bob leaves and joins again at once.
    w.apply(&mut bob, Request::Leave(Some("den".into())));
    assert!(!bob.admit(scope, bob_epoch), "not delivered after leaving");
    w.apply(&mut bob, Request::Join("den".into()));
    assert!(
        !bob.admit(scope, bob_epoch),
        "not delivered to the new membership"
    );
    let out = w.apply(
        &mut ann,
        Request::Say {
            room: Some("den".into()),
            text: "new".into(),
        },
    );
    let Effect::Fanout { fanout, scope, .. } = &out[0] else {
        panic!("{out:?}")
    };
    let new_epoch = fanout.per_worker[0]
        .iter()
        .find(|m| m.id == id(2))
        .map(|m| m.epoch)
        .unwrap();
    assert!(bob.admit(*scope, new_epoch));
}

#[test]
fn room_refusals_name_the_problem() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut bob, Request::Join("den".into()));
    let say = |room: &str| Request::Say {
        room: Some(room.into()),
        text: "hi".into(),
    };
    assert_refused(&w.apply(&mut ann, say("nowhere")), ErrorCode::NO_SUCH_ROOM);
    assert_refused(&w.apply(&mut ann, say("den")), ErrorCode::NOT_IN_ROOM);
    assert_refused(
        &w.apply(&mut ann, Request::Leave(Some("den".into()))),
        ErrorCode::NOT_IN_ROOM,
    );
    assert_refused(
        &w.apply(&mut ann, Request::Leave(Some("nowhere".into()))),
        ErrorCode::NO_SUCH_ROOM,
    );
    assert_refused(
        &w.apply(&mut ann, Request::Leave(None)),
        ErrorCode::NOT_IN_ROOM,
    );
    assert_refused(
        &w.apply(&mut ann, Request::Who(None)),
        ErrorCode::NOT_IN_ROOM,
    );
    assert_refused(
        &w.apply(&mut ann, Request::Who(Some("nowhere".into()))),
        ErrorCode::NO_SUCH_ROOM,
    );
    assert_refused(
        &w.apply(&mut ann, Request::Join("bad room".into())),
        ErrorCode::INVALID_NAME,
    );
    assert_refused(
        &w.apply(
            &mut ann,
            Request::Say {
                room: None,
                text: "hi".into(),
            },
        ),
        ErrorCode::NOT_IN_ROOM,
    );
    for n in 0..crate::engine::MAX_ROOMS_PER_CONNECTION {
        w.apply(&mut ann, Request::Join(format!("r{n}")));
    }
    assert_refused(
        &w.apply(&mut ann, Request::Join("one-too-many".into())),
        ErrorCode::INVALID_REQUEST,
    );
}

#[test]
fn a_room_message_reaches_every_member_the_sender_included() {
    let w = World::new();
    let mut ann = w.text(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut bob, Request::Join("lobby".into()));
    // A text user's plain line goes to its current room.
    let out = w.apply(
        &mut ann,
        Request::Say {
            room: None,
            text: "hello".into(),
        },
    );
    let expected = Frame::RoomMsg {
        room: "lobby".into(),
        from: "ann".into(),
        text: "hello".into(),
    };
    assert_eq!(sent_to(&out, id(1)).first().map(|s| s.0), Some(&expected));
    assert_eq!(sent_to(&out, id(2)).first().map(|s| s.0), Some(&expected));
}

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

/// The scope of the one frame `effects` send to `to`.
fn scope_to(effects: &[Effect], to: ConnId) -> Scope {
    match sent_to(effects, to)[..] {
        [(_, scope)] => scope,
        ref other => panic!("{other:?}"),
    }
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
    w.apply(&mut ann, Request::Join("den".into()));
    w.apply(&mut bob, Request::Join("den".into()));
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
fn lists_are_capped_and_cost_more_rate_limit_tokens() {
    let w = World::new();
    let mut sessions: Vec<Session> = (0..17).map(|n| w.binary(n, &format!("u{n}"))).collect();
    let mut room = 0;
    for s in &mut sessions {
        for _ in 0..crate::engine::MAX_ROOMS_PER_CONNECTION {
            w.apply(s, Request::Join(format!("r{room:05}")));
            room += 1;
        }
    }
    let out = w.apply(&mut sessions[0], Request::Rooms);
    assert!(matches!(out[0], Effect::Charge(n) if n == LIST_COST - 1));
    let frames = replies(&out);
    let Frame::RoomList { rooms } = frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(rooms.len(), MAX_LIST_ITEMS);
    assert_eq!(rooms[0].name, "r00000");
    assert!(rooms.windows(2).all(|p| p[0].name < p[1].name), "sorted");
    let hidden = room - MAX_LIST_ITEMS;
    assert_eq!(
        frames[1],
        &Frame::Notice {
            text: format!("{hidden} more rooms not listed")
        }
    );
    let out = w.apply(&mut sessions[0], Request::Who(Some("r00000".into())));
    assert!(matches!(out[0], Effect::Charge(n) if n == LIST_COST - 1));
    assert!(matches!(replies(&out)[..], [Frame::WhoList { nicks, .. }] if nicks == &["u0"]));
    let out = w.apply(&mut sessions[0], Request::Stats);
    assert!(matches!(out[0], Effect::Charge(n) if n == STATS_COST - 1));
}

#[test]
fn who_lists_the_first_members_in_order() {
    let w = World::new();
    let mut sessions: Vec<Session> = (0..5)
        .map(|n| w.binary(n, &format!("n{}", 4 - n)))
        .collect();
    for s in &mut sessions {
        w.apply(s, Request::Join("den".into()));
    }
    let out = w.apply(&mut sessions[0], Request::Who(Some("DEN".into())));
    assert!(matches!(
        replies(&out)[..],
        [Frame::WhoList { room, nicks }] if room == "den" && nicks == &["n0", "n1", "n2", "n3", "n4"]
    ));
    let listing = w.engine.who("den", 2).unwrap().1;
    assert_eq!(listing.items, ["n0", "n1"]);
    assert_eq!(listing.hidden, 3);
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
