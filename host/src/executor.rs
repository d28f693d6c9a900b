//! The embedding API: [`Host`] loads workflow modules and executes workflows,
//! persisting each run's lifecycle through the store.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::model::{self, EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::{GuestOutput, HostConfig, Module, Runtime};
use crate::store::{StoreError, WorkflowStore, validate};

/// Why [`Host::execute`] could not run a workflow at all.
///
/// A workflow that ran and failed is not an error: it is a state with status
/// `failed`. These errors mean the lifecycle itself could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The workflow id or input was rejected; nothing was written.
    #[error("invalid workflow request: {0}")]
    InvalidRequest(String),
    /// The store refused or failed a lifecycle write.
    #[error("recording the workflow's state failed: {0}")]
    Store(#[from] StoreError),
}

/// A workflow host: a wasmtime engine and a workflow store.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use wf_host::{Host, model::WorkflowStatus, store::MemoryStore};
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// # let pipeline_wasm = wf_test_artifacts::PIPELINE;
/// let host = Host::new(Arc::new(MemoryStore::new()))?;
/// let module = host.load_module_file(pipeline_wasm)?;
/// let state = host.run(&module, "pipeline-001", r#""start processing""#).await?;
/// assert_eq!(state.status, WorkflowStatus::Completed);
/// // The store holds the same final state.
/// let stored = host.store().load("pipeline-001").await?.expect("saved");
/// assert_eq!(stored.history.len(), 5);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Host {
    runtime: Runtime,
    store: Arc<dyn WorkflowStore>,
}

impl Host {
    /// A host on `store` with the default [`HostConfig`].
    pub fn new(store: Arc<dyn WorkflowStore>) -> anyhow::Result<Self> {
        Self::with_config(store, HostConfig::default())
    }

    /// A host on `store` with explicit limits.
    pub fn with_config(store: Arc<dyn WorkflowStore>, config: HostConfig) -> anyhow::Result<Self> {
        Ok(Self {
            runtime: Runtime::new(config)?,
            store,
        })
    }

    /// The store workflows run against.
    pub fn store(&self) -> &Arc<dyn WorkflowStore> {
        &self.store
    }

    /// The limits applied to each workflow.
    pub fn config(&self) -> &HostConfig {
        self.runtime.config()
    }

    /// Compiles the workflow component in the file at `path`.
    pub fn load_module_file(&self, path: impl AsRef<Path>) -> anyhow::Result<Module> {
        self.runtime.load_file(path.as_ref())
    }

    /// Compiles a workflow component from its bytes; `name` is used in logs.
    pub fn load_module_bytes(&self, name: &str, bytes: &[u8]) -> anyhow::Result<Module> {
        self.runtime.load_bytes(name, bytes)
    }

    /// Runs workflow `workflow_id` of `module` with `input` (JSON text) to its end.
    ///
    /// Saves `running` with a `workflow_started` event, calls the guest's `run`,
    /// then saves `completed` (with the result) or `failed` (with the error, also
    /// for a trap, the deadline or a limit) with the matching event, keeping any
    /// history the guest itself saved under this id during the run. Returns the
    /// final state. A guest failure never fails the host.
    pub async fn run(
        &self,
        module: &Module,
        workflow_id: &str,
        input: &str,
    ) -> Result<WorkflowState, ExecuteError> {
        validate::check_id("execute", workflow_id)
            .map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;
        model::validate_json("input", input)
            .map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;

        let started_at = Timestamp::now();
        // The input is kept once, in `input`: a copy in the event would halve
        // the value budget left for large inputs.
        let started = HistoryEvent::new(1, EventType::WorkflowStarted, started_at);
        let mut running = WorkflowState {
            workflow_id: workflow_id.to_owned(),
            run_id: uuid::Uuid::new_v4().to_string(),
            status: WorkflowStatus::Running,
            input: Some(input.to_owned()),
            result: None,
            error: String::new(),
            history: vec![started],
            created_at: started_at,
            updated_at: started_at,
        };
        // Normalized here too so the states returned equal the states stored.
        running.normalize_json_fields();
        self.store.save(running.clone()).await?;
        tracing::info!(workflow_id, run_id = %running.run_id, module = module.name(), "workflow started");

        let clock = Instant::now();
        let outcome = self.call_guest(module, &running.workflow_id, input).await;
        let elapsed = clock.elapsed();

        let last = self.current_state(running).await;
        let final_state = finish(&last, outcome, elapsed);
        match self.store.save(final_state.clone()).await {
            Ok(()) => {}
            // The guest's result itself was refused (too large, invalid):
            // record that as the failure rather than leave the run `running`.
            Err(StoreError::TooLarge(e) | StoreError::InvalidArgument(e))
                if final_state.status == WorkflowStatus::Completed =>
            {
                let refused = finish(
                    &last,
                    Err(format!("the store refused the workflow's result: {e}")),
                    elapsed,
                );
                self.store.save(refused.clone()).await?;
                return Ok(log_end(refused));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(log_end(final_state))
    }

    /// Instantiates the module in a fresh sandbox and calls `run`.
    /// `Ok` is the guest's JSON result; `Err` says why the run failed.
    async fn call_guest(
        &self,
        module: &Module,
        workflow_id: &str,
        input: &str,
    ) -> Result<String, String> {
        let (mut wasm_store, stderr) = self.runtime.new_store(workflow_id, self.store.clone());
        // The generated export takes `&String`.
        let (workflow_id, input) = (workflow_id.to_owned(), input.to_owned());
        let called = async {
            let instance = module.pre().instantiate_async(&mut wasm_store).await?;
            instance
                .call_run(&mut wasm_store, &workflow_id, &input)
                .await
        }
        .await;
        match called {
            Ok(Ok(result)) => match model::validate_json("result", &result) {
                Ok(()) => Ok(result),
                Err(e) => Err(format!("the workflow returned invalid JSON: {e}")),
            },
            Ok(Err(message)) => Err(message),
            Err(trap) => Err(describe_trap(&trap, self.runtime.config(), &stderr)),
        }
    }

    /// The state to finish from: what is stored now if it is still this run
    /// (so history the guest appended is kept), else the host's own copy.
    async fn current_state(&self, running: WorkflowState) -> WorkflowState {
        match self.store.load(&running.workflow_id).await {
            Ok(Some(stored)) if stored.run_id == running.run_id => Arc::unwrap_or_clone(stored),
            _ => running,
        }
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
fn finish(
    state: &WorkflowState,
    outcome: Result<String, String>,
    elapsed: std::time::Duration,
) -> WorkflowState {
    let now = Timestamp::now();
    let next_id = state.history.iter().map(|e| e.id).max().unwrap_or(0) + 1;
    let mut event;
    let mut end = state.clone();
    match outcome {
        Ok(result) => {
            event = HistoryEvent::new(next_id, EventType::WorkflowCompleted, now);
            event.result = Some(result.clone());
            end.status = WorkflowStatus::Completed;
            end.result = Some(result);
            end.error.clear();
        }
        Err(error) => {
            event = HistoryEvent::new(next_id, EventType::WorkflowFailed, now);
            event.error = error.clone();
            end.status = WorkflowStatus::Failed;
            end.result = None;
            end.error = error;
        }
    }
    event.duration_ns = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
    end.history.push(event);
    end.updated_at = now;
    end.normalize_json_fields();
    end
}

/// One line saying why the guest stopped: deadline, limit or trap, with the
/// guest's last stderr output (a Rust panic message, say) when there is one.
fn describe_trap(error: &wasmtime::Error, config: &HostConfig, stderr: &GuestOutput) -> String {
    let mut message = match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            format!(
                "deadline exceeded: the workflow ran longer than {:?}",
                config.timeout
            )
        }
        Some(trap) => format!("the workflow trapped: {trap}"),
        None => format!("the workflow failed in the host: {error:#}"),
    };
    let tail = stderr.tail();
    if !tail.is_empty() {
        message.push_str("; guest stderr: ");
        message.push_str(&tail);
    }
    message
}
