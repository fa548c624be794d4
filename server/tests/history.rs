//! Room history and resume over real sockets: one order per room across workers, the
//! seam between a replay and live traffic while senders keep sending, history pages in
//! both framings, and ids the server never handed out.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{BinClient, TestServer, TextClient};
use shared::{ErrorCode, Frame};

fn say(room: &str, text: &str) -> Frame {
    Frame::Say {
        room: room.to_owned(),
        text: text.to_owned(),
    }
}

fn resume(room: &str, since: u64) -> Frame {
    Frame::Join {
        room: room.to_owned(),
        since: Some(since),
    }
}

/// Reads frames until `Joined`, `Resumed` and the replay have come; returns the replayed
/// ids and the missed count.
fn read_resume(c: &mut BinClient, room: &str) -> (Vec<u64>, u64) {
    let me = c.nick.clone();
    c.expect(|f| matches!(f, Frame::Joined { room: r, nick, .. } if r == room && *nick == me));
    let (replayed, missed) = match c.recv() {
        Frame::Resumed {
            replayed, missed, ..
        } => (replayed, missed),
        other => panic!("expected Resumed, got {other:?}"),
    };
    let ids = (0..replayed)
        .map(|_| match c.recv() {
            Frame::RoomMsg { id, .. } => id,
            other => panic!("expected a replayed RoomMsg, got {other:?}"),
        })
        .collect();
    (ids, missed)
}

/// Senders on every worker keep talking while a reader drops and resumes again and
/// again: the ids it sees, before and after each drop, run one by one with no gap and
/// no duplicate, and nothing is missed.
#[test]
fn a_reader_that_drops_and_resumes_under_traffic_sees_every_id_once() {
    const SENDERS: usize = 4;
    const CYCLES: usize = 12;
    let server = TestServer::with(|c| c.workers = 2);
    let mut reader = BinClient::named(server.addr, "reader");
    let mut seen = vec![reader.join("den")];
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|n| {
            let mut c = BinClient::named(server.addr, &format!("s{n}"));
            c.join("den");
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Acquire) {
                    for _ in 0..20 {
                        c.send(&say("den", &format!("s{n} {sent}")));
                        sent += 1;
                    }
                    // About 400 messages a second each, under the rate limit.
                    std::thread::sleep(Duration::from_millis(50));
                }
                c
            })
        })
        .collect();
    let mut replayed_total = 0;
    for cycle in 0..CYCLES {
        // Read live traffic for a while.
        for _ in 0..30 {
            if let Frame::RoomMsg { id, .. } = reader.expect(|f| matches!(f, Frame::RoomMsg { .. }))
            {
                seen.push(id);
            }
        }
        // Drop without a word, and come back resuming from the last id seen.
        drop(reader);
        std::thread::sleep(Duration::from_millis(20 + 10 * cycle as u64));
        reader = BinClient::connect(server.addr);
        // The old connection may still hold the nick for a moment.
        loop {
            reader.send(&Frame::SetNick {
                nick: "reader".into(),
            });
            match reader.expect(|f| matches!(f, Frame::NickChanged { .. } | Frame::Error { .. })) {
                Frame::NickChanged { new, .. } => {
                    reader.nick = new;
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        reader.send(&resume("den", *seen.last().unwrap()));
        let (ids, missed) = read_resume(&mut reader, "den");
        assert_eq!(missed, 0, "cycle {cycle}: history reaches back that far");
        assert!(
            !ids.is_empty(),
            "cycle {cycle}: something was said meanwhile"
        );
        replayed_total += ids.len();
        seen.extend(ids);
    }
    for _ in 0..30 {
        if let Frame::RoomMsg { id, .. } = reader.expect(|f| matches!(f, Frame::RoomMsg { .. })) {
            seen.push(id);
        }
    }
    stop.store(true, Ordering::Release);
    for sender in senders {
        drop(sender.join().unwrap());
    }
    assert!(
        seen.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "ids run one by one with no gap or duplicate: {:?}",
        seen.windows(2).find(|pair| pair[1] != pair[0] + 1)
    );
    assert!(replayed_total >= CYCLES);
}

#[test]
fn history_pages_in_binary_and_lines_in_text() {
    let server = TestServer::start();
    let mut ann = BinClient::named(server.addr, "ann");
    ann.join("lobby");
    let mut ids = Vec::new();
    for n in 0..30 {
        ann.send(&say("lobby", &format!("line {n}")));
        if let Frame::RoomMsg { id, .. } = ann.expect(|f| matches!(f, Frame::RoomMsg { .. })) {
            ids.push(id);
        }
    }
    ann.send(&Frame::GetHistory {
        room: "LOBBY".into(),
        before: ids[10],
        limit: 4,
    });
    assert_eq!(
        ann.recv(),
        Frame::HistoryPage {
            room: "lobby".into(),
            count: 4,
            more: true
        }
    );
    let texts: Vec<String> = (0..4)
        .map(|_| match ann.recv() {
            Frame::RoomMsg { text, from, .. } if from == "ann" => text,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, ["line 6", "line 7", "line 8", "line 9"]);
    // A page larger than the cap is cut to it; this one holds all 30.
    ann.send(&Frame::GetHistory {
        room: "lobby".into(),
        before: 0,
        limit: u16::MAX,
    });
    assert!(matches!(
        ann.recv(),
        Frame::HistoryPage {
            count: 30,
            more: false,
            ..
        }
    ));
    let mut text = TextClient::connect(server.addr);
    text.send_line("/history 3");
    // The greeting's join notice and others may come first.
    text.expect(|l| l == "* history of lobby: 3 messages; older ones not shown");
    for n in 27..30 {
        let line = text.line();
        assert!(
            line.starts_with("[lobby] ") && line.ends_with(&format!(" <ann> line {n}")),
            "{line}"
        );
    }
    text.send_line("/history lobby many");
    text.expect(|l| l.starts_with("ERR 201 usage: /history"));
}

#[test]
fn ids_the_server_never_handed_out_are_refused_with_210() {
    let server = TestServer::start();
    let mut ann = BinClient::named(server.addr, "ann");
    let start = ann.join("den");
    ann.send(&say("den", "hi"));
    ann.expect(|f| matches!(f, Frame::RoomMsg { .. }));
    let other = ann.join("other");
    let mut bob = BinClient::named(server.addr, "bob");
    for since in [start + 2, start - 1, 0, u64::MAX, other] {
        bob.send(&resume("den", since));
        assert!(
            matches!(bob.recv(), Frame::Error { code, .. } if code == ErrorCode::UNKNOWN_MESSAGE_ID),
            "{since}"
        );
    }
    bob.send(&Frame::GetHistory {
        room: "den".into(),
        before: start + 5,
        limit: 1,
    });
    assert!(
        matches!(bob.recv(), Frame::Error { code, .. } if code == ErrorCode::UNKNOWN_MESSAGE_ID)
    );
    // Nothing changed: bob is in no room, and still served.
    bob.send(&Frame::Who { room: "den".into() });
    assert!(matches!(bob.recv(), Frame::WhoList { nicks, .. } if nicks == ["ann"]));
    // A good resume still works.
    bob.send(&resume("den", start));
    bob.expect(|f| matches!(f, Frame::Joined { .. }));
    assert!(matches!(
        bob.recv(),
        Frame::Resumed {
            replayed: 1,
            missed: 0,
            ..
        }
    ));
    assert!(matches!(bob.recv(), Frame::RoomMsg { text, .. } if text == "hi"));
}

/// A room message keeps its place among its sender's other frames: a direct message
/// sent after it, to a member on the same worker or another, arrives after it, and so
/// does the sender's own next answer.
#[test]
fn a_room_message_keeps_its_place_among_the_senders_frames() {
    for workers in [1, 2] {
        let server = TestServer::with(|c| c.workers = workers);
        let mut ann = BinClient::named(server.addr, "ann");
        let mut bob = BinClient::named(server.addr, "bob");
        ann.join("den");
        bob.join("den");
        ann.expect(|f| matches!(f, Frame::Joined { nick, .. } if nick == "bob"));
        for round in 0..50 {
            let mut burst = bytes::BytesMut::new();
            for frame in [
                say("den", &format!("room {round}")),
                Frame::Direct {
                    to: "bob".into(),
                    text: format!("dm {round}"),
                },
                Frame::Echo {
                    payload: bytes::Bytes::from_static(b"after"),
                },
            ] {
                frame.encode(&mut burst).unwrap();
            }
            ann.send_raw(&burst);
            assert!(
                matches!(ann.recv(), Frame::RoomMsg { text, .. } if text == format!("room {round}")),
                "{workers} workers, round {round}: own room message first"
            );
            assert!(matches!(ann.recv(), Frame::EchoReply { .. }));
            assert!(
                matches!(bob.recv(), Frame::RoomMsg { text, .. } if text == format!("room {round}")),
                "{workers} workers, round {round}"
            );
            assert!(
                matches!(bob.recv(), Frame::DirectMsg { text, .. } if text == format!("dm {round}"))
            );
        }
        // A join notice goes out before the joiner's first message.
        let mut cat = BinClient::named(server.addr, "cat");
        let mut burst = bytes::BytesMut::new();
        for frame in [
            Frame::Join {
                room: "den".into(),
                since: None,
            },
            say("den", "hi all"),
        ] {
            frame.encode(&mut burst).unwrap();
        }
        cat.send_raw(&burst);
        for member in [&mut ann, &mut bob] {
            assert!(matches!(member.recv(), Frame::Joined { nick, .. } if nick == "cat"));
            assert!(matches!(member.recv(), Frame::RoomMsg { text, .. } if text == "hi all"));
        }
    }
}
