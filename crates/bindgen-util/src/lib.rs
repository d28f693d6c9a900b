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
///         TimerStarted, WorkflowSuspended,
///     }
/// }
/// mod model {
///     pub enum WorkflowStatus { Running, Completed, Failed, Canceled }
///     pub enum EventType {
///         WorkflowStarted, WorkflowCompleted, WorkflowFailed, WorkflowCanceled,
///         ActivityStarted, ActivityCompleted, ActivityFailed, SignalReceived, TimerFired,
///         TimerStarted, WorkflowSuspended,
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
                TimerStarted,
                WorkflowSuspended,
            ]
        );
    };
}

/// Names, messages and conversions of an enum with the cases of the WIT
/// `store-error` variant (`InvalidArgument`, `TooLarge`, `Denied`,
/// `Unavailable`, `Conflict`, `Internal`), each holding its message:
/// `kind()` (the WIT case name), `message()` and `of_kind(kind, message)`.
/// The case names are written here once, for the host and the SDK.
///
/// ```
/// #[derive(Debug, PartialEq)]
/// pub enum StoreError {
///     InvalidArgument(String), TooLarge(String), Denied(String),
///     Unavailable(String), Conflict(String), Internal(String),
/// }
/// wf_bindgen_util::store_error_cases!(StoreError);
///
/// let e = StoreError::Conflict("moved on".into());
/// assert_eq!((e.kind(), e.message()), ("conflict", "moved on"));
/// assert_eq!(StoreError::of_kind("conflict", "moved on".into()), Some(e));
/// ```
#[macro_export]
macro_rules! store_error_cases {
    ($ty:ty) => {
        impl $ty {
            /// Its case's name in the WIT `store-error` variant:
            /// `invalid-argument`, `too-large`, `denied`, `unavailable`,
            /// `conflict` or `internal`.
            pub fn kind(&self) -> &'static str {
                match self {
                    Self::InvalidArgument(_) => "invalid-argument",
                    Self::TooLarge(_) => "too-large",
                    Self::Denied(_) => "denied",
                    Self::Unavailable(_) => "unavailable",
                    Self::Conflict(_) => "conflict",
                    Self::Internal(_) => "internal",
                }
            }

            /// The message, e.g. `kafka/save: workflow ID is required`.
            pub fn message(&self) -> &str {
                match self {
                    Self::InvalidArgument(m)
                    | Self::TooLarge(m)
                    | Self::Denied(m)
                    | Self::Unavailable(m)
                    | Self::Conflict(m)
                    | Self::Internal(m) => m,
                }
            }

            /// The error of case `kind` (as `kind()` names it) with
            /// `message`; `None` for an unknown kind.
            pub fn of_kind(
                kind: &str,
                message: ::std::string::String,
            ) -> ::core::option::Option<Self> {
                ::core::option::Option::Some(match kind {
                    "invalid-argument" => Self::InvalidArgument(message),
                    "too-large" => Self::TooLarge(message),
                    "denied" => Self::Denied(message),
                    "unavailable" => Self::Unavailable(message),
                    "conflict" => Self::Conflict(message),
                    "internal" => Self::Internal(message),
                    _ => return ::core::option::Option::None,
                })
            }
        }
    };
}

/// [`same_enum!`] for a generated WIT `store-error` and an enum with its
/// cases, each holding its message.
#[macro_export]
macro_rules! same_store_error {
    ($wit:ty, $own:ty) => {
        impl ::core::convert::From<$wit> for $own {
            fn from(value: $wit) -> Self {
                $crate::__store_error_arms!(value, $wit, $own)
            }
        }
        impl ::core::convert::From<$own> for $wit {
            fn from(value: $own) -> Self {
                $crate::__store_error_arms!(value, $own, $wit)
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_error_arms {
    ($value:ident, $from:ty, $to:ty) => {{
        // Aliases: a qualified path cannot name a tuple variant in a pattern.
        type From = $from;
        type To = $to;
        match $value {
            From::InvalidArgument(m) => To::InvalidArgument(m),
            From::TooLarge(m) => To::TooLarge(m),
            From::Denied(m) => To::Denied(m),
            From::Unavailable(m) => To::Unavailable(m),
            From::Conflict(m) => To::Conflict(m),
            From::Internal(m) => To::Internal(m),
        }
    }};
}

/// The longest signal name, in bytes.
pub const MAX_SIGNAL_NAME_BYTES: usize = 256;

/// What is wrong with a signal name, if anything: the rule the host and
/// the SDK both check (1 to 256 bytes, no control characters, no `|`,
/// which separates the names one wait waits for).
///
/// ```
/// assert_eq!(wf_bindgen_util::signal_name_problem("approve"), None);
/// assert_eq!(wf_bindgen_util::signal_name_problem(""), Some("is empty"));
/// assert!(wf_bindgen_util::signal_name_problem("a|b").is_some());
/// ```
pub fn signal_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_SIGNAL_NAME_BYTES {
        Some("is longer than 256 bytes")
    } else if name.chars().any(char::is_control) {
        Some("has a control character")
    } else if name.contains('|') {
        Some("has a `|` (it separates the names a wait waits for)")
    } else {
        None
    }
}
