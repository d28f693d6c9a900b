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
/// Each accessor checks the bytes it reads when it reads them: that its
/// range lies in the host's buffer and is UTF-8. A host that broke the
/// `packed-state` layout of `wf:workflow/types` makes the accessor panic
/// (failing the workflow) rather than read a wrong field;
/// [`Store::load`](crate::Store::load) checks every field as it copies
/// them and returns [`StoreError::Internal`] instead.
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
    text: Vec<u8>,
    packed: wit::PackedState,
}

impl TryFrom<wit::PackedState> for StateView {
    type Error = StoreError;

    /// Checks that the history is whole events. The fields are checked as
    /// they are read: this runs on every load, and checking every span and
    /// the whole text up front cost a fifth of a view load.
    fn try_from(mut packed: wit::PackedState) -> Result<Self, StoreError> {
        if !packed.history.len().is_multiple_of(EVENT_BYTES) {
            return Err(Broken(format!(
                "with {} bytes of history, not a whole number of {EVENT_BYTES}-byte events",
                packed.history.len()
            ))
            .into());
        }
        let text = std::mem::take(&mut packed.text);
        Ok(Self { text, packed })
    }
}

/// How a host's packed state breaks its layout: the end of a sentence
/// that starts "the host packed a state".
#[derive(Debug)]
struct Broken(String);

impl From<Broken> for StoreError {
    fn from(broken: Broken) -> Self {
        StoreError::Internal(format!("the host packed a state {}", broken.0))
    }
}

/// The value a field's check let through, or the panic that fails the
/// workflow: the host broke the layout, so no value would be right.
#[track_caller]
fn checked<T>(read: Result<T, Broken>) -> T {
    match read {
        Ok(value) => value,
        Err(broken) => broke(broken),
    }
}

#[cold]
#[track_caller]
fn broke(broken: Broken) -> ! {
    panic!(
        "{}, against the packed-state layout of wf:workflow/types",
        StoreError::from(broken)
    )
}

/// The bytes of one event in a packed history.
const EVENT_BYTES: usize = 80;

/// One event of a packed history.
type EventBytes = [u8; EVENT_BYTES];

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

/// The text of `span`: in `text`, and UTF-8 (so on character boundaries,
/// as UTF-8 never starts or ends a valid run inside a character).
#[inline]
fn text_of(text: &[u8], span: wit::Span) -> Result<&str, Broken> {
    let start = span.start as usize;
    let bytes = start
        .checked_add(span.len as usize)
        .and_then(|end| text.get(start..end))
        .ok_or_else(|| outside(text, span))?;
    std::str::from_utf8(bytes).map_err(|e| {
        Broken(format!(
            "with a span (start {}, length {}) that is not UTF-8 text or is across a character: {e}",
            span.start, span.len
        ))
    })
}

#[cold]
fn outside(text: &[u8], span: wit::Span) -> Broken {
    Broken(format!(
        "with a span (start {}, length {}) outside its text of {} bytes",
        span.start,
        span.len,
        text.len()
    ))
}

impl StateView {
    fn text(&self, span: wit::Span) -> Result<&str, Broken> {
        text_of(&self.text, span)
    }

    fn json(&self, span: Option<wit::Span>) -> Result<Option<&str>, Broken> {
        span.map(|span| self.text(span)).transpose()
    }

    /// The workflow id.
    pub fn workflow_id(&self) -> &str {
        checked(self.text(self.packed.workflow_id))
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        checked(self.text(self.packed.run_id))
    }

    /// The lifecycle status.
    pub fn status(&self) -> WorkflowStatus {
        self.packed.status.into()
    }

    /// The input, as JSON text.
    pub fn input(&self) -> Option<&str> {
        checked(self.json(self.packed.input))
    }

    /// The input decoded into `T`; `None` when there is none.
    pub fn input_value<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.input().map(serde_json::from_str).transpose()
    }

    /// The result, as JSON text, once completed.
    pub fn result(&self) -> Option<&str> {
        checked(self.json(self.packed.result))
    }

    /// The result decoded into `T`; `None` when there is none.
    pub fn result_value<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result().map(serde_json::from_str).transpose()
    }

    /// The error text; empty unless failed.
    pub fn error(&self) -> &str {
        checked(self.text(self.packed.error))
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
        checked(self.copy_state())
    }

    /// The owned state, or the first field that breaks the layout.
    pub(crate) fn try_to_state(&self) -> Result<WorkflowState, StoreError> {
        Ok(self.copy_state()?)
    }

    fn copy_state(&self) -> Result<WorkflowState, Broken> {
        Ok(WorkflowState {
            workflow_id: self.text(self.packed.workflow_id)?.to_owned(),
            run_id: self.text(self.packed.run_id)?.to_owned(),
            status: self.status(),
            input: self.json(self.packed.input)?.map(Json::from_raw),
            result: self.json(self.packed.result)?.map(Json::from_raw),
            error: self.text(self.packed.error)?.to_owned(),
            history: self
                .history()
                .map(|e| e.copy_event())
                .collect::<Result<_, _>>()?,
            created_at: self.created_at(),
            updated_at: self.updated_at(),
        })
    }
}

/// One history event of a [`StateView`], read in place.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    text: &'a [u8],
    event: &'a EventBytes,
}

impl<'a> EventView<'a> {
    /// Sequence number within the workflow, from 1.
    pub fn id(&self) -> u64 {
        u64_at(self.event, 0)
    }

    /// What happened.
    pub fn kind(&self) -> EventType {
        checked(self.try_kind())
    }

    fn try_kind(&self) -> Result<EventType, Broken> {
        let kind = u32_at(self.event, 28);
        EVENT_KINDS
            .get(kind as usize)
            .copied()
            .ok_or_else(|| Broken(format!("with an event of unknown kind {kind}")))
    }

    /// When.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp {
            seconds: u64_at(self.event, 8) as i64,
            nanoseconds: u32_at(self.event, 24),
        }
    }

    /// The string field at byte `at`, which may not be `none`.
    fn text(&self, at: usize) -> Result<&'a str, Broken> {
        self.json(at)?
            .ok_or_else(|| Broken(format!("with an event whose string at byte {at} is none")))
    }

    /// The optional JSON field at byte `at`.
    fn json(&self, at: usize) -> Result<Option<&'a str>, Broken> {
        let start = u32_at(self.event, at);
        if start == NONE {
            return Ok(None);
        }
        let len = u32_at(self.event, at + 4);
        text_of(self.text, wit::Span { start, len }).map(Some)
    }

    /// The activity's name; empty unless an activity event.
    pub fn activity_name(&self) -> &'a str {
        checked(self.text(32))
    }

    /// The activity's input, as JSON text.
    pub fn input(&self) -> Option<&'a str> {
        checked(self.json(40))
    }

    /// The activity's or the workflow's result, as JSON text.
    pub fn result(&self) -> Option<&'a str> {
        checked(self.json(48))
    }

    /// The error text; empty unless a failure.
    pub fn error(&self) -> &'a str {
        checked(self.text(56))
    }

    /// The signal's name; empty unless a signal or a wait for one.
    pub fn signal_name(&self) -> &'a str {
        checked(self.text(64))
    }

    /// The signal's payload, as JSON text.
    pub fn signal_payload(&self) -> Option<&'a str> {
        checked(self.json(72))
    }

    /// How long the step took, or the timer's length, in nanoseconds.
    pub fn duration_ns(&self) -> i64 {
        u64_at(self.event, 16) as i64
    }

    /// The owned event, every field copied out.
    pub fn to_event(&self) -> HistoryEvent {
        checked(self.copy_event())
    }

    fn copy_event(&self) -> Result<HistoryEvent, Broken> {
        Ok(HistoryEvent {
            id: self.id(),
            kind: self.try_kind()?,
            timestamp: self.timestamp(),
            activity_name: self.text(32)?.to_owned(),
            input: self.json(40)?.map(Json::from_raw),
            result: self.json(48)?.map(Json::from_raw),
            error: self.text(56)?.to_owned(),
            signal_name: self.text(64)?.to_owned(),
            signal_payload: self.json(72)?.map(Json::from_raw),
            duration_ns: self.duration_ns(),
        })
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

    /// What `Store::load` refuses `packed` with: the view's own check, or
    /// the first broken field of the owned copy.
    fn refused(packed: wit::PackedState) -> String {
        match StateView::try_from(packed).and_then(|view| view.try_to_state()) {
            Err(StoreError::Internal(message)) => message,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    /// The message `read` panics with.
    fn panic_of(read: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(read).expect_err("the read should panic");
        payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default()
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
        assert_eq!(view.try_to_state().unwrap(), state);
    }

    #[test]
    fn a_packed_state_that_breaks_its_layout_is_refused_clearly() {
        let mut bad_text = packed(Vec::new());
        bad_text.text[4] = 0xff;
        assert!(refused(bad_text).contains("not UTF-8"));

        let mut outside = packed(Vec::new());
        outside.workflow_id = span(8, 5);
        assert!(refused(outside).contains("outside its text of 9 bytes"));

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

    #[test]
    fn a_view_reads_the_good_fields_of_a_broken_state_and_panics_on_the_broken_one() {
        let mut broken = packed(event(11, span(0, 4), Some(span(2, 9))));
        broken.run_id = span(5, 1);
        let view = StateView::try_from(broken).unwrap();
        assert_eq!((view.workflow_id(), view.result()), ("wf-1", Some("[1]")));
        let event = view.history().next().unwrap();
        assert_eq!((event.id(), event.activity_name()), (3, "wf-1"));

        let message = panic_of(|| {
            view.run_id();
        });
        assert!(message.contains("the host packed a state with a span (start 5, length 1)"));
        assert!(message.contains("against the packed-state layout"));
        assert!(
            panic_of(|| {
                event.result();
            })
            .contains("outside its text of 9 bytes")
        );
        assert!(
            panic_of(|| {
                event.kind();
            })
            .contains("unknown kind 11")
        );
        assert!(
            panic_of(|| {
                view.to_state();
            })
            .contains("start 5, length 1")
        );
    }
}
