//! What a waiting workflow's state says: the `workflow_suspended` event the
//! host writes when a run waits, the signals appended to it, and instants
//! as nanoseconds for due times.

use super::time::{append_rfc3339, writable};
use super::*;

/// The longest signal name, in bytes.
pub const MAX_SIGNAL_NAME_BYTES: usize = wf_bindgen_util::MAX_SIGNAL_NAME_BYTES;

/// The separator of several signal names in one event's `SignalName`.
pub const SIGNAL_NAME_SEPARATOR: char = '|';

/// `Ok` for a signal name the host accepts: 1 to 256 bytes of UTF-8 without
/// control characters or `|` (which separates names in one event).
pub fn validate_signal_name(name: &str) -> Result<(), ModelError> {
    match wf_bindgen_util::signal_name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(ModelError::InvalidField {
            field: "signal name".to_owned(),
            message: format!("{:?} {problem}", name.chars().take(64).collect::<String>()),
        }),
    }
}

impl Timestamp {
    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> i128 {
        i128::from(self.seconds) * i128::from(NANOS_PER_SEC) + i128::from(self.nanoseconds)
    }

    /// The instant `nanos` nanoseconds after the Unix epoch (saturating at
    /// the ends of `i64` seconds).
    pub fn from_nanos(nanos: i128) -> Timestamp {
        let per_sec = i128::from(NANOS_PER_SEC);
        let seconds = nanos.div_euclid(per_sec);
        Timestamp {
            seconds: i64::try_from(seconds).unwrap_or(if seconds < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
            // In 0..1e9, so it fits.
            nanoseconds: nanos.rem_euclid(per_sec) as u32,
        }
    }

    /// `Ok` when the wire format can carry this instant (years 0 to 9999,
    /// nanoseconds below a second).
    pub fn check(self) -> Result<(), ModelError> {
        if writable(self) {
            return Ok(());
        }
        let mut sink = Vec::new();
        match append_rfc3339(&mut sink, self) {
            Err(e) => Err(e.at("timestamp".to_owned())),
            Ok(()) => Ok(()),
        }
    }
}

/// What a suspended run waits for, as its `workflow_suspended` event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspended {
    /// When it is due, if it waits for a time.
    pub wake_at: Option<Timestamp>,
    /// The signals it waits for (any one of them wakes it).
    pub signals: Vec<String>,
}

impl Suspended {
    /// The `workflow_suspended` event saying so, written at `now`.
    pub fn event(&self, id: u64, now: Timestamp) -> HistoryEvent {
        let mut event = HistoryEvent::new(id, EventType::WorkflowSuspended, now);
        event.signal_name = self.signals.join(&SIGNAL_NAME_SEPARATOR.to_string());
        if let Some(at) = self.wake_at {
            // At least 1 ns: 0 means "no due time".
            let nanos = (at.as_nanos() - now.as_nanos()).max(1);
            event.duration_ns = i64::try_from(nanos).unwrap_or(i64::MAX);
        }
        event
    }

    /// What `event` (a `workflow_suspended` event) says.
    pub fn of_event(event: &HistoryEvent) -> Option<Self> {
        if event.kind != EventType::WorkflowSuspended {
            return None;
        }
        let wake_at = (event.duration_ns > 0).then(|| {
            Timestamp::from_nanos(event.timestamp.as_nanos() + i128::from(event.duration_ns))
        });
        let signals = if event.signal_name.is_empty() {
            Vec::new()
        } else {
            event
                .signal_name
                .split(SIGNAL_NAME_SEPARATOR)
                .map(str::to_owned)
                .collect()
        };
        Some(Self { wake_at, signals })
    }

    /// Whether a signal named `name` wakes it.
    pub fn woken_by(&self, name: &str) -> bool {
        self.signals.iter().any(|s| s == name)
    }
}

impl WorkflowState {
    /// What this run waits for, when it is suspended: `running`, and its
    /// last event is `workflow_suspended`, or only signals came after it
    /// (those it waits for end the suspension: see
    /// [`WorkflowState::signals_since_suspended`]).
    pub fn suspended(&self) -> Option<Suspended> {
        if self.status != WorkflowStatus::Running {
            return None;
        }
        let last = self
            .history
            .iter()
            .rev()
            .find(|e| e.kind != EventType::SignalReceived)?;
        Suspended::of_event(last)
    }

    /// The names of the signals appended after the last event that is not
    /// a signal (for a suspended run: those that came while it waited).
    pub fn signals_since_suspended(&self) -> impl Iterator<Item = &str> {
        let trailing = self
            .history
            .iter()
            .rev()
            .take_while(|e| e.kind == EventType::SignalReceived)
            .count();
        self.history[self.history.len() - trailing..]
            .iter()
            .map(|e| e.signal_name.as_str())
    }

    /// The id the next history event gets: one more than the largest.
    pub fn next_event_id(&self) -> u64 {
        self.history.iter().map(|e| e.id).max().unwrap_or(0) + 1
    }

    /// The state with signal `name` (payload `payload`, JSON text) appended
    /// as a `signal_received` event at `now`.
    pub fn with_signal(&self, name: &str, payload: Option<&str>, now: Timestamp) -> Self {
        let mut next = self.clone();
        let mut event = HistoryEvent::new(self.next_event_id(), EventType::SignalReceived, now);
        event.signal_name = name.to_owned();
        event.signal_payload = payload.map(str::to_owned);
        next.history.push(event);
        next.updated_at = now;
        next.normalize_json_fields();
        next
    }
}
