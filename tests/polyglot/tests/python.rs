//! Python guests (the examples and the store-ops test guest), built with their
//! language's component toolchain, run through the real host: the cases of
//! the Rust guests' tests, on both backends.

mod common;

use wf_polyglot_tests::PYTHON;
use wf_tests::{kafka_host, memory_host};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_on_the_memory_store() {
    common::every_case(memory_host(common::config(PYTHON)), PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_on_kafka() {
    let (host, _cluster) = kafka_host(common::config(PYTHON)).await;
    common::every_case(host, PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_memory_limit_and_backend_faults() {
    common::limits_and_backend_faults(PYTHON).await;
}
