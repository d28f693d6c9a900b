//! Borrowed access to a loaded state: [`StateView`] reads the fields of the
//! host's state buffer (`store.load-buffer`) in place, where a
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
/// `state-buffer` layout of `wf:workflow/types` makes the accessor panic
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
    /// The packed state: header, event table, text.
    packed: Vec<u8>,
    /// The number of events, checked to fit in `packed`.
    events: usize,
    status: WorkflowStatus,
}

impl TryFrom<wit::StateBuffer> for StateView {
    type Error = StoreError;

    /// Checks the header: its length, its status, and that the event
    /// table fits. The fields are checked as they are read: this runs on
    /// every load, and checking every span and the whole text up front
    /// cost a fifth of a view load.
    fn try_from(packed: wit::StateBuffer) -> Result<Self, StoreError> {
        if packed.len() < HEADER_BYTES {
            return Err(Broken(format!(
                "of {} bytes, fewer than its {HEADER_BYTES}-byte header",
                packed.len()
            ))
            .into());
        }
        let events = u32_at(&packed, 68) as usize;
        if events > (packed.len() - HEADER_BYTES) / EVENT_BYTES {
            return Err(Broken(format!(
                "with {events} history events in its header, more than its {} bytes hold",
                packed.len()
            ))
            .into());
        }
        let status = u32_at(&packed, 64);
        let status = *STATUSES
            .get(status as usize)
            .ok_or_else(|| Broken(format!("with an unknown status {status}")))?;
        Ok(Self {
            packed,
            events,
            status,
        })
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
        "{}, against the state-buffer layout of wf:workflow/types",
        StoreError::from(broken)
    )
}

/// The bytes of a packed state's header, and of one event in its history.
const HEADER_BYTES: usize = 72;
const EVENT_BYTES: usize = 80;

/// One event of a packed history.
type EventBytes = [u8; EVENT_BYTES];

/// The start of a `none` JSON field.
const NONE: u32 = u32::MAX;

/// The statuses by their WIT case number.
const STATUSES: [WorkflowStatus; 4] = [
    WorkflowStatus::Running,
    WorkflowStatus::Completed,
    WorkflowStatus::Failed,
    WorkflowStatus::Canceled,
];

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

/// The little-endian number at `at`, inside `bytes` (a header or an event).
#[inline]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// As [`u32_at`], eight bytes.
#[inline]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

/// The string field whose span is at byte `at` of `bytes` (a header or an
/// event), which may not be `none`.
#[inline]
fn text_at<'a>(text: &'a [u8], bytes: &[u8], at: usize) -> Result<&'a str, Broken> {
    json_at(text, bytes, at)?
        .ok_or_else(|| Broken(format!("with a string whose span at byte {at} is none")))
}

/// The optional JSON field whose span is at byte `at` of `bytes`.
#[inline]
fn json_at<'a>(text: &'a [u8], bytes: &[u8], at: usize) -> Result<Option<&'a str>, Broken> {
    let start = u32_at(bytes, at);
    if start == NONE {
        return Ok(None);
    }
    text_of(text, start, u32_at(bytes, at + 4)).map(Some)
}

/// The text of `span`: in `text`, and UTF-8 (so on character boundaries,
/// as UTF-8 never starts or ends a valid run inside a character).
#[inline]
fn text_of(text: &[u8], start: u32, len: u32) -> Result<&str, Broken> {
    let from = start as usize;
    let bytes = from
        .checked_add(len as usize)
        .and_then(|end| text.get(from..end))
        .ok_or_else(|| outside(text, start, len))?;
    std::str::from_utf8(bytes).map_err(|e| {
        Broken(format!(
            "with a span (start {start}, length {len}) that is not UTF-8 text or is across a character: {e}"
        ))
    })
}

#[cold]
fn outside(text: &[u8], start: u32, len: u32) -> Broken {
    Broken(format!(
        "with a span (start {start}, length {len}) outside its text of {} bytes",
        text.len()
    ))
}

impl StateView {
    fn header(&self) -> &[u8] {
        &self.packed[..HEADER_BYTES]
    }

    fn text(&self) -> &[u8] {
        &self.packed[HEADER_BYTES + self.events * EVENT_BYTES..]
    }

    fn text_at(&self, at: usize) -> Result<&str, Broken> {
        text_at(self.text(), self.header(), at)
    }

    fn json_at(&self, at: usize) -> Result<Option<&str>, Broken> {
        json_at(self.text(), self.header(), at)
    }

    fn timestamp_at(&self, seconds: usize, nanoseconds: usize) -> Timestamp {
        Timestamp {
            seconds: u64_at(self.header(), seconds) as i64,
            nanoseconds: u32_at(self.header(), nanoseconds),
        }
    }

    /// The workflow id.
    pub fn workflow_id(&self) -> &str {
        checked(self.text_at(0))
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        checked(self.text_at(8))
    }

    /// The lifecycle status.
    pub fn status(&self) -> WorkflowStatus {
        self.status
    }

    /// The input, as JSON text.
    pub fn input(&self) -> Option<&str> {
        checked(self.json_at(16))
    }

    /// The input decoded into `T`; `None` when there is none.
    pub fn input_value<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.input().map(serde_json::from_str).transpose()
    }

    /// The result, as JSON text, once completed.
    pub fn result(&self) -> Option<&str> {
        checked(self.json_at(24))
    }

    /// The result decoded into `T`; `None` when there is none.
    pub fn result_value<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result().map(serde_json::from_str).transpose()
    }

    /// The error text; empty unless failed.
    pub fn error(&self) -> &str {
        checked(self.text_at(32))
    }

    /// When the workflow was created.
    pub fn created_at(&self) -> Timestamp {
        self.timestamp_at(40, 56)
    }

    /// When the state last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.timestamp_at(48, 60)
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = EventView<'_>> + ExactSizeIterator {
        let table = &self.packed[HEADER_BYTES..HEADER_BYTES + self.events * EVENT_BYTES];
        let text = self.text();
        table
            .as_chunks::<EVENT_BYTES>()
            .0
            .iter()
            .map(move |event| EventView { text, event })
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
            workflow_id: self.text_at(0)?.to_owned(),
            run_id: self.text_at(8)?.to_owned(),
            status: self.status,
            input: self.json_at(16)?.map(Json::from_raw),
            result: self.json_at(24)?.map(Json::from_raw),
            error: self.text_at(32)?.to_owned(),
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

    fn text(&self, at: usize) -> Result<&'a str, Broken> {
        text_at(self.text, self.event, at)
    }

    fn json(&self, at: usize) -> Result<Option<&'a str>, Broken> {
        json_at(self.text, self.event, at)
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

    type Span = (u32, u32);

    fn put(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_span(bytes: &mut [u8], at: usize, (start, len): Span) {
        put(bytes, at, start);
        put(bytes, at + 4, len);
    }

    /// One event: activity name `name`, result `result`, the rest empty.
    fn event(kind: u32, name: Span, result: Option<Span>) -> Vec<u8> {
        let mut bytes = vec![0; EVENT_BYTES];
        bytes[..8].copy_from_slice(&3u64.to_le_bytes());
        bytes[8..16].copy_from_slice(&(-5i64).to_le_bytes());
        bytes[16..24].copy_from_slice(&42i64.to_le_bytes());
        put(&mut bytes, 24, 7);
        put(&mut bytes, 28, kind);
        let none = (NONE, 0);
        for (at, span) in [
            (32, name),
            (40, none),
            (48, result.unwrap_or(none)),
            (56, (0, 0)),
            (64, (0, 0)),
            (72, none),
        ] {
            put_span(&mut bytes, at, span);
        }
        bytes
    }

    /// `wf-1` `é` `[1]`: an id, a two-byte character, a JSON result; the
    /// header's fields at these offsets, the text after `events`.
    const WORKFLOW_ID: usize = 0;
    const RUN_ID: usize = 8;
    const ERROR: usize = 32;
    const TEXT: &str = "wf-1é[1]";

    fn packed(events: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = vec![0; HEADER_BYTES];
        put_span(&mut bytes, WORKFLOW_ID, (0, 4));
        put_span(&mut bytes, RUN_ID, (4, 2));
        put_span(&mut bytes, 16, (NONE, 0));
        put_span(&mut bytes, 24, (6, 3));
        put_span(&mut bytes, ERROR, (0, 0));
        bytes[40..48].copy_from_slice(&1i64.to_le_bytes());
        bytes[48..56].copy_from_slice(&(-1i64).to_le_bytes());
        put(&mut bytes, 56, 2);
        put(&mut bytes, 60, 3);
        put(&mut bytes, 64, 1);
        put(&mut bytes, 68, events.len() as u32);
        for event in events {
            bytes.extend_from_slice(event);
        }
        bytes.extend_from_slice(TEXT.as_bytes());
        bytes
    }

    /// Where the text of [`packed`] with `events` events starts.
    fn text_at(events: usize) -> usize {
        HEADER_BYTES + events * EVENT_BYTES
    }

    /// What `Store::load` refuses `packed` with: the view's own check, or
    /// the first broken field of the owned copy.
    fn refused(packed: Vec<u8>) -> String {
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
        let view = StateView::try_from(packed(&[event(5, (4, 2), Some((6, 3)))])).unwrap();
        assert_eq!(view.workflow_id(), "wf-1");
        assert_eq!(view.run_id(), "é");
        assert_eq!(view.status(), WorkflowStatus::Completed);
        assert_eq!((view.input(), view.result()), (None, Some("[1]")));
        assert_eq!(view.result_value::<Vec<u8>>().unwrap(), Some(vec![1]));
        assert_eq!(
            (view.created_at(), view.updated_at()),
            (
                Timestamp {
                    seconds: 1,
                    nanoseconds: 2
                },
                Timestamp {
                    seconds: -1,
                    nanoseconds: 3
                }
            )
        );
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
        let empty = StateView::try_from(packed(&[])).unwrap();
        assert_eq!((empty.history().len(), empty.workflow_id()), (0, "wf-1"));
    }

    #[test]
    fn a_packed_state_that_breaks_its_layout_is_refused_clearly() {
        let broken = |events: &[Vec<u8>], change: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = packed(events);
            change(&mut bytes);
            refused(bytes)
        };
        assert!(broken(&[], &|p| p[text_at(0) + 4] = 0xff).contains("not UTF-8"));
        assert!(
            broken(&[], &|p| put_span(p, WORKFLOW_ID, (8, 5)))
                .contains("outside its text of 9 bytes")
        );
        assert!(broken(&[], &|p| put_span(p, RUN_ID, (5, 1))).contains("across a character"));
        assert!(
            broken(&[], &|p| put_span(p, ERROR, (u32::MAX - 1, u32::MAX)))
                .contains("outside its text")
        );
        assert!(broken(&[], &|p| p.truncate(71)).contains("71 bytes, fewer than its 72-byte"));
        assert!(broken(&[], &|p| put(p, 68, 1)).contains("1 history events in its header"));
        assert!(broken(&[], &|p| put(p, 68, u32::MAX)).contains("more than its"));
        assert!(broken(&[], &|p| put(p, 64, 4)).contains("unknown status 4"));
        assert!(broken(&[event(11, (0, 4), None)], &|_| ()).contains("unknown kind 11"));
        assert!(broken(&[event(5, (NONE, 0), None)], &|_| ()).contains("is none"));
        assert!(broken(&[], &|p| put(p, RUN_ID, NONE)).contains("is none"));
        assert!(broken(&[event(5, (0, 4), Some((2, 9)))], &|_| ()).contains("outside"));
    }

    #[test]
    fn a_view_reads_the_good_fields_of_a_broken_state_and_panics_on_the_broken_one() {
        let mut broken = packed(&[event(11, (0, 4), Some((2, 9)))]);
        put_span(&mut broken, RUN_ID, (5, 1));
        let view = StateView::try_from(broken).unwrap();
        assert_eq!((view.workflow_id(), view.result()), ("wf-1", Some("[1]")));
        let event = view.history().next().unwrap();
        assert_eq!((event.id(), event.activity_name()), (3, "wf-1"));

        let message = panic_of(|| {
            view.run_id();
        });
        assert!(message.contains("the host packed a state with a span (start 5, length 1)"));
        assert!(message.contains("against the state-buffer layout"));
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
