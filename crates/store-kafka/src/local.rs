//! The local state store: the cache's entries on disk (redb), with a
//! checkpoint per partition written in the same transaction as the entries
//! it covers, so that a host restarts from its local state and reads only
//! the records written since.
//!
//! A checkpoint records, per partition, the offset of the last record
//! applied and a mark of that record (a hash of its key and the ends of its
//! value). On open the checkpoint is checked against the log: the topic and
//! its partition count must be the ones it was written for, the offset must
//! lie inside the log, and the record at that offset, when compaction has
//! kept it, must be the one marked. A partition that fails is rebuilt from
//! the log; a file that cannot be read is deleted and rebuilt whole. Deleting
//! the directory is always safe.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use wf_host::model::{self, WorkflowState};
use wf_host::store::ListFilter;

use wf_host::store::StoreError;

use super::cache::{Cache, Position};
use super::consume::PartitionReport;

/// Entries: workflow id -> [`RowHead`] then the state's JSON.
const STATES: TableDefinition<&str, &[u8]> = TableDefinition::new("states");
/// The checkpoint, under [`CHECKPOINT`].
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHECKPOINT: &str = "checkpoint";
/// Bumped when the file's layout changes: an older file is rebuilt.
const FORMAT: u32 = 1;
/// Entries changed in memory before they are written out.
const FLUSH_ENTRIES: usize = 4096;
/// Decoded states kept in memory for reads of hot ids.
const HOT_ENTRIES: usize = 16_384;
/// redb's page cache: what bounds the store's memory besides the two above.
const PAGE_CACHE_BYTES: usize = 64 << 20;
/// Flushes at least this often with new entries, and then durably.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Where one partition's log was applied up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Applied {
    /// The offset of the last record applied (-1: none).
    pub offset: i64,
    /// [`mark`] of that record.
    pub mark: u64,
    /// When (ms since the Unix epoch) the partition was last seen read to
    /// its end: every record written since has a greater offset. 0: never
    /// (a file written before this was kept is read again once).
    #[serde(default)]
    pub read_to_end_ms: i64,
    /// Whether the local state may hold entries of the partition (true
    /// for a file written before this was kept).
    #[serde(default = "may_hold")]
    pub holds_entries: bool,
}

fn may_hold() -> bool {
    true
}

impl Applied {
    pub const NONE: Self = Self {
        offset: -1,
        mark: 0,
        read_to_end_ms: 0,
        holds_entries: false,
    };
}

/// Why a checkpoint that was last read to its partition's end at
/// `read_to_end_ms` cannot be continued now: a tombstone written after it
/// may have been compacted away (the topic keeps them `tombstones` long),
/// and the state it deleted would come back. `None` when it can.
pub(crate) fn tombstones_may_be_gone(read_to_end_ms: i64, tombstones: Duration) -> Option<String> {
    let age = crate::context::now_ms().saturating_sub(read_to_end_ms);
    // A tenth of the period is the margin for clocks and the cleaner.
    let bound = i64::try_from(tombstones.as_millis() * 9 / 10).unwrap_or(i64::MAX);
    (age > bound).then(|| {
        let since = if read_to_end_ms <= 0 {
            "was never read to its end".to_owned()
        } else {
            format!("was last read to its end {} s ago", age / 1000)
        };
        format!(
            "the partition {since}, longer than the topic keeps tombstones (delete.retention.ms, \
             {} s, less a tenth): deletes since may be compacted away",
            tombstones.as_secs()
        )
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    topic: String,
    partitions: i32,
    applied: Vec<Applied>,
    live: usize,
    bytes: usize,
}

/// A record's mark: enough to tell it from another record at the same
/// offset of another log, at a cost independent of the value's size.
pub(crate) fn mark(key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    let key = key.unwrap_or_default();
    feed(&(key.len() as u64).to_le_bytes());
    feed(key);
    match value {
        None => feed(b"tombstone"),
        Some(value) => {
            feed(&(value.len() as u64).to_le_bytes());
            feed(&value[..value.len().min(64)]);
            feed(&value[value.len().saturating_sub(64)..]);
        }
    }
    hash
}

/// What an entry says before its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowHead {
    pub at: Position,
    /// Its cost against the cache bound (0 for a tombstone's guard).
    pub cost: usize,
    /// A live state (else a tombstone's guard).
    pub live: bool,
}

const HEAD_LEN: usize = 4 + 8 + 8 + 1;

fn encode_row(head: RowHead, json: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(HEAD_LEN + json.len());
    row.extend_from_slice(&head.at.partition.to_le_bytes());
    row.extend_from_slice(&head.at.offset.to_le_bytes());
    row.extend_from_slice(&(head.cost as u64).to_le_bytes());
    row.push(u8::from(head.live));
    row.extend_from_slice(json);
    row
}

fn decode_row(row: &[u8]) -> Option<(RowHead, &[u8])> {
    let head = row.get(..HEAD_LEN)?;
    let partition = i32::from_le_bytes(head[0..4].try_into().ok()?);
    let offset = i64::from_le_bytes(head[4..12].try_into().ok()?);
    let cost = u64::from_le_bytes(head[12..20].try_into().ok()?);
    Some((
        RowHead {
            at: Position { partition, offset },
            cost: usize::try_from(cost).ok()?,
            live: head[20] == 1,
        },
        &row[HEAD_LEN..],
    ))
}

/// An entry changed since the last flush.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// The newest record of the id, with its JSON (empty for a guard).
    Put {
        head: RowHead,
        state: Option<Arc<WorkflowState>>,
        json: Arc<[u8]>,
    },
    /// The id has no entry.
    Gone,
}

/// The disk half of the cache: redb, the changes not yet written, and the
/// decoded states of hot ids.
pub(crate) struct DiskSlots {
    db: Database,
    path: PathBuf,
    topic: String,
    partitions: i32,
    changes: BTreeMap<String, Change>,
    /// The entries as of the last write, read without a transaction per
    /// lookup (the changes since are in `changes`).
    snapshot: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    hot: quick_cache::sync::Cache<String, Arc<WorkflowState>>,
    last_durable: Instant,
}

impl std::fmt::Debug for DiskSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSlots")
            .field("path", &self.path)
            .field("changes", &self.changes.len())
            .finish_non_exhaustive()
    }
}

/// Why a checkpoint was not used (said in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    /// The partition rebuilt from the log, or `None` for the whole store.
    pub partition: Option<i32>,
    /// Why.
    pub reason: String,
}

/// What opening the local state found.
#[derive(Debug)]
pub(crate) struct Restored {
    pub slots: DiskSlots,
    /// Per partition, what the checkpoint says was applied.
    pub applied: Vec<Applied>,
    pub live: usize,
    pub bytes: usize,
    pub rebuilt: Vec<Rebuild>,
}

type StoreResult<T> = Result<T, String>;

fn db_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The file of `topic` on `brokers` in `dir`: the first of `<name>.redb`,
/// `<name>.1.redb`, ... that no other open store holds. Any of them is safe
/// to take: a checkpoint is always a prefix of the same topic's log.
fn open_file(dir: &Path, topic: &str, brokers: &str) -> StoreResult<(Database, PathBuf)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
    let safe: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("{safe}-{:08x}", mark(Some(brokers.as_bytes()), None) as u32);
    let mut last = String::new();
    for n in 0..16 {
        let path = match n {
            0 => dir.join(format!("{name}.redb")),
            n => dir.join(format!("{name}.{n}.redb")),
        };
        match open_db(&path) {
            Ok(db) => return Ok((db, path)),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                last = format!("{} is open in another store", path.display());
            }
            Err(e) => {
                // Unreadable: start over rather than fail the host.
                tracing::warn!(path = %path.display(), "local state unreadable ({e}); rebuilding it from the log");
                std::fs::remove_file(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                return open_db(&path)
                    .map(|db| (db, path.clone()))
                    .map_err(|e| format!("cannot create {}: {e}", path.display()));
            }
        }
    }
    Err(format!("no free state file in {}: {last}", dir.display()))
}

fn open_db(path: &Path) -> Result<Database, redb::DatabaseError> {
    let mut builder = Database::builder();
    builder.set_cache_size(PAGE_CACHE_BYTES);
    builder.create(path)
}

impl DiskSlots {
    /// Opens (or creates) the local state of `topic` under `dir` and reads
    /// its checkpoint, rebuilding everything when it is not this topic's.
    pub fn open(dir: &Path, topic: &str, brokers: &str, partitions: i32) -> StoreResult<Restored> {
        let (db, path) = open_file(dir, topic, brokers)?;
        let mut slots = Self {
            db,
            path,
            topic: topic.to_owned(),
            partitions,
            changes: BTreeMap::new(),
            snapshot: None,
            hot: quick_cache::sync::Cache::new(HOT_ENTRIES),
            last_durable: Instant::now(),
        };
        let count = usize::try_from(partitions).unwrap_or(0);
        slots.refresh();
        let why = match slots.read_checkpoint() {
            Ok(None) => None,
            Ok(Some(c)) if c.format != FORMAT => Some(format!(
                "it has format {}, this host writes {FORMAT}",
                c.format
            )),
            Ok(Some(c)) if c.topic != topic => {
                Some(format!("it is the state of topic {:?}", c.topic))
            }
            Ok(Some(c)) if c.partitions != partitions || c.applied.len() != count => Some(format!(
                "it was written for {} partitions, the topic has {partitions}",
                c.partitions
            )),
            Ok(Some(c)) => {
                return Ok(Restored {
                    slots,
                    applied: c.applied,
                    live: c.live,
                    bytes: c.bytes,
                    rebuilt: Vec::new(),
                });
            }
            Err(e) => Some(format!("its checkpoint cannot be read ({e})")),
        };
        slots.clear()?;
        Ok(Restored {
            slots,
            applied: vec![Applied::NONE; count],
            live: 0,
            bytes: 0,
            rebuilt: why
                .map(|reason| Rebuild {
                    partition: None,
                    reason,
                })
                .into_iter()
                .collect(),
        })
    }

    fn read_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let read = self.db.begin_read().map_err(db_error)?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        let Some(bytes) = meta.get(CHECKPOINT).map_err(db_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(db_error)
    }

    /// Drops every entry and the checkpoint.
    fn clear(&mut self) -> StoreResult<()> {
        let write = self.db.begin_write().map_err(db_error)?;
        write.delete_table(STATES).map_err(db_error)?;
        write.delete_table(META).map_err(db_error)?;
        write.commit().map_err(db_error)?;
        self.changes.clear();
        self.hot.clear();
        self.refresh();
        Ok(())
    }

    /// Takes a new snapshot of the written entries.
    fn refresh(&mut self) {
        self.snapshot = self
            .db
            .begin_read()
            .ok()
            .and_then(|read| read.open_table(STATES).ok());
    }

    /// Drops `partition`'s entries (written and not yet written); returns
    /// the live entries and cost dropped.
    pub fn drop_partition(&mut self, partition: i32) -> StoreResult<(usize, usize)> {
        let (mut live, mut bytes) = (0, 0);
        let mut doomed = Vec::new();
        {
            let read = self.db.begin_read().map_err(db_error)?;
            if let Ok(table) = read.open_table(STATES) {
                for entry in table.iter().map_err(db_error)? {
                    let (key, row) = entry.map_err(db_error)?;
                    if let Some((head, _)) = decode_row(row.value())
                        && head.at.partition == partition
                    {
                        doomed.push(key.value().to_owned());
                    }
                }
            }
        }
        for key in doomed {
            if let Some(head) = self.head(&key) {
                live += usize::from(head.live);
                bytes += head.cost;
            }
            self.changes.insert(key, Change::Gone);
        }
        let pending: Vec<String> = self
            .changes
            .iter()
            .filter(
                |(_, c)| matches!(c, Change::Put { head, .. } if head.at.partition == partition),
            )
            .map(|(k, _)| k.clone())
            .collect();
        for key in pending {
            if let Some(Change::Put { head, .. }) = self.changes.get(&key) {
                live += usize::from(head.live);
                bytes += head.cost;
            }
            self.changes.insert(key, Change::Gone);
        }
        self.hot.clear();
        Ok((live, bytes))
    }

    /// What `key`'s entry says, without decoding its state.
    pub fn head(&self, key: &str) -> Option<RowHead> {
        match self.changes.get(key) {
            Some(Change::Put { head, .. }) => Some(*head),
            Some(Change::Gone) => None,
            None => self.read_row(key, |head, _| head),
        }
    }

    fn read_row<T>(&self, key: &str, f: impl FnOnce(RowHead, &[u8]) -> T) -> Option<T> {
        let row = match self.snapshot.as_ref()?.get(key) {
            Ok(row) => row?,
            Err(e) => {
                tracing::error!(path = %self.path.display(), "local state: {e}");
                return None;
            }
        };
        let (head, json) = decode_row(row.value())?;
        Some(f(head, json))
    }

    /// `key`'s live state.
    pub fn state(&self, key: &str) -> Option<Arc<WorkflowState>> {
        match self.changes.get(key) {
            Some(Change::Put { state, .. }) => return state.clone(),
            Some(Change::Gone) => return None,
            None => {}
        }
        if let Some(state) = self.hot.get(key) {
            return Some(state);
        }
        let state =
            self.read_row(key, |head, json| head.live.then(|| decode_json(key, json)))???;
        self.hot.insert(key.to_owned(), state.clone());
        Some(state)
    }

    /// Records `key`'s newest entry.
    pub fn put(&mut self, key: &str, change: Change) {
        self.hot.remove(key);
        self.changes.insert(key.to_owned(), change);
    }

    /// Whether enough has changed to write it out now.
    pub fn flush_due(&self) -> bool {
        self.changes.len() >= FLUSH_ENTRIES
            || (!self.changes.is_empty() && self.last_durable.elapsed() >= DURABLE_EVERY)
    }

    /// Writes the changes and the checkpoint in one transaction; durably
    /// when `durable` or a second has passed since the last durable one.
    pub fn flush(
        &mut self,
        applied: &[Applied],
        live: usize,
        bytes: usize,
        durable: bool,
    ) -> StoreResult<()> {
        let durable = durable || self.last_durable.elapsed() >= DURABLE_EVERY;
        let mut write = self.db.begin_write().map_err(db_error)?;
        if !durable {
            write.set_durability(Durability::None).map_err(db_error)?;
        }
        {
            let mut states = write.open_table(STATES).map_err(db_error)?;
            for (key, change) in &self.changes {
                match change {
                    Change::Put { head, json, .. } => {
                        states
                            .insert(key.as_str(), encode_row(*head, json).as_slice())
                            .map_err(db_error)?;
                    }
                    Change::Gone => {
                        states.remove(key.as_str()).map_err(db_error)?;
                    }
                }
            }
            let checkpoint = Checkpoint {
                format: FORMAT,
                topic: self.topic.clone(),
                partitions: self.partitions,
                applied: applied.to_vec(),
                live,
                bytes,
            };
            let mut meta = write.open_table(META).map_err(db_error)?;
            let json = serde_json::to_vec(&checkpoint).map_err(db_error)?;
            meta.insert(CHECKPOINT, json.as_slice()).map_err(db_error)?;
        }
        write.commit().map_err(db_error)?;
        self.changes.clear();
        self.refresh();
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(())
    }

    /// Up to `limit` live states `filter` lists, ascending by id: the
    /// written entries merged with the changes not yet written.
    pub fn page(
        &self,
        filter: &ListFilter,
        limit: usize,
        listed: impl Fn(&str) -> bool,
    ) -> Vec<Arc<WorkflowState>> {
        let mut out = Vec::new();
        self.scan(filter, |id, state| {
            if filter.status.is_none_or(|s| state.status == s) && listed(id) {
                out.push(state);
            }
            out.len() < limit
        });
        out
    }

    /// Calls `f` with each live state from `filter`'s start in id order
    /// while it returns `true` and the ids are in `filter`'s range.
    pub fn scan(&self, filter: &ListFilter, mut f: impl FnMut(&str, Arc<WorkflowState>) -> bool) {
        let start = filter.start();
        let mut changes = self
            .changes
            .range::<str, _>((start, Bound::Unbounded))
            .peekable();
        let mut rows = self
            .snapshot
            .as_ref()
            .and_then(|t| t.range::<&str>((start, Bound::Unbounded)).ok());
        let mut row = next_row(&mut rows);
        loop {
            // The smaller id next; a change overrides the written entry.
            let take_change = match (changes.peek(), &row) {
                (None, None) => return,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some((id, _))) => k.as_str() <= id.as_str(),
            };
            let (id, state) = if take_change {
                let (key, change) = changes.next().expect("peeked");
                if row.as_ref().is_some_and(|(id, _)| id == key) {
                    row = next_row(&mut rows);
                }
                let state = match change {
                    Change::Put { state, .. } => state.clone(),
                    Change::Gone => None,
                };
                (key.clone(), state)
            } else {
                let (id, json) = row.take().expect("checked");
                row = next_row(&mut rows);
                let state =
                    json.and_then(|json| self.hot.get(&id).or_else(|| decode_json(&id, &json)));
                (id, state)
            };
            if !filter.in_range(&id) {
                return;
            }
            if let Some(state) = state
                && !f(&id, state)
            {
                return;
            }
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The next written entry: its id and, when live, its JSON.
fn next_row(
    rows: &mut Option<redb::Range<'static, &'static str, &'static [u8]>>,
) -> Option<(String, Option<Vec<u8>>)> {
    let rows = rows.as_mut()?;
    loop {
        let (key, row) = rows.next()?.ok()?;
        let Some((head, json)) = decode_row(row.value()) else {
            continue;
        };
        return Some((key.value().to_owned(), head.live.then(|| json.to_vec())));
    }
}

/// Decodes an entry's JSON. It was checked when written, so a failure means
/// the file was damaged underneath: said, and left out of the answer.
fn decode_json(key: &str, json: &[u8]) -> Option<Arc<WorkflowState>> {
    match model::decode_state(json) {
        Ok(mut state) => {
            state.normalize_json_fields();
            Some(Arc::new(state))
        }
        Err(e) => {
            tracing::error!(
                key,
                "local state: an entry does not decode ({e}); delete the state directory to rebuild it"
            );
            None
        }
    }
}

/// Opens the local state under `dir`, checks each partition's checkpoint
/// against the log (`watermarks`: partition, low, high) and returns the
/// cache with where the replay of each partition starts. Blocks: call it
/// through [`blocking`](crate::blocking).
pub(crate) fn restore(
    config: &crate::KafkaConfig,
    dir: &Path,
    consumer: &rdkafka::consumer::BaseConsumer<crate::context::LogContext>,
    partitions: i32,
    watermarks: &[(i32, i64, i64)],
    tombstones: Duration,
) -> Result<(Cache, Vec<PartitionReport>, Vec<Rebuild>), StoreError> {
    let topic = &config.topic;
    let restored = DiskSlots::open(dir, topic, &config.brokers, partitions)
        .map_err(|e| crate::open_error(format!("local state: {e}")))?;
    let mut rebuilt = restored.rebuilt.clone();
    for rebuild in &rebuilt {
        tracing::warn!(topic = %topic, path = %restored.slots.path().display(), "local state rebuilt from the log: {}", rebuild.reason);
    }
    let applied = restored.applied.clone();
    let mut cache = Cache::on_disk(restored);
    let mut doubts = Vec::new();
    for &(partition, low, high) in watermarks {
        let Some(&Applied {
            offset,
            mark,
            read_to_end_ms,
            holds_entries,
        }) = applied.get(partition as usize)
        else {
            continue;
        };
        let reason = if offset < 0 && holds_entries {
            // This host's acknowledged writes, before its tail read any
            // record of the partition back: nothing to check them against.
            Some("the checkpoint names no record applied, but entries of the partition were kept: they cannot be checked against the log".to_owned())
        } else if offset < 0 {
            None
        } else if let Some(reason) = tombstones_may_be_gone(read_to_end_ms, tombstones) {
            Some(reason)
        } else if offset >= high {
            Some(format!(
                "the log ends before offset {offset}, where the checkpoint is (its next offset is {high}): the topic was recreated or truncated"
            ))
        } else if offset + 1 < low {
            Some(format!(
                "the log now starts at offset {low}, past the checkpoint at {offset}: records after the checkpoint were deleted"
            ))
        } else if offset >= low {
            doubts.push((partition, offset, mark));
            None
        } else {
            None
        };
        if let Some(reason) = reason {
            rebuilt.push(Rebuild {
                partition: Some(partition),
                reason,
            });
        }
    }
    rebuilt.extend(check_marks(config, consumer, &doubts)?);
    // One warning for all the partitions rebuilt (a recreated topic fails
    // them all), each partition's reason at debug.
    let partitions_rebuilt: Vec<&Rebuild> =
        rebuilt.iter().filter(|r| r.partition.is_some()).collect();
    if let Some(first) = partitions_rebuilt.first() {
        tracing::warn!(
            topic = %topic,
            "local state: {} of {partitions} partitions rebuilt from the log (partition {}: {})",
            partitions_rebuilt.len(),
            first.partition.unwrap_or_default(),
            first.reason
        );
    }
    for rebuild in &partitions_rebuilt {
        if let Some(partition) = rebuild.partition {
            tracing::debug!(topic = %topic, partition, "local state of the partition rebuilt from the log: {}", rebuild.reason);
            cache
                .rebuild_partition(partition)
                .map_err(|e| crate::open_error(format!("local state: {e}")))?;
        }
    }
    let targets = watermarks
        .iter()
        .map(|&(partition, low, high)| PartitionReport {
            partition,
            low,
            start: (cache.consumed(partition) + 1).max(low),
            high,
            records: 0,
        })
        .collect();
    Ok((cache, targets, rebuilt))
}

/// Reads the record at each checkpoint (partition, offset, mark) and names
/// the partitions whose record there is another one. A record compaction
/// removed cannot be compared; the offsets around it still held.
fn check_marks(
    config: &crate::KafkaConfig,
    consumer: &rdkafka::consumer::BaseConsumer<crate::context::LogContext>,
    doubts: &[(i32, i64, u64)],
) -> Result<Vec<Rebuild>, StoreError> {
    use rdkafka::consumer::Consumer as _;
    use rdkafka::message::Message as _;
    if doubts.is_empty() {
        return Ok(Vec::new());
    }
    let mut list = rdkafka::TopicPartitionList::new();
    for &(partition, offset, _) in doubts {
        list.add_partition_offset(&config.topic, partition, rdkafka::Offset::Offset(offset))
            .map_err(crate::open_error)?;
    }
    consumer.assign(&list).map_err(crate::open_error)?;
    let mut open: BTreeMap<i32, (i64, u64)> = doubts.iter().map(|&(p, o, m)| (p, (o, m))).collect();
    let mut rebuilt = Vec::new();
    let deadline = Instant::now() + config.open_timeout;
    while !open.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let Some((offset, expected)) = open.remove(&message.partition()) else {
                    continue;
                };
                if message.offset() == offset && mark(message.key(), message.payload()) != expected
                {
                    rebuilt.push(Rebuild {
                        partition: Some(message.partition()),
                        reason: format!(
                            "the record at offset {offset}, where the checkpoint is, is not the one it applied: the topic was recreated, or the state is of another log"
                        ),
                    });
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(_)) | None => {}
        }
    }
    // What could not be read in time is not trusted.
    rebuilt.extend(open.into_keys().map(|partition| Rebuild {
        partition: Some(partition),
        reason: format!(
            "the record at the checkpoint could not be read within {:?}",
            config.open_timeout
        ),
    }));
    Ok(rebuilt)
}
