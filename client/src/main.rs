//! `chat`: parses the command line, routes Ctrl+C (and SIGTERM/SIGHUP) to a clean
//! goodbye, runs the client, and turns how it ended into one stderr line and an exit
//! code.

use std::process::ExitCode;

use clap::Parser;
use client::cli::UsageError;
use client::error::{EXIT_LOCAL, EXIT_USAGE};
use client::{Args, Client};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        // --help and --version: clap prints them to stdout and exits 0.
        Err(e) if !e.use_stderr() => e.exit(),
        args => args.map_err(UsageError::Parse),
    };
    let config = match args.and_then(Args::into_config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let client = Client::new(config);
    let interrupter = client.interrupter();
    // Installed before the line editor exists: rustyline saves this handler and puts
    // it back when the editor is dropped.
    if let Err(e) = ctrlc::set_handler(move || interrupter.interrupt()) {
        eprintln!("chat: cannot handle Ctrl+C: {e}");
        return ExitCode::from(EXIT_LOCAL);
    }
    match client.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
