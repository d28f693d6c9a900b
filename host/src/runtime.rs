//! The wasmtime side: one engine, the linker with WASI p2 and the store import,
//! the per-workflow sandbox and its limits, and loaded modules.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits as MemoryLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, StoreView, WorkflowWorldPre};
use crate::store::WorkflowStore;

/// How often the deadline clock ticks; a deadline is accurate to about this.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits and sandbox settings applied to every workflow the host runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The most linear memory one workflow instance may grow to, in bytes.
    pub memory_limit_bytes: usize,
    /// Wall-clock deadline for one `run` call.
    pub timeout: Duration,
    /// How many trailing bytes of guest stderr are kept to explain a failure.
    pub stderr_tail_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            stderr_tail_bytes: 4096,
        }
    }
}

/// A compiled workflow module, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    name: Arc<str>,
    pre: WorkflowWorldPre<GuestState>,
}

impl Module {
    /// The name it was loaded under (its file name, or the name given).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pre(&self) -> &WorkflowWorldPre<GuestState> {
        &self.pre
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("name", &self.name).finish()
    }
}

/// The engine, linker and store shared by every workflow of one host.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: HostConfig,
    ticker: EpochTicker,
}

impl Runtime {
    pub(crate) fn new(config: HostConfig) -> anyhow::Result<Self> {
        let mut engine_config = Config::new();
        // Deadlines interrupt guests at loop back-edges and function entries.
        engine_config.epoch_interruption(true);
        let engine = Engine::new(&engine_config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("adding WASI p2 to the linker")?;
        bindings::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("adding the store to the linker")?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            linker,
            config,
            ticker,
        })
    }

    pub(crate) fn config(&self) -> &HostConfig {
        &self.config
    }

    pub(crate) fn load_file(&self, path: &Path) -> anyhow::Result<Module> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading workflow module {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.load_bytes(&name, &bytes)
            .with_context(|| format!("loading workflow module {}", path.display()))
    }

    pub(crate) fn load_bytes(&self, name: &str, bytes: &[u8]) -> anyhow::Result<Module> {
        let component = Component::new(&self.engine, bytes)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component imports something this host does not provide")?;
        let pre = WorkflowWorldPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export `run` of world wf:workflow/workflow")?;
        Ok(Module {
            name: name.into(),
            pre,
        })
    }

    /// A fresh sandboxed store for one workflow run.
    pub(crate) fn new_store(
        &self,
        workflow_id: &str,
        store: Arc<dyn WorkflowStore>,
    ) -> (Store<GuestState>, GuestOutput) {
        let stderr = GuestOutput::new(workflow_id, "stderr", self.config.stderr_tail_bytes);
        let stdout = GuestOutput::new(workflow_id, "stdout", 0);
        // Nothing is granted: no env, args, preopened dirs or network.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr.clone())
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.config.memory_limit_bytes)
            .instances(16)
            .tables(16)
            .memories(4)
            .build();
        let state = GuestState {
            wasi,
            table: ResourceTable::new(),
            store,
            limits,
        };
        let mut wasm_store = Store::new(&self.engine, state);
        wasm_store.limiter(|s| &mut s.limits);
        wasm_store.set_epoch_deadline(self.ticker.ticks_for(self.config.timeout));
        wasm_store.epoch_deadline_trap();
        (wasm_store, stderr)
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish()
    }
}

/// The data of one workflow's wasmtime store.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    store: Arc<dyn WorkflowStore>,
    limits: MemoryLimits,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreView for GuestState {
    fn workflow_store(&self) -> &Arc<dyn WorkflowStore> {
        &self.store
    }
}

/// Advances the engine's epoch on a background thread so deadlines fire.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
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

    fn ticks_for(&self, timeout: Duration) -> u64 {
        (timeout.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64
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

/// A guest output stream: every complete line goes to `tracing` with the
/// workflow id, and the last `tail_bytes` are kept to explain a failure.
/// Writes never fail, so a chatty guest cannot trap on its own logging.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Mutex<OutputBuffer>>,
}

struct OutputBuffer {
    workflow_id: String,
    stream: &'static str,
    line: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    tail_bytes: usize,
}

impl GuestOutput {
    fn new(workflow_id: &str, stream: &'static str, tail_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutputBuffer {
                workflow_id: workflow_id.to_owned(),
                stream,
                line: Vec::new(),
                tail: std::collections::VecDeque::new(),
                tail_bytes,
            })),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        buf.write(bytes);
    }

    /// The kept tail, lossily decoded, trimmed.
    pub(crate) fn tail(&self) -> String {
        let buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = buf.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl OutputBuffer {
    /// Lines longer than this are logged in pieces.
    const MAX_LINE: usize = 8192;

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || self.line.len() >= Self::MAX_LINE {
                self.emit_line();
            }
            if b != b'\n' {
                self.line.push(b);
            }
        }
        if self.tail_bytes > 0 {
            self.tail.extend(bytes);
            let excess = self.tail.len().saturating_sub(self.tail_bytes);
            self.tail.drain(..excess);
        }
    }

    fn emit_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        tracing::info!(target: "wf::guest", workflow_id = %self.workflow_id, stream = self.stream, "{line}");
        self.line.clear();
    }
}

impl Drop for OutputBuffer {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        GuestOutput::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
