//! How far this machine's wall clock is from the server's, measured with `Echo` round
//! trips before the run, and how far apart any two loadgen processes' clocks can be.
//!
//! The server stamps every `EchoReply` with the time it received the `Echo`
//! (`server_time_ns`, UNIX nanoseconds, its wall clock). With `t_send` and `t_recv` read
//! from this machine's wall clock around one round trip, the server's stamp was taken at
//! some instant between them, so
//!
//! `offset = server_time - (t_send + t_recv) / 2`, within `± rtt / 2`,
//!
//! whatever the two directions' delays are. Of [`PROBES`] round trips the one with the
//! smallest RTT gives the tightest bound and is kept; the probe stops early, keeping
//! what it has, at its deadline (a quarter of the time left before `--start-at`, at
//! most [`MAX_PROBE_TIME`]), so a slow or lossy path never makes a process miss the
//! start. The server is the reference every
//! process reaches, so two processes' clocks differ by `|offset_a - offset_b|`, within
//! `bound_a + bound_b` ([`pair_bound_us`]). Brokers (`--protocol redis`, `nats`) and
//! plain line echo servers have no `Echo`: nothing is measured there.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use shared::{Frame, FrameDecoder, PROTOCOL_VERSION};

use crate::config::Protocol;
use crate::transport::TlsClient;

/// Round trips measured; the one with the smallest RTT is kept.
pub const PROBES: u32 = 20;

/// Longest the probe may take before a run.
pub const MAX_PROBE_TIME: Duration = Duration::from_secs(1);

/// This process's wall-clock offset to the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockOffset {
    /// Server clock minus this machine's clock, microseconds.
    pub offset_us: i64,
    /// The true offset is within `offset_us ± bound_us` (half the smallest RTT,
    /// rounded up).
    pub bound_us: u64,
}

/// What became of a run's clock-offset probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Measured against the first `--addr`.
    Measured(ClockOffset),
    /// The protocol has no `Echo` to measure with (brokers, line echo servers).
    NoEcho(&'static str),
    /// The probe connection or a round trip failed (the run goes on without it).
    Failed(String),
}

impl Probe {
    /// The measured offset, if any.
    pub fn measured(&self) -> Option<ClockOffset> {
        match self {
            Probe::Measured(offset) => Some(*offset),
            Probe::NoEcho(_) | Probe::Failed(_) => None,
        }
    }
}

/// Measures the offset to the first server of `config`, where its protocol has `Echo`
/// (the chat server's binary and text modes, probed in binary framing).
pub fn for_run(config: &crate::Config) -> Probe {
    match config.protocol {
        Protocol::Binary | Protocol::Text => {}
        other @ (Protocol::Line | Protocol::Redis | Protocol::Nats) => {
            return Probe::NoEcho(other.name());
        }
    }
    let Some(&addr) = config.addrs.first() else {
        return Probe::Failed("no address".into());
    };
    let left = config
        .start_at
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .unwrap_or_default();
    let budget = (left / 4).min(MAX_PROBE_TIME);
    if budget.is_zero() {
        return Probe::Failed("no time left before --start-at".into());
    }
    match measure(addr, config.tls.as_ref(), budget) {
        Ok(offset) => Probe::Measured(offset),
        Err(e) => Probe::Failed(format!("{addr}: {e}")),
    }
}

/// Estimates the offset to the chat server at `addr` from up to [`PROBES`] `Echo`
/// round trips on a connection of its own (binary framing, TLS if `tls`), all within
/// `budget`: past it the round trips taken so far count, and none is an error.
pub fn measure(
    addr: SocketAddr,
    tls: Option<&TlsClient>,
    budget: Duration,
) -> io::Result<ClockOffset> {
    let deadline = unix_ns() + budget.as_nanos() as i128;
    let tcp = TcpStream::connect_timeout(&addr, budget)?;
    tcp.set_read_timeout(Some(budget))?;
    tcp.set_write_timeout(Some(budget))?;
    tcp.set_nodelay(true)?;
    match tls {
        Some(tls) => {
            let session =
                shared::tls::rustls::ClientConnection::new(tls.config.clone(), tls.name.clone())
                    .map_err(io::Error::other)?;
            probe(
                shared::tls::rustls::StreamOwned::new(session, tcp),
                deadline,
            )
        }
        None => probe(tcp, deadline),
    }
}

/// Says hello, then takes up to [`PROBES`] round trips on `stream`, the last one
/// starting before `deadline` (ns since the epoch).
fn probe(mut stream: impl Read + Write, deadline: i128) -> io::Result<ClockOffset> {
    let mut decoder = FrameDecoder::new(shared::DEFAULT_MAX_FRAME);
    send(
        &mut stream,
        &Frame::Hello {
            version: PROTOCOL_VERSION,
        },
    )?;
    let mut best: Option<(i128, i128)> = None;
    for i in 0..PROBES {
        let payload = Bytes::copy_from_slice(&u64::from(i).to_be_bytes());
        let t_send = unix_ns();
        if t_send >= deadline && best.is_some() {
            break;
        }
        send(
            &mut stream,
            &Frame::Echo {
                payload: payload.clone(),
            },
        )?;
        let server_ns = loop {
            match next_frame(&mut stream, &mut decoder)? {
                Frame::EchoReply {
                    server_time_ns,
                    payload: back,
                } if back == payload => break server_time_ns,
                Frame::Error { code, text } => {
                    return Err(io::Error::other(format!(
                        "the server refused the clock probe: {text} ({code:?})"
                    )));
                }
                // Welcome, pings and notices are not what we wait for.
                _ => {}
            }
        };
        let t_recv = unix_ns();
        let rtt = (t_recv - t_send).max(0);
        let offset = i128::from(server_ns) - (t_send + t_recv) / 2;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    let (rtt, offset) = best.ok_or_else(|| io::Error::other("no round trip"))?;
    Ok(ClockOffset {
        offset_us: i64::try_from(offset / 1000).unwrap_or(i64::MAX),
        bound_us: u64::try_from((rtt + 1999) / 2000).unwrap_or(u64::MAX),
    })
}

fn send(stream: &mut impl Write, frame: &Frame) -> io::Result<()> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf).map_err(io::Error::other)?;
    stream.write_all(&buf)?;
    stream.flush()
}

fn next_frame(stream: &mut impl Read, decoder: &mut FrameDecoder) -> io::Result<Frame> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(frame) = decoder
            .decode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        {
            return Ok(frame);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        decoder.feed(&buf[..n]);
    }
}

/// This machine's wall clock, nanoseconds since the UNIX epoch.
fn unix_ns() -> i128 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    i128::try_from(since).unwrap_or(i128::MAX)
}

/// Bound on the wall-clock offset between any two of several processes, each with its
/// measured offset to one server: the largest `|offset_i - offset_j| + bound_i +
/// bound_j` over all pairs. `None` if any process was not measured. A single process is
/// its own pair (`2 * bound`: two readings of one clock against the server).
pub fn pair_bound_us(offsets: &[Option<ClockOffset>]) -> Option<u64> {
    let known: Option<Vec<ClockOffset>> = offsets.iter().copied().collect();
    let known = known?;
    let mut worst = None;
    for (i, a) in known.iter().enumerate() {
        for b in &known[i..] {
            let bound = a.offset_us.abs_diff(b.offset_us) + a.bound_us + b.bound_us;
            worst = Some(worst.map_or(bound, |w: u64| w.max(bound)));
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset_us: i64, bound_us: u64) -> Option<ClockOffset> {
        Some(ClockOffset {
            offset_us,
            bound_us,
        })
    }

    #[test]
    fn the_pair_bound_takes_the_worst_pair() {
        // |(-30) - 50| + 20 + 10 = 110 beats |0 - 50| + 5 + 10.
        assert_eq!(
            pair_bound_us(&[at(0, 5), at(-30, 20), at(50, 10)]),
            Some(110)
        );
        assert_eq!(pair_bound_us(&[at(7, 3)]), Some(6));
        assert_eq!(pair_bound_us(&[at(0, 5), None]), None);
        assert_eq!(pair_bound_us(&[]), None);
    }
}
