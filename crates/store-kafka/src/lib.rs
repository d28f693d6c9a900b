//! wf-store-kafka: the Kafka backend of wf's workflow store. A compacted
//! topic (key = workflow id, value = the Go provider's JSON, tombstone =
//! delete) and an in-memory cache rebuilt by replaying the topic at open
//! and kept current by tailing it.
//!
//! Writes go through an idempotent producer and return only after the broker
//! acknowledged them; the cache is then updated at the acknowledged offset.
//! Reads never leave the process, unless hosts sharing the topic in a
//! consumer group split its partitions ([`KafkaConfig::group_id`]) and each
//! keeps only its own ([`KafkaConfig::owned_partitions_only`]): then the
//! reads of other partitions go to their owners. The cache can live on
//! local disk with per-partition checkpoints ([`KafkaConfig::state_dir`]),
//! so that an open reads only the records written since.
//!
//! Programs build it from configuration with [`backends`] (the `[kafka]`
//! table of a `wf_host::config::Settings`), or open it directly:
//!
//! ```
//! use wf_host::store::WorkflowStore;
//! use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
//!
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! let cluster = DevCluster::start("beluga-workflows", 4)?;   // or a real broker's address
//! let store = KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers())).await?;
//! println!("{} workflows after replay", store.replay_report().live);
//! store.close().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod admin;
mod backend;
mod cache;
mod config;
mod consume;
mod context;
mod dev;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod in_flight;
mod key_locks;
mod local;
mod partition;
mod retention;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use wf_host::model::WorkflowState;
use wf_host::store::{
    ListFilter, Ownership, SharedOwnerLink, StoreError, StoreLimits, TailLag, Version, Versioned,
    WorkflowStore, WriteGuard, validate,
};

use admin::{ensure_topic, watermarks};
use cache::{Cache, version_at};
use consume::{Consumption, Counters, WRITER_HEADER};
use context::{HighWatermarks, LogContext};
use dev::DevClusterThread;
use group::EndPositions;
use in_flight::InFlight;
use key_locks::KeyLocks;

pub use backend::{KafkaBackend, as_kafka, backends};
pub use config::{DEFAULT_TOPIC, KafkaConfig};
pub use consume::{PartitionReport, ProgressObserver, ReplayProgress, ReplayReport};
pub use dev::{DevCluster, MOCK_CLUSTER_BOUNDS};
pub use local::Rebuild;
pub use partition::partition_for_key;
pub use retention::{format_period, parse_period};

/// Workflow states on a compacted Kafka topic.
///
/// ```no_run
/// use wf_host::store::WorkflowStore;
/// use wf_store_kafka::{KafkaConfig, KafkaStore};
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// let store = KafkaStore::open(KafkaConfig::new("127.0.0.1:9092")).await?;
/// println!("{} workflows after replay", store.replay_report().live);
/// store.close().await?;
/// # Ok(()) }
/// ```
pub struct KafkaStore {
    config: KafkaConfig,
    /// This store's writer id, in a header of every record it writes.
    writer: String,
    producer: FutureProducer<LogContext>,
    consumer: Arc<BaseConsumer<LogContext>>,
    /// The partitions' high watermarks, as the tail's statistics report
    /// them each second: what [`KafkaStore::fetched_lag`] measures against.
    highs: Arc<HighWatermarks>,
    cache: Arc<RwLock<Cache>>,
    counters: Arc<Counters>,
    replay: ReplayReport,
    stop: Arc<AtomicBool>,
    consumer_thread: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    /// Whether [`KafkaStore::start_retention`] started its sweeps.
    retention_started: AtomicBool,
    /// Writes of one id are serialized, so a conditional save compares
    /// against the version every earlier write left.
    key_locks: KeyLocks,
    /// The saves produced and not yet applied, for the tail.
    in_flight: Arc<InFlight>,
    /// With a group: this host's partitions, its member thread and its stop flag.
    ownership: Option<Arc<Ownership>>,
    member_thread: Mutex<Option<JoinHandle<()>>>,
    member_stop: Arc<AtomicBool>,
    /// Whether only the partitions this host owns are kept; reads of the
    /// others go to their owners, through `owners`.
    owned_only: bool,
    owners: OnceLock<SharedOwnerLink>,
    /// The mock cluster this store was opened on, when it started one
    /// itself (no brokers configured); dropped last, after the clients.
    dev_cluster: Option<DevClusterThread>,
}

impl std::fmt::Debug for KafkaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.config.topic)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Counters of everything the consumer read since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumedCounts {
    /// Records read, replay and tail.
    pub records: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Records skipped because they did not decode, or were misplaced.
    pub skipped: u64,
    /// Records skipped because their id belongs in another partition.
    pub misplaced: u64,
    /// Live states in the cache now.
    pub live: usize,
}

pub(crate) fn open_error(message: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("kafka/open: {message}"))
}

/// Maps a failed produce to a store error: `<prefix>: <cause>`.
fn write_error(prefix: &str, error: &KafkaError) -> StoreError {
    let message = format!("{prefix}: {error}");
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => StoreError::TooLarge(message),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed,
        ) => StoreError::Denied(message),
        _ => StoreError::Unavailable(message),
    }
}

/// Runs a blocking librdkafka call off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("kafka: blocking task failed: {e}")))
}

impl KafkaStore {
    /// Connects, ensures the topic, replays it into the cache and starts tailing.
    /// Returns once the replay reached the high watermarks taken at start.
    pub async fn open(config: KafkaConfig) -> Result<Self, StoreError> {
        Self::open_observed(config, None).await
    }

    /// [`open`](Self::open), reporting replay progress to `observer` about once a second.
    pub async fn open_observed(
        config: KafkaConfig,
        observer: Option<ProgressObserver>,
    ) -> Result<Self, StoreError> {
        config
            .check()
            .map_err(|e| StoreError::InvalidArgument(format!("kafka/open: {e}")))?;
        let invalid = |e: KafkaError| {
            StoreError::InvalidArgument(format!("kafka/open: invalid client configuration: {e}"))
        };
        let producer: FutureProducer<LogContext> = config
            .producer()
            .create_with_context(LogContext::default())
            .map_err(invalid)?;
        let highs = Arc::new(HighWatermarks::default());
        let consumer: Arc<BaseConsumer<LogContext>> = Arc::new(
            config
                .consumer()
                .create_with_context(LogContext::keeping(highs.clone()))
                .map_err(invalid)?,
        );
        let admin: AdminClient<LogContext> = config
            .admin()
            .create_with_context(LogContext::default())
            .map_err(invalid)?;

        let (partitions, tombstones) = ensure_topic(&config, &consumer, &admin).await?;
        let replay_ends_at = context::now_ms();
        let watermarks = watermarks(&config, &consumer, partitions).await?;
        let state_dir = config
            .state_dir
            .as_ref()
            .filter(|dir| !dir.as_os_str().is_empty());
        let (cache, targets, rebuilt) = match state_dir {
            Some(dir) => {
                let (config, dir, consumer) = (config.clone(), dir.clone(), consumer.clone());
                let watermarks = watermarks.clone();
                let (cache, targets, rebuilt) = blocking(move || {
                    local::restore(
                        &config,
                        &dir,
                        &consumer,
                        partitions,
                        &watermarks,
                        tombstones,
                    )
                })
                .await??;
                (cache.dated_by(highs.clone(), tombstones), targets, rebuilt)
            }
            None => {
                let targets = watermarks
                    .iter()
                    .map(|&(partition, low, high)| PartitionReport {
                        partition,
                        low,
                        start: low,
                        high,
                        records: 0,
                    })
                    .collect();
                (Cache::default(), targets, Vec::new())
            }
        };
        let owned_only = config.keeps_owned_only();
        let cache = cache.partitioned(partitions, owned_only);
        let restored = cache.len();
        let state_file = cache.disk_path().map(std::path::Path::to_path_buf);
        // Keeping only the owned partitions, the tail reads nothing until the
        // group assigns some: no replay at open.
        let every_partition = targets.clone();
        let targets = if owned_only { Vec::new() } else { targets };

        let mut assignment = TopicPartitionList::new();
        for target in &targets {
            let offset = match target.start {
                start if start > target.low => Offset::Offset(start),
                _ => Offset::Beginning,
            };
            assignment
                .add_partition_offset(&config.topic, target.partition, offset)
                .map_err(open_error)?;
        }
        if !owned_only {
            consumer.assign(&assignment).map_err(open_error)?;
        }
        let (tail_commands, commands) = if owned_only {
            let (sender, receiver) = std::sync::mpsc::sync_channel(16);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };

        let checkpoints = cache.checkpoints();
        let cache = Arc::new(RwLock::new(cache));
        // Names this store's records, so the tail tells another writer's.
        let writer = uuid::Uuid::new_v4().simple().to_string();
        let counters = Arc::new(Counters::default());
        let in_flight = Arc::new(InFlight::new(partitions));
        let stop = Arc::new(AtomicBool::new(false));
        let ends = Arc::new(EndPositions::new(usize::try_from(partitions).unwrap_or(0)));
        let consumption = Consumption {
            topic: config.topic.clone(),
            consumer: consumer.clone(),
            cache: cache.clone(),
            counters: counters.clone(),
            in_flight: in_flight.clone(),
            stop: stop.clone(),
            max_value_bytes: config.limits.max_value_bytes,
            ends: config.group_id.is_some().then(|| ends.clone()),
            partitions,
            writer: writer.clone(),
            watch_writers: config.group_id.is_none(),
            checkpoints,
            replayed: AtomicBool::new(false),
            replay_ends_at,
            highs: highs.clone(),
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("wf-kafka-consumer-{}", config.topic))
            .spawn(move || consumption.run(targets, observer, ready_tx, commands))
            .map_err(|e| StoreError::Internal(format!("kafka/open: cannot start consumer: {e}")))?;
        let replay = match ready_rx.await {
            Ok(report) => {
                if let Some(path) = &state_file {
                    tracing::info!(
                        topic = %config.topic,
                        path = %path.display(),
                        "local state: restored {restored} workflows from its checkpoint, then read {} records written since",
                        report.records
                    );
                }
                ReplayReport {
                    state_file,
                    restored,
                    rebuilt,
                    // Read as the group assigns them; listed all the same.
                    partitions: if owned_only {
                        every_partition
                    } else {
                        report.partitions
                    },
                    ..report
                }
            }
            Err(_) => {
                stop.store(true, Ordering::Release);
                let _ = thread.join();
                return Err(StoreError::Internal(
                    "kafka/open: the consumer stopped before the replay finished".into(),
                ));
            }
        };
        let member_stop = Arc::new(AtomicBool::new(false));
        let (ownership, member_thread) = match &config.group_id {
            Some(group) => {
                let joined = group::join(
                    &config,
                    group,
                    partitions,
                    cache.clone(),
                    ends,
                    member_stop.clone(),
                    tail_commands.map(|commands| group::TailControl {
                        commands,
                        reading: Mutex::default(),
                    }),
                );
                let joined = match joined {
                    Ok(membership) => {
                        let first =
                            first_assignment(&membership.ownership, group, config.open_timeout)
                                .await;
                        match first {
                            Ok(()) => Ok(membership),
                            Err(e) => {
                                member_stop.store(true, Ordering::Release);
                                let _ = blocking(move || membership.thread.join()).await;
                                Err(e)
                            }
                        }
                    }
                    Err(e) => Err(e),
                };
                match joined {
                    Ok(membership) => (Some(membership.ownership), Some(membership.thread)),
                    Err(e) => {
                        stop.store(true, Ordering::Release);
                        let _ = thread.join();
                        return Err(e);
                    }
                }
            }
            None => (None, None),
        };
        Ok(Self {
            config,
            producer,
            consumer,
            highs,
            cache,
            counters,
            replay,
            stop,
            consumer_thread: Mutex::new(Some(thread)),
            closed: AtomicBool::new(false),
            retention_started: AtomicBool::new(false),
            key_locks: KeyLocks::default(),
            in_flight,
            writer,
            ownership,
            member_thread: Mutex::new(member_thread),
            member_stop,
            owned_only,
            owners: OnceLock::new(),
            dev_cluster: None,
        })
    }

    /// Keeps `cluster` (the mock cluster this store runs on) alive as long
    /// as the store.
    fn keep_dev_cluster(mut self, cluster: DevClusterThread) -> Self {
        self.dev_cluster = Some(cluster);
        self
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// What the replay at open read.
    pub fn replay_report(&self) -> &ReplayReport {
        &self.replay
    }

    /// What the consumer read since open (replay and tail).
    pub fn consumed(&self) -> ConsumedCounts {
        ConsumedCounts {
            records: self.counters.records.load(Ordering::Relaxed),
            tombstones: self.counters.tombstones.load(Ordering::Relaxed),
            skipped: self.counters.skipped.load(Ordering::Relaxed),
            misplaced: self.counters.misplaced.load(Ordering::Relaxed),
            live: self.read_cache().len(),
        }
    }

    /// The broker's current high watermark (the offset the next record will
    /// get) of each partition, in partition order: one request per partition.
    pub async fn end_offsets(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        self.check_open("kafka/end-offsets")?;
        let partitions: Vec<i32> = self.replay.partitions.iter().map(|p| p.partition).collect();
        let consumer = self.consumer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.open_timeout;
        blocking(move || {
            partitions
                .into_iter()
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, timeout)
                        .map(|(_, high)| (p, high))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(|e| StoreError::Unavailable(format!("kafka/end-offsets: {e}")))
    }

    /// How far the tail is behind the end of the topic, from the broker's
    /// current high watermarks ([`KafkaStore::end_offsets`]), over the
    /// partitions this store keeps.
    pub async fn lag(&self) -> Result<TailLag, StoreError> {
        let highs = self.end_offsets().await?;
        let cache = self.read_cache();
        let partitions: Vec<(i32, u64)> = highs
            .into_iter()
            .filter(|&(p, _)| cache.keeps(p))
            .map(|(p, high)| (p, (high - 1 - cache.consumed(p)).max(0) as u64))
            .collect();
        Ok(TailLag::new(partitions))
    }

    /// How far the tail is behind the end of the topic, measured against
    /// the high watermarks the tail's statistics reported (each second,
    /// from its fetches): no round trip to the broker, at most a second
    /// old (a partition not reported yet counts as not behind).
    /// [`KafkaStore::lag`] asks the broker.
    pub fn fetched_lag(&self) -> TailLag {
        let cache = self.read_cache();
        let partitions = self
            .replay
            .partitions
            .iter()
            .filter(|p| cache.keeps(p.partition))
            .map(|p| {
                let behind = match self.highs.of(p.partition) {
                    Some(high) if high > 0 => (high - 1 - cache.consumed(p.partition)).max(0),
                    _ => 0,
                };
                (p.partition, u64::try_from(behind).unwrap_or(0))
            })
            .collect();
        TailLag::new(partitions)
    }

    /// The partition `workflow_id`'s records are written to (the producer's
    /// partitioner, [`partition_for_key`]), among the topic's partitions at open.
    pub fn partition_of(&self, workflow_id: &str) -> i32 {
        partition_for_key(workflow_id.as_bytes(), self.partitions().max(1))
    }

    /// About how much memory the cached states take, in bytes (what
    /// [`StoreLimits::max_cache_bytes`](wf_host::store::StoreLimits::max_cache_bytes) bounds).
    pub fn cache_bytes(&self) -> usize {
        self.read_cache().bytes()
    }

    /// Calls `f` with every live state, ascending by id, under the cache's read lock.
    pub fn for_each_state(&self, f: impl FnMut(&WorkflowState)) {
        self.read_cache().for_each_state(f);
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        // Every cache update is a single map operation: a panic cannot leave it torn.
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    /// With a group: registers a write to `workflow_id`'s partition (so
    /// giving the partition up waits for it), refusing a conditional one
    /// (`fenced`) when this host does not own the partition.
    fn begin_write(
        &self,
        op: &str,
        workflow_id: &str,
        fenced: bool,
    ) -> Result<Option<WriteGuard>, StoreError> {
        let Some(ownership) = &self.ownership else {
            return Ok(None);
        };
        ownership
            .begin_write(workflow_id, self.partition_of(workflow_id), fenced)
            .map(Some)
            .map_err(|e| StoreError::Conflict(format!("{op}: {e}")))
    }

    fn check_open(&self, op: &str) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(format!("{op}: store is closed")));
        }
        Ok(())
    }

    /// Produces `value` (None: tombstone) under `key` and waits for the ack.
    /// The write counts as in progress in its partition (the tail waits
    /// for it before reading the partition's end) until the result is
    /// dropped, after its acknowledgement was applied.
    async fn write(
        &self,
        key: &str,
        value: Option<&[u8]>,
        prefix: &str,
    ) -> Result<Written<'_>, StoreError> {
        let writing = self.in_flight.writing(self.partition_of(key));
        let headers = OwnedHeaders::new().insert(Header {
            key: WRITER_HEADER,
            value: Some(self.writer.as_bytes()),
        });
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.config.topic)
            .key(key.as_bytes())
            .headers(headers);
        if let Some(value) = value {
            record = record.payload(value);
        }
        let timeout = self.config.produce_timeout;
        // librdkafka reports every message within message.timeout.ms; the
        // outer bound only guards against a lost delivery report.
        let send = self.producer.send(record, Timeout::After(timeout));
        let waited = timeout + Duration::from_secs(5);
        match tokio::time::timeout(waited, send).await {
            Ok(Ok(delivery)) => Ok(Written {
                partition: delivery.partition,
                offset: delivery.offset,
                _writing: writing,
            }),
            Ok(Err((error, _))) => Err(write_error(prefix, &error)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "{prefix}: no acknowledgement within {waited:?} (the produce timeout, {timeout:?}, and 5 s for the delivery report); the record may still be written"
            ))),
        }
    }
}

/// An acknowledged write: where the broker put its record. Counted as in
/// progress in its partition until dropped.
struct Written<'a> {
    partition: i32,
    offset: i64,
    _writing: in_flight::Writing<'a>,
}

/// Reads of the partitions other hosts keep, when this store keeps only
/// its host's own.
impl KafkaStore {
    /// Where `workflow_id` is read when this host does not keep its
    /// partition: the link to its owner and the owner's name. `None`: here.
    async fn kept_elsewhere(
        &self,
        op: &str,
        workflow_id: &str,
    ) -> Result<Option<(SharedOwnerLink, String)>, StoreError> {
        if !self.owned_only {
            return Ok(None);
        }
        let partition = self.partition_of(workflow_id);
        self.owner_of(op, partition)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{e} (reading {workflow_id:?})")))
    }

    /// The link to the owner of `partition` and its name; `None` when this
    /// host owns it.
    async fn owner_of(
        &self,
        op: &str,
        partition: i32,
    ) -> Result<Option<(SharedOwnerLink, String)>, String> {
        let Some(ownership) = &self.ownership else {
            return Ok(None);
        };
        if ownership.owns_partition(partition) {
            return Ok(None);
        }
        let Some(owners) = self.owners.get() else {
            return Err(format!(
                "{op}: this host keeps only the partitions it owns, and partition {partition} is \
                 not one; no link to the other hosts was given (Host::link_owners)"
            ));
        };
        match ownership.owner_of_partition(partition).await {
            Some(owner) => Ok(Some((owners.clone(), owner))),
            None => Err(format!(
                "{op}: partition {partition} is kept by another host of group {}, whose name is \
                 not known (the group is moving the partition, or the broker keeps no \
                 offset-commit metadata); try again",
                ownership.group()
            )),
        }
    }

    /// A page of `filter` of at most `limit` states, from the partitions
    /// this host keeps and from their owners for the others, merged in id
    /// order.
    async fn list_across_owners(
        &self,
        op: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        let wanted: Vec<i32> = (0..self.partitions())
            .filter(|p| filter.lists_partition(*p))
            .collect();
        let owners = futures::future::join_all(wanted.iter().map(|&p| self.owner_of(op, p))).await;
        let mut here = Vec::new();
        let mut elsewhere: BTreeMap<String, (SharedOwnerLink, Vec<i32>)> = BTreeMap::new();
        for (&partition, owner) in wanted.iter().zip(owners) {
            match owner.map_err(StoreError::Unavailable)? {
                None => here.push(partition),
                Some((link, name)) => elsewhere
                    .entry(name)
                    .or_insert((link, Vec::new()))
                    .1
                    .push(partition),
            }
        }
        let mut page = if here.is_empty() {
            Vec::new()
        } else {
            self.read_cache()
                .page(&filter.clone().partitions(here), limit)
        };
        let pages =
            futures::future::join_all(elsewhere.iter().map(|(name, (link, partitions))| {
                let filter = filter
                    .clone()
                    .limit(u32::try_from(limit).unwrap_or(u32::MAX))
                    .partitions(partitions.clone());
                async move { link.list(name, &filter).await }
            }))
            .await;
        for remote in pages {
            page.extend(remote?);
        }
        // Each page starts past the same cursor in id order: merged, the
        // first `limit` are the page a single store would give.
        page.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        page.dedup_by(|a, b| a.workflow_id == b.workflow_id);
        page.truncate(limit);
        Ok(page)
    }

    /// When this host wrote `workflow_id` at `offset` of a partition it does
    /// not keep (`saved`: a state, else a tombstone): waits until the owner
    /// applied the record (or a newer one),
    /// so that this host's next read, which goes there, sees its write.
    async fn await_owner(
        &self,
        op: &str,
        workflow_id: &str,
        partition: i32,
        offset: i64,
        saved: bool,
    ) -> Result<(), StoreError> {
        if !self.owned_only
            || self
                .ownership
                .as_ref()
                .is_some_and(|o| o.owns_partition(partition))
        {
            return Ok(());
        }
        let written = version_at(offset);
        let deadline = tokio::time::Instant::now() + self.config.produce_timeout;
        loop {
            let last = match self.owner_of(op, partition).await {
                // Taken by this host meanwhile: it caught up to the write.
                Ok(None) => return Ok(()),
                Ok(Some((link, owner))) => match link.load_versioned(&owner, workflow_id).await {
                    // This record or a newer one of the id (for a tombstone:
                    // none) is the owner having read it.
                    Ok(Some(found)) if found.version >= written + u64::from(!saved) => {
                        return Ok(());
                    }
                    Ok(None) if !saved => return Ok(()),
                    Ok(_) => format!("{owner} has not read it yet"),
                    Err(e) => e.to_string(),
                },
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "{op}: {workflow_id:?} was written at version {written}, but the host that \
                     keeps its partition did not read it within {:?}, so reads here may not \
                     show it yet: {last}",
                    self.config.produce_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The topic's partition count.
    fn partitions(&self) -> i32 {
        i32::try_from(self.replay.partitions.len()).unwrap_or(i32::MAX)
    }
}

/// The writes, timed by the trait's methods.
impl KafkaStore {
    async fn save_now(
        &self,
        mut state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        const OP: &str = "kafka/save";
        self.check_open(OP)?;
        let value = validate::encode_for_save(OP, &mut state, &self.config.limits)?;
        let _serial = self.key_locks.lock(&state.workflow_id).await;
        let _write = self.begin_write(OP, &state.workflow_id, expected.is_some())?;
        {
            let cache = self.read_cache();
            let current = cache.version(&state.workflow_id);
            validate::check_version(OP, &state.workflow_id, current, expected)?;
            if current == 0 {
                let cost = validate::cache_cost(&state.workflow_id, &state);
                validate::check_cache_room(
                    OP,
                    cache.bytes(),
                    cache.len(),
                    cost,
                    &self.config.limits,
                )?;
            }
        }
        let (state, value) = (Arc::new(state), Arc::new(value));
        let id = &state.workflow_id;
        let (partition, offset) = {
            let _in_flight = self.in_flight.begin(&state, &value);
            let written = self.write(id, Some(&value), "kafka/save: write").await?;
            let (partition, offset) = (written.partition, written.offset);
            self.cache
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .apply_ack(id, Some(state.clone()), &value, partition, offset);
            drop(written);
            (partition, offset)
        };
        self.await_owner(OP, id, partition, offset, true).await?;
        Ok(version_at(offset))
    }

    async fn delete_now(&self, workflow_id: &str) -> Result<(), StoreError> {
        const OP: &str = "kafka/delete";
        self.check_open(OP)?;
        validate::check_id(OP, workflow_id)?;
        let _serial = self.key_locks.lock(workflow_id).await;
        let _write = self.begin_write(OP, workflow_id, false)?;
        let written = self
            .write(workflow_id, None, "kafka/delete: write tombstone")
            .await?;
        let (partition, offset) = (written.partition, written.offset);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply_ack(workflow_id, None, &[], partition, offset);
        drop(written);
        self.await_owner(OP, workflow_id, partition, offset, false)
            .await
    }
}

#[async_trait]
impl WorkflowStore for KafkaStore {
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        wf_host::store::timed("save", "kafka", self.save_now(state, expected)).await
    }

    async fn load(&self, workflow_id: &str) -> Result<Option<Arc<WorkflowState>>, StoreError> {
        const OP: &str = "kafka/load";
        self.check_open(OP)?;
        validate::check_id(OP, workflow_id)?;
        if let Some((owners, owner)) = self.kept_elsewhere(OP, workflow_id).await? {
            let found = owners.load_versioned(&owner, workflow_id).await?;
            return Ok(found.map(|found| found.state));
        }
        Ok(self.read_cache().get(workflow_id))
    }

    async fn load_versioned(&self, workflow_id: &str) -> Result<Option<Versioned>, StoreError> {
        const OP: &str = "kafka/load";
        self.check_open(OP)?;
        validate::check_id(OP, workflow_id)?;
        if let Some((owners, owner)) = self.kept_elsewhere(OP, workflow_id).await? {
            return owners.load_versioned(&owner, workflow_id).await;
        }
        Ok(self
            .read_cache()
            .get_versioned(workflow_id)
            .map(|(state, version)| Versioned { state, version }))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        const OP: &str = "kafka/list";
        self.check_open(OP)?;
        let page = validate::page_size(OP, filter, &self.config.limits)?;
        if self.owned_only {
            return self.list_across_owners(OP, filter, page).await;
        }
        Ok(self.read_cache().page(filter, page))
    }

    fn link_owners(&self, owners: SharedOwnerLink) {
        let _ = self.owners.set(owners);
    }

    async fn delete(&self, workflow_id: &str) -> Result<(), StoreError> {
        wf_host::store::timed("delete", "kafka", self.delete_now(workflow_id)).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Leave the group first: its partitions go to other hosts, after
        // the writes under way here are acknowledged.
        self.member_stop.store(true, Ordering::Release);
        let member = self
            .member_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(member) = member {
            let _ = blocking(move || member.join()).await;
        }
        // Off the async runtime: the flush may wait up to the close timeout.
        let producer = self.producer.clone();
        let close_timeout = self.config.close_timeout;
        let flushed = blocking(move || producer.flush(Timeout::After(close_timeout))).await?;
        self.stop.store(true, Ordering::Release);
        let thread = self
            .consumer_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            // The thread notices `stop` within one poll interval.
            let _ = blocking(move || thread.join()).await;
        }
        // Everything applied is in the local state's checkpoint: the next
        // open starts from here.
        let cache = self.cache.clone();
        blocking(move || cache.write().unwrap_or_else(|e| e.into_inner()).close()).await?;
        flushed.map_err(|e| {
            StoreError::Unavailable(format!(
                "kafka/close: pending writes not acknowledged within {:?}: {e}",
                self.config.close_timeout
            ))
        })
    }

    fn limits(&self) -> Option<StoreLimits> {
        Some(self.config.limits)
    }

    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn record_metrics(&self) {
        use wf_host::metrics as m;
        {
            let cache = self.read_cache();
            ::metrics::gauge!(m::CACHE_ENTRIES).set(cache.len() as f64);
            ::metrics::gauge!(m::CACHE_BYTES).set(cache.bytes() as f64);
        }
        for (partition, behind) in self.fetched_lag().partitions {
            ::metrics::gauge!(m::TAIL_LAG, "partition" => partition.to_string()).set(behind as f64);
        }
        let owned = match &self.ownership {
            Some(ownership) => ownership.owned_partitions().len(),
            None => self.replay.partitions.len(),
        };
        ::metrics::gauge!(m::OWNED_PARTITIONS).set(owned as f64);
        ::metrics::gauge!(m::REPLAY_SECONDS).set(self.replay.elapsed.as_secs_f64());
        ::metrics::gauge!(m::REPLAY_RECORDS).set(self.replay.records as f64);
    }

    fn describe(&self) -> String {
        match &self.ownership {
            Some(ownership) => format!(
                "kafka topic {} on {}, group {} as {}",
                self.config.topic,
                self.config.brokers,
                ownership.group(),
                ownership.member()
            ),
            None => format!(
                "kafka topic {} on {}",
                self.config.topic, self.config.brokers
            ),
        }
    }

    fn ownership(&self) -> Option<Arc<Ownership>> {
        self.ownership.clone()
    }

    async fn tail_lag(&self) -> Result<Option<TailLag>, StoreError> {
        self.check_open("kafka/tail-lag")?;
        Ok(Some(self.fetched_lag()))
    }

    async fn await_version(&self, workflow_id: &str, version: Version) -> Result<(), StoreError> {
        // The record at offset `version - 1` of the id's partition reaches
        // this cache through the tail, within a fetch wait or so.
        let partition = self.partition_of(workflow_id);
        if self.owned_only
            && self
                .ownership
                .as_ref()
                .is_some_and(|o| !o.owns_partition(partition))
        {
            // Not kept here: this host reads the id at its owner, which has it.
            return Ok(());
        }
        let offset = i64::try_from(version).unwrap_or(i64::MAX) - 1;
        let deadline = tokio::time::Instant::now() + self.config.produce_timeout;
        loop {
            {
                let cache = self.read_cache();
                if cache.consumed(partition) >= offset || cache.version(workflow_id) >= version {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "kafka/load: the write of {workflow_id:?} at version {version} did not reach this host's cache within {:?}",
                    self.config.produce_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for KafkaStore {
    fn drop(&mut self) {
        // Without close(): stop the consumer and member threads so they do
        // not outlive the store.
        self.stop.store(true, Ordering::Release);
        self.member_stop.store(true, Ordering::Release);
        if self.dev_cluster.is_some() {
            // The mock cluster goes with the store: let the threads that
            // read from it stop first (within a poll interval), or they
            // report its brokers gone.
            for slot in [&self.member_thread, &self.consumer_thread] {
                let thread = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Waits until the group gave this host its first partitions (possibly
/// none, in a group with more hosts than partitions) and the host caught up
/// with them.
async fn first_assignment(
    ownership: &Ownership,
    group: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let mut changes = ownership.subscribe();
    match tokio::time::timeout(timeout, changes.wait_for(|a| a.generation > 0)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(open_error(format!(
            "joined consumer group {group}, but was assigned no partitions within {timeout:?}"
        ))),
    }
}
