//! `loadgen`: parses the command line and hands over to the library
//! (`loadgen::run`, `loadgen::compare`, `loadgen::plot`, `loadgen::html_report`,
//! `loadgen::merge`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use loadgen::cli::{Cli, CliError, Command, RunArgs};
use loadgen::{RunError, StopSignal, exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version: clap prints them to stdout and exits 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => return fail(&CliError::Parse(e).into()),
    };
    let outcome = match cli.command {
        Some(Command::Compare {
            files,
            include_interrupted,
        }) => compare(&files, include_interrupted),
        Some(Command::Report {
            files,
            output,
            include_interrupted,
        }) => report(&files, &output, include_interrupted),
        Some(Command::Plot {
            files,
            output,
            title,
            uncorrected,
            y_scale,
        }) => plot(&loadgen::plot::PlotRequest {
            files,
            output,
            title,
            uncorrected,
            y_scale,
        }),
        Some(Command::Merge {
            runs,
            output,
            label,
        }) => merge(&runs, &output, label.as_deref()),
        None => load(cli.run),
    };
    match outcome {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => fail(&e),
    }
}

/// Reports `e` on one line; a command line that cannot run exits 2, any other failure 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("loadgen: error: {e:#}");
    let usage = e.is::<CliError>()
        || matches!(e.downcast_ref::<RunError>(), Some(RunError::Config(_)))
        || matches!(
            e.downcast_ref::<loadgen::merge::MergeError>(),
            Some(loadgen::merge::MergeError::BadLabel(_))
        );
    ExitCode::from(if usage { exit::USAGE } else { exit::ERROR } as u8)
}

fn load(args: RunArgs) -> anyhow::Result<i32> {
    let config = args.into_config()?;
    for warning in loadgen::runner::preflight(&config) {
        eprintln!("loadgen: warning: {warning}");
    }
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
    print!(
        "{}",
        loadgen::report::render_thresholds(&report.summary, &config.thresholds)
    );
    Ok(report.verdict.exit_code())
}

fn compare(files: &[std::path::PathBuf], include_interrupted: bool) -> anyhow::Result<i32> {
    let runs = loadgen::compare::load(files)?;
    let (runs, left_out) = loadgen::compare::select(runs, include_interrupted);
    print!("{}", loadgen::compare::render(&runs));
    print!("{}", loadgen::compare::left_out_note(left_out));
    Ok(exit::OK)
}

fn report(
    files: &[std::path::PathBuf],
    output: &std::path::Path,
    include_interrupted: bool,
) -> anyhow::Result<i32> {
    let (runs, left_out) = loadgen::html_report::load(files, include_interrupted)?;
    loadgen::html_report::write(&runs, files, output)?;
    println!("wrote {} ({} runs)", output.display(), runs.len());
    print!("{}", loadgen::compare::left_out_note(left_out));
    Ok(exit::OK)
}

fn merge(runs: &[String], output: &std::path::Path, label: Option<&str>) -> anyhow::Result<i32> {
    let merged = loadgen::merge::merge(runs, output, label)?;
    for warning in &merged.warnings {
        eprintln!("loadgen: warning: {warning}");
    }
    println!(
        "merged {} runs: {}",
        merged.inputs.len(),
        merged.inputs.join(" ")
    );
    print!(
        "{}",
        loadgen::report::render(&merged.summary, &merged.files)
    );
    Ok(exit::OK)
}

fn plot(request: &loadgen::plot::PlotRequest) -> anyhow::Result<i32> {
    let outcome = loadgen::plot::plot(request)?;
    println!("wrote {}: {}", request.output.display(), outcome.title);
    match outcome.left_out_uncorrected {
        0 => {}
        1 => println!("left out 1 uncorrected spectrum (--uncorrected draws it)"),
        n => println!("left out {n} uncorrected spectra (--uncorrected draws them)"),
    }
    Ok(exit::OK)
}
