//! Real guests, compiled from this workspace, run through the real host: the
//! guest suite on the Rust guests (the same cases the Python and JavaScript
//! guests pass), the Rust-only `order-pipeline` example, and one test per
//! built guest, named after it.

use wf_host::HostConfig;
use wf_tests::memory_host;

wf_tests::guest_suite!(wf_tests::suite::RUST);

/// The Rust SDK's `load_view`, and the earlier packed form that modules
/// built against it call (`load-packed`, `save-packed`, a record of two
/// lists), read every field of a stored state, on both backends.
mod packed_reads {
    use serde_json::{Value, json};
    use wf_host::Host;
    use wf_host::model::{WorkflowState, WorkflowStatus};
    use wf_tests::suite::every_shape_state;
    use wf_tests::{guest_json, guests, script};

    wf_tests::on_every_backend!(
        a_view_reads_every_field_as_stored,
        the_earlier_packed_calls_read_and_write_every_field
    );

    /// Stores `every_shape_state(id)`, runs the store-ops guest with `ops`,
    /// and returns the stored state and the ops' outcomes.
    async fn stored_then_run(host: &Host, id: &str, ops: Value) -> (WorkflowState, Vec<Value>) {
        let stored = every_shape_state(id);
        host.store().save(stored.clone()).await.unwrap();
        let module = host.load_module_file(guests::STORE_OPS).unwrap();
        let (state, outcomes) = script(host, &module, "reader", ops).await;
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        (stored, outcomes)
    }

    /// Every accessor of the view (not its owned copy) returns the field
    /// as stored: text beyond ASCII, empty and absent fields, every event
    /// kind. An absent id is no view.
    async fn a_view_reads_every_field_as_stored(host: Host) {
        let id = "view/ü✓𝄞";
        let ops = json!([{"op": "view", "id": id}, {"op": "view", "id": "view/absent"}]);
        let (stored, outcomes) = stored_then_run(&host, id, ops).await;
        assert_eq!(outcomes[0]["ok"], guest_json(&stored));
        assert_eq!(outcomes[1], json!({"ok": null}));
    }

    async fn the_earlier_packed_calls_read_and_write_every_field(host: Host) {
        let id = "earlier/ü✓𝄞";
        let ops = json!([
            {"op": "load_packed_record", "id": id},
            {"op": "load_packed_record", "id": "earlier/absent"},
            {"op": "resave_packed_record", "id": id, "as_id": "earlier/copy-é"},
        ]);
        let (stored, outcomes) = stored_then_run(&host, id, ops).await;
        let results: Vec<_> = stored.history.iter().map(|e| e.result.clone()).collect();
        assert_eq!(
            outcomes[0]["ok"],
            json!({
                "workflow_id": id,
                "run_id": stored.run_id,
                "status": "failed",
                "input": stored.input,
                "result": null,
                "error": stored.error,
                "created_at": stored.created_at.seconds,
                "event_results": results,
            })
        );
        assert_eq!(outcomes[1], json!({"ok": null}));
        assert!(outcomes[2]["ok"].as_u64().is_some(), "{}", outcomes[2]);
        let copy = host.store().load("earlier/copy-é").await.unwrap().unwrap();
        let mut expected = stored.clone();
        expected.workflow_id = "earlier/copy-é".into();
        assert_eq!(*copy, expected);
    }
}

/// The Rust-only example, on both backends.
mod order_pipeline_example {
    use serde_json::json;
    use wf_host::model::WorkflowStatus;
    use wf_tests::{guests, result_json};

    wf_tests::on_every_backend!(order_pipeline_saves_steps_and_counts_siblings_by_status);

    async fn order_pipeline_saves_steps_and_counts_siblings_by_status(host: wf_host::Host) {
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

/// Every guest the artifacts crate builds has a test here named after it,
/// which loads the guest into a host and runs it once as its documentation
/// says: a guest added to the build without one does not compile
/// (wasmtime's `assert_test_exists`).
mod each_guest {
    macro_rules! assert_test_exists {
        ($guest:ident) => {
            #[expect(unused_imports, reason = "only the name's existence is checked")]
            use self::$guest as _;
        };
    }
    wf_test_artifacts::foreach_guest!(assert_test_exists);

    use serde_json::{Value, json};
    use wf_host::model::WorkflowStatus;
    use wf_host::{DirGrant, HostConfig, ModuleOptions};
    use wf_tests::{guests, memory_host, result_json, stored_ids};

    async fn runs(path: &str, input: Value) -> Value {
        let host = memory_host(HostConfig::default());
        let module = host.load_module_file(path).unwrap();
        let state = host.run(&module, "once", &input.to_string()).await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        result_json(&state)
    }

    #[tokio::test]
    async fn pipeline() {
        assert_eq!(runs(guests::PIPELINE, json!("x")).await, "completed: x");
    }

    #[tokio::test]
    async fn order_pipeline() {
        let order = json!({"customer": "ada", "items": [{"sku": "A-1", "quantity": 3, "price_cents": 100}]});
        assert_eq!(
            runs(guests::ORDER_PIPELINE, order).await["total_cents"],
            300
        );
    }

    #[tokio::test]
    async fn ledger() {
        let post = json!({"action": "post", "account": "bob", "amounts": [4, 5]});
        assert_eq!(runs(guests::LEDGER, post).await["balance"], 9);
    }

    #[tokio::test]
    async fn store_ops() {
        let outcomes = runs(guests::STORE_OPS, json!([{"op": "list"}])).await;
        assert_eq!(outcomes, json!([{"ok": ["once"]}]));
    }

    #[tokio::test]
    async fn sandbox_probe() {
        let outcomes = runs(guests::SANDBOX_PROBE, json!([{"op": "env"}])).await;
        assert_eq!(outcomes[0]["ok"]["vars"], json!([]), "{outcomes}");
    }

    #[tokio::test]
    async fn durable() {
        let dir = std::env::temp_dir().join(format!("wf-durable-once-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = memory_host(HostConfig::default());
        let options = ModuleOptions::default().grant(DirGrant::read_write(&dir, "/work"));
        let module = host
            .load_module_file_with(guests::DURABLE, options)
            .unwrap();
        let input = json!({"dir": "/work", "order": "o-1", "cents": 5, "no_wait": true});
        let state = host.run(&module, "once", &input.to_string()).await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        let charged = std::fs::read_to_string(dir.join("charge.log")).unwrap();
        assert_eq!(charged.lines().count(), 1, "{charged}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn soak() {
        let host = memory_host(HostConfig::default());
        let module = host.load_module_file(guests::SOAK).unwrap();
        let input = json!({"prefix": "soak/", "generation": 1, "keys": 3, "ops": 9});
        let state = host.run(&module, "once", &input.to_string()).await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        assert_eq!(result_json(&state)["acked"], 9, "{:?}", state.result);
        assert!(
            stored_ids(&host)
                .await
                .iter()
                .any(|id| id.starts_with("soak/k"))
        );
    }

    #[tokio::test]
    async fn steps() {
        assert_eq!(runs(guests::STEPS, json!({"steps": 3})).await, 5);
    }

    #[tokio::test]
    async fn waits() {
        let slept = runs(guests::WAITS, json!({"op": "sleep", "ms": 10})).await;
        assert_eq!(slept, json!({"slept": 10}));
    }

    #[tokio::test]
    async fn approval() {
        let host = memory_host(HostConfig::default());
        let module = host.load_module_file(guests::APPROVAL).unwrap();
        let input = json!({"request": "a chair"}).to_string();
        let run = host.run(&module, "ask-1", &input);
        let approve = async {
            while !host.is_waiting("ask-1") {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            host.signal("ask-1", "approve", Some(r#"{"by":"ada"}"#))
                .await
                .unwrap();
        };
        let (state, ()) = tokio::join!(run, approve);
        let state = state.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        assert_eq!(result_json(&state), json!({"approved": true, "by": "ada"}));
    }
}
