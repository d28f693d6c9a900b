//! What `wfhost serve` exports about itself: its metrics, as Prometheus
//! text at `/metrics`.

use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Buckets of the latency histograms, in seconds: a save on a local
/// broker takes a millisecond or so, a slow one seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process's metrics recorder (Prometheus) and returns what
/// renders it. Its upkeep (folding histogram samples) runs on a task of
/// its own, so memory stays bounded when nobody scrapes.
pub fn install_metrics() -> anyhow::Result<wf_http::MetricsText> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
        .context("setting the latency buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    wf_host::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(wf_http::MetricsText::new(move || handle.render()))
}
