//! The wasmtime side: one engine, the linker with WASI p2 and the store import,
//! the module registry, the per-workflow sandbox and its limits.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    UpdateDeadline,
};
use wasmtime_wasi::filesystem::FsPerms;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, RunFence, StoreView, WorkflowWorldPre};
use crate::store::WorkflowStore;

/// How often the engine's epoch ticks. A running guest yields to the async
/// executor at every tick, so this bounds how long one guest can hold a
/// worker thread, and how precise deadlines and cancellation are.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits and sandbox settings of a host; each module may narrow or widen the
/// per-workflow limits with [`ModuleLimits`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Default: the most linear memory one workflow instance may grow to, in bytes.
    pub memory_limit_bytes: usize,
    /// Default: the most elements one table of a workflow instance may hold.
    pub table_elements: usize,
    /// Default: the most core and component instances one workflow may create.
    pub instances: usize,
    /// Default wall-clock deadline for one run.
    pub timeout: Duration,
    /// Default fuel (roughly, wasm instructions) one run may use; unlimited when `None`.
    pub fuel: Option<u64>,
    /// How many workflows run at once on this host (each module may set a
    /// lower bound of its own, [`ModuleLimits::max_running`]).
    pub max_running: usize,
    /// What [`Host::execute`](crate::Host::execute) and
    /// [`Host::run`](crate::Host::run) do when the host or the module runs
    /// its most workflows: wait for a slot, or refuse with
    /// [`ExecuteError::Busy`](crate::ExecuteError::Busy). Recovery always waits.
    pub when_full: WhenFull,
    /// Preallocate instance slots for `max_running` workflows (wasmtime's
    /// pooling allocator): instantiation gets cheaper, at the cost of
    /// reserving address space up front. Falls back to on-demand allocation,
    /// with a warning, when the reservation fails.
    pub pooling: bool,
    /// Where compiled modules are cached, keyed by the module's content hash
    /// and the engine's version and settings; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// How many trailing bytes of guest stderr are kept to explain a failure.
    pub stderr_tail_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 64 * 1024 * 1024,
            table_elements: 100_000,
            instances: 64,
            timeout: Duration::from_secs(60),
            fuel: None,
            max_running: 1000,
            when_full: WhenFull::Wait,
            pooling: true,
            cache_dir: None,
            stderr_tail_bytes: 4096,
        }
    }
}

impl HostConfig {
    /// The default place for the compiled-module cache: `$XDG_CACHE_HOME/wf/modules`
    /// or `$HOME/.cache/wf/modules`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("wf").join("modules"))
    }
}

/// What to do with a workflow asked to start when every slot is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait until a running workflow ends (backpressure on the caller).
    #[default]
    Wait,
    /// Refuse at once; nothing is written.
    Refuse,
}

/// Per-module overrides of the host's limits; `None` keeps the host's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleLimits {
    /// How many workflows of this module run at once (never more than the
    /// host's [`HostConfig::max_running`]).
    pub max_running: Option<usize>,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: Option<usize>,
    /// Elements per table.
    pub table_elements: Option<usize>,
    /// Core and component instances per workflow.
    pub instances: Option<usize>,
    /// Wall-clock deadline per run (an [`ExecuteOptions`](crate::ExecuteOptions)
    /// timeout overrides it).
    pub timeout: Option<Duration>,
    /// Fuel per run.
    pub fuel: Option<u64>,
}

/// A host directory a module may use, seen by the guest at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Where the guest sees it (an absolute path such as `/data`).
    pub guest_path: String,
    /// Whether the guest may create, write and remove files in it.
    pub writable: bool,
}

impl DirGrant {
    /// Read-only access to `host_path`, seen by the guest at `guest_path`.
    pub fn read_only(host_path: impl Into<PathBuf>, guest_path: impl Into<String>) -> Self {
        Self {
            host_path: host_path.into(),
            guest_path: guest_path.into(),
            writable: false,
        }
    }

    /// Read-write access to `host_path`, seen by the guest at `guest_path`.
    pub fn read_write(host_path: impl Into<PathBuf>, guest_path: impl Into<String>) -> Self {
        Self {
            writable: true,
            ..Self::read_only(host_path, guest_path)
        }
    }

    /// Parses `PATH`, `PATH:ro` or `PATH:rw` (read-only unless `:rw`); the
    /// guest sees the directory at `PATH` as given.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let (path, writable) = match spec.rsplit_once(':') {
            Some((path, "rw")) => (path, true),
            Some((path, "ro")) => (path, false),
            _ => (spec, false),
        };
        if path.is_empty() {
            bail!("--grant-dir needs a directory: PATH[:ro|rw], got {spec:?}");
        }
        Ok(Self {
            host_path: path.into(),
            guest_path: path.into(),
            writable,
        })
    }
}

/// Which workflow ids a module may run, read and write through the store.
///
/// Anything else is refused with `store-error::denied` (and logged with the
/// module and the id); `list` returns only what the module may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Ids the module may touch start with one of these; every id when empty.
    pub id_prefixes: Vec<String>,
}

impl AccessPolicy {
    /// Every id.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only ids starting with one of `prefixes`.
    pub fn prefixes<S: Into<String>>(prefixes: impl IntoIterator<Item = S>) -> Self {
        Self {
            id_prefixes: prefixes.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether the module may touch `workflow_id`.
    pub fn allows(&self, workflow_id: &str) -> bool {
        self.id_prefixes.is_empty()
            || self
                .id_prefixes
                .iter()
                .any(|p| workflow_id.starts_with(p.as_str()))
    }

    /// Whether every id is allowed.
    pub fn is_unrestricted(&self) -> bool {
        self.id_prefixes.is_empty()
    }
}

/// How a module is sandboxed: its limits, the directories it may use, the
/// store it is bound to and the workflow ids it may touch there. Nothing else
/// is granted: no environment, arguments, network or other files.
#[derive(Debug, Clone, Default)]
pub struct ModuleOptions {
    /// Overrides of the host's per-workflow limits.
    pub limits: ModuleLimits,
    /// Directories the module may use.
    pub grants: Vec<DirGrant>,
    /// The workflow ids it may run and reach through the store.
    pub access: AccessPolicy,
    /// The store (for Kafka, the topic) its workflows are kept in and its
    /// guests reach; the host's store when `None`. A module never sees
    /// another store.
    pub store: Option<Arc<dyn WorkflowStore>>,
}

/// The limits one workflow run gets: the module's overrides over the host's defaults.
#[derive(Debug, Clone)]
pub(crate) struct RunLimits {
    pub(crate) memory_bytes: usize,
    pub(crate) table_elements: usize,
    pub(crate) instances: usize,
    pub(crate) timeout: Duration,
    pub(crate) fuel: Option<u64>,
}

/// A compiled workflow module, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    name: Arc<str>,
    hash: [u8; 32],
    pre: WorkflowWorldPre<GuestState>,
    options: Arc<ModuleOptions>,
    /// One permit per running workflow of this module, when it is bounded.
    slots: Option<Arc<Semaphore>>,
}

impl Module {
    /// The name it was loaded under (its file name, or the name given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of the component's bytes, in hex.
    pub fn digest(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Its sandbox settings.
    pub fn options(&self) -> &ModuleOptions {
        &self.options
    }

    pub(crate) fn pre(&self) -> &WorkflowWorldPre<GuestState> {
        &self.pre
    }

    pub(crate) fn slots(&self) -> Option<&Arc<Semaphore>> {
        self.slots.as_ref()
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("digest", &self.digest())
            .field("options", &self.options)
            .finish()
    }
}

/// The engine, linker and compiled modules shared by every workflow of one host.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: HostConfig,
    /// Compiled modules by content hash: loading the same bytes again (under
    /// another name or with other options) reuses the compiled code.
    modules: Mutex<HashMap<[u8; 32], WorkflowWorldPre<GuestState>>>,
    pooling: bool,
    _ticker: EpochTicker,
}

impl Runtime {
    pub(crate) fn new(config: HostConfig) -> anyhow::Result<Self> {
        let (engine, pooling) = if config.pooling {
            match Engine::new(&engine_config(&config, true)?) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    tracing::warn!(error = %e, "the pooling allocator could not reserve its slots; allocating instances on demand");
                    (new_engine(&config, false)?, false)
                }
            }
        } else {
            (new_engine(&config, false)?, false)
        };
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
            modules: Mutex::new(HashMap::new()),
            pooling,
            _ticker: ticker,
        })
    }

    pub(crate) fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Whether instances come from the pooling allocator.
    pub(crate) fn pooling(&self) -> bool {
        self.pooling
    }

    pub(crate) fn load_file(&self, path: &Path, options: ModuleOptions) -> anyhow::Result<Module> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading workflow module {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.load_bytes(&name, &bytes, options)
            .with_context(|| format!("loading workflow module {}", path.display()))
    }

    pub(crate) fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        options: ModuleOptions,
    ) -> anyhow::Result<Module> {
        for grant in &options.grants {
            if !grant.host_path.is_dir() {
                bail!(
                    "granted directory {} does not exist or is not a directory",
                    grant.host_path.display()
                );
            }
        }
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let cached = self.lock_modules().get(&hash).cloned();
        let pre = match cached {
            Some(pre) => pre,
            None => {
                // Compiled outside the lock: compiling takes long and other
                // modules may load meanwhile. Two loads of the same new bytes
                // may both compile; the second insert is harmless.
                let pre = self.compile(bytes)?;
                self.lock_modules().insert(hash, pre.clone());
                pre
            }
        };
        let slots = options
            .limits
            .max_running
            .map(|n| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))));
        Ok(Module {
            name: name.into(),
            hash,
            pre,
            options: Arc::new(options),
            slots,
        })
    }

    fn lock_modules(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], WorkflowWorldPre<GuestState>>> {
        self.modules.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn compile(&self, bytes: &[u8]) -> anyhow::Result<WorkflowWorldPre<GuestState>> {
        let component = Component::new(&self.engine, bytes)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component imports something this host does not provide")?;
        WorkflowWorldPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export `run` of world wf:workflow/workflow")
    }

    /// The limits a run of `module` gets.
    pub(crate) fn run_limits(&self, module: &Module, timeout: Option<Duration>) -> RunLimits {
        let own = &module.options.limits;
        RunLimits {
            memory_bytes: own.memory_bytes.unwrap_or(self.config.memory_limit_bytes),
            table_elements: own.table_elements.unwrap_or(self.config.table_elements),
            instances: own.instances.unwrap_or(self.config.instances),
            timeout: timeout.or(own.timeout).unwrap_or(self.config.timeout),
            fuel: own.fuel.or(self.config.fuel),
        }
    }

    /// A fresh sandboxed store for one workflow run of `module`.
    pub(crate) fn new_store(
        &self,
        module: &Module,
        limits: &RunLimits,
        workflow_id: &str,
        store: Arc<dyn WorkflowStore>,
        fence: Option<Arc<RunFence>>,
    ) -> anyhow::Result<(Store<GuestState>, GuestOutput)> {
        let stderr = GuestOutput::new(workflow_id, "stderr", self.config.stderr_tail_bytes);
        let stdout = GuestOutput::new(workflow_id, "stdout", 0);
        // Nothing is granted but what the module was given: no env, args,
        // network, or files outside its granted directories.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout).stderr(stderr.clone());
        for grant in &module.options.grants {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.host_path, &grant.guest_path, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("opening granted directory {}", grant.host_path.display())
                })?;
        }
        let state = GuestState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            store,
            module: module.name.clone(),
            options: module.options.clone(),
            fence,
            limiter: GuestLimiter::new(limits),
        };
        let mut wasm_store = Store::new(&self.engine, state);
        wasm_store.limiter(|s| &mut s.limiter);
        wasm_store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .map_err(anyhow::Error::from)?;
        // Yield at every tick: a guest that never calls the host still lets
        // other workflows run, and its deadline or cancellation is noticed.
        wasm_store.set_epoch_deadline(1);
        wasm_store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        Ok((wasm_store, stderr))
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .field("pooling", &self.pooling)
            .finish()
    }
}

fn new_engine(config: &HostConfig, pooling: bool) -> anyhow::Result<Engine> {
    Engine::new(&engine_config(config, pooling)?)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

fn engine_config(config: &HostConfig, pooling: bool) -> anyhow::Result<Config> {
    let mut engine_config = Config::new();
    // Guests are interrupted at loop back-edges and function entries.
    engine_config.epoch_interruption(true);
    engine_config.consume_fuel(true);
    if let Some(dir) = &config.cache_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the module cache {}", dir.display()))?;
        let mut cache_config = wasmtime::CacheConfig::new();
        cache_config.with_directory(dir);
        let cache = wasmtime::Cache::new(cache_config)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening the module cache {}", dir.display()))?;
        engine_config.cache(Some(cache));
    }
    if pooling {
        let slots = u32::try_from(config.max_running.max(1)).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::new();
        // A workflow is one component instance; its core instances, memories
        // and tables come from pools sized for `max_running` of them.
        pool.total_component_instances(slots)
            .total_stacks(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_tables_per_module(4)
            .max_memories_per_module(2)
            .table_elements(config.table_elements.max(20_000))
            .max_core_instance_size(4 << 20)
            .max_component_instance_size(4 << 20);
        // Keeping slots' pages resident (zeroing instead of decommitting)
        // was measured slower here: zeroing 1 MiB per run costs more than
        // the page faults it saves for small guests.
        engine_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(engine_config)
}

/// The data of one workflow's wasmtime store.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    store: Arc<dyn WorkflowStore>,
    module: Arc<str>,
    options: Arc<ModuleOptions>,
    fence: Option<Arc<RunFence>>,
    pub(crate) limiter: GuestLimiter,
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

    fn module_name(&self) -> &str {
        &self.module
    }

    fn access(&self) -> &AccessPolicy {
        &self.options.access
    }

    fn run_fence(&self) -> Option<&Arc<RunFence>> {
        self.fence.as_ref()
    }
}

/// Enforces a run's memory, table and instance limits, and remembers which
/// one refused a grow so a failure can say so. A refused grow is what wasm
/// specifies (`memory.grow` returns -1); most guests then trap.
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    refused: Option<String>,
}

impl GuestLimiter {
    fn new(limits: &RunLimits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: limits.instances,
            refused: None,
        }
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
