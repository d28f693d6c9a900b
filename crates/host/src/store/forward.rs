//! Conditional reads and writes of ids another host owns, when hosts share
//! a store in a group: only the owner of an id can decide a conditional
//! save (it serializes it with its own writes, against its own cache), so a
//! host forwards them there through an [`OwnerLink`]. A store that keeps
//! only its host's partitions reads the others there too.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ListFilter, StoreError, Version, Versioned};
use crate::model::WorkflowState;

/// Reaches the host that owns an id (by the name it announced to its
/// group), for the `load-versioned` and conditional `save` calls of ids
/// this host does not own. `wf-http` has one over HTTP.
#[async_trait]
pub trait OwnerLink: Send + Sync + std::fmt::Debug {
    /// The state of `workflow_id` with its version, as its owner `owner` has it.
    async fn load_versioned(
        &self,
        owner: &str,
        workflow_id: &str,
    ) -> Result<Option<Versioned>, StoreError>;

    /// Saves `state` at its owner `owner`, only over version `expected`;
    /// returns the new version.
    async fn save_versioned(
        &self,
        owner: &str,
        state: WorkflowState,
        expected: Version,
    ) -> Result<Version, StoreError>;

    /// The page `filter` lists at its owner `owner`, from the partitions
    /// [`ListFilter::partitions`] names (all of them owned by `owner`; it
    /// refuses the page otherwise).
    async fn list(
        &self,
        owner: &str,
        filter: &ListFilter,
    ) -> Result<Vec<Arc<WorkflowState>>, StoreError>;
}

/// An [`OwnerLink`], shared.
pub type SharedOwnerLink = Arc<dyn OwnerLink>;
