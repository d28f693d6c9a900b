//! A guest's `save-buffer` on arbitrary state buffers: the host's
//! unpacking (`from_state_buffer`), then packing the result again as
//! `load-buffer` does (`to_state_buffer`).
//!
//! The buffer comes from an `Arbitrary` description whose text is
//! UTF-8 or arbitrary bytes, whose spans land inside the text (often inside
//! a character), anywhere, or at the `none` start, whose status and event
//! kinds are mostly known, whose header may give a wrong number of events,
//! and which may be cut short. Properties:
//! * unpacking never panics, and fails only with `InvalidArgument`;
//! * it fails exactly when the layout is broken, as found independently
//!   here: shorter than the 72-byte header or than the events it counts,
//!   an unknown status or kind, text not UTF-8, a span outside the text or
//!   across a character (start plus length overflowing included), the
//!   `none` start for a string field;
//! * a success gives every field as the text of its span, every number as
//!   written, a `none` JSON field as absent;
//! * packing that state and unpacking it again gives the same state.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wf_host::fuzzing::{pack_state, unpack_state, wit};
use wf_host::model::WorkflowState;

const NONE: u32 = u32::MAX;
const HEADER_BYTES: usize = 72;
const EVENT_BYTES: usize = 80;

/// The WIT `workflow-status` cases in their declared order.
const STATUSES: [wit::WorkflowStatus; 4] = [
    wit::WorkflowStatus::Running,
    wit::WorkflowStatus::Completed,
    wit::WorkflowStatus::Failed,
    wit::WorkflowStatus::Canceled,
];

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
    /// The status case number, modulo 5: 4 is unknown.
    status: u8,
    input: Option<SpanGen>,
    result: Option<SpanGen>,
    error: SpanGen,
    events: Vec<Event>,
    /// A number of events for the header other than the table's.
    count: Option<u32>,
    /// A length to cut the buffer to, when shorter.
    cut: Option<u16>,
    created_at: (i64, u32),
    updated_at: (i64, u32),
}

fn put(bytes: &mut [u8], at: usize, le: &[u8]) {
    bytes[at..at + le.len()].copy_from_slice(le);
}

fn put_span(bytes: &mut [u8], at: usize, (start, len): (u32, u32)) {
    put(bytes, at, &start.to_le_bytes());
    put(bytes, at + 4, &len.to_le_bytes());
}

fn build(input: &Input) -> Vec<u8> {
    let text = match &input.text {
        Text::Utf8(s) => s.as_bytes().to_vec(),
        Text::Bytes(b) => b.clone(),
    };
    let n = text.len();
    let optional = |g: Option<SpanGen>| g.map_or((NONE, 0), |g| g.span(n));
    let mut packed = vec![0; HEADER_BYTES];
    put_span(&mut packed, 0, input.workflow_id.span(n));
    put_span(&mut packed, 8, input.run_id.span(n));
    put_span(&mut packed, 16, optional(input.input));
    put_span(&mut packed, 24, optional(input.result));
    put_span(&mut packed, 32, input.error.span(n));
    put(&mut packed, 40, &input.created_at.0.to_le_bytes());
    put(&mut packed, 48, &input.updated_at.0.to_le_bytes());
    put(&mut packed, 56, &input.created_at.1.to_le_bytes());
    put(&mut packed, 60, &input.updated_at.1.to_le_bytes());
    put(
        &mut packed,
        64,
        &(u32::from(input.status) % 5).to_le_bytes(),
    );
    let count = input.count.unwrap_or(input.events.len() as u32);
    put(&mut packed, 68, &count.to_le_bytes());
    for e in &input.events {
        let mut event = [0; EVENT_BYTES];
        put(&mut event, 0, &e.id.to_le_bytes());
        put(&mut event, 8, &e.seconds.to_le_bytes());
        put(&mut event, 16, &e.duration_ns.to_le_bytes());
        put(&mut event, 24, &e.nanoseconds.to_le_bytes());
        let kind = match e.kind {
            Kind::Known(k) => u32::from(k) % 12,
            Kind::Any(k) => k,
        };
        put(&mut event, 28, &kind.to_le_bytes());
        for (i, field) in e.fields.iter().enumerate() {
            put_span(&mut event, 32 + i * 8, field.span(n));
        }
        packed.extend_from_slice(&event);
    }
    packed.extend_from_slice(&text);
    if let Some(cut) = input.cut {
        packed.truncate(usize::from(cut));
    }
    packed
}

/// What unpacking `p` must give, found without the host's code: `None`
/// when the layout is broken.
fn expected(p: &[u8]) -> Option<WorkflowState> {
    let u32_in =
        |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_in =
        |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    if p.len() < HEADER_BYTES {
        return None;
    }
    let count = u32_in(p, 68) as u64;
    let text_at = HEADER_BYTES as u64 + count * EVENT_BYTES as u64;
    if text_at > p.len() as u64 {
        return None;
    }
    let text_at = text_at as usize;
    let text = std::str::from_utf8(&p[text_at..]).ok()?;
    let field = |start: u32, len: u32| -> Option<String> {
        let start = start as usize;
        let end = start.checked_add(len as usize)?;
        text.get(start..end).map(str::to_owned)
    };
    // A string field: never at the `none` start.
    let text_in = |bytes: &[u8], at: usize| match u32_in(bytes, at) {
        NONE => None,
        start => field(start, u32_in(bytes, at + 4)),
    };
    // A JSON field: absent at the `none` start, else its text.
    let json_in = |bytes: &[u8], at: usize| -> Option<Option<String>> {
        match u32_in(bytes, at) {
            NONE => Some(None),
            start => field(start, u32_in(bytes, at + 4)).map(Some),
        }
    };
    let status = *STATUSES.get(u32_in(p, 64) as usize)?;
    let mut history = Vec::new();
    for e in p[HEADER_BYTES..text_at].chunks(EVENT_BYTES) {
        history.push(wit::HistoryEvent {
            id: u64_in(e, 0),
            kind: *KINDS.get(u32_in(e, 28) as usize)?,
            timestamp: wit::Timestamp {
                seconds: u64_in(e, 8) as i64,
                nanoseconds: u32_in(e, 24),
            },
            activity_name: text_in(e, 32)?,
            input: json_in(e, 40)?,
            result: json_in(e, 48)?,
            error: text_in(e, 56)?,
            signal_name: text_in(e, 64)?,
            signal_payload: json_in(e, 72)?,
            duration_ns: u64_in(e, 16) as i64,
        });
    }
    Some(WorkflowState::from(wit::WorkflowState {
        workflow_id: text_in(p, 0)?,
        run_id: text_in(p, 8)?,
        status,
        input: json_in(p, 16)?,
        result: json_in(p, 24)?,
        error: text_in(p, 32)?,
        history,
        created_at: wit::Timestamp {
            seconds: u64_in(p, 40) as i64,
            nanoseconds: u32_in(p, 56),
        },
        updated_at: wit::Timestamp {
            seconds: u64_in(p, 48) as i64,
            nanoseconds: u32_in(p, 60),
        },
    }))
}

fuzz_target!(|input: Input| {
    let packed = build(&input);
    let expected = expected(&packed);
    match (unpack_state(&packed), expected) {
        (Ok(state), Some(expected)) => {
            assert_eq!(state, expected);
            let again = pack_state(&state).expect("a state unpacked from a span-able text packs");
            assert_eq!(unpack_state(&again).expect("a packed state unpacks"), state);
        }
        (Err(wit::StoreError::InvalidArgument(_)), None) => {}
        (got, expected) => panic!("unpacked {got:?}, expected {expected:?}"),
    }
});
