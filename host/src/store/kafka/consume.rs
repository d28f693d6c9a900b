//! The consumer thread: replays every partition from the beginning to the
//! high watermarks taken at start, then keeps tailing so that other hosts'
//! writes reach the cache.
//!
//! One OS thread polls a `BaseConsumer`: replay is the hot path at start-up,
//! and a blocking poll loop reads and decodes faster than an async stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio::sync::oneshot;

use super::cache::{Cache, Record, decode_record};
use super::context::LogContext;

/// What a replay read from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    /// The partition.
    pub partition: i32,
    /// Its low watermark at start (the first offset still in the log).
    pub low: i64,
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
    /// Live workflow states after replay.
    pub live: usize,
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
}

/// The consumer thread's shared parts.
pub(crate) struct Consumption {
    pub topic: String,
    pub consumer: Arc<BaseConsumer<LogContext>>,
    pub cache: Arc<RwLock<Cache>>,
    pub counters: Arc<Counters>,
    pub stop: Arc<AtomicBool>,
}

impl Consumption {
    /// Runs on the calling thread until `stop` is set: replays to `targets`
    /// (partition, low, high), sends the report on `ready`, then tails.
    pub fn run(
        self,
        targets: Vec<(i32, i64, i64)>,
        observer: Option<ProgressObserver>,
        ready: oneshot::Sender<ReplayReport>,
    ) {
        let started = Instant::now();
        let mut partitions: Vec<PartitionReport> = targets
            .iter()
            .map(|&(partition, low, high)| PartitionReport {
                partition,
                low,
                high,
                records: 0,
            })
            .collect();
        // Replay is done for a partition once it reaches the high watermark
        // taken at start, or reports EOF (compaction may have removed the
        // records just below the watermark).
        let mut pending: Vec<bool> = partitions.iter().map(|p| p.high > p.low).collect();
        let mut next_offset: Vec<i64> = partitions.iter().map(|p| p.low).collect();
        let total: u64 = partitions
            .iter()
            .map(|p| (p.high - p.low).max(0) as u64)
            .sum();
        let mut ready = Some(ready);
        let mut last_report = Instant::now();
        let mut last_error: Option<(String, Instant)> = None;

        while !self.stop.load(Ordering::Acquire) {
            let replaying = ready.is_some();
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    if self.apply(partition, offset, message.key(), message.payload())
                        && replaying
                        && let Some(index) = index_of(&partitions, partition)
                    {
                        partitions[index].records += 1;
                        next_offset[index] = offset + 1;
                        if offset + 1 >= partitions[index].high {
                            pending[index] = false;
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(index) = index_of(&partitions, partition) {
                        pending[index] = false;
                    }
                }
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
                let report = self.report(partitions.clone(), started.elapsed());
                tracing::info!(
                    topic = %report.topic,
                    records = report.records,
                    live = report.live,
                    skipped = report.skipped,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "replay done; tailing"
                );
                if let Some(ready) = ready.take() {
                    // The opener may have given up (timeout); keep tailing regardless.
                    let _ = ready.send(report);
                }
            } else if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let records = self.counters.records.load(Ordering::Relaxed);
                let done: u64 = partitions
                    .iter()
                    .zip(&next_offset)
                    .map(|(p, next)| (next.min(&p.high) - p.low).max(0) as u64)
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

    /// Applies one record; false when it was a duplicate delivery.
    fn apply(&self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        // This host's own writes come back through the tail; when the ack got
        // here first the record is already in the cache, and decoding it again
        // would double the CPU cost of every save.
        let own = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| self.read_cache().holds(k, partition, offset));
        let decoded = match own {
            Some(key) => Ok(Record {
                key: key.to_owned(),
                state: None,
            }),
            // Decode outside the lock: readers are never blocked on JSON parsing.
            None => decode_record(key, value),
        };
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
                cache.apply_consumed(partition, offset, record);
            }
            return true;
        }
        match decoded {
            Ok(record) => {
                if record.state.is_none() {
                    self.counters.tombstones.fetch_add(1, Ordering::Relaxed);
                }
                cache.apply_consumed(partition, offset, record);
            }
            Err(reason) => {
                cache.mark_consumed(partition, offset);
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
            live: self.read_cache().len(),
            elapsed,
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
