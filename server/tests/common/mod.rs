//! Helpers for end-to-end tests: an in-process server on 127.0.0.1:0, blocking binary
//! and text clients with timeouts, so a broken server fails a test instead of hanging
//! it, and a scrape of the metrics endpoint read by the reference OpenMetrics parser.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use server::{Config, Running, Server, ShutdownHandle};
use shared::{Frame, FrameDecoder, PROTOCOL_VERSION};

/// How long any single wait in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A server running on its own thread; shut down and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    running: Option<Running>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            log_interval: Duration::ZERO,
            ..Config::default()
        };
        adjust(&mut config);
        let running = Server::bind(config).expect("bind").spawn();
        Self {
            addr: running.local_addr(),
            handle: running.handle().clone(),
            running: Some(running),
        }
    }

    /// Shuts down and waits for `run` to return; fails the test if it errs or hangs.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop(TIMEOUT).expect("server stopped cleanly");
        }
    }

    /// The metrics endpoint's address, when the config asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().and_then(Running::metrics_addr)
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.handle
            .stats()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no stat {name}"))
    }

    /// Waits until `stat` reaches `value`.
    pub fn wait_stat(&self, name: &str, value: u64) {
        let start = Instant::now();
        while self.stat(name) != value {
            assert!(
                start.elapsed() < TIMEOUT,
                "stat {name} stayed {} (wanted {value})",
                self.stat(name)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // While a test panics, `Running`'s own drop only starts the shutdown.
        if !std::thread::panicking() {
            self.stop_inner();
        }
    }
}

/// A blocking binary-protocol client.
pub struct BinClient {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    pub nick: String,
}

impl BinClient {
    /// Connects without saying hello.
    pub fn connect_raw(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            decoder: FrameDecoder::new(usize::MAX >> 1),
            nick: String::new(),
        }
    }

    /// Connects and completes the Hello/Welcome handshake.
    pub fn connect(addr: SocketAddr) -> Self {
        let mut client = Self::connect_raw(addr);
        client.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
        });
        match client.recv() {
            Frame::Welcome { version, nick, .. } => {
                assert_eq!(version, PROTOCOL_VERSION);
                client.nick = nick;
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
        client
    }

    /// Connects, says hello, takes `nick`.
    pub fn named(addr: SocketAddr, nick: &str) -> Self {
        let mut client = Self::connect(addr);
        client.send(&Frame::SetNick {
            nick: nick.to_owned(),
        });
        client.expect(|f| matches!(f, Frame::NickChanged { new, .. } if new == nick));
        client.nick = nick.to_owned();
        client
    }

    pub fn send(&mut self, frame: &Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).unwrap();
        self.stream.write_all(&buf).expect("send");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// The next frame; fails the test on timeout, EOF or a decode error.
    pub fn recv(&mut self) -> Frame {
        self.try_recv().unwrap_or_else(|e| panic!("recv: {e}"))
    }

    /// The next frame, or why there is none (EOF, timeout, decode error).
    pub fn try_recv(&mut self) -> Result<Frame, String> {
        let mut buf = [0u8; 64 << 10];
        loop {
            match self.decoder.decode() {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(format!("decode error: {e}")),
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("eof".to_owned()),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// Receives frames until one matches, skipping others; returns it.
    pub fn expect(&mut self, want: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            let frame = self.recv();
            if want(&frame) {
                return frame;
            }
        }
    }

    /// Skips everything until the server closes the connection; returns what came.
    pub fn drain_until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.try_recv() {
                Ok(frame) => frames.push(frame),
                Err(e) if e == "eof" || e.contains("reset") => return frames,
                Err(e) => panic!("expected close, got {e}"),
            }
        }
    }

    /// Joins `room`; returns the id of its latest message at the join.
    pub fn join(&mut self, room: &str) -> u64 {
        self.send(&Frame::Join {
            room: room.to_owned(),
            since: None,
        });
        let nick = self.nick.clone();
        match self.expect(
            |f| matches!(f, Frame::Joined { room: r, nick: n, .. } if r.eq_ignore_ascii_case(room) && *n == nick),
        ) {
            Frame::Joined { last, .. } => last,
            other => unreachable!("{other:?}"),
        }
    }

    pub fn close_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A blocking text-mode client.
pub struct TextClient {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub nick: String,
}

impl TextClient {
    /// Connects and sends an empty line so the server greets (it speaks after the
    /// first byte); consumes the welcome and the lobby join.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut client = Self {
            stream,
            reader,
            nick: String::new(),
        };
        client.send_line("");
        let welcome = client.line();
        let nick = welcome
            .strip_prefix("* welcome, you are ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected welcome {welcome:?}"))
            .to_owned();
        client.nick = nick;
        let joined = client.line();
        assert!(joined.starts_with("[lobby] * "), "{joined:?}");
        client
    }

    pub fn send_line(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("send line");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// The next line without its newline; fails the test on timeout or EOF.
    pub fn line(&mut self) -> String {
        self.try_line().unwrap_or_else(|| panic!("no line (eof)"))
    }

    pub fn try_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                assert!(line.ends_with('\n'), "torn line {line:?}");
                line.pop();
                Some(line)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read line: {e}"),
        }
    }

    /// Reads lines until one satisfies `want`; returns it.
    pub fn expect(&mut self, want: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.line();
            if want(&line) {
                return line;
            }
        }
    }

    /// Reads until EOF; returns the lines seen.
    pub fn drain_until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_line() {
            lines.push(line);
        }
        lines
    }
}

/// Sends `request` raw and returns the whole response.
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.write_all(request).expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    String::from_utf8(response).expect("utf-8 response")
}

/// The status code and body of a response.
pub fn split(response: &str) -> (u16, &str) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body)
}

/// Every sample of a scrape, `name{labels}` -> value, as the reference parser reads it.
pub fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
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
