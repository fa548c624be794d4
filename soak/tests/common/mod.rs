//! Helpers: an in-process server on 127.0.0.1:0 that is shut down and joined on drop,
//! a hostile config aimed at it, and the built `hostile` binary.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use server::{Config, Running, Server, ShutdownHandle};
use soak::{HostileConfig, Kind};

/// Longest any wait in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub addr: std::net::SocketAddr,
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

    pub fn stat(&self, name: &str) -> u64 {
        self.handle
            .stats()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no stat {name}"))
    }

    /// Waits until `pred(stat)` holds.
    pub fn wait_stat(&self, name: &str, pred: impl Fn(u64) -> bool) {
        let start = Instant::now();
        while !pred(self.stat(name)) {
            assert!(
                start.elapsed() < TIMEOUT,
                "{name} stuck at {}; all: {:?}",
                self.stat(name),
                self.handle.stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Shuts down, waits for `run` to return, and fails the test if it erred or hung.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop(TIMEOUT).expect("server stopped cleanly");
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

/// `connections` clients of `kinds`, each connecting once, for `duration`.
pub fn once(
    server: &TestServer,
    kinds: &[Kind],
    connections: usize,
    duration: Duration,
) -> HostileConfig {
    HostileConfig {
        addr: server.addr,
        connections,
        kinds: kinds.to_vec(),
        duration,
        cycle: false,
        grace: Duration::from_secs(5),
        answer_timeout: Duration::from_secs(10),
        ..HostileConfig::default()
    }
}

/// What a finished `hostile` process left: its exit code, stdout and stderr.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The only line on stderr; fails the test if there are none or several.
    pub fn stderr_line(&self) -> &str {
        let mut lines = self.stderr.lines();
        match (lines.next(), lines.next()) {
            (Some(line), None) => line,
            _ => panic!("expected one line on stderr, got {:?}", self.stderr),
        }
    }
}

/// Runs the built `hostile` with `args` and waits for it.
pub fn run_hostile(args: &[&str]) -> Finished {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hostile"))
        .args(args)
        .output()
        .expect("run hostile");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A 127.0.0.1 port nobody listens on: bound, noted, released.
pub fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
