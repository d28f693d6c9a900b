//! The workflow store: one async trait, shared validation, and the backends.
//!
//! Every backend is used as `Arc<dyn WorkflowStore>` and must pass the same
//! conformance suite (`host/tests/store_conformance.rs`). Validation lives in
//! [`validate`] so that every backend rejects the same input with the same error.

pub mod kafka;
mod memory;
mod ownership;
pub mod validate;

use std::sync::Arc;

/// Re-exported so other crates can implement [`WorkflowStore`] for their own backends.
pub use async_trait::async_trait;

use crate::model::{WorkflowState, WorkflowStatus};

pub use kafka::{DevCluster, KafkaConfig, KafkaStore, TailLag};
pub use memory::MemoryStore;
pub use ownership::{Assignment, NotOwner, Ownership};
pub use validate::StoreLimits;

/// Why a store call failed. Mirrors the WIT `store-error` variant.
///
/// The message names the backend and operation first, as the Go provider does
/// (`kafka/save: workflow ID is required`). A call that fails has written nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Malformed request: bad workflow id, invalid JSON field, timestamp out of range, zero limit.
    #[error("{0}")]
    InvalidArgument(String),
    /// The encoded state exceeds the configured value limit.
    #[error("{0}")]
    TooLarge(String),
    /// The caller may not touch this id or store.
    #[error("{0}")]
    Denied(String),
    /// The backend is unreachable, closed, or did not acknowledge in time.
    #[error("{0}")]
    Unavailable(String),
    /// A conditional write lost a race.
    #[error("{0}")]
    Conflict(String),
    /// A fault inside the store that the caller cannot fix.
    #[error("{0}")]
    Internal(String),
}

/// Which states [`WorkflowStore::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only states with this status; all when `None`.
    pub status: Option<WorkflowStatus>,
    /// Page size; `None` means [`StoreLimits::default_page_size`]. Clamped to
    /// [`StoreLimits::max_page_size`]; zero is rejected.
    pub limit: Option<u32>,
    /// Exclusive cursor: only ids greater than this one.
    pub after: Option<String>,
}

/// Which record of a workflow id a state was read from (WIT `version`):
/// versions of one id only grow, and 0 means no state is stored. Kafka: the
/// offset the record was written at, plus one.
pub type Version = u64;

/// A stored state and the version of its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The state.
    pub state: Arc<WorkflowState>,
    /// Its version, for a conditional [`WorkflowStore::save_versioned`].
    pub version: Version,
}

/// Durable workflow states keyed by workflow id.
///
/// Semantics every backend keeps (see `wit/store.wit`): a save or delete returns
/// only once durable and only then becomes visible; reads see this host's own
/// acknowledged writes; `list` is ordered by ascending id and bounded; a
/// conditional save writes only over the version it expects; a failed call
/// changes nothing.
#[async_trait]
pub trait WorkflowStore: Send + Sync + std::fmt::Debug {
    /// Create or replace the state stored under `state.workflow_id`,
    /// unconditionally.
    async fn save(&self, state: WorkflowState) -> Result<(), StoreError> {
        self.save_versioned(state, None).await.map(drop)
    }

    /// Create or replace the state stored under `state.workflow_id` and
    /// return the new version. With `expected`, only if the id is at that
    /// version on this host (0: no state stored), else [`StoreError::Conflict`];
    /// writes of one id on one host are serialized, so two saves expecting
    /// the same version never both succeed. A store with [`Ownership`] also
    /// refuses a conditional save of an id whose partition this host does
    /// not own.
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError>;

    /// The state stored under `workflow_id`, if any.
    async fn load(&self, workflow_id: &str) -> Result<Option<Arc<WorkflowState>>, StoreError> {
        Ok(self.load_versioned(workflow_id).await?.map(|v| v.state))
    }

    /// The state stored under `workflow_id` with its version, read in one step.
    async fn load_versioned(&self, workflow_id: &str) -> Result<Option<Versioned>, StoreError>;

    /// One page of states matching `filter`, ascending by id.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Arc<WorkflowState>>, StoreError>;

    /// Remove the state stored under `workflow_id`; absent ids succeed.
    async fn delete(&self, workflow_id: &str) -> Result<(), StoreError>;

    /// Flush and release resources. Idempotent; later calls fail with `Unavailable`.
    async fn close(&self) -> Result<(), StoreError>;

    /// A short human description, e.g. `in-memory` or `kafka topic t on b:9092`.
    fn describe(&self) -> String;

    /// Which workflows this host owns when it shares the store with other
    /// hosts (a Kafka consumer group); `None`: it owns every workflow.
    fn ownership(&self) -> Option<Arc<Ownership>> {
        None
    }

    /// How far this host's cache is behind writes other hosts made (Kafka:
    /// records of the topic its tail has not applied yet); `None` for a
    /// store no other host writes.
    async fn tail_lag(&self) -> Result<Option<TailLag>, StoreError> {
        Ok(None)
    }
}
