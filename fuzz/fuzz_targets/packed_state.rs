//! A guest's `save-packed` on arbitrary packed states: the host's unpacking
//! (`from_packed_state`), then packing the result again as `load-packed`
//! does (`to_packed_state`).
//!
//! The packed state comes from an `Arbitrary` description whose text is
//! UTF-8 or arbitrary bytes, whose spans land inside the text (often inside
//! a character), anywhere, or at the `none` start, whose event kinds are
//! mostly known, and whose history may end in a partial event. Properties:
//! * unpacking never panics, and fails only with `InvalidArgument`;
//! * it fails exactly when the layout is broken, as found independently
//!   here: text not UTF-8, a span outside the text or across a character
//!   (start plus length overflowing included), a history that is not whole
//!   80-byte events, an unknown kind, the `none` start for a string field;
//! * a success gives every field as the text of its span, every number as
//!   written, a `none` JSON field as absent;
//! * packing that state and unpacking it again gives the same state.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wf_host::fuzzing::{pack_state, unpack_state, wit};
use wf_host::model::WorkflowState;

const NONE: u32 = u32::MAX;
const EVENT_BYTES: usize = 80;

/// The WIT `event-type` cases in their declared order.
const KINDS: [wit::EventType; 11] = [
    wit::EventType::WorkflowStarted,
    wit::EventType::WorkflowCompleted,
    wit::EventType::WorkflowFailed,
    wit::EventType::WorkflowCanceled,
    wit::EventType::ActivityStarted,
    wit::EventType::ActivityCompleted,
    wit::EventType::ActivityFailed,
    wit::EventType::SignalReceived,
    wit::EventType::TimerFired,
    wit::EventType::TimerStarted,
    wit::EventType::WorkflowSuspended,
];

#[derive(Debug, Arbitrary)]
enum Text {
    Utf8(String),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum SpanGen {
    /// A start and length taken modulo the text: inside it, on a character
    /// boundary or not.
    Within(u16, u16),
    /// Any start and length.
    Raw(u32, u32),
    /// The `none` start.
    None,
}

impl SpanGen {
    fn span(self, text_len: usize) -> (u32, u32) {
        match self {
            SpanGen::Within(a, b) => {
                let start = usize::from(a) % (text_len + 1);
                let len = usize::from(b) % (text_len - start + 1);
                (start as u32, len as u32)
            }
            SpanGen::Raw(start, len) => (start, len),
            SpanGen::None => (NONE, 0),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Known(u8),
    Any(u32),
}

#[derive(Debug, Arbitrary)]
struct Event {
    id: u64,
    seconds: i64,
    duration_ns: i64,
    nanoseconds: u32,
    kind: Kind,
    /// Activity name, input, result, error, signal name, signal payload.
    fields: [SpanGen; 6],
}

#[derive(Debug, Arbitrary)]
struct Input {
    text: Text,
    workflow_id: SpanGen,
    run_id: SpanGen,
    status: u8,
    input: Option<SpanGen>,
    result: Option<SpanGen>,
    error: SpanGen,
    events: Vec<Event>,
    /// Bytes of a partial event after the whole ones (modulo 80).
    trailing: u8,
    created_at: (i64, u32),
    updated_at: (i64, u32),
}

fn le(history: &mut Vec<u8>, bytes: &[u8]) {
    history.extend_from_slice(bytes);
}

fn build(input: &Input) -> wit::PackedState {
    let text = match &input.text {
        Text::Utf8(s) => s.as_bytes().to_vec(),
        Text::Bytes(b) => b.clone(),
    };
    let n = text.len();
    let span = |g: SpanGen| {
        let (start, len) = g.span(n);
        wit::Span { start, len }
    };
    let mut history = Vec::new();
    for e in &input.events {
        le(&mut history, &e.id.to_le_bytes());
        le(&mut history, &e.seconds.to_le_bytes());
        le(&mut history, &e.duration_ns.to_le_bytes());
        le(&mut history, &e.nanoseconds.to_le_bytes());
        let kind = match e.kind {
            Kind::Known(k) => u32::from(k) % 12,
            Kind::Any(k) => k,
        };
        le(&mut history, &kind.to_le_bytes());
        for field in e.fields {
            let (start, len) = field.span(n);
            le(&mut history, &start.to_le_bytes());
            le(&mut history, &len.to_le_bytes());
        }
    }
    history.extend(std::iter::repeat_n(
        7u8,
        usize::from(input.trailing) % EVENT_BYTES,
    ));
    let statuses = [
        wit::WorkflowStatus::Running,
        wit::WorkflowStatus::Completed,
        wit::WorkflowStatus::Failed,
        wit::WorkflowStatus::Canceled,
    ];
    let time = |(seconds, nanoseconds): (i64, u32)| wit::Timestamp {
        seconds,
        nanoseconds,
    };
    wit::PackedState {
        text,
        workflow_id: span(input.workflow_id),
        run_id: span(input.run_id),
        status: statuses[usize::from(input.status) % 4],
        input: input.input.map(span),
        result: input.result.map(span),
        error: span(input.error),
        history,
        created_at: time(input.created_at),
        updated_at: time(input.updated_at),
    }
}

/// What unpacking `p` must give, found without the host's code: `None`
/// when the layout is broken.
fn expected(p: &wit::PackedState) -> Option<WorkflowState> {
    let text = std::str::from_utf8(&p.text).ok()?;
    let field = |start: u32, len: u32| -> Option<String> {
        let start = start as usize;
        let end = start.checked_add(len as usize)?;
        text.get(start..end).map(str::to_owned)
    };
    // A JSON field: absent at the `none` start, else its text.
    let json = |start: u32, len: u32| -> Option<Option<String>> {
        if start == NONE {
            Some(None)
        } else {
            field(start, len).map(Some)
        }
    };
    if p.history.len() % EVENT_BYTES != 0 {
        return None;
    }
    let mut history = Vec::new();
    for e in p.history.chunks(EVENT_BYTES) {
        let u32_at = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().unwrap());
        let text_at = |at: usize| {
            let start = u32_at(at);
            if start == NONE {
                None
            } else {
                field(start, u32_at(at + 4))
            }
        };
        history.push(wit::HistoryEvent {
            id: u64_at(0),
            kind: *KINDS.get(u32_at(28) as usize)?,
            timestamp: wit::Timestamp {
                seconds: u64_at(8) as i64,
                nanoseconds: u32_at(24),
            },
            activity_name: text_at(32)?,
            input: json(u32_at(40), u32_at(44))?,
            result: json(u32_at(48), u32_at(52))?,
            error: text_at(56)?,
            signal_name: text_at(64)?,
            signal_payload: json(u32_at(72), u32_at(76))?,
            duration_ns: u64_at(16) as i64,
        });
    }
    let optional = |s: Option<wit::Span>| match s {
        None => Some(None),
        Some(s) => field(s.start, s.len).map(Some),
    };
    Some(WorkflowState::from(wit::WorkflowState {
        workflow_id: field(p.workflow_id.start, p.workflow_id.len)?,
        run_id: field(p.run_id.start, p.run_id.len)?,
        status: p.status,
        input: optional(p.input)?,
        result: optional(p.result)?,
        error: field(p.error.start, p.error.len)?,
        history,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }))
}

fuzz_target!(|input: Input| {
    let packed = build(&input);
    let expected = expected(&packed);
    match (unpack_state(packed), expected) {
        (Ok(state), Some(expected)) => {
            assert_eq!(state, expected);
            let again = pack_state(&state).expect("a state unpacked from a span-able text packs");
            assert_eq!(unpack_state(again).expect("a packed state unpacks"), state);
        }
        (Err(wit::StoreError::InvalidArgument(_)), None) => {}
        (got, expected) => panic!("unpacked {got:?}, expected {expected:?}"),
    }
});
