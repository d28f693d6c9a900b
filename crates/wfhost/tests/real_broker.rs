//! End to end on a real Kafka-protocol broker process (tansu, started by
//! `.ci/run` through `scripts/start-broker.sh`): `wfhost` processes writing
//! and reading, an independent client (confluent-kafka) reading the topic,
//! and the broker's compaction.
//!
//! The broker's address comes from `WF_KAFKA_BROKERS`; without it every test
//! prints `skipped: WF_KAFKA_BROKERS unset` and returns.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;
use wf_host::model::{WorkflowState, WorkflowStatus};
use wf_host::store::{StoreError, WorkflowStore};
use wf_store_kafka::{KafkaConfig, KafkaStore};

use wf_tests::kafka::{fresh_topic, last_per_key, read_topic, real_broker as brokers, state};

fn wfhost(brokers: &str, topic: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfhost"))
        .env_remove("WF_CONFIG")
        .env_remove("RUST_LOG")
        .args(["--brokers", brokers, "--topic", topic, "--partitions", "3"])
        .args(args)
        .output()
        .expect("running wfhost")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "wfhost failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The topic as confluent-kafka (its own librdkafka build) reads it: one
/// `(key, value)` per record, value `None` for a tombstone.
fn read_with_independent_client(brokers: &str, topic: &str) -> Vec<(String, Option<String>)> {
    let python = std::env::var("WF_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_topic.py");
    let out = Command::new(&python)
        .args([script, brokers, topic])
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "the independent client (confluent-kafka under {python}; .ci/run installs it and sets \
         WF_PYTHON) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            (
                record["key"].as_str().unwrap().to_owned(),
                record["value"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn one_wfhost_writes_a_new_wfhost_reads_and_an_independent_client_agrees() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic("processes");
    ok(wfhost(
        &brokers,
        &topic,
        &[
            "run",
            wf_test_artifacts::PIPELINE,
            "--id",
            "pipeline-001",
            "--input",
            "\"start processing\"",
        ],
    ));
    ok(wfhost(
        &brokers,
        &topic,
        &[
            "run",
            wf_test_artifacts::LEDGER,
            "--id",
            "ledger-1",
            "--input",
            r#"{"action":"post","account":"bob","amounts":[5,6]}"#,
        ],
    ));
    ok(wfhost(
        &brokers,
        &topic,
        &["delete", "ledger/bob/entry-000001"],
    ));

    // A new process replays the topic from the broker.
    let show = ok(wfhost(
        &brokers,
        &topic,
        &["--output", "json", "show", "pipeline-001"],
    ));
    let pipeline: Value = serde_json::from_str(show.trim()).unwrap();
    assert_eq!(pipeline["Status"], "completed");
    assert_eq!(pipeline["Result"], "completed: start processing");
    let list = ok(wfhost(&brokers, &topic, &["--output", "json", "list"]));
    let ids: Vec<String> = serde_json::from_str::<Vec<Value>>(list.trim())
        .unwrap()
        .iter()
        .map(|s| s["WorkflowID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "ledger-1",
            "ledger/bob",
            "ledger/bob/entry-000002",
            "pipeline-001"
        ]
    );

    // An independent client sees ids as keys, the Go wire format as values,
    // and the delete as a null value.
    let records = read_with_independent_client(&brokers, &topic);
    let last: BTreeMap<String, Option<String>> = records.iter().cloned().collect();
    assert_eq!(
        last["ledger/bob/entry-000001"], None,
        "a tombstone: {records:?}"
    );
    let value: Value =
        serde_json::from_str(last["pipeline-001"].as_deref().expect("a value")).unwrap();
    assert_eq!(value["WorkflowID"], "pipeline-001");
    assert_eq!(value["History"][0]["Type"], "workflow_started");
    for key in ["ledger-1", "ledger/bob", "ledger/bob/entry-000002"] {
        assert!(last[key].is_some(), "{key} is live");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_compaction_the_topic_keeps_the_newest_value_per_id_and_replays_the_same_state() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic("compaction");
    let mut config = KafkaConfig::new(&brokers).topic(&topic);
    config.partitions = 3;
    let store = Arc::new(KafkaStore::open(config.clone()).await.unwrap());
    for version in 0..5 {
        let saves = (0..40).map(|i| {
            let store = store.clone();
            async move {
                let s = state(
                    &format!("c-{i:02}"),
                    &format!("v{version}"),
                    WorkflowStatus::Running,
                );
                store.save(s).await
            }
        });
        let results: Vec<_> = futures::stream::iter(saves)
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    for i in (0..40).step_by(4) {
        store.delete(&format!("c-{i:02}")).await.unwrap();
    }
    let mut expected = BTreeMap::new();
    store.for_each_state(|s| {
        expected.insert(s.workflow_id.clone(), s.clone());
    });
    assert_eq!(expected.len(), 30);
    store.close().await.unwrap();

    // The broker compacts on its maintenance interval (seconds): wait until
    // no id has more than one record left.
    let deadline = Instant::now() + Duration::from_secs(120);
    let compacted = loop {
        let b = brokers.clone();
        let t = topic.clone();
        let records = tokio::task::spawn_blocking(move || read_topic(&b, &t))
            .await
            .unwrap();
        let mut per_key: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for r in &records {
            *per_key.entry(r.key.clone().unwrap()).or_default() += 1;
        }
        if per_key.values().all(|&n| n == 1) {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not compact within 120 s: {} records for {} keys",
            records.len(),
            per_key.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // The newest value per id survived (and the deletes are still deletes).
    let last = last_per_key(&compacted);
    for (id, state) in &expected {
        let value = last[id].as_ref().expect("a live id keeps its newest value");
        assert_eq!(&wf_host::model::decode_state(value).unwrap(), state);
    }
    assert!(
        last.iter()
            .filter(|(id, _)| !expected.contains_key(*id))
            .all(|(_, value)| value.is_none()),
        "deleted ids have no value left"
    );

    let replayed = KafkaStore::open(config).await.unwrap();
    let mut after = BTreeMap::new();
    replayed.for_each_state(|s: &WorkflowState| {
        after.insert(s.workflow_id.clone(), s.clone());
    });
    assert_eq!(after, expected);
    assert!(
        replayed
            .replay_report()
            .partitions
            .iter()
            .any(|p| p.low > 0),
        "compaction moved a low watermark: {:?}",
        replayed.replay_report().partitions
    );
    replayed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_is_not_compacted_is_refused_unless_accepted() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic("deleting");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(&topic, 2, TopicReplication::Fixed(1)).set("cleanup.policy", "delete");
    let created = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let config = KafkaConfig::new(&brokers).topic(&topic);
    let error = KafkaStore::open(config.clone()).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::InvalidArgument(m) if m.contains("cleanup.policy=delete")),
        "{error:?}"
    );
    let mut accepting = config;
    accepting.accept_uncompacted = true;
    let store = KafkaStore::open(accepting).await.unwrap();
    store
        .save(state("x", "1", WorkflowStatus::Completed))
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_on_a_real_broker_are_skipped_in_replay_and_tail() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic("hostile");
    let encoded = |id: &str, run: &str| {
        wf_host::model::encode_state(&state(id, run, WorkflowStatus::Completed)).unwrap()
    };
    let (good, other) = (encoded("good", "1"), encoded("other", "1"));
    let mut over_limit = state("big", "1", WorkflowStatus::Running);
    over_limit.input = Some(format!("\"{}\"", "x".repeat(1024 * 1024)));
    let over_limit = wf_host::model::encode_state(&over_limit).unwrap();
    // Under keys of their own: the broker compacts, and a hostile record
    // under a live id would, once compacted, replace that id's last good
    // state in the log (see RELIABILITY.md). 10 MiB records are left to the
    // mock cluster's test: tansu 0.6 never returns a record that large to
    // any consumer, stalling the partition.
    let hostile: Vec<wf_tests::kafka::KeyValue> = vec![
        (Some(b"truncated"), Some(b"{\"WorkflowID\":\"trunc")),
        (
            Some(b"types"),
            Some(b"{\"WorkflowID\":[],\"Status\":\"running\"}"),
        ),
        (Some(b"mismatch"), Some(&other)),
        (Some(b""), Some(&good)),
        (Some(&[0xff, 0xfe]), Some(&good)),
        (Some(b"big"), Some(&over_limit)),
        (Some(b"null-text"), Some(b"null")),
    ];
    // The store creates the topic (compacted, records up to its limit).
    let config = KafkaConfig::new(&brokers).topic(&topic);
    KafkaStore::open(config.clone())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let produce = async |key: Option<&[u8]>, value: Option<&[u8]>| {
        wf_tests::kafka::produce_raw(&brokers, &topic, key, value).await
    };
    produce(Some(b"good"), Some(&good)).await;
    for (key, value) in &hostile {
        produce(*key, *value).await;
    }
    produce(Some(b"gone"), Some(&encoded("gone", "1"))).await;
    produce(Some(b"gone"), None).await;

    let store = KafkaStore::open(config)
        .await
        .expect("replay survives hostile records");
    let report = store.replay_report();
    assert_eq!(report.skipped, hostile.len() as u64, "{report:?}");
    let ids: Vec<String> = wf_tests::kafka::snapshot(&store).into_keys().collect();
    assert_eq!(ids, ["good"]);

    // Tailing: the same records again, then a good one the tail must reach.
    for (key, value) in &hostile {
        produce(*key, *value).await;
    }
    produce(Some(b"after"), Some(&encoded("after", "2"))).await;
    wf_tests::kafka::eventually("the tail passes the hostile records", async || {
        store.load("after").await.unwrap().is_some()
    })
    .await;
    assert_eq!(store.consumed().skipped, 2 * hostile.len() as u64);
    assert_eq!(store.load("good").await.unwrap().unwrap().run_id, "1");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_a_real_broker_deletes_exactly_the_expired_workflows() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic("retention");
    wf_tests::kafka::check_retention(&brokers, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wfhost_restarts_from_its_local_state_on_a_real_broker() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic("local-state");
    let dir = std::env::temp_dir().join(format!("wf-local-{topic}"));
    let state_dir = dir.to_str().unwrap();
    let mut config = KafkaConfig::new(&brokers).topic(&topic);
    config.partitions = 3;
    let store = KafkaStore::open(config).await.unwrap();
    for i in 0..5 {
        store
            .save(state(&format!("wf-{i}"), "r", WorkflowStatus::Running))
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    // Each start says what it restored and read (at info).
    let start = || -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_wfhost"))
            .env_remove("WF_CONFIG")
            .env("RUST_LOG", "info")
            .args([
                "--brokers",
                &brokers,
                "--topic",
                &topic,
                "--state-dir",
                state_dir,
            ])
            .args(["list"])
            .output()
            .expect("running wfhost");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).matches("wf-").count(),
            5
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = start();
    assert!(
        first.contains("restored 0 workflows from its checkpoint, then read 5 records"),
        "{first}"
    );
    // The second start restores from the checkpoint and reads nothing.
    let second = start();
    assert!(
        second.contains("restored 5 workflows from its checkpoint, then read 0 records"),
        "{second}"
    );
    // `wfhost topic` reads the whole topic whatever the local state.
    let report: Value = serde_json::from_str(&ok(wfhost(
        &brokers,
        &topic,
        &["topic", "--output", "json", "--state-dir", state_dir],
    )))
    .unwrap();
    assert_eq!(report["records"].as_u64(), Some(5), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
