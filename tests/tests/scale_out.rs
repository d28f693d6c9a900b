//! Scale-out: several hosts in one consumer group sharing one topic, on
//! librdkafka's mock cluster and (when `WF_KAFKA_BROKERS` names one) on a
//! real broker process.
//!
//! Three hosts share 300 workflows of the `steps` guest (a chain of durable
//! activities); one host leaves mid-run; the others take its partitions over,
//! catch up and resume its running workflows. The topic then shows every
//! workflow completed exactly once and no completed activity run again. A
//! second case keeps saves in flight through a rebalance and finds every
//! acknowledged one on the topic and in every host's cache.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wf_host::model::{EventType, WorkflowState, WorkflowStatus, decode_state};
use wf_host::store::{StoreError, WorkflowStore};
use wf_host::{ExecuteError, ExecuteOptions, WorkflowHandle};
use wf_store_kafka::{DevCluster, KafkaConfig};

use wf_tests::group::{Node, ended_or_handed_over, owner_of, settled};
use wf_tests::kafka::{fresh_topic, read_topic, real_broker};

const WORKFLOWS: usize = 300;
const STEPS: u64 = 4;
/// sum of n² for n < STEPS: what every workflow returns.
const RESULT: u64 = 14;

/// Joins the group of `topic` as `name`.
async fn join(brokers: &str, topic: &str, partitions: i32, name: &str) -> Node {
    let group = format!("{topic}-hosts");
    Node::join(
        brokers,
        topic,
        partitions,
        Some(&group),
        session_timeout(brokers),
        name,
    )
    .await
}

/// The group's session timeout: short on the mock cluster, whose rebalances
/// wait the session timeout less 1 s for members to rejoin; the default on a
/// real broker.
fn session_timeout(brokers: &str) -> Duration {
    if std::env::var("WF_KAFKA_BROKERS").is_ok_and(|real| real == brokers) {
        KafkaConfig::new(brokers).session_timeout
    } else {
        Duration::from_secs(3)
    }
}

/// Serves `node`'s HTTP API on a free port; returns its base URL.
async fn serve(node: &Node) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = wf_http::router(node.host.clone(), node.module.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn input(step_ms: u64) -> String {
    format!(r#"{{"steps":{STEPS},"step_ms":{step_ms}}}"#)
}

/// The states of every record of the topic, per key, in log order.
fn history_per_key(brokers: &str, topic: &str) -> BTreeMap<String, Vec<WorkflowState>> {
    let mut records = read_topic(brokers, topic);
    records.sort_by_key(|r| (r.partition, r.offset));
    let mut per_key: BTreeMap<String, Vec<WorkflowState>> = BTreeMap::new();
    for record in records {
        let key = String::from_utf8(record.key.expect("key")).expect("utf-8 key");
        let value = record.value.expect("no tombstones in this test");
        per_key
            .entry(key)
            .or_default()
            .push(decode_state(&value).expect("a workflow state"));
    }
    per_key
}

/// Distinct events of `kind` across every record of one workflow, by
/// (event id, activity, timestamp): an event re-created by a second run
/// has another timestamp.
fn distinct_events(
    states: &[WorkflowState],
    kind: EventType,
) -> BTreeMap<String, BTreeSet<(u64, i64, u32)>> {
    let mut events: BTreeMap<String, BTreeSet<(u64, i64, u32)>> = BTreeMap::new();
    for state in states {
        for event in state.history.iter().filter(|e| e.kind == kind) {
            events
                .entry(event.activity_name.clone())
                .or_default()
                .insert((
                    event.id,
                    event.timestamp.seconds,
                    event.timestamp.nanoseconds,
                ));
        }
    }
    events
}

async fn three_hosts_share_300_workflows_and_survive_one_leaving(
    brokers: &str,
    topic: &str,
    names_owners: bool,
) {
    const PARTITIONS: i32 = 6;
    let nodes = [
        join(brokers, topic, PARTITIONS, "host-a").await,
        join(brokers, topic, PARTITIONS, "host-b").await,
        join(brokers, topic, PARTITIONS, "host-c").await,
    ];
    settled(&nodes.iter().collect::<Vec<_>>()).await;
    eprintln!(
        "settled: {:?}",
        nodes
            .iter()
            .map(|n| (&n.name, n.owned()))
            .collect::<Vec<_>>()
    );

    // A host refuses a workflow it does not own, naming the owner once the
    // owner's announcement (commit metadata) is readable. tansu 0.6 keeps a
    // committed offset but drops its metadata: there the owner stays unnamed.
    let id = "wf-000";
    let owner = owner_of(&nodes.iter().collect::<Vec<_>>(), id).await;
    let other = &nodes[(owner + 1) % 3];
    let deadline = Instant::now() + Duration::from_secs(if names_owners { 20 } else { 2 });
    loop {
        match other
            .host
            .execute(&other.module, ExecuteOptions::new(input(0)).id(id))
            .await
        {
            Err(ExecuteError::NotOwner(e)) => {
                assert_eq!(
                    (e.member.as_str(), e.partition),
                    (other.name.as_str(), nodes[owner].store.partition_of(id))
                );
                match &e.owner {
                    Some(named) if *named == nodes[owner].name => break,
                    // The previous owner's announcement, until the new
                    // owner's commit lands: names follow a move, late.
                    Some(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Some(named) => {
                        assert_eq!(named, &nodes[owner].name, "{e}");
                        break;
                    }
                    None if Instant::now() >= deadline => {
                        assert!(!names_owners, "owner never named: {e}");
                        eprintln!("the broker does not keep commit metadata: {e}");
                        break;
                    }
                    None => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            other => panic!("a non-owner must refuse: {other:?}"),
        }
    }
    // Over HTTP: 421 with the partition (and the owner when named), and the
    // host's share in /status.
    let api = serve(other).await;
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{api}/workflows/{id}"))
        .body(input(0))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 421);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["partition"], nodes[owner].store.partition_of(id));
    if names_owners {
        assert_eq!(body["owner"], nodes[owner].name.as_str(), "{body}");
    }
    let status: serde_json::Value = client
        .get(format!("{api}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["member"], other.name.as_str(), "{status}");
    assert_eq!(
        status["owned_partitions"],
        serde_json::json!(other.owned()),
        "{status}"
    );
    assert!(status["lag"]["records"].is_u64(), "{status}");
    assert!(
        other.store.load(id).await.unwrap().is_none(),
        "a refusal writes nothing"
    );

    // 300 workflows, each started at its owner.
    let mut handles: Vec<(usize, WorkflowHandle)> = Vec::new();
    for i in 0..WORKFLOWS {
        let id = format!("wf-{i:03}");
        let at = owner_of(&nodes.iter().collect::<Vec<_>>(), &id).await;
        let handle = nodes[at]
            .host
            .execute(&nodes[at].module, ExecuteOptions::new(input(150)).id(id))
            .await
            .expect("start at the owner");
        handles.push((at, handle));
    }
    let per_node: Vec<usize> = (0..3)
        .map(|n| handles.iter().filter(|(at, _)| *at == n).count())
        .collect();
    eprintln!("started per host: {per_node:?}");
    assert!(per_node.iter().all(|&n| n > 0), "spread: {per_node:?}");

    // Host b leaves mid-run.
    let [a, b, c] = nodes;
    let running_on_b = b.host.running().len();
    eprintln!("host-b leaves with {running_on_b} workflows running");
    assert!(running_on_b > 0, "host b must leave mid-run");
    let left = Instant::now();
    b.leave().await;
    settled(&[&a, &c]).await;
    eprintln!(
        "a and c own every partition {:?} after b left",
        left.elapsed()
    );

    // Every workflow finishes, as both remaining hosts see it.
    let deadline = Instant::now() + Duration::from_secs(180);
    for i in 0..WORKFLOWS {
        let id = format!("wf-{i:03}");
        loop {
            let done = |s: Option<Arc<WorkflowState>>| {
                s.is_some_and(|s| s.status == WorkflowStatus::Completed)
            };
            if done(a.store.load(&id).await.unwrap()) && done(c.store.load(&id).await.unwrap()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not complete: {:?}",
                a.store.load(&id).await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "all {WORKFLOWS} completed {:?} after b left",
        left.elapsed()
    );
    // A handle ends with the final state, or as handed over (its partition
    // moved: b left, and a and c were rebalanced too).
    for (at, handle) in handles {
        ended_or_handed_over(at, handle).await;
    }

    // The log: every workflow completed exactly once with the right result,
    // and no completed activity ran again.
    let per_key = history_per_key(brokers, topic);
    assert_eq!(per_key.len(), WORKFLOWS);
    let mut resumed = 0;
    for (id, states) in &per_key {
        let last = states.last().unwrap();
        assert_eq!(last.status, WorkflowStatus::Completed, "{id}");
        assert_eq!(
            last.result.as_deref(),
            Some(RESULT.to_string().as_str()),
            "{id}"
        );
        let completions = distinct_events(states, EventType::WorkflowCompleted);
        let completed: usize = completions.values().map(BTreeSet::len).sum();
        assert_eq!(completed, 1, "{id} completed {completed} times");
        let activities = distinct_events(states, EventType::ActivityCompleted);
        assert_eq!(activities.len() as u64, STEPS, "{id}: {activities:?}");
        for (step, runs) in &activities {
            assert_eq!(
                runs.len(),
                1,
                "{id}: activity {step} completed {} times",
                runs.len()
            );
        }
        let starts = last
            .history
            .iter()
            .filter(|e| e.kind == EventType::WorkflowStarted)
            .count();
        if starts > 1 {
            resumed += 1;
        }
    }
    eprintln!("{resumed} workflows were resumed by another host");
    assert!(
        resumed > 0,
        "host b's running workflows are resumed elsewhere"
    );
    a.leave().await;
    c.leave().await;
}

async fn no_acknowledged_save_is_lost_across_a_rebalance(brokers: &str, topic: &str) {
    const PARTITIONS: i32 = 6;
    let a = join(brokers, topic, PARTITIONS, "host-a").await;
    assert_eq!(
        a.owned().len(),
        PARTITIONS as usize,
        "alone, a owns every partition"
    );

    // Writers on a keep saves in flight, conditional (new ids, expected
    // version 0) and plain, while b joins and takes half the partitions. They
    // pace themselves: librdkafka's mock cluster keeps only the newest 5 MiB
    // of a partition, and the check reads the whole topic back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = a.store.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut conflicts = 0;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("inflight-{w:02}-{i:05}");
                // Not `running`: the hosts' followers would take it for a
                // workflow to resume.
                let state = wf_tests::kafka::state(&id, "r", WorkflowStatus::Completed);
                let expected = (i % 2 == 0).then_some(0);
                match store.save_versioned(state, expected).await {
                    Ok(version) => acked.push((id, version)),
                    // a no longer owns the id's partition: fenced, nothing written.
                    Err(StoreError::Conflict(_)) => conflicts += 1,
                    Err(e) => panic!("{id}: {e}"),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, conflicts)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = join(brokers, topic, PARTITIONS, "host-b").await;
    settled(&[&a, &b]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut conflicts = 0;
    for writer in writers {
        let (a, c) = writer.await.unwrap();
        acked.extend(a);
        conflicts += c;
    }
    eprintln!("{} saves acknowledged, {conflicts} fenced", acked.len());
    assert!(
        conflicts > 0,
        "conditional saves to b's partitions are fenced"
    );

    // Every acknowledged save is on the topic, and in both caches.
    let per_key = history_per_key(brokers, topic);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (id, version) in &acked {
        assert!(per_key.contains_key(id), "acknowledged save of {id} lost");
        for node in [&a, &b] {
            loop {
                match node.store.load_versioned(id).await.unwrap() {
                    Some(found) => {
                        assert_eq!(found.version, *version, "{id} on {}", node.name);
                        break;
                    }
                    None => {
                        assert!(
                            Instant::now() < deadline,
                            "{id} never reached {}",
                            node.name
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }
    // And nothing else: a fenced save wrote nothing.
    let acked_ids: BTreeSet<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
    let extra: Vec<&String> = per_key
        .keys()
        .filter(|id| !acked_ids.contains(id.as_str()))
        .collect();
    assert!(extra.is_empty(), "written but not acknowledged: {extra:?}");
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_three_hosts_share_300_workflows_and_survive_one_leaving() {
    let cluster = DevCluster::start("wf-scale", 6).expect("mock cluster");
    three_hosts_share_300_workflows_and_survive_one_leaving(
        &cluster.bootstrap_servers(),
        "wf-scale",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_no_acknowledged_save_is_lost_across_a_rebalance() {
    let cluster = DevCluster::start("wf-rebalance", 6).expect("mock cluster");
    no_acknowledged_save_is_lost_across_a_rebalance(&cluster.bootstrap_servers(), "wf-rebalance")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_three_hosts_share_300_workflows_and_survive_one_leaving() {
    let Some(brokers) = real_broker() else { return };
    three_hosts_share_300_workflows_and_survive_one_leaving(&brokers, &fresh_topic("scale"), false)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_no_acknowledged_save_is_lost_across_a_rebalance() {
    let Some(brokers) = real_broker() else { return };
    no_acknowledged_save_is_lost_across_a_rebalance(&brokers, &fresh_topic("rebalance")).await;
}

/// Eight guests on two hosts of one group take one unit each from a shared
/// count with `load-versioned` and a conditional `save` (the documented
/// pattern). The calls of the host that does not own the record go to its
/// owner, which decides them against its own writes: the count ends exactly
/// eight lower, and no guest spins toward its deadline.
async fn conditional_saves_of_a_shared_record_are_decided_by_its_owner(brokers: &str, topic: &str) {
    let mut nodes = Vec::new();
    let mut modules = Vec::new();
    for _ in 0..2 {
        // The name each host announces is the URL it serves on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let node = join(brokers, topic, 4, &url).await;
        node.host
            .link_owners(Arc::new(wf_http::HttpOwnerLink::new()));
        let store_ops = node
            .host
            .load_module_file(wf_tests::guests::STORE_OPS)
            .unwrap();
        let app = wf_http::router(node.host.clone(), store_ops.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        nodes.push(node);
        modules.push(store_ops);
    }
    let group: Vec<&Node> = nodes.iter().collect();
    settled(&group).await;
    let owner = owner_of(&group, "stock").await;
    let other = 1 - owner;
    // The other host knows the owner by the URL it announced, where the
    // broker keeps it (see below for one that does not).
    let named = wf_tests::kafka::keeps_commit_metadata(brokers, topic);
    let ownership = nodes[other].store.ownership().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while named && ownership.owner("stock").await.as_deref() != Some(nodes[owner].name.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the owner never announced itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stock = wf_tests::kafka::state("stock", "stock", WorkflowStatus::Completed);
    stock.result = Some("20".into());
    nodes[owner].store.save(stock).await.unwrap();

    let script = serde_json::json!([{"op": "decrement", "id": "stock", "attempts": 50}]);
    if !named {
        nameless_owner_refuses_forwarding(nodes, &modules, owner, &script).await;
        return;
    }
    let mut runs = Vec::new();
    for i in 0..8 {
        let at = i % 2;
        // An id the host running it owns, so each host runs four.
        let id = (0..)
            .map(|n| format!("take-{i}-{n}"))
            .find(|id| nodes[at].owns(id))
            .unwrap();
        let options = ExecuteOptions::new(script.to_string())
            .id(id)
            .timeout(Duration::from_secs(30));
        runs.push(nodes[at].host.execute(&modules[at], options).await.unwrap());
    }
    let mut left = BTreeSet::new();
    for run in runs {
        let state = run.result().await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        let outcomes: serde_json::Value =
            serde_json::from_str(state.result.as_deref().unwrap()).unwrap();
        let taken = &outcomes[0]["ok"];
        assert!(taken.is_object(), "a decrement failed: {outcomes}");
        assert!(taken["attempts"].as_u64().unwrap() <= 9, "{taken}");
        left.insert(taken["left"].as_i64().unwrap());
    }
    assert_eq!(left, (12..20).collect::<BTreeSet<i64>>(), "each unit once");
    let stored = nodes[owner].store.load("stock").await.unwrap().unwrap();
    assert_eq!(stored.result.as_deref(), Some("12"));
    for node in nodes {
        node.leave().await;
    }
}

/// On a broker that drops commit metadata no host learns the owner's name:
/// the other host's conditional calls fail with `unavailable` (never
/// decided against its own cache), the owner's succeed, the count is exact.
async fn nameless_owner_refuses_forwarding(
    nodes: Vec<Node>,
    modules: &[wf_host::Module],
    owner: usize,
    script: &serde_json::Value,
) {
    eprintln!("this broker keeps no offset-commit metadata: forwarding cannot be reached here");
    let other = 1 - owner;
    assert_eq!(
        nodes[other].store.ownership().unwrap().owner("stock").await,
        None
    );
    let mut outcomes = Vec::new();
    for at in [other, owner] {
        let id = (0..)
            .map(|n| format!("take-{at}-{n}"))
            .find(|id| nodes[at].owns(id))
            .unwrap();
        let options = ExecuteOptions::new(script.to_string())
            .id(id)
            .timeout(Duration::from_secs(30));
        let run = nodes[at].host.execute(&modules[at], options).await.unwrap();
        let state = run.result().await.unwrap();
        assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
        let outcome: serde_json::Value =
            serde_json::from_str(state.result.as_deref().unwrap()).unwrap();
        outcomes.push(outcome[0].clone());
    }
    assert_eq!(outcomes[0]["err"]["kind"], "unavailable", "{}", outcomes[0]);
    assert!(
        outcomes[0]["err"]["message"]
            .as_str()
            .unwrap()
            .contains("announced"),
        "{}",
        outcomes[0]
    );
    assert_eq!(outcomes[1]["ok"]["left"], 19, "{}", outcomes[1]);
    let stored = nodes[owner].store.load("stock").await.unwrap().unwrap();
    assert_eq!(stored.result.as_deref(), Some("19"));
    for node in nodes {
        node.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_conditional_saves_of_a_shared_record_are_decided_by_its_owner() {
    let cluster = DevCluster::start("wf-forward", 4).expect("mock cluster");
    conditional_saves_of_a_shared_record_are_decided_by_its_owner(
        &cluster.bootstrap_servers(),
        "wf-forward",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_conditional_saves_of_a_shared_record_are_decided_by_its_owner() {
    let Some(brokers) = real_broker() else { return };
    conditional_saves_of_a_shared_record_are_decided_by_its_owner(
        &brokers,
        &fresh_topic("forward"),
    )
    .await;
}

/// A failover moves suspended workflows and their timers to the new owner:
/// host b, holding sleeping and signal-waiting workflows, leaves; host a
/// takes its partitions, rebuilds their waits from the stored states, wakes
/// the sleepers at their original due times and delivers the signals sent
/// to it, each once.
async fn a_failover_moves_suspended_workflows_and_their_timers(brokers: &str, topic: &str) {
    let group = format!("{topic}-hosts");
    let join = |name: &'static str| {
        Node::join_running(
            brokers,
            topic,
            4,
            Some(&group),
            session_timeout(brokers),
            name,
            wf_test_artifacts::WAITS,
        )
    };
    let a = join("a").await;
    let b = join("b").await;
    settled(&[&a, &b]).await;
    let nodes = [&a, &b];
    let mut on_b = Vec::new();
    for i in 0..40 {
        let (id, input) = if i % 2 == 0 {
            (format!("nap-{i}"), r#"{"op":"sleep","ms":5000}"#)
        } else {
            (
                format!("sig-{i}"),
                r#"{"op":"signal","name":"go","timeout_ms":null}"#,
            )
        };
        let at = owner_of(&nodes, &id).await;
        let node = nodes[at];
        node.host
            .execute(&node.module, ExecuteOptions::new(input).id(&id))
            .await
            .unwrap();
        if at == 1 {
            on_b.push(id);
        }
    }
    assert!(!on_b.is_empty(), "b owns some of the workflows");
    for id in &on_b {
        while !b.host.is_waiting(id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let stored = wf_tests::kafka::snapshot(&b.store);
    let due: BTreeMap<String, i128> = on_b
        .iter()
        .filter(|id| id.starts_with("nap-"))
        .map(|id| {
            let at = stored[id]
                .suspended()
                .and_then(|s| s.wake_at)
                .expect("a due time");
            (id.clone(), at.as_nanos())
        })
        .collect();
    b.leave().await;
    // a owns everything once the group settles; its follower keeps the
    // suspended workflows of the partitions it gained waiting.
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.owned().len() < 4
        || !on_b
            .iter()
            .all(|id| a.host.is_waiting(id) || a.host.is_running(id))
    {
        assert!(
            Instant::now() < deadline,
            "a did not take b's waiting workflows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in on_b.iter().filter(|id| id.starts_with("sig-")) {
        a.host.signal(id, "go", Some("1")).await.unwrap();
    }
    for id in &on_b {
        let state = loop {
            let state = a.store.load(id).await.unwrap().expect("stored");
            if state.status != WorkflowStatus::Running {
                break state;
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not end: {:?}",
                state.history.last()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            state.status,
            WorkflowStatus::Completed,
            "{id}: {}",
            state.error
        );
        let count = |kind| state.history.iter().filter(|e| e.kind == kind).count();
        if let Some(due) = due.get(id) {
            assert_eq!(count(EventType::TimerStarted), 1, "{id}");
            let fired = state
                .history
                .iter()
                .find(|e| e.kind == EventType::TimerFired)
                .unwrap();
            assert!(fired.timestamp.as_nanos() >= *due, "{id} fired early");
        } else {
            assert_eq!(count(EventType::SignalReceived), 1, "{id}");
        }
    }
    a.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_a_failover_moves_suspended_workflows_and_their_timers() {
    let cluster = DevCluster::start("wf-waits", 4).expect("mock cluster");
    a_failover_moves_suspended_workflows_and_their_timers(&cluster.bootstrap_servers(), "wf-waits")
        .await;
}

/// Every live state of the topic, as a store that replays all of it reads it.
async fn full_replay(brokers: &str, topic: &str) -> Vec<WorkflowState> {
    let store = wf_store_kafka::KafkaStore::open(KafkaConfig::new(brokers).topic(topic))
        .await
        .unwrap();
    let states = pages(&store, &wf_host::store::ListFilter::default().limit(1000)).await;
    store.close().await.unwrap();
    states
}

/// Every page `filter` lists, followed with its cursor.
async fn pages(
    store: &dyn WorkflowStore,
    filter: &wf_host::store::ListFilter,
) -> Vec<WorkflowState> {
    let mut all = Vec::new();
    let mut filter = filter.clone();
    loop {
        let page = store.list(&filter).await.expect("listing");
        let Some(last) = page.last() else {
            return all;
        };
        filter.after = Some(last.workflow_id.clone());
        all.extend(page.iter().map(|s| (**s).clone()));
    }
}

/// Each host's loads of every id, and its lists (paged, by status, by
/// prefix), agree with a full replay of the topic.
async fn reads_agree_with_a_full_replay(nodes: &[&Node], brokers: &str, topic: &str) {
    use wf_host::store::ListFilter;
    let replay = full_replay(brokers, topic).await;
    assert!(!replay.is_empty());
    for node in nodes {
        for state in &replay {
            let found = node.store.load(&state.workflow_id).await.unwrap();
            assert_eq!(
                found.as_deref(),
                Some(state),
                "{} at {}",
                state.workflow_id,
                node.name
            );
        }
        assert_eq!(node.store.load("never-written").await.unwrap(), None);
        let listed = pages(&*node.store, &ListFilter::default().limit(7)).await;
        assert_eq!(listed, replay, "the pages of {}", node.name);
        let running = pages(
            &*node.store,
            &ListFilter::default()
                .status(WorkflowStatus::Running)
                .limit(5),
        )
        .await;
        let expected: Vec<WorkflowState> = replay
            .iter()
            .filter(|s| s.status == WorkflowStatus::Running)
            .cloned()
            .collect();
        assert_eq!(running, expected, "the running pages of {}", node.name);
        let under = pages(&*node.store, &ListFilter::default().prefix("w-1").limit(3)).await;
        let expected: Vec<WorkflowState> = replay
            .iter()
            .filter(|s| s.workflow_id.starts_with("w-1"))
            .cloned()
            .collect();
        assert_eq!(under, expected, "the w-1 pages of {}", node.name);
    }
}

/// Writes `ids` alternately through `nodes` (most to ids another host
/// keeps): each write is read back at once by the host that wrote it.
/// Returns how many records each partition got.
async fn write_through(
    nodes: &[&Node],
    ids: std::ops::Range<usize>,
    partitions: &mut BTreeMap<i32, u64>,
) {
    for i in ids {
        let node = nodes[i % nodes.len()];
        let id = format!("w-{i}");
        let status = if i % 3 == 0 {
            WorkflowStatus::Running
        } else {
            WorkflowStatus::Completed
        };
        let state = wf_tests::kafka::state(&id, &format!("r-{i}"), status);
        node.store.save(state.clone()).await.unwrap();
        assert_eq!(
            node.store.load(&id).await.unwrap().as_deref(),
            Some(&state),
            "{id} read back"
        );
        *partitions.entry(node.store.partition_of(&id)).or_default() += 1;
        if i % 10 == 9 {
            node.store.delete(&id).await.unwrap();
            assert_eq!(node.store.load(&id).await.unwrap(), None, "{id} deleted");
            *partitions.entry(node.store.partition_of(&id)).or_default() += 1;
        }
    }
}

/// Hosts keeping only their own partitions: each reads and keeps only its
/// share, every host's reads and lists agree with a full replay (through
/// the owners), and partitions given up and taken back are read again from
/// the local state's checkpoint (on disk) or from the start (in memory).
/// A host of 6 partitions keeping only its own, on local state under
/// `state_dir` when given.
async fn keeping_own(brokers: &str, topic: &str, state_dir: Option<std::path::PathBuf>) -> Node {
    Node::join_keeping_own(
        brokers,
        topic,
        6,
        session_timeout(brokers),
        state_dir.as_deref(),
    )
    .await
}

async fn hosts_keep_only_their_partitions(brokers: &str, topic: &str, on_disk: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,librdkafka=warn")
        .with_test_writer()
        .try_init();
    let dirs = wf_tests::scratch_dir(topic);
    let dir = |name: &str| on_disk.then(|| dirs.join(name));
    let a = keeping_own(brokers, topic, dir("a")).await;
    settled(&[&a]).await;
    let mut records = BTreeMap::new();
    write_through(&[&a], 0..60, &mut records).await;

    // b joins: a gives up half of the partitions.
    let b = keeping_own(brokers, topic, dir("b")).await;
    settled(&[&a, &b]).await;
    // An owner answers pages of its own partitions only.
    let not_a = b.owned()[0];
    let page = |url: String| async move { reqwest::get(url).await.unwrap().status().as_u16() };
    assert_eq!(
        page(format!(
            "{}/internal/v1/page?partitions={}",
            a.name,
            a.owned()[0]
        ))
        .await,
        200
    );
    assert_eq!(
        page(format!("{}/internal/v1/page?partitions={not_a}", a.name)).await,
        421
    );
    assert_eq!(
        page(format!("{}/internal/v1/page?partitions=x", a.name)).await,
        400
    );
    assert_eq!(page(format!("{}/internal/v1/page", a.name)).await, 400);
    let before_b: BTreeMap<i32, u64> = records.clone();
    write_through(&[&a, &b], 60..180, &mut records).await;
    reads_agree_with_a_full_replay(&[&a, &b], brokers, topic).await;

    let replay = full_replay(brokers, topic).await;
    for node in [&a, &b] {
        let owned = node.owned();
        let mine = replay
            .iter()
            .filter(|s| owned.contains(&node.store.partition_of(&s.workflow_id)))
            .count();
        assert!(
            mine > 0 && mine < replay.len(),
            "{} keeps {mine} of {}",
            node.name,
            replay.len()
        );
        if !on_disk {
            // In memory, a partition given up is forgotten.
            assert_eq!(
                node.store.consumed().live,
                mine,
                "{} holds only its own",
                node.name
            );
        }
    }
    // b never read a's partitions. Of its own, it read every record a wrote,
    // and of its own writes only those the tail reached before their
    // acknowledgement (a store does not fetch the writes it acknowledged).
    let b_partitions = b.owned();
    let b_read: u64 = records
        .iter()
        .filter(|(p, _)| b_partitions.contains(p))
        .map(|(_, n)| n)
        .sum();
    let b_wrote: u64 = (60..180usize)
        .filter(|i| i % 2 == 1)
        .filter(|i| b_partitions.contains(&b.store.partition_of(&format!("w-{i}"))))
        .map(|i| if i % 10 == 9 { 2 } else { 1 })
        .sum();
    let read = b.store.consumed().records;
    assert!(
        (b_read - b_wrote..=b_read).contains(&read),
        "b read {read} records: only its partitions' ({b_read}), all but at most the {b_wrote} it wrote"
    );

    // b leaves: a takes its partitions back.
    let read_before = a.store.consumed().records;
    b.leave().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.owned().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "a never took the partitions back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read_again = a.store.consumed().records - read_before;
    let since: u64 = b_partitions
        .iter()
        .map(|p| records.get(p).copied().unwrap_or(0) - before_b.get(p).copied().unwrap_or(0))
        .sum();
    let whole: u64 = b_partitions
        .iter()
        .map(|p| records.get(p).copied().unwrap_or(0))
        .sum();
    if on_disk {
        assert_eq!(
            read_again, since,
            "from the checkpoint: only what b's hosts wrote since ({whole} in all)"
        );
    } else {
        assert_eq!(
            read_again, whole,
            "in memory: the partitions again from their start"
        );
    }
    reads_agree_with_a_full_replay(&[&a], brokers, topic).await;
    a.leave().await;
    let _ = std::fs::remove_dir_all(dirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_hosts_keep_only_their_partitions_in_memory() {
    let cluster = DevCluster::start("wf-own", 6).expect("mock cluster");
    hosts_keep_only_their_partitions(&cluster.bootstrap_servers(), "wf-own", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_hosts_keep_only_their_partitions_on_disk() {
    let cluster = DevCluster::start("wf-own-disk", 6).expect("mock cluster");
    hosts_keep_only_their_partitions(&cluster.bootstrap_servers(), "wf-own-disk", true).await;
}

/// On a real broker: as on the mock where owners can be named. Where the
/// broker drops commit metadata (tansu 0.6), no host can name another: a
/// read of an id another host keeps fails with `unavailable`, never answers
/// "not found", and a host's own ids still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_hosts_keep_only_their_partitions() {
    let Some(brokers) = real_broker() else { return };
    let topic = fresh_topic("own");
    let a = keeping_own(&brokers, &topic, None).await;
    settled(&[&a]).await;
    if wf_tests::kafka::keeps_commit_metadata(&brokers, &topic) {
        a.leave().await;
        hosts_keep_only_their_partitions(&brokers, &fresh_topic("own-named"), true).await;
        return;
    }
    let b = keeping_own(&brokers, &topic, None).await;
    settled(&[&a, &b]).await;
    let id_of = |node: &Node| {
        (0..)
            .map(|n| format!("w-{n}"))
            .find(|id| node.owns(id))
            .unwrap()
    };
    let (at_a, at_b) = (id_of(&a), id_of(&b));
    let state = wf_tests::kafka::state(&at_a, "r", WorkflowStatus::Completed);
    a.store.save(state.clone()).await.unwrap();
    assert_eq!(a.store.load(&at_a).await.unwrap().as_deref(), Some(&state));
    for (node, id) in [(&b, &at_a), (&a, &at_b)] {
        match node.store.load(id).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("not known"), "{message}");
            }
            other => panic!("a read of another host's id on a nameless broker: {other:?}"),
        }
        let listed = node
            .store
            .list(&wf_host::store::ListFilter::default())
            .await;
        assert!(
            matches!(listed, Err(StoreError::Unavailable(_))),
            "{listed:?}"
        );
    }
    b.leave().await;
    a.leave().await;
}
