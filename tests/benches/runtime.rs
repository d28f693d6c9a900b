//! The runtime against native calls, in the same run, on the memory store:
//!
//! - **execute**: a trivial workflow (the guest returns at once) run to its
//!   end, one at a time (latency) and 64 at a time (throughput), with the
//!   pooling allocator and with on-demand allocation; baseline: the same
//!   lifecycle natively (save `running`, load, save `completed`).
//! - **guest load**: `load` of a ~1 KiB state called from wasm, per call
//!   (a run with 2 000 loads minus a run with none); baseline: the native
//!   `load`, and the native `load` plus an owned copy of the state (what the
//!   guest gets).
//! - **guest save**: `save` of a ~1 KiB state called from wasm, per call
//!   (a run with 2 000 saves minus a run with none); baseline: the native
//!   `save` of a copy of the state.
//! - **cold start**: a new host, the first load of a module and its first
//!   run, without and with the on-disk artifact cache.
//!
//! `cargo bench -p wf-tests --bench runtime`; the summary is printed at the end
//! and recorded in BENCHMARKS.md. `WF_BENCH=execute` (or `load`, `save`, `cold`) runs
//! one part only.

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;
use wf_host::model::{EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::{MemoryStore, WorkflowStore};
use wf_host::{ExecuteOptions, Host, HostConfig, Module};
use wf_tests::bench::{median, runtime, selected, smoke_ratio, timed};

/// A new workflow id: a start of an id that ended only answers with its
/// stored run, without running the guest.
fn fresh(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n}")
}

fn host(pooling: bool) -> Host {
    let config = HostConfig::default().pooling(pooling);
    Host::with_config(Arc::new(MemoryStore::new()), config).unwrap()
}

/// A ~1 KiB state: input, result and four history events.
fn state_1k(id: &str) -> WorkflowState {
    let at = Timestamp {
        seconds: 1_764_000_000,
        nanoseconds: 5,
    };
    let mut history = vec![HistoryEvent::new(1, EventType::WorkflowStarted, at)];
    for (i, step) in ["validate", "charge", "ship"].iter().enumerate() {
        let mut event = HistoryEvent::new(i as u64 + 2, EventType::ActivityCompleted, at);
        event.activity_name = (*step).to_owned();
        event.result = Some(format!(
            r#"{{"step":"{step}","ok":true,"ref":"{}"}}"#,
            "r".repeat(60)
        ));
        event.duration_ns = 1_234_567;
        history.push(event);
    }
    WorkflowState {
        workflow_id: id.to_owned(),
        run_id: "3f0c1f52-8a4e-4a7c-9a57-6f7c4b1f0e21".to_owned(),
        status: WorkflowStatus::Running,
        input: Some(format!(
            r#"{{"customer":"c-42","items":[{}]}}"#,
            r#"{"sku":"A-1","quantity":2,"price_cents":1250}"#
                .repeat(3)
                .replace("}{", "},{")
        )),
        result: None,
        error: String::new(),
        history,
        created_at: at,
        updated_at: at,
    }
}

/// The trivial workflow: the probe guest with an empty script returns `[]`.
fn trivial(rt: &Runtime, host: &Host) -> Module {
    let module = host
        .load_module_file(wf_test_artifacts::SANDBOX_PROBE)
        .unwrap();
    rt.block_on(host.run(&module, "warm", "[]")).unwrap();
    module
}

fn execute(c: &mut Criterion) {
    if !selected("execute") {
        return;
    }
    let rt = runtime();
    let mut group = c.benchmark_group("execute");
    for (label, pooling) in [("pooling", true), ("on-demand", false)] {
        let host = host(pooling);
        let module = trivial(&rt, &host);
        let name = format!("trivial, 1 at a time, {label}");
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                timed(&name, iters, || {
                    rt.block_on(async {
                        for _ in 0..iters {
                            let state = host.run(&module, &fresh("t"), "[]").await.unwrap();
                            assert_eq!(state.status, WorkflowStatus::Completed);
                        }
                    });
                })
            })
        });
        // One caller per core, each running workflows back to back: the
        // throughput of `run` without hand-offs between threads.
        let name = format!("trivial, 2 callers, {label}");
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                timed(&name, iters, || {
                    rt.block_on(async {
                        let callers: Vec<_> = (0..2)
                            .map(|caller| {
                                let (host, module) = (host.clone(), module.clone());
                                tokio::spawn(async move {
                                    for _ in (caller..iters).step_by(2) {
                                        host.run(&module, &fresh("k"), "[]").await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for caller in callers {
                            caller.await.unwrap();
                        }
                    });
                })
            })
        });
        let name = format!("trivial, 64 in flight, {label}");
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                timed(&name, iters, || {
                    rt.block_on(async {
                        let mut in_flight = std::collections::VecDeque::new();
                        for _ in 0..iters {
                            if in_flight.len() == 64 {
                                let handle: wf_host::WorkflowHandle =
                                    in_flight.pop_front().unwrap();
                                handle.result().await.unwrap();
                            }
                            let options = ExecuteOptions::new("[]").id(fresh("c"));
                            in_flight.push_back(host.execute(&module, options).await.unwrap());
                        }
                        for handle in in_flight {
                            handle.result().await.unwrap();
                        }
                    });
                })
            })
        });
    }
    // The same lifecycle with no guest: what the host itself costs.
    let store = MemoryStore::new();
    let running = state_1k("native");
    group.bench_function("native lifecycle", |b| {
        b.iter_custom(|iters| {
            timed("native lifecycle", iters, || {
                rt.block_on(async {
                    for i in 0..iters {
                        let mut state = running.clone();
                        state.workflow_id = format!("t-{}", i % 1000);
                        state.history.truncate(1);
                        state.input = Some("[]".into());
                        store.save(state.clone()).await.unwrap();
                        let loaded = store.load(&state.workflow_id).await.unwrap().unwrap();
                        let mut done = Arc::unwrap_or_clone(loaded);
                        done.status = WorkflowStatus::Completed;
                        done.result = Some("[]".into());
                        store.save(done).await.unwrap();
                    }
                });
            })
        })
    });
    group.finish();
}

/// One case per script: a run of `module` with it (under a fresh id
/// starting `prefix`) per iteration, each run checked to complete.
fn bench_scripts<const N: usize>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (rt, host, module): (&Runtime, &Host, &Module),
    prefix: &str,
    scripts: [(&str, &String); N],
) {
    for (name, input) in scripts {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(name, iters, || {
                    rt.block_on(async {
                        for _ in 0..iters {
                            let state = host.run(module, &fresh(prefix), input).await.unwrap();
                            assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
                        }
                    });
                })
            })
        });
    }
}

fn guest_load(c: &mut Criterion) {
    if !selected("load") {
        return;
    }
    const LOADS: usize = 2000;
    let rt = runtime();
    let host = host(true);
    let module = host.load_module_file(wf_test_artifacts::STORE_OPS).unwrap();
    let stored = state_1k("one-kib");
    let json_len = wf_host::model::encode_state(&stored).unwrap().len();
    eprintln!("the loaded state is {json_len} bytes of JSON");
    rt.block_on(host.store().save(stored)).unwrap();
    let script =
        |op: &str, times: usize| json!([{"op": op, "id": "one-kib", "times": times}]).to_string();
    let (many, views, none) = (
        script("load_many", LOADS),
        script("view_many", LOADS),
        script("load_many", 0),
    );
    let mut group = c.benchmark_group("guest load");
    bench_scripts(
        &mut group,
        (&rt, &host, &module),
        "loader",
        [
            ("run with 2000 loads", &many),
            ("run with 2000 view loads", &views),
            ("run with 0 loads", &none),
        ],
    );
    let store = host.store().clone();
    group.bench_function("native load", |b| {
        b.iter_custom(|iters| {
            timed("native load", iters, || {
                rt.block_on(async {
                    for _ in 0..iters {
                        std::hint::black_box(store.load("one-kib").await.unwrap());
                    }
                });
            })
        })
    });
    group.bench_function("native load + owned copy", |b| {
        b.iter_custom(|iters| {
            timed("native load + owned copy", iters, || {
                rt.block_on(async {
                    for _ in 0..iters {
                        let loaded = store.load("one-kib").await.unwrap().unwrap();
                        std::hint::black_box(WorkflowState::clone(&loaded));
                    }
                });
            })
        })
    });
    group.finish();
}

fn guest_save(c: &mut Criterion) {
    if !selected("save") {
        return;
    }
    const SAVES: usize = 2000;
    let rt = runtime();
    let host = host(true);
    let module = host.load_module_file(wf_test_artifacts::STORE_OPS).unwrap();
    let state = state_1k("one-kib-saved");
    // The guests read the state from the script once per run: the run
    // with none saves parses it too.
    let wire = wf_tests::guest_json(&state);
    let script =
        |times: usize| json!([{"op": "save_many", "state": wire, "times": times}]).to_string();
    let (many, none) = (script(SAVES), script(0));
    let mut group = c.benchmark_group("guest save");
    bench_scripts(
        &mut group,
        (&rt, &host, &module),
        "saver",
        [("run with 2000 saves", &many), ("run with 0 saves", &none)],
    );
    let store = host.store().clone();
    group.bench_function("native save", |b| {
        b.iter_custom(|iters| {
            timed("native save", iters, || {
                rt.block_on(async {
                    for _ in 0..iters {
                        store.save(state.clone()).await.unwrap();
                    }
                });
            })
        })
    });
    group.finish();
}

fn cold_start(c: &mut Criterion) {
    if !selected("cold") {
        return;
    }
    let rt = runtime();
    let cache = std::env::temp_dir().join(format!("wf-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let mut group = c.benchmark_group("cold start");
    group.sample_size(10);
    for (name, cache_dir) in [
        ("new host + load + first run, no cache", None),
        (
            "new host + load + first run, warm disk cache",
            Some(cache.clone()),
        ),
    ] {
        let config = HostConfig::default().cache_dir(cache_dir);
        // Fill the cache once, outside the measurement.
        let warm = Host::with_config(Arc::new(MemoryStore::new()), config.clone()).unwrap();
        trivial(&rt, &warm);
        drop(warm);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(name, iters, || {
                    for _ in 0..iters {
                        let host = Host::with_config(Arc::new(MemoryStore::new()), config.clone())
                            .unwrap();
                        trivial(&rt, &host);
                    }
                })
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&cache);
}

fn summary(_: &mut Criterion) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\n== runtime summary (medians) ==");
    if let Some(native) = median("native lifecycle") {
        for label in ["pooling", "on-demand"] {
            if let (Some(one), Some(two), Some(many)) = (
                median(&format!("trivial, 1 at a time, {label}")),
                median(&format!("trivial, 2 callers, {label}")),
                median(&format!("trivial, 64 in flight, {label}")),
            ) {
                println!(
                    "execute trivial ({label}): {:.1} µs each one at a time ({:.1}× the native lifecycle's {:.2} µs); {:.0} workflows/s from 2 callers of run; {:.0} workflows/s with 64 execute handles in flight",
                    us(one),
                    one.as_secs_f64() / native.as_secs_f64(),
                    us(native),
                    1.0 / two.as_secs_f64(),
                    1.0 / many.as_secs_f64()
                );
            }
        }
    }
    for (how, run, key) in [
        ("load", "run with 2000 loads", "guest-load"),
        ("load_view", "run with 2000 view loads", "guest-load-view"),
    ] {
        let (Some(many), Some(none)) = (median(run), median("run with 0 loads")) else {
            continue;
        };
        let per_call = many.saturating_sub(none) / 2000;
        for (baseline, suffix) in [
            ("native load", ""),
            ("native load + owned copy", "-vs-copy"),
        ] {
            if let Some(native) = median(baseline) {
                let ratio = per_call.as_secs_f64() / native.as_secs_f64();
                println!(
                    "guest {how} of a ~1 KiB state: {:.2} µs per call, {ratio:.1}× {baseline} ({:.3} µs)",
                    us(per_call),
                    us(native)
                );
                smoke_ratio(&format!("{key}{suffix}"), ratio);
            }
        }
    }
    if let (Some(many), Some(none), Some(native)) = (
        median("run with 2000 saves"),
        median("run with 0 saves"),
        median("native save"),
    ) {
        let per_call = many.saturating_sub(none) / 2000;
        println!(
            "guest save of a ~1 KiB state: {:.2} µs per call, {:.1}× native save ({:.3} µs)",
            us(per_call),
            per_call.as_secs_f64() / native.as_secs_f64(),
            us(native)
        );
    }
    if let (Some(cold), Some(cached)) = (
        median("new host + load + first run, no cache"),
        median("new host + load + first run, warm disk cache"),
    ) {
        println!(
            "cold start: {:.1} ms compiling, {:.1} ms from the disk cache ({:.1}× faster)",
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3,
            cold.as_secs_f64() / cached.as_secs_f64()
        );
    }
}

criterion_group!(
    benches, execute, guest_load, guest_save, cold_start, summary
);
criterion_main!(benches);
