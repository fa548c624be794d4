//! `hostile`: hostile clients, a stats probe and a shutdown drain checker for the chat
//! server's reliability suite. All logic lives in the `soak` library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use soak::cli::{Cli, Command, drain_config, resolve};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hostile: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
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
