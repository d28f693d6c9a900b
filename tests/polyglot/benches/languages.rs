//! The same workflows as Rust, Python and JavaScript guests, through one host
//! on the memory store: component size, cold start (compile the module, then
//! the first run), the per-call cost of `load` and `save` from inside the
//! guest, and workflows per second for the pipeline example. Prints a table
//! with each language's ratio to the Rust guest, then runs the criterion
//! benchmarks of a pipeline run per language.
//!
//! `cargo bench -p wf-polyglot-tests` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::{Value, json};
use wf_host::model::WorkflowStatus;
use wf_host::store::MemoryStore;
use wf_host::{Host, HostConfig, Module};

/// Store calls per script when measuring one call's cost.
const CALLS: usize = 100;

struct Guest {
    name: &'static str,
    store_ops: &'static str,
    pipeline: &'static str,
}

const GUESTS: [Guest; 3] = [
    Guest {
        name: "rust",
        store_ops: wf_tests::guests::STORE_OPS,
        pipeline: wf_tests::guests::PIPELINE,
    },
    Guest {
        name: "python",
        store_ops: wf_polyglot_tests::PYTHON_STORE_OPS,
        pipeline: wf_polyglot_tests::PYTHON_PIPELINE,
    },
    Guest {
        name: "js",
        store_ops: wf_polyglot_tests::JS_STORE_OPS,
        pipeline: wf_polyglot_tests::JS_PIPELINE,
    },
];

/// What was measured for one language.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    size_bytes: u64,
    compile: Duration,
    first_run: Duration,
    empty_run: Duration,
    load: Duration,
    save: Duration,
    pipeline: Duration,
}

fn host() -> Host {
    // The JavaScript guests need more than the default 64 MiB for long JSON
    // texts; the limit does not change the speed of the ones measured here.
    let config = HostConfig::default().memory_limit_bytes(256 * 1024 * 1024);
    Host::with_config(Arc::new(MemoryStore::new()), config).expect("host")
}

fn wire_state(id: &str) -> Value {
    json!({
        "workflow_id": id, "run_id": "r1", "status": "completed",
        "input": {"order": 7, "items": [{"sku": "A-1", "quantity": 2}]},
        "result": {"total_cents": 900}, "error": "",
        "history": [{
            "id": 1, "kind": "activity_completed",
            "timestamp": {"seconds": 1700000000, "nanoseconds": 5},
            "activity_name": "charge", "input": null, "result": {"ok": true}, "error": "",
            "signal_name": "", "signal_payload": null, "duration_ns": 42
        }, {
            "id": 2, "kind": "activity_completed",
            "timestamp": {"seconds": 1700000001, "nanoseconds": 5},
            "activity_name": "ship", "input": {"carrier": "ups"}, "result": {"tracking": "1Z999"},
            "error": "", "signal_name": "", "signal_payload": null, "duration_ns": 43
        }],
        "created_at": {"seconds": 1700000000, "nanoseconds": 0},
        "updated_at": {"seconds": 1700000001, "nanoseconds": 0}
    })
}

async fn run_ok(host: &Host, module: &Module, id: &str, input: &str) {
    let state = host.run(module, id, input).await.expect("run");
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
}

/// The median of `samples` timed runs of `f`, after one warm-up.
fn median<F: FnMut()>(samples: usize, mut f: F) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn measure(rt: &tokio::runtime::Runtime, guest: &Guest, samples: usize) -> Figures {
    let host = host();
    let mut figures = Figures {
        size_bytes: std::fs::metadata(guest.store_ops)
            .expect("guest file")
            .len(),
        ..Figures::default()
    };
    let start = Instant::now();
    let module = host.load_module_file(guest.store_ops).expect("load");
    figures.compile = start.elapsed();
    let start = Instant::now();
    rt.block_on(run_ok(&host, &module, "first", "[]"));
    figures.first_run = start.elapsed();

    let state = wire_state("bench-state");
    let seed = json!([{"op": "save", "state": state}]).to_string();
    rt.block_on(run_ok(&host, &module, "seed", &seed));
    let loads = Value::Array(vec![json!({"op": "load", "id": "bench-state"}); CALLS]).to_string();
    let saves = Value::Array(vec![json!({"op": "save", "state": state}); CALLS]).to_string();

    let mut n = 0u64;
    let mut time = |script: &str| {
        median(samples, || {
            n += 1;
            rt.block_on(run_ok(&host, &module, &format!("b-{n}"), script));
        })
    };
    figures.empty_run = time("[]");
    figures.load = time(&loads).saturating_sub(figures.empty_run) / CALLS as u32;
    figures.save = time(&saves).saturating_sub(figures.empty_run) / CALLS as u32;

    let pipeline = host.load_module_file(guest.pipeline).expect("load");
    figures.pipeline = median(samples, || {
        n += 1;
        rt.block_on(run_ok(
            &host,
            &pipeline,
            &format!("p-{n}"),
            r#""start processing""#,
        ));
    });
    figures
}

fn ratio(value: f64, rust: f64) -> String {
    if rust > 0.0 && value / rust >= 1.0 {
        format!("{:.1}x", value / rust)
    } else if rust > 0.0 {
        format!("{:.3}x (1/{:.0})", value / rust, rust / value)
    } else {
        "-".into()
    }
}

fn report(all: &[(&str, Figures)]) {
    let rust = all[0].1;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "\n{:<8} {:>10} {:>11} {:>11} {:>11} {:>11} {:>11} {:>13}",
        "guest",
        "size",
        "compile",
        "first run",
        "empty run",
        "load/call",
        "save/call",
        "pipeline/s"
    );
    for (name, f) in all {
        println!(
            "{:<8} {:>8.1}MB {:>9.0}ms {:>9.2}ms {:>9.3}ms {:>9.1}us {:>9.1}us {:>13.0}",
            name,
            f.size_bytes as f64 / 1e6,
            ms(f.compile),
            ms(f.first_run),
            ms(f.empty_run),
            us(f.load),
            us(f.save),
            1.0 / f.pipeline.as_secs_f64(),
        );
    }
    for (name, f) in &all[1..] {
        println!(
            "{name} vs rust: size {}, compile {}, first run {}, empty run {}, load {}, save {}, pipeline runs/s {}",
            ratio(f.size_bytes as f64, rust.size_bytes as f64),
            ratio(ms(f.compile), ms(rust.compile)),
            ratio(ms(f.first_run), ms(rust.first_run)),
            ratio(ms(f.empty_run), ms(rust.empty_run)),
            ratio(us(f.load), us(rust.load)),
            ratio(us(f.save), us(rust.save)),
            ratio(
                1.0 / f.pipeline.as_secs_f64(),
                1.0 / rust.pipeline.as_secs_f64()
            ),
        );
    }
    println!();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let samples = if quick { 5 } else { 21 };
    let all: Vec<(&str, Figures)> = GUESTS
        .iter()
        .map(|g| (g.name, measure(&rt, g, samples)))
        .collect();
    report(&all);

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut group = c.benchmark_group("pipeline_run");
    for guest in &GUESTS {
        let host = host();
        let module = host.load_module_file(guest.pipeline).expect("load");
        let mut n = 0u64;
        group.bench_function(guest.name, |b| {
            b.iter(|| {
                n += 1;
                rt.block_on(run_ok(
                    &host,
                    &module,
                    &format!("c-{n}"),
                    black_box(r#""start processing""#),
                ));
            })
        });
    }
    group.finish();
    c.final_summary();
}
