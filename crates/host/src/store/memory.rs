//! The in-memory backend: a sorted map behind a lock. Nothing survives the
//! process; it is the reference for the store semantics and the test double
//! for the runtime.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::validate::{self, StoreLimits};
use super::{ListFilter, StoreError, Version, Versioned, WorkflowStore};
use crate::model::WorkflowState;

/// Workflow states in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    states: RwLock<States>,
    limits: StoreLimits,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct States {
    by_id: BTreeMap<String, Stored>,
    /// The sum of the states' [`validate::cache_cost`].
    bytes: usize,
    /// The version the last write got; every write takes the next one.
    last_version: Version,
}

#[derive(Debug)]
struct Stored {
    state: Arc<WorkflowState>,
    version: Version,
}

impl MemoryStore {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::with_limits(StoreLimits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: StoreLimits) -> Self {
        Self {
            states: RwLock::default(),
            limits,
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self, op: &str) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(format!("{op}: store is closed")));
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, States> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every write is a single insert or remove), so poisoning is ignored.
        self.states.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, States> {
        self.states.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryStore {
    fn save_now(
        &self,
        mut state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        const OP: &str = "memory/save";
        self.check_open(OP)?;
        // Encoding enforces the same JSON, timestamp and size rules as Kafka.
        validate::encode_for_save(OP, &mut state, &self.limits)?;
        let cost = validate::cache_cost(&state.workflow_id, &state);
        let mut states = self.write();
        let current = states
            .by_id
            .get(&state.workflow_id)
            .map_or(0, |s| s.version);
        validate::check_version(OP, &state.workflow_id, current, expected)?;
        let replaced = match states.by_id.get(&state.workflow_id) {
            Some(old) => validate::cache_cost(&old.state.workflow_id, &old.state),
            None => {
                validate::check_cache_room(
                    OP,
                    states.bytes,
                    states.by_id.len(),
                    cost,
                    &self.limits,
                )?;
                0
            }
        };
        states.bytes = states.bytes - replaced + cost;
        states.last_version += 1;
        let version = states.last_version;
        states.by_id.insert(
            state.workflow_id.clone(),
            Stored {
                state: Arc::new(state),
                version,
            },
        );
        Ok(version)
    }

    fn delete_now(&self, workflow_id: &str) -> Result<(), StoreError> {
        const OP: &str = "memory/delete";
        self.check_open(OP)?;
        validate::check_id(OP, workflow_id)?;
        let mut states = self.write();
        if let Some(old) = states.by_id.remove(workflow_id) {
            states.bytes -= validate::cache_cost(workflow_id, &old.state);
        }
        Ok(())
    }
}

#[async_trait]
impl WorkflowStore for MemoryStore {
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        super::timed("save", "memory", async { self.save_now(state, expected) }).await
    }

    async fn load_versioned(&self, workflow_id: &str) -> Result<Option<Versioned>, StoreError> {
        const OP: &str = "memory/load";
        self.check_open(OP)?;
        validate::check_id(OP, workflow_id)?;
        Ok(self.read().by_id.get(workflow_id).map(|s| Versioned {
            state: s.state.clone(),
            version: s.version,
        }))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        const OP: &str = "memory/list";
        self.check_open(OP)?;
        let page = validate::page_size(OP, filter, &self.limits)?;
        let states = self.read();
        Ok(states
            .by_id
            .range::<str, _>((filter.start(), Bound::Unbounded))
            .take_while(|(id, _)| filter.in_range(id))
            .map(|(_, stored)| &stored.state)
            .filter(|state| filter.status.is_none_or(|s| state.status == s))
            .take(page)
            .cloned()
            .collect())
    }

    async fn delete(&self, workflow_id: &str) -> Result<(), StoreError> {
        super::timed("delete", "memory", async { self.delete_now(workflow_id) }).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn limits(&self) -> Option<StoreLimits> {
        Some(self.limits)
    }

    fn describe(&self) -> String {
        "in-memory (nothing is kept after the process exits)".to_string()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn record_metrics(&self) {
        let states = self.read();
        ::metrics::gauge!(crate::metrics::CACHE_ENTRIES).set(states.by_id.len() as f64);
        ::metrics::gauge!(crate::metrics::CACHE_BYTES).set(states.bytes as f64);
    }
}
