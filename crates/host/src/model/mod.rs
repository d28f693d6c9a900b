//! Workflow-state types and their JSON wire codec.
//!
//! The wire format is exactly what Go's `encoding/json` produces and accepts for
//! the Go service's `WorkflowState` / `HistoryEvent` structs (no struct tags), so
//! the Go service and this host can share one topic:
//!
//! * [`encode_state`] writes the same bytes as Go's `json.Marshal` (fields in
//!   struct order, HTML-safe string escaping, `time.Time` as trimmed RFC 3339
//!   nanoseconds, a nil slice for an empty history); the `any` fields are
//!   embedded verbatim after validation.
//! * [`decode_state`] accepts what `json.Unmarshal` accepts: case-insensitive
//!   field names, unknown fields ignored, `null` leaving a field unchanged, and
//!   the `any` fields kept as their exact raw JSON text.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

mod decode;
mod encode;
mod run;
mod scan;
#[cfg(test)]
mod tests;
mod time;
mod wait;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use decode::decode_general;
pub use decode::decode_state;
pub use encode::{encode_state, encoded_len_hint, validate_json};
pub use run::ModuleIdentity;
pub(crate) use scan::decode_canonical;
use time::{append_rfc3339, parse_rfc3339};
pub use wait::{MAX_SIGNAL_NAME_BYTES, SIGNAL_NAME_SEPARATOR, Suspended, validate_signal_name};

/// JSON text.
pub type Json = String;

const NANOS_PER_SEC: u32 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// A point in time, in UTC, as seconds and nanoseconds since the Unix epoch.
///
/// `Default` is the Unix epoch; Go's zero `time.Time` (an unset time) is
/// [`Timestamp::GO_ZERO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before it).
    pub seconds: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanoseconds: u32,
}

impl Timestamp {
    /// Go's zero `time.Time`, `0001-01-01T00:00:00Z`: the value of an unset time.
    pub const GO_ZERO: Timestamp = Timestamp {
        seconds: -62_135_596_800,
        nanoseconds: 0,
    };

    /// The current system time.
    pub fn now() -> Timestamp {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                seconds: secs(d),
                nanoseconds: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                match d.subsec_nanos() {
                    0 => Timestamp {
                        seconds: -secs(d),
                        nanoseconds: 0,
                    },
                    n => Timestamp {
                        seconds: -secs(d) - 1,
                        nanoseconds: NANOS_PER_SEC - n,
                    },
                }
            }
        }
    }

    /// Whether this is Go's zero time ([`Timestamp::GO_ZERO`]), i.e. unset.
    pub fn is_go_zero(&self) -> bool {
        *self == Self::GO_ZERO
    }

    /// Formats like Go's `time.Time.MarshalJSON` (without the quotes): RFC 3339
    /// in UTC with the fraction's trailing zeros trimmed, e.g.
    /// `2024-01-02T03:04:05.1Z`. Fails for years outside `0..=9999` or
    /// nanoseconds of a second or more.
    pub fn to_rfc3339(&self) -> Result<String, ModelError> {
        let mut out = Vec::with_capacity(30);
        append_rfc3339(&mut out, *self).map_err(|e| e.at("timestamp".to_owned()))?;
        Ok(out.iter().map(|&b| char::from(b)).collect())
    }

    /// Parses RFC 3339 as Go's `time.Time.UnmarshalJSON` does (without the
    /// quotes): `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, converted to UTC;
    /// fraction digits after the ninth are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, ModelError> {
        parse_rfc3339(s.as_bytes()).ok_or_else(|| ModelError::InvalidTimestamp {
            field: "timestamp".to_owned(),
            value: s.to_owned(),
        })
    }
}

/// Declares a string-valued wire enum with `ALL`, `as_str`, `Display` and `FromStr`.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident, $n:literal, $unknown:path,
     { $($(#[$vm:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant,)+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; $n] = [$($name::$variant,)+];

            /// The wire string.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ModelError;

            fn from_str(s: &str) -> Result<Self, ModelError> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($unknown(s.to_owned())),
                }
            }
        }
    };
}

wire_enum!(
    /// The lifecycle status of a workflow run.
    WorkflowStatus, 4, ModelError::UnknownStatus, {
        /// `"running"`: started and not finished.
        Running = "running",
        /// `"completed"`: finished with a result.
        Completed = "completed",
        /// `"failed"`: finished with an error.
        Failed = "failed",
        /// `"canceled"`: stopped before finishing.
        Canceled = "canceled",
    }
);

fn unknown_event_type(value: String) -> ModelError {
    ModelError::UnknownEventType {
        field: "Type".to_owned(),
        value,
    }
}

wire_enum!(
    /// The kind of a [`HistoryEvent`].
    EventType, 11, unknown_event_type, {
        /// `"workflow_started"`.
        WorkflowStarted = "workflow_started",
        /// `"workflow_completed"`.
        WorkflowCompleted = "workflow_completed",
        /// `"workflow_failed"`.
        WorkflowFailed = "workflow_failed",
        /// `"workflow_canceled"`.
        WorkflowCanceled = "workflow_canceled",
        /// `"activity_started"`.
        ActivityStarted = "activity_started",
        /// `"activity_completed"`.
        ActivityCompleted = "activity_completed",
        /// `"activity_failed"`.
        ActivityFailed = "activity_failed",
        /// `"signal_received"`.
        SignalReceived = "signal_received",
        /// `"timer_fired"`.
        TimerFired = "timer_fired",
        /// `"timer_started"`.
        TimerStarted = "timer_started",
        /// `"workflow_suspended"`.
        WorkflowSuspended = "workflow_suspended",
    }
);

/// One entry of a workflow's history (Go `HistoryEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// Sequence number (Go `ID int64`; at most `i64::MAX` on the wire).
    pub id: u64,
    /// What happened (Go `Type`).
    pub kind: EventType,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The activity's name, for activity events; else empty.
    pub activity_name: String,
    /// The activity's input JSON, if any.
    pub input: Option<Json>,
    /// The activity's or workflow's result JSON, if any.
    pub result: Option<Json>,
    /// The error message; empty when none.
    pub error: String,
    /// The signal's name, for signal events; else empty.
    pub signal_name: String,
    /// The signal's payload JSON, if any.
    pub signal_payload: Option<Json>,
    /// A duration in nanoseconds (Go `time.Duration`).
    pub duration_ns: i64,
}

impl HistoryEvent {
    /// An event with the given id, kind and time, and every other field empty.
    pub fn new(id: u64, kind: EventType, timestamp: Timestamp) -> Self {
        HistoryEvent {
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
}

/// The state of one workflow run (Go `WorkflowState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowState {
    /// The workflow's id.
    pub workflow_id: String,
    /// The run's id.
    pub run_id: String,
    /// The run's status.
    pub status: WorkflowStatus,
    /// The workflow's input JSON, if any.
    pub input: Option<Json>,
    /// The workflow's result JSON, if any.
    pub result: Option<Json>,
    /// The error message; empty when none.
    pub error: String,
    /// The events so far, oldest first.
    pub history: Vec<HistoryEvent>,
    /// When the run was created.
    pub created_at: Timestamp,
    /// When the state last changed.
    pub updated_at: Timestamp,
}

impl WorkflowState {
    /// A state of `workflow_id`, run `run_id`, with `status`, and every other
    /// field empty (times at [`Timestamp::GO_ZERO`]).
    pub fn new(
        workflow_id: impl Into<String>,
        run_id: impl Into<String>,
        status: WorkflowStatus,
    ) -> Self {
        WorkflowState {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            status,
            input: None,
            result: None,
            error: String::new(),
            history: Vec::new(),
            created_at: Timestamp::GO_ZERO,
            updated_at: Timestamp::GO_ZERO,
        }
    }

    /// Puts the JSON-text fields in the form the wire gives back: surrounding
    /// whitespace trimmed and the text `null` as `None`. Stores call this
    /// before saving so that every backend returns what a replay would.
    pub fn normalize_json_fields(&mut self) {
        normalize_json(&mut self.input);
        normalize_json(&mut self.result);
        for event in &mut self.history {
            normalize_json(&mut event.input);
            normalize_json(&mut event.result);
            normalize_json(&mut event.signal_payload);
        }
    }

    /// About how many bytes of memory this state holds (inline and on the
    /// heap), for cache budgets: exact for the strings' buffers, not counting
    /// allocator overhead.
    pub fn approx_memory_bytes(&self) -> usize {
        let json = |field: &Option<Json>| field.as_ref().map_or(0, String::capacity);
        let events: usize = self
            .history
            .iter()
            .map(|e| {
                e.activity_name.capacity()
                    + json(&e.input)
                    + json(&e.result)
                    + e.error.capacity()
                    + e.signal_name.capacity()
                    + json(&e.signal_payload)
            })
            .sum();
        size_of::<Self>()
            + self.workflow_id.capacity()
            + self.run_id.capacity()
            + json(&self.input)
            + json(&self.result)
            + self.error.capacity()
            + self.history.capacity() * size_of::<HistoryEvent>()
            + events
    }
}

fn normalize_json(field: &mut Option<Json>) {
    let Some(text) = field else { return };
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    if trimmed == "null" {
        *field = None;
    } else if trimmed.len() != text.len() {
        *text = trimmed.to_owned();
    }
}

/// An error encoding or decoding workflow state. Messages name the field,
/// e.g. `History[3].SignalPayload`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A workflow status that is not one of the four known ones (also when
    /// missing or null: the value is then empty).
    #[error("unknown workflow status {0:?}")]
    UnknownStatus(String),
    /// An event type that is not one of the nine known ones (empty when missing).
    #[error("{field}: unknown event type {value:?}")]
    UnknownEventType {
        /// The field, e.g. `History[2].Type`.
        field: String,
        /// The rejected value.
        value: String,
    },
    /// A JSON-text field that is not exactly one valid JSON value.
    #[error("{field} is not valid JSON: {message}")]
    InvalidJson {
        /// The field, e.g. `Input` or `History[3].SignalPayload`.
        field: String,
        /// What is wrong, from the JSON parser.
        message: String,
    },
    /// A timestamp whose year cannot be written as RFC 3339 (Go's limit).
    #[error("{field}: year {year} is out of range 0..=9999")]
    YearOutOfRange {
        /// The field, e.g. `CreatedAt`.
        field: String,
        /// The timestamp's year.
        year: i64,
    },
    /// A timestamp with a nanoseconds part of a second or more.
    #[error("{field}: nanoseconds {nanoseconds} is out of range 0..=999999999")]
    NanosecondsOutOfRange {
        /// The field, e.g. `History[0].Timestamp`.
        field: String,
        /// The rejected nanoseconds.
        nanoseconds: u32,
    },
    /// A string that is not an RFC 3339 timestamp as Go accepts it.
    #[error("{field}: invalid RFC 3339 timestamp {value:?}")]
    InvalidTimestamp {
        /// The field, e.g. `UpdatedAt`.
        field: String,
        /// The rejected text.
        value: String,
    },
    /// A field with a value of the wrong JSON type or out of range.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field, e.g. `Error` or `History[1].Duration`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Bytes that are not a JSON object (or not JSON at all).
    #[error("not a workflow state: {0}")]
    NotAState(String),
}
