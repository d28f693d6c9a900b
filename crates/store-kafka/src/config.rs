//! Settings of the Kafka backend and the librdkafka client configurations built from them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer};
use wf_host::store::StoreLimits;

/// The topic the Go provider uses by default, so that both meet on one topic
/// out of the box.
pub const DEFAULT_TOPIC: &str = "beluga-workflows";

/// Properties wf sets itself; a pass-through property may not override them,
/// because the store's guarantees depend on them.
const FIXED_PRODUCER_PROPERTIES: [(&str, &str); 3] = [
    // A save is acknowledged once, in order, and only when every in-sync replica has it.
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // The Java client's placement: one id lands on one partition whoever writes it.
    ("partitioner", "murmur2_random"),
];

/// Properties wf sets for its clients from its own settings or for its
/// guarantees, each with librdkafka's other names for it: a pass-through
/// property may set none of them, in any spelling (two names for one
/// property would be applied in no set order).
const OWNED_PROPERTIES: &[(&[&str], &str)] = &[
    (
        &["bootstrap.servers", "metadata.broker.list"],
        "give the brokers with --brokers or `brokers`",
    ),
    (
        &["enable.idempotence"],
        "wf sets it for acknowledged, ordered writes",
    ),
    (
        &["acks", "request.required.acks"],
        "wf sets it for acknowledged, ordered writes",
    ),
    (
        &["partitioner"],
        "wf sets it so that one id lands on one partition whoever writes it",
    ),
    (
        &["message.timeout.ms", "delivery.timeout.ms"],
        "give it with --produce-timeout or `produce_timeout_secs`",
    ),
    (&["group.id"], "give it with --group or `group_id`"),
    (
        &["session.timeout.ms"],
        "give it with --session-timeout or `session_timeout_secs`",
    ),
    (
        &[
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "enable.partition.eof",
            "auto.offset.reset",
            "allow.auto.create.topics",
        ],
        "wf sets it for how it reads the topic",
    ),
];

/// Properties wf sets unless given: each may be given only by its first
/// name, so that wf sees it was.
const TUNED_PROPERTIES: &[&[&str]] = &[
    &["linger.ms", "queue.buffering.max.ms"],
    &["fetch.message.max.bytes", "max.partition.fetch.bytes"],
    &["message.max.bytes"],
    &["fetch.wait.max.ms"],
    &["fetch.min.bytes"],
];

/// The largest record librdkafka sends or fetches (`message.max.bytes`'s
/// ceiling).
const MAX_RECORD_BYTES: usize = 1_000_000_000;

/// What a record adds to its value: the longest key and the batch's framing.
const RECORD_OVERHEAD_BYTES: usize = wf_host::store::validate::MAX_ID_BYTES + 64 * 1024;

/// How to reach the broker and which topic to keep workflow states in.
///
/// In code:
///
/// ```
/// use std::time::Duration;
/// use wf_store_kafka::KafkaConfig;
///
/// let config = KafkaConfig::new("127.0.0.1:9092")
///     .topic("orders-workflows")
///     .produce_timeout(Duration::from_secs(5))
///     .property("security.protocol", "sasl_ssl");
/// assert_eq!(config.topic, "orders-workflows");
/// ```
///
/// Or from the `[kafka]` table of a configuration (keys as the fields, the
/// timeouts in seconds as `produce_timeout_secs`, `open_timeout_secs` and
/// `session_timeout_secs`; [`KafkaConfig::limits`] come from the
/// document's top level):
///
/// ```
/// use wf_host::config::Settings;
/// use wf_store_kafka::KafkaConfig;
///
/// let settings = Settings::parse(r#"
///     [kafka]
///     brokers = "10.0.0.1:9092,10.0.0.2:9092"
///     topic = "orders-workflows"
///     produce_timeout_secs = 5
///     [kafka.properties]
///     "sasl.mechanisms" = "SCRAM-SHA-512"
/// "#)?;
/// let kafka: KafkaConfig = settings.section("kafka")?;
/// assert_eq!(kafka.produce_timeout.as_secs(), 5);
/// assert_eq!(kafka.partitions, KafkaConfig::default().partitions);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`host:port,host:port`).
    pub brokers: String,
    /// The compacted topic holding the states.
    pub topic: String,
    /// Partitions of the topic when wf creates it.
    pub partitions: i32,
    /// Replication factor of the topic when wf creates it; `-1` is the broker's default.
    pub replication: i32,
    /// Whether to create the topic when it is missing.
    pub create_topic: bool,
    /// Serve a topic whose `cleanup.policy` is not `compact` (with a warning)
    /// instead of refusing it. Without compaction the topic grows forever and
    /// every start replays all of it.
    pub accept_uncompacted: bool,
    /// Value-size and page-size bounds (a configuration's top-level bounds).
    #[serde(skip)]
    pub limits: StoreLimits,
    /// How long a save or delete may wait for the broker's acknowledgement
    /// before failing (librdkafka's `message.timeout.ms`).
    #[serde(
        rename = "produce_timeout_secs",
        deserialize_with = "produce_timeout_secs"
    )]
    pub produce_timeout: Duration,
    /// How long opening may wait for the broker's metadata and watermarks.
    #[serde(rename = "open_timeout_secs", deserialize_with = "open_timeout_secs")]
    pub open_timeout: Duration,
    /// How long `close` waits for pending writes to be acknowledged.
    #[serde(skip)]
    pub close_timeout: Duration,
    /// librdkafka properties passed to every client (security settings,
    /// tuning). Cannot set what wf sets from its own settings or for its
    /// guarantees (brokers, acks, idempotence, the partitioner, timeouts,
    /// the group's settings), by any of its names. `Debug` shows the values
    /// of secrets (passwords, keys) as `<redacted>`.
    pub properties: BTreeMap<String, String>,
    /// The consumer group of the hosts sharing this topic. With a group,
    /// the host owns only the workflows of the partitions the group assigns
    /// it (see [`Ownership`](crate::store::Ownership)); without one, it owns all.
    pub group_id: Option<String>,
    /// The name this host announces to the group, and that other hosts name
    /// when they refuse a workflow it owns: its address, say
    /// (`http://10.0.0.7:8080`). Default: `$HOSTNAME-PID`.
    pub member_name: Option<String>,
    /// How long the group waits for a host that stopped heartbeating (a
    /// crashed host) before handing its partitions to others. A host that
    /// shuts down leaves at once.
    #[serde(
        rename = "session_timeout_secs",
        deserialize_with = "session_timeout_secs"
    )]
    pub session_timeout: Duration,
    /// Where to keep the local state: the cache on disk, with a checkpoint
    /// per partition, so that a restart reads only the records written
    /// since (see the crate's docs). `None` (the default): the cache is in
    /// memory and every open replays the whole topic; so does an empty path.
    pub state_dir: Option<std::path::PathBuf>,
    /// How long finished workflows (completed, failed, canceled) are kept
    /// after their last update: `retention = "30d"` (units d, h, m, s).
    /// `None` (the default, as the Go provider): kept until deleted. A host
    /// enforces it once [`KafkaStore::start_retention`](crate::KafkaStore::start_retention)
    /// is called (`wfhost serve` does), for the partitions it owns.
    #[serde(deserialize_with = "retention_period")]
    pub retention: Option<Duration>,
    /// Retention periods of the runs of given modules, by module name
    /// (`wfhost`: the file name): `[kafka.retention_by_module]`,
    /// `"orders.wasm" = "7d"`. A run started by a module listed here uses
    /// its period instead of [`KafkaConfig::retention`]; other states
    /// (records guests save, runs of other modules) use that one.
    #[serde(deserialize_with = "retention_periods")]
    pub retention_by_module: BTreeMap<String, Duration>,
    /// At most this many retention deletes a second (default 1000).
    pub retention_rate: u32,
    /// In a group: keep and tail only the partitions the group assigns this
    /// host, reading the others from their owners through the
    /// [`OwnerLink`](wf_host::store::OwnerLink) the host is linked with
    /// (`wfhost` links every host over HTTP). Each host then decodes and
    /// keeps about 1/n of the topic. Off by default: every host keeps every
    /// partition, and can answer every read itself. Needs a broker that
    /// keeps offset-commit metadata, where the owners announce their names.
    pub owned_partitions_only: bool,
}

fn retention_periods<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Duration>, D::Error> {
    BTreeMap::<String, String>::deserialize(deserializer)?
        .into_iter()
        .map(|(module, text)| {
            crate::retention::parse_period(&text)
                .map(|period| (module.clone(), period))
                .map_err(|e| serde::de::Error::custom(format!("module {module:?}: {e}")))
        })
        .collect()
}

fn retention_period<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::retention::parse_period(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Configurations end up in logs and error reports: no secrets.
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_property(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("create_topic", &self.create_topic)
            .field("accept_uncompacted", &self.accept_uncompacted)
            .field("limits", &self.limits)
            .field("produce_timeout", &self.produce_timeout)
            .field("open_timeout", &self.open_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("properties", &properties)
            .field("group_id", &self.group_id)
            .field("member_name", &self.member_name)
            .field("session_timeout", &self.session_timeout)
            .field("state_dir", &self.state_dir)
            .field("retention", &self.retention)
            .field("retention_by_module", &self.retention_by_module)
            .field("retention_rate", &self.retention_rate)
            .field("owned_partitions_only", &self.owned_partitions_only)
            .finish()
    }
}

/// Whether a librdkafka property holds a secret: a password, a private
/// key, a client secret or an OAuth configuration.
fn is_secret_property(key: &str) -> bool {
    [
        "password",
        "secret",
        "key.pem",
        "oauthbearer.config",
        "ssl_key",
        "jaas",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// Deserializers of the `*_secs` keys: a positive number of seconds, the
/// key named in the error.
macro_rules! seconds_key {
    ($($key:ident),+) => {$(
        fn $key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
            let secs = f64::deserialize(deserializer)?;
            wf_host::config::seconds(stringify!($key), secs).map_err(serde::de::Error::custom)
        }
    )+};
}
seconds_key!(
    produce_timeout_secs,
    open_timeout_secs,
    session_timeout_secs
);

impl Default for KafkaConfig {
    /// No brokers (see [`KafkaBackend`](crate::KafkaBackend): a program
    /// configured without any starts a mock cluster), topic
    /// [`DEFAULT_TOPIC`], 12 partitions, the broker's replication factor,
    /// 30 s produce and open timeouts, no group.
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topic: DEFAULT_TOPIC.to_string(),
            partitions: 12,
            replication: -1,
            create_topic: true,
            accept_uncompacted: false,
            limits: StoreLimits::default(),
            produce_timeout: Duration::from_secs(30),
            open_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(10),
            properties: BTreeMap::new(),
            group_id: None,
            member_name: None,
            session_timeout: Duration::from_secs(10),
            state_dir: None,
            retention: None,
            retention_by_module: BTreeMap::new(),
            retention_rate: 1000,
            owned_partitions_only: false,
        }
    }
}

impl KafkaConfig {
    /// The [defaults](KafkaConfig::default) for the given bootstrap servers.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            ..Self::default()
        }
    }

    /// Joins consumer group `group_id` (see [`KafkaConfig::group_id`]).
    pub fn group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Deletes finished workflows `period` after their last update (see
    /// [`KafkaConfig::retention`]).
    pub fn retention(mut self, period: Duration) -> Self {
        self.retention = Some(period);
        self
    }

    /// Deletes the finished runs of module `name` `period` after their last
    /// update (see [`KafkaConfig::retention_by_module`]).
    pub fn module_retention(mut self, name: impl Into<String>, period: Duration) -> Self {
        self.retention_by_module.insert(name.into(), period);
        self
    }

    /// Keeps only the partitions this host owns in its group (see
    /// [`KafkaConfig::owned_partitions_only`]).
    pub fn owned_partitions_only(mut self) -> Self {
        self.owned_partitions_only = true;
        self
    }

    /// Whether the store keeps only the partitions its host owns.
    pub(crate) fn keeps_owned_only(&self) -> bool {
        self.owned_partitions_only && self.group_id.is_some()
    }

    /// Keeps the cache on disk under `dir`, with checkpoints.
    pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Sets the name this host announces to its group.
    pub fn member_name(mut self, name: impl Into<String>) -> Self {
        self.member_name = Some(name.into());
        self
    }

    /// The name this host announces to its group: [`KafkaConfig::member_name`],
    /// or `$HOSTNAME-PID`.
    pub fn announced_name(&self) -> String {
        self.member_name.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "wfhost".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Sets the produce timeout.
    pub fn produce_timeout(mut self, timeout: Duration) -> Self {
        self.produce_timeout = timeout;
        self
    }

    /// Sets the value-size and page-size bounds.
    pub fn limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds a librdkafka property passed to every client.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Checks what librdkafka would not: a usable topic name, timeouts and
    /// properties that do not break the store's guarantees.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("no bootstrap servers given".into());
        }
        if self.topic.is_empty()
            || self.topic.len() > 249
            || !self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!(
                "invalid topic name {:?}: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-'",
                self.topic
            ));
        }
        if self.partitions < 1 {
            return Err(format!(
                "partitions must be at least 1, not {}",
                self.partitions
            ));
        }
        if self.replication == 0 || self.replication < -1 {
            return Err(format!(
                "replication must be at least 1 (or -1 for the broker's default), not {}",
                self.replication
            ));
        }
        for (name, timeout) in [
            ("produce timeout", self.produce_timeout),
            ("open timeout", self.open_timeout),
        ] {
            // Whole milliseconds for librdkafka, where 0 means no timeout.
            if timeout < Duration::from_millis(1)
                || timeout > Duration::from_secs(i32::MAX as u64 / 1000)
            {
                return Err(format!(
                    "{name} must be between 1 ms and 24 days, not {} s",
                    timeout.as_secs_f64()
                ));
            }
        }
        let most = MAX_RECORD_BYTES - RECORD_OVERHEAD_BYTES;
        if self.limits.max_value_bytes > most {
            return Err(format!(
                "max_value_bytes must be at most {most} (Kafka's largest record, less a key and framing), not {}",
                self.limits.max_value_bytes
            ));
        }
        if let Some(group) = &self.group_id
            && (group.is_empty() || group.len() > 255)
        {
            return Err(format!("group id must be 1 to 255 bytes, not {group:?}"));
        }
        if self.owned_partitions_only && self.group_id.is_none() {
            return Err(
                "owned_partitions_only needs a group (group_id): without one a host owns every partition".into(),
            );
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.session_timeout) {
            return Err(format!(
                "session timeout must be between 1 s and 1 h, not {:?}",
                self.session_timeout
            ));
        }
        for (key, value) in &self.properties {
            check_property(key, value)?;
        }
        Ok(())
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The producer's configuration.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        for (key, value) in FIXED_PRODUCER_PROPERTIES {
            config.set(key, value);
        }
        config.set(
            "message.timeout.ms",
            self.produce_timeout.as_millis().to_string(),
        );
        if !self.properties.contains_key("message.max.bytes") {
            // librdkafka's default (1 000 000) is below the default value limit (1 MiB).
            config.set("message.max.bytes", self.max_record_bytes().to_string());
        }
        if !self.properties.contains_key("linger.ms") {
            // Batches concurrent saves into one request without delaying a lone one much.
            config.set("linger.ms", "1");
        }
        config
    }

    /// The largest record batch a save may need: the value limit plus the
    /// longest key and the batch's framing.
    pub(crate) fn max_record_bytes(&self) -> usize {
        self.limits
            .max_value_bytes
            .saturating_add(RECORD_OVERHEAD_BYTES)
            .min(MAX_RECORD_BYTES)
    }

    /// The replay/tail consumer's configuration: assigned partitions, no group, no commits.
    pub(crate) fn consumer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", "wf-replay")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false");
        // The tail fetches a partition only while it has records of another
        // writer to read (this host's own writes are applied at their
        // acknowledgements, and a partition read to its end is not
        // fetched), so a fetch returns as soon as there is a record, and
        // waits at most 10 ms when there is none: the broker answers a
        // connection's requests in order, and the tail's check of the idle
        // partitions' ends and a resumed partition's first fetch would
        // otherwise wait behind a fetch parked for the full wait.
        // Statistics each second carry the partitions' high watermarks:
        // the lag a status page shows, without asking the broker.
        for (key, value) in [
            ("fetch.wait.max.ms", "10"),
            ("fetch.min.bytes", "1"),
            ("statistics.interval.ms", "1000"),
        ] {
            if !self.properties.contains_key(key) {
                config.set(key, value);
            }
        }
        // A partition fetch must hold the largest record this store writes
        // (librdkafka's default, 1 MiB, is below it): librdkafka's mock
        // cluster does not return a record larger than the fetch size, so
        // the tail would stall at a state saved at the value limit.
        if !self.properties.contains_key("fetch.message.max.bytes") {
            config.set(
                "fetch.message.max.bytes",
                self.max_record_bytes().to_string(),
            );
        }
        config
    }

    /// The group member's configuration: subscribes, reads nothing (its
    /// partitions are paused), commits only to announce its ownership.
    pub(crate) fn group_consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.base();
        let session_ms = self.session_timeout.as_millis();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "latest")
            .set("allow.auto.create.topics", "false")
            // Incremental: a partition moves by a revocation in one
            // rebalance and an assignment in the next, so two hosts never
            // own it at once, and partitions that stay are not revoked.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session_ms.to_string())
            // Members learn of a rebalance from a heartbeat's answer: at
            // most a second's wait when a host leaves.
            .set(
                "heartbeat.interval.ms",
                (session_ms / 3).clamp(100, 1000).to_string(),
            );
        config
    }

    /// The admin client's configuration.
    pub(crate) fn admin(&self) -> ClientConfig {
        self.base()
    }
}

/// `Ok` unless `key` names a property wf owns ([`OWNED_PROPERTIES`]), or
/// another name of one it tunes ([`TUNED_PROPERTIES`]).
fn check_property(key: &str, value: &str) -> Result<(), String> {
    // librdkafka's names are lower case; a differently cased one is
    // refused by librdkafka itself, so only exact names matter here.
    for (names, why) in OWNED_PROPERTIES {
        if names.contains(&key) {
            let also = names
                .iter()
                .filter(|n| **n != key)
                .map(|n| format!(" (nor its other name {n})"))
                .collect::<String>();
            return Err(format!(
                "property {key}={value} is not allowed{also}: {why}"
            ));
        }
    }
    for names in TUNED_PROPERTIES {
        if let [first, others @ ..] = names
            && others.contains(&key)
        {
            return Err(format!(
                "property {key}={value}: give it by its first name, {first}={value} (wf sets {first} when it is not given)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(config: KafkaConfig) -> Result<(), String> {
        config.check()
    }

    fn config() -> KafkaConfig {
        KafkaConfig::new("b:9092")
    }

    #[test]
    fn a_property_wf_sets_is_refused_by_every_name() {
        for (key, value, says) in [
            ("acks", "0", "acknowledged"),
            ("request.required.acks", "0", "nor its other name acks"),
            ("metadata.broker.list", "evil:9092", "--brokers"),
            ("bootstrap.servers", "evil:9092", "--brokers"),
            ("delivery.timeout.ms", "0", "--produce-timeout"),
            ("enable.idempotence", "false", "acknowledged"),
            ("group.id", "g", "--group"),
        ] {
            let e = checked(config().property(key, value)).unwrap_err();
            assert!(e.contains(key) && e.contains(says), "{key}: {e}");
        }
        let e = checked(config().property("queue.buffering.max.ms", "5")).unwrap_err();
        assert!(e.contains("linger.ms=5"), "{e}");
        checked(config().property("linger.ms", "5")).unwrap();
        checked(config().property("security.protocol", "sasl_ssl")).unwrap();
    }

    #[test]
    fn timeouts_librdkafka_would_read_as_none_are_refused() {
        let e = checked(config().produce_timeout(Duration::from_micros(100))).unwrap_err();
        assert!(e.contains("between 1 ms"), "{e}");
        checked(config().produce_timeout(Duration::from_millis(1))).unwrap();
    }

    #[test]
    fn a_value_limit_past_kafkas_largest_record_is_refused_without_overflow() {
        let mut config = config();
        config.limits.max_value_bytes = usize::MAX;
        assert_eq!(config.max_record_bytes(), MAX_RECORD_BYTES);
        let e = checked(config).unwrap_err();
        assert!(e.contains("max_value_bytes must be at most"), "{e}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let config = config()
            .property("sasl.password", "hunter2")
            .property("ssl.key.password", "hunter3")
            .property("sasl.username", "alice");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
