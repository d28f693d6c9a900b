//! Scale-out: hosts sharing one topic as a Kafka consumer group, on
//! librdkafka's in-process mock cluster (6 partitions), all in this process:
//!
//! - **throughput**: batches of 300 workflows of the `steps` test guest
//!   (`{"steps":2,"step_ms":0}`: two durable activities that return at once),
//!   each started at its owner, all started at once with `execute`, then
//!   every handle awaited; wall time per batch, as workflows/s, with 1, 2 and
//!   3 hosts in one group. Baselines, measured in the same run: one host
//!   without a group (what membership itself costs: the ownership check of
//!   each start, the registration of each save with the ownership, the group
//!   consumer), and one host in a group (what more hosts add). Then 2 and 3
//!   hosts keeping only their own partitions (`owned_partitions_only`, over
//!   HTTP). Each case prints the records each host decoded and the states
//!   it holds, and, with more than one host, the p50/p99 of a load at the
//!   first host of ids it owns and of ids another host owns.
//! - **failover**: 2 hosts, 100 workflows (`{"steps":4,"step_ms":200}`)
//!   spread over both; one host leaves mid-run (its follower stops, its runs
//!   are abandoned, its store closes and leaves the group). Times from the
//!   start of the leave until the survivor owns every partition, until it
//!   writes a second `workflow_started` event for the first of the departed
//!   host's workflows, and until all of those completed; medians of 5.
//!
//! The mock cluster makes every rebalance wait the session timeout less 1 s
//! for members to rejoin, so the group's session timeout is 3 s here (the
//! default is 10 s) and a rebalance takes about 2 s; see the summary.
//!
//! `cargo bench -p wf-host --bench scale_out`; the summary is printed at the
//! end and recorded in BENCHMARKS.md. `WF_BENCH=throughput` (or `failover`)
//! runs one part only.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use wf_host::model::{EventType, WorkflowState, WorkflowStatus};
use wf_host::store::WorkflowStore;
use wf_host::{ExecuteOptions, WorkflowHandle};
use wf_store_kafka::DevCluster;
use wf_tests::bench::{median, runtime, selected, timed};
use wf_tests::group::{Node, ended_or_handed_over, settled};

const PARTITIONS: i32 = 6;
/// The group's session timeout: short, because the mock cluster's rebalances
/// wait the session timeout less 1 s.
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
/// Workflows per throughput batch.
const BATCH: usize = 300;
const BATCH_INPUT: &str = r#"{"steps":2,"step_ms":0}"#;
/// Workflows running when a host leaves, and their input (about 800 ms each).
const FAILOVER_WORKFLOWS: usize = 100;
const FAILOVER_INPUT: &str = r#"{"steps":4,"step_ms":200}"#;
const FAILOVER_SAMPLES: usize = 5;
/// Sum of n² for n < 4: what a failover workflow returns.
const FAILOVER_RESULT: &str = "14";

/// The throughput cases: label, hosts, whether they join a group, whether
/// each keeps only its own partitions.
const CASES: [(&str, usize, bool, bool); 6] = [
    ("1 host, no group", 1, false, false),
    ("1 host, group", 1, true, false),
    ("2 hosts, group", 2, true, false),
    ("3 hosts, group", 3, true, false),
    ("2 hosts, own partitions", 2, true, true),
    ("3 hosts, own partitions", 3, true, true),
];
/// Loads timed per host and case, of ids another host owns and of its own.
const LOADS: usize = 2000;

/// Starts `ids` at their owners, all at once; returns (node index, handle).
async fn start_at_owners(
    nodes: &[&Node],
    ids: impl Iterator<Item = String>,
    input: &str,
) -> Vec<(usize, WorkflowHandle)> {
    let starts = ids.map(|id| {
        let at = nodes
            .iter()
            .position(|n| n.owns(&id))
            .unwrap_or_else(|| panic!("no host owns {id}"));
        let node = nodes[at];
        async move {
            let handle = node
                .host
                .execute(&node.module, ExecuteOptions::new(input).id(id))
                .await
                .expect("start at the owner");
            (at, handle)
        }
    });
    futures::future::join_all(starts).await
}

/// Batches started so far: each batch's ids are new (a start of an id
/// that ended only answers with the stored run).
static BATCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One throughput batch: `BATCH` new workflows started at their owners, to
/// their end.
async fn batch(nodes: &[&Node]) {
    let n = BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ids = (0..BATCH).map(move |i| format!("wf-{n}-{i:03}"));
    for (_, handle) in start_at_owners(nodes, ids, BATCH_INPUT).await {
        let id = handle.id().to_owned();
        let state = handle
            .result()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            state.status,
            WorkflowStatus::Completed,
            "{id}: {}",
            state.error
        );
    }
}

fn throughput(c: &mut Criterion) {
    if !selected("throughput") {
        return;
    }
    let rt = runtime();
    let mut group = c.benchmark_group("scale_out_throughput");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for (label, hosts, grouped, own_only) in CASES {
        // A cluster of its own per case: no other case's records or members.
        let topic = "bench-scale";
        let cluster = DevCluster::start(topic, PARTITIONS).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        let joined = Instant::now();
        let nodes: Vec<Node> = rt.block_on(async {
            let mut nodes = Vec::new();
            for n in 0..hosts {
                if own_only {
                    nodes.push(
                        Node::join_keeping_own(&brokers, topic, PARTITIONS, SESSION_TIMEOUT, None)
                            .await,
                    );
                    continue;
                }
                let group = grouped.then_some("bench-scale-hosts");
                nodes.push(
                    Node::join(
                        &brokers,
                        topic,
                        PARTITIONS,
                        group,
                        SESSION_TIMEOUT,
                        &format!("host-{n}"),
                    )
                    .await,
                );
            }
            settled(&nodes.iter().collect::<Vec<_>>()).await;
            nodes
        });
        let refs: Vec<&Node> = nodes.iter().collect();
        eprintln!(
            "{label}: joined and settled in {:.1} s: {:?}",
            joined.elapsed().as_secs_f64(),
            refs.iter().map(|n| n.owned()).collect::<Vec<_>>()
        );
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                timed(label, iters, || {
                    rt.block_on(async {
                        for _ in 0..iters {
                            batch(&refs).await;
                        }
                    });
                })
            })
        });
        // The partitions did not move while measuring.
        let owned: Vec<Vec<i32>> = refs.iter().map(|n| n.owned()).collect();
        eprintln!("{label}: owned at the end: {owned:?}");
        // What each host reads and holds: every host tails every partition
        // (the topic's totals whatever the hosts), unless it keeps only its own.
        let written: i64 = rt
            .block_on(refs[0].store.end_offsets())
            .expect("the topic's end")
            .iter()
            .map(|(_, end)| end)
            .sum();
        for node in &refs {
            let consumed = node.store.consumed();
            println!(
                "{label}: {}: {} records decoded ({:.0} % of the {written} written), {} states cached, {:.1} MB cached",
                node.name,
                consumed.records,
                100.0 * consumed.records as f64 / written as f64,
                consumed.live,
                node.store.cache_bytes() as f64 / f64::from(1 << 20)
            );
        }
        if refs.len() > 1 {
            rt.block_on(loads(label, &refs));
        }
        rt.block_on(async {
            for node in nodes {
                node.leave().await;
            }
        });
        drop(cluster);
    }
    group.finish();
}

/// Times `LOADS` loads at the first host of ids it owns and of ids another
/// host owns (read there when it keeps only its own partitions); prints
/// their p50 and p99.
async fn loads(label: &str, nodes: &[&Node]) {
    // The last batch's ids: stored, ended.
    let last = BATCHES.load(std::sync::atomic::Ordering::Relaxed) - 1;
    let ids: Vec<String> = (0..BATCH).map(|i| format!("wf-{last}-{i:03}")).collect();
    let reader = nodes[0];
    for (kind, owned) in [("own", true), ("remote", false)] {
        let picked: Vec<&String> = ids.iter().filter(|id| reader.owns(id) == owned).collect();
        let mut times = Vec::with_capacity(LOADS);
        for id in picked.iter().cycle().take(LOADS) {
            let started = Instant::now();
            let state = reader.store.load(id).await.expect("load");
            times.push(started.elapsed());
            assert!(state.is_some(), "{id} is stored");
        }
        times.sort();
        println!(
            "{label}: {kind} load p50 {:.1} µs, p99 {:.1} µs",
            times[LOADS / 2].as_secs_f64() * 1e6,
            times[LOADS * 99 / 100].as_secs_f64() * 1e6
        );
    }
}

/// One failover sample's times, from the start of the leave.
#[derive(Debug, Clone)]
struct Failover {
    /// `follower.abort(); abandon_all; close` of the leaving host.
    leave_call: Duration,
    /// The part of it that `abandon_all` took (the rest is `close`).
    abandoned: Duration,
    /// Until the survivor gave up any of its own partitions (never, with
    /// incremental rebalances).
    survivor_revoked: Option<Duration>,
    /// Until the survivor owns every partition.
    owns_all: Duration,
    /// Until the survivor wrote a second `workflow_started` for the first of
    /// the departed host's workflows.
    first_resumed: Duration,
    /// Until all the departed host's workflows completed.
    all_completed: Duration,
    /// Until every workflow (both hosts') completed.
    everything_completed: Duration,
    departed: usize,
    /// The survivor's own workflows that it started a second time too (none
    /// unless it lost its own partitions meanwhile).
    own_resumed: usize,
    own: usize,
}

static FAILOVERS: Mutex<Vec<Failover>> = Mutex::new(Vec::new());

fn starts(state: &WorkflowState) -> usize {
    state
        .history
        .iter()
        .filter(|e| e.kind == EventType::WorkflowStarted)
        .count()
}

async fn failover_sample(sample: usize) -> Failover {
    let topic = "bench-failover";
    let cluster = DevCluster::start(topic, PARTITIONS).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let group = Some("bench-failover-hosts");
    let a = Node::join(
        &brokers,
        topic,
        PARTITIONS,
        group,
        SESSION_TIMEOUT,
        "host-a",
    )
    .await;
    let b = Node::join(
        &brokers,
        topic,
        PARTITIONS,
        group,
        SESSION_TIMEOUT,
        "host-b",
    )
    .await;
    settled(&[&a, &b]).await;

    let ids = (0..FAILOVER_WORKFLOWS).map(|i| format!("fo-{sample}-{i:03}"));
    let handles = start_at_owners(&[&a, &b], ids, FAILOVER_INPUT).await;
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    for (at, handle) in &handles {
        let on = if *at == 0 { &mut on_a } else { &mut on_b };
        on.push(handle.id().to_owned());
    }
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "spread: {} / {}",
        on_a.len(),
        on_b.len()
    );
    // Mid-run: each step takes 200 ms, so about one of four is done.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running_on_b = b.host.running().len();
    assert!(running_on_b > 0, "host b must leave mid-run");

    let left = Instant::now();
    // Whether (and when) the survivor gives up any of its own partitions
    // before it owns them all (the group's rebalances are incremental, so
    // it should not).
    let mut changes = a.store.ownership().expect("group").subscribe();
    changes.borrow_and_update();
    let survivor = tokio::spawn(async move {
        let mut revoked = None;
        while changes.changed().await.is_ok() {
            let change = changes.borrow_and_update().clone();
            if revoked.is_none() && !change.lost.is_empty() {
                revoked = Some(left.elapsed());
            }
            if change.owned.len() == PARTITIONS as usize {
                break;
            }
        }
        revoked
    });
    // `Node::leave`, timed in its two parts.
    if let Some(follower) = b.follower {
        follower.abort();
    }
    b.host.abandon_all().await;
    let abandoned = left.elapsed();
    b.store.close().await.expect("closing the store");
    let leave_call = left.elapsed();

    let (mut owns_all, mut first_resumed, mut all_completed) = (None, None, None);
    let deadline = left + Duration::from_secs(120);
    let everything_completed = loop {
        let now = left.elapsed();
        if owns_all.is_none() && a.owned().len() == PARTITIONS as usize {
            owns_all = Some(now);
        }
        let (mut resumed, mut completed) = (0, 0);
        for id in &on_b {
            if let Some(state) = a.store.load(id).await.unwrap() {
                resumed += usize::from(starts(&state) >= 2);
                completed += usize::from(state.status == WorkflowStatus::Completed);
            }
        }
        if first_resumed.is_none() && resumed > 0 {
            first_resumed = Some(now);
        }
        if all_completed.is_none() && completed == on_b.len() {
            all_completed = Some(now);
        }
        let mut own_completed = 0;
        for id in &on_a {
            let state = a.store.load(id).await.unwrap();
            own_completed +=
                usize::from(state.is_some_and(|s| s.status == WorkflowStatus::Completed));
        }
        if owns_all.is_some() && all_completed.is_some() && own_completed == on_a.len() {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "failover did not finish in 120 s: owns all {owns_all:?}, b's resumed {resumed}, completed {completed}/{}, a's completed {own_completed}/{}",
            on_b.len(),
            on_a.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    let survivor_revoked = survivor.await.unwrap();

    // Each workflow completed with the right result; a handle ends with the
    // final state or as handed over.
    let mut own_resumed = 0;
    for (at, handle) in handles {
        let id = ended_or_handed_over(at, handle).await;
        let state = a.store.load(&id).await.unwrap().expect("stored");
        assert_eq!(state.status, WorkflowStatus::Completed, "{id}");
        assert_eq!(state.result.as_deref(), Some(FAILOVER_RESULT), "{id}");
        if at == 0 && starts(&state) >= 2 {
            own_resumed += 1;
        }
    }
    a.leave().await;
    drop(cluster);
    Failover {
        leave_call,
        abandoned,
        survivor_revoked,
        owns_all: owns_all.unwrap(),
        first_resumed: first_resumed.expect("b's workflows resumed"),
        all_completed: all_completed.unwrap(),
        everything_completed,
        departed: on_b.len(),
        own_resumed,
        own: on_a.len(),
    }
}

fn failover(_: &mut Criterion) {
    if !selected("failover") {
        return;
    }
    let rt = runtime();
    for sample in 0..FAILOVER_SAMPLES {
        let result = rt.block_on(failover_sample(sample));
        eprintln!("failover sample {sample}: {result:?}");
        FAILOVERS.lock().unwrap().push(result);
    }
}

/// Median, min and max of one failover time, in seconds.
fn spread(samples: &[Failover], time: impl Fn(&Failover) -> Duration) -> String {
    let mut times: Vec<Duration> = samples.iter().map(time).collect();
    times.sort();
    format!(
        "{:.2} s [{:.2}-{:.2}]",
        times[times.len() / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    )
}

fn summary(_: &mut Criterion) {
    println!(
        "\n== scale-out summary (medians; librdkafka mock cluster in this process, {PARTITIONS} partitions, session timeout {} s) ==",
        SESSION_TIMEOUT.as_secs()
    );
    let rate = |d: Duration| BATCH as f64 / d.as_secs_f64();
    let no_group = median(CASES[0].0);
    let one_host = median(CASES[1].0);
    if CASES.iter().any(|(label, ..)| median(label).is_some()) {
        println!(
            "throughput: batches of {BATCH} workflows {BATCH_INPUT}, each started at its owner:"
        );
    }
    for (label, ..) in CASES {
        let Some(time) = median(label) else { continue };
        let mut line = format!("  {label:<17} {:>7.0} workflows/s", rate(time));
        if let Some(base) = one_host.filter(|_| label != CASES[1].0 && label != CASES[0].0) {
            line += &format!(
                "  {:.2}x 1 host in a group",
                base.as_secs_f64() / time.as_secs_f64()
            );
        }
        if let Some(base) = no_group.filter(|_| label != CASES[0].0) {
            line += &format!(
                "  {:.2}x 1 host without a group",
                base.as_secs_f64() / time.as_secs_f64()
            );
        }
        println!("{line}");
    }
    let samples = FAILOVERS.lock().unwrap().clone();
    if !samples.is_empty() {
        println!(
            "failover: 2 hosts, {FAILOVER_WORKFLOWS} workflows {FAILOVER_INPUT}, one host leaves mid-run; medians of {} [min-max], from the start of the leave:",
            samples.len()
        );
        println!(
            "  departed host's workflows: {:?}; survivor's own: {:?}",
            samples.iter().map(|s| s.departed).collect::<Vec<_>>(),
            samples.iter().map(|s| s.own).collect::<Vec<_>>()
        );
        println!(
            "  leave call (abandon_all + close):        {}",
            spread(&samples, |s| s.leave_call)
        );
        println!(
            "      of which abandon_all:                {}",
            spread(&samples, |s| s.abandoned)
        );
        let revoked: Vec<String> = samples
            .iter()
            .filter_map(|s| s.survivor_revoked)
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect();
        println!(
            "  survivor gave up any of its own partitions: {}",
            if revoked.is_empty() {
                "never".to_owned()
            } else {
                format!("at {}", revoked.join(", "))
            }
        );
        println!(
            "  (a) survivor owns all {PARTITIONS} partitions:      {}",
            spread(&samples, |s| s.owns_all)
        );
        println!(
            "  (b) first departed workflow restarted:   {}",
            spread(&samples, |s| s.first_resumed)
        );
        println!(
            "  (c) all departed workflows completed:    {}",
            spread(&samples, |s| s.all_completed)
        );
        println!(
            "  every workflow completed:                {}",
            spread(&samples, |s| s.everything_completed)
        );
        println!(
            "  survivor's own workflows restarted too: {:?}",
            samples.iter().map(|s| s.own_resumed).collect::<Vec<_>>()
        );
        println!(
            "  note: the mock cluster holds every rebalance for the session timeout less 1 s (~{} s here)",
            SESSION_TIMEOUT.as_secs() - 1
        );
    }
}

criterion_group!(benches, throughput, failover, summary);
criterion_main!(benches);
