//! Why a command line is refused ([`CliError`]), and how numbers and clap's own
//! errors are shown in its messages.

use crate::config::{ConfigError, MAX_RATE, MIN_RATE};

/// Why command-line arguments do not make a runnable configuration: a usage error, which
/// `loadgen` reports as one line and exit code 2 ([`crate::exit::USAGE`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// clap refused the arguments: an unknown flag, a value of the wrong type, a missing
    /// argument.
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
    /// `--total-rate` is not positive and finite, or gives each client a rate outside
    /// what `--rate` accepts.
    #[error(
        "--total-rate must be between {} and {} messages per second for {clients} clients, not {total}",
        plain(MIN_RATE * f64::from(*clients)), plain(MAX_RATE * f64::from(*clients))
    )]
    TotalRate {
        /// What was given.
        total: f64,
        /// `--clients`.
        clients: u32,
    },
    /// The TLS flags do not make a client configuration (an unreadable `--ca`, no
    /// system roots, an address whose host no certificate can name).
    #[error("--tls: {0}")]
    Tls(shared::tls::TrustError),
    /// `--start-at` is in the past, too far ahead, or too soon for the clients to
    /// connect at `--connect-rate` before it.
    #[error("--start-at {given}: {reason}")]
    StartAt {
        /// What was given.
        given: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The flags combine into an unrunnable configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A rate as a person writes it: at most six decimals, no trailing zeros.
pub(super) fn plain(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// clap's report of a refused command line on one line ([`shared::cli::one_line`]).
fn clap_message(error: &clap::Error) -> String {
    // `StyledStr`'s `Display` is plain text, without colour codes.
    shared::cli::one_line(&error.render().to_string())
}
