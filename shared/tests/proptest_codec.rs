//! Property tests of the decoders: any chunking of a valid stream decodes to the same
//! frames or lines (random chunkings and every single split point), and arbitrary or
//! mutated bytes never panic a decoder nor let it hold more than one unit's worth of
//! input after draining.

// Tests may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::strategy::Union;
use shared::frame::LEN_PREFIX;
use shared::text::{escape, is_dangerous_control, parse_command, render_line};
use shared::{
    ConnectionDecoder, DecodeError, ErrorCode, Frame, FrameDecoder, Incoming, Limits, LineDecoder,
    RoomInfo, names,
};

/// A `str8` field: any characters, at most 40 of them (so at most 160 bytes).
fn name() -> impl Strategy<Value = String> {
    "(?s).{0,40}"
}

/// A rest-of-frame text field, newlines and control characters included.
fn text() -> impl Strategy<Value = String> {
    "(?s).{0,80}"
}

fn payload() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..120).prop_map(Bytes::from)
}

/// Up to four items: enough to exercise list encoding.
fn list<S: Strategy>(item: S) -> impl Strategy<Value = Vec<S::Value>> {
    proptest::collection::vec(item, 0..5)
}

/// Any frame of either direction.
fn frame() -> impl Strategy<Value = Frame> {
    Union::new(vec![
        any::<u16>()
            .prop_map(|version| Frame::Hello { version })
            .boxed(),
        name().prop_map(|nick| Frame::SetNick { nick }).boxed(),
        (name(), proptest::option::of(any::<u64>()))
            .prop_map(|(room, since)| Frame::Join { room, since })
            .boxed(),
        (name(), any::<u64>(), any::<u16>())
            .prop_map(|(room, before, limit)| Frame::GetHistory {
                room,
                before,
                limit,
            })
            .boxed(),
        name().prop_map(|room| Frame::Leave { room }).boxed(),
        (name(), text())
            .prop_map(|(nick, password)| Frame::Login {
                nick,
                password: shared::Password::new(password),
            })
            .boxed(),
        (name(), text())
            .prop_map(|(room, text)| Frame::Say { room, text })
            .boxed(),
        (name(), text())
            .prop_map(|(to, text)| Frame::Direct { to, text })
            .boxed(),
        name().prop_map(|peer| Frame::ChatRequest { peer }).boxed(),
        name().prop_map(|peer| Frame::ChatAccept { peer }).boxed(),
        Just(Frame::ChatEnd).boxed(),
        text().prop_map(|text| Frame::ChatSay { text }).boxed(),
        payload()
            .prop_map(|payload| Frame::Echo { payload })
            .boxed(),
        Just(Frame::ListRooms).boxed(),
        name().prop_map(|room| Frame::Who { room }).boxed(),
        Just(Frame::GetStats).boxed(),
        any::<u64>().prop_map(|token| Frame::Ping { token }).boxed(),
        any::<u64>().prop_map(|token| Frame::Pong { token }).boxed(),
        text().prop_map(|reason| Frame::Goodbye { reason }).boxed(),
        (any::<u16>(), any::<u32>(), name())
            .prop_map(|(version, max_frame, nick)| Frame::Welcome {
                version,
                max_frame,
                nick,
            })
            .boxed(),
        (name(), name())
            .prop_map(|(old, new)| Frame::NickChanged { old, new })
            .boxed(),
        (name(), name(), any::<u32>(), any::<u64>())
            .prop_map(|(room, nick, members, last)| Frame::Joined {
                room,
                nick,
                members,
                last,
            })
            .boxed(),
        (name(), any::<u32>(), any::<bool>())
            .prop_map(|(room, count, more)| Frame::HistoryPage { room, count, more })
            .boxed(),
        (name(), any::<u32>(), any::<u64>())
            .prop_map(|(room, replayed, missed)| Frame::Resumed {
                room,
                replayed,
                missed,
            })
            .boxed(),
        (name(), name(), any::<u32>())
            .prop_map(|(room, nick, members)| Frame::Left {
                room,
                nick,
                members,
            })
            .boxed(),
        list((name(), any::<u32>()))
            .prop_map(|rooms| Frame::RoomList {
                rooms: rooms
                    .into_iter()
                    .map(|(name, members)| RoomInfo { name, members })
                    .collect(),
            })
            .boxed(),
        (name(), list(name()))
            .prop_map(|(room, nicks)| Frame::WhoList { room, nicks })
            .boxed(),
        (name(), name(), any::<u64>(), any::<u64>(), text())
            .prop_map(|(room, from, id, time_ns, text)| Frame::RoomMsg {
                room,
                from,
                id,
                time_ns,
                text,
            })
            .boxed(),
        (name(), text())
            .prop_map(|(from, text)| Frame::DirectMsg { from, text })
            .boxed(),
        name()
            .prop_map(|from| Frame::ChatRequested { from })
            .boxed(),
        name().prop_map(|peer| Frame::ChatStarted { peer }).boxed(),
        (name(), text())
            .prop_map(|(peer, reason)| Frame::ChatEnded { peer, reason })
            .boxed(),
        name().prop_map(|peer| Frame::Busy { peer }).boxed(),
        (name(), text())
            .prop_map(|(from, text)| Frame::ChatMsg { from, text })
            .boxed(),
        (any::<u64>(), payload())
            .prop_map(|(server_time_ns, payload)| Frame::EchoReply {
                server_time_ns,
                payload,
            })
            .boxed(),
        list((name(), any::<u64>()))
            .prop_map(|entries| Frame::Stats { entries })
            .boxed(),
        (any::<u16>(), text())
            .prop_map(|(code, text)| Frame::Error {
                code: ErrorCode(code),
                text,
            })
            .boxed(),
        text().prop_map(|reason| Frame::Shutdown { reason }).boxed(),
        text().prop_map(|text| Frame::Notice { text }).boxed(),
    ])
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out).unwrap();
    }
    out.to_vec()
}

/// Splits `data` into pieces whose sizes cycle through `sizes` (each at least 1).
fn chunked<'a>(data: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = data;
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

fn feed_frames<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(shared::DEFAULT_MAX_FRAME);
    let mut got = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(frame) = decoder.decode().unwrap() {
            got.push(frame);
        }
    }
    assert_eq!(decoder.buffered(), 0);
    got
}

/// Lines as sent (with their terminators) and as they must decode.
fn lines() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    let line = ("[^\n]{0,30}", any::<bool>());
    proptest::collection::vec(line, 0..12).prop_map(|lines| {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (line, crlf) in lines {
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            // With either terminator, one `\r` before the `\n` is dropped.
            let line = if crlf {
                line.as_str()
            } else {
                line.strip_suffix('\r').unwrap_or(&line)
            };
            expected.push(line.to_owned());
        }
        (wire, expected)
    })
}

fn feed_lines<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut decoder = LineDecoder::new(shared::DEFAULT_MAX_LINE);
    let mut got = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(line) = decoder.decode().unwrap() {
            got.push(line);
        }
    }
    assert_eq!(decoder.buffered(), 0);
    got
}

/// The three decoders seen the same way: decode one unit, report buffered bytes.
trait Decoder {
    fn feed_bytes(&mut self, data: &[u8]);
    /// `Ok(true)` for a decoded unit, `Ok(false)` when more input is needed.
    fn decode_one(&mut self) -> Result<bool, DecodeError>;
    fn held(&self) -> usize;
}

impl Decoder for FrameDecoder {
    fn feed_bytes(&mut self, data: &[u8]) {
        self.feed(data);
    }
    fn decode_one(&mut self) -> Result<bool, DecodeError> {
        Ok(self.decode()?.is_some())
    }
    fn held(&self) -> usize {
        self.buffered()
    }
}

impl Decoder for LineDecoder {
    fn feed_bytes(&mut self, data: &[u8]) {
        self.feed(data);
    }
    fn decode_one(&mut self) -> Result<bool, DecodeError> {
        Ok(self.decode()?.is_some())
    }
    fn held(&self) -> usize {
        self.buffered()
    }
}

impl Decoder for ConnectionDecoder {
    fn feed_bytes(&mut self, data: &[u8]) {
        self.feed(data);
    }
    fn decode_one(&mut self) -> Result<bool, DecodeError> {
        Ok(self.decode()?.is_some())
    }
    fn held(&self) -> usize {
        self.buffered()
    }
}

/// Feeds `data` in `sizes`-chunks, draining after each feed: decoding until the decoder
/// needs more input or fails without consuming anything (a sticky framing error);
/// errors that consume their frame or line are stepped over. After every drain the
/// decoder must hold at most `bound` bytes.
fn check_bounded(decoder: &mut dyn Decoder, data: &[u8], sizes: &[usize], bound: usize) {
    for piece in chunked(data, sizes) {
        decoder.feed_bytes(piece);
        loop {
            let before = decoder.held();
            match decoder.decode_one() {
                Ok(true) => assert!(decoder.held() < before, "a unit consumes input"),
                Ok(false) => break,
                Err(_) if decoder.held() < before => {}
                Err(_) => break,
            }
        }
        assert!(
            decoder.held() <= bound,
            "holds {} bytes, bound {bound}",
            decoder.held()
        );
    }
}

/// Runs [`check_bounded`] on all three decoders.
fn check_all_bounded(data: &[u8], sizes: &[usize], limits: Limits) {
    let frame_bound = LEN_PREFIX + limits.max_frame;
    let line_bound = limits.max_line + 1;
    check_bounded(
        &mut FrameDecoder::new(limits.max_frame),
        data,
        sizes,
        frame_bound,
    );
    check_bounded(
        &mut LineDecoder::new(limits.max_line),
        data,
        sizes,
        line_bound,
    );
    let bound = match data.first() {
        Some(0) => frame_bound,
        _ => line_bound,
    };
    check_bounded(&mut ConnectionDecoder::new(limits), data, sizes, bound);
}

/// Valid encoded frames with a few bytes overwritten, inserted or removed: inputs that
/// reach deep into the body decoder, unlike uniformly random bytes.
fn mutated_stream() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    (
        proptest::collection::vec(frame(), 1..6),
        proptest::collection::vec(edit, 1..6),
    )
        .prop_map(|(frames, edits)| {
            let mut wire = encode_all(&frames);
            for (at, byte, kind) in edits {
                if wire.is_empty() {
                    break;
                }
                let i = at.index(wire.len());
                match kind {
                    0 => wire[i] = byte,
                    1 => wire.insert(i, byte),
                    _ => {
                        wire.remove(i);
                    }
                }
            }
            wire
        })
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..80, 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_survive_random_chunking(
        frames in proptest::collection::vec(frame(), 0..16),
        sizes in chunk_sizes(),
    ) {
        let wire = encode_all(&frames);
        prop_assert_eq!(feed_frames(chunked(&wire, &sizes)), frames);
    }

    #[test]
    fn frames_survive_one_byte_reads(frames in proptest::collection::vec(frame(), 0..6)) {
        let wire = encode_all(&frames);
        prop_assert_eq!(feed_frames(wire.chunks(1)), frames);
    }

    #[test]
    fn lines_survive_random_chunking((wire, expected) in lines(), sizes in chunk_sizes()) {
        prop_assert_eq!(feed_lines(chunked(&wire, &sizes)), expected);
    }

    #[test]
    fn connection_decoder_survives_random_chunking(
        frames in proptest::collection::vec(frame(), 0..8),
        (wire_lines, expected_lines) in lines(),
        sizes in chunk_sizes(),
    ) {
        // Binary streams start with Hello, text streams with a non-NUL byte.
        let mut frames = frames;
        frames.insert(0, Frame::Hello { version: 1 });
        let wire = encode_all(&frames);
        let mut conn = ConnectionDecoder::new(Limits::default());
        let mut got = Vec::new();
        for piece in chunked(&wire, &sizes) {
            conn.feed(piece);
            while let Some(incoming) = conn.decode().unwrap() {
                got.push(incoming);
            }
        }
        let expected: Vec<Incoming> = frames.into_iter().map(Incoming::Frame).collect();
        prop_assert_eq!(got, expected);

        prop_assume!(wire_lines.first().is_some_and(|&b| b != 0));
        let mut conn = ConnectionDecoder::new(Limits::default());
        let mut got = Vec::new();
        for piece in chunked(&wire_lines, &sizes) {
            conn.feed(piece);
            while let Some(incoming) = conn.decode().unwrap() {
                got.push(incoming);
            }
        }
        let expected: Vec<Incoming> = expected_lines.into_iter().map(Incoming::Line).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        sizes in chunk_sizes(),
        max_frame in 1usize..64,
        max_line in 0usize..40,
    ) {
        check_all_bounded(&data, &sizes, Limits { max_frame, max_line });
        let mut binary = vec![0u8];
        binary.extend_from_slice(&data);
        check_all_bounded(&binary, &sizes, Limits { max_frame, max_line });
    }

    #[test]
    fn mutated_frames_never_panic_and_stay_bounded(
        data in mutated_stream(),
        sizes in chunk_sizes(),
        max_frame in prop_oneof![Just(shared::DEFAULT_MAX_FRAME), 1usize..200],
    ) {
        check_all_bounded(&data, &sizes, Limits { max_frame, max_line: 64 });
    }

    #[test]
    fn text_functions_never_panic_and_escape_is_total(line in "(?s).{0,60}") {
        let _ = parse_command(&line);
        let escaped = escape(&line);
        prop_assert!(!escaped.chars().any(is_dangerous_control));
        if !line.chars().any(is_dangerous_control) {
            prop_assert_eq!(escaped.as_ref(), line.as_str());
        }
    }

    #[test]
    fn server_frames_render_as_exactly_one_safe_line(frame in frame()) {
        let mut out = BytesMut::new();
        let rendered = render_line(&frame, &mut out);
        prop_assert_eq!(rendered, frame.is_server_frame());
        if !rendered {
            prop_assert!(out.is_empty());
        } else if !matches!(frame, Frame::EchoReply { .. }) {
            let line = std::str::from_utf8(&out).unwrap();
            let body = line.strip_suffix('\n').unwrap();
            prop_assert!(!body.chars().any(is_dangerous_control), "{:?}", line);
        }
    }

    #[test]
    fn fold_is_to_lowercase_and_valid_names_encode(name in prop_oneof![
        "(?s).{0,70}",
        // Mostly valid names, some long and made of 4-byte letters.
        "[\\p{L}\\p{N}\\-_.\\[\\]{}|^]{0,70}",
        "[𝐀-𝐙a-z]{60,66}",
    ]) {
        prop_assert_eq!(names::fold(&name), name.to_lowercase());
        if names::validate_room(&name).is_ok() {
            let join = Frame::Join {
                room: name.clone(),
                since: None,
            };
            prop_assert!(join.to_bytes().is_ok(), "{:?}", name);
        }
        if names::validate_nick(&name).is_ok() {
            let set_nick = Frame::SetNick { nick: name.clone() };
            prop_assert!(set_nick.to_bytes().is_ok(), "{:?}", name);
        }
    }
}

proptest! {
    // Each case decodes the stream once per byte; fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn frames_survive_every_split_point(frames in proptest::collection::vec(frame(), 1..6)) {
        let wire = encode_all(&frames);
        for split in 0..=wire.len() {
            let (head, tail) = wire.split_at(split);
            prop_assert_eq!(feed_frames([head, tail]), frames.clone(), "split at {}", split);
        }
    }

    #[test]
    fn lines_survive_every_split_point((wire, expected) in lines()) {
        for split in 0..=wire.len() {
            let (head, tail) = wire.split_at(split);
            prop_assert_eq!(feed_lines([head, tail]), expected.clone(), "split at {}", split);
        }
    }
}
