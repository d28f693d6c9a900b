//! Taking up runs left `running` (a host stopped or crashed), handing runs
//! over without recording an end, and following the ownership of a store
//! shared by a group of hosts.

use std::sync::Arc;
use std::time::Duration;

use super::{ExecuteError, Host, RecoverOptions, Stop, WorkflowHandle, request_stop};
use crate::model::{EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::Module;
use crate::store::{ListFilter, Ownership, StoreError, Version};

impl Host {
    /// Stops every workflow running on this host without recording an end:
    /// they stay `running`, for the host that owns them next (or for
    /// [`Host::recover`]). For a host leaving a group, before it closes its
    /// store; their handles' results are [`ExecuteError::Abandoned`].
    /// Returns once they stopped (within an epoch tick: a store call under
    /// way is dropped, not awaited).
    pub async fn abandon_all(&self) {
        let stopping: Vec<(String, String)> = {
            let running = self.inner.lock_running();
            for workflow in running.values() {
                request_stop(&workflow.cancel, Stop::Abandon);
            }
            running
                .iter()
                .map(|(id, w)| (id.clone(), w.run_id.clone()))
                .collect()
        };
        while stopping.iter().any(|(id, run_id)| {
            self.inner
                .lock_running()
                .get(id)
                .is_some_and(|w| w.run_id == *run_id)
        }) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Keeps `module`'s workflows where ownership says, when hosts share its
    /// store ([`WorkflowStore::ownership`]): recovers the `running`
    /// workflows of every partition this host gains (after its cache caught
    /// up with the partition), and stops, without recording an end, its runs
    /// of every partition it loses (the new owner resumes them). Runs until
    /// the host's store closes; `None` when the store is not shared.
    pub fn follow_ownership(&self, module: &Module) -> Option<tokio::task::JoinHandle<()>> {
        let ownership = self.store_for(module).ownership()?;
        let mut changes = ownership.subscribe();
        let host = self.clone();
        let module = module.clone();
        Some(tokio::spawn(async move {
            // Whatever was gained before this subscription is taken up here.
            let mut gained = Some(changes.borrow_and_update().owned.clone());
            loop {
                if let Some(partitions) = gained.take().filter(|p| !p.is_empty()) {
                    let options = RecoverOptions::default().partitions(partitions);
                    // On a task of its own: recovery waits for slots, and
                    // this loop must go on noticing lost partitions. Each
                    // resume is conditional, so a partition lost meanwhile
                    // is not resumed here.
                    let (host, module) = (host.clone(), module.clone());
                    tokio::spawn(async move {
                        if let Err(e) = host.recover(&module, options).await {
                            tracing::warn!(
                                module = module.name(),
                                "recovering gained partitions failed: {e}"
                            );
                        }
                    });
                }
                if changes.changed().await.is_err() {
                    return;
                }
                let change = changes.borrow_and_update().clone();
                host.abandon_partitions(&ownership, &change.lost);
                gained = Some(change.gained);
            }
        }))
    }

    /// Stops the runs of `lost` partitions without recording an end.
    fn abandon_partitions(&self, ownership: &Arc<Ownership>, lost: &[i32]) {
        if lost.is_empty() {
            return;
        }
        for workflow in self.inner.lock_running().values() {
            if let Some((owner, partition)) = &workflow.owned_in
                && Arc::ptr_eq(owner, ownership)
                && lost.contains(partition)
            {
                request_stop(&workflow.cancel, Stop::Abandon);
            }
        }
    }

    /// Runs again, with `module`, every stored workflow left `running` that is
    /// not running on this host (a host stopped or crashed while it ran);
    /// call it on start. Returns a handle per workflow taken up.
    ///
    /// A re-run keeps the workflow's id, run id, input and history, appends
    /// another `workflow_started` event, and calls the guest's `run` again
    /// from the start. What that repeats is up to the guest: with the guest
    /// SDK's `ctx.activity`, an activity whose completion (or failure) is in
    /// the history returns the recorded outcome without running again, and a
    /// recorded `ctx.sleep` returns at once; an activity that started but
    /// whose completion was not saved runs again (at least once, not exactly
    /// once), and anything the guest does outside activities (direct store
    /// writes, computation) is repeated.
    ///
    /// The candidates come from the store's `list` (for Kafka, the replayed
    /// cache: a scan in memory, not a broker query). When hosts share the
    /// store in a group, only the workflows this host owns are taken up,
    /// each with a save conditional on the version read, so a workflow
    /// another host resumed meanwhile is left to it.
    pub async fn recover(
        &self,
        module: &Module,
        options: RecoverOptions,
    ) -> Result<Vec<WorkflowHandle>, ExecuteError> {
        let mut handles = Vec::new();
        let mut filter = ListFilter {
            status: Some(WorkflowStatus::Running),
            limit: Some(1000),
            after: None,
        };
        let prefix = options.id_prefix.unwrap_or_default();
        let store = self.inner.store_of(module).clone();
        let ownership = store.ownership();
        // Only the workflows this host owns (of the partitions asked for).
        let owned = |id: &str| match &ownership {
            None => true,
            Some(ownership) => {
                let partition = ownership.partition_of(id);
                ownership.owns_partition(partition)
                    && options
                        .partitions
                        .as_ref()
                        .is_none_or(|wanted| wanted.contains(&partition))
            }
        };
        loop {
            let page = store.list(&filter).await?;
            let Some(last) = page.last() else { break };
            filter.after = Some(last.workflow_id.clone());
            for state in page {
                // Another module's workflows are not this module's to run.
                if !state.workflow_id.starts_with(&prefix)
                    || !module.options().access.allows(&state.workflow_id)
                    || !owned(&state.workflow_id)
                {
                    continue;
                }
                // Re-read with its version: the resume is conditional on it.
                let Some(current) = store.load_versioned(&state.workflow_id).await? else {
                    continue;
                };
                if current.state.status != WorkflowStatus::Running {
                    continue;
                }
                let version = current.version;
                match self
                    .resume(module, Arc::unwrap_or_clone(current.state), version)
                    .await
                {
                    Ok(handle) => handles.push(handle),
                    // Started here meanwhile (or already running here).
                    Err(ExecuteError::AlreadyRunning(_)) => {}
                    // Written meanwhile, or no longer this host's: not ours to resume.
                    Err(ExecuteError::Store(StoreError::Conflict(e))) => {
                        tracing::info!(workflow_id = %state.workflow_id, "not resumed: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tracing::info!(
            module = module.name(),
            recovered = handles.len(),
            "recovered running workflows"
        );
        Ok(handles)
    }

    /// Starts `state` (a stored `running` workflow) again as the same run.
    async fn resume(
        &self,
        module: &Module,
        mut state: WorkflowState,
        version: Version,
    ) -> Result<WorkflowHandle, ExecuteError> {
        let now = Timestamp::now();
        let next_id = state.history.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        state
            .history
            .push(HistoryEvent::new(next_id, EventType::WorkflowStarted, now));
        state.updated_at = now;
        if state.input.is_none() {
            state.input = Some("null".to_owned());
        }
        self.start(module, state, Some(version), None, true).await
    }
}
