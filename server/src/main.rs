//! `server`: the chat server's command line. Parses flags into a [`Config`], sets up
//! logging and signal handling, and runs [`Server`].

use std::io::{BufRead, IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use server::{AccountsError, ClusterConfig, Config, HashCost, Server, ShutdownHandle, TlsFiles};
use shared::Limits;
use shared::Password;
use shared::units::{parse_duration, parse_size};

/// The longest batching window `--coalesce` accepts: past it the added latency is
/// noticeable to people.
const MAX_COALESCE: Duration = Duration::from_millis(10);

/// Multi-room TCP chat server with a fixed worker pool.
///
/// Speaks the binary protocol (programs) and a line-based text protocol (people with
/// nc or telnet) on one port. Prints `listening on ADDR:PORT` once bound.
///
/// Exit codes: 0 after a graceful shutdown, 1 on a runtime failure (the address is
/// taken, a worker died), 2 on a usage error.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Manage the accounts file instead of serving.
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// Registered accounts: a file of `NICK HASH` lines (argon2id PHC strings, `#`
    /// comments), written by `server account add`. Their nicks are reserved for
    /// connections logged in to them. SIGHUP reads the file again (a file that fails
    /// to load is logged and the accounts in use stay).
    #[arg(long, value_name = "FILE")]
    accounts: Option<PathBuf>,
    /// Serve a connection that has not logged in only Hello, Login, ping/pong and
    /// goodbye (Error 213 for anything else). Needs --accounts.
    #[arg(long, requires = "accounts")]
    require_login: bool,
    /// Check passwords sent over plaintext from any address. Without it a password is
    /// accepted over plaintext from loopback only, else only over TLS.
    #[arg(long)]
    allow_plaintext_login: bool,
    /// Join the cluster of every node that uses this Redis (redis://HOST:PORT[/DB]):
    /// nicks, rooms, room history and direct messages are shared. Without it the
    /// server is a single node keeping everything in memory.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// This node's name in the cluster (letters, digits, `.`, `_`, `-`; at most 64)
    /// [default: HOSTNAME-PID].
    #[arg(long, requires = "redis")]
    node_name: Option<String>,
    /// A node that has not renewed its lease in Redis for this long is taken for dead:
    /// its users' nicks are freed and they leave their rooms.
    #[arg(long, default_value = "5s", value_parser = parse_duration, requires = "redis")]
    node_lease: Duration,
    /// Address to listen on: IP:PORT, [IPv6]:PORT or HOST:PORT (the first address the
    /// name resolves to); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7878", value_parser = parse_bind)]
    bind: SocketAddr,
    /// Listen even if another server holds the address with SO_REUSEPORT, and let the
    /// kernel spread new connections between them (several nodes on one host, or a
    /// hand-over restart). Without it a taken address is an error.
    #[arg(long)]
    share_port: bool,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// SIGHUP reads both files again: new handshakes use them, open sessions go on.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Close a TLS connection whose handshake has not finished this long after it was
    /// accepted.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    tls_handshake_timeout: Duration,
    /// Worker threads [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Listen backlog.
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
    /// Connections served at once; newcomers past it get error 300 and are closed.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Largest binary frame (type byte plus body), e.g. 1MiB.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_frame: usize,
    /// Longest text line, newline excluded, e.g. 4KiB.
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    max_line: usize,
    /// Queued outbound bytes per connection before it is closed as a slow consumer.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_pending: usize,
    /// Room messages kept per room, for /history and for resuming clients; 0 keeps
    /// none.
    #[arg(long, default_value_t = 1000)]
    history_messages: usize,
    /// Bytes of history kept per room (messages plus 4 bytes each); at most half of
    /// --max-pending, so a full replay always fits a connection's queue.
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    history_room_bytes: usize,
    /// Bytes of history kept by all rooms together; past it the oldest messages of
    /// the largest rooms go first.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    history_budget: usize,
    /// Bytes held in incomplete inbound frames, all connections together; past it a
    /// connection holding 16KiB or more of incomplete input is not read until it falls.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_inbound: usize,
    /// Close a connection whose frame or line stays incomplete this long (error 302);
    /// 0 disables.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    frame_timeout: Duration,
    /// Messages per second per connection (token bucket); 0 disables the limit.
    #[arg(long, default_value_t = 1000)]
    rate_limit: u32,
    /// Messages a connection may send in a burst before the rate limit applies.
    #[arg(long, default_value_t = 2000)]
    rate_burst: u32,
    /// Close a connection held back by the rate limit this long without a break (error
    /// 303).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    flood_close_after: Duration,
    /// Batching window under load, e.g. 100us: while events arrive at two or more per
    /// window, a worker waits this long between turns and answers the window's messages
    /// together, for less CPU per message and up to a window more latency on each
    /// worker a message passes. 0 disables it.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    coalesce: Duration,
    /// Greet a connection that has sent nothing this long as a person, in text mode
    /// (binary clients send their Hello at once); 0 waits for a first line.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    greet_after: Duration,
    /// Close connections silent this long (a ping goes out at half); 0 disables.
    #[arg(long, default_value = "240s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// How long a graceful shutdown waits for queued output to drain.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// Interval between summary log lines; 0 disables them.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    log_interval: Duration,
    /// Serve Prometheus metrics on GET /metrics at this address (IP:PORT or
    /// HOST:PORT; port 0 picks a free one); prints `metrics on ADDR`.
    #[arg(long, value_parser = parse_bind)]
    metrics: Option<SocketAddr>,
    /// Log line format: `text` for people, `json` for one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output (-q: warnings and errors only).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Add or remove an account in the accounts file (rewritten atomically).
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
}

/// What `server account` does.
#[derive(Debug, clap::Subcommand)]
enum AccountAction {
    /// Add the account NICK, or set its password. The password is read from standard
    /// input (one line) when it is not a terminal, else prompted twice without echo.
    Add {
        /// The account's nick.
        nick: String,
        /// The accounts file (created if missing).
        #[arg(long, value_name = "FILE")]
        accounts: Option<PathBuf>,
        /// argon2id memory cost of the new hash, in KiB (at most 65536).
        #[arg(long, default_value_t = HashCost::default().memory_kib)]
        argon2_memory_kib: u32,
        /// argon2id passes of the new hash (at most 10).
        #[arg(long, default_value_t = HashCost::default().passes)]
        argon2_passes: u32,
    },
    /// Remove the account NICK.
    Remove {
        /// The account's nick.
        nick: String,
        /// The accounts file.
        #[arg(long, value_name = "FILE")]
        accounts: Option<PathBuf>,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        let defaults = Config::default();
        let workers = self.workers.unwrap_or(defaults.workers);
        anyhow::ensure!(workers >= 1, "--workers must be at least 1");
        anyhow::ensure!(
            self.max_frame >= 16,
            "--max-frame must be at least 16 bytes"
        );
        anyhow::ensure!(self.max_line >= 16, "--max-line must be at least 16 bytes");
        anyhow::ensure!(
            self.max_inbound >= self.max_frame,
            "--max-inbound must be at least --max-frame"
        );
        anyhow::ensure!(
            self.coalesce <= MAX_COALESCE,
            "--coalesce must be at most {}ms",
            MAX_COALESCE.as_millis()
        );
        anyhow::ensure!(
            self.history_room_bytes <= self.max_pending / 2,
            "--history-room-bytes must be at most half of --max-pending, so a full replay \
             fits a connection's queue"
        );
        anyhow::ensure!(
            !self.flood_close_after.is_zero(),
            "--flood-close-after must be more than 0"
        );
        anyhow::ensure!(
            !self.tls_handshake_timeout.is_zero(),
            "--tls-handshake-timeout must be more than 0"
        );
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        };
        let cluster = match self.redis {
            None => None,
            Some(url) => {
                let mut cluster = ClusterConfig::new(url);
                if let Some(name) = self.node_name {
                    anyhow::ensure!(
                        server::valid_node_name(&name),
                        "--node-name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
                    );
                    cluster.node_name = name;
                }
                anyhow::ensure!(
                    self.node_lease >= Duration::from_millis(300),
                    "--node-lease must be at least 300ms"
                );
                cluster.lease = self.node_lease;
                Some(cluster)
            }
        };
        Ok(Config {
            bind: self.bind,
            share_port: self.share_port,
            tls,
            tls_handshake_timeout: self.tls_handshake_timeout,
            metrics: self.metrics,
            workers,
            backlog: self.backlog,
            max_connections: self.max_connections,
            limits: Limits {
                max_frame: self.max_frame,
                max_line: self.max_line,
            },
            max_pending: self.max_pending,
            history_messages: self.history_messages,
            history_room_bytes: self.history_room_bytes,
            history_budget: self.history_budget,
            max_inbound: self.max_inbound,
            frame_timeout: self.frame_timeout,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            flood_close_after: self.flood_close_after,
            coalesce: self.coalesce,
            greet_after: self.greet_after,
            idle_timeout: self.idle_timeout,
            shutdown_timeout: self.shutdown_timeout,
            log_interval: self.log_interval,
            accounts: self.accounts,
            require_login: self.require_login,
            allow_plaintext_login: self.allow_plaintext_login,
            cluster,
        })
    }
}

fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A log line that cannot be written (stderr closed) is dropped, not reported with
    // `eprintln!`, which would panic the thread that logged it (the signal thread too).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// `IP:PORT` or `HOST:PORT`, resolved to its first address.
fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text}: {e} (expected HOST:PORT or IP:PORT)"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet, cli.log_format);
    if let Some(Subcommand::Account { action }) = cli.command.take() {
        return account(action, cli.accounts);
    }
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("server: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `server account add|remove`: exit 0 when the file was written, 2 on a usage
/// error (no file named, a bad nick, an empty password), 1 otherwise.
fn account(action: AccountAction, top_level_file: Option<PathBuf>) -> ExitCode {
    let (file, result) = match action {
        AccountAction::Add {
            nick,
            accounts,
            argon2_memory_kib,
            argon2_passes,
        } => {
            let Some(file) = accounts.or(top_level_file) else {
                eprintln!("server: account add needs --accounts FILE");
                return ExitCode::from(2);
            };
            let cost = HashCost {
                memory_kib: argon2_memory_kib,
                passes: argon2_passes,
            };
            let result = match read_password(&nick) {
                Ok(password) => server::add_account(&file, &nick, &password, cost),
                Err(e) => {
                    eprintln!("server: cannot read the password: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            (file, result)
        }
        AccountAction::Remove { nick, accounts } => {
            let Some(file) = accounts.or(top_level_file) else {
                eprintln!("server: account remove needs --accounts FILE");
                return ExitCode::from(2);
            };
            let result = server::remove_account(&file, &nick);
            (file, result)
        }
    };
    match result {
        Ok(()) => {
            eprintln!(
                "server: {} written; SIGHUP a running server to use it",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e @ AccountsError::Invalid(_)) => {
            eprintln!("server: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The new password: one line of standard input when it is not a terminal (scripts),
/// else typed twice at a prompt without echo.
fn read_password(nick: &str) -> anyhow::Result<Password> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {nick}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        return Ok(Password::new(first));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Password::new(line))
}

fn run(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let tls = config.tls.is_some();
    let server = Server::bind(config).with_context(|| format!("cannot listen on {bind}"))?;
    handle_signals(server.shutdown_handle(), tls)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", server.local_addr())?;
    if let Some(addr) = server.metrics_addr() {
        writeln!(stdout, "metrics on {addr}")?;
    }
    stdout.flush()?;
    drop(stdout);
    server.run().context("server failed")
}

/// Signals, on a thread of its own that waits for them: Ctrl+C (SIGINT) and SIGTERM
/// start a graceful shutdown, a second one exits at once with 130. SIGHUP reloads the
/// TLS certificate and key when serving TLS, and the accounts file with --accounts (a
/// failed reload is logged and what was in use stays); without either it shuts down
/// like SIGTERM.
fn handle_signals(handle: ShutdownHandle, tls: bool) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let mut stops = 0;
            for origin in signals.forever() {
                let signal = origin.signal;
                // Who sent it, for the log: a process manager, a person, a script.
                let sender = origin.process.map(|p| p.pid);
                let accounts = handle.has_accounts();
                if signal == SIGHUP && (tls || accounts) {
                    if tls {
                        match handle.reload_tls() {
                            Ok(()) => tracing::info!(sender, "SIGHUP: TLS certificate reloaded"),
                            Err(e) => tracing::warn!(
                                sender,
                                "SIGHUP: TLS certificate not reloaded, the old one stays: {e}"
                            ),
                        }
                    }
                    if accounts {
                        match handle.reload_accounts() {
                            Ok(n) => {
                                tracing::info!(sender, accounts = n, "SIGHUP: accounts reloaded")
                            }
                            Err(e) => tracing::warn!(
                                sender,
                                "SIGHUP: accounts not reloaded, the ones in use stay: {e}"
                            ),
                        }
                    }
                    continue;
                }
                stops += 1;
                if stops > 1 {
                    std::process::exit(130);
                }
                // Shut down first: writing to a closed stderr must not stop the shutdown.
                handle.shutdown();
                tracing::info!(signal, sender, "shutdown requested by a signal");
                let _ = writeln!(
                    std::io::stderr(),
                    "server: shutting down (press Ctrl+C again to exit at once)"
                );
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
