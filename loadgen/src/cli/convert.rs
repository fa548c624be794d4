//! The run flags turned into a validated [`Config`]: addresses resolved, `--total-rate`
//! shared among the clients, `--start-at` fixed to an instant, TLS trust loaded.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::SystemTime;

use shared::tls::Trust;

use super::start_at::{parse_start_at, start_instant};
use super::{CliError, RunArgs};
use crate::TlsClient;
use crate::config::{Config, MAX_RATE, MIN_RATE, Thresholds};

impl RunArgs {
    /// Resolves the address and validates the whole configuration.
    pub fn into_config(self) -> Result<Config, CliError> {
        let start_at = match &self.start_at {
            Some(given) => {
                let start = parse_start_at(given).map_err(|reason| CliError::StartAt {
                    given: given.clone(),
                    reason,
                })?;
                let now = SystemTime::now();
                Some(start_instant(
                    given,
                    start,
                    now,
                    self.clients,
                    self.connect_rate,
                )?)
            }
            None => None,
        };
        let addrs = self
            .addr
            .split(',')
            .map(|one| resolve(one.trim(), &self.addr))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if self.tls {
            let trust = match (self.ca, self.tls_insecure) {
                (Some(ca), _) => Trust::Ca(ca),
                (None, true) => Trust::Insecure,
                (None, false) => Trust::System,
            };
            let config = shared::tls::client_config(&trust).map_err(CliError::Tls)?;
            // Every address is checked against the first one's host name.
            let first = self.addr.split(',').next().unwrap_or_default().trim();
            let name = shared::tls::server_name(first).map_err(CliError::Tls)?;
            Some(TlsClient { config, name })
        } else {
            None
        };
        let config = Config {
            addrs,
            tls,
            clients: self.clients,
            rate: match self.total_rate {
                Some(total) => total_rate_per_client(total, self.clients)?,
                None => self.rate,
            },
            duration: self.duration,
            warmup: self.warmup,
            grace: self.grace,
            connect_rate: self.connect_rate,
            connect_timeout: self.connect_timeout,
            payload: self.payload,
            threads: self.threads,
            scenario: self.scenario,
            room_size: self.room_size,
            protocol: self.protocol,
            out: self.out,
            label: self.label,
            max_in_flight: self.max_in_flight,
            churn: self.churn,
            churn_away: self.churn_away,
            send_window: self.send_window,
            start_at,
            role: self.fanout.role,
            client_offset: self.fanout.client_offset,
            thresholds: Thresholds {
                max_p99: self.max_p99,
                max_loss: self.max_loss,
            },
            progress: !self.quiet,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Each client's share of `--total-rate`; refused, naming that flag, when the share
/// is outside what `--rate` accepts (`--clients 0` is left to [`Config::validate`]).
fn total_rate_per_client(total: f64, clients: u32) -> Result<f64, CliError> {
    if clients == 0 {
        return Ok(total);
    }
    let rate = total / f64::from(clients);
    if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(CliError::TotalRate { total, clients })
    }
}

/// Resolves `HOST:PORT` (`127.0.0.1:7878`, `localhost:7878`, `[::1]:7878`), one entry
/// of the `--addr` list `given`; a host with several addresses is reached at the first
/// one the resolver gives.
fn resolve(addr: &str, given: &str) -> Result<SocketAddr, CliError> {
    let err = |reason: String| CliError::Addr {
        addr: given.to_owned(),
        reason: if addr == given {
            reason
        } else {
            format!("{addr:?}: {reason}")
        },
    };
    let mut addrs = addr.to_socket_addrs().map_err(|e| err(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| err("resolves to no address".into()))
}
