//! Real guests, compiled from this workspace, run through the real host: the
//! examples, every store call and every store-error case reached from a guest,
//! and failures that must not take the host down. The cases that do not need a
//! special store run on both backends: in memory and on Kafka (librdkafka's
//! mock cluster).

use std::time::Duration;

use serde_json::{Value, json};
use wf_host::model::{EventType, WorkflowState, WorkflowStatus};
use wf_host::store::ListFilter;
use wf_host::{Host, HostConfig};
use wf_tests::{err_kind, guests, kinds, memory_host, result_json, script, stored_ids, wire_state};

wf_tests::on_every_backend!(
    pipeline_example_completes_and_records_each_step,
    order_pipeline_saves_steps_and_counts_siblings_by_status,
    ledger_loads_updates_and_deletes_entries,
    every_store_call_works_from_a_guest,
    a_trap_fails_that_workflow_and_the_host_serves_on,
    a_returned_error_fails_the_workflow_with_that_error,
    history_the_guest_saves_is_kept_in_the_final_state,
    a_result_over_the_value_limit_fails_the_workflow_cleanly,
    many_workflows_run_concurrently_on_one_host,
);

async fn pipeline_example_completes_and_records_each_step(host: Host) {
    let module = host.load_module_file(guests::PIPELINE).unwrap();
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

async fn order_pipeline_saves_steps_and_counts_siblings_by_status(host: Host) {
    let module = host.load_module_file(guests::ORDER_PIPELINE).unwrap();
    let order = json!({"customer": "ada", "items": [{"sku": "A-1", "quantity": 2, "price_cents": 450}, {"sku": "B-2", "quantity": 1, "price_cents": 100}]});
    let first = host
        .run(&module, "order-1", &order.to_string())
        .await
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Completed, "{first:?}");
    assert_eq!(result_json(&first)["total_cents"], 1000);
    let priced = first
        .history
        .iter()
        .find(|e| e.activity_name == "price")
        .expect("price step");
    assert_eq!(priced.result.as_deref(), Some("1000"));

    let empty = host
        .run(&module, "order-2", r#"{"customer":"bob","items":[]}"#)
        .await
        .unwrap();
    assert_eq!(empty.status, WorkflowStatus::Failed);
    assert_eq!(empty.error, "the order has no items");

    // A non-order workflow must not be counted.
    let pipeline = host.load_module_file(guests::PIPELINE).unwrap();
    host.run(&pipeline, "pipeline-x", r#""x""#).await.unwrap();

    let third = host
        .run(&module, "order-3", &order.to_string())
        .await
        .unwrap();
    let summary = result_json(&third);
    assert_eq!(summary["order"], "order-3");
    assert_eq!(summary["other_orders_completed"], 1, "{summary}");
    assert_eq!(summary["other_orders_failed"], 1, "{summary}");
    assert_eq!(summary["other_orders_running"], 0, "{summary}");
}

async fn ledger_loads_updates_and_deletes_entries(host: Host) {
    let module = host.load_module_file(guests::LEDGER).unwrap();
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
    let before = stored_ids(&host).await;
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
    let after: Vec<_> = stored_ids(&host)
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
    let left: Vec<_> = stored_ids(&host)
        .await
        .into_iter()
        .filter(|id| id.starts_with("ledger/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

async fn every_store_call_works_from_a_guest(host: Host) {
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let mut second = wire_state("b-2");
    second["status"] = json!("failed");
    let (state, outcomes) = script(
        &host,
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
        loaded,
        wire_state("a-1"),
        "the guest reads back exactly what it saved"
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

async fn a_trap_fails_that_workflow_and_the_host_serves_on(host: Host) {
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let (trapped, _) = script(
        &host,
        &module,
        "trap-1",
        json!([{"op": "save", "state": wire_state("before-trap")}, {"op": "trap"}]),
    )
    .await;
    assert_eq!(trapped.status, WorkflowStatus::Failed);
    assert!(trapped.error.contains("trapped"), "{}", trapped.error);
    assert!(
        trapped.error.contains("trap requested"),
        "the panic message is kept: {}",
        trapped.error
    );
    assert_eq!(
        kinds(&trapped),
        [EventType::WorkflowStarted, EventType::WorkflowFailed]
    );
    assert_eq!(trapped.history[1].error, trapped.error);
    // What the guest saved before trapping was acknowledged and stays.
    assert!(host.store().load("before-trap").await.unwrap().is_some());

    let (next, outcomes) = script(
        &host,
        &module,
        "after-trap",
        json!([{"op": "load", "id": "before-trap"}]),
    )
    .await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
    assert_eq!(outcomes[0]["ok"]["workflow_id"], "before-trap");
}

#[tokio::test]
async fn a_runaway_loop_hits_the_deadline_and_the_host_serves_on() {
    let host = memory_host(HostConfig {
        timeout: Duration::from_millis(300),
        ..HostConfig::default()
    });
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let (spun, _) = script(&host, &module, "spin-1", json!([{"op": "spin"}])).await;
    assert_eq!(spun.status, WorkflowStatus::Failed);
    assert!(spun.error.contains("deadline exceeded"), "{}", spun.error);
    let (next, _) = script(&host, &module, "after-spin", json!([{"op": "list"}])).await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
}

#[tokio::test]
async fn the_memory_limit_fails_that_workflow_and_the_host_serves_on() {
    let host = memory_host(HostConfig {
        memory_limit_bytes: 16 * 1024 * 1024,
        ..HostConfig::default()
    });
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
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
    assert!(big.error.contains("memory limit reached"), "{}", big.error);
    assert!(big.error.contains("trapped"), "{}", big.error);
    let (next, _) = script(
        &host,
        &module,
        "after-alloc",
        json!([{"op": "allocate", "mib": 1}]),
    )
    .await;
    assert_eq!(next.status, WorkflowStatus::Completed, "{}", next.error);
}

async fn a_returned_error_fails_the_workflow_with_that_error(host: Host) {
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let (failed, _) = script(
        &host,
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

async fn history_the_guest_saves_is_kept_in_the_final_state(host: Host) {
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let (state, outcomes) = script(
        &host,
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

#[tokio::test]
async fn a_module_that_is_not_a_workflow_component_is_refused_clearly() {
    let host = memory_host(HostConfig::default());
    let not_wasm = host
        .load_module_bytes("junk", b"not wasm at all")
        .unwrap_err();
    assert!(
        format!("{not_wasm:#}").contains("not a valid WebAssembly component"),
        "{not_wasm:#}"
    );
}

async fn many_workflows_run_concurrently_on_one_host(host: Host) {
    let host = std::sync::Arc::new(host);
    let module = host.load_module_file(guests::PIPELINE).unwrap();
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
        assert_eq!(state.status, WorkflowStatus::Completed);
        assert_eq!(state.result, Some(format!("\"completed: job {i}\"")));
        assert_eq!(state.history.len(), 5);
    }
    assert_eq!(stored_ids(&host).await.len(), 50);
}

async fn a_result_over_the_value_limit_fails_the_workflow_cleanly(host: Host) {
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
    let (state, _) = script(
        &host,
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

/// A store that fails calls on ids `fault/<case>/...` with that `store-error`
/// case and passes everything else to the memory store, so the tests can see
/// each case arrive in a guest.
#[derive(Debug, Default)]
struct FaultStore(wf_host::store::MemoryStore);

impl FaultStore {
    fn fault(workflow_id: &str) -> Result<(), wf_host::store::StoreError> {
        use wf_host::store::StoreError::*;
        let message = format!("injected for {workflow_id}");
        match workflow_id
            .strip_prefix("fault/")
            .and_then(|rest| rest.split('/').next())
        {
            Some("denied") => Err(Denied(message)),
            Some("unavailable") => Err(Unavailable(message)),
            Some("conflict") => Err(Conflict(message)),
            Some("internal") => Err(Internal(message)),
            _ => Ok(()),
        }
    }
}

#[wf_host::store::async_trait]
impl wf_host::store::WorkflowStore for FaultStore {
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<wf_host::store::Version>,
    ) -> Result<wf_host::store::Version, wf_host::store::StoreError> {
        Self::fault(&state.workflow_id)?;
        self.0.save_versioned(state, expected).await
    }
    async fn load_versioned(
        &self,
        id: &str,
    ) -> Result<Option<wf_host::store::Versioned>, wf_host::store::StoreError> {
        Self::fault(id)?;
        self.0.load_versioned(id).await
    }
    async fn list(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<std::sync::Arc<WorkflowState>>, wf_host::store::StoreError> {
        self.0.list(filter).await
    }
    async fn delete(&self, id: &str) -> Result<(), wf_host::store::StoreError> {
        Self::fault(id)?;
        self.0.delete(id).await
    }
    async fn close(&self) -> Result<(), wf_host::store::StoreError> {
        self.0.close().await
    }
    fn describe(&self) -> String {
        "fault-injecting memory store".into()
    }
}

#[tokio::test]
async fn every_backend_error_case_reaches_the_guest_as_its_store_error() {
    let host = Host::new(std::sync::Arc::new(FaultStore::default())).unwrap();
    let module = host.load_module_file(guests::STORE_OPS).unwrap();
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
