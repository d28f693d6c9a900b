//! Driving a run: the guest called in a fresh sandbox until it returns,
//! traps, hits its deadline or is canceled, and the end recorded (with a
//! fallback when the store refuses the final state).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admit::Admitted;
use super::{ExecuteError, HostInner, Stop};
use crate::fence::RunFence;
use crate::model::{self, EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::{GuestOutput, Module, RunLimits};
use crate::store::{StoreError, WorkflowStore};

/// How a guest's run ended, before it is recorded.
enum Outcome {
    Completed(String),
    Failed(String),
    Canceled,
}

impl HostInner {
    /// Runs the guest to its end, deadline or cancellation and saves the
    /// final state.
    pub(super) async fn drive(
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
            fence.clone(),
            self.owners.get(),
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
const CANCELED: &str = "canceled on request";

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
