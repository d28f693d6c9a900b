//! The Kafka backend on librdkafka's mock cluster: restart replay, two hosts
//! on one topic, concurrent writers, broker faults, poison records and
//! records carrying this store's writer id that it did not write.
//!
//! Everything goes through rdkafka to a real Kafka-protocol broker in process;
//! nothing here fakes Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use wf_host::model::{self, WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, StoreError, WorkflowStore};
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};

use wf_tests::kafka::{
    KeyValue, RawRecord, eventually, last_per_key, produce_raw, produce_raw_to, read_topic,
    snapshot, state,
};

const TOPIC: &str = "wf-test";

async fn open(cluster: &DevCluster) -> KafkaStore {
    open_with(KafkaConfig::new(cluster.bootstrap_servers()).topic(TOPIC)).await
}

async fn open_with(config: KafkaConfig) -> KafkaStore {
    KafkaStore::open(config).await.expect("open kafka store")
}

/// Saves `state`, retrying every 250 ms for up to 5 s; whether it got through.
async fn save_within_5s(store: &KafkaStore, state: WorkflowState) -> bool {
    for _ in 0..20 {
        if store.save(state.clone()).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Saves `count` running states, ids `{prefix}-000` on, `concurrency` at a
/// time; the results in completion order.
async fn save_many(
    store: &Arc<KafkaStore>,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> Vec<Result<(), StoreError>> {
    let saves = (0..count).map(|i| {
        let store = store.clone();
        let id = format!("{prefix}-{i:03}");
        async move { store.save(state(&id, "1", WorkflowStatus::Running)).await }
    });
    futures::stream::iter(saves)
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// What the log says the states are: the last record per key, decoded.
fn log_states(records: &[RawRecord]) -> BTreeMap<String, WorkflowState> {
    last_per_key(records)
        .into_iter()
        .filter_map(|(key, value)| {
            value.map(|v| {
                (
                    key,
                    model::decode_state(&v).expect("the store wrote a valid record"),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_store_replays_to_the_identical_state() {
    let cluster = DevCluster::start(TOPIC, 8).unwrap();
    let writer = Arc::new(open(&cluster).await);

    // 10 000 acknowledged saves over 2 000 ids (five versions each, in order
    // per id, ids concurrently), then 1 000 deletes.
    let mut expected = BTreeMap::new();
    for version in 0..5 {
        let saves = (0..2000).map(|i| {
            let writer = writer.clone();
            let s = state(
                &format!("wf-{i:05}"),
                &format!("v{version}"),
                WorkflowStatus::Running,
            );
            async move { writer.save(s).await }
        });
        let results: Vec<_> = futures::stream::iter(saves)
            .buffer_unordered(256)
            .collect()
            .await;
        assert!(results.iter().all(Result::is_ok), "every save acknowledged");
    }
    for i in 0..2000 {
        let id = format!("wf-{i:05}");
        expected.insert(id.clone(), state(&id, "v4", WorkflowStatus::Running));
    }
    let deletes = (0..2000).step_by(2).map(|i| {
        let writer = writer.clone();
        async move { writer.delete(&format!("wf-{i:05}")).await }
    });
    let results: Vec<_> = futures::stream::iter(deletes)
        .buffer_unordered(256)
        .collect()
        .await;
    assert!(
        results.iter().all(Result::is_ok),
        "every delete acknowledged"
    );
    for i in (0..2000).step_by(2) {
        expected.remove(&format!("wf-{i:05}"));
    }
    assert_eq!(snapshot(&writer), expected);

    let replayed = open(&cluster).await;
    let report = replayed.replay_report().clone();
    assert_eq!(report.records, 11_000);
    assert_eq!(report.tombstones, 1_000);
    assert_eq!(report.skipped, 0);
    assert_eq!(report.live, 1_000);
    assert!(
        report.partitions.iter().filter(|p| p.records > 0).count() >= 6,
        "ids spread over the partitions: {:?}",
        report.partitions
    );
    assert_eq!(snapshot(&replayed), expected);
    let page = replayed
        .list(&ListFilter::default().limit(1000))
        .await
        .unwrap();
    assert_eq!(page.len(), 1000);
    writer.close().await.unwrap();
    replayed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_topic_see_each_other_through_tailing() {
    let cluster = DevCluster::start(TOPIC, 4).unwrap();
    let a = open(&cluster).await;
    let b = open(&cluster).await;

    a.save(state("from-a", "1", WorkflowStatus::Running))
        .await
        .unwrap();
    b.save(state("from-b", "1", WorkflowStatus::Completed))
        .await
        .unwrap();
    eventually("b sees a's save", async || {
        b.load("from-a").await.unwrap().is_some()
    })
    .await;
    eventually("a sees b's save", async || {
        a.load("from-b").await.unwrap().is_some()
    })
    .await;
    assert_eq!(b.load("from-a").await.unwrap().unwrap().run_id, "1");

    a.save(state("from-a", "2", WorkflowStatus::Completed))
        .await
        .unwrap();
    eventually("b sees a's update", async || {
        b.load("from-a")
            .await
            .unwrap()
            .is_some_and(|s| s.run_id == "2")
    })
    .await;
    b.delete("from-a").await.unwrap();
    eventually("a sees b's delete", async || {
        a.load("from-a").await.unwrap().is_none()
    })
    .await;
    let completed = a
        .list(&ListFilter::default().status(WorkflowStatus::Completed))
        .await
        .unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].workflow_id, "from-b");

    eventually("the tail catches up", async || {
        a.lag().await.unwrap().records == 0
    })
    .await;
    assert_eq!(b.consumed().skipped, 0);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_the_same_ids_leave_the_last_record_in_the_log() {
    let cluster = DevCluster::start(TOPIC, 4).unwrap();
    let writer = Arc::new(open(&cluster).await);
    let ids: Vec<String> = (0..8).map(|i| format!("hot-{i}")).collect();
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let writer = writer.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    for id in &ids {
                        let s = state(id, &format!("t{task}-r{round}"), WorkflowStatus::Running);
                        writer.save(s).await.expect("save");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let in_log = log_states(&read_topic(&cluster.bootstrap_servers(), TOPIC));
    assert_eq!(in_log.len(), 8);
    // The writer's own cache converges on the log (its tail may still be
    // applying records it already has from acks; nothing older may win).
    eventually("the writer's tail catches up", async || {
        writer.lag().await.unwrap().records == 0
    })
    .await;
    assert_eq!(snapshot(&writer), in_log);
    let replayed = open(&cluster).await;
    assert_eq!(snapshot(&replayed), in_log);
    assert_eq!(replayed.replay_report().records, 64 * 10 * 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_fails_within_the_timeout_when_brokers_are_down_and_changes_nothing() {
    let cluster = DevCluster::start(TOPIC, 2).unwrap();
    let timeout = Duration::from_secs(2);
    let store = open_with(
        KafkaConfig::new(cluster.bootstrap_servers())
            .topic(TOPIC)
            .produce_timeout(timeout),
    )
    .await;
    store
        .save(state("kept", "before", WorkflowStatus::Running))
        .await
        .unwrap();

    cluster.mock().broker_down(1).unwrap();
    let started = Instant::now();
    let error = store
        .save(state("kept", "during-outage", WorkflowStatus::Failed))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&error, StoreError::Unavailable(m) if m.starts_with("kafka/save: write: ")),
        "{error:?}"
    );
    // Bounded by the configured timeout (with generous slack for a loaded machine),
    // not librdkafka's 5-minute default.
    assert!(waited < timeout * 10, "save returned after {waited:?}");
    let error = store.delete("kept").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Unavailable(m) if m.starts_with("kafka/delete: write tombstone: ")),
        "{error:?}"
    );
    assert_eq!(store.load("kept").await.unwrap().unwrap().run_id, "before");
    assert!(store.load("new").await.unwrap().is_none());

    cluster.mock().broker_up(1).unwrap();
    assert!(
        save_within_5s(&store, state("kept", "after", WorkflowStatus::Completed)).await,
        "saves succeed again once the broker is back"
    );
    assert_eq!(store.load("kept").await.unwrap().unwrap().run_id, "after");
    store.close().await.unwrap();

    // Failed writes are absent from the log: what was not acknowledged is not there.
    let runs: Vec<String> = read_topic(&cluster.bootstrap_servers(), TOPIC)
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(|v| model::decode_state(v).unwrap().run_id)
        .collect();
    assert!(runs.contains(&"before".to_string()) && runs.contains(&"after".to_string()));
    assert!(!runs.contains(&"during-outage".to_string()), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_produce_errors_neither_duplicate_nor_lose_a_save() {
    let cluster = DevCluster::start(TOPIC, 1).unwrap();
    let store = Arc::new(open(&cluster).await);
    // Every other produce request fails with a retriable error at first.
    let errors = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    ];
    cluster
        .mock()
        .request_errors(RDKafkaApiKey::Produce, &errors.repeat(4));
    let results = save_many(&store, "r", 200, 32).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let records = read_topic(&cluster.bootstrap_servers(), TOPIC);
    let mut per_key: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for record in &records {
        *per_key.entry(record.key.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(per_key.len(), 200, "no save lost");
    assert!(
        per_key.values().all(|&n| n == 1),
        "no save duplicated: {per_key:?}"
    );
    store.close().await.unwrap();
}

/// A valid encoded state of `id` whose input is a JSON string of `bytes` bytes.
fn encoded_with_input(id: &str, bytes: usize) -> Vec<u8> {
    let mut big = state(id, "1", WorkflowStatus::Running);
    big.input = Some(format!("\"{}\"", "x".repeat(bytes)));
    model::encode_state(&big).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_skipped_and_counted_in_replay_and_tail() {
    let cluster = DevCluster::start(TOPIC, 2).unwrap();
    let brokers = cluster.bootstrap_servers();
    let encoded =
        |id: &str| model::encode_state(&state(id, "1", WorkflowStatus::Completed)).unwrap();
    let (good, other, kept, gone) = (
        encoded("good"),
        encoded("other"),
        encoded("kept"),
        encoded("gone"),
    );
    let over_limit = encoded_with_input("good", 1024 * 1024);
    let poison: Vec<KeyValue> = vec![
        // Truncated JSON, not an object, wrong types.
        (Some(b"bad-json"), Some(b"{\"WorkflowID\":")),
        (Some(b"bad-shape"), Some(b"[1,2,3]")),
        (
            Some(b"bad-status"),
            Some(b"{\"WorkflowID\":\"bad-status\",\"Status\":\"asleep\"}"),
        ),
        (
            Some(b"bad-id-type"),
            Some(b"{\"WorkflowID\":7,\"Status\":\"running\"}"),
        ),
        (
            Some(b"bad-history"),
            Some(b"{\"WorkflowID\":\"bad-history\",\"Status\":\"running\",\"History\":{\"ID\":1}}"),
        ),
        (
            Some(b"bad-time"),
            Some(b"{\"WorkflowID\":\"bad-time\",\"Status\":\"running\",\"CreatedAt\":12}"),
        ),
        // Keys: not the value's WorkflowID, not UTF-8, empty, absent.
        (Some(b"mismatch"), Some(&other)),
        (Some(&[0xc3, 0x28]), Some(b"{}")),
        (Some(b""), Some(&good)),
        (None, Some(&good)),
        // The JSON text `null` is not a tombstone: it must not delete `kept`.
        (Some(b"kept"), Some(b"null")),
    ];
    produce_raw(&brokers, TOPIC, Some(b"good"), Some(&good)).await;
    produce_raw(&brokers, TOPIC, Some(b"kept"), Some(&kept)).await;
    produce_raw(&brokers, TOPIC, Some(b"gone"), Some(&gone)).await;
    for (key, value) in &poison {
        produce_raw(&brokers, TOPIC, *key, *value).await;
    }
    // A real tombstone deletes.
    produce_raw(&brokers, TOPIC, Some(b"gone"), None).await;
    produce_raw(&brokers, TOPIC, Some(b"other"), Some(&other)).await;

    let store = open(&cluster).await;
    let report = store.replay_report();
    assert_eq!(report.skipped, poison.len() as u64);
    assert_eq!(report.tombstones, 1);
    assert_eq!(report.records, poison.len() as u64 + 5);
    let ids: Vec<String> = snapshot(&store).into_keys().collect();
    assert_eq!(ids, ["good", "kept", "other"]);
    assert_eq!(store.load("kept").await.unwrap().unwrap().run_id, "1");

    // While tailing: skipped and counted too, the cache untouched; a real
    // tombstone still applies after them.
    // A valid state just over the value limit. (Not 10 MiB: the mock
    // cluster keeps about 5 MiB per partition, and neither it nor tansu 0.6
    // returns a record that large to any consumer.)
    let tail_poison: Vec<KeyValue> = vec![
        (
            Some(b"good"),
            Some(b"{\"WorkflowID\":\"good\",\"Status\":7}"),
        ),
        (Some(b"good"), Some(b"null")),
        (Some(b""), None),
        (Some(b"good"), Some(&over_limit)),
    ];
    for (key, value) in &tail_poison {
        produce_raw(&brokers, TOPIC, *key, *value).await;
    }
    produce_raw(&brokers, TOPIC, Some(b"other"), None).await;
    let skipped = (poison.len() + tail_poison.len()) as u64;
    eventually(
        "the tail skips the records and applies the tombstone",
        async || store.consumed().skipped == skipped && store.consumed().tombstones == 2,
    )
    .await;
    assert_eq!(store.load("good").await.unwrap().unwrap().run_id, "1");
    assert!(store.load("other").await.unwrap().is_none());
    let ids: Vec<String> = snapshot(&store).into_keys().collect();
    assert_eq!(ids, ["good", "kept"]);
    // The store still writes and reads after all of it.
    store
        .save(state("after", "2", WorkflowStatus::Running))
        .await
        .unwrap();
    assert_eq!(store.load("after").await.unwrap().unwrap().run_id, "2");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_checks_its_configuration_and_the_topic() {
    let cluster = DevCluster::start(TOPIC, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let refused = |config: KafkaConfig| async move { KafkaStore::open(config).await.unwrap_err() };
    let error = refused(KafkaConfig::new(&brokers).property("acks", "1")).await;
    assert!(
        error.to_string().contains("acks=1 is not allowed"),
        "{error}"
    );
    let error = refused(KafkaConfig::new(&brokers).topic("no spaces")).await;
    assert!(error.to_string().contains("invalid topic name"), "{error}");
    let error = refused(KafkaConfig::new(&brokers).property("no.such.property", "1")).await;
    assert!(
        matches!(&error, StoreError::InvalidArgument(m) if m.contains("no.such.property")),
        "{error:?}"
    );
    // The mock cluster cannot create topics through the admin API; with
    // creation off, a missing topic is refused outright.
    let mut config = KafkaConfig::new(&brokers).topic("missing");
    config.create_topic = false;
    let error = refused(config).await;
    assert!(
        error.to_string().contains("topic missing does not exist"),
        "{error}"
    );

    // Close is idempotent and refuses later calls.
    let store = open(&cluster).await;
    store.close().await.unwrap();
    store.close().await.unwrap();
    let error = store
        .save(state("x", "1", WorkflowStatus::Running))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StoreError::Unavailable("kafka/save: store is closed".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_broker_refuses_maps_to_its_store_error_and_changes_nothing() {
    let cluster = DevCluster::start(TOPIC, 1).unwrap();
    let store = open(&cluster).await;
    store
        .save(state("kept", "before", WorkflowStatus::Running))
        .await
        .unwrap();
    // Not retriable: the first produce request fails, and so does the save.
    cluster.mock().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let error = store
        .save(state("kept", "refused", WorkflowStatus::Failed))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Denied(m) if m.starts_with("kafka/save: write: ")),
        "{error:?}"
    );
    assert_eq!(store.load("kept").await.unwrap().unwrap().run_id, "before");
    // The refusal is not fatal to the producer: once the broker accepts
    // writes again (at once, or after the error it already queued), saves succeed.
    assert!(
        save_within_5s(&store, state("kept", "after", WorkflowStatus::Completed)).await,
        "saves succeed again"
    );
    assert_eq!(store.load("kept").await.unwrap().unwrap().run_id, "after");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_of_predicts_where_the_producer_put_each_record() {
    let cluster = DevCluster::start(TOPIC, 12).unwrap();
    let store = open(&cluster).await;
    for i in 0..200 {
        let id = format!("wf-{i}/é");
        store
            .save(state(&id, "1", WorkflowStatus::Running))
            .await
            .unwrap();
    }
    let records = read_topic(&cluster.bootstrap_servers(), TOPIC);
    assert_eq!(records.len(), 200);
    let used: std::collections::BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert!(used.len() > 6, "ids spread over the partitions: {used:?}");
    for record in records {
        let key = String::from_utf8(record.key.unwrap()).unwrap();
        assert_eq!(record.partition, store.partition_of(&key), "{key}");
    }
    store.close().await.unwrap();
}

/// A record Go's encoder can write but the old host could not serve (an
/// input nested 200 levels, a number out of the float64 range) is read,
/// served and written again; what Go could not write either (nesting past
/// 10 000 levels, a time past year 9999) is skipped at replay and in the
/// tail, counted, and never reaches a read. One rule everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatever_replay_accepts_the_host_serves_and_writes_again() {
    let cluster = DevCluster::start(TOPIC, 2).unwrap();
    let brokers = cluster.bootstrap_servers();
    // A record as a Go writer writes it, with `input` as the Input, verbatim.
    let with_input = |id: &str, input: String| {
        let plain = state(id, "1", WorkflowStatus::Running);
        let text = String::from_utf8(model::encode_state(&plain).unwrap()).unwrap();
        text.replacen(plain.input.as_deref().unwrap(), &input, 1)
    };
    let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let accepted = [
        ("rv-deep", with_input("rv-deep", deep(200))),
        ("rv-big", with_input("rv-big", r#"{"n":1e400}"#.to_owned())),
        ("rv-deepest", with_input("rv-deepest", deep(10_000))),
    ];
    let refused = [
        ("rv-too-deep", with_input("rv-too-deep", deep(10_001))),
        (
            "rv-year",
            String::from_utf8(
                model::encode_state(&state("rv-year", "1", WorkflowStatus::Running)).unwrap(),
            )
            .unwrap()
            .replacen("2023-11-14T22:13:20Z", "9999-12-31T23:00:00-02:00", 1),
        ),
    ];
    for (id, value) in accepted.iter().chain(&refused) {
        produce_raw(&brokers, TOPIC, Some(id.as_bytes()), Some(value.as_bytes())).await;
    }
    let store = open(&cluster).await;
    assert_eq!(
        store.replay_report().skipped,
        2,
        "{:?}",
        store.replay_report()
    );
    for (id, value) in &accepted {
        let found = store.load(id).await.unwrap().expect("accepted at replay");
        // Served as it was written, byte for byte, and written again.
        assert_eq!(
            model::encode_state(&found).unwrap(),
            value.as_bytes(),
            "{id}"
        );
        store
            .save(Arc::unwrap_or_clone(found))
            .await
            .expect("written again");
    }
    for (id, _) in &refused {
        assert!(store.load(id).await.unwrap().is_none(), "{id} is skipped");
    }
    let page = store.list(&ListFilter::default()).await.unwrap();
    for state in &page {
        model::encode_state(state).expect("every listed state encodes");
    }
    assert_eq!(page.len(), accepted.len());

    // The tail applies the same rule.
    for (id, value) in &refused {
        let tail_id = format!("{id}-tail");
        let value = value.replace(id, &tail_id);
        produce_raw(
            &brokers,
            TOPIC,
            Some(tail_id.as_bytes()),
            Some(value.as_bytes()),
        )
        .await;
    }
    eventually("the tail skips them too", async || {
        store.consumed().skipped == 4
    })
    .await;
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 3);
    store.close().await.unwrap();
}

/// A record of an id in a partition other than the one murmur2 places the
/// id in (a Go writer on a round-robin balancer) is not read: every host
/// and every replay reads an id from its home partition only, so the hosts
/// agree, a delete stays a delete, and the count says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_is_read_from_its_home_partition_only() {
    let cluster = DevCluster::start(TOPIC, 4).unwrap();
    let brokers = cluster.bootstrap_servers();
    let id = "split-1";
    let home = wf_store_kafka::partition_for_key(id.as_bytes(), 4);
    let elsewhere = (home + 1) % 4;
    // A record of `id` with run id `run`, produced to `partition`.
    let write_run = async |partition: i32, run: &str| {
        let value = model::encode_state(&state(id, run, WorkflowStatus::Completed)).unwrap();
        produce_raw_to(
            &brokers,
            TOPIC,
            partition,
            Some(id.as_bytes()),
            Some(&value),
        )
        .await;
    };
    write_run(home, "home").await;
    write_run(elsewhere, "stray").await;

    let first = open(&cluster).await;
    let second = open(&cluster).await;
    for store in [&first, &second] {
        assert_eq!(store.load(id).await.unwrap().unwrap().run_id, "home");
        assert_eq!(store.replay_report().misplaced, 1);
    }
    // A stray write while they tail changes nothing either.
    write_run(elsewhere, "stray-2").await;
    eventually("the tail counts the stray record", async || {
        first.consumed().misplaced == 2
    })
    .await;
    assert_eq!(first.load(id).await.unwrap().unwrap().run_id, "home");

    first.delete(id).await.unwrap();
    eventually("the other host sees the delete", async || {
        second.load(id).await.unwrap().is_none()
    })
    .await;
    for _ in 0..5 {
        let fresh = open(&cluster).await;
        assert!(
            fresh.load(id).await.unwrap().is_none(),
            "a fresh replay agrees"
        );
        assert_eq!(fresh.replay_report().misplaced, 2);
        fresh.close().await.unwrap();
    }
    first.close().await.unwrap();
    second.close().await.unwrap();
}

/// The `wf-writer` header of the first record of `topic` with one.
fn writer_of_first_record(brokers: &str, topic: &str) -> Vec<u8> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "wf-test-header-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("raw consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let writer = message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key == "wf-writer")
                    .and_then(|header| header.value.map(<[u8]>::to_vec))
            });
            if let Some(writer) = writer {
                return writer;
            }
        }
    }
    panic!("no record of {topic} carries a wf-writer header");
}

/// Produces `value` under `key` with the `wf-writer` header `writer`.
async fn produce_as_writer(brokers: &str, key: &str, value: &[u8], writer: &[u8]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("raw producer");
    let headers = OwnedHeaders::new().insert(Header {
        key: "wf-writer",
        value: Some(writer),
    });
    let record = FutureRecord::to(TOPIC)
        .key(key)
        .payload(value)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .expect("raw produce acknowledged");
}

/// The tail passes over, unread, a record of this store's that the cache
/// holds or has passed. The store's writer id is on the topic for anyone
/// to copy: a newer record carrying it is still decoded and applied, and a
/// bad one is still skipped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_record_carrying_this_stores_writer_id_is_still_read() {
    let cluster = DevCluster::start(TOPIC, 2).unwrap();
    let brokers = cluster.bootstrap_servers();
    let store = open(&cluster).await;
    store
        .save(state("a", "1", WorkflowStatus::Running))
        .await
        .unwrap();
    let writer = writer_of_first_record(&brokers, TOPIC);

    let newer = model::encode_state(&state("a", "2", WorkflowStatus::Completed)).unwrap();
    produce_as_writer(&brokers, "a", &newer, &writer).await;
    eventually("the newer record is applied", async || {
        store
            .load("a")
            .await
            .unwrap()
            .is_some_and(|s| s.run_id == "2")
    })
    .await;

    produce_as_writer(
        &brokers,
        "a",
        b"{\"WorkflowID\":\"a\",\"Status\":7}",
        &writer,
    )
    .await;
    eventually("the bad record is skipped and counted", async || {
        store.consumed().skipped == 1
    })
    .await;
    let kept = store.load("a").await.unwrap().unwrap();
    assert_eq!(
        (kept.run_id.as_str(), kept.status),
        ("2", WorkflowStatus::Completed)
    );

    // The store's own saves go on as before.
    store
        .save(state("a", "3", WorkflowStatus::Running))
        .await
        .unwrap();
    assert_eq!(store.load("a").await.unwrap().unwrap().run_id, "3");
    store.close().await.unwrap();
}

/// A store whose partitions only it writes does not fetch its writes back:
/// the acknowledgements keep the cache current. Another writer's records
/// between its writes are still read, and the cache still equals the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_does_not_fetch_its_own_writes_but_reads_everyone_elses() {
    let cluster = DevCluster::start(TOPIC, 2).unwrap();
    let brokers = cluster.bootstrap_servers();
    let store = Arc::new(open(&cluster).await);

    // Alone on the topic: 300 saves, 16 at a time.
    let results = save_many(&store, "own", 300, 16).await;
    assert!(results.iter().all(Result::is_ok));
    eventually("the cache is at the end of the topic", async || {
        store.lag().await.unwrap().records == 0
    })
    .await;
    let read = store.consumed().records;
    assert!(
        read < 150,
        "the tail fetched {read} of the store's own 300 records back"
    );

    // Another writer interleaved with the store, on the same partitions: its
    // saves, a tombstone of one of the store's ids; the store deletes one of
    // the other writer's ids.
    let writing = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                store
                    .save(state(
                        &format!("own-{i:03}"),
                        "2",
                        WorkflowStatus::Completed,
                    ))
                    .await
                    .unwrap();
                if i == 60 {
                    store.delete("other-010").await.unwrap();
                }
            }
        })
    };
    for i in 0..40 {
        let other = state(&format!("other-{i:03}"), "x", WorkflowStatus::Running);
        let value = model::encode_state(&other).unwrap();
        produce_raw(
            &brokers,
            TOPIC,
            Some(other.workflow_id.as_bytes()),
            Some(&value),
        )
        .await;
        if i == 20 {
            produce_raw(&brokers, TOPIC, Some(b"own-299"), None).await;
        }
    }
    writing.await.unwrap();
    eventually("the cache is at the end of the topic again", async || {
        store.lag().await.unwrap().records == 0
    })
    .await;
    let log = log_states(&read_topic(&brokers, TOPIC));
    assert_eq!(snapshot(&store), log, "the cache equals the log");
    assert!(log.contains_key("other-039") && !log.contains_key("own-299"));
    for (id, expected) in &log {
        let loaded = store.load(id).await.unwrap().expect("every live id loads");
        assert_eq!(&*loaded, expected);
    }
    assert_eq!(store.consumed().skipped, 0);
    Arc::try_unwrap(store).ok().unwrap().close().await.unwrap();
}

/// A save given up while its record was on the way (its caller's timeout)
/// leaves a record the store never acknowledged: the tail reads it rather
/// than passing it, and the writes acknowledged behind it wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_given_up_after_its_record_was_written_is_read_back() {
    let cluster = DevCluster::start(TOPIC, 1).unwrap();
    let store = open(&cluster).await;
    let end = async || store.end_offsets().await.unwrap()[0].1;
    let mut given_up_and_written = Vec::new();
    for i in 0..40u64 {
        let id = format!("given-up-{i:02}");
        let before = end().await;
        let wait = Duration::from_micros(100 * (i + 1));
        let outcome =
            tokio::time::timeout(wait, store.save(state(&id, "1", WorkflowStatus::Running))).await;
        // The producer still delivers a record handed to it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let written = end().await > before;
        if outcome.is_err() && written {
            given_up_and_written.push(id);
        }
        store
            .save(state(
                &format!("after-{i:02}"),
                "1",
                WorkflowStatus::Running,
            ))
            .await
            .unwrap();
    }
    assert!(
        !given_up_and_written.is_empty(),
        "no save was given up between the produce and its acknowledgement"
    );
    eventually(
        "the tail reads the records no acknowledgement applied",
        async || store.lag().await.unwrap().records == 0,
    )
    .await;
    for id in &given_up_and_written {
        assert!(store.load(id).await.unwrap().is_some(), "{id} is read back");
    }
    for i in 0..40 {
        assert!(
            store
                .load(&format!("after-{i:02}"))
                .await
                .unwrap()
                .is_some()
        );
    }
    let log = log_states(&read_topic(&cluster.bootstrap_servers(), TOPIC));
    assert_eq!(snapshot(&store), log, "the cache equals the log");
    store.close().await.unwrap();
}
