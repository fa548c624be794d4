//! `hostile`: hostile clients, a stats probe, a shutdown drain checker and a round-trip
//! timer for the chat server's reliability suite. All logic lives in the `soak` library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use soak::HostileError;
use soak::cli::{Cli, CliError, Command, drain_config, resolve, rtt_config};

/// Exit code of a command line that cannot run (clap's own code).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version: clap prints them to stdout and exits 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => return fail(&CliError::Parse(e).into()),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Reports `e` on one line; a command line that cannot run exits 2, any other failure 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("hostile: {e:#}");
    let usage =
        e.is::<CliError>() || matches!(e.downcast_ref::<HostileError>(), Some(HostileError::Empty));
    if usage {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::FAILURE
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Stats { addr, timeout }) => {
            let addr = resolve(&addr)?;
            let stats = soak::fetch_stats(addr, timeout)
                .with_context(|| format!("cannot read stats from {addr}"))?;
            for (name, value) in stats {
                println!("{name}={value}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Drain {
            addr,
            clients,
            rate,
            max_duration,
        }) => {
            let config = drain_config(&addr, clients, rate, max_duration)?;
            let report = soak::drain::run(&config);
            print!("{report}");
            Ok(if report.problems().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Rtt {
            addr,
            request,
            count,
            interval,
            timeout,
        }) => {
            let config = rtt_config(&addr, &request, count, interval, timeout)?;
            let report = soak::rtt::run(&config);
            print!("{report}");
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            let check = cli.run.check;
            let config = cli.run.into_config()?;
            let report = soak::run(&config)?;
            print!("{report}");
            Ok(if check && !report.all_ok() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
