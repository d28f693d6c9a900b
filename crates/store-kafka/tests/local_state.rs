//! The local state store on librdkafka's mock cluster: a restart reads only
//! the records written since its checkpoint and ends equal to a full replay;
//! a checkpoint that is not this log's (stale, foreign, corrupt) is found
//! and rebuilt from the log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wf_host::model::{WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, WorkflowStore};
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
use wf_tests::kafka::{snapshot, state};

const TOPIC: &str = "wf-local";

/// A scratch state directory, removed at the end.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("wf-local-{}", uuid::Uuid::new_v4()));
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open_local(cluster: &DevCluster, dir: &Path) -> KafkaStore {
    KafkaStore::open(
        KafkaConfig::new(cluster.bootstrap_servers())
            .topic(TOPIC)
            .state_dir(dir),
    )
    .await
    .expect("open with local state")
}

async fn open_memory(cluster: &DevCluster) -> KafkaStore {
    KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers()).topic(TOPIC))
        .await
        .expect("open in memory")
}

/// Saves `count` workflows from `from`, then rewrites every third and
/// deletes every seventh: records of every kind.
/// Ends each partition's log with a save of `run`: a log that ends with the
/// same tombstones as another is not told from it by its last record.
async fn end_with_saves(store: &KafkaStore, run: &str) {
    for i in 0..10 {
        store
            .save(state(&format!("wf-{i:05}"), run, WorkflowStatus::Running))
            .await
            .unwrap();
    }
}

/// Waits until `store`'s tail has read every record of the topic.
async fn read_back(store: &KafkaStore) {
    for _ in 0..1000 {
        if store.lag().await.unwrap().records == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the tail never read the topic to its end");
}

async fn write_some(store: &KafkaStore, from: usize, count: usize, run: &str) {
    for i in from..from + count {
        store
            .save(state(&format!("wf-{i:05}"), run, WorkflowStatus::Running))
            .await
            .unwrap();
    }
    for i in (from..from + count).step_by(3) {
        store
            .save(state(&format!("wf-{i:05}"), run, WorkflowStatus::Completed))
            .await
            .unwrap();
    }
    for i in (from..from + count).step_by(7) {
        store.delete(&format!("wf-{i:05}")).await.unwrap();
    }
}

/// The states a fresh, full replay of the topic gives, compared with
/// `store`'s record by record, through every read path.
async fn assert_equals_full_replay(cluster: &DevCluster, store: &KafkaStore) {
    let full = open_memory(cluster).await;
    let expected: BTreeMap<String, WorkflowState> = snapshot(&full);
    assert!(!expected.is_empty());
    let got = snapshot(store);
    assert_eq!(got.len(), expected.len(), "live states");
    for (id, want) in &expected {
        assert_eq!(got.get(id), Some(want), "{id}");
        assert_eq!(
            store.load(id).await.unwrap().as_deref(),
            Some(want),
            "load {id}"
        );
        assert_eq!(
            store.load_versioned(id).await.unwrap().map(|v| v.version),
            full.load_versioned(id).await.unwrap().map(|v| v.version),
            "version of {id}"
        );
    }
    for filter in [
        ListFilter::default(),
        ListFilter::default().status(WorkflowStatus::Completed),
        ListFilter::default().prefix("wf-001"),
        ListFilter::default().after("wf-00100"),
    ] {
        assert_eq!(
            ids(store, &filter).await,
            ids(&full, &filter).await,
            "{filter:?}"
        );
    }
    assert_eq!(store.consumed().live, full.consumed().live);
    // An estimate, from the states' buffers: a state this host saved may
    // hold larger ones than the same state decoded.
    let (bytes, replayed) = (store.cache_bytes() as f64, full.cache_bytes() as f64);
    assert!(
        (bytes / replayed - 1.0).abs() < 0.05,
        "cache bytes {bytes} vs {replayed}"
    );
    full.close().await.unwrap();
}

/// The ids of one page of up to 1000 states `filter` lists.
async fn ids(store: &KafkaStore, filter: &ListFilter) -> Vec<String> {
    let filter = filter.clone().limit(1000);
    let page = store.list(&filter).await.unwrap();
    page.iter().map(|s| s.workflow_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_only_the_records_since_its_checkpoint() {
    let cluster = DevCluster::start(TOPIC, 4).unwrap();
    let dir = ScratchDir::new();

    let first = open_local(&cluster, &dir.0).await;
    assert_eq!(first.replay_report().restored, 0);
    write_some(&first, 0, 300, "r1").await;
    first.close().await.unwrap();
    let live_at_close = {
        let full = open_memory(&cluster).await;
        let live = full.consumed().live;
        full.close().await.unwrap();
        live
    };

    // Another host writes while this one is down.
    let other = open_memory(&cluster).await;
    write_some(&other, 250, 100, "r2").await;
    other.close().await.unwrap();

    let again = open_local(&cluster, &dir.0).await;
    let report = again.replay_report().clone();
    assert_eq!(
        report.restored, live_at_close,
        "restored from the local state"
    );
    assert!(report.rebuilt.is_empty(), "{:?}", report.rebuilt);
    // 100 saves, 34 rewrites and 15 deletes were written since, and the
    // checkpoint may trail the first host's own last writes by its tail's
    // lag at close; a full replay reads 592.
    assert!((149..300).contains(&report.records), "{report:?}");
    assert!(report.partitions.iter().all(|p| p.start > p.low));
    assert_equals_full_replay(&cluster, &again).await;

    // It keeps tailing and checkpointing: a third open reads nothing new.
    again
        .save(state("wf-new", "r3", WorkflowStatus::Running))
        .await
        .unwrap();
    again.close().await.unwrap();
    let third = open_local(&cluster, &dir.0).await;
    // At most the one save, if the tail had not read it back at close.
    assert!(third.replay_report().records <= 1);
    assert!(third.load("wf-new").await.unwrap().is_some());
    assert_equals_full_replay(&cluster, &third).await;
    third.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_dropped_without_closing_restarts_from_its_last_durable_checkpoint() {
    let cluster = DevCluster::start(TOPIC, 4).unwrap();
    let dir = ScratchDir::new();
    let first = open_local(&cluster, &dir.0).await;
    write_some(&first, 0, 200, "r1").await;
    // Dropped mid-work, as a crash leaves it: nothing is flushed on the way out.
    drop(first);
    let again = open_local(&cluster, &dir.0).await;
    assert_equals_full_replay(&cluster, &again).await;
    again.close().await.unwrap();
}

/// The local state file a store on `cluster` uses, found by opening one.
async fn state_file(cluster: &DevCluster, dir: &Path) -> PathBuf {
    let store = open_local(cluster, dir).await;
    let path = store.replay_report().state_file.clone().expect("a file");
    store.close().await.unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_foreign_or_corrupt_checkpoint_is_found_and_rebuilt() {
    // A checkpoint from a longer log of the same topic name (the topic was
    // recreated), then one from a log as long but with other records.
    let dir = ScratchDir::new();
    let long = DevCluster::start(TOPIC, 2).unwrap();
    let long_file = {
        let store = open_local(&long, &dir.0).await;
        write_some(&store, 0, 100, "long").await;
        end_with_saves(&store, "long").await;
        // Its checkpoint names records of both partitions (one that names
        // none, with entries kept, is rebuilt for that reason instead).
        read_back(&store).await;
        let path = store.replay_report().state_file.clone().unwrap();
        store.close().await.unwrap();
        path
    };
    let short = DevCluster::start(TOPIC, 2).unwrap();
    let short_file = state_file(&short, &dir.0).await;
    assert_ne!(long_file, short_file);
    {
        let store = open_memory(&short).await;
        write_some(&store, 0, 10, "short").await;
        store.close().await.unwrap();
    }
    std::fs::copy(&long_file, &short_file).unwrap();
    let store = open_local(&short, &dir.0).await;
    let rebuilt = &store.replay_report().rebuilt;
    assert_eq!(rebuilt.len(), 2, "both partitions: {rebuilt:?}");
    assert!(rebuilt[0].reason.contains("recreated"), "{rebuilt:?}");
    assert_equals_full_replay(&short, &store).await;
    store.close().await.unwrap();

    let same_length = DevCluster::start(TOPIC, 2).unwrap();
    let same_file = state_file(&same_length, &dir.0).await;
    {
        let store = open_memory(&same_length).await;
        write_some(&store, 0, 100, "other").await;
        end_with_saves(&store, "other").await;
        store.close().await.unwrap();
    }
    std::fs::copy(&long_file, &same_file).unwrap();
    let store = open_local(&same_length, &dir.0).await;
    let rebuilt = &store.replay_report().rebuilt;
    assert_eq!(rebuilt.len(), 2, "both partitions: {rebuilt:?}");
    assert!(
        rebuilt
            .iter()
            .all(|r| r.reason.contains("not the one it applied")),
        "{rebuilt:?}"
    );
    assert_equals_full_replay(&same_length, &store).await;
    store.close().await.unwrap();

    // Garbage where the file was: rebuilt whole.
    std::fs::write(&same_file, b"not a database, just bytes".repeat(300)).unwrap();
    let store = open_local(&same_length, &dir.0).await;
    assert_eq!(store.replay_report().restored, 0);
    assert_equals_full_replay(&same_length, &store).await;
    store.close().await.unwrap();

    // And a deleted directory is simply a first start.
    std::fs::remove_dir_all(&dir.0).unwrap();
    let store = open_local(&same_length, &dir.0).await;
    assert_eq!(store.replay_report().restored, 0);
    assert_equals_full_replay(&same_length, &store).await;
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_state_directory_take_a_file_each() {
    let cluster = DevCluster::start(TOPIC, 2).unwrap();
    let dir = ScratchDir::new();
    let a = open_local(&cluster, &dir.0).await;
    let b = open_local(&cluster, &dir.0).await;
    assert_ne!(
        a.replay_report().state_file,
        b.replay_report().state_file,
        "one file each"
    );
    a.save(state("wf-a", "1", WorkflowStatus::Running))
        .await
        .unwrap();
    wf_tests::kafka::eventually("b sees a's write", async || {
        b.load("wf-a").await.unwrap().is_some()
    })
    .await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}
