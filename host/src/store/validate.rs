//! Input validation shared by every backend, so that each rejects the same
//! input with the same `StoreError` before anything is written.

use super::{ListFilter, StoreError};
use crate::model::{self, WorkflowState};

/// The longest workflow id accepted, in bytes (the WIT contract's limit).
pub const MAX_ID_BYTES: usize = 1024;

/// Bounds a store enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// The largest encoded state accepted by `save`, in bytes.
    pub max_value_bytes: usize,
    /// The page size `list` uses when no limit is given.
    pub default_page_size: u32,
    /// The largest page `list` returns, whatever limit is asked for.
    pub max_page_size: u32,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 1024 * 1024,
            default_page_size: 100,
            max_page_size: 1000,
        }
    }
}

/// Checks a workflow id: non-empty, at most [`MAX_ID_BYTES`], no control characters.
///
/// `op` prefixes the message, e.g. `kafka/save`.
pub fn check_id(op: &str, workflow_id: &str) -> Result<(), StoreError> {
    if workflow_id.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "{op}: workflow ID is required"
        )));
    }
    if workflow_id.len() > MAX_ID_BYTES {
        return Err(StoreError::InvalidArgument(format!(
            "{op}: workflow ID is {} bytes, over the {MAX_ID_BYTES}-byte limit",
            workflow_id.len()
        )));
    }
    if let Some((at, c)) = workflow_id.char_indices().find(|(_, c)| c.is_control()) {
        return Err(StoreError::InvalidArgument(format!(
            "{op}: workflow ID has control character U+{:04X} at byte {at}",
            c as u32
        )));
    }
    Ok(())
}

/// Validates `state` for a save and returns its wire encoding.
///
/// Normalizes the JSON fields first ([`WorkflowState::normalize_json_fields`]),
/// so what a backend keeps equals what a replay of the encoding gives back.
/// Rejects a bad id, invalid JSON fields, out-of-range timestamps
/// (`InvalidArgument`) and an encoding over `limits.max_value_bytes` (`TooLarge`).
pub fn encode_for_save(
    op: &str,
    state: &mut WorkflowState,
    limits: &StoreLimits,
) -> Result<Vec<u8>, StoreError> {
    check_id(op, &state.workflow_id)?;
    state.normalize_json_fields();
    let value = model::encode_state(state)
        .map_err(|e| StoreError::InvalidArgument(format!("{op}: {e}")))?;
    if value.len() > limits.max_value_bytes {
        return Err(StoreError::TooLarge(format!(
            "{op}: encoded state of {:?} is {} bytes, over the {}-byte limit",
            state.workflow_id,
            value.len(),
            limits.max_value_bytes
        )));
    }
    Ok(value)
}

/// The number of states a `list` with `filter` may return.
pub fn page_size(op: &str, filter: &ListFilter, limits: &StoreLimits) -> Result<usize, StoreError> {
    match filter.limit {
        None => Ok(limits.default_page_size as usize),
        Some(0) => Err(StoreError::InvalidArgument(format!(
            "{op}: limit must be at least 1"
        ))),
        Some(n) => Ok(n.min(limits.max_page_size) as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_in_one_place() {
        assert!(check_id("t/save", "order-1").is_ok());
        assert!(check_id("t/save", &"x".repeat(MAX_ID_BYTES)).is_ok());
        assert!(check_id("t/save", "é-ü").is_ok());
        assert_eq!(
            check_id("kafka/save", ""),
            Err(StoreError::InvalidArgument(
                "kafka/save: workflow ID is required".into()
            ))
        );
        let long = check_id("t/save", &"x".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert!(long.to_string().contains("1025 bytes"), "{long}");
        let nul = check_id("t/save", "a\0b").unwrap_err();
        assert!(nul.to_string().contains("U+0000 at byte 1"), "{nul}");
        assert!(check_id("t/save", "a\nb").is_err());
        assert!(check_id("t/save", "a\u{7f}").is_err());
        assert!(check_id("t/save", "a\u{85}").is_err());
    }

    #[test]
    fn page_size_defaults_clamps_and_rejects_zero() {
        let limits = StoreLimits::default();
        let page = |limit| {
            page_size(
                "t/list",
                &ListFilter {
                    limit,
                    ..Default::default()
                },
                &limits,
            )
        };
        assert_eq!(page(None), Ok(100));
        assert_eq!(page(Some(7)), Ok(7));
        assert_eq!(page(Some(5000)), Ok(1000));
        assert!(matches!(page(Some(0)), Err(StoreError::InvalidArgument(_))));
    }
}
