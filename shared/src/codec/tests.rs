//! Unit tests of `codec`.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};

use super::*;

fn say(text: &str) -> Frame {
    Frame::Say {
        room: "lobby".to_owned(),
        text: text.to_owned(),
    }
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out).unwrap();
    }
    out.to_vec()
}

fn drain(decoder: &mut FrameDecoder) -> Vec<Frame> {
    std::iter::from_fn(|| decoder.decode().unwrap()).collect()
}

fn drain_lines(decoder: &mut LineDecoder) -> Vec<String> {
    std::iter::from_fn(|| decoder.decode().unwrap()).collect()
}

fn frames() -> Vec<Frame> {
    vec![
        Frame::Hello { version: 1 },
        say("hi"),
        Frame::ChatEnd,
        Frame::Echo {
            payload: Bytes::from_static(&[0, 1, 2, 0xff]),
        },
        say("né😀"),
        Frame::Ping { token: 7 },
    ]
}

#[test]
fn several_frames_in_one_read() {
    let mut decoder = FrameDecoder::new(1024);
    decoder.feed(&encode_all(&frames()));
    assert_eq!(drain(&mut decoder), frames());
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn one_frame_over_many_reads_down_to_one_byte() {
    let wire = encode_all(&frames());
    for chunk in [1, 2, 3, 5, 7, 64] {
        let mut decoder = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            decoder.feed(piece);
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, frames(), "chunks of {chunk}");
        assert_eq!(decoder.buffered(), 0);
    }
}

#[test]
fn nothing_is_decoded_before_the_last_byte_of_a_frame() {
    let wire = encode_all(&[say("a whole sentence")]);
    let mut decoder = FrameDecoder::new(1024);
    for (i, byte) in wire.iter().enumerate() {
        decoder.feed(&[*byte]);
        let got = decoder.decode().unwrap();
        assert_eq!(got.is_some(), i == wire.len() - 1, "after byte {i}");
    }
}

#[test]
fn utf8_split_across_reads_in_binary_mode() {
    // "é" is c3 a9, "€" e2 82 ac, "😀" f0 9f 98 80: split inside each at every point.
    let frame = say("é€😀");
    let wire = encode_all(std::slice::from_ref(&frame));
    for split in 1..wire.len() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.feed(&wire[..split]);
        assert_eq!(decoder.decode().unwrap(), None, "split at {split}");
        decoder.feed(&wire[split..]);
        assert_eq!(decoder.decode().unwrap(), Some(frame.clone()));
    }
}

#[test]
fn utf8_split_across_reads_in_text_mode() {
    let line = "é€😀\n".as_bytes();
    for split in 1..line.len() {
        let mut decoder = LineDecoder::new(64);
        decoder.feed(&line[..split]);
        assert_eq!(decoder.decode().unwrap(), None, "split at {split}");
        decoder.feed(&line[split..]);
        assert_eq!(decoder.decode().unwrap(), Some("é€😀".to_owned()));
    }
    let mut decoder = LineDecoder::new(64);
    for byte in line {
        decoder.feed(&[*byte]);
    }
    assert_eq!(drain_lines(&mut decoder), ["é€😀"]);
}

#[test]
fn lines_end_in_lf_or_crlf() {
    let mut decoder = LineDecoder::new(64);
    decoder.feed(b"a\nb\r\n\n\r\nc\rd\ne\r\r\n");
    assert_eq!(drain_lines(&mut decoder), ["a", "b", "", "", "c\rd", "e\r"]);
    // The \r and the \n of one terminator in different reads.
    decoder.feed(b"split\r");
    assert_eq!(decoder.decode().unwrap(), None);
    decoder.feed(b"\n");
    assert_eq!(decoder.decode().unwrap(), Some("split".to_owned()));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn several_lines_in_one_read_and_one_line_over_many() {
    let mut decoder = LineDecoder::new(64);
    decoder.feed(b"one\ntwo\nthr");
    assert_eq!(drain_lines(&mut decoder), ["one", "two"]);
    assert_eq!(decoder.buffered(), 3);
    for byte in b"ee\r\n" {
        decoder.feed(&[*byte]);
    }
    assert_eq!(drain_lines(&mut decoder), ["three"]);
}

#[test]
fn an_oversized_frame_is_rejected_from_its_header_alone() {
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&[0, 0, 0]);
    assert_eq!(decoder.decode(), Ok(None));
    decoder.feed(&[101]);
    let err = DecodeError::FrameTooLarge { len: 101, max: 100 };
    assert_eq!(decoder.decode(), Err(err.clone()));
    assert_eq!(err.code(), crate::ErrorCode::FRAME_TOO_LARGE);
    // Sticky: the stream has lost its framing.
    assert_eq!(decoder.decode(), Err(err));
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.feed(&[0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        decoder.decode(),
        Err(DecodeError::FrameTooLarge {
            len: 0xffff_ffff,
            ..
        })
    ));
}

#[test]
fn a_frame_of_exactly_max_frame_is_accepted() {
    let frame = Frame::Echo {
        payload: Bytes::from(vec![7; 99]),
    };
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&frame.to_bytes().unwrap());
    assert_eq!(decoder.decode(), Ok(Some(frame)));
}

/// Regression: after a framing error the decoder used to keep everything fed after
/// the bad header, so a peer could make it hold any amount before being closed.
#[test]
fn regression_nothing_piles_up_behind_a_framing_error() {
    let mut decoder = FrameDecoder::new(100);
    let mut flood = vec![0, 0, 0, 200];
    flood.extend(vec![0xaa; 10_000]);
    decoder.feed(&flood);
    assert!(decoder.decode().is_err());
    assert!(decoder.buffered() <= LEN_PREFIX + 100);
    decoder.feed(&[0xbb; 10_000]);
    assert!(decoder.decode().is_err());
    assert!(decoder.buffered() <= LEN_PREFIX + 100);

    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&[0, 0, 0, 0, 9, 9, 9]);
    assert_eq!(decoder.decode(), Err(DecodeError::EmptyFrame));
    assert_eq!(decoder.decode(), Err(DecodeError::EmptyFrame));
    assert!(decoder.buffered() <= LEN_PREFIX);

    let mut decoder = LineDecoder::new(10);
    decoder.feed(&[b'x'; 10_000]);
    assert_eq!(decoder.decode(), Err(DecodeError::LineTooLong { max: 10 }));
    assert!(decoder.buffered() <= 11);
}

#[test]
fn zero_length_is_malformed() {
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&[0, 0, 0, 0]);
    let err = decoder.decode().unwrap_err();
    assert_eq!(err, DecodeError::EmptyFrame);
    assert_eq!(err.code(), crate::ErrorCode::MALFORMED);
}

#[test]
fn unknown_type_consumes_its_frame_only() {
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&[0, 0, 0, 3, 0x7e, 1, 2]);
    decoder.feed(&encode_all(&[Frame::ListRooms]));
    let err = decoder.decode().unwrap_err();
    assert_eq!(err, DecodeError::UnknownType { frame_type: 0x7e });
    assert_eq!(err.code(), crate::ErrorCode::UNKNOWN_TYPE);
    assert_eq!(decoder.decode(), Ok(Some(Frame::ListRooms)));
}

#[test]
fn truncated_fields_and_trailing_bytes_are_malformed() {
    let mut decoder = FrameDecoder::new(100);
    // Hello with one byte of its u16.
    decoder.feed(&[0, 0, 0, 2, 0x01, 0]);
    let err = decoder.decode().unwrap_err();
    assert!(matches!(err, DecodeError::Malformed { frame_type: 1, .. }));
    assert_eq!(err.code(), crate::ErrorCode::MALFORMED);
    // Join whose str8 claims 9 bytes but the frame holds 2.
    decoder.feed(&[0, 0, 0, 4, 0x03, 9, b'a', b'b']);
    assert!(matches!(
        decoder.decode(),
        Err(DecodeError::Malformed { frame_type: 3, .. })
    ));
    // Ping with a ninth body byte.
    decoder.feed(&[0, 0, 0, 10, 0x20, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert!(matches!(
        decoder.decode(),
        Err(DecodeError::Malformed {
            frame_type: 0x20,
            reason: "trailing bytes after the last field"
        })
    ));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn invalid_utf8_in_a_frame_and_in_a_line() {
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&[0, 0, 0, 4, 0x0a, b'o', b'k', 0xff]);
    let err = decoder.decode().unwrap_err();
    assert_eq!(
        err,
        DecodeError::InvalidUtf8 {
            frame_type: Some(0x0a),
            valid_up_to: 2
        }
    );
    assert_eq!(err.code(), crate::ErrorCode::INVALID_UTF8);

    let mut decoder = LineDecoder::new(100);
    decoder.feed(b"fine\nbad \xc3\x28 byte\nnext\n");
    assert_eq!(decoder.decode(), Ok(Some("fine".to_owned())));
    assert_eq!(
        decoder.decode(),
        Err(DecodeError::InvalidUtf8 {
            frame_type: None,
            valid_up_to: 4
        })
    );
    assert_eq!(decoder.decode(), Ok(Some("next".to_owned())));
    // A lone half of a character at the end of a line is invalid, not "incomplete".
    decoder.feed(b"\xe2\x82\n");
    assert!(matches!(
        decoder.decode(),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
}

#[test]
fn line_limit_counts_bytes_without_the_terminator() {
    let max = 8;
    for terminator in [&b"\n"[..], b"\r\n"] {
        let mut decoder = LineDecoder::new(max);
        let mut line = vec![b'x'; max];
        line.extend_from_slice(terminator);
        decoder.feed(&line);
        assert_eq!(decoder.decode(), Ok(Some("x".repeat(max))));
    }
    let mut decoder = LineDecoder::new(max);
    decoder.feed(&[b'x'; 9]);
    decoder.feed(b"\n");
    assert_eq!(decoder.decode(), Err(DecodeError::LineTooLong { max }));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn an_over_long_line_is_rejected_without_its_newline() {
    let max = 8;
    let mut decoder = LineDecoder::new(max);
    // max + 1 bytes may still be max bytes and the \r of a \r\n.
    decoder.feed(&[b'x'; 9]);
    assert_eq!(decoder.decode(), Ok(None));
    decoder.feed(b"x");
    let err = decoder.decode().unwrap_err();
    assert_eq!(err, DecodeError::LineTooLong { max });
    assert_eq!(err.code(), crate::ErrorCode::LINE_TOO_LONG);
    // The rest of the line is dropped as it arrives; the error repeats until its
    // newline, then decoding resumes with the next line.
    decoder.feed(&[b'y'; 100]);
    assert_eq!(decoder.decode(), Err(DecodeError::LineTooLong { max }));
    assert_eq!(decoder.buffered(), 0);
    decoder.feed(b"yyy\nok\n");
    assert_eq!(decoder.decode(), Err(DecodeError::LineTooLong { max }));
    assert_eq!(decoder.decode(), Ok(Some("ok".to_owned())));
}

#[test]
fn huge_line_limit_does_not_overflow() {
    let mut decoder = LineDecoder::new(usize::MAX);
    decoder.feed(b"abc");
    assert_eq!(decoder.decode(), Ok(None));
    decoder.feed(b"\n");
    assert_eq!(decoder.decode(), Ok(Some("abc".to_owned())));
}

#[test]
fn mode_is_detected_from_the_first_byte() {
    assert_eq!(Mode::detect(0x00), Mode::Binary);
    for byte in 1..=u8::MAX {
        assert_eq!(Mode::detect(byte), Mode::Text, "{byte:#04x}");
    }
}

#[test]
fn connection_decoder_detects_binary() {
    let mut decoder = ConnectionDecoder::new(Limits::default());
    assert_eq!(decoder.mode(), None);
    decoder.feed(&[]);
    assert_eq!(decoder.mode(), None);
    assert_eq!(decoder.decode(), Ok(None));
    let wire = encode_all(&[Frame::Hello { version: 1 }, say("x")]);
    decoder.feed(&wire[..1]);
    assert_eq!(decoder.mode(), Some(Mode::Binary));
    assert_eq!(decoder.buffered(), 1);
    assert_eq!(decoder.decode(), Ok(None));
    decoder.feed(&wire[1..]);
    assert_eq!(
        decoder.decode(),
        Ok(Some(Incoming::Frame(Frame::Hello { version: 1 })))
    );
    assert_eq!(decoder.decode(), Ok(Some(Incoming::Frame(say("x")))));
    assert_eq!(decoder.decode(), Ok(None));
}

#[test]
fn connection_decoder_detects_text() {
    let mut decoder = ConnectionDecoder::new(Limits::default());
    decoder.feed(b"/nick al");
    assert_eq!(decoder.mode(), Some(Mode::Text));
    assert_eq!(decoder.decode(), Ok(None));
    decoder.feed(b"ice\r\nhello\n");
    assert_eq!(
        decoder.decode(),
        Ok(Some(Incoming::Line("/nick alice".to_owned())))
    );
    assert_eq!(
        decoder.decode(),
        Ok(Some(Incoming::Line("hello".to_owned())))
    );
    // A later 0x00 byte is just part of a line: the mode never changes.
    decoder.feed(b"\0\n");
    assert_eq!(decoder.mode(), Some(Mode::Text));
    assert_eq!(decoder.decode(), Ok(Some(Incoming::Line("\0".to_owned()))));
}

#[test]
fn connection_decoder_applies_its_limits() {
    let limits = Limits {
        max_frame: 10,
        max_line: 4,
    };
    let mut binary = ConnectionDecoder::new(limits);
    binary.feed(&[0, 0, 0, 11]);
    assert_eq!(
        binary.decode(),
        Err(DecodeError::FrameTooLarge { len: 11, max: 10 })
    );
    let mut text = ConnectionDecoder::new(limits);
    text.feed(b"abcdef");
    assert_eq!(text.decode(), Err(DecodeError::LineTooLong { max: 4 }));
}
