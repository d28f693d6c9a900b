//! The saves this store has produced and not yet applied: a record that
//! the tail reads back before its acknowledgement arrived takes its state
//! from here instead of decoding the JSON this host just encoded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wf_host::model::WorkflowState;

/// The states being written, by id. Writes of one id are serialized (the
/// per-id lock), so an id has at most one.
#[derive(Debug)]
pub(crate) struct InFlight {
    writes: Mutex<HashMap<String, Write>>,
    /// Per partition, the writes (saves and tombstones) between their
    /// produce and their acknowledgement's cache update, or their failure.
    writing: Vec<AtomicUsize>,
}

/// Counts a write of a partition in [`InFlight`] until dropped.
pub(crate) struct Writing<'a>(Option<&'a AtomicUsize>);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.0 {
            count.fetch_sub(1, Ordering::Release);
        }
    }
}

#[derive(Debug)]
struct Write {
    value: Arc<Vec<u8>>,
    state: Arc<WorkflowState>,
}

/// Keeps a write in [`InFlight`] until dropped (after its acknowledgement
/// was applied, or it failed).
pub(crate) struct InFlightGuard<'a> {
    in_flight: &'a InFlight,
    state: Arc<WorkflowState>,
}

impl InFlight {
    /// Tracks the writes of a topic of `partitions` partitions.
    pub fn new(partitions: i32) -> Self {
        Self {
            writes: Mutex::default(),
            writing: (0..partitions.max(0))
                .map(|_| AtomicUsize::new(0))
                .collect(),
        }
    }

    /// Counts a write to `partition` until the guard is dropped.
    pub fn writing(&self, partition: i32) -> Writing<'_> {
        let count = self
            .writing
            .get(usize::try_from(partition).unwrap_or(usize::MAX));
        if let Some(count) = count {
            count.fetch_add(1, Ordering::AcqRel);
        }
        Writing(count)
    }

    /// Whether a write to `partition` is between its produce and its
    /// acknowledgement's cache update. When none is, every write of this
    /// store whose record the broker holds has been applied, or has failed.
    pub fn writes_to(&self, partition: i32) -> bool {
        self.writing
            .get(usize::try_from(partition).unwrap_or(usize::MAX))
            .is_some_and(|count| count.load(Ordering::Acquire) > 0)
    }

    /// Registers `state`, whose record's value is `value`, until the guard
    /// is dropped.
    pub fn begin(&self, state: &Arc<WorkflowState>, value: &Arc<Vec<u8>>) -> InFlightGuard<'_> {
        let write = Write {
            value: value.clone(),
            state: state.clone(),
        };
        self.map().insert(state.workflow_id.clone(), write);
        InFlightGuard {
            in_flight: self,
            state: state.clone(),
        }
    }

    /// The state being written under `key` whose record's value is exactly
    /// `value`: what decoding `value` would give (a save caches the state
    /// it encoded, so the two are the same).
    pub fn state_of(&self, key: &str, value: &[u8]) -> Option<Arc<WorkflowState>> {
        self.map()
            .get(key)
            .filter(|write| write.value.as_slice() == value)
            .map(|write| write.state.clone())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Write>> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.in_flight.map();
        if map
            .get(&self.state.workflow_id)
            .is_some_and(|write| Arc::ptr_eq(&write.state, &self.state))
        {
            map.remove(&self.state.workflow_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_host::model::WorkflowStatus;

    #[test]
    fn a_write_is_found_by_its_exact_value_until_its_guard_drops() {
        let in_flight = InFlight::new(1);
        let state = Arc::new(WorkflowState::new("wf-1", "run-1", WorkflowStatus::Running));
        let value = Arc::new(b"{\"id\":1}".to_vec());
        let guard = in_flight.begin(&state, &value);
        let found = in_flight.state_of("wf-1", b"{\"id\":1}");
        assert!(found.is_some_and(|found| Arc::ptr_eq(&found, &state)));
        // Another writer's record of the id, or another id, is decoded.
        assert!(in_flight.state_of("wf-1", b"{\"id\":2}").is_none());
        assert!(in_flight.state_of("wf-2", b"{\"id\":1}").is_none());
        drop(guard);
        assert!(in_flight.state_of("wf-1", b"{\"id\":1}").is_none());
        assert!(in_flight.map().is_empty(), "no entry outlives its write");
    }

    #[test]
    fn a_write_counts_in_its_partition_until_its_guard_drops() {
        let in_flight = InFlight::new(4);
        let first = in_flight.writing(2);
        let second = in_flight.writing(2);
        assert!(in_flight.writes_to(2) && !in_flight.writes_to(1));
        drop(first);
        assert!(in_flight.writes_to(2), "one write is still on its way");
        drop(second);
        assert!(!in_flight.writes_to(2));
        // A partition the store did not know at open counts nothing.
        drop(in_flight.writing(9));
        assert!(!in_flight.writes_to(9));
    }
}
