//! Unit tests of `client`.

use super::*;

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
