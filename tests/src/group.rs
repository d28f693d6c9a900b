//! Hosts of one consumer group in one process, for the scale-out tests and
//! benchmark: join, wait for the group to settle, find an id's owner, leave.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wf_host::model::WorkflowStatus;
use wf_host::store::{StoreError, WorkflowStore};
use wf_host::{ExecuteError, Host, HostConfig, Module, WorkflowHandle};
use wf_store_kafka::{KafkaConfig, KafkaStore};

/// One host: its store, the host, the `steps` module and, in a group, the
/// task following its ownership.
#[derive(Debug)]
pub struct Node {
    /// Its member name.
    pub name: String,
    /// Its store.
    pub store: Arc<KafkaStore>,
    /// The host on the store.
    pub host: Host,
    /// The guest it runs (`steps` unless joined with another), loaded.
    pub module: Module,
    /// The topic's partition count.
    pub partitions: i32,
    /// In a group: the task following its ownership.
    pub follower: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Opens a store on `topic` of `partitions` (in `group` when given, with
    /// `session_timeout`) and a host on it running the `steps` guest.
    pub async fn join(
        brokers: &str,
        topic: &str,
        partitions: i32,
        group: Option<&str>,
        session_timeout: Duration,
        name: &str,
    ) -> Self {
        Self::join_running(
            brokers,
            topic,
            partitions,
            group,
            session_timeout,
            name,
            wf_test_artifacts::STEPS,
        )
        .await
    }

    /// [`Node::join`], running the guest at `guest` instead of `steps`.
    pub async fn join_running(
        brokers: &str,
        topic: &str,
        partitions: i32,
        group: Option<&str>,
        session_timeout: Duration,
        name: &str,
        guest: &str,
    ) -> Self {
        let mut config = KafkaConfig::new(brokers).topic(topic).member_name(name);
        if let Some(group) = group {
            config = config.group(group);
        }
        config.partitions = partitions;
        config.session_timeout = session_timeout;
        Self::open(config, guest).await
    }

    /// Opens a store with `config` (its topic, partition count, group and
    /// member name) and a host on it running the guest at `guest`.
    pub async fn open(config: KafkaConfig, guest: &str) -> Self {
        let (group, name, partitions) = (
            config.group_id.clone(),
            config.announced_name(),
            config.partitions,
        );
        let store = Arc::new(KafkaStore::open(config).await.expect("opening the store"));
        let host =
            Host::with_config(store.clone(), HostConfig::default().max_running(400)).expect("host");
        let module = host.load_module_file(guest).expect("the guest");
        let follower = host.follow_ownership(&module);
        assert_eq!(
            follower.is_some(),
            group.is_some(),
            "a group store has ownership"
        );
        Self {
            name,
            store,
            host,
            module,
            partitions,
            follower,
        }
    }

    /// Joins the group of `topic` (`{topic}-hosts`) keeping only its own
    /// partitions ([`KafkaConfig::owned_partitions_only`]), on local state
    /// under `state_dir` when given: serves its HTTP API at the URL it
    /// announces, and reads the other partitions from their owners over
    /// HTTP.
    pub async fn join_keeping_own(
        brokers: &str,
        topic: &str,
        partitions: i32,
        session_timeout: Duration,
        state_dir: Option<&std::path::Path>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let mut config = KafkaConfig::new(brokers)
            .topic(topic)
            .group(format!("{topic}-hosts"))
            .member_name(&url)
            .owned_partitions_only();
        config.partitions = partitions;
        config.session_timeout = session_timeout;
        if let Some(dir) = state_dir {
            config = config.state_dir(dir);
        }
        let node = Self::open(config, wf_test_artifacts::STEPS).await;
        node.host
            .link_owners(Arc::new(wf_http::HttpOwnerLink::new()));
        let app = wf_http::router(node.host.clone(), node.module.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        node
    }

    /// Whether this host owns `id` now (always, without a group).
    pub fn owns(&self, id: &str) -> bool {
        self.store.ownership().is_none_or(|o| o.owns(id))
    }

    /// The partitions this host owns now (all, without a group).
    pub fn owned(&self) -> Vec<i32> {
        self.store
            .ownership()
            .map_or_else(|| (0..self.partitions).collect(), |o| o.owned_partitions())
    }

    /// Leaves as a stopping host does: its runs stop without recording an
    /// end, its store closes and leaves the group.
    pub async fn leave(self) {
        if let Some(follower) = self.follower {
            follower.abort();
        }
        self.host.abandon_all().await;
        self.store.close().await.expect("closing the store");
    }
}

/// Waits until the nodes own disjoint sets of partitions that cover all of
/// them, each at least one.
pub async fn settled(nodes: &[&Node]) {
    let partitions = nodes[0].partitions as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owned: Vec<Vec<i32>> = nodes.iter().map(|n| n.owned()).collect();
        let all: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        let total: usize = owned.iter().map(Vec::len).sum();
        if owned.iter().all(|o| !o.is_empty()) && total == partitions && all.len() == partitions {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle within 60 s: {owned:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node owning `id`, waiting while its partition moves between nodes
/// (a client retries a refused request the same way).
pub async fn owner_of(nodes: &[&Node], id: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(at) = nodes.iter().position(|n| n.owns(id)) {
            return at;
        }
        assert!(Instant::now() < deadline, "nobody owns {id} for 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the run of `handle` (started on node `at`): it ends completed,
/// or as handed over (abandoned, or fenced by the new owner's write).
/// Returns the workflow id.
pub async fn ended_or_handed_over(at: usize, handle: WorkflowHandle) -> String {
    let id = handle.id().to_owned();
    match handle.result().await {
        Ok(state) => assert_eq!(state.status, WorkflowStatus::Completed, "{id}"),
        Err(ExecuteError::Abandoned(_) | ExecuteError::Store(StoreError::Conflict(_))) => {}
        Err(e) => panic!("{id} on host {at}: {e}"),
    }
    id
}
