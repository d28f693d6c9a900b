//! Shared helpers for the workspace integration tests.
#![deny(missing_docs)]

use std::sync::Arc;

use wf_host::Host;
pub use wf_host::HostConfig;
use wf_host::store::{DevCluster, KafkaConfig, KafkaStore, MemoryStore, WorkflowStore};

#[doc(hidden)]
pub use tokio as __tokio;
pub use wf_test_artifacts as guests;

use wf_host::model::{EventType, WorkflowState};

/// The kinds of a state's history events, in order.
pub fn kinds(state: &WorkflowState) -> Vec<EventType> {
    state.history.iter().map(|e| e.kind).collect()
}

/// A state's result, decoded; panics when it has none.
pub fn result_json(state: &WorkflowState) -> serde_json::Value {
    serde_json::from_str(state.result.as_deref().expect("a result")).expect("result is JSON")
}

/// Defines, for each named `async fn(Host)` in the calling module, a test on
/// a memory host (`memory::NAME`) and one on a Kafka host on the mock cluster
/// (`kafka::NAME`), both with the default [`HostConfig`] on a two-thread runtime.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::memory_host($crate::HostConfig::default())).await;
                }
            )+
        }
        mod kafka {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (host, _cluster) = $crate::kafka_host($crate::HostConfig::default()).await;
                    super::$case(host).await;
                }
            )+
        }
    };
}

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
