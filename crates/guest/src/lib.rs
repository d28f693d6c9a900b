//! Write wf workflow modules in Rust.
//!
//! A workflow module is a WebAssembly component of the world
//! `wf:workflow/workflow`: the host calls its `run` once per execution, and the
//! module may save, load, list and delete workflow states through the host's
//! store. This crate hides the generated bindings behind plain Rust: write a
//! function from a typed input to a typed result and hand it to [`export!`].
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wf_guest::{Context, EventType, StoreError};
//!
//! #[derive(Deserialize)]
//! struct Order { sku: String, quantity: u32 }
//!
//! #[derive(Serialize)]
//! struct Receipt { sku: String, reserved: u32 }
//!
//! fn run(ctx: &Context, order: Order) -> Result<Receipt, StoreError> {
//!     // Record a step in this workflow's own history, durably.
//!     ctx.update_state(|state| {
//!         state.push_event(EventType::ActivityCompleted).activity_name = "reserve".into();
//!     })?;
//!     Ok(Receipt { sku: order.sku, reserved: order.quantity })
//! }
//!
//! wf_guest::export!(run);
//! ```
//!
//! # Durable activities, timers, and the rules of a re-run
//!
//! A host that stops or crashes while a workflow runs leaves it `running`
//! in the store; the next host's `recover` calls the workflow's `run` again,
//! from the start, with the same input and the history saved so far. Work
//! that must not be repeated goes in [`Context::activity`]: its outcome is
//! saved in the history, and a re-run returns the saved outcome instead of
//! running it again. [`Context::sleep`] is a durable timer.
//!
//! ```no_run
//! use std::time::Duration;
//! use wf_guest::{ActivityError, Context};
//! # fn charge_card(_: &u64) -> Result<String, String> { Ok("ch_1".into()) }
//! # fn ship_parcel(_: &String) -> Result<u32, String> { Ok(7) }
//!
//! fn run(ctx: &Context, cents: u64) -> Result<u32, ActivityError> {
//!     let receipt: String = ctx.activity("charge", &cents, charge_card)?;
//!     ctx.sleep(Duration::from_secs(1))?;
//!     ctx.activity("ship", &receipt, ship_parcel)
//! }
//! wf_guest::export!(run);
//! ```
//!
//! Rules for workflow code, so that a re-run takes the same path as the
//! first run:
//!
//! 1. **Side effects only inside activities.** Anything outside an activity
//!    (computation, direct [`Store`] writes, logging) runs again on every
//!    re-run.
//! 2. **Same activities, same order.** Steps are matched by position: the
//!    n-th `activity` call is the n-th recorded `activity_started` and must
//!    have the same name; a mismatch is [`ActivityError::NonDeterministic`].
//!    Do not branch on the clock, randomness, environment or on store reads
//!    made outside activities; read such values *in* an activity, whose
//!    recorded result is replayed.
//! 3. **Deploy changed code only for new workflows.** A workflow recovered
//!    with different code replays a history the code may no longer match.
//! 4. **Activities run at least once.** A host that dies after an activity's
//!    side effect but before its outcome is saved runs it again on recovery;
//!    make such effects idempotent (an idempotency key from
//!    [`Context::workflow_id`] and the step) where that window matters.
//! 5. **Failures are recorded too.** An activity that failed returns
//!    [`ActivityError::Failed`] on a re-run rather than being retried; retry
//!    inside the activity if you want retries.
//!
//! States carry their JSON fields as text; the typed helpers convert with serde:
//!
//! ```
//! use wf_guest::{EventType, WorkflowState, WorkflowStatus};
//!
//! let mut state = WorkflowState::new("order-7");
//! state.set_input(&serde_json::json!({"sku": "A-1", "quantity": 2}))?;
//! state.push_event(EventType::ActivityCompleted).activity_name = "reserve".into();
//! state.status = WorkflowStatus::Completed;
//! state.set_result(&900u64)?;
//!
//! let input: serde_json::Value = state.input_as()?.expect("set above");
//! assert_eq!(input["quantity"], 2);
//! assert_eq!(state.result_as::<u64>()?, Some(900));
//! assert_eq!(state.history[0].id, 1);
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (a `cdylib`
//! crate) and run it with `wfhost run target/wasm32-wasip2/release/NAME.wasm
//! --id order-1 --input '{"sku":"A-1","quantity":2}'`.
#![deny(missing_docs)]

mod durable;
mod store;
mod types;

pub use durable::ActivityError;
pub use store::{Context, ListFilter, Store, StoreError, Version, Versioned};
pub use types::{EventType, HistoryEvent, Json, Timestamp, WorkflowState, WorkflowStatus};

// The generated code names this crate by its external path.
extern crate self as wf_guest;

/// Generated bindings; not part of the API (use the re-exported types).
use __private::bindings;

#[doc(hidden)]
#[allow(
    missing_docs,
    unsafe_code,
    unused_qualifications,
    clippy::all,
    reason = "generated bindings: hidden, and not ours to lint"
)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "workflow",
        pub_export_macro: true,
        export_macro_name: "__export_workflow_world",
        default_bindings_module: "::wf_guest::__private::bindings",
        runtime_path: "::wf_guest::__private::wit_bindgen::rt",
    });
}

/// Used by [`export!`]'s expansion; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::__bindings as bindings;
    pub use crate::__bindings::Guest;
    pub use wit_bindgen;

    use crate::Context;

    /// Decodes the input, calls the workflow function, encodes its outcome.
    pub fn run_typed<T, U, E, F>(workflow_id: String, input: String, f: F) -> Result<String, String>
    where
        T: serde::de::DeserializeOwned,
        U: serde::Serialize,
        E: std::fmt::Display,
        F: FnOnce(&Context, T) -> Result<U, E>,
    {
        let input: T = serde_json::from_str(&input)
            .map_err(|e| format!("the workflow input does not match the expected type: {e}"))?;
        let ctx = Context::new(workflow_id);
        let output = f(&ctx, input).map_err(|e| e.to_string())?;
        serde_json::to_string(&output)
            .map_err(|e| format!("cannot encode the workflow result: {e}"))
    }
}

/// Exports a function as the workflow's `run`.
///
/// The function has the shape `fn(&Context, T) -> Result<U, E>` where `T` is
/// [`serde::Deserialize`] (decoded from the input JSON), `U` is
/// [`serde::Serialize`] (encoded as the result JSON) and `E` is
/// [`std::fmt::Display`] (the error text the host records when the workflow
/// fails). Input that does not decode into `T` fails the workflow with a message
/// saying so. Use it once, at the crate root of a `cdylib`:
///
/// ```no_run
/// fn greet(_ctx: &wf_guest::Context, name: String) -> Result<String, String> {
///     Ok(format!("hello, {name}"))
/// }
/// wf_guest::export!(greet);
/// ```
#[macro_export]
macro_rules! export {
    ($run:path) => {
        const _: () = {
            struct WfWorkflow;

            impl $crate::__private::Guest for WfWorkflow {
                fn run(
                    workflow_id: ::std::string::String,
                    input: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::__private::run_typed(workflow_id, input, $run)
                }
            }

            $crate::__private::bindings::__export_workflow_world!(
                WfWorkflow with_types_in $crate::__private::bindings
            );
        };
    };
}
