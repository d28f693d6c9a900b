//! The store conformance suite, run against every backend.

mod conformance;

use std::sync::Arc;

use wf_host::store::{DevCluster, KafkaConfig, KafkaStore, MemoryStore, WorkflowStore};

conformance_suite!(memory, async {
    (Arc::new(MemoryStore::new()) as Arc<dyn WorkflowStore>, ())
});

// On librdkafka's mock cluster: a real broker protocol, in process.
conformance_suite!(kafka, async {
    let cluster = DevCluster::start("wf-conformance", 4).expect("mock cluster");
    let store =
        KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers()).topic("wf-conformance"))
            .await
            .expect("open kafka store");
    (Arc::new(store) as Arc<dyn WorkflowStore>, cluster)
});
