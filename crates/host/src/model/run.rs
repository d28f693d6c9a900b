//! Which module a run belongs to. The host writes its module's name and
//! content digest into every `workflow_started` event it records, in the
//! event's `Input` (`{"digest":"<sha-256 hex>","module":"<name>"}`), a
//! field the Go provider's struct has and a Go writer's re-save keeps. A
//! state is a *run* (started by a host, not a record a guest saved) when its
//! history begins with such an event; recovery resumes a run only with the
//! module that started it.

use serde::Deserialize;

use super::{EventType, HistoryEvent, Json, Timestamp, WorkflowState};

/// A module as the runs it starts name it: the name it was loaded under and
/// the SHA-256 of its bytes (a build).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleIdentity {
    /// The module's name (`wfhost`: its file name, e.g. `ledger.wasm`).
    pub name: String,
    /// The SHA-256 of the component's bytes, 64 lowercase hex digits.
    pub digest: String,
}

/// The identity's JSON, as it stands in a `workflow_started` event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    digest: String,
    module: String,
}

impl ModuleIdentity {
    /// The identity of module `name` with content digest `digest`.
    pub fn new(name: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            digest: digest.into(),
        }
    }

    /// The `Input` of the `workflow_started` events this module's runs get:
    /// keys in the order Go's encoder writes a map, so a Go re-save keeps
    /// the text as it is.
    pub fn to_json(&self) -> Json {
        format!(
            "{{\"digest\":{},\"module\":{}}}",
            serde_json::Value::from(self.digest.as_str()),
            serde_json::Value::from(self.name.as_str())
        )
    }

    /// A `workflow_started` event naming this module.
    pub fn started_event(&self, id: u64, timestamp: Timestamp) -> HistoryEvent {
        let mut event = HistoryEvent::new(id, EventType::WorkflowStarted, timestamp);
        event.input = Some(self.to_json());
        event
    }

    /// The module `event` names, when it is a `workflow_started` event a
    /// host wrote.
    pub fn of_event(event: &HistoryEvent) -> Option<Self> {
        if event.kind != EventType::WorkflowStarted {
            return None;
        }
        let marker: Marker = serde_json::from_str(event.input.as_deref()?).ok()?;
        let hex = marker.digest.len() == 64
            && marker
                .digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (hex && !marker.module.is_empty()).then(|| Self::new(marker.module, marker.digest))
    }

    /// Whether `event` is a `workflow_started` event a host wrote.
    pub fn marks(event: &HistoryEvent) -> bool {
        Self::of_event(event).is_some()
    }
}

impl std::fmt::Display for ModuleIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.digest.get(..12).unwrap_or(&self.digest);
        write!(f, "{} ({short})", self.name)
    }
}

impl WorkflowState {
    /// Whether this state is a run a host started: its history begins with
    /// a `workflow_started` event naming a module. Records guests save are
    /// not runs (a guest cannot write such an event: the host refuses it).
    pub fn is_run(&self) -> bool {
        self.history.first().is_some_and(ModuleIdentity::marks)
    }

    /// The module that last started (or resumed) this run: the one its
    /// latest `workflow_started` event names. `None` when it is not a run.
    pub fn run_module(&self) -> Option<ModuleIdentity> {
        if !self.is_run() {
            return None;
        }
        self.history.iter().rev().find_map(ModuleIdentity::of_event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{WorkflowStatus, decode_state, encode_state};

    fn digest(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn state(history: Vec<HistoryEvent>) -> WorkflowState {
        WorkflowState {
            workflow_id: "w".into(),
            run_id: "r".into(),
            status: WorkflowStatus::Running,
            input: None,
            result: None,
            error: String::new(),
            history,
            created_at: Timestamp::GO_ZERO,
            updated_at: Timestamp::GO_ZERO,
        }
    }

    #[test]
    fn a_run_names_the_module_of_its_latest_start_and_survives_the_wire() {
        let first = ModuleIdentity::new("ledger.wasm", digest('a'));
        let second = ModuleIdentity::new("ledger.wasm", digest('b'));
        let run = state(vec![
            first.started_event(1, Timestamp::GO_ZERO),
            HistoryEvent::new(2, EventType::ActivityCompleted, Timestamp::GO_ZERO),
            second.started_event(3, Timestamp::GO_ZERO),
        ]);
        assert!(run.is_run());
        assert_eq!(run.run_module(), Some(second));
        let replayed = decode_state(&encode_state(&run).unwrap()).unwrap();
        assert_eq!(replayed.run_module(), run.run_module());
        assert_eq!(
            first.to_json(),
            format!(r#"{{"digest":"{}","module":"ledger.wasm"}}"#, digest('a'))
        );
    }

    #[test]
    fn records_without_the_host_s_start_are_not_runs() {
        let bare = HistoryEvent::new(1, EventType::WorkflowStarted, Timestamp::GO_ZERO);
        assert!(!state(vec![bare.clone()]).is_run());
        assert!(!state(vec![]).is_run());
        let mut other = bare.clone();
        for input in [
            r#"{"module":"x"}"#.to_owned(),
            format!(r#"{{"module":"x","digest":"{}","extra":1}}"#, digest('a')),
            r#"{"module":"x","digest":"not-hex"}"#.to_owned(),
            format!(r#"{{"module":"","digest":"{}"}}"#, digest('a')),
            "[1]".to_owned(),
        ] {
            other.input = Some(input.clone());
            assert!(!state(vec![other.clone()]).is_run(), "{input}");
        }
        // A started event later in a history does not make a record a run.
        let marked = ModuleIdentity::new("m", digest('c')).started_event(2, Timestamp::GO_ZERO);
        let data = HistoryEvent::new(1, EventType::ActivityCompleted, Timestamp::GO_ZERO);
        assert!(!state(vec![data, marked]).is_run());
    }
}
