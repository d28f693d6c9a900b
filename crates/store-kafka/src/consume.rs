//! The consumer thread: replays every partition from the beginning to the
//! high watermarks taken at start, then keeps tailing so that other hosts'
//! writes reach the cache.
//!
//! One OS thread polls a `BaseConsumer` (replay is the hot path at start-up,
//! and a blocking poll loop reads faster than an async stream) and hands the
//! records, in batches, to decoder threads, which decode them and apply them
//! to the cache. Records are sharded by partition, so each partition's records
//! are applied in offset order by one decoder.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio::sync::oneshot;

use super::cache::{Cache, Record, SkipReason, decode_record};
use super::context::LogContext;
use super::group::EndPositions;
use super::in_flight::InFlight;
use crate::partition::partition_for_key;

/// What a replay read from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    /// The partition.
    pub partition: i32,
    /// Its low watermark at start (the first offset still in the log).
    pub low: i64,
    /// The offset the replay started at: the low watermark, or the record
    /// after the local state's checkpoint.
    pub start: i64,
    /// Its high watermark at start (the offset the next record gets).
    pub high: i64,
    /// Records read from it during replay.
    pub records: u64,
}

/// What the replay at open found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The topic replayed.
    pub topic: String,
    /// Per partition: watermarks at start and records read.
    pub partitions: Vec<PartitionReport>,
    /// Records read (including skipped ones and tombstones).
    pub records: u64,
    /// Tombstones read.
    pub tombstones: u64,
    /// Records that did not decode and were skipped.
    pub skipped: u64,
    /// Records of an id in a partition other than the one the producer's
    /// partitioner places the id in: skipped too (an id is read from its
    /// home partition only), and counted here as well.
    pub misplaced: u64,
    /// Live workflow states after replay.
    pub live: usize,
    /// The local state's file, when the cache is on disk.
    pub state_file: Option<std::path::PathBuf>,
    /// Live states restored from the local state before the replay.
    pub restored: usize,
    /// What of the local state was rebuilt from the log, and why.
    pub rebuilt: Vec<crate::Rebuild>,
    /// How long the replay took.
    pub elapsed: Duration,
}

/// Progress of a replay, reported about once a second while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayProgress {
    /// Records read so far.
    pub records: u64,
    /// Records still to read before the high watermarks (an upper bound:
    /// compaction leaves gaps).
    pub remaining: u64,
    /// Records read per second so far.
    pub rate: f64,
}

/// Receives replay progress; called from the consumer thread.
pub type ProgressObserver = Box<dyn Fn(&ReplayProgress) + Send + 'static>;

/// Counters of the consumer thread, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records: AtomicU64,
    pub tombstones: AtomicU64,
    pub skipped: AtomicU64,
    pub misplaced: AtomicU64,
}

/// The consumer thread's shared parts.
pub(crate) struct Consumption {
    pub topic: String,
    pub consumer: Arc<BaseConsumer<LogContext>>,
    pub cache: Arc<RwLock<Cache>>,
    pub counters: Arc<Counters>,
    /// This store's saves not yet applied: a record read back before its
    /// acknowledgement takes its state from there.
    pub in_flight: Arc<InFlight>,
    pub stop: Arc<AtomicBool>,
    /// Values over this many bytes are skipped: a state this host would
    /// refuse to write is not taken into its cache either.
    pub max_value_bytes: usize,
    /// Where the tail stood each time it reached a partition's end; kept
    /// only for a store in a group (a new owner waits on it), since asking
    /// librdkafka for the position at every end of a partition costs the
    /// tail time a lone host does not need to spend.
    pub ends: Option<Arc<EndPositions>>,
    /// The topic's partition count: an id's records are read from the
    /// partition the producer's partitioner places it in only.
    pub partitions: i32,
    /// This store's writer id (the [`WRITER_HEADER`] of its records).
    pub writer: String,
    /// Warn once when the tail reads a record another writer wrote: without
    /// a group, conditional saves and starts are decided per host.
    pub watch_writers: bool,
    /// The cache is on local disk: mark each record for its checkpoint.
    pub checkpoints: bool,
    /// Set once the replay is done. Before, this store has written nothing
    /// (its open has not returned), so no record can be its own.
    pub replayed: AtomicBool,
    /// When (ms since the Unix epoch) the replay's high watermarks were
    /// read: once it is done, every partition was read to its end then.
    pub replay_ends_at: i64,
    /// Where the ends of idle partitions found by the tail's checks are
    /// kept, beside those its statistics report.
    pub highs: Arc<super::context::HighWatermarks>,
}

/// A change of the partitions the tail reads, sent by the group member of
/// a store that keeps only its host's partitions.
pub(crate) enum TailCommand {
    /// Read these partitions, given with their low and high watermarks;
    /// the reply says whether the tail now reads them.
    Take(
        Vec<(i32, i64, i64)>,
        std::sync::mpsc::SyncSender<Result<(), String>>,
    ),
    /// Stop reading these partitions; replies once none of their records
    /// will be applied any more and the cache let go of them.
    Release(Vec<i32>, std::sync::mpsc::SyncSender<()>),
}

/// The header naming the store that wrote a record (a random id per open
/// store), so the tail can tell another writer's records from its own.
pub(crate) const WRITER_HEADER: &str = "wf-writer";

/// A record as polled, copied out of librdkafka's buffer for a decoder.
struct Fetched {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Written by this store (its [`WRITER_HEADER`]).
    mine: bool,
}

/// What the poll thread sends a decoder.
enum Work {
    /// Records to decode and apply, in offset order per partition.
    Records(Vec<Fetched>),
    /// Reply once everything sent before has been applied.
    Flush(std::sync::mpsc::SyncSender<()>),
    /// The tail reached the end of a partition at this position: record it
    /// once everything sent before is applied.
    End(i32, i64),
}

/// The poll thread's side of the tail: its decoders, and which partitions
/// it reads.
struct Tail {
    decoders: Decoders,
    commands: Option<std::sync::mpsc::Receiver<TailCommand>>,
    /// Per partition, whether the tail reads it.
    reading: Vec<bool>,
    /// Per partition read, whether it is fetched now or idle.
    fetch: Vec<Fetch>,
    /// When the idle partitions' ends are next asked for.
    next_check: Instant,
}

/// Whether the tail fetches a partition it reads.
///
/// A partition the tail has read to its end goes idle: the consumer stops
/// fetching it, and the tail asks the broker for its end from time to time
/// instead. While every record past what the tail applied is one of this
/// store's acknowledged writes, which the cache applied at their
/// acknowledgements and passes in offset order ([`Cache::apply_ack`]), the
/// cache is current and nothing is fetched. An offset nobody here
/// acknowledged (another writer's record, or one of this store's whose save
/// failed after the broker wrote it) makes the tail fetch from the first
/// offset not applied, until it reaches the end again: at once when no
/// write of this store to the partition is on its way, else when the
/// offset is still not applied at the next check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// The consumer fetches it.
    Fetching,
    /// The consumer does not fetch it. `gap`: the end the last check found
    /// when some offset before it was not applied yet.
    Idle { gap: Option<i64> },
}

/// How often the ends of idle partitions are asked for: with the fetch
/// wait, about how much later than a fetching tail one sees another
/// writer's record.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// How soon an end is asked for again when an offset before it was not
/// applied while this store had writes to the partition on their way: an
/// acknowledgement takes a round trip or so, and an offset still not
/// applied then is read.
const GAP_RECHECK: Duration = Duration::from_millis(20);

/// How long a check waits for the broker before the idle partitions are
/// fetched instead.
const IDLE_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

impl Tail {
    fn reads(&self, partition: i32) -> bool {
        self.reading
            .get(partition as usize)
            .copied()
            .unwrap_or(false)
    }

    fn fetches(&self, partition: i32) -> bool {
        self.reads(partition)
            && self
                .fetch
                .get(partition as usize)
                .is_some_and(|f| *f == Fetch::Fetching)
    }

    fn idle(&self) -> impl Iterator<Item = (i32, Option<i64>)> + '_ {
        self.fetch
            .iter()
            .enumerate()
            .filter(|&(p, _)| self.reading[p])
            .filter_map(|(p, f)| match f {
                Fetch::Idle { gap } => Some((i32::try_from(p).unwrap_or(i32::MAX), *gap)),
                Fetch::Fetching => None,
            })
    }
}

/// Records per batch handed to a decoder: amortizes the channel, keeps tail latency low
/// (a partial batch is sent as soon as the consumer has nothing more to give).
const BATCH: usize = 256;

/// The decoder threads and the batches being filled for them.
struct Decoders {
    senders: Vec<std::sync::mpsc::SyncSender<Work>>,
    batches: Vec<Vec<Fetched>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Decoders {
    fn start(consumption: &Arc<Consumption>) -> Self {
        // One per core: the poll thread only copies, and decoding is the
        // replay's bottleneck (measured: two decoders replay ~20 % faster than
        // one on two cores).
        let count = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Work>(64);
            let consumption = consumption.clone();
            let thread = std::thread::Builder::new()
                .name(format!("wf-kafka-decode-{i}"))
                .spawn(move || {
                    while let Ok(work) = receiver.recv() {
                        match work {
                            Work::Records(records) => {
                                for r in records {
                                    consumption.apply(
                                        r.partition,
                                        r.offset,
                                        r.key.as_deref(),
                                        r.value.as_deref(),
                                        r.mine,
                                    );
                                }
                            }
                            Work::Flush(done) => {
                                let _ = done.send(());
                            }
                            Work::End(partition, position) => {
                                if let Some(ends) = &consumption.ends {
                                    ends.set(partition, position);
                                }
                            }
                        }
                    }
                });
            match thread {
                Ok(thread) => {
                    senders.push(sender);
                    threads.push(thread);
                }
                // Fewer decoders (at least the first) still decode everything.
                Err(error) if i > 0 => {
                    tracing::warn!("cannot start decoder thread {i}: {error}");
                    break;
                }
                Err(error) => panic!("cannot start a decoder thread: {error}"),
            }
        }
        let batches = senders.iter().map(|_| Vec::with_capacity(BATCH)).collect();
        Self {
            senders,
            batches,
            threads,
        }
    }

    fn push(&mut self, record: Fetched) {
        let shard = record.partition.unsigned_abs() as usize % self.senders.len();
        self.batches[shard].push(record);
        if self.batches[shard].len() >= BATCH {
            self.send(shard);
        }
    }

    /// Records `partition`'s end at `position` after its records so far.
    fn end(&mut self, partition: i32, position: i64) {
        let shard = partition.unsigned_abs() as usize % self.senders.len();
        if !self.batches[shard].is_empty() {
            self.send(shard);
        }
        let _ = self.senders[shard].send(Work::End(partition, position));
    }

    fn send(&mut self, shard: usize) {
        let batch = std::mem::replace(&mut self.batches[shard], Vec::with_capacity(BATCH));
        // A decoder only stops when its sender is dropped.
        let _ = self.senders[shard].send(Work::Records(batch));
    }

    /// Sends every partial batch.
    fn send_all(&mut self) {
        for shard in 0..self.batches.len() {
            if !self.batches[shard].is_empty() {
                self.send(shard);
            }
        }
    }

    /// Waits until every record pushed so far is applied.
    fn flush(&mut self) {
        self.send_all();
        let replies: Vec<_> = self
            .senders
            .iter()
            .map(|sender| {
                let (done, reply) = std::sync::mpsc::sync_channel(1);
                let _ = sender.send(Work::Flush(done));
                reply
            })
            .collect();
        for reply in replies {
            let _ = reply.recv();
        }
    }

    fn stop(mut self) {
        self.send_all();
        self.senders.clear();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

impl Consumption {
    /// Runs on the calling thread until `stop` is set: replays to `targets`
    /// (partition, low, high), sends the report on `ready`, then tails.
    /// With `commands` (a store that keeps only its host's partitions) it
    /// reads no partition until told to.
    pub fn run(
        self,
        targets: Vec<PartitionReport>,
        observer: Option<ProgressObserver>,
        ready: oneshot::Sender<ReplayReport>,
        commands: Option<std::sync::mpsc::Receiver<TailCommand>>,
    ) {
        let this = Arc::new(self);
        let mut decoders = Decoders::start(&this);
        // Without commands the tail reads every partition, from the start.
        let count = usize::try_from(this.partitions).unwrap_or(0);
        let reads_all = commands.is_none();
        let mut tail = Tail {
            decoders,
            commands,
            reading: vec![reads_all; count],
            fetch: vec![Fetch::Fetching; count],
            next_check: Instant::now(),
        };
        this.poll_loop(&mut tail, targets, observer, ready);
        decoders = tail.decoders;
        decoders.stop();
    }

    fn poll_loop(
        &self,
        tail: &mut Tail,
        mut partitions: Vec<PartitionReport>,
        observer: Option<ProgressObserver>,
        ready: oneshot::Sender<ReplayReport>,
    ) {
        let started = Instant::now();
        // Replay is done for a partition once it reaches the high watermark
        // taken at start, or reports EOF (compaction may have removed the
        // records just below the watermark).
        let mut pending: Vec<bool> = partitions.iter().map(|p| p.high > p.start).collect();
        // The next offset expected per partition: a record below it is a
        // range the broker delivered twice.
        let mut next_offset: Vec<i64> = partitions.iter().map(|p| p.start).collect();
        let total: u64 = partitions
            .iter()
            .map(|p| (p.high - p.start).max(0) as u64)
            .sum();
        let mut ready = Some(ready);
        let mut last_report = Instant::now();
        let mut last_error: Option<(String, Instant)> = None;

        let mut other_writer_seen = false;
        while !self.stop.load(Ordering::Acquire) {
            let replaying = ready.is_some();
            if !replaying {
                self.follow_commands(tail);
                if Instant::now() >= tail.next_check {
                    self.check_idle(tail);
                }
            }
            let polled = match self.consumer.poll(Duration::ZERO) {
                Some(polled) => Some(polled),
                None => {
                    // Nothing buffered: hand over what is batched before waiting.
                    tail.decoders.send_all();
                    if self.checkpoints && !replaying {
                        self.cache
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .flush_if_due();
                    }
                    let wait = if replaying {
                        Duration::from_millis(100)
                    } else {
                        tail.next_check
                            .saturating_duration_since(Instant::now())
                            .min(Duration::from_millis(100))
                    };
                    self.consumer.poll(wait)
                }
            };
            match polled {
                None => {}
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    if !tail.fetches(partition) {
                        // Fetched before the partition was given up or went idle.
                        continue;
                    }
                    let mine = !replaying && self.written_here(&message);
                    if !mine && !replaying && self.watch_writers && !other_writer_seen {
                        other_writer_seen = true;
                        self.warn_other_writer(partition, offset);
                    }
                    let index = index_of(&partitions, partition);
                    if let Some(index) = index {
                        if offset < next_offset[index] {
                            continue;
                        }
                        next_offset[index] = offset + 1;
                        if replaying {
                            partitions[index].records += 1;
                            if offset + 1 >= partitions[index].high {
                                pending[index] = false;
                            }
                        }
                    }
                    tail.decoders.push(Fetched {
                        partition,
                        offset,
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                        mine,
                    });
                }
                Some(Err(KafkaError::PartitionEOF(partition))) if tail.reads(partition) => {
                    if let Some(index) = index_of(&partitions, partition) {
                        pending[index] = false;
                    }
                    if self.ends.is_some()
                        && let Some(position) = self.position(partition)
                    {
                        tail.decoders.end(partition, position);
                    }
                    if !replaying {
                        self.go_idle(tail, &[partition]);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    // librdkafka retries by itself; say so once in a while, not per poll.
                    let text = error.to_string();
                    let repeat = last_error.as_ref().is_some_and(|(last, at)| {
                        *last == text && at.elapsed() < Duration::from_secs(10)
                    });
                    if !repeat {
                        tracing::warn!(topic = %self.topic, "kafka consumer: {text}");
                        last_error = Some((text, Instant::now()));
                    }
                }
            }
            if !replaying {
                continue;
            }
            if !pending.contains(&true) {
                // Serve only once every replayed record is in the cache, and
                // in the local state's checkpoint.
                tail.decoders.flush();
                self.replayed.store(true, Ordering::Release);
                if self.checkpoints {
                    let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
                    for partition in &partitions {
                        cache.read_to_end_at(partition.partition, self.replay_ends_at);
                    }
                    cache.flush(true);
                }
                let report = self.report(partitions.clone(), started.elapsed());
                tracing::info!(
                    topic = %report.topic,
                    records = report.records,
                    live = report.live,
                    skipped = report.skipped,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "replay done; tailing"
                );
                let read: Vec<i32> = partitions
                    .iter()
                    .map(|p| p.partition)
                    .filter(|&p| tail.reads(p))
                    .collect();
                self.go_idle(tail, &read);
                if let Some(ready) = ready.take() {
                    // The opener may have given up (timeout); keep tailing regardless.
                    let _ = ready.send(report);
                }
            } else if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let records: u64 = partitions.iter().map(|p| p.records).sum();
                let done: u64 = partitions
                    .iter()
                    .zip(&next_offset)
                    .map(|(p, next)| (next.min(&p.high) - p.start).max(0) as u64)
                    .sum();
                let progress = ReplayProgress {
                    records,
                    remaining: total.saturating_sub(done),
                    rate: records as f64 / started.elapsed().as_secs_f64().max(1e-9),
                };
                tracing::info!(
                    topic = %self.topic,
                    records,
                    remaining = progress.remaining,
                    per_second = progress.rate as u64,
                    "replaying"
                );
                if let Some(observer) = &observer {
                    observer(&progress);
                }
            }
        }
    }

    /// Carries out the group member's changes of the partitions read.
    fn follow_commands(&self, tail: &mut Tail) {
        let Some(commands) = &tail.commands else {
            return;
        };
        let received: Vec<TailCommand> = commands.try_iter().collect();
        for command in received {
            match command {
                TailCommand::Take(partitions, done) => {
                    for &(partition, _, _) in &partitions {
                        if let Some(fetch) = tail.fetch.get_mut(partition as usize) {
                            *fetch = Fetch::Fetching;
                        }
                    }
                    let _ = done.send(self.take(&mut tail.reading, &partitions));
                }
                TailCommand::Release(partitions, done) => {
                    self.release(tail, &partitions);
                    let _ = done.send(());
                }
            }
        }
    }

    /// Starts reading `partitions` (with their low and high watermarks):
    /// from the record after the one the cache applied when the log still
    /// continues it, else from the start.
    fn take(&self, reading: &mut [bool], partitions: &[(i32, i64, i64)]) -> Result<(), String> {
        use rdkafka::consumer::Consumer as _;
        let mut list = rdkafka::TopicPartitionList::new();
        {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            for &(partition, low, high) in partitions {
                let offset = match cache.take_partition(partition, low, high) {
                    Some(next) => rdkafka::Offset::Offset(next),
                    None => rdkafka::Offset::Beginning,
                };
                if let Some(ends) = &self.ends {
                    ends.reset(partition);
                }
                list.add_partition_offset(&self.topic, partition, offset)
                    .map_err(|e| e.to_string())?;
            }
        }
        self.consumer
            .incremental_assign(&list)
            .map_err(|e| e.to_string())?;
        for &(partition, _, _) in partitions {
            if let Some(read) = reading.get_mut(partition as usize) {
                *read = true;
            }
        }
        Ok(())
    }

    /// Stops reading `partitions`: once their records handed out so far are
    /// applied, the cache lets go of them.
    fn release(&self, tail: &mut Tail, partitions: &[i32]) {
        use rdkafka::consumer::Consumer as _;
        let mut list = rdkafka::TopicPartitionList::new();
        for &partition in partitions {
            // An idle partition is not assigned to the consumer.
            if tail.fetches(partition) {
                list.add_partition(&self.topic, partition);
            }
            if let Some(read) = tail.reading.get_mut(partition as usize) {
                *read = false;
            }
            if let Some(fetch) = tail.fetch.get_mut(partition as usize) {
                *fetch = Fetch::Fetching;
            }
            self.highs.forget_checked(partition);
        }
        if list.count() > 0
            && let Err(error) = self.consumer.incremental_unassign(&list)
        {
            tracing::warn!(topic = %self.topic, ?partitions, "cannot stop reading partitions given up: {error}");
        }
        tail.decoders.flush();
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        for &partition in partitions {
            cache.release_partition(partition);
            if let Some(ends) = &self.ends {
                ends.reset(partition);
            }
        }
        if self.checkpoints {
            cache.flush(false);
        }
    }

    /// Stops fetching `partitions` (those fetched now), read to their end.
    fn go_idle(&self, tail: &mut Tail, partitions: &[i32]) {
        use rdkafka::consumer::Consumer as _;
        let fetched: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|&p| tail.fetches(p))
            .collect();
        if fetched.is_empty() {
            return;
        }
        let mut list = rdkafka::TopicPartitionList::new();
        for &partition in &fetched {
            list.add_partition(&self.topic, partition);
        }
        if let Err(error) = self.consumer.incremental_unassign(&list) {
            // Fetching on is what the tail did before idling existed.
            tracing::warn!(topic = %self.topic, ?fetched, "the tail keeps fetching partitions read to their end: {error}");
            return;
        }
        for partition in fetched {
            if let Some(fetch) = tail.fetch.get_mut(partition as usize) {
                *fetch = Fetch::Idle { gap: None };
            }
        }
    }

    /// Asks the broker for the ends of the idle partitions: a partition
    /// whose every offset before its end is applied stays idle; one with an
    /// offset not applied is fetched again from its first such offset when
    /// no write of this store to it is on its way, or else when the offset
    /// is still not applied at the next check.
    fn check_idle(&self, tail: &mut Tail) {
        use rdkafka::consumer::Consumer as _;
        tail.next_check = Instant::now() + IDLE_CHECK;
        let idle: Vec<(i32, Option<i64>)> = tail.idle().collect();
        if idle.is_empty() {
            return;
        }
        let asked_at = super::context::now_ms();
        let mut list = rdkafka::TopicPartitionList::new();
        for &(partition, _) in &idle {
            // Asked by time, "the end" (-1) is the high watermark.
            let _ = list.add_partition_offset(&self.topic, partition, rdkafka::Offset::End);
        }
        let ends: Vec<(i32, Option<i64>)> = match self
            .consumer
            .offsets_for_times(list, IDLE_CHECK_TIMEOUT)
        {
            Ok(ends) => idle
                .iter()
                .map(|&(partition, _)| {
                    let end = ends
                        .find_partition(&self.topic, partition)
                        .filter(|e| e.error().is_ok())
                        .and_then(|e| match e.offset() {
                            rdkafka::Offset::Offset(end) => Some(end),
                            _ => None,
                        });
                    (partition, end)
                })
                .collect(),
            Err(error) => {
                tracing::debug!(topic = %self.topic, "cannot ask for the ends of idle partitions: {error}");
                idle.iter()
                    .map(|&(partition, _)| (partition, None))
                    .collect()
            }
        };
        // Whether a write of this store is on its way, asked before the
        // position: with none, every write of this store the broker held
        // at the check was applied (or failed) before the position is read.
        let writing: Vec<bool> = ends
            .iter()
            .map(|&(p, _)| self.in_flight.writes_to(p))
            .collect();
        let applied: Vec<i64> = {
            let cache = self.read_cache();
            ends.iter().map(|&(p, _)| cache.consumed(p)).collect()
        };
        for (((&(partition, gap), (_, end)), consumed), writing) in
            idle.iter().zip(&ends).zip(applied).zip(writing)
        {
            let next = consumed + 1;
            let state = match end {
                // Not known: fetched, as a tail that never idles would.
                None => None,
                Some(end) if next >= *end => {
                    self.highs.checked(partition, *end, asked_at);
                    if let Some(ends) = &self.ends {
                        ends.set(partition, *end);
                    }
                    Some(Fetch::Idle { gap: None })
                }
                // Not applied, and no acknowledgement on its way, or
                // still not applied at the second check.
                Some(_) if !writing || gap.is_some_and(|gap| next < gap) => None,
                Some(end) => {
                    tail.next_check = Instant::now() + GAP_RECHECK;
                    Some(Fetch::Idle { gap: Some(*end) })
                }
            };
            let state = state.unwrap_or_else(|| self.resume(partition, next));
            if let Some(fetch) = tail.fetch.get_mut(partition as usize) {
                *fetch = state;
            }
        }
    }

    /// Fetches `partition` again from `offset`.
    fn resume(&self, partition: i32, offset: i64) -> Fetch {
        use rdkafka::consumer::Consumer as _;
        let mut list = rdkafka::TopicPartitionList::new();
        let start = if offset > 0 {
            rdkafka::Offset::Offset(offset)
        } else {
            rdkafka::Offset::Beginning
        };
        let assigned = list
            .add_partition_offset(&self.topic, partition, start)
            .and_then(|()| self.consumer.incremental_assign(&list));
        match assigned {
            Ok(()) => Fetch::Fetching,
            Err(error) => {
                tracing::warn!(topic = %self.topic, partition, "cannot fetch an idle partition again (tried again at the next check): {error}");
                Fetch::Idle {
                    gap: Some(i64::MAX),
                }
            }
        }
    }

    /// Whether `message` carries this store's writer id.
    fn written_here(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> bool {
        use rdkafka::message::Headers as _;
        message.headers().is_some_and(|headers| {
            headers.iter().any(|header| {
                header.key == WRITER_HEADER && header.value == Some(self.writer.as_bytes())
            })
        })
    }

    /// Warns that another writer than this store writes the topic.
    fn warn_other_writer(&self, partition: i32, offset: i64) {
        tracing::warn!(
            topic = %self.topic,
            partition,
            offset,
            "another writer writes this topic, and this host is in no group: conditional saves \
             (load-versioned + save with a version) and the id reuse of starts are decided per \
             host, so two hosts can both succeed; run the hosts in one group (--group) to share \
             the topic safely"
        );
    }

    /// The read position of `partition` (the offset of the next record).
    fn position(&self, partition: i32) -> Option<i64> {
        use rdkafka::consumer::Consumer as _;
        let positions = self.consumer.position().ok()?;
        match positions.find_partition(&self.topic, partition)?.offset() {
            rdkafka::Offset::Offset(position) => Some(position),
            _ => None,
        }
    }

    /// Applies one record (`mine`: written by this store); false when it
    /// was a duplicate delivery.
    fn apply(
        &self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        mine: bool,
    ) -> bool {
        // This host's own writes come back through the tail; when the ack got
        // here first the record is already in the cache, and decoding it again
        // would double the CPU cost of every save. A record of this store
        // whose id it has written again since is passed over too (an id saved
        // often is read back behind its newest ack).
        let own = key
            .filter(|_| self.replayed.load(Ordering::Acquire))
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| {
                let cache = self.read_cache();
                if mine {
                    cache.holds_or_passed(k, partition, offset)
                } else {
                    cache.holds(k, partition, offset)
                }
            });
        let decoded = match own {
            Some(key) => Ok(Record {
                key: key.to_owned(),
                state: None,
            }),
            // Decode outside the lock: readers are never blocked on JSON parsing.
            None => match value {
                Some(value) if value.len() > self.max_value_bytes => {
                    Err(SkipReason::ValueTooLarge {
                        bytes: value.len(),
                        limit: self.max_value_bytes,
                    })
                }
                Some(value) => match key
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| self.in_flight.state_of(k, value))
                {
                    Some(state) => Ok(Record {
                        key: state.workflow_id.clone(),
                        state: Some(state),
                    }),
                    None => decode_record(key, Some(value)),
                },
                None => decode_record(key, None),
            },
        };
        let mark = if self.checkpoints {
            super::local::mark(key, value)
        } else {
            0
        };
        let json = value.unwrap_or_default();
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if offset <= cache.consumed(partition) {
            return false;
        }
        self.counters.records.fetch_add(1, Ordering::Relaxed);
        if own.is_some() {
            if value.is_none() {
                self.counters.tombstones.fetch_add(1, Ordering::Relaxed);
            }
            // Held already: this only advances the partition and drops a
            // tombstone's guard (`apply_consumed` never replaces a slot it holds).
            if let Ok(record) = decoded {
                cache.apply_consumed(partition, offset, record, json, mark);
            }
            return true;
        }
        let decoded = decoded.and_then(|record| {
            // Every host and every replay reads an id from its home
            // partition only, so that a writer placing ids elsewhere (a Go
            // writer on a round-robin balancer, say) cannot split the hosts.
            let home = partition_for_key(record.key.as_bytes(), self.partitions);
            if home == partition {
                return Ok(record);
            }
            self.counters.misplaced.fetch_add(1, Ordering::Relaxed);
            Err(SkipReason::Misplaced {
                key: record.key,
                home,
            })
        });
        match decoded {
            Ok(record) => {
                if record.state.is_none() {
                    self.counters.tombstones.fetch_add(1, Ordering::Relaxed);
                }
                cache.apply_consumed(partition, offset, record, json, mark);
            }
            Err(reason) => {
                cache.mark_consumed(partition, offset, mark);
                drop(cache);
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %self.topic, partition, offset, "skipping record: {reason}");
            }
        }
        true
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, partitions: Vec<PartitionReport>, elapsed: Duration) -> ReplayReport {
        ReplayReport {
            topic: self.topic.clone(),
            partitions,
            records: self.counters.records.load(Ordering::Relaxed),
            tombstones: self.counters.tombstones.load(Ordering::Relaxed),
            skipped: self.counters.skipped.load(Ordering::Relaxed),
            misplaced: self.counters.misplaced.load(Ordering::Relaxed),
            live: self.read_cache().len(),
            elapsed,
            state_file: None,
            restored: 0,
            rebuilt: Vec::new(),
        }
    }
}

fn index_of(partitions: &[PartitionReport], partition: i32) -> Option<usize> {
    // Partitions are listed 0..n in order; fall back to a search if not.
    match partitions.get(partition as usize) {
        Some(p) if p.partition == partition => Some(partition as usize),
        _ => partitions.iter().position(|p| p.partition == partition),
    }
}
