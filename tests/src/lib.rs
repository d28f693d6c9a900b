//! Shared helpers for the workspace integration tests.
#![deny(missing_docs)]

use std::sync::Arc;

use wf_host::store::{DevCluster, KafkaConfig, KafkaStore, MemoryStore, WorkflowStore};
use wf_host::{Host, HostConfig};

pub use wf_test_artifacts as guests;

/// A host on a fresh in-memory store, with `config`.
pub fn memory_host(config: HostConfig) -> Host {
    let store: Arc<dyn WorkflowStore> = Arc::new(MemoryStore::new());
    Host::with_config(store, config).expect("creating the host")
}

/// A host on a fresh Kafka store (librdkafka's in-process mock cluster), with
/// `config`. Keep the cluster alive as long as the host.
pub async fn kafka_host(config: HostConfig) -> (Host, DevCluster) {
    let cluster = DevCluster::start("wf-guests", 4).expect("starting the mock cluster");
    let store = KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers()).topic("wf-guests"))
        .await
        .expect("opening the Kafka store");
    let host = Host::with_config(Arc::new(store), config).expect("creating the host");
    (host, cluster)
}
