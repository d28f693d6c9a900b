//! What `wfhost` exports about itself: `serve`'s metrics, as Prometheus
//! text at `/metrics`, and, when an OTLP endpoint is given, traces.

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

/// Traces exported over OTLP (HTTP, protobuf) while they are kept: the
/// spans of workflow runs and their store calls, and the activities'
/// events. Off unless an endpoint is given; nothing else needs a collector.
pub struct Traces {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Traces {
    /// Exports to the OTLP/HTTP collector at `endpoint` (its base URL, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` gives it: traces go to
    /// `/v1/traces` under it). Call it outside the async runtime: the
    /// exporter's client runs on a thread of its own.
    pub fn start(endpoint: &str) -> anyhow::Result<Self> {
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&url)
            .build()
            .with_context(|| format!("--otlp-endpoint {endpoint}: setting up the OTLP exporter"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("wfhost")
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }

    /// The layer that hands wf's spans (at `info` and above) to the
    /// exporter, whatever the log level on stderr.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::Layer as _;
        let filter = tracing_subscriber::EnvFilter::new(
            "wf_host=info,wf_store_kafka=info,wf_http=info,wfhost=info",
        );
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("wfhost"))
            .with_filter(filter)
    }

    /// Sends what is still batched, waiting a few seconds at most.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("wfhost: exporting the last traces failed: {e}");
        }
    }
}
