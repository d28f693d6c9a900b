//! Borrowed access to a loaded state: [`StateView`] reads the fields of the
//! host's packed form (`store.load-packed`) in place, where a
//! [`WorkflowState`] copies every string into an allocation of its own.

use serde::de::DeserializeOwned;

use crate::bindings::wf::workflow::types as wit;
use crate::store::StoreError;
use crate::types::{EventType, HistoryEvent, Json, Timestamp, WorkflowState, WorkflowStatus};

/// A stored state, read in place: each text accessor borrows from one buffer
/// that the host filled, so reading a few fields of a large state costs
/// what those fields cost. [`StateView::to_state`] makes the owned
/// [`WorkflowState`]. Get one from [`Store::load_view`](crate::Store::load_view).
///
/// ```no_run
/// # fn f(store: &wf_guest::Store) -> Result<(), wf_guest::StoreError> {
/// if let Some(order) = store.load_view("order-7")? {
///     let charged = order
///         .history()
///         .any(|e| e.activity_name() == "charge" && e.result().is_some());
///     println!("{} is {:?}, charged: {charged}", order.workflow_id(), order.status());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StateView {
    text: String,
    packed: wit::PackedState,
}

impl TryFrom<wit::PackedState> for StateView {
    type Error = StoreError;

    /// Checks the text, the event table and every span once, so that the
    /// accessors cannot fail. This runs on every load, so it reads the
    /// event table in place and checks a span with two byte tests.
    fn try_from(mut packed: wit::PackedState) -> Result<Self, StoreError> {
        let bad = |what: String| StoreError::Internal(format!("the host packed a state {what}"));
        let text = String::from_utf8(std::mem::take(&mut packed.text))
            .map_err(|e| bad(format!("whose text is not UTF-8: {e}")))?;
        let (events, rest) = packed.history.as_chunks::<EVENT_BYTES>();
        if !rest.is_empty() {
            return Err(bad(format!(
                "with {} bytes of history, not a whole number of {EVENT_BYTES}-byte events",
                packed.history.len()
            )));
        }
        let check = |start: u32, len: u32| {
            if in_text(&text, start, len) {
                Ok(())
            } else {
                Err(bad(format!(
                    "with a span (start {start}, length {len}) outside its text of {} bytes or across a character",
                    text.len()
                )))
            }
        };
        [packed.workflow_id, packed.run_id, packed.error]
            .into_iter()
            .chain(packed.input)
            .chain(packed.result)
            .try_for_each(|span| check(span.start, span.len))?;
        for event in events {
            let kind = u32_at(event, 28);
            if kind as usize >= EVENT_KINDS.len() {
                return Err(bad(format!("with an event of unknown kind {kind}")));
            }
            for (at, optional) in EVENT_SPANS {
                let (start, len) = (u32_at(event, at), u32_at(event, at + 4));
                if start != NONE {
                    check(start, len)?;
                } else if !optional {
                    return Err(bad(format!(
                        "with an event whose string at byte {at} is none"
                    )));
                }
            }
        }
        Ok(Self { text, packed })
    }
}

/// The bytes of one event in a packed history.
const EVENT_BYTES: usize = 80;

/// One event of a packed history.
type EventBytes = [u8; EVENT_BYTES];

/// Where each text field of an event starts in its bytes, and whether it
/// may be `none`: the activity name, input, result, error, signal name and
/// signal payload.
const EVENT_SPANS: [(usize, bool); 6] = [
    (32, false),
    (40, true),
    (48, true),
    (56, false),
    (64, false),
    (72, true),
];

/// The start of a `none` JSON field.
const NONE: u32 = u32::MAX;

/// The event types by their WIT case number.
const EVENT_KINDS: [EventType; 11] = [
    EventType::WorkflowStarted,
    EventType::WorkflowCompleted,
    EventType::WorkflowFailed,
    EventType::WorkflowCanceled,
    EventType::ActivityStarted,
    EventType::ActivityCompleted,
    EventType::ActivityFailed,
    EventType::SignalReceived,
    EventType::TimerFired,
    EventType::TimerStarted,
    EventType::WorkflowSuspended,
];

#[inline]
fn u32_at(event: &EventBytes, at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&event[at..at + 4]);
    u32::from_le_bytes(bytes)
}

#[inline]
fn u64_at(event: &EventBytes, at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&event[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Whether `start..start + len` lies inside `text` on character boundaries.
#[inline]
fn in_text(text: &str, start: u32, len: u32) -> bool {
    let start = start as usize;
    start.checked_add(len as usize).is_some_and(|end| {
        end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end)
    })
}

/// The text of a span checked when the view was made.
fn text_of(text: &str, span: wit::Span) -> &str {
    let start = span.start as usize;
    text.get(start..start.saturating_add(span.len as usize))
        .unwrap_or_default()
}

impl StateView {
    /// The workflow id.
    pub fn workflow_id(&self) -> &str {
        text_of(&self.text, self.packed.workflow_id)
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        text_of(&self.text, self.packed.run_id)
    }

    /// The lifecycle status.
    pub fn status(&self) -> WorkflowStatus {
        self.packed.status.into()
    }

    /// The input, as JSON text.
    pub fn input(&self) -> Option<&str> {
        self.packed.input.map(|s| text_of(&self.text, s))
    }

    /// The input decoded into `T`; `None` when there is none.
    pub fn input_value<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.input().map(serde_json::from_str).transpose()
    }

    /// The result, as JSON text, once completed.
    pub fn result(&self) -> Option<&str> {
        self.packed.result.map(|s| text_of(&self.text, s))
    }

    /// The result decoded into `T`; `None` when there is none.
    pub fn result_value<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result().map(serde_json::from_str).transpose()
    }

    /// The error text; empty unless failed.
    pub fn error(&self) -> &str {
        text_of(&self.text, self.packed.error)
    }

    /// When the workflow was created.
    pub fn created_at(&self) -> Timestamp {
        self.packed.created_at.into()
    }

    /// When the state last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.packed.updated_at.into()
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = EventView<'_>> + ExactSizeIterator {
        self.packed
            .history
            .as_chunks::<EVENT_BYTES>()
            .0
            .iter()
            .map(|event| EventView {
                text: &self.text,
                event,
            })
    }

    /// The owned state, every field copied out.
    pub fn to_state(&self) -> WorkflowState {
        WorkflowState {
            workflow_id: self.workflow_id().to_owned(),
            run_id: self.run_id().to_owned(),
            status: self.status(),
            input: self.input().map(Json::from_raw),
            result: self.result().map(Json::from_raw),
            error: self.error().to_owned(),
            history: self.history().map(|e| e.to_event()).collect(),
            created_at: self.created_at(),
            updated_at: self.updated_at(),
        }
    }
}

/// One history event of a [`StateView`], read in place.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    text: &'a str,
    event: &'a EventBytes,
}

impl<'a> EventView<'a> {
    /// Sequence number within the workflow, from 1.
    pub fn id(&self) -> u64 {
        u64_at(self.event, 0)
    }

    /// What happened.
    pub fn kind(&self) -> EventType {
        EVENT_KINDS[u32_at(self.event, 28) as usize % EVENT_KINDS.len()]
    }

    /// When.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp {
            seconds: u64_at(self.event, 8) as i64,
            nanoseconds: u32_at(self.event, 24),
        }
    }

    fn text(&self, at: usize) -> &'a str {
        self.json(at).unwrap_or_default()
    }

    fn json(&self, at: usize) -> Option<&'a str> {
        let start = u32_at(self.event, at);
        (start != NONE).then(|| {
            let len = u32_at(self.event, at + 4);
            text_of(self.text, wit::Span { start, len })
        })
    }

    /// The activity's name; empty unless an activity event.
    pub fn activity_name(&self) -> &'a str {
        self.text(32)
    }

    /// The activity's input, as JSON text.
    pub fn input(&self) -> Option<&'a str> {
        self.json(40)
    }

    /// The activity's or the workflow's result, as JSON text.
    pub fn result(&self) -> Option<&'a str> {
        self.json(48)
    }

    /// The error text; empty unless a failure.
    pub fn error(&self) -> &'a str {
        self.text(56)
    }

    /// The signal's name; empty unless a signal or a wait for one.
    pub fn signal_name(&self) -> &'a str {
        self.text(64)
    }

    /// The signal's payload, as JSON text.
    pub fn signal_payload(&self) -> Option<&'a str> {
        self.json(72)
    }

    /// How long the step took, or the timer's length, in nanoseconds.
    pub fn duration_ns(&self) -> i64 {
        u64_at(self.event, 16) as i64
    }

    /// The owned event, every field copied out.
    pub fn to_event(&self) -> HistoryEvent {
        HistoryEvent {
            id: self.id(),
            kind: self.kind(),
            timestamp: self.timestamp(),
            activity_name: self.activity_name().to_owned(),
            input: self.input().map(Json::from_raw),
            result: self.result().map(Json::from_raw),
            error: self.error().to_owned(),
            signal_name: self.signal_name().to_owned(),
            signal_payload: self.signal_payload().map(Json::from_raw),
            duration_ns: self.duration_ns(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u32, len: u32) -> wit::Span {
        wit::Span { start, len }
    }

    /// One event: activity name `name`, result `result`, the rest empty.
    fn event(kind: u32, name: wit::Span, result: Option<wit::Span>) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(&(-5i64).to_le_bytes());
        bytes.extend_from_slice(&42i64.to_le_bytes());
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        let none = (NONE, 0);
        for (start, len) in [
            (name.start, name.len),
            none,
            result.map_or(none, |s| (s.start, s.len)),
            (0, 0),
            (0, 0),
            none,
        ] {
            bytes.extend_from_slice(&start.to_le_bytes());
            bytes.extend_from_slice(&len.to_le_bytes());
        }
        bytes
    }

    /// `wf-1` `é` `[1]`: an id, a two-byte character, a JSON result.
    fn packed(history: Vec<u8>) -> wit::PackedState {
        let at = wit::Timestamp {
            seconds: 1,
            nanoseconds: 2,
        };
        wit::PackedState {
            text: "wf-1é[1]".as_bytes().to_vec(),
            workflow_id: span(0, 4),
            run_id: span(4, 2),
            status: wit::WorkflowStatus::Running,
            input: None,
            result: Some(span(6, 3)),
            error: span(0, 0),
            history,
            created_at: at,
            updated_at: at,
        }
    }

    fn refused(packed: wit::PackedState) -> String {
        match StateView::try_from(packed) {
            Err(StoreError::Internal(message)) => message,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn a_view_reads_each_field_in_place() {
        let view = StateView::try_from(packed(event(5, span(4, 2), Some(span(6, 3))))).unwrap();
        assert_eq!(view.workflow_id(), "wf-1");
        assert_eq!(view.run_id(), "é");
        assert_eq!(view.status(), WorkflowStatus::Running);
        assert_eq!((view.input(), view.result()), (None, Some("[1]")));
        assert_eq!(view.result_value::<Vec<u8>>().unwrap(), Some(vec![1]));
        let event = view.history().next().unwrap();
        assert_eq!(event.kind(), EventType::ActivityCompleted);
        assert_eq!((event.id(), event.duration_ns()), (3, 42));
        assert_eq!(
            event.timestamp(),
            Timestamp {
                seconds: -5,
                nanoseconds: 7
            }
        );
        assert_eq!(event.activity_name(), "é");
        assert_eq!((event.input(), event.result()), (None, Some("[1]")));
        assert_eq!((event.error(), event.signal_name()), ("", ""));
        let state = view.to_state();
        assert_eq!(state.history[0].activity_name, "é");
        assert_eq!(state.result.as_ref().map(Json::as_str), Some("[1]"));
    }

    #[test]
    fn a_packed_state_that_breaks_its_layout_is_refused_clearly() {
        let mut bad_text = packed(Vec::new());
        bad_text.text[4] = 0xff;
        assert!(refused(bad_text).contains("not UTF-8"));

        let mut outside = packed(Vec::new());
        outside.workflow_id = span(8, 5);
        assert!(refused(outside).contains("outside its text"));

        let mut across = packed(Vec::new());
        across.run_id = span(5, 1);
        assert!(refused(across).contains("across a character"));

        let mut overflowing = packed(Vec::new());
        overflowing.error = span(u32::MAX - 1, u32::MAX);
        assert!(refused(overflowing).contains("outside its text"));

        let mut short = event(5, span(0, 4), None);
        short.pop();
        assert!(refused(packed(short)).contains("not a whole number"));

        assert!(refused(packed(event(11, span(0, 4), None))).contains("unknown kind 11"));
        assert!(refused(packed(event(5, span(NONE, 0), None))).contains("is none"));
        assert!(refused(packed(event(5, span(0, 4), Some(span(2, 9))))).contains("outside"));
    }
}
