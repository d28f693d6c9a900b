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
