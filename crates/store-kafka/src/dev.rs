//! librdkafka's in-process mock cluster, for `wfhost`'s zero-setup default,
//! `wfhost dev` and tests.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use wf_host::store::StoreError;

/// What the mock cluster cannot do, said wherever it announces itself.
pub const MOCK_CLUSTER_BOUNDS: &str = "it keeps nothing after the process exits, does not compact, \
and keeps at most 5 MiB or 100 000 records per partition (older ones are silently dropped)";

/// A mock Kafka cluster in this process with one topic created on it.
///
/// Not `Send` (librdkafka's mock API is single-threaded): keep it on the
/// thread that created it, alive for as long as clients use it.
///
/// ```
/// use wf_host::store::WorkflowStore;
/// use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// let cluster = DevCluster::start("beluga-workflows", 4)?;
/// let store = KafkaStore::open(KafkaConfig::new(cluster.bootstrap_servers())).await?;
/// assert_eq!(store.replay_report().partitions.len(), 4);
/// store.close().await?;
/// # Ok(()) }
/// ```
pub struct DevCluster {
    cluster: MockCluster<'static, DefaultProducerContext>,
    topic: String,
    partitions: i32,
}

impl std::fmt::Debug for DevCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCluster")
            .field("bootstrap_servers", &self.cluster.bootstrap_servers())
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl DevCluster {
    /// Starts a one-broker mock cluster listening on loopback, with `topic`
    /// created with `partitions` partitions (the mock cannot create topics
    /// through the admin API).
    pub fn start(topic: &str, partitions: i32) -> Result<Self, StoreError> {
        let fail =
            |e| StoreError::Unavailable(format!("kafka/dev: cannot start the mock cluster: {e}"));
        let cluster = MockCluster::new(1).map_err(fail)?;
        cluster.create_topic(topic, partitions, 1).map_err(fail)?;
        Ok(Self {
            cluster,
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// The topic created at start.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The mock cluster, for fault injection (`broker_down`, `request_errors`, ...).
    pub fn mock(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

/// A [`DevCluster`] on a thread of its own, so that a store (which must be
/// `Send`) can own the mock cluster it runs on: the cluster lives until the
/// handle drops.
#[derive(Debug)]
pub(crate) struct DevClusterThread {
    bootstrap_servers: String,
    /// Dropping it tells the thread to drop the cluster.
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DevClusterThread {
    /// Starts [`DevCluster::start`] on a new thread.
    pub(crate) fn start(topic: &str, partitions: i32) -> Result<Self, StoreError> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (started, started_rx) = std::sync::mpsc::channel();
        let topic = topic.to_owned();
        let thread = std::thread::Builder::new()
            .name("wf-dev-cluster".into())
            .spawn(move || match DevCluster::start(&topic, partitions) {
                Ok(cluster) => {
                    let _ = started.send(Ok(cluster.bootstrap_servers()));
                    // Returns when the handle (the only sender) drops.
                    let _ = stopped.recv();
                    drop(cluster);
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            })
            .map_err(|e| {
                StoreError::Internal(format!(
                    "kafka/dev: cannot start the mock cluster's thread: {e}"
                ))
            })?;
        let bootstrap_servers = started_rx.recv().map_err(|_| {
            StoreError::Internal("kafka/dev: the mock cluster's thread ended at start".into())
        })??;
        Ok(Self {
            bootstrap_servers,
            stop,
            thread: Some(thread),
        })
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub(crate) fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }
}

impl Drop for DevClusterThread {
    fn drop(&mut self) {
        // `stop` would drop only after this body: close it by hand first.
        let (replacement, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.stop, replacement));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
