//! The store conformance suite on the Kafka backend, on librdkafka's mock
//! cluster: a real broker protocol, in process.

use std::sync::Arc;

use wf_host::store::WorkflowStore;
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};

wf_store_conformance::conformance_suite!(kafka, async {
    let cluster = DevCluster::start("wf-conformance", 4).expect("mock cluster");
    let store =
        KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers()).topic("wf-conformance"))
            .await
            .expect("open kafka store");
    (Arc::new(store) as Arc<dyn WorkflowStore>, cluster)
});

/// Removes a scratch state directory when the suite's store is dropped.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

wf_store_conformance::conformance_suite!(kafka_local_state, async {
    let cluster = DevCluster::start("wf-conformance", 4).expect("mock cluster");
    let dir = std::env::temp_dir().join(format!("wf-conformance-{}", uuid::Uuid::new_v4()));
    let store = KafkaStore::open(
        KafkaConfig::new(cluster.bootstrap_servers())
            .topic("wf-conformance")
            .state_dir(&dir),
    )
    .await
    .expect("open kafka store with local state");
    (
        Arc::new(store) as Arc<dyn WorkflowStore>,
        (cluster, ScratchDir(dir)),
    )
});
