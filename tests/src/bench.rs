//! What the benchmarks share: timings kept for the printed summary, the
//! `WF_BENCH` part selector and the async runtime.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

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
