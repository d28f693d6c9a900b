//! Waiting workflows against plain store calls, in the same run:
//!
//! - **resume**: a suspended Rust workflow that completed 100 activities,
//!   woken by a signal, to its end (the signal's save, the replay of the
//!   100 activities from the history, the wait answered, the final save),
//!   on the memory store; baseline: a native `load` and `save` of the same
//!   state.
//! - **signal round trip**, on librdkafka's mock cluster: a signal sent to a
//!   suspended workflow, the workflow woken, its next save (the suspension
//!   at its next wait) acknowledged; p50 and p99; baseline: one plain save of
//!   the same state on the same cluster.
//! - **timers**: 10 000 sleeping workflows due over one minute, on the
//!   memory store: how late each `timer_fired` is, p50 and p99.
//! - **suspended memory**: 100 000 workflows suspended on a signal, kept
//!   waiting by one host (their waits rebuilt from the stored states, as
//!   after a restart): the resident set they add beyond their cached states,
//!   and the throughput of other workflows beside them against without.
//!
//! `cargo bench -p wf-tests --bench waits`; the summary is printed at the end
//! and recorded in BENCHMARKS.md. `WF_BENCH=resume` (or `signal`, `timers`,
//! `memory`) runs one part only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;
use wf_host::model::{EventType, WorkflowState, WorkflowStatus};
use wf_host::store::{MemoryStore, WorkflowStore};
use wf_host::{ExecuteOptions, Host, HostConfig, Module, RecoverOptions};
use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
use wf_tests::bench::{median, runtime, selected, timed};

/// Per-event samples (for percentiles), by name.
static SAMPLES: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

fn sample(name: &str, took: Duration) {
    SAMPLES.lock().unwrap().push((name.to_owned(), took));
}

fn percentile(name: &str, p: f64) -> Option<Duration> {
    let mut all: Vec<Duration> = SAMPLES
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| *d)
        .collect();
    if all.is_empty() {
        return None;
    }
    all.sort();
    let at = ((all.len() as f64 - 1.0) * p).round() as usize;
    Some(all[at])
}

/// Lines for the summary printed at the end.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn say(line: String) {
    eprintln!("{line}");
    LINES.lock().unwrap().push(line);
}

fn waits(host: &Host) -> Module {
    host.load_module_file(wf_test_artifacts::WAITS).unwrap()
}

/// Starts `input` as `id` and waits until it is suspended.
async fn suspended(host: &Host, module: &Module, id: &str, input: &serde_json::Value) {
    host.execute(module, ExecuteOptions::new(input.to_string()).id(id))
        .await
        .unwrap();
    while !host.is_waiting(id) {
        tokio::task::yield_now().await;
    }
}

/// The resident set of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn resume(c: &mut Criterion) {
    if !selected("resume") {
        return;
    }
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let host = Host::new(store.clone()).unwrap();
    let module = waits(&host);
    let input = json!({"op": "steps", "count": 100, "wait": "go"});
    rt.block_on(suspended(&host, &module, "proto", &input));
    let proto = rt.block_on(store.load("proto")).unwrap().unwrap();
    let mut group = c.benchmark_group("resume");
    group.sample_size(10);
    let mut n = 0u64;
    let name = "woken after 100 activities, to its end";
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let id = format!("r-{n}");
                let mut state = (*proto).clone();
                state.workflow_id = id.clone();
                let handle = rt.block_on(async {
                    store.save(state).await.unwrap();
                    let options = RecoverOptions::default()
                        .id_prefix(id.clone())
                        .waiting_only(true);
                    let mut recovery = host.recover(&module, options).await.unwrap();
                    let id = recovery.waiting.pop().expect("kept waiting");
                    host.handle(&id).expect("a handle on a waiting run")
                });
                let start = Instant::now();
                let state = rt.block_on(async {
                    host.signal(&id, "go", Some("1")).await.unwrap();
                    handle.result().await.unwrap()
                });
                let took = start.elapsed();
                assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
                sample(name, took);
                total += took;
            }
            wf_tests::bench::record(name, total, iters);
            total
        })
    });
    let name = "native load + save of the same state";
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            timed(name, iters, || {
                rt.block_on(async {
                    for _ in 0..iters {
                        let state = store.load("proto").await.unwrap().unwrap();
                        store.save(Arc::unwrap_or_clone(state)).await.unwrap();
                    }
                })
            })
        })
    });
    group.finish();
    if let (Some(p50), Some(p99), Some(native)) = (
        percentile("woken after 100 activities, to its end", 0.5),
        percentile("woken after 100 activities, to its end", 0.99),
        median(name),
    ) {
        say(format!(
            "resume after 100 activities (signal, replay, next step, end): p50 {:.0} µs, p99 {:.0} µs; {:.0}× a native load + save of the state ({:.1} µs)",
            us(p50),
            us(p99),
            p50.as_secs_f64() / native.as_secs_f64(),
            us(native)
        ));
    }
}

fn signal_round_trip(c: &mut Criterion) {
    if !selected("signal") {
        return;
    }
    let rt = runtime();
    let cluster = DevCluster::start("wf-bench-signal", 2).unwrap();
    let store = Arc::new(
        rt.block_on(KafkaStore::open(
            KafkaConfig::new(cluster.bootstrap_servers()).topic("wf-bench-signal"),
        ))
        .unwrap(),
    );
    let host = Host::new(store.clone()).unwrap();
    let module = waits(&host);
    let mut group = c.benchmark_group("signal");
    group.sample_size(10);
    let mut workflow = 0u64;
    let mut sent_to_it = 0u64;
    let name = "signal round trip";
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh workflow every 20 signals: a replay's cost grows
                // with the history.
                if sent_to_it.is_multiple_of(20) {
                    workflow += 1;
                    let input = json!({"op": "signals", "name": "go", "count": 1_000_000});
                    rt.block_on(suspended(&host, &module, &format!("s-{workflow}"), &input));
                }
                sent_to_it += 1;
                let id = format!("s-{workflow}");
                let took = rt.block_on(async {
                    let start = Instant::now();
                    let signaled = host.signal(&id, "go", Some("1")).await.unwrap();
                    // Resumed, received it, and suspended again at its next
                    // wait: that save acknowledged.
                    loop {
                        if host.is_waiting(&id) {
                            let now = store.load_versioned(&id).await.unwrap().unwrap();
                            if now.version > signaled {
                                break;
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    start.elapsed()
                });
                sample(name, took);
                total += took;
            }
            total
        })
    });
    let baseline = "plain save";
    let state = rt.block_on(store.load("s-1")).unwrap().unwrap();
    group.bench_function(baseline, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let mut state = (*state).clone();
                state.workflow_id = format!("plain-{}", i % 100);
                let start = Instant::now();
                rt.block_on(store.save(state)).unwrap();
                let took = start.elapsed();
                sample(baseline, took);
                total += took;
            }
            total
        })
    });
    group.finish();
    if let (Some(p50), Some(p99), Some(s50), Some(s99)) = (
        percentile(name, 0.5),
        percentile(name, 0.99),
        percentile(baseline, 0.5),
        percentile(baseline, 0.99),
    ) {
        say(format!(
            "signal round trip (mock cluster): p50 {:.2} ms, p99 {:.2} ms; a plain save p50 {:.2} ms, p99 {:.2} ms ({:.1}× at p50)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            s50.as_secs_f64() * 1e3,
            s99.as_secs_f64() * 1e3,
            p50.as_secs_f64() / s50.as_secs_f64()
        ));
    }
    rt.block_on(store.close()).unwrap();
}

/// 10 000 sleepers due over a minute: how late each fired.
fn timers(rt: &Runtime) {
    let store = Arc::new(MemoryStore::new());
    let host = Host::new(store.clone()).unwrap();
    let module = waits(&host);
    const SLEEPERS: u64 = 10_000;
    rt.block_on(async {
        let clock = Instant::now();
        for i in 0..SLEEPERS {
            // Due 5 s to 60 s after each starts.
            let ms = 5_000 + i * 55_000 / SLEEPERS;
            let input = json!({"op": "sleep", "ms": ms});
            host.execute(&module, ExecuteOptions::new(input.to_string()).id(format!("t-{i}")))
                .await
                .unwrap();
        }
        let started = clock.elapsed();
        loop {
            let running = store
                .list(&wf_host::store::ListFilter::default().status(WorkflowStatus::Running).limit(1))
                .await
                .unwrap();
            if running.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut late = Vec::new();
        for i in 0..SLEEPERS {
            let state = store.load(&format!("t-{i}")).await.unwrap().unwrap();
            assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
            late.push(lateness(&state));
        }
        late.sort();
        let at = |p: f64| late[((late.len() - 1) as f64 * p).round() as usize];
        say(format!(
            "timers: {SLEEPERS} sleepers due over 5-60 s (started in {:.1} s): fired late by p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            started.as_secs_f64(),
            at(0.5) as f64 / 1e6,
            at(0.99) as f64 / 1e6,
            late[late.len() - 1] as f64 / 1e6
        ));
    });
}

/// How long after its due time a workflow's timer fired, in nanoseconds.
fn lateness(state: &WorkflowState) -> i128 {
    let started = state
        .history
        .iter()
        .find(|e| e.kind == EventType::TimerStarted)
        .expect("timer_started");
    let fired = state
        .history
        .iter()
        .find(|e| e.kind == EventType::TimerFired)
        .expect("timer_fired");
    fired.timestamp.as_nanos() - (started.timestamp.as_nanos() + i128::from(started.duration_ns))
}

/// 100 000 suspended workflows on one host: memory each, and the
/// throughput of other workflows beside them.
fn suspended_memory(rt: &Runtime) {
    const WAITING: usize = 100_000;
    let store = Arc::new(MemoryStore::new());
    let host = Host::with_config(store.clone(), HostConfig::default()).unwrap();
    let module = waits(&host);
    let input = json!({"op": "signal", "name": "go", "timeout_ms": 3_600_000});
    rt.block_on(suspended(&host, &module, "proto", &input));
    let proto = rt.block_on(store.load("proto")).unwrap().unwrap();
    let throughput = |label: &str| -> f64 {
        // 2 000 short workflows (three activities), 64 in flight.
        rt.block_on(async {
            let start = Instant::now();
            let mut handles = Vec::new();
            for i in 0..2_000 {
                let input = json!({"op": "steps", "count": 3});
                let id = format!("{label}-{i}");
                handles.push(
                    host.execute(&module, ExecuteOptions::new(input.to_string()).id(id))
                        .await
                        .unwrap(),
                );
                if handles.len() == 64 {
                    for handle in handles.drain(..) {
                        handle.result().await.unwrap();
                    }
                }
            }
            for handle in handles {
                handle.result().await.unwrap();
            }
            2_000.0 / start.elapsed().as_secs_f64()
        })
    };
    throughput("warm-up");
    let before = resident_bytes();
    rt.block_on(async {
        for i in 0..WAITING {
            let mut state = (*proto).clone();
            state.workflow_id = format!("w-{i:06}");
            store.save(state).await.unwrap();
        }
    });
    let stored = resident_bytes();
    // The same stored states, not kept waiting: what suspension adds.
    // Alternated (before, beside, beside, after) against the machine's noise.
    let alone_before = throughput("alone");
    let recovery = rt
        .block_on(host.recover(
            &module,
            RecoverOptions::default().id_prefix("w-").waiting_only(true),
        ))
        .unwrap();
    assert_eq!(recovery.waiting.len(), WAITING);
    let waiting = resident_bytes();
    assert_eq!(host.waiting().len(), WAITING + 1);
    let beside = (throughput("beside-1") + throughput("beside-2")) / 2.0;
    rt.block_on(host.abandon_all());
    let alone = (alone_before + throughput("after")) / 2.0;
    let per = |bytes: u64| bytes as f64 / WAITING as f64;
    say(format!(
        "suspended: {WAITING} workflows waiting on one host add {:.0} bytes each beyond their cached states ({:.0} bytes each in the memory store); other workflows run at {beside:.0}/s beside them, {:.2}× the {alone:.0}/s without",
        per(waiting.saturating_sub(stored)),
        per(stored.saturating_sub(before)),
        beside / alone
    ));
}

fn one_shots(_c: &mut Criterion) {
    let rt = runtime();
    if selected("timers") {
        timers(&rt);
    }
    if selected("memory") {
        suspended_memory(&rt);
    }
}

fn summary(_c: &mut Criterion) {
    println!("\n== waiting workflows ==");
    for line in LINES.lock().unwrap().iter() {
        println!("{line}");
    }
}

criterion_group!(benches, resume, signal_round_trip, one_shots, summary);
criterion_main!(benches);
