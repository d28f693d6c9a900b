//! One module per kind of subcommand, as `wfhost` dispatches them: those
//! that open the store (`run`, `recover`, `serve`, `list`, `show`,
//! `delete`, `topic`) and those that do not (`dev`, `cancel`).

mod cancel;
mod dev;
mod inspect;
mod run;
mod serve;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use wf_host::config::Settings;
use wf_host::store::WorkflowStore;

use crate::args::{Cli, Command};
use crate::{progress, settings};

/// Runs the command `cli` asks for.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let backends = wf_store_kafka::backends();
    // Read once: it gives both the store and the modules' access policy.
    let mut settings = settings::resolve(&backends, &cli.store)?;
    if matches!(cli.command, Command::Topic) {
        // `topic` reports the whole topic, so it reads it all: the local
        // state would have it read only the records since its checkpoint.
        settings.set("kafka.state_dir", "");
    }
    match &cli.command {
        Command::Dev => return dev::dev(&backends, &settings).await,
        Command::Cancel { id, server } => return cancel::cancel(server, id).await,
        Command::Signal {
            id,
            name,
            payload,
            server: Some(server),
        } => return cancel::signal(server, id, name, payload.as_deref()).await,
        Command::Query {
            id,
            name,
            args,
            module: None,
            server,
            ..
        } => return cancel::query(server, id, name, args).await,
        _ => {}
    }
    // Installed before the store opens, so that its replay is recorded.
    let metrics = match &cli.command {
        Command::Serve { .. } => Some(crate::telemetry::install_metrics()?),
        _ => None,
    };
    let bar = progress::OpenBar::new();
    let store = backends.open(&settings, &bar.report()).await;
    drop(bar);
    let store = store?;
    // Closed whatever the command did: a store left open would leave its
    // threads reading from a broker (a mock one, here) going away.
    let result = on_store(cli, &settings, &store, metrics).await;
    store.close().await.context("closing the store")?;
    result
}

/// Runs a command that needs the store.
async fn on_store(
    cli: Cli,
    settings: &Settings,
    store: &Arc<dyn WorkflowStore>,
    metrics: Option<wf_http::MetricsText>,
) -> anyhow::Result<ExitCode> {
    let output = cli.output;
    match cli.command {
        Command::Run {
            module,
            id,
            input,
            sandbox,
        } => {
            let (host, module) = sandbox.host(store, &module, settings)?;
            run::run(&host, &module, &id, &input, output).await
        }
        Command::Recover {
            module,
            prefix,
            resume_other_builds,
            sandbox,
        } => {
            let (host, module) = sandbox.host(store, &module, settings)?;
            run::recover(&host, &module, prefix, resume_other_builds, output).await
        }
        Command::Serve {
            module,
            listen,
            recover,
            server,
            sandbox,
        } => {
            let config = server.config(store)?;
            let (host, module) = sandbox.host(store, &module, settings)?;
            let mut options = wf_http::ApiOptions::default()
                .show_store(server.status_shows_store)
                .console(!server.no_console);
            if let Some(metrics) = metrics {
                options = options.metrics(metrics);
            }
            serve::serve(host, module, &listen, recover, (config, options)).await
        }
        Command::List {
            status,
            limit,
            after,
            prefix,
        } => inspect::list(store, status, limit, after, prefix, output).await,
        Command::Show { id } => inspect::show(store, &id, output).await,
        Command::Delete { id } => inspect::delete(store, &id).await,
        Command::Signal {
            id,
            name,
            payload,
            server: None,
        } => {
            let host = wf_host::Host::new(store.clone())?;
            let version = host.signal(&id, &name, payload.as_deref()).await?;
            eprintln!("wfhost: signal {name:?} recorded for {id:?} (version {version})");
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            id,
            name,
            args,
            module: Some(module),
            sandbox,
            ..
        } => {
            let (host, module) = sandbox.host(store, &module, settings)?;
            let answer = host.query_workflow(&module, &id, &name, &args).await?;
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Topic => inspect::topic(store, output),
        Command::Dev
        | Command::Cancel { .. }
        | Command::Signal {
            server: Some(_), ..
        }
        | Command::Query { module: None, .. } => {
            unreachable!("handled before a store is opened")
        }
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_shutdown() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}
