//! `--metrics ADDR`: the server's counters in the OpenMetrics text format (which
//! Prometheus scrapes) on `GET /metrics`, served by a thread of its own so scrapes never slow the workers. The
//! thread only reads the workers' atomic counters; the format is written by the
//! `prometheus-client` crate. No label takes a value a user controls (workers, close
//! reasons and refusal kinds are fixed sets).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::stats::{CloseReason, FANOUT_BUCKETS};
use crate::worker::Shared;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Longest request head the endpoint reads.
const MAX_REQUEST: usize = 8 << 10;

/// How long one scrape may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The bound metrics listener, before its thread runs.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    listener: TcpListener,
    poll: Poll,
    local_addr: SocketAddr,
}

impl MetricsEndpoint {
    /// Binds `addr`; returns the endpoint and the waker that stops its thread.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<(Self, Arc<Waker>)> {
        let mut listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("metrics address {addr}: {e}")))?;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let endpoint = Self {
            listener,
            poll,
            local_addr,
        };
        Ok((endpoint, waker))
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Answers scrapes, one at a time, until the server shuts down.
    pub(crate) fn run(mut self, shared: Arc<Shared>) {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ServerMetrics {
            shared: Arc::clone(&shared),
        }));
        let mut events = Events::with_capacity(16);
        while !shared.shutting_down() {
            if let Err(e) = self.poll.poll(&mut events, None)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::warn!("metrics endpoint stopped: {e}");
                return;
            }
            loop {
                match self.listener.accept() {
                    Ok((stream, _)) => serve(std::net::TcpStream::from(stream), &registry),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("metrics accept failed: {e}");
                        break;
                    }
                }
            }
        }
    }
}

/// Answers one HTTP request: `GET /metrics` with the exposition, a wrong path with
/// 404, anything else with 400 or 405. Errors only affect this connection.
fn serve(mut stream: std::net::TcpStream, registry: &Registry) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let (status, body) = match read_head(&mut stream) {
        Some(head) => respond(&head, registry),
        None => (400, "bad request\n".to_owned()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let content_type = if status == 200 {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The request head (up to the blank line), if one arrives within the limits.
fn read_head(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

/// Status and body for a request head.
fn respond(head: &str, registry: &Registry) -> (u16, String) {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return (400, "bad request\n".to_owned());
    };
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return (400, "bad request\n".to_owned());
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return (404, "not found; try /metrics\n".to_owned());
    }
    if method != "GET" {
        return (405, "only GET\n".to_owned());
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => (200, body),
        Err(_) => (400, "cannot encode\n".to_owned()),
    }
}

/// Reads the server's counters on each scrape.
#[derive(Debug)]
struct ServerMetrics {
    shared: Arc<Shared>,
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One metric with a value per label value: `(label value, value)`.
fn family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    label: &str,
    values: &[(String, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (value_label, value) in values {
        let labels = [(label, value_label.as_str())];
        let encoder = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(*value).encode(encoder)?,
            _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(encoder)?,
        }
    }
    Ok(())
}

impl Collector for ServerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.shared.stats;
        let e = &mut encoder;
        let per_worker = |f: &dyn Fn(&crate::stats::WorkerStats) -> u64| -> Vec<(String, u64)> {
            stats
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| (i.to_string(), f(w)))
                .collect()
        };
        family(
            e,
            "chat_connections",
            "Connections open, per worker.",
            MetricType::Gauge,
            "worker",
            &per_worker(&|w| w.connections.load(Relaxed)),
        )?;
        counter(
            e,
            "chat_connections_accepted",
            "Connections accepted and handed to a worker.",
            stats.sum(|w| &w.accepted),
        )?;
        let refused = vec![
            (
                "server_full".to_owned(),
                stats.refused.load(Relaxed) + stats.closes(CloseReason::ServerFull),
            ),
            ("accept_error".to_owned(), stats.accept_errors.load(Relaxed)),
        ];
        family(
            e,
            "chat_connections_refused",
            "Connections turned away, by reason.",
            MetricType::Counter,
            "reason",
            &refused,
        )?;
        let closes: Vec<(String, u64)> = CloseReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), stats.closes(*r)))
            .collect();
        family(
            e,
            "chat_connections_closed",
            "Connections closed, by reason (slow_consumer: closed for not reading).",
            MetricType::Counter,
            "reason",
            &closes,
        )?;
        counter(
            e,
            "chat_messages_received",
            "Frames and lines received.",
            stats.sum(|w| &w.messages_in),
        )?;
        counter(
            e,
            "chat_messages_sent",
            "Frames and lines queued for sending.",
            stats.sum(|w| &w.messages_out),
        )?;
        counter(
            e,
            "chat_received_bytes",
            "Bytes read from sockets.",
            stats.sum(|w| &w.bytes_in),
        )?;
        counter(
            e,
            "chat_sent_bytes",
            "Bytes written to sockets.",
            stats.sum(|w| &w.bytes_out),
        )?;
        counter(
            e,
            "chat_rate_limited",
            "Times a client began to be held back by the rate limit.",
            stats.rate_limited(),
        )?;
        counter(
            e,
            "chat_login_failures",
            "Logins refused after checking the password.",
            stats.login_failures(),
        )?;
        counter(
            e,
            "chat_login_throttled",
            "Logins refused without checking the password: too many recent failures.",
            stats.login_throttled(),
        )?;
        family(
            e,
            "chat_worker_backlog",
            "Deliveries waiting in each worker's channel from other workers.",
            MetricType::Gauge,
            "worker",
            &per_worker(&|w| w.backlog()),
        )?;
        family(
            e,
            "chat_worker_cpu_microseconds",
            "Time each worker thread has run (updated once a second).",
            MetricType::Counter,
            "worker",
            &per_worker(&|w| w.cpu_us.load(Relaxed)),
        )?;
        family(
            e,
            "chat_worker_cpu_wait_microseconds",
            "Time each worker thread has waited, runnable, for a core (updated once a second): none of its connections is served meanwhile.",
            MetricType::Counter,
            "worker",
            &per_worker(&|w| w.cpu_wait_us.load(Relaxed)),
        )?;
        gauge(
            e,
            "chat_inbound_bytes",
            "Bytes held in incomplete inbound frames, all connections.",
            i64::try_from(stats.inbound.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        let counts = self.shared.engine.counts();
        gauge(
            e,
            "chat_users",
            "Registered users.",
            i64::try_from(counts.users).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "chat_rooms",
            "Rooms with members.",
            i64::try_from(counts.rooms).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "chat_room_members",
            "Room memberships, summed over rooms.",
            i64::try_from(counts.members).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "chat_history_bytes",
            "Bytes of room history kept, as accounted against --history-budget.",
            i64::try_from(counts.history_bytes).unwrap_or(i64::MAX),
        )?;
        for extra in self.shared.engine.extra_stats() {
            let name = format!("chat_{}", extra.name);
            if extra.counter {
                counter(e, &name, extra.help, extra.value)?;
            } else {
                gauge(
                    e,
                    &name,
                    extra.help,
                    i64::try_from(extra.value).unwrap_or(i64::MAX),
                )?;
            }
        }
        let (sum, count, buckets) = stats.fanout_histogram();
        let bounds: Vec<(f64, u64)> = FANOUT_BUCKETS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(buckets)
            .collect();
        let mut metric = e.encode_descriptor(
            "chat_fanout_seconds",
            "Time from reading a room message to writing it to the room's last member.",
            None,
            MetricType::Histogram,
        )?;
        metric.encode_histogram::<NoLabelSet>(sum, count, &bounds, None)?;
        Ok(())
    }
}
