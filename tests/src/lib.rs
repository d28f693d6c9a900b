//! Everything the workspace's tests and benchmarks share, in one place: hosts
//! on each backend ([`Backend`], [`on_every_backend!`]), the guest suite run
//! for every language ([`suite`], [`guest_suite!`]), raw Kafka access
//! ([`kafka`]), hosts of one consumer group ([`group`]) and the benchmarks'
//! timing helpers ([`bench`]).
#![deny(missing_docs)]

pub mod bench;
pub mod group;
pub mod kafka;
pub mod probe;
pub mod suite;
pub mod waits;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
pub use wf_host::HostConfig;
use wf_host::model::WorkflowStatus;
use wf_host::store::{ListFilter, MemoryStore, WorkflowStore};
use wf_host::{Host, Module};
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};

#[doc(hidden)]
pub use tokio as __tokio;
pub use wf_test_artifacts as guests;

use wf_host::model::{EventType, HistoryEvent, ModuleIdentity, Timestamp, WorkflowState};

/// The kinds of a state's history events, in order.
pub fn kinds(state: &WorkflowState) -> Vec<EventType> {
    state.history.iter().map(|e| e.kind).collect()
}

/// A state's result, decoded; panics when it has none.
pub fn result_json(state: &WorkflowState) -> Value {
    serde_json::from_str(state.result.as_deref().expect("a result")).expect("result is JSON")
}

/// Defines, for each named `async fn(Host)` in the calling module, a test on
/// a memory host (`memory::NAME`) and one on a Kafka host on the mock cluster
/// (`kafka::NAME`), both with the default [`HostConfig`] on a two-thread runtime.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),+ $(,)?) => {
        $crate::__on_each_backend!($crate::Backend::host_of; $($case),+);
    };
}

/// [`on_every_backend!`] for cases that take the whole [`Backend`] (to count
/// the records written to the topic, say): `async fn(&Backend)`.
#[macro_export]
macro_rules! on_every_backend_with_topic {
    ($($case:ident),+ $(,)?) => {
        $crate::__on_each_backend!(std::convert::identity; $($case),+);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __on_each_backend {
    ($pass:path; $($case:ident),+) => {
        mod memory {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = $crate::Backend::memory($crate::HostConfig::default());
                    super::$case($pass(&backend)).await;
                }
            )+
        }
        mod kafka {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = $crate::Backend::kafka($crate::HostConfig::default()).await;
                    super::$case($pass(&backend)).await;
                }
            )+
        }
    };
}

/// A host on one backend, and for Kafka the store and cluster behind it.
#[derive(Debug)]
pub struct Backend {
    /// The host, on this backend's store.
    pub host: Host,
    kafka: Option<(Arc<KafkaStore>, DevCluster)>,
}

impl Backend {
    /// A host on a fresh in-memory store.
    pub fn memory(config: HostConfig) -> Self {
        Self {
            host: memory_host(config),
            kafka: None,
        }
    }

    /// A host on a fresh Kafka store (librdkafka's in-process mock cluster).
    pub async fn kafka(config: HostConfig) -> Self {
        let (host, store, cluster) = kafka_store_host(config).await;
        Self {
            host,
            kafka: Some((store, cluster)),
        }
    }

    /// A handle on the host (the backend keeps the cluster alive).
    pub fn host_of(&self) -> Host {
        self.host.clone()
    }

    /// How many records the topic holds in all (the sum of its partitions'
    /// end offsets); `None` on the memory store.
    pub async fn records_written(&self) -> Option<i64> {
        let (store, _) = self.kafka.as_ref()?;
        let ends = store.end_offsets().await.expect("reading the end offsets");
        Some(ends.iter().map(|(_, end)| end).sum())
    }
}

/// A host on a fresh in-memory store, with `config`.
pub fn memory_host(config: HostConfig) -> Host {
    let store: Arc<dyn WorkflowStore> = Arc::new(MemoryStore::new());
    Host::with_config(store, config).expect("creating the host")
}

/// A host on a fresh Kafka store (librdkafka's in-process mock cluster), with
/// `config`. Keep the cluster alive as long as the host.
pub async fn kafka_host(config: HostConfig) -> (Host, DevCluster) {
    let (host, _, cluster) = kafka_store_host(config).await;
    (host, cluster)
}

/// [`kafka_host`], also returning the store.
pub async fn kafka_store_host(config: HostConfig) -> (Host, Arc<KafkaStore>, DevCluster) {
    let cluster = DevCluster::start("wf-guests", 4).expect("starting the mock cluster");
    let store = KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers()).topic("wf-guests"))
        .await
        .expect("opening the Kafka store");
    let store = Arc::new(store);
    let host = Host::with_config(store.clone(), config).expect("creating the host");
    (host, store, cluster)
}

/// The ids of up to 1000 stored states, ascending.
pub async fn stored_ids(host: &Host) -> Vec<String> {
    let page = ListFilter::default().limit(1000);
    host.store()
        .list(&page)
        .await
        .expect("list")
        .iter()
        .map(|s| s.workflow_id.clone())
        .collect()
}

/// The ids of every state in `store`, ascending, read page by page.
pub async fn list_all(store: &dyn WorkflowStore) -> Vec<String> {
    let mut ids = Vec::new();
    let mut filter = ListFilter::default();
    loop {
        let page = store.list(&filter).await.expect("list");
        let Some(last) = page.last() else {
            return ids;
        };
        filter.after = Some(last.workflow_id.clone());
        ids.extend(page.iter().map(|s| s.workflow_id.clone()));
    }
}

/// Runs the store-ops guest (or another scripted one) with `script` as
/// workflow `id`; returns the final state and, when it completed, the
/// per-operation outcomes.
pub async fn script(
    host: &Host,
    module: &Module,
    id: &str,
    script: Value,
) -> (WorkflowState, Vec<Value>) {
    let state = host
        .run(module, id, &script.to_string())
        .await
        .expect("execute");
    let outcomes = match state.status {
        WorkflowStatus::Completed => serde_json::from_value(result_json(&state)).unwrap(),
        _ => Vec::new(),
    };
    (state, outcomes)
}

/// `state` as the store-ops guests give and take it: JSON fields as values,
/// kinds and statuses by their wire names.
pub fn guest_json(state: &WorkflowState) -> Value {
    use wf_host::model::Timestamp;
    let json_of = |text: &Option<String>| {
        text.as_deref()
            .map_or(Value::Null, |t| serde_json::from_str(t).unwrap())
    };
    let stamp = |t: Timestamp| json!({"seconds": t.seconds, "nanoseconds": t.nanoseconds});
    json!({
        "workflow_id": state.workflow_id,
        "run_id": state.run_id,
        "status": "failed",
        "input": json_of(&state.input),
        "result": null,
        "error": state.error,
        "history": state.history.iter().map(|e| json!({
            "id": e.id,
            "kind": format!("{:?}", e.kind)
                .chars()
                .flat_map(|c| {
                    let lower = c.to_ascii_lowercase();
                    (c.is_uppercase().then_some('_').into_iter()).chain([lower])
                })
                .skip(1)
                .collect::<String>(),
            "timestamp": stamp(e.timestamp),
            "activity_name": e.activity_name,
            "input": json_of(&e.input),
            "result": json_of(&e.result),
            "error": e.error,
            "signal_name": e.signal_name,
            "signal_payload": json_of(&e.signal_payload),
            "duration_ns": e.duration_ns,
        })).collect::<Vec<_>>(),
        "created_at": stamp(state.created_at),
        "updated_at": stamp(state.updated_at),
    })
}

/// A complete state in the guest SDK's JSON form, for the store-ops guest's `save`.
pub fn wire_state(id: &str) -> Value {
    json!({
        "workflow_id": id,
        "run_id": "r1",
        "status": "completed",
        "input": {"n": 1},
        "result": [1, 2],
        "error": "",
        "history": [{
            "id": 1, "kind": "activity_completed",
            "timestamp": {"seconds": 1700000000, "nanoseconds": 5},
            "activity_name": "charge", "input": null, "result": {"ok": true}, "error": "",
            "signal_name": "", "signal_payload": null, "duration_ns": 42
        }],
        "created_at": {"seconds": 1700000000, "nanoseconds": 0},
        "updated_at": {"seconds": 1700000001, "nanoseconds": 0}
    })
}

/// The kind and message of a store-ops outcome that must be an error.
pub fn err_kind(outcome: &Value) -> (&str, &str) {
    let err = outcome
        .get("err")
        .unwrap_or_else(|| panic!("expected an error, got {outcome}"));
    (
        err["kind"].as_str().unwrap(),
        err["message"].as_str().unwrap(),
    )
}

/// A fresh empty directory for one test (both backends run at once).
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wf-runtime-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (bounded) until `path` exists.
pub async fn wait_for_file(path: &Path) {
    for _ in 0..1000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} did not appear", path.display());
}

/// Stores `id` as a run of the module `started_by` that a crashed host
/// left `running`, with `history` after its `workflow_started`.
pub async fn left_running(
    host: &Host,
    started_by: &ModuleIdentity,
    id: &str,
    input: &Value,
    history: Vec<HistoryEvent>,
) -> WorkflowState {
    let now = Timestamp::now();
    let mut events = vec![started_by.started_event(1, now)];
    for (i, mut event) in history.into_iter().enumerate() {
        event.id = i as u64 + 2;
        events.push(event);
    }
    let state = WorkflowState {
        workflow_id: id.to_owned(),
        run_id: format!("run-of-{id}"),
        status: WorkflowStatus::Running,
        input: Some(input.to_string()),
        result: None,
        error: String::new(),
        history: events,
        created_at: now,
        updated_at: now,
    };
    host.store().save(state.clone()).await.unwrap();
    state
}
