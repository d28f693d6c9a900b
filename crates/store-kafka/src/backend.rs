//! The Kafka backend as a configuration registry sees it: the `[kafka]`
//! table, its environment variables, and the mock cluster a program gets
//! when no broker is configured.

use std::sync::Arc;

use anyhow::Context as _;
use wf_host::config::{Backends, MakeStore, OpenProgress, OpenReport};
use wf_host::store::{StoreLimits, WorkflowStore};

use crate::dev::{DevClusterThread, MOCK_CLUSTER_BOUNDS};
use crate::{KafkaConfig, KafkaStore, ReplayProgress};

/// Builds a [`KafkaStore`] from the `[kafka]` table (`store = "kafka"`).
///
/// Environment: `WF_KAFKA_BROKERS` (brokers), `WF_KAFKA_TOPIC` (topic) and
/// `WF_GROUP` (group_id) override the file. Without brokers it starts
/// librdkafka's in-process mock cluster for the store (and says so): a
/// program works out of the box and keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaBackend;

impl MakeStore for KafkaBackend {
    const NAME: &'static str = "kafka";
    const ENV: &'static [(&'static str, &'static str)] = &[
        ("WF_KAFKA_BROKERS", "brokers"),
        ("WF_KAFKA_TOPIC", "topic"),
        ("WF_GROUP", "group_id"),
    ];
    type Config = KafkaConfig;

    async fn make_store(
        &self,
        mut config: KafkaConfig,
        limits: StoreLimits,
        report: &OpenReport,
    ) -> anyhow::Result<Arc<dyn WorkflowStore>> {
        config.limits = limits;
        let dev_cluster = if config.brokers.trim().is_empty() {
            let cluster = DevClusterThread::start(&config.topic, config.partitions)?;
            config.brokers = cluster.bootstrap_servers().to_owned();
            report.notice(&format!(
                "no brokers configured (brokers in [kafka], WF_KAFKA_BROKERS or --brokers); \
                 started librdkafka's in-process mock Kafka cluster at {} with topic {} \
                 ({} partitions); {MOCK_CLUSTER_BOUNDS}.",
                config.brokers, config.topic, config.partitions
            ));
            // A mock cluster's log dies with the process: nothing to restart from.
            config.state_dir = None;
            Some(cluster)
        } else {
            None
        };
        let observer = report.progress().map(|progress| {
            let what = format!("replaying {}", config.topic);
            Box::new(move |p: &ReplayProgress| {
                progress(&OpenProgress::new(
                    what.clone(),
                    p.records,
                    p.records + p.remaining,
                ));
            }) as crate::ProgressObserver
        });
        let mut store = KafkaStore::open_observed(config, observer).await?;
        if let Some(cluster) = dev_cluster {
            store = store.keep_dev_cluster(cluster);
        }
        let replay = store.replay_report();
        if replay.misplaced > 0 {
            report.notice(&format!(
                "warning: {} records of topic {} are in a partition other than the one murmur2 \
                 places their id in (a writer that does not place ids as wf does: a Go writer \
                 needs kafka-go's Murmur2Balancer); they are not read",
                replay.misplaced, replay.topic
            ));
        }
        if replay.skipped > replay.misplaced {
            report.notice(&format!(
                "warning: skipped {} records of topic {} that are not workflow states \
                 (RUST_LOG=warn lists their partitions and offsets)",
                replay.skipped - replay.misplaced,
                replay.topic
            ));
        }
        Ok(Arc::new(store))
    }
}

/// The backends of a program that keeps its states on Kafka: `kafka`, the
/// default, and `memory`.
///
/// ```
/// use wf_host::config::{OpenReport, Settings};
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// let backends = wf_store_kafka::backends();
/// // No brokers configured: the store runs on a mock cluster of its own.
/// let settings = Settings::parse("[kafka]\ntopic = \"orders\"\npartitions = 2")?;
/// let store = backends.open(&settings, &OpenReport::default()).await?;
/// assert!(store.describe().starts_with("kafka topic orders"));
/// store.close().await?;
/// # Ok(()) }
/// ```
pub fn backends() -> Backends {
    Backends::new().with_default(KafkaBackend)
}

/// A [`KafkaStore`] that `store` is, for the Kafka-only parts of a program
/// (its replay report, say).
pub fn as_kafka(store: &Arc<dyn WorkflowStore>) -> anyhow::Result<Arc<KafkaStore>> {
    let any: Arc<dyn std::any::Any + Send + Sync> = store.clone();
    any.downcast::<KafkaStore>()
        .ok()
        .with_context(|| format!("the store is {}, not a Kafka topic", store.describe()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wf_host::config::Settings;

    use super::*;

    #[test]
    fn an_empty_file_is_kafka_with_defaults() {
        let settings = Settings::parse("").unwrap();
        assert_eq!(backends().selected(&settings).unwrap(), "kafka");
        let config: KafkaConfig = settings.section("kafka").unwrap();
        assert_eq!(config.topic, "beluga-workflows");
        assert_eq!(config.brokers, "");
        assert_eq!(settings.limits().unwrap(), StoreLimits::default());
    }

    #[test]
    fn every_setting_is_read_and_mistakes_are_named() {
        let settings = Settings::parse(
            r#"
            store = "kafka"
            max_value_bytes = 2048
            [kafka]
            brokers = "b:9092"
            topic = "t"
            partitions = 3
            replication = 2
            create_topic = false
            accept_uncompacted = true
            produce_timeout_secs = 1.5
            open_timeout_secs = 4
            session_timeout_secs = 7
            group_id = "g"
            member_name = "http://h:1"
            state_dir = "/var/lib/wf"
            retention = "30d"
            retention_rate = 50
            [kafka.retention_by_module]
            "orders.wasm" = "12h"
            [kafka.properties]
            "client.id" = "wf-1"
        "#,
        )
        .unwrap();
        backends().check(&settings).unwrap();
        let c: KafkaConfig = settings.section("kafka").unwrap();
        assert_eq!(
            (
                c.brokers.as_str(),
                c.topic.as_str(),
                c.partitions,
                c.replication
            ),
            ("b:9092", "t", 3, 2)
        );
        assert!(!c.create_topic && c.accept_uncompacted);
        assert_eq!(c.produce_timeout, Duration::from_millis(1500));
        assert_eq!(c.open_timeout, Duration::from_secs(4));
        assert_eq!(c.session_timeout, Duration::from_secs(7));
        assert_eq!(
            (c.group_id.as_deref(), c.member_name.as_deref()),
            (Some("g"), Some("http://h:1"))
        );
        assert_eq!(settings.limits().unwrap().max_value_bytes, 2048);
        assert_eq!(c.properties["client.id"], "wf-1");
        assert_eq!(
            c.state_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/wf"))
        );
        assert_eq!(c.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(c.retention_rate, 50);
        assert_eq!(
            c.retention_by_module["orders.wasm"],
            Duration::from_secs(12 * 3_600)
        );

        let typo = Settings::parse("[kafka]\nbroker = \"x\"").unwrap();
        let e = backends().check(&typo).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `broker`"), "{e:#}");
        let bad = Settings::parse("[kafka]\nproduce_timeout_secs = -1").unwrap();
        let e = backends().check(&bad).unwrap_err();
        assert!(
            format!("{e:#}").contains("produce_timeout_secs must be a positive number of seconds"),
            "{e:#}"
        );
        for (text, says) in [
            ("[kafka]\nretention = \"30\"", "has no unit"),
            ("[kafka]\nretention = \"0d\"", "more than 0"),
            (
                "[kafka.retention_by_module]\n\"a.wasm\" = \"7w\"",
                "module \"a.wasm\": retention \"7w\" has unit \"w\"",
            ),
        ] {
            let bad = Settings::parse(text).unwrap();
            let e = backends().check(&bad).unwrap_err();
            assert!(format!("{e:#}").contains(says), "{text}: {e:#}");
        }
        let memory = Settings::parse("store = \"memory\"").unwrap();
        assert_eq!(backends().selected(&memory).unwrap(), "memory");
    }
}
