//! Real brokers for the tests: Debian's `redis-server` and `nats-server`, started on a
//! free port of 127.0.0.1 with nothing written to disk, and killed on drop.
//!
//! A broker that is not installed fails the test with what to install: CI installs
//! both (`.ci/run`), so a missing one must not pass as a skipped test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Nats,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::Redis => "redis-server",
            Kind::Nats => "nats-server",
        }
    }

    fn package(self) -> &'static str {
        self.program()
    }
}

/// A running broker process.
pub struct Broker {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
}

/// Where `program` is installed: on `PATH`, or in `/usr/sbin` (Debian puts
/// `nats-server` there, outside a normal user's `PATH`).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl Broker {
    /// Starts `kind` on a free loopback port and waits until it accepts connections.
    pub fn start(kind: Kind) -> Broker {
        Self::start_with(kind, &[])
    }

    /// [`Broker::start`] with `extra` arguments for the broker.
    pub fn start_with(kind: Kind, extra: &[&str]) -> Broker {
        let program = find(kind.program()).unwrap_or_else(|| {
            panic!(
                "{} is not installed: these tests run loadgen against the real broker \
                 (install Debian's {} package; .ci/run does)",
                kind.program(),
                kind.package()
            )
        });
        // The port may be taken between finding it free and the broker binding it: try
        // a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(&program);
            match kind {
                Kind::Redis => command.args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]),
                Kind::Nats => command.args(["-a", "127.0.0.1", "-p", &port.to_string()]),
            };
            let child = command
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
            let mut broker = Broker {
                kind,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child,
            };
            match broker.wait_listening() {
                Ok(()) => return broker,
                Err(e) => last = e,
            }
        }
        panic!("{} did not start: {last}", kind.program());
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("not listening after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Redis only: the text of the bulk-string reply to one command.
    fn redis_command(&self, command: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(command).expect("send to redis");
        // A bulk reply: `$LEN\r\n` then LEN bytes and CRLF.
        let mut reply = Vec::new();
        let mut chunk = [0u8; 64 << 10];
        loop {
            let n = stream.read(&mut chunk).expect("read from redis");
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n")
                && let Ok(len) = head.trim_start_matches('$').parse::<usize>()
                && body.len() >= len + 2
            {
                return body[..len].to_string();
            }
        }
    }

    /// Redis only: waits until `subscribers` connections are subscribed and at least
    /// one `PUBLISH` ran, so a load run against it is under way.
    pub fn wait_for_traffic(&self, subscribers: usize) {
        assert_eq!(self.kind, Kind::Redis);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let list = self.redis_command(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n");
            let subscribed = list.lines().filter(|l| l.contains(" sub=1 ")).count();
            let stats = self.redis_command(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n");
            if subscribed >= subscribers && stats.contains("cmdstat_publish:calls=") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{subscribed} of {subscribers} subscribed after 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
