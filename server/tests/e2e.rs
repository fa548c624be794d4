//! End-to-end tests: a real server on 127.0.0.1:0, real sockets, both framings.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{BinClient, TIMEOUT, TestServer, TextClient};
use shared::{ErrorCode, Frame};

fn is_error(frame: &Frame, code: ErrorCode) -> bool {
    matches!(frame, Frame::Error { code: c, .. } if *c == code)
}

// ---- text mode ---------------------------------------------------------------------

#[test]
fn text_client_chats_in_the_lobby_right_away() {
    let server = TestServer::start();
    let mut alice = TextClient::connect(server.addr);
    let mut bob = TextClient::connect(server.addr);
    alice.send_line("hello everyone");
    let expected = format!("[lobby] <{}> hello everyone", alice.nick);
    assert_eq!(alice.expect(|l| l.contains("hello everyone")), expected);
    assert_eq!(bob.expect(|l| l.contains("hello everyone")), expected);
}

#[test]
fn text_commands_answer_in_readable_lines() {
    let server = TestServer::start();
    let mut c = TextClient::connect(server.addr);
    c.send_line("/nick alice");
    assert_eq!(c.line(), format!("* {} is now known as alice", c.nick));
    c.send_line("/join games");
    assert_eq!(c.line(), "[games] * alice joined (1 member)");
    c.send_line("/rooms");
    assert_eq!(c.line(), "* rooms: games (1), lobby (1)");
    c.send_line("/who lobby");
    assert_eq!(c.line(), "* in lobby: alice");
    c.send_line("/leave games");
    assert_eq!(c.line(), "[games] * alice left (0 members)");
    c.send_line("/msg nobody hi");
    assert!(c.line().starts_with("ERR 204 "));
    c.send_line("/frobnicate");
    assert!(c.line().starts_with("ERR 200 "));
    c.send_line("/nick");
    assert!(c.line().starts_with("ERR 201 "));
    c.send_line("/nick bad!name");
    assert!(c.line().starts_with("ERR 203 "));
    c.send_line("/help");
    assert!(c.line().starts_with("* /nick NAME"));
    c.send_line("/stats");
    c.expect(|l| l == "* stats:");
    c.expect(|l| l == "*   connections 1");
    c.send_line("/quit");
    let rest = c.drain_until_closed();
    assert_eq!(rest.last().map(String::as_str), Some("* goodbye: bye"));
}

#[test]
fn text_echo_answers_seconds_micros_colon_payload() {
    let server = TestServer::start();
    let mut c = TextClient::connect(server.addr);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    c.send_line("/echo  spaced  payload: with colon ü");
    let line = c.line();
    let (stamp, payload) = line.split_once(':').unwrap();
    assert_eq!(payload, " spaced  payload: with colon ü");
    let (secs, micros) = stamp.split_once('.').unwrap();
    assert_eq!(micros.len(), 6, "{stamp}");
    let t: f64 = format!("{secs}.{micros}").parse().unwrap();
    assert!(
        (t - before).abs() < 60.0,
        "server time {t} far from {before}"
    );
}

#[test]
fn crlf_lines_and_merged_and_split_writes_work() {
    let server = TestServer::start();
    let mut c = TextClient::connect(server.addr);
    // Two commands in one write, with \r\n.
    c.send_raw(b"/echo one\r\n/echo two\r\n");
    assert!(c.line().ends_with(":one"));
    assert!(c.line().ends_with(":two"));
    // One command split byte by byte, with a UTF-8 character split across writes.
    for byte in "/echo h\u{e9}llo\n".as_bytes() {
        c.send_raw(&[*byte]);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(c.line().ends_with(":h\u{e9}llo"));
}

#[test]
fn control_characters_never_reach_text_clients_raw() {
    let server = TestServer::start();
    let mut viewer = TextClient::connect(server.addr);
    let mut sender = BinClient::connect(server.addr);
    sender.join("lobby");
    sender.send(&Frame::Say {
        room: "lobby".into(),
        text: "\u{1b}[2Jboom\u{7}\u{9b}x\ttab\u{7f}".into(),
    });
    let line = viewer.expect(|l| l.contains("boom"));
    assert!(
        !line.chars().any(|c| c.is_control() && c != '\t'),
        "raw control in {line:?}"
    );
    assert!(
        line.ends_with("\\x1b[2Jboom\\x07\\u{9b}x\ttab\\x7f"),
        "{line:?}"
    );
}

// ---- binary mode -------------------------------------------------------------------

#[test]
fn binary_echo_returns_payload_byte_for_byte_with_server_time() {
    let server = TestServer::start();
    let mut c = BinClient::connect(server.addr);
    let payload: Vec<u8> = (0..=255u8).chain([0, 0, b'\n', 0xff]).collect();
    let before = shared::time::unix_nanos();
    c.send(&Frame::Echo {
        payload: Bytes::from(payload.clone()),
    });
    match c.recv() {
        Frame::EchoReply {
            server_time_ns,
            payload: got,
        } => {
            assert_eq!(got.as_ref(), payload.as_slice());
            let after = shared::time::unix_nanos();
            assert!(server_time_ns >= before && server_time_ns <= after);
        }
        other => panic!("expected EchoReply, got {other:?}"),
    }
}

#[test]
fn frames_merged_in_one_write_and_split_byte_by_byte_are_served() {
    let server = TestServer::start();
    let mut c = BinClient::connect(server.addr);
    let mut buf = bytes::BytesMut::new();
    for i in 0..20u8 {
        Frame::Echo {
            payload: Bytes::from(vec![i; 3]),
        }
        .encode(&mut buf)
        .unwrap();
    }
    c.send_raw(&buf);
    for i in 0..20u8 {
        assert!(matches!(c.recv(), Frame::EchoReply { payload, .. } if payload.as_ref() == [i; 3]));
    }
    let one = Frame::Echo {
        payload: Bytes::from_static("é€𝄞".as_bytes()),
    }
    .to_bytes()
    .unwrap();
    for byte in one.iter() {
        c.send_raw(&[*byte]);
    }
    assert!(
        matches!(c.recv(), Frame::EchoReply { payload, .. } if payload.as_ref() == "é€𝄞".as_bytes())
    );
}

#[test]
fn version_mismatch_is_a_clear_error_then_close() {
    let server = TestServer::start();
    let mut c = BinClient::connect_raw(server.addr);
    c.send(&Frame::Hello { version: 99 });
    let frames = c.drain_until_closed();
    assert!(
        is_error(&frames[0], ErrorCode::VERSION_MISMATCH),
        "{frames:?}"
    );
}

#[test]
fn first_frame_must_be_hello() {
    let server = TestServer::start();
    let mut c = BinClient::connect_raw(server.addr);
    c.send(&Frame::ListRooms);
    let frames = c.drain_until_closed();
    assert!(
        is_error(&frames[0], ErrorCode::HELLO_REQUIRED),
        "{frames:?}"
    );
}

#[test]
fn server_frames_from_a_client_are_refused() {
    let server = TestServer::start();
    let mut c = BinClient::connect(server.addr);
    c.send(&Frame::Notice { text: "hi".into() });
    let frames = c.drain_until_closed();
    assert!(
        is_error(&frames[0], ErrorCode::UNEXPECTED_FRAME),
        "{frames:?}"
    );
}

#[test]
fn nicks_are_unique_case_insensitively_and_validated() {
    let server = TestServer::start();
    let _alice = BinClient::named(server.addr, "Alice");
    let mut bob = BinClient::connect(server.addr);
    bob.send(&Frame::SetNick {
        nick: "alice".into(),
    });
    assert!(is_error(&bob.recv(), ErrorCode::NICK_TAKEN));
    bob.send(&Frame::SetNick {
        nick: "has space".into(),
    });
    assert!(is_error(&bob.recv(), ErrorCode::INVALID_NAME));
    bob.send(&Frame::SetNick {
        nick: "x".repeat(33),
    });
    assert!(is_error(&bob.recv(), ErrorCode::INVALID_NAME));
}

#[test]
fn join_notices_and_who_and_rooms() {
    let server = TestServer::start();
    let mut a = BinClient::named(server.addr, "a");
    let mut b = BinClient::named(server.addr, "b");
    a.join("Den");
    let join_b = b.join("den");
    let notice = a.recv();
    assert_eq!(
        notice,
        Frame::Joined {
            room: "Den".into(),
            nick: "b".into(),
            members: 2,
            last: join_b
        }
    );
    a.send(&Frame::Who { room: "DEN".into() });
    assert_eq!(
        a.recv(),
        Frame::WhoList {
            room: "Den".into(),
            nicks: vec!["a".into(), "b".into()]
        }
    );
    b.send(&Frame::Leave { room: "den".into() });
    b.expect(|f| matches!(f, Frame::Left { .. }));
    assert!(matches!(a.recv(), Frame::Left { nick, members: 1, .. } if nick == "b"));
    a.send(&Frame::ListRooms);
    assert!(
        matches!(a.recv(), Frame::RoomList { rooms } if rooms.len() == 1 && rooms[0].members == 1)
    );
    b.send(&Frame::Say {
        room: "den".into(),
        text: "x".into(),
    });
    assert!(is_error(&b.recv(), ErrorCode::NOT_IN_ROOM));
}

/// Members spread over every worker each get every message exactly once, in the order
/// each sender sent them, and all in the same order: the room's ids, one by one.
#[test]
fn room_messages_reach_every_member_once_in_order_across_workers() {
    const WORKERS: usize = 4;
    const MEMBERS: usize = 8;
    const COUNT: usize = 100;
    let server = TestServer::with(|c| c.workers = WORKERS);
    let mut clients: Vec<BinClient> = (0..MEMBERS)
        .map(|i| BinClient::named(server.addr, &format!("m{i}")))
        .collect();
    for c in &mut clients {
        c.join("big");
    }
    let per_worker: Vec<u64> = (0..WORKERS)
        .map(|w| server.stat(&format!("worker{w}_connections")))
        .collect();
    assert!(per_worker.iter().all(|&n| n == 2), "{per_worker:?}");
    for i in 0..COUNT {
        for c in &mut clients {
            c.send(&Frame::Say {
                room: "big".into(),
                text: format!("{} {i}", c.nick),
            });
        }
    }
    let mut orders: Vec<Vec<String>> = Vec::new();
    for c in &mut clients {
        let mut next: HashMap<String, usize> = HashMap::new();
        let mut received = 0;
        let mut order = Vec::new();
        let mut last_id = None;
        while received < COUNT * MEMBERS {
            match c.recv() {
                Frame::RoomMsg {
                    room,
                    from,
                    text,
                    id,
                    ..
                } => {
                    assert_eq!(room, "big");
                    if let Some(last) = last_id {
                        assert_eq!(id, last + 1, "ids one by one");
                    }
                    last_id = Some(id);
                    order.push(text.clone());
                    let (sender, seq) = text.split_once(' ').unwrap();
                    assert_eq!(sender, from);
                    let expected = next.entry(from.clone()).or_insert(0);
                    assert_eq!(seq.parse::<usize>().unwrap(), *expected, "from {from}");
                    *expected += 1;
                    received += 1;
                }
                Frame::Joined { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(next.values().all(|&n| n == COUNT));
        orders.push(order);
    }
    assert!(
        orders.windows(2).all(|pair| pair[0] == pair[1]),
        "every member sees one order"
    );
    // Nothing more: a duplicate would show up as an unexpected extra frame.
    for c in &mut clients {
        c.send(&Frame::Ping { token: 7 });
        assert_eq!(c.recv(), Frame::Pong { token: 7 });
    }
}

#[test]
fn text_and_binary_members_share_a_room() {
    let server = TestServer::start();
    let mut text = TextClient::connect(server.addr);
    let mut bin = BinClient::named(server.addr, "bin");
    bin.join("lobby");
    text.send_line("from text");
    assert!(matches!(bin.expect(|f| matches!(f, Frame::RoomMsg { .. })),
        Frame::RoomMsg { text: t, .. } if t == "from text"));
    bin.send(&Frame::Say {
        room: "lobby".into(),
        text: "from bin".into(),
    });
    assert_eq!(
        text.expect(|l| l.contains("from bin")),
        "[lobby] <bin> from bin"
    );
}

#[test]
fn direct_messages_cross_modes() {
    let server = TestServer::start();
    let mut text = TextClient::connect(server.addr);
    text.send_line("/nick tina");
    text.line();
    let mut bin = BinClient::named(server.addr, "bert");
    bin.send(&Frame::Direct {
        to: "TINA".into(),
        text: "psst".into(),
    });
    assert_eq!(text.line(), "[dm] <bert> psst");
    text.send_line("/msg bert hi  there");
    assert_eq!(
        bin.recv(),
        Frame::DirectMsg {
            from: "tina".into(),
            text: "hi  there".into()
        }
    );
    bin.send(&Frame::Direct {
        to: "ghost".into(),
        text: "x".into(),
    });
    assert!(is_error(&bin.recv(), ErrorCode::NO_SUCH_NICK));
}

#[test]
fn private_chat_request_accept_busy_end_and_disconnect() {
    let server = TestServer::start();
    let mut a = BinClient::named(server.addr, "ann");
    let mut b = TextClient::connect(server.addr);
    b.send_line("/nick ben");
    b.line();
    let mut c = BinClient::named(server.addr, "cat");

    a.send(&Frame::ChatRequest { peer: "ben".into() });
    assert!(matches!(a.recv(), Frame::Notice { .. }));
    assert_eq!(b.line(), "* ann asks for a private chat; /chat ann accepts");
    b.send_line("/chat ann");
    assert!(b.line().starts_with("* private chat with ann started"));
    assert_eq!(a.recv(), Frame::ChatStarted { peer: "ben".into() });

    // Plain lines of a text user in a private chat go to the partner, and the person
    // sees what it sent.
    b.send_line("just for you");
    assert_eq!(b.line(), "[chat] <ben> just for you");
    assert_eq!(
        a.recv(),
        Frame::ChatMsg {
            from: "ben".into(),
            text: "just for you".into()
        }
    );
    a.send(&Frame::ChatSay { text: "ok".into() });
    assert_eq!(b.line(), "[chat] <ann> ok");

    // Anyone else asking either of them is told BUSY.
    c.send(&Frame::ChatRequest { peer: "ann".into() });
    assert_eq!(c.recv(), Frame::Busy { peer: "ann".into() });
    c.send(&Frame::ChatRequest { peer: "Ben".into() });
    assert_eq!(c.recv(), Frame::Busy { peer: "ben".into() });

    // Either side can end it.
    b.send_line("/chat");
    assert!(b.line().starts_with("* private chat with ann ended"));
    assert!(matches!(a.recv(), Frame::ChatEnded { peer, .. } if peer == "ben"));

    // A disconnect ends a chat with a notice to the other side.
    c.send(&Frame::ChatRequest { peer: "ann".into() });
    c.recv();
    a.expect(|f| matches!(f, Frame::ChatRequested { from } if from == "cat"));
    a.send(&Frame::ChatAccept { peer: "cat".into() });
    a.expect(|f| matches!(f, Frame::ChatStarted { .. }));
    c.expect(|f| matches!(f, Frame::ChatStarted { .. }));
    drop(c);
    let ended = a.expect(|f| matches!(f, Frame::ChatEnded { .. }));
    assert!(
        matches!(ended, Frame::ChatEnded { peer, reason } if peer == "cat" && reason.contains("disconnected"))
    );
    a.send(&Frame::ChatSay {
        text: "anyone?".into(),
    });
    assert!(is_error(&a.recv(), ErrorCode::NOT_IN_CHAT));
}

/// A client sending one frame over and over from a writer thread while a reader thread
/// throws away everything it receives.
struct Chatter {
    stop: Arc<AtomicBool>,
    stream: TcpStream,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Chatter {
    fn start(client: BinClient, frame: Frame) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut block = bytes::BytesMut::new();
        for _ in 0..50 {
            frame.encode(&mut block).expect("encode");
        }
        let mut writer = client.stream.try_clone().expect("clone stream");
        let mut reader = client.stream.try_clone().expect("clone stream");
        let flag = Arc::clone(&stop);
        let write = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) && writer.write_all(&block).is_ok() {}
        });
        let read = std::thread::spawn(move || {
            let mut buf = [0u8; 64 << 10];
            while matches!(std::io::Read::read(&mut reader, &mut buf), Ok(n) if n > 0) {}
        });
        Self {
            stop,
            stream: client.stream,
            threads: vec![write, read],
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        for t in self.threads {
            t.join().expect("chatter thread");
        }
    }
}

/// Frames `client` receives before the answer to a ping sent `settle` from now.
fn frames_until_pong(client: &mut BinClient, settle: Duration) -> Vec<Frame> {
    std::thread::sleep(settle);
    client.send(&Frame::Ping { token: 77 });
    let mut frames = Vec::new();
    loop {
        match client.recv() {
            Frame::Pong { token: 77 } => return frames,
            frame => frames.push(frame),
        }
    }
}

#[test]
fn nothing_of_a_room_arrives_after_leaving_it() {
    let server = TestServer::with(|c| {
        c.workers = 2;
        c.rate_limit = 0;
    });
    // The talker and the member are on different workers, so the talker's messages
    // reach the member's worker through its channel while the member leaves.
    let mut talker = BinClient::named(server.addr, "talker");
    talker.join("busy");
    let mut member = BinClient::named(server.addr, "member");
    let chatter = Chatter::start(
        talker,
        Frame::Say {
            room: "busy".into(),
            text: "chatter".into(),
        },
    );
    for round in 0..20 {
        member.join("busy");
        member.expect(|f| matches!(f, Frame::RoomMsg { .. }));
        member.send(&Frame::Leave {
            room: "busy".into(),
        });
        member.expect(|f| matches!(f, Frame::Left { nick, .. } if nick == "member"));
        let late = frames_until_pong(&mut member, Duration::from_millis(30));
        assert!(
            late.is_empty(),
            "round {round}: {} frames after Left, first {:?}",
            late.len(),
            late.first()
        );
    }
    chatter.stop();
}

/// Two clients, `nick` and `peer{round}`, in a private chat with each other; the
/// peer asked and `nick` accepted.
fn private_chat(addr: std::net::SocketAddr, nick: &str, round: usize) -> (BinClient, BinClient) {
    let mut first = BinClient::named(addr, nick);
    let mut peer = BinClient::named(addr, &format!("peer{round}"));
    peer.send(&Frame::ChatRequest {
        peer: first.nick.clone(),
    });
    first.expect(|f| matches!(f, Frame::ChatRequested { .. }));
    first.send(&Frame::ChatAccept {
        peer: peer.nick.clone(),
    });
    peer.expect(|f| matches!(f, Frame::ChatStarted { .. }));
    (first, peer)
}

#[test]
fn nothing_of_a_private_chat_arrives_after_it_ended() {
    let server = TestServer::with(|c| {
        c.workers = 2;
        c.rate_limit = 0;
    });
    for round in 0..10 {
        let (talker, mut peer) = private_chat(server.addr, &format!("talker{round}"), round);
        let chatter = Chatter::start(
            talker,
            Frame::ChatSay {
                text: "chatter".into(),
            },
        );
        peer.expect(|f| matches!(f, Frame::ChatMsg { .. }));
        peer.send(&Frame::ChatEnd);
        peer.expect(|f| matches!(f, Frame::ChatEnded { .. }));
        let late = frames_until_pong(&mut peer, Duration::from_millis(30));
        assert!(
            late.is_empty(),
            "round {round}: {} frames after ChatEnded, first {:?}",
            late.len(),
            late.first()
        );
        chatter.stop();
    }
}

#[test]
fn a_chat_message_sent_just_before_the_sender_ends_the_chat_still_arrives() {
    let server = TestServer::with(|c| c.workers = 2);
    for round in 0..30 {
        let (mut sender, mut peer) = private_chat(server.addr, &format!("sender{round}"), round);
        // "bye" and the end in one write: both are handled in one turn of the sender's
        // worker, before the peer's worker sees the message.
        let mut buf = bytes::BytesMut::new();
        Frame::ChatSay { text: "bye".into() }
            .encode(&mut buf)
            .unwrap();
        match round % 3 {
            0 => Frame::ChatEnd.encode(&mut buf).unwrap(),
            1 => Frame::Goodbye {
                reason: "done".into(),
            }
            .encode(&mut buf)
            .unwrap(),
            _ => {}
        }
        sender.send_raw(&buf);
        if round % 3 == 2 {
            drop(sender);
        }
        let said = peer.recv();
        assert_eq!(
            said,
            Frame::ChatMsg {
                from: format!("sender{round}"),
                text: "bye".into()
            },
            "round {round}"
        );
        assert!(
            matches!(peer.recv(), Frame::ChatEnded { .. }),
            "round {round}"
        );
    }
}

#[test]
fn vanished_client_is_cleaned_up_completely() {
    let server = TestServer::start();
    let mut watcher = BinClient::named(server.addr, "watcher");
    watcher.join("room");
    {
        let mut ghost = BinClient::named(server.addr, "ghost");
        ghost.join("room");
        watcher.expect(|f| matches!(f, Frame::Joined { nick, .. } if nick == "ghost"));
        // A torn frame, then the socket goes away.
        ghost.send_raw(&[0, 0, 0, 50, 0x05, 4]);
    }
    let left = watcher.expect(|f| matches!(f, Frame::Left { .. }));
    assert!(matches!(left, Frame::Left { nick, members: 1, .. } if nick == "ghost"));
    server.wait_stat("connections", 1);
    // The nick is free again.
    let _again = BinClient::named(server.addr, "ghost");
    assert_eq!(server.stat("closed_eof"), 1);
}

#[test]
fn binary_goodbye_flushes_what_is_owed_then_closes() {
    let server = TestServer::start();
    let mut c = BinClient::connect(server.addr);
    let mut buf = bytes::BytesMut::new();
    for _ in 0..50 {
        Frame::Echo {
            payload: Bytes::from(vec![7u8; 1000]),
        }
        .encode(&mut buf)
        .unwrap();
    }
    Frame::Goodbye {
        reason: "done".into(),
    }
    .encode(&mut buf)
    .unwrap();
    c.send_raw(&buf);
    let frames = c.drain_until_closed();
    let echoes = frames
        .iter()
        .filter(|f| matches!(f, Frame::EchoReply { .. }))
        .count();
    assert_eq!(echoes, 50);
    server.wait_stat("closed_goodbye", 1);
}

#[test]
fn stats_frame_counts_connections_and_closes() {
    let server = TestServer::start();
    let mut c = BinClient::connect(server.addr);
    {
        let _short = BinClient::connect(server.addr);
    }
    server.wait_stat("closed_eof", 1);
    c.send(&Frame::GetStats);
    let Frame::Stats { entries } = c.recv() else {
        panic!("expected Stats");
    };
    let get = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert_eq!(get("connections"), Some(1));
    assert_eq!(get("connections_total"), Some(2));
    assert_eq!(get("closed_eof"), Some(1));
    assert_eq!(get("workers"), Some(2));
    assert!(get("messages_in").unwrap() >= 3);
    assert!(get("uptime_s").is_some());
}

// ---- limits and bad input ----------------------------------------------------------

#[test]
fn oversized_frame_is_refused_at_the_header() {
    let server = TestServer::with(|c| c.limits.max_frame = 1024);
    let mut bystander = BinClient::connect(server.addr);
    let mut c = BinClient::connect(server.addr);
    // Only the header of a huge frame: the server must not wait for the body.
    c.send_raw(&[0x00, 0x10, 0x00, 0x00, 0x0B]);
    let frames = c.drain_until_closed();
    assert!(
        is_error(&frames[0], ErrorCode::FRAME_TOO_LARGE),
        "{frames:?}"
    );
    bystander.send(&Frame::Ping { token: 1 });
    assert_eq!(bystander.recv(), Frame::Pong { token: 1 });
    // The server half-closed after the error and lingers for our side of the close.
    drop(c);
    server.wait_stat("closed_protocol_error", 1);
}

#[test]
fn overlong_line_is_refused_without_a_newline() {
    let server = TestServer::with(|c| c.limits.max_line = 64);
    let mut c = TextClient::connect(server.addr);
    c.send_raw(&[b'a'; 200]);
    let lines = c.drain_until_closed();
    assert!(lines.iter().any(|l| l.starts_with("ERR 102 ")), "{lines:?}");
}

#[test]
fn invalid_utf8_unknown_types_and_garbage_close_only_the_offender() {
    let server = TestServer::start();
    let mut bystander = TextClient::connect(server.addr);

    let mut bad_text = TextClient::connect(server.addr);
    bad_text.send_raw(b"caf\xc3(\n");
    let lines = bad_text.drain_until_closed();
    assert!(lines.iter().any(|l| l.starts_with("ERR 103 ")), "{lines:?}");

    let mut unknown = BinClient::connect(server.addr);
    unknown.send_raw(&[0, 0, 0, 1, 0x3F]);
    assert!(is_error(
        &unknown.drain_until_closed()[0],
        ErrorCode::UNKNOWN_TYPE
    ));

    let mut bad_say = BinClient::connect(server.addr);
    bad_say.send_raw(&[0, 0, 0, 4, 0x05, 1, b'r', 0xff]);
    assert!(is_error(
        &bad_say.drain_until_closed()[0],
        ErrorCode::INVALID_UTF8
    ));

    let mut zero = BinClient::connect(server.addr);
    zero.send_raw(&[0, 0, 0, 0]);
    assert!(is_error(
        &zero.drain_until_closed()[0],
        ErrorCode::MALFORMED
    ));

    // Random garbage starting with 0x00: binary mode, then a protocol error.
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = std::iter::once(0)
        .chain((0..4096).map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        }))
        .collect();
    let _ = garbage.write_all(&noise);
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut garbage, &mut sink);

    bystander.send_line("/echo still here");
    assert!(
        bystander
            .expect(|l| l.contains(':'))
            .ends_with(":still here")
    );
    drop((bad_text, unknown, bad_say, zero, garbage));
    server.wait_stat("connections", 1);
    assert_eq!(server.stat("closed_protocol_error"), 5);
}

#[test]
fn server_full_refuses_newcomers_in_their_own_framing() {
    let server = TestServer::with(|c| c.max_connections = 2);
    let mut a = BinClient::connect(server.addr);
    let mut b = TextClient::connect(server.addr);
    server.wait_stat("connections", 2);

    let mut bin = BinClient::connect_raw(server.addr);
    bin.send(&Frame::Hello { version: 1 });
    let frames = bin.drain_until_closed();
    assert!(is_error(&frames[0], ErrorCode::SERVER_FULL), "{frames:?}");

    let mut text = TcpStream::connect(server.addr).unwrap();
    text.set_read_timeout(Some(TIMEOUT)).unwrap();
    text.write_all(b"hi\n").unwrap();
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut text, &mut reply);
    assert!(reply.starts_with("ERR 300 "), "{reply:?}");

    // A silent newcomer is told in text after a grace period.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    silent.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut silent, &mut reply);
    assert!(reply.starts_with("ERR 300 "), "{reply:?}");

    a.send(&Frame::Ping { token: 3 });
    assert_eq!(a.recv(), Frame::Pong { token: 3 });
    b.send_line("/echo ok");
    assert!(b.line().ends_with(":ok"));
    assert_eq!(server.stat("closed_server_full"), 3);
}

#[test]
fn slow_consumer_is_closed_and_others_notice_nothing() {
    // 2000 x 4 KB is more than the kernel buffers between server and sleeper can hold
    // (a 4 MiB send buffer at most here) plus the 256 KiB queue limit.
    const MESSAGES: usize = 2000;
    const WINDOW: usize = 8;
    let server = TestServer::with(|c| {
        c.max_pending = 256 << 10;
        c.rate_limit = 0;
    });
    let mut sender = BinClient::named(server.addr, "sender");
    sender.join("busy");
    let mut reader = BinClient::named(server.addr, "reader");
    reader.join("busy");
    let mut sleeper = BinClient::named(server.addr, "sleeper");
    sleeper.join("busy");
    // From here on the sleeper never reads.
    sender.expect(|f| matches!(f, Frame::Joined { nick, .. } if nick == "sleeper"));
    reader.expect(|f| matches!(f, Frame::Joined { nick, .. } if nick == "sleeper"));
    let frame = Frame::Say {
        room: "busy".into(),
        text: "x".repeat(4000),
    };
    let next_msg = |c: &mut BinClient| loop {
        match c.recv() {
            Frame::RoomMsg { text, .. } => return text.len(),
            Frame::Left { nick, .. } => assert_eq!(nick, "sleeper"),
            other => panic!("unexpected {other:?}"),
        }
    };
    let (mut got_sender, mut got_reader) = (0, 0);
    for sent in 1..=MESSAGES {
        sender.send(&frame);
        // The good members keep up: at most WINDOW messages in flight.
        while sent - got_sender > WINDOW {
            assert_eq!(next_msg(&mut sender), 4000);
            got_sender += 1;
        }
        while sent - got_reader > WINDOW {
            assert_eq!(next_msg(&mut reader), 4000);
            got_reader += 1;
        }
    }
    while got_sender < MESSAGES {
        next_msg(&mut sender);
        got_sender += 1;
    }
    while got_reader < MESSAGES {
        next_msg(&mut reader);
        got_reader += 1;
    }
    server.wait_stat("closed_slow_consumer", 1);
    server.wait_stat("connections", 2);
    // The sleeper's stream ends with the reason, after what fitted in the buffers.
    let frames = sleeper.drain_until_closed();
    assert!(
        frames.iter().any(|f| is_error(f, ErrorCode::SLOW_CONSUMER)) || frames.len() < MESSAGES,
        "sleeper got everything?"
    );
}

#[test]
fn flooder_is_slowed_down_while_others_are_served() {
    const FLOOD: usize = 300;
    let server = TestServer::with(|c| {
        c.rate_limit = 200;
        c.rate_burst = 20;
    });
    let mut flooder = BinClient::connect(server.addr);
    let mut calm = BinClient::connect(server.addr);
    let mut buf = bytes::BytesMut::new();
    for _ in 0..FLOOD {
        Frame::Echo {
            payload: Bytes::from_static(b"flood"),
        }
        .encode(&mut buf)
        .unwrap();
    }
    let start = Instant::now();
    flooder.send_raw(&buf);
    calm.send(&Frame::Ping { token: 9 });
    assert_eq!(calm.recv(), Frame::Pong { token: 9 });
    let calm_latency = start.elapsed();
    let (mut echoes, mut told) = (0, 0);
    while echoes < FLOOD {
        match flooder.recv() {
            Frame::EchoReply { .. } => echoes += 1,
            f if is_error(&f, ErrorCode::RATE_LIMITED) => told += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let flood_time = start.elapsed();
    // The flooder is told once that it is being held back, and loses nothing.
    assert_eq!(told, 1);
    flooder.send(&Frame::Ping { token: 1 });
    assert_eq!(flooder.recv(), Frame::Pong { token: 1 }, "no second notice");
    // (300 - 20 burst) / 200 per second = 1.4 s at the very least; nothing dropped.
    assert!(flood_time >= Duration::from_millis(1300), "{flood_time:?}");
    assert!(
        calm_latency < flood_time / 2,
        "{calm_latency:?} vs {flood_time:?}"
    );
}

#[test]
fn flooder_held_back_past_the_limit_is_closed_with_error_303() {
    let server = TestServer::with(|c| {
        c.rate_limit = 50;
        c.rate_burst = 10;
        c.flood_close_after = Duration::from_millis(500);
    });
    let mut flooder = BinClient::connect(server.addr);
    let mut calm = BinClient::connect(server.addr);
    let mut block = bytes::BytesMut::new();
    for _ in 0..1000 {
        Frame::Echo {
            payload: Bytes::from_static(b"flood"),
        }
        .encode(&mut block)
        .unwrap();
    }
    // Taken before the first byte goes out, so the server's clock cannot start earlier.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = flooder.stream.try_clone().unwrap();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let start = Instant::now();
            // Writes block once TCP pushes back; the server closing ends them with an error.
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(10) {
                if stream.write_all(&block).is_err() {
                    break;
                }
            }
        })
    };
    calm.send(&Frame::Ping { token: 3 });
    assert_eq!(calm.recv(), Frame::Pong { token: 3 });
    let frames = flooder.drain_until_closed();
    let closed_after = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let last = frames.last().expect("at least the error");
    assert!(is_error(last, ErrorCode::FLOOD), "last frame {last:?}");
    let replies = frames
        .iter()
        .filter(|f| matches!(f, Frame::EchoReply { .. }))
        .count();
    // The burst of 10 plus 50/s for the ~0.5 s it was held back, and no more.
    assert!((10..=10 + 50 * 2).contains(&replies), "{replies} replies");
    assert!(
        closed_after >= Duration::from_millis(500) && closed_after < Duration::from_secs(5),
        "{closed_after:?}"
    );
    server.wait_stat("closed_flood", 1);
    // The neighbour was never affected.
    calm.send(&Frame::Ping { token: 4 });
    assert_eq!(calm.recv(), Frame::Pong { token: 4 });
}

#[test]
fn coalescing_server_answers_everything_in_order() {
    const CLIENTS: usize = 20;
    const MESSAGES: usize = 100;
    let server = TestServer::with(|c| {
        c.workers = 2;
        c.coalesce = Duration::from_millis(2);
    });
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| BinClient::connect(server.addr))
        .collect();
    let mut room: Vec<_> = (0..3)
        .map(|i| {
            let mut c = BinClient::named(server.addr, &format!("member{i}"));
            c.join("busy");
            c
        })
        .collect();
    // Many sends close together: the busy-turn path that sleeps between turns.
    for seq in 0..MESSAGES {
        for client in &mut clients {
            client.send(&Frame::Echo {
                payload: Bytes::from(seq.to_string()),
            });
        }
        room[0].send(&Frame::Say {
            room: "busy".to_owned(),
            text: seq.to_string(),
        });
    }
    for client in &mut clients {
        for seq in 0..MESSAGES {
            let Frame::EchoReply { payload, .. } = client.recv() else {
                panic!("expected an echo reply");
            };
            assert_eq!(payload, Bytes::from(seq.to_string()));
        }
    }
    for member in &mut room {
        for seq in 0..MESSAGES {
            let text = match member.expect(|f| matches!(f, Frame::RoomMsg { .. })) {
                Frame::RoomMsg { text, .. } => text,
                _ => unreachable!(),
            };
            assert_eq!(text, seq.to_string());
        }
    }
    // The load above was fast enough for the workers to wait between turns.
    assert!(server.stat("coalesce_waits") > 0);
}

#[test]
fn without_coalesce_workers_never_wait() {
    let server = TestServer::start();
    let mut client = BinClient::connect(server.addr);
    for _ in 0..500 {
        client.send(&Frame::Echo {
            payload: Bytes::from_static(b"x"),
        });
    }
    for _ in 0..500 {
        assert!(matches!(client.recv(), Frame::EchoReply { .. }));
    }
    assert_eq!(server.stat("coalesce_waits"), 0);
}

#[test]
fn idle_connections_are_pinged_then_closed() {
    let server = TestServer::with(|c| c.idle_timeout = Duration::from_millis(1500));
    let mut silent = BinClient::connect(server.addr);
    let mut alive = BinClient::connect(server.addr);
    // Answering pings keeps a connection open.
    let keeper = std::thread::spawn(move || {
        let start = Instant::now();
        let mut pings = 0;
        while start.elapsed() < Duration::from_millis(3500) {
            if let Frame::Ping { token } = alive.recv() {
                alive.send(&Frame::Pong { token });
                pings += 1;
            }
        }
        alive.send(&Frame::Echo {
            payload: Bytes::from_static(b"still"),
        });
        alive.expect(|f| matches!(f, Frame::EchoReply { .. }));
        pings
    });
    let Frame::Ping { token } = silent.recv() else {
        panic!("expected a ping");
    };
    assert!(token > 0);
    let frames = silent.drain_until_closed();
    assert!(is_error(&frames[0], ErrorCode::IDLE_TIMEOUT), "{frames:?}");
    assert!(keeper.join().unwrap() >= 2);
    // The server lingers for our side of the close before it counts it.
    drop(silent);
    server.wait_stat("closed_idle", 1);
}

// ---- shutdown ----------------------------------------------------------------------

#[test]
fn shutdown_tells_everyone_and_delivers_what_was_queued() {
    const MESSAGES: usize = 200;
    let server = TestServer::with(|c| c.workers = 3);
    let mut members: Vec<BinClient> = (0..3)
        .map(|i| BinClient::named(server.addr, &format!("s{i}")))
        .collect();
    for m in &mut members {
        m.join("last");
    }
    let mut text = TextClient::connect(server.addr);
    for i in 0..MESSAGES {
        members[0].send(&Frame::Say {
            room: "last".into(),
            text: format!("{i}"),
        });
    }
    // Wait until the server has taken every message in, then stop it.
    server.wait_stat("messages_in", (3 * 3 + 1 + MESSAGES) as u64);
    let handle = server.handle.clone();
    let stopper = std::thread::spawn(move || server.stop());
    for m in &mut members {
        let frames = m.drain_until_closed();
        let msgs = frames
            .iter()
            .filter(|f| matches!(f, Frame::RoomMsg { .. }))
            .count();
        assert_eq!(msgs, MESSAGES, "{}", m.nick);
        assert!(matches!(frames.last(), Some(Frame::Shutdown { .. })));
    }
    let lines = text.drain_until_closed();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("* server shutting down: stopped by its operator")
    );
    stopper.join().unwrap();
    assert!(
        handle
            .stats()
            .iter()
            .any(|(k, v)| k == "closed_shutdown" && *v == 4)
    );
}

#[test]
fn half_closed_client_still_gets_its_answers() {
    let server = TestServer::start();
    let mut c = TextClient::connect(server.addr);
    c.send_line("/rooms");
    c.send_line("/echo last words");
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let lines = c.drain_until_closed();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "* rooms: lobby (1)");
    assert!(lines[1].ends_with(":last words"));
    server.wait_stat("closed_eof", 1);
}

#[test]
fn ipv6_loopback_works_where_available() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    drop(listener);
    let server = TestServer::with(|c| c.bind = "[::1]:0".parse().unwrap());
    assert!(server.addr.is_ipv6());
    let mut c = BinClient::connect(server.addr);
    c.send(&Frame::Ping { token: 6 });
    assert_eq!(c.recv(), Frame::Pong { token: 6 });
}

/// A frame of the largest legal size must not make its
/// recipients slow consumers just because it exceeds `--max-pending` on its own.
#[test]
fn largest_legal_frames_reach_every_member() {
    let server = TestServer::with(|c| {
        c.limits.max_frame = 64 << 10;
        c.max_pending = 64 << 10;
    });
    let mut a = BinClient::named(server.addr, "a");
    let mut b = BinClient::named(server.addr, "b");
    a.join("big");
    b.join("big");
    a.recv(); // b joined
    // LEN = 1 type byte + 1 + 3 room bytes + text: exactly the limit.
    let text = "y".repeat((64 << 10) - 5);
    a.send(&Frame::Say {
        room: "big".into(),
        text: text.clone(),
    });
    for c in [&mut a, &mut b] {
        assert!(matches!(c.recv(), Frame::RoomMsg { text: t, .. } if t.len() == text.len()));
    }
    a.send(&Frame::Echo {
        payload: Bytes::from(vec![1u8; (64 << 10) - 1]),
    });
    assert!(
        matches!(a.recv(), Frame::EchoReply { payload, .. } if payload.len() == (64 << 10) - 1)
    );
    assert_eq!(server.stat("closed_slow_consumer"), 0);
}

/// Room and member lists are capped, and the rest is
/// counted in a notice, so the answer always fits.
#[test]
fn long_room_lists_are_capped_with_a_count() {
    const CONNECTIONS: usize = 16;
    const ROOMS_EACH: usize = 64;
    let server = TestServer::start();
    let mut clients: Vec<BinClient> = (0..CONNECTIONS)
        .map(|_| BinClient::connect(server.addr))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let mut buf = bytes::BytesMut::new();
        for r in 0..ROOMS_EACH {
            Frame::Join {
                room: format!("r{i}-{r}"),
                since: None,
            }
            .encode(&mut buf)
            .unwrap();
        }
        c.send_raw(&buf);
        for _ in 0..ROOMS_EACH {
            c.expect(|f| matches!(f, Frame::Joined { .. }));
        }
    }
    let c = &mut clients[0];
    c.send(&Frame::ListRooms);
    let Frame::RoomList { rooms } = c.recv() else {
        panic!("expected RoomList");
    };
    assert_eq!(rooms.len(), server::MAX_LIST_ITEMS);
    let hidden = CONNECTIONS * ROOMS_EACH - server::MAX_LIST_ITEMS;
    assert_eq!(
        c.recv(),
        Frame::Notice {
            text: format!("{hidden} more rooms not listed")
        }
    );
    c.send(&Frame::Join {
        room: "one-too-many".into(),
        since: None,
    });
    assert!(is_error(&c.recv(), ErrorCode::INVALID_REQUEST));
}

/// Binary clients are reachable only after their Hello, so the Welcome is always the
/// first frame they get.
#[test]
fn binary_clients_get_nothing_before_welcome() {
    let server = TestServer::start();
    let mut early = BinClient::connect_raw(server.addr);
    early.send_raw(&[0]); // first byte of a frame: binary mode, no Hello yet
    let mut text = TextClient::connect(server.addr);
    text.send_line("/who lobby");
    assert_eq!(text.line(), format!("* in lobby: {}", text.nick));
    assert_eq!(server.stat("connections"), 2);
    let [hi, lo] = shared::PROTOCOL_VERSION.to_be_bytes();
    early.send_raw(&[0, 0, 3, 0x01, hi, lo]);
    assert!(matches!(early.recv(), Frame::Welcome { .. }));
}

#[test]
fn stopping_a_running_server_reports_a_shutdown_that_overruns_its_deadline() {
    let config = server::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        log_interval: Duration::ZERO,
        rate_limit: 0,
        max_pending: 64 << 20,
        shutdown_timeout: Duration::from_secs(2),
        ..server::Config::default()
    };
    let running = server::Server::bind(config).unwrap().spawn();
    // A client that asks for megabytes of echoes and never reads them: the shutdown
    // waits its full 2 s for that output to drain.
    let mut hog = BinClient::connect(running.local_addr());
    let payload = Bytes::from(vec![b'x'; 60 << 10]);
    let mut buf = bytes::BytesMut::new();
    for _ in 0..100 {
        Frame::Echo {
            payload: payload.clone(),
        }
        .encode(&mut buf)
        .unwrap();
    }
    hog.send_raw(&buf);
    let start = Instant::now();
    while running
        .handle()
        .stats()
        .iter()
        .any(|(k, v)| k == "messages_in" && *v < 101)
    {
        assert!(start.elapsed() < TIMEOUT, "the echoes were never read");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = running
        .stop(Duration::from_millis(200))
        .expect_err("the shutdown cannot finish within 200 ms");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    drop(hog);
}

#[test]
fn stopping_a_running_server_waits_for_a_clean_exit() {
    let running = server::Server::bind(server::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        log_interval: Duration::ZERO,
        ..server::Config::default()
    })
    .unwrap()
    .spawn();
    let mut client = BinClient::connect(running.local_addr());
    client.send(&Frame::Ping { token: 1 });
    assert_eq!(client.recv(), Frame::Pong { token: 1 });
    running.stop(TIMEOUT).expect("clean stop");
    // The client was told and closed.
    let frames = client.drain_until_closed();
    assert!(
        matches!(frames.last(), Some(Frame::Shutdown { .. })),
        "{frames:?}"
    );
}

#[test]
fn a_person_who_connects_and_waits_is_greeted_in_text() {
    let server = TestServer::with(|c| c.greet_after = Duration::from_millis(200));
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.starts_with("* welcome, you are guest-"), "{line:?}");
    line.clear();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.starts_with("[lobby] * guest-"), "{line:?}");
}

#[test]
fn a_binary_client_that_says_hello_at_once_is_never_greeted_in_text() {
    let server = TestServer::with(|c| c.greet_after = Duration::from_millis(200));
    let mut client = BinClient::connect(server.addr);
    std::thread::sleep(Duration::from_millis(1500));
    client.send(&Frame::Ping { token: 9 });
    assert_eq!(client.recv(), Frame::Pong { token: 9 });
}

#[test]
fn a_slow_reader_gets_a_stream_that_ends_on_a_frame_boundary_with_error_301() {
    const MESSAGES: usize = 4000;
    let server = TestServer::with(|c| {
        c.max_pending = 64 << 10;
        c.rate_limit = 0;
    });
    let mut sender = BinClient::named(server.addr, "sender");
    sender.join("flood");
    let mut slow = BinClient::named(server.addr, "slow");
    slow.join("flood");
    sender.expect(|f| matches!(f, Frame::Joined { nick, .. } if nick == "slow"));
    // The sender floods from its own thread and drains its own copies meanwhile.
    let flood = std::thread::spawn(move || {
        let say = Frame::Say {
            room: "flood".into(),
            text: "y".repeat(3000),
        }
        .to_bytes()
        .unwrap();
        let mut writer = sender.stream.try_clone().unwrap();
        let reader = std::thread::spawn(move || sender.drain_until_closed().len());
        // Paced so that the sender, draining its own copies, keeps up.
        for n in 0..MESSAGES {
            if writer.write_all(&say).is_err() {
                break;
            }
            if n % 8 == 7 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // The sender may have been cut off as well: only the slow member is judged.
        let _ = writer.shutdown(std::net::Shutdown::Write);
        reader.join().unwrap()
    });
    // The slow member reads, but far slower than the room talks: 8 KiB every 10 ms.
    let mut decoder = shared::FrameDecoder::new(1 << 21);
    let mut frames = Vec::new();
    let mut buf = [0u8; 8 << 10];
    loop {
        match std::io::Read::read(&mut slow.stream, &mut buf) {
            Ok(0) => break,
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                panic!("reset: the stream must end with a FIN")
            }
            Err(e) => panic!("read: {e}"),
        }
        while let Some(frame) = decoder.decode().expect("the stream stays decodable") {
            frames.push(frame);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(decoder.buffered(), 0, "the stream ended mid-frame");
    assert!(
        matches!(frames.last(), Some(f) if is_error(f, ErrorCode::SLOW_CONSUMER)),
        "last frame {:?} of {}",
        frames.last(),
        frames.len()
    );
    assert!(frames.len() < MESSAGES, "it was cut off before the end");
    flood.join().unwrap();
    drop(slow);
    let start = Instant::now();
    while server.stat("closed_slow_consumer") == 0 {
        assert!(
            start.elapsed() < TIMEOUT,
            "the slow member was never closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A binary frame's first `part` bytes for an echo of `len` bytes.
fn echo_prefix(len: usize, part: usize) -> Vec<u8> {
    let mut bytes = Frame::Echo {
        payload: Bytes::from(vec![b'e'; len]),
    }
    .to_bytes()
    .expect("an echo frame encodes")
    .to_vec();
    bytes.truncate(part);
    bytes
}

#[test]
fn a_frame_that_never_completes_is_closed_with_error_302() {
    let server = TestServer::with(|c| c.frame_timeout = Duration::from_millis(500));
    let mut stalled = BinClient::connect(server.addr);
    let mut fine = BinClient::connect(server.addr);
    stalled.send_raw(&echo_prefix(1000, 600));
    let frames = stalled.drain_until_closed();
    assert!(
        matches!(frames.last(), Some(f) if is_error(f, ErrorCode::IDLE_TIMEOUT)),
        "{frames:?}"
    );
    server.wait_stat("closed_stalled_frame", 1);
    server.wait_stat("inbound_bytes", 0);
    fine.send(&Frame::Ping { token: 1 });
    assert_eq!(fine.recv(), Frame::Pong { token: 1 });
}

#[test]
fn incomplete_frames_stay_within_the_inbound_budget_and_others_are_served() {
    const HOLDERS: usize = 24;
    const BUDGET: usize = 256 << 10;
    const WORKERS: usize = 2;
    let server = TestServer::with(|c| {
        c.workers = WORKERS;
        c.limits.max_frame = 128 << 10;
        c.max_inbound = BUDGET;
        c.frame_timeout = Duration::from_secs(2);
    });
    let mut holders: Vec<BinClient> = (0..HOLDERS)
        .map(|_| BinClient::connect(server.addr))
        .collect();
    // Each holder sends 100 KiB of a 120 KiB frame: 2.4 MiB in all if nothing held
    // them back.
    let prefix = echo_prefix(120 << 10, 100 << 10);
    for h in &mut holders {
        h.send_raw(&prefix);
    }
    let start = Instant::now();
    while server.stat("inbound_parked") == 0 {
        assert!(start.elapsed() < TIMEOUT, "nobody was held back");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The documented bound: the budget, 16 KiB per connection, one read per worker.
    let bound = BUDGET + HOLDERS * (16 << 10) + WORKERS * (64 << 10);
    let held = server.stat("inbound_bytes") as usize;
    assert!(held <= bound, "{held} bytes held, bound {bound}");
    assert!(
        held < prefix.len() * HOLDERS / 2,
        "{held} bytes held: nothing held back"
    );
    // Someone with complete frames is served meanwhile.
    let mut fine = BinClient::connect(server.addr);
    fine.send(&Frame::Echo {
        payload: Bytes::from_static(b"still here"),
    });
    assert!(
        matches!(fine.recv(), Frame::EchoReply { payload, .. } if payload.as_ref() == b"still here")
    );
    // The stalled frames time out, and their bytes are given back.
    for h in &mut holders {
        let frames = h.drain_until_closed();
        assert!(matches!(frames.last(), Some(f) if is_error(f, ErrorCode::IDLE_TIMEOUT)));
    }
    server.wait_stat("inbound_bytes", 0);
}

/// Every worker publishes, once a second, how long its thread has run and waited for a
/// core (where the kernel keeps scheduler statistics).
#[cfg(target_os = "linux")]
#[test]
fn workers_publish_their_run_and_wait_times() {
    if !std::path::Path::new("/proc/thread-self/schedstat").exists() {
        // A kernel without scheduler statistics: the counters stay 0, as documented.
        return;
    }
    let started = Instant::now();
    let server = TestServer::with(|c| c.workers = 2);
    while (0..2).any(|w| server.stat(&format!("worker{w}_cpu_us")) == 0) {
        assert!(
            started.elapsed() < TIMEOUT,
            "a worker published no run time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Waiting is counted in wall time, so two workers cannot have waited longer than
    // twice the time since the server started.
    let waited = server.stat("cpu_wait_us");
    assert!(
        u128::from(waited) <= 2 * started.elapsed().as_micros(),
        "{waited} us of waiting in {:?}",
        started.elapsed()
    );
}
