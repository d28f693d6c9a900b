//! Building a store from configuration: code, a TOML file, or `wfhost` flags
//! (which override the file).
//!
//! ```
//! use wf_host::config::{ConfigFile, StoreConfig};
//!
//! let file: ConfigFile = r#"
//!     [kafka]
//!     brokers = "10.0.0.1:9092,10.0.0.2:9092"
//!     topic = "orders-workflows"
//!     replication = 3
//!     [kafka.properties]
//!     "security.protocol" = "sasl_ssl"
//!     "sasl.mechanisms" = "SCRAM-SHA-512"
//! "#.parse()?;
//! let StoreConfig::Kafka(kafka) = file.store_config()? else { unreachable!() };
//! assert_eq!(kafka.topic, "orders-workflows");
//! assert_eq!(kafka.properties["sasl.mechanisms"], "SCRAM-SHA-512");
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::store::kafka::{KafkaConfig, KafkaStore, ProgressObserver};
use crate::store::{MemoryStore, StoreLimits, WorkflowStore};

/// Which backend to open, and its settings.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Process memory; nothing survives the process.
    Memory {
        /// Value-size and page-size bounds.
        limits: StoreLimits,
    },
    /// A compacted Kafka topic.
    Kafka(KafkaConfig),
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::Memory {
            limits: StoreLimits::default(),
        }
    }
}

impl StoreConfig {
    /// Opens the configured backend, ready to serve (for Kafka: after the replay).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn WorkflowStore>> {
        self.open_observed(None).await
    }

    /// [`open`](Self::open), reporting Kafka replay progress to `observer`.
    pub async fn open_observed(
        &self,
        observer: Option<ProgressObserver>,
    ) -> anyhow::Result<Arc<dyn WorkflowStore>> {
        Ok(match self {
            Self::Memory { limits } => Arc::new(MemoryStore::with_limits(*limits)),
            Self::Kafka(config) => {
                Arc::new(KafkaStore::open_observed(config.clone(), observer).await?)
            }
        })
    }
}

/// Which backend a config file selects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// [`StoreConfig::Kafka`] (the default).
    #[default]
    Kafka,
    /// [`StoreConfig::Memory`].
    Memory,
}

/// A `wfhost` configuration file (TOML). Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `"kafka"` (default) or `"memory"`.
    #[serde(default)]
    pub store: Backend,
    /// Largest encoded state accepted, in bytes.
    pub max_value_bytes: Option<usize>,
    /// Most history events one state may carry.
    pub max_history_events: Option<usize>,
    /// About how much memory cached states may take, in bytes.
    pub max_cache_bytes: Option<usize>,
    /// The Kafka backend's settings.
    #[serde(default)]
    pub kafka: KafkaSection,
    /// What the modules `wfhost` runs may touch.
    #[serde(default)]
    pub access: AccessSection,
}

/// The `[access]` table of a [`ConfigFile`]: the access policy of the
/// modules `wfhost` runs (see [`AccessPolicy`](crate::AccessPolicy)).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// Workflow ids the module may run and reach through the store start
    /// with one of these; every id when absent or empty.
    #[serde(default)]
    pub id_prefixes: Vec<String>,
}

/// The `[kafka]` table of a [`ConfigFile`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// Bootstrap servers; when absent, `wfhost` starts an in-process mock cluster.
    pub brokers: Option<String>,
    /// The topic (default `beluga-workflows`).
    pub topic: Option<String>,
    /// Partitions of a topic wf creates.
    pub partitions: Option<i32>,
    /// Replication factor of a topic wf creates (-1: the broker's default).
    pub replication: Option<i32>,
    /// Whether to create a missing topic (default true).
    pub create_topic: Option<bool>,
    /// Serve a non-compacted topic with a warning instead of refusing it.
    pub accept_uncompacted: Option<bool>,
    /// Seconds a write may wait for the broker's acknowledgement.
    pub produce_timeout_secs: Option<f64>,
    /// Seconds opening may wait for metadata and watermarks.
    pub open_timeout_secs: Option<f64>,
    /// The consumer group of the hosts sharing the topic (scale-out).
    pub group_id: Option<String>,
    /// The name this host announces to its group (its URL, say).
    pub member_name: Option<String>,
    /// Seconds the group waits for a silent (crashed) host.
    pub session_timeout_secs: Option<f64>,
    /// librdkafka properties for every client (security settings, tuning).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl std::str::FromStr for ConfigFile {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

impl ConfigFile {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        text.parse()
            .with_context(|| format!("parsing config file {}", path.display()))
    }

    /// The limits this file sets, defaults elsewhere.
    pub fn limits(&self) -> StoreLimits {
        let defaults = StoreLimits::default();
        StoreLimits {
            max_value_bytes: self.max_value_bytes.unwrap_or(defaults.max_value_bytes),
            max_history_events: self
                .max_history_events
                .unwrap_or(defaults.max_history_events),
            max_cache_bytes: self.max_cache_bytes.unwrap_or(defaults.max_cache_bytes),
            ..defaults
        }
    }

    /// The Kafka settings this file gives, with `brokers` as found (possibly empty).
    pub fn kafka_config(&self) -> anyhow::Result<KafkaConfig> {
        let k = &self.kafka;
        let mut config =
            KafkaConfig::new(k.brokers.clone().unwrap_or_default()).limits(self.limits());
        if let Some(topic) = &k.topic {
            config.topic = topic.clone();
        }
        if let Some(partitions) = k.partitions {
            config.partitions = partitions;
        }
        if let Some(replication) = k.replication {
            config.replication = replication;
        }
        if let Some(create) = k.create_topic {
            config.create_topic = create;
        }
        if let Some(accept) = k.accept_uncompacted {
            config.accept_uncompacted = accept;
        }
        if let Some(secs) = k.produce_timeout_secs {
            config.produce_timeout = seconds("produce_timeout_secs", secs)?;
        }
        if let Some(secs) = k.open_timeout_secs {
            config.open_timeout = seconds("open_timeout_secs", secs)?;
        }
        if let Some(secs) = k.session_timeout_secs {
            config.session_timeout = seconds("session_timeout_secs", secs)?;
        }
        config.group_id.clone_from(&k.group_id);
        config.member_name.clone_from(&k.member_name);
        config.properties.extend(k.properties.clone());
        Ok(config)
    }

    /// The store this file selects.
    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        Ok(match self.store {
            Backend::Memory => StoreConfig::Memory {
                limits: self.limits(),
            },
            Backend::Kafka => StoreConfig::Kafka(self.kafka_config()?),
        })
    }
}

impl StoreConfig {
    /// The store a process configured like `wfhost` uses: the TOML file
    /// named by `WF_CONFIG` (when set), then `WF_KAFKA_BROKERS` and
    /// `WF_KAFKA_TOPIC` over it. A Kafka config whose brokers are still empty
    /// means "no broker configured": see [`StoreConfig::needs_dev_cluster`].
    pub fn from_env() -> anyhow::Result<Self> {
        let file = match std::env::var_os("WF_CONFIG") {
            Some(path) => ConfigFile::load(Path::new(&path))?,
            None => ConfigFile::default(),
        };
        let mut config = file.store_config()?;
        if let Self::Kafka(kafka) = &mut config {
            if let Ok(brokers) = std::env::var("WF_KAFKA_BROKERS") {
                kafka.brokers = brokers;
            }
            if let Ok(topic) = std::env::var("WF_KAFKA_TOPIC") {
                kafka.topic = topic;
            }
        }
        Ok(config)
    }

    /// Whether this is Kafka with no brokers given, where `wfhost` starts
    /// librdkafka's in-process mock cluster
    /// ([`DevCluster`](crate::store::DevCluster)) instead.
    pub fn needs_dev_cluster(&self) -> bool {
        matches!(self, Self::Kafka(kafka) if kafka.brokers.trim().is_empty())
    }
}

/// A positive, finite number of seconds as a duration.
pub fn seconds(name: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{name} must be a positive number of seconds, got {secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_kafka_with_defaults() {
        let file: ConfigFile = "".parse().unwrap();
        let config = file.kafka_config().unwrap();
        assert_eq!(config.topic, "beluga-workflows");
        assert_eq!(config.brokers, "");
        assert_eq!(config.limits, StoreLimits::default());
    }

    #[test]
    fn every_setting_is_read_and_mistakes_are_named() {
        let file: ConfigFile = r#"
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
            [kafka.properties]
            "client.id" = "wf-1"
        "#
        .parse()
        .unwrap();
        let c = file.kafka_config().unwrap();
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
        assert_eq!(c.limits.max_value_bytes, 2048);
        assert_eq!(c.properties["client.id"], "wf-1");

        let typo = "[kafka]\nbroker = \"x\"".parse::<ConfigFile>().unwrap_err();
        assert!(
            format!("{typo:#}").contains("unknown field `broker`"),
            "{typo:#}"
        );
        let bad = "[kafka]\nproduce_timeout_secs = -1"
            .parse::<ConfigFile>()
            .unwrap();
        assert!(bad.kafka_config().is_err());
        let memory: ConfigFile = "store = \"memory\"".parse().unwrap();
        assert!(matches!(
            memory.store_config().unwrap(),
            StoreConfig::Memory { .. }
        ));
    }
}
