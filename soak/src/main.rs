//! `hostile`: hostile clients, a stats probe, a shutdown drain checker, a room flood and
//! a round-trip timer for the chat server's reliability suite. All logic lives in the `soak` library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use soak::HostileError;
use soak::cli::{Cli, CliError, Command, drain_config, fanout_config, resolve, rtt_config};
use soak::fanout::FanoutConfig;

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
        Some(Command::Stats {
            addr,
            timeout,
            watch: None,
            ..
        }) => {
            let addr = resolve(&addr)?;
            let stats = soak::fetch_stats(addr, timeout)
                .with_context(|| format!("cannot read stats from {addr}"))?;
            for (name, value) in stats {
                println!("{name}={value}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Stats {
            addr,
            timeout,
            watch: Some(interval),
            duration,
        }) => {
            let addr = resolve(&addr)?;
            soak::watch_stats(addr, timeout, interval, duration, |at, stats| {
                let mut line = format!("t_ms={}", at.as_millis());
                for (name, value) in stats {
                    line.push_str(&format!(" {name}={value}"));
                }
                println!("{line}");
            })
            .with_context(|| format!("cannot read stats from {addr}"))?;
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
        Some(Command::Fanout {
            addr,
            members,
            senders,
            room,
            size,
            duration,
            drain_timeout,
            join_timeout,
        }) => {
            let config = FanoutConfig {
                members,
                senders,
                room,
                size,
                duration,
                drain_timeout,
                join_timeout,
                ..FanoutConfig::default()
            };
            let config = fanout_config(&addr, config)?;
            let report = soak::fanout::run(&config);
            print!("{report}");
            Ok(if report.ok() {
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
