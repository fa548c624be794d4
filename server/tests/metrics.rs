//! The metrics endpoint: scraped over real HTTP, parsed by the reference OpenMetrics
//! parser (Python's `prometheus_client`), values that move with traffic, and bad
//! requests that get 4xx without touching the chat port.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{BinClient, TIMEOUT, TestServer};
use shared::Frame;

/// Sends `request` raw and returns the whole response.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.write_all(request).expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    String::from_utf8(response).expect("utf-8 response")
}

/// The status code and body of a response.
fn split(response: &str) -> (u16, &str) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body)
}

/// Every sample of a scrape, `name{labels}` -> value, as the reference parser reads it.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = {
        let response = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let (status, body) = split(&response);
        (status, body.to_owned())
    };
    assert_eq!(status, 200);
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus_client, which .ci/run installs)");
    python
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed the parser");
    let out = python.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "the reference parser refused the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

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
