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
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Parses arguments, runs the command, prints errors as one line.
fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // Colour for people at a terminal only, and never under NO_COLOR
    // (https://no-color.org): escapes in a log file are noise.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Traces, when asked for: set up before the runtime starts (the
    // exporter's client runs on a thread of its own).
    let traces = match cli.otlp_endpoint.as_deref().map(telemetry::Traces::start) {
        None => None,
        Some(Ok(traces)) => Some(traces),
        Some(Err(e)) => {
            eprintln!("wfhost: error: {}", output::error_line(&e));
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(output::LogWriter { colour })
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    tracing_subscriber::registry()
        .with(logs)
        .with(traces.as_ref().map(telemetry::Traces::layer))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wfhost: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfhost: error: {}", output::error_line(&e));
            ExitCode::FAILURE
        }
    };
    drop(runtime);
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}
