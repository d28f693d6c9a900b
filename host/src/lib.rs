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
#![deny(missing_docs)]

mod bindings;
pub mod config;
mod executor;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod model;
mod runtime;
pub mod store;

pub use executor::{ExecuteError, ExecuteOptions, Host, RecoverOptions, WorkflowHandle};
pub use runtime::{
    AccessPolicy, DirGrant, HostConfig, Module, ModuleLimits, ModuleOptions, WhenFull,
};
