//! What bounds a running guest: its memory, table and instance limits, and
//! the epoch ticks that bound how long it holds a thread (and make its
//! deadline and cancellation noticed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Engine, ResourceLimiter};

use super::options::RunLimits;

/// How often the engine's epoch ticks. A running guest yields to the async
/// executor at every tick, so this bounds how long one guest can hold a
/// worker thread, and how precise deadlines and cancellation are.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Enforces a run's memory, table and instance limits, and remembers which
/// one refused a grow so a failure can say so. A refused grow is what wasm
/// specifies (`memory.grow` returns -1); most guests then trap.
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    refused: Option<String>,
    /// The most linear memory an instance grew to.
    peak_memory_bytes: usize,
}

impl GuestLimiter {
    pub(super) fn new(limits: &RunLimits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: limits.instances,
            refused: None,
            peak_memory_bytes: 0,
        }
    }

    /// The most linear memory one memory of the run grew to, in bytes.
    pub(crate) fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
    }

    /// The last limit that refused a grow, described.
    pub(crate) fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= self.memory_bytes {
            self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
            return Ok(true);
        }
        self.refused = Some(format!(
            "memory limit reached: growing linear memory from {} to {} bytes exceeds the limit of {} bytes",
            current, desired, self.memory_bytes
        ));
        Ok(false)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= self.table_elements {
            return Ok(true);
        }
        self.refused = Some(format!(
            "table limit reached: growing a table from {} to {} elements exceeds the limit of {}",
            current, desired, self.table_elements
        ));
        Ok(false)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances.saturating_mul(4)
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

/// Advances the engine's epoch on a background thread.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wf-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
