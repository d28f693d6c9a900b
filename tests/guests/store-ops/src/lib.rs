//! Test guest: runs a script of store operations given as its input and
//! returns each operation's outcome, so tests can reach every store call and
//! every `store-error` case from inside a real guest.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wf_guest::{
    Context, HistoryEvent, Json, ListFilter, StateView, StoreError, Version, WorkflowState,
    WorkflowStatus,
};

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// Save `state`; `input_raw`/`result_raw` replace its json fields with
    /// unchecked text; `input_bytes` makes the input a JSON string that long.
    Save {
        state: WorkflowState,
        #[serde(default)]
        input_raw: Option<String>,
        #[serde(default)]
        result_raw: Option<String>,
        #[serde(default)]
        input_bytes: Option<usize>,
    },
    /// As `Save`, only if the id is at `expected_version` (absent or null:
    /// unconditionally); the outcome is the new version.
    SaveVersioned {
        state: WorkflowState,
        #[serde(default)]
        expected_version: Option<Version>,
        #[serde(default)]
        input_raw: Option<String>,
        #[serde(default)]
        result_raw: Option<String>,
        #[serde(default)]
        input_bytes: Option<usize>,
    },
    Load {
        id: String,
    },
    /// The state under `id` read through `load_view`, every field by its
    /// own accessor (not `to_state`), in `load`'s shape.
    View {
        id: String,
    },
    /// The state under `id` and its version: `{"state": ..., "version": n}`.
    LoadVersioned {
        id: String,
    },
    List {
        #[serde(default)]
        status: Option<WorkflowStatus>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        prefix: Option<String>,
    },
    Delete {
        id: String,
    },
    /// Append an event to this workflow's own state through `Context::update_state`.
    Record {
        activity: String,
    },
    /// End the workflow with `Err(message)`.
    Fail {
        message: String,
    },
    /// Panic: the guest traps.
    Trap,
    /// Spin forever: the host's deadline must stop it.
    Spin,
    /// Allocate and touch this many MiB.
    Allocate {
        mib: usize,
    },
    /// Put a string of this many bytes into the outcomes (and so the result).
    Echo {
        bytes: usize,
    },
    /// Load `id` this many times; the outcome is how many were found (for
    /// measuring the per-call cost without returning the states).
    LoadMany {
        id: String,
        times: usize,
    },
    /// The state under `id` through the earlier `load-packed` (a record of
    /// two lists), as modules built against it call it: its text fields,
    /// status, creation second and events' results, cut out of its text.
    LoadPackedRecord {
        id: String,
    },
    /// Load `id` through `load-packed` and save it unchanged but for its id
    /// (`as_id`, appended to its text) through `save-packed`.
    ResavePackedRecord {
        id: String,
        as_id: String,
    },
    /// As `load_many`, through `load_view`, reading the status and the
    /// length of the last event's result (what a step that checks its
    /// progress reads).
    ViewMany {
        id: String,
        times: usize,
    },
    /// Save `state` this many times.
    SaveMany {
        state: WorkflowState,
        times: usize,
    },
    /// Save a state of workflow `id` with this many history events.
    SaveHistory {
        id: String,
        events: usize,
    },
    /// Save a state whose id is not UTF-8: the host must refuse to lift it.
    SaveNonUtf8Id,
    /// Save `WorkflowState::new(id)` (a record, as the SDK makes one); the
    /// outcome is the status it was saved with.
    NewRecord {
        id: String,
    },
    /// Take one from the integer result of record `id` with a conditional
    /// save, retrying on `conflict` up to `attempts` times; the outcome is
    /// `{"left": n, "attempts": a}`.
    Decrement {
        id: String,
        attempts: usize,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Ok(Value),
    Err { kind: String, message: String },
}

/// The earlier packed form's calls and types, as a module built against
/// them imports them (the SDK uses the state buffer).
mod earlier {
    pub use wf_guest::__private::bindings::wf::workflow::store::{load_packed, save_packed};
    pub use wf_guest::__private::bindings::wf::workflow::types::{PackedState, Span};
}

/// A `packed-state` record's fields, each cut out of its text by its span.
fn packed_record_json(p: &earlier::PackedState) -> Value {
    let text = String::from_utf8_lossy(&p.text);
    let of = |start: u32, len: u32| {
        text.get(start as usize..(start as usize + len as usize))
            .map(str::to_owned)
    };
    let span = |s: &earlier::Span| of(s.start, s.len);
    let results: Vec<Option<String>> = p
        .history
        .chunks(80)
        .map(|event| {
            let u32_at = |at: usize| u32::from_le_bytes(event[at..at + 4].try_into().unwrap());
            (u32_at(48) != u32::MAX)
                .then(|| of(u32_at(48), u32_at(52)))
                .flatten()
        })
        .collect();
    json!({
        "workflow_id": span(&p.workflow_id),
        "run_id": span(&p.run_id),
        "status": WorkflowStatus::from(p.status),
        "input": p.input.as_ref().map(span),
        "result": p.result.as_ref().map(span),
        "error": span(&p.error),
        "created_at": p.created_at.seconds,
        "event_results": results,
    })
}

/// The owned state, read field by field through the view's accessors.
fn read_view(v: &StateView) -> WorkflowState {
    WorkflowState {
        workflow_id: v.workflow_id().to_owned(),
        run_id: v.run_id().to_owned(),
        status: v.status(),
        input: v.input().map(Json::from_raw),
        result: v.result().map(Json::from_raw),
        error: v.error().to_owned(),
        history: v
            .history()
            .map(|e| HistoryEvent {
                id: e.id(),
                kind: e.kind(),
                timestamp: e.timestamp(),
                activity_name: e.activity_name().to_owned(),
                input: e.input().map(Json::from_raw),
                result: e.result().map(Json::from_raw),
                error: e.error().to_owned(),
                signal_name: e.signal_name().to_owned(),
                signal_payload: e.signal_payload().map(Json::from_raw),
                duration_ns: e.duration_ns(),
            })
            .collect(),
        created_at: v.created_at(),
        updated_at: v.updated_at(),
    }
}

fn outcome<T: Serialize>(result: Result<T, StoreError>) -> Outcome {
    match result {
        Ok(value) => Outcome::Ok(serde_json::to_value(value).expect("store results encode")),
        Err(e) => Outcome::Err {
            kind: e.kind().to_string(),
            message: e.message().to_string(),
        },
    }
}

fn run(ctx: &Context, script: Vec<Op>) -> Result<Vec<Outcome>, String> {
    let store = ctx.store();
    let mut outcomes = Vec::new();
    for op in script {
        let done = match op {
            Op::Save {
                state,
                input_raw,
                result_raw,
                input_bytes,
            } => outcome(store.save(&with_raw(state, input_raw, result_raw, input_bytes))),
            Op::SaveVersioned {
                state,
                expected_version,
                input_raw,
                result_raw,
                input_bytes,
            } => outcome(store.save_versioned(
                &with_raw(state, input_raw, result_raw, input_bytes),
                expected_version,
            )),
            Op::Load { id } => outcome(store.load(&id)),
            Op::View { id } => outcome(store.load_view(&id).map(|v| v.as_ref().map(read_view))),
            Op::LoadPackedRecord { id } => outcome(
                earlier::load_packed(&id)
                    .map(|found| found.as_ref().map(packed_record_json))
                    .map_err(StoreError::from),
            ),
            Op::ResavePackedRecord { id, as_id } => outcome(
                earlier::load_packed(&id)
                    .and_then(|found| {
                        let mut record = found.expect("resave_packed_record: the state exists");
                        record.workflow_id = earlier::Span {
                            start: record.text.len() as u32,
                            len: as_id.len() as u32,
                        };
                        record.text.extend_from_slice(as_id.as_bytes());
                        earlier::save_packed(&record, None)
                    })
                    .map_err(StoreError::from),
            ),
            Op::LoadVersioned { id } => outcome(store.load_versioned(&id).map(|found| {
                found.map(|found| json!({"state": found.state, "version": found.version}))
            })),
            Op::List {
                status,
                limit,
                after,
                prefix,
            } => {
                let filter = ListFilter {
                    status,
                    limit,
                    after,
                    prefix,
                };
                outcome(store.list(&filter).map(|states| {
                    states
                        .into_iter()
                        .map(|s| s.workflow_id)
                        .collect::<Vec<_>>()
                }))
            }
            Op::Delete { id } => outcome(store.delete(&id)),
            Op::Record { activity } => outcome(
                ctx.update_state(|state| {
                    state
                        .push_event(wf_guest::EventType::ActivityCompleted)
                        .activity_name = activity.clone();
                })
                .map(|s| s.history.len()),
            ),
            Op::Fail { message } => return Err(message),
            Op::Trap => panic!("store-ops: trap requested"),
            Op::Spin => spin(),
            Op::Allocate { mib } => {
                let block = vec![1u8; mib * 1024 * 1024];
                Outcome::Ok(json!(block.iter().map(|b| *b as usize).sum::<usize>()))
            }
            Op::Echo { bytes } => Outcome::Ok(json!("x".repeat(bytes))),
            Op::LoadMany { id, times } => outcome((0..times).try_fold(0usize, |found, _| {
                Ok(found + usize::from(store.load(&id)?.is_some()))
            })),
            Op::ViewMany { id, times } => outcome((0..times).try_fold(0usize, |found, _| {
                let view = store.load_view(&id)?;
                Ok(found
                    + view.map_or(0, |v| {
                        usize::from(v.status() == WorkflowStatus::Running)
                            + v.history()
                                .last()
                                .and_then(|e| e.result())
                                .map_or(0, str::len)
                    }))
            })),
            Op::SaveMany { state, times } => outcome(
                (0..times)
                    .try_for_each(|_| store.save(&state))
                    .map(|()| times),
            ),
            Op::SaveHistory { id, events } => {
                let mut state = WorkflowState::new(id);
                for _ in 0..events {
                    state.push_event(wf_guest::EventType::ActivityCompleted);
                }
                outcome(store.save(&state))
            }
            Op::SaveNonUtf8Id => outcome(store.save(&WorkflowState::new(non_utf8_id()))),
            Op::NewRecord { id } => {
                let record = WorkflowState::new(id);
                outcome(store.save(&record).map(|()| record.status))
            }
            Op::Decrement { id, attempts } => outcome(decrement(store, &id, attempts)),
        };
        outcomes.push(done);
    }
    Ok(outcomes)
}

/// `state` with `input_raw`/`result_raw` as its json fields' unchecked text,
/// and with `input_bytes`, an input that is a JSON string that long.
fn with_raw(
    mut state: WorkflowState,
    input_raw: Option<String>,
    result_raw: Option<String>,
    input_bytes: Option<usize>,
) -> WorkflowState {
    if let Some(raw) = input_raw {
        state.input = Some(Json::from_raw(raw));
    }
    if let Some(raw) = result_raw {
        state.result = Some(Json::from_raw(raw));
    }
    if let Some(n) = input_bytes {
        state.input = Some(Json::from_raw(format!(
            "\"{}\"",
            "x".repeat(n.saturating_sub(2))
        )));
    }
    state
}

/// Takes one from record `id` with conditional saves, as the SDK documents
/// for shared records: load with the version, save expecting it, retry on
/// `conflict`.
fn decrement(store: &wf_guest::Store, id: &str, attempts: usize) -> Result<Value, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(found) = store.load_versioned(id)? else {
            return Err(StoreError::InvalidArgument(format!("no record {id}")));
        };
        let mut record = found.state;
        let left: i64 = record
            .result_as()
            .ok()
            .flatten()
            .ok_or_else(|| StoreError::InvalidArgument(format!("{id} holds no count")))?;
        record
            .set_result(&(left - 1))
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        match store.save_versioned(&record, Some(found.version)) {
            Ok(_) => return Ok(json!({"left": left - 1, "attempts": attempt})),
            Err(StoreError::Conflict(_)) if attempt < attempts => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A `String` holding bytes that are not UTF-8, which safe Rust cannot make:
/// other languages' guests can pass such bytes, and the host must refuse them.
#[allow(unsafe_code, reason = "building the invalid String is the point")]
fn non_utf8_id() -> String {
    // SAFETY: not upheld on purpose. The string is only copied into the
    // canonical ABI's string lowering (a byte copy) and never inspected.
    unsafe { String::from_utf8_unchecked(vec![b'i', b'd', 0xff, 0xfe]) }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

wf_guest::export!(run);
