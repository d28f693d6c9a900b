//! Starting a run: the id claimed on this host, a slot of the module and
//! one of the host taken (waited for or refused), ownership checked, and
//! `running` saved before the guest is called.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use super::{ExecuteError, ExecuteOptions, Host, HostInner, RunningWorkflow, Stop, WorkflowHandle};
use crate::fence::RunFence;
use crate::model::{self, EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::{Module, WhenFull};
use crate::store::{Ownership, Version, validate};

impl Host {
    /// The `running` state a new run of `module` starts from, once the
    /// request is valid, the module may run the id, and this host owns it.
    pub(super) async fn new_run(
        &self,
        module: &Module,
        options: ExecuteOptions,
    ) -> Result<WorkflowState, ExecuteError> {
        let running = running_state(options)?;
        module
            .options()
            .access
            .check(module.name(), "execute", &running.workflow_id)?;
        self.check_owner(module, &running.workflow_id).await?;
        Ok(running)
    }

    /// `NotOwner` unless this host owns `workflow_id` in `module`'s store.
    async fn check_owner(&self, module: &Module, workflow_id: &str) -> Result<(), ExecuteError> {
        match self.store_for(module).ownership() {
            Some(ownership) => Ok(ownership.check(workflow_id).await?),
            None => Ok(()),
        }
    }

    /// Claims the id, takes a slot (waiting for one if `wait`), saves
    /// `running` over version `over` (the stored one when `None`) and spawns
    /// the guest.
    pub(super) async fn start(
        &self,
        module: &Module,
        running: WorkflowState,
        over: Option<Version>,
        timeout: Option<Duration>,
        wait: bool,
    ) -> Result<WorkflowHandle, ExecuteError> {
        let admitted = self.admit(module, &running, over, wait).await?;
        let (status_tx, status) = watch::channel(WorkflowStatus::Running);
        let limits = self.inner.runtime.run_limits(module, timeout);
        let (id, run_id) = (running.workflow_id.clone(), running.run_id.clone());
        let cancel = admitted.cancel.clone();
        let inner = self.inner.clone();
        let module = module.clone();
        let task = tokio::spawn(async move {
            let ended = inner.drive(&module, running, &limits, admitted).await;
            if let Ok(state) = &ended {
                status_tx.send_replace(state.status);
            }
            ended
        });
        Ok(WorkflowHandle {
            id,
            run_id,
            status,
            cancel,
            task,
        })
    }

    pub(super) fn waits_when_full(&self) -> bool {
        self.config().when_full == WhenFull::Wait
    }

    /// Claims the id (refusing one running here), takes a slot of the module
    /// and one of the host (waiting for them if `wait`, else refusing) and
    /// saves `running`, conditional on the id still being at version `over`
    /// (when `None`, the version stored when the slot was taken).
    pub(super) async fn admit(
        &self,
        module: &Module,
        running: &WorkflowState,
        over: Option<Version>,
        wait: bool,
    ) -> Result<Admitted, ExecuteError> {
        let (cancel, canceled) = watch::channel(Stop::Run);
        let store = self.inner.store_of(module);
        let owned_in = store.ownership().map(|ownership| {
            let partition = ownership.partition_of(&running.workflow_id);
            (ownership, partition)
        });
        let claim = Claim::new(
            &self.inner,
            &running.workflow_id,
            &running.run_id,
            cancel.clone(),
            owned_in,
        )?;
        // The module's own slot first, so that a module at its bound does
        // not hold host slots other modules could use.
        let module_permit = match module.slots() {
            Some(slots) => Some(
                take_slot(slots, wait, || {
                    format!(
                        "module {} is running its limit of {} workflows",
                        module.name(),
                        module.options().limits.max_running.unwrap_or_default()
                    )
                })
                .await?,
            ),
            None => None,
        };
        let permit = take_slot(&self.inner.slots, wait, || {
            format!(
                "the host is running its limit of {} workflows",
                self.config().max_running
            )
        })
        .await?;
        let over = match over {
            Some(version) => version,
            None => store
                .load_versioned(&running.workflow_id)
                .await?
                .map_or(0, |stored| stored.version),
        };
        let version = store.save_versioned(running.clone(), Some(over)).await?;
        tracing::info!(workflow_id = %running.workflow_id, run_id = %running.run_id, module = module.name(), "workflow started");
        Ok(Admitted {
            _claim: claim,
            _module_permit: module_permit,
            _permit: permit,
            cancel,
            canceled,
            fence: Arc::new(RunFence::new(&running.workflow_id, version)),
        })
    }
}

/// A run that may start: its id claimed, a slot taken, `running` saved.
/// Dropping it releases the id and the slot.
pub(super) struct Admitted {
    _claim: Claim,
    _module_permit: Option<OwnedSemaphorePermit>,
    _permit: OwnedSemaphorePermit,
    pub(super) cancel: watch::Sender<Stop>,
    pub(super) canceled: watch::Receiver<Stop>,
    /// The version of the run's own id it last wrote.
    pub(super) fence: Arc<RunFence>,
}

/// A permit of `slots`: waited for, or refused with `Busy` (`busy()` says why).
async fn take_slot(
    slots: &Arc<Semaphore>,
    wait: bool,
    busy: impl FnOnce() -> String,
) -> Result<OwnedSemaphorePermit, ExecuteError> {
    let closed = || ExecuteError::Internal("the host's slots were closed".into());
    if wait {
        return slots.clone().acquire_owned().await.map_err(|_| closed());
    }
    slots.clone().try_acquire_owned().map_err(|e| match e {
        TryAcquireError::NoPermits => ExecuteError::Busy(busy()),
        TryAcquireError::Closed => closed(),
    })
}

/// The `running` state a new run starts from, after checking the request.
fn running_state(options: ExecuteOptions) -> Result<WorkflowState, ExecuteError> {
    let id = options
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    validate::check_id("execute", &id).map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;
    model::validate_json("input", &options.input)
        .map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;

    let started_at = Timestamp::now();
    // The input is kept once, in `input`: a copy in the event would halve
    // the value budget left for large inputs.
    let started = HistoryEvent::new(1, EventType::WorkflowStarted, started_at);
    let mut running = WorkflowState {
        workflow_id: id,
        run_id: uuid::Uuid::new_v4().to_string(),
        status: WorkflowStatus::Running,
        input: Some(options.input),
        result: None,
        error: String::new(),
        history: vec![started],
        created_at: started_at,
        updated_at: started_at,
    };
    // Normalized here too so the states returned equal the states stored.
    running.normalize_json_fields();
    Ok(running)
}

/// An id marked running on this host; unmarked when dropped (so also when the
/// start fails before the guest runs).
struct Claim {
    inner: Arc<HostInner>,
    id: String,
    run_id: String,
}

impl Claim {
    fn new(
        inner: &Arc<HostInner>,
        id: &str,
        run_id: &str,
        cancel: watch::Sender<Stop>,
        owned_in: Option<(Arc<Ownership>, i32)>,
    ) -> Result<Self, ExecuteError> {
        let mut running = inner.lock_running();
        if running.contains_key(id) {
            return Err(ExecuteError::AlreadyRunning(id.to_owned()));
        }
        running.insert(
            id.to_owned(),
            RunningWorkflow {
                run_id: run_id.to_owned(),
                cancel,
                owned_in,
            },
        );
        Ok(Self {
            inner: inner.clone(),
            id: id.to_owned(),
            run_id: run_id.to_owned(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self.inner.lock_running();
        if running
            .get(&self.id)
            .is_some_and(|w| w.run_id == self.run_id)
        {
            running.remove(&self.id);
        }
    }
}
