//! The store conformance suite, run against every backend.

mod conformance;

conformance_suite!(memory, async {
    std::sync::Arc::new(wf_host::store::MemoryStore::new())
});
