//! Topic administration at open: the topic made sure of (created
//! compacted when missing, refused when not compacted), its partition count
//! and the watermarks replay reads up to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use wf_host::store::StoreError;

use crate::config::KafkaConfig;
use crate::context::LogContext;
use crate::{blocking, open_error};

/// Makes sure the topic exists and is compacted; returns its partition count.
/// Kafka's default `delete.retention.ms`: how long a compacted topic keeps
/// a tombstone at least.
pub(crate) const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Makes sure the topic exists (creating it when allowed and missing) and
/// is compacted; returns its partition count and how long it keeps
/// tombstones (`delete.retention.ms`, Kafka's default when not described).
pub(crate) async fn ensure_topic(
    config: &KafkaConfig,
    consumer: &Arc<BaseConsumer<LogContext>>,
    admin: &AdminClient<LogContext>,
) -> Result<(i32, Duration), StoreError> {
    let topic = &config.topic;
    let deadline = Instant::now() + config.open_timeout;
    let mut created = false;
    loop {
        let count = partition_count(config, consumer).await?;
        if count > 0 {
            let tombstones = if created {
                DEFAULT_TOMBSTONE_RETENTION
            } else {
                check_compaction(config, admin).await?
            };
            return Ok((count, tombstones));
        }
        if !created {
            if !config.create_topic {
                return Err(open_error(format!(
                    "topic {topic} does not exist and topic creation is off"
                )));
            }
            create_topic(config, admin).await?;
            created = true;
        }
        if Instant::now() >= deadline {
            return Err(open_error(format!(
                "topic {topic} was created but its partitions did not appear within {:?}",
                config.open_timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The topic's partition count from the broker's metadata; 0 when it does not exist.
async fn partition_count(
    config: &KafkaConfig,
    consumer: &Arc<BaseConsumer<LogContext>>,
) -> Result<i32, StoreError> {
    let consumer = consumer.clone();
    let topic = config.topic.clone();
    let timeout = config.open_timeout;
    let metadata = blocking(move || consumer.fetch_metadata(Some(&topic), timeout))
        .await?
        .map_err(|e| open_error(format!("cannot read metadata from {}: {e}", config.brokers)))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == config.topic) else {
        return Ok(0);
    };
    match found.error() {
        None => Ok(found.partitions().len() as i32),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(0),
        Some(code) => Err(open_error(format!(
            "topic {}: {}",
            config.topic,
            RDKafkaErrorCode::from(code)
        ))),
    }
}

/// Whether the broker is librdkafka's mock cluster, which names itself in its cluster id.
fn is_mock_cluster(config: &KafkaConfig, admin: &AdminClient<LogContext>) -> bool {
    admin
        .inner()
        .fetch_cluster_id(Timeout::After(config.open_timeout))
        .is_some_and(|id| id.starts_with("mockCluster"))
}

async fn create_topic(
    config: &KafkaConfig,
    admin: &AdminClient<LogContext>,
) -> Result<(), StoreError> {
    if is_mock_cluster(config, admin) {
        // It does not implement CreateTopics: the request would only time out.
        return Err(open_error(format!(
            "topic {} does not exist, and librdkafka's mock cluster cannot create topics \
             through the admin API (`wfhost dev --topic NAME` creates one at start)",
            config.topic
        )));
    }
    let max_message_bytes = config.max_record_bytes().to_string();
    let topic = NewTopic::new(
        &config.topic,
        config.partitions,
        TopicReplication::Fixed(config.replication),
    )
    .set("cleanup.policy", "compact")
    .set("max.message.bytes", &max_message_bytes);
    let options = AdminOptions::new().request_timeout(Some(config.open_timeout));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| open_error(format!("cannot create topic {}: {e}", config.topic)))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(open_error(format!("cannot create topic {name}: {code}")));
            }
        }
    }
    tracing::info!(
        topic = %config.topic,
        partitions = config.partitions,
        replication = config.replication,
        "created compacted topic"
    );
    Ok(())
}

/// Refuses a topic whose `cleanup.policy` lacks `compact`, unless configured
/// to accept it. A broker that cannot describe configs gets a warning.
/// Returns the topic's `delete.retention.ms`, or Kafka's default.
async fn check_compaction(
    config: &KafkaConfig,
    admin: &AdminClient<LogContext>,
) -> Result<Duration, StoreError> {
    let topic = &config.topic;
    // librdkafka's mock cluster does not answer DescribeConfigs: the request
    // would only time out.
    if is_mock_cluster(config, admin) {
        tracing::info!(%topic, "cleanup.policy unchecked: librdkafka's mock cluster does not describe topic configs (nor compact)");
        return Ok(DEFAULT_TOMBSTONE_RETENTION);
    }
    let options =
        AdminOptions::new().request_timeout(Some(config.open_timeout.min(Duration::from_secs(10))));
    let (policy, tombstones) = match admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
    {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(resource)) => (
                resource
                    .get("cleanup.policy")
                    .and_then(|entry| entry.value.clone()),
                resource
                    .get("delete.retention.ms")
                    .and_then(|entry| entry.value.as_deref()?.parse::<u64>().ok())
                    .map_or(DEFAULT_TOMBSTONE_RETENTION, Duration::from_millis),
            ),
            Some(Err(code)) => {
                tracing::warn!(%topic, "cannot check cleanup.policy: {code}");
                return Ok(DEFAULT_TOMBSTONE_RETENTION);
            }
            None => {
                tracing::warn!(%topic, "cannot check cleanup.policy: the broker returned no config");
                return Ok(DEFAULT_TOMBSTONE_RETENTION);
            }
        },
        Err(error) => {
            tracing::warn!(%topic, "cannot check cleanup.policy (the broker does not describe topic configs): {error}");
            return Ok(DEFAULT_TOMBSTONE_RETENTION);
        }
    };
    // A broker that describes the topic but leaves cleanup.policy out (tansu
    // does for topics created without it) applies Kafka's default: delete.
    let policy = policy.unwrap_or_else(|| "delete (not set; Kafka's default)".to_string());
    if policy.split(',').any(|p| p.trim() == "compact") {
        return Ok(tombstones);
    }
    if config.accept_uncompacted {
        tracing::warn!(%topic, %policy, "topic is not compacted: it grows forever and every start replays all of it");
        Ok(tombstones)
    } else {
        Err(StoreError::InvalidArgument(format!(
            "kafka/open: topic {topic} has cleanup.policy={policy}, not compact; \
             refusing it (accept_uncompacted / --accept-uncompacted overrides)"
        )))
    }
}

/// (partition, low, high) watermarks of every partition, read at start.
pub(crate) async fn watermarks(
    config: &KafkaConfig,
    consumer: &Arc<BaseConsumer<LogContext>>,
    partitions: i32,
) -> Result<Vec<(i32, i64, i64)>, StoreError> {
    let consumer = consumer.clone();
    let topic = config.topic.clone();
    let timeout = config.open_timeout;
    blocking(move || {
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(&topic, p, timeout)
                    .map(|(low, high)| (p, low, high))
                    .map_err(|e| open_error(format!("cannot read watermarks of {topic}/{p}: {e}")))
            })
            .collect()
    })
    .await?
}
