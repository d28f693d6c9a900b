//! The workflow store: one async trait, shared validation, the in-memory
//! backend, and what a backend shared by a group of hosts reports
//! ([`Ownership`], [`TailLag`]).
//!
//! Every backend is used as `Arc<dyn WorkflowStore>` and must pass the same
//! conformance suite (the `wf-store-conformance` crate). Validation lives in
//! [`validate`] so that every backend rejects the same input with the same
//! error. Backends live in crates of their own (`wf-store-kafka`) and are
//! built from configuration through [`crate::config::Backends`].

mod forward;
mod memory;
mod ownership;
pub mod validate;

use std::sync::Arc;

/// Re-exported so other crates can implement [`WorkflowStore`] for their own backends.
pub use async_trait::async_trait;

use crate::model::{WorkflowState, WorkflowStatus};

pub use forward::{OwnerLink, SharedOwnerLink};
pub use memory::MemoryStore;
pub use ownership::{Assignment, NotOwner, Ownership, Placement, WriteGuard};
pub use validate::StoreLimits;

/// Why a store call failed. Mirrors the WIT `store-error` variant, a small
/// closed set: a new case would be a change of the WIT contract, so this
/// enum is exhaustive on purpose.
///
/// The message names the backend and operation first, as the Go provider does
/// (`kafka/save: workflow ID is required`). A call that fails has written nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Malformed request: bad workflow id, invalid JSON field, timestamp out of range, zero limit.
    #[error("{0}")]
    InvalidArgument(String),
    /// The encoded state exceeds the configured value limit.
    #[error("{0}")]
    TooLarge(String),
    /// The caller may not touch this id or store.
    #[error("{0}")]
    Denied(String),
    /// The backend is unreachable, closed, or did not acknowledge in time.
    #[error("{0}")]
    Unavailable(String),
    /// A conditional write lost a race.
    #[error("{0}")]
    Conflict(String),
    /// A fault inside the store that the caller cannot fix.
    #[error("{0}")]
    Internal(String),
}

wf_bindgen_util::store_error_cases!(StoreError);

/// Runs a store write and records its time, or its failure by kind.
pub async fn timed<T>(
    op: &'static str,
    backend: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let clock = std::time::Instant::now();
    let result = call.await;
    store_call(op, backend, clock.elapsed(), &result);
    result
}

/// Records a store write's time, or its failure by kind.
pub fn store_call<T>(
    op: &'static str,
    backend: &'static str,
    took: std::time::Duration,
    result: &Result<T, StoreError>,
) {
    match result {
        Ok(_) => ::metrics::histogram!(crate::metrics::STORE_CALL_SECONDS, "op" => op, "backend" => backend)
            .record(took.as_secs_f64()),
        Err(e) => ::metrics::counter!(crate::metrics::STORE_ERRORS, "op" => op, "kind" => e.kind()).increment(1),
    }
}

/// Which states [`WorkflowStore::list`] returns.
///
/// ```
/// use wf_host::model::WorkflowStatus;
/// use wf_host::store::ListFilter;
///
/// let page = ListFilter::default().status(WorkflowStatus::Running).limit(50).after("order-9");
/// assert_eq!(page.after.as_deref(), Some("order-9"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only states with this status; all when `None`.
    pub status: Option<WorkflowStatus>,
    /// Page size; `None` means [`StoreLimits::default_page_size`]. Clamped to
    /// [`StoreLimits::max_page_size`]; zero is rejected.
    pub limit: Option<u32>,
    /// Exclusive cursor: only ids greater than this one.
    pub after: Option<String>,
    /// Only ids that start with this (bytewise); every id when `None` or
    /// empty. A store answers it from its ordered index, in time that
    /// grows with the ids under the prefix, not with the whole store.
    pub prefix: Option<String>,
    /// Only ids placed in these partitions, for a store shared by a group
    /// ([`Ownership::partition_of`]): recovery lists the partitions a host
    /// owns, and a host asks an owner for its partitions' page. Every
    /// partition when `None`; a store without partitions ignores it.
    pub partitions: Option<Vec<i32>>,
}

impl ListFilter {
    /// Only states with `status`.
    pub fn status(mut self, status: WorkflowStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// At most `limit` states.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only ids greater than `after`.
    pub fn after(mut self, after: impl Into<String>) -> Self {
        self.after = Some(after.into());
        self
    }

    /// Only ids starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Only ids placed in `partitions`.
    pub fn partitions(mut self, partitions: Vec<i32>) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Whether `partition` is one the filter lists.
    pub fn lists_partition(&self, partition: i32) -> bool {
        self.partitions
            .as_ref()
            .is_none_or(|wanted| wanted.contains(&partition))
    }

    /// The prefix ids must have, if any (an empty one is none).
    pub fn id_prefix(&self) -> Option<&str> {
        self.prefix.as_deref().filter(|p| !p.is_empty())
    }

    /// Where in ascending id order the page starts: past `after`, and not
    /// before the first id that could have the prefix.
    pub fn start(&self) -> std::ops::Bound<&str> {
        use std::ops::Bound;
        match (self.after.as_deref(), self.id_prefix()) {
            (Some(after), Some(prefix)) if after < prefix => Bound::Included(prefix),
            (Some(after), _) => Bound::Excluded(after),
            (None, Some(prefix)) => Bound::Included(prefix),
            (None, None) => Bound::Unbounded,
        }
    }

    /// Whether `id`, at or after [`ListFilter::start`], is still in the
    /// filter's range (once one is not, no later id is).
    pub fn in_range(&self, id: &str) -> bool {
        self.id_prefix().is_none_or(|prefix| id.starts_with(prefix))
    }
}

/// How far a host's cache is behind the writes other hosts made to a
/// shared store (Kafka: the records of the topic its tail has not applied).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailLag {
    /// Records not yet applied, over all partitions.
    pub records: u64,
    /// Per partition: (partition, records behind).
    pub partitions: Vec<(i32, u64)>,
}

impl TailLag {
    /// The lag of each partition; `records` is their sum.
    pub fn new(partitions: Vec<(i32, u64)>) -> Self {
        Self {
            records: partitions.iter().map(|(_, lag)| lag).sum(),
            partitions,
        }
    }
}

/// Which record of a workflow id a state was read from (WIT `version`):
/// versions of one id only grow, and 0 means no state is stored. Kafka: the
/// offset the record was written at, plus one.
pub type Version = u64;

/// A stored state and the version of its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The state.
    pub state: Arc<WorkflowState>,
    /// Its version, for a conditional [`WorkflowStore::save_versioned`].
    pub version: Version,
}

/// Durable workflow states keyed by workflow id.
///
/// Semantics every backend keeps (see `wit/store.wit`): a save or delete returns
/// only once durable and only then becomes visible; reads see this host's own
/// acknowledged writes; `list` is ordered by ascending id and bounded; a
/// conditional save writes only over the version it expects; a failed call
/// changes nothing.
///
/// A backend is `Any`, so code that opened one through configuration can
/// reach its own API: `(store as Arc<dyn Any + Send + Sync>).downcast::<B>()`.
#[async_trait]
pub trait WorkflowStore: std::any::Any + Send + Sync + std::fmt::Debug {
    /// Create or replace the state stored under `state.workflow_id`,
    /// unconditionally.
    async fn save(&self, state: WorkflowState) -> Result<(), StoreError> {
        self.save_versioned(state, None).await.map(drop)
    }

    /// Create or replace the state stored under `state.workflow_id` and
    /// return the new version. With `expected`, only if the id is at that
    /// version on this host (0: no state stored), else [`StoreError::Conflict`];
    /// writes of one id on one host are serialized, so two saves expecting
    /// the same version never both succeed. A store with [`Ownership`] also
    /// refuses a conditional save of an id whose partition this host does
    /// not own.
    async fn save_versioned(
        &self,
        state: WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError>;

    /// The state stored under `workflow_id`, if any.
    async fn load(&self, workflow_id: &str) -> Result<Option<Arc<WorkflowState>>, StoreError> {
        Ok(self.load_versioned(workflow_id).await?.map(|v| v.state))
    }

    /// The state stored under `workflow_id` with its version, read in one step.
    async fn load_versioned(&self, workflow_id: &str) -> Result<Option<Versioned>, StoreError>;

    /// One page of states matching `filter`, ascending by id.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Arc<WorkflowState>>, StoreError>;

    /// Remove the state stored under `workflow_id`; absent ids succeed.
    async fn delete(&self, workflow_id: &str) -> Result<(), StoreError>;

    /// Flush and release resources. Idempotent; later calls fail with `Unavailable`.
    async fn close(&self) -> Result<(), StoreError>;

    /// Links the store to the other hosts of its group, for a store that
    /// keeps only the partitions its host owns and reads the others from
    /// their owners. [`Host::link_owners`](crate::Host::link_owners) calls
    /// it; other stores ignore it.
    fn link_owners(&self, _owners: SharedOwnerLink) {}

    /// A short human description, e.g. `in-memory` or `kafka topic t on b:9092`.
    fn describe(&self) -> String;

    /// The backend's name (`memory`, `kafka`), which, unlike
    /// [`WorkflowStore::describe`], says nothing of where it is.
    fn kind(&self) -> &'static str {
        "custom"
    }

    /// The limits the store enforces, when it has them (the host keeps
    /// room under the event bound for a workflow's own steps when it
    /// appends signals).
    fn limits(&self) -> Option<StoreLimits> {
        None
    }

    /// Which workflows this host owns when it shares the store with other
    /// hosts (a Kafka consumer group); `None`: it owns every workflow.
    fn ownership(&self) -> Option<Arc<Ownership>> {
        None
    }

    /// Waits (a short while at most) until this host's reads of
    /// `workflow_id` reflect `version` or a newer one: after a write another
    /// host made on this host's behalf (a forwarded conditional save), so
    /// that this host still reads its own writes. Stores that no other host
    /// writes return at once.
    async fn await_version(&self, _workflow_id: &str, _version: Version) -> Result<(), StoreError> {
        Ok(())
    }

    /// How far this host's cache is behind writes other hosts made (Kafka:
    /// records of the topic its tail has not applied yet, as of its last
    /// fetch); `None` for a store no other host writes. Cheap: a status page
    /// may ask it at every request, so it makes no round trip to a broker.
    async fn tail_lag(&self) -> Result<Option<TailLag>, StoreError> {
        Ok(None)
    }

    /// Sets the gauges of what the store holds now (its cache, its lag,
    /// its partitions: see [`crate::metrics`]). A scrape calls it first,
    /// through [`Host::record_metrics`](crate::Host::record_metrics); it
    /// makes no round trip to a broker.
    fn record_metrics(&self) {}
}
