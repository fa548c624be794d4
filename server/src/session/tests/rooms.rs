//! Rooms: joins, leaves, membership epochs, messages, refusals, lists.

use super::*;
use crate::session::request::{LIST_COST, STATS_COST};

#[test]
fn renames_reach_room_mates_but_renaming_to_ones_own_nick_tells_nobody() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut ann, join("den".into()));
    w.apply(&mut bob, join("den".into()));
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
    let out = w.apply(&mut ann, join("Den".into()));
    assert!(matches!(replies(&out)[..], [Frame::Joined { room, members: 1, .. }] if room == "Den"));
    assert_eq!(fanouts(&out), 0, "nobody else to tell");
    let out = w.apply(&mut bob, join("den".into()));
    assert!(matches!(replies(&out)[..], [Frame::Joined { room, members: 2, .. }] if room == "Den"));
    assert!(
        matches!(sent_to(&out, id(1))[..], [(Frame::Joined { nick, .. }, Scope::Room(_))] if nick == "bob")
    );
    let out = w.apply(&mut bob, join("DEN".into()));
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
    w.apply(&mut ann, join("den".into()));
    w.apply(&mut bob, join("den".into()));
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
    w.apply(&mut bob, join("den".into()));
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
    w.apply(&mut bob, join("den".into()));
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
        &w.apply(&mut ann, join("bad room".into())),
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
        w.apply(&mut ann, join(format!("r{n}")));
    }
    assert_refused(
        &w.apply(&mut ann, join("one-too-many".into())),
        ErrorCode::INVALID_REQUEST,
    );
}

#[test]
fn a_room_message_reaches_every_member_the_sender_included() {
    let w = World::new();
    let mut ann = w.text(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut bob, join("lobby".into()));
    // A text user's plain line goes to its current room.
    let out = w.apply(
        &mut ann,
        Request::Say {
            room: None,
            text: "hello".into(),
        },
    );
    for to in [id(1), id(2)] {
        assert!(
            matches!(
                sent_to(&out, to)[..],
                [(Frame::RoomMsg { room, from, text, .. }, Scope::Room(_))]
                    if room == "lobby" && from == "ann" && text == "hello"
            ),
            "{out:?}"
        );
    }
}

#[test]
fn lists_are_capped_and_cost_more_rate_limit_tokens() {
    let w = World::new();
    let mut sessions: Vec<Session> = (0..17).map(|n| w.binary(n, &format!("u{n}"))).collect();
    let mut room = 0;
    for s in &mut sessions {
        for _ in 0..crate::engine::MAX_ROOMS_PER_CONNECTION {
            w.apply(s, join(format!("r{room:05}")));
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
        w.apply(s, join("den".into()));
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
