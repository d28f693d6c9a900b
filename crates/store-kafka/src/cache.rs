//! The in-memory view of the topic: the newest record per key, ordered by
//! offset, fed by two sources that race each other — acknowledgements of this
//! host's own writes and the replay/tail consumer.
//!
//! Ordering rule: every key remembers the partition and offset of the record
//! it reflects, and every partition remembers the last offset the consumer
//! applied. A record is applied only if it is newer than both, so whichever
//! source arrives first, the cache ends equal to the last record in the log.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use wf_host::model::{self, WorkflowState};
use wf_host::store::{ListFilter, validate};

/// One decoded record of the topic.
#[derive(Debug)]
pub(crate) struct Record {
    /// The workflow id (the record's key).
    pub key: String,
    /// The state, or `None` for a tombstone.
    pub state: Option<WorkflowState>,
}

/// Why a record of the topic was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SkipReason {
    /// No key, or an empty one.
    #[error("record has no key")]
    MissingKey,
    /// The key is not UTF-8.
    #[error("key is not UTF-8")]
    KeyNotUtf8,
    /// The value does not decode as a workflow state.
    #[error("value is not a workflow state: {0}")]
    BadValue(String),
    /// The value is over the store's value limit.
    #[error("value is {bytes} bytes, over the {limit}-byte value limit")]
    ValueTooLarge {
        /// The value's size.
        bytes: usize,
        /// The store's `max_value_bytes`.
        limit: usize,
    },
    /// The value decodes but names another workflow.
    #[error("key {key:?} differs from the value's WorkflowID {workflow_id:?}")]
    KeyMismatch {
        /// The record's key.
        key: String,
        /// The decoded `WorkflowID`.
        workflow_id: String,
    },
    /// The record is not in the partition the producer's partitioner (murmur2)
    /// places its id in: an id is read from that partition only.
    #[error(
        "the record of {key:?} is not in partition {home}, where murmur2 places the id; an id is read from that partition only (a writer must use a murmur2 partitioner)"
    )]
    Misplaced {
        /// The record's key.
        key: String,
        /// The partition murmur2 places it in.
        home: i32,
    },
}

/// Decodes a raw record of the topic: key = workflow id, value = the Go
/// provider's JSON, no value = tombstone.
pub(crate) fn decode_record(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Record, SkipReason> {
    let key = match key {
        None | Some([]) => return Err(SkipReason::MissingKey),
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| SkipReason::KeyNotUtf8)?,
    };
    let Some(value) = value else {
        return Ok(Record {
            key: key.to_owned(),
            state: None,
        });
    };
    let mut state = model::decode_state(value).map_err(|e| SkipReason::BadValue(e.to_string()))?;
    if state.workflow_id != key {
        return Err(SkipReason::KeyMismatch {
            key: key.to_owned(),
            workflow_id: state.workflow_id,
        });
    }
    state.normalize_json_fields();
    Ok(Record {
        key: state.workflow_id.clone(),
        state: Some(state),
    })
}

/// Where a cached entry came from in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    partition: i32,
    offset: i64,
}

/// A key's newest known record. A tombstone is kept (with `state: None`) only
/// until the consumer has passed its offset, so that an older record of the
/// key that the consumer delivers late cannot resurrect it.
#[derive(Debug)]
struct Slot {
    state: Option<Arc<WorkflowState>>,
    at: Position,
}

/// The cache of live workflow states.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    slots: BTreeMap<String, Slot>,
    /// Per partition, the last offset the consumer applied (-1: none yet).
    consumed: Vec<i64>,
    live: usize,
    /// The live states' [`validate::cache_cost`], summed.
    bytes: usize,
}

impl Cache {
    /// The state of `key`, if live.
    pub fn get(&self, key: &str) -> Option<Arc<WorkflowState>> {
        self.slots.get(key).and_then(|slot| slot.state.clone())
    }

    /// The state of `key` with its version, if live.
    pub fn get_versioned(&self, key: &str) -> Option<(Arc<WorkflowState>, u64)> {
        let slot = self.slots.get(key)?;
        Some((slot.state.clone()?, version_at(slot.at.offset)))
    }

    /// The version of `key`: its record's offset plus one, 0 when not live.
    pub fn version(&self, key: &str) -> u64 {
        self.slots
            .get(key)
            .filter(|slot| slot.state.is_some())
            .map_or(0, |slot| version_at(slot.at.offset))
    }

    /// Up to `limit` live states `filter` lists, ascending by id.
    pub fn page(&self, filter: &ListFilter, limit: usize) -> Vec<Arc<WorkflowState>> {
        self.slots
            .range::<str, _>((filter.start(), Bound::Unbounded))
            .take_while(|(id, _)| filter.in_range(id))
            .filter_map(|(_, slot)| slot.state.as_ref())
            .filter(|state| filter.status.is_none_or(|s| state.status == s))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The number of live states.
    pub fn len(&self) -> usize {
        self.live
    }

    /// About how much memory the live states take (see [`validate::cache_cost`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every live state, ascending by id.
    pub fn states(&self) -> impl Iterator<Item = &Arc<WorkflowState>> {
        self.slots.values().filter_map(|slot| slot.state.as_ref())
    }

    /// The last offset the consumer applied in `partition`, -1 when none.
    pub fn consumed(&self, partition: i32) -> i64 {
        self.consumed.get(partition as usize).copied().unwrap_or(-1)
    }

    /// Whether `key` already reflects exactly the record at `partition`/`offset`
    /// (this host's own write, acknowledged before the consumer read it back).
    pub fn holds(&self, key: &str, partition: i32, offset: i64) -> bool {
        self.slots
            .get(key)
            .is_some_and(|slot| slot.at == Position { partition, offset })
    }

    /// Applies the acknowledgement of this host's own write of `key`.
    /// Returns whether the cache changed.
    pub fn apply_ack(
        &mut self,
        key: &str,
        state: Option<Arc<WorkflowState>>,
        partition: i32,
        offset: i64,
    ) -> bool {
        // The consumer already passed this offset: it applied this record, or
        // a newer one of the same key.
        if offset <= self.consumed(partition) {
            return false;
        }
        self.put(key, state, Position { partition, offset })
    }

    /// Applies a record the consumer read at `partition`/`offset`. Returns
    /// `false` for a record at or below an offset already consumed in its
    /// partition (a broker may deliver a range twice) or older than what the
    /// key already holds.
    pub fn apply_consumed(&mut self, partition: i32, offset: i64, record: Record) -> bool {
        if offset <= self.consumed(partition) {
            return false;
        }
        self.mark_consumed(partition, offset);
        let at = Position { partition, offset };
        if let Some(slot) = self.slots.get(record.key.as_str())
            && slot.at.partition == partition
            && slot.at.offset >= offset
        {
            // This host's own ack got here first with this or a newer record.
            // A tombstone whose offset the consumer has now reached is no
            // longer needed as a guard.
            if slot.state.is_none() && slot.at.offset == offset {
                self.slots.remove(record.key.as_str());
            }
            return false;
        }
        match record.state {
            Some(state) => self.put(&record.key, Some(Arc::new(state)), at),
            // The consumer itself is the guard from here on: no slot needed.
            None => self.remove(&record.key),
        }
    }

    /// Records that the consumer read `offset` in `partition` (also for
    /// records it skipped), so later duplicates of the range are ignored.
    pub fn mark_consumed(&mut self, partition: i32, offset: i64) {
        let index = usize::try_from(partition).unwrap_or(0);
        if self.consumed.len() <= index {
            self.consumed.resize(index + 1, -1);
        }
        self.consumed[index] = self.consumed[index].max(offset);
    }

    fn put(&mut self, key: &str, state: Option<Arc<WorkflowState>>, at: Position) -> bool {
        let is_live = state.is_some();
        match self.slots.get_mut(key) {
            Some(slot) => {
                if slot.at.partition == at.partition && slot.at.offset >= at.offset {
                    return false;
                }
                match (slot.state.is_some(), is_live) {
                    (true, false) => self.live -= 1,
                    (false, true) => self.live += 1,
                    _ => {}
                }
                self.bytes -= cost(key, slot.state.as_deref());
                self.bytes += cost(key, state.as_deref());
                *slot = Slot { state, at };
            }
            None => {
                if is_live {
                    self.live += 1;
                }
                self.bytes += cost(key, state.as_deref());
                self.slots.insert(key.to_owned(), Slot { state, at });
            }
        }
        true
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.slots.remove(key) {
            Some(Slot {
                state: Some(state), ..
            }) => {
                self.live -= 1;
                self.bytes -= cost(key, Some(&state));
                true
            }
            Some(Slot { state: None, .. }) | None => false,
        }
    }
}

/// The version of the record at `offset` (offsets start at 0, versions at 1).
pub(crate) fn version_at(offset: i64) -> u64 {
    u64::try_from(offset).map_or(0, |o| o + 1)
}

/// What a slot's state costs against the cache bound; a tombstone's guard nothing.
fn cost(key: &str, state: Option<&WorkflowState>) -> usize {
    state.map_or(0, |state| validate::cache_cost(key, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_host::model::WorkflowStatus;
    use wf_host::model::{Timestamp, encode_state};

    fn state(id: &str, run: &str) -> WorkflowState {
        WorkflowState {
            workflow_id: id.into(),
            run_id: run.into(),
            status: WorkflowStatus::Running,
            input: None,
            result: None,
            error: String::new(),
            history: Vec::new(),
            created_at: Timestamp::GO_ZERO,
            updated_at: Timestamp::GO_ZERO,
        }
    }

    fn record(id: &str, run: Option<&str>) -> Record {
        Record {
            key: id.into(),
            state: run.map(|r| state(id, r)),
        }
    }

    fn run_of(cache: &Cache, id: &str) -> Option<String> {
        cache.get(id).map(|s| s.run_id.clone())
    }

    #[test]
    fn decode_skips_what_is_not_a_record_of_this_topic() {
        let good = encode_state(&state("a", "r")).unwrap();
        assert_eq!(decode_record(Some(b"a"), Some(&good)).unwrap().key, "a");
        assert!(decode_record(Some(b"a"), None).unwrap().state.is_none());
        assert_eq!(
            decode_record(None, Some(&good)).unwrap_err(),
            SkipReason::MissingKey
        );
        assert_eq!(
            decode_record(Some(b""), None).unwrap_err(),
            SkipReason::MissingKey
        );
        assert_eq!(
            decode_record(Some(&[0xff, 0xfe]), Some(&good)).unwrap_err(),
            SkipReason::KeyNotUtf8
        );
        assert!(matches!(
            decode_record(Some(b"b"), Some(&good)).unwrap_err(),
            SkipReason::KeyMismatch { .. }
        ));
        for bad in [
            &b"{not json"[..],
            b"null",
            b"[]",
            b"{\"Status\":\"sleeping\"}",
        ] {
            assert!(
                matches!(
                    decode_record(Some(b"a"), Some(bad)),
                    Err(SkipReason::BadValue(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn last_record_per_key_wins_and_tombstones_delete() {
        let mut cache = Cache::default();
        assert!(cache.apply_consumed(0, 0, record("a", Some("1"))));
        assert!(cache.apply_consumed(0, 1, record("b", Some("1"))));
        assert!(cache.apply_consumed(0, 2, record("a", Some("2"))));
        assert!(cache.apply_consumed(0, 3, record("b", None)));
        assert_eq!(run_of(&cache, "a").as_deref(), Some("2"));
        assert_eq!(run_of(&cache, "b"), None);
        assert_eq!(cache.len(), 1);
        // A range delivered twice changes nothing.
        assert!(!cache.apply_consumed(0, 0, record("a", Some("1"))));
        assert!(!cache.apply_consumed(0, 1, record("b", Some("1"))));
        assert_eq!(run_of(&cache, "a").as_deref(), Some("2"));
        assert_eq!(run_of(&cache, "b"), None);
    }

    #[test]
    fn acks_and_consumer_in_either_order_end_at_the_newest_record() {
        // Two writes of "a" at offsets 5 and 6; acks arrive out of order and
        // the consumer lags behind both.
        let mut cache = Cache::default();
        assert!(cache.apply_ack("a", Some(Arc::new(state("a", "6"))), 0, 6));
        assert!(cache.holds("a", 0, 6) && !cache.holds("a", 0, 5) && !cache.holds("a", 1, 6));
        assert!(!cache.apply_ack("a", Some(Arc::new(state("a", "5"))), 0, 5));
        assert!(!cache.apply_consumed(0, 5, record("a", Some("5"))));
        assert_eq!(run_of(&cache, "a").as_deref(), Some("6"));
        assert!(!cache.apply_consumed(0, 6, record("a", Some("6"))));
        assert_eq!(run_of(&cache, "a").as_deref(), Some("6"));

        // The consumer ahead of a late ack: the ack is ignored.
        assert!(cache.apply_consumed(0, 7, record("b", Some("7"))));
        assert!(!cache.apply_ack("b", Some(Arc::new(state("b", "old"))), 0, 7));
        assert_eq!(run_of(&cache, "b").as_deref(), Some("7"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn an_acknowledged_delete_is_not_undone_by_an_older_record() {
        let mut cache = Cache::default();
        assert!(cache.apply_ack("a", Some(Arc::new(state("a", "1"))), 2, 10));
        assert!(cache.apply_ack("a", None, 2, 11));
        assert_eq!(cache.len(), 0);
        // The consumer catches up with the save, then the tombstone.
        assert!(!cache.apply_consumed(2, 10, record("a", Some("1"))));
        assert_eq!(run_of(&cache, "a"), None);
        assert!(!cache.apply_consumed(2, 11, record("a", None)));
        assert!(
            cache.slots.is_empty(),
            "the tombstone guard is dropped once consumed"
        );
        // And a later save of the id lives again.
        assert!(cache.apply_consumed(2, 12, record("a", Some("3"))));
        assert_eq!(run_of(&cache, "a").as_deref(), Some("3"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn pages_are_ordered_filtered_and_bounded() {
        let mut cache = Cache::default();
        for (offset, id) in ["c", "a", "d", "b"].into_iter().enumerate() {
            cache.apply_consumed(0, offset as i64, record(id, Some("r")));
        }
        for (offset, id) in ["p/1", "p/2", "p0", "o"].into_iter().enumerate() {
            cache.apply_consumed(1, offset as i64, record(id, Some("r")));
        }
        cache.apply_ack("b", None, 0, 9);
        let ids = |page: Vec<Arc<WorkflowState>>| {
            page.iter()
                .map(|s| s.workflow_id.clone())
                .collect::<Vec<_>>()
        };
        let all = ListFilter::default();
        assert_eq!(
            ids(cache.page(&all, 10)),
            ["a", "c", "d", "o", "p/1", "p/2", "p0"]
        );
        assert_eq!(ids(cache.page(&all.clone().after("a"), 1)), ["c"]);
        let under_p = ListFilter::default().prefix("p/");
        assert_eq!(ids(cache.page(&under_p, 10)), ["p/1", "p/2"]);
        assert_eq!(
            ids(cache.page(&under_p.clone().after("a"), 10)),
            ["p/1", "p/2"]
        );
        assert_eq!(ids(cache.page(&under_p.clone().after("p/1"), 10)), ["p/2"]);
        assert!(cache.page(&under_p.clone().after("p/2"), 10).is_empty());
        assert!(cache.page(&under_p.after("q"), 10).is_empty());
        assert!(
            cache
                .page(&all.status(WorkflowStatus::Completed), 10)
                .is_empty()
        );
    }
}
