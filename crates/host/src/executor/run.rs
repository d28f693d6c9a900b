//! Driving a run: the guest called in a fresh sandbox until it returns,
//! traps, hits its deadline or is canceled, and the end recorded (with a
//! fallback when the store refuses the final state).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admit::{Admitted, Begin, Carried};
use super::wait::Waiter;
use super::{ExecuteError, Host, HostInner, Stop, WorkflowHandle};
use crate::fence::RunFence;
use crate::model::{
    self, EventType, HistoryEvent, Suspended, Timestamp, WorkflowState, WorkflowStatus,
};
use crate::runtime::{GuestOutput, Module, RunLimits, Suspension};
use crate::store::{StoreError, Version, WorkflowStore};

/// How a guest's run ended, before it is recorded.
#[derive(Debug, Clone)]
enum Outcome {
    Completed(String),
    Failed(String),
    Canceled,
    /// The guest called `suspend`: it waits, with no outcome yet.
    Suspended(Suspension),
}

/// How many times a write of the run's own state is tried again when
/// signals arrived between reading the state and writing it.
const SIGNAL_RACE_RETRIES: usize = 32;

/// What the host does with a run that suspended.
enum Suspend {
    /// Keep it waiting: its `workflow_suspended` state is at this version.
    Wait(Version),
    /// A signal it waits for came meanwhile: run it again now.
    RunAgain,
}

impl HostInner {
    /// Runs the guest to its end, deadline or cancellation and saves the
    /// final state; `None` when the run suspended (it is then kept waiting,
    /// and ends in the run that wakes it).
    pub(super) async fn drive(
        self: &Arc<Self>,
        module: &Module,
        running: WorkflowState,
        limits: &RunLimits,
        admitted: Admitted,
    ) -> Result<Option<WorkflowState>, ExecuteError> {
        let mut canceled = admitted.canceled.clone();
        let fence = admitted.fence.clone();
        let clock = Instant::now();
        let input = running.input.clone().unwrap_or_else(|| "null".to_owned());
        let outcome = loop {
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
            let Outcome::Suspended(suspension) = outcome else {
                break outcome;
            };
            match self.suspend(module, &running, &fence, &suspension).await? {
                Suspend::RunAgain => continue,
                Suspend::Wait(version) => {
                    self.keep_waiting(module, &running, suspension, version, admitted);
                    return Ok(None);
                }
            }
        };
        let elapsed = clock.elapsed();
        self.record_end(module, running, &fence, outcome, elapsed)
            .await
            .map(Some)
    }

    /// Saves the end of a run: `outcome` applied to its last state.
    async fn record_end(
        &self,
        module: &Module,
        running: WorkflowState,
        fence: &RunFence,
        outcome: Outcome,
        elapsed: Duration,
    ) -> Result<WorkflowState, ExecuteError> {
        let store = self.store_of(module);
        let id = running.workflow_id.clone();
        // Signals may land between reading the last state and saving the
        // end: read again (adopting them) and save again.
        let mut tries = 0;
        let (last, refusal) = loop {
            let last = self.current_state(store, &running, fence).await;
            let final_state = finish(&last, outcome.clone(), elapsed);
            match store
                .save_versioned(final_state.clone(), Some(fence.version()))
                .await
            {
                Ok(_) => return Ok(log_end(module, final_state)),
                Err(StoreError::Conflict(_))
                    if tries < SIGNAL_RACE_RETRIES && self.adopts(store, fence, &id).await =>
                {
                    tries += 1;
                }
                // The final state itself was refused (a result too large or not
                // JSON, a history at its bound): record that as the failure
                // rather than leave the run `running`.
                Err(StoreError::TooLarge(e) | StoreError::InvalidArgument(e)) => break (last, e),
                Err(e) => return Err(lost_to_another_writer(&id, e).into()),
            }
        };
        let save_final = |state: WorkflowState| async {
            store
                .save_versioned(state, Some(fence.version()))
                .await
                .map_err(|e| lost_to_another_writer(&id, e))
        };
        // The final state itself was refused (a result too large or not
        // JSON, a history at its bound): record that as the failure
        // rather than leave the run `running`.
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
        Ok(log_end(module, refused))
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
        self.record_usage(module, limits, &wasm_store);
        match called {
            Ok(Ok(result)) => match model::validate_json("result", &result) {
                Ok(()) => Outcome::Completed(result),
                Err(e) => Outcome::Failed(format!("the workflow returned invalid JSON: {e}")),
            },
            Ok(Err(message)) => Outcome::Failed(message),
            Err(trap) => match wasm_store.data_mut().take_suspension() {
                // `suspend` traps to end the call; what it asked is kept.
                Some(suspension) => Outcome::Suspended(suspension),
                None => Outcome::Failed(describe_trap(
                    &trap,
                    limits,
                    wasm_store.data().limiter.refused(),
                    &stderr,
                )),
            },
        }
    }

    /// Records what one instance of `module` used: fuel and peak memory.
    fn record_usage(
        &self,
        module: &Module,
        limits: &RunLimits,
        wasm_store: &wasmtime::Store<crate::runtime::GuestState>,
    ) {
        let name = module.name().to_owned();
        let fuel = limits.fuel.unwrap_or(u64::MAX);
        let used = fuel.saturating_sub(wasm_store.get_fuel().unwrap_or(fuel));
        ::metrics::histogram!(crate::metrics::GUEST_FUEL, "module" => name.clone())
            .record(used as f64);
        let peak = wasm_store.data().limiter.peak_memory_bytes() as u64;
        ::metrics::histogram!(crate::metrics::GUEST_MEMORY, "module" => name.clone())
            .record(peak as f64);
        let mut high_water = self
            .memory_high_water
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mark = high_water.entry(name).or_default();
        *mark = (*mark).max(peak);
    }

    /// The state to finish from: what is stored now if this run wrote it
    /// last (plus signals appended since, which it adopts), so history the
    /// guest appended is kept; else the host's own copy (whose save then
    /// fails on the fence, if another writer came between).
    async fn current_state(
        &self,
        store: &Arc<dyn WorkflowStore>,
        running: &WorkflowState,
        fence: &RunFence,
    ) -> WorkflowState {
        match store.load_versioned(&running.workflow_id).await {
            Ok(Some(stored))
                if stored.state.run_id == running.run_id
                    && fence.adopt(stored.version, &stored.state) =>
            {
                Arc::unwrap_or_clone(stored.state)
            }
            _ => running.clone(),
        }
    }

    /// Whether the run still holds its id after a conflicting save: the
    /// state stored now is its own plus signals (adopted).
    async fn adopts(&self, store: &Arc<dyn WorkflowStore>, fence: &RunFence, id: &str) -> bool {
        match store.load_versioned(id).await {
            Ok(Some(stored)) => fence.adopt(stored.version, &stored.state),
            _ => false,
        }
    }

    /// Records that the run suspended as `suspension` asks: a
    /// `workflow_suspended` event on its last state, unless a signal it
    /// waits for arrived since it last read its state (then it runs again).
    async fn suspend(
        &self,
        module: &Module,
        running: &WorkflowState,
        fence: &RunFence,
        suspension: &Suspension,
    ) -> Result<Suspend, ExecuteError> {
        let store = self.store_of(module);
        let id = &running.workflow_id;
        let waits_for = Suspended {
            wake_at: suspension.wake_at,
            signals: suspension.signals.clone(),
        };
        for _ in 0..SIGNAL_RACE_RETRIES {
            let Some(stored) = store.load_versioned(id).await? else {
                return Err(lost_to_another_writer(
                    id,
                    StoreError::Conflict("the workflow was deleted while it ran".into()),
                )
                .into());
            };
            let arrived = fence
                .signals_since(&stored.state)
                .iter()
                .any(|name| waits_for.woken_by(name));
            if stored.state.run_id != running.run_id || !fence.adopt(stored.version, &stored.state)
            {
                return Err(lost_to_another_writer(
                    id,
                    StoreError::Conflict("another writer wrote the workflow while it ran".into()),
                )
                .into());
            }
            if arrived {
                return Ok(Suspend::RunAgain);
            }
            // Woken for nothing (no signal came since it last suspended):
            // it waits as it did, and its state says so already. After
            // signals (even ones it does not wait for), it says so again,
            // so that the state's last event is what it waits for now.
            let last = stored.state.history.last().and_then(Suspended::of_event);
            if last.as_ref() == Some(&waits_for) {
                return Ok(Suspend::Wait(stored.version));
            }
            let now = Timestamp::now();
            let mut next = Arc::unwrap_or_clone(stored.state);
            next.history
                .push(waits_for.event(next.next_event_id(), now));
            next.updated_at = now;
            match store
                .save_versioned(next.clone(), Some(stored.version))
                .await
            {
                Ok(version) => {
                    fence.set(version, &next);
                    tracing::debug!(workflow_id = %id, ?waits_for, "workflow suspended");
                    return Ok(Suspend::Wait(version));
                }
                // A signal landed meanwhile: read again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ExecuteError::Store(StoreError::Unavailable(format!(
            "suspending workflow {id}: its state kept changing under the suspension (signals arriving faster than it could be saved)"
        ))))
    }

    /// Keeps a suspended run waiting: its instance and slots are released,
    /// and its due time and signals registered. A signal that came while
    /// it was being registered wakes it at once.
    fn keep_waiting(
        self: &Arc<Self>,
        module: &Module,
        running: &WorkflowState,
        suspension: Suspension,
        version: Version,
        admitted: Admitted,
    ) {
        let (id, run_id) = (running.workflow_id.as_str(), running.run_id.as_str());
        let owned_in = self.store_of(module).ownership().map(|ownership| {
            let partition = ownership.partition_of(id);
            (ownership, partition)
        });
        let carried = Carried {
            ended: admitted.ended.clone(),
            cancel: admitted.cancel.clone(),
        };
        // Released first: a wake must find the id free.
        drop(admitted);
        // Kept only for handles that wait on the run.
        let carried = (carried.ended.receiver_count() > 0).then_some(carried);
        self.waiting.register(
            self,
            id,
            Waiter {
                module: module.clone(),
                run_id: run_id.to_owned(),
                suspended: Suspended {
                    wake_at: suspension.wake_at,
                    signals: suspension.signals,
                },
                version,
                carried,
                owned_in,
            },
        );
        // A signal that came between the suspension's save and now found
        // nothing to wake: look once more.
        let host = Host {
            inner: self.clone(),
        };
        let (id, store) = (id.to_owned(), self.store_of(module).clone());
        tokio::spawn(async move { host.recheck_waiting(&id, version, &store).await });
    }
}

impl Host {
    /// Runs the suspended run `state` (stored at `version`) again, without
    /// writing anything first; `ended` is where its end goes.
    pub(super) async fn start_woken(
        &self,
        module: &Module,
        state: WorkflowState,
        version: Version,
        carried: Option<Carried>,
    ) -> Result<WorkflowHandle, ExecuteError> {
        self.start(module, state, Begin::Wake(version), None, true, carried)
            .await
    }

    /// Saves a suspended run `canceled` (it has no instance to interrupt).
    pub(super) async fn cancel_suspended(&self, id: &str, waiter: Waiter) {
        let store = self.store_for(&waiter.module).clone();
        let mut outcome = Err(ExecuteError::Internal(format!(
            "canceling suspended workflow {id}: its state kept changing"
        )));
        for _ in 0..SIGNAL_RACE_RETRIES {
            let stored = match store.load_versioned(id).await {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    outcome = Err(ExecuteError::NotFound(id.to_owned()));
                    break;
                }
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            };
            if stored.state.status != WorkflowStatus::Running {
                outcome = Ok(Arc::unwrap_or_clone(stored.state));
                break;
            }
            let end = finish(&stored.state, Outcome::Canceled, Duration::ZERO);
            match store
                .save_versioned(end.clone(), Some(stored.version))
                .await
            {
                Ok(_) => {
                    outcome = Ok(log_end(&waiter.module, end));
                    break;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            }
        }
        waiter.end(outcome);
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

/// Logs (and counts) how a run ended and passes its state through.
fn log_end(module: &Module, state: WorkflowState) -> WorkflowState {
    ::metrics::counter!(
        crate::metrics::WORKFLOWS_ENDED,
        "module" => module.name().to_owned(),
        "status" => state.status.as_str()
    )
    .increment(1);
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
        // A suspended run is never finished; were it, as canceled.
        Outcome::Canceled | Outcome::Suspended(_) => {
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
