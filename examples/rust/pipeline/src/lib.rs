//! The quick-start workflow: runs three steps over its input, saving its own
//! state after each one, and returns `completed: <input>`.

use wf_guest::{Context, EventType, Json, StoreError};

const STEPS: [&str; 3] = ["validate", "process", "finalize"];

fn run(ctx: &Context, input: String) -> Result<String, StoreError> {
    for step in STEPS {
        // Each step is recorded durably before the next begins, so the stored
        // history shows how far the pipeline got.
        ctx.update_state(|state| {
            let event = state.push_event(EventType::ActivityCompleted);
            event.activity_name = step.to_string();
            event.result = Json::from_value(&format!("{step}: {input}")).ok();
        })?;
    }
    Ok(format!("completed: {input}"))
}

wf_guest::export!(run);
