//! Codec throughput: decode and encode of `Echo` frames with 64-byte and 4 KiB
//! payloads, in MB/s and frames/s on one core.
//!
//! Decoding feeds a large pre-encoded buffer to a `FrameDecoder` in 64 KiB pieces, the
//! way a server hands it what each `read` returned. Encoding appends frames to one
//! output buffer that is cleared whenever it passes 64 KiB, the way a server fills a
//! socket's write buffer. Each measurement is repeated and the median printed; the
//! machine is shared, so compare medians of several runs.
//!
//! Run with `cargo bench -p shared --bench codec`. Goals: decoding at least 1 GB/s on
//! 4 KiB frames and at least 10 M frames/s on 64-byte frames.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shared::{Frame, FrameDecoder, LineDecoder};

/// Size of one simulated socket read, and of the encoder's output buffer.
const READ_SIZE: usize = 64 << 10;
/// Encoded bytes per measured pass: large enough to leave the caches.
const STREAM_BYTES: usize = 64 << 20;
/// Measured passes per case; the median is reported.
const ROUNDS: usize = 7;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this without it, in
    // which case one quick pass checks that the benchmark still works.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (stream_bytes, rounds) = if quick {
        (1 << 20, 1)
    } else {
        (STREAM_BYTES, ROUNDS)
    };

    println!(
        "{:<28} {:>10} {:>14} {:>12}",
        "case", "MB/s", "frames/s", "median"
    );
    for payload_len in [64, 4096] {
        let frame = Frame::Echo {
            payload: Bytes::from(vec![0xa5; payload_len]),
        };
        let frame_len = frame.to_bytes().map_or(0, |b| b.len());
        let count = stream_bytes / frame_len;
        let mut wire = BytesMut::with_capacity(count * frame_len);
        for _ in 0..count {
            if frame.encode(&mut wire).is_err() {
                unreachable!("a small Echo frame always encodes");
            }
        }
        let wire = wire.freeze();

        let decode = median(rounds, || decode_pass(&wire, count));
        report(
            &format!("decode echo {payload_len} B"),
            wire.len(),
            count,
            decode,
        );
        let encode = median(rounds, || encode_pass(&frame, count));
        report(
            &format!("encode echo {payload_len} B"),
            wire.len(),
            count,
            encode,
        );
    }

    // Text mode for comparison: 64-byte lines.
    let line = format!("{}\n", "x".repeat(63));
    let count = stream_bytes / line.len();
    let text = line.repeat(count).into_bytes();
    let lines = median(rounds, || line_pass(&text, count));
    report("decode line 64 B", text.len(), count, lines);
}

/// Feeds `wire` in `READ_SIZE` pieces and decodes every frame.
fn decode_pass(wire: &[u8], expected: usize) -> Duration {
    let start = Instant::now();
    let mut decoder = FrameDecoder::new(shared::DEFAULT_MAX_FRAME);
    let mut frames = 0;
    for read in wire.chunks(READ_SIZE) {
        decoder.feed(black_box(read));
        while let Ok(Some(frame)) = decoder.decode() {
            black_box(&frame);
            frames += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(frames, expected, "every frame decoded");
    elapsed
}

/// Encodes `count` frames into a buffer drained every `READ_SIZE` bytes.
fn encode_pass(frame: &Frame, count: usize) -> Duration {
    let start = Instant::now();
    let mut out = BytesMut::with_capacity(2 * READ_SIZE);
    for _ in 0..count {
        if black_box(frame).encode(&mut out).is_err() {
            unreachable!("a small Echo frame always encodes");
        }
        if out.len() >= READ_SIZE {
            black_box(&out[..]);
            out.clear();
        }
    }
    black_box(&out[..]);
    start.elapsed()
}

/// Feeds `text` in `READ_SIZE` pieces and decodes every line.
fn line_pass(text: &[u8], expected: usize) -> Duration {
    let start = Instant::now();
    let mut decoder = LineDecoder::new(shared::DEFAULT_MAX_LINE);
    let mut lines = 0;
    for read in text.chunks(READ_SIZE) {
        decoder.feed(black_box(read));
        while let Ok(Some(line)) = decoder.decode() {
            black_box(&line);
            lines += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(lines, expected, "every line decoded");
    elapsed
}

fn median(rounds: usize, mut pass: impl FnMut() -> Duration) -> Duration {
    pass(); // warm-up: page faults, allocator
    let mut times: Vec<Duration> = (0..rounds).map(|_| pass()).collect();
    times.sort();
    times[times.len() / 2]
}

fn report(case: &str, bytes: usize, frames: usize, time: Duration) {
    let secs = time.as_secs_f64();
    println!(
        "{case:<28} {:>10.0} {:>14.0} {:>10.2}ms",
        bytes as f64 / secs / 1e6,
        frames as f64 / secs,
        secs * 1e3
    );
}
