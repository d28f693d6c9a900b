//! Signals: a `signal_received` event appended to a workflow's history by
//! an acknowledged save, and the suspended run it wakes.

use super::{ExecuteError, Host};
use crate::model::{self, Timestamp, WorkflowStatus};
use crate::store::{StoreError, Version};

/// How many times a signal's save is tried again when the workflow's state
/// changed between reading and writing it (its run saving, say).
const RETRIES: usize = 64;

impl Host {
    /// Sends workflow `workflow_id` the signal `name` with `payload` (JSON
    /// text, or none), and returns the version of the state that records
    /// it: a `signal_received` event appended to its history by a save the
    /// backend acknowledged before this returns, so the signal is never
    /// lost, whether the workflow runs, is suspended, or its host is down.
    /// A run suspended here waiting for `name` is woken (another host's, or
    /// a later start's, finds the signal in the history).
    ///
    /// Errors, each writing nothing: [`ExecuteError::InvalidRequest`] for an
    /// empty, overlong (over 256 bytes) or control-character name, or one
    /// with a `|`, or a payload that is not JSON;
    /// [`ExecuteError::NotFound`] when no state is stored under the id;
    /// [`ExecuteError::NotARun`] for a record that is not a workflow run;
    /// [`ExecuteError::Ended`] for a run that ended; [`ExecuteError::NotOwner`]
    /// when hosts share the store and another one owns the id;
    /// [`ExecuteError::Store`] when the backend refused it (`too-large`
    /// past the value limit or the history's event bound) or did not
    /// acknowledge it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wf_host::{ExecuteError, Host, store::MemoryStore};
    ///
    /// # #[tokio::main] async fn main() -> anyhow::Result<()> {
    /// let host = Host::new(Arc::new(MemoryStore::new()))?;
    /// let refused = host.signal("no-such-order", "approve", None).await;
    /// assert!(matches!(refused, Err(ExecuteError::NotFound(_))));
    /// # Ok(()) }
    /// ```
    pub async fn signal(
        &self,
        workflow_id: &str,
        name: &str,
        payload: Option<&str>,
    ) -> Result<Version, ExecuteError> {
        let invalid = |e: model::ModelError| ExecuteError::InvalidRequest(e.to_string());
        model::validate_signal_name(name).map_err(invalid)?;
        if let Some(payload) = payload {
            model::validate_json("signal payload", payload).map_err(invalid)?;
        }
        crate::store::validate::check_id("signal", workflow_id)
            .map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;
        let store = self.store();
        if let Some(ownership) = store.ownership() {
            ownership.check(workflow_id).await?;
        }
        for _ in 0..RETRIES {
            let Some(current) = store.load_versioned(workflow_id).await? else {
                return Err(ExecuteError::NotFound(workflow_id.to_owned()));
            };
            if !current.state.is_run() {
                return Err(ExecuteError::NotARun(workflow_id.to_owned()));
            }
            if current.state.status != WorkflowStatus::Running {
                return Err(ExecuteError::Ended(
                    workflow_id.to_owned(),
                    current.state.status,
                ));
            }
            if let Some(limits) = store.limits() {
                let headroom = (limits.max_history_events / 100).max(16);
                let held = current.state.history.len();
                if held + 1 + headroom > limits.max_history_events {
                    return Err(ExecuteError::Store(StoreError::TooLarge(format!(
                        "signal {name:?} to workflow {workflow_id:?}: its history holds {held} events of the store's bound of {}, and the last {headroom} are kept for the workflow's own steps and its end; nothing was written",
                        limits.max_history_events
                    ))));
                }
            }
            let signaled = current.state.with_signal(name, payload, Timestamp::now());
            match store.save_versioned(signaled, Some(current.version)).await {
                Ok(version) => {
                    tracing::info!(%workflow_id, signal = name, "signal recorded");
                    if self.inner.waiting.woken_by(workflow_id, name) {
                        self.wake_soon(workflow_id);
                    }
                    return Ok(version);
                }
                // Written meanwhile (the run saved): read it again.
                Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ExecuteError::Store(StoreError::Unavailable(format!(
            "signal {name:?} to workflow {workflow_id:?}: its state kept changing; nothing was written, send it again"
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, WorkflowStore};
    use std::sync::Arc;

    #[tokio::test]
    async fn invalid_signals_are_refused_and_write_nothing() {
        let store = Arc::new(MemoryStore::new());
        let host = Host::new(store.clone()).unwrap();
        let long = "n".repeat(257);
        for (name, payload) in [
            ("", None),
            ("a|b", None),
            ("bell\u{7}", None),
            (long.as_str(), None),
            ("ok", Some("{not json")),
        ] {
            let refused = host.signal("w-1", name, payload).await;
            assert!(
                matches!(refused, Err(ExecuteError::InvalidRequest(_))),
                "{name:?} {payload:?}: {refused:?}"
            );
        }
        assert!(store.load("w-1").await.unwrap().is_none());
    }
}
