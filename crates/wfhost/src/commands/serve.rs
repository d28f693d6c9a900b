//! `wfhost serve`: the HTTP API of one module until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context as _;
use wf_host::{Host, Module, RecoverOptions};

use super::wait_for_shutdown;

/// `wfhost serve`: the HTTP API until Ctrl-C or SIGTERM, then waits for the
/// requests in flight (at most the configured grace). Workflows started without waiting and still running
/// are left `running` in the store, for `recover`.
pub async fn serve(
    host: Host,
    module: Module,
    listen: &str,
    recover: bool,
    (config, options): (wf_http::ServerConfig, wf_http::ApiOptions),
) -> anyhow::Result<ExitCode> {
    // In a group, ownership decides: the partitions this host is given
    // (now and whenever a host leaves) have their running workflows taken up.
    let follower = host.follow_ownership(&module);
    if follower.is_some() {
        eprintln!(
            "wfhost serve: in group {}; taking up the running workflows of the partitions it assigns",
            host.store_for(&module)
                .ownership()
                .map(|o| o.group().to_owned())
                .unwrap_or_default()
        );
    } else {
        // A run that cannot be resumed is reported, not fatal: the others
        // are resumed and the API serves. Suspended runs are kept waiting
        // (their due times rebuilt) with or without --recover: waking
        // them when due is what serving them means.
        let options = RecoverOptions::default().waiting_only(!recover);
        let recovery = host.recover(&module, options).await?;
        if recover {
            super::run::report(&host, &module, &recovery);
        } else if !recovery.waiting.is_empty() {
            eprintln!(
                "wfhost serve: {} suspended workflows kept waiting for their signals or times",
                recovery.waiting.len()
            );
        }
    }
    // Retention, when configured, is enforced by serving hosts only: the
    // one-shot commands (list, show, topic) never delete.
    if let Ok(kafka) = wf_store_kafka::as_kafka(host.store_for(&module))
        && kafka.start_retention()
    {
        eprintln!("wfhost serve: deleting finished workflows past their retention period");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let app = wf_http::router_with(host.clone(), module, options);
    println!("listening: http://{address}");
    use std::io::Write as _;
    std::io::stdout().flush().context("writing to stdout")?;
    let shutdown = async {
        if let Err(e) = wait_for_shutdown().await {
            eprintln!("wfhost serve: {e:#}");
        }
    };
    let served = wf_http::serve(listener, app, &config, shutdown)
        .await
        .context("serving HTTP")?;
    if served.cut > 0 {
        eprintln!(
            "wfhost serve: closed {} connections still busy after the {} s shutdown grace",
            served.cut,
            config.shutdown_grace.as_secs_f64()
        );
    }
    if let Some(follower) = follower {
        // Hand the running workflows over: their next owner resumes them.
        follower.abort();
        host.abandon_all().await;
    }
    let running = host.running();
    if !running.is_empty() {
        // Their `running` states stay stored: `wfhost recover` (or
        // `serve --recover`) takes them up again.
        eprintln!(
            "wfhost serve: stopped with {} workflows running; they stay `running` for `wfhost recover`",
            running.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
