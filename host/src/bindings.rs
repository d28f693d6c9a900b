//! The one `bindgen!` of the host, the WIT `store` interface implemented over
//! [`WorkflowStore`], and the conversions between WIT and model types.
//!
//! Store failures are returned to the guest as `store-error` (mapped in
//! [`to_wit_error`]); a trap is raised only for host bugs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model;
use crate::runtime::AccessPolicy;
use crate::store::{ListFilter, StoreError, StoreLimits, Version, WorkflowStore};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "workflow",
        // Store calls await the backend (a Kafka acknowledgement) without
        // blocking the executor thread.
        imports: { default: async },
        exports: { default: async },
    });
}

pub(crate) use generated::WorkflowPre as WorkflowWorldPre;
pub(crate) use generated::wf::workflow::types as wit;

/// What the host's store import needs from a wasmtime store's data.
pub(crate) trait StoreView: Send {
    /// The backend this guest is bound to.
    fn workflow_store(&self) -> &Arc<dyn WorkflowStore>;
    /// The module's name, for the log of refused calls.
    fn module_name(&self) -> &str;
    /// The ids the module may touch.
    fn access(&self) -> &AccessPolicy;
    /// The running workflow's fence on its own id, if the guest runs one.
    fn run_fence(&self) -> Option<&Arc<RunFence>>;
}

/// The version a run last wrote of its own workflow id. The host's
/// lifecycle saves and the guest's saves of that id (when the guest names no
/// expected version) are conditional on it, so a run whose workflow another
/// host took over (and wrote) cannot write it again.
#[derive(Debug)]
pub(crate) struct RunFence {
    workflow_id: String,
    version: AtomicU64,
}

impl RunFence {
    pub(crate) fn new(workflow_id: &str, version: Version) -> Self {
        Self {
            workflow_id: workflow_id.to_owned(),
            version: AtomicU64::new(version),
        }
    }

    /// The version the run last wrote.
    pub(crate) fn version(&self) -> Version {
        self.version.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, version: Version) {
        self.version.store(version, Ordering::Release);
    }

    /// This fence, if it guards `workflow_id`.
    fn guarding(fence: Option<&Arc<Self>>, workflow_id: &str) -> Option<Arc<Self>> {
        fence.filter(|f| f.workflow_id == workflow_id).cloned()
    }
}

/// `denied` unless `module`'s policy `access` allows `workflow_id`; logs a
/// refusal. Every access check (guest calls, execute, HTTP) goes through here.
pub(crate) fn check_access(
    module: &str,
    access: &AccessPolicy,
    op: &str,
    workflow_id: &str,
) -> Result<(), StoreError> {
    if access.allows(workflow_id) {
        return Ok(());
    }
    tracing::warn!(
        module,
        workflow_id,
        op,
        "denied by the module's access policy"
    );
    Err(StoreError::Denied(format!(
        "{op}: module {module} may not touch workflow {workflow_id:?}: it is limited to ids starting with {:?}",
        access.id_prefixes
    )))
}

/// [`check_access`] for a guest's call.
fn check_guest_access(
    view: &dyn StoreView,
    op: &str,
    workflow_id: &str,
) -> Result<(), wit::StoreError> {
    check_access(view.module_name(), view.access(), op, workflow_id).map_err(to_wit_error)
}

/// Marker for `HasData`: the host implementation borrows the store's data.
struct StoreImports;

impl wasmtime::component::HasData for StoreImports {
    type Data<'a> = &'a mut dyn StoreView;
}

/// Adds the `store` and `types` imports to `linker`.
pub(crate) fn add_to_linker<T: StoreView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    generated::wf::workflow::types::add_to_linker::<T, StoreImports>(linker, |t| t)?;
    generated::wf::workflow::store::add_to_linker::<T, StoreImports>(linker, |t| t)
}

impl wit::Host for &mut dyn StoreView {}

impl generated::wf::workflow::store::Host for &mut dyn StoreView {
    async fn save(
        &mut self,
        state: wit::WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, wit::StoreError> {
        check_guest_access(&**self, "save", &state.workflow_id)?;
        let fence = RunFence::guarding(self.run_fence(), &state.workflow_id);
        let expected = expected.or_else(|| fence.as_ref().map(|f| f.version()));
        let state = model::WorkflowState::from(state);
        let version = self
            .workflow_store()
            .save_versioned(state, expected)
            .await
            .map_err(to_wit_error)?;
        if let Some(fence) = fence {
            fence.set(version);
        }
        Ok(version)
    }

    async fn load_versioned(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::VersionedState>, wit::StoreError> {
        check_guest_access(&**self, "load", &workflow_id)?;
        let found = self
            .workflow_store()
            .load_versioned(&workflow_id)
            .await
            .map_err(to_wit_error)?;
        Ok(found.map(|v| wit::VersionedState {
            state: to_wit_state(&v.state),
            version: v.version,
        }))
    }

    async fn load(
        &mut self,
        workflow_id: String,
    ) -> Result<Option<wit::WorkflowState>, wit::StoreError> {
        check_guest_access(&**self, "load", &workflow_id)?;
        let state = self
            .workflow_store()
            .load(&workflow_id)
            .await
            .map_err(to_wit_error)?;
        Ok(state.map(|s| to_wit_state(&s)))
    }

    async fn list(
        &mut self,
        filter: wit::WorkflowFilter,
    ) -> Result<Vec<wit::WorkflowState>, wit::StoreError> {
        let filter = ListFilter {
            status: filter.status.map(model::WorkflowStatus::from),
            limit: filter.limit,
            after: filter.after,
        };
        let states = list_allowed(&**self.workflow_store(), self.access(), filter)
            .await
            .map_err(to_wit_error)?;
        Ok(states.iter().map(|s| to_wit_state(s)).collect())
    }

    async fn delete(&mut self, workflow_id: String) -> Result<(), wit::StoreError> {
        check_guest_access(&**self, "delete", &workflow_id)?;
        self.workflow_store()
            .delete(&workflow_id)
            .await
            .map_err(to_wit_error)?;
        if let Some(fence) = RunFence::guarding(self.run_fence(), &workflow_id) {
            fence.set(0);
        }
        Ok(())
    }
}

/// One page of `filter` holding only ids `access` allows: still a full page
/// when there is one, reading on through pages of others' ids.
pub(crate) async fn list_allowed(
    store: &dyn WorkflowStore,
    access: &AccessPolicy,
    mut filter: ListFilter,
) -> Result<Vec<Arc<model::WorkflowState>>, StoreError> {
    if access.is_unrestricted() {
        return store.list(&filter).await;
    }
    // The store checks and clamps `limit` (0 is refused) as usual.
    let defaults = StoreLimits::default();
    let wanted = filter
        .limit
        .unwrap_or(defaults.default_page_size)
        .min(defaults.max_page_size) as usize;
    let mut visible = Vec::new();
    loop {
        let page = store.list(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.after = Some(last.workflow_id.clone());
        for state in page {
            if access.allows(&state.workflow_id) {
                visible.push(state);
                if visible.len() == wanted {
                    return Ok(visible);
                }
            }
        }
    }
    Ok(visible)
}

/// The one place store errors become WIT errors.
fn to_wit_error(error: StoreError) -> wit::StoreError {
    match error {
        StoreError::InvalidArgument(m) => wit::StoreError::InvalidArgument(m),
        StoreError::TooLarge(m) => wit::StoreError::TooLarge(m),
        StoreError::Denied(m) => wit::StoreError::Denied(m),
        StoreError::Unavailable(m) => wit::StoreError::Unavailable(m),
        StoreError::Conflict(m) => wit::StoreError::Conflict(m),
        StoreError::Internal(m) => wit::StoreError::Internal(m),
    }
}

macro_rules! same_enum {
    ($wit:ty, $model:ty, [$($variant:ident),+ $(,)?]) => {
        impl From<$wit> for $model {
            fn from(value: $wit) -> Self {
                match value { $(<$wit>::$variant => <$model>::$variant,)+ }
            }
        }
        impl From<$model> for $wit {
            fn from(value: $model) -> Self {
                match value { $(<$model>::$variant => <$wit>::$variant,)+ }
            }
        }
    };
}

same_enum!(
    wit::WorkflowStatus,
    model::WorkflowStatus,
    [Running, Completed, Failed, Canceled]
);
same_enum!(
    wit::EventType,
    model::EventType,
    [
        WorkflowStarted,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowCanceled,
        ActivityStarted,
        ActivityCompleted,
        ActivityFailed,
        SignalReceived,
        TimerFired,
    ]
);

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
