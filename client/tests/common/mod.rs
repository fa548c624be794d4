//! Helpers for the client's end-to-end tests: the built `chat` binary with piped stdin,
//! stdout and stderr read by threads (so every wait has a timeout), the real server
//! in-process on 127.0.0.1:0, a scriptable fake server for what the real one never
//! sends (hostile text, refusals, abrupt closes), and a TCP [`Proxy`] that can cut
//! connections to make a network blip.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shared::{Frame, FrameDecoder};

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `chat` process in piped mode.
pub struct Chat {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    /// Every stdout line seen so far, for assertions and failure messages.
    pub seen: Vec<String>,
}

impl Chat {
    /// Starts `chat --addr ADDR ARGS...` with stdin, stdout and stderr piped.
    pub fn spawn(name: &str, addr: SocketAddr, args: &[&str]) -> Chat {
        Chat::spawn_at(name, &addr.to_string(), args)
    }

    /// [`Chat::spawn`] with `--addr` as given: a host name, or not an address at all.
    pub fn spawn_at(name: &str, addr: &str, args: &[&str]) -> Chat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .arg("--addr")
            .arg(addr)
            .args(args)
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            // Raw bytes, so a control character that slipped through is seen as is.
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Chat {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// Types one line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to chat");
        stdin.flush().unwrap();
    }

    /// Ends the input, as a script's end or Ctrl+D would.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no line containing {needle:?} within {TIMEOUT:?}; saw {:#?}",
                    self.name, self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: stdout closed before a line containing {needle:?}; saw {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// [`Chat::expect`], but a line already seen counts too.
    pub fn expect_seen(&mut self, needle: &str) -> String {
        match self.seen.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.expect(needle),
        }
    }

    /// Waits for the process to exit (its stdout closes first) and returns its status,
    /// with every remaining stdout line in `seen` and stderr returned.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        self.stdin = None;
        self.wait_exit()
    }

    /// [`Chat::finish`] with stdin left open: the process must end by itself.
    pub fn finish_by_itself(mut self) -> (ExitStatus, Vec<String>, String) {
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "{}: did not exit within {TIMEOUT:?}; saw {:#?}",
                        self.name, self.seen
                    );
                }
            }
        }
        let status = self.child.wait().expect("wait for chat");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, std::mem::take(&mut self.seen), stderr)
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A real server on its own thread; shut down and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    running: Option<server::Running>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// A server on `bind` (a port given by an earlier server, to restart it there),
    /// sharing the port with other servers that share it too if `share_port`.
    pub fn start_on(bind: SocketAddr, share_port: bool) -> Self {
        Self::with(|c| {
            c.bind = bind;
            c.share_port = share_port;
        })
    }

    /// A server whose configuration `adjust` changes first.
    pub fn with(adjust: impl FnOnce(&mut server::Config)) -> Self {
        let mut config = server::Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            log_interval: Duration::ZERO,
            ..server::Config::default()
        };
        adjust(&mut config);
        let running = server::Server::bind(config).expect("bind").spawn();
        TestServer {
            addr: running.local_addr(),
            running: Some(running),
        }
    }

    /// Shuts the server down and waits until `run` returns (dropping does the same).
    pub fn stop(&mut self) {
        self.running.take();
    }
}

/// A fake server that accepts one connection and runs `script` on it.
pub struct FakeServer {
    pub addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(script: impl FnOnce(FakeConn) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            script(FakeConn {
                stream,
                decoder: FrameDecoder::new(1 << 20),
            });
        });
        FakeServer {
            addr,
            thread: Some(thread),
        }
    }

    /// Waits for the script to finish; fails the test if it panicked.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("fake server script panicked");
        }
    }
}

/// The fake server's side of the connection.
pub struct FakeConn {
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl Drop for FakeConn {
    /// Closes like the real server: FIN first, then read and discard until the client's
    /// FIN (at most 2 s). Closing with unread input would make the kernel send a reset,
    /// which destroys frames the client has received but not read yet.
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 4096];
        while matches!(self.stream.read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl FakeConn {
    /// Reads the next frame; `None` at end of stream.
    pub fn recv(&mut self) -> Option<Frame> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = self.decoder.decode().expect("client sent a bad frame") {
                return Some(frame);
            }
            let n = self.stream.read(&mut buf).expect("read from client");
            if n == 0 {
                return None;
            }
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Reads frames until one matches `pred`, which it returns.
    pub fn recv_until(&mut self, pred: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            let frame = self
                .recv()
                .expect("client closed before the expected frame");
            if pred(&frame) {
                return frame;
            }
        }
    }

    pub fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        frame.encode(&mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// Expects `Hello` and answers `Welcome` with `nick`.
    pub fn handshake(&mut self, nick: &str) {
        let hello = self.recv().expect("hello");
        assert_eq!(
            hello,
            Frame::Hello {
                version: shared::PROTOCOL_VERSION
            }
        );
        self.send(&Frame::Welcome {
            version: shared::PROTOCOL_VERSION,
            max_frame: 1 << 20,
            nick: nick.to_owned(),
        });
    }
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`, forwarding bytes both ways, that
/// can cut every connection it carries (a network blip) and refuse new ones for a
/// while. Stopped on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    inner: Arc<ProxyInner>,
    thread: Option<JoinHandle<()>>,
}

struct ProxyInner {
    upstream: SocketAddr,
    /// While set, new connections are closed as soon as they are accepted.
    paused: AtomicBool,
    stop: AtomicBool,
    /// While set, a forwarder whose source ends does not pass the end on, so a
    /// connection cut on the client's side stays open on the server's.
    quiet: AtomicBool,
    /// Both sides (client, server) of every forwarded connection, to cut them.
    streams: Mutex<Vec<(TcpStream, TcpStream)>>,
    /// Server sides left open by [`Proxy::cut_client_side`].
    held: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(ProxyInner {
            upstream,
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            quiet: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&inner);
        let thread = thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                if shared.paused.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(shared.upstream) else {
                    continue;
                };
                shared
                    .streams
                    .lock()
                    .unwrap()
                    .push((client.try_clone().unwrap(), server.try_clone().unwrap()));
                forward(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Arc::clone(&shared),
                );
                forward(server, client, Arc::clone(&shared));
            }
        });
        Proxy {
            addr,
            inner,
            thread: Some(thread),
        }
    }

    /// Closes every connection carried so far, both sides, as a broken link would.
    pub fn cut(&self) {
        for (client, server) in self.inner.streams.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// Closes every connection carried so far on the client's side only: the server
    /// does not notice until [`Proxy::release`] (a client whose link died while the
    /// server still holds its old connection).
    pub fn cut_client_side(&self) {
        self.inner.quiet.store(true, Ordering::Release);
        let mut held = self.inner.held.lock().unwrap();
        for (client, server) in self.inner.streams.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            held.push(server);
        }
    }

    /// Closes the server sides [`Proxy::cut_client_side`] left open.
    pub fn release(&self) {
        for server in self.inner.held.lock().unwrap().drain(..) {
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// From now on, closes new connections at once (the server is unreachable).
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::Release);
    }

    /// Forwards new connections again.
    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the stop flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.cut();
        self.release();
    }
}

/// Copies `from` to `to` on a thread until `from` ends, then ends `to`'s sending side
/// (unless the proxy is quiet).
fn forward(mut from: TcpStream, mut to: TcpStream, proxy: Arc<ProxyInner>) {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        if !proxy.quiet.load(Ordering::Acquire) {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
}
