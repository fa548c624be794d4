//! Server configuration: every knob the CLI exposes, with the defaults documented there.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use shared::Limits;

/// Validated server settings. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Worker threads; each owns a `mio::Poll` and its connections.
    pub workers: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Connections served at once; newcomers past it get error 300 and are closed.
    pub max_connections: usize,
    /// Frame and line limits enforced by the decoders.
    pub limits: Limits,
    /// Queued outbound bytes per connection before it is closed as a slow consumer.
    pub max_pending: usize,
    /// Messages per second per connection (token bucket refill); 0 disables the limit.
    pub rate_limit: u32,
    /// Token bucket size: messages a connection may send in a burst.
    pub rate_burst: u32,
    /// Silence after which a connection is closed; a ping is sent at half of it.
    pub idle_timeout: Duration,
    /// How long a graceful shutdown waits for queued output to drain.
    pub shutdown_timeout: Duration,
    /// Interval between summary log lines; zero disables them.
    pub log_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, shared::DEFAULT_PORT)),
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            backlog: 1024,
            max_connections: 10_000,
            limits: Limits::default(),
            max_pending: 1 << 20,
            rate_limit: 1000,
            rate_burst: 2000,
            idle_timeout: Duration::from_secs(240),
            shutdown_timeout: Duration::from_secs(5),
            log_interval: Duration::from_secs(10),
        }
    }
}

/// Parses a duration written as a number with a unit: `250ms`, `5s`, `2m`, `1h`.
/// A bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 250ms, 5s, 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a byte size: `4096`, `64KiB`, `1MiB`, `2k`, `1m`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 4096, 64KiB, 1MiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("invalid size unit {other:?}: use KiB, MiB or GiB")),
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("x").is_err());
    }
}
