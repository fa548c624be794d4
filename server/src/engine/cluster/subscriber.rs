//! The node's subscribed connection to Redis: one thread reads the pushes (room
//! messages, direct messages) and hands them to a [`Handler`]; whoever needs a new
//! subscription writes the command on the same socket and waits for its confirmation.
//! A lost connection is made again with backoff, and everything wanted is subscribed
//! again.

use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::resp::{self, Value};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// What the subscriber hands its pushes to.
pub(super) trait Handler: Send + Sync {
    /// A message on `channel`.
    fn message(&self, channel: &str, payload: &[u8]);
    /// The subscription was lost and is back: messages in between were not seen.
    fn reconnected(&self);
}

/// Where to reach Redis and how to log in.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
}

#[derive(Debug, Default)]
struct Channels {
    /// Channels that should be subscribed.
    wanted: HashSet<String>,
    /// Channels Redis confirmed on the current connection.
    confirmed: HashSet<String>,
}

/// The subscribed connection (see the module docs).
#[derive(Debug)]
pub(super) struct Subscriber {
    endpoint: Endpoint,
    channels: Mutex<Channels>,
    confirmed: Condvar,
    /// The write side of the current connection.
    writer: Mutex<Option<TcpStream>>,
    up: AtomicBool,
    stop: AtomicBool,
}

impl Subscriber {
    pub(super) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            channels: Mutex::default(),
            confirmed: Condvar::new(),
            writer: Mutex::new(None),
            up: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    /// Whether the subscribed connection is up.
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Subscribes to `channel` and waits up to `wait` for Redis to confirm it. False if
    /// it was not confirmed in time (it stays wanted and is subscribed on reconnect).
    pub(super) fn subscribe(&self, channel: &str, wait: Duration) -> bool {
        let mut channels = self.channels.lock();
        if channels.confirmed.contains(channel) {
            return true;
        }
        if channels.wanted.insert(channel.to_owned()) {
            self.send(&[b"SUBSCRIBE", channel.as_bytes()]);
        }
        let deadline = Instant::now() + wait;
        while !channels.confirmed.contains(channel) {
            if self
                .confirmed
                .wait_until(&mut channels, deadline)
                .timed_out()
            {
                return channels.confirmed.contains(channel);
            }
        }
        true
    }

    /// Stops wanting `channel`.
    pub(super) fn unsubscribe(&self, channel: &str) {
        let mut channels = self.channels.lock();
        if channels.wanted.remove(channel) {
            channels.confirmed.remove(channel);
            self.send(&[b"UNSUBSCRIBE", channel.as_bytes()]);
        }
    }

    /// Whether [`Subscriber::stop`] was called.
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Ends [`Subscriber::run`] soon.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(stream) = self.writer.lock().take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn send(&self, args: &[&[u8]]) {
        let mut writer = self.writer.lock();
        if let Some(stream) = writer.as_mut()
            && let Err(e) = resp::write_command(stream, args)
        {
            tracing::debug!("cannot write to the subscribed Redis connection: {e}");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            *writer = None;
        }
    }

    /// Reads pushes until stopped, reconnecting as needed.
    pub(super) fn run(&self, handler: &dyn Handler) {
        let mut backoff = Duration::from_millis(50);
        let mut first = true;
        while !self.stop.load(Ordering::Acquire) {
            match self.connect() {
                Ok(reader) => {
                    backoff = Duration::from_millis(50);
                    if !first {
                        tracing::info!("subscribed Redis connection is back");
                        handler.reconnected();
                    }
                    first = false;
                    let error = self.read_pushes(reader, handler);
                    self.lose();
                    if !self.stop.load(Ordering::Acquire) {
                        tracing::warn!("subscribed Redis connection lost: {error}");
                    }
                }
                Err(e) => {
                    tracing::debug!("cannot subscribe to Redis: {e}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn connect(&self) -> std::io::Result<BufReader<TcpStream>> {
        let Endpoint {
            host,
            port,
            username,
            password,
        } = &self.endpoint;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        // The connection mostly waits: keepalives notice a Redis host that vanished
        // without a word (within about 8 s) instead of waiting forever.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(5))
            .with_interval(Duration::from_secs(1))
            .with_retries(3);
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
        let mut reader = BufReader::with_capacity(64 << 10, stream.try_clone()?);
        if let Some(password) = password {
            let mut writer = stream.try_clone()?;
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            resp::write_command(&mut writer, &args)?;
            writer.flush()?;
            if let Value::Error(e) = resp::read(&mut reader)? {
                return Err(std::io::Error::other(format!(
                    "Redis refused the login: {e}"
                )));
            }
        }
        let mut channels = self.channels.lock();
        channels.confirmed.clear();
        let mut writer = stream.try_clone()?;
        for channel in &channels.wanted {
            resp::write_command(&mut writer, &[b"SUBSCRIBE", channel.as_bytes()])?;
        }
        *self.writer.lock() = Some(writer);
        self.up.store(true, Ordering::Release);
        Ok(reader)
    }

    fn lose(&self) {
        self.up.store(false, Ordering::Release);
        if let Some(stream) = self.writer.lock().take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        self.channels.lock().confirmed.clear();
    }

    fn read_pushes(&self, mut reader: BufReader<TcpStream>, handler: &dyn Handler) -> String {
        loop {
            let value = match resp::read(&mut reader) {
                Ok(value) => value,
                Err(e) => return e.to_string(),
            };
            let Value::Array(items) = value else {
                if let Value::Error(e) = value {
                    return format!("Redis said {e}");
                }
                continue;
            };
            let mut items = items.into_iter();
            let (Some(Value::Bulk(kind)), Some(Value::Bulk(channel))) =
                (items.next(), items.next())
            else {
                continue;
            };
            let channel = String::from_utf8_lossy(&channel);
            match (kind.as_slice(), items.next()) {
                (b"message", Some(Value::Bulk(payload))) => handler.message(&channel, &payload),
                (b"subscribe", _) => {
                    let mut channels = self.channels.lock();
                    if channels.wanted.contains(channel.as_ref()) {
                        channels.confirmed.insert(channel.into_owned());
                        self.confirmed.notify_all();
                    }
                }
                _ => {}
            }
        }
    }
}
