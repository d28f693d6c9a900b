//! The in-memory view of the topic: the newest record per key, ordered by
//! offset, fed by two sources that race each other — acknowledgements of this
//! host's own writes and the replay/tail consumer.
//!
//! Ordering rule: every key remembers the partition and offset of the record
//! it reflects, and every partition remembers the last offset the consumer
//! applied. A record is applied only if it is newer than both, so whichever
//! source arrives first, the cache ends equal to the last record in the log.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use wf_host::model::{self, WorkflowState};
use wf_host::store::{ListFilter, validate};

use super::context::HighWatermarks;
use super::local::{Applied, Change, DiskSlots, Restored, RowHead, tombstones_may_be_gone};
use crate::partition::partition_for_key;

/// One decoded record of the topic.
#[derive(Debug)]
pub(crate) struct Record {
    /// The workflow id (the record's key).
    pub key: String,
    /// The state, or `None` for a tombstone.
    pub state: Option<Arc<WorkflowState>>,
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
        state: Some(Arc::new(state)),
    })
}

/// Where a cached entry came from in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// A key's newest known record. A tombstone is kept (with `state: None`) only
/// until the consumer has passed its offset, so that an older record of the
/// key that the consumer delivers late cannot resurrect it.
#[derive(Debug)]
struct Slot {
    state: Option<Arc<WorkflowState>>,
    at: Position,
    /// What the state costs against the cache bound, kept so that a lookup
    /// (every save and every record read back looks its id up) does not
    /// walk the state to recount it.
    cost: usize,
}

/// What passing one of this store's acknowledged writes needs: its
/// checkpoint mark, and for a tombstone the key whose guard it drops.
#[derive(Debug)]
struct AckedWrite {
    mark: u64,
    tombstone: Option<Box<str>>,
}

/// The cache of live workflow states: in memory, or on local disk
/// ([`DiskSlots`]) with only the recent changes and hot ids in memory.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    /// The entries when in memory (empty when on disk).
    slots: BTreeMap<String, Slot>,
    disk: Option<DiskSlots>,
    /// Per partition, the last offset the consumer applied (-1: none yet).
    consumed: Vec<i64>,
    /// Per partition, the mark of that record (kept for checkpoints only).
    marks: Vec<u64>,
    /// This store's acknowledged writes past a gap in what the consumer
    /// applied, by partition and offset: the consumer's position passes
    /// them once every offset before them is applied (see [`Cache::apply_ack`]).
    acked: BTreeMap<(i32, i64), AckedWrite>,
    /// Per partition, when it was last seen read to its end (checkpoints only).
    read_to_end: Vec<i64>,
    /// Per partition, whether entries of it may be held (checkpoints only).
    holds_entries: Vec<bool>,
    /// For checkpoints: the high watermarks the tail fetches, and how long
    /// the topic keeps tombstones.
    tail: Option<(Arc<HighWatermarks>, Duration)>,
    /// Per partition taken again, its high watermark then: a watermark
    /// reported below it is from before the partition was given up.
    taken_at: BTreeMap<i32, i64>,
    live: usize,
    /// The live states' [`validate::cache_cost`], summed.
    bytes: usize,
    /// The topic's partition count: where each id is placed.
    partitions: i32,
    /// The partitions the tail reads, when it reads only the host's own
    /// (`None`: all of them). A write of another partition is not cached:
    /// its reads go to its owner.
    kept: Option<BTreeSet<i32>>,
}

impl Cache {
    /// A cache on local disk, from what its checkpoint restored.
    pub fn on_disk(restored: Restored) -> Self {
        Self {
            slots: BTreeMap::new(),
            consumed: restored.applied.iter().map(|a| a.offset).collect(),
            marks: restored.applied.iter().map(|a| a.mark).collect(),
            acked: BTreeMap::new(),
            read_to_end: restored.applied.iter().map(|a| a.read_to_end_ms).collect(),
            holds_entries: restored.applied.iter().map(|a| a.holds_entries).collect(),
            tail: None,
            taken_at: BTreeMap::new(),
            disk: Some(restored.slots),
            live: restored.live,
            bytes: restored.bytes,
            partitions: 0,
            kept: None,
        }
    }

    /// Places ids in `partitions` partitions and, when `owned_only`, keeps
    /// none of them until [`Cache::take_partition`].
    pub fn partitioned(mut self, partitions: i32, owned_only: bool) -> Self {
        self.partitions = partitions;
        self.kept = owned_only.then(BTreeSet::new);
        self
    }

    /// Dates each checkpoint by when its partitions were last read to their
    /// end (from `highs`, the watermarks the tail fetches), so that one
    /// older than the topic's `tombstones` retention is not continued.
    pub fn dated_by(mut self, highs: Arc<HighWatermarks>, tombstones: Duration) -> Self {
        self.tail = Some((highs, tombstones));
        self
    }

    /// Notes that `partition` was read to the end it had at `at` (ms since
    /// the Unix epoch): a replay or a catch-up reached it.
    pub fn read_to_end_at(&mut self, partition: i32, at: i64) {
        if let Some(read_to_end) = self.read_to_end.get_mut(partition as usize) {
            *read_to_end = (*read_to_end).max(at);
        }
    }

    /// Whether the records of `partition` are kept here.
    pub fn keeps(&self, partition: i32) -> bool {
        self.kept
            .as_ref()
            .is_none_or(|kept| kept.contains(&partition))
    }

    /// Starts keeping `partition`, whose log runs from `low` to `high`;
    /// returns the offset its tail starts at (`None`: the start of the
    /// log). What the cache holds of it (the local state, from before the
    /// partition was last given up) is kept when the log still continues it,
    /// else forgotten, with a log line saying why.
    pub fn take_partition(&mut self, partition: i32, low: i64, high: i64) -> Option<i64> {
        if let Some(kept) = &mut self.kept {
            kept.insert(partition);
        }
        self.taken_at.insert(partition, high);
        let consumed = self.consumed(partition);
        if consumed < 0 {
            return None;
        }
        let read_to_end = self
            .read_to_end
            .get(partition as usize)
            .copied()
            .unwrap_or(0);
        let stale = self
            .tail
            .as_ref()
            .and_then(|(_, tombstones)| tombstones_may_be_gone(read_to_end, *tombstones));
        let reason = if stale.is_some() {
            stale
        } else if consumed + 1 < low {
            Some(format!(
                "the log starts at {low}, past the record after the one applied ({consumed})"
            ))
        } else if consumed >= high {
            Some(format!(
                "the log ends at {high}, before the record applied ({consumed}): the topic was recreated"
            ))
        } else {
            None
        };
        match reason {
            None => Some(consumed + 1),
            Some(reason) => {
                tracing::warn!(
                    partition,
                    "local state: reading the partition again: {reason}"
                );
                if let Err(e) = self.rebuild_partition(partition) {
                    tracing::error!(partition, "local state: cannot forget the partition: {e}");
                }
                None
            }
        }
    }

    /// Stops keeping `partition` (the host gave it up). In memory its
    /// entries are dropped; on disk they stay with their checkpoint, so
    /// that taking the partition back reads only the records written since.
    pub fn release_partition(&mut self, partition: i32) {
        if let Some(kept) = &mut self.kept {
            kept.remove(&partition);
        }
        self.forget_acked(partition);
        if self.disk.is_none()
            && let Err(e) = self.rebuild_partition(partition)
        {
            tracing::error!(partition, "cannot forget a partition given up: {e}");
        }
    }

    /// Whether entries are kept on disk with checkpoints.
    pub fn checkpoints(&self) -> bool {
        self.disk.is_some()
    }

    /// The local state's file, when on disk.
    pub fn disk_path(&self) -> Option<&std::path::Path> {
        self.disk.as_ref().map(DiskSlots::path)
    }

    /// What `key`'s entry says: where its record is, and whether it is live.
    fn head(&self, key: &str) -> Option<RowHead> {
        match &self.disk {
            Some(disk) => disk.head(key),
            None => self.slots.get(key).map(|slot| RowHead {
                at: slot.at,
                cost: slot.cost,
                live: slot.state.is_some(),
            }),
        }
    }

    /// The state of `key`, if live.
    pub fn get(&self, key: &str) -> Option<Arc<WorkflowState>> {
        match &self.disk {
            Some(disk) => disk.state(key),
            None => self.slots.get(key).and_then(|slot| slot.state.clone()),
        }
    }

    /// The state of `key` with its version, if live.
    pub fn get_versioned(&self, key: &str) -> Option<(Arc<WorkflowState>, u64)> {
        let head = self.head(key).filter(|head| head.live)?;
        Some((self.get(key)?, version_at(head.at.offset)))
    }

    /// The version of `key`: its record's offset plus one, 0 when not live.
    pub fn version(&self, key: &str) -> u64 {
        self.head(key)
            .filter(|head| head.live)
            .map_or(0, |head| version_at(head.at.offset))
    }

    /// Up to `limit` live states `filter` lists, ascending by id.
    pub fn page(&self, filter: &ListFilter, limit: usize) -> Vec<Arc<WorkflowState>> {
        let partitions = self.partitions.max(1);
        let listed = |id: &str| {
            filter.partitions.is_none()
                || filter.lists_partition(partition_for_key(id.as_bytes(), partitions))
        };
        if let Some(disk) = &self.disk {
            return disk.page(filter, limit, listed);
        }
        self.slots
            .range::<str, _>((filter.start(), Bound::Unbounded))
            .take_while(|(id, _)| filter.in_range(id))
            .filter(|(id, _)| listed(id))
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

    /// Calls `f` with every live state, ascending by id.
    pub fn for_each_state(&self, mut f: impl FnMut(&WorkflowState)) {
        match &self.disk {
            Some(disk) => disk.scan(&ListFilter::default(), |_, state| {
                f(&state);
                true
            }),
            None => self
                .slots
                .values()
                .filter_map(|slot| slot.state.as_deref())
                .for_each(f),
        }
    }

    /// The last offset the consumer applied in `partition`, -1 when none.
    pub fn consumed(&self, partition: i32) -> i64 {
        self.consumed.get(partition as usize).copied().unwrap_or(-1)
    }

    /// Whether `key` already reflects exactly the record at `partition`/`offset`
    /// (this host's own write, acknowledged before the consumer read it back).
    pub fn holds(&self, key: &str, partition: i32, offset: i64) -> bool {
        self.head(key)
            .is_some_and(|head| head.at == Position { partition, offset })
    }

    /// Whether `key` reflects the record at `partition`/`offset` or a newer
    /// one of its partition: applying that record would change nothing.
    pub fn holds_or_passed(&self, key: &str, partition: i32, offset: i64) -> bool {
        self.head(key)
            .is_some_and(|head| head.at.partition == partition && head.at.offset >= offset)
    }

    /// Applies the acknowledgement of this host's own write of `key`.
    /// Returns whether the cache changed.
    /// `json` is the record's value (empty for a tombstone).
    pub fn apply_ack(
        &mut self,
        key: &str,
        state: Option<Arc<WorkflowState>>,
        json: &[u8],
        partition: i32,
        offset: i64,
    ) -> bool {
        // The consumer already passed this offset: it applied this record, or
        // a newer one of the same key. Or the partition is not kept here.
        if offset <= self.consumed(partition) || !self.keeps(partition) {
            return false;
        }
        let tombstone = state.is_none();
        let changed = self.put(key, state, json, Position { partition, offset });
        // The record is the one the tail would read at this offset: the
        // consumer's position may pass it unread once every offset before
        // it is applied, so a tail that found only this store's records
        // since it last read the partition need not fetch them.
        let mark = if self.disk.is_some() {
            super::local::mark(Some(key.as_bytes()), (!tombstone).then_some(json))
        } else {
            0
        };
        self.acked.insert(
            (partition, offset),
            AckedWrite {
                mark,
                tombstone: tombstone.then(|| key.into()),
            },
        );
        self.pass_acked(partition);
        self.flush_if_due();
        changed
    }

    /// Advances `partition`'s consumer position over this store's
    /// acknowledged writes that directly follow it: only ever to an offset
    /// whose every predecessor was applied, by the consumer or by an
    /// acknowledgement, so no record of another writer is passed unread.
    fn pass_acked(&mut self, partition: i32) {
        loop {
            let consumed = self.consumed(partition);
            let Some(offset) = self.first_acked(partition) else {
                return;
            };
            if offset > consumed + 1 {
                return;
            }
            let Some(write) = self.acked.remove(&(partition, offset)) else {
                return;
            };
            if offset <= consumed {
                // The consumer read it.
                continue;
            }
            self.advance_consumed(partition, offset, write.mark);
            if let Some(key) = write.tombstone
                && self
                    .head(&key)
                    .is_some_and(|head| !head.live && head.at == Position { partition, offset })
            {
                // Passed: the position itself now keeps older records of the
                // key out, as after the consumer read the tombstone.
                self.drop_entry(&key);
            }
        }
    }

    fn first_acked(&self, partition: i32) -> Option<i64> {
        self.acked
            .range((partition, i64::MIN)..=(partition, i64::MAX))
            .next()
            .map(|(&(_, offset), _)| offset)
    }

    /// Forgets `partition`'s acknowledged writes not passed yet (it is read
    /// again from elsewhere, or not kept here any more).
    fn forget_acked(&mut self, partition: i32) {
        self.acked.retain(|&(p, _), _| p != partition);
    }

    /// Applies a record the consumer read at `partition`/`offset`. Returns
    /// `false` for a record at or below an offset already consumed in its
    /// partition (a broker may deliver a range twice) or older than what the
    /// key already holds.
    /// `json` is the record's value and `mark` its [`mark`](super::local::mark)
    /// (used by checkpoints only).
    pub fn apply_consumed(
        &mut self,
        partition: i32,
        offset: i64,
        record: Record,
        json: &[u8],
        mark: u64,
    ) -> bool {
        if offset <= self.consumed(partition) {
            return false;
        }
        self.advance_consumed(partition, offset, mark);
        let at = Position { partition, offset };
        let changed = match self.head(record.key.as_str()) {
            Some(head) if head.at.partition == partition && head.at.offset >= offset => {
                // This host's own ack got here first with this or a newer
                // record. A tombstone whose offset the consumer has now
                // reached is no longer needed as a guard.
                if !head.live && head.at.offset == offset {
                    self.drop_entry(&record.key);
                }
                false
            }
            _ => match record.state {
                Some(state) => self.put(&record.key, Some(state), json, at),
                // The consumer itself is the guard from here on: no slot needed.
                None => self.remove(&record.key),
            },
        };
        // After the record: a tombstone of this store's passed now must
        // find the record's state in place to drop it.
        self.pass_acked(partition);
        self.flush_if_due();
        changed
    }

    /// Records that the consumer read `offset` in `partition` (also for
    /// records it skipped), so later duplicates of the range are ignored.
    pub fn mark_consumed(&mut self, partition: i32, offset: i64, mark: u64) {
        self.advance_consumed(partition, offset, mark);
        self.pass_acked(partition);
    }

    fn advance_consumed(&mut self, partition: i32, offset: i64, mark: u64) {
        let index = usize::try_from(partition).unwrap_or(0);
        if self.consumed.len() <= index {
            self.consumed.resize(index + 1, -1);
            self.marks.resize(index + 1, 0);
            self.read_to_end.resize(index + 1, 0);
            self.holds_entries.resize(index + 1, false);
        }
        if offset > self.consumed[index] {
            self.consumed[index] = offset;
            self.marks[index] = mark;
        }
    }

    /// Forgets `partition`'s entries and where it was read to, so that it
    /// is read again from the start of its log.
    pub fn rebuild_partition(&mut self, partition: i32) -> Result<(), String> {
        let index = usize::try_from(partition).unwrap_or(0);
        self.forget_acked(partition);
        if let Some(consumed) = self.consumed.get_mut(index) {
            *consumed = -1;
            self.marks[index] = 0;
            self.read_to_end[index] = 0;
            self.holds_entries[index] = false;
        }
        match &mut self.disk {
            Some(disk) => {
                let (live, bytes) = disk.drop_partition(partition)?;
                self.live -= live;
                self.bytes -= bytes;
            }
            None => {
                let keys: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|(_, slot)| slot.at.partition == partition)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in keys {
                    self.remove(&key);
                    self.slots.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// Writes the local state's changes and checkpoint when enough changed.
    pub fn flush_if_due(&mut self) {
        if self.disk.as_ref().is_some_and(DiskSlots::flush_due) {
            self.flush(false);
        }
    }

    /// Writes the local state's changes and checkpoint now (durably when
    /// `durable`). A failure is logged; the changes stay and are retried.
    pub fn flush(&mut self, durable: bool) {
        if self.disk.is_none() {
            return;
        }
        if let Some((highs, _)) = &self.tail {
            for partition in 0..self.consumed.len() {
                let p = i32::try_from(partition).unwrap_or(i32::MAX);
                // Applied up to a high watermark reported at `at`: every
                // record not applied was written after.
                if self.keeps(p)
                    && let Some((high, at)) = highs.fetched(p)
                    && high >= self.taken_at.get(&p).copied().unwrap_or(0)
                    && self.consumed[partition] >= high - 1
                {
                    self.read_to_end[partition] = self.read_to_end[partition].max(at);
                }
            }
        }
        let applied: Vec<Applied> = self
            .consumed
            .iter()
            .zip(&self.marks)
            .zip(&self.read_to_end)
            .zip(&self.holds_entries)
            .map(
                |(((&offset, &mark), &read_to_end_ms), &holds_entries)| Applied {
                    offset,
                    mark,
                    read_to_end_ms,
                    holds_entries,
                },
            )
            .collect();
        let (live, bytes) = (self.live, self.bytes);
        if let Some(disk) = &mut self.disk
            && let Err(e) = disk.flush(&applied, live, bytes, durable)
        {
            tracing::error!(path = %disk.path().display(), "local state: cannot write: {e}");
        }
    }

    /// Writes the local state out durably and lets go of its file, so that
    /// another store may open it. The cache is empty afterwards.
    pub fn close(&mut self) {
        self.flush(true);
        if self.disk.take().is_some() {
            self.live = 0;
            self.bytes = 0;
        }
    }

    /// Drops `key`'s entry outright (a tombstone's guard the consumer passed).
    fn drop_entry(&mut self, key: &str) {
        match &mut self.disk {
            Some(disk) => disk.put(key, Change::Gone),
            None => {
                self.slots.remove(key);
            }
        }
    }

    /// Makes `state` (`None`: a tombstone's guard) at `at` the entry of
    /// `key`, unless the entry already reflects this or a newer record of
    /// the partition.
    fn put(
        &mut self,
        key: &str,
        state: Option<Arc<WorkflowState>>,
        json: &[u8],
        at: Position,
    ) -> bool {
        if let Some(old) = self.head(key) {
            if old.at.partition == at.partition && old.at.offset >= at.offset {
                return false;
            }
            self.live -= usize::from(old.live);
            self.bytes -= old.cost;
        }
        let head = RowHead {
            at,
            cost: cost(key, state.as_deref()),
            live: state.is_some(),
        };
        if let Some(holds) = self.holds_entries.get_mut(at.partition as usize) {
            *holds = true;
        }
        self.live += usize::from(head.live);
        self.bytes += head.cost;
        match &mut self.disk {
            Some(disk) => {
                let json: Arc<[u8]> = if head.live { json.into() } else { Arc::new([]) };
                disk.put(key, Change::Put { head, state, json });
            }
            None => {
                let slot = Slot {
                    state,
                    at,
                    cost: head.cost,
                };
                // An id saved again keeps its key: no new allocation for it.
                match self.slots.get_mut(key) {
                    Some(old) => *old = slot,
                    None => {
                        self.slots.insert(key.to_owned(), slot);
                    }
                }
            }
        }
        true
    }

    fn remove(&mut self, key: &str) -> bool {
        if self.disk.is_some() {
            let Some(old) = self.head(key) else {
                return false;
            };
            self.live -= usize::from(old.live);
            self.bytes -= old.cost;
            self.drop_entry(key);
            return old.live;
        }
        match self.slots.remove(key) {
            Some(Slot {
                state: Some(_),
                cost,
                ..
            }) => {
                self.live -= 1;
                self.bytes -= cost;
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
    use wf_host::model::encode_state;

    fn state(id: &str, run: &str) -> WorkflowState {
        WorkflowState::new(id, run, WorkflowStatus::Running)
    }

    fn record(id: &str, run: Option<&str>) -> Record {
        Record {
            key: id.into(),
            state: run.map(|r| Arc::new(state(id, r))),
        }
    }

    fn run_of(cache: &Cache, id: &str) -> Option<String> {
        cache.get(id).map(|s| s.run_id.clone())
    }

    /// A scratch directory removed on drop.
    pub(crate) struct Scratch(pub std::path::PathBuf);

    impl Scratch {
        pub fn new() -> Self {
            let dir =
                std::env::temp_dir().join(format!("wf-cache-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `test` on a cache in memory and on one on disk (which the
    /// helpers below flush at every step, so that reads go through the file).
    fn both(test: impl Fn(&mut Cache)) {
        test(&mut Cache::default());
        let scratch = Scratch::new();
        let restored = DiskSlots::open(&scratch.0, "t", "b", 4).unwrap();
        test(&mut Cache::on_disk(restored));
    }

    fn consume(
        cache: &mut Cache,
        partition: i32,
        offset: i64,
        id: &str,
        run: Option<&str>,
    ) -> bool {
        let r = record(id, run);
        let json = r
            .state
            .as_ref()
            .map(|s| encode_state(s).unwrap())
            .unwrap_or_default();
        let changed = cache.apply_consumed(partition, offset, r, &json, 0);
        cache.flush(false);
        changed
    }

    fn ack(cache: &mut Cache, id: &str, run: Option<&str>, partition: i32, offset: i64) -> bool {
        let state = run.map(|r| state(id, r));
        let json = state
            .as_ref()
            .map(|s| encode_state(s).unwrap())
            .unwrap_or_default();
        let changed = cache.apply_ack(id, state.map(Arc::new), &json, partition, offset);
        cache.flush(false);
        changed
    }

    #[test]
    fn last_record_per_key_wins_and_tombstones_delete() {
        both(|cache| {
            assert!(consume(cache, 0, 0, "a", Some("1")));
            assert!(consume(cache, 0, 1, "b", Some("1")));
            assert!(consume(cache, 0, 2, "a", Some("2")));
            assert!(consume(cache, 0, 3, "b", None));
            assert_eq!(run_of(cache, "a").as_deref(), Some("2"));
            assert_eq!(run_of(cache, "b"), None);
            assert_eq!(cache.len(), 1);
            // A range delivered twice changes nothing.
            assert!(!consume(cache, 0, 0, "a", Some("1")));
            assert!(!consume(cache, 0, 1, "b", Some("1")));
            assert_eq!(run_of(cache, "a").as_deref(), Some("2"));
            assert_eq!(run_of(cache, "b"), None);
        });
    }

    #[test]
    fn acks_and_consumer_in_either_order_end_at_the_newest_record() {
        // Two writes of "a" at offsets 5 and 6; acks arrive out of order and
        // the consumer lags behind both.
        both(|cache| {
            assert!(ack(cache, "a", Some("6"), 0, 6));
            assert!(cache.holds("a", 0, 6) && !cache.holds("a", 0, 5) && !cache.holds("a", 1, 6));
            assert!(cache.holds_or_passed("a", 0, 5) && !cache.holds_or_passed("a", 0, 7));
            assert!(!cache.holds_or_passed("a", 1, 5) && !cache.holds_or_passed("b", 0, 5));
            assert!(!ack(cache, "a", Some("5"), 0, 5));
            assert!(!consume(cache, 0, 5, "a", Some("5")));
            assert_eq!(run_of(cache, "a").as_deref(), Some("6"));
            assert!(!consume(cache, 0, 6, "a", Some("6")));
            assert_eq!(run_of(cache, "a").as_deref(), Some("6"));

            // The consumer ahead of a late ack: the ack is ignored.
            assert!(consume(cache, 0, 7, "b", Some("7")));
            assert!(!ack(cache, "b", Some("old"), 0, 7));
            assert_eq!(run_of(cache, "b").as_deref(), Some("7"));
            assert_eq!(cache.len(), 2);
        });
    }

    #[test]
    fn the_position_passes_acknowledged_writes_only_when_no_offset_before_them_is_missing() {
        both(|cache| {
            // Partition 1 is applied to offset 3.
            assert!(consume(cache, 1, 3, "x", Some("3")));
            // This store's writes at 4 and 5: nothing between, so passed.
            assert!(ack(cache, "a", Some("4"), 1, 4));
            assert!(ack(cache, "b", Some("5"), 1, 5));
            assert_eq!(cache.consumed(1), 5);
            // Another writer's record at 6 is not known here: the writes at
            // 7 and 8 wait behind it, acknowledged in either order.
            assert!(ack(cache, "c", Some("8"), 1, 8));
            assert!(ack(cache, "a", Some("7"), 1, 7));
            assert_eq!(cache.consumed(1), 5, "offset 6 was not applied");
            assert_eq!(run_of(cache, "a").as_deref(), Some("7"));
            // The tail reads 6: the position passes 7 and 8 with it, and the
            // tail's later copies of them change nothing.
            assert!(consume(cache, 1, 6, "d", Some("other")));
            assert_eq!(cache.consumed(1), 8);
            assert_eq!(run_of(cache, "d").as_deref(), Some("other"));
            assert!(!consume(cache, 1, 7, "a", Some("7")));
            assert!(!consume(cache, 1, 8, "c", Some("8")));
            assert_eq!(cache.len(), 5);
            // Other partitions are not moved by it.
            assert_eq!(cache.consumed(0), -1);
        });
    }

    #[test]
    fn a_passed_tombstone_keeps_the_older_record_before_it_out() {
        both(|cache| {
            // Another writer saved "a" at 0, which the tail has not read;
            // this store deleted it at 1.
            assert!(ack(cache, "a", None, 0, 1));
            assert_eq!(cache.consumed(0), -1);
            // Reading 0 passes the tombstone: "a" stays deleted, with no
            // guard left behind.
            assert!(!consume(cache, 0, 0, "a", Some("old")));
            assert_eq!(cache.consumed(0), 1);
            assert_eq!(run_of(cache, "a"), None);
            assert!(
                cache.head("a").is_none(),
                "the guard is dropped once passed"
            );
            assert_eq!(cache.len(), 0);
        });
    }

    #[test]
    fn a_partition_read_again_forgets_the_writes_it_had_not_passed() {
        both(|cache| {
            assert!(ack(cache, "a", Some("1"), 3, 5));
            assert_eq!(cache.consumed(3), -1);
            cache.rebuild_partition(3).unwrap();
            // Read again from its start: offset 5 is whatever the log holds.
            for offset in 0..5 {
                assert!(consume(cache, 3, offset, "b", Some("b")));
            }
            assert_eq!(cache.consumed(3), 4);
            assert!(consume(cache, 3, 5, "a", Some("log")));
            assert_eq!(run_of(cache, "a").as_deref(), Some("log"));
        });
    }

    #[test]
    fn an_acknowledged_delete_is_not_undone_by_an_older_record() {
        both(|cache| {
            assert!(ack(cache, "a", Some("1"), 2, 10));
            assert!(ack(cache, "a", None, 2, 11));
            assert_eq!(cache.len(), 0);
            // The consumer catches up with the save, then the tombstone.
            assert!(!consume(cache, 2, 10, "a", Some("1")));
            assert_eq!(run_of(cache, "a"), None);
            assert!(!consume(cache, 2, 11, "a", None));
            assert!(
                cache.head("a").is_none(),
                "the tombstone guard is dropped once consumed"
            );
            // And a later save of the id lives again.
            assert!(consume(cache, 2, 12, "a", Some("3")));
            assert_eq!(run_of(cache, "a").as_deref(), Some("3"));
            assert_eq!(cache.len(), 1);
        });
    }

    #[test]
    fn pages_are_ordered_filtered_and_bounded() {
        both(|cache| {
            for (offset, id) in ["c", "a", "d", "b"].into_iter().enumerate() {
                consume(cache, 0, offset as i64, id, Some("r"));
            }
            for (offset, id) in ["p/1", "p/2", "p0", "o"].into_iter().enumerate() {
                consume(cache, 1, offset as i64, id, Some("r"));
            }
            ack(cache, "b", None, 0, 9);
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
        });
    }

    /// Ids placed in partition `partition` of 4, from `prefix-0` on.
    fn ids_in(partition: i32, prefix: &str, count: usize) -> Vec<String> {
        (0..)
            .map(|n| format!("{prefix}-{n}"))
            .filter(|id| partition_for_key(id.as_bytes(), 4) == partition)
            .take(count)
            .collect()
    }

    #[test]
    fn only_kept_partitions_take_acks_and_list_by_partition() {
        let (in0, in1) = (ids_in(0, "w", 2), ids_in(1, "w", 2));
        let scratch = Scratch::new();
        let restored = DiskSlots::open(&scratch.0, "t", "b", 4).unwrap();
        for (mut cache, on_disk) in [
            (Cache::default().partitioned(4, true), false),
            (Cache::on_disk(restored).partitioned(4, true), true),
        ] {
            // Nothing kept yet: an ack of this host's own write is not cached.
            assert!(!ack(&mut cache, &in0[0], Some("1"), 0, 0));
            assert_eq!(cache.take_partition(0, 0, 1), None, "read from the start");
            assert!(consume(&mut cache, 0, 0, &in0[0], Some("1")));
            assert!(ack(&mut cache, &in0[1], Some("1"), 0, 1));
            assert_eq!(cache.take_partition(1, 0, 0), None);
            assert!(consume(&mut cache, 1, 0, &in1[0], Some("1")));
            let page = |cache: &Cache, partitions: Vec<i32>| -> Vec<String> {
                let filter = ListFilter::default().partitions(partitions);
                cache
                    .page(&filter, 10)
                    .iter()
                    .map(|s| s.workflow_id.clone())
                    .collect()
            };
            let mut both = vec![in0[0].clone(), in0[1].clone(), in1[0].clone()];
            both.sort();
            assert_eq!(page(&cache, vec![0, 1]), both);
            assert_eq!(page(&cache, vec![1]), [in1[0].clone()]);
            assert!(page(&cache, vec![2, 3]).is_empty());

            cache.release_partition(1);
            assert!(!cache.keeps(1));
            assert!(!ack(&mut cache, &in1[1], Some("1"), 1, 1), "not kept");
            if on_disk {
                // Kept on disk: taken back, it is read on from the checkpoint.
                assert_eq!(cache.consumed(1), 0);
                assert_eq!(cache.take_partition(1, 0, 2), Some(1));
                // A log that now starts past the checkpoint: read again.
                cache.release_partition(1);
                assert_eq!(cache.take_partition(1, 2, 3), None);
                assert_eq!(cache.consumed(1), -1);
            } else {
                // In memory a partition given up is forgotten.
                assert_eq!(cache.consumed(1), -1);
                assert_eq!(cache.len(), 2);
                assert_eq!(cache.take_partition(1, 0, 2), None);
            }
        }
    }

    #[test]
    fn checkpoints_are_dated_by_when_their_partition_was_read_to_its_end() {
        let scratch = Scratch::new();
        let restored = DiskSlots::open(&scratch.0, "t", "b", 4).unwrap();
        let highs = Arc::new(HighWatermarks::default());
        let day = Duration::from_secs(24 * 3600);
        let mut cache = Cache::on_disk(restored)
            .partitioned(4, true)
            .dated_by(highs.clone(), day);
        let id = &ids_in(0, "w", 1)[0];
        assert_eq!(cache.take_partition(0, 0, 2), None);
        assert!(consume(&mut cache, 0, 0, id, Some("1")));
        // The tail reports offset 2 as the end: offset 1 is not applied yet.
        let now = crate::context::now_ms();
        highs.report(0, 2, now);
        cache.flush(false);
        assert_eq!(cache.read_to_end[0], 0);
        assert!(consume(&mut cache, 0, 1, id, Some("2")));
        assert_eq!(cache.read_to_end[0], now, "read to its end when reported");

        // Given up for longer than the topic keeps tombstones: read again.
        cache.release_partition(0);
        cache.read_to_end[0] = now - 23 * 3600 * 1000;
        assert_eq!(cache.take_partition(0, 0, 2), None);
        assert_eq!(cache.consumed(0), -1);
        // A watermark reported before the partition was taken again (lower
        // than its end then) does not date it.
        highs.report(0, 1, now);
        assert!(consume(&mut cache, 0, 0, id, Some("3")));
        assert_eq!(cache.read_to_end[0], 0);
        assert!(tombstones_may_be_gone(now - 1000, day).is_none());
        let reason = tombstones_may_be_gone(now - 22 * 3600 * 1000, day).unwrap();
        assert!(reason.contains("delete.retention.ms"), "{reason}");
    }

    #[test]
    fn a_checkpoint_says_which_partitions_hold_entries_before_any_record_is_read() {
        let scratch = Scratch::new();
        {
            let mut cache = Cache::on_disk(DiskSlots::open(&scratch.0, "t", "b", 4).unwrap());
            // Acknowledged before the tail read anything back.
            assert!(ack(&mut cache, "a", Some("1"), 2, 7));
            cache.close();
        }
        let restored = DiskSlots::open(&scratch.0, "t", "b", 4).unwrap();
        let held: Vec<(i64, bool)> = restored
            .applied
            .iter()
            .map(|a| (a.offset, a.holds_entries))
            .collect();
        assert_eq!(held, [(-1, false), (-1, false), (-1, true), (-1, false)]);
    }
}
