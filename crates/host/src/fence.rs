//! Run fencing: the version a run last wrote of its own workflow id.
//!
//! The host's lifecycle saves, and the guest's saves of that id when the
//! guest names no expected version, are conditional on it, so a run whose
//! workflow another host took over (and wrote) cannot write it again.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::Version;

/// The version a run last wrote of its own workflow id.
#[derive(Debug)]
pub(crate) struct RunFence {
    workflow_id: String,
    version: AtomicU64,
}

impl RunFence {
    pub(crate) fn new(workflow_id: &str, version: Version) -> Self {
        Self {
            workflow_id: workflow_id.to_owned(),
            version: AtomicU64::new(version),
        }
    }

    /// Whether this fence guards `workflow_id`.
    pub(crate) fn guards(&self, workflow_id: &str) -> bool {
        self.workflow_id == workflow_id
    }

    /// The version the run last wrote.
    pub(crate) fn version(&self) -> Version {
        self.version.load(Ordering::Acquire)
    }

    /// Records a write of the run (0: it deleted its id).
    pub(crate) fn set(&self, version: Version) {
        self.version.store(version, Ordering::Release);
    }
}
