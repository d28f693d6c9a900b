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
//! # Durable activities, timers, signals, and the rules of a re-run
//!
//! A host that stops or crashes while a workflow runs leaves it `running`
//! in the store; the next host's `recover` calls the workflow's `run` again,
//! from the start, with the same input and the history saved so far. Work
//! that must not be repeated goes in [`Context::activity`] (or
//! [`Context::activity_with_retry`], with a [`RetryPolicy`]): its outcome is
//! saved in the history, and a re-run returns the saved outcome instead of
//! running it again.
//!
//! A workflow that waits — [`Context::sleep`], [`Context::wait_signal`],
//! [`Context::wait_any_signal`], the wait before a retry — is *suspended*:
//! the host drops its instance and calls `run` again, from the start, when
//! the signal comes or the time is due; the run replays its history up to
//! the wait and goes on. Queries: [`export!`]`(run, query = handler)`.
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
//! 5. **Failures are recorded too.** An activity that failed (after the
//!    attempts its [`RetryPolicy`] allows) returns [`ActivityError::Failed`]
//!    on a re-run rather than being tried again.
//! 6. **Waits are steps too.** Sleeps, signal waits and retries are matched
//!    by position like activities; a woken workflow runs all of this again,
//!    so everything outside steps must be cheap and free of side effects.
//!
//! The history each step writes is the same in the Python and JavaScript
//! SDKs (the repository's docs/waiting.md).
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
mod view;

pub use durable::{ActivityError, RetryPolicy};
pub use store::{Context, ListFilter, Store, StoreError, Version, Versioned};
pub use types::{EventType, HistoryEvent, Json, Timestamp, WorkflowState, WorkflowStatus};
pub use view::{EventView, StateView};

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
        world: "queryable-workflow",
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
        quiet_panics();
        let input: T = serde_json::from_str(&input)
            .map_err(|e| format!("the workflow input does not match the expected type: {e}"))?;
        let ctx = Context::new(workflow_id);
        let output = f(&ctx, input).map_err(|e| e.to_string())?;
        serde_json::to_string(&output)
            .map_err(|e| format!("cannot encode the workflow result: {e}"))
    }

    /// Decodes the arguments, calls the query handler, encodes its answer.
    pub fn query_typed<U, E, F>(
        workflow_id: String,
        name: String,
        args: String,
        f: F,
    ) -> Result<String, String>
    where
        U: serde::Serialize,
        E: std::fmt::Display,
        F: FnOnce(&Context, &str, serde_json::Value) -> Result<U, E>,
    {
        quiet_panics();
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| format!("the query arguments are not JSON: {e}"))?;
        let ctx = Context::new(workflow_id);
        let answer = f(&ctx, &name, args).map_err(|e| e.to_string())?;
        serde_json::to_string(&answer).map_err(|e| format!("cannot encode the query answer: {e}"))
    }

    /// The answer of a module that registered no query handler.
    pub fn no_query_handler(
        _workflow_id: String,
        _name: String,
        _args: String,
    ) -> Result<String, String> {
        Err("this workflow has no query handler".to_owned())
    }

    /// Prints a panic as one line, its place and message, without the
    /// standard hook's advice to set `RUST_BACKTRACE` (a sandboxed guest
    /// has no environment); the host records the line as the failure.
    fn quiet_panics() {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            match info.location() {
                Some(at) => eprintln!("panicked at {}:{}: {message}", at.file(), at.line()),
                None => eprintln!("panicked: {message}"),
            }
        }));
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
///
/// With `query = handler`, the module also answers queries (world
/// `queryable-workflow`): `handler` has the shape `fn(&Context, &str,
/// serde_json::Value) -> Result<U, E>` (the query's name and arguments; `U`
/// serialized as the answer, `E` the error text), and reads the workflow's
/// recorded state with [`Context::state`]; in a query the store is
/// read-only. Without it, every query answers "this workflow has no query
/// handler".
///
/// ```no_run
/// use wf_guest::{Context, StoreError};
///
/// fn run(_ctx: &Context, _input: ()) -> Result<(), String> { Ok(()) }
///
/// fn query(ctx: &Context, name: &str, _args: serde_json::Value) -> Result<serde_json::Value, String> {
///     let state = ctx.state().map_err(|e| e.to_string())?.ok_or("not stored")?;
///     match name {
///         "events" => Ok(state.history.len().into()),
///         other => Err(format!("unknown query {other}")),
///     }
/// }
/// wf_guest::export!(run, query = query);
/// ```
#[macro_export]
macro_rules! export {
    ($run:path) => {
        $crate::export!(@with $run, $crate::__private::no_query_handler);
    };
    ($run:path, query = $query:path) => {
        $crate::export!(@with $run, |workflow_id, name, args| {
            $crate::__private::query_typed(workflow_id, name, args, $query)
        });
    };
    (@with $run:path, $query:expr) => {
        const _: () = {
            struct WfWorkflow;

            impl $crate::__private::Guest for WfWorkflow {
                fn run(
                    workflow_id: ::std::string::String,
                    input: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::__private::run_typed(workflow_id, input, $run)
                }

                fn query(
                    workflow_id: ::std::string::String,
                    name: ::std::string::String,
                    args: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    let answer: fn(
                        ::std::string::String,
                        ::std::string::String,
                        ::std::string::String,
                    ) -> ::std::result::Result<::std::string::String, ::std::string::String> =
                        $query;
                    answer(workflow_id, name, args)
                }
            }

            $crate::__private::bindings::__export_workflow_world!(
                WfWorkflow with_types_in $crate::__private::bindings
            );
        };
    };
}
