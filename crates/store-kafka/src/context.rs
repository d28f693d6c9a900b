//! Routes librdkafka's logs and client errors to `tracing` (target
//! `wf::kafka`), without the noise of expected events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::Statistics;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The client context of every rdkafka client the store creates; the
/// tail's also keeps the high watermarks its statistics report.
#[derive(Debug, Clone, Default)]
pub struct LogContext {
    highs: Option<Arc<HighWatermarks>>,
}

impl LogContext {
    /// A context that keeps the high watermarks of the partitions its
    /// consumer fetches in `highs` (with `statistics.interval.ms` set).
    pub fn keeping(highs: Arc<HighWatermarks>) -> Self {
        Self { highs: Some(highs) }
    }
}

/// The high watermark of each partition a consumer fetches, as of its
/// last statistics: what lag is measured against without asking the
/// broker.
#[derive(Debug, Default)]
pub struct HighWatermarks(Mutex<Highs>);

#[derive(Debug, Default)]
struct Highs {
    /// Per partition, the last high watermark reported while the consumer
    /// fetched it, and when (milliseconds since the Unix epoch).
    of: BTreeMap<i32, (i64, i64)>,
    /// Per partition the consumer is fetching: that high watermark and
    /// when it was reported.
    fetching: BTreeMap<i32, (i64, i64)>,
    /// Per partition the tail does not fetch (idle: read to its end), the
    /// high watermark its last check found and when it asked.
    checked: BTreeMap<i32, (i64, i64)>,
}

/// The newer of two (high watermark, when) reports.
fn newer(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl HighWatermarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Highs> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The high watermark of `partition`, once statistics reported one.
    pub fn of(&self, partition: i32) -> Option<i64> {
        let highs = self.lock();
        newer(
            highs.of.get(&partition).copied(),
            highs.checked.get(&partition).copied(),
        )
        .map(|(high, _)| high)
    }

    /// The high watermark of `partition` and when statistics reported it
    /// (ms since the Unix epoch), while the consumer fetches it: every
    /// record written before then is below that watermark.
    pub(crate) fn fetched(&self, partition: i32) -> Option<(i64, i64)> {
        let highs = self.lock();
        newer(
            highs.fetching.get(&partition).copied(),
            highs.checked.get(&partition).copied(),
        )
    }

    /// The tail found `partition`'s high watermark at `high` when it asked
    /// at `at` (ms since the Unix epoch), without fetching it.
    pub(crate) fn checked(&self, partition: i32, high: i64, at: i64) {
        self.lock().checked.insert(partition, (high, at));
    }

    /// Forgets the last check of `partition` (the tail stops reading it).
    pub(crate) fn forget_checked(&self, partition: i32) {
        self.lock().checked.remove(&partition);
    }

    /// As statistics would: `partition` fetched, its end at `high` at `at`.
    #[cfg(test)]
    pub(crate) fn report(&self, partition: i32, high: i64, at: i64) {
        let mut highs = self.lock();
        highs.of.insert(partition, (high, at));
        highs.fetching.insert(partition, (high, at));
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ClientContext for LogContext {
    fn stats(&self, statistics: Statistics) {
        let Some(highs) = &self.highs else { return };
        let now = now_ms();
        let mut highs = highs.lock();
        for topic in statistics.topics.values() {
            for partition in topic.partitions.values() {
                // Negative: not known (yet); -1 is librdkafka's internal partition.
                if partition.partition >= 0 && partition.hi_offset >= 0 {
                    if partition.desired {
                        // Not desired: not assigned any more, its figure as
                        // old as the last fetch.
                        highs
                            .of
                            .insert(partition.partition, (partition.hi_offset, now));
                    }
                    if partition.desired && partition.fetch_state == "active" {
                        highs
                            .fetching
                            .insert(partition.partition, (partition.hi_offset, now));
                    } else {
                        highs.fetching.remove(&partition.partition);
                    }
                }
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "wf::kafka", "librdkafka {facility}: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "wf::kafka", "librdkafka {facility}: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "wf::kafka", "librdkafka {facility}: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "wf::kafka", "librdkafka {facility}: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // End of partition is how replay knows it is done, not an error
        // (rdkafka reports it here too, as a global error, before poll returns it).
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            return;
        }
        // librdkafka retries by itself; the failing call reports what matters.
        tracing::warn!(target: "wf::kafka", "librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for LogContext {}
