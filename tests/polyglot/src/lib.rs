//! Paths of the Python and JavaScript guest components that the build script
//! builds from this workspace with componentize-py and componentize-js, and
//! what the guest suite needs to know about each language.
#![deny(missing_docs)]

use std::time::Duration;

use wf_tests::suite::Language;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Python guests (componentize-py).
pub const PYTHON: Language = Language {
    name: "python",
    store_ops: PYTHON_STORE_OPS,
    pipeline: PYTHON_PIPELINE,
    ledger: PYTHON_LEDGER,
    waits: PYTHON_WAITS,
    approval: PYTHON_APPROVAL,
    thrown_starts_with: "uncaught RuntimeError: store-ops: trap requested",
    thrown_contains: "store_ops.py:",
    memory_limit_mib: 64,
    small_memory_mib: 32,
    out_of_memory: &["uncaught MemoryError"],
    deadline: Duration::from_millis(1000),
    module_cache: Some(MODULE_CACHE),
};

/// JavaScript guests (componentize-js).
pub const JS: Language = Language {
    name: "js",
    store_ops: JS_STORE_OPS,
    pipeline: JS_PIPELINE,
    ledger: JS_LEDGER,
    waits: JS_WAITS,
    approval: JS_APPROVAL,
    thrown_starts_with: "uncaught Error: store-ops: trap requested",
    thrown_contains: "store-ops.js:",
    memory_limit_mib: 256,
    small_memory_mib: 32,
    out_of_memory: &["uncaught exception: out of memory"],
    deadline: Duration::from_millis(1000),
    module_cache: Some(MODULE_CACHE),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest the build script builds but no language names would never
    /// run: every built guest is one the suite runs.
    #[test]
    fn every_built_guest_is_run_by_the_suite() {
        for guest in ALL {
            assert!(
                [PYTHON, JS]
                    .iter()
                    .any(|lang| lang.guests().contains(guest)),
                "{guest} is built but no language's suite runs it"
            );
        }
    }
}
