//! Building a store from configuration.

use std::sync::Arc;

use crate::store::{MemoryStore, StoreLimits, WorkflowStore};

/// Which backend to open, and its settings.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Process memory; nothing survives the process.
    Memory {
        /// Value-size and page-size bounds.
        limits: StoreLimits,
    },
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::Memory {
            limits: StoreLimits::default(),
        }
    }
}

impl StoreConfig {
    /// Opens the configured backend, ready to serve.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn WorkflowStore>> {
        match self {
            Self::Memory { limits } => Ok(Arc::new(MemoryStore::with_limits(*limits))),
        }
    }
}
