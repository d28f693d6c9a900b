//! Durable steps: activities and timers recorded in the workflow's history,
//! so that a re-run after a crash skips what already happened.

use std::cell::Cell;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{Context, StoreError};
use crate::types::{EventType, HistoryEvent, Json, WorkflowState};

/// Why [`Context::activity`] returned no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityError {
    /// The activity failed with this message, now or in an earlier run (the
    /// failure is recorded and replayed, not retried).
    Failed(String),
    /// Recording the step in the store failed; the step may be retried.
    Store(StoreError),
    /// The input or the result does not convert to or from JSON.
    Json(String),
    /// The history does not match the code: step `step` (from 0) was recorded
    /// as activity `recorded` but the code now asks for `requested`. The code
    /// changed, or the workflow branched on something that is not replayed.
    NonDeterministic {
        /// The step's position among this run's activities, from 0.
        step: usize,
        /// The name in the history.
        recorded: String,
        /// The name the code asked for.
        requested: String,
    },
}

impl std::fmt::Display for ActivityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(message) => write!(f, "activity failed: {message}"),
            Self::Store(e) => write!(f, "recording the activity failed: {e}"),
            Self::Json(e) => write!(f, "activity JSON: {e}"),
            Self::NonDeterministic {
                step,
                recorded,
                requested,
            } => write!(
                f,
                "non-deterministic workflow: activity step {step} is {recorded:?} in the history but the code asked for {requested:?}"
            ),
        }
    }
}

impl std::error::Error for ActivityError {}

impl From<StoreError> for ActivityError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// How many activities and timers this run has reached so far: the position
/// of the next one in the history.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    activities: Cell<usize>,
    timers: Cell<usize>,
}

impl Steps {
    fn next(counter: &Cell<usize>) -> usize {
        let step = counter.get();
        counter.set(step + 1);
        step
    }
}

/// What the history says about activity step `step`.
enum Recorded<'a> {
    /// Not reached in an earlier run.
    New,
    /// Started but its outcome was not saved: run it again.
    Started,
    /// Finished with this event (`activity_completed` or `activity_failed`).
    Finished(&'a HistoryEvent),
}

fn recorded<'a>(
    state: &'a WorkflowState,
    step: usize,
    name: &str,
) -> Result<Recorded<'a>, ActivityError> {
    let Some(start) = state
        .history
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventType::ActivityStarted)
        .nth(step)
        .map(|(i, _)| i)
    else {
        return Ok(Recorded::New);
    };
    let started = &state.history[start];
    if started.activity_name != name {
        return Err(ActivityError::NonDeterministic {
            step,
            recorded: started.activity_name.clone(),
            requested: name.to_owned(),
        });
    }
    let finished = state.history[start + 1..].iter().find(|e| {
        matches!(
            e.kind,
            EventType::ActivityCompleted | EventType::ActivityFailed
        ) && e.activity_name == name
    });
    Ok(match finished {
        Some(event) => Recorded::Finished(event),
        None => Recorded::Started,
    })
}

impl Context {
    /// Runs `f(input)` as the durable activity `name`, at most once per
    /// workflow as far as the history can tell.
    ///
    /// The first time this step is reached, it saves an `activity_started`
    /// event (with the input), runs `f`, and saves `activity_completed` (with
    /// the result) or `activity_failed` (with the error). When the workflow is
    /// run again after a crash ([`recover`](https://docs.rs/wf-host)), a step
    /// whose outcome is in the history returns that outcome without calling
    /// `f`; a step that started but whose outcome was not saved calls `f`
    /// again, so `f` runs at least once, and exactly once unless the host dies
    /// between `f`'s side effect and the save of its outcome. Make such side
    /// effects idempotent where that window matters.
    ///
    /// Steps are matched by their order: the n-th call of `activity` in a run
    /// is the n-th `activity_started` in the history, and must have the same
    /// name (else [`ActivityError::NonDeterministic`]). See the crate docs'
    /// determinism rules.
    ///
    /// ```no_run
    /// # use wf_guest::{ActivityError, Context};
    /// # fn charge_card(_: &u64) -> Result<String, String> { Ok("ch_1".into()) }
    /// fn run(ctx: &Context, cents: u64) -> Result<String, ActivityError> {
    ///     let receipt: String = ctx.activity("charge", &cents, |cents| charge_card(cents))?;
    ///     Ok(receipt)
    /// }
    /// ```
    pub fn activity<I, O, E, F>(&self, name: &str, input: &I, f: F) -> Result<O, ActivityError>
    where
        I: Serialize,
        O: Serialize + DeserializeOwned,
        E: std::fmt::Display,
        F: FnOnce(&I) -> Result<O, E>,
    {
        let step = Steps::next(&self.steps.activities);
        let state = self.own_state()?;
        match recorded(&state, step, name)? {
            Recorded::Finished(event) if event.kind == EventType::ActivityCompleted => {
                let result = event.result.as_ref().map_or("null", Json::as_str);
                return serde_json::from_str(result).map_err(|e| {
                    ActivityError::Json(format!(
                        "the recorded result of activity {name:?} does not decode: {e}"
                    ))
                });
            }
            Recorded::Finished(event) => return Err(ActivityError::Failed(event.error.clone())),
            Recorded::Started => {}
            Recorded::New => {
                let input = Json::from_value(input).map_err(|e| {
                    ActivityError::Json(format!(
                        "the input of activity {name:?} does not encode: {e}"
                    ))
                })?;
                // The state was just loaded: record the start on it.
                self.save_changed(state, |state| {
                    let event = state.push_event(EventType::ActivityStarted);
                    event.activity_name = name.to_owned();
                    event.input = Some(input);
                })?;
            }
        }

        let clock = Instant::now();
        let outcome = f(input);
        let duration_ns = i64::try_from(clock.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let (kind, result, error) = match &outcome {
            Ok(output) => {
                let result = Json::from_value(output).map_err(|e| {
                    ActivityError::Json(format!(
                        "the result of activity {name:?} does not encode: {e}"
                    ))
                })?;
                (EventType::ActivityCompleted, Some(result), String::new())
            }
            Err(e) => (EventType::ActivityFailed, None, e.to_string()),
        };
        self.update_state(|state| {
            let event = state.push_event(kind);
            event.activity_name = name.to_owned();
            event.result = result;
            event.error = error;
            event.duration_ns = duration_ns;
        })?;
        outcome.map_err(|e| ActivityError::Failed(e.to_string()))
    }

    /// Sleeps for `duration` as a durable timer: the first time, it sleeps
    /// and then saves a `timer_fired` event (with the duration); on a re-run,
    /// a timer already fired returns at once. A timer cut short by a crash
    /// sleeps its whole duration again. The sleep does not hold the host: it
    /// waits on the host's clock, and other workflows run meanwhile.
    pub fn sleep(&self, duration: Duration) -> Result<(), StoreError> {
        let step = Steps::next(&self.steps.timers);
        let state = self.own_state()?;
        let fired = state
            .history
            .iter()
            .filter(|e| e.kind == EventType::TimerFired)
            .nth(step)
            .is_some();
        if fired {
            return Ok(());
        }
        std::thread::sleep(duration);
        // Nothing else writes this workflow's state while it sleeps.
        self.save_changed(state, |state| {
            state.push_event(EventType::TimerFired).duration_ns =
                i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        })?;
        Ok(())
    }

    /// Applies `change` to `state` (this workflow's, as just loaded), stamps
    /// and saves it: [`Context::update_state`] without loading again.
    fn save_changed(
        &self,
        mut state: WorkflowState,
        change: impl FnOnce(&mut WorkflowState),
    ) -> Result<(), StoreError> {
        change(&mut state);
        state.updated_at = crate::types::Timestamp::now();
        self.store().save(&state)
    }

    fn own_state(&self) -> Result<WorkflowState, StoreError> {
        Ok(self
            .state()?
            .unwrap_or_else(|| WorkflowState::new(self.workflow_id().to_owned())))
    }
}
