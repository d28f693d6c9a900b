//! `wfhost dev`: a mock Kafka cluster for other processes.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use wf_host::config::{Backends, MakeStore, Settings};
use wf_store_kafka::{DevCluster, KafkaBackend, KafkaConfig, MOCK_CLUSTER_BOUNDS};

use super::wait_for_shutdown;

/// `wfhost dev`: a mock cluster for other processes, until Ctrl-C.
pub async fn dev(backends: &Backends, settings: &Settings) -> anyhow::Result<ExitCode> {
    if backends.selected(settings)? != <KafkaBackend as MakeStore>::NAME {
        bail!("`wfhost dev` runs a Kafka broker; it does not apply to --store memory");
    }
    let kafka: KafkaConfig = settings.section(<KafkaBackend as MakeStore>::NAME)?;
    if !kafka.brokers.trim().is_empty() {
        bail!(
            "`wfhost dev` starts its own broker; do not give --brokers (or unset WF_KAFKA_BROKERS)"
        );
    }
    let cluster = DevCluster::start(&kafka.topic, kafka.partitions)?;
    let brokers = cluster.bootstrap_servers();
    println!("brokers: {brokers}");
    println!("topic:   {} ({} partitions)", kafka.topic, kafka.partitions);
    println!();
    println!("librdkafka's in-process mock Kafka cluster is running; {MOCK_CLUSTER_BOUNDS}.");
    println!("Use it from other shells:");
    println!("  export WF_KAFKA_BROKERS={brokers}");
    println!("  wfhost run pipeline.wasm --id pipeline-001 --input '\"start processing\"'");
    println!(
        "  kcat -b {brokers} -t {} -C -e -Z -f '%k %s\\n'",
        kafka.topic
    );
    println!("Press Ctrl-C to stop.");
    use std::io::Write as _;
    std::io::stdout().flush().context("writing to stdout")?;
    wait_for_shutdown().await?;
    drop(cluster);
    eprintln!("wfhost dev: stopped; the mock cluster's records are gone");
    Ok(ExitCode::SUCCESS)
}
