//! Waiting workflows through the real host, the same for every guest
//! language (each language's `waits` test guest and `approval` example):
//! signals, durable timers and suspension, retries, queries, and what
//! survives a host restart. Run in the guest suite
//! ([`guest_suite!`](crate::guest_suite)), on both backends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wf_host::model::{EventType, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::{ExecuteError, ExecuteOptions, Host, Module, QueryError, RecoverOptions};

use crate::result_json;
use crate::suite::{Language, load};

/// Starts `input` on `module` as `id`, and returns its handle.
async fn start(host: &Host, module: &Module, id: &str, input: Value) -> wf_host::WorkflowHandle {
    host.execute(module, ExecuteOptions::new(input.to_string()).id(id))
        .await
        .unwrap_or_else(|e| panic!("starting {id}: {e}"))
}

/// The `waits` guest's input to wait for the signal `go`, at most
/// `timeout_ms` when given.
fn waits_for_go(timeout_ms: Option<u64>) -> Value {
    json!({"op": "signal", "name": "go", "timeout_ms": timeout_ms})
}

/// Starts `input` as `id` and waits until it is suspended: its handle and
/// its stored state then.
async fn start_suspended(
    host: &Host,
    module: &Module,
    id: &str,
    input: Value,
) -> (wf_host::WorkflowHandle, Arc<WorkflowState>) {
    let handle = start(host, module, id, input).await;
    (handle, until_suspended(host, id).await)
}

/// Waits until `id` is suspended on `host`, and returns its stored state.
async fn until_suspended(host: &Host, id: &str) -> Arc<WorkflowState> {
    let clock = Instant::now();
    loop {
        if host.is_waiting(id) {
            let state = host.query(id).await.unwrap().expect("stored");
            assert!(state.suspended().is_some(), "{:?}", state.history.last());
            return state;
        }
        assert!(
            clock.elapsed() < Duration::from_secs(60),
            "{id} did not suspend: {:?}",
            host.query(id).await.unwrap().map(|s| s.history.clone())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A host on `host`'s store after `host` stopped (its runs handed over),
/// with the `waits` guest: what its recovery found (with `options`): how
/// many runs it resumed at once and kept waiting; and the final state of
/// the one run it took up, once that ends.
async fn restarted(
    host: &Host,
    lang: &Language,
    options: RecoverOptions,
) -> (Host, Module, (usize, usize), WorkflowState) {
    let restarted = Host::with_config(host.store().clone(), lang.config()).unwrap();
    let module = load(&restarted, lang.waits);
    let mut recovery = restarted.recover(&module, options).await.unwrap();
    let found = (recovery.resumed.len(), recovery.waiting.len());
    assert_eq!(found.0 + found.1, 1, "one run taken up");
    let handle = match recovery.resumed.pop() {
        Some(handle) => handle,
        None => restarted
            .handle(&recovery.waiting[0])
            .expect("a handle on a waiting run"),
    };
    let state = handle.result().await.unwrap();
    (restarted, module, found, state)
}

/// The history's events of `kind`.
fn count(state: &WorkflowState, kind: EventType) -> usize {
    state.history.iter().filter(|e| e.kind == kind).count()
}

/// The step events of the history (what the SDKs write), by kind and name.
fn steps(state: &WorkflowState) -> Vec<(EventType, String)> {
    state
        .history
        .iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventType::WorkflowStarted
                    | EventType::WorkflowCompleted
                    | EventType::WorkflowFailed
                    | EventType::WorkflowCanceled
                    | EventType::WorkflowSuspended
                    | EventType::SignalReceived
            )
        })
        .map(|e| {
            let name = if e.activity_name.is_empty() {
                e.signal_name.clone()
            } else {
                e.activity_name.clone()
            };
            (e.kind, name)
        })
        .collect()
}

/// A completed state's result, with a clear message otherwise.
fn completed(state: &WorkflowState) -> Value {
    assert_eq!(
        state.status,
        WorkflowStatus::Completed,
        "{}: {:?}",
        state.error,
        state.history
    );
    result_json(state)
}

/// A signal sent right after the start, while the run is live, is
/// delivered once; the run's own saves keep it.
pub async fn a_signal_sent_while_the_workflow_runs_is_delivered_once(host: &Host, lang: &Language) {
    let module = load(host, lang.waits);
    let handle = start(host, &module, "w-live", waits_for_go(None)).await;
    host.signal("w-live", "go", Some(r#"{"n":1}"#))
        .await
        .unwrap();
    let state = handle.result().await.unwrap();
    assert_eq!(completed(&state), json!({"payload": {"n": 1}}));
    assert_eq!(count(&state, EventType::SignalReceived), 1);
    let stored = host.query("w-live").await.unwrap().unwrap();
    assert_eq!(*stored, state);
}

/// A workflow waiting for a signal is suspended (no instance, its state
/// says so), and the signal wakes it; the handle of its start follows it.
pub async fn a_signal_wakes_a_suspended_workflow_and_is_delivered_once(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    let (handle, suspended) = start_suspended(host, &module, "w-sus", waits_for_go(None)).await;
    assert_eq!(suspended.status, WorkflowStatus::Running);
    assert!(!host.is_running("w-sus"), "no instance while suspended");
    let waits = suspended.suspended().unwrap();
    assert_eq!(waits.signals, ["go"]);
    assert_eq!(waits.wake_at, None);
    // Another signal name does not wake it, nor is it delivered.
    host.signal("w-sus", "other", Some("7")).await.unwrap();
    host.signal("w-sus", "go", Some(r#""yes""#)).await.unwrap();
    let state = handle.result().await.unwrap();
    assert_eq!(completed(&state), json!({"payload": "yes"}));
    assert_eq!(count(&state, EventType::SignalReceived), 2);
    // Unknown and ended workflows are refused, writing nothing.
    assert!(matches!(
        host.signal("w-none", "go", None).await,
        Err(ExecuteError::NotFound(_))
    ));
    let before = host.query("w-sus").await.unwrap();
    assert!(matches!(
        host.signal("w-sus", "go", None).await,
        Err(ExecuteError::Ended(_, WorkflowStatus::Completed))
    ));
    assert_eq!(host.query("w-sus").await.unwrap(), before);
}

/// A wait with a timeout ends at its due time, with the timer recorded.
pub async fn a_wait_times_out_at_its_due_time_and_later_signals_are_refused(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    let clock = Instant::now();
    let (handle, suspended) = start_suspended(host, &module, "w-to", waits_for_go(Some(400))).await;
    assert!(suspended.suspended().unwrap().wake_at.is_some());
    let state = handle.result().await.unwrap();
    assert!(clock.elapsed() >= Duration::from_millis(400));
    assert_eq!(completed(&state), json!({"timeout": true}));
    assert_eq!(
        steps(&state),
        [
            (EventType::TimerStarted, "go".to_owned()),
            (EventType::TimerFired, "go".to_owned())
        ]
    );
    assert!(matches!(
        host.signal("w-to", "go", None).await,
        Err(ExecuteError::Ended(..))
    ));
}

/// `sleep` suspends the workflow, and its timer fires once.
pub async fn sleep_suspends_the_workflow_and_fires_once(host: &Host, lang: &Language) {
    let module = load(host, lang.waits);
    let (handle, _) =
        start_suspended(host, &module, "w-sleep", json!({"op": "sleep", "ms": 300})).await;
    let state = handle.result().await.unwrap();
    assert_eq!(completed(&state), json!({"slept": 300}));
    assert_eq!(count(&state, EventType::TimerStarted), 1);
    assert_eq!(count(&state, EventType::TimerFired), 1);
    let started = state
        .history
        .iter()
        .find(|e| e.kind == EventType::TimerStarted)
        .unwrap();
    let fired = state
        .history
        .iter()
        .find(|e| e.kind == EventType::TimerFired)
        .unwrap();
    assert_eq!(started.duration_ns, 300_000_000);
    assert!(fired.timestamp.as_nanos() >= started.timestamp.as_nanos() + 300_000_000);
}

/// A wait for several signals takes the one that arrived first.
pub async fn a_wait_for_several_signals_takes_the_first_to_arrive(host: &Host, lang: &Language) {
    let module = load(host, lang.waits);
    let (handle, _) = start_suspended(
        host,
        &module,
        "w-any",
        json!({"op": "any", "names": ["approve", "reject"], "timeout_ms": 60000}),
    )
    .await;
    host.signal("w-any", "reject", Some(r#"{"reason":"budget"}"#))
        .await
        .unwrap();
    let state = handle.result().await.unwrap();
    assert_eq!(
        completed(&state),
        json!({"name": "reject", "payload": {"reason": "budget"}})
    );
    // The signal came before the timer fired: no `timer_fired`.
    assert_eq!(count(&state, EventType::TimerFired), 0);
}

/// Signals are delivered in the order they arrived, those sent before the
/// wait included, each once.
pub async fn signals_are_delivered_in_the_order_they_arrived(host: &Host, lang: &Language) {
    let module = load(host, lang.waits);
    let handle = start(
        host,
        &module,
        "w-seq",
        json!({"op": "signals", "name": "item", "count": 4}),
    )
    .await;
    for n in 1..=4 {
        host.signal("w-seq", "item", Some(&n.to_string()))
            .await
            .unwrap();
    }
    let state = handle.result().await.unwrap();
    assert_eq!(completed(&state), json!({"payloads": [1, 2, 3, 4]}));
    assert_eq!(count(&state, EventType::SignalReceived), 4);
}

/// Two failures then a success: three recorded attempts, the retry waits
/// recorded as timers, and the activity's body called three times.
pub async fn an_activity_that_fails_twice_then_succeeds_records_three_attempts(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    let input = json!({"op": "retry", "fail_times": 2, "max_attempts": 5, "initial_ms": 50});
    let state = start(host, &module, "w-retry", input)
        .await
        .result()
        .await
        .unwrap();
    assert_eq!(completed(&state), json!({"attempts": 3}));
    use EventType::*;
    let flaky = |kind| (kind, "flaky".to_owned());
    assert_eq!(
        steps(&state),
        [
            flaky(ActivityStarted),
            flaky(ActivityFailed),
            flaky(TimerStarted),
            flaky(TimerFired),
            flaky(ActivityFailed),
            flaky(TimerStarted),
            flaky(TimerFired),
            flaky(ActivityCompleted),
        ]
    );
    let waits: Vec<i64> = state
        .history
        .iter()
        .filter(|e| e.kind == TimerStarted)
        .map(|e| e.duration_ns)
        .collect();
    assert_eq!(waits, [50_000_000, 100_000_000], "the backoff doubles");
    let errors: Vec<&str> = state
        .history
        .iter()
        .filter(|e| e.kind == ActivityFailed)
        .map(|e| e.error.as_str())
        .collect();
    assert_eq!(errors, ["attempt 1 failed", "attempt 2 failed"]);
    let calls = host.query("w-retry/attempts").await.unwrap().unwrap();
    assert_eq!(calls.result.as_deref(), Some("3"));
}

/// An error the policy does not retry fails the activity at its first attempt.
pub async fn a_non_retryable_error_fails_the_activity_at_once(host: &Host, lang: &Language) {
    let module = load(host, lang.waits);
    let input = json!({"op": "retry", "fail_times": 5, "max_attempts": 5, "initial_ms": 50, "non_retryable": ["attempt 1"]});
    let state = start(host, &module, "w-fatal", input)
        .await
        .result()
        .await
        .unwrap();
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("attempt 1 failed"), "{}", state.error);
    assert_eq!(count(&state, EventType::ActivityFailed), 1);
    assert_eq!(count(&state, EventType::TimerStarted), 0);
    let calls = host.query("w-fatal/attempts").await.unwrap().unwrap();
    assert_eq!(calls.result.as_deref(), Some("1"));
}

/// A query answers from the recorded state of a suspended workflow: it is
/// not woken, and nothing is written.
pub async fn a_query_answers_from_a_suspended_workflow_without_waking_it_or_writing(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    let (handle, _) = start_suspended(host, &module, "w-q", waits_for_go(None)).await;
    host.signal("w-q", "unrelated", None).await.unwrap();
    let before = host.store().load_versioned("w-q").await.unwrap().unwrap();
    let answer = host
        .query_workflow(&module, "w-q", "status", "null")
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"], "running");
    assert_eq!(answer["signals"], json!(["unrelated"]));
    assert_eq!(answer["events"], before.state.history.len());
    let echoed = host
        .query_workflow(&module, "w-q", "echo", r#"{"a":[1,2]}"#)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&echoed).unwrap(),
        json!({"a": [1, 2]})
    );
    match host.query_workflow(&module, "w-q", "nope", "null").await {
        Err(QueryError::Rejected(e)) => assert!(e.contains("unknown query nope"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        host.query_workflow(&module, "w-none", "status", "null")
            .await,
        Err(QueryError::NotFound(_))
    ));
    assert!(matches!(
        host.query_workflow(&module, "w-q", "status", "{oops").await,
        Err(QueryError::InvalidRequest(_))
    ));
    // Past a sweep of the waiting workflows too: the unrelated signal
    // woke nothing, then or since.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let after = host.store().load_versioned("w-q").await.unwrap().unwrap();
    assert_eq!(after.version, before.version, "a query writes nothing");
    assert!(host.is_waiting("w-q") && !host.is_running("w-q"));
    // A module that registered no handler says so.
    let pipeline = load(host, lang.pipeline);
    match host
        .query_workflow(&pipeline, "w-q", "status", "null")
        .await
    {
        Err(QueryError::Rejected(e) | QueryError::NoHandler(e)) => {
            assert!(e.contains("no query handler"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    host.signal("w-q", "go", None).await.unwrap();
    assert_eq!(
        completed(&handle.result().await.unwrap()),
        json!({"payload": null})
    );
}

/// A host restarted halfway through a sleep wakes the workflow at the
/// original due time (the due times are rebuilt from the stored states).
pub async fn a_timer_survives_a_host_restart_and_fires_at_its_due_time(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    let (_, suspended) = start_suspended(
        host,
        &module,
        "w-restart",
        json!({"op": "sleep", "ms": 1500}),
    )
    .await;
    let due = suspended.suspended().unwrap().wake_at.unwrap();
    // The host goes away; another on the same store takes over.
    host.abandon_all().await;
    let (_, _, found, state) = restarted(host, lang, RecoverOptions::default()).await;
    assert_eq!(
        found,
        (0, 1),
        "a suspended run is kept waiting, not run at once"
    );
    assert_eq!(completed(&state), json!({"slept": 1500}));
    let fired = state
        .history
        .iter()
        .find(|e| e.kind == EventType::TimerFired)
        .unwrap();
    let late = fired.timestamp.as_nanos() - due.as_nanos();
    assert!(late >= 0, "fired {late} ns early");
    assert!(Timestamp::now().as_nanos() >= due.as_nanos());
    assert_eq!(count(&state, EventType::TimerStarted), 1, "not slept again");
}

/// A signal sent while the workflow's host is down (by another host on the
/// store) is delivered once the host is back.
pub async fn a_signal_sent_while_the_host_is_down_is_delivered_once_after_it_restarts(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    start_suspended(host, &module, "w-down", waits_for_go(None)).await;
    host.abandon_all().await;
    let sender = Host::new(host.store().clone()).unwrap();
    sender.signal("w-down", "go", Some("42")).await.unwrap();
    // A suspended run (so taken up with `waiting_only`), woken at once.
    let options = RecoverOptions::default().waiting_only(true);
    let (_, _, found, state) = restarted(host, lang, options).await;
    assert_eq!(
        found,
        (1, 0),
        "woken at once: the signal it waits for is there"
    );
    assert_eq!(completed(&state), json!({"payload": 42}));
    assert_eq!(count(&state, EventType::SignalReceived), 1);
}

/// A suspended workflow is canceled without an instance.
pub async fn a_suspended_workflow_is_canceled_without_an_instance(host: &Host, lang: &Language) {
    let module = load(host, lang.waits);
    let (handle, _) = start_suspended(
        host,
        &module,
        "w-cancel",
        json!({"op": "sleep", "ms": 3_600_000}),
    )
    .await;
    host.cancel("w-cancel").unwrap();
    let state = handle.result().await.unwrap();
    assert_eq!(state.status, WorkflowStatus::Canceled);
    assert!(!host.is_waiting("w-cancel"));
    assert_eq!(
        host.query("w-cancel").await.unwrap().unwrap().status,
        WorkflowStatus::Canceled
    );
}

/// A run that stops between attempts (its host gone) and is resumed by
/// another host continues from the recorded attempts: a recorded failure
/// is not tried again, and a completed activity is never run again.
pub async fn a_replay_after_a_crash_does_not_repeat_recorded_attempts(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    // Long retry waits: the run is suspended after its first failure.
    let input = json!({"op": "retry", "fail_times": 1, "max_attempts": 3, "initial_ms": 1000});
    start_suspended(host, &module, "w-crash", input).await;
    host.abandon_all().await;
    let (restarted, module, found, state) = restarted(host, lang, RecoverOptions::default()).await;
    assert_eq!(found, (0, 1));
    assert_eq!(completed(&state), json!({"attempts": 2}));
    let calls = restarted.query("w-crash/attempts").await.unwrap().unwrap();
    assert_eq!(calls.result.as_deref(), Some("2"), "each attempt ran once");
    // Recovering again finds nothing to run: the activity never runs again.
    let again = restarted
        .recover(&module, RecoverOptions::default())
        .await
        .unwrap();
    assert!(again.resumed.is_empty() && again.waiting.is_empty());
    assert_eq!(
        restarted
            .query("w-crash/attempts")
            .await
            .unwrap()
            .unwrap()
            .result
            .as_deref(),
        Some("2")
    );
}

/// The approval example: it waits for `approve` or `reject`, answers
/// `status` while it waits, and completes with the decision.
pub async fn the_approval_example_completes_on_a_signal_and_answers_its_query(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.approval);
    let (approved, _) =
        start_suspended(host, &module, "expense-1", json!({"request": "laptop"})).await;
    let (rejected, _) =
        start_suspended(host, &module, "expense-2", json!({"request": "yacht"})).await;
    let status = host
        .query_workflow(&module, "expense-1", "status", "null")
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&status).unwrap(),
        json!({"waiting": true})
    );
    host.signal("expense-1", "approve", Some(r#"{"by":"ada"}"#))
        .await
        .unwrap();
    host.signal("expense-2", "reject", Some(r#"{"reason":"no"}"#))
        .await
        .unwrap();
    let approved = approved.result().await.unwrap();
    assert_eq!(completed(&approved)["approved"], true);
    assert_eq!(completed(&approved)["by"], "ada");
    let rejected = rejected.result().await.unwrap();
    assert_eq!(completed(&rejected)["approved"], false);
    assert_eq!(completed(&rejected)["reason"], "no");
    let due = approved
        .history
        .iter()
        .find(|e| e.kind == EventType::TimerStarted)
        .expect("the 24-hour timeout");
    assert_eq!(due.duration_ns, 24 * 3600 * 1_000_000_000);
}

/// A workflow woken after 20 activities replays them from the history (no
/// second `activity_started`) and receives its signal.
pub async fn a_woken_workflow_replays_its_activities_without_running_them_again(
    host: &Host,
    lang: &Language,
) {
    let module = load(host, lang.waits);
    let (handle, _) = start_suspended(
        host,
        &module,
        "w-replay",
        json!({"op": "steps", "count": 20, "wait": "go"}),
    )
    .await;
    host.signal("w-replay", "go", Some("true")).await.unwrap();
    let state = handle.result().await.unwrap();
    assert_eq!(completed(&state), json!({"sum": 190, "payload": true}));
    assert_eq!(count(&state, EventType::ActivityStarted), 20);
    assert_eq!(count(&state, EventType::ActivityCompleted), 20);
}
