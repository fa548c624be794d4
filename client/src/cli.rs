//! Command-line arguments and the validated [`Config`] they become, or the
//! [`UsageError`] that says why they cannot.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;
use shared::tls::{Trust, TrustError, client_config, server_name};

use crate::transport::TlsSettings;
use shared::names::{NameError, validate_nick, validate_room};

use crate::backoff::ReconnectPolicy;

/// How the client talks to the person (or script) in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A `> ` prompt with line editing and history; incoming lines are printed above
    /// the prompt with a local time.
    Interactive,
    /// Lines from stdin are sent, received messages are printed as plain lines, and at
    /// the end of input the client waits (bounded) for outstanding replies.
    Piped,
}

/// `chat`: the interactive terminal client of the chat server.
#[derive(Debug, Parser)]
#[command(
    name = "chat",
    version,
    about,
    long_about = None,
    after_help = "Reconnecting: when the connection is lost (closed, reset, a failed write) or \
the server shuts down, chat reconnects by itself with growing, randomized waits, takes its \
nick back and re-joins its rooms, replaying the messages it missed; it exits (code 4) if \
that does not succeed within --reconnect-for. Typed lines are not sent meanwhile."
)]
pub struct Args {
    /// Server address, HOST:PORT (a host name is tried at each address it resolves to),
    /// or several separated by commas (the nodes of a cluster): each connection, the
    /// first and every reconnect, tries them in order until one answers.
    #[arg(long, default_value_t = format!("127.0.0.1:{}", shared::DEFAULT_PORT))]
    pub addr: String,
    /// Speak TLS, verifying the server's certificate against the system's trusted roots
    /// (or --ca); the certificate must name the host of --addr (of its first address).
    #[arg(long)]
    pub tls: bool,
    /// With --tls, trust the CA certificates in this PEM file (a private CA) instead of
    /// the system's.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<std::path::PathBuf>,
    /// Nick to ask for after connecting (the server assigns guest-N otherwise).
    #[arg(long)]
    pub nick: Option<String>,
    /// Room to join after connecting; it becomes the current room.
    #[arg(long, default_value = "lobby")]
    pub room: String,
    /// Plain-line mode even when stdin and stdout are a terminal.
    #[arg(long)]
    pub plain: bool,
    /// Seconds to wait at the end of piped input for replies still outstanding.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub wait: f64,
    /// Seconds to wait for the TCP connection and for the server's welcome.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub connect_timeout: f64,
    /// When the connection is lost or the server shuts down, exit (code 4 or 5)
    /// instead of reconnecting.
    #[arg(long)]
    pub no_reconnect: bool,
    /// How long to keep trying to reconnect after losing the connection (500ms, 30s,
    /// 5m, 1h; a bare number is seconds). Waits between attempts grow from up to 250 ms
    /// to up to 8 s, each drawn at random below that ceiling.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = shared::units::parse_duration)]
    pub reconnect_for: Duration,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server address as given, HOST:PORT; messages name the server by it.
    pub addr: String,
    /// What `addr` resolved to, in the resolver's order; never empty. Connecting tries
    /// each in turn and keeps the first that accepts.
    pub addrs: Vec<SocketAddr>,
    /// Nick to ask for, if any.
    pub nick: Option<String>,
    /// Room to join first.
    pub room: String,
    /// Interactive or piped.
    pub mode: Mode,
    /// How long piped mode waits for outstanding replies at the end of input.
    pub drain_timeout: Duration,
    /// Bound on connecting and on the handshake.
    pub connect_timeout: Duration,
    /// How to reconnect after losing the connection; `None` exits instead
    /// (`--no-reconnect`).
    pub reconnect: Option<ReconnectPolicy>,
    /// With `--tls`, what the TLS session starts from.
    pub tls: Option<TlsSettings>,
}

impl Config {
    /// A piped-mode configuration for `addr` with the defaults, for tests and tools.
    pub fn piped(addr: SocketAddr) -> Self {
        Config {
            addr: addr.to_string(),
            addrs: vec![addr],
            nick: None,
            room: "lobby".to_owned(),
            mode: Mode::Piped,
            drain_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            reconnect: Some(ReconnectPolicy::new(Duration::from_secs(300))),
            tls: None,
        }
    }
}

/// Why the command line cannot start a session: a usage error, which `chat` reports as
/// one line and exit code 2 ([`crate::error::EXIT_USAGE`]), before connecting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
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
    /// The TLS flags do not make a client configuration: an unreadable `--ca`, no
    /// system roots, or an address whose host no certificate can name.
    #[error("--tls: {0}")]
    Tls(TrustError),
    /// `--nick` breaks the server's naming rules.
    #[error("--nick: {0}")]
    Nick(NameError),
    /// `--room` breaks the server's naming rules.
    #[error("--room: {0}")]
    Room(NameError),
    /// A number of seconds that cannot be waited: negative, not a number, too large, or
    /// zero where a bound is needed.
    #[error("--{flag} must be {expected} number of seconds, not {value}")]
    Seconds {
        /// The flag, without its dashes.
        flag: &'static str,
        /// "a positive" or "a non-negative".
        expected: &'static str,
        /// What was given.
        value: f64,
    },
}

/// `value` seconds as a duration; zero only if `zero_ok`.
fn seconds(flag: &'static str, value: f64, zero_ok: bool) -> Result<Duration, UsageError> {
    let err = || UsageError::Seconds {
        flag,
        expected: if zero_ok {
            "a non-negative"
        } else {
            "a positive"
        },
        value,
    };
    let duration = Duration::try_from_secs_f64(value).map_err(|_| err())?;
    if duration.is_zero() && !zero_ok {
        return Err(err());
    }
    Ok(duration)
}

/// Resolves `HOST:PORT` (`127.0.0.1:7878`, `localhost:7878`, `[::1]:7878`), or several
/// separated by commas, to every address the resolver gives, in the order given and
/// the resolver's order.
fn resolve(list: &str) -> Result<Vec<SocketAddr>, UsageError> {
    let mut addrs = Vec::new();
    for addr in list.split(',').map(str::trim) {
        let err = |reason: String| UsageError::Addr {
            addr: addr.to_owned(),
            reason,
        };
        let before = addrs.len();
        addrs.extend(addr.to_socket_addrs().map_err(|e| err(e.to_string()))?);
        if addrs.len() == before {
            return Err(err("resolves to no address".into()));
        }
    }
    Ok(addrs)
}

impl Args {
    /// Checks the arguments, resolves `--addr`, and picks the mode from whether stdin
    /// and stdout are a terminal.
    pub fn into_config(self) -> Result<Config, UsageError> {
        if let Some(nick) = &self.nick {
            validate_nick(nick).map_err(UsageError::Nick)?;
        }
        validate_room(&self.room).map_err(UsageError::Room)?;
        let drain_timeout = seconds("wait", self.wait, true)?;
        // A zero bound would fail every connect ("cannot set a 0 duration timeout").
        let connect_timeout = seconds("connect-timeout", self.connect_timeout, false)?;
        let reconnect = (!self.no_reconnect).then(|| ReconnectPolicy::new(self.reconnect_for));
        // Last: the only check that may have to wait (for a name server).
        let addrs = resolve(&self.addr)?;
        let tls = if self.tls {
            let trust = self.ca.map_or(Trust::System, Trust::Ca);
            Some(TlsSettings {
                config: client_config(&trust).map_err(UsageError::Tls)?,
                name: server_name(self.addr.split(',').next().unwrap_or_default().trim())
                    .map_err(UsageError::Tls)?,
            })
        } else {
            None
        };
        let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        Ok(Config {
            addr: self.addr,
            addrs,
            nick: self.nick,
            room: self.room,
            mode: if terminal && !self.plain {
                Mode::Interactive
            } else {
                Mode::Piped
            },
            drain_timeout,
            connect_timeout,
            reconnect,
            tls,
        })
    }
}

/// clap's report of a refused command line on one line ([`shared::cli::one_line`]).
fn clap_message(error: &clap::Error) -> String {
    // `StyledStr`'s `Display` is plain text, without colour codes.
    shared::cli::one_line(&error.render().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let args = Args::parse_from(["chat"]);
        assert_eq!(args.addr, "127.0.0.1:7878");
        assert_eq!(args.room, "lobby");
        let config = args.into_config().unwrap();
        assert_eq!(config.drain_timeout, Duration::from_secs(2));
        assert_eq!(config.addrs, ["127.0.0.1:7878".parse().unwrap()]);
        let nodes = Args::parse_from(["chat", "--addr", "127.0.0.1:1, 127.0.0.1:2"]);
        let nodes = nodes.into_config().unwrap().addrs;
        assert_eq!(
            nodes,
            [
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap()
            ]
        );
        let refused = |args: &[&str]| Args::parse_from(args).into_config().unwrap_err();
        assert!(matches!(
            refused(&["chat", "--nick", "bad nick"]),
            UsageError::Nick(_)
        ));
        assert!(matches!(
            refused(&["chat", "--room", "a\x1bb"]),
            UsageError::Room(_)
        ));
        assert_eq!(
            refused(&["chat", "--wait=-1"]).to_string(),
            "--wait must be a non-negative number of seconds, not -1"
        );
        assert_eq!(
            refused(&["chat", "--connect-timeout", "0"]).to_string(),
            "--connect-timeout must be a positive number of seconds, not 0"
        );
        assert!(matches!(
            refused(&["chat", "--addr", "127.0.0.1"]),
            UsageError::Addr { .. }
        ));
        let config = Args::parse_from(["chat", "--wait", "0"]).into_config();
        assert_eq!(config.unwrap().drain_timeout, Duration::ZERO);
    }

    #[test]
    fn reconnect_is_on_by_default_for_five_minutes() {
        let config = Args::parse_from(["chat"]).into_config().unwrap();
        let policy = config.reconnect.unwrap();
        assert_eq!(policy.give_up_after, Duration::from_secs(300));
        assert_eq!(policy.first_delay, Duration::from_millis(250));
        assert_eq!(policy.max_delay, Duration::from_secs(8));
        let config = Args::parse_from(["chat", "--reconnect-for", "90s"]).into_config();
        assert_eq!(
            config.unwrap().reconnect.unwrap().give_up_after,
            Duration::from_secs(90)
        );
        let config = Args::parse_from(["chat", "--no-reconnect"]).into_config();
        assert!(config.unwrap().reconnect.is_none());
        assert!(Args::try_parse_from(["chat", "--reconnect-for", "soon"]).is_err());
    }

    #[test]
    fn addr_takes_a_host_name() {
        let config = Args::parse_from(["chat", "--addr", "localhost:7878"])
            .into_config()
            .unwrap();
        assert_eq!(config.addr, "localhost:7878");
        assert!(!config.addrs.is_empty());
        for addr in &config.addrs {
            assert!(addr.ip().is_loopback() && addr.port() == 7878, "{addr}");
        }
    }
}
