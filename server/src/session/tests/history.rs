//! History and resume: ids, replays, pages, refusals and the budget.

use super::*;

fn say(w: &World, s: &mut Session, room: &str, text: &str) -> u64 {
    let out = w.apply(
        s,
        Request::Say {
            room: Some(room.into()),
            text: text.into(),
        },
    );
    match out.last() {
        Some(Effect::Fanout {
            frame: Frame::RoomMsg { id, .. },
            ..
        }) => *id,
        other => panic!("{other:?}"),
    }
}

/// The texts of the encoded room messages replied, in order.
fn kept_texts(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ReplyEncoded(bytes) => match Frame::from_encoded(bytes) {
                Ok(Frame::RoomMsg { text, .. }) => Some(text),
                other => panic!("{other:?}"),
            },
            _ => None,
        })
        .collect()
}

fn joined_last(effects: &[Effect]) -> u64 {
    match replies(effects).first() {
        Some(Frame::Joined { last, .. }) => *last,
        other => panic!("{other:?}"),
    }
}

#[test]
fn ids_increase_by_one_and_a_join_names_the_last() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let last = joined_last(&w.apply(&mut ann, join("den".into())));
    let first = say(&w, &mut ann, "den", "a");
    assert_eq!(first, last + 1);
    assert_eq!(say(&w, &mut ann, "den", "b"), first + 1);
    let mut bob = w.binary(2, "bob");
    assert_eq!(
        joined_last(&w.apply(&mut bob, join("den".into()))),
        first + 1
    );
}

#[test]
fn a_resuming_join_replays_what_came_after_then_counts_what_is_gone() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    w.apply(&mut ann, join("den".into()));
    let seen = joined_last(&w.apply(&mut bob, join("den".into())));
    let first = say(&w, &mut ann, "den", "one");
    w.apply(&mut bob, Request::Leave(Some("den".into())));
    for text in ["two", "three"] {
        say(&w, &mut ann, "den", text);
    }
    // Bob saw "one" and comes back.
    let out = w.apply(&mut bob, resume("den", first));
    assert!(
        matches!(
            replies(&out)[..],
            [
                Frame::Joined { .. },
                Frame::Resumed {
                    replayed: 2,
                    missed: 0,
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    assert_eq!(kept_texts(&out), ["two", "three"]);
    // Five are kept (LIMITS): from the start, two of seven are gone.
    w.apply(&mut bob, Request::Leave(Some("den".into())));
    for text in ["4", "5", "6", "7"] {
        say(&w, &mut ann, "den", text);
    }
    let out = w.apply(&mut bob, resume("den", seen));
    assert!(
        matches!(
            replies(&out)[..],
            [
                Frame::Joined { .. },
                Frame::Resumed {
                    replayed: 5,
                    missed: 2,
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    assert_eq!(kept_texts(&out), ["three", "4", "5", "6", "7"]);
}

#[test]
fn a_text_client_reads_history_as_lines_with_time_and_nick() {
    let w = World::new();
    let mut ann = w.text(1, "ann");
    for text in ["hello", "\u{1b}[2Jevil"] {
        w.apply(
            &mut ann,
            Request::Say {
                room: None,
                text: text.into(),
            },
        );
    }
    let out = w.apply(
        &mut ann,
        Request::History {
            room: None,
            before: 0,
            limit: None,
        },
    );
    assert!(matches!(out[0], Effect::Charge(n) if n == crate::session::request::HISTORY_COST - 1));
    assert!(
        matches!(replies(&out)[..], [Frame::HistoryPage { room, count: 2, more: false }] if room == "lobby")
    );
    let lines: Vec<&String> = out
        .iter()
        .filter_map(|e| match e {
            Effect::ReplyText(line) => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].starts_with("[lobby] ") && lines[0].ends_with(" <ann> hello"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(" <ann> \\x1b[2Jevil"),
        "escaped: {lines:?}"
    );
}

#[test]
fn a_binary_page_goes_back_from_an_id_and_is_capped() {
    let w = World::with_limits(HistoryLimits {
        messages: 2000,
        room_bytes: 1 << 20,
        budget: 1 << 20,
    });
    let mut ann = w.binary(1, "ann");
    w.apply(&mut ann, join("den".into()));
    let ids: Vec<u64> = (0..1200)
        .map(|n| say(&w, &mut ann, "den", &n.to_string()))
        .collect();
    let page = |ann: &mut Session, before: u64, limit: u32| {
        w.apply(
            ann,
            Request::History {
                room: Some("DEN".into()),
                before,
                limit: Some(limit),
            },
        )
    };
    let out = page(&mut ann, ids[10], 3);
    assert!(matches!(
        replies(&out)[..],
        [Frame::HistoryPage {
            count: 3,
            more: true,
            ..
        }]
    ));
    assert_eq!(kept_texts(&out), ["7", "8", "9"]);
    let out = page(&mut ann, 0, u32::MAX);
    assert!(
        matches!(replies(&out)[..], [Frame::HistoryPage { count, more: true, .. }] if *count == MAX_HISTORY_PAGE)
    );
    assert_eq!(kept_texts(&out).last().map(String::as_str), Some("1199"));
}

#[test]
fn ids_the_room_never_handed_out_are_refused_and_change_nothing() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    let mut bob = w.binary(2, "bob");
    let last = joined_last(&w.apply(&mut ann, join("den".into())));
    say(&w, &mut ann, "den", "hi");
    for since in [last + 2, last - 1, 0, u64::MAX] {
        let text = assert_refused(
            &w.apply(&mut bob, resume("den", since)),
            ErrorCode::UNKNOWN_MESSAGE_ID,
        );
        assert!(text.contains(&since.to_string()), "{text}");
    }
    assert_eq!(
        w.engine.who("den", 10).unwrap().1.items,
        ["ann"],
        "bob did not join"
    );
    assert_refused(
        &w.apply(&mut bob, resume("elsewhere", last)),
        ErrorCode::UNKNOWN_MESSAGE_ID,
    );
    assert_eq!(
        w.engine.counts().rooms,
        1,
        "no room was made for a refused resume"
    );
    let history = |before| Request::History {
        room: Some("den".into()),
        before,
        limit: None,
    };
    assert_refused(
        &w.apply(&mut bob, history(last + 3)),
        ErrorCode::UNKNOWN_MESSAGE_ID,
    );
    assert_refused(
        &w.apply(&mut bob, history(1)),
        ErrorCode::UNKNOWN_MESSAGE_ID,
    );
    assert_refused(
        &w.apply(
            &mut bob,
            Request::History {
                room: Some("nowhere".into()),
                before: 0,
                limit: None,
            },
        ),
        ErrorCode::NO_SUCH_ROOM,
    );
    assert_refused(
        &w.apply(
            &mut bob,
            Request::History {
                room: None,
                before: 0,
                limit: None,
            },
        ),
        ErrorCode::NOT_IN_ROOM,
    );
    // A member asking to resume gets nothing twice.
    assert_refused(
        &w.apply(&mut ann, resume("den", last)),
        ErrorCode::INVALID_REQUEST,
    );
}

#[test]
fn an_emptied_room_keeps_its_history_and_its_ids_go_on() {
    let w = World::new();
    let mut ann = w.binary(1, "ann");
    w.apply(&mut ann, join("den".into()));
    let id = say(&w, &mut ann, "den", "still here");
    w.apply(&mut ann, Request::Leave(Some("den".into())));
    assert_eq!(w.engine.counts().rooms, 0, "an empty room is not counted");
    assert_eq!(w.engine.list_rooms(10).items, [], "nor listed");
    let mut bob = w.binary(2, "bob");
    let out = w.apply(&mut bob, resume("den", id - 1));
    assert_eq!(kept_texts(&out), ["still here"]);
    assert_eq!(say(&w, &mut bob, "den", "next"), id + 1);
    // A room that never kept anything goes when it empties.
    let w = World::with_limits(HistoryLimits {
        messages: 0,
        ..LIMITS
    });
    let mut ann = w.binary(1, "ann");
    w.apply(&mut ann, join("den".into()));
    say(&w, &mut ann, "den", "gone");
    w.apply(&mut ann, Request::Leave(Some("den".into())));
    let mut bob = w.binary(2, "bob");
    let last = joined_last(&w.apply(&mut bob, join("den".into())));
    assert!(last > id + 1 || last < id, "a new room, with new ids");
}

#[test]
fn rooms_stay_within_the_budget_and_emptied_rooms_are_forgotten() {
    let budget = 16 << 10;
    let w = World::with_limits(HistoryLimits {
        messages: 1000,
        room_bytes: 8 << 10,
        budget,
    });
    let mut ann = w.binary(1, "ann");
    let text = "x".repeat(200);
    for room in 0..40 {
        let name = format!("r{room}");
        w.apply(&mut ann, join(name.clone()));
        say(&w, &mut ann, &name, &text);
        w.apply(&mut ann, Request::Leave(Some(name)));
        let held = w.engine.counts().history_bytes as usize;
        assert!(held <= budget, "room {room}: {held} > {budget}");
    }
    let mut bob = w.binary(2, "bob");
    let history = |room: &str| Request::History {
        room: Some(room.into()),
        before: 0,
        limit: None,
    };
    // The budget held about 20 such rooms: the first ones were evicted, and, empty of
    // members and history, forgotten; the last ones are kept with their message.
    assert_refused(&w.apply(&mut bob, history("r0")), ErrorCode::NO_SUCH_ROOM);
    let out = w.apply(&mut bob, history("r39"));
    assert!(
        matches!(replies(&out)[..], [Frame::HistoryPage { count: 1, .. }]),
        "{out:?}"
    );
    // A room kept for its history is not listed.
    assert_eq!(w.engine.list_rooms(100).items, []);
}
