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
mod telemetry;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;

/// Parses arguments, runs the command, prints errors as one line.
fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // Colour for people at a terminal only, and never under NO_COLOR
    // (https://no-color.org): escapes in a log file are noise.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(colour)
        .with_writer(output::LogWriter { colour })
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
            eprintln!("wfhost: error: {}", output::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
