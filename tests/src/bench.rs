//! What the benchmarks share: timings kept for the printed summary, the
//! `WF_BENCH` part selector and the async runtime.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use wf_host::model::{EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};

/// Time per iteration of each call criterion made (warm-up and samples), per
/// measured function, for the summary.
static TIMES: Mutex<BTreeMap<String, Vec<Duration>>> = Mutex::new(BTreeMap::new());

/// Keeps the time per iteration of one criterion call of `name`.
pub fn record(name: &str, elapsed: Duration, iterations: u64) {
    TIMES
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default()
        .push(elapsed / iterations.max(1) as u32);
}

/// Runs `work` (all `iterations` of it), records and returns its time: the
/// body of an `iter_custom`.
pub fn timed(name: &str, iterations: u64, work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    let elapsed = start.elapsed();
    record(name, elapsed, iterations);
    elapsed
}

/// The median time per iteration: robust to a slow warm-up or a noisy neighbour.
pub fn median(name: &str) -> Option<Duration> {
    let mut times = TIMES.lock().unwrap().get(name)?.clone();
    times.sort();
    times.get(times.len() / 2).copied()
}

/// Prints a ratio that `scripts/bench-smoke.sh` compares with the figure
/// recorded in BENCHMARKS.md, as one line: `smoke-ratio KEY VALUE`.
pub fn smoke_ratio(key: &str, value: f64) {
    println!("smoke-ratio {key} {value:.3}");
}

/// Whether `WF_BENCH` (a comma-separated list; all when unset) selects `part`.
pub fn selected(part: &str) -> bool {
    std::env::var("WF_BENCH").map_or(true, |only| only.split(',').any(|p| p == part))
}

/// The two-worker runtime the benchmarks drive the host with.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A workflow state whose JSON is about 1 KiB: input, result and four
/// history events, as a typical multi-step workflow leaves it.
pub fn typical_state(id: &str, run: u64) -> WorkflowState {
    let at = |s| Timestamp {
        seconds: 1_764_000_000 + s,
        nanoseconds: 123_456_789,
    };
    let mut history = vec![HistoryEvent::new(1, EventType::WorkflowStarted, at(0))];
    for (i, step) in ["validate", "charge", "ship"].iter().enumerate() {
        let mut event =
            HistoryEvent::new(i as u64 + 2, EventType::ActivityCompleted, at(i as i64 + 1));
        event.activity_name = (*step).into();
        event.result = Some(format!(
            r#"{{"step":"{step}","ok":true,"ref":"{id}-{step}-{run}"}}"#
        ));
        event.duration_ns = 1_234_567;
        history.push(event);
    }
    WorkflowState {
        workflow_id: id.into(),
        run_id: format!("run-{run:08}"),
        status: WorkflowStatus::Running,
        input: Some(format!(
            r#"{{"customer":"customer-{run}","items":[{{"sku":"A-1","qty":2}},{{"sku":"B-7","qty":1}}],"note":"leave at the door"}}"#
        )),
        result: None,
        error: String::new(),
        history,
        created_at: at(0),
        updated_at: at(4),
    }
}
