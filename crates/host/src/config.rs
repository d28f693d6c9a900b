//! Building a store from configuration, one way for every program: a TOML
//! document ([`Settings`]) read from a file, overlaid by the environment
//! and then by the program's own overrides (flags), and a registry of
//! backends ([`Backends`]) that each read their own table of it.
//!
//! The document's top level is common to every backend: `store` (which
//! backend), the store bounds (`max_value_bytes`, `max_history_events`,
//! `max_cache_bytes`) and the modules' `[access]`. Each backend has a table
//! named after it (`[kafka]`), deserialized into its own settings type, so a
//! new backend is a crate with a [`MakeStore`] and one `register` call, not
//! an edit here.
//!
//! ```
//! use wf_host::config::{Backends, OpenReport, Settings};
//!
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! let mut settings = Settings::parse("store = \"memory\"\nmax_value_bytes = 2048")?;
//! settings.set("max_history_events", 100);        // an override, as a flag would set it
//! let backends = Backends::new();                   // "memory"; backend crates add theirs
//! assert_eq!(settings.limits()?.max_history_events, 100);
//! let store = backends.open(&settings, &OpenReport::default()).await?;
//! assert!(store.describe().starts_with("in-memory"));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::access::AccessPolicy;
use crate::store::{MemoryStore, StoreLimits, WorkflowStore};

/// The environment variable naming the config file, when no file is given.
pub const CONFIG_ENV: &str = "WF_CONFIG";

/// The largest config file read, in bytes: a config is a few lines.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A configuration document: the common keys and one table per backend.
///
/// Built from a file ([`Settings::load`]), the environment
/// ([`Backends::load`] applies each backend's variables) and overrides
/// ([`Settings::set`]), in that order of precedence from lowest to highest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    doc: toml::Table,
}

/// The keys every configuration may have, whatever the backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    store: Option<String>,
    max_value_bytes: Option<usize>,
    max_history_events: Option<usize>,
    max_cache_bytes: Option<usize>,
    #[serde(default)]
    access: AccessSection,
}

/// The `[access]` table: the access policy of the modules a program runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSection {
    #[serde(default)]
    id_prefixes: Vec<String>,
}

/// The top-level keys that are not backend tables.
const COMMON_KEYS: [&str; 5] = [
    "store",
    "max_value_bytes",
    "max_history_events",
    "max_cache_bytes",
    "access",
];

impl Settings {
    /// An empty document: every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let doc: toml::Table = toml::from_str(text)?;
        Ok(Self { doc })
    }

    /// Reads and parses a TOML file (at most 1 MiB).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading config file {}", path.display()))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            bail!(
                "reading config file {}: it is larger than {MAX_CONFIG_BYTES} bytes",
                path.display()
            );
        }
        Self::parse(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// Sets dotted `key` (`max_value_bytes`, `kafka.brokers`) over whatever
    /// the document had. A key that holds dots itself (a librdkafka
    /// property) goes through [`Settings::set_in`].
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>) {
        let path: Vec<&str> = key.split('.').collect();
        self.set_in(&path, value);
    }

    /// Sets the value at `path` (a table per element but the last),
    /// creating tables on the way.
    pub fn set_in(&mut self, path: &[&str], value: impl Into<toml::Value>) {
        let Some((last, tables)) = path.split_last() else {
            return;
        };
        let mut table = &mut self.doc;
        for name in tables {
            let entry = table
                .entry(name.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            table = entry.as_table_mut().expect("a table was just put here");
        }
        table.insert(last.to_string(), value.into());
    }

    /// The value at dotted `key`, if set.
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        let mut parts = key.split('.');
        let mut value = self.doc.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    fn common(&self) -> anyhow::Result<Common> {
        let mut common = self.doc.clone();
        common.retain(|key, _| COMMON_KEYS.contains(&key));
        toml::Value::Table(common)
            .try_into()
            .context("invalid configuration")
    }

    /// The store bounds this document sets, defaults elsewhere.
    pub fn limits(&self) -> anyhow::Result<StoreLimits> {
        let common = self.common()?;
        let defaults = StoreLimits::default();
        Ok(StoreLimits {
            max_value_bytes: common.max_value_bytes.unwrap_or(defaults.max_value_bytes),
            max_history_events: common
                .max_history_events
                .unwrap_or(defaults.max_history_events),
            max_cache_bytes: common.max_cache_bytes.unwrap_or(defaults.max_cache_bytes),
            ..defaults
        })
    }

    /// The access policy of `[access]`: every id when it sets no prefix.
    pub fn access(&self) -> anyhow::Result<AccessPolicy> {
        Ok(AccessPolicy::prefixes(self.common()?.access.id_prefixes))
    }

    /// Backend `name`'s table, deserialized into `C` (missing keys take
    /// `C`'s defaults; unknown keys are refused by `C`).
    pub fn section<C: DeserializeOwned>(&self, name: &str) -> anyhow::Result<C> {
        let table = match self.doc.get(name) {
            Some(toml::Value::Table(table)) => table.clone(),
            Some(_) => bail!("invalid configuration: `{name}` must be a table ([{name}])"),
            None => toml::Table::new(),
        };
        toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("invalid configuration in [{name}]"))
    }
}

/// A backend that can be built from its table of a [`Settings`] document.
///
/// ```
/// use std::sync::Arc;
/// use wf_host::config::{Backends, MakeStore, OpenReport, Settings};
/// use wf_host::store::{MemoryStore, StoreLimits, WorkflowStore};
///
/// /// A backend with one setting of its own.
/// struct Scratch;
///
/// #[derive(serde::Deserialize, Default)]
/// #[serde(default, deny_unknown_fields)]
/// struct ScratchConfig { label: String }
///
/// impl MakeStore for Scratch {
///     const NAME: &'static str = "scratch";
///     type Config = ScratchConfig;
///     async fn make_store(&self, config: ScratchConfig, limits: StoreLimits, report: &OpenReport)
///         -> anyhow::Result<Arc<dyn WorkflowStore>> {
///         report.notice(&format!("scratch store {}", config.label));
///         Ok(Arc::new(MemoryStore::with_limits(limits)))
///     }
/// }
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// let backends = Backends::new().with(Scratch);
/// let settings = Settings::parse("store = \"scratch\"\n[scratch]\nlabel = \"a\"")?;
/// backends.open(&settings, &OpenReport::default()).await?;
/// # Ok(()) }
/// ```
pub trait MakeStore: Send + Sync + 'static {
    /// The name a configuration selects it by (`store = "kafka"`), and the
    /// name of its table (`[kafka]`).
    const NAME: &'static str;
    /// Environment variables that set keys of its table, as
    /// `(variable, key)`: they override the file, flags override them.
    const ENV: &'static [(&'static str, &'static str)] = &[];
    /// Its settings, deserialized from its table.
    type Config: DeserializeOwned + Send;

    /// Opens a store, ready to serve, with `limits` (the document's common
    /// bounds); tells the user what they should know on the way (`report`).
    fn make_store(
        &self,
        config: Self::Config,
        limits: StoreLimits,
        report: &OpenReport,
    ) -> impl Future<Output = anyhow::Result<Arc<dyn WorkflowStore>>> + Send;
}

/// The built-in backend: process memory, nothing kept (`store = "memory"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryBackend;

/// [`MemoryBackend`] has no settings of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl MakeStore for MemoryBackend {
    const NAME: &'static str = "memory";
    type Config = NoSettings;

    async fn make_store(
        &self,
        _config: NoSettings,
        limits: StoreLimits,
        _report: &OpenReport,
    ) -> anyhow::Result<Arc<dyn WorkflowStore>> {
        Ok(Arc::new(MemoryStore::with_limits(limits)))
    }
}

type Opening<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<Arc<dyn WorkflowStore>>> + Send + 'a>>;

/// A [`MakeStore`] behind a vtable: its table in, a store out.
trait ErasedMakeStore: Send + Sync {
    fn env(&self) -> &'static [(&'static str, &'static str)];
    fn open<'a>(
        &'a self,
        settings: &Settings,
        limits: StoreLimits,
        report: &'a OpenReport,
    ) -> anyhow::Result<Opening<'a>>;
}

impl<M: MakeStore> ErasedMakeStore for M {
    fn env(&self) -> &'static [(&'static str, &'static str)] {
        M::ENV
    }

    fn open<'a>(
        &'a self,
        settings: &Settings,
        limits: StoreLimits,
        report: &'a OpenReport,
    ) -> anyhow::Result<Opening<'a>> {
        let config: M::Config = settings.section(M::NAME)?;
        Ok(Box::pin(self.make_store(config, limits, report)))
    }
}

/// The backends a program can open, by name, and the one a configuration
/// gets when it names none.
pub struct Backends {
    makers: BTreeMap<&'static str, Box<dyn ErasedMakeStore>>,
    default: &'static str,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("names", &self.makers.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

impl Default for Backends {
    fn default() -> Self {
        Self::new()
    }
}

impl Backends {
    /// The memory backend only, the default.
    pub fn new() -> Self {
        let mut makers: BTreeMap<&'static str, Box<dyn ErasedMakeStore>> = BTreeMap::new();
        makers.insert(MemoryBackend::NAME, Box::new(MemoryBackend));
        Self {
            makers,
            default: MemoryBackend::NAME,
        }
    }

    /// Adds (or replaces) backend `M`.
    pub fn with<M: MakeStore>(mut self, maker: M) -> Self {
        self.makers.insert(M::NAME, Box::new(maker));
        self
    }

    /// Makes `M` the backend of a configuration that names none.
    pub fn with_default<M: MakeStore>(mut self, maker: M) -> Self {
        self.default = M::NAME;
        self.with(maker)
    }

    /// The names of the backends, ascending.
    pub fn names(&self) -> Vec<&'static str> {
        self.makers.keys().copied().collect()
    }

    /// The backend `settings` selects (`store`, else the default).
    pub fn selected(&self, settings: &Settings) -> anyhow::Result<&'static str> {
        let name = settings.common()?.store;
        let name = name.as_deref().unwrap_or(self.default);
        self.makers
            .get_key_value(name)
            .map(|(name, _)| *name)
            .with_context(|| {
                format!(
                    "invalid configuration: unknown store {name:?}; expected one of: {}",
                    self.names().join(", ")
                )
            })
    }

    /// The settings of a program configured from its environment: the file
    /// at `file` (or named by `WF_CONFIG`, or none), then every backend's
    /// environment variables over it. Overrides ([`Settings::set`]) go on
    /// top.
    pub fn load(&self, file: Option<&Path>) -> anyhow::Result<Settings> {
        let from_env = std::env::var_os(CONFIG_ENV);
        let mut settings = match file.or(from_env.as_deref().map(Path::new)) {
            Some(path) => Settings::load(path)?,
            None => Settings::new(),
        };
        for (name, maker) in &self.makers {
            for (variable, key) in maker.env() {
                if let Ok(value) = std::env::var(variable) {
                    settings.set_in(&[name, key], value);
                }
            }
        }
        Ok(settings)
    }

    /// Checks what every backend reads in `settings` without opening
    /// anything: the common keys, that every other top-level key is a
    /// backend's table, and that the selected backend's table is valid.
    pub fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        settings.common()?;
        for key in settings.doc.keys() {
            if !COMMON_KEYS.contains(&key.as_str()) && !self.makers.contains_key(key.as_str()) {
                bail!(
                    "invalid configuration: unknown field `{key}`, expected one of {}",
                    COMMON_KEYS
                        .iter()
                        .copied()
                        .chain(self.names())
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let name = self.selected(settings)?;
        self.makers[name]
            .open(settings, settings.limits()?, &OpenReport::default())
            .map(drop)
    }

    /// Opens the store `settings` select, ready to serve.
    pub async fn open(
        &self,
        settings: &Settings,
        report: &OpenReport,
    ) -> anyhow::Result<Arc<dyn WorkflowStore>> {
        self.check(settings)?;
        let name = self.selected(settings)?;
        let opening = self.makers[name].open(settings, settings.limits()?, report)?;
        opening.await
    }
}

/// Receives the progress of a load at open (from the backend's threads).
pub type ProgressCallback = Arc<dyn Fn(&OpenProgress) + Send + Sync>;

/// What a backend tells its user while it opens: notices (a line each, for
/// the user to read: "no brokers configured, started a mock cluster") and
/// progress of a long load (a replay).
#[derive(Clone)]
pub struct OpenReport {
    notice: Arc<dyn Fn(&str) + Send + Sync>,
    progress: Option<ProgressCallback>,
}

impl std::fmt::Debug for OpenReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenReport")
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for OpenReport {
    /// Notices go to the log (`warn`); progress is not reported.
    fn default() -> Self {
        Self {
            notice: Arc::new(|message| tracing::warn!("{message}")),
            progress: None,
        }
    }
}

impl OpenReport {
    /// Notices go to `notice` instead of the log.
    pub fn on_notice(mut self, notice: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.notice = Arc::new(notice);
        self
    }

    /// Progress goes to `progress` (called from the backend's threads).
    pub fn on_progress(mut self, progress: impl Fn(&OpenProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// Tells the user `message`.
    pub fn notice(&self, message: &str) {
        (self.notice)(message);
    }

    /// The progress callback, for a backend to call from where it loads.
    pub fn progress(&self) -> Option<ProgressCallback> {
        self.progress.clone()
    }
}

/// How far a long load at open has come.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OpenProgress {
    /// What is loading, e.g. `replaying beluga-workflows`.
    pub what: String,
    /// Units (records) done.
    pub done: u64,
    /// Units in all, as far as known.
    pub total: u64,
}

impl OpenProgress {
    /// `done` of `total` units of `what`.
    pub fn new(what: impl Into<String>, done: u64, total: u64) -> Self {
        Self {
            what: what.into(),
            done,
            total,
        }
    }
}

/// A positive, finite number of seconds as a duration; `name` (a flag or
/// key) names it in the error.
pub fn seconds(name: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{name} must be a positive number of seconds, got {secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_has_the_default_bounds_and_no_access_limit() {
        let settings = Settings::parse("").unwrap();
        assert_eq!(settings.limits().unwrap(), StoreLimits::default());
        assert!(settings.access().unwrap().is_unrestricted());
        assert_eq!(Backends::new().selected(&settings).unwrap(), "memory");
    }

    #[test]
    fn overrides_win_over_the_file_and_mistakes_are_named() {
        let mut settings =
            Settings::parse("max_value_bytes = 2048\n[access]\nid_prefixes = [\"a/\"]\n[memory]\n")
                .unwrap();
        settings.set("max_value_bytes", 4096);
        assert_eq!(settings.limits().unwrap().max_value_bytes, 4096);
        assert_eq!(settings.access().unwrap(), AccessPolicy::prefixes(["a/"]));
        let backends = Backends::new();
        backends.check(&settings).unwrap();

        let typo = Settings::parse("max_value_byte = 1").unwrap();
        let e = backends.check(&typo).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `max_value_byte`"),
            "{e:#}"
        );
        let unknown = Settings::parse("store = \"redis\"").unwrap();
        let e = backends.check(&unknown).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown store \"redis\""),
            "{e:#}"
        );
        let bad = Settings::parse("[memory]\nsize = 1").unwrap();
        let e = backends.check(&bad).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `size`"), "{e:#}");
    }

    #[test]
    fn a_config_file_over_the_size_bound_is_refused() {
        let e = Settings::load(Path::new("/dev/zero")).unwrap_err();
        assert!(format!("{e:#}").contains("larger than"), "{e:#}");
    }
}
