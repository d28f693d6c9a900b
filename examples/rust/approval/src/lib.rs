//! An approval workflow: it records a request, then waits, suspended (no
//! instance held), for an `approve` or a `reject` signal for up to 24 hours,
//! and completes accordingly.
//!
//! ```text
//! wfhost serve approval.wasm &
//! curl -X POST 'localhost:8080/workflows/expense-7?wait=false' -d '{"request":"laptop, 1200 EUR"}'
//! curl localhost:8080/workflows/expense-7/queries/status      # {"waiting":true}
//! curl -X POST localhost:8080/workflows/expense-7/signals/approve -d '{"by":"ada"}'
//! curl localhost:8080/workflows/expense-7                     # completed
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wf_guest::{ActivityError, Context, EventType, WorkflowStatus};

/// What is asked for.
#[derive(Debug, Deserialize, Serialize)]
struct Request {
    request: String,
}

/// How it was decided.
#[derive(Debug, Serialize)]
struct Decision {
    approved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Value>,
}

const DECISION_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

fn run(ctx: &Context, request: Request) -> Result<Decision, String> {
    // A side effect (here: only noted in the history) goes in an activity,
    // so a re-run after a wake does not repeat it.
    ctx.activity("notify approvers", &request, |request| {
        Ok::<_, String>(format!("asked for {:?}", request.request))
    })
    .map_err(|e| e.to_string())?;
    let decision = ctx
        .wait_any_signal::<Value>(&["approve", "reject"], Some(DECISION_WINDOW))
        .map_err(|e: ActivityError| e.to_string())?;
    match decision {
        Some((name, payload)) if name == "approve" => Ok(Decision {
            approved: true,
            by: payload.get("by").cloned(),
            reason: None,
        }),
        Some((_, payload)) => Ok(Decision {
            approved: false,
            by: None,
            reason: payload.get("reason").cloned(),
        }),
        None => Err("no decision within 24 hours".into()),
    }
}

/// `status`: whether it still waits for a decision.
fn query(ctx: &Context, name: &str, _args: Value) -> Result<Value, String> {
    if name != "status" {
        return Err(format!("unknown query {name:?}; try \"status\""));
    }
    let state = ctx
        .state()
        .map_err(|e| e.to_string())?
        .ok_or("the workflow is not stored")?;
    // Waiting: still running and no decision recorded yet.
    let decided = state.history.iter().any(|e| {
        e.kind == EventType::SignalReceived
            && ["approve", "reject"].contains(&e.signal_name.as_str())
    });
    Ok(json!({ "waiting": state.status == WorkflowStatus::Running && !decided }))
}

wf_guest::export!(run, query = query);
