//! Input validation shared by every backend, so that each rejects the same
//! input with the same `StoreError` before anything is written.

use super::{ListFilter, StoreError, Version};
use crate::model::{self, WorkflowState};

/// The longest workflow id accepted, in bytes (the WIT contract's limit).
pub const MAX_ID_BYTES: usize = 1024;

/// Bounds a store enforces.
///
/// ```
/// use wf_host::store::StoreLimits;
///
/// let limits = StoreLimits::default().max_value_bytes(64 * 1024).max_history_events(500);
/// assert_eq!(limits.max_page_size, 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreLimits {
    /// The largest encoded state accepted by `save`, in bytes.
    pub max_value_bytes: usize,
    /// The page size `list` uses when no limit is given.
    pub default_page_size: u32,
    /// The largest page `list` returns, whatever limit is asked for.
    pub max_page_size: u32,
    /// The most history events one state may carry.
    pub max_history_events: usize,
    /// About how much memory the store's states may take (see
    /// [`WorkflowState::approx_memory_bytes`]); past it, a save of an id not
    /// yet stored is refused (`unavailable`) while saves of stored ids and
    /// deletes go on. For Kafka, replay and tailing still apply every record
    /// of the topic: the log is the truth, the bound only stops this host
    /// from adding to it.
    pub max_cache_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 1024 * 1024,
            default_page_size: 100,
            max_page_size: 1000,
            max_history_events: 10_000,
            max_cache_bytes: 1 << 30,
        }
    }
}

impl StoreLimits {
    /// Sets [`StoreLimits::max_value_bytes`].
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Sets [`StoreLimits::max_history_events`].
    pub fn max_history_events(mut self, events: usize) -> Self {
        self.max_history_events = events;
        self
    }

    /// Sets [`StoreLimits::max_cache_bytes`].
    pub fn max_cache_bytes(mut self, bytes: usize) -> Self {
        self.max_cache_bytes = bytes;
        self
    }

    /// Sets [`StoreLimits::default_page_size`].
    pub fn default_page_size(mut self, size: u32) -> Self {
        self.default_page_size = size;
        self
    }

    /// Sets [`StoreLimits::max_page_size`].
    pub fn max_page_size(mut self, size: u32) -> Self {
        self.max_page_size = size;
        self
    }
}

/// What one cached entry of `key` holding `state` costs against
/// [`StoreLimits::max_cache_bytes`]: the state, its key and the map's node.
pub fn cache_cost(key: &str, state: &WorkflowState) -> usize {
    const ENTRY_OVERHEAD: usize = 64;
    state.approx_memory_bytes() + key.len() + ENTRY_OVERHEAD
}

/// Refuses a save of a new id once the cache holds `cached_bytes`, at or
/// over [`StoreLimits::max_cache_bytes`] with this state added.
pub fn check_cache_room(
    op: &str,
    cached_bytes: usize,
    cached_states: usize,
    added_bytes: usize,
    limits: &StoreLimits,
) -> Result<(), StoreError> {
    if cached_bytes.saturating_add(added_bytes) <= limits.max_cache_bytes {
        return Ok(());
    }
    Err(StoreError::Unavailable(format!(
        "{op}: the cache is full: {cached_states} states take about {cached_bytes} bytes and this one \
         {added_bytes} more, over the {}-byte cache limit; new workflow ids are refused until \
         states are deleted or the limit is raised (existing ids can still be saved)",
        limits.max_cache_bytes
    )))
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
/// (`InvalidArgument`), and a history over `limits.max_history_events` or an
/// encoding over `limits.max_value_bytes` (`TooLarge`).
pub fn encode_for_save(
    op: &str,
    state: &mut WorkflowState,
    limits: &StoreLimits,
) -> Result<Vec<u8>, StoreError> {
    check_id(op, &state.workflow_id)?;
    check_history_len(op, &state.workflow_id, state.history.len(), limits)?;
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

/// `too-large` when a state of `workflow_id` with `events` history events
/// is over `limits.max_history_events`. Checked before anything is built
/// from a history whose length is known first (a guest's packed save).
pub fn check_history_len(
    op: &str,
    workflow_id: &str,
    events: usize,
    limits: &StoreLimits,
) -> Result<(), StoreError> {
    if events > limits.max_history_events {
        return Err(StoreError::TooLarge(format!(
            "{op}: state of {workflow_id:?} has {events} history events, over the limit of {}",
            limits.max_history_events
        )));
    }
    Ok(())
}

/// `conflict` unless a conditional save's `expected` version is the id's
/// `current` one (0: no state stored). Every backend words it the same way.
pub fn check_version(
    op: &str,
    workflow_id: &str,
    current: Version,
    expected: Option<Version>,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::Conflict(format!(
            "{op}: workflow {workflow_id:?} is at version {current}, not the expected {expected}{}",
            if current == 0 {
                " (no state is stored)"
            } else {
                ""
            }
        ))),
        _ => Ok(()),
    }
}

/// The number of states a `list` with `filter` may return.
pub fn page_size(op: &str, filter: &ListFilter, limits: &StoreLimits) -> Result<usize, StoreError> {
    if let Some(prefix) = &filter.prefix
        && prefix.len() > MAX_ID_BYTES
    {
        return Err(StoreError::InvalidArgument(format!(
            "{op}: the id prefix is {} bytes; no id is longer than {MAX_ID_BYTES}",
            prefix.len()
        )));
    }
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
