//! The store conformance suite on the in-memory backend.

use std::sync::Arc;

use wf_host::store::{MemoryStore, WorkflowStore};

wf_store_conformance::conformance_suite!(memory, async {
    (Arc::new(MemoryStore::new()) as Arc<dyn WorkflowStore>, ())
});
