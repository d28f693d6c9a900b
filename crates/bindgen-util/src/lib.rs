//! Helpers shared by wf's two sides of the `wf:workflow` WIT: the host's
//! wasmtime bindings (`wf-host`) and the guest SDK's wit-bindgen bindings
//! (`wf-guest`). Each side generates its own Rust types from the WIT and
//! keeps hand-written types of its own; this crate converts between them in
//! one way on both sides.
#![no_std]
#![deny(missing_docs)]

/// Implements `From` both ways between a generated WIT enum and a
/// hand-written enum with the same variants: a variant missing on either
/// side is a compile error.
///
/// ```
/// mod wit {
///     #[derive(Debug, PartialEq)]
///     pub enum Color { Red, Green }
/// }
/// #[derive(Debug, PartialEq)]
/// enum Color { Red, Green }
///
/// wf_bindgen_util::same_enum!(wit::Color, Color, [Red, Green]);
/// assert_eq!(Color::from(wit::Color::Green), Color::Green);
/// assert_eq!(wit::Color::from(Color::Red), wit::Color::Red);
/// ```
#[macro_export]
macro_rules! same_enum {
    ($wit:ty, $own:ty, [$($variant:ident),+ $(,)?]) => {
        impl ::core::convert::From<$wit> for $own {
            fn from(value: $wit) -> Self {
                match value { $(<$wit>::$variant => <$own>::$variant,)+ }
            }
        }
        impl ::core::convert::From<$own> for $wit {
            fn from(value: $own) -> Self {
                match value { $(<$own>::$variant => <$wit>::$variant,)+ }
            }
        }
    };
}

/// [`same_enum!`] for both enums of the WIT `types` interface
/// (`workflow-status` and `event-type`): `$wit` and `$own` are the modules
/// (or `self`) holding the generated and the hand-written `WorkflowStatus`
/// and `EventType`. The variant lists are written here once.
///
/// ```
/// mod wit {
///     pub enum WorkflowStatus { Running, Completed, Failed, Canceled }
///     pub enum EventType {
///         WorkflowStarted, WorkflowCompleted, WorkflowFailed, WorkflowCanceled,
///         ActivityStarted, ActivityCompleted, ActivityFailed, SignalReceived, TimerFired,
///     }
/// }
/// mod model {
///     pub enum WorkflowStatus { Running, Completed, Failed, Canceled }
///     pub enum EventType {
///         WorkflowStarted, WorkflowCompleted, WorkflowFailed, WorkflowCanceled,
///         ActivityStarted, ActivityCompleted, ActivityFailed, SignalReceived, TimerFired,
///     }
/// }
/// wf_bindgen_util::workflow_enums!(wit, model);
/// ```
#[macro_export]
macro_rules! workflow_enums {
    ($wit:tt, $own:tt) => {
        $crate::same_enum!(
            $wit::WorkflowStatus,
            $own::WorkflowStatus,
            [Running, Completed, Failed, Canceled]
        );
        $crate::same_enum!(
            $wit::EventType,
            $own::EventType,
            [
                WorkflowStarted,
                WorkflowCompleted,
                WorkflowFailed,
                WorkflowCanceled,
                ActivityStarted,
                ActivityCompleted,
                ActivityFailed,
                SignalReceived,
                TimerFired,
            ]
        );
    };
}
