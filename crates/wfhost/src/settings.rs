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

use crate::args::{SandboxArgs, StoreArgs, WhenFullArg};

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
    for (key, value) in &args.kafka_props {
        settings.set_in(&["kafka", "properties", key], value.as_str());
    }
    Ok(settings)
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
        let timeout = Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .with_context(|| {
                format!(
                    "--timeout must be a positive number of seconds, got {}",
                    self.timeout
                )
            })?;
        if self.fuel == Some(0) {
            bail!("--fuel must be positive");
        }
        if self.max_running == 0 {
            bail!("--max-running must be at least 1");
        }
        if self.memory_limit == 0 {
            bail!("--memory-limit must be at least 1 (MiB)");
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
