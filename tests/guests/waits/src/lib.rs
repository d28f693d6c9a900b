//! Test guest for waiting workflows: the same operations as the Python and
//! JavaScript `waits` guests (`tests/polyglot/guests`), so one suite checks
//! all three languages. The input's `op` picks one:
//!
//! - `signal`: waits for signal `name` (at most `timeout_ms`); returns
//!   `{"payload": ...}` or `{"timeout": true}`.
//! - `any`: waits for one of `names`; `{"name": ..., "payload": ...}` or
//!   `{"timeout": true}`.
//! - `sleep`: sleeps `ms`; `{"slept": ms}`.
//! - `signals`: `count` successive waits for `name`; `{"payloads": [...]}`.
//! - `retry`: activity `flaky` under a retry policy, failing its first
//!   `fail_times` calls (counted in the record `<id>/attempts`); returns
//!   `{"attempts": n}`.
//! - `steps`: `count` activities `step-<i>` returning i; `{"sum": ...}`;
//!   with `wait`, then waits for that signal: `{"sum": ..., "payload": ...}`.
//!
//! Queries: `status` answers the recorded status, the names of the signals
//! received, the number of events and whether it is suspended; `echo`
//! answers its arguments.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use wf_guest::{ActivityError, Context, EventType, RetryPolicy, WorkflowState, WorkflowStatus};

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Signal {
        name: String,
        timeout_ms: Option<u64>,
    },
    Any {
        names: Vec<String>,
        timeout_ms: Option<u64>,
    },
    Sleep {
        ms: u64,
    },
    Signals {
        name: String,
        count: usize,
    },
    Retry {
        fail_times: u64,
        max_attempts: u32,
        initial_ms: u64,
        #[serde(default)]
        non_retryable: Vec<String>,
    },
    Steps {
        count: u64,
        #[serde(default)]
        wait: Option<String>,
    },
}

fn run(ctx: &Context, op: Op) -> Result<Value, ActivityError> {
    let millis = |ms: Option<u64>| ms.map(Duration::from_millis);
    Ok(match op {
        Op::Signal { name, timeout_ms } => {
            match ctx.wait_signal::<Value>(&name, millis(timeout_ms))? {
                Some(payload) => json!({ "payload": payload }),
                None => json!({ "timeout": true }),
            }
        }
        Op::Any { names, timeout_ms } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            match ctx.wait_any_signal::<Value>(&names, millis(timeout_ms))? {
                Some((name, payload)) => json!({ "name": name, "payload": payload }),
                None => json!({ "timeout": true }),
            }
        }
        Op::Sleep { ms } => {
            ctx.sleep(Duration::from_millis(ms))?;
            json!({ "slept": ms })
        }
        Op::Signals { name, count } => {
            let mut payloads = Vec::new();
            for _ in 0..count {
                payloads.push(ctx.wait_signal::<Value>(&name, None)?);
            }
            json!({ "payloads": payloads })
        }
        Op::Retry {
            fail_times,
            max_attempts,
            initial_ms,
            non_retryable,
        } => {
            let initial = Duration::from_millis(initial_ms);
            let mut policy = RetryPolicy::new(max_attempts)
                .initial_interval(initial)
                .max_interval(initial * 10);
            for error in non_retryable {
                policy = policy.non_retryable(error);
            }
            let counter = format!("{}/attempts", ctx.workflow_id());
            let attempts: u64 = ctx.activity_with_retry("flaky", &(), &policy, |()| {
                let store = ctx.store();
                let mut record = store
                    .load(&counter)
                    .map_err(|e| e.to_string())?
                    .unwrap_or_else(|| WorkflowState::new(counter.clone()));
                let calls = record.result_as::<u64>().ok().flatten().unwrap_or(0) + 1;
                record.set_result(&calls).map_err(|e| e.to_string())?;
                store.save(&record).map_err(|e| e.to_string())?;
                if calls <= fail_times {
                    return Err(format!("attempt {calls} failed"));
                }
                Ok(calls)
            })?;
            json!({ "attempts": attempts })
        }
        Op::Steps { count, wait } => {
            let mut sum = 0;
            for i in 0..count {
                let value: u64 = ctx.activity(&format!("step-{i}"), &i, |i| Ok::<_, String>(*i))?;
                sum += value;
            }
            match wait {
                Some(name) => {
                    let payload = ctx.wait_signal::<Value>(&name, None)?;
                    json!({ "sum": sum, "payload": payload })
                }
                None => json!({ "sum": sum }),
            }
        }
    })
}

fn query(ctx: &Context, name: &str, args: Value) -> Result<Value, String> {
    match name {
        "status" => {
            let state = ctx
                .state()
                .map_err(|e| e.to_string())?
                .ok_or("the workflow is not stored")?;
            let signals: Vec<&str> = state
                .history
                .iter()
                .filter(|e| e.kind == EventType::SignalReceived)
                .map(|e| e.signal_name.as_str())
                .collect();
            let suspended = state.status == WorkflowStatus::Running
                && state
                    .history
                    .last()
                    .is_some_and(|e| e.kind == EventType::WorkflowSuspended);
            Ok(json!({
                "status": state.status,
                "signals": signals,
                "events": state.history.len(),
                "suspended": suspended,
            }))
        }
        "echo" => Ok(args),
        other => Err(format!("unknown query {other}")),
    }
}

wf_guest::export!(run, query = query);
