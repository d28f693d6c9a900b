//! Recovery and durable activities, with real guests through the real
//! host on both backends: a run a crashed host left `running` is run again,
//! by the module that started it only, without repeating its completed
//! activities.

use std::path::Path;

use serde_json::{Value, json};
use wf_host::model::{EventType, HistoryEvent, ModuleIdentity, Timestamp, WorkflowStatus};
use wf_host::{DirGrant, ExecuteError, Host, Module, ModuleOptions, RecoverOptions};
use wf_tests::{guests, kinds, left_running, scratch_dir};

wf_tests::on_every_backend!(
    recover_reruns_left_running_workflows_without_repeating_completed_activities,
    an_activity_started_but_not_recorded_as_done_runs_again_on_recovery,
    a_failed_activity_is_recorded_and_fails_the_workflow,
    a_history_that_does_not_match_the_code_fails_as_non_deterministic,
    only_the_module_and_build_that_started_a_run_resume_it,
);

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
    let options = ModuleOptions::default().grant(DirGrant::read_write(dir, g));
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
        &module.identity(),
        "order-1",
        &input,
        vec![
            activity(EventType::ActivityStarted, "charge", None),
            activity(EventType::ActivityCompleted, "charge", Some("\"charge-7\"")),
        ],
    )
    .await;
    // Another module's workflow, outside the prefix: left alone.
    let other = ModuleIdentity::new("other.wasm", "0".repeat(64));
    left_running(&host, &other, "other-1", &json!(null), vec![]).await;
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
        .recover(&module, RecoverOptions::default().id_prefix("order-"))
        .await
        .unwrap()
        .resumed;
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
            EventType::TimerStarted,
            EventType::WorkflowSuspended,
            EventType::TimerFired,
            EventType::ActivityStarted,
            EventType::ActivityCompleted,
            EventType::WorkflowCompleted,
        ]
    );
    assert_eq!(state.history[6].duration_ns, 20_000_000);
    assert_eq!(state.history[8].result.as_deref(), Some("2"));
    assert_eq!(
        host.status("other-1").await.unwrap(),
        Some(WorkflowStatus::Running),
        "outside the prefix"
    );
    // Nothing left to recover under the prefix.
    assert!(
        host.recover(&module, RecoverOptions::default().id_prefix("order-"))
            .await
            .unwrap()
            .resumed
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
        &module.identity(),
        "order-2",
        &input,
        vec![activity(EventType::ActivityStarted, "charge", None)],
    )
    .await;
    let handles = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap()
        .resumed;
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
        &module.identity(),
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
        .unwrap()
        .resumed;
    let state = handles.into_iter().next().unwrap().result().await.unwrap();
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("non-deterministic"), "{}", state.error);
    assert!(state.error.contains("\"refund\""), "{}", state.error);
    assert!(!dir.join("charge.log").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs of two modules (and of another build of one) left `running` in one
/// store: each module's recovery resumes its own runs only, another
/// build's only when asked, and says what it left.
async fn only_the_module_and_build_that_started_a_run_resume_it(host: Host) {
    let pipeline = host.load_module_file(guests::PIPELINE).unwrap();
    let ledger = host.load_module_file(guests::LEDGER).unwrap();
    let older_pipeline = ModuleIdentity::new(pipeline.name(), "0".repeat(64));
    left_running(&host, &pipeline.identity(), "p-1", &json!("x"), vec![]).await;
    left_running(&host, &older_pipeline, "p-old", &json!("y"), vec![]).await;
    let post = json!({"action": "post", "account": "a", "amounts": [2]});
    left_running(&host, &ledger.identity(), "l-1", &post, vec![]).await;

    let recovery = host
        .recover(&ledger, RecoverOptions::default())
        .await
        .unwrap();
    assert_eq!(recovery.other_modules, 2, "the pipeline's runs are left");
    assert!(recovery.other_builds.is_empty() && recovery.failed.is_empty());
    let resumed: Vec<_> = recovery.resumed.iter().map(|h| h.id().to_owned()).collect();
    assert_eq!(resumed, ["l-1"]);
    for handle in recovery.resumed {
        let state = handle.result().await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    }

    let recovery = host
        .recover(&pipeline, RecoverOptions::default())
        .await
        .unwrap();
    assert_eq!(
        recovery.other_builds,
        ["p-old"],
        "another build's run is left"
    );
    assert!(recovery.left_some());
    let resumed: Vec<_> = recovery.resumed.iter().map(|h| h.id().to_owned()).collect();
    assert_eq!(resumed, ["p-1"]);
    for handle in recovery.resumed {
        handle.result().await.unwrap();
    }
    let left = host.query("p-old").await.unwrap().unwrap();
    assert_eq!(left.status, WorkflowStatus::Running);
    assert_eq!(left.run_module(), Some(older_pipeline));

    let recovery = host
        .recover(
            &pipeline,
            RecoverOptions::default().resume_other_builds(true),
        )
        .await
        .unwrap();
    let resumed: Vec<_> = recovery.resumed.iter().map(|h| h.id().to_owned()).collect();
    assert_eq!(resumed, ["p-old"]);
    let state = recovery
        .resumed
        .into_iter()
        .next()
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    // The run now names the build that resumed it.
    assert_eq!(state.run_module(), Some(pipeline.identity()));
}

/// A run that cannot be resumed (its history is at the store's bound, so
/// the resume's `workflow_started` event does not fit) is reported, and
/// the others are resumed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_be_resumed_is_reported_and_the_others_go_on() {
    let store = std::sync::Arc::new(wf_host::store::MemoryStore::with_limits(
        wf_host::store::StoreLimits::default().max_history_events(3),
    ));
    let host = Host::new(store).unwrap();
    let module = host.load_module_file(guests::PIPELINE).unwrap();
    let full = vec![
        activity(EventType::ActivityCompleted, "validate", Some("1")),
        activity(EventType::ActivityCompleted, "process", Some("2")),
    ];
    left_running(&host, &module.identity(), "a-full", &json!("x"), full).await;
    left_running(&host, &module.identity(), "b-fine", &json!("y"), vec![]).await;
    let recovery = host
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap();
    assert_eq!(recovery.failed.len(), 1, "{:?}", recovery.failed);
    assert_eq!(recovery.failed[0].0, "a-full");
    assert!(
        matches!(
            recovery.failed[0].1,
            ExecuteError::Store(wf_host::store::StoreError::TooLarge(_))
        ),
        "{}",
        recovery.failed[0].1
    );
    let resumed: Vec<_> = recovery.resumed.iter().map(|h| h.id().to_owned()).collect();
    assert_eq!(resumed, ["b-fine"]);
    assert!(recovery.left_some());
}
