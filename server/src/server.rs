//! Binding the listener, the acceptor thread, starting the workers, and shutting down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::stats::CloseReason;
use crate::worker::{Shared, Worker, WorkerMsg, WorkerParts};

const LISTENER: Token = Token(0);
const ACCEPTOR_WAKER: Token = Token(1);

/// First pause after an accept error such as EMFILE; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts after errors.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Connections accepted past `--max-connections` that may wait at once to be told
/// so in their own framing; beyond it newcomers are closed without a word.
const MAX_REJECTING: usize = 256;

/// Starts a graceful shutdown of a running server. Cheap to clone and send.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    acceptor_waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Stops accepting, tells every client, flushes, and lets [`Server::run`] return.
    /// Calling it again does nothing more.
    pub fn shutdown(&self) {
        if self.shared.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.acceptor_waker.wake();
        for worker in &self.shared.workers {
            worker.wake_pending.store(true, Ordering::Release);
            let _ = worker.waker.wake();
        }
    }

    /// A snapshot of the server's counters, as `/stats` reports them.
    pub fn stats(&self) -> Vec<(String, u64)> {
        self.shared.stats.snapshot()
    }
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor_poll: Poll,
    acceptor_waker: Arc<Waker>,
    worker_parts: Vec<WorkerParts>,
}

/// A server running on its own thread (see [`Server::spawn`]). Dropping it shuts the
/// server down and waits for it to finish, unless the dropping thread is panicking.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its shutdown handle, which also reads its counters.
    pub fn handle(&self) -> &ShutdownHandle {
        &self.handle
    }

    /// Shuts the server down gracefully and waits up to `timeout` for it to finish.
    /// Fails if it returned an error, panicked, or is still running at the deadline
    /// (its thread is then left to finish on its own).
    pub fn stop(mut self, timeout: Duration) -> io::Result<()> {
        self.handle.shutdown();
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("server still running {timeout:?} after shutdown"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        thread
            .join()
            .map_err(|_| io::Error::other("server thread panicked"))?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take()
            && !std::thread::panicking()
        {
            let _ = thread.join();
        }
    }
}

impl Server {
    /// Binds the listener (SO_REUSEADDR, SO_REUSEPORT, the configured backlog) and
    /// prepares the workers; nothing runs until [`run`](Server::run).
    pub fn bind(config: Config) -> io::Result<Server> {
        if config.workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at least one worker is needed",
            ));
        }
        raise_fd_limit();
        let socket = Socket::new(
            Domain::for_address(config.bind),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&config.bind.into())?;
        socket.listen(i32::try_from(config.backlog).unwrap_or(i32::MAX))?;
        socket.set_nonblocking(true)?;
        let std_listener: std::net::TcpListener = socket.into();
        let local_addr = std_listener.local_addr()?;
        let mut listener = TcpListener::from_std(std_listener);

        let acceptor_poll = Poll::new()?;
        acceptor_poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let acceptor_waker = Arc::new(Waker::new(acceptor_poll.registry(), ACCEPTOR_WAKER)?);

        let (shared, worker_parts) = Shared::new(config)?;
        Ok(Server {
            listener,
            local_addr,
            shared,
            acceptor_poll,
            acceptor_waker,
            worker_parts,
        })
    }

    /// The address actually bound (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that shuts this server down from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
            acceptor_waker: Arc::clone(&self.acceptor_waker),
        }
    }

    /// Runs the server on a thread of its own, as tests and tools embed it.
    pub fn spawn(self) -> Running {
        let addr = self.local_addr;
        let handle = self.shutdown_handle();
        let thread = std::thread::spawn(move || self.run());
        Running {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Runs the acceptor and the workers until a shutdown completes.
    pub fn run(self) -> io::Result<()> {
        let config = &self.shared.config;
        tracing::info!(
            addr = %self.local_addr,
            workers = config.workers,
            max_connections = config.max_connections,
            max_frame = config.limits.max_frame,
            max_line = config.limits.max_line,
            max_pending = config.max_pending,
            rate_limit = config.rate_limit,
            rate_burst = config.rate_burst,
            idle_timeout_s = config.idle_timeout.as_secs_f64(),
            "server started"
        );
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for (index, (poll, rx)) in self.worker_parts.into_iter().enumerate() {
            let worker = Worker::new(index, Arc::clone(&self.shared), poll, rx);
            let thread = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || worker.run())?;
            threads.push(thread);
        }
        let acceptor = Acceptor {
            listener: self.listener,
            poll: self.acceptor_poll,
            shared: Arc::clone(&self.shared),
            next_worker: 0,
        };
        acceptor.run();
        let mut panicked = false;
        for thread in threads {
            panicked |= thread.join().is_err();
        }
        tracing::info!(
            closed_shutdown = self.shared.stats.closes(CloseReason::Shutdown),
            "server stopped"
        );
        if panicked {
            return Err(io::Error::other("a worker thread panicked"));
        }
        Ok(())
    }
}

/// Raises the soft open-files limit to the hard limit so `--max-connections` can be met.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}

/// Accepts connections and hands each to a worker.
struct Acceptor {
    listener: TcpListener,
    poll: Poll,
    shared: Arc<Shared>,
    next_worker: usize,
}

impl Acceptor {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut backoff: Option<Duration> = None;
        let log_interval = self.shared.config.log_interval;
        let mut next_log = Instant::now() + log_interval;
        let mut last = (0u64, 0u64, Instant::now());
        loop {
            let now = Instant::now();
            let mut timeout = backoff;
            if !log_interval.is_zero() {
                let until_log = next_log.saturating_duration_since(now);
                timeout = Some(timeout.map_or(until_log, |t| t.min(until_log)));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!("acceptor poll failed: {e}");
                break;
            }
            if self.shared.shutdown.load(Ordering::Acquire) {
                break;
            }
            backoff = self.accept_all(backoff);
            let now = Instant::now();
            if !log_interval.is_zero() && now >= next_log {
                last = self.log_summary(last, now);
                next_log = now + log_interval;
            }
        }
        tracing::info!("acceptor stopped");
    }

    /// Accepts until the listener would block. Returns the backoff to wait before the
    /// next attempt after an error, `None` when all went well.
    fn accept_all(&mut self, backoff: Option<Duration>) -> Option<Duration> {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    self.hand_off(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_peer_error(&e) => {}
                Err(e) => {
                    let next = backoff.map_or(MIN_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                    tracing::warn!("accept failed: {e}; retrying in {next:?}");
                    return Some(next);
                }
            }
        }
    }

    fn hand_off(&mut self, stream: mio::net::TcpStream, peer: SocketAddr) {
        let shared = Arc::clone(&self.shared);
        let open = shared.open.load(Ordering::Acquire);
        let reject = open >= shared.config.max_connections;
        if reject {
            if shared.rejecting.load(Ordering::Acquire) >= MAX_REJECTING {
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                return;
            }
            shared.rejecting.fetch_add(1, Ordering::AcqRel);
        } else {
            shared.open.fetch_add(1, Ordering::AcqRel);
        }
        let worker = self.pick_worker();
        let sent = shared.workers[worker].send(WorkerMsg::Accept {
            stream,
            peer,
            reject,
        });
        if sent.is_err() {
            tracing::error!(worker, "worker is gone; connection from {peer} dropped");
            let counter = if reject {
                &shared.rejecting
            } else {
                &shared.open
            };
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The least-loaded worker, scanning from a rotating start so ties spread evenly.
    fn pick_worker(&mut self) -> usize {
        let n = self.shared.workers.len();
        let start = self.next_worker;
        self.next_worker = (self.next_worker + 1) % n;
        (0..n)
            .map(|i| (start + i) % n)
            .min_by_key(|&w| {
                self.shared.stats.workers[w]
                    .connections
                    .load(Ordering::Relaxed)
            })
            .unwrap_or(0)
    }

    fn log_summary(&self, last: (u64, u64, Instant), now: Instant) -> (u64, u64, Instant) {
        let snapshot = self.shared.stats.snapshot();
        let get = |name: &str| {
            snapshot
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| *v)
        };
        let (msgs_in, msgs_out) = (get("messages_in"), get("messages_out"));
        let secs = now
            .saturating_duration_since(last.2)
            .as_secs_f64()
            .max(1e-3);
        tracing::info!(
            connections = get("connections"),
            in_per_s = ((msgs_in - last.0) as f64 / secs).round(),
            out_per_s = ((msgs_out - last.1) as f64 / secs).round(),
            total = get("connections_total"),
            "summary"
        );
        (msgs_in, msgs_out, now)
    }
}

/// Accept errors caused by one peer (it gave up before we accepted): skip it.
fn is_transient_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
