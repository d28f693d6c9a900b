//! Group membership: the host joins a Kafka consumer group on the workflow
//! topic, and the partitions the group assigns it are the workflows it owns.
//!
//! The group consumer reads nothing (its partitions are paused); it exists
//! for the protocol. The tailing consumer reads every partition, or, when
//! the store keeps only its host's partitions, those the group assigned:
//! the member tells it to read a partition before taking it and to stop
//! once it gave it up.
//! Rebalances are cooperative (`cooperative-sticky`): only the partitions
//! that move are revoked, so a host joining or leaving does not stop the
//! workflows of partitions that stay where they are, and a moving partition
//! is revoked from its old owner in one rebalance before it is assigned to
//! the new owner in the next. Giving up waits for this host's writes under
//! way to those partitions; taking one waits until the tail has read the
//! partition to its end, so the new owner's cache holds every write of the
//! old owner before it recovers anything. An owner announces itself by
//! committing, for each partition it takes, an offset whose metadata is its
//! name: any member can then read who owns a partition, and the broker
//! refuses the commit of a member whose generation is over.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::cache::Cache;
use super::config::KafkaConfig;
use super::consume::TailCommand;
use super::context::LogContext;
use wf_host::store::{Ownership, StoreError};

use crate::partition::partition_for_key;

type GroupConsumer = BaseConsumer<GroupContext>;

/// Per partition, the tail's read position when it last reached the end
/// (-1: not yet). With compaction, the last offsets of a partition may be
/// gone, so "read up to the high watermark" is only known from the position.
#[derive(Debug)]
pub(crate) struct EndPositions(Vec<AtomicI64>);

impl EndPositions {
    pub fn new(partitions: usize) -> Self {
        Self((0..partitions).map(|_| AtomicI64::new(-1)).collect())
    }

    pub fn set(&self, partition: i32, position: i64) {
        if let Some(end) = self.0.get(partition as usize) {
            end.fetch_max(position, Ordering::AcqRel);
        }
    }

    /// Forgets where the tail stood in `partition` (it stops or starts
    /// reading it again).
    pub fn reset(&self, partition: i32) {
        if let Some(end) = self.0.get(partition as usize) {
            end.store(-1, Ordering::Release);
        }
    }

    fn get(&self, partition: i32) -> i64 {
        self.0
            .get(partition as usize)
            .map_or(-1, |end| end.load(Ordering::Acquire))
    }
}

/// The group consumer's context: runs the rebalance callbacks.
pub(crate) struct GroupContext {
    topic: String,
    ownership: Arc<Ownership>,
    /// Partitions assigned and not yet taken (the tail is catching up).
    pending: Mutex<BTreeSet<i32>>,
    /// Set when the owned partitions must be announced (again): after a
    /// rebalance (a commit of an older generation is refused) or a failed commit.
    announce: AtomicBool,
    revoke_timeout: Duration,
    /// When the tail reads only the owned partitions: how to tell it, and
    /// the partitions it was told to read.
    tail: Option<TailControl>,
}

/// The group member's hold on a tail that reads only the owned partitions.
pub(crate) struct TailControl {
    pub commands: SyncSender<TailCommand>,
    pub reading: Mutex<BTreeSet<i32>>,
}

impl TailControl {
    /// Tells the tail to read `partitions` (with their watermarks); those
    /// it read already are left as they are.
    fn take(&self, partitions: &[(i32, i64, i64)]) -> Result<(), String> {
        let mut reading = self.lock();
        let new: Vec<(i32, i64, i64)> = partitions
            .iter()
            .copied()
            .filter(|(p, _, _)| !reading.contains(p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let (done, reply) = std::sync::mpsc::sync_channel(1);
        self.commands
            .send(TailCommand::Take(new.clone(), done))
            .map_err(|_| "the tail stopped".to_owned())?;
        reply.recv().map_err(|_| "the tail stopped".to_owned())??;
        reading.extend(new.iter().map(|(p, _, _)| *p));
        Ok(())
    }

    /// Tells the tail to stop reading `partitions`, and waits until it did.
    fn release(&self, partitions: &[i32]) {
        let mut reading = self.lock();
        let read: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| reading.remove(p))
            .collect();
        if read.is_empty() {
            return;
        }
        let (done, reply) = std::sync::mpsc::sync_channel(1);
        if self.commands.send(TailCommand::Release(read, done)).is_ok() {
            // An error: the tail stopped, and reads nothing any more.
            let _ = reply.recv();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        self.reading.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl GroupContext {
    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        LogContext::default().log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        LogContext::default().error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &GroupConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked = self.partitions(list);
                ::metrics::counter!(wf_host::metrics::REBALANCES, "change" => "revoked")
                    .increment(1);
                self.lock_pending().retain(|p| !revoked.contains(p));
                self.ownership.revoke(&revoked, self.revoke_timeout);
                if let Some(tail) = &self.tail {
                    // After the writes under way: their acks may still
                    // update the cache until then.
                    tail.release(&revoked);
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                tracing::warn!(group = %self.ownership.group(), "rebalance failed: {error}");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            // Tried again: until then other hosts cannot name this one.
            tracing::debug!(group = %self.ownership.group(), "announcing this host as the owner failed: {error}");
            self.announce.store(true, Ordering::Release);
        }
    }

    fn post_rebalance(&self, consumer: &GroupConsumer, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // Nothing is read through this consumer.
            if let Err(error) = consumer.pause(list) {
                tracing::warn!(group = %self.ownership.group(), "cannot pause the group consumer: {error}");
            }
            let assigned = self.partitions(list);
            ::metrics::counter!(wf_host::metrics::REBALANCES, "change" => "assigned").increment(1);
            if assigned.is_empty() {
                // Nothing to catch up with; still tells `open` the host is a
                // member now (with more hosts than partitions, some own none).
                self.ownership.grant(&[]);
            }
            self.lock_pending().extend(assigned);
            self.announce.store(true, Ordering::Release);
        }
    }
}

impl GroupContext {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The group member of one store: its thread and what it shares.
pub(crate) struct Membership {
    pub ownership: Arc<Ownership>,
    pub thread: JoinHandle<()>,
}

/// Joins `group` on the topic of `config` and starts the member's thread,
/// which serves rebalances until `stop` is set, then leaves the group.
pub(crate) fn join(
    config: &KafkaConfig,
    group: &str,
    partitions: i32,
    cache: Arc<RwLock<Cache>>,
    ends: Arc<EndPositions>,
    stop: Arc<AtomicBool>,
    tail: Option<TailControl>,
) -> Result<Membership, StoreError> {
    let consumer_slot: Arc<OnceLock<Weak<GroupConsumer>>> = Arc::new(OnceLock::new());
    let lookup_slot = consumer_slot.clone();
    let topic = config.topic.clone();
    let lookup_timeout = config.open_timeout.min(Duration::from_secs(5));
    let ownership = Arc::new(Ownership::new(
        group.to_owned(),
        config.announced_name(),
        partitions,
        Box::new(move |workflow_id| partition_for_key(workflow_id.as_bytes(), partitions.max(1))),
        Box::new(move |partition| {
            let consumer = lookup_slot.get()?.upgrade()?;
            owner_of(&consumer, &topic, partition, lookup_timeout)
        }),
    ));
    let context = GroupContext {
        topic: config.topic.clone(),
        ownership: ownership.clone(),
        pending: Mutex::default(),
        announce: AtomicBool::new(false),
        revoke_timeout: config.produce_timeout + Duration::from_secs(5),
        tail,
    };
    let consumer: Arc<GroupConsumer> = Arc::new(
        config
            .group_consumer(group)
            .create_with_context(context)
            .map_err(|e| {
                StoreError::InvalidArgument(format!(
                    "kafka/open: invalid group consumer configuration: {e}"
                ))
            })?,
    );
    let _ = consumer_slot.set(Arc::downgrade(&consumer));
    consumer.subscribe(&[&config.topic]).map_err(|e| {
        StoreError::Unavailable(format!("kafka/open: cannot join group {group}: {e}"))
    })?;
    let member = Member {
        consumer,
        topic: config.topic.clone(),
        cache,
        ends,
        stop,
        timeout: config.open_timeout,
        announce_checked: false,
    };
    let thread = std::thread::Builder::new()
        .name(format!("wf-kafka-group-{group}"))
        .spawn(move || member.run())
        .map_err(|e| {
            StoreError::Internal(format!("kafka/open: cannot start the group member: {e}"))
        })?;
    Ok(Membership { ownership, thread })
}

/// The name the owner of `partition` committed with it, if any.
fn owner_of(
    consumer: &GroupConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Option<String> {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    let committed = consumer.committed_offsets(list, timeout).ok()?;
    let element = committed.find_partition(topic, partition)?;
    Some(element.metadata().to_owned()).filter(|name| !name.is_empty())
}

struct Member {
    consumer: Arc<GroupConsumer>,
    topic: String,
    cache: Arc<RwLock<Cache>>,
    ends: Arc<EndPositions>,
    stop: Arc<AtomicBool>,
    timeout: Duration,
    /// Whether the broker was seen to keep the name an announce commits.
    announce_checked: bool,
}

impl Member {
    fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) {
            // Serves the rebalance callbacks; yields no records (paused).
            let _ = self.consumer.poll(Duration::from_millis(50));
            let pending: Vec<i32> = self.context().lock_pending().iter().copied().collect();
            if !pending.is_empty() {
                self.take(pending);
            }
            if self.context().announce.swap(false, Ordering::AcqRel)
                && let Err(error) = self.announce()
            {
                tracing::warn!(topic = %self.topic, "cannot announce this host as the partitions' owner: {error}");
            }
        }
        // Dropping the last handle leaves the group: the revoke callback
        // runs (waiting for writes under way) before the consumer closes.
        let ownership = self.context().ownership.clone();
        drop(self.consumer);
        ownership.revoke(&ownership.owned_partitions(), Duration::ZERO);
    }

    fn context(&self) -> &GroupContext {
        self.consumer.context()
    }

    /// Catches the tail up to the end of `partitions`, then owns those
    /// still assigned (a rebalance meanwhile may have revoked some).
    fn take(&self, partitions: Vec<i32>) {
        let ends_at = crate::context::now_ms();
        let mut watermarks = Vec::with_capacity(partitions.len());
        for &partition in &partitions {
            match self
                .consumer
                .fetch_watermarks(&self.topic, partition, self.timeout)
            {
                Ok((low, high)) => watermarks.push((partition, low, high)),
                Err(error) => {
                    // Still pending: tried again on the next loop.
                    tracing::warn!(topic = %self.topic, partition, "cannot read the end of an assigned partition: {error}");
                    std::thread::sleep(Duration::from_millis(200));
                    return;
                }
            }
        }
        if let Some(tail) = &self.context().tail
            && let Err(error) = tail.take(&watermarks)
        {
            // Still pending: tried again on the next loop.
            tracing::warn!(topic = %self.topic, ?partitions, "cannot start reading assigned partitions: {error}");
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        let ends: Vec<(i32, i64)> = watermarks.iter().map(|&(p, _, high)| (p, high)).collect();
        // A partition revoked meanwhile is no longer waited for: the tail
        // stopped reading it.
        while !ends.iter().all(|&(p, high)| {
            self.caught_up(p, high) || !self.context().lock_pending().contains(&p)
        }) {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            // Serves rebalance callbacks meanwhile.
            let _ = self.consumer.poll(Duration::from_millis(5));
        }
        let mut pending = self.context().lock_pending();
        let taken: Vec<i32> = ends
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| pending.remove(p))
            .collect();
        {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            for &partition in &taken {
                cache.read_to_end_at(partition, ends_at);
            }
        }
        // Revocations run on this thread too (inside `poll`): none can come
        // between this check and the grant.
        self.context().ownership.grant(&taken);
        self.context().announce.store(true, Ordering::Release);
    }

    fn caught_up(&self, partition: i32, high: i64) -> bool {
        let consumed = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .consumed(partition);
        consumed >= high - 1 || self.ends.get(partition) >= high
    }

    /// Commits the owned partitions with this host's name as metadata (the
    /// offset committed is how far the cache has read; nothing reads it).
    fn announce(&mut self) -> KafkaResult<()> {
        let ownership = &self.context().ownership;
        let owned = ownership.owned_partitions();
        if owned.is_empty() {
            return Ok(());
        }
        let name = ownership.member().to_owned();
        let mut list = TopicPartitionList::new();
        for partition in owned {
            let read = self
                .cache
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .consumed(partition);
            list.add_partition_offset(&self.topic, partition, Offset::Offset(read + 1))?;
            if let Some(mut element) = list.find_partition(&self.topic, partition) {
                element.set_metadata(name.clone());
            }
        }
        if self.announce_checked {
            return self.consumer.commit(&list, CommitMode::Async);
        }
        // The first announce is read back: a broker that drops commit
        // metadata leaves this host nameless to the others, which is said
        // once here rather than as each of their forwarded calls failing.
        self.consumer.commit(&list, CommitMode::Sync)?;
        self.announce_checked = true;
        if let Some(element) = list.elements().first()
            && owner_of(
                &self.consumer,
                &self.topic,
                element.partition(),
                self.timeout,
            )
            .is_none()
        {
            tracing::warn!(
                topic = %self.topic,
                "the broker keeps no offset-commit metadata, so the group's other hosts cannot learn this host's name: their load-versioned and conditional saves of ids this host owns fail with unavailable, and so does every read of them by a host that keeps only its own partitions"
            );
        }
        Ok(())
    }
}
