//! The command line of `hostile`: run hostile clients (no subcommand), `stats` (print the
//! server's counters as `key=value` lines), `drain` (the shutdown drain checker), `rtt`
//! (timed round trips of one request) and `fanout` (a flooded room, every delivery
//! checked).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::drain::DrainConfig;
use crate::fanout::FanoutConfig;
use crate::hostile::HostileConfig;
use crate::kind::{Kind, parse_kinds};
use crate::rtt::RttConfig;

/// Hostile clients for the chat server's reliability suite.
///
/// Without a subcommand, opens --connections hostile connections at once (spread over
/// --kinds), keeps them misbehaving for --duration (reconnecting each one after it is
/// closed), and prints per kind what was done and what the server answered.
/// Kinds: garbage, oversize, bad-utf8-line, bad-utf8-frame, torn, instant, slowloris,
/// flooder, non-reader, talker, idle, partial, stalled, room-holder; `abuse` = the first
/// six, `all` = the first nine. Exit codes: 0 ok, 1 a verdict failed (with --check) or an error, 2 usage.
#[derive(Debug, Parser)]
#[command(name = "hostile", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Subcommand; none runs hostile clients.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Hostile run flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the server's statistics as key=value lines; with --watch, one line of them
    /// every interval (starting `t_ms=`), on one connection, for --duration.
    Stats {
        /// Server address.
        #[arg(long, default_value_t = default_addr())]
        addr: String,
        /// Time allowed for connecting and answering.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        /// Sample every this long instead of once.
        #[arg(long, value_parser = parse_duration)]
        watch: Option<Duration>,
        /// With --watch: how long to keep sampling.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Send numbered echoes until the server shuts down; check that every reply came in
    /// order before the Shutdown notice and that the server then closed.
    Drain {
        /// Server address.
        #[arg(long, default_value_t = default_addr())]
        addr: String,
        /// Clients.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Echo requests per second per client.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Fail if the server has not shut down within this time.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        max_duration: Duration,
    },
    /// Flood one room: --senders of its --members write Say frames as fast as the server
    /// reads them, every member reads everything. Then check that each member got every
    /// message once and in order. Exit 1 if not.
    Fanout {
        /// Server address.
        #[arg(long, default_value_t = default_addr())]
        addr: String,
        /// Connections in the room, senders included.
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Members that flood the room.
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// The room.
        #[arg(long, default_value = "soak-fanout")]
        room: String,
        /// Text bytes per message.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// How long the senders flood.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// After the flood: how long deliveries may take to arrive.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// Time for every member to connect and join.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        join_timeout: Duration,
    },
    /// Time round trips of one request on one well-behaved connection, one at a time;
    /// print min/p50/p90/max. Exit 1 unless every one was answered.
    Rtt {
        /// Server address.
        #[arg(long, default_value_t = default_addr())]
        addr: String,
        /// What to ask: echo, rooms, stats or who:ROOM.
        #[arg(long, default_value = "echo")]
        request: String,
        /// Round trips.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Pause after each answer before the next request.
        #[arg(long, default_value = "100ms", value_parser = parse_duration)]
        interval: Duration,
        /// Time allowed for connecting and for each answer.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn default_addr() -> String {
    format!("127.0.0.1:{}", shared::DEFAULT_PORT)
}

/// Flags of a hostile run. Durations take a unit: `500ms`, `10s`, `2m`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server address (host:port).
    #[arg(long, default_value_t = default_addr())]
    pub addr: String,
    /// Hostile connections at once.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Comma-separated kinds (see above).
    #[arg(long, default_value = "abuse")]
    pub kinds: String,
    /// How long to keep misbehaving.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Open each connection once instead of reconnecting after it is closed.
    #[arg(long)]
    pub once: bool,
    /// Pause before a closed slot reconnects.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub cycle_delay: Duration,
    /// After --duration: time for final echoes and drains.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long to wait for the server's answer to a violation.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub answer_timeout: Duration,
    /// Room that non-readers and talkers join; room holders' rooms start with it.
    #[arg(long, default_value = "soak-busy")]
    pub room: String,
    /// Rooms each room holder joins (the server allows 64 per connection).
    #[arg(long, default_value_t = 64)]
    pub rooms_per_conn: usize,
    /// Talkers filling the room when non-readers run.
    #[arg(long, default_value_t = 1)]
    pub talkers: usize,
    /// Messages per second per talker.
    #[arg(long, default_value_t = 500.0)]
    pub talk_rate: f64,
    /// Text bytes per talker message.
    #[arg(long, default_value_t = 4000)]
    pub talk_size: usize,
    /// Pause between the bytes of a slowloris client.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub slow_interval: Duration,
    /// Length of the frame a partial or stalled client starts (capped at the server's
    /// max frame), e.g. 1MiB.
    #[arg(long, default_value = "512KiB", value_parser = parse_size)]
    pub partial_frame: usize,
    /// Bytes of that frame's body it sends before it stops (at least one byte stays
    /// missing).
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    pub partial_sent: usize,
    /// Abuse kinds wait a random time up to this after connecting before misbehaving,
    /// so that many are connected at once.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub hold: Duration,
    /// Seed of the garbage bytes.
    #[arg(long, default_value_t = 0x5eed_cafe)]
    pub seed: u64,
    /// The server's --rate-limit, to judge flooders against.
    #[arg(long, default_value_t = 1000)]
    pub rate_limit: u32,
    /// The server's --rate-burst.
    #[arg(long, default_value_t = 2000)]
    pub rate_burst: u32,
    /// Exit 1 if any kind's verdict fails.
    #[arg(long)]
    pub check: bool,
}

/// Why the command line does not make a runnable configuration: a usage error, which
/// `hostile` reports as one line and exit code 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// clap refused the arguments: an unknown flag, a value of the wrong type, a missing
    /// value.
    #[error("{}", clap_message(.0))]
    Parse(clap::Error),
    /// `--addr` is not `HOST:PORT`, or its host did not resolve to any address.
    #[error("--addr {addr}: {reason}")]
    Addr {
        /// What was given.
        addr: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// A kind name is unknown.
    #[error(transparent)]
    Kind(#[from] crate::kind::UnknownKind),
    /// No kinds or no connections.
    #[error("give at least one kind and --connections above 0")]
    Empty,
    /// `drain --clients 0`: nothing would be checked, and the verdict would be a pass.
    #[error("--clients must be at least 1")]
    NoClients,
    /// `--partial-sent` would complete the frame, or the frame has no body.
    #[error(
        "--partial-sent {sent} must be below --partial-frame {frame} minus 1 (the frame stays incomplete)"
    )]
    PartialSize {
        /// Body bytes to send.
        sent: usize,
        /// Frame length.
        frame: usize,
    },
    /// `rtt --request` names no request.
    #[error(transparent)]
    Request(#[from] crate::rtt::UnknownRequest),
    /// `fanout` without a member or a sender, or with more senders than members.
    #[error("give --members and --senders above 0, --senders at most --members")]
    FanoutShape,
    /// `rtt --count 0`: nothing would be timed.
    #[error("--count must be at least 1")]
    NoRoundTrips,
    /// A rate that is zero, negative or not a number.
    #[error("--{flag} must be positive, not {value}")]
    BadRate {
        /// The flag, without its dashes.
        flag: &'static str,
        /// What was given.
        value: f64,
    },
}

/// `value` if it is a usable rate (positive; infinite means as fast as possible).
fn rate(flag: &'static str, value: f64) -> Result<f64, CliError> {
    if value.is_nan() || value <= 0.0 {
        return Err(CliError::BadRate { flag, value });
    }
    Ok(value)
}

impl RunArgs {
    /// Validates the flags into a [`HostileConfig`].
    pub fn into_config(self) -> Result<HostileConfig, CliError> {
        let kinds: Vec<Kind> = parse_kinds(&self.kinds)?;
        if kinds.is_empty() || self.connections == 0 {
            return Err(CliError::Empty);
        }
        if self.partial_sent.saturating_add(1) >= self.partial_frame {
            return Err(CliError::PartialSize {
                sent: self.partial_sent,
                frame: self.partial_frame,
            });
        }
        Ok(HostileConfig {
            addr: resolve(&self.addr)?,
            connections: self.connections,
            kinds,
            duration: self.duration,
            connect_rate: rate("connect-rate", self.connect_rate)?,
            cycle: !self.once,
            cycle_delay: self.cycle_delay,
            grace: self.grace,
            answer_timeout: self.answer_timeout,
            room: self.room,
            rooms_per_conn: self.rooms_per_conn,
            talkers: self.talkers,
            talk_rate: rate("talk-rate", self.talk_rate)?,
            talk_size: self.talk_size,
            slow_interval: self.slow_interval,
            partial_frame: self.partial_frame,
            partial_sent: self.partial_sent,
            hold: self.hold,
            seed: self.seed,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
        })
    }
}

/// Builds the drain checker's config from its flags.
pub fn drain_config(
    addr: &str,
    clients: usize,
    rate_value: f64,
    max_duration: Duration,
) -> Result<DrainConfig, CliError> {
    if clients == 0 {
        return Err(CliError::NoClients);
    }
    Ok(DrainConfig {
        addr: resolve(addr)?,
        clients,
        rate: rate("rate", rate_value)?,
        max_duration,
    })
}

/// Checks the fan-out flood's flags; `config.addr` is replaced by `addr` resolved.
pub fn fanout_config(addr: &str, mut config: FanoutConfig) -> Result<FanoutConfig, CliError> {
    if config.members == 0 || config.senders == 0 || config.senders > config.members {
        return Err(CliError::FanoutShape);
    }
    config.addr = resolve(addr)?;
    Ok(config)
}

/// Builds the round-trip timer's config from its flags.
pub fn rtt_config(
    addr: &str,
    request: &str,
    count: usize,
    interval: Duration,
    timeout: Duration,
) -> Result<RttConfig, CliError> {
    if count == 0 {
        return Err(CliError::NoRoundTrips);
    }
    Ok(RttConfig {
        addr: resolve(addr)?,
        request: request.parse()?,
        count,
        interval,
        timeout,
    })
}

/// Resolves `HOST:PORT` (`127.0.0.1:7878`, `localhost:7878`) to its first address.
pub fn resolve(addr: &str) -> Result<SocketAddr, CliError> {
    let err = |reason: String| CliError::Addr {
        addr: addr.to_owned(),
        reason,
    };
    addr.to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("resolves to no address".into()))
}

pub use shared::units::{parse_duration, parse_size};

/// clap's report of a refused command line on one line ([`shared::cli::one_line`]).
fn clap_message(error: &clap::Error) -> String {
    // `StyledStr`'s `Display` is plain text, without colour codes.
    shared::cli::one_line(&error.render().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "hostile",
            "--addr",
            "127.0.0.1:9",
            "--connections",
            "7",
            "--kinds",
            "oversize,idle",
            "--duration",
            "1500ms",
            "--once",
            "--partial-frame",
            "1MiB",
            "--partial-sent",
            "900KiB",
        ])
        .unwrap();
        let config = cli.run.into_config().unwrap();
        assert_eq!(config.connections, 7);
        assert_eq!(
            (config.partial_frame, config.partial_sent),
            (1 << 20, 900 << 10)
        );
        assert_eq!(config.kinds, vec![Kind::Oversize, Kind::Idle]);
        assert_eq!(config.duration, Duration::from_millis(1500));
        assert!(!config.cycle);
    }

    #[test]
    fn bad_flags_are_refused() {
        let cli = Cli::try_parse_from(["hostile", "--kinds", "nice"]).unwrap();
        assert!(matches!(cli.run.into_config(), Err(CliError::Kind(_))));
        let cli = Cli::try_parse_from(["hostile", "--connections", "0"]).unwrap();
        assert!(matches!(cli.run.into_config(), Err(CliError::Empty)));
        let cli = Cli::try_parse_from(["hostile", "--connect-rate", "0"]).unwrap();
        assert!(matches!(
            cli.run.into_config(),
            Err(CliError::BadRate {
                flag: "connect-rate",
                ..
            })
        ));
        let cli = Cli::try_parse_from(["hostile", "--partial-sent", "512KiB"]).unwrap();
        assert!(matches!(
            cli.run.into_config(),
            Err(CliError::PartialSize { .. })
        ));
        let cli = Cli::try_parse_from(["hostile", "--addr", "127.0.0.1"]).unwrap();
        assert!(matches!(cli.run.into_config(), Err(CliError::Addr { .. })));
        assert!(parse_duration("3 weeks").is_err());
        assert!(Cli::try_parse_from(["hostile", "stats", "--addr", "x:1"]).is_ok());
    }

    #[test]
    fn drain_flags_are_checked() {
        assert!(drain_config("127.0.0.1:9", 2, 10.0, Duration::from_secs(1)).is_ok());
        assert!(matches!(
            drain_config("127.0.0.1:9", 0, 10.0, Duration::from_secs(1)),
            Err(CliError::NoClients)
        ));
        assert!(matches!(
            drain_config("127.0.0.1:9", 2, f64::NAN, Duration::from_secs(1)),
            Err(CliError::BadRate { flag: "rate", .. })
        ));
    }

    #[test]
    fn fanout_flags_are_checked() {
        let shape = |members, senders| FanoutConfig {
            members,
            senders,
            ..FanoutConfig::default()
        };
        let config = fanout_config("127.0.0.1:9", shape(10, 10)).unwrap();
        assert_eq!(config.addr.port(), 9);
        for (members, senders) in [(0, 0), (10, 0), (3, 4)] {
            assert!(matches!(
                fanout_config("127.0.0.1:9", shape(members, senders)),
                Err(CliError::FanoutShape)
            ));
        }
    }

    #[test]
    fn rtt_flags_are_checked() {
        let second = Duration::from_secs(1);
        let config = rtt_config("127.0.0.1:9", "who:lobby", 3, second, second).unwrap();
        assert_eq!(
            config.request,
            crate::rtt::RttRequest::Who("lobby".to_owned())
        );
        assert!(matches!(
            rtt_config("127.0.0.1:9", "echo", 0, second, second),
            Err(CliError::NoRoundTrips)
        ));
        assert!(matches!(
            rtt_config("127.0.0.1:9", "list", 1, second, second),
            Err(CliError::Request(_))
        ));
    }

    #[test]
    fn addr_takes_a_host_name() {
        let addr = resolve("localhost:7878").unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 7878, "{addr}");
    }
}
