//! A guest's `save` and a later `load` after replay, on arbitrary WIT states:
//! WIT `workflow-state` -> `model::WorkflowState::from` ->
//! `store::validate::encode_for_save` -> `decode_state` -> `to_wit_state`.
//!
//! The state comes from an `Arbitrary` mirror of the WIT record whose
//! JSON-text fields are either arbitrary text or generated JSON (valid, or
//! nested up to and past the 10 000-level bound; numbers of any range;
//! padded with whitespace; or the text `null`), so the fuzzer reaches both
//! outcomes. Properties:
//! * the save fails only with `InvalidArgument` or `TooLarge`;
//! * `InvalidArgument` exactly when the id is bad (empty, over 1024 bytes,
//!   a control character), a timestamp cannot be written (year outside
//!   0..=9999 or nanoseconds of a second or more), an event id is over the Go
//!   int64 maximum, or a JSON-text field is not one JSON value nested at most
//!   10 000 levels (Go's limit; known exactly for generated fields, and
//!   checked for arbitrary text against serde_json's raw-value reader and a
//!   depth count of its own; numbers of any range are JSON);
//! * `TooLarge` only when the encoding is over the limit (a save with no limit
//!   then succeeds with a longer encoding); a success stays within it;
//! * a success keeps exactly the input with its JSON-text fields normalized
//!   (whitespace trimmed, `null` as none; computed here independently), and the
//!   replayed state equals it field for field.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wf_host::fuzzing::{wit, wit_round_trip};
use wf_host::store::StoreError;

/// WIT `workflow-state`, with the same fields.
#[derive(Debug, Clone, PartialEq, Arbitrary)]
struct State {
    workflow_id: Id,
    run_id: String,
    status: Status,
    input: Option<Text>,
    result: Option<Text>,
    error: String,
    history: Vec<Event>,
    created_at: Time,
    updated_at: Time,
}

/// WIT `history-event`.
#[derive(Debug, Clone, PartialEq, Arbitrary)]
struct Event {
    id: EventId,
    kind: Kind,
    timestamp: Time,
    activity_name: String,
    input: Option<Text>,
    result: Option<Text>,
    error: String,
    signal_name: String,
    signal_payload: Option<Text>,
    duration_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Arbitrary)]
enum Id {
    Plain(String),
    /// An id of `len` bytes of `c` (reaches the 1024-byte limit cheaply).
    Long(u16, char),
}

impl Id {
    fn text(&self) -> String {
        match self {
            Id::Plain(s) => s.clone(),
            Id::Long(len, c) => {
                let mut s = String::new();
                while s.len() + c.len_utf8() <= usize::from(*len % 1200) {
                    s.push(*c);
                }
                s
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum EventId {
    Small(u16),
    Any(u64),
}

impl EventId {
    fn value(self) -> u64 {
        match self {
            EventId::Small(n) => n.into(),
            EventId::Any(n) => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum Time {
    /// Any instant, mostly unwritable.
    Any(i64, u32),
    /// An instant within years 0..=9999 (nanoseconds modulo a second).
    InRange(u64, u32),
    /// An instant from 1970 to 2106.
    Recent(u32, u32),
    GoZero,
}

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
const YEAR_0: i64 = -62_167_219_200;
const YEAR_10000: i64 = 253_402_300_800;

impl Time {
    fn value(self) -> wit::Timestamp {
        let (seconds, nanoseconds) = match self {
            Time::Any(s, n) => (s, n),
            Time::InRange(s, n) => {
                let span = (YEAR_10000 - YEAR_0) as u64;
                (YEAR_0 + (s % span) as i64, n % 1_000_000_000)
            }
            Time::Recent(s, n) => (s.into(), n % 1_000_000_000),
            Time::GoZero => (-62_135_596_800, 0),
        };
        wit::Timestamp {
            seconds,
            nanoseconds,
        }
    }

    fn writable(self) -> bool {
        let t = self.value();
        (YEAR_0..YEAR_10000).contains(&t.seconds) && t.nanoseconds < 1_000_000_000
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum Status {
    Running,
    Completed,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum Kind {
    WorkflowStarted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCanceled,
    ActivityStarted,
    ActivityCompleted,
    ActivityFailed,
    SignalReceived,
    TimerFired,
    TimerStarted,
    WorkflowSuspended,
}

/// A JSON-text field's content.
#[derive(Debug, Clone, PartialEq, Arbitrary)]
enum Text {
    /// Arbitrary text: validity is checked against serde_json.
    Raw(String),
    /// Generated valid JSON with whitespace around it.
    Json(Ws, Value, Ws),
    /// `depth` nested arrays (objects if `.1`, around a `1`): valid from 1
    /// (arrays) or 0 (objects) up to 10 000 levels.
    Nested(u16, bool),
}

/// Whitespace JSON allows around a value (and `normalize` trims).
#[derive(Debug, Clone, PartialEq, Arbitrary)]
struct Ws(Vec<WsChar>);

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum WsChar {
    Space,
    Tab,
    Newline,
    Return,
}

impl Ws {
    fn render(&self) -> String {
        self.0
            .iter()
            .map(|c| match c {
                WsChar::Space => ' ',
                WsChar::Tab => '\t',
                WsChar::Newline => '\n',
                WsChar::Return => '\r',
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Arbitrary)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// `{0}.{1}e{2}`: out of the float64 range when large, which is still
    /// JSON (Go's `json.RawMessage` keeps it).
    Float(i32, u16, i16),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Value {
    fn render(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Float(i, f, e) => out.push_str(&format!("{i}.{f}e{e}")),
            Value::Str(s) => quote(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render(out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    quote(k, out);
                    out.push(':');
                    v.render(out);
                }
                out.push('}');
            }
        }
    }

    fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Object(fields) => 1 + fields.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// The deepest nesting the encoder accepts in a JSON-text field (Go's).
const MAX_DEPTH: usize = 10_000;

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Raw(s) => s.clone(),
            Text::Json(lead, v, trail) => {
                let mut out = lead.render();
                v.render(&mut out);
                out.push_str(&trail.render());
                out
            }
            Text::Nested(depth, objects) => {
                let depth = usize::from(*depth);
                if *objects {
                    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
                } else {
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
                }
            }
        }
    }

    fn valid(&self) -> bool {
        match self {
            Text::Raw(s) => serde_json_valid(s) && raw_depth(s) <= MAX_DEPTH,
            Text::Json(_, v, _) => v.depth() <= MAX_DEPTH,
            // Zero arrays are the empty text.
            Text::Nested(depth, objects) => {
                (*objects || *depth > 0) && usize::from(*depth) <= MAX_DEPTH
            }
        }
    }
}

/// Whether `s` is one JSON value: serde_json's raw-value reader checks the
/// syntax without reading numbers or decoding escapes (Go keeps a number
/// of any range in a `json.RawMessage` and reads a lone surrogate escape as
/// U+FFFD), and without a depth limit of its own.
fn serde_json_valid(s: &str) -> bool {
    serde_json::from_str::<&serde_json::value::RawValue>(s).is_ok()
}

/// How deep arrays and objects nest in `s` (valid JSON): brackets outside
/// strings, counted.
fn raw_depth(s: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for c in s.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (true, false, _) => {}
            (false, _, '"') => in_string = true,
            (false, _, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What a store keeps of a JSON-text field: whitespace trimmed, `null` as none.
fn normalized(text: &Option<Text>) -> Option<String> {
    let text = text.as_ref()?.render();
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    (trimmed != "null").then(|| trimmed.to_owned())
}

fn to_wit(s: &State) -> wit::WorkflowState {
    wit::WorkflowState {
        workflow_id: s.workflow_id.text(),
        run_id: s.run_id.clone(),
        status: match s.status {
            Status::Running => wit::WorkflowStatus::Running,
            Status::Completed => wit::WorkflowStatus::Completed,
            Status::Failed => wit::WorkflowStatus::Failed,
            Status::Canceled => wit::WorkflowStatus::Canceled,
        },
        input: s.input.as_ref().map(Text::render),
        result: s.result.as_ref().map(Text::render),
        error: s.error.clone(),
        history: s.history.iter().map(event_to_wit).collect(),
        created_at: s.created_at.value(),
        updated_at: s.updated_at.value(),
    }
}

fn event_to_wit(e: &Event) -> wit::HistoryEvent {
    wit::HistoryEvent {
        id: e.id.value(),
        kind: match e.kind {
            Kind::WorkflowStarted => wit::EventType::WorkflowStarted,
            Kind::WorkflowCompleted => wit::EventType::WorkflowCompleted,
            Kind::WorkflowFailed => wit::EventType::WorkflowFailed,
            Kind::WorkflowCanceled => wit::EventType::WorkflowCanceled,
            Kind::ActivityStarted => wit::EventType::ActivityStarted,
            Kind::ActivityCompleted => wit::EventType::ActivityCompleted,
            Kind::ActivityFailed => wit::EventType::ActivityFailed,
            Kind::SignalReceived => wit::EventType::SignalReceived,
            Kind::TimerFired => wit::EventType::TimerFired,
            Kind::TimerStarted => wit::EventType::TimerStarted,
            Kind::WorkflowSuspended => wit::EventType::WorkflowSuspended,
        },
        timestamp: e.timestamp.value(),
        activity_name: e.activity_name.clone(),
        input: e.input.as_ref().map(Text::render),
        result: e.result.as_ref().map(Text::render),
        error: e.error.clone(),
        signal_name: e.signal_name.clone(),
        signal_payload: e.signal_payload.as_ref().map(Text::render),
        duration_ns: e.duration_ns,
    }
}

/// A WIT state as comparable plain data (the bindgen types have no `PartialEq`).
#[derive(Debug, PartialEq)]
struct Plain {
    workflow_id: String,
    run_id: String,
    status: String,
    input: Option<String>,
    result: Option<String>,
    error: String,
    history: Vec<PlainEvent>,
    created_at: (i64, u32),
    updated_at: (i64, u32),
}

#[derive(Debug, PartialEq)]
struct PlainEvent {
    id: u64,
    kind: String,
    timestamp: (i64, u32),
    activity_name: String,
    input: Option<String>,
    result: Option<String>,
    error: String,
    signal_name: String,
    signal_payload: Option<String>,
    duration_ns: i64,
}

fn time(t: &wit::Timestamp) -> (i64, u32) {
    (t.seconds, t.nanoseconds)
}

fn plain(s: &wit::WorkflowState) -> Plain {
    Plain {
        workflow_id: s.workflow_id.clone(),
        run_id: s.run_id.clone(),
        status: format!("{:?}", s.status),
        input: s.input.clone(),
        result: s.result.clone(),
        error: s.error.clone(),
        history: s
            .history
            .iter()
            .map(|e| PlainEvent {
                id: e.id,
                kind: format!("{:?}", e.kind),
                timestamp: time(&e.timestamp),
                activity_name: e.activity_name.clone(),
                input: e.input.clone(),
                result: e.result.clone(),
                error: e.error.clone(),
                signal_name: e.signal_name.clone(),
                signal_payload: e.signal_payload.clone(),
                duration_ns: e.duration_ns,
            })
            .collect(),
        created_at: time(&s.created_at),
        updated_at: time(&s.updated_at),
    }
}

/// What the store should keep of `s`: the WIT state with normalized JSON text.
fn expected(s: &State) -> Plain {
    let mut p = plain(&to_wit(s));
    p.input = normalized(&s.input);
    p.result = normalized(&s.result);
    for (pe, e) in p.history.iter_mut().zip(&s.history) {
        pe.input = normalized(&e.input);
        pe.result = normalized(&e.result);
        pe.signal_payload = normalized(&e.signal_payload);
    }
    p
}

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 1024 && !id.chars().any(char::is_control)
}

/// Whether the save should be refused as an invalid argument.
fn invalid(s: &State) -> bool {
    let texts_ok =
        |fields: &[&Option<Text>]| fields.iter().all(|t| t.as_ref().is_none_or(Text::valid));
    !id_ok(&s.workflow_id.text())
        || !s.created_at.writable()
        || !s.updated_at.writable()
        || !texts_ok(&[&s.input, &s.result])
        || s.history.iter().any(|e| {
            e.id.value() > i64::MAX as u64
                || !e.timestamp.writable()
                || !texts_ok(&[&e.input, &e.result, &e.signal_payload])
        })
}

/// One run: the state and the save's value limit.
#[derive(Debug, Arbitrary)]
struct Input {
    state: State,
    /// Mostly none (the default 1 MiB); else small enough to be hit.
    limit: Option<u16>,
}

fuzz_target!(|input: Input| {
    let state = input.state;
    let limit = input.limit.map_or(1024 * 1024, usize::from);
    let invalid = invalid(&state);
    match wit_round_trip(to_wit(&state), limit) {
        Err(StoreError::InvalidArgument(message)) => {
            assert!(invalid, "refused a valid state: {message}\n{state:?}");
        }
        Err(StoreError::TooLarge(message)) => {
            assert!(!invalid, "an invalid state is TooLarge: {message}");
            let unlimited = wit_round_trip(to_wit(&state), usize::MAX)
                .expect("the same state saves without a limit");
            assert!(unlimited.encoded.len() > limit, "{message}");
        }
        Err(other) => panic!("a save fails only as InvalidArgument or TooLarge: {other:?}"),
        Ok(trip) => {
            assert!(!invalid, "accepted an invalid state: {state:?}");
            assert!(trip.encoded.len() <= limit);
            let want = expected(&state);
            assert_eq!(
                plain(&trip.saved),
                want,
                "the saved state is the normalized input"
            );
            let replayed = trip.replayed.unwrap_or_else(|e| {
                panic!(
                    "a saved state does not replay: {e}\n{}",
                    String::from_utf8_lossy(&trip.encoded)
                )
            });
            assert_eq!(plain(&replayed), want, "replay gives back the saved state");
        }
    }
});
