//! Entry points for the cargo-fuzz targets in `fuzz/` (cargo feature
//! `fuzzing`, off by default): thin public wrappers over crate-private code.
//! Not a stable API; nothing else should use it.

use crate::bindings::{from_state_buffer, to_state_buffer, to_wit_state};
use crate::model::{self, ModelError, WorkflowState};
use crate::store::{StoreError, StoreLimits, validate};

/// The WIT `types` a guest passes to `save` and receives from `load` and
/// `list`, as the host's bindings generate them.
pub mod wit {
    pub use crate::bindings::wit::{
        EventType, HistoryEvent, StoreError, Timestamp, WorkflowState, WorkflowStatus,
    };
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
    let limits = StoreLimits::default().max_value_bytes(max_value_bytes);
    let mut state = WorkflowState::from(state);
    let encoded = validate::encode_for_save("fuzz/save", &mut state, &limits)?;
    let replayed = model::decode_state(&encoded).map(|s| to_wit_state(&s));
    Ok(WitRoundTrip {
        saved: to_wit_state(&state),
        encoded,
        replayed,
    })
}

/// `decode_state`'s two paths on the same bytes: the fast path's answer
/// (`None` when it gives up) and the general decoder's. Whenever the fast
/// path answers, the two must agree.
pub fn decode_both_paths(
    bytes: &[u8],
) -> (Option<WorkflowState>, Result<WorkflowState, ModelError>) {
    (model::decode_canonical(bytes), model::decode_general(bytes))
}

/// A guest's state buffer (`save-buffer`) as the state the host saves, or
/// the error the guest gets.
pub fn unpack_state(packed: &[u8]) -> Result<WorkflowState, wit::StoreError> {
    from_state_buffer(packed, None)
}

/// A state packed as `load-buffer` passes it into a guest.
pub fn pack_state(state: &WorkflowState) -> Result<Vec<u8>, wit::StoreError> {
    to_state_buffer(state)
}
