//! Durable steps: activities (with retries), timers and signal waits
//! recorded in the workflow's history, so that a re-run (after a crash, or
//! when a suspended workflow is woken) replays what already happened.
//!
//! The history each step writes, and how a re-run matches it, is the same
//! in the Python and JavaScript SDKs (the repository's docs/waiting.md).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wf::workflow::execution;
use crate::store::{Context, StoreError, Version};
use crate::types::{EventType, HistoryEvent, Json, Timestamp, WorkflowState};

/// How many times a step's write is tried again when a signal landed on
/// the workflow's state between reading and writing it.
const SIGNAL_RACE_RETRIES: usize = 32;

/// Why a durable step ([`Context::activity`], [`Context::sleep`],
/// [`Context::wait_signal`], ...) returned no result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivityError {
    /// The activity failed with this message, now or in an earlier run,
    /// and its retry policy allows no further attempt (the failures are
    /// recorded and replayed, not retried again).
    Failed(String),
    /// Recording the step in the store failed; the step may be retried.
    Store(StoreError),
    /// The input, the result or a signal's payload does not convert to or
    /// from JSON.
    Json(String),
    /// The history does not match the code: step `step` (from 0) was
    /// recorded as `recorded` but the code now asks for `requested`. The
    /// code changed, or the workflow branched on something that is not
    /// replayed.
    NonDeterministic {
        /// The step's position among this run's steps, from 0.
        step: usize,
        /// What the history holds there.
        recorded: String,
        /// What the code asked for.
        requested: String,
    },
    /// A signal name the host would refuse: empty, over 256 bytes, with a
    /// control character or a `|`.
    InvalidSignalName(String),
    /// The host returned from `suspend`: the module runs outside wf's
    /// executor, which ends the run there.
    NotSuspended,
}

impl std::fmt::Display for ActivityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(message) => write!(f, "activity failed: {message}"),
            Self::Store(e) => write!(f, "recording the step failed: {e}"),
            Self::Json(e) => write!(f, "step JSON: {e}"),
            Self::NonDeterministic {
                step,
                recorded,
                requested,
            } => write!(
                f,
                "non-deterministic workflow: step {step} is {recorded} in the history but the code asked for {requested}"
            ),
            Self::InvalidSignalName(e) => write!(f, "invalid signal name: {e}"),
            Self::NotSuspended => write!(
                f,
                "the host returned from suspend: waiting needs wf's executor"
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

/// When and how often a failed activity is tried again
/// ([`Context::activity_with_retry`]).
///
/// The wait before attempt *n + 1* is `initial_interval ×
/// backoff_coefficient^(n - 1)`, at most `max_interval`; it is a durable
/// timer: the workflow is suspended meanwhile.
///
/// ```
/// use std::time::Duration;
/// use wf_guest::RetryPolicy;
///
/// let policy = RetryPolicy::new(5)
///     .initial_interval(Duration::from_millis(200))
///     .non_retryable("card declined");
/// assert_eq!(policy.backoff(1), Duration::from_millis(200));
/// assert_eq!(policy.backoff(3), Duration::from_millis(800));
/// assert!(!policy.retries(1, "card declined: insufficient funds"));
/// assert!(policy.retries(4, "timeout"));
/// assert!(!policy.retries(5, "timeout"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 means no bound. Default 1
    /// (no retry).
    pub max_attempts: u32,
    /// The wait before the second attempt. Default 1 s.
    pub initial_interval: Duration,
    /// What each further wait is multiplied by. Default 2.0.
    pub backoff_coefficient: f64,
    /// The longest wait; `None`: 100 × `initial_interval`.
    pub max_interval: Option<Duration>,
    /// Errors not retried: an error whose text contains one of these.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            max_interval: None,
            non_retryable: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// At most `max_attempts` attempts (0: no bound), with the default waits.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            ..Self::default()
        }
    }

    /// Sets [`RetryPolicy::initial_interval`].
    pub fn initial_interval(mut self, interval: Duration) -> Self {
        self.initial_interval = interval;
        self
    }

    /// Sets [`RetryPolicy::backoff_coefficient`].
    pub fn backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    /// Sets [`RetryPolicy::max_interval`].
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = Some(interval);
        self
    }

    /// Adds an error text that is not retried.
    pub fn non_retryable(mut self, error: impl Into<String>) -> Self {
        self.non_retryable.push(error.into());
        self
    }

    /// The wait after failed attempt `attempts` (from 1).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let max = self
            .max_interval
            .unwrap_or_else(|| self.initial_interval.saturating_mul(100));
        let exponent = i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.backoff_coefficient.max(1.0).powi(exponent);
        let wait = self.initial_interval.as_secs_f64() * factor;
        if !wait.is_finite() || wait >= max.as_secs_f64() {
            return max;
        }
        Duration::from_secs_f64(wait)
    }

    /// Whether a further attempt follows `attempts` failed ones, the last
    /// with `error`.
    pub fn retries(&self, attempts: u32, error: &str) -> bool {
        (self.max_attempts == 0 || attempts < self.max_attempts)
            && !self
                .non_retryable
                .iter()
                .any(|e| error.contains(e.as_str()))
    }
}

/// Where a run is in its history: the next step's position among the
/// events steps write, and the signals its waits received, per name.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    cursor: Cell<usize>,
    received: RefCell<HashMap<String, usize>>,
    /// Writes in a row that found the state changed under them.
    races: Cell<usize>,
    /// The step being taken (counts every step begun in this run).
    step: Cell<u64>,
    /// The run's own state as last read or written, and the step that read
    /// or wrote it. A replay matches recorded steps against it without
    /// reading again (history only grows); a step reads again before it
    /// suspends, and after a write that raced.
    view: RefCell<Option<(Rc<Read>, u64)>>,
}

impl Steps {
    /// Drops the kept view of the run's state: it was written outside the
    /// steps ([`Context::update_state`]).
    pub(crate) fn forget_view(&self) {
        self.view.borrow_mut().take();
    }
}

/// Whether steps write events of this kind (the host writes the others).
fn is_step_event(kind: EventType) -> bool {
    matches!(
        kind,
        EventType::ActivityStarted
            | EventType::ActivityCompleted
            | EventType::ActivityFailed
            | EventType::TimerStarted
            | EventType::TimerFired
    )
}

/// This run's own state as just read: the state, its version and the
/// positions of its step events.
#[derive(Debug)]
struct Read {
    state: WorkflowState,
    version: Version,
    steps: Vec<usize>,
}

impl Read {
    /// The step event at cursor position `at`.
    fn step(&self, at: usize) -> Option<(usize, &HistoryEvent)> {
        let index = *self.steps.get(at)?;
        Some((index, &self.state.history[index]))
    }
}

/// How an event is named in a non-determinism error.
fn describe(event: &HistoryEvent) -> String {
    let kind = serde_json::to_value(event.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match (event.activity_name.is_empty(), event.signal_name.is_empty()) {
        (false, _) => format!("{kind} of activity {:?}", event.activity_name),
        (true, false) => format!("{kind} for signal {:?}", event.signal_name),
        (true, true) => kind,
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn due_of(event: &HistoryEvent) -> i128 {
    timestamp_nanos(event.timestamp) + i128::from(event.duration_ns)
}

fn timestamp_nanos(t: Timestamp) -> i128 {
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanoseconds)
}

fn timestamp_of(nanos: i128) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX),
        nanoseconds: nanos.rem_euclid(1_000_000_000) as u32,
    }
}

fn check_signal_name(name: &str) -> Result<(), ActivityError> {
    match wf_bindgen_util::signal_name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(ActivityError::InvalidSignalName(format!(
            "{name:?} {problem}"
        ))),
    }
}

/// What a write of a step found.
enum Wrote {
    Yes,
    /// A signal landed first: read again and decide again.
    Raced,
}

impl Context {
    /// Runs `f(input)` as the durable activity `name`, once: its outcome is
    /// recorded, and a re-run returns it without calling `f`. A failure is
    /// final; [`Context::activity_with_retry`] retries.
    ///
    /// The first time this step is reached, it saves an `activity_started`
    /// event (with the input), runs `f`, and saves `activity_completed` (with
    /// the result) or `activity_failed` (with the error). When the workflow is
    /// run again (after a crash, or woken from a wait), a step whose outcome
    /// is in the history returns that outcome without calling `f`; a step
    /// that started but whose outcome was not saved calls `f` again, so `f`
    /// runs at least once, and exactly once unless the host dies between
    /// `f`'s side effect and the save of its outcome. Make such side effects
    /// idempotent where that window matters.
    ///
    /// Steps are matched by their order: the n-th step of a run is the n-th
    /// recorded, and must be the same (else
    /// [`ActivityError::NonDeterministic`]). See the crate docs' determinism
    /// rules.
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
        F: FnMut(&I) -> Result<O, E>,
    {
        self.activity_with_retry(name, input, &RetryPolicy::default(), f)
    }

    /// [`Context::activity`], tried again after a failure as `policy`
    /// says. Each attempt's outcome is recorded (`activity_failed` per
    /// failed attempt), and each wait between attempts is a durable timer
    /// (the workflow is suspended meanwhile), so a re-run neither repeats
    /// a recorded attempt nor forgets the count.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use wf_guest::{ActivityError, Context, RetryPolicy};
    /// # fn reserve(_: &String) -> Result<u32, String> { Ok(1) }
    /// fn run(ctx: &Context, sku: String) -> Result<u32, ActivityError> {
    ///     let policy = RetryPolicy::new(5).initial_interval(Duration::from_secs(2));
    ///     ctx.activity_with_retry("reserve", &sku, &policy, reserve)
    /// }
    /// ```
    pub fn activity_with_retry<I, O, E, F>(
        &self,
        name: &str,
        input: &I,
        policy: &RetryPolicy,
        mut f: F,
    ) -> Result<O, ActivityError>
    where
        I: Serialize,
        O: Serialize + DeserializeOwned,
        E: std::fmt::Display,
        F: FnMut(&I) -> Result<O, E>,
    {
        self.begin_step();
        let requested = || format!("activity_started of activity {name:?}");
        // The step's start, once.
        loop {
            let read = self.read()?;
            let at = self.steps.cursor.get();
            match read.step(at) {
                Some((_, e)) if e.kind == EventType::ActivityStarted && e.activity_name == name => {
                    self.steps.cursor.set(at + 1);
                    break;
                }
                Some((_, e)) => return Err(self.non_deterministic(e, requested())),
                None => {
                    let input = Json::from_value(input).map_err(|e| {
                        ActivityError::Json(format!(
                            "the input of activity {name:?} does not encode: {e}"
                        ))
                    })?;
                    self.append(&read, |event| {
                        event.kind = EventType::ActivityStarted;
                        event.activity_name = name.to_owned();
                        event.input = Some(input.clone());
                    })?;
                }
            }
        }
        // Its attempts: each one's outcome, and the waits between them.
        let mut attempts = 0u32;
        loop {
            let read = self.read()?;
            let at = self.steps.cursor.get();
            match read.step(at) {
                Some((_, e))
                    if e.kind == EventType::ActivityCompleted && e.activity_name == name =>
                {
                    self.steps.cursor.set(at + 1);
                    let result = e.result.as_ref().map_or("null", Json::as_str);
                    return serde_json::from_str(result).map_err(|e| {
                        ActivityError::Json(format!(
                            "the recorded result of activity {name:?} does not decode: {e}"
                        ))
                    });
                }
                Some((_, e)) if e.kind == EventType::ActivityFailed && e.activity_name == name => {
                    self.steps.cursor.set(at + 1);
                    attempts += 1;
                    if !policy.retries(attempts, &e.error) {
                        return Err(ActivityError::Failed(e.error.clone()));
                    }
                    self.timer(policy.backoff(attempts), name, "")?;
                }
                Some((_, e)) => {
                    return Err(
                        self.non_deterministic(e, format!("the outcome of activity {name:?}"))
                    );
                }
                None => {
                    let clock = Instant::now();
                    let outcome = f(input);
                    let duration_ns = nanos(clock.elapsed());
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
                    // Recorded even if signals land meanwhile: `f` ran once.
                    self.append_outcome(|event| {
                        event.kind = kind;
                        event.activity_name = name.to_owned();
                        event.result = result.clone();
                        event.error = error.clone();
                        event.duration_ns = duration_ns;
                    })?;
                }
            }
        }
    }

    /// Sleeps for `duration` as a durable timer: it records a
    /// `timer_started` event (due at its time plus `duration`), and the
    /// workflow is suspended (no instance, nothing in memory but the due
    /// time) until it is due; then `timer_fired` is recorded. A re-run
    /// past a fired timer does not wait again, and a host restarted
    /// meanwhile wakes the workflow at the original due time.
    pub fn sleep(&self, duration: Duration) -> Result<(), ActivityError> {
        self.begin_step();
        self.timer(duration, "", "")
    }

    /// Waits for the signal `name` and returns its payload, decoded; `None`
    /// when `timeout` passed first (without a timeout it waits until the
    /// signal comes). The workflow is suspended while it waits.
    ///
    /// Signals are delivered in the order they arrived: the k-th wait for
    /// `name` in a run receives the k-th `name` signal of the history,
    /// sent before or after the wait began; a re-run receives the same
    /// signals at the same waits.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use wf_guest::{ActivityError, Context};
    /// fn run(ctx: &Context, _: ()) -> Result<String, ActivityError> {
    ///     let day = Duration::from_secs(24 * 3600);
    ///     match ctx.wait_signal::<serde_json::Value>("approve", Some(day))? {
    ///         Some(by) => Ok(format!("approved by {by}")),
    ///         None => Ok("no answer within a day".into()),
    ///     }
    /// }
    /// ```
    pub fn wait_signal<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<T>, ActivityError> {
        Ok(self
            .wait_any_signal(&[name], timeout)?
            .map(|(_, payload)| payload))
    }

    /// Waits for a signal named one of `names` and returns the name and its
    /// payload, decoded: of the next signal of each name, the one that
    /// arrived first. `None` when `timeout` passed first. As
    /// [`Context::wait_signal`] otherwise.
    pub fn wait_any_signal<T: DeserializeOwned>(
        &self,
        names: &[&str],
        timeout: Option<Duration>,
    ) -> Result<Option<(String, T)>, ActivityError> {
        if names.is_empty() {
            return Err(ActivityError::InvalidSignalName(
                "a wait needs at least one signal name".into(),
            ));
        }
        for name in names {
            check_signal_name(name)?;
        }
        self.begin_step();
        let joined = names.join("|");
        let requested = || format!("a wait for signal {joined:?}");
        loop {
            let read = self.read()?;
            let at = self.steps.cursor.get();
            let candidate = self.next_signal(&read.state, names);
            // The timer at the cursor is this wait's only if the signal it
            // would receive came after it: a wait that found its signal
            // set no timer, and the next wait's timer is not its own.
            let timer = read
                .step(at)
                .filter(|(started, e)| {
                    timeout.is_some()
                        && e.kind == EventType::TimerStarted
                        && e.signal_name == joined
                        && e.activity_name.is_empty()
                        && candidate.as_ref().is_none_or(|(index, ..)| index > started)
                })
                .map(|(_, e)| due_of(e));
            if let Some(due) = timer {
                let fired = read
                    .step(at + 1)
                    .filter(|(_, e)| e.kind == EventType::TimerFired)
                    .map(|(index, _)| index);
                if let Some((index, name, payload)) = &candidate
                    && fired.is_none_or(|fired| *index < fired)
                {
                    self.steps.cursor.set(at + 1);
                    return self.deliver(name, payload.as_ref()).map(Some);
                }
                if fired.is_some() {
                    self.steps.cursor.set(at + 2);
                    return Ok(None);
                }
                if timestamp_nanos(Timestamp::now()) >= due {
                    let duration_ns = read.step(at).map_or(0, |(_, e)| e.duration_ns);
                    // Conditional: a signal that lands first wins instead.
                    self.append(&read, |event| {
                        event.kind = EventType::TimerFired;
                        event.signal_name = joined.clone();
                        event.duration_ns = duration_ns;
                    })?;
                    continue;
                }
                if !self.read_in_this_step()? {
                    continue;
                }
                return Err(self.suspend(Some(due), names));
            }
            if let Some((_, name, payload)) = &candidate {
                return self.deliver(name, payload.as_ref()).map(Some);
            }
            if let Some((_, e)) = read.step(at) {
                return Err(self.non_deterministic(e, requested()));
            }
            match timeout {
                Some(timeout) => self.append(&read, |event| {
                    event.kind = EventType::TimerStarted;
                    event.signal_name = joined.clone();
                    event.duration_ns = nanos(timeout);
                })?,
                None if !self.read_in_this_step()? => continue,
                None => return Err(self.suspend(None, names)),
            }
        }
    }

    /// A durable timer of `duration` (for a retry of `activity`, or the
    /// timeout of a wait for `signals`).
    fn timer(
        &self,
        duration: Duration,
        activity: &str,
        signals: &str,
    ) -> Result<(), ActivityError> {
        let requested = || match activity {
            "" => format!("timer_started of {duration:?}"),
            name => format!("timer_started before a retry of activity {name:?}"),
        };
        let due = loop {
            let read = self.read()?;
            let at = self.steps.cursor.get();
            match read.step(at) {
                Some((_, e))
                    if e.kind == EventType::TimerStarted
                        && e.activity_name == activity
                        && e.signal_name == signals =>
                {
                    self.steps.cursor.set(at + 1);
                    break due_of(e);
                }
                Some((_, e)) => return Err(self.non_deterministic(e, requested())),
                None => self.append(&read, |event| {
                    event.kind = EventType::TimerStarted;
                    event.activity_name = activity.to_owned();
                    event.signal_name = signals.to_owned();
                    event.duration_ns = nanos(duration);
                })?,
            }
        };
        loop {
            let read = self.read()?;
            let at = self.steps.cursor.get();
            match read.step(at) {
                Some((_, e)) if e.kind == EventType::TimerFired => {
                    self.steps.cursor.set(at + 1);
                    return Ok(());
                }
                Some((_, e)) => {
                    return Err(self.non_deterministic(e, "timer_fired".to_owned()));
                }
                None if timestamp_nanos(Timestamp::now()) >= due => {
                    self.append(&read, |event| {
                        event.kind = EventType::TimerFired;
                        event.activity_name = activity.to_owned();
                        event.signal_name = signals.to_owned();
                        event.duration_ns = nanos(duration);
                    })?
                }
                None if !self.read_in_this_step()? => continue,
                None => return Err(self.suspend(Some(due), &[])),
            }
        }
    }

    /// Of the next signal of each of `names` (the k-th, k being how many
    /// of that name this run received), the earliest: its position, name
    /// and payload.
    fn next_signal(
        &self,
        state: &WorkflowState,
        names: &[&str],
    ) -> Option<(usize, String, Option<Json>)> {
        let received = self.steps.received.borrow();
        names
            .iter()
            .filter_map(|name| {
                let skip = received.get(*name).copied().unwrap_or(0);
                state
                    .history
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.kind == EventType::SignalReceived && e.signal_name == *name)
                    .nth(skip)
                    .map(|(index, e)| (index, (*name).to_owned(), e.signal_payload.clone()))
            })
            .min_by_key(|(index, _, _)| *index)
    }

    /// Counts the signal `name` as received by this run, and decodes it.
    fn deliver<T: DeserializeOwned>(
        &self,
        name: &str,
        payload: Option<&Json>,
    ) -> Result<(String, T), ActivityError> {
        *self
            .steps
            .received
            .borrow_mut()
            .entry(name.to_owned())
            .or_default() += 1;
        let text = payload.map_or("null", Json::as_str);
        let value = serde_json::from_str(text).map_err(|e| {
            ActivityError::Json(format!(
                "the payload of signal {name:?} does not decode: {e}"
            ))
        })?;
        Ok((name.to_owned(), value))
    }

    /// Ends this call of `run` until the host wakes the workflow: at `due`
    /// (nanoseconds since the epoch) or when one of `signals` arrives.
    /// Returns only under a host that does not suspend.
    fn suspend(&self, due: Option<i128>, signals: &[&str]) -> ActivityError {
        let signals: Vec<String> = signals.iter().map(|s| (*s).to_owned()).collect();
        execution::suspend(due.map(|due| timestamp_of(due).into()), &signals);
        ActivityError::NotSuspended
    }

    fn non_deterministic(&self, recorded: &HistoryEvent, requested: String) -> ActivityError {
        ActivityError::NonDeterministic {
            step: self.steps.cursor.get(),
            recorded: describe(recorded),
            requested,
        }
    }

    /// Counts a step begun: what it reads from then on is read in it.
    fn begin_step(&self) {
        self.steps.step.set(self.steps.step.get() + 1);
    }

    /// This workflow's own state: as last read or written in this run, or
    /// read now when there is none.
    fn read(&self) -> Result<Rc<Read>, StoreError> {
        if let Some((read, _)) = self.steps.view.borrow().as_ref() {
            return Ok(read.clone());
        }
        self.read_again()
    }

    /// Reads this workflow's own state (a new one when none is stored) with
    /// its version, and keeps it as the view of this step.
    fn read_again(&self) -> Result<Rc<Read>, StoreError> {
        let (state, version) = match self.store().load_versioned(self.workflow_id())? {
            Some(found) => (found.state, found.version),
            None => (WorkflowState::new(self.workflow_id().to_owned()), 0),
        };
        Ok(self.keep_view(state, version))
    }

    fn keep_view(&self, state: WorkflowState, version: Version) -> Rc<Read> {
        let steps = state
            .history
            .iter()
            .enumerate()
            .filter(|(_, e)| is_step_event(e.kind))
            .map(|(index, _)| index)
            .collect();
        let read = Rc::new(Read {
            state,
            version,
            steps,
        });
        *self.steps.view.borrow_mut() = Some((read.clone(), self.steps.step.get()));
        read
    }

    /// Whether the view was read (or written) in this step; if not, reads
    /// it again (for the caller to decide again on it) and says `false`.
    /// A step suspends only on what it read itself: a signal that came
    /// since an earlier step read the state is seen, not waited for.
    fn read_in_this_step(&self) -> Result<bool, StoreError> {
        let current = self
            .steps
            .view
            .borrow()
            .as_ref()
            .is_some_and(|(_, step)| *step == self.steps.step.get());
        if !current {
            self.read_again()?;
        }
        Ok(current)
    }

    /// Appends the event `fill` describes to `read`'s state and saves it
    /// over the version read; [`Wrote::Raced`] when a signal came first.
    fn try_append(
        &self,
        read: &Read,
        fill: &mut impl FnMut(&mut HistoryEvent),
    ) -> Result<Wrote, StoreError> {
        let mut state = read.state.clone();
        let event = state.push_event(EventType::TimerFired);
        fill(event);
        event.timestamp = Timestamp::now();
        state.updated_at = event.timestamp;
        match self.store().save_versioned(&state, Some(read.version)) {
            Ok(version) => {
                self.keep_view(state, version);
                Ok(Wrote::Yes)
            }
            Err(StoreError::Conflict(_)) => {
                // Read again before deciding again.
                self.steps.view.borrow_mut().take();
                Ok(Wrote::Raced)
            }
            Err(e) => Err(e),
        }
    }

    /// [`Context::try_append`]: a race is no error (the caller reads again
    /// and decides again).
    fn append(
        &self,
        read: &Read,
        mut fill: impl FnMut(&mut HistoryEvent),
    ) -> Result<(), ActivityError> {
        match self.try_append(read, &mut fill)? {
            Wrote::Yes => self.steps.races.set(0),
            Wrote::Raced => {
                let races = self.steps.races.get() + 1;
                self.steps.races.set(races);
                // Signals do not come this fast: another writer holds the
                // workflow now (the host refuses this run's writes).
                if races > SIGNAL_RACE_RETRIES {
                    return Err(ActivityError::Store(StoreError::Conflict(
                        "recording the step: the workflow's state kept changing under this run"
                            .into(),
                    )));
                }
            }
        }
        Ok(())
    }

    /// Appends an activity's outcome, reading again as often as signals
    /// land first: the attempt ran, so its outcome must be recorded.
    fn append_outcome(&self, mut fill: impl FnMut(&mut HistoryEvent)) -> Result<(), ActivityError> {
        for _ in 0..SIGNAL_RACE_RETRIES {
            let read = self.read()?;
            if let Wrote::Yes = self.try_append(&read, &mut fill)? {
                return Ok(());
            }
        }
        Err(ActivityError::Store(StoreError::Conflict(
            "recording the activity's outcome: the workflow's state kept changing".into(),
        )))
    }
}
