//! `loadgen`: parses the command line and hands over to the library
//! (`loadgen::run`, `loadgen::compare`, `loadgen::plot`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use loadgen::cli::{Cli, Command, RunArgs};
use loadgen::{StopSignal, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Compare { files }) => compare(&files),
        Some(Command::Plot {
            files,
            output,
            title,
        }) => plot(&files, &output, &title),
        None => load(cli.run),
    };
    match outcome {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(exit::ERROR as u8)
        }
    }
}

fn load(args: RunArgs) -> anyhow::Result<i32> {
    let config = args.into_config()?;
    let stop = StopSignal::new();
    let handler = stop.clone();
    ctrlc::set_handler(move || handler.stop()).context("installing the Ctrl+C handler")?;
    let report = loadgen::run(&config, &stop)?;
    for warning in &report.warnings {
        eprintln!("loadgen: warning: {warning}");
    }
    print!(
        "{}",
        loadgen::report::render(&report.summary, &report.files)
    );
    Ok(report.verdict.exit_code())
}

fn compare(files: &[std::path::PathBuf]) -> anyhow::Result<i32> {
    let runs = loadgen::compare::load(files)?;
    print!("{}", loadgen::compare::render(&runs));
    Ok(exit::OK)
}

fn plot(
    files: &[std::path::PathBuf],
    output: &std::path::Path,
    title: &str,
) -> anyhow::Result<i32> {
    loadgen::plot::plot(files, output, title)?;
    println!("wrote {}", output.display());
    Ok(exit::OK)
}
