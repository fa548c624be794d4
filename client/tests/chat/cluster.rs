//! The client against a cluster of two nodes sharing a real `redis-server` (started on
//! a free loopback port with persistence off): when its node goes away, it moves to
//! the other node listed in `--addr` and resumes its room there.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Chat, TestServer};

/// A `redis-server` of this test's own, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(redis: &Redis, name: &str) -> TestServer {
    let mut cluster = server::ClusterConfig::new(format!("redis://127.0.0.1:{}", redis.port));
    cluster.node_name = name.to_owned();
    TestServer::with(|config| config.cluster = Some(cluster))
}

#[test]
fn a_client_moves_to_another_node_and_misses_nothing() {
    let redis = Redis::start();
    let mut first = node(&redis, "first");
    let second = node(&redis, "second");
    let addrs = format!("{},{}", first.addr, second.addr);
    let mut reader = Chat::spawn_at("reader", &addrs, &["--nick", "reader"]);
    reader.expect("[lobby] * reader joined");
    let mut writer = Chat::spawn("writer", second.addr, &["--nick", "writer"]);
    writer.expect("[lobby] * writer joined");
    for i in 1..=10 {
        writer.send(&format!("m{i}"));
    }
    reader.expect("<writer> m10");
    first.stop();
    reader.expect("reconnecting in");
    for i in 11..=20 {
        writer.send(&format!("m{i}"));
    }
    writer.expect("<writer> m20");
    let back = reader.expect("* reconnected, ");
    assert!(!back.contains("history not available"), "{back}");
    reader.expect_seen("<writer> m20");
    let (status, stdout, stderr) = reader.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    let said: Vec<&str> = stdout
        .iter()
        .filter_map(|l| l.strip_prefix("[lobby] <writer> "))
        .collect();
    let expected: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    assert_eq!(
        said, expected,
        "every message once and in order: {stdout:#?}"
    );
}
