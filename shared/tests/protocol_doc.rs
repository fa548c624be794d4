//! Keeps `docs/PROTOCOL.md` and the code in step.
//!
//! The test reads the document itself: every ```` ```hex frame=NAME ```` block must be the
//! exact encoding of the frame this file names `NAME` (and decode back to it), the frame
//! type, error code and text rendering tables must agree with the code, and the example
//! sessions must consist of well-formed traffic. A doc edit that breaks a byte fails here.

// Tests may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use shared::frame::{LEN_PREFIX, types};
use shared::text::{self, parse_command, render_line};
use shared::{ErrorCode, Frame, FrameDecoder, RoomInfo};

const DOC: &str = include_str!("../../docs/PROTOCOL.md");

fn s(x: &str) -> String {
    x.to_owned()
}

/// The creation time of the example room, in nanoseconds since the epoch: its message
/// ids start after it.
const ROOM_BASE: u64 = 1_700_000_000_000_000_000;

/// The receive time of the example messages (as in the `EchoReply` example).
const TIME_NS: u64 = 1_700_000_000_123_456_789;

/// The example `RoomMsg`, also shown as a history line.
fn room_msg() -> Frame {
    Frame::RoomMsg {
        room: s("lobby"),
        from: s("alice"),
        id: ROOM_BASE + 7,
        time_ns: TIME_NS,
        text: s("hi"),
    }
}

/// The frame each `hex frame=NAME` block of the document encodes.
fn examples() -> Vec<(&'static str, Frame)> {
    vec![
        (
            "Hello",
            Frame::Hello {
                version: shared::PROTOCOL_VERSION,
            },
        ),
        ("SetNick", Frame::SetNick { nick: s("alice") }),
        (
            "Join",
            Frame::Join {
                room: s("lobby"),
                since: None,
            },
        ),
        (
            "Join+since",
            Frame::Join {
                room: s("lobby"),
                since: Some(ROOM_BASE + 2),
            },
        ),
        ("Leave", Frame::Leave { room: s("lobby") }),
        (
            "Say",
            Frame::Say {
                room: s("lobby"),
                text: s("hi"),
            },
        ),
        (
            "Direct",
            Frame::Direct {
                to: s("bob"),
                text: s("psst"),
            },
        ),
        ("ChatRequest", Frame::ChatRequest { peer: s("bob") }),
        ("ChatAccept", Frame::ChatAccept { peer: s("alice") }),
        ("ChatEnd", Frame::ChatEnd),
        ("ChatSay", Frame::ChatSay { text: s("hey") }),
        (
            "Echo",
            Frame::Echo {
                payload: Bytes::from_static(b"hello"),
            },
        ),
        ("ListRooms", Frame::ListRooms),
        ("Who", Frame::Who { room: s("lobby") }),
        ("GetStats", Frame::GetStats),
        (
            "GetHistory",
            Frame::GetHistory {
                room: s("lobby"),
                before: 0,
                limit: 2,
            },
        ),
        (
            "Login",
            Frame::Login {
                nick: s("alice"),
                password: shared::Password::new("pw"),
            },
        ),
        ("Ping", Frame::Ping { token: 42 }),
        ("Pong", Frame::Pong { token: 42 }),
        ("Goodbye", Frame::Goodbye { reason: s("bye") }),
        (
            "Welcome",
            Frame::Welcome {
                version: shared::PROTOCOL_VERSION,
                max_frame: 1_048_576,
                nick: s("guest-1"),
            },
        ),
        (
            "NickChanged",
            Frame::NickChanged {
                old: s("guest-1"),
                new: s("alice"),
            },
        ),
        (
            "Joined",
            Frame::Joined {
                room: s("lobby"),
                nick: s("alice"),
                members: 2,
                last: ROOM_BASE + 7,
            },
        ),
        (
            "Left",
            Frame::Left {
                room: s("lobby"),
                nick: s("bob"),
                members: 1,
            },
        ),
        (
            "RoomList",
            Frame::RoomList {
                rooms: vec![
                    RoomInfo {
                        name: s("lobby"),
                        members: 2,
                    },
                    RoomInfo {
                        name: s("rust"),
                        members: 1,
                    },
                ],
            },
        ),
        (
            "WhoList",
            Frame::WhoList {
                room: s("lobby"),
                nicks: vec![s("alice"), s("bob")],
            },
        ),
        ("RoomMsg", room_msg()),
        (
            "DirectMsg",
            Frame::DirectMsg {
                from: s("alice"),
                text: s("psst"),
            },
        ),
        ("ChatRequested", Frame::ChatRequested { from: s("alice") }),
        ("ChatStarted", Frame::ChatStarted { peer: s("bob") }),
        (
            "ChatEnded",
            Frame::ChatEnded {
                peer: s("bob"),
                reason: s("peer left"),
            },
        ),
        ("Busy", Frame::Busy { peer: s("carol") }),
        (
            "ChatMsg",
            Frame::ChatMsg {
                from: s("alice"),
                text: s("hey"),
            },
        ),
        (
            "EchoReply",
            Frame::EchoReply {
                server_time_ns: 1_700_000_000_123_456_789,
                payload: Bytes::from_static(b"hello"),
            },
        ),
        (
            "Stats",
            Frame::Stats {
                entries: vec![(s("connections"), 2), (s("messages"), 10)],
            },
        ),
        (
            "Error",
            Frame::Error {
                code: ErrorCode::NO_SUCH_NICK,
                text: s("no such nick: dave"),
            },
        ),
        (
            "Shutdown",
            Frame::Shutdown {
                reason: s("server stopping"),
            },
        ),
        (
            "Notice",
            Frame::Notice {
                text: s("you are in lobby"),
            },
        ),
        (
            "HistoryPage",
            Frame::HistoryPage {
                room: s("lobby"),
                count: 2,
                more: true,
            },
        ),
        (
            "Resumed",
            Frame::Resumed {
                room: s("lobby"),
                replayed: 2,
                missed: 3,
            },
        ),
    ]
}

/// Every type code the crate defines, from the `types` module.
const ALL_TYPES: [u8; 39] = [
    types::HELLO,
    types::SET_NICK,
    types::JOIN,
    types::LEAVE,
    types::SAY,
    types::DIRECT,
    types::CHAT_REQUEST,
    types::CHAT_ACCEPT,
    types::CHAT_END,
    types::CHAT_SAY,
    types::ECHO,
    types::LIST_ROOMS,
    types::WHO,
    types::GET_STATS,
    types::GET_HISTORY,
    types::LOGIN,
    types::PING,
    types::PONG,
    types::GOODBYE,
    types::WELCOME,
    types::NICK_CHANGED,
    types::JOINED,
    types::LEFT,
    types::ROOM_LIST,
    types::WHO_LIST,
    types::ROOM_MSG,
    types::DIRECT_MSG,
    types::CHAT_REQUESTED,
    types::CHAT_STARTED,
    types::CHAT_ENDED,
    types::BUSY,
    types::CHAT_MSG,
    types::ECHO_REPLY,
    types::STATS,
    types::ERROR,
    types::SHUTDOWN,
    types::NOTICE,
    types::HISTORY_PAGE,
    types::RESUMED,
];

/// A fenced code block of the document: its info string and its lines.
struct Block {
    info: String,
    lines: Vec<String>,
    /// 1-based line number of the opening fence, for failure messages.
    at: usize,
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in DOC.lines().enumerate() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => {
                current = Some(Block {
                    info: info.trim().to_owned(),
                    lines: Vec::new(),
                    at: i + 1,
                })
            }
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(block), None) => block.lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "unterminated code block in PROTOCOL.md");
    out
}

/// The bytes of one hex line: two-digit hex tokens up to an optional `#` comment.
fn parse_hex(line: &str, at: usize) -> Vec<u8> {
    let data = line.split('#').next().unwrap_or("");
    data.split_whitespace()
        .map(|token| {
            assert_eq!(token.len(), 2, "line {at}: {token:?} is not one hex byte");
            u8::from_str_radix(token, 16)
                .unwrap_or_else(|_| panic!("line {at}: {token:?} is not hex"))
        })
        .collect()
}

/// `NAME -> bytes` for every `hex frame=NAME` block.
fn doc_examples() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for block in blocks() {
        let Some(name) = block.info.strip_prefix("hex frame=") else {
            continue;
        };
        let bytes: Vec<u8> = block
            .lines
            .iter()
            .flat_map(|l| parse_hex(l, block.at))
            .collect();
        let previous = out.insert(name.to_owned(), bytes);
        assert!(previous.is_none(), "two examples for {name}");
    }
    out
}

/// Rows of the table between `<!-- NAME:start -->` and `<!-- NAME:end -->`, header and
/// separator dropped, each split into trimmed cells.
fn table(name: &str) -> Vec<Vec<String>> {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let (_, rest) = DOC.split_once(&start).expect("table start marker");
    let (body, _) = rest.split_once(&end).expect("table end marker");
    body.lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode(&mut out).unwrap();
    out.to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn doc_has_one_example_per_frame_type() {
    let doc = doc_examples();
    let ours: BTreeSet<&str> = examples().iter().map(|(n, _)| *n).collect();
    let documented: BTreeSet<&str> = doc.keys().map(String::as_str).collect();
    assert_eq!(documented, ours);
    let covered: BTreeSet<u8> = examples().iter().map(|(_, f)| f.frame_type()).collect();
    assert_eq!(covered, ALL_TYPES.into_iter().collect());
}

#[test]
fn doc_examples_are_the_encodings() {
    let doc = doc_examples();
    for (name, frame) in examples() {
        let expected = &doc[name];
        let got = encode(&frame);
        assert_eq!(
            hex(&got),
            hex(expected),
            "encoding of {name} differs from PROTOCOL.md"
        );
        assert_eq!(frame.to_bytes().unwrap().as_ref(), expected.as_slice());
    }
}

#[test]
fn doc_examples_decode_to_the_frames() {
    let doc = doc_examples();
    for (name, frame) in examples() {
        let bytes = &doc[name];
        let mut decoder = FrameDecoder::new(shared::DEFAULT_MAX_FRAME);
        decoder.feed(bytes);
        assert_eq!(decoder.decode().unwrap(), Some(frame.clone()), "{name}");
        assert_eq!(decoder.buffered(), 0, "{name}: bytes left over");
        assert_eq!(decoder.decode().unwrap(), None);

        let len = u32::from_be_bytes(bytes[..LEN_PREFIX].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - LEN_PREFIX, "{name}: LEN is wrong");
        let body = Bytes::copy_from_slice(&bytes[LEN_PREFIX + 1..]);
        assert_eq!(Frame::decode(bytes[LEN_PREFIX], body).unwrap(), frame);
    }
}

#[test]
fn frame_type_table_matches_the_code() {
    let rows = table("frame-types");
    let by_name: BTreeMap<&str, Frame> = examples().into_iter().collect();
    assert_eq!(rows.len(), ALL_TYPES.len());
    for row in rows {
        let [code, name, direction, _body] = row.as_slice() else {
            panic!("bad frame table row {row:?}");
        };
        let frame = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("unknown frame {name}"));
        let code = u8::from_str_radix(code.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(code, frame.frame_type(), "{name}");
        let expected = match (frame.is_client_frame(), frame.is_server_frame()) {
            (true, true) => "both",
            (true, false) => "C→S",
            (false, true) => "S→C",
            (false, false) => unreachable!(),
        };
        assert_eq!(direction, expected, "{name}");
    }
}

#[test]
fn error_code_table_matches_the_code() {
    let rows = table("error-codes");
    assert_eq!(rows.len(), ErrorCode::ALL.len());
    for (row, code) in rows.iter().zip(ErrorCode::ALL) {
        let [number, name, closes, _meaning] = row.as_slice() else {
            panic!("bad error table row {row:?}");
        };
        assert_eq!(number, &code.0.to_string());
        assert_eq!(name, code.name());
        let closes_text = if code.closes_connection() {
            "yes"
        } else {
            "no"
        };
        assert_eq!(closes, closes_text, "{code}");
    }
}

#[test]
fn render_table_matches_render_line() {
    let rows = table("render-table");
    let documented: BTreeMap<String, String> = rows
        .into_iter()
        .map(|row| {
            let [name, line] = row.as_slice() else {
                panic!("bad render table row {row:?}");
            };
            let line = line
                .strip_prefix('`')
                .and_then(|l| l.strip_suffix('`'))
                .unwrap_or_else(|| panic!("{name}: line not in backticks"));
            (name.clone(), line.to_owned())
        })
        .collect();
    let mut rendered = BTreeSet::new();
    for (name, frame) in examples() {
        let mut out = BytesMut::new();
        if !render_line(&frame, &mut out) {
            assert!(out.is_empty());
            assert!(!documented.contains_key(name), "{name} is client-only");
            continue;
        }
        rendered.insert(name.to_owned());
        let expected = documented
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the render table"));
        assert_eq!(out.as_ref(), format!("{expected}\n").as_bytes(), "{name}");
    }
    assert_eq!(rendered, documented.keys().cloned().collect());
}

#[test]
fn binary_session_is_well_formed() {
    let block = blocks()
        .into_iter()
        .find(|b| b.info == "hex session")
        .expect("binary session block");
    let mut decoder = FrameDecoder::new(shared::DEFAULT_MAX_FRAME);
    let mut frames = Vec::new();
    for line in &block.lines {
        let (side, data) = line.split_at(1);
        let bytes = parse_hex(data, block.at);
        decoder.feed(&bytes);
        let frame = decoder.decode().unwrap().expect("one whole frame per line");
        assert_eq!(decoder.buffered(), 0, "more than one frame on {line:?}");
        match side {
            "C" => assert!(frame.is_client_frame(), "{frame:?}"),
            "S" => assert!(frame.is_server_frame(), "{frame:?}"),
            _ => panic!("line must start with C or S: {line:?}"),
        }
        frames.push(frame);
    }
    assert_eq!(
        frames.first(),
        Some(&Frame::Hello {
            version: shared::PROTOCOL_VERSION
        })
    );
    assert!(matches!(frames.get(1), Some(Frame::Welcome { .. })));
    assert!(matches!(frames.last(), Some(Frame::Goodbye { .. })));
}

#[test]
fn text_session_commands_parse_as_shown() {
    let block = blocks()
        .into_iter()
        .find(|b| b.info == "text session")
        .expect("text session block");
    let lines = &block.lines;
    for (i, line) in lines.iter().enumerate() {
        let Some(input) = line.strip_prefix("> ") else {
            assert!(line.starts_with("< "), "line must start with > or <");
            continue;
        };
        match parse_command(input) {
            Ok(command) => assert!(command.is_some(), "{input:?}"),
            Err(e) => {
                let reply = format!("< ERR {} {}", e.code.0, e.message);
                assert_eq!(lines.get(i + 1), Some(&reply), "after {input:?}");
            }
        }
    }
}

#[test]
fn doc_states_the_limits_of_the_code() {
    let facts = [
        shared::DEFAULT_PORT.to_string(),
        shared::DEFAULT_MAX_FRAME.to_string(),
        shared::DEFAULT_MAX_LINE.to_string(),
        format!("{} bytes without a newline", shared::DEFAULT_MAX_LINE),
        format!("1 to {} characters", shared::names::MAX_NICK_CHARS),
        format!("1 to {} characters", shared::names::MAX_ROOM_CHARS),
        format!(
            "`version` is the protocol version the client speaks, `{}`",
            shared::PROTOCOL_VERSION
        ),
        format!("{} bytes", shared::frame::MAX_STR8),
        format!("# Chat wire protocol, version {}", shared::PROTOCOL_VERSION),
        format!(
            "`{}` (`Hello`, version {})",
            hex(&encode(&Frame::Hello {
                version: shared::PROTOCOL_VERSION
            })),
            shared::PROTOCOL_VERSION
        ),
    ];
    // Compare with line breaks folded, since the document wraps its prose.
    let prose = DOC.split_whitespace().collect::<Vec<_>>().join(" ");
    for fact in facts {
        assert!(prose.contains(&fact), "PROTOCOL.md does not say {fact:?}");
    }
    assert_eq!(
        shared::PROTOCOL_VERSION,
        2,
        "the document describes version 2"
    );
    for line in text::HELP {
        let command = line.split_whitespace().next().unwrap();
        if command.starts_with('/') {
            assert!(
                DOC.contains(&format!("`{command}")),
                "{command} undocumented"
            );
        }
    }
}

#[test]
fn history_lines_are_written_as_the_doc_shows() {
    let mut line = BytesMut::new();
    assert!(text::render_history_line(&room_msg(), &mut line));
    let line = std::str::from_utf8(&line).unwrap();
    assert_eq!(line, "[lobby] 22:13:20 <alice> hi\n");
    let prose = DOC.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains(&format!("`{}`", line.trim_end())),
        "PROTOCOL.md does not show the history line {line:?}"
    );
    let mut other = BytesMut::new();
    assert!(!text::render_history_line(&Frame::GetStats, &mut other));
    assert!(other.is_empty());
    // The other forms the document quotes.
    let short_forms = [
        Frame::HistoryPage {
            room: s("lobby"),
            count: 1,
            more: false,
        },
        Frame::Resumed {
            room: s("lobby"),
            replayed: 2,
            missed: 0,
        },
    ];
    for frame in short_forms {
        let mut out = BytesMut::new();
        assert!(render_line(&frame, &mut out));
        let rendered = std::str::from_utf8(&out).unwrap().trim_end().to_owned();
        assert!(
            prose.contains(&format!("`{rendered}`")),
            "PROTOCOL.md does not show {rendered:?}"
        );
    }
}

#[test]
fn usage_error_table_matches_the_parser() {
    let (_, rest) = DOC
        .split_once("Argument errors are answered with")
        .expect("the usage error table");
    let rows: Vec<&str> = rest
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    assert!(rows.len() >= 10, "{rows:?}");
    let quoted = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    for row in rows {
        let cells: Vec<&str> = row.trim().trim_matches('|').split(" | ").collect();
        let [inputs, answer] = cells.as_slice() else {
            panic!("bad usage table row {row:?}");
        };
        let [answer] = quoted(answer).try_into().unwrap();
        let inputs = quoted(inputs);
        assert!(!inputs.is_empty(), "{row:?}");
        for input in inputs {
            let error = parse_command(&input).expect_err(&input);
            assert_eq!(
                format!("ERR {} {}", error.code.0, error.message),
                answer,
                "{input}"
            );
        }
    }
}
