//! Binding the listener, starting the acceptor and the workers, and shutting down:
//! [`Server`], [`Running`] and [`ShutdownHandle`].

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::acceptor::{ACCEPTOR_WAKER, Acceptor, LISTENER};
use crate::accounts::{AccountStore, AccountsError};
use crate::config::Config;
use crate::metrics::MetricsEndpoint;
use crate::stats::CloseReason;
use crate::tls::{CertStore, TlsError};
use crate::worker::{Shared, Worker, WorkerParts};

/// Starts a graceful shutdown of a running server. Cheap to clone and send.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting, tells every client, flushes, and lets [`Server::run`] return.
    /// Calling it again does nothing more.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// Reads the TLS certificate and key again: handshakes from now on use them,
    /// sessions already open keep theirs. On failure the certificate in use stays.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.shared.tls {
            Some(store) => store.reload(),
            None => Err(TlsError::NotEnabled),
        }
    }

    /// Reads the accounts file again: logins and nick checks from now on use it;
    /// sessions already logged in stay so. On failure (the error names the line) the
    /// accounts in use stay. Returns how many accounts the file holds (0 without
    /// `--accounts`).
    pub fn reload_accounts(&self) -> Result<usize, AccountsError> {
        self.shared.logins.store.reload()
    }

    /// Whether the server was started with an accounts file.
    pub fn has_accounts(&self) -> bool {
        self.shared.logins.store.is_enabled()
    }

    /// A snapshot of the server's counters, as `/stats` reports them.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let mut stats = self.shared.stats.snapshot();
        let extra = self.shared.engine.extra_stats();
        stats.extend(extra.into_iter().map(|s| (s.name.to_owned(), s.value)));
        stats
    }
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor_poll: Poll,
    worker_parts: Vec<WorkerParts>,
    metrics: Option<MetricsEndpoint>,
}

/// A server running on its own thread (see [`Server::spawn`]). Dropping it shuts the
/// server down and waits for it to finish, unless the dropping thread is panicking.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of its metrics endpoint, with `--metrics`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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
        let result = self.wait(timeout);
        // Past the deadline the thread is let go rather than joined on drop.
        self.thread = None;
        result
    }

    /// Waits up to `timeout` for the server to finish by itself (after a shutdown, or
    /// after a failure that made it shut itself down) and returns what it returned. At
    /// the deadline it fails with `TimedOut` and the server keeps running.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("server still running after {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("server thread panicked"))?,
            None => Ok(()),
        }
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
    ///
    /// Unless `config.share_port` is set, an address that another listener already
    /// holds is refused with [`io::ErrorKind::AddrInUse`], although SO_REUSEPORT would
    /// let the kernel split the newcomers between two servers that know nothing of
    /// each other.
    pub fn bind(config: Config) -> io::Result<Server> {
        if config.workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at least one worker is needed",
            ));
        }
        // A missing or bad certificate is reported before anything is bound.
        let tls = match &config.tls {
            Some(files) => Some(
                CertStore::load(files.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let accounts = AccountStore::open(config.accounts.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        raise_fd_limit();
        if !config.share_port && config.bind.port() != 0 {
            ensure_address_free(config.bind)?;
        }
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

        let (metrics, metrics_waker) = match config.metrics {
            Some(addr) => {
                let (endpoint, waker) = MetricsEndpoint::bind(addr)?;
                (Some(endpoint), Some(waker))
            }
            None => (None, None),
        };
        let (shared, worker_parts) =
            Shared::new(config, tls, accounts, acceptor_waker, metrics_waker)?;
        Ok(Server {
            listener,
            local_addr,
            shared,
            acceptor_poll,
            worker_parts,
            metrics,
        })
    }

    /// The address actually bound (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics endpoint (with the real port when bound to port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsEndpoint::local_addr)
    }

    /// A handle that shuts this server down from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs the server on a thread of its own, as tests and tools embed it.
    pub fn spawn(self) -> Running {
        let addr = self.local_addr;
        let metrics_addr = self.metrics_addr();
        let handle = self.shutdown_handle();
        let thread = std::thread::spawn(move || self.run());
        Running {
            addr,
            metrics_addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Runs the acceptor and the workers until a shutdown completes. Fails if a worker
    /// or the acceptor stopped while the server ran (the server then shut itself down
    /// gracefully first): a process manager should restart it.
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
            tls = config.tls.is_some(),
            "server started"
        );
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut workers = self.worker_parts.into_iter().enumerate();
        for (index, parts) in workers.by_ref() {
            let worker = Worker::new(index, Arc::clone(&self.shared), parts);
            let spawned = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                // A failure is recorded by the worker itself (or its drop guard).
                .spawn(move || {
                    let _ = worker.run();
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // The worker was dropped with its closure, which started the
                    // shutdown; the ones never built are counted quiet the same way.
                    self.shared
                        .fail(format!("cannot start worker {index}: {e}"));
                    for (index, parts) in workers.by_ref() {
                        drop(Worker::new(index, Arc::clone(&self.shared), parts));
                    }
                    Self::join(&self.shared, threads);
                    return Err(e);
                }
            }
        }
        // The metrics thread only reads counters; it stops when the shutdown wakes it.
        let metrics = match self.metrics {
            Some(endpoint) => {
                let shared = Arc::clone(&self.shared);
                let spawned = std::thread::Builder::new()
                    .name("metrics".to_owned())
                    .spawn(move || endpoint.run(shared));
                match spawned {
                    Ok(thread) => Some(thread),
                    Err(e) => {
                        self.shared
                            .fail(format!("cannot start the metrics thread: {e}"));
                        None
                    }
                }
            }
            None => None,
        };
        let acceptor = Acceptor {
            listener: self.listener,
            poll: self.acceptor_poll,
            shared: Arc::clone(&self.shared),
            next_worker: 0,
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| acceptor.run())) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.shared.fail(format!("acceptor poll failed: {e}")),
            Err(_) => self.shared.fail("acceptor panicked".to_owned()),
        }
        Self::join(&self.shared, threads);
        if let Some(thread) = metrics {
            let _ = thread.join();
        }
        tracing::info!(
            closed_shutdown = self.shared.stats.closes(CloseReason::Shutdown),
            "server stopped"
        );
        match self.shared.failure() {
            Some(cause) => Err(io::Error::other(cause)),
            None => Ok(()),
        }
    }
}

impl Server {
    /// Joins the worker threads; one that panicked (whatever the phase) is a failure.
    fn join(shared: &Shared, threads: Vec<JoinHandle<()>>) {
        for thread in threads {
            if let Err(panic) = thread.join() {
                let name = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                shared.fail(format!("a worker panicked: {name}"));
            }
        }
        // Workers are gone: the engine's own threads (a cluster's) may stop too.
        shared.engine.stop();
    }
}

/// Fails with `AddrInUse` if another socket listens on `addr`: a probe bound without
/// SO_REUSEPORT conflicts with any listener there, SO_REUSEPORT or not.
fn ensure_address_free(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "address {addr} is in use by another listener (--share-port shares it on purpose)"
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Raises the soft open-files limit to the hard limit so `--max-connections` can be met.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;

    use shared::{Frame, FrameDecoder, PROTOCOL_VERSION};

    use super::*;

    /// A binary client past its Hello; returns the stream.
    fn client(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
        };
        stream
            .write_all(&hello.to_bytes().expect("encode"))
            .expect("send hello");
        stream
    }

    /// Every frame until the server closes the connection.
    fn frames_until_closed(mut stream: TcpStream) -> Vec<Frame> {
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut frames = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => decoder.feed(&buf[..n]),
            }
            while let Ok(Some(frame)) = decoder.decode() {
                frames.push(frame);
            }
        }
        frames
    }

    #[test]
    fn a_panicking_worker_shuts_the_whole_server_down_and_run_fails() {
        let config = Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 2,
            ..Config::default()
        };
        let running = Server::bind(config).expect("bind").spawn();
        let shared = Arc::clone(&running.handle().shared);
        // The least-loaded hand-off puts one client on each worker.
        let a = client(running.local_addr());
        let b = client(running.local_addr());
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.engine.counts().users < 2 {
            assert!(Instant::now() < deadline, "clients never registered");
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.panic_worker.store(1, Ordering::Release);
        shared.workers[0].wake();
        let mut running = running;
        let result = running.wait(Duration::from_secs(20));
        let err = result.expect_err("a dead worker makes run fail");
        assert!(err.to_string().contains("worker 0 panicked"), "{err}");
        // The client of the surviving worker was told and closed, not left hanging.
        let (a, b) = (frames_until_closed(a), frames_until_closed(b));
        let told = |frames: &[Frame]| frames.iter().any(|f| matches!(f, Frame::Shutdown { .. }));
        assert!(told(&a) || told(&b), "{a:?} {b:?}");
        assert_eq!(shared.admission.open(), 0, "every permit was released");
    }
}
