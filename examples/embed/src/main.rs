//! A small tokio service that embeds the wf host: the host's HTTP API for one
//! workflow module, merged with the service's own `/healthz`, on the same
//! store configuration as `wfhost`.
//!
//! ```sh
//! cargo run -p wf-embed-example -- target/wasm32-wasip2/release/pipeline.wasm
//! curl -X POST localhost:8080/workflows/p-1 -d '"start processing"'
//! curl localhost:8080/workflows/p-1
//! curl 'localhost:8080/workflows?status=completed'
//! curl -X DELETE localhost:8080/workflows/p-1
//! ```
//!
//! Configuration, resolved as `wfhost` resolves it (the same code,
//! `wf_store_kafka::backends()`): `WF_CONFIG` (a TOML file), then
//! `WF_KAFKA_BROKERS`, `WF_KAFKA_TOPIC` and `WF_GROUP` over it; without
//! brokers the store starts librdkafka's in-process mock cluster. `WF_LISTEN` sets the address (default `127.0.0.1:8080`; port 0
//! picks one, printed as `listening: URL`). On start it recovers the
//! module's workflows left `running`; with `group_id` set in the config
//! file, it shares the topic with the group's other hosts and follows its
//! partitions instead (see the README, "Several hosts on one topic"). On
//! SIGTERM or Ctrl-C it stops taking requests, finishes the ones in flight
//! (for at most the shutdown grace of [`wf_http::ServerConfig`]; in a
//! group, then hands its running workflows over) and closes the store.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use wf_host::config::OpenReport;
use wf_host::store::WorkflowStore;
use wf_host::{Host, HostConfig, RecoverOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let module_path = std::env::args()
        .nth(1)
        .context("usage: wf-embed MODULE.wasm (a workflow component)")?;
    let listen = std::env::var("WF_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());

    let backends = wf_store_kafka::backends();
    let settings = backends.load(None)?;
    // Notices (no brokers configured: a mock cluster) go to the log.
    let store = backends.open(&settings, &OpenReport::default()).await?;

    let config = HostConfig::default().cache_dir(HostConfig::default_cache_dir());
    let host = Host::with_config(store.clone(), config)?;
    // In a group, guests' conditional calls of ids other hosts own go to
    // those hosts, at the URLs they announced as their member names.
    host.link_owners(Arc::new(wf_http::HttpOwnerLink::new()));
    let module = host.load_module_file(&module_path)?;
    // In a group (`group_id` in the config file), ownership decides what
    // this service runs: it follows its partitions, taking up the running
    // workflows of those it gains. Alone, it recovers everything left running.
    let follower = host.follow_ownership(&module);
    if follower.is_none() {
        let recovery = host.recover(&module, RecoverOptions::default()).await?;
        tracing::info!(
            resumed = recovery.resumed.len(),
            failed = recovery.failed.len(),
            "recovered the module's runs left running"
        );
    }

    let app = wf_http::router(host.clone(), module).route(
        "/healthz",
        get(healthz).with_state(Health {
            host: host.clone(),
            store: store.clone(),
        }),
    );
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!("listening: http://{}", listener.local_addr()?);
    // The bounds of `wfhost serve` (timeouts, connection and request
    // caps, a shutdown grace), at their defaults.
    let served = wf_http::serve(
        listener,
        app,
        &wf_http::ServerConfig::default(),
        shutdown_signal(),
    )
    .await?;
    if served.cut > 0 {
        tracing::warn!(
            cut = served.cut,
            "closed connections still busy after the shutdown grace"
        );
    }
    if let Some(follower) = follower {
        // Hand the running workflows over to the group's other hosts.
        follower.abort();
        host.abandon_all().await;
    }
    tracing::info!(
        running = host.running().len(),
        "stopped; workflows still running stay `running` for the next start (or owner) to recover"
    );
    store.close().await?;
    Ok(())
}

#[derive(Clone)]
struct Health {
    host: Host,
    store: Arc<dyn WorkflowStore>,
}

/// The service's own route, beside the host's.
async fn healthz(State(health): State<Health>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "running": health.host.running().len(),
        "store": health.store.describe(),
    }))
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("listening for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
