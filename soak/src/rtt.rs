//! Timed round trips of one request on one well-behaved binary connection (`hostile
//! rtt`): how long the server takes to answer an echo, a room listing, a member listing
//! or its stats while something else is going on. Closed loop: one request in flight,
//! the next one `interval` after the previous answer, so a server that charges a request
//! many rate-limit tokens can be measured below its limit.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shared::Frame;

use crate::probe::{Probe, ProbeError};

/// The request whose round trip is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RttRequest {
    /// `Echo`, answered by `EchoReply`.
    Echo,
    /// `ListRooms`, answered by `RoomList`.
    Rooms,
    /// `Who` for a room, answered by `WhoList`.
    Who(String),
    /// `GetStats`, answered by `Stats`.
    Stats,
}

impl RttRequest {
    /// The frame to send for round trip `seq`.
    fn frame(&self, seq: u64) -> Frame {
        match self {
            RttRequest::Echo => Frame::Echo {
                payload: Bytes::copy_from_slice(&seq.to_be_bytes()),
            },
            RttRequest::Rooms => Frame::ListRooms,
            RttRequest::Who(room) => Frame::Who { room: room.clone() },
            RttRequest::Stats => Frame::GetStats,
        }
    }

    /// If `frame` is the answer to this request: how many items it lists (1 for an echo).
    fn answered_by(&self, frame: &Frame) -> Option<usize> {
        match (self, frame) {
            (RttRequest::Echo, Frame::EchoReply { .. }) => Some(1),
            (RttRequest::Rooms, Frame::RoomList { rooms }) => Some(rooms.len()),
            (RttRequest::Who(_), Frame::WhoList { nicks, .. }) => Some(nicks.len()),
            (RttRequest::Stats, Frame::Stats { entries }) => Some(entries.len()),
            _ => None,
        }
    }
}

impl fmt::Display for RttRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RttRequest::Echo => f.write_str("echo"),
            RttRequest::Rooms => f.write_str("rooms"),
            RttRequest::Who(room) => write!(f, "who:{room}"),
            RttRequest::Stats => f.write_str("stats"),
        }
    }
}

/// A request name that is not `echo`, `rooms`, `stats` or `who:ROOM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown request {0:?}; use echo, rooms, stats or who:ROOM")]
pub struct UnknownRequest(pub String);

impl FromStr for RttRequest {
    type Err = UnknownRequest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "echo" => Ok(RttRequest::Echo),
            "rooms" => Ok(RttRequest::Rooms),
            "stats" => Ok(RttRequest::Stats),
            _ => match s.strip_prefix("who:") {
                Some(room) if !room.is_empty() => Ok(RttRequest::Who(room.to_owned())),
                _ => Err(UnknownRequest(s.to_owned())),
            },
        }
    }
}

/// What to time.
#[derive(Debug, Clone)]
pub struct RttConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// The request.
    pub request: RttRequest,
    /// Round trips.
    pub count: usize,
    /// Pause after each answer before the next request.
    pub interval: Duration,
    /// Time allowed for connecting and for each answer.
    pub timeout: Duration,
}

/// The round trips of one run.
#[derive(Debug, Clone)]
pub struct RttReport {
    /// The request timed.
    pub request: RttRequest,
    /// Round trips asked for.
    pub count: usize,
    /// Times of the answered round trips, in the order made.
    pub times: Vec<Duration>,
    /// Error codes received instead of an answer.
    pub errors: Vec<u16>,
    /// Items in the last answer (rooms, nicks, counters; 1 for an echo).
    pub items: usize,
    /// Why the run stopped early (connect failure, no answer in time, closed).
    pub failure: Option<String>,
}

impl RttReport {
    /// Round trips answered.
    pub fn answered(&self) -> usize {
        self.times.len()
    }

    /// The `p`-th percentile (0 to 100, nearest rank) of the answered round trips.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut sorted = self.times.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        sorted.get(rank.clamp(1, n) - 1).copied()
    }

    /// Every round trip answered, none refused.
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.errors.is_empty() && self.answered() == self.count
    }
}

impl fmt::Display for RttReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |p: f64| self.percentile(p).map_or(0, |d| d.as_micros());
        let errors = if self.errors.is_empty() {
            "-".to_owned()
        } else {
            let codes: Vec<String> = self.errors.iter().map(u16::to_string).collect();
            codes.join(",")
        };
        writeln!(
            f,
            "rtt request={} count={} answered={} errors={errors} items={} min_us={} p50_us={} \
             p90_us={} max_us={} verdict={}",
            self.request,
            self.count,
            self.answered(),
            self.items,
            us(0.0),
            us(50.0),
            us(90.0),
            us(100.0),
            if self.ok() { "ok" } else { "FAIL" },
        )?;
        if let Some(failure) = &self.failure {
            writeln!(f, "rtt stopped early: {failure}")?;
        }
        Ok(())
    }
}

/// Connects, makes the round trips, and reports them; stops at the first failure.
pub fn run(config: &RttConfig) -> RttReport {
    let mut report = RttReport {
        request: config.request.clone(),
        count: config.count,
        times: Vec::with_capacity(config.count),
        errors: Vec::new(),
        items: 0,
        failure: None,
    };
    if let Err(e) = round_trips(config, &mut report) {
        report.failure = Some(error_chain(&e));
    }
    report
}

fn round_trips(config: &RttConfig, report: &mut RttReport) -> Result<(), ProbeError> {
    let mut probe = Probe::connect(config.addr, config.timeout)?;
    for seq in 0..config.count as u64 {
        if seq > 0 {
            std::thread::sleep(config.interval);
        }
        let start = Instant::now();
        probe.send(&config.request.frame(seq))?;
        loop {
            let frame = probe.recv()?;
            if let Some(items) = config.request.answered_by(&frame) {
                report.times.push(start.elapsed());
                report.items = items;
                break;
            }
            if let Frame::Error { code, .. } = frame {
                report.errors.push(code.0);
                break;
            }
            // Notices ("N more rooms not listed"), room events: not the answer.
        }
    }
    probe.goodbye();
    Ok(())
}

/// `e` and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(millis: &[u64]) -> RttReport {
        RttReport {
            request: RttRequest::Rooms,
            count: millis.len(),
            times: millis.iter().map(|&m| Duration::from_millis(m)).collect(),
            errors: Vec::new(),
            items: 0,
            failure: None,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = report(&[5, 1, 4, 2, 3]);
        let ms = |p| r.percentile(p).unwrap().as_millis();
        assert_eq!((ms(0.0), ms(50.0), ms(90.0), ms(100.0)), (1, 3, 5, 5));
        assert_eq!(
            report(&[7, 9]).percentile(50.0),
            Some(Duration::from_millis(7))
        );
        assert_eq!(report(&[]).percentile(50.0), None);
    }

    #[test]
    fn a_report_is_ok_only_when_every_round_trip_was_answered() {
        assert!(report(&[1, 2]).ok());
        let mut short = report(&[1, 2]);
        short.count = 3;
        assert!(!short.ok());
        let mut refused = report(&[1]);
        refused.errors.push(200);
        assert!(!refused.ok());
    }

    #[test]
    fn requests_parse_and_print_back() {
        for text in ["echo", "rooms", "stats", "who:lobby"] {
            assert_eq!(text.parse::<RttRequest>().unwrap().to_string(), text);
        }
        assert!("who:".parse::<RttRequest>().is_err());
        assert!("list".parse::<RttRequest>().is_err());
    }
}
