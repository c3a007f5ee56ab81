//! inventory-loadgen: drives a lockstock server over HTTP (SPEC §2) through the scenarios
//! of SPEC §4 and reports what it measured, as a table and as JSON.

mod audit;
mod chart;
mod cli;
mod client;
mod fairness;
mod health;
mod read_back;
mod report;
mod run;
mod scenarios;
mod setup;
mod stats;
mod token_cache;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// Exit status when the server oversold or lost purchases (or failed its reconciliation).
const EXIT_INVARIANT_BROKEN: u8 = 3;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(message) = cli.validate() {
        cli::Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(&cli)) {
        Ok(report) if report.ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_INVARIANT_BROKEN),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
