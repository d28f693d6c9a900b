//! Test guest for the scale-out tests (`tests/tests/scale_out.rs`) and the
//! scale-out benchmark: a chain of `steps` durable activities, each taking
//! about `step_ms` milliseconds, the n-th returning `n * n`. The result is
//! the sum of the activities' results.
//!
//! A host that takes over a workflow mid-run replays the completed steps from
//! the history (their bodies do not run again) and runs the rest.

use std::time::Duration;

use serde::Deserialize;
use wf_guest::{ActivityError, Context};

#[derive(Debug, Deserialize)]
struct Input {
    steps: u64,
    #[serde(default)]
    step_ms: u64,
}

fn run(ctx: &Context, input: Input) -> Result<u64, ActivityError> {
    let mut sum = 0;
    for step in 0..input.steps {
        let square: u64 = ctx.activity(&format!("step-{step}"), &step, |n| {
            std::thread::sleep(Duration::from_millis(input.step_ms));
            Ok::<_, String>(n * n)
        })?;
        sum += square;
    }
    Ok(sum)
}

wf_guest::export!(run);
