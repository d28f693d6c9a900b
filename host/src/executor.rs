//! The embedding API: [`Host`] loads workflow modules, executes workflows
//! concurrently under limits, cancels and recovers them, and persists each
//! run's lifecycle through the store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use crate::bindings::RunFence;
use crate::model::{self, EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::{
    GuestOutput, HostConfig, Module, ModuleOptions, RunLimits, Runtime, WhenFull,
};
use crate::store::{ListFilter, NotOwner, Ownership, StoreError, Version, WorkflowStore, validate};

/// Why the host could not start, record or cancel a workflow.
///
/// A workflow that ran and failed is not an error: it is a state with status
/// `failed`. These errors mean the request was refused or the lifecycle itself
/// could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The workflow id or input was rejected; nothing was written.
    #[error("invalid workflow request: {0}")]
    InvalidRequest(String),
    /// The workflow is already running on this host; nothing was written.
    #[error("workflow {0} is already running on this host")]
    AlreadyRunning(String),
    /// Cancel of a workflow that is not running on this host.
    #[error("workflow {0} is not running on this host")]
    NotRunning(String),
    /// Every slot of the host or the module is taken and the host is set to
    /// refuse ([`WhenFull::Refuse`](crate::WhenFull::Refuse)); nothing was written.
    #[error("busy: {0}")]
    Busy(String),
    /// Hosts share the store and another one owns the workflow (the error
    /// names it when it announced itself); nothing was written. Send the
    /// request there.
    #[error("not the owner: {0}")]
    NotOwner(#[from] NotOwner),
    /// The run was stopped without recording its end, because this host gave
    /// up the workflow (its partition went to another host, or
    /// [`Host::abandon_all`]); it stays `running` for the next owner.
    #[error("workflow {0} was handed over: its run here stopped without recording an end")]
    Abandoned(String),
    /// The store refused or failed a lifecycle write.
    #[error("recording the workflow's state failed: {0}")]
    Store(#[from] StoreError),
    /// The host failed while running the workflow (a bug, not the guest's fault).
    #[error("the host failed running the workflow: {0}")]
    Internal(String),
}

/// What to run: the input, and optionally the id and a deadline.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// The workflow id; a fresh UUID when `None`.
    pub id: Option<String>,
    /// The input, JSON text.
    pub input: String,
    /// The wall-clock deadline; the module's or the host's default when `None`.
    pub timeout: Option<Duration>,
}

impl ExecuteOptions {
    /// Run with `input` (JSON text) under a generated id.
    pub fn new(input: impl Into<String>) -> Self {
        Self {
            id: None,
            input: input.into(),
            timeout: None,
        }
    }

    /// Run under workflow id `id`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Fail the run with a deadline error after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Which `running` workflows [`Host::recover`] takes up.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Only ids starting with this.
    pub id_prefix: Option<String>,
    /// Only ids in these partitions (hosts sharing a store: the partitions
    /// this host just gained). Ids this host does not own are always skipped.
    pub partitions: Option<Vec<i32>>,
}

/// What a running workflow is asked to do, through its handle or the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Nothing: run on.
    Run,
    /// End `canceled`.
    Cancel,
    /// Stop without recording an end: another host takes the workflow over.
    Abandon,
}

/// A workflow running on a host. Dropping the handle does not stop the
/// workflow; [`WorkflowHandle::cancel`] does.
#[derive(Debug)]
pub struct WorkflowHandle {
    id: String,
    run_id: String,
    status: watch::Receiver<WorkflowStatus>,
    cancel: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<Result<WorkflowState, ExecuteError>>,
}

impl WorkflowHandle {
    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// `running` until the run's final state is saved, then that state's status.
    pub fn status(&self) -> WorkflowStatus {
        *self.status.borrow()
    }

    /// Interrupts the guest; the workflow ends `canceled`. No effect once it ended.
    pub fn cancel(&self) {
        request_stop(&self.cancel, Stop::Cancel);
    }

    /// Waits for the run to end and returns its final state, as saved.
    pub async fn result(self) -> Result<WorkflowState, ExecuteError> {
        self.task
            .await
            .map_err(|e| ExecuteError::Internal(format!("the workflow's task ended: {e}")))?
    }
}

/// A workflow host: a wasmtime engine, loaded modules, and a workflow store.
/// Cheap to clone; clones share everything.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use wf_host::{ExecuteOptions, Host, model::WorkflowStatus, store::MemoryStore};
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// # let pipeline_wasm = wf_test_artifacts::PIPELINE;
/// let host = Host::new(Arc::new(MemoryStore::new()))?;
/// let module = host.load_module_file(pipeline_wasm)?;
///
/// // Start a run and wait for it.
/// let handle = host
///     .execute(&module, ExecuteOptions::new(r#""start processing""#).id("pipeline-001"))
///     .await?;
/// assert_eq!(handle.id(), "pipeline-001");
/// let state = handle.result().await?;
/// assert_eq!(state.status, WorkflowStatus::Completed);
///
/// // The store holds the same final state.
/// let stored = host.query("pipeline-001").await?.expect("saved");
/// assert_eq!(stored.history.len(), 5);
///
/// // `run` is the same in one call.
/// let again = host.run(&module, "pipeline-002", r#""more""#).await?;
/// assert_eq!(again.status, WorkflowStatus::Completed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

#[derive(Debug)]
struct HostInner {
    runtime: Runtime,
    store: Arc<dyn WorkflowStore>,
    /// Workflows running on this host, by id.
    running: Mutex<HashMap<String, RunningWorkflow>>,
    /// One permit per running workflow, `HostConfig::max_running` in all.
    slots: Arc<Semaphore>,
}

#[derive(Debug)]
struct RunningWorkflow {
    run_id: String,
    cancel: watch::Sender<Stop>,
    /// With hosts sharing the store: who decides ownership, and the
    /// workflow's partition.
    owned_in: Option<(Arc<Ownership>, i32)>,
}

/// Asks a run to stop as `stop` says, unless it was already asked to.
fn request_stop(sender: &watch::Sender<Stop>, stop: Stop) {
    sender.send_if_modified(|current| {
        let first = *current == Stop::Run;
        if first {
            *current = stop;
        }
        first
    });
}

/// How a guest's run ended, before it is recorded.
enum Outcome {
    Completed(String),
    Failed(String),
    Canceled,
}

impl Host {
    /// A host on `store` with the default [`HostConfig`].
    pub fn new(store: Arc<dyn WorkflowStore>) -> anyhow::Result<Self> {
        Self::with_config(store, HostConfig::default())
    }

    /// A host on `store` with explicit limits.
    pub fn with_config(store: Arc<dyn WorkflowStore>, config: HostConfig) -> anyhow::Result<Self> {
        let slots = Arc::new(Semaphore::new(config.max_running.max(1)));
        Ok(Self {
            inner: Arc::new(HostInner {
                runtime: Runtime::new(config)?,
                store,
                running: Mutex::new(HashMap::new()),
                slots,
            }),
        })
    }

    /// The store workflows run against, unless their module is bound to
    /// another ([`ModuleOptions::store`]).
    pub fn store(&self) -> &Arc<dyn WorkflowStore> {
        &self.inner.store
    }

    /// The store `module`'s workflows are kept in: its own, or the host's.
    pub fn store_for<'a>(&'a self, module: &'a Module) -> &'a Arc<dyn WorkflowStore> {
        self.inner.store_of(module)
    }

    /// The host's limits and settings.
    pub fn config(&self) -> &HostConfig {
        self.inner.runtime.config()
    }

    /// Whether instances come from the pooling allocator (see [`HostConfig::pooling`]).
    pub fn uses_pooling_allocator(&self) -> bool {
        self.inner.runtime.pooling()
    }

    /// Compiles the workflow component in the file at `path`, with the
    /// host's default limits and no granted directories.
    pub fn load_module_file(&self, path: impl AsRef<Path>) -> anyhow::Result<Module> {
        self.load_module_file_with(path, ModuleOptions::default())
    }

    /// Compiles the workflow component in the file at `path` with `options`.
    /// The same bytes are compiled once per host (and once per machine with
    /// [`HostConfig::cache_dir`]).
    pub fn load_module_file_with(
        &self,
        path: impl AsRef<Path>,
        options: ModuleOptions,
    ) -> anyhow::Result<Module> {
        self.inner.runtime.load_file(path.as_ref(), options)
    }

    /// Compiles a workflow component from its bytes; `name` is used in logs.
    pub fn load_module_bytes(&self, name: &str, bytes: &[u8]) -> anyhow::Result<Module> {
        self.load_module_bytes_with(name, bytes, ModuleOptions::default())
    }

    /// Compiles a workflow component from its bytes with `options`.
    pub fn load_module_bytes_with(
        &self,
        name: &str,
        bytes: &[u8],
        options: ModuleOptions,
    ) -> anyhow::Result<Module> {
        self.inner.runtime.load_bytes(name, bytes, options)
    }

    /// Starts a workflow of `module` and returns once its `running` state
    /// (with a `workflow_started` event) is saved; the guest runs on a task of
    /// its own. When the host or the module already runs its most workflows
    /// ([`HostConfig::max_running`], [`ModuleLimits::max_running`](crate::ModuleLimits::max_running)),
    /// waits for a slot or refuses with [`ExecuteError::Busy`], as
    /// [`HostConfig::when_full`] says.
    ///
    /// When the run ends, the host saves `completed` (with the result),
    /// `failed` (with the error: the guest's, a trap, the deadline or a
    /// limit) or `canceled`, with the matching event, keeping any history the
    /// guest saved under this id during the run. A guest failure never fails
    /// the host.
    pub async fn execute(
        &self,
        module: &Module,
        options: ExecuteOptions,
    ) -> Result<WorkflowHandle, ExecuteError> {
        let timeout = options.timeout;
        let running = new_run(options)?;
        check_access(module, &running.workflow_id)?;
        self.check_owner(module, &running.workflow_id).await?;
        self.start(module, running, None, timeout, self.waits_when_full())
            .await
    }

    /// Runs workflow `workflow_id` of `module` with `input` (JSON text) to its
    /// end and returns the final state: [`Host::execute`] and
    /// [`WorkflowHandle::result`] in one call, but the guest runs in the
    /// caller's task (no hand-off to another thread, so less latency).
    /// Dropping the returned future abandons the run: its state stays
    /// `running`, for [`Host::recover`]. Use `execute` where the caller may
    /// go away (an HTTP request, say).
    pub async fn run(
        &self,
        module: &Module,
        workflow_id: &str,
        input: &str,
    ) -> Result<WorkflowState, ExecuteError> {
        let options = ExecuteOptions::new(input).id(workflow_id);
        let timeout = options.timeout;
        let running = new_run(options)?;
        check_access(module, &running.workflow_id)?;
        self.check_owner(module, &running.workflow_id).await?;
        let admitted = self
            .admit(module, &running, None, self.waits_when_full())
            .await?;
        let limits = self.inner.runtime.run_limits(module, timeout);
        self.inner.drive(module, running, &limits, admitted).await
    }

    /// Interrupts workflow `workflow_id` running on this host; it ends
    /// `canceled` with a `workflow_canceled` event. Returns once the request
    /// is delivered, not once the state is saved.
    pub fn cancel(&self, workflow_id: &str) -> Result<(), ExecuteError> {
        let running = self.inner.lock_running();
        let workflow = running
            .get(workflow_id)
            .ok_or_else(|| ExecuteError::NotRunning(workflow_id.to_owned()))?;
        request_stop(&workflow.cancel, Stop::Cancel);
        Ok(())
    }

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
                    let options = RecoverOptions {
                        partitions: Some(partitions),
                        ..RecoverOptions::default()
                    };
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

    /// `NotOwner` unless this host owns `workflow_id` in `module`'s store.
    async fn check_owner(&self, module: &Module, workflow_id: &str) -> Result<(), ExecuteError> {
        match self.store_for(module).ownership() {
            Some(ownership) => Ok(ownership.check(workflow_id).await?),
            None => Ok(()),
        }
    }

    /// The ids of the workflows running on this host, sorted.
    pub fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.lock_running().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Whether workflow `workflow_id` is running on this host.
    pub fn is_running(&self, workflow_id: &str) -> bool {
        self.inner.lock_running().contains_key(workflow_id)
    }

    /// The status of workflow `workflow_id`: `running` while it runs on this
    /// host, else the stored status (`None` when nothing is stored).
    pub async fn status(&self, workflow_id: &str) -> Result<Option<WorkflowStatus>, StoreError> {
        if self.is_running(workflow_id) {
            return Ok(Some(WorkflowStatus::Running));
        }
        Ok(self.query(workflow_id).await?.map(|s| s.status))
    }

    /// The stored state of workflow `workflow_id`: the last state saved, by
    /// the host or by the guest during its run.
    pub async fn query(&self, workflow_id: &str) -> Result<Option<Arc<WorkflowState>>, StoreError> {
        self.inner.store.load(workflow_id).await
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

    /// Claims the id, takes a slot (waiting for one if `wait`), saves
    /// `running` over version `over` (the stored one when `None`) and spawns
    /// the guest.
    async fn start(
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

    fn waits_when_full(&self) -> bool {
        self.config().when_full == WhenFull::Wait
    }

    /// Claims the id (refusing one running here), takes a slot of the module
    /// and one of the host (waiting for them if `wait`, else refusing) and
    /// saves `running`, conditional on the id still being at version `over`
    /// (when `None`, the version stored when the slot was taken).
    async fn admit(
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
struct Admitted {
    _claim: Claim,
    _module_permit: Option<OwnedSemaphorePermit>,
    _permit: OwnedSemaphorePermit,
    cancel: watch::Sender<Stop>,
    canceled: watch::Receiver<Stop>,
    /// The version of the run's own id it last wrote.
    fence: Arc<RunFence>,
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

/// `denied` unless `module` may run workflow `workflow_id`.
fn check_access(module: &Module, workflow_id: &str) -> Result<(), ExecuteError> {
    Ok(check_module_access(module, "execute", workflow_id)?)
}

/// `denied` unless `module`'s policy allows `workflow_id`; logs a refusal.
pub(crate) fn check_module_access(
    module: &Module,
    op: &str,
    workflow_id: &str,
) -> Result<(), StoreError> {
    crate::bindings::check_access(module.name(), &module.options().access, op, workflow_id)
}

/// The `running` state a new run starts from, after checking the request.
fn new_run(options: ExecuteOptions) -> Result<WorkflowState, ExecuteError> {
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

impl HostInner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningWorkflow>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_of<'a>(&'a self, module: &'a Module) -> &'a Arc<dyn WorkflowStore> {
        module.options().store.as_ref().unwrap_or(&self.store)
    }

    /// Runs the guest to its end, deadline or cancellation and saves the
    /// final state.
    async fn drive(
        &self,
        module: &Module,
        running: WorkflowState,
        limits: &RunLimits,
        admitted: Admitted,
    ) -> Result<WorkflowState, ExecuteError> {
        let mut canceled = admitted.canceled.clone();
        let fence = admitted.fence.clone();
        let clock = Instant::now();
        let input = running.input.clone().unwrap_or_else(|| "null".to_owned());
        // The guest yields at every epoch tick, so these are noticed within
        // a tick; dropping the call future drops the guest's store with it.
        let outcome = tokio::select! {
            outcome = self.call_guest(module, limits, &running.workflow_id, &input, &fence) => outcome,
            () = tokio::time::sleep(limits.timeout) => Outcome::Failed(format!(
                "deadline exceeded: the workflow ran longer than {:?}",
                limits.timeout
            )),
            stop = canceled.wait_for(|stop| *stop != Stop::Run) => match stop.map(|stop| *stop) {
                Ok(Stop::Abandon) => {
                    tracing::info!(workflow_id = %running.workflow_id, "workflow handed over; its run here stopped");
                    return Err(ExecuteError::Abandoned(running.workflow_id));
                }
                _ => Outcome::Canceled,
            },
        };
        let elapsed = clock.elapsed();

        let store = self.store_of(module);
        let last = self.current_state(store, running, &fence).await;
        let final_state = finish(&last, outcome, elapsed);
        let id = last.workflow_id.clone();
        let save_final = |state: WorkflowState| async {
            store
                .save_versioned(state, Some(fence.version()))
                .await
                .map_err(|e| lost_to_another_writer(&id, e))
        };
        let refusal = match save_final(final_state.clone()).await {
            Ok(_) => return Ok(log_end(final_state)),
            // The final state itself was refused (a result too large or not
            // JSON, a history at its bound): record that as the failure
            // rather than leave the run `running`.
            Err(StoreError::TooLarge(e) | StoreError::InvalidArgument(e)) => e,
            Err(e) => return Err(e.into()),
        };
        let why = format!("the store refused the workflow's final state: {refusal}");
        let mut refused = finish(&last, Outcome::Failed(why.clone()), elapsed);
        if let Err(StoreError::TooLarge(_) | StoreError::InvalidArgument(_)) =
            save_final(refused.clone()).await
        {
            // Still too large with the guest's history: keep the host's
            // own record of the run instead.
            let own: Vec<_> = last
                .history
                .iter()
                .filter(|e| e.kind == EventType::WorkflowStarted)
                .cloned()
                .collect();
            let bare = WorkflowState {
                history: own,
                ..last
            };
            refused = finish(
                &bare,
                Outcome::Failed(format!("{why}; the history it recorded was dropped")),
                elapsed,
            );
            save_final(refused.clone()).await?;
        }
        Ok(log_end(refused))
    }

    /// Instantiates the module in a fresh sandbox and calls `run`.
    async fn call_guest(
        &self,
        module: &Module,
        limits: &RunLimits,
        workflow_id: &str,
        input: &str,
        fence: &Arc<RunFence>,
    ) -> Outcome {
        let (mut wasm_store, stderr) = match self.runtime.new_store(
            module,
            limits,
            workflow_id,
            self.store_of(module).clone(),
            Some(fence.clone()),
        ) {
            Ok(created) => created,
            Err(e) => return Outcome::Failed(format!("setting up the sandbox failed: {e:#}")),
        };
        // The generated export takes `&String`.
        let (workflow_id, input) = (workflow_id.to_owned(), input.to_owned());
        let instance = match module.pre().instantiate_async(&mut wasm_store).await {
            Ok(instance) => instance,
            // Refused before any guest code ran: a limit the module does
            // not fit in (tables, instances, initial memory) or a full pool.
            Err(e) => {
                let limit = match wasm_store.data().limiter.refused() {
                    Some(refused) => format!("{refused}; "),
                    None => String::new(),
                };
                return Outcome::Failed(format!(
                    "{limit}instantiating the workflow failed: {e:#} (limits: {} bytes of memory, {} table elements, {} instances)",
                    limits.memory_bytes, limits.table_elements, limits.instances
                ));
            }
        };
        let called = instance
            .call_run(&mut wasm_store, &workflow_id, &input)
            .await;
        match called {
            Ok(Ok(result)) => match model::validate_json("result", &result) {
                Ok(()) => Outcome::Completed(result),
                Err(e) => Outcome::Failed(format!("the workflow returned invalid JSON: {e}")),
            },
            Ok(Err(message)) => Outcome::Failed(message),
            Err(trap) => Outcome::Failed(describe_trap(
                &trap,
                limits,
                wasm_store.data().limiter.refused(),
                &stderr,
            )),
        }
    }

    /// The state to finish from: what is stored now if this run wrote it
    /// last (so history the guest appended is kept), else the host's own copy
    /// (whose save then fails on the fence, if another writer came between).
    async fn current_state(
        &self,
        store: &Arc<dyn WorkflowStore>,
        running: WorkflowState,
        fence: &RunFence,
    ) -> WorkflowState {
        match store.load_versioned(&running.workflow_id).await {
            Ok(Some(stored))
                if stored.version == fence.version() && stored.state.run_id == running.run_id =>
            {
                Arc::unwrap_or_clone(stored.state)
            }
            _ => running,
        }
    }
}

/// Explains a lifecycle save that lost to another writer: the run keeps
/// going nowhere, and the other writer's state stands.
fn lost_to_another_writer(workflow_id: &str, error: StoreError) -> StoreError {
    match error {
        StoreError::Conflict(e) => {
            tracing::warn!(%workflow_id, "the run's end is not recorded: another writer (the workflow's new owner?) wrote it first: {e}");
            StoreError::Conflict(format!(
                "the run's end was not recorded, another writer came first: {e}"
            ))
        }
        e => e,
    }
}

/// Logs how a run ended and passes its state through.
fn log_end(state: WorkflowState) -> WorkflowState {
    match state.status {
        WorkflowStatus::Failed => {
            tracing::warn!(workflow_id = %state.workflow_id, error = %state.error, "workflow failed")
        }
        status => {
            tracing::info!(workflow_id = %state.workflow_id, %status, "workflow finished")
        }
    }
    state
}

/// Applies the end of a run to `state` and returns the state to save.
fn finish(state: &WorkflowState, outcome: Outcome, elapsed: Duration) -> WorkflowState {
    let now = Timestamp::now();
    let next_id = state.history.iter().map(|e| e.id).max().unwrap_or(0) + 1;
    let mut event;
    let mut end = state.clone();
    match outcome {
        Outcome::Completed(result) => {
            event = HistoryEvent::new(next_id, EventType::WorkflowCompleted, now);
            event.result = Some(result.clone());
            end.status = WorkflowStatus::Completed;
            end.result = Some(result);
            end.error.clear();
        }
        Outcome::Failed(error) => {
            event = HistoryEvent::new(next_id, EventType::WorkflowFailed, now);
            event.error = error.clone();
            end.status = WorkflowStatus::Failed;
            end.result = None;
            end.error = error;
        }
        Outcome::Canceled => {
            event = HistoryEvent::new(next_id, EventType::WorkflowCanceled, now);
            event.error = CANCELED.to_owned();
            end.status = WorkflowStatus::Canceled;
            end.result = None;
            end.error = CANCELED.to_owned();
        }
    }
    event.duration_ns = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
    end.history.push(event);
    end.updated_at = now;
    end.normalize_json_fields();
    end
}

/// The error text of a canceled workflow.
pub(crate) const CANCELED: &str = "canceled on request";

/// One line saying why the guest stopped: a limit, fuel, stack or another
/// trap, with the guest's last stderr output (a Rust panic message, say).
fn describe_trap(
    error: &wasmtime::Error,
    limits: &RunLimits,
    refused: Option<&str>,
    stderr: &GuestOutput,
) -> String {
    let trap = match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => format!(
            "fuel exhausted: the workflow used all of its {} units of fuel",
            limits.fuel.unwrap_or(u64::MAX)
        ),
        Some(wasmtime::Trap::StackOverflow) => {
            "stack overflow: the workflow exceeded the wasm stack limit".to_owned()
        }
        Some(trap) => format!("the workflow trapped: {trap}"),
        None => format!("the workflow failed in the host: {error:#}"),
    };
    // A refused grow explains the trap that usually follows it (a Rust
    // guest aborts on allocation failure), so it comes first.
    let mut message = match refused {
        Some(limit) => format!("{limit}; {trap}"),
        None => trap,
    };
    let tail = stderr.tail();
    if !tail.is_empty() {
        message.push_str("; guest stderr: ");
        message.push_str(&tail);
    }
    message
}
