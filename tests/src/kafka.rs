//! Raw Kafka access for the tests: produce records the store would never
//! write, and read the topic exactly as it is, bypassing the store.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use wf_host::model::{Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::WorkflowStore;
use wf_store_kafka::{KafkaConfig, KafkaStore};

/// One record as it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// A raw record to produce: key (None: no key) and value (None: tombstone).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Produces one raw record (any key, any value, `None` for none) to
/// `topic`, placed as a Java or Go writer on a murmur2 partitioner places it
/// (as wf does).
pub async fn produce_raw(brokers: &str, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) {
    produce(brokers, topic, None, key, value).await;
}

/// [`produce_raw`] into `partition`, wherever murmur2 would place the key:
/// a writer that does not place ids as wf does.
pub async fn produce_raw_to(
    brokers: &str,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    produce(brokers, topic, Some(partition), key, value).await;
}

async fn produce(
    brokers: &str,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        // Room for the oversized records the hostile-record tests write.
        .set("message.max.bytes", "16000000")
        .create()
        .expect("raw producer");
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Timeout::After(Duration::from_secs(10)))
        .await
        .expect("raw produce acknowledged");
}

/// Every live state of `store`, by id.
pub fn snapshot(store: &KafkaStore) -> BTreeMap<String, WorkflowState> {
    let mut states = BTreeMap::new();
    store.for_each_state(|s| {
        states.insert(s.workflow_id.clone(), s.clone());
    });
    states
}

/// Every record of `topic`, read from the beginning to the current end of each partition.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<RawRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "wf-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("raw consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
            remaining += 1;
        }
    }
    let mut records = Vec::new();
    if remaining == 0 {
        return records;
    }
    consumer.assign(&assignment).expect("assign");
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    while remaining > 0 {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                // Skip a range delivered twice.
                if last.get(&m.partition()).is_some_and(|&o| m.offset() <= o) {
                    continue;
                }
                last.insert(m.partition(), m.offset());
                records.push(RawRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                });
            }
            Some(Err(KafkaError::PartitionEOF(_))) => remaining -= 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => panic!("reading {topic}: no record or EOF within 10 s"),
        }
    }
    records
}

/// The last record per key in the log: key → value (None: tombstone).
pub fn last_per_key(records: &[RawRecord]) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut sorted: Vec<&RawRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut last = BTreeMap::new();
    for record in sorted {
        let key = String::from_utf8(record.key.clone().expect("key")).expect("utf-8 key");
        last.insert(key, record.value.clone());
    }
    last
}

/// A small state; `run` tells versions apart.
pub fn state(id: &str, run: &str, status: WorkflowStatus) -> WorkflowState {
    WorkflowState {
        workflow_id: id.into(),
        run_id: run.into(),
        status,
        input: Some(format!(r#"{{"id":"{id}","run":"{run}"}}"#)),
        result: None,
        error: String::new(),
        history: Vec::new(),
        created_at: Timestamp {
            seconds: 1_700_000_000,
            nanoseconds: 0,
        },
        updated_at: Timestamp {
            seconds: 1_700_000_001,
            nanoseconds: 5,
        },
    }
}

/// Waits until `check` holds, polling every 20 ms for up to 20 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real broker's address from `WF_KAFKA_BROKERS` (`.ci/run` starts tansu
/// and sets it); without it `None`, after printing that the test is skipped,
/// unless `WF_E2E_REQUIRED` says a skip is a failure.
pub fn real_broker() -> Option<String> {
    match std::env::var("WF_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => Some(brokers),
        _ if std::env::var_os("WF_E2E_REQUIRED").is_some() => {
            panic!("WF_E2E_REQUIRED is set but WF_KAFKA_BROKERS is not: no real broker to test")
        }
        _ => {
            eprintln!("skipped: WF_KAFKA_BROKERS unset");
            None
        }
    }
}

/// A topic name no other test (or earlier run on the same broker) uses.
pub fn fresh_topic(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("wf-e2e-{name}-{}-{nanos}", std::process::id())
}

/// Whether the broker at `brokers` keeps the metadata of committed offsets
/// (Kafka and librdkafka's mock cluster do; some Kafka-protocol brokers
/// drop it), probed by committing to `topic` in a group of its own.
pub fn keeps_commit_metadata(brokers: &str, topic: &str) -> bool {
    let group = fresh_topic("metadata-probe");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("probe consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    list.find_partition(topic, 0).unwrap().set_metadata("probe");
    consumer
        .commit(&list, rdkafka::consumer::CommitMode::Sync)
        .expect("commit an offset with metadata");
    let mut asked = TopicPartitionList::new();
    asked.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(asked, Duration::from_secs(10))
        .expect("read committed offsets");
    committed
        .find_partition(topic, 0)
        .is_some_and(|element| element.metadata() == "probe")
}

/// `seconds` before now.
fn ago(seconds: i64) -> Timestamp {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Timestamp {
        seconds: now - seconds,
        nanoseconds: 0,
    }
}

/// Retention on `topic` of `brokers`: a store with a one-hour period
/// deletes exactly the finished workflows last updated more than an hour
/// ago (the log and a fresh replay agree), and nothing else.
pub async fn check_retention(brokers: &str, topic: &str) {
    let store = Arc::new(
        KafkaStore::open(
            KafkaConfig::new(brokers)
                .topic(topic)
                .retention(Duration::from_secs(3600)),
        )
        .await
        .unwrap(),
    );
    let mut expired = BTreeSet::new();
    let mut kept = BTreeSet::new();
    let save = async |id: String, status, updated_at| {
        let mut s = state(&id, "r", status);
        s.updated_at = updated_at;
        store.save(s).await.unwrap();
        id
    };
    for i in 0..20 {
        for (status, name) in [
            (WorkflowStatus::Completed, "completed"),
            (WorkflowStatus::Failed, "failed"),
            (WorkflowStatus::Canceled, "canceled"),
        ] {
            // Two hours old, and just past the hour.
            expired.insert(save(format!("old-{name}-{i}"), status, ago(7_200)).await);
            expired.insert(save(format!("edge-{name}-{i}"), status, ago(3_660)).await);
            // Well inside the period.
            kept.insert(save(format!("new-{name}-{i}"), status, ago(600)).await);
        }
        // Running, however old; and finished with no known time.
        kept.insert(
            save(
                format!("old-running-{i}"),
                WorkflowStatus::Running,
                ago(86_400),
            )
            .await,
        );
        kept.insert(
            save(
                format!("zero-completed-{i}"),
                WorkflowStatus::Completed,
                Timestamp::GO_ZERO,
            )
            .await,
        );
    }
    // Saved again since it expired: kept.
    let revived = "old-completed-0".to_owned();
    expired.remove(&revived);
    save(revived.clone(), WorkflowStatus::Running, ago(0)).await;
    kept.insert(revived);

    assert_eq!(
        store
            .expired_ids(SystemTime::now())
            .into_iter()
            .collect::<BTreeSet<_>>(),
        expired
    );
    assert!(store.start_retention());
    eventually("the expired workflows are deleted", async || {
        snapshot(&store).len() == kept.len()
    })
    .await;
    let left: BTreeSet<String> = snapshot(&store).into_keys().collect();
    assert_eq!(left, kept);

    // The log agrees: a tombstone is the last record of exactly the expired ids.
    let log = last_per_key(&read_topic(brokers, topic));
    let tombstoned: BTreeSet<String> = log
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(tombstoned, expired);
    // And another host replaying the topic sees the same.
    let other = KafkaStore::open(KafkaConfig::new(brokers).topic(topic))
        .await
        .unwrap();
    assert_eq!(snapshot(&other).into_keys().collect::<BTreeSet<_>>(), kept);
    other.close().await.unwrap();
    store.close().await.unwrap();
}
