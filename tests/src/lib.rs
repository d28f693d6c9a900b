//! Shared helpers for the workspace integration tests.
#![deny(missing_docs)]

use std::sync::Arc;

use wf_host::store::{MemoryStore, WorkflowStore};
use wf_host::{Host, HostConfig};

pub use wf_test_artifacts as guests;

/// A host on a fresh in-memory store, with `config`.
pub fn memory_host(config: HostConfig) -> Host {
    let store: Arc<dyn WorkflowStore> = Arc::new(MemoryStore::new());
    Host::with_config(store, config).expect("creating the host")
}
