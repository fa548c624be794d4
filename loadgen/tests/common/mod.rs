//! Helpers shared by the integration tests: small misbehaving echo servers, quick load
//! configurations, access to the built binary, and real brokers (`brokers`).

#![allow(dead_code, unreachable_pub)]

pub mod brokers;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loadgen::{Config, Protocol, RunReport, StopSignal};
use shared::{Frame, FrameDecoder, LineDecoder, PROTOCOL_VERSION};

/// What a [`TestServer`] does wrong. `n` counts echo requests per connection from 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Echo everything faithfully.
    None,
    /// Answer nothing from `after` past the first echo request for `length`, then catch
    /// up (requests keep queueing in the socket meanwhile).
    Stall { after: Duration, length: Duration },
    /// Never answer every `every`-th request.
    Drop { every: u64 },
    /// Answer every `every`-th request twice.
    Duplicate { every: u64 },
    /// Hold the answer to every `every`-th request until after the next answer.
    Reorder { every: u64 },
    /// Change one payload byte of the answer to every `every`-th request.
    Corrupt { every: u64 },
    /// Answer the first `after` requests, then close the connection (the last answer
    /// and the FIN arrive together).
    Close { after: u64 },
}

/// How often the server actually misbehaved.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub echoes: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    /// Held answers sent after a later one.
    pub reordered: AtomicU64,
    pub corrupted: AtomicU64,
}

/// An echo server on 127.0.0.1 that speaks just enough of the chat protocol for
/// loadgen's echo scenario (binary `Hello`/`Echo`, or plain lines when the first byte is
/// not 0x00), with an optional [`Fault`].
pub struct TestServer {
    pub addr: SocketAddr,
    pub counts: Arc<FaultCounts>,
    /// When the first echo request (over all connections) was answered.
    pub first_echo: Arc<OnceLock<Instant>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FaultCounts::default());
        let first_echo: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
        let accept = {
            let stop = Arc::clone(&stop);
            let counts = Arc::clone(&counts);
            let first_echo = Arc::clone(&first_echo);
            std::thread::spawn(move || {
                let conns: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let counts = Arc::clone(&counts);
                    let first_echo = Arc::clone(&first_echo);
                    let stop = Arc::clone(&stop);
                    let handle = std::thread::spawn(move || {
                        let _ = serve(stream, fault, &counts, &first_echo, &stop);
                    });
                    if let Ok(mut c) = conns.lock() {
                        c.push(handle);
                    }
                }
                if let Ok(mut c) = conns.lock() {
                    for handle in c.drain(..) {
                        let _ = handle.join();
                    }
                }
            })
        };
        Self {
            addr,
            counts,
            first_echo,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A reply about to be written, and whether it stands for a held (reordered) one.
struct Replies {
    held: Option<Vec<u8>>,
}

fn serve(
    mut stream: TcpStream,
    fault: Fault,
    counts: &FaultCounts,
    first_echo: &OnceLock<Instant>,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // A short read timeout releases held replies and notices the stop flag.
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut frames: Option<FrameDecoder> = None;
    let mut lines: Option<LineDecoder> = None;
    let mut buf = vec![0u8; 64 << 10];
    let mut n: u64 = 0;
    let mut replies = Replies { held: None };
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let read = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // Nothing more came: a held reply goes out in order after all.
                if let Some(held) = replies.held.take() {
                    stream.write_all(&held)?;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let data = &buf[..read];
        if frames.is_none() && lines.is_none() {
            if data[0] == 0 {
                frames = Some(FrameDecoder::new(shared::DEFAULT_MAX_FRAME));
            } else {
                lines = Some(LineDecoder::new(1 << 20));
            }
        }
        // Each reply with the number of the echo request it answers (0: not an echo).
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        if let Some(d) = &mut frames {
            d.feed(data);
            while let Ok(Some(frame)) = d.decode() {
                match frame {
                    Frame::Hello { .. } => out.push((
                        0,
                        encode(&Frame::Welcome {
                            version: PROTOCOL_VERSION,
                            max_frame: shared::DEFAULT_MAX_FRAME as u32,
                            nick: "guest-1".into(),
                        }),
                    )),
                    // Shorter than any stamp: loadgen's clock-offset probe, answered
                    // at once and not counted as load.
                    Frame::Echo { payload } if payload.len() < 32 => out.push((
                        0,
                        encode(&Frame::EchoReply {
                            server_time_ns: shared::time::unix_nanos(),
                            payload,
                        }),
                    )),
                    Frame::Echo { payload } => {
                        n += 1;
                        let mut payload = payload.to_vec();
                        if matches!(fault, Fault::Corrupt { every } if n.is_multiple_of(every))
                            && let Some(last) = payload.last_mut()
                        {
                            *last ^= 0x01;
                        }
                        out.push((
                            n,
                            encode(&Frame::EchoReply {
                                server_time_ns: shared::time::unix_nanos(),
                                payload: payload.into(),
                            }),
                        ));
                    }
                    Frame::Goodbye { .. } => return Ok(()),
                    _ => {}
                }
            }
        } else if let Some(d) = &mut lines {
            d.feed(data);
            while let Ok(Some(line)) = d.decode() {
                n += 1;
                let mut line = line.into_bytes();
                if matches!(fault, Fault::Corrupt { every } if n.is_multiple_of(every))
                    && let Some(last) = line.last_mut()
                {
                    *last = if *last == b'a' { b'b' } else { b'a' };
                }
                line.push(b'\n');
                out.push((n, line));
            }
        }
        for (n, reply) in out {
            apply_fault(
                &mut stream,
                reply,
                fault,
                n,
                counts,
                first_echo,
                &mut replies,
            )?;
            if matches!(fault, Fault::Close { after } if n == after) {
                stream.shutdown(Shutdown::Both)?;
                return Ok(());
            }
        }
    }
}

fn encode(frame: &Frame) -> Vec<u8> {
    frame.to_bytes().expect("test frames encode").to_vec()
}

fn apply_fault(
    stream: &mut TcpStream,
    reply: Vec<u8>,
    fault: Fault,
    n: u64,
    counts: &FaultCounts,
    first_echo: &OnceLock<Instant>,
    replies: &mut Replies,
) -> io::Result<()> {
    if n == 0 {
        return stream.write_all(&reply);
    }
    counts.echoes.fetch_add(1, Ordering::Relaxed);
    first_echo.get_or_init(Instant::now);
    let hit = |every: u64| n.is_multiple_of(every);
    match fault {
        Fault::None => stream.write_all(&reply)?,
        Fault::Stall { after, length } => {
            let first = *first_echo.get_or_init(Instant::now);
            let (from, until) = (first + after, first + after + length);
            let now = Instant::now();
            if now >= from && now < until {
                std::thread::sleep(until - now);
            }
            stream.write_all(&reply)?;
        }
        Fault::Drop { every } if hit(every) => {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Fault::Duplicate { every } if hit(every) => {
            counts.duplicated.fetch_add(1, Ordering::Relaxed);
            // Both copies in one write, so they arrive together: a copy arriving after
            // loadgen's drain ended could not be counted.
            stream.write_all(&[reply.as_slice(), reply.as_slice()].concat())?;
        }
        Fault::Reorder { every } if hit(every) => {
            if let Some(held) = replies.held.replace(reply) {
                stream.write_all(&held)?;
            }
            return Ok(());
        }
        Fault::Corrupt { every } if hit(every) => {
            counts.corrupted.fetch_add(1, Ordering::Relaxed);
            stream.write_all(&reply)?;
        }
        _ => stream.write_all(&reply)?,
    }
    if let Some(held) = replies.held.take() {
        counts.reordered.fetch_add(1, Ordering::Relaxed);
        stream.write_all(&held)?;
    }
    Ok(())
}

/// A fresh, empty directory for one test's result files (under the target directory,
/// replaced on every run, so nothing piles up).
pub fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("loadgen-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test output dir");
    dir
}

/// A small, short configuration: `clients` clients at `rate`/s for `secs` seconds, no
/// warmup, results in `out`.
pub fn quick_config(addr: SocketAddr, clients: u32, rate: f64, secs: u64, out: &Path) -> Config {
    Config {
        addrs: vec![addr],
        clients,
        rate,
        duration: Duration::from_secs(secs),
        warmup: Duration::ZERO,
        grace: Duration::from_secs(2),
        threads: 2,
        protocol: Protocol::Binary,
        out: out.to_path_buf(),
        progress: false,
        ..Config::default()
    }
}

/// Runs `config` to the end.
pub fn run(config: &Config) -> RunReport {
    loadgen::run(config, &StopSignal::new()).expect("load run succeeds")
}

/// Asserts a measured rate is within `tolerance` (a fraction) of `target`.
pub fn assert_rate_near(rate: f64, target: f64, tolerance: f64) {
    assert!(
        (rate - target).abs() <= target * tolerance,
        "rate {rate:.2}/s is not within {:.1}% of {target:.2}/s",
        tolerance * 100.0
    );
}

/// Path of the built `loadgen` binary.
pub fn loadgen_bin() -> &'static str {
    env!("CARGO_BIN_EXE_loadgen")
}

/// What a finished `loadgen` process left: its exit code, stdout and stderr.
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

/// Runs the built `loadgen` with `args` in a scratch directory (a run that should have
/// been refused writes its results there, not into the source tree) and waits for it.
pub fn run_loadgen(args: &[&str]) -> Finished {
    let output = std::process::Command::new(loadgen_bin())
        .args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run loadgen");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The real chat server on 127.0.0.1, two workers; shut down and joined on drop.
pub fn real_server() -> server::Running {
    let config = server::Config {
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        ..server::Config::default()
    };
    server::Server::bind(config).expect("bind server").spawn()
}

/// Shuts a TCP stream both ways, ignoring errors.
pub fn close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}
