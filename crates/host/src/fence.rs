//! Run fencing: the version a run last wrote of its own workflow id.
//!
//! The host's lifecycle saves, and the guest's saves of that id when the
//! guest names no expected version, are conditional on it, so a run whose
//! workflow another host took over (and wrote) cannot write it again.
//!
//! Signals are the one write of the id a run takes over as its own: a
//! state that is the run's last one plus `signal_received` events appended
//! after it (by this host or any other sender), still `running`, is
//! *adopted* when the run reads it, and the run's next conditional save
//! goes over it.

use std::sync::Mutex;

use crate::model::{EventType, WorkflowState, WorkflowStatus};
use crate::store::Version;

/// The version a run last wrote (or adopted) of its own workflow id.
#[derive(Debug)]
pub(crate) struct RunFence {
    workflow_id: String,
    written: Mutex<Written>,
}

/// What the run last wrote: its version and where its history ended.
#[derive(Debug, Clone, Copy)]
struct Written {
    version: Version,
    /// The number of events of the history written.
    events: usize,
    /// The id of its last event (0: none).
    last_event: u64,
}

impl Written {
    fn of(version: Version, state: &WorkflowState) -> Self {
        Self {
            version,
            events: state.history.len(),
            last_event: state.history.last().map_or(0, |e| e.id),
        }
    }
}

impl RunFence {
    pub(crate) fn new(workflow_id: &str, version: Version, state: &WorkflowState) -> Self {
        Self {
            workflow_id: workflow_id.to_owned(),
            written: Mutex::new(Written::of(version, state)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this fence guards `workflow_id`.
    pub(crate) fn guards(&self, workflow_id: &str) -> bool {
        self.workflow_id == workflow_id
    }

    /// The version the run last wrote or adopted.
    pub(crate) fn version(&self) -> Version {
        self.lock().version
    }

    /// Records a write of the run: `state` saved at `version`.
    pub(crate) fn set(&self, version: Version, state: &WorkflowState) {
        *self.lock() = Written::of(version, state);
    }

    /// Records a write of the run: a state of `events` events, the last
    /// with id `last_event`, saved at `version`.
    pub(crate) fn set_shape(&self, version: Version, events: usize, last_event: u64) {
        *self.lock() = Written {
            version,
            events,
            last_event,
        };
    }

    /// Records that the run deleted its id.
    pub(crate) fn deleted(&self) {
        *self.lock() = Written {
            version: 0,
            events: 0,
            last_event: 0,
        };
    }

    /// Takes `stored` (the id's state at `version`) as the run's own when it
    /// is what the run last wrote, or that plus signals appended since:
    /// the run's saves then go over it. Returns whether it did; `false`
    /// means another writer wrote the id.
    pub(crate) fn adopt(&self, version: Version, stored: &WorkflowState) -> bool {
        let mut written = self.lock();
        if version == written.version {
            return true;
        }
        // Only a state still running: a writer that ended the workflow
        // (canceled it, say) is not the run's to write over, signals or not.
        if version < written.version
            || written.version == 0
            || stored.status != WorkflowStatus::Running
        {
            return false;
        }
        let Some(appended) = stored.history.get(written.events..) else {
            return false;
        };
        let same_prefix = match written.events.checked_sub(1) {
            Some(last) => stored.history[last].id == written.last_event,
            None => true,
        };
        if same_prefix
            && !appended.is_empty()
            && appended.iter().all(|e| e.kind == EventType::SignalReceived)
        {
            // The run's next write keeps the signals: its history ends
            // where the stored one does.
            *written = Written::of(version, stored);
            return true;
        }
        false
    }

    /// The signals appended after what the run last wrote, in `stored`
    /// (when it adopts it): their names.
    pub(crate) fn signals_since<'a>(&self, stored: &'a WorkflowState) -> Vec<&'a str> {
        let events = self.lock().events;
        stored
            .history
            .get(events..)
            .unwrap_or_default()
            .iter()
            .filter(|e| e.kind == EventType::SignalReceived)
            .map(|e| e.signal_name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HistoryEvent, Timestamp};

    fn state(kinds: &[EventType], status: WorkflowStatus) -> WorkflowState {
        let history = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| HistoryEvent::new(i as u64 + 1, *kind, Timestamp::GO_ZERO))
            .collect();
        WorkflowState {
            workflow_id: "w".into(),
            run_id: "r".into(),
            status,
            input: None,
            result: None,
            error: String::new(),
            history,
            created_at: Timestamp::GO_ZERO,
            updated_at: Timestamp::GO_ZERO,
        }
    }

    #[test]
    fn a_run_adopts_its_own_state_plus_signals_and_nothing_else() {
        use EventType::*;
        use WorkflowStatus::*;
        let written = state(&[WorkflowStarted, ActivityStarted], Running);
        let fence = RunFence::new("w", 5, &written);
        // Another writer's events, or an end, are not adopted.
        for (other, status) in [
            (
                vec![WorkflowStarted, ActivityStarted, ActivityCompleted],
                Running,
            ),
            (
                vec![WorkflowStarted, ActivityStarted, WorkflowCanceled],
                Canceled,
            ),
            (
                vec![WorkflowStarted, ActivityStarted, SignalReceived],
                Canceled,
            ),
            (vec![WorkflowStarted], Running),
        ] {
            assert!(
                !fence.adopt(7, &state(&other, status)),
                "{other:?} {status:?}"
            );
            assert_eq!(fence.version(), 5);
        }
        // Its own state plus signals is, and the run then writes over it.
        let signaled = state(&[WorkflowStarted, ActivityStarted, SignalReceived], Running);
        assert_eq!(fence.signals_since(&signaled).len(), 1);
        assert!(fence.adopt(6, &signaled));
        assert_eq!(fence.version(), 6);
        assert!(fence.signals_since(&signaled).is_empty());
        // An older version never is.
        assert!(!fence.adopt(4, &written));
    }
}
