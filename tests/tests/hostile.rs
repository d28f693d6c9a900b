//! Hostile input and bounds, through real guests and the real host
//! on both backends. Every bad request gets its own specific error and writes
//! nothing: on Kafka the topic's end offsets are compared before and after, so
//! a stray record would show even if the cache hid it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wf_host::model::{ModuleIdentity, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::{MemoryStore, StoreError, StoreLimits, WorkflowStore};
use wf_host::{
    ExecuteError, ExecuteOptions, Host, HostConfig, ModuleLimits, ModuleOptions, RecoverOptions,
    WhenFull,
};
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
use wf_tests::{Backend, err_kind, guests, script, stored_ids, wire_state};

wf_tests::on_every_backend_with_topic!(
    every_hostile_store_call_from_a_guest_gets_its_error_and_writes_nothing,
    bytes_that_are_not_utf8_from_a_guest_fail_that_workflow_only,
    hostile_run_requests_are_refused_and_write_nothing,
);

/// The records a run adds to the topic: its `running` and its final state.
const RUN_RECORDS: i64 = 2;

/// JSON text nested `levels` deep.
fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

async fn every_hostile_store_call_from_a_guest_gets_its_error_and_writes_nothing(b: &Backend) {
    let host = &b.host;
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let before = b.records_written().await;
    let with_state = |id: &str, key: &str, value: Value| {
        let mut state = wire_state(id);
        state[key] = value;
        state
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        // Ids.
        (
            json!({"op": "save", "state": wire_state("")}),
            "invalid-argument",
            "/save: workflow ID is required",
        ),
        (
            json!({"op": "save", "state": wire_state(&"x".repeat(1025))}),
            "invalid-argument",
            "is 1025 bytes, over the 1024-byte limit",
        ),
        (
            json!({"op": "save", "state": wire_state("nul\u{0}id")}),
            "invalid-argument",
            "control character U+0000 at byte 3",
        ),
        (
            json!({"op": "save", "state": wire_state("new\nline")}),
            "invalid-argument",
            "control character U+000A",
        ),
        (
            json!({"op": "save", "state": wire_state("esc\u{1b}[0m")}),
            "invalid-argument",
            "control character U+001B",
        ),
        (
            json!({"op": "load", "id": ""}),
            "invalid-argument",
            "/load: workflow ID is required",
        ),
        (
            json!({"op": "load", "id": "x".repeat(1025)}),
            "invalid-argument",
            "1025 bytes",
        ),
        (
            json!({"op": "delete", "id": "del\u{7f}"}),
            "invalid-argument",
            "control character U+007F",
        ),
        // JSON fields.
        (
            json!({"op": "save", "state": wire_state("j-1"), "input_raw": "{not json"}),
            "invalid-argument",
            "Input is not valid JSON",
        ),
        (
            json!({"op": "save", "state": wire_state("j-2"), "result_raw": "[1,"}),
            "invalid-argument",
            "Result is not valid JSON",
        ),
        (
            json!({"op": "save", "state": wire_state("j-3"), "input_raw": "1 2"}),
            "invalid-argument",
            "Input is not valid JSON: trailing characters",
        ),
        (
            json!({"op": "save", "state": wire_state("j-4"), "input_raw": nested(10_001)}),
            "invalid-argument",
            "nesting deeper than 10000 levels",
        ),
        (
            json!({"op": "save", "state": wire_state("j-5"), "input_raw": "[1,]"}),
            "invalid-argument",
            "Input is not valid JSON",
        ),
        (
            json!({"op": "save", "state": wire_state("j-6"), "result_raw": "-"}),
            "invalid-argument",
            "Result is not valid JSON",
        ),
        // Sizes: a 2 MiB string, a history over its bound.
        (
            json!({"op": "save", "state": wire_state("big"), "input_bytes": 2 * 1024 * 1024}),
            "too-large",
            "over the 1048576-byte limit",
        ),
        (
            json!({"op": "save_history", "id": "h-1", "events": 10_001}),
            "too-large",
            "has 10001 history events, over the limit of 10000",
        ),
        // Timestamps.
        (
            json!({"op": "save", "state": with_state("t-1", "created_at", json!({"seconds": 253402300800i64, "nanoseconds": 0}))}),
            "invalid-argument",
            "CreatedAt",
        ),
        (
            // (`updated_at` is stamped by the SDK's save: not the guest's to get wrong.)
            json!({"op": "save", "state": with_state("t-2", "created_at", json!({"seconds": 0, "nanoseconds": 1_000_000_000u32}))}),
            "invalid-argument",
            "CreatedAt",
        ),
        (
            json!({"op": "save", "state": with_state("t-3", "created_at", json!({"seconds": i64::MIN, "nanoseconds": 0}))}),
            "invalid-argument",
            "CreatedAt",
        ),
        // List.
        (
            json!({"op": "list", "limit": 0}),
            "invalid-argument",
            "limit must be at least 1",
        ),
    ];
    let ops: Vec<Value> = cases.iter().map(|(op, _, _)| op.clone()).collect();
    let (state, outcomes) = script(host, &module, "errors", Value::Array(ops)).await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(outcomes.len(), cases.len());
    for ((op, kind, needle), outcome) in cases.iter().zip(&outcomes) {
        let (got_kind, message) = err_kind(outcome);
        let op = &op["op"];
        assert_eq!(got_kind, *kind, "{op}: {message}");
        assert!(
            message.contains(needle),
            "{op}: {message:?} should contain {needle:?}"
        );
    }
    assert_eq!(stored_ids(host).await, ["errors"]);
    assert_written(b, before, RUN_RECORDS).await;
}

async fn bytes_that_are_not_utf8_from_a_guest_fail_that_workflow_only(b: &Backend) {
    let host = &b.host;
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let before = b.records_written().await;
    let (state, _) = script(
        host,
        &module,
        "raw-bytes",
        json!([{"op": "save_non_utf8_id"}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.to_lowercase().contains("utf-8"),
        "the error says the string was not UTF-8: {}",
        state.error
    );
    assert_eq!(stored_ids(host).await, ["raw-bytes"]);
    assert_written(b, before, RUN_RECORDS).await;
    // The host serves on.
    let (next, outcomes) =
        script(host, &module, "after", json!([{"op": "echo", "bytes": 2}])).await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
    assert_eq!(outcomes, [json!({"ok": "xx"})]);
}

async fn hostile_run_requests_are_refused_and_write_nothing(b: &Backend) {
    let host = &b.host;
    let module = host.load_module_file(guests::PIPELINE).unwrap();
    let before = b.records_written().await;
    let long_id = "x".repeat(1025);
    let deep = nested(10_001);
    let invalid: [(&str, &str, &str); 10] = [
        ("", "1", "workflow ID is required"),
        (&long_id, "1", "1025 bytes"),
        ("a\0b", "1", "control character U+0000"),
        ("a\nb", "1", "control character U+000A"),
        ("tab\there", "1", "control character U+0009"),
        ("ok", "{oops", "input is not valid JSON"),
        ("ok", "", "input is not valid JSON"),
        ("ok", "1 2", "trailing characters"),
        ("ok", &deep, "nesting deeper than 10000 levels"),
        ("ok", "[1,]", "input is not valid JSON"),
    ];
    for (id, input, needle) in invalid {
        let refused = host.run(&module, id, input).await.unwrap_err();
        assert!(
            matches!(&refused, ExecuteError::InvalidRequest(m) if m.contains(needle)),
            "{:?} {:?}: {refused:?} should be invalid and mention {needle:?}",
            id.get(..20).unwrap_or(id),
            input.get(..20).unwrap_or(input)
        );
        let handle = host
            .execute(&module, ExecuteOptions::new(input).id(id))
            .await;
        assert!(matches!(handle, Err(ExecuteError::InvalidRequest(_))));
    }
    // A 2 MiB input is valid JSON but over the value limit: the `running`
    // save is refused by the store.
    let huge = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
    let refused = host.run(&module, "huge", &huge).await.unwrap_err();
    assert!(
        matches!(&refused, ExecuteError::Store(StoreError::TooLarge(m)) if m.contains("over the 1048576-byte limit")),
        "{refused:?}"
    );
    assert!(stored_ids(host).await.is_empty());
    assert!(host.running().is_empty(), "no id stays claimed");
    assert_written(b, before, 0).await;
}

/// On Kafka, exactly `expected` records were added to the topic since `before`.
async fn assert_written(b: &Backend, before: Option<i64>, expected: i64) {
    if let (Some(before), Some(after)) = (before, b.records_written().await) {
        assert_eq!(after - before, expected, "records added to the topic");
    }
}

/// A store of each kind with `limits`, with what keeps it alive.
async fn stores_with(limits: StoreLimits) -> Vec<(Arc<dyn WorkflowStore>, Option<DevCluster>)> {
    let cluster = DevCluster::start("wf-bounds", 2).unwrap();
    let kafka = KafkaStore::open(
        KafkaConfig::new(cluster.bootstrap_servers())
            .topic("wf-bounds")
            .limits(limits),
    )
    .await
    .unwrap();
    vec![
        (Arc::new(MemoryStore::with_limits(limits)), None),
        (Arc::new(kafka), Some(cluster)),
    ]
}

/// A `running` state of `id` with `input`, as a host that stopped leaves it.
fn running_state(started_by: &ModuleIdentity, id: &str, input: &str) -> WorkflowState {
    let now = Timestamp::now();
    WorkflowState {
        workflow_id: id.to_owned(),
        run_id: format!("run-of-{id}"),
        status: WorkflowStatus::Running,
        input: Some(input.to_owned()),
        result: None,
        error: String::new(),
        history: vec![started_by.started_event(1, now)],
        created_at: now,
        updated_at: now,
    }
}

/// A state of about 700 bytes in memory.
fn small(id: &str) -> WorkflowState {
    let nobody = ModuleIdentity::new("none.wasm", "0".repeat(64));
    running_state(&nobody, id, &format!("\"{}\"", "p".repeat(500)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cache_bound_new_ids_are_refused_and_existing_ones_go_on() {
    let limits = StoreLimits::default().max_cache_bytes(20 * 1024);
    for (store, _cluster) in stores_with(limits).await {
        let mut kept = 0;
        let refusal = loop {
            match store.save(small(&format!("c-{kept:03}"))).await {
                Ok(()) => kept += 1,
                Err(e) => break e,
            }
            assert!(kept < 1000, "{}: the bound never refused", store.describe());
        };
        assert!(
            matches!(&refusal, StoreError::Unavailable(m) if m.contains("cache is full") && m.contains("20480-byte cache limit")),
            "{refusal:?}"
        );
        assert!(kept >= 10, "{kept} states fit in 20 KiB");
        eprintln!(
            "cache bound: {kept} states of ~700 B fit in 20 KiB on {}",
            store.describe()
        );
        let ids = wf_tests::list_all(&*store).await;
        assert_eq!(ids.len(), kept, "the refused save wrote nothing");
        // An existing id still saves (a running workflow can finish) ...
        let mut update = small("c-000");
        update.status = WorkflowStatus::Completed;
        store
            .save(update)
            .await
            .expect("an existing id saves past the bound");
        // ... and a delete makes room for a new one.
        store.delete("c-001").await.unwrap();
        store
            .save(small("new-after-delete"))
            .await
            .expect("room after a delete");
        store.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_over_the_cache_bound_opens_and_refuses_new_ids() {
    let cluster = DevCluster::start("wf-bounds", 2).unwrap();
    let config = KafkaConfig::new(cluster.bootstrap_servers()).topic("wf-bounds");
    let writer = KafkaStore::open(config.clone()).await.unwrap();
    for i in 0..100 {
        writer.save(small(&format!("r-{i:03}"))).await.unwrap();
    }
    writer.close().await.unwrap();
    let bounded =
        KafkaStore::open(config.limits(StoreLimits::default().max_cache_bytes(10 * 1024)))
            .await
            .expect("the log is the truth: a replay past the bound still opens");
    assert_eq!(bounded.replay_report().live, 100);
    assert!(bounded.cache_bytes() > 10 * 1024);
    let ends = bounded.end_offsets().await.unwrap();
    let refused = bounded.save(small("one-more")).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(m) if m.contains("cache is full")),
        "{refused:?}"
    );
    assert_eq!(
        bounded.end_offsets().await.unwrap(),
        ends,
        "nothing written"
    );
    bounded
        .save(small("r-007"))
        .await
        .expect("existing ids still save");
    bounded.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_at_its_cache_bound_refuses_new_workflows_clearly() {
    let store = Arc::new(MemoryStore::with_limits(
        StoreLimits::default().max_cache_bytes(8 * 1024),
    ));
    let host = Host::new(store).unwrap();
    let module = host.load_module_file(guests::PIPELINE).unwrap();
    let mut ran = 0;
    let refused = loop {
        match host.run(&module, &format!("p-{ran:03}"), "\"job\"").await {
            Ok(state) => {
                assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
                ran += 1;
            }
            Err(e) => break e,
        }
        assert!(ran < 1000, "the bound never refused");
    };
    assert!(
        matches!(&refused, ExecuteError::Store(StoreError::Unavailable(m)) if m.contains("cache is full")),
        "{refused:?}"
    );
    assert!(ran > 0);
    assert_eq!(stored_ids(&host).await.len(), ran);
    assert!(host.running().is_empty());
}

/// A host whose second workflow would exceed a bound, with `spin` running
/// until canceled.
async fn with_one_spinning(
    config: HostConfig,
    module_limit: Option<usize>,
) -> (Host, wf_host::Module, wf_host::WorkflowHandle) {
    let host = wf_tests::memory_host(config);
    let mut limits = ModuleLimits::default();
    limits.max_running = module_limit;
    let options = ModuleOptions::default().limits(limits);
    let module = host
        .load_module_file_with(guests::STORE_OPS, options)
        .unwrap();
    let spinning = host
        .execute(
            &module,
            ExecuteOptions::new(json!([{"op": "spin"}]).to_string())
                .id("spin")
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    (host, module, spinning)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_host_or_module_bound_a_run_is_refused_or_waits_as_configured() {
    let echo = json!([{"op": "echo", "bytes": 1}]).to_string();
    let refuse = HostConfig::default().when_full(WhenFull::Refuse);
    // The host's bound, refusing.
    let (host, module, spinning) = with_one_spinning(refuse.clone().max_running(1), None).await;
    let busy = host.run(&module, "second", &echo).await.unwrap_err();
    assert!(
        matches!(&busy, ExecuteError::Busy(m) if m.contains("the host is running its limit of 1 workflows")),
        "{busy:?}"
    );
    assert_eq!(
        stored_ids(&host).await,
        ["spin"],
        "the refused run wrote nothing"
    );
    assert!(!host.is_running("second"));
    host.cancel("spin").unwrap();
    spinning.result().await.unwrap();
    assert_eq!(
        host.run(&module, "second", &echo).await.unwrap().status,
        WorkflowStatus::Completed,
        "a slot is free again"
    );

    // The module's bound, refusing, while the host has room.
    let (host, module, spinning) = with_one_spinning(refuse, Some(1)).await;
    let busy = host
        .execute(&module, ExecuteOptions::new(echo.clone()).id("second"))
        .await
        .unwrap_err();
    assert!(
        matches!(&busy, ExecuteError::Busy(m) if m.contains("module store_ops.wasm is running its limit of 1 workflows")),
        "{busy:?}"
    );
    // Another module of the same host still runs.
    let other = host.load_module_file(guests::PIPELINE).unwrap();
    let done = host.run(&other, "other", "\"x\"").await.unwrap();
    assert_eq!(done.status, WorkflowStatus::Completed);
    host.cancel("spin").unwrap();
    spinning.result().await.unwrap();

    // The module's bound, waiting: the second starts only once the first ends.
    let (host, module, spinning) = with_one_spinning(HostConfig::default(), Some(1)).await;
    let second = tokio::spawn({
        let (host, module, echo) = (host.clone(), module.clone(), echo.clone());
        async move { host.run(&module, "second", &echo).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        host.query("second").await.unwrap().is_none(),
        "a waiting run has written nothing"
    );
    assert!(!second.is_finished());
    host.cancel("spin").unwrap();
    assert_eq!(
        spinning.result().await.unwrap().status,
        WorkflowStatus::Canceled
    );
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.status, WorkflowStatus::Completed, "{}", second.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_waits_for_slots_even_on_a_host_that_refuses() {
    let store: Arc<dyn WorkflowStore> = Arc::new(MemoryStore::new());
    let host = Host::with_config(
        store.clone(),
        HostConfig::default()
            .max_running(2)
            .when_full(WhenFull::Refuse),
    )
    .unwrap();
    let module = host.load_module_file(guests::PIPELINE).unwrap();
    for i in 0..5 {
        let left = running_state(&module.identity(), &format!("left-{i}"), "\"x\"");
        store.save(left).await.unwrap();
    }
    let handles = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap()
        .resumed;
    assert_eq!(handles.len(), 5);
    for handle in handles {
        assert_eq!(
            handle.result().await.unwrap().status,
            WorkflowStatus::Completed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_state_over_the_history_bound_still_ends_the_run() {
    let store = Arc::new(MemoryStore::with_limits(
        StoreLimits::default().max_history_events(5),
    ));
    let host = Host::new(store).unwrap();
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    // The guest records 4 events on its own state (5 with the start): the
    // host's `workflow_completed` would make 6.
    let record = |n: u32| json!({"op": "record", "activity": format!("a{n}")});
    let (state, _) = script(
        &host,
        &module,
        "long",
        json!([record(1), record(2), record(3), record(4)]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state
            .error
            .contains("the store refused the workflow's final state")
            && state.error.contains("history events, over the limit of 5")
            && state.error.contains("the history it recorded was dropped"),
        "{}",
        state.error
    );
    let stored = host.query("long").await.unwrap().unwrap();
    assert_eq!(stored.status, WorkflowStatus::Failed, "not left running");
    assert!(stored.history.len() <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_bound_to_its_own_store_sees_and_writes_only_that_store() {
    let (host, _cluster) = wf_tests::kafka_host(HostConfig::default()).await;
    let tenant_cluster = DevCluster::start("wf-tenant-a", 2).unwrap();
    let tenant: Arc<dyn WorkflowStore> = Arc::new(
        KafkaStore::open(KafkaConfig::new(tenant_cluster.bootstrap_servers()).topic("wf-tenant-a"))
            .await
            .unwrap(),
    );
    let bound = host
        .load_module_file_with(
            guests::STORE_OPS,
            ModuleOptions::default().store(tenant.clone()),
        )
        .unwrap();
    let shared = host.load_module_file(guests::STORE_OPS).unwrap();

    let (state, _) = script(
        &host,
        &shared,
        "shared-1",
        json!([{"op": "save", "state": wire_state("shared-doc")}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    let (state, outcomes) = script(
        &host,
        &bound,
        "tenant-1",
        json!([
            {"op": "save", "state": wire_state("tenant-doc")},
            {"op": "load", "id": "shared-doc"},
            {"op": "list"},
        ]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    assert_eq!(
        outcomes[1],
        json!({"ok": null}),
        "the host's store is not visible"
    );
    assert_eq!(outcomes[2], json!({"ok": ["tenant-1", "tenant-doc"]}));

    assert_eq!(
        wf_tests::list_all(&*tenant).await,
        ["tenant-1", "tenant-doc"]
    );
    assert_eq!(stored_ids(&host).await, ["shared-1", "shared-doc"]);
    assert!(Arc::ptr_eq(host.store_for(&bound), &tenant));
    assert!(host.query("tenant-1").await.unwrap().is_none());

    // Recovery of the bound module reads only its store.
    tenant
        .save(running_state(&bound.identity(), "tenant-left", "[]"))
        .await
        .unwrap();
    host.store()
        .save(running_state(&bound.identity(), "shared-left", "[]"))
        .await
        .unwrap();
    let handles = host
        .recover(&bound, RecoverOptions::default())
        .await
        .unwrap()
        .resumed;
    let ids: Vec<&str> = handles.iter().map(|h| h.id()).collect();
    assert_eq!(ids, ["tenant-left"]);
    for handle in handles {
        handle.result().await.unwrap();
    }
    let finished = tenant.load("tenant-left").await.unwrap().unwrap();
    assert_eq!(finished.status, WorkflowStatus::Completed);
    let untouched = host.store().load("shared-left").await.unwrap().unwrap();
    assert_eq!(untouched.status, WorkflowStatus::Running);
}

/// A workflow flooded with signals stays within its history bound: past the
/// bound (less the room kept for its own steps and its end) each signal is
/// refused with `too-large`, writing nothing, and the workflow still ends.
/// Invalid signals (empty name, a payload that is not JSON, one over the
/// value limit) get their own errors and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_signals_stays_within_the_history_bound() {
    let limits = StoreLimits::default()
        .max_history_events(400)
        .max_value_bytes(256 * 1024);
    for (store, _cluster) in stores_with(limits).await {
        let host = Host::new(store.clone()).unwrap();
        let module = host.load_module_file(guests::WAITS).unwrap();
        let handle = host
            .execute(
                &module,
                ExecuteOptions::new(r#"{"op":"signal","name":"go","timeout_ms":null}"#).id("flood"),
            )
            .await
            .unwrap();
        while !host.is_waiting("flood") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = store.load_versioned("flood").await.unwrap().unwrap();
        for (name, payload, kind) in [
            ("", None, "invalid workflow request"),
            ("noise", Some("{not json"), "invalid workflow request"),
            ("noise", Some(r#""x""#), ""),
        ] {
            let outcome = host.signal("flood", name, payload).await;
            match kind {
                "" => assert!(outcome.is_ok(), "{outcome:?}"),
                kind => assert!(
                    outcome
                        .as_ref()
                        .is_err_and(|e| e.to_string().starts_with(kind)),
                    "{name:?} {payload:?}: {outcome:?}"
                ),
            }
        }
        let huge = format!("\"{}\"", "x".repeat(300 * 1024));
        match host.signal("flood", "noise", Some(&huge)).await {
            Err(ExecuteError::Store(StoreError::TooLarge(e))) => {
                assert!(e.contains("limit"), "{e}")
            }
            other => panic!("a payload over the value limit: {other:?}"),
        }
        let mut accepted = 1;
        let mut refused = 0;
        for n in 0..10_000 {
            match host.signal("flood", "noise", Some(&n.to_string())).await {
                Ok(_) => accepted += 1,
                Err(ExecuteError::Store(StoreError::TooLarge(e))) => {
                    assert!(e.contains("kept for the workflow's own steps"), "{e}");
                    refused += 1;
                }
                Err(e) => panic!("signal {n}: {e}"),
            }
        }
        let flooded = store.load_versioned("flood").await.unwrap().unwrap();
        assert!(
            flooded.state.history.len() <= 400 - 16,
            "{}",
            flooded.state.history.len()
        );
        assert_eq!(
            flooded.state.history.len(),
            before.state.history.len() + accepted,
            "every accepted signal, and only those, is recorded"
        );
        assert_eq!(accepted + refused, 10_001);
        // Past the bound every signal is refused, the one it waits for
        // too; the room kept lets it still end (here, canceled).
        host.cancel("flood").unwrap();
        let ended = handle.result().await.unwrap();
        assert_eq!(ended.status, WorkflowStatus::Canceled);
    }
}
