//! Routes librdkafka's logs and client errors to `tracing` (target
//! `wf::kafka`), without the noise of expected events.

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The client context of every rdkafka client the store creates.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogContext;

impl ClientContext for LogContext {
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
