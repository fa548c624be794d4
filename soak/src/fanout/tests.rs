//! Tests of the fan-out case's accounting.

use super::*;

/// A `RoomMsg` body: room and sender nick with a length byte each, id and time,
/// then the text.
fn body(text: &str) -> Vec<u8> {
    let mut body = vec![4];
    body.extend_from_slice(b"room");
    body.push(3);
    body.extend_from_slice(b"ann");
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(&8u64.to_be_bytes());
    body.extend_from_slice(text.as_bytes());
    body
}

#[test]
fn the_stamp_is_read_from_a_real_room_message() {
    let mut text = String::new();
    stamp(&mut text, 3, 12345, 987654321, 64);
    let frame = Frame::RoomMsg {
        room: "room".into(),
        from: "ann".into(),
        id: 1 << 60,
        time_ns: 5,
        text,
    };
    let bytes = frame.to_bytes().unwrap();
    assert_eq!(
        room_msg_stamp(&bytes[LEN_PREFIX + 1..]),
        Some((3, 12345, 987654321))
    );
}

#[test]
fn stamps_round_trip_and_pad_to_size() {
    let mut text = String::new();
    stamp(&mut text, 3, 12345, 987654321, 64);
    assert_eq!(text.len(), 64);
    assert_eq!(room_msg_stamp(&body(&text)), Some((3, 12345, 987654321)));
    stamp(&mut text, 1, 2, 3, 0);
    assert_eq!(text, "1:2:3:");
    assert_eq!(room_msg_stamp(&body(&text)), Some((1, 2, 3)));
    for bad in ["1:2:3", "a:2:3:", "1::3:", "99999999999999999999:1:1:"] {
        assert_eq!(room_msg_stamp(&body(bad)), None, "{bad}");
    }
    assert_eq!(room_msg_stamp(&[9, b'r']), None, "cut short");
}

#[test]
fn frames_are_found_whole_and_broken_framing_is_reported() {
    let mut buf = BytesMut::new();
    put(&mut buf, &Frame::Ping { token: 7 });
    let whole = buf.len();
    assert_eq!(next_frame(&buf), Some((types::PING, whole - LEN_PREFIX)));
    assert_eq!(next_frame(&buf[..whole - 1]), None);
    assert_eq!(next_frame(&buf[..2]), None);
    assert_eq!(next_frame(&[0, 0, 0, 0]), Some((0, 0)));
    assert_eq!(next_frame(&[0xff, 0, 0, 0]), Some((0, 0xff00_0000)));
}

#[test]
fn latency_percentiles_come_from_the_buckets() {
    let mut report = FanoutReport {
        latency: vec![0; LATENCY_BUCKETS],
        ..FanoutReport::default()
    };
    assert_eq!(report.latency_ms(50.0), None);
    report.latency[1] = 98;
    report.latency[7] = 1;
    report.latency[40] = 1;
    assert_eq!(report.latency_ms(50.0), Some(1));
    assert_eq!(report.latency_ms(99.0), Some(7));
    assert_eq!(report.latency_ms(100.0), Some(40));
}

#[test]
fn a_report_is_ok_only_without_loss_and_closes() {
    let clean = FanoutReport {
        members: 2,
        senders: 1,
        joined: 2,
        sent: 10,
        expected: 20,
        received: 20,
        ..FanoutReport::default()
    };
    assert!(clean.ok());
    let lossy = FanoutReport {
        received: 19,
        lost_open: 1,
        ..clean.clone()
    };
    assert!(!lossy.ok() && lossy.lost() == 1 && !lossy.intact());
    // A member closed halfway: the one left got everything, nothing repeated.
    let closed = FanoutReport {
        closed_by_server: 1,
        received: 15,
        ..clean.clone()
    };
    assert!(!closed.ok() && closed.intact());
    let kept_but_short = FanoutReport {
        lost_open: 1,
        ..closed.clone()
    };
    assert!(!kept_but_short.intact());
    let repeated = FanoutReport {
        late_or_repeated: 1,
        ..clean.clone()
    };
    assert!(!repeated.ok() && !repeated.intact());
    let idle = FanoutReport {
        sent: 0,
        expected: 0,
        received: 0,
        ..clean
    };
    assert!(!idle.ok());
}
