//! wf-host: runs wf workflow modules (WebAssembly components of the world
//! `wf:workflow/workflow`) under wasmtime and backs their `store` import with a
//! pluggable [`store::WorkflowStore`].
//!
//! ```
//! use std::sync::Arc;
//! use wf_host::{Host, store::MemoryStore};
//!
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! # let pipeline_wasm = wf_test_artifacts::PIPELINE;
//! let host = Host::new(Arc::new(MemoryStore::new()))?;
//! let module = host.load_module_file(pipeline_wasm)?;
//! let state = host.run(&module, "pipeline-001", r#""start processing""#).await?;
//! assert_eq!(state.result.as_deref(), Some(r#""completed: start processing""#));
//! # Ok(()) }
//! ```
//!
//! What is where (dependencies run one way, top to bottom):
//!
//! - [`Host`] (`executor`): execute, run, cancel, recover, follow ownership.
//! - the runtime: engine, linker, [`Module`], each run's sandbox and limits.
//! - [`add_to_linker`] (`bindings`): the WIT store import over a [`WfStoreCtx`].
//! - [`AccessPolicy`] (`access`) and run fencing; [`store`]: the trait, the
//!   memory backend, validation, [`store::Ownership`].
//! - [`model`]: the state types and their Go-compatible JSON.
//! - [`config`]: settings from a file, the environment and flags, and the
//!   registry that builds a backend from them.
//!
//! Kafka is a backend crate of its own (`wf-store-kafka`), the HTTP API
//! another (`wf-http`), and the `wfhost` binary a third.
#![deny(missing_docs)]

mod access;
mod bindings;
pub mod config;
mod executor;
mod fence;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod model;
mod runtime;
pub mod store;

pub use access::AccessPolicy;
pub use bindings::{WfStoreCtx, add_to_linker};
pub use executor::{
    ExecuteError, ExecuteOptions, Host, QueryError, RecoverOptions, Recovery, WaitingWorkflow,
    WorkflowHandle,
};
pub use runtime::{DirGrant, HostConfig, IdReuse, Module, ModuleLimits, ModuleOptions, WhenFull};
