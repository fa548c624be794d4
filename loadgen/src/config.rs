//! The validated description of one load run: where to connect, how many clients, how
//! fast, what they say, and where the results go.
//!
//! [`Config::default`] holds the documented defaults (the same ones `--help` shows);
//! [`Config::validate`] rejects combinations that cannot run, before any socket opens.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::stamp::MIN_PAYLOAD;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Each client echoes its own messages through the server.
    Echo,
    /// Clients are split into rooms of `--room-size`; every message is received, and
    /// measured, by every member including its sender.
    Room,
    /// Clients are paired; each sends direct messages to its partner.
    Dm,
}

impl Scenario {
    /// Lower-case name, as on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Echo => "echo",
            Scenario::Room => "room",
            Scenario::Dm => "dm",
        }
    }
}

/// How the clients talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// The chat server's binary frames (`Hello`, `Echo`, `Say`, `Direct`).
    Binary,
    /// The chat server's text mode (`/echo`, `/join`, `/msg`).
    Text,
    /// Any server that sends every line back unchanged (echo scenario only).
    Line,
    /// Redis pub/sub over RESP3 (room scenario only): a member subscribes to its room's
    /// channel and publishes to it on the same connection.
    Redis,
    /// The NATS text protocol (room scenario only): a member subscribes to its room's
    /// subject and publishes to it on the same connection.
    Nats,
}

impl Protocol {
    /// Lower-case name, as on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Binary => "binary",
            Protocol::Text => "text",
            Protocol::Line => "line",
            Protocol::Redis => "redis",
            Protocol::Nats => "nats",
        }
    }

    /// Whether this drives a message broker (Redis, NATS) rather than the chat server
    /// or an echo server.
    pub fn is_broker(self) -> bool {
        matches!(self, Protocol::Redis | Protocol::Nats)
    }
}

/// Limits that turn a finished run into a failure (a documented non-zero exit code).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// Highest acceptable corrected p99 latency.
    pub max_p99: Option<Duration>,
    /// Highest acceptable number of lost messages.
    pub max_loss: Option<u64>,
}

/// Longest line the chat server's text mode accepts; text and line payloads must fit.
pub const MAX_LINE_PAYLOAD: usize = shared::DEFAULT_MAX_LINE - 64;

/// Largest binary payload: the server's default frame limit minus room for headers.
pub const MAX_BINARY_PAYLOAD: usize = shared::DEFAULT_MAX_FRAME - 1024;

/// Longest run (ramp excluded) a stamp's 48-bit nanosecond times can describe, with margin.
pub const MAX_RUN: Duration = Duration::from_secs(24 * 3600);

/// Slowest `--rate`: one message in 1000 s.
pub const MIN_RATE: f64 = 0.001;

/// Fastest `--rate`: one message per microsecond.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Everything one run needs. Build with [`Config::default`] and adjust fields, or from
/// the command line with [`crate::cli::RunArgs`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Server addresses: client `i` connects to `addrs[i % addrs.len()]`, so a room's
    /// members or a dm pair may be split over several servers. Never empty.
    pub addrs: Vec<SocketAddr>,
    /// Speak TLS, with this configuration and server name (`--tls`); `None` for
    /// plaintext.
    pub tls: Option<crate::TlsClient>,
    /// Number of client connections.
    pub clients: u32,
    /// Messages per second per client.
    pub rate: f64,
    /// Measured part of the run.
    pub duration: Duration,
    /// Unmeasured sending before the measured part (connections warm up, caches fill).
    pub warmup: Duration,
    /// How long after the end replies may still arrive before they count as lost.
    pub grace: Duration,
    /// New connections per second while ramping up.
    pub connect_rate: f64,
    /// How long a client may take to connect and finish its handshake.
    pub connect_timeout: Duration,
    /// Bytes per message payload (the stamp plus filler).
    pub payload: usize,
    /// Sender/receiver threads, each with its own poll and a share of the clients.
    pub threads: usize,
    /// What the clients do.
    pub scenario: Scenario,
    /// Members per room in the room scenario.
    pub room_size: u32,
    /// Binary frames, text mode, or plain echoed lines.
    pub protocol: Protocol,
    /// Directory for result files.
    pub out: PathBuf,
    /// Name of the run in result files; `None` means `SCENARIO-PROTOCOL`.
    pub label: Option<String>,
    /// Messages a client may have awaiting their echo before further sends wait; 0 means
    /// unlimited (pure open loop, the default). 1 mimics a closed-loop request/response
    /// client, as wrk2 has per connection: the corrected latency then still counts from
    /// the intended send time while the uncorrected one hides the waiting.
    pub max_in_flight: u32,
    /// Percent of the clients that drop their connection each second during the
    /// measured part and come back after `churn_away`, resuming their room from the last
    /// message they saw (room scenario, binary protocol); 0 disables churn.
    pub churn: f64,
    /// How long a dropped client stays away before it reconnects.
    pub churn_away: Duration,
    /// Messages of one thread that fall due within one window of this width leave
    /// together at its end (the thread wakes once per window); zero sends every message
    /// at its intended time. Intended times and the corrected latency do not change; a
    /// message is held at most this long, and the hold counts in its latency.
    pub send_window: Duration,
    /// Wall-clock instant at which sending begins (`--start-at`): the connect ramp
    /// happens before it, the warmup (if any) starts at it, and the run clock puts it on a
    /// whole second so several processes' seconds line up. `None`: start as soon as
    /// every client is connected.
    pub start_at: Option<SystemTime>,
    /// Room scenario: whether clients send, receive, or both (`--role`; see
    /// [`crate::fanout`]).
    pub role: crate::fanout::Role,
    /// Global id of this process's first client (`--client-offset`), written into
    /// stamps and nicks so ids never collide across processes.
    pub client_offset: u32,
    /// Pass/fail limits.
    pub thresholds: Thresholds,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// `--send-window` unless given: see `docs/LOADGEN.md` for the arrival pattern each
/// width gives the server.
pub const DEFAULT_SEND_WINDOW: Duration = Duration::from_millis(1);

/// Widest `--send-window`: a hold longer than this would swamp the latencies measured.
pub const MAX_SEND_WINDOW: Duration = Duration::from_millis(100);

impl Default for Config {
    fn default() -> Self {
        Self {
            addrs: vec![SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                shared::DEFAULT_PORT,
            ))],
            tls: None,
            clients: 100,
            rate: 10.0,
            duration: Duration::from_secs(30),
            warmup: Duration::from_secs(3),
            grace: Duration::from_secs(2),
            connect_rate: 1000.0,
            connect_timeout: Duration::from_secs(5),
            payload: MIN_PAYLOAD,
            threads: default_threads(),
            scenario: Scenario::Echo,
            room_size: 10,
            protocol: Protocol::Binary,
            out: PathBuf::from("results"),
            label: None,
            max_in_flight: 0,
            churn: 0.0,
            churn_away: Duration::from_millis(100),
            send_window: DEFAULT_SEND_WINDOW,
            start_at: None,
            role: crate::fanout::Role::Both,
            client_offset: 0,
            thresholds: Thresholds::default(),
            progress: true,
        }
    }
}

/// Whether `label` makes a plain file name: letters, digits and `-_.`, not starting with
/// a dot.
pub(crate) fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !label.starts_with('.')
}

/// One thread per core, as reported by the OS.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Why a configuration cannot run. Each variant names the flag to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No server address (a `Config` built by hand with an empty `addrs`).
    #[error("--addr needs at least one address")]
    NoAddr,
    /// `--clients 0`: there would be nothing to measure.
    #[error("--clients must be at least 1")]
    NoClients,
    /// `--rate` is zero, negative, not finite, or faster than one message per microsecond.
    #[error("--rate must be between {MIN_RATE} and {MAX_RATE} messages per second, not {0}")]
    BadRate(f64),
    /// `--connect-rate` is zero, negative or not finite.
    #[error("--connect-rate must be positive, not {0}")]
    BadConnectRate(f64),
    /// `--duration` is zero: nothing would be measured.
    #[error("--duration must be longer than zero")]
    ZeroDuration,
    /// `--connect-timeout` is zero: no client could ever connect.
    #[error("--connect-timeout must be longer than zero")]
    ZeroConnectTimeout,
    /// Warmup plus duration exceed what message stamps can describe.
    #[error("--warmup plus --duration must stay under {} hours", MAX_RUN.as_secs() / 3600)]
    TooLong,
    /// `--threads 0`.
    #[error("--threads must be at least 1")]
    NoThreads,
    /// The payload cannot hold the stamp every message carries.
    #[error(
        "--payload must be at least {min} bytes (the stamp every message carries), not {payload}"
    )]
    PayloadTooSmall {
        /// Requested payload.
        payload: usize,
        /// Smallest payload.
        min: usize,
    },
    /// The payload does not fit in one line or frame of the chosen protocol.
    #[error("--payload {payload} is too large for --protocol {protocol}; the maximum is {max}")]
    PayloadTooLarge {
        /// Requested payload.
        payload: usize,
        /// Protocol name.
        protocol: &'static str,
        /// Largest payload.
        max: usize,
    },
    /// `--room-size 0`.
    #[error("--room-size must be at least 1")]
    NoRoomSize,
    /// The dm scenario pairs clients, so their number must be even.
    #[error("--scenario dm pairs clients; --clients must be even, not {0}")]
    OddPairs(u32),
    /// A plain line echo server has no rooms or nicks.
    #[error("--protocol line only supports --scenario echo")]
    LineNeedsEcho,
    /// Brokers are driven as publish/subscribe fan-out, which is the room scenario.
    #[error(
        "--protocol {0} only supports --scenario room (members subscribe to the room's channel)"
    )]
    BrokerNeedsRoom(&'static str),
    /// loadgen speaks to brokers in plaintext only.
    #[error("--protocol {0} does not support --tls")]
    BrokerWithTls(&'static str),
    /// The in-flight window counts echoes, which only the echo scenario has.
    #[error("--max-in-flight only works with --scenario echo")]
    WindowNeedsEcho,
    /// `--send-window` longer than [`MAX_SEND_WINDOW`].
    #[error("--send-window must be at most 100ms, not {0:?}")]
    BadSendWindow(Duration),
    /// `--churn` outside 0..=100.
    #[error("--churn must be a percentage of clients per second between 0 and 100, not {0}")]
    BadChurn(f64),
    /// Churn resumes rooms, which only the binary room scenario has.
    #[error("--churn needs --scenario room and --protocol binary (resuming is a binary join)")]
    ChurnNeedsBinaryRoom,
    /// `--role` or `--client-offset` in a combination that cannot run.
    #[error(transparent)]
    Fanout(#[from] crate::fanout::FanoutError),
    /// A label that would make an odd file name.
    #[error("--label may only hold letters, digits and -_. , not {0:?}")]
    BadLabel(String),
}

impl Config {
    /// Checks that the run can happen; called by [`crate::run`] before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.addrs.is_empty() {
            return Err(ConfigError::NoAddr);
        }
        if self.clients == 0 {
            return Err(ConfigError::NoClients);
        }
        if !(self.rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&self.rate)) {
            return Err(ConfigError::BadRate(self.rate));
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            return Err(ConfigError::BadConnectRate(self.connect_rate));
        }
        if self.duration.is_zero() {
            return Err(ConfigError::ZeroDuration);
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        if self.warmup + self.duration + self.grace > MAX_RUN {
            return Err(ConfigError::TooLong);
        }
        if self.threads == 0 {
            return Err(ConfigError::NoThreads);
        }
        if self.payload < MIN_PAYLOAD {
            return Err(ConfigError::PayloadTooSmall {
                payload: self.payload,
                min: MIN_PAYLOAD,
            });
        }
        let max = match (self.protocol, self.scenario) {
            // Brokers carry the binary stamp in length-prefixed payloads.
            (Protocol::Binary, Scenario::Echo) | (Protocol::Redis | Protocol::Nats, _) => {
                MAX_BINARY_PAYLOAD
            }
            // Say and Direct texts, and every line, must fit a text line on the server,
            // which may relay them to text-mode members.
            _ => MAX_LINE_PAYLOAD,
        };
        if self.payload > max {
            return Err(ConfigError::PayloadTooLarge {
                payload: self.payload,
                protocol: self.protocol.name(),
                max,
            });
        }
        if self.scenario == Scenario::Room && self.room_size == 0 {
            return Err(ConfigError::NoRoomSize);
        }
        if self.scenario == Scenario::Dm && !self.clients.is_multiple_of(2) {
            return Err(ConfigError::OddPairs(self.clients));
        }
        if self.protocol == Protocol::Line && self.scenario != Scenario::Echo {
            return Err(ConfigError::LineNeedsEcho);
        }
        if self.protocol.is_broker() && self.scenario != Scenario::Room {
            return Err(ConfigError::BrokerNeedsRoom(self.protocol.name()));
        }
        if self.protocol.is_broker() && self.tls.is_some() {
            return Err(ConfigError::BrokerWithTls(self.protocol.name()));
        }
        if self.max_in_flight > 0 && self.scenario != Scenario::Echo {
            return Err(ConfigError::WindowNeedsEcho);
        }
        if self.send_window > MAX_SEND_WINDOW {
            return Err(ConfigError::BadSendWindow(self.send_window));
        }
        if !(self.churn.is_finite() && (0.0..=100.0).contains(&self.churn)) {
            return Err(ConfigError::BadChurn(self.churn));
        }
        if self.churn > 0.0
            && (self.scenario != Scenario::Room || self.protocol != Protocol::Binary)
        {
            return Err(ConfigError::ChurnNeedsBinaryRoom);
        }
        crate::fanout::validate(self)?;
        if let Some(label) = &self.label
            && !label_ok(label)
        {
            return Err(ConfigError::BadLabel(label.clone()));
        }
        Ok(())
    }

    /// The run's name in result files.
    pub fn label(&self) -> String {
        match &self.label {
            Some(label) => label.clone(),
            None if self.tls.is_some() => {
                format!("{}-{}-tls", self.scenario.name(), self.protocol.name())
            }
            None => format!("{}-{}", self.scenario.name(), self.protocol.name()),
        }
    }

    /// The server address list as given and as written in the `addr` column:
    /// comma-separated.
    pub fn addr_list(&self) -> String {
        let list: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        list.join(",")
    }

    /// Messages per second over all clients.
    pub fn target_rate(&self) -> f64 {
        f64::from(self.clients) * self.rate
    }

    /// Clients per group: one (echo), a pair (dm) or a room.
    pub fn group_size(&self) -> u32 {
        match self.scenario {
            Scenario::Echo => 1,
            Scenario::Dm => 2,
            Scenario::Room => self.room_size.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_unrunnable_combinations() {
        let base = Config::default();
        let cases: Vec<(Config, ConfigError)> = vec![
            (
                Config {
                    clients: 0,
                    ..base.clone()
                },
                ConfigError::NoClients,
            ),
            (
                Config {
                    rate: 0.0,
                    ..base.clone()
                },
                ConfigError::BadRate(0.0),
            ),
            (
                Config {
                    connect_timeout: Duration::ZERO,
                    ..base.clone()
                },
                ConfigError::ZeroConnectTimeout,
            ),
            (
                Config {
                    payload: 10,
                    ..base.clone()
                },
                ConfigError::PayloadTooSmall {
                    payload: 10,
                    min: MIN_PAYLOAD,
                },
            ),
            (
                Config {
                    payload: 5000,
                    protocol: Protocol::Text,
                    ..base.clone()
                },
                ConfigError::PayloadTooLarge {
                    payload: 5000,
                    protocol: "text",
                    max: MAX_LINE_PAYLOAD,
                },
            ),
            (
                Config {
                    scenario: Scenario::Dm,
                    clients: 3,
                    ..base.clone()
                },
                ConfigError::OddPairs(3),
            ),
            (
                Config {
                    scenario: Scenario::Room,
                    protocol: Protocol::Line,
                    ..base.clone()
                },
                ConfigError::LineNeedsEcho,
            ),
            (
                Config {
                    churn: 101.0,
                    scenario: Scenario::Room,
                    ..base.clone()
                },
                ConfigError::BadChurn(101.0),
            ),
            (
                Config {
                    churn: -1.0,
                    ..base.clone()
                },
                ConfigError::BadChurn(-1.0),
            ),
            (
                Config {
                    churn: 1.0,
                    ..base.clone()
                },
                ConfigError::ChurnNeedsBinaryRoom,
            ),
            (
                Config {
                    churn: 1.0,
                    scenario: Scenario::Room,
                    protocol: Protocol::Text,
                    ..base.clone()
                },
                ConfigError::ChurnNeedsBinaryRoom,
            ),
            (
                Config {
                    protocol: Protocol::Redis,
                    ..base.clone()
                },
                ConfigError::BrokerNeedsRoom("redis"),
            ),
            (
                Config {
                    scenario: Scenario::Room,
                    protocol: Protocol::Nats,
                    churn: 1.0,
                    ..base.clone()
                },
                ConfigError::ChurnNeedsBinaryRoom,
            ),
            (
                Config {
                    label: Some("../x".into()),
                    ..base.clone()
                },
                ConfigError::BadLabel("../x".into()),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected));
        }
    }

    #[test]
    fn label_defaults_to_scenario_and_protocol() {
        let config = Config {
            scenario: Scenario::Room,
            protocol: Protocol::Text,
            ..Config::default()
        };
        assert_eq!(config.label(), "room-text");
    }
}
