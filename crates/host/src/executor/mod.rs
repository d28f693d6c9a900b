//! The embedding API: [`Host`] loads workflow modules, executes workflows
//! concurrently under limits, cancels and recovers them, and persists each
//! run's lifecycle through the store.
//!
//! [`admit`] starts a run (its id claimed, a slot taken, `running` saved),
//! [`run`] drives the guest and records how it ended, and [`recover`] takes
//! up runs left `running` and follows the ownership of a shared store.

mod admit;
mod query;
mod recover;
mod run;
mod signal;
mod wait;

use admit::{Admission, Begin};
pub use query::QueryError;
use wait::Waiting;
pub use wait::WaitingWorkflow;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::model::{WorkflowState, WorkflowStatus};
use crate::runtime::{HostConfig, Module, ModuleOptions, Runtime};
use crate::store::{NotOwner, Ownership, SharedOwnerLink, StoreError, WorkflowStore};

/// Why the host could not start, record or cancel a workflow.
///
/// A workflow that ran and failed is not an error: it is a state with status
/// `failed`. These errors mean the request was refused or the lifecycle itself
/// could not be recorded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
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
    /// A signal to an id that holds no state; nothing was written.
    #[error("no workflow {0:?} is stored")]
    NotFound(String),
    /// A signal to a workflow that ended; nothing was written.
    #[error("workflow {0:?} has ended ({1}); it takes no more signals")]
    Ended(String, WorkflowStatus),
    /// A start of an id that holds a record that is not a workflow run (a
    /// record a guest saved); nothing was written. Only
    /// [`IdReuse::AllowDuplicate`](crate::IdReuse::AllowDuplicate) starts
    /// a run over it.
    #[error(
        "workflow id {0:?} holds a record that is not a workflow run; a start does not replace it"
    )]
    NotARun(String),
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct RecoverOptions {
    /// Only ids starting with this.
    pub id_prefix: Option<String>,
    /// Only ids in these partitions (hosts sharing a store: the partitions
    /// this host just gained). Ids this host does not own are always skipped.
    pub partitions: Option<Vec<i32>>,
    /// Also resume runs another build of the module (same name, other
    /// digest) started. Off by default: a history one build wrote may not
    /// replay under another (the SDKs' determinism rules).
    pub resume_other_builds: bool,
    /// Only keep suspended runs waiting (rebuild their due times); leave
    /// the others as they are. Off by default.
    pub waiting_only: bool,
}

impl RecoverOptions {
    /// Only ids starting with `prefix`.
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = Some(prefix.into());
        self
    }

    /// Only ids in `partitions`.
    pub fn partitions(mut self, partitions: Vec<i32>) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Sets [`RecoverOptions::waiting_only`].
    pub fn waiting_only(mut self, waiting_only: bool) -> Self {
        self.waiting_only = waiting_only;
        self
    }

    /// Sets [`RecoverOptions::resume_other_builds`].
    pub fn resume_other_builds(mut self, resume: bool) -> Self {
        self.resume_other_builds = resume;
        self
    }
}

/// What [`Host::recover`] found among the states left `running`, and did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// A handle per run taken up.
    pub resumed: Vec<WorkflowHandle>,
    /// Runs another module started: left for that module.
    pub other_modules: usize,
    /// Runs another build of this module started, left as they are (see
    /// [`RecoverOptions::resume_other_builds`]): their ids.
    pub other_builds: Vec<String>,
    /// States with status `running` that are not runs (records guests
    /// saved): never resumed.
    pub not_runs: usize,
    /// Runs of this module that could not be resumed, and why; the others
    /// were resumed all the same.
    pub failed: Vec<(String, ExecuteError)>,
    /// The ids of the suspended runs found: kept waiting here (for a signal
    /// or a time, with no instance), and run when woken. [`Host::handle`]
    /// gives a handle on one, to wait for its end.
    pub waiting: Vec<String>,
}

impl Recovery {
    /// Whether runs of this module were left: some failed to resume, or
    /// another build started them.
    pub fn left_some(&self) -> bool {
        !self.failed.is_empty() || !self.other_builds.is_empty()
    }
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

/// How a run ended, shared by every handle on it.
type Ended = Arc<Result<WorkflowState, ExecuteError>>;

/// A run of a workflow: the one a start began, or, when the id's run
/// answered instead ([`WorkflowHandle::started`] is `false`), that run.
/// Dropping the handle does not stop the workflow;
/// [`WorkflowHandle::cancel`] does.
#[derive(Debug)]
pub struct WorkflowHandle {
    id: String,
    run_id: String,
    cancel: watch::Sender<Stop>,
    ended: watch::Receiver<Option<Ended>>,
    started: bool,
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

    /// Whether this start began the run. `false` when the id's run was
    /// already running on this host, or was stored and the module's
    /// [`IdReuse`](crate::IdReuse) policy returned it instead of starting
    /// another: the handle is then on that run.
    pub fn started(&self) -> bool {
        self.started
    }

    /// `running` until the run's final state is saved, then that state's
    /// status (for a stored run, its stored status).
    pub fn status(&self) -> WorkflowStatus {
        match self.ended.borrow().as_deref() {
            Some(Ok(state)) => state.status,
            _ => WorkflowStatus::Running,
        }
    }

    /// Interrupts the guest; the workflow ends `canceled`. No effect once it
    /// ended, or on a stored run that does not run here.
    pub fn cancel(&self) {
        request_stop(&self.cancel, Stop::Cancel);
    }

    /// Waits for the run to end and returns its final state, as saved (for
    /// a stored run, as stored).
    pub async fn result(mut self) -> Result<WorkflowState, ExecuteError> {
        let ended = self
            .ended
            .wait_for(Option::is_some)
            .await
            .map_err(|_| {
                ExecuteError::Internal(format!(
                    "the run of {} stopped without recording its end (its caller went away, or the host is stopping): it stays `running`, for recovery",
                    self.id
                ))
            })?
            .clone()
            .expect("waited for an end");
        (*ended).clone()
    }

    /// A handle on a stored run that does not run here.
    fn of_stored(state: WorkflowState) -> Self {
        let (cancel, _) = watch::channel(Stop::Run);
        Self {
            id: state.workflow_id.clone(),
            run_id: state.run_id.clone(),
            cancel,
            ended: watch::channel(Some(Arc::new(Ok(state)))).1,
            started: false,
        }
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
    /// How guests reach the owners of ids other hosts of a group own.
    owners: std::sync::OnceLock<SharedOwnerLink>,
    /// The workflows suspended on this host.
    waiting: Arc<Waiting>,
    /// The modules that ran here, with the most linear memory one of
    /// their instances grew to.
    memory_high_water: Mutex<std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug)]
struct RunningWorkflow {
    run_id: String,
    /// The name of the module running it.
    module: String,
    cancel: watch::Sender<Stop>,
    /// How the run ended, once it did (for starts that join it).
    ended: watch::Receiver<Option<Ended>>,
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

impl Host {
    /// A host on `store` with the default [`HostConfig`].
    pub fn new(store: Arc<dyn WorkflowStore>) -> anyhow::Result<Self> {
        Self::with_config(store, HostConfig::default())
    }

    /// A host on `store` with explicit limits.
    pub fn with_config(store: Arc<dyn WorkflowStore>, config: HostConfig) -> anyhow::Result<Self> {
        config
            .check()
            .map_err(|e| anyhow::anyhow!("invalid host configuration: {e}"))?;
        let slots = Arc::new(Semaphore::new(config.max_running.max(1)));
        Ok(Self {
            inner: Arc::new(HostInner {
                runtime: Runtime::new(config)?,
                store,
                running: Mutex::new(HashMap::new()),
                slots,
                owners: std::sync::OnceLock::new(),
                waiting: Arc::default(),
                memory_high_water: Mutex::default(),
            }),
        })
    }

    /// Links this host to the other hosts of its store's group: a guest's
    /// `load-versioned` and conditional `save` of an id another host owns go
    /// to that host through `owners` (only the owner can decide them).
    /// Without a link those calls fail with `unavailable`. The host's store
    /// is linked too ([`WorkflowStore::link_owners`]: one that keeps only
    /// this host's partitions reads the others there); a store a module is
    /// bound to is linked by whoever opened it. Set once; later calls
    /// return `false` and change nothing.
    pub fn link_owners(&self, owners: SharedOwnerLink) -> bool {
        if self.inner.owners.set(owners.clone()).is_err() {
            return false;
        }
        self.inner.store.link_owners(owners);
        true
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
    ///
    /// Starting an id is idempotent under the module's
    /// [`IdReuse`](crate::IdReuse) policy (by default
    /// [`RejectDuplicate`](crate::IdReuse::RejectDuplicate)): when the id's
    /// run runs on this host, the handle is on that run; when the store holds
    /// a run of the id (ended, or left running), that run is returned and
    /// not started again; [`WorkflowHandle::started`] tells which. An id
    /// holding a record that is not a run is refused
    /// ([`ExecuteError::NotARun`]). Concurrent starts of one id on one host
    /// give one run. Across hosts, only hosts of one group (which own
    /// disjoint ids) guarantee that; two hosts outside a group that start
    /// one id at the same moment can each start a run, the later save
    /// replacing the earlier.
    pub async fn execute(
        &self,
        module: &Module,
        options: ExecuteOptions,
    ) -> Result<WorkflowHandle, ExecuteError> {
        let timeout = options.timeout;
        let running = self.new_run(module, options).await?;
        self.start(
            module,
            running,
            Begin::New,
            timeout,
            self.waits_when_full(),
            None,
        )
        .await
    }

    /// Runs workflow `workflow_id` of `module` with `input` (JSON text) to its
    /// end and returns the final state: [`Host::execute`] and
    /// [`WorkflowHandle::result`] in one call, but the guest runs in the
    /// caller's task (no hand-off to another thread, so less latency).
    /// Dropping the returned future abandons the run: its state stays
    /// `running`, for [`Host::recover`]. Use `execute` where the caller may
    /// go away (an HTTP request, say). An id whose run answers instead
    /// ([`Host::execute`]'s id reuse) returns that run's final state.
    pub async fn run(
        &self,
        module: &Module,
        workflow_id: &str,
        input: &str,
    ) -> Result<WorkflowState, ExecuteError> {
        let running = self
            .new_run(module, ExecuteOptions::new(input).id(workflow_id))
            .await?;
        let admitted = match self
            .admit(module, &running, Begin::New, self.waits_when_full(), None)
            .await?
        {
            Admission::Started(admitted) => admitted,
            Admission::Existing(handle) => return handle.result().await,
        };
        let limits = self.inner.runtime.run_limits(module, None);
        let ended = admitted.ended.clone();
        let handle = WorkflowHandle {
            id: running.workflow_id.clone(),
            run_id: running.run_id.clone(),
            cancel: admitted.cancel.clone(),
            ended: ended.subscribe(),
            started: true,
        };
        match self.inner.drive(module, running, &limits, admitted).await {
            // Suspended: it ends in the run that wakes it.
            Ok(None) => handle.result().await,
            outcome => {
                let outcome = outcome.map(|state| state.expect("not suspended"));
                ended.send_replace(Some(Arc::new(outcome.clone())));
                outcome
            }
        }
    }

    /// Interrupts workflow `workflow_id` running on this host; it ends
    /// `canceled` with a `workflow_canceled` event. Returns once the request
    /// is delivered, not once the state is saved.
    pub fn cancel(&self, workflow_id: &str) -> Result<(), ExecuteError> {
        if let Some(workflow) = self.inner.lock_running().get(workflow_id) {
            request_stop(&workflow.cancel, Stop::Cancel);
            return Ok(());
        }
        // Suspended here: no instance to interrupt; its end is saved.
        let waiter = self
            .inner
            .waiting
            .take(workflow_id)
            .ok_or_else(|| ExecuteError::NotRunning(workflow_id.to_owned()))?;
        let host = self.clone();
        let id = workflow_id.to_owned();
        tokio::spawn(async move { host.cancel_suspended(&id, waiter).await });
        Ok(())
    }

    /// Sets the gauges of what this host holds now: runs and suspended
    /// workflows by module, and the memory high-water mark of each
    /// module's instances (see [`crate::metrics`]). A scrape calls it
    /// first; it takes a lock briefly and allocates per module.
    pub fn record_metrics(&self) {
        let mut running: HashMap<String, usize> = HashMap::new();
        for run in self.inner.lock_running().values() {
            *running.entry(run.module.clone()).or_default() += 1;
        }
        let mut suspended: HashMap<String, usize> = HashMap::new();
        for waiter in self.inner.waiting.list() {
            *suspended.entry(waiter.module).or_default() += 1;
        }
        let high_water = self
            .inner
            .memory_high_water
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for module in &high_water {
            for (counts, name) in [
                (&running, crate::metrics::WORKFLOWS_RUNNING),
                (&suspended, crate::metrics::WORKFLOWS_SUSPENDED),
            ] {
                ::metrics::gauge!(name, "module" => module.0.clone())
                    .set(counts.get(module.0).copied().unwrap_or(0) as f64);
            }
            ::metrics::gauge!(crate::metrics::GUEST_MEMORY_HIGH_WATER, "module" => module.0.clone())
                .set(*module.1 as f64);
        }
        self.inner.store.record_metrics();
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

    /// A handle on workflow `workflow_id`'s run, when it runs or is
    /// suspended on this host (to wait for its end, or cancel it).
    pub fn handle(&self, workflow_id: &str) -> Option<WorkflowHandle> {
        if let Some(running) = self.inner.lock_running().get(workflow_id) {
            return Some(WorkflowHandle {
                id: workflow_id.to_owned(),
                run_id: running.run_id.clone(),
                cancel: running.cancel.clone(),
                ended: running.ended.clone(),
                started: false,
            });
        }
        self.inner.waiting.handle_of(workflow_id)
    }

    /// Whether workflow `workflow_id` is suspended on this host: waiting,
    /// with no instance, for a signal or a time.
    pub fn is_waiting(&self, workflow_id: &str) -> bool {
        self.inner.waiting.contains(workflow_id)
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
}

impl HostInner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningWorkflow>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_of<'a>(&'a self, module: &'a Module) -> &'a Arc<dyn WorkflowStore> {
        module.options().store.as_ref().unwrap_or(&self.store)
    }
}
