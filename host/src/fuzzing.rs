//! Entry points for the cargo-fuzz targets in `fuzz/` (cargo feature
//! `fuzzing`, off by default): thin public wrappers over crate-private code.
//! Not a stable API; nothing else should use it.

use crate::bindings::to_wit_state;
use crate::model::{self, ModelError, WorkflowState};
use crate::store::kafka::cache::{SkipReason, decode_record};
use crate::store::{StoreError, StoreLimits, validate};

/// The WIT `types` a guest passes to `save` and receives from `load` and
/// `list`, as the host's bindings generate them.
pub mod wit {
    pub use crate::bindings::wit::{
        EventType, HistoryEvent, StoreError, Timestamp, WorkflowState, WorkflowStatus,
    };
}

/// Why the topic's record decoder skipped a record (a public mirror of the
/// decoder's crate-private reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No key, or an empty one.
    MissingKey,
    /// The key is not UTF-8.
    KeyNotUtf8,
    /// The value does not decode; the decoder's message.
    BadValue(String),
    /// The value decodes but its `WorkflowID` is not the key.
    KeyMismatch {
        /// The record's key.
        key: String,
        /// The decoded `WorkflowID`.
        workflow_id: String,
    },
    /// Any other reason; its message.
    Other(String),
}

/// A record the decoder accepted: the key and the state (`None` for a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// The record's key, the workflow id.
    pub key: String,
    /// The decoded, normalized state; `None` for a tombstone.
    pub state: Option<WorkflowState>,
}

/// Runs the Kafka store's record decoder on a raw record (`None` is an
/// absent key or value, as librdkafka reports them).
pub fn kafka_record(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<KafkaRecord, Skip> {
    match decode_record(key, value) {
        Ok(record) => Ok(KafkaRecord {
            key: record.key,
            state: record.state,
        }),
        Err(SkipReason::MissingKey) => Err(Skip::MissingKey),
        Err(SkipReason::KeyNotUtf8) => Err(Skip::KeyNotUtf8),
        Err(SkipReason::BadValue(message)) => Err(Skip::BadValue(message)),
        Err(SkipReason::KeyMismatch { key, workflow_id }) => {
            Err(Skip::KeyMismatch { key, workflow_id })
        }
        Err(other) => Err(Skip::Other(other.to_string())),
    }
}

/// What a guest's state becomes on its way through a save and a replay.
#[derive(Debug)]
pub struct WitRoundTrip {
    /// The guest's state after the save's normalization, back in WIT form:
    /// what a store keeps and a `load` should return.
    pub saved: wit::WorkflowState,
    /// The bytes the save writes to the topic.
    pub encoded: Vec<u8>,
    /// What a replay of those bytes gives back, in WIT form.
    pub replayed: Result<wit::WorkflowState, ModelError>,
}

/// The path of a guest's `save` and a later replay's `load`: WIT state ->
/// [`model::WorkflowState`] -> [`validate::encode_for_save`] (with the
/// default limits but `max_value_bytes`) -> [`model::decode_state`] -> WIT
/// state. Fails as the save would (`InvalidArgument`, `TooLarge`).
pub fn wit_round_trip(
    state: wit::WorkflowState,
    max_value_bytes: usize,
) -> Result<WitRoundTrip, StoreError> {
    let limits = StoreLimits {
        max_value_bytes,
        ..StoreLimits::default()
    };
    let mut state = WorkflowState::from(state);
    let encoded = validate::encode_for_save("fuzz/save", &mut state, &limits)?;
    let replayed = model::decode_state(&encoded).map(|s| to_wit_state(&s));
    Ok(WitRoundTrip {
        saved: to_wit_state(&state),
        encoded,
        replayed,
    })
}
