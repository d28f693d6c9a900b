//! The runtime's lifecycle, with real guests through the real host on both
//! backends: concurrency, cancel, deadlines, handles, slots, access
//! policies and run fencing. The sandbox is in `sandbox.rs`, recovery in
//! `recovery.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wf_host::model::{EventType, WorkflowState, WorkflowStatus};
use wf_host::{
    AccessPolicy, DirGrant, ExecuteError, ExecuteOptions, Host, HostConfig, IdReuse, ModuleOptions,
    RecoverOptions,
};
use wf_tests::probe::{assert_serves_on, outcomes, probe};
use wf_tests::{guests, kinds, left_running, memory_host, scratch_dir, wait_for_file};

wf_tests::on_every_backend!(
    five_hundred_concurrent_workflows_complete_with_their_history,
    a_spinning_guest_does_not_block_the_others,
    cancel_interrupts_the_guest_and_records_canceled,
    a_deadline_fails_the_workflow_with_a_workflow_failed_event,
    execute_returns_a_handle_and_status_and_query_read_the_store,
    an_access_policy_limits_the_ids_a_module_runs_and_reaches,
    a_start_of_an_id_with_a_run_returns_that_run,
    the_id_reuse_policy_decides_what_a_start_of_an_ended_id_does,
    starts_over_http_say_whether_they_started_and_give_one_run,
);

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

    // The same id twice at once: the second start joins the first run and
    // writes nothing.
    let slow = json!([{"op": "sleep_ms", "ms": 600_000}]).to_string();
    let first = host
        .execute(&module, ExecuteOptions::new(slow.clone()).id("twice"))
        .await
        .unwrap();
    let stored = host.query("twice").await.unwrap().unwrap();
    let second = host
        .execute(&module, ExecuteOptions::new("[]").id("twice"))
        .await
        .unwrap();
    assert!(!second.started());
    assert_eq!(second.run_id(), first.run_id());
    assert_eq!(host.query("twice").await.unwrap().unwrap(), stored);
    first.cancel();
    let ended = first.result().await.unwrap();
    assert_eq!(ended.status, WorkflowStatus::Canceled);
    assert_eq!(
        second.result().await.unwrap(),
        ended,
        "both see the one run end"
    );

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_workflows_wait_for_a_slot() {
    let host = memory_host(HostConfig::default().max_running(2));
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
    let options = ModuleOptions::default().access(AccessPolicy::prefixes(["tenant-a/"]));
    let module = host
        .load_module_file_with(guests::STORE_OPS, options)
        .unwrap();
    for id in others.iter().chain(&[
        "tenant-a/1".into(),
        "tenant-a/2".into(),
        "tenant-b/1".into(),
    ]) {
        let mut state = left_running(&host, &module.identity(), id, &json!(null), vec![]).await;
        state.status = WorkflowStatus::Completed;
        host.store().save(state).await.unwrap();
    }
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
    left_running(&host, &module.identity(), "aaa-left", &json!([]), vec![]).await;
    left_running(
        &host,
        &module.identity(),
        "tenant-a/left",
        &json!([]),
        vec![],
    )
    .await;
    let handles = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap()
        .resumed;
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

// ---- Starting an id: idempotent by default ----

/// The number of `workflow_started` events of `state`: one per run start.
fn starts(state: &WorkflowState) -> usize {
    kinds(state)
        .iter()
        .filter(|k| **k == EventType::WorkflowStarted)
        .count()
}

async fn a_start_of_an_id_with_a_run_returns_that_run(host: Host) {
    let module = host.load_module_file(guests::PIPELINE).unwrap();
    let first = host.run(&module, "once", r#""a""#).await.unwrap();
    // Again, with another input: the stored run answers, nothing runs.
    let again = host
        .execute(&module, ExecuteOptions::new(r#""b""#).id("once"))
        .await
        .unwrap();
    assert!(!again.started());
    assert_eq!(again.run_id(), first.run_id);
    assert_eq!(again.status(), WorkflowStatus::Completed);
    assert_eq!(again.result().await.unwrap(), first);
    assert_eq!(host.run(&module, "once", r#""c""#).await.unwrap(), first);
    assert_eq!(*host.query("once").await.unwrap().unwrap(), first);

    // Twenty starts of one id at once, as retrying clients make them: one run.
    let host = std::sync::Arc::new(host);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (host, module) = (host.clone(), module.clone());
            tokio::spawn(async move {
                let handle = host
                    .execute(&module, ExecuteOptions::new(format!("\"{i}\"")).id("burst"))
                    .await
                    .unwrap();
                let started = handle.started();
                (started, handle.result().await.unwrap())
            })
        })
        .collect();
    let mut ended = Vec::new();
    for task in tasks {
        ended.push(task.await.unwrap());
    }
    assert_eq!(ended.iter().filter(|(started, _)| *started).count(), 1);
    let stored = host.query("burst").await.unwrap().unwrap();
    assert_eq!(starts(&stored), 1, "one run: {:?}", kinds(&stored));
    for (_, state) in &ended {
        assert_eq!(state.run_id, stored.run_id);
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    }
}

async fn the_id_reuse_policy_decides_what_a_start_of_an_ended_id_does(host: Host) {
    let failing = json!([{"op": "fail", "message": "declined"}]).to_string();
    let fine = json!([]).to_string();
    let load = |policy| {
        host.load_module_file_with(guests::STORE_OPS, ModuleOptions::default().id_reuse(policy))
            .unwrap()
    };
    let reject = load(IdReuse::RejectDuplicate);
    let failed_only = load(IdReuse::AllowDuplicateFailedOnly);
    let always = load(IdReuse::AllowDuplicate);

    let failed = host.run(&reject, "f", &failing).await.unwrap();
    assert_eq!(failed.status, WorkflowStatus::Failed);
    assert_eq!(host.run(&reject, "f", &fine).await.unwrap(), failed);
    let retried = host.run(&failed_only, "f", &fine).await.unwrap();
    assert_eq!(
        retried.status,
        WorkflowStatus::Completed,
        "{}",
        retried.error
    );
    assert_ne!(retried.run_id, failed.run_id, "a new run");
    assert_eq!(
        host.run(&failed_only, "f", &failing).await.unwrap(),
        retried
    );
    let replaced = host.run(&always, "f", &failing).await.unwrap();
    assert_eq!(replaced.status, WorkflowStatus::Failed);
    assert_ne!(replaced.run_id, retried.run_id);

    // An id holding a record, not a run, is refused unless duplicates are allowed.
    let mut record = left_running(&host, &reject.identity(), "rec", &json!(1), vec![]).await;
    record.history.clear();
    host.store().save(record).await.unwrap();
    for module in [&reject, &failed_only] {
        let refused = host.run(module, "rec", &fine).await;
        assert!(
            matches!(refused, Err(ExecuteError::NotARun(_))),
            "{refused:?}"
        );
    }
    assert!(host.query("rec").await.unwrap().unwrap().history.is_empty());
    let over = host.run(&always, "rec", &fine).await.unwrap();
    assert_eq!(over.status, WorkflowStatus::Completed);
}

async fn starts_over_http_say_whether_they_started_and_give_one_run(host: Host) {
    let module = host.load_module_file(guests::PIPELINE).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, wf_http::router(host, module))
            .await
            .unwrap()
    });
    let http = reqwest::Client::new();
    let post = |id: &str, body: &str| {
        http.post(format!("{url}/workflows/{id}"))
            .body(body.to_owned())
            .send()
    };
    let first = post("p-1", "\"x\"").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()[wf_http::STARTED_HEADER], "true");
    let first: Value = first.json().await.unwrap();
    let again = post("p-1", "\"y\"").await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()[wf_http::STARTED_HEADER], "false");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let request = post("p-burst", &format!("\"{i}\""));
            tokio::spawn(async move {
                let response = request.await.unwrap();
                assert_eq!(response.status(), 200);
                let started = response.headers()[wf_http::STARTED_HEADER] == "true";
                (started, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ended = Vec::new();
    for task in tasks {
        ended.push(task.await.unwrap());
    }
    assert_eq!(ended.iter().filter(|(started, _)| *started).count(), 1);
    let run_ids: std::collections::BTreeSet<_> = ended
        .iter()
        .map(|(_, state)| state["RunID"].to_string())
        .collect();
    assert_eq!(run_ids.len(), 1, "one run: {run_ids:?}");
    server.abort();
}
