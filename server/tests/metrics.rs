//! The metrics endpoint: scraped over real HTTP, parsed by the reference OpenMetrics
//! parser (Python's `prometheus_client`), values that move with traffic, and bad
//! requests that get 4xx without touching the chat port.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use common::{BinClient, TestServer, http, scrape, split};
use shared::Frame;

fn metrics_server(workers: usize) -> TestServer {
    TestServer::with(|c| {
        c.workers = workers;
        c.metrics = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
}

#[test]
fn values_move_with_traffic_and_parse_as_openmetrics() {
    let server = metrics_server(2);
    let addr = server.metrics_addr().expect("metrics are on");
    let before = scrape(addr);
    assert_eq!(before["chat_messages_received_total{}"], 0.0);
    assert_eq!(before["chat_fanout_seconds_count{}"], 0.0);
    assert_eq!(before["chat_users{}"], 0.0);

    let mut ann = BinClient::named(server.addr, "ann");
    let mut bob = BinClient::named(server.addr, "bob");
    ann.join("den");
    bob.join("den");
    for n in 0..10 {
        ann.send(&Frame::Say {
            room: "den".into(),
            text: format!("hello {n}"),
        });
    }
    for _ in 0..10 {
        bob.expect(|f| matches!(f, Frame::RoomMsg { .. }));
    }
    ann.send(&Frame::Echo {
        payload: Bytes::from_static(b"x"),
    });
    ann.expect(|f| matches!(f, Frame::EchoReply { .. }));

    let after = scrape(addr);
    let connections: f64 = (0..2)
        .map(|w| after[&format!("chat_connections{{worker=\"{w}\"}}")])
        .sum();
    assert_eq!(connections, 2.0);
    assert_eq!(after["chat_connections_accepted_total{}"], 2.0);
    assert!(after["chat_messages_received_total{}"] >= 17.0, "{after:?}");
    assert!(after["chat_sent_bytes_total{}"] > 0.0);
    assert_eq!(after["chat_users{}"], 2.0);
    assert_eq!(after["chat_rooms{}"], 1.0);
    assert_eq!(after["chat_room_members{}"], 2.0);
    assert_eq!(
        after["chat_fanout_seconds_count{}"], 10.0,
        "one per room message"
    );
    assert_eq!(after["chat_fanout_seconds_bucket{le=\"+Inf\"}"], 10.0);
    drop(ann);
    server.wait_stat("connections", 1);
    let closed = scrape(addr);
    assert_eq!(closed["chat_connections_closed_total{reason=\"eof\"}"], 1.0);
}

#[test]
fn bad_requests_get_4xx_and_the_chat_port_never_notices() {
    let server = metrics_server(1);
    let addr = server.metrics_addr().expect("metrics are on");
    let mut client = BinClient::named(server.addr, "ann");
    for (request, want) in [
        (&b"GET /nope HTTP/1.1\r\n\r\n"[..], 404),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
        (b"garbage\r\n\r\n", 400),
        (b"GET /metrics SPDY/9\r\n\r\n", 400),
        (b"\xff\xfe\r\n\r\n", 400),
    ] {
        let response = http(addr, request);
        assert_eq!(split(&response).0, want, "{request:?} -> {response:?}");
    }
    // A request head that never ends, and one far too long, are cut off.
    let (status, _) = split(&http(addr, &[b'a'; 20_000])).to_owned();
    assert_eq!(status, 400);
    let mut silent = TcpStream::connect(addr).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 400"),
        "a silent scraper is answered 400 after the timeout"
    );
    client.send(&Frame::Ping { token: 3 });
    assert_eq!(client.recv(), Frame::Pong { token: 3 });
    assert_eq!(server.stat("connections"), 1);
    assert_eq!(
        split(&http(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")).0,
        200
    );
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let server = TestServer::start();
    assert_eq!(server.metrics_addr(), None);
}

#[test]
fn the_operations_guide_lists_exactly_the_metrics_served() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/OPERATIONS.md"
    ))
    .expect("docs/OPERATIONS.md");
    let mut documented: Vec<String> = guide
        .lines()
        .filter_map(|line| line.strip_prefix("| `chat_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("chat_{name}"))
        .collect();
    documented.sort();
    let server = metrics_server(1);
    let addr = server.metrics_addr().expect("metrics are on");
    let response = http(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut served: Vec<String> = split(&response)
        .1
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some(if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            })
        })
        .collect();
    served.sort();
    assert_eq!(documented, served);
}
