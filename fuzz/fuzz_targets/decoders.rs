//! Fuzzes every decoder with one input: `FrameDecoder`, `LineDecoder` and
//! `ConnectionDecoder`, fed in a chunking chosen by the input, and checks more than
//! "no panic":
//!
//! - a decoded frame re-encodes to exactly the bytes it was decoded from (the encoding
//!   is canonical), and a decoded line is exactly its bytes minus `\n` or `\r\n`;
//! - after draining, a decoder holds at most `4 + max_frame` / `max_line + 1` bytes;
//! - `render_line` and `parse_command` accept whatever was decoded.
//!
//! Input layout: byte 0 picks the limits, byte 1 the read sizes, the rest is the stream.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shared::frame::LEN_PREFIX;
use shared::text::{escape, is_dangerous_control, parse_command, render_line};
use shared::{ConnectionDecoder, FrameDecoder, Incoming, Limits, LineDecoder};

fuzz_target!(|data: &[u8]| {
    let [config, chunking, stream @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_frame: [1, 9, 64, 300, shared::DEFAULT_MAX_FRAME][usize::from(config & 7) % 5],
        max_line: [0, 1, 16, 200, shared::DEFAULT_MAX_LINE][usize::from(config >> 3 & 7) % 5],
    };
    let sizes = read_sizes(*chunking);
    frames(stream, &sizes, limits);
    lines(stream, &sizes, limits);
    connection(stream, &sizes, limits);
});

/// Read sizes to cycle through: one byte at a time, a fixed size, or a varied pattern.
fn read_sizes(chunking: u8) -> Vec<usize> {
    match chunking % 4 {
        0 => vec![usize::MAX],
        1 => vec![1],
        2 => vec![usize::from(chunking / 4) + 1],
        _ => vec![1, 7, 2, usize::from(chunking), 3],
    }
}

fn chunks<'a>(stream: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = (*sizes.next()?).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        Some(piece)
    })
}

fn frames(stream: &[u8], sizes: &[usize], limits: Limits) {
    let mut decoder = FrameDecoder::new(limits.max_frame);
    let mut fed = 0;
    'feed: for piece in chunks(stream, sizes) {
        decoder.feed(piece);
        fed += piece.len();
        loop {
            // A decoder holds a suffix of what it was fed: its next unit starts here.
            let before = decoder.buffered();
            let start = fed - before;
            let result = decoder.decode();
            let consumed = before - decoder.buffered();
            match result {
                Ok(Some(frame)) => {
                    let original = &stream[start..start + consumed];
                    let encoded = frame.to_bytes().expect("a decoded frame re-encodes");
                    assert_eq!(&encoded[..], original, "{frame:?}");
                    assert!(encoded.len() - LEN_PREFIX <= limits.max_frame);
                    let mut out = BytesMut::new();
                    let rendered = render_line(&frame, &mut out);
                    assert_eq!(rendered, frame.is_server_frame());
                }
                Ok(None) => break,
                // A bad frame was consumed; the stream is still framed.
                Err(_) if consumed > 0 => {}
                // A sticky framing error: the connection would be closed here.
                Err(_) => {
                    assert!(decoder.buffered() <= LEN_PREFIX + limits.max_frame);
                    break 'feed;
                }
            }
        }
        assert!(decoder.buffered() <= LEN_PREFIX + limits.max_frame);
    }
}

fn lines(stream: &[u8], sizes: &[usize], limits: Limits) {
    let mut decoder = LineDecoder::new(limits.max_line);
    let mut fed = 0;
    for piece in chunks(stream, sizes) {
        decoder.feed(piece);
        fed += piece.len();
        loop {
            let before = decoder.buffered();
            let start = fed - before;
            let result = decoder.decode();
            let consumed = before - decoder.buffered();
            match result {
                Ok(Some(line)) => {
                    let original = &stream[start..start + consumed];
                    let body = original
                        .strip_suffix(b"\r\n")
                        .or_else(|| original.strip_suffix(b"\n"))
                        .expect("a line ends in a newline");
                    assert_eq!(line.as_bytes(), body);
                    assert!(line.len() <= limits.max_line);
                    let _ = parse_command(&line);
                    assert!(!escape(&line).chars().any(is_dangerous_control));
                }
                Ok(None) => break,
                // A bad line was consumed (or an over-long one dropped): go on.
                Err(_) if consumed > 0 => {}
                Err(_) => break,
            }
        }
        assert!(decoder.buffered() <= limits.max_line + 1);
    }
}

fn connection(stream: &[u8], sizes: &[usize], limits: Limits) {
    let mut decoder = ConnectionDecoder::new(limits);
    let bound = match stream.first() {
        Some(0) => LEN_PREFIX + limits.max_frame,
        _ => limits.max_line + 1,
    };
    for piece in chunks(stream, sizes) {
        decoder.feed(piece);
        loop {
            let before = decoder.buffered();
            match decoder.decode() {
                Ok(Some(Incoming::Frame(frame))) => assert!(frame.to_bytes().is_ok()),
                Ok(Some(Incoming::Line(line))) => assert!(line.len() <= limits.max_line),
                Ok(None) => break,
                Err(_) if decoder.buffered() < before => {}
                Err(_) => break,
            }
        }
        assert!(decoder.buffered() <= bound);
    }
}
