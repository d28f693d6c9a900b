//! How workflows are sandboxed and bounded: the host's defaults
//! ([`HostConfig`]), a module's overrides ([`ModuleLimits`]) and grants
//! ([`ModuleOptions`], [`DirGrant`]), and what one run gets ([`RunLimits`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::access::AccessPolicy;
use crate::store::WorkflowStore;

/// Limits and sandbox settings of a host; each module may narrow or widen the
/// per-workflow limits with [`ModuleLimits`].
///
/// ```
/// use std::time::Duration;
/// use wf_host::{HostConfig, WhenFull};
///
/// let config = HostConfig::default()
///     .timeout(Duration::from_secs(5))
///     .max_running(50)
///     .when_full(WhenFull::Refuse);
/// assert_eq!(config.memory_limit_bytes, 64 * 1024 * 1024);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// The most workflows a host may run at once: far past what one
    /// machine runs, and inside what its slot semaphore and instance pools
    /// can count.
    pub const MAX_RUNNING: usize = 1 << 20;

    /// The longest [`HostConfig::timeout`]: a year, past any sensible run
    /// and far inside what a deadline added to the clock can hold.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

    /// `Ok` when a host can keep these limits; else what is wrong, naming
    /// the field.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=Self::MAX_RUNNING).contains(&self.max_running) {
            return Err(format!(
                "max_running must be between 1 and {}, got {}",
                Self::MAX_RUNNING,
                self.max_running
            ));
        }
        if self.timeout.is_zero() || self.timeout > Self::MAX_TIMEOUT {
            return Err(format!(
                "timeout must be positive and at most {} s, got {} s",
                Self::MAX_TIMEOUT.as_secs(),
                self.timeout.as_secs_f64()
            ));
        }
        if self.memory_limit_bytes == 0 {
            return Err("memory_limit_bytes must be positive".into());
        }
        if self.fuel == Some(0) {
            return Err("fuel must be positive (or none, for no limit)".into());
        }
        Ok(())
    }

    /// The default place for the compiled-module cache: `$XDG_CACHE_HOME/wf/modules`
    /// or `$HOME/.cache/wf/modules`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("wf").join("modules"))
    }

    /// Sets [`HostConfig::memory_limit_bytes`].
    pub fn memory_limit_bytes(mut self, bytes: usize) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }

    /// Sets [`HostConfig::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`HostConfig::fuel`].
    pub fn fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }

    /// Sets [`HostConfig::max_running`].
    pub fn max_running(mut self, max_running: usize) -> Self {
        self.max_running = max_running;
        self
    }

    /// Sets [`HostConfig::when_full`].
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// Sets [`HostConfig::pooling`].
    pub fn pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
        self
    }

    /// Sets [`HostConfig::table_elements`].
    pub fn table_elements(mut self, n: usize) -> Self {
        self.table_elements = n;
        self
    }

    /// Sets [`HostConfig::instances`].
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n;
        self
    }

    /// Sets [`HostConfig::stderr_tail_bytes`].
    pub fn stderr_tail_bytes(mut self, bytes: usize) -> Self {
        self.stderr_tail_bytes = bytes;
        self
    }

    /// Sets [`HostConfig::cache_dir`].
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
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

/// What a start of a workflow id that already holds a state does, per module
/// (as Temporal's workflow-id reuse policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdReuse {
    /// The id's run answers: a start of an id whose run is running or has
    /// ended returns that run instead of starting another; an id holding a
    /// record that is not a run is refused. The default: a client that
    /// retries a start never causes a second run.
    #[default]
    RejectDuplicate,
    /// As [`IdReuse::RejectDuplicate`], but a run that ended `failed` or
    /// `canceled` is started again (a new run id over it).
    AllowDuplicateFailedOnly,
    /// Every start starts a new run, over whatever the id held.
    AllowDuplicate,
}

impl IdReuse {
    /// Every policy, as [`IdReuse::as_str`] names them.
    pub const ALL: [IdReuse; 3] = [
        IdReuse::RejectDuplicate,
        IdReuse::AllowDuplicateFailedOnly,
        IdReuse::AllowDuplicate,
    ];

    /// Its name: `reject-duplicate`, `allow-duplicate-failed-only` or
    /// `allow-duplicate`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdReuse::RejectDuplicate => "reject-duplicate",
            IdReuse::AllowDuplicateFailedOnly => "allow-duplicate-failed-only",
            IdReuse::AllowDuplicate => "allow-duplicate",
        }
    }
}

impl std::str::FromStr for IdReuse {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|policy| policy.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown id reuse policy {text:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// Per-module overrides of the host's limits; `None` keeps the host's default.
///
/// ```
/// use std::time::Duration;
/// use wf_host::ModuleLimits;
///
/// let limits = ModuleLimits::default().max_running(4).timeout(Duration::from_secs(10));
/// assert_eq!(limits.memory_bytes, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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

impl ModuleLimits {
    /// Sets [`ModuleLimits::max_running`].
    pub fn max_running(mut self, n: usize) -> Self {
        self.max_running = Some(n);
        self
    }

    /// Sets [`ModuleLimits::memory_bytes`].
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// Sets [`ModuleLimits::table_elements`].
    pub fn table_elements(mut self, n: usize) -> Self {
        self.table_elements = Some(n);
        self
    }

    /// Sets [`ModuleLimits::instances`].
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = Some(n);
        self
    }

    /// Sets [`ModuleLimits::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`ModuleLimits::fuel`].
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }
}

/// A host directory a module may use, seen by the guest at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

/// How a module is sandboxed: its limits, the directories it may use, the
/// store it is bound to and the workflow ids it may touch there. Nothing else
/// is granted: no environment, arguments, network or other files.
///
/// ```
/// use wf_host::{AccessPolicy, DirGrant, ModuleLimits, ModuleOptions};
///
/// let options = ModuleOptions::default()
///     .limits(ModuleLimits::default().max_running(8))
///     .grant(DirGrant::read_only("/etc/wf-templates", "/templates"))
///     .access(AccessPolicy::prefixes(["tenant-a/"]));
/// assert_eq!(options.grants.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// What a start of an id that holds a state does.
    pub id_reuse: IdReuse,
}

impl ModuleOptions {
    /// Sets [`ModuleOptions::limits`].
    pub fn limits(mut self, limits: ModuleLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`ModuleOptions::grants`].
    pub fn grants(mut self, grants: Vec<DirGrant>) -> Self {
        self.grants = grants;
        self
    }

    /// Adds a directory to [`ModuleOptions::grants`].
    pub fn grant(mut self, grant: DirGrant) -> Self {
        self.grants.push(grant);
        self
    }

    /// Sets [`ModuleOptions::access`].
    pub fn access(mut self, access: AccessPolicy) -> Self {
        self.access = access;
        self
    }

    /// Sets [`ModuleOptions::id_reuse`].
    pub fn id_reuse(mut self, policy: IdReuse) -> Self {
        self.id_reuse = policy;
        self
    }

    /// Binds the module to `store` ([`ModuleOptions::store`]).
    pub fn store(mut self, store: Arc<dyn WorkflowStore>) -> Self {
        self.store = Some(store);
        self
    }
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

impl RunLimits {
    /// `module`'s overrides over `host`'s defaults; an explicit `timeout` over both.
    pub(crate) fn of(host: &HostConfig, module: &ModuleLimits, timeout: Option<Duration>) -> Self {
        Self {
            memory_bytes: module.memory_bytes.unwrap_or(host.memory_limit_bytes),
            table_elements: module.table_elements.unwrap_or(host.table_elements),
            instances: module.instances.unwrap_or(host.instances),
            timeout: timeout.or(module.timeout).unwrap_or(host.timeout),
            fuel: module.fuel.or(host.fuel),
        }
    }
}
