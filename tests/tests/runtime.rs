//! The runtime: the sandbox (nothing granted but granted directories),
//! limits (deadline, memory, stack, fuel, result size), concurrency, cancel,
//! recovery and durable activities, with real guests through the real host.
//! The lifecycle cases run on both backends; the sandbox cases, which do not
//! depend on the store, on the memory store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wf_host::model::{EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::{
    AccessPolicy, DirGrant, ExecuteError, ExecuteOptions, Host, HostConfig, Module, ModuleLimits,
    ModuleOptions, RecoverOptions,
};
use wf_tests::{guests, kinds, memory_host, result_json};

wf_tests::on_every_backend!(
    five_hundred_concurrent_workflows_complete_with_their_history,
    a_spinning_guest_does_not_block_the_others,
    cancel_interrupts_the_guest_and_records_canceled,
    a_deadline_fails_the_workflow_with_a_workflow_failed_event,
    execute_returns_a_handle_and_status_and_query_read_the_store,
    recover_reruns_left_running_workflows_without_repeating_completed_activities,
    an_activity_started_but_not_recorded_as_done_runs_again_on_recovery,
    a_failed_activity_is_recorded_and_fails_the_workflow,
    a_history_that_does_not_match_the_code_fails_as_non_deterministic,
    an_access_policy_limits_the_ids_a_module_runs_and_reaches,
);

fn outcomes(state: &WorkflowState) -> Vec<Value> {
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    serde_json::from_value(result_json(state)).expect("a list of outcomes")
}

/// A fresh empty directory for one test (both backends run at once).
fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wf-runtime-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn probe(host: &Host, grants: Vec<DirGrant>) -> Module {
    let options = ModuleOptions {
        grants,
        ..ModuleOptions::default()
    };
    host.load_module_file_with(guests::SANDBOX_PROBE, options)
        .unwrap()
}

/// The probe guest with its own limits.
fn limited_probe(host: &Host, limits: ModuleLimits) -> Module {
    let options = ModuleOptions {
        limits,
        ..ModuleOptions::default()
    };
    host.load_module_file_with(guests::SANDBOX_PROBE, options)
        .unwrap()
}

async fn run_probe(host: &Host, module: &Module, id: &str, script: Value) -> WorkflowState {
    host.run(module, id, &script.to_string())
        .await
        .expect("the run is recorded")
}

/// The host serves on: a plain workflow right after still completes.
async fn assert_serves_on(host: &Host, module: &Module, id: &str) {
    let next = run_probe(host, module, id, json!([{"op": "echo", "bytes": 3}])).await;
    assert_eq!(outcomes(&next), vec![json!({"ok": "xxx"})]);
}

fn err_text(outcome: &Value) -> &str {
    outcome["err"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {outcome}"))
}

/// Waits (bounded) until `path` exists.
async fn wait_for_file(path: &Path) {
    for _ in 0..1000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} did not appear", path.display());
}

// ---- The sandbox ----

#[tokio::test]
async fn nothing_is_granted_by_default() {
    let host = memory_host(HostConfig::default());
    let module = probe(&host, vec![]);
    let state = run_probe(
        &host,
        &module,
        "bare",
        json!([
            {"op": "env"},
            {"op": "read", "path": "/etc/passwd"},
            {"op": "list_dir", "path": "/"},
            {"op": "list_dir", "path": "."},
            {"op": "write", "path": "/tmp/wf-escape", "text": "x"},
        ]),
    )
    .await;
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"], json!({"vars": [], "args": []}));
    for refused in &out[1..] {
        assert!(!err_text(refused).is_empty(), "{refused}");
    }
    assert!(!Path::new("/tmp/wf-escape").exists());
    assert_serves_on(&host, &module, "bare-next").await;
}

#[tokio::test]
async fn a_granted_directory_is_read_only_unless_said_and_cannot_be_escaped() {
    let root = scratch_dir("grant");
    let granted = root.join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(granted.join("in.txt"), "inside").unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", granted.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), granted.join("secret-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", granted.join("relative-link")).unwrap();
    let g = granted.display().to_string();

    let host = memory_host(HostConfig::default());
    let read_only = probe(&host, vec![DirGrant::read_only(&granted, &g)]);
    let state = run_probe(
        &host,
        &read_only,
        "ro",
        json!([
            {"op": "read", "path": format!("{g}/in.txt")},
            {"op": "list_dir", "path": g},
            {"op": "write", "path": format!("{g}/new.txt"), "text": "x"},
            {"op": "append", "path": format!("{g}/in.txt"), "line": "more"},
            {"op": "read", "path": format!("{g}/../secret.txt")},
            {"op": "read", "path": format!("{g}/passwd-link")},
            {"op": "read", "path": format!("{g}/secret-link")},
            {"op": "read", "path": format!("{g}/relative-link")},
            {"op": "read", "path": "/etc/passwd"},
        ]),
    )
    .await;
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"], "inside");
    let mut names: Vec<String> = serde_json::from_value(out[1]["ok"].clone()).unwrap();
    names.sort();
    assert_eq!(
        names,
        ["in.txt", "passwd-link", "relative-link", "secret-link"]
    );
    for (i, refused) in out.iter().enumerate().skip(2) {
        assert!(!err_text(refused).is_empty(), "probe {i}: {refused}");
    }
    assert!(
        !granted.join("new.txt").exists(),
        "a read-only grant was written"
    );
    assert_eq!(
        std::fs::read_to_string(granted.join("in.txt")).unwrap(),
        "inside"
    );

    let writable = probe(&host, vec![DirGrant::read_write(&granted, &g)]);
    let state = run_probe(
        &host,
        &writable,
        "rw",
        json!([
            {"op": "write", "path": format!("{g}/new.txt"), "text": "written"},
            {"op": "write", "path": format!("{g}/../escaped.txt"), "text": "x"},
            {"op": "write", "path": format!("{g}/secret-link"), "text": "x"},
        ]),
    )
    .await;
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"], Value::Null);
    assert!(!err_text(&out[1]).is_empty());
    assert!(!err_text(&out[2]).is_empty());
    assert_eq!(
        std::fs::read_to_string(granted.join("new.txt")).unwrap(),
        "written"
    );
    assert!(!root.join("escaped.txt").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("secret.txt")).unwrap(),
        "outside"
    );
    assert_serves_on(&host, &writable, "rw-next").await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn granting_a_missing_directory_is_refused_at_load() {
    let host = memory_host(HostConfig::default());
    let options = ModuleOptions {
        grants: vec![DirGrant::read_only("/nonexistent/wf", "/data")],
        ..ModuleOptions::default()
    };
    let err = host
        .load_module_file_with(guests::SANDBOX_PROBE, options)
        .unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/wf"), "{err:#}");
}

#[tokio::test]
async fn a_memory_bomb_hits_the_limit_and_says_so() {
    let host = memory_host(HostConfig::default());
    let module = limited_probe(
        &host,
        ModuleLimits {
            memory_bytes: Some(32 << 20),
            ..ModuleLimits::default()
        },
    );
    let state = run_probe(
        &host,
        &module,
        "bomb",
        json!([{"op": "allocate", "mib": 256}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.contains("memory limit reached"),
        "{}",
        state.error
    );
    assert!(state.error.contains("33554432 bytes"), "{}", state.error);
    assert_eq!(kinds(&state).last(), Some(&EventType::WorkflowFailed));
    assert_serves_on(&host, &module, "bomb-next").await;
}

#[tokio::test]
async fn a_stack_overflow_fails_that_workflow() {
    let host = memory_host(HostConfig::default());
    let module = probe(&host, vec![]);
    let state = run_probe(&host, &module, "deep", json!([{"op": "recurse"}])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("stack overflow"), "{}", state.error);
    assert_eq!(kinds(&state).last(), Some(&EventType::WorkflowFailed));
    assert_serves_on(&host, &module, "deep-next").await;
}

#[tokio::test]
async fn fuel_stops_a_runaway_loop_when_set() {
    let host = memory_host(HostConfig::default());
    let module = limited_probe(
        &host,
        ModuleLimits {
            fuel: Some(50_000_000),
            ..ModuleLimits::default()
        },
    );
    let state = run_probe(&host, &module, "fuel", json!([{"op": "spin"}])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("fuel exhausted"), "{}", state.error);
    assert!(state.error.contains("50000000"), "{}", state.error);
    // Fuel is per run: the next run gets its own.
    assert_serves_on(&host, &module, "fuel-next").await;
}

#[tokio::test]
async fn a_100_mib_result_is_refused_cleanly() {
    let host = memory_host(HostConfig::default());
    let module = limited_probe(
        &host,
        ModuleLimits {
            memory_bytes: Some(1 << 30),
            ..ModuleLimits::default()
        },
    );
    let state = run_probe(
        &host,
        &module,
        "huge",
        json!([{"op": "echo", "bytes": 100 << 20}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state
            .error
            .contains("the store refused the workflow's final state"),
        "{}",
        &state.error[..state.error.len().min(300)]
    );
    assert!(
        state.error.len() < 1000,
        "the error does not carry the result"
    );
    let stored = host.store().load("huge").await.unwrap().unwrap();
    assert_eq!(*stored, state);
    assert_serves_on(&host, &module, "huge-next").await;
}

// ---- Lifecycle: on both backends ----

async fn five_hundred_concurrent_workflows_complete_with_their_history(host: Host) {
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let mut handles = Vec::new();
    for i in 0..500 {
        let script = json!([{"op": "record", "activity": format!("step-{i}")}]);
        let options = ExecuteOptions::new(script.to_string()).id(format!("c-{i:03}"));
        handles.push(host.execute(&module, options).await.unwrap());
    }
    for (i, handle) in handles.into_iter().enumerate() {
        let state = handle.result().await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        assert_eq!(
            kinds(&state),
            [
                EventType::WorkflowStarted,
                EventType::ActivityCompleted,
                EventType::WorkflowCompleted
            ]
        );
        assert_eq!(state.history[1].activity_name, format!("step-{i}"));
        let stored = host.query(&state.workflow_id).await.unwrap().unwrap();
        assert_eq!(*stored, state);
    }
    assert!(host.running().is_empty());
}

async fn a_spinning_guest_does_not_block_the_others(host: Host) {
    let dir = scratch_dir("spin");
    let g = dir.display().to_string();
    let module = probe(&host, vec![DirGrant::read_write(&dir, &g)]);
    // More spinners than the test runtime has worker threads.
    let mut spinners = Vec::new();
    for i in 0..4 {
        let signal = format!("{g}/spinning-{i}");
        let script = json!([{"op": "signal_then_spin", "path": signal}]);
        let options = ExecuteOptions::new(script.to_string()).id(format!("spinner-{i}"));
        spinners.push(host.execute(&module, options).await.unwrap());
    }
    for i in 0..4 {
        wait_for_file(&dir.join(format!("spinning-{i}"))).await;
    }
    for i in 0..20 {
        assert_serves_on(&host, &module, &format!("beside-{i}")).await;
    }
    for spinner in &spinners {
        assert_eq!(spinner.status(), WorkflowStatus::Running, "still spinning");
    }
    for spinner in spinners {
        spinner.cancel();
        assert_eq!(
            spinner.result().await.unwrap().status,
            WorkflowStatus::Canceled
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn cancel_interrupts_the_guest_and_records_canceled(host: Host) {
    let module = probe(&host, vec![]);
    let script = json!([{"op": "sleep_ms", "ms": 600_000}]);
    let handle = host
        .execute(
            &module,
            ExecuteOptions::new(script.to_string()).id("to-cancel"),
        )
        .await
        .unwrap();
    assert_eq!(host.running(), ["to-cancel"]);
    assert_eq!(
        host.status("to-cancel").await.unwrap(),
        Some(WorkflowStatus::Running)
    );
    host.cancel("to-cancel").unwrap();
    let state = handle.result().await.unwrap();
    assert_eq!(state.status, WorkflowStatus::Canceled);
    assert_eq!(state.error, "canceled on request");
    assert_eq!(
        kinds(&state),
        [EventType::WorkflowStarted, EventType::WorkflowCanceled]
    );
    assert_eq!(*host.query("to-cancel").await.unwrap().unwrap(), state);
    assert_eq!(
        host.status("to-cancel").await.unwrap(),
        Some(WorkflowStatus::Canceled)
    );
    assert!(matches!(
        host.cancel("to-cancel"),
        Err(ExecuteError::NotRunning(_))
    ));
    assert!(host.running().is_empty());
    assert_serves_on(&host, &module, "after-cancel").await;
}

async fn a_deadline_fails_the_workflow_with_a_workflow_failed_event(host: Host) {
    let module = probe(&host, vec![]);
    for (id, op) in [
        ("late-spin", json!({"op": "spin"})),
        ("late-sleep", json!({"op": "sleep_ms", "ms": 600_000})),
    ] {
        let options = ExecuteOptions::new(json!([op]).to_string())
            .id(id)
            .timeout(Duration::from_millis(200));
        let state = host
            .execute(&module, options)
            .await
            .unwrap()
            .result()
            .await
            .unwrap();
        assert_eq!(state.status, WorkflowStatus::Failed);
        assert!(state.error.contains("deadline exceeded"), "{}", state.error);
        assert!(state.error.contains("200ms"), "{}", state.error);
        assert_eq!(
            kinds(&state),
            [EventType::WorkflowStarted, EventType::WorkflowFailed]
        );
        assert_eq!(state.history[1].error, state.error);
    }
    assert_serves_on(&host, &module, "after-deadline").await;
}

async fn execute_returns_a_handle_and_status_and_query_read_the_store(host: Host) {
    let module = probe(&host, vec![]);
    // A generated id.
    let handle = host
        .execute(&module, ExecuteOptions::new("[]"))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let run_id = handle.run_id().to_owned();
    let state = handle.result().await.unwrap();
    assert_eq!(
        (state.workflow_id.as_str(), state.run_id.as_str()),
        (id.as_str(), run_id.as_str())
    );
    assert_eq!(
        host.status(&id).await.unwrap(),
        Some(WorkflowStatus::Completed)
    );
    assert_eq!(host.status("never-ran").await.unwrap(), None);
    assert!(host.query("never-ran").await.unwrap().is_none());

    // The same id twice at once: the second is refused and writes nothing.
    let slow = json!([{"op": "sleep_ms", "ms": 600_000}]).to_string();
    let first = host
        .execute(&module, ExecuteOptions::new(slow.clone()).id("twice"))
        .await
        .unwrap();
    let stored = host.query("twice").await.unwrap().unwrap();
    let second = host
        .execute(&module, ExecuteOptions::new("[]").id("twice"))
        .await;
    assert!(
        matches!(second, Err(ExecuteError::AlreadyRunning(_))),
        "{second:?}"
    );
    assert_eq!(host.query("twice").await.unwrap().unwrap(), stored);
    first.cancel();
    first.result().await.unwrap();

    // Bad requests are refused before anything is written.
    for (id, input) in [("", "[]"), ("bad\nid", "[]"), ("ok-id", "{not json")] {
        let refused = host
            .execute(&module, ExecuteOptions::new(input).id(id))
            .await;
        assert!(
            matches!(refused, Err(ExecuteError::InvalidRequest(_))),
            "{refused:?}"
        );
    }
    assert!(host.query("ok-id").await.unwrap().is_none());
}

/// Stores `id` as a workflow a crashed host left `running` with `history`
/// (after its `workflow_started`).
async fn left_running(
    host: &Host,
    id: &str,
    input: &Value,
    history: Vec<HistoryEvent>,
) -> WorkflowState {
    let now = Timestamp::now();
    let mut events = vec![HistoryEvent::new(1, EventType::WorkflowStarted, now)];
    for (i, mut event) in history.into_iter().enumerate() {
        event.id = i as u64 + 2;
        events.push(event);
    }
    let state = WorkflowState {
        workflow_id: id.to_owned(),
        run_id: format!("run-of-{id}"),
        status: WorkflowStatus::Running,
        input: Some(input.to_string()),
        result: None,
        error: String::new(),
        history: events,
        created_at: now,
        updated_at: now,
    };
    host.store().save(state.clone()).await.unwrap();
    state
}

fn activity(kind: EventType, name: &str, result: Option<&str>) -> HistoryEvent {
    let mut event = HistoryEvent::new(0, kind, Timestamp::now());
    event.activity_name = name.to_owned();
    event.result = result.map(str::to_owned);
    event
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn durable(host: &Host, dir: &Path) -> Module {
    let g = dir.display().to_string();
    let options = ModuleOptions {
        grants: vec![DirGrant::read_write(dir, g)],
        ..ModuleOptions::default()
    };
    host.load_module_file_with(guests::DURABLE, options)
        .unwrap()
}

async fn recover_reruns_left_running_workflows_without_repeating_completed_activities(host: Host) {
    let dir = scratch_dir("recover");
    let module = durable(&host, &dir);
    let input =
        json!({"dir": dir.display().to_string(), "order": "o-1", "cents": 900, "no_wait": true});
    // Charged, then the host died: charge must not run again.
    let before = left_running(
        &host,
        "order-1",
        &input,
        vec![
            activity(EventType::ActivityStarted, "charge", None),
            activity(EventType::ActivityCompleted, "charge", Some("\"charge-7\"")),
        ],
    )
    .await;
    // Another module's workflow, outside the prefix: left alone.
    left_running(&host, "other-1", &json!(null), vec![]).await;
    // Finished workflows are not candidates.
    host.run(
        &module,
        "order-done",
        &json!({"dir": dir.display().to_string(), "order": "o-0", "cents": 1, "no_wait": true})
            .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(lines(&dir.join("charge.log")), ["o-0 1"]);

    let handles = host
        .recover(
            &module,
            RecoverOptions {
                id_prefix: Some("order-".into()),
                ..RecoverOptions::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = handles.iter().map(|h| h.id()).collect();
    assert_eq!(ids, ["order-1"]);
    assert_eq!(handles[0].run_id(), before.run_id, "the same run goes on");
    let state = handles.into_iter().next().unwrap().result().await.unwrap();
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(
        serde_json::from_str::<Value>(state.result.as_deref().unwrap()).unwrap(),
        json!({"charge": "charge-7", "parcel": 2})
    );
    assert_eq!(
        lines(&dir.join("charge.log")),
        ["o-0 1"],
        "charge ran again"
    );
    assert_eq!(lines(&dir.join("ship.log")), ["charge-1", "charge-7"]);
    assert_eq!(
        kinds(&state),
        [
            EventType::WorkflowStarted,
            EventType::ActivityStarted,
            EventType::ActivityCompleted,
            EventType::WorkflowStarted,
            EventType::TimerFired,
            EventType::ActivityStarted,
            EventType::ActivityCompleted,
            EventType::WorkflowCompleted,
        ]
    );
    assert_eq!(state.history[4].duration_ns, 20_000_000);
    assert_eq!(state.history[6].result.as_deref(), Some("2"));
    assert_eq!(
        host.status("other-1").await.unwrap(),
        Some(WorkflowStatus::Running),
        "outside the prefix"
    );
    // Nothing left to recover under the prefix.
    assert!(
        host.recover(
            &module,
            RecoverOptions {
                id_prefix: Some("order-".into()),
                ..RecoverOptions::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn an_activity_started_but_not_recorded_as_done_runs_again_on_recovery(host: Host) {
    let dir = scratch_dir("rerun");
    let module = durable(&host, &dir);
    let input =
        json!({"dir": dir.display().to_string(), "order": "o-2", "cents": 5, "no_wait": true});
    left_running(
        &host,
        "order-2",
        &input,
        vec![activity(EventType::ActivityStarted, "charge", None)],
    )
    .await;
    let handles = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap();
    assert_eq!(handles.len(), 1);
    let state = handles.into_iter().next().unwrap().result().await.unwrap();
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(lines(&dir.join("charge.log")), ["o-2 5"]);
    // The unfinished start is completed, not started twice.
    let starts = state
        .history
        .iter()
        .filter(|e| e.kind == EventType::ActivityStarted && e.activity_name == "charge")
        .count();
    assert_eq!(starts, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn a_failed_activity_is_recorded_and_fails_the_workflow(host: Host) {
    let dir = scratch_dir("afail");
    let module = durable(&host, &dir);
    let input = json!({"dir": dir.display().to_string(), "order": "o-3", "cents": 5, "no_wait": true, "ship_error": "no courier"});
    let state = host
        .run(&module, "order-3", &input.to_string())
        .await
        .unwrap();
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert_eq!(state.error, "activity failed: no courier");
    let failed: Vec<&HistoryEvent> = state
        .history
        .iter()
        .filter(|e| e.kind == EventType::ActivityFailed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].activity_name.as_str(), failed[0].error.as_str()),
        ("ship", "no courier")
    );
    assert!(!dir.join("ship.log").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn a_history_that_does_not_match_the_code_fails_as_non_deterministic(host: Host) {
    let dir = scratch_dir("nondet");
    let module = durable(&host, &dir);
    let input =
        json!({"dir": dir.display().to_string(), "order": "o-4", "cents": 5, "no_wait": true});
    left_running(
        &host,
        "order-4",
        &input,
        vec![
            activity(EventType::ActivityStarted, "refund", None),
            activity(EventType::ActivityCompleted, "refund", Some("1")),
        ],
    )
    .await;
    let handles = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap();
    let state = handles.into_iter().next().unwrap().result().await.unwrap();
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("non-deterministic"), "{}", state.error);
    assert!(state.error.contains("\"refund\""), "{}", state.error);
    assert!(!dir.join("charge.log").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_workflows_wait_for_a_slot() {
    let host = memory_host(HostConfig {
        max_running: 2,
        ..HostConfig::default()
    });
    let module = probe(&host, vec![]);
    let slow = json!([{"op": "sleep_ms", "ms": 600_000}]).to_string();
    let a = host
        .execute(&module, ExecuteOptions::new(slow.clone()).id("a"))
        .await
        .unwrap();
    let b = host
        .execute(&module, ExecuteOptions::new(slow).id("b"))
        .await
        .unwrap();
    let host2 = host.clone();
    let module2 = module.clone();
    let third = tokio::spawn(async move { host2.run(&module2, "c", "[]").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished(), "a third workflow ran with two slots");
    assert!(
        host.query("c").await.unwrap().is_none(),
        "nothing written while it waits"
    );
    a.cancel();
    let c = third.await.unwrap().unwrap();
    assert_eq!(c.status, WorkflowStatus::Completed);
    b.cancel();
    b.result().await.unwrap();
}

#[tokio::test]
async fn the_same_module_bytes_compile_once_and_the_disk_cache_is_used() {
    let cache = scratch_dir("cache");
    let config = HostConfig {
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    };
    let host = memory_host(config.clone());
    let first = host.load_module_file(guests::SANDBOX_PROBE).unwrap();
    let again = host
        .load_module_file_with(guests::SANDBOX_PROBE, ModuleOptions::default())
        .unwrap();
    assert_eq!(first.digest(), again.digest());
    assert_eq!(first.digest().len(), 64);
    // The compiled artifact is on disk, keyed by content and engine; a new
    // host (a restart) finds it.
    let files = walk(&cache);
    assert!(!files.is_empty(), "nothing cached in {}", cache.display());
    let restarted = memory_host(config);
    let module = restarted.load_module_file(guests::SANDBOX_PROBE).unwrap();
    assert_serves_on(&restarted, &module, "from-cache").await;
    assert_eq!(
        walk(&cache).len(),
        files.len(),
        "recompiled instead of reused"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn table_and_instance_limits_fail_that_workflow_and_say_which() {
    let host = memory_host(HostConfig::default());
    let tiny_table = limited_probe(
        &host,
        ModuleLimits {
            table_elements: Some(1),
            ..ModuleLimits::default()
        },
    );
    let state = run_probe(&host, &tiny_table, "tables", json!([])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.contains("table limit reached"),
        "{}",
        state.error
    );
    assert!(state.error.contains("instantiating"), "{}", state.error);
    assert_eq!(kinds(&state).last(), Some(&EventType::WorkflowFailed));

    let one_instance = limited_probe(
        &host,
        ModuleLimits {
            instances: Some(1),
            ..ModuleLimits::default()
        },
    );
    let state = run_probe(&host, &one_instance, "instances", json!([])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.contains("instance count too high"),
        "{}",
        state.error
    );
    assert!(state.error.contains("1 instances"), "{}", state.error);

    // The same bytes under the default limits serve on.
    let module = probe(&host, vec![]);
    assert_serves_on(&host, &module, "limits-next").await;
}

/// A stored state as the guest SDK's serde shape.
fn guest_state(id: &str) -> Value {
    json!({
        "workflow_id": id, "run_id": "r1", "status": "completed",
        "input": {"n": 1}, "result": null, "error": "", "history": [],
        "created_at": {"seconds": 1700000000, "nanoseconds": 0},
        "updated_at": {"seconds": 1700000000, "nanoseconds": 0}
    })
}

async fn an_access_policy_limits_the_ids_a_module_runs_and_reaches(host: Host) {
    // Others' ids sort first and fill more than a page, so a filtered list
    // must read on to find the module's own.
    let mut others = Vec::new();
    for i in 0..150 {
        others.push(format!("aaa-{i:03}"));
    }
    for id in others.iter().chain(&[
        "tenant-a/1".into(),
        "tenant-a/2".into(),
        "tenant-b/1".into(),
    ]) {
        let mut state = left_running(&host, id, &json!(null), vec![]).await;
        state.status = WorkflowStatus::Completed;
        host.store().save(state).await.unwrap();
    }
    let options = ModuleOptions {
        access: AccessPolicy::prefixes(["tenant-a/"]),
        ..ModuleOptions::default()
    };
    let module = host
        .load_module_file_with(guests::STORE_OPS, options)
        .unwrap();
    let script = json!([
        {"op": "load", "id": "tenant-a/1"},
        {"op": "load", "id": "tenant-b/1"},
        {"op": "save", "state": guest_state("tenant-b/new")},
        {"op": "delete", "id": "tenant-b/1"},
        {"op": "list", "limit": 100},
        {"op": "list", "limit": 1, "after": "tenant-a/1"},
        {"op": "save", "state": guest_state("tenant-a/3")},
    ]);
    let state = host
        .run(&module, "tenant-a/run", &script.to_string())
        .await
        .unwrap();
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"]["workflow_id"], "tenant-a/1");
    for refused in &out[1..4] {
        assert_eq!(refused["err"]["kind"], "denied", "{refused}");
        let message = refused["err"]["message"].as_str().unwrap();
        assert!(message.contains("store_ops.wasm"), "{message}");
        assert!(message.contains("tenant-a/"), "{message}");
    }
    assert_eq!(
        out[4]["ok"],
        json!(["tenant-a/1", "tenant-a/2", "tenant-a/run"])
    );
    assert_eq!(out[5]["ok"], json!(["tenant-a/2"]));
    assert_eq!(out[6]["ok"], Value::Null);
    // Nothing outside the prefix changed.
    assert!(host.query("tenant-b/1").await.unwrap().is_some());
    assert!(host.query("tenant-b/new").await.unwrap().is_none());
    assert!(host.query("tenant-a/3").await.unwrap().is_some());

    // Running an id outside the prefix is refused, and writes nothing.
    let refused = host.run(&module, "tenant-b/run", "[]").await;
    assert!(
        matches!(
            refused,
            Err(ExecuteError::Store(wf_host::store::StoreError::Denied(_)))
        ),
        "{refused:?}"
    );
    assert!(host.query("tenant-b/run").await.unwrap().is_none());
    // Recover takes up only the module's own workflows.
    left_running(&host, "aaa-left", &json!([]), vec![]).await;
    left_running(&host, "tenant-a/left", &json!([]), vec![]).await;
    let handles = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap();
    let ids: Vec<&str> = handles.iter().map(|h| h.id()).collect();
    assert_eq!(ids, ["tenant-a/left"]);
    for handle in handles {
        handle.result().await.unwrap();
    }
}

/// A memory store in which another writer (the workflow's new owner, say)
/// writes workflow `id` just before the run's first own save of it after
/// the host's `running` save.
#[derive(Debug)]
struct Interloper {
    inner: wf_host::store::MemoryStore,
    id: String,
    saves: AtomicUsize,
}

#[wf_host::store::async_trait]
impl wf_host::store::WorkflowStore for Interloper {
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<wf_host::store::Version>,
    ) -> Result<wf_host::store::Version, wf_host::store::StoreError> {
        if state.workflow_id == self.id && self.saves.fetch_add(1, Ordering::SeqCst) == 1 {
            let intruder = WorkflowState {
                run_id: "intruder".into(),
                ..state.clone()
            };
            self.inner.save(intruder).await?;
        }
        self.inner.save_versioned(state, expected).await
    }
    async fn load_versioned(
        &self,
        id: &str,
    ) -> Result<Option<wf_host::store::Versioned>, wf_host::store::StoreError> {
        self.inner.load_versioned(id).await
    }
    async fn list(
        &self,
        filter: &wf_host::store::ListFilter,
    ) -> Result<Vec<std::sync::Arc<WorkflowState>>, wf_host::store::StoreError> {
        self.inner.list(filter).await
    }
    async fn delete(&self, id: &str) -> Result<(), wf_host::store::StoreError> {
        self.inner.delete(id).await
    }
    async fn close(&self) -> Result<(), wf_host::store::StoreError> {
        self.inner.close().await
    }
    fn describe(&self) -> String {
        "memory store with an interloping writer".into()
    }
}

#[tokio::test]
async fn a_run_whose_workflow_another_writer_wrote_cannot_write_it_again() {
    let store = std::sync::Arc::new(Interloper {
        inner: wf_host::store::MemoryStore::new(),
        id: "fenced".into(),
        saves: AtomicUsize::new(0),
    });
    let host = Host::new(store.clone()).unwrap();
    let module = host.load_module_file(guests::STEPS).unwrap();
    // The guest's first activity save is conditional on the version the run
    // wrote, fails, and fails the guest; the host's final save fails the same way.
    let ended = host
        .run(&module, "fenced", r#"{"steps":2,"step_ms":0}"#)
        .await;
    match ended {
        Err(ExecuteError::Store(wf_host::store::StoreError::Conflict(message))) => {
            assert!(message.contains("another writer came first"), "{message}");
        }
        other => panic!("the run's end must not be written over the other writer's: {other:?}"),
    }
    let stored = host.query("fenced").await.unwrap().unwrap();
    assert_eq!(stored.run_id, "intruder", "the other writer's state stands");
    assert_eq!(stored.status, WorkflowStatus::Running);
    assert_eq!(
        kinds(&stored),
        [EventType::WorkflowStarted, EventType::ActivityStarted],
        "what the other writer wrote, and nothing of this run after it"
    );

    // Without an interloper the same guest completes: the fence follows the
    // run's own saves.
    let state = host
        .run(&module, "free", r#"{"steps":2,"step_ms":0}"#)
        .await
        .unwrap();
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(state.result.as_deref(), Some("1"));
}
