//! The one `bindgen!` of the host: the WIT `store` import implemented over
//! [`WorkflowStore`] for a [`WfStoreCtx`], and the conversions between WIT
//! and model types.
//!
//! Store failures are returned to the guest as `store-error` (mapped in
//! [`to_wit_error`]); a trap is raised only for host bugs.

use std::sync::Arc;

use crate::access::AccessPolicy;
use crate::fence::RunFence;
use crate::model::{self, ModuleIdentity};
use crate::store::validate::{self, StoreLimits};
use crate::store::{ListFilter, SharedOwnerLink, StoreError, Version, Versioned, WorkflowStore};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "workflow",
        // Store calls await the backend (a Kafka acknowledgement) without
        // blocking the executor thread.
        // `suspend` ends the guest's call of `run`: it traps, by design.
        imports: {
            "wf:workflow/execution.suspend": async | trappable,
            default: async,
        },
        exports: { default: async },
    });
}

pub(crate) use generated::WorkflowPre as WorkflowWorldPre;
pub(crate) use generated::wf::workflow::types as wit;

/// What a guest's `wf:workflow/store` import reaches: the store it is bound
/// to, the ids its module may touch there, and the module's name for the
/// log of refused calls. Keep one in a wasmtime store's data and hand it to
/// [`add_to_linker`].
#[derive(Debug, Clone)]
pub struct WfStoreCtx {
    store: Arc<dyn WorkflowStore>,
    module: Arc<str>,
    access: Arc<AccessPolicy>,
    /// The running workflow's fence on its own id, when the host runs one.
    fence: Option<Arc<RunFence>>,
    /// Where the conditional calls of ids another host of the group owns go.
    owners: Option<SharedOwnerLink>,
    /// A query's context: writes are refused.
    read_only: bool,
    /// What the run asked to wait for, once it called `suspend`.
    suspension: Option<Suspension>,
    /// The spans of the activities the run recorded as started and not yet
    /// as ended, by name: a span lasts from the one save to the other.
    activities: std::collections::HashMap<String, tracing::Span>,
}

/// What a run that called `execution.suspend` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suspension {
    /// Wake at this instant, if set.
    pub(crate) wake_at: Option<model::Timestamp>,
    /// Wake when a signal of one of these names arrives.
    pub(crate) signals: Vec<String>,
}

/// The error `suspend` traps with: the executor tells it from a failure by
/// the [`Suspension`] left in the context.
const SUSPENDED: &str = "the workflow suspended itself to wait";

impl WfStoreCtx {
    /// The import of a guest of module `module` on `store`, limited by `access`.
    pub fn new(
        store: Arc<dyn WorkflowStore>,
        module: impl Into<Arc<str>>,
        access: impl Into<Arc<AccessPolicy>>,
    ) -> Self {
        Self {
            store,
            module: module.into(),
            access: access.into(),
            fence: None,
            owners: None,
            read_only: false,
            suspension: None,
            activities: std::collections::HashMap::new(),
        }
    }

    /// Traces the activity whose event the run just saved: an
    /// `activity_started` opens its span (inside the run's), its end closes
    /// it; an end recorded without a start is an event.
    fn trace_activity(&mut self, kind: model::EventType, name: String, duration_ns: i64) {
        use model::EventType;
        match kind {
            EventType::ActivityStarted => {
                let span = tracing::info_span!("activity", activity = %name, outcome = tracing::field::Empty);
                self.activities.insert(name, span);
            }
            EventType::ActivityCompleted | EventType::ActivityFailed => {
                let outcome = if kind == EventType::ActivityCompleted {
                    "completed"
                } else {
                    "failed"
                };
                match self.activities.remove(&name) {
                    // Closed as it drops, here.
                    Some(span) => {
                        span.record("outcome", outcome);
                    }
                    None => tracing::info!(
                        activity = %name,
                        outcome,
                        duration_ms = duration_ns as f64 / 1e6,
                        "activity ended"
                    ),
                }
            }
            _ => {}
        }
    }

    /// The same context, refusing every write (`denied`): a query's.
    pub(crate) fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// What the run asked to wait for, if it called `suspend`.
    pub(crate) fn take_suspension(&mut self) -> Option<Suspension> {
        self.suspension.take()
    }

    /// The same context, forwarding `load-versioned` and conditional saves
    /// of ids another host of the store's group owns to that host through
    /// `owners`. Without one, those calls fail with `unavailable`.
    pub fn with_owner_link(mut self, owners: SharedOwnerLink) -> Self {
        self.owners = Some(owners);
        self
    }

    /// The same context, fencing the run's saves of its own id.
    pub(crate) fn fenced(mut self, fence: Arc<RunFence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// `denied` for a write in a query's read-only context.
    fn check_writable(&self, op: &str, workflow_id: &str) -> Result<(), wit::StoreError> {
        if self.read_only {
            return Err(wit::StoreError::Denied(format!(
                "{op}: workflow {workflow_id:?}: a query reads only; it may not write"
            )));
        }
        Ok(())
    }

    /// `denied` unless the module may do `op` on `workflow_id`.
    fn check(&self, op: &str, workflow_id: &str) -> Result<(), wit::StoreError> {
        self.access
            .check(&self.module, op, workflow_id)
            .map_err(to_wit_error)
    }

    /// `invalid-argument` when `state` carries a `workflow_started` event
    /// naming a module that the stored state of its id does not: those
    /// events make a state a run that recovery resumes, and only the host
    /// writes them. A guest saving its own run's state keeps them as loaded.
    async fn check_run_marks(&self, state: &model::WorkflowState) -> Result<(), wit::StoreError> {
        // A mark is compared by what it says, not by its text: an SDK may
        // re-encode the event's JSON.
        let marks = |history: &[model::HistoryEvent]| -> Vec<_> {
            history
                .iter()
                .filter_map(|e| Some((e.id, e.timestamp, ModuleIdentity::of_event(e)?)))
                .collect()
        };
        let written = marks(&state.history);
        if written.is_empty() {
            return Ok(());
        }
        let stored = self
            .store
            .load(&state.workflow_id)
            .await
            .map_err(to_wit_error)?;
        let kept = stored.map(|s| marks(&s.history)).unwrap_or_default();
        if written.iter().all(|mark| kept.contains(mark)) {
            return Ok(());
        }
        Err(wit::StoreError::InvalidArgument(format!(
            "save: workflow {:?}: a workflow-started event naming a module is written by the host only (it makes a state a run that recovery resumes); keep those the stored state has, add none",
            state.workflow_id
        )))
    }

    /// When hosts share the store and another host owns `workflow_id`: the
    /// link to it and its name, for a call only the owner can answer.
    async fn elsewhere(
        &self,
        op: &str,
        workflow_id: &str,
    ) -> Result<Option<(&SharedOwnerLink, String)>, wit::StoreError> {
        let Some(ownership) = self.store.ownership() else {
            return Ok(None);
        };
        let not_owner = match ownership.check(workflow_id).await {
            Ok(()) => return Ok(None),
            Err(not_owner) => not_owner,
        };
        let Some(owners) = &self.owners else {
            return Err(wit::StoreError::Unavailable(format!(
                "{op}: {not_owner}; this host has no link to the group's other hosts to ask it"
            )));
        };
        match not_owner.owner.clone() {
            Some(owner) => Ok(Some((owners, owner))),
            None => Err(wit::StoreError::Unavailable(format!(
                "{op}: {not_owner}; try again once it announced itself"
            ))),
        }
    }

    /// A guest's `save`, typed or packed: the access and fence checks, the
    /// run's marks, forwarding a conditional save to the id's owner, then
    /// the store's write.
    async fn save_state(
        &mut self,
        state: model::WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, wit::StoreError> {
        self.check("save", &state.workflow_id)?;
        self.check_writable("save", &state.workflow_id)?;
        let fence = self.fence_of(&state.workflow_id).cloned();
        if let (Some(fence), Some(expected)) = (&fence, expected)
            && expected != fence.version()
        {
            // The run writes its own id only over what it wrote (or
            // adopted): a version another writer wrote is not its to
            // replace, even named.
            return Err(wit::StoreError::Conflict(format!(
                "save: workflow {:?}: version {expected} is not the one this run last wrote or read ({}); another writer wrote the workflow",
                state.workflow_id,
                fence.version()
            )));
        }
        let expected = expected.or_else(|| fence.as_ref().map(|f| f.version()));
        self.check_run_marks(&state).await?;
        if let Some(expected) = expected
            && let Some((owners, owner)) = self.elsewhere("save", &state.workflow_id).await?
        {
            // Only the owner decides a conditional save: it serializes it
            // with its own writes. Then this host waits to read it too.
            let id = state.workflow_id.clone();
            let version = owners
                .save_versioned(&owner, state, expected)
                .await
                .map_err(to_wit_error)?;
            self.store
                .await_version(&id, version)
                .await
                .map_err(to_wit_error)?;
            return Ok(version);
        }
        let activity = state
            .history
            .last()
            .map(|last| (last.kind, last.activity_name.clone(), last.duration_ns));
        let shape = fence.as_ref().map(|_| {
            (
                state.history.len(),
                state.history.last().map_or(0, |e| e.id),
            )
        });
        let version = self
            .store
            .save_versioned(state, expected)
            .await
            .map_err(to_wit_error)?;
        if let (Some(fence), Some((events, last_event))) = (fence, shape) {
            fence.set_shape(version, events, last_event);
        }
        if let Some((kind, name, duration_ns)) = activity {
            self.trace_activity(kind, name, duration_ns);
        }
        Ok(version)
    }

    /// The state `load` reads: the run's own state is read with its
    /// version, so that signals appended since the run's last save are
    /// adopted (kept by it).
    async fn read(
        &mut self,
        workflow_id: &str,
    ) -> Result<Option<Arc<model::WorkflowState>>, wit::StoreError> {
        self.check("load", workflow_id)?;
        if let Some(fence) = self.fence_of(workflow_id) {
            let found = self
                .store
                .load_versioned(workflow_id)
                .await
                .map_err(to_wit_error)?;
            if let Some(found) = &found {
                fence.adopt(found.version, &found.state);
            }
            return Ok(found.map(|v| v.state));
        }
        self.store.load(workflow_id).await.map_err(to_wit_error)
    }

    /// The state and version `load-versioned` reads: in a group, the owner's.
    async fn read_versioned(
        &mut self,
        workflow_id: &str,
    ) -> Result<Option<Versioned>, wit::StoreError> {
        self.check("load", workflow_id)?;
        let found = match self.elsewhere("load-versioned", workflow_id).await? {
            // The owner's version is the one a conditional save is checked against.
            Some((owners, owner)) => owners.load_versioned(&owner, workflow_id).await,
            None => self.store.load_versioned(workflow_id).await,
        }
        .map_err(to_wit_error)?;
        if let (Some(fence), Some(found)) = (self.fence_of(workflow_id), &found) {
            fence.adopt(found.version, &found.state);
        }
        Ok(found)
    }

    /// The run's fence, if it guards `workflow_id`.
    fn fence_of(&self, workflow_id: &str) -> Option<&Arc<RunFence>> {
        self.fence.as_ref().filter(|f| f.guards(workflow_id))
    }
}

/// Marker for `HasData`: the import borrows the [`WfStoreCtx`] of the
/// wasmtime store's data.
struct HasWfStore;

impl wasmtime::component::HasData for HasWfStore {
    type Data<'a> = &'a mut WfStoreCtx;
}

/// Adds the `wf:workflow/types` and `wf:workflow/store` imports to
/// `linker`, served by the [`WfStoreCtx`] that `ctx` finds in the store's
/// data: beside WASI or other imports of an embedder's own linker, without
/// wf's executor. The linker must be async (store calls await the backend).
///
/// ```
/// use std::sync::Arc;
/// use wasmtime::component::{Component, Linker, ResourceTable};
/// use wasmtime::{Engine, Store};
/// use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
/// use wf_host::store::{MemoryStore, WorkflowStore};
/// use wf_host::{AccessPolicy, WfStoreCtx};
///
/// struct State { wasi: WasiCtx, table: ResourceTable, wf: WfStoreCtx }
/// impl WasiView for State {
///     fn ctx(&mut self) -> WasiCtxView<'_> {
///         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
///     }
/// }
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// # let pipeline_wasm = wf_test_artifacts::PIPELINE;
/// let engine = Engine::default();
/// let mut linker = Linker::<State>::new(&engine);
/// wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
/// wf_host::add_to_linker(&mut linker, |state| &mut state.wf)?;
///
/// let store: Arc<dyn WorkflowStore> = Arc::new(MemoryStore::new());
/// let state = State {
///     wasi: WasiCtx::builder().build(),
///     table: ResourceTable::new(),
///     wf: WfStoreCtx::new(store.clone(), "pipeline", AccessPolicy::all()),
/// };
/// let mut wasm = Store::new(&engine, state);
/// let component = Component::from_file(&engine, pipeline_wasm)?;
/// let instance = linker.instantiate_async(&mut wasm, &component).await?;
/// let run = instance.get_typed_func::<(&str, &str), (Result<String, String>,)>(&mut wasm, "run")?;
/// let (result,) = run.call_async(&mut wasm, ("p-1", r#""x""#)).await?;
/// assert_eq!(result.as_deref(), Ok(r#""completed: x""#));
/// // The guest saved its own state through the store import.
/// assert!(store.load("p-1").await?.is_some());
/// # Ok(()) }
/// ```
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    ctx: fn(&mut T) -> &mut WfStoreCtx,
) -> wasmtime::Result<()> {
    generated::wf::workflow::types::add_to_linker::<T, HasWfStore>(linker, ctx)?;
    generated::wf::workflow::store::add_to_linker::<T, HasWfStore>(linker, ctx)?;
    generated::wf::workflow::execution::add_to_linker::<T, HasWfStore>(linker, ctx)
}

impl generated::wf::workflow::execution::Host for WfStoreCtx {
    async fn suspend(
        &mut self,
        wake_at: Option<wit::Timestamp>,
        signals: Vec<String>,
    ) -> wasmtime::Result<()> {
        if self.fence.is_none() || self.read_only {
            return Err(wasmtime::Error::msg(
                "suspend: only a workflow's run can wait (not a query, nor a component outside wf's executor)",
            ));
        }
        for name in &signals {
            if let Err(e) = model::validate_signal_name(name) {
                return Err(wasmtime::Error::msg(format!("suspend: {e}")));
            }
        }
        let wake_at = wake_at.map(model::Timestamp::from);
        if let Some(at) = wake_at
            && let Err(e) = at.check()
        {
            return Err(wasmtime::Error::msg(format!("suspend: wake-at: {e}")));
        }
        self.suspension = Some(Suspension { wake_at, signals });
        Err(wasmtime::Error::msg(SUSPENDED))
    }
}

impl wit::Host for WfStoreCtx {}

impl generated::wf::workflow::store::Host for WfStoreCtx {
    #[tracing::instrument(name = "store.save", skip_all, fields(workflow_id = %state.workflow_id))]
    async fn save(
        &mut self,
        state: wit::WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, wit::StoreError> {
        self.save_state(state.into(), expected).await
    }

    #[tracing::instrument(name = "store.save_buffer", skip_all)]
    async fn save_buffer(
        &mut self,
        state: wit::StateBuffer,
        expected: Option<Version>,
    ) -> Result<Version, wit::StoreError> {
        let state = from_state_buffer(&state, self.store.limits().as_ref())?;
        self.save_state(state, expected).await
    }

    #[tracing::instrument(name = "store.save_packed", skip_all)]
    async fn save_packed(
        &mut self,
        state: wit::PackedState,
        expected: Option<Version>,
    ) -> Result<Version, wit::StoreError> {
        let buffer = from_packed_record(state)?;
        let state = from_state_buffer(&buffer, self.store.limits().as_ref())?;
        self.save_state(state, expected).await
    }

    #[tracing::instrument(name = "store.load_versioned", skip_all, fields(%workflow_id))]
    async fn load_versioned(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::VersionedState>, wit::StoreError> {
        Ok(self
            .read_versioned(&workflow_id)
            .await?
            .map(|v| wit::VersionedState {
                state: to_wit_state(&v.state),
                version: v.version,
            }))
    }

    #[tracing::instrument(name = "store.load", skip_all, fields(%workflow_id))]
    async fn load(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::WorkflowState>, wit::StoreError> {
        Ok(self.read(&workflow_id).await?.map(|s| to_wit_state(&s)))
    }

    #[tracing::instrument(name = "store.load_buffer", skip_all, fields(%workflow_id))]
    async fn load_buffer(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::StateBuffer>, wit::StoreError> {
        self.read(&workflow_id)
            .await?
            .map(|s| to_state_buffer(&s))
            .transpose()
    }

    #[tracing::instrument(name = "store.load_versioned_buffer", skip_all, fields(%workflow_id))]
    async fn load_versioned_buffer(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::VersionedBuffer>, wit::StoreError> {
        self.read_versioned(&workflow_id)
            .await?
            .map(|v| {
                Ok(wit::VersionedBuffer {
                    state: to_state_buffer(&v.state)?,
                    version: v.version,
                })
            })
            .transpose()
    }

    #[tracing::instrument(name = "store.load_packed", skip_all, fields(%workflow_id))]
    async fn load_packed(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::PackedState>, wit::StoreError> {
        Ok(self.load_buffer(workflow_id).await?.map(to_packed_record))
    }

    #[tracing::instrument(name = "store.load_versioned_packed", skip_all, fields(%workflow_id))]
    async fn load_versioned_packed(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::PackedVersionedState>, wit::StoreError> {
        Ok(self
            .load_versioned_buffer(workflow_id)
            .await?
            .map(|v| wit::PackedVersionedState {
                state: to_packed_record(v.state),
                version: v.version,
            }))
    }

    #[tracing::instrument(name = "store.list", skip_all)]
    async fn list(
        &mut self,
        filter: wit::WorkflowFilter,
    ) -> Result<Vec<wit::WorkflowState>, wit::StoreError> {
        let filter = ListFilter {
            status: filter.status.map(model::WorkflowStatus::from),
            limit: filter.limit,
            after: filter.after,
            prefix: filter.prefix,
            partitions: None,
        };
        let states = self
            .access
            .list(&*self.store, filter)
            .await
            .map_err(to_wit_error)?;
        Ok(states.iter().map(|s| to_wit_state(s)).collect())
    }

    #[tracing::instrument(name = "store.delete", skip_all, fields(%workflow_id))]
    async fn delete(&mut self, workflow_id: String) -> Result<(), wit::StoreError> {
        self.check("delete", &workflow_id)?;
        self.check_writable("delete", &workflow_id)?;
        self.store
            .delete(&workflow_id)
            .await
            .map_err(to_wit_error)?;
        if let Some(fence) = self.fence_of(&workflow_id) {
            fence.deleted();
        }
        Ok(())
    }
}

/// The one place store errors become WIT errors.
fn to_wit_error(error: StoreError) -> wit::StoreError {
    error.into()
}

wf_bindgen_util::same_store_error!(wit::StoreError, StoreError);

wf_bindgen_util::workflow_enums!(wit, model);

impl From<wit::Timestamp> for model::Timestamp {
    fn from(t: wit::Timestamp) -> Self {
        Self {
            seconds: t.seconds,
            nanoseconds: t.nanoseconds,
        }
    }
}

impl From<model::Timestamp> for wit::Timestamp {
    fn from(t: model::Timestamp) -> Self {
        Self {
            seconds: t.seconds,
            nanoseconds: t.nanoseconds,
        }
    }
}

impl From<wit::HistoryEvent> for model::HistoryEvent {
    fn from(e: wit::HistoryEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind.into(),
            timestamp: e.timestamp.into(),
            activity_name: e.activity_name,
            input: e.input,
            result: e.result,
            error: e.error,
            signal_name: e.signal_name,
            signal_payload: e.signal_payload,
            duration_ns: e.duration_ns,
        }
    }
}

impl From<wit::WorkflowState> for model::WorkflowState {
    fn from(s: wit::WorkflowState) -> Self {
        Self {
            workflow_id: s.workflow_id,
            run_id: s.run_id,
            status: s.status.into(),
            input: s.input,
            result: s.result,
            error: s.error,
            history: s.history.into_iter().map(Into::into).collect(),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

fn to_wit_event(e: &model::HistoryEvent) -> wit::HistoryEvent {
    wit::HistoryEvent {
        id: e.id,
        kind: e.kind.into(),
        timestamp: e.timestamp.into(),
        activity_name: e.activity_name.clone(),
        input: e.input.clone(),
        result: e.result.clone(),
        error: e.error.clone(),
        signal_name: e.signal_name.clone(),
        signal_payload: e.signal_payload.clone(),
        duration_ns: e.duration_ns,
    }
}

/// Copies a cached state into the WIT type the guest receives.
pub(crate) fn to_wit_state(s: &model::WorkflowState) -> wit::WorkflowState {
    wit::WorkflowState {
        workflow_id: s.workflow_id.clone(),
        run_id: s.run_id.clone(),
        status: s.status.into(),
        input: s.input.clone(),
        result: s.result.clone(),
        error: s.error.clone(),
        history: s.history.iter().map(to_wit_event).collect(),
        created_at: s.created_at.into(),
        updated_at: s.updated_at.into(),
    }
}

/// The bytes of a state buffer's header, and of one history event in it
/// (see `state-buffer` in the WIT for the layout).
const PACKED_HEADER_BYTES: usize = 72;
const PACKED_EVENT_BYTES: usize = 80;

/// The start of a `none` JSON field in a state buffer.
const PACKED_NONE: u32 = u32::MAX;

/// Copies a cached state into the one buffer that crosses into a guest:
/// header, event table, text.
pub(crate) fn to_state_buffer(s: &model::WorkflowState) -> Result<Vec<u8>, wit::StoreError> {
    let optional = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    let text_len = s.workflow_id.len()
        + s.run_id.len()
        + s.error.len()
        + optional(&s.input)
        + optional(&s.result)
        + s.history
            .iter()
            .map(|e| {
                e.activity_name.len()
                    + e.error.len()
                    + e.signal_name.len()
                    + optional(&e.input)
                    + optional(&e.result)
                    + optional(&e.signal_payload)
            })
            .sum::<usize>();
    // A `none` field's start is u32::MAX, so text must end before it.
    let events = u32::try_from(s.history.len()).ok();
    let (Some(events), true) = (events, text_len < PACKED_NONE as usize) else {
        return Err(wit::StoreError::Internal(format!(
            "the state of {:?} holds {text_len} bytes of text in {} events, more than a packed state can span",
            s.workflow_id,
            s.history.len()
        )));
    };
    let text_at = PACKED_HEADER_BYTES + s.history.len() * PACKED_EVENT_BYTES;
    let mut buffer = Vec::with_capacity(text_at + text_len);
    buffer.resize(text_at, 0);
    let mut p = Packer { buffer, text_at };
    p.text(0, &s.workflow_id);
    p.text(8, &s.run_id);
    p.json(16, &s.input);
    p.json(24, &s.result);
    p.text(32, &s.error);
    p.put(40, &s.created_at.seconds.to_le_bytes());
    p.put(48, &s.updated_at.seconds.to_le_bytes());
    p.put(56, &s.created_at.nanoseconds.to_le_bytes());
    p.put(60, &s.updated_at.nanoseconds.to_le_bytes());
    p.put(
        64,
        &(wit::WorkflowStatus::from(s.status) as u32).to_le_bytes(),
    );
    p.put(68, &events.to_le_bytes());
    for (i, e) in s.history.iter().enumerate() {
        let at = PACKED_HEADER_BYTES + i * PACKED_EVENT_BYTES;
        p.put(at, &e.id.to_le_bytes());
        p.put(at + 8, &e.timestamp.seconds.to_le_bytes());
        p.put(at + 16, &e.duration_ns.to_le_bytes());
        p.put(at + 24, &e.timestamp.nanoseconds.to_le_bytes());
        p.put(
            at + 28,
            &(wit::EventType::from(e.kind) as u32).to_le_bytes(),
        );
        p.text(at + 32, &e.activity_name);
        p.json(at + 40, &e.input);
        p.json(at + 48, &e.result);
        p.text(at + 56, &e.error);
        p.text(at + 64, &e.signal_name);
        p.json(at + 72, &e.signal_payload);
    }
    Ok(p.buffer)
}

/// A state buffer being filled: fixed fields written in place, text
/// appended; its text length was checked to fit a span before the first.
struct Packer {
    buffer: Vec<u8>,
    /// Where the text starts: after the header and the event table.
    text_at: usize,
}

impl Packer {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.buffer[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Appends `field` to the text and writes its span at `at`.
    fn text(&mut self, at: usize, field: &str) {
        let start = (self.buffer.len() - self.text_at) as u32;
        self.buffer.extend_from_slice(field.as_bytes());
        self.put(at, &start.to_le_bytes());
        self.put(at + 4, &(field.len() as u32).to_le_bytes());
    }

    /// As `text`, or the `none` start for an absent field.
    fn json(&mut self, at: usize, field: &Option<String>) {
        match field {
            Some(field) => self.text(at, field),
            None => self.put(at, &PACKED_NONE.to_le_bytes()),
        }
    }
}

/// The statuses by their case number in a state buffer (the WIT's
/// declared order).
const PACKED_STATUSES: [wit::WorkflowStatus; 4] = [
    wit::WorkflowStatus::Running,
    wit::WorkflowStatus::Completed,
    wit::WorkflowStatus::Failed,
    wit::WorkflowStatus::Canceled,
];

/// The event types by their case number in a packed event (the WIT's
/// declared order).
const PACKED_EVENT_KINDS: [wit::EventType; 11] = [
    wit::EventType::WorkflowStarted,
    wit::EventType::WorkflowCompleted,
    wit::EventType::WorkflowFailed,
    wit::EventType::WorkflowCanceled,
    wit::EventType::ActivityStarted,
    wit::EventType::ActivityCompleted,
    wit::EventType::ActivityFailed,
    wit::EventType::SignalReceived,
    wit::EventType::TimerFired,
    wit::EventType::TimerStarted,
    wit::EventType::WorkflowSuspended,
];

/// The little-endian number at `at` of `bytes`, which the caller checked
/// to hold it.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// As [`u32_at`], eight bytes.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

/// A guest's state buffer (`save-buffer`) as the state it stands for, or
/// `invalid-argument` naming what breaks the layout. Every field is
/// copied out of the text, so the result is what the typed `save` would
/// have received.
///
/// With `limits`, a history over their event bound is refused (`too-large`)
/// before any event is built from it: the packed bytes are the guest's to
/// size, and each event would take several times its 80 bytes here.
pub(crate) fn from_state_buffer(
    p: &[u8],
    limits: Option<&StoreLimits>,
) -> Result<model::WorkflowState, wit::StoreError> {
    let bad =
        |what: String| wit::StoreError::InvalidArgument(format!("save: the packed state {what}"));
    let Some((header, rest)) = p.split_at_checked(PACKED_HEADER_BYTES) else {
        return Err(bad(format!(
            "has {} bytes, fewer than its {PACKED_HEADER_BYTES}-byte header",
            p.len()
        )));
    };
    let count = u32_at(header, 68);
    let Some((events, text)) = (count as usize)
        .checked_mul(PACKED_EVENT_BYTES)
        .and_then(|bytes| rest.split_at_checked(bytes))
    else {
        return Err(bad(format!(
            "has {count} history events in its header, more than the {} bytes after it hold",
            rest.len()
        )));
    };
    let text =
        std::str::from_utf8(text).map_err(|e| bad(format!("has a text that is not UTF-8: {e}")))?;
    let field = |start: u32, len: u32| -> Result<String, wit::StoreError> {
        let from = start as usize;
        from.checked_add(len as usize)
            .and_then(|to| text.get(from..to))
            .map(str::to_owned)
            .ok_or_else(|| {
                bad(format!(
                    "has a span (start {start}, length {len}) outside its text of {} bytes or across a character",
                    text.len()
                ))
            })
    };
    // A string field at byte `at` of `bytes`: its span may not be `none`.
    let text_at = |bytes: &[u8], at: usize| match u32_at(bytes, at) {
        PACKED_NONE => Err(bad(format!("has a string at byte {at} that is none"))),
        start => field(start, u32_at(bytes, at + 4)),
    };
    let json_at = |bytes: &[u8], at: usize| match u32_at(bytes, at) {
        PACKED_NONE => Ok(None),
        start => field(start, u32_at(bytes, at + 4)).map(Some),
    };
    // The id is copied out for the refusal's message only.
    if let Some(limits) = limits
        && count as usize > limits.max_history_events
    {
        let id = text_at(header, 0)?;
        validate::check_history_len("save", &id, count as usize, limits).map_err(to_wit_error)?;
    }
    let status = u32_at(header, 64);
    let status = *PACKED_STATUSES
        .get(status as usize)
        .ok_or_else(|| bad(format!("has an unknown status {status}")))?;
    let (events, _) = events.as_chunks::<PACKED_EVENT_BYTES>();
    let mut history = Vec::with_capacity(events.len());
    for event in events {
        let kind = u32_at(event, 28);
        let kind = *PACKED_EVENT_KINDS
            .get(kind as usize)
            .ok_or_else(|| bad(format!("has an event of unknown kind {kind}")))?;
        history.push(wit::HistoryEvent {
            id: u64_at(event, 0),
            kind,
            timestamp: wit::Timestamp {
                seconds: u64_at(event, 8) as i64,
                nanoseconds: u32_at(event, 24),
            },
            activity_name: text_at(event, 32)?,
            input: json_at(event, 40)?,
            result: json_at(event, 48)?,
            error: text_at(event, 56)?,
            signal_name: text_at(event, 64)?,
            signal_payload: json_at(event, 72)?,
            duration_ns: u64_at(event, 16) as i64,
        });
    }
    Ok(wit::WorkflowState {
        workflow_id: text_at(header, 0)?,
        run_id: text_at(header, 8)?,
        status,
        input: json_at(header, 16)?,
        result: json_at(header, 24)?,
        error: text_at(header, 32)?,
        history,
        created_at: wit::Timestamp {
            seconds: u64_at(header, 40) as i64,
            nanoseconds: u32_at(header, 56),
        },
        updated_at: wit::Timestamp {
            seconds: u64_at(header, 48) as i64,
            nanoseconds: u32_at(header, 60),
        },
    }
    .into())
}

/// A state buffer as the earlier `packed-state` record (`load-packed`):
/// the same spans, event table and text, split. `buffer` is one that
/// [`to_state_buffer`] made.
fn to_packed_record(buffer: Vec<u8>) -> wit::PackedState {
    let events = u32_at(&buffer, 68) as usize;
    let text_at = PACKED_HEADER_BYTES + events * PACKED_EVENT_BYTES;
    let span = |at: usize| wit::Span {
        start: u32_at(&buffer, at),
        len: u32_at(&buffer, at + 4),
    };
    let json = |at: usize| Some(span(at)).filter(|s| s.start != PACKED_NONE);
    let timestamp = |seconds: usize, nanoseconds: usize| wit::Timestamp {
        seconds: u64_at(&buffer, seconds) as i64,
        nanoseconds: u32_at(&buffer, nanoseconds),
    };
    wit::PackedState {
        workflow_id: span(0),
        run_id: span(8),
        input: json(16),
        result: json(24),
        error: span(32),
        created_at: timestamp(40, 56),
        updated_at: timestamp(48, 60),
        status: PACKED_STATUSES[u32_at(&buffer, 64) as usize % PACKED_STATUSES.len()],
        history: buffer[PACKED_HEADER_BYTES..text_at].to_vec(),
        text: buffer[text_at..].to_vec(),
    }
}

/// A guest's earlier `packed-state` record (`save-packed`) as a state
/// buffer, for [`from_state_buffer`] to check and unpack; `invalid-argument`
/// for a history that is not whole events.
fn from_packed_record(p: wit::PackedState) -> Result<Vec<u8>, wit::StoreError> {
    let events = (p.history.len().is_multiple_of(PACKED_EVENT_BYTES))
        .then(|| u32::try_from(p.history.len() / PACKED_EVENT_BYTES).ok())
        .flatten()
        .ok_or_else(|| {
            wit::StoreError::InvalidArgument(format!(
                "save: the packed state has {} bytes of history, not a whole number of {PACKED_EVENT_BYTES}-byte events",
                p.history.len()
            ))
        })?;
    let mut buffer = Vec::with_capacity(PACKED_HEADER_BYTES + p.history.len() + p.text.len());
    let none = wit::Span {
        start: PACKED_NONE,
        len: 0,
    };
    for span in [
        p.workflow_id,
        p.run_id,
        p.input.unwrap_or(none),
        p.result.unwrap_or(none),
        p.error,
    ] {
        buffer.extend_from_slice(&span.start.to_le_bytes());
        buffer.extend_from_slice(&span.len.to_le_bytes());
    }
    buffer.extend_from_slice(&p.created_at.seconds.to_le_bytes());
    buffer.extend_from_slice(&p.updated_at.seconds.to_le_bytes());
    buffer.extend_from_slice(&p.created_at.nanoseconds.to_le_bytes());
    buffer.extend_from_slice(&p.updated_at.nanoseconds.to_le_bytes());
    buffer.extend_from_slice(&(p.status as u32).to_le_bytes());
    buffer.extend_from_slice(&events.to_le_bytes());
    buffer.extend_from_slice(&p.history);
    buffer.extend_from_slice(&p.text);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with one event of each kind and text of every width.
    fn rich_state() -> model::WorkflowState {
        let mut state = model::WorkflowState::new("wf-é", "run-€", model::WorkflowStatus::Running);
        state.input = Some("{\"a\":\"😀\"}".into());
        state.error = "boom".into();
        state.created_at = model::Timestamp {
            seconds: -62_135_596_800,
            nanoseconds: 0,
        };
        for (i, kind) in PACKED_EVENT_KINDS.iter().enumerate() {
            let mut event = model::HistoryEvent::new(
                i as u64 + 1,
                (*kind).into(),
                model::Timestamp {
                    seconds: 1_700_000_000 + i as i64,
                    nanoseconds: 999_999_999,
                },
            );
            event.activity_name = format!("step-{i}");
            event.result = (i % 2 == 0).then(|| format!("[{i}]"));
            event.signal_payload = (i % 3 == 0).then(|| "\"ü\"".into());
            event.duration_ns = -(i as i64);
            state.history.push(event);
        }
        state
    }

    #[test]
    fn a_packed_state_unpacks_to_the_state_it_was_packed_from() {
        for (i, kind) in PACKED_EVENT_KINDS.iter().enumerate() {
            assert_eq!(
                *kind as u32, i as u32,
                "the kind table follows the WIT's order"
            );
        }
        let state = rich_state();
        let packed = to_state_buffer(&state).unwrap();
        assert_eq!(from_state_buffer(&packed, None).unwrap(), state);
        let empty = model::WorkflowState::new("e", "", model::WorkflowStatus::Completed);
        assert_eq!(
            from_state_buffer(&to_state_buffer(&empty).unwrap(), None).unwrap(),
            empty
        );
    }

    #[test]
    fn a_packed_history_over_the_event_bound_is_refused_before_it_is_unpacked() {
        let state = rich_state();
        let events = state.history.len();
        let at = |bound: usize| {
            let limits = StoreLimits::default().max_history_events(bound);
            from_state_buffer(&to_state_buffer(&state).unwrap(), Some(&limits))
        };
        assert_eq!(at(events).unwrap(), state, "a history at the bound is kept");
        match at(events - 1) {
            Err(wit::StoreError::TooLarge(message)) => assert!(
                message.contains(&format!(
                    "has {events} history events, over the limit of {}",
                    events - 1
                )) && message.contains("wf-é"),
                "{message}"
            ),
            other => panic!("expected too-large, got {other:?}"),
        }
    }

    #[test]
    fn the_earlier_packed_record_carries_the_same_state_as_the_buffer() {
        let state = rich_state();
        let record = to_packed_record(to_state_buffer(&state).unwrap());
        let text = std::str::from_utf8(&record.text).unwrap();
        let of = |s: wit::Span| &text[s.start as usize..(s.start + s.len) as usize];
        assert_eq!(
            (of(record.workflow_id), of(record.run_id)),
            ("wf-é", "run-€")
        );
        assert_eq!(record.input.map(of), Some("{\"a\":\"😀\"}"));
        assert!(record.result.is_none());
        assert_eq!(of(record.error), "boom");
        assert_eq!(
            record.history.len(),
            state.history.len() * PACKED_EVENT_BYTES
        );
        assert_eq!(record.created_at.seconds, -62_135_596_800);
        let buffer = from_packed_record(record).unwrap();
        assert_eq!(from_state_buffer(&buffer, None).unwrap(), state);

        let mut partial = to_packed_record(to_state_buffer(&state).unwrap());
        partial.history.pop();
        match from_packed_record(partial) {
            Err(wit::StoreError::InvalidArgument(message)) => {
                assert!(
                    message.contains("not a whole number of 80-byte events"),
                    "{message}"
                )
            }
            other => panic!("expected invalid-argument, got {other:?}"),
        }
    }

    #[test]
    fn a_packed_state_that_breaks_its_layout_is_refused_clearly() {
        let refused = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut packed = to_state_buffer(&rich_state()).unwrap();
            change(&mut packed);
            match from_state_buffer(&packed, None) {
                Err(wit::StoreError::InvalidArgument(message)) => message,
                other => panic!("expected invalid-argument, got {other:?}"),
            }
        };
        let set = |p: &mut Vec<u8>, at: usize, value: u32| {
            p[at..at + 4].copy_from_slice(&value.to_le_bytes());
        };
        // The header, then 11 events, then the text.
        let text_at = PACKED_HEADER_BYTES + 11 * PACKED_EVENT_BYTES;
        let event = PACKED_HEADER_BYTES;
        assert!(refused(&|p| p[text_at] = 0xff).contains("not UTF-8"));
        // "wf-é": the é is bytes 3 and 4.
        assert!(refused(&|p| set(p, 4, 4)).contains("across a character"));
        assert!(refused(&|p| set(p, 8, u32::MAX - 1)).contains("outside its text"));
        assert!(refused(&|p| set(p, 36, u32::MAX)).contains("outside its text"));
        assert!(refused(&|p| p.truncate(71)).contains("71 bytes, fewer than its 72-byte header"));
        assert!(refused(&|p| set(p, 68, 1000)).contains("1000 history events in its header"));
        assert!(refused(&|p| set(p, 68, u32::MAX)).contains("more than the"));
        assert!(refused(&|p| set(p, 64, 4)).contains("unknown status 4"));
        assert!(refused(&|p| set(p, event + 28, 11)).contains("unknown kind 11"));
        assert!(refused(&|p| set(p, event + 32, u32::MAX)).contains("is none"));
        assert!(refused(&|p| set(p, event + 52, 0xff)).contains("outside its text"));
        assert!(refused(&|p| set(p, 0, u32::MAX)).contains("is none"));
    }
}
