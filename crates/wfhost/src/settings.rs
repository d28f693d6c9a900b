//! From flags to a store and a host: the configuration file and the
//! environment, with each given flag set over them as the key it stands for
//! (one resolution, shared with every program built on `wf_host::config`),
//! and the host and module the sandbox flags describe.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use wf_host::config::{Backends, Settings, seconds};
use wf_host::store::WorkflowStore;
use wf_host::{AccessPolicy, Host, HostConfig, IdReuse, Module, ModuleOptions, WhenFull};

use crate::args::{SandboxArgs, ServerArgs, StoreArgs, WhenFullArg};

/// The configuration the file, the environment and the flags give, flags last.
pub fn resolve(backends: &Backends, args: &StoreArgs) -> anyhow::Result<Settings> {
    let mut settings = backends.load(args.config.as_deref())?;
    if let Some(kind) = args.store {
        settings.set("store", kind.name());
    }
    for (key, value) in [
        ("max_value_bytes", args.max_value_bytes),
        ("max_history_events", args.max_history_events),
        ("max_cache_bytes", args.max_cache_bytes),
    ] {
        if let Some(value) = value {
            settings.set(key, toml_integer(key, value)?);
        }
    }
    let kafka = |key: &str| format!("kafka.{key}");
    for (key, value) in [
        ("brokers", &args.brokers),
        ("topic", &args.topic),
        ("group_id", &args.group),
        ("member_name", &args.member_name),
    ] {
        if let Some(value) = value {
            settings.set(&kafka(key), value.as_str());
        }
    }
    for (key, value) in [
        ("partitions", args.partitions),
        ("replication", args.replication),
    ] {
        if let Some(value) = value {
            settings.set(&kafka(key), i64::from(value));
        }
    }
    // Checked here so that the error names the flag.
    for (flag, key, value) in [
        (
            "--produce-timeout",
            "produce_timeout_secs",
            args.produce_timeout,
        ),
        (
            "--session-timeout",
            "session_timeout_secs",
            args.session_timeout,
        ),
    ] {
        if let Some(secs) = value {
            seconds(flag, secs)?;
            settings.set(&kafka(key), secs);
        }
    }
    if args.accept_uncompacted {
        settings.set(&kafka("accept_uncompacted"), true);
    }
    if args.owned_partitions_only {
        settings.set(&kafka("owned_partitions_only"), true);
    }
    if let Some(period) = args.retention {
        settings.set(&kafka("retention"), wf_store_kafka::format_period(period));
    }
    // The local state: the flag, else the file's, else the user's cache
    // directory; an empty path keeps the cache in memory.
    if args.no_state_dir {
        settings.set(&kafka("state_dir"), "");
    } else if let Some(dir) = &args.state_dir {
        settings.set(&kafka("state_dir"), dir.to_string_lossy().as_ref());
    } else if settings.get(&kafka("state_dir")).is_none()
        && let Some(dir) = default_state_dir()
    {
        settings.set(&kafka("state_dir"), dir.to_string_lossy().as_ref());
    }
    for (key, value) in &args.kafka_props {
        settings.set_in(&["kafka", "properties", key], value.as_str());
    }
    Ok(settings)
}

/// `$XDG_CACHE_HOME/wf/state`, else `~/.cache/wf/state`.
fn default_state_dir() -> Option<std::path::PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(cache.join("wf").join("state"))
}

/// `value` as a TOML integer (which is an `i64`).
fn toml_integer(key: &str, value: usize) -> anyhow::Result<i64> {
    i64::try_from(value)
        .with_context(|| format!("--{} {value}: number out of range", key.replace('_', "-")))
}

impl SandboxArgs {
    /// A host on `store` with these limits, and the module loaded into it
    /// with these grants and the access policy of the flags and `settings`.
    pub fn host(
        &self,
        store: &Arc<dyn WorkflowStore>,
        module: &Path,
        settings: &Settings,
    ) -> anyhow::Result<(Host, Module)> {
        let timeout = positive_seconds("--timeout", self.timeout)?;
        if self.fuel == Some(0) {
            bail!("--fuel must be positive");
        }
        if !(1..=HostConfig::MAX_RUNNING).contains(&self.max_running) {
            bail!(
                "--max-running must be between 1 and {}, got {}",
                HostConfig::MAX_RUNNING,
                self.max_running
            );
        }
        if self.memory_limit == 0 || self.memory_limit > MAX_MEMORY_MIB {
            bail!(
                "--memory-limit must be between 1 and {MAX_MEMORY_MIB} (MiB), got {}",
                self.memory_limit
            );
        }
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(HostConfig::default_cache_dir)
        };
        let config = HostConfig::default()
            .timeout(timeout)
            .memory_limit_bytes(self.memory_limit.saturating_mul(1024 * 1024))
            .fuel(self.fuel)
            .max_running(self.max_running)
            .when_full(match self.when_full {
                WhenFullArg::Wait => WhenFull::Wait,
                WhenFullArg::Refuse => WhenFull::Refuse,
            })
            .cache_dir(cache_dir);
        let host = Host::with_config(store.clone(), config)?;
        // In a group, guests' conditional calls of ids other hosts own go
        // to those hosts, at the URLs they announced (--member-name).
        host.link_owners(Arc::new(wf_http::HttpOwnerLink::new()));
        let mut id_prefixes = settings.access()?.id_prefixes;
        id_prefixes.extend(self.allow_prefixes.iter().cloned());
        if id_prefixes.iter().any(String::is_empty) {
            bail!("an allowed id prefix must not be empty (omit --allow-prefix to allow every id)");
        }
        let id_reuse: IdReuse = self
            .id_reuse
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--id-reuse: {e}"))?;
        let mut options = ModuleOptions::default()
            .access(AccessPolicy::prefixes(id_prefixes))
            .id_reuse(id_reuse);
        options.grants = self.grant_dirs.clone();
        let module = host.load_module_file_with(module, options)?;
        Ok((host, module))
    }
}

impl ServerArgs {
    /// The server bounds these flags give, the body limit defaulting to
    /// the largest state `store` accepts.
    pub fn config(&self, store: &Arc<dyn WorkflowStore>) -> anyhow::Result<wf_http::ServerConfig> {
        let max_body_bytes = self
            .max_body_bytes
            .or_else(|| store.limits().map(|limits| limits.max_value_bytes))
            .unwrap_or(wf_http::ServerConfig::default().max_body_bytes);
        let config = wf_http::ServerConfig::default()
            .header_timeout(positive_seconds("--header-timeout", self.header_timeout)?)
            .body_timeout(positive_seconds("--body-timeout", self.body_timeout)?)
            .shutdown_grace(seconds_or_zero("--shutdown-grace", self.shutdown_grace)?)
            .max_body_bytes(max_body_bytes)
            .max_connections(self.max_connections)
            .max_in_flight(self.max_in_flight);
        let most = wf_http::ServerConfig::MAX_COUNT;
        for (flag, value) in [
            ("--max-body-bytes", max_body_bytes),
            ("--max-connections", self.max_connections),
            ("--max-in-flight", self.max_in_flight),
        ] {
            if !(1..=most).contains(&value) {
                bail!("{flag} must be between 1 and {most}, got {value}");
            }
        }
        config.check().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// `secs` as a duration, refusing what is not a positive number of
/// seconds a timer can hold.
fn positive_seconds(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_SECONDS)
        .with_context(|| {
            format!(
                "{flag} must be a positive number of seconds up to {}, got {secs}",
                MAX_SECONDS.as_secs()
            )
        })
}

/// `secs` as a duration, 0 allowed.
fn seconds_or_zero(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    if secs == 0.0 {
        return Ok(Duration::ZERO);
    }
    positive_seconds(flag, secs)
}

/// The largest --memory-limit: 4 GiB is all a 32-bit wasm memory can address.
const MAX_MEMORY_MIB: usize = 4096;

/// The longest time a flag may give: a year, far past any sensible
/// timeout, and far inside what a timer adds to the clock without overflow.
const MAX_SECONDS: Duration = Duration::from_secs(365 * 24 * 3600);
