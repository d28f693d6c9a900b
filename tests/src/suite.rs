//! The guest suite: what every guest language must do through the real host,
//! written once and run for Rust, Python and JavaScript on both backends,
//! each case a test of its own ([`guest_suite!`](crate::guest_suite)).
//!
//! A language brings its `store-ops` test guest (a script of store calls as
//! input, each call's outcome as the result), its `pipeline` and `ledger`
//! examples, and what its failures read like ([`Language`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wf_host::model::{EventType, WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, MemoryStore, StoreError, Version, Versioned, WorkflowStore};
use wf_host::{ExecuteError, Host, HostConfig, Module};

use crate::{err_kind, kinds, result_json, script, stored_ids, wire_state};

/// The cases of waiting workflows, run in the same suite.
pub use crate::waits::*;

/// One guest language: its components and how its failures read.
#[derive(Debug, Clone, Copy)]
pub struct Language {
    /// `rust`, `python` or `js`.
    pub name: &'static str,
    /// The store-ops test guest.
    pub store_ops: &'static str,
    /// The `pipeline` example.
    pub pipeline: &'static str,
    /// The `ledger` example.
    pub ledger: &'static str,
    /// The `waits` test guest (signals, timers, retries, queries).
    pub waits: &'static str,
    /// The `approval` example.
    pub approval: &'static str,
    /// How the error of a workflow whose guest threw (Rust: panicked)
    /// starts: the exception's type and message.
    pub thrown_starts_with: &'static str,
    /// What else it says: where it was thrown, or the panic message.
    pub thrown_contains: &'static str,
    /// The memory limit its hosts get in the tests, in MiB. 64 is the
    /// host's default; a JavaScript guest needs more to `JSON.stringify` a
    /// long text: measured here, a 700 KB string needs 80 MiB and a 2 MiB one
    /// (the value-limit case's result) 160 MiB, where concatenating the same
    /// text fits in 64 MiB.
    pub memory_limit_mib: usize,
    /// The memory limit of the out-of-memory case, in MiB.
    pub small_memory_mib: usize,
    /// What the workflow's error says when the guest runs out of memory (a
    /// refused grow and the trap after it, a Python `MemoryError`, a
    /// JavaScript "out of memory" exception).
    pub out_of_memory: &'static [&'static str],
    /// The deadline of the runaway-loop case (a large runtime starts slower).
    pub deadline: Duration,
    /// Where its hosts cache compiled modules: a 12-18 MB Python or
    /// JavaScript component takes seconds to compile, and every case has a
    /// host of its own. `None`: compile each time.
    pub module_cache: Option<&'static str>,
}

/// Rust guests (wit-bindgen, the `wf-guest` SDK).
pub const RUST: Language = Language {
    name: "rust",
    store_ops: wf_test_artifacts::STORE_OPS,
    pipeline: wf_test_artifacts::PIPELINE,
    ledger: wf_test_artifacts::LEDGER,
    waits: wf_test_artifacts::WAITS,
    approval: wf_test_artifacts::APPROVAL,
    thrown_starts_with: "the workflow trapped",
    thrown_contains: "trap requested",
    memory_limit_mib: 64,
    small_memory_mib: 16,
    out_of_memory: &["memory limit reached", "trapped"],
    deadline: Duration::from_millis(300),
    module_cache: None,
};

impl Language {
    /// The host configuration of its tests.
    pub fn config(&self) -> HostConfig {
        HostConfig::default()
            .memory_limit_bytes(self.memory_limit_mib * 1024 * 1024)
            .cache_dir(self.module_cache.map(Into::into))
    }

    /// Every component of this language the suite runs.
    pub fn guests(&self) -> [&'static str; 5] {
        [
            self.store_ops,
            self.pipeline,
            self.ledger,
            self.waits,
            self.approval,
        ]
    }
}

/// `loaded` (a state a guest saved from [`wire_state`] and read back) with
/// the `updated_at` of the fixture, once checked to be the save's: every
/// SDK's `save` stamps it with the time of the save.
fn as_saved(loaded: &Value) -> Value {
    let fixture = wire_state("");
    let stamped = loaded["updated_at"]["seconds"].as_i64().unwrap_or_default();
    assert!(
        stamped
            > fixture["updated_at"]["seconds"]
                .as_i64()
                .unwrap_or_default(),
        "save stamps updated_at: {loaded}"
    );
    let mut loaded = loaded.clone();
    loaded["updated_at"] = fixture["updated_at"].clone();
    loaded
}

/// Loads the component at `path` into `host`.
pub fn load(host: &Host, path: &str) -> Module {
    host.load_module_file(path)
        .unwrap_or_else(|e| panic!("loading {path}: {e:#}"))
}

/// Generates the guest suite for the [`Language`] `$lang`: a module
/// `memory` and a module `kafka` with one test per case on that backend,
/// and one test per case that needs a host of its own.
#[macro_export]
macro_rules! guest_suite {
    ($lang:expr) => {
        $crate::__guest_suite!($lang;
            pipeline_example_completes_and_records_each_step,
            ledger_loads_updates_and_deletes_entries,
            every_store_call_works_from_a_guest,
            every_field_of_every_event_kind_loads_as_stored,
            every_field_of_every_event_kind_saves_as_given,
            conditional_saves_write_only_over_the_expected_version,
            every_store_error_case_is_reached_from_a_guest_and_writes_nothing,
            a_thrown_exception_fails_that_workflow_and_the_host_serves_on,
            a_returned_error_fails_the_workflow_with_that_error,
            history_the_guest_saves_is_kept_in_the_final_state,
            bad_requests_are_refused_before_anything_is_written,
            a_result_over_the_value_limit_fails_the_workflow_cleanly,
            many_workflows_run_concurrently_on_one_host,
            records_guests_save_are_never_resumed_whatever_their_status,
            a_signal_sent_while_the_workflow_runs_is_delivered_once,
            a_signal_wakes_a_suspended_workflow_and_is_delivered_once,
            a_wait_times_out_at_its_due_time_and_later_signals_are_refused,
            sleep_suspends_the_workflow_and_fires_once,
            a_wait_for_several_signals_takes_the_first_to_arrive,
            signals_are_delivered_in_the_order_they_arrived,
            an_activity_that_fails_twice_then_succeeds_records_three_attempts,
            a_non_retryable_error_fails_the_activity_at_once,
            a_query_answers_from_a_suspended_workflow_without_waking_it_or_writing,
            a_timer_survives_a_host_restart_and_fires_at_its_due_time,
            a_signal_sent_while_the_host_is_down_is_delivered_once_after_it_restarts,
            a_suspended_workflow_is_canceled_without_an_instance,
            a_replay_after_a_crash_does_not_repeat_recorded_attempts,
            a_woken_workflow_replays_its_activities_without_running_them_again,
            the_approval_example_completes_on_a_signal_and_answers_its_query;
            a_runaway_loop_hits_the_deadline_and_the_host_serves_on,
            running_out_of_memory_fails_that_workflow_and_the_host_serves_on,
            every_backend_error_case_reaches_the_guest_as_its_store_error,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __guest_suite {
    ($lang:expr; $($case:ident),+; $($alone:ident),+ $(,)?) => {
        mod memory {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let lang = $lang;
                    let host = $crate::memory_host(lang.config());
                    $crate::suite::$case(&host, &lang).await;
                }
            )+
        }
        mod kafka {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let lang = $lang;
                    let backend = $crate::Backend::kafka(lang.config()).await;
                    $crate::suite::$case(&backend.host, &lang).await;
                }
            )+
        }
        $(
            #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $alone() {
                $crate::suite::$alone(&$lang).await;
            }
        )+
    };
}

/// The pipeline example runs its three steps and records each.
pub async fn pipeline_example_completes_and_records_each_step(host: &Host, lang: &Language) {
    let module = load(host, lang.pipeline);
    let state = host
        .run(&module, "pipeline-001", r#""start processing""#)
        .await
        .unwrap();
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(
        state.result.as_deref(),
        Some(r#""completed: start processing""#)
    );
    use EventType::*;
    assert_eq!(
        kinds(&state),
        [
            WorkflowStarted,
            ActivityCompleted,
            ActivityCompleted,
            ActivityCompleted,
            WorkflowCompleted
        ]
    );
    let steps: Vec<_> = state.history[1..4]
        .iter()
        .map(|e| e.activity_name.as_str())
        .collect();
    assert_eq!(steps, ["validate", "process", "finalize"]);
    assert_eq!(
        state.history[2].result.as_deref(),
        Some(r#""process: start processing""#)
    );
    let ids: Vec<u64> = state.history.iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    // What the store holds is what execute returned.
    let stored = host.store().load("pipeline-001").await.unwrap().unwrap();
    assert_eq!(*stored, state);
}

/// The ledger example loads, updates and deletes records of its own.
pub async fn ledger_loads_updates_and_deletes_entries(host: &Host, lang: &Language) {
    let module = load(host, lang.ledger);
    let post = |amounts: Value| {
        json!({"action": "post", "account": "alice", "amounts": amounts}).to_string()
    };

    let first = host
        .run(&module, "ledger-run-1", &post(json!([10, -3])))
        .await
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Completed, "{first:?}");
    assert_eq!(
        result_json(&first),
        json!({"account": "alice", "balance": 7, "entries": 2, "deleted": 0})
    );
    let second = host
        .run(&module, "ledger-run-2", &post(json!([5])))
        .await
        .unwrap();
    assert_eq!(result_json(&second)["balance"], 12);
    let balance = host.store().load("ledger/alice").await.unwrap().unwrap();
    assert_eq!(
        balance.result.as_deref(),
        Some(r#"{"balance":12,"entries":3}"#)
    );
    let entry = host
        .store()
        .load("ledger/alice/entry-000002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.result.as_deref(), Some("-3"));

    // An overdraft fails before writing anything.
    let before = stored_ids(host).await;
    let overdraft = host
        .run(&module, "ledger-run-3", &post(json!([1, -100])))
        .await
        .unwrap();
    assert_eq!(overdraft.status, WorkflowStatus::Failed);
    assert!(
        overdraft.error.contains("insufficient funds"),
        "{}",
        overdraft.error
    );
    let after: Vec<_> = stored_ids(host)
        .await
        .into_iter()
        .filter(|id| id != "ledger-run-3")
        .collect();
    assert_eq!(after, before);

    let close = host
        .run(
            &module,
            "ledger-run-4",
            r#"{"action":"close","account":"alice"}"#,
        )
        .await
        .unwrap();
    assert_eq!(result_json(&close)["deleted"], 4, "{close:?}");
    let left: Vec<_> = stored_ids(host)
        .await
        .into_iter()
        .filter(|id| id.starts_with("ledger/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Every store call from a guest, and the host's store agrees with it.
pub async fn every_store_call_works_from_a_guest(host: &Host, lang: &Language) {
    let module = load(host, lang.store_ops);
    let mut second = wire_state("b-2");
    second["status"] = json!("failed");
    let (state, outcomes) = script(
        host,
        &module,
        "ops-1",
        json!([
            {"op": "save", "state": wire_state("a-1")},
            {"op": "save", "state": second},
            {"op": "load", "id": "a-1"},
            {"op": "load", "id": "absent"},
            {"op": "list", "status": "completed"},
            {"op": "list", "limit": 2},
            {"op": "list", "after": "a-1"},
            {"op": "delete", "id": "a-1"},
            {"op": "load", "id": "a-1"},
            {"op": "delete", "id": "a-1"},
        ]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    let ok = |i: usize| {
        outcomes[i]
            .get("ok")
            .unwrap_or_else(|| panic!("op {i}: {}", outcomes[i]))
            .clone()
    };
    assert_eq!(ok(0), Value::Null);
    let loaded = ok(2);
    assert_eq!(
        as_saved(&loaded),
        wire_state("a-1"),
        "the guest reads back what it saved"
    );
    assert_eq!(ok(3), Value::Null);
    assert_eq!(ok(4), json!(["a-1"]));
    assert_eq!(ok(5), json!(["a-1", "b-2"]));
    assert_eq!(ok(6), json!(["b-2", "ops-1"]));
    assert_eq!(ok(7), Value::Null);
    assert_eq!(ok(8), Value::Null);
    assert_eq!(ok(9), Value::Null, "deleting an absent id succeeds");

    // The host's store agrees with what the guest did.
    assert!(host.store().load("a-1").await.unwrap().is_none());
    let b = host.store().load("b-2").await.unwrap().unwrap();
    assert_eq!(b.status, WorkflowStatus::Failed);
    assert_eq!(b.input.as_deref(), Some(r#"{"n":1}"#));
    assert_eq!(b.history[0].duration_ns, 42);
    assert_eq!(b.history[0].timestamp.nanoseconds, 5);
}

/// A state with one event of every kind, text beyond ASCII, empty strings,
/// absent and present JSON, negative and large numbers.
pub fn every_shape_state(id: &str) -> WorkflowState {
    use wf_host::model::{HistoryEvent, Timestamp};
    let kinds = [
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
    let history: Vec<HistoryEvent> = kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let n = i as i64;
            let mut e = HistoryEvent::new(
                i as u64 + 1,
                kind,
                Timestamp {
                    seconds: -62_135_596_800 + n * 1_000_000_007,
                    nanoseconds: 999_999_999 - i as u32,
                },
            );
            e.activity_name = ["", "charge", "ünï"][i % 3].to_owned();
            e.input = (i % 2 == 0).then(|| format!(r#"{{"step":{i},"text":"é\"q"}}"#));
            e.result = (i % 3 == 1).then(|| format!("[{i},null,true]"));
            e.error = if i % 4 == 3 {
                format!("failed: ✗ {i}")
            } else {
                String::new()
            };
            e.signal_name = if i % 2 == 1 {
                "approve".into()
            } else {
                String::new()
            };
            e.signal_payload = (i % 5 == 2).then(|| r#""𝄞""#.to_owned());
            e.duration_ns = if i % 2 == 0 {
                -n
            } else {
                9_007_199_254_740_991 - n
            };
            e
        })
        .collect();
    WorkflowState {
        workflow_id: id.to_owned(),
        run_id: "run-ß".into(),
        status: WorkflowStatus::Failed,
        input: Some(r#"{"amount":3,"note":"\u00e9"}"#.into()),
        result: None,
        error: "it broke: ✗".into(),
        history,
        created_at: Timestamp {
            seconds: 253_402_300_799,
            nanoseconds: 1,
        },
        updated_at: Timestamp {
            seconds: 1_764_000_000,
            nanoseconds: 0,
        },
    }
}

/// [`every_shape_state`] stored natively: `load` and `load_versioned` from
/// the guest (through the SDK's packed reads) return every field as stored.
pub async fn every_field_of_every_event_kind_loads_as_stored(host: &Host, lang: &Language) {
    let id = format!("shapes/ü✓𝄞/{}", lang.name);
    let stored = every_shape_state(&id);
    host.store().save(stored.clone()).await.unwrap();
    let (state, outcomes) = script(
        host,
        &load(host, lang.store_ops),
        &format!("shapes-{}", lang.name),
        json!([{"op": "load", "id": id}, {"op": "load_versioned", "id": id}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    let expected = crate::guest_json(&stored);
    let loaded = &outcomes[0]["ok"];
    assert_eq!(loaded, &expected, "load from the {} guest", lang.name);
    let versioned = &outcomes[1]["ok"];
    assert_eq!(
        versioned["state"], expected,
        "load_versioned from the {} guest",
        lang.name
    );
    assert!(versioned["version"].as_u64().unwrap() > 0, "{versioned}");
}

/// [`every_shape_state`] saved by the guest (through the SDK's save, packed
/// where the SDK packs): the host stores every field as given, but the
/// `updated_at` the save stamps.
pub async fn every_field_of_every_event_kind_saves_as_given(host: &Host, lang: &Language) {
    let id = format!("saved-shapes/ü✓𝄞/{}", lang.name);
    let given = crate::guest_json(&every_shape_state(&id));
    let (state, outcomes) = script(
        host,
        &load(host, lang.store_ops),
        &format!("saved-shapes-{}", lang.name),
        json!([{"op": "save", "state": given}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert!(outcomes[0].get("ok").is_some(), "{}", outcomes[0]);
    let saved = host.store().load(&id).await.unwrap().expect("saved");
    let mut saved = crate::guest_json(&saved);
    let mut given = given;
    for state in [&mut saved, &mut given] {
        state["updated_at"] = Value::Null;
    }
    assert_eq!(saved, given, "saved by the {} guest", lang.name);
}

/// `save_versioned` and `load_versioned` from a guest: a save expecting the
/// version it loaded succeeds once and returns a greater version, a second
/// save expecting the same (now stale) version fails with `conflict` and
/// writes nothing; expecting 0 creates a new id once, then conflicts.
///
/// Two runs: a script is fixed before its run, and a version is not known
/// before the backend assigned it, so the first run saves the id and reads
/// its version, and the second run's script expects that version.
pub async fn conditional_saves_write_only_over_the_expected_version(host: &Host, lang: &Language) {
    let module = load(host, lang.store_ops);
    let (first, outcomes) = script(
        host,
        &module,
        "cas-1",
        json!([
            {"op": "save", "state": wire_state("cas/a")},
            {"op": "load_versioned", "id": "cas/a"},
            {"op": "load_versioned", "id": "cas/absent"},
        ]),
    )
    .await;
    assert_eq!(first.status, WorkflowStatus::Completed, "{}", first.error);
    let ok = |outcomes: &[Value], i: usize| {
        outcomes[i]
            .get("ok")
            .unwrap_or_else(|| panic!("op {i}: {}", outcomes[i]))
            .clone()
    };
    assert_eq!(ok(&outcomes, 0), Value::Null, "save still returns nothing");
    let loaded = ok(&outcomes, 1);
    assert_eq!(as_saved(&loaded["state"]), wire_state("cas/a"));
    let v = loaded["version"].as_u64().expect("a version is a number");
    assert!(v > 0, "a stored state has a version above 0: {loaded}");
    assert_eq!(ok(&outcomes, 2), Value::Null);

    let mut winner = wire_state("cas/a");
    winner["run_id"] = json!("winner");
    let mut loser = wire_state("cas/a");
    loser["run_id"] = json!("loser");
    let mut created = wire_state("cas/b");
    created["run_id"] = json!("created");
    let mut late = wire_state("cas/b");
    late["run_id"] = json!("late");
    let (second, outcomes) = script(
        host,
        &module,
        "cas-2",
        json!([
            {"op": "load_versioned", "id": "cas/a"},
            {"op": "save_versioned", "state": winner, "expected_version": v},
            {"op": "save_versioned", "state": loser, "expected_version": v},
            {"op": "load_versioned", "id": "cas/a"},
            {"op": "save_versioned", "state": created, "expected_version": 0},
            {"op": "save_versioned", "state": late, "expected_version": 0},
            {"op": "load_versioned", "id": "cas/b"},
            {"op": "save_versioned", "state": wire_state("cas/c")},
            {"op": "save_versioned", "state": wire_state("cas/c"), "expected_version": null},
        ]),
    )
    .await;
    assert_eq!(second.status, WorkflowStatus::Completed, "{}", second.error);
    assert_eq!(
        ok(&outcomes, 0)["version"],
        v,
        "the version is the same until the next write"
    );
    let v2 = ok(&outcomes, 1)
        .as_u64()
        .expect("save_versioned returns the version");
    assert!(v2 > v, "a write's version is greater: {v2} after {v}");
    let (kind, message) = err_kind(&outcomes[2]);
    assert_eq!(kind, "conflict", "{message}");
    assert!(message.contains("not the expected"), "{message}");
    let read = ok(&outcomes, 3);
    assert_eq!(
        json!({"state": as_saved(&read["state"]), "version": read["version"]}),
        json!({"state": winner, "version": v2}),
        "the stale save wrote nothing"
    );
    let w = ok(&outcomes, 4)
        .as_u64()
        .expect("save_versioned returns the version");
    assert!(w > 0, "{w}");
    let (kind, message) = err_kind(&outcomes[5]);
    assert_eq!(kind, "conflict", "expecting 0 for a stored id: {message}");
    let read = ok(&outcomes, 6);
    assert_eq!(
        json!({"state": as_saved(&read["state"]), "version": read["version"]}),
        json!({"state": created, "version": w})
    );
    let c1 = ok(&outcomes, 7)
        .as_u64()
        .expect("an unconditional save_versioned");
    let c2 = ok(&outcomes, 8)
        .as_u64()
        .expect("an unconditional save_versioned");
    assert!(c1 > 0 && c2 > c1, "{c1} then {c2}");

    // The host's store agrees with what the guest saw.
    let a = host.store().load_versioned("cas/a").await.unwrap().unwrap();
    assert_eq!((a.state.run_id.as_str(), a.version), ("winner", v2));
    let b = host.store().load_versioned("cas/b").await.unwrap().unwrap();
    assert_eq!((b.state.run_id.as_str(), b.version), ("created", w));
}

/// Every `store-error` case a guest can cause gets its error, and none of
/// the refused calls writes anything.
pub async fn every_store_error_case_is_reached_from_a_guest_and_writes_nothing(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.store_ops);
    let mut year_10000 = wire_state("t-1");
    year_10000["created_at"] = json!({"seconds": 253402300800i64, "nanoseconds": 0});
    let mut bad_nanos = wire_state("t-2");
    bad_nanos["history"][0]["timestamp"] = json!({"seconds": 0, "nanoseconds": 1_000_000_000u32});
    let (state, outcomes) = script(
        host,
        &module,
        "errors",
        json!([
            {"op": "save", "state": wire_state("")},
            {"op": "save", "state": wire_state(&"x".repeat(1025))},
            {"op": "save", "state": wire_state("nul\u{0}id")},
            {"op": "save", "state": wire_state("new\nline")},
            {"op": "save", "state": wire_state("j-1"), "input_raw": "{not json"},
            {"op": "save", "state": wire_state("j-2"), "result_raw": "[1,"},
            {"op": "save", "state": wire_state("big"), "input_bytes": 2 * 1024 * 1024},
            {"op": "save", "state": year_10000},
            {"op": "save", "state": bad_nanos},
            {"op": "list", "limit": 0},
            {"op": "load", "id": ""},
            {"op": "delete", "id": "del\u{7f}"},
        ]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    let expected = [
        ("invalid-argument", "/save: workflow ID is required"),
        ("invalid-argument", "1025 bytes"),
        ("invalid-argument", "control character U+0000"),
        ("invalid-argument", "control character U+000A"),
        ("invalid-argument", "Input is not valid JSON"),
        ("invalid-argument", "Result is not valid JSON"),
        ("too-large", "over the 1048576-byte limit"),
        ("invalid-argument", "CreatedAt"),
        ("invalid-argument", "History[0].Timestamp"),
        ("invalid-argument", "limit must be at least 1"),
        ("invalid-argument", "workflow ID is required"),
        ("invalid-argument", "control character U+007F"),
    ];
    assert_eq!(outcomes.len(), expected.len());
    for (i, (kind, needle)) in expected.iter().enumerate() {
        let (got_kind, message) = err_kind(&outcomes[i]);
        assert_eq!(got_kind, *kind, "case {i}: {message}");
        assert!(
            message.contains(needle),
            "case {i}: {message:?} should contain {needle:?}"
        );
    }
    assert_eq!(
        stored_ids(host).await,
        ["errors"],
        "no rejected save wrote anything"
    );
}

/// A Rust guest panics (a trap); a Python or JavaScript guest throws an
/// exception nothing catches: the workflow fails with the exception's type,
/// message and place (the panic message), what it saved before stays, and
/// the host serves on.
pub async fn a_thrown_exception_fails_that_workflow_and_the_host_serves_on(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.store_ops);
    let (thrown, _) = script(
        host,
        &module,
        "trap-1",
        json!([{"op": "save", "state": wire_state("before-trap")}, {"op": "trap"}]),
    )
    .await;
    assert_eq!(thrown.status, WorkflowStatus::Failed);
    assert!(
        thrown.error.starts_with(lang.thrown_starts_with),
        "the exception's type and message are kept: {}",
        thrown.error
    );
    assert!(
        thrown.error.contains(lang.thrown_contains),
        "and where it was thrown (the panic message): {}",
        thrown.error
    );
    assert_eq!(
        kinds(&thrown),
        [EventType::WorkflowStarted, EventType::WorkflowFailed]
    );
    assert_eq!(thrown.history[1].error, thrown.error);
    // What the guest saved before throwing was acknowledged and stays.
    assert!(host.store().load("before-trap").await.unwrap().is_some());

    let (next, outcomes) = script(
        host,
        &module,
        "after-trap",
        json!([{"op": "load", "id": "before-trap"}]),
    )
    .await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
    assert_eq!(outcomes[0]["ok"]["workflow_id"], "before-trap");
}

/// A guest's returned error is the workflow's error, and an input the guest
/// cannot decode is one too.
pub async fn a_returned_error_fails_the_workflow_with_that_error(host: &Host, lang: &Language) {
    let module = load(host, lang.store_ops);
    let (failed, _) = script(
        host,
        &module,
        "fail-1",
        json!([{"op": "fail", "message": "card declined"}]),
    )
    .await;
    assert_eq!(failed.status, WorkflowStatus::Failed);
    assert_eq!(failed.error, "card declined");
    assert_eq!(failed.result, None);
    assert_eq!(
        failed.history.last().unwrap().kind,
        EventType::WorkflowFailed
    );
    assert_eq!(failed.history.last().unwrap().error, "card declined");

    let wrong_input = host
        .run(&module, "fail-2", r#"{"not":"a script"}"#)
        .await
        .unwrap();
    assert_eq!(wrong_input.status, WorkflowStatus::Failed);
    assert!(
        wrong_input
            .error
            .contains("does not match the expected type"),
        "{}",
        wrong_input.error
    );
}

/// Events a guest appends to its own state are kept when the host records
/// the end.
pub async fn history_the_guest_saves_is_kept_in_the_final_state(host: &Host, lang: &Language) {
    let module = load(host, lang.store_ops);
    let (state, outcomes) = script(
        host,
        &module,
        "rec-1",
        json!([{"op": "record", "activity": "one"}, {"op": "record", "activity": "two"}]),
    )
    .await;
    assert_eq!(outcomes, [json!({"ok": 2}), json!({"ok": 3})]);
    use EventType::*;
    assert_eq!(
        kinds(&state),
        [
            WorkflowStarted,
            ActivityCompleted,
            ActivityCompleted,
            WorkflowCompleted
        ]
    );
    assert_eq!(state.history[2].activity_name, "two");
    assert_eq!(state.history[3].id, 4);
}

/// A bad id or input is refused before the guest runs, writing nothing.
pub async fn bad_requests_are_refused_before_anything_is_written(host: &Host, lang: &Language) {
    let module = load(host, lang.pipeline);
    for (id, input) in [("", "1"), ("ok", "{oops"), ("bad\nid", "1")] {
        let result = host.run(&module, id, input).await;
        assert!(
            matches!(result, Err(ExecuteError::InvalidRequest(_))),
            "{id:?} {input:?}: {result:?}"
        );
    }
    assert!(stored_ids(host).await.is_empty());
}

/// Fifty workflows of one module at once, each with its own result.
pub async fn many_workflows_run_concurrently_on_one_host(host: &Host, lang: &Language) {
    let module = load(host, lang.pipeline);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (host, module) = (host.clone(), module.clone());
            tokio::spawn(async move {
                host.run(&module, &format!("p-{i:02}"), &format!("\"job {i}\""))
                    .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let state = task.await.unwrap().unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        assert_eq!(state.result, Some(format!("\"completed: job {i}\"")));
        assert_eq!(state.history.len(), 5);
    }
    assert_eq!(stored_ids(host).await.len(), 50);
}

/// A result the store refuses fails the workflow with why, and that failure
/// is what is stored.
pub async fn a_result_over_the_value_limit_fails_the_workflow_cleanly(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.store_ops);
    let (state, _) = script(
        host,
        &module,
        "huge-result",
        json!([{"op": "echo", "bytes": 2 * 1024 * 1024}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state
            .error
            .contains("the store refused the workflow's final state"),
        "{}",
        state.error
    );
    assert!(
        state.error.contains("over the 1048576-byte limit"),
        "{}",
        state.error
    );
    assert_eq!(state.result, None);
    let stored = host.store().load("huge-result").await.unwrap().unwrap();
    assert_eq!(
        *stored, state,
        "the failure, not the oversized result, is stored"
    );
}

/// A record a guest makes with its SDK's constructor is `completed`, and a
/// record a guest saves with status `running` is data all the same: any
/// number of recoveries leave both as they are, and the guest cannot make
/// a record look like a run.
pub async fn records_guests_save_are_never_resumed_whatever_their_status(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.store_ops);
    let mut running = wire_state("data/running");
    running["status"] = json!("running");
    let mut forged = wire_state("data/forged");
    forged["status"] = json!("running");
    forged["history"][0]["kind"] = json!("workflow_started");
    forged["history"][0]["input"] = module_mark(&module);
    let (state, outcomes) = script(
        host,
        &module,
        "records",
        json!([
            {"op": "new_record", "id": "visits/world"},
            {"op": "save", "state": running},
            {"op": "save", "state": forged},
        ]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(outcomes[0], json!({"ok": "completed"}), "the SDK's default");
    assert_eq!(outcomes[1], json!({"ok": null}));
    let (kind, message) = err_kind(&outcomes[2]);
    assert_eq!(kind, "invalid-argument", "{message}");
    assert!(message.contains("written by the host only"), "{message}");
    assert!(host.store().load("data/forged").await.unwrap().is_none());

    let before = host.store().load_versioned("data/running").await.unwrap();
    for _ in 0..3 {
        let recovery = host
            .recover(&module, wf_host::RecoverOptions::default())
            .await
            .unwrap();
        assert!(recovery.resumed.is_empty(), "nothing of this is a run");
        assert_eq!(recovery.not_runs, 1, "the running record is seen, and left");
    }
    let after = host.store().load_versioned("data/running").await.unwrap();
    assert_eq!(after, before, "the record is untouched");
    let visits = host.store().load("visits/world").await.unwrap().unwrap();
    assert_eq!(visits.status, WorkflowStatus::Completed);
}

/// The `input` of the `workflow_started` events `module`'s runs get.
fn module_mark(module: &Module) -> Value {
    serde_json::from_str(&module.identity().to_json()).expect("a module mark is JSON")
}

/// A loop that never ends fails at the deadline; the host serves on.
pub async fn a_runaway_loop_hits_the_deadline_and_the_host_serves_on(lang: &Language) {
    let host = crate::memory_host(lang.config().timeout(lang.deadline));
    let module = load(&host, lang.store_ops);
    let (spun, _) = script(&host, &module, "spin-1", json!([{"op": "spin"}])).await;
    assert_eq!(spun.status, WorkflowStatus::Failed);
    assert!(spun.error.contains("deadline exceeded"), "{}", spun.error);
    let (next, _) = script(&host, &module, "after-spin", json!([{"op": "list"}])).await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
}

/// A Rust guest traps when it passes the memory limit; the Python and
/// JavaScript runtimes turn the refused `memory.grow` into an exception,
/// which fails the workflow just the same. The host serves on.
pub async fn running_out_of_memory_fails_that_workflow_and_the_host_serves_on(lang: &Language) {
    let host = crate::memory_host(
        lang.config()
            .memory_limit_bytes(lang.small_memory_mib * 1024 * 1024),
    );
    let module = load(&host, lang.store_ops);
    let (small, outcomes) = script(
        &host,
        &module,
        "alloc-ok",
        json!([{"op": "allocate", "mib": 4}]),
    )
    .await;
    assert_eq!(small.status, WorkflowStatus::Completed, "{small:?}");
    assert_eq!(outcomes[0]["ok"], 4 * 1024 * 1024);
    let (big, _) = script(
        &host,
        &module,
        "alloc-big",
        json!([{"op": "allocate", "mib": 64}]),
    )
    .await;
    assert_eq!(big.status, WorkflowStatus::Failed);
    for needle in lang.out_of_memory {
        assert!(big.error.contains(needle), "{needle:?}: {}", big.error);
    }
    let (next, _) = script(
        &host,
        &module,
        "after-alloc",
        json!([{"op": "allocate", "mib": 1}]),
    )
    .await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
}

/// Each backend error reaches the guest as the `store-error` case it is.
pub async fn every_backend_error_case_reaches_the_guest_as_its_store_error(lang: &Language) {
    let host = Host::with_config(Arc::new(FaultStore::default()), lang.config()).unwrap();
    let module = load(&host, lang.store_ops);
    let (state, outcomes) = script(
        &host,
        &module,
        "faults",
        json!([
            {"op": "save", "state": wire_state("fault/denied/1")},
            {"op": "load", "id": "fault/unavailable/1"},
            {"op": "delete", "id": "fault/conflict/1"},
            {"op": "save", "state": wire_state("fault/internal/1")},
            {"op": "save", "state": wire_state("fine")},
        ]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    for (i, kind) in ["denied", "unavailable", "conflict", "internal"]
        .iter()
        .enumerate()
    {
        let (got, message) = err_kind(&outcomes[i]);
        assert_eq!(got, *kind, "{message}");
        assert!(message.starts_with("injected for fault/"), "{message}");
    }
    assert_eq!(outcomes[4], json!({"ok": null}));
}

/// A store that fails calls on ids `fault/<case>/...` with that `store-error`
/// case and passes everything else to the memory store, so the tests can see
/// each case arrive in a guest.
#[derive(Debug, Default)]
pub struct FaultStore(MemoryStore);

impl FaultStore {
    fn fault(workflow_id: &str) -> Result<(), StoreError> {
        let message = format!("injected for {workflow_id}");
        match workflow_id
            .strip_prefix("fault/")
            .and_then(|rest| rest.split('/').next())
        {
            Some("denied") => Err(StoreError::Denied(message)),
            Some("unavailable") => Err(StoreError::Unavailable(message)),
            Some("conflict") => Err(StoreError::Conflict(message)),
            Some("internal") => Err(StoreError::Internal(message)),
            _ => Ok(()),
        }
    }
}

#[wf_host::store::async_trait]
impl WorkflowStore for FaultStore {
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        Self::fault(&state.workflow_id)?;
        self.0.save_versioned(state, expected).await
    }

    async fn load_versioned(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
        Self::fault(id)?;
        self.0.load_versioned(id).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        self.0.list(filter).await
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        Self::fault(id)?;
        self.0.delete(id).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.0.close().await
    }

    fn describe(&self) -> String {
        "fault-injecting memory store".into()
    }
}
