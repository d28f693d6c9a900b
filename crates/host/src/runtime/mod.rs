//! The wasmtime side: one engine with its epoch ticker, the linker with
//! WASI p2 and the store import, and the compiled modules. Each run gets a
//! sandbox of its own ([`sandbox`]) under its limits ([`limits`]).

mod guest_io;
mod limits;
mod module;
mod options;
mod sandbox;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings::{self, WfStoreCtx, WorkflowWorldPre};
use crate::fence::RunFence;
use crate::store::{SharedOwnerLink, WorkflowStore};

pub(crate) use crate::bindings::Suspension;
pub(crate) use guest_io::GuestOutput;
pub use module::Module;
pub(crate) use options::RunLimits;
pub use options::{DirGrant, HostConfig, IdReuse, ModuleLimits, ModuleOptions, WhenFull};
pub(crate) use sandbox::GuestState;

/// The engine, linker and compiled modules shared by every workflow of one host.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: HostConfig,
    /// Compiled modules by content hash: loading the same bytes again (under
    /// another name or with other options) reuses the compiled code.
    modules: Mutex<HashMap<[u8; 32], WorkflowWorldPre<GuestState>>>,
    pooling: bool,
    _ticker: limits::EpochTicker,
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
        bindings::add_to_linker(&mut linker, sandbox::store_ctx)
            .map_err(anyhow::Error::from)
            .context("adding the store to the linker")?;
        let ticker = limits::EpochTicker::start(engine.clone());
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
            access: Arc::new(options.access.clone()),
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
        RunLimits::of(&self.config, &module.options.limits, timeout)
    }

    /// A fresh sandboxed store for one run of `module` as workflow
    /// `workflow_id` on `store`, fenced by `fence`; without a fence, a
    /// query's, which may not write.
    pub(crate) fn new_store(
        &self,
        module: &Module,
        limits: &RunLimits,
        workflow_id: &str,
        store: Arc<dyn WorkflowStore>,
        fence: Option<Arc<RunFence>>,
        owners: Option<&SharedOwnerLink>,
    ) -> anyhow::Result<(Store<GuestState>, GuestOutput)> {
        let import = WfStoreCtx::new(store, module.name.clone(), module.access.clone());
        let mut import = match fence {
            Some(fence) => import.fenced(fence),
            None => import.read_only(),
        };
        if let Some(owners) = owners {
            import = import.with_owner_link(owners.clone());
        }
        sandbox::new_store(
            &self.engine,
            module,
            limits,
            workflow_id,
            import,
            self.config.stderr_tail_bytes,
        )
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
