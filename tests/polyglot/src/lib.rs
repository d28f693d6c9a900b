//! Paths of the Python and JavaScript guest components that the build script
//! builds from this workspace with componentize-py and componentize-js, and
//! what the tests need to know about each language.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// One guest language: its components and how its failures read.
#[derive(Debug, Clone, Copy)]
pub struct Language {
    /// `python` or `js`.
    pub name: &'static str,
    /// The store-ops test guest (the Rust `tests/guests/store-ops`, ported).
    pub store_ops: &'static str,
    /// The `pipeline` example.
    pub pipeline: &'static str,
    /// The `ledger` example.
    pub ledger: &'static str,
    /// How the SDK reports the store-ops guest's uncaught exception (its
    /// `trap` op): the start of the workflow's error.
    pub uncaught: &'static str,
    /// What the workflow's error says when the guest runs out of memory
    /// (a Python `MemoryError`, a JavaScript "out of memory" exception).
    pub out_of_memory: &'static str,
    /// The memory limit its hosts get in the tests, in MiB. 64 is the
    /// host's default; a JavaScript guest needs more to `JSON.stringify` a
    /// long text: measured here, a 700 KB string needs 80 MiB and a 2 MiB one
    /// (the value-limit case's result) 160 MiB, where concatenating the same
    /// text fits in 64 MiB.
    pub memory_limit_mib: usize,
}

/// Python guests (componentize-py).
pub const PYTHON: Language = Language {
    name: "python",
    store_ops: PYTHON_STORE_OPS,
    pipeline: PYTHON_PIPELINE,
    ledger: PYTHON_LEDGER,
    uncaught: "uncaught RuntimeError: store-ops: trap requested",
    out_of_memory: "uncaught MemoryError",
    memory_limit_mib: 64,
};

/// JavaScript guests (componentize-js).
pub const JS: Language = Language {
    name: "js",
    store_ops: JS_STORE_OPS,
    pipeline: JS_PIPELINE,
    ledger: JS_LEDGER,
    uncaught: "uncaught Error: store-ops: trap requested",
    out_of_memory: "uncaught exception: out of memory",
    memory_limit_mib: 256,
};
