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
pub struct HighWatermarks(Mutex<BTreeMap<i32, i64>>);

impl HighWatermarks {
    /// The high watermark of `partition`, once statistics reported one.
    pub fn of(&self, partition: i32) -> Option<i64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .copied()
    }
}

impl ClientContext for LogContext {
    fn stats(&self, statistics: Statistics) {
        let Some(highs) = &self.highs else { return };
        let mut highs = highs.0.lock().unwrap_or_else(|e| e.into_inner());
        for topic in statistics.topics.values() {
            for partition in topic.partitions.values() {
                // Negative: not known (yet); -1 is librdkafka's internal partition.
                if partition.partition >= 0 && partition.hi_offset >= 0 {
                    highs.insert(partition.partition, partition.hi_offset);
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
