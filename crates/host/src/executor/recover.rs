//! Taking up runs left `running` (a host stopped or crashed), handing runs
//! over without recording an end, and following the ownership of a store
//! shared by a group of hosts.

use std::sync::Arc;
use std::time::Duration;

use super::admit::Begin;
use super::wait::Waiter;
use super::{ExecuteError, Host, RecoverOptions, Recovery, Stop, WorkflowHandle, request_stop};
use crate::model::{Suspended, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::Module;
use crate::store::{ListFilter, Ownership, StoreError, Version};

/// What [`Host::resume_stored`] did with a stored run.
enum Resumed {
    /// Ran it again: its handle.
    Running(WorkflowHandle),
    /// Kept it waiting (it is suspended).
    Waiting,
}

impl Host {
    /// Stops every workflow running on this host without recording an end:
    /// they stay `running`, for the host that owns them next (or for
    /// [`Host::recover`]). For a host leaving a group, before it closes its
    /// store; their handles' results are [`ExecuteError::Abandoned`].
    /// Returns once they stopped (within an epoch tick: a store call under
    /// way is dropped, not awaited).
    pub async fn abandon_all(&self) {
        for (id, waiter) in self.inner.waiting.remove_where(|_| true) {
            waiter.abandon(&id);
        }
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
        let in_lost = |owned_in: &Option<(Arc<Ownership>, i32)>| {
            owned_in.as_ref().is_some_and(|(owner, partition)| {
                Arc::ptr_eq(owner, ownership) && lost.contains(partition)
            })
        };
        for (id, waiter) in self.inner.waiting.remove_where(|w| in_lost(&w.owned_in)) {
            waiter.abandon(&id);
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

    /// Runs again, with `module`, every run of `module` left `running` that
    /// is not running on this host (a host stopped or crashed while it ran);
    /// call it on start. Returns what it found and a handle per run taken up.
    ///
    /// Only runs are resumed (states a host started: their history begins
    /// with a `workflow_started` event naming the module), never records a
    /// guest saved, whatever their status; and only runs `module` started
    /// (by name and digest): another module's runs are left to it, and runs
    /// another build of this module started are left too unless
    /// [`RecoverOptions::resume_other_builds`]. A run that cannot be
    /// resumed is reported in [`Recovery::failed`]; the others are resumed
    /// all the same.
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
    ) -> Result<Recovery, ExecuteError> {
        let mut recovery = Recovery::default();
        let mut filter = ListFilter::default()
            .status(WorkflowStatus::Running)
            .limit(1000);
        let prefix = options.id_prefix.unwrap_or_default();
        let identity = module.identity();
        let store = self.inner.store_of(module).clone();
        let ownership = store.ownership();
        if let Some(ownership) = &ownership {
            // Listed from the owned partitions only: a store that keeps only
            // its host's partitions would ask every other owner for the rest.
            let wanted = ownership
                .owned_partitions()
                .into_iter()
                .filter(|p| options.partitions.as_ref().is_none_or(|w| w.contains(p)))
                .collect();
            filter = filter.partitions(wanted);
        }
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
                let id = &state.workflow_id;
                if !id.starts_with(&prefix) || !module.options().access.allows(id) || !owned(id) {
                    continue;
                }
                // Only runs, and only this module's: a record a guest saved
                // is never run, another module's run is that module's.
                let Some(started_by) = state.run_module() else {
                    recovery.not_runs += 1;
                    continue;
                };
                if started_by.name != identity.name {
                    recovery.other_modules += 1;
                    continue;
                }
                if started_by.digest != identity.digest && !options.resume_other_builds {
                    tracing::warn!(workflow_id = %id, started_by = %started_by, module = %identity, "not resumed: another build of the module started it (resume_other_builds resumes it)");
                    recovery.other_builds.push(id.clone());
                    continue;
                }
                if options.waiting_only && state.suspended().is_none() {
                    continue;
                }
                match self.resume_stored(module, id).await {
                    Ok(Some(Resumed::Running(handle))) => recovery.resumed.push(handle),
                    Ok(Some(Resumed::Waiting)) => recovery.waiting.push(id.clone()),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(workflow_id = %id, module = module.name(), "not resumed: {e}");
                        recovery.failed.push((id.clone(), e));
                    }
                }
            }
        }
        tracing::info!(
            module = module.name(),
            resumed = recovery.resumed.len(),
            other_modules = recovery.other_modules,
            other_builds = recovery.other_builds.len(),
            not_runs = recovery.not_runs,
            failed = recovery.failed.len(),
            waiting = recovery.waiting.len(),
            "recovered running workflows"
        );
        Ok(recovery)
    }

    /// Resumes the run stored under `workflow_id` if it still runs there
    /// and not here, or keeps it waiting here if it is suspended (`true`
    /// with its handle): `None` when it ended, runs here, or was written or
    /// taken over meanwhile.
    async fn resume_stored(
        &self,
        module: &Module,
        workflow_id: &str,
    ) -> Result<Option<Resumed>, ExecuteError> {
        // Re-read with its version: the resume is conditional on it.
        let store = self.store_for(module);
        let Some(current) = store.load_versioned(workflow_id).await? else {
            return Ok(None);
        };
        if current.state.status != WorkflowStatus::Running || !current.state.is_run() {
            return Ok(None);
        }
        if let Some(suspended) = current.state.suspended() {
            if self.is_running(workflow_id) {
                return Ok(None);
            }
            // Signals it waits for that came while no host kept it: due now.
            let woken = current
                .state
                .signals_since_suspended()
                .any(|name| suspended.woken_by(name));
            self.keep_suspended(module, &current.state, suspended, current.version);
            if woken {
                // Resumed now, as a waiting run woken: its handle first.
                let handle = self.inner.waiting.handle_of(workflow_id);
                self.wake_soon(workflow_id);
                if let Some(handle) = handle {
                    return Ok(Some(Resumed::Running(handle)));
                }
            }
            return Ok(Some(Resumed::Waiting));
        }
        match self
            .resume(module, Arc::unwrap_or_clone(current.state), current.version)
            .await
        {
            Ok(handle) => Ok(Some(Resumed::Running(handle))),
            // Started here meanwhile (or already running here).
            Err(ExecuteError::AlreadyRunning(_)) => Ok(None),
            // Written meanwhile, or no longer this host's: not ours to resume.
            Err(ExecuteError::Store(StoreError::Conflict(e))) => {
                tracing::info!(%workflow_id, "not resumed: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
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
            .push(module.identity().started_event(next_id, now));
        state.updated_at = now;
        if state.input.is_none() {
            state.input = Some("null".to_owned());
        }
        self.start(module, state, Begin::Resume(version), None, true, None)
            .await
    }

    /// Keeps the stored suspended run `state` waiting here (due times are
    /// rebuilt from stored states this way, after a restart or a failover);
    /// one already waiting here is left as it is.
    fn keep_suspended(
        &self,
        module: &Module,
        state: &WorkflowState,
        suspended: Suspended,
        version: Version,
    ) {
        let id = &state.workflow_id;
        if self.inner.waiting.contains(id) {
            return;
        }
        let owned_in = self.store_for(module).ownership().map(|ownership| {
            let partition = ownership.partition_of(id);
            (ownership, partition)
        });
        self.inner.waiting.register(
            &self.inner,
            id,
            Waiter {
                module: module.clone(),
                run_id: state.run_id.clone(),
                suspended,
                version,
                carried: None,
                owned_in,
            },
        );
    }
}
