//! Command-line arguments and the validated [`Config`] they become.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use shared::names::{validate_nick, validate_room};

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
#[command(name = "chat", version, about, long_about = None)]
pub struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, default_value_t = format!("127.0.0.1:{}", shared::DEFAULT_PORT))]
    pub addr: String,
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
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server address, HOST:PORT.
    pub addr: String,
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
}

impl Config {
    /// A piped-mode configuration for `addr` with the defaults, for tests and tools.
    pub fn piped(addr: impl Into<String>) -> Self {
        Config {
            addr: addr.into(),
            nick: None,
            room: "lobby".to_owned(),
            mode: Mode::Piped,
            drain_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{name} must be a non-negative number of seconds"))
}

impl Args {
    /// Checks the arguments and picks the mode from whether stdin and stdout are a
    /// terminal.
    pub fn into_config(self) -> Result<Config, String> {
        if let Some(nick) = &self.nick {
            validate_nick(nick).map_err(|e| format!("--nick: {e}"))?;
        }
        validate_room(&self.room).map_err(|e| format!("--room: {e}"))?;
        let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        Ok(Config {
            addr: self.addr,
            nick: self.nick,
            room: self.room,
            mode: if terminal && !self.plain {
                Mode::Interactive
            } else {
                Mode::Piped
            },
            drain_timeout: seconds("wait", self.wait)?,
            connect_timeout: seconds("connect-timeout", self.connect_timeout)?,
        })
    }
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
        assert!(
            Args::parse_from(["chat", "--nick", "bad nick"])
                .into_config()
                .is_err()
        );
        assert!(
            Args::parse_from(["chat", "--room", "a\x1bb"])
                .into_config()
                .is_err()
        );
        assert!(
            Args::parse_from(["chat", "--wait=-1"])
                .into_config()
                .is_err()
        );
    }
}
