//! Unit tests of `client`.

use bytes::BytesMut;
use shared::{Frame, FrameDecoder};

use super::*;
use crate::stamp::Stamp;

fn plan() -> ClientPlan {
    ClientPlan {
        id: 3,
        group_start: 2,
        group_len: 2,
        nick: Some("lg-ab-3".into()),
        room: Some("lg-ab-1".into()),
        partner_nick: Some("lg-ab-2".into()),
    }
}

fn rules(protocol: Protocol, scenario: Scenario) -> Rules {
    Rules {
        protocol,
        scenario,
        payload: 80,
        measure_from_ns: 0,
        max_seq: 100,
        window: 0,
        send_window: crate::schedule::SendWindow::new(0, 0),
        schedule: Schedule::new(0, 1.0, 1),
        tls: None,
        stamps: StampBase::default(),
    }
}

const STAMP: Stamp = Stamp {
    client: 3,
    seq: 9,
    scheduled_ns: 1_000,
    sent_ns: 2_000,
};

#[test]
fn encodes_like_the_shared_encoder() {
    let encode = |frame: Frame| {
        let mut b = BytesMut::new();
        frame.encode(&mut b).expect("encodable");
        b.to_vec()
    };
    let mut ascii = Vec::new();
    STAMP.put_ascii(80, &mut ascii);
    let text = String::from_utf8(ascii.clone()).expect("ascii");
    let mut binary = Vec::new();
    STAMP.put_binary(80, &mut binary);

    let cases = [
        (
            Scenario::Echo,
            encode(Frame::Echo {
                payload: binary.into(),
            }),
        ),
        (
            Scenario::Room,
            encode(Frame::Say {
                room: "lg-ab-1".into(),
                text: text.clone(),
            }),
        ),
        (
            Scenario::Dm,
            encode(Frame::Direct {
                to: "lg-ab-2".into(),
                text: text.clone(),
            }),
        ),
    ];
    for (scenario, expected) in cases {
        let mut out = vec![0xAA];
        encode_message(
            &STAMP,
            &rules(Protocol::Binary, scenario),
            &plan(),
            &mut out,
        );
        assert_eq!(out[1..], expected[..], "{scenario:?}");
    }

    let mut out = Vec::new();
    encode_message(
        &STAMP,
        &rules(Protocol::Text, Scenario::Echo),
        &plan(),
        &mut out,
    );
    assert_eq!(out, format!("/echo {text}\n").into_bytes());
    let mut out = Vec::new();
    encode_message(
        &STAMP,
        &rules(Protocol::Text, Scenario::Dm),
        &plan(),
        &mut out,
    );
    assert_eq!(out, format!("/msg lg-ab-2 {text}\n").into_bytes());
    let mut out = Vec::new();
    encode_message(
        &STAMP,
        &rules(Protocol::Text, Scenario::Room),
        &plan(),
        &mut out,
    );
    assert_eq!(out, format!("{text}\n").into_bytes());
    let mut out = Vec::new();
    encode_message(
        &STAMP,
        &rules(Protocol::Line, Scenario::Echo),
        &plan(),
        &mut out,
    );
    assert_eq!(out, format!("{text}\n").into_bytes());
}

#[test]
fn the_shared_decoder_reads_what_we_encode() {
    let mut out = Vec::new();
    encode_message(
        &STAMP,
        &rules(Protocol::Binary, Scenario::Room),
        &plan(),
        &mut out,
    );
    let mut d = FrameDecoder::new(shared::DEFAULT_MAX_FRAME);
    d.feed(&out);
    match d.decode() {
        Ok(Some(Frame::Say { room, text })) => {
            assert_eq!(room, "lg-ab-1");
            assert_eq!(Stamp::from_ascii(text.as_bytes()), Ok(STAMP));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn group_membership_decides_expected_senders() {
    let p = plan();
    assert!(p.expects_from(Scenario::Echo, 3));
    assert!(!p.expects_from(Scenario::Echo, 2));
    assert!(p.expects_from(Scenario::Dm, 2));
    assert!(!p.expects_from(Scenario::Dm, 3));
    assert!(p.expects_from(Scenario::Room, 3));
    assert!(p.expects_from(Scenario::Room, 2));
}

/// Echo arrivals at client 3 with a 1 ms send window: the lag-free latency leaves out
/// loadgen's own lag behind the release and nothing else; a message that waited for the
/// in-flight window keeps its whole wait (the server's doing).
#[test]
fn own_lag_is_taken_out_of_the_lag_free_latency_only() {
    let poll = mio::Poll::new().expect("poll");
    let mut rules = rules(Protocol::Binary, Scenario::Echo);
    rules.send_window = crate::schedule::SendWindow::new(0, 1_000_000);
    rules.window = 4;
    let mut tally = Tally::default();
    let sent = [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ];
    let mut cx = Ctx {
        rules: &rules,
        registry: poll.registry(),
        clock: Clock::start(),
        tally: &mut tally,
        sent: &sent,
    };
    let mut client = Client::new(plan(), crate::fanout::Role::Both);
    let stamp = |seq, scheduled_ns, sent_ns| {
        Some(Stamp {
            client: 3,
            seq,
            scheduled_ns,
            sent_ns,
        })
    };
    // Intended at 2.5 ms, released at the window's end (3 ms), sent on time: no own lag,
    // so the hold stays in both latencies.
    client.deliver(stamp(0, 2_500_000, 3_000_000), 3_200_000, &mut cx);
    // Released at 1 ms but sent at 19 ms: loadgen stalled 18 ms. Back 0.5 ms later.
    client.deliver(stamp(1, 1_000_000, 19_000_000), 19_500_000, &mut cx);
    // Waited for the in-flight window from 1 ms to 30 ms, then back 0.4 ms later.
    client.deferred.push(2);
    client.deliver(stamp(2, 1_000_000, 30_000_000), 30_400_000, &mut cx);
    let r = &tally.recorder;
    assert_eq!((r.corrected.len(), r.lag_free.len()), (3, 3));
    let has = |h: &hdrhistogram::Histogram<u64>, us: u64| h.count_at(us) > 0;
    assert!(has(&r.corrected, 700) && has(&r.lag_free, 700), "hold kept");
    assert!(
        has(&r.corrected, 18_500),
        "the stall counts in the headline"
    );
    assert!(has(&r.lag_free, 500), "but not in the lag-free latency");
    assert!(!has(&r.lag_free, 18_500));
    assert!(
        has(&r.corrected, 29_400) && has(&r.lag_free, 29_400),
        "deferral kept"
    );
    assert!(client.deferred.is_empty());
}
