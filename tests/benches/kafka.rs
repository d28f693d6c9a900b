//! The Kafka store against raw rdkafka on the same in-process mock cluster,
//! in the same run: save throughput vs a raw `FutureProducer` sending the
//! same keys and bytes, replay vs a raw consumer reading the same topic, and
//! the cache's memory per live workflow vs its JSON size.
//!
//! `cargo bench -p wf-host --bench kafka`; the ratios are printed at the end
//! and recorded in BENCHMARKS.md. `WF_BENCH=save` (or `replay`, `memory`)
//! runs one part only.
#![allow(unsafe_code, reason = "the counting global allocator below")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::runtime::Runtime;
use wf_host::model::{self, WorkflowState, WorkflowStatus};
use wf_host::store::validate::encode_for_save;
use wf_host::store::{StoreLimits, WorkflowStore};
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
use wf_tests::bench::{median, record, runtime, selected, smoke_ratio, typical_state as state};

/// Counts live heap bytes, to measure the cache.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn raw_producer(brokers: &str) -> FutureProducer {
    // The store's own producer settings, so only the store's work differs.
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .set("message.max.bytes", "1200000")
        .create()
        .unwrap()
}

const SAVES_PER_ITERATION: usize = 2_000;

/// Whether the part `name` should run (`WF_BENCH` unset: all).
fn save_throughput(c: &mut Criterion) {
    if !selected("save") {
        return;
    }
    let rt = runtime();
    let cluster = DevCluster::start("bench-save", 16).unwrap();
    let brokers = cluster.bootstrap_servers();
    let store = Arc::new(
        rt.block_on(KafkaStore::open(
            KafkaConfig::new(&brokers).topic("bench-save"),
        ))
        .unwrap(),
    );
    // The raw producer writes to a topic of its own, so the store's tail
    // (which reads back every record of its topic) does not slow the baseline.
    cluster
        .mock()
        .create_topic("bench-save-raw", 16, 1)
        .unwrap();
    cluster
        .mock()
        .create_topic("bench-save-tailed", 16, 1)
        .unwrap();
    let producer = Arc::new(raw_producer(&brokers));
    let states: Vec<WorkflowState> = (0..SAVES_PER_ITERATION)
        .map(|i| state(&format!("wf-{i:06}"), i as u64))
        .collect();
    let encoded: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        states
            .iter()
            .map(|s| (s.workflow_id.clone(), model::encode_state(s).unwrap()))
            .collect(),
    );

    let mut group = c.benchmark_group("kafka_save");
    group.throughput(Throughput::Elements(SAVES_PER_ITERATION as u64));
    group.sample_size(10);
    for concurrency in [1usize, 64] {
        let name = format!("store/{concurrency}");
        group.bench_function(BenchmarkId::new("store", concurrency), |b| {
            b.iter_custom(|iterations| {
                // The states a guest would hand over, built before the clock starts.
                let batches: Vec<Vec<WorkflowState>> =
                    (0..iterations).map(|_| states.clone()).collect();
                let started = Instant::now();
                for batch in batches {
                    rt.block_on(async {
                        let saves = batch.into_iter().map(|s| {
                            let store = store.clone();
                            async move { store.save(s).await.unwrap() }
                        });
                        futures::stream::iter(saves)
                            .buffer_unordered(concurrency)
                            .collect::<Vec<()>>()
                            .await;
                    });
                }
                let elapsed = started.elapsed();
                record(&name, elapsed, iterations);
                elapsed
            })
        });
        let raw_sends = |topic: &'static str, iterations: u64| {
            let started = Instant::now();
            for _ in 0..iterations {
                rt.block_on(async {
                    let sends = (0..encoded.len()).map(|i| {
                        let producer = producer.clone();
                        let encoded = encoded.clone();
                        async move {
                            let (key, value) = &encoded[i];
                            let record = FutureRecord::to(topic).key(key).payload(value);
                            producer.send(record, Timeout::Never).await.unwrap();
                        }
                    });
                    futures::stream::iter(sends)
                        .buffer_unordered(concurrency)
                        .collect::<Vec<()>>()
                        .await;
                });
            }
            started.elapsed()
        };
        let name = format!("raw/{concurrency}");
        group.bench_function(BenchmarkId::new("raw_producer", concurrency), |b| {
            b.iter_custom(|iterations| {
                let elapsed = raw_sends("bench-save-raw", iterations);
                record(&name, elapsed, iterations);
                elapsed
            })
        });
        // The same, with a raw consumer reading the topic back in batches
        // (64 KiB or 100 ms), as the store's tail did before it stopped
        // fetching its host's own writes: what reading a topic back costs
        // at the least.
        let name = format!("raw_tailed/{concurrency}");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tail = {
            let stop = stop.clone();
            let brokers = brokers.clone();
            std::thread::spawn(move || {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("group.id", "bench-tail")
                    .set("enable.auto.commit", "false")
                    .set("fetch.wait.max.ms", "100")
                    .set("fetch.min.bytes", "65536")
                    .create()
                    .unwrap();
                let mut assignment = TopicPartitionList::new();
                for p in 0..16 {
                    assignment
                        .add_partition_offset("bench-save-tailed", p, Offset::End)
                        .unwrap();
                }
                consumer.assign(&assignment).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                        std::hint::black_box(&message);
                    }
                }
            })
        };
        group.bench_function(BenchmarkId::new("raw_producer_tailed", concurrency), |b| {
            b.iter_custom(|iterations| {
                let elapsed = raw_sends("bench-save-tailed", iterations);
                record(&name, elapsed, iterations);
                elapsed
            })
        });
        stop.store(true, Ordering::Relaxed);
        tail.join().unwrap();
    }
    // The store's own CPU per save, without a broker: validation and encoding.
    group.bench_function("encode_only", |b| {
        b.iter_custom(|iterations| {
            let batches: Vec<Vec<WorkflowState>> =
                (0..iterations).map(|_| states.clone()).collect();
            let limits = StoreLimits::default();
            let started = Instant::now();
            for batch in batches {
                for mut state in batch {
                    std::hint::black_box(encode_for_save("bench", &mut state, &limits).unwrap());
                }
            }
            let elapsed = started.elapsed();
            record("encode", elapsed, iterations);
            elapsed
        })
    });
    // The replay's CPU per record, without a broker: decoding a state.
    group.bench_function("decode_only", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                for (_, value) in encoded.iter() {
                    std::hint::black_box(model::decode_state(value).unwrap());
                }
            }
            let elapsed = started.elapsed();
            record("decode", elapsed, iterations);
            elapsed
        })
    });
    group.finish();
    rt.block_on(store.close()).unwrap();
}

const REPLAY_TOPIC: &str = "bench-replay";
const REPLAY_RECORDS: usize = 500_000;
const REPLAY_KEYS: usize = 100_000;
// The mock cluster keeps at most 5 MiB per partition: 500 000 records of
// ~1 KiB need more than 100 partitions.
const REPLAY_PARTITIONS: i32 = 160;

/// Produces `records` states over `keys` ids onto `topic`, acknowledged;
/// returns the bytes of all values.
fn fill_topic(rt: &Runtime, brokers: &str, topic: &str, records: usize, keys: usize) -> usize {
    let producer = raw_producer(brokers);
    let mut bytes = 0usize;
    rt.block_on(async {
        let mut pending = futures::stream::FuturesUnordered::new();
        for i in 0..records {
            let id = format!("wf-{:06}", i % keys);
            let value = model::encode_state(&state(&id, i as u64)).unwrap();
            bytes += value.len();
            let producer = &producer;
            pending.push(async move {
                let record = FutureRecord::to(topic).key(&id).payload(&value);
                producer.send(record, Timeout::Never).await.unwrap();
            });
            if pending.len() >= 10_000 {
                pending.next().await;
            }
        }
        while pending.next().await.is_some() {}
    });
    producer.flush(Timeout::Never).unwrap();
    bytes
}

/// Reads every partition of the topic to its end, the way a raw client
/// would, without decoding; returns the record count.
fn raw_replay(brokers: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..REPLAY_PARTITIONS {
        assignment
            .add_partition_offset(REPLAY_TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let (mut records, mut eof) = (0, 0);
    while eof < REPLAY_PARTITIONS {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(message)) => {
                records += 1;
                std::hint::black_box(&message);
            }
            Some(Err(KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("raw replay stalled"),
        }
    }
    records
}

fn replay(c: &mut Criterion) {
    if !selected("replay") {
        return;
    }
    let rt = runtime();
    let cluster = DevCluster::start(REPLAY_TOPIC, REPLAY_PARTITIONS).unwrap();
    let brokers = cluster.bootstrap_servers();
    let bytes = fill_topic(&rt, &brokers, REPLAY_TOPIC, REPLAY_RECORDS, REPLAY_KEYS);
    eprintln!(
        "replay topic: {REPLAY_RECORDS} records, {REPLAY_KEYS} keys, mean value {} bytes",
        bytes / REPLAY_RECORDS
    );
    assert_eq!(
        raw_replay(&brokers),
        REPLAY_RECORDS,
        "the mock cluster kept every record"
    );

    let mut group = c.benchmark_group("kafka_replay");
    group.throughput(Throughput::Elements(REPLAY_RECORDS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("store_open", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let store = rt
                    .block_on(KafkaStore::open(
                        KafkaConfig::new(&brokers).topic(REPLAY_TOPIC),
                    ))
                    .unwrap();
                elapsed += started.elapsed();
                assert_eq!(store.replay_report().records, REPLAY_RECORDS as u64);
                rt.block_on(store.close()).unwrap();
            }
            record("replay/store", elapsed, iterations);
            elapsed
        })
    });
    group.bench_function("raw_consumer", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                assert_eq!(raw_replay(&brokers), REPLAY_RECORDS);
            }
            let elapsed = started.elapsed();
            record("replay/raw", elapsed, iterations);
            elapsed
        })
    });
    group.finish();
}

/// Live heap bytes per cached workflow vs the size of its JSON.
fn cache_memory(_: &mut Criterion) {
    if !selected("memory") {
        return;
    }
    const KEYS: usize = 50_000;
    let rt = runtime();
    let cluster = DevCluster::start("bench-memory", 32).unwrap();
    let brokers = cluster.bootstrap_servers();
    let json_bytes = fill_topic(&rt, &brokers, "bench-memory", KEYS, KEYS);
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    let store = rt
        .block_on(KafkaStore::open(
            KafkaConfig::new(&brokers).topic("bench-memory"),
        ))
        .unwrap();
    let after = LIVE_BYTES.load(Ordering::SeqCst);
    assert_eq!(store.replay_report().live, KEYS);
    let per_workflow = (after - before) as f64 / KEYS as f64;
    let per_json = json_bytes as f64 / KEYS as f64;
    println!(
        "\ncache memory: {per_workflow:.0} bytes per live workflow (Rust heap, cache and store) \
         for {per_json:.0}-byte JSON states: {:.2}x (target <= 1.5x)",
        per_workflow / per_json
    );
    rt.block_on(store.close()).unwrap();
}

/// Load latencies of `ids` from `store`, one call at a time: (p50, p99).
fn load_latencies(rt: &Runtime, store: &KafkaStore, ids: &[String]) -> (Duration, Duration) {
    let mut times: Vec<Duration> = rt.block_on(async {
        let mut times = Vec::with_capacity(ids.len());
        for id in ids {
            let started = Instant::now();
            let state = store.load(id).await.unwrap();
            times.push(started.elapsed());
            assert!(state.is_some(), "{id}");
        }
        times
    });
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// The local state store beside the in-memory cache on the same topic:
/// the restart from a checkpoint vs a full replay, the memory each holds
/// and the latency of a load. `WF_BENCH_WORKFLOWS` sets the size
/// (default 1 000 000 workflows of ~1.2 KiB).
fn local_state(_: &mut Criterion) {
    if !selected("local") {
        return;
    }
    const TOPIC: &str = "bench-local";
    let workflows: usize = std::env::var("WF_BENCH_WORKFLOWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    // The mock cluster keeps at most 5 MiB and 100 000 records per partition.
    let partitions = (workflows * 1300 / (4 << 20)).max(16) as i32;
    let rt = runtime();
    let cluster = DevCluster::start(TOPIC, partitions).unwrap();
    let brokers = cluster.bootstrap_servers();
    let json = fill_topic(&rt, &brokers, TOPIC, workflows, workflows);
    eprintln!(
        "local state: {workflows} workflows, {} MB of JSON, {partitions} partitions",
        json >> 20
    );
    // Every 97th id, in an order that is not the ids' own.
    let ids: Vec<String> = (0..10_000)
        .map(|i| format!("wf-{:06}", (i * 7_919 * 97) % workflows))
        .collect();

    let heap = || LIVE_BYTES.load(Ordering::SeqCst);
    let before = heap();
    let started = Instant::now();
    let memory = rt
        .block_on(KafkaStore::open(KafkaConfig::new(&brokers).topic(TOPIC)))
        .unwrap();
    let full_replay = started.elapsed();
    let memory_heap = heap() - before;
    assert_eq!(memory.replay_report().live, workflows);
    let _ = load_latencies(&rt, &memory, &ids);
    let (memory_p50, memory_p99) = load_latencies(&rt, &memory, &ids);
    rt.block_on(memory.close()).unwrap();
    drop(memory);

    let dir = std::env::temp_dir().join(format!("wf-bench-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = KafkaConfig::new(&brokers).topic(TOPIC).state_dir(&dir);
    let started = Instant::now();
    let first = rt.block_on(KafkaStore::open(config.clone())).unwrap();
    let first_open = started.elapsed();
    rt.block_on(first.close()).unwrap();
    drop(first);

    let before = heap();
    let started = Instant::now();
    let disk = rt.block_on(KafkaStore::open(config)).unwrap();
    let restart = started.elapsed();
    let disk_heap = heap() - before;
    assert_eq!(disk.replay_report().restored, workflows);
    let (cold_p50, cold_p99) = load_latencies(&rt, &disk, &ids);
    let (hot_p50, hot_p99) = load_latencies(&rt, &disk, &ids);
    let disk_heap_loaded = heap() - before;
    rt.block_on(disk.close()).unwrap();
    drop(disk);
    let file_bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let _ = std::fs::remove_dir_all(&dir);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mb = |b: usize| b as f64 / f64::from(1 << 20);
    println!(
        "\nlocal state, {workflows} workflows ({:.0} MB of JSON):",
        mb(json)
    );
    println!(
        "  restart from the checkpoint {:.3} s vs a full replay {:.2} s: {:.0}x faster (target >= 20x, < 2 s)",
        restart.as_secs_f64(),
        full_replay.as_secs_f64(),
        full_replay.as_secs_f64() / restart.as_secs_f64()
    );
    println!(
        "  first open with local state (replay and write it): {:.2} s, {:.2}x the in-memory replay; file {:.0} MB",
        first_open.as_secs_f64(),
        first_open.as_secs_f64() / full_replay.as_secs_f64(),
        file_bytes as f64 / f64::from(1 << 20)
    );
    println!(
        "  heap after open: local state {:.1} MB vs in-memory cache {:.0} MB: {:.1} % (target <= 25 %); {:.1} MB after {} loads",
        mb(disk_heap),
        mb(memory_heap),
        100.0 * disk_heap as f64 / memory_heap as f64,
        mb(disk_heap_loaded),
        ids.len()
    );
    println!(
        "  load p50/p99: in-memory {:.2}/{:.2} us; local state hot {:.2}/{:.2} us ({:.2}x, target <= 2x), cold {:.2}/{:.2} us (target < 20 us)",
        us(memory_p50),
        us(memory_p99),
        us(hot_p50),
        us(hot_p99),
        hot_p50.as_secs_f64() / memory_p50.as_secs_f64(),
        us(cold_p50),
        us(cold_p99)
    );
}

/// Saves per second of `rounds` rounds of `SAVES_PER_ITERATION` saves, 64 in
/// flight (the median round).
fn save_rate(rt: &Runtime, store: &Arc<KafkaStore>, rounds: usize, run: &str) -> f64 {
    let mut rates: Vec<f64> = (0..rounds)
        .map(|round| {
            let states: Vec<WorkflowState> = (0..SAVES_PER_ITERATION)
                .map(|i| {
                    state(
                        &format!("live-{i:06}"),
                        (round * SAVES_PER_ITERATION + i) as u64,
                    )
                })
                .map(|mut s| {
                    s.run_id = format!("{run}-{round}");
                    s
                })
                .collect();
            let started = Instant::now();
            rt.block_on(async {
                let saves = states.into_iter().map(|s| {
                    let store = store.clone();
                    async move { store.save(s).await.unwrap() }
                });
                futures::stream::iter(saves)
                    .buffer_unordered(64)
                    .collect::<Vec<()>>()
                    .await;
            });
            SAVES_PER_ITERATION as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Retention deleting 100 000 finished workflows past their period while
/// saves run beside it: the saves' throughput with and without it.
fn retention(_: &mut Criterion) {
    if !selected("retention") {
        return;
    }
    const EXPIRED: usize = 100_000;
    let rt = runtime();
    // On the broker WF_KAFKA_BROKERS names, if any, else on the mock cluster
    // with partitions enough to keep each far below its 5 MiB bound (it
    // slows as partitions reach it), with the saves of the rounds beside.
    let real = std::env::var("WF_KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.trim().is_empty());
    let (_cluster, brokers, topic) = match real {
        Some(brokers) => {
            let topic = wf_tests::kafka::fresh_topic("bench-retention");
            let mut config = KafkaConfig::new(&brokers).topic(&topic);
            config.partitions = 12;
            let created = rt.block_on(KafkaStore::open(config)).unwrap();
            rt.block_on(created.close()).unwrap();
            (None, brokers, topic)
        }
        None => {
            let cluster = DevCluster::start("bench-retention", 192).unwrap();
            let brokers = cluster.bootstrap_servers();
            (Some(cluster), brokers, "bench-retention".to_owned())
        }
    };
    println!("\nretention on {brokers}, topic {topic}");
    let topic = topic.as_str();
    // Completed a year before this benchmark was written: past a 30-day period.
    let producer = raw_producer(&brokers);
    rt.block_on(async {
        let sends = (0..EXPIRED).map(|i| {
            let producer = &producer;
            async move {
                let mut s = state(&format!("done-{i:06}"), i as u64);
                s.status = WorkflowStatus::Completed;
                let value = model::encode_state(&s).unwrap();
                let record = FutureRecord::to(topic).key(&s.workflow_id).payload(&value);
                producer.send(record, Timeout::Never).await.unwrap();
            }
        });
        futures::stream::iter(sends)
            .buffer_unordered(10_000)
            .collect::<Vec<()>>()
            .await;
    });
    let mut config = KafkaConfig::new(&brokers)
        .topic(topic)
        .retention(Duration::from_secs(30 * 86_400));
    config.retention_rate = 5_000;
    let store = Arc::new(rt.block_on(KafkaStore::open(config)).unwrap());
    assert_eq!(store.replay_report().live, EXPIRED);
    // Rounds of saves, one every half second, measured the same way alone,
    // beside the deletes and after them: the saves' own records stay few
    // (the mock broker slows as its partitions fill).
    let paced = |name: &str, rounds: Option<usize>| {
        let mut rates = Vec::new();
        while rounds.map_or(store.consumed().live > SAVES_PER_ITERATION, |n| {
            rates.len() < n
        }) {
            rates.push(save_rate(&rt, &store, 1, name));
            std::thread::sleep(Duration::from_millis(500));
        }
        rates.sort_by(f64::total_cmp);
        (rates[rates.len() / 2], rates.len())
    };
    let (alone, _) = paced("alone", Some(50));
    let started = Instant::now();
    {
        let _guard = rt.enter();
        assert!(store.start_retention());
    }
    let (beside, rounds) = paced("beside", None);
    let deleting = started.elapsed();
    let (after, _) = paced("after", Some(15));
    // The control: a new store on the same topic, without retention. When
    // it is as slow, the broker (not the store) slowed down.
    let control = Arc::new(
        rt.block_on(KafkaStore::open(KafkaConfig::new(&brokers).topic(topic)))
            .unwrap(),
    );
    let control_rate = save_rate(&rt, &control, 7, "control");
    rt.block_on(control.close()).unwrap();
    println!(
        "\nretention: {EXPIRED} finished workflows deleted in {:.1} s ({:.0}/s, limit 5 000/s)",
        deleting.as_secs_f64(),
        EXPIRED as f64 / deleting.as_secs_f64()
    );
    println!(
        "  saves, 64 in flight (median round of {SAVES_PER_ITERATION}, one round every 0.5 s): {alone:.0}/s alone, {beside:.0}/s beside the deletes ({rounds} rounds): {:.2}x (target >= 0.9x); {after:.0}/s after",
        beside / alone
    );
    println!(
        "  control: a new store without retention on the same topic afterwards: {control_rate:.0}/s, {:.2}x the saves alone",
        control_rate / alone
    );
    rt.block_on(store.close()).unwrap();
}

fn ratios(_: &mut Criterion) {
    println!(
        "\nratios measured in this run (medians; store / raw rdkafka, same cluster, same bytes):"
    );
    for concurrency in [1, 64] {
        if let (Some(store), Some(raw)) = (
            median(&format!("store/{concurrency}")),
            median(&format!("raw/{concurrency}")),
        ) {
            let per_second = |d: Duration| SAVES_PER_ITERATION as f64 / d.as_secs_f64();
            println!(
                "  save, {concurrency:>2} in flight: store {:>8.0}/s, raw producer {:>8.0}/s: {:.2}x (target >= 0.9x)",
                per_second(store),
                per_second(raw),
                raw.as_secs_f64() / store.as_secs_f64()
            );
            smoke_ratio(
                &format!("save-{concurrency}"),
                raw.as_secs_f64() / store.as_secs_f64(),
            );
            if let Some(tailed) = median(&format!("raw_tailed/{concurrency}")) {
                println!(
                    "  save, {concurrency:>2} in flight: store {:>8.0}/s, raw producer + raw tail {:>8.0}/s: {:.2}x",
                    per_second(store),
                    per_second(tailed),
                    tailed.as_secs_f64() / store.as_secs_f64()
                );
                smoke_ratio(
                    &format!("save-{concurrency}-vs-tailed"),
                    tailed.as_secs_f64() / store.as_secs_f64(),
                );
            }
        }
    }
    if let Some(encode) = median("encode") {
        println!(
            "  validating and encoding one ~1.2 KiB state (no broker): {:.1} us",
            encode.as_secs_f64() * 1e6 / SAVES_PER_ITERATION as f64
        );
    }
    if let Some(decode) = median("decode") {
        println!(
            "  decoding one ~1.2 KiB state (no broker): {:.1} us",
            decode.as_secs_f64() * 1e6 / SAVES_PER_ITERATION as f64
        );
    }
    if let (Some(store), Some(raw)) = (median("replay/store"), median("replay/raw")) {
        let per_second = |d: Duration| REPLAY_RECORDS as f64 / d.as_secs_f64();
        println!(
            "  replay of {REPLAY_RECORDS} records: store {:>9.0}/s, raw consumer {:>9.0}/s: {:.2}x (targets >= 0.9x, >= 1 M/s)",
            per_second(store),
            per_second(raw),
            raw.as_secs_f64() / store.as_secs_f64()
        );
        smoke_ratio("replay", raw.as_secs_f64() / store.as_secs_f64());
    }
}

criterion_group!(
    benches,
    save_throughput,
    replay,
    cache_memory,
    local_state,
    retention,
    ratios
);
criterion_main!(benches);
