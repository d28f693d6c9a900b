//! `wfhost`: the command-line host for wf workflow modules.
//!
//! `args` holds the command line, `settings` turns it into a store
//! configuration and a host, `commands` runs each subcommand, `output`
//! prints states and reports, and `progress` shows a long replay.

mod args;
mod commands;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::Parser as _;

/// Parses arguments, runs the command, prints errors as one line.
fn main() -> ExitCode {
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wfhost: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfhost: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
