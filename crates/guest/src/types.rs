//! Workflow state types, with serde support and typed JSON helpers.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::wf::workflow::types as wit;

/// JSON text, as the store carries it.
///
/// Serializes as the JSON value it holds (not as a string), so a
/// `WorkflowState` prints naturally with `serde_json`. Deserializing one
/// through serde goes through `serde_json::Value`, so it works inside any
/// serde shape (tagged enums, flatten) but normalizes whitespace and sorts
/// object keys; the store itself always carries the text unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(String);

impl Json {
    /// Encodes `value` as JSON.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }

    /// Decodes the JSON into `T`.
    pub fn to_value<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Wraps text without checking it; the host rejects invalid JSON on save
    /// with `StoreError::InvalidArgument`.
    pub fn from_raw(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JSON text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.clone())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Self(value.to_string()))
    }
}

/// A UTC instant: seconds and nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Whole seconds since the Unix epoch; negative before 1970.
    pub seconds: i64,
    /// Nanoseconds within the second, below 1 000 000 000.
    pub nanoseconds: u32,
}

impl Timestamp {
    /// The Go zero time `0001-01-01T00:00:00Z`: "not set" on the wire.
    pub const ZERO: Timestamp = Timestamp {
        seconds: -62_135_596_800,
        nanoseconds: 0,
    };

    /// The current time from the host's wall clock.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            seconds: since.as_secs() as i64,
            nanoseconds: since.subsec_nanos(),
        }
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self::ZERO
    }
}

/// Where a workflow is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Started, not finished.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped on request.
    Canceled,
}

/// What a history event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A run began.
    WorkflowStarted,
    /// A run finished with a result.
    WorkflowCompleted,
    /// A run finished with an error.
    WorkflowFailed,
    /// A run was canceled.
    WorkflowCanceled,
    /// An activity began.
    ActivityStarted,
    /// An activity finished.
    ActivityCompleted,
    /// An activity failed.
    ActivityFailed,
    /// A signal arrived.
    SignalReceived,
    /// A timer elapsed.
    TimerFired,
    /// A durable timer was set (due at its timestamp plus its duration).
    TimerStarted,
    /// The run stopped to wait (written by the host).
    WorkflowSuspended,
}

/// One entry of a workflow's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Sequence number within the workflow, from 1.
    pub id: u64,
    /// What happened.
    pub kind: EventType,
    /// When.
    pub timestamp: Timestamp,
    /// The activity's name, for activity events.
    #[serde(default)]
    pub activity_name: String,
    /// The activity's input.
    #[serde(default)]
    pub input: Option<Json>,
    /// The activity's or workflow's result.
    #[serde(default)]
    pub result: Option<Json>,
    /// The error text, for failures.
    #[serde(default)]
    pub error: String,
    /// The signal's name.
    #[serde(default)]
    pub signal_name: String,
    /// The signal's payload.
    #[serde(default)]
    pub signal_payload: Option<Json>,
    /// Duration in nanoseconds.
    #[serde(default)]
    pub duration_ns: i64,
}

impl HistoryEvent {
    /// An event of `kind` at `timestamp` with every other field empty.
    pub fn new(id: u64, kind: EventType, timestamp: Timestamp) -> Self {
        Self {
            id,
            kind,
            timestamp,
            activity_name: String::new(),
            input: None,
            result: None,
            error: String::new(),
            signal_name: String::new(),
            signal_payload: None,
            duration_ns: 0,
        }
    }

    /// Sets `input` to `value` as JSON (an activity's input).
    pub fn set_input<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.input = Some(Json::from_value(value)?);
        Ok(())
    }

    /// Sets `result` to `value` as JSON (an activity's result).
    pub fn set_result<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.result = Some(Json::from_value(value)?);
        Ok(())
    }

    /// `input` decoded, if set.
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.input.as_ref().map(Json::to_value).transpose()
    }

    /// `result` decoded, if set.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result.as_ref().map(Json::to_value).transpose()
    }
}

/// The persisted state of one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// The key: 1 to 1024 bytes, no control characters.
    pub workflow_id: String,
    /// Identifies one execution.
    #[serde(default)]
    pub run_id: String,
    /// Lifecycle status.
    pub status: WorkflowStatus,
    /// The input JSON.
    #[serde(default)]
    pub input: Option<Json>,
    /// The result JSON.
    #[serde(default)]
    pub result: Option<Json>,
    /// The error text.
    #[serde(default)]
    pub error: String,
    /// Events, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEvent>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Timestamp,
    /// Last change.
    #[serde(default)]
    pub updated_at: Timestamp,
}

impl WorkflowState {
    /// A new `completed` state for `workflow_id`, created now, with no
    /// history: a record the workflow keeps. A record a guest saves is
    /// data, never a run the host resumes, whatever its status (runs are
    /// what the host starts).
    pub fn new(workflow_id: impl Into<String>) -> Self {
        let now = Timestamp::now();
        Self {
            workflow_id: workflow_id.into(),
            run_id: String::new(),
            status: WorkflowStatus::Completed,
            input: None,
            result: None,
            error: String::new(),
            history: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Decodes the input into `T`; `None` when there is no input.
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.input.as_ref().map(Json::to_value).transpose()
    }

    /// Decodes the result into `T`; `None` when there is no result.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result.as_ref().map(Json::to_value).transpose()
    }

    /// Sets the input to `value` encoded as JSON.
    pub fn set_input<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.input = Some(Json::from_value(value)?);
        Ok(())
    }

    /// Sets the result to `value` encoded as JSON.
    pub fn set_result<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.result = Some(Json::from_value(value)?);
        Ok(())
    }

    /// Appends an event of `kind`, numbered after the last one and stamped
    /// now, and returns it for filling in.
    pub fn push_event(&mut self, kind: EventType) -> &mut HistoryEvent {
        let id = self.history.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        self.history
            .push(HistoryEvent::new(id, kind, Timestamp::now()));
        self.history.last_mut().expect("an event was just pushed")
    }
}

// Conversions to and from the generated types: moves, no copies of strings.

impl From<wit::Timestamp> for Timestamp {
    fn from(t: wit::Timestamp) -> Self {
        Self {
            seconds: t.seconds,
            nanoseconds: t.nanoseconds,
        }
    }
}

impl From<Timestamp> for wit::Timestamp {
    fn from(t: Timestamp) -> Self {
        Self {
            seconds: t.seconds,
            nanoseconds: t.nanoseconds,
        }
    }
}

wf_bindgen_util::workflow_enums!(wit, self);

impl From<wit::HistoryEvent> for HistoryEvent {
    fn from(e: wit::HistoryEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind.into(),
            timestamp: e.timestamp.into(),
            activity_name: e.activity_name,
            input: e.input.map(Json),
            result: e.result.map(Json),
            error: e.error,
            signal_name: e.signal_name,
            signal_payload: e.signal_payload.map(Json),
            duration_ns: e.duration_ns,
        }
    }
}

impl From<HistoryEvent> for wit::HistoryEvent {
    fn from(e: HistoryEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind.into(),
            timestamp: e.timestamp.into(),
            activity_name: e.activity_name,
            input: e.input.map(Json::into_string),
            result: e.result.map(Json::into_string),
            error: e.error,
            signal_name: e.signal_name,
            signal_payload: e.signal_payload.map(Json::into_string),
            duration_ns: e.duration_ns,
        }
    }
}

impl From<wit::WorkflowState> for WorkflowState {
    fn from(s: wit::WorkflowState) -> Self {
        Self {
            workflow_id: s.workflow_id,
            run_id: s.run_id,
            status: s.status.into(),
            input: s.input.map(Json),
            result: s.result.map(Json),
            error: s.error,
            history: s.history.into_iter().map(Into::into).collect(),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

impl From<WorkflowState> for wit::WorkflowState {
    fn from(s: WorkflowState) -> Self {
        Self {
            workflow_id: s.workflow_id,
            run_id: s.run_id,
            status: s.status.into(),
            input: s.input.map(Json::into_string),
            result: s.result.map(Json::into_string),
            error: s.error,
            history: s.history.into_iter().map(Into::into).collect(),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_serializes_as_the_value_it_holds() {
        let mut state = WorkflowState::new("w");
        state.set_input(&serde_json::json!({"n": 1})).unwrap();
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains(r#""input":{"n":1}"#), "{text}");
        let back: WorkflowState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        assert_eq!(
            back.input_as::<serde_json::Value>().unwrap().unwrap()["n"],
            1
        );
    }

    #[test]
    fn push_event_numbers_after_the_highest_id() {
        let mut state = WorkflowState::new("w");
        assert_eq!(state.push_event(EventType::WorkflowStarted).id, 1);
        state.history[0].id = 7;
        assert_eq!(state.push_event(EventType::ActivityStarted).id, 8);
    }
}
