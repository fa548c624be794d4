//! Unit tests of `frame`.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::error::DecodeError;

fn s(x: &str) -> String {
    x.to_owned()
}

/// Encodes, checks the length prefix, and decodes the body back.
fn round_trip(frame: &Frame) -> Frame {
    let bytes = frame.to_bytes().unwrap();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(
        len,
        bytes.len() - LEN_PREFIX,
        "LEN counts type byte and body"
    );
    assert_eq!(bytes[LEN_PREFIX], frame.frame_type());
    let mut out = BytesMut::from(&b"prefix"[..]);
    frame.encode(&mut out).unwrap();
    assert_eq!(&out[..6], b"prefix", "encode appends");
    assert_eq!(&out[6..], &bytes[..]);
    Frame::decode(bytes[LEN_PREFIX], bytes.slice(LEN_PREFIX + 1..)).unwrap()
}

/// One value of every variant, with awkward contents: empty, non-ASCII, control
/// characters, binary payloads, maximum-length names.
pub(crate) fn samples() -> Vec<Frame> {
    let long = "é".repeat(127) + "x"; // 255 bytes
    vec![
        Frame::Hello { version: 0 },
        Frame::Hello { version: u16::MAX },
        Frame::SetNick { nick: s("") },
        Frame::SetNick { nick: long.clone() },
        Frame::Join {
            room: s("Ünïcødé"),
            since: None,
        },
        Frame::Join {
            room: s("lobby"),
            since: Some(u64::MAX),
        },
        Frame::Join {
            room: s(""),
            since: Some(0),
        },
        Frame::GetHistory {
            room: s("lobby"),
            before: 0,
            limit: u16::MAX,
        },
        Frame::Login {
            nick: s("alice"),
            password: crate::Password::new("two words é"),
        },
        Frame::Login {
            nick: long.clone(),
            password: crate::Password::new(""),
        },
        Frame::HistoryPage {
            room: s("lobby"),
            count: 0,
            more: true,
        },
        Frame::HistoryPage {
            room: long.clone(),
            count: u32::MAX,
            more: false,
        },
        Frame::Resumed {
            room: s("lobby"),
            replayed: 3,
            missed: u64::MAX,
        },
        Frame::Leave { room: s("lobby") },
        Frame::Say {
            room: s("lobby"),
            text: s(""),
        },
        Frame::Say {
            room: s("r"),
            text: s("multi\nline \u{1b}[31m 😀 \r\n"),
        },
        Frame::Direct {
            to: s("bob"),
            text: s("hi"),
        },
        Frame::ChatRequest { peer: s("bob") },
        Frame::ChatAccept { peer: s("alice") },
        Frame::ChatEnd,
        Frame::ChatSay { text: s("") },
        Frame::Echo {
            payload: Bytes::new(),
        },
        Frame::Echo {
            payload: Bytes::from_static(&[0, 0xff, 0x80, b'\n', 0xc3]),
        },
        Frame::ListRooms,
        Frame::Who { room: s("lobby") },
        Frame::GetStats,
        Frame::Ping { token: 0 },
        Frame::Ping { token: u64::MAX },
        Frame::Pong { token: 1 },
        Frame::Goodbye { reason: s("") },
        Frame::Welcome {
            version: 1,
            max_frame: u32::MAX,
            nick: s("guest-1"),
        },
        Frame::NickChanged {
            old: s("a"),
            new: long,
        },
        Frame::Joined {
            room: s("lobby"),
            nick: s("a"),
            members: 0,
            last: 1_700_000_000_000_000_042,
        },
        Frame::Left {
            room: s("lobby"),
            nick: s("a"),
            members: u32::MAX,
        },
        Frame::RoomList { rooms: vec![] },
        Frame::RoomList {
            rooms: vec![
                RoomInfo {
                    name: s("a"),
                    members: 1,
                },
                RoomInfo {
                    name: s(""),
                    members: 7,
                },
            ],
        },
        Frame::WhoList {
            room: s("lobby"),
            nicks: vec![],
        },
        Frame::WhoList {
            room: s("lobby"),
            nicks: vec![s("a"), s(""), s("ß")],
        },
        Frame::RoomMsg {
            room: s("lobby"),
            from: s("alice"),
            id: 7,
            time_ns: u64::MAX,
            text: s("hello"),
        },
        Frame::DirectMsg {
            from: s("alice"),
            text: s(""),
        },
        Frame::ChatRequested { from: s("alice") },
        Frame::ChatStarted { peer: s("bob") },
        Frame::ChatEnded {
            peer: s("bob"),
            reason: s(""),
        },
        Frame::Busy { peer: s("carol") },
        Frame::ChatMsg {
            from: s("alice"),
            text: s("hey"),
        },
        Frame::EchoReply {
            server_time_ns: u64::MAX,
            payload: Bytes::from_static(&[0xff; 3]),
        },
        Frame::Stats { entries: vec![] },
        Frame::Stats {
            entries: vec![(s("connections"), 0), (s("bytes"), u64::MAX)],
        },
        Frame::Error {
            code: ErrorCode(9999),
            text: s("future code"),
        },
        Frame::Shutdown { reason: s("bye") },
        Frame::Notice { text: s("* hi *") },
    ]
}

#[test]
fn every_variant_round_trips() {
    let samples = samples();
    let mut types: Vec<u8> = samples.iter().map(Frame::frame_type).collect();
    types.dedup();
    assert_eq!(types.len(), 39, "one sample per variant at least");
    for frame in samples {
        assert_eq!(round_trip(&frame), frame);
    }
}

#[test]
fn big_lists_and_payloads_round_trip() {
    let nicks: Vec<String> = (0..u16::MAX).map(|i| i.to_string()).collect();
    let frame = Frame::WhoList {
        room: s("big"),
        nicks,
    };
    assert_eq!(round_trip(&frame), frame);
    let frame = Frame::Echo {
        payload: Bytes::from(vec![0xab; 1 << 20]),
    };
    assert_eq!(round_trip(&frame), frame);
}

#[test]
fn type_codes_are_unique_and_in_their_ranges() {
    let mut seen = std::collections::BTreeSet::new();
    for frame in samples() {
        let t = frame.frame_type();
        seen.insert(t);
        match t {
            0x01..=0x1f => assert!(frame.is_client_frame() && !frame.is_server_frame()),
            0x20..=0x3f => assert!(frame.is_client_frame() && frame.is_server_frame()),
            0x40..=0x7f => assert!(!frame.is_client_frame() && frame.is_server_frame()),
            _ => panic!("type {t:#04x} out of range"),
        }
    }
    assert_eq!(seen.len(), 39);
}

#[test]
fn an_over_long_name_is_refused_and_nothing_is_appended() {
    let mut out = BytesMut::from(&b"keep"[..]);
    let err = Frame::SetNick {
        nick: "x".repeat(256),
    }
    .encode(&mut out)
    .unwrap_err();
    assert_eq!(
        err,
        EncodeError::FieldTooLong {
            field: "nick",
            len: 256,
            max: 255
        }
    );
    assert_eq!(&out[..], b"keep");
    // The failing field may come after fields already written.
    let err = Frame::RoomMsg {
        room: s("lobby"),
        from: "y".repeat(300),
        id: 1,
        time_ns: 2,
        text: s("hi"),
    }
    .encode(&mut out)
    .unwrap_err();
    assert!(matches!(
        err,
        EncodeError::FieldTooLong { field: "from", .. }
    ));
    assert_eq!(&out[..], b"keep");
}

#[test]
fn an_over_long_list_is_refused() {
    let frame = Frame::WhoList {
        room: s("r"),
        nicks: vec![String::new(); 65_536],
    };
    let err = frame.to_bytes().unwrap_err();
    assert_eq!(
        err,
        EncodeError::FieldTooLong {
            field: "nicks",
            len: 65_536,
            max: 65_535
        }
    );
    let frame = Frame::Stats {
        entries: vec![(s("n"), 1); 65_536],
    };
    assert!(matches!(
        frame.to_bytes(),
        Err(EncodeError::FieldTooLong {
            field: "entries",
            ..
        })
    ));
}

fn decode(frame_type: u8, body: &[u8]) -> Result<Frame, DecodeError> {
    Frame::decode(frame_type, Bytes::copy_from_slice(body))
}

fn malformed(frame_type: u8, reason: &'static str) -> DecodeError {
    DecodeError::Malformed { frame_type, reason }
}

#[test]
fn truncated_integers_are_malformed() {
    use types::*;
    assert_eq!(
        decode(HELLO, &[]),
        Err(malformed(HELLO, "truncated u16 field"))
    );
    assert_eq!(
        decode(HELLO, &[1]),
        Err(malformed(HELLO, "truncated u16 field"))
    );
    assert_eq!(
        decode(PING, &[0; 7]),
        Err(malformed(PING, "truncated u64 field"))
    );
    assert_eq!(
        decode(WELCOME, &[0, 1, 0, 0, 0]),
        Err(malformed(WELCOME, "truncated u32 field"))
    );
    assert_eq!(
        decode(JOINED, &[1, b'r', 1, b'n', 0, 0, 2]),
        Err(malformed(JOINED, "truncated u32 field"))
    );
    assert_eq!(
        decode(ERROR, &[0]),
        Err(malformed(ERROR, "truncated u16 field"))
    );
    assert_eq!(
        decode(ECHO_REPLY, &[0; 4]),
        Err(malformed(ECHO_REPLY, "truncated u64 field"))
    );
}

#[test]
fn truncated_strings_are_malformed() {
    use types::*;
    assert_eq!(
        decode(JOIN, &[]),
        Err(malformed(JOIN, "missing string length"))
    );
    assert_eq!(
        decode(JOIN, &[5, b'l', b'o']),
        Err(malformed(JOIN, "string longer than the frame"))
    );
    assert_eq!(
        decode(NICK_CHANGED, &[1, b'a']),
        Err(malformed(NICK_CHANGED, "missing string length"))
    );
    assert_eq!(
        decode(SAY, &[]),
        Err(malformed(SAY, "missing string length"))
    );
}

#[test]
fn list_counts_beyond_the_body_are_malformed() {
    use types::*;
    // Count 65535 with no entries: must fail without allocating for 65535.
    assert_eq!(
        decode(ROOM_LIST, &[0xff, 0xff]),
        Err(malformed(ROOM_LIST, "missing string length"))
    );
    assert_eq!(
        decode(WHO_LIST, &[1, b'r', 0, 2, 1, b'a']),
        Err(malformed(WHO_LIST, "missing string length"))
    );
    assert_eq!(
        decode(STATS, &[0, 1, 1, b'n', 0, 0]),
        Err(malformed(STATS, "truncated u64 field"))
    );
    assert_eq!(
        decode(ROOM_LIST, &[0]),
        Err(malformed(ROOM_LIST, "truncated u16 field"))
    );
}

#[test]
fn a_join_carries_a_whole_resume_id_or_none() {
    use types::*;
    assert_eq!(
        decode(JOIN, &[1, b'a', 0, 0, 0, 0, 0, 0, 0, 9]),
        Ok(Frame::Join {
            room: s("a"),
            since: Some(9)
        })
    );
    assert_eq!(
        decode(JOIN, &[1, b'a', 1, 2, 3]),
        Err(malformed(JOIN, "truncated u64 field"))
    );
    assert_eq!(
        decode(HISTORY_PAGE, &[1, b'a', 0, 0, 0, 1, 2]),
        Err(malformed(HISTORY_PAGE, "more is neither 0 nor 1"))
    );
}

#[test]
fn a_whole_encoded_frame_decodes_and_a_wrong_prefix_is_malformed() {
    for frame in samples() {
        assert_eq!(Frame::from_encoded(&frame.to_bytes().unwrap()), Ok(frame));
    }
    let bytes = Frame::Ping { token: 1 }.to_bytes().unwrap();
    assert_eq!(
        Frame::from_encoded(&bytes.slice(..bytes.len() - 1)),
        Err(malformed(
            types::PING,
            "length prefix does not match the frame"
        ))
    );
    assert_eq!(
        Frame::from_encoded(&Bytes::from_static(&[0, 0])),
        Err(DecodeError::EmptyFrame)
    );
}

#[test]
fn trailing_bytes_are_malformed() {
    use types::*;
    let trailing = "trailing bytes after the last field";
    for (t, body) in [
        (HELLO, &[0, 1, 0][..]),
        (CHAT_END, &[0][..]),
        (LIST_ROOMS, &[1, 2][..]),
        (GET_STATS, &[0][..]),
        (JOIN, &[1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, 0][..]),
        (PING, &[0; 9][..]),
        (WELCOME, &[0, 1, 0, 0, 0, 1, 0, 0][..]),
        (ROOM_LIST, &[0, 0, 0][..]),
        (STATS, &[0, 0, 9][..]),
    ] {
        assert_eq!(
            decode(t, body),
            Err(malformed(t, trailing)),
            "type {t:#04x}"
        );
    }
}

#[test]
fn invalid_utf8_is_reported_with_its_position() {
    use types::*;
    assert_eq!(
        decode(JOIN, &[3, b'a', 0xff, b'b']),
        Err(DecodeError::InvalidUtf8 {
            frame_type: Some(JOIN),
            valid_up_to: 1
        })
    );
    assert_eq!(
        decode(SAY, &[1, b'r', b'o', b'k', 0xc3]),
        Err(DecodeError::InvalidUtf8 {
            frame_type: Some(SAY),
            valid_up_to: 2
        })
    );
    // A surrogate encoded in UTF-8 (CESU) is not UTF-8.
    assert!(matches!(
        decode(NOTICE, &[0xed, 0xa0, 0x80]),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    // Payloads are bytes, not text.
    assert!(decode(ECHO, &[0xff, 0xfe]).is_ok());
    assert!(decode(ECHO_REPLY, &[0, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_ok());
}

#[test]
fn unknown_types_are_rejected() {
    let known: Vec<u8> = samples().iter().map(Frame::frame_type).collect();
    for t in 0..=u8::MAX {
        if !known.contains(&t) {
            assert_eq!(
                decode(t, &[]),
                Err(DecodeError::UnknownType { frame_type: t })
            );
        }
    }
}

#[test]
fn empty_bodies_decode_where_allowed() {
    use types::*;
    assert_eq!(decode(CHAT_END, &[]), Ok(Frame::ChatEnd));
    assert_eq!(decode(LIST_ROOMS, &[]), Ok(Frame::ListRooms));
    assert_eq!(decode(GET_STATS, &[]), Ok(Frame::GetStats));
    assert_eq!(decode(CHAT_SAY, &[]), Ok(Frame::ChatSay { text: s("") }));
    assert_eq!(decode(GOODBYE, &[]), Ok(Frame::Goodbye { reason: s("") }));
    assert_eq!(
        decode(ECHO, &[]),
        Ok(Frame::Echo {
            payload: Bytes::new()
        })
    );
}

#[test]
fn error_codes_have_names_and_close_by_range() {
    let mut previous = 0;
    for code in ErrorCode::ALL {
        assert!(code.0 > previous, "ALL is sorted and unique");
        previous = code.0;
        assert_ne!(code.name(), "unknown", "{}", code.0);
        assert_eq!(code.closes_connection(), !(200..300).contains(&code.0));
        assert_eq!(code.to_string(), format!("{} {}", code.0, code.name()));
    }
    assert_eq!(ErrorCode(999).name(), "unknown");
    assert!(ErrorCode(999).closes_connection());
    assert!(!ErrorCode(250).closes_connection());
    assert_eq!(ErrorCode::NO_SUCH_NICK.to_string(), "204 no-such-nick");
    assert!(ErrorCode::MALFORMED.closes_connection());
    assert!(!ErrorCode::NICK_TAKEN.closes_connection());
    assert!(ErrorCode::IDLE_TIMEOUT.closes_connection());
}
