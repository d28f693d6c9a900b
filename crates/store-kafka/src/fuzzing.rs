//! Entry points for the cargo-fuzz targets in `fuzz/` (cargo feature
//! `fuzzing`, off by default): thin public wrappers over crate-private code.
//! Not a stable API; nothing else should use it.

use std::sync::Arc;

use wf_host::model::WorkflowState;

use crate::cache::{SkipReason, decode_record};

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
            state: record.state.map(Arc::unwrap_or_clone),
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
