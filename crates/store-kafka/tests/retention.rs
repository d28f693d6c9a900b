//! Retention on librdkafka's mock cluster: a serving store deletes exactly
//! the finished workflows past the period, and nothing else.

use wf_store_kafka::DevCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_the_finished_workflows_past_their_period() {
    let cluster = DevCluster::start("wf-retention", 4).unwrap();
    wf_tests::kafka::check_retention(&cluster.bootstrap_servers(), "wf-retention").await;
}
