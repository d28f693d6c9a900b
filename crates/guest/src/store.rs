//! The workflow store as the guest sees it, and the workflow's context.

use crate::bindings::wf::workflow::{store as wit_store, types as wit};
use crate::types::{Timestamp, WorkflowState, WorkflowStatus};
use crate::view::StateView;

/// Why a store call failed; mirrors the WIT `store-error`. A failed call wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Malformed request: bad workflow id, invalid JSON, timestamp out of range, zero limit.
    InvalidArgument(String),
    /// The encoded state exceeds the store's value limit.
    TooLarge(String),
    /// This module may not touch that id or store.
    Denied(String),
    /// The backend did not acknowledge; the call may be retried.
    Unavailable(String),
    /// A conditional write lost a race.
    Conflict(String),
    /// The host failed.
    Internal(String),
}

wf_bindgen_util::store_error_cases!(StoreError);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for StoreError {}

wf_bindgen_util::same_store_error!(wit::StoreError, StoreError);

/// Which states [`Store::list`] returns. Build it with the chained setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status; all when `None`.
    pub status: Option<WorkflowStatus>,
    /// Page size: default 100, at most 1000; 0 is rejected.
    pub limit: Option<u32>,
    /// Only ids after this one (exclusive).
    pub after: Option<String>,
    /// Only ids starting with this; all when `None` or empty.
    pub prefix: Option<String>,
}

impl ListFilter {
    /// Every state, default page size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only states with `status`.
    pub fn status(mut self, status: WorkflowStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// At most `limit` states per page.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only ids greater than `after`.
    pub fn after(mut self, after: impl Into<String>) -> Self {
        self.after = Some(after.into());
        self
    }

    /// Only ids starting with `prefix` (`"order/"`, say).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
}

/// Which record of a workflow id a state was read from: versions of one id
/// only grow, and 0 means no state is stored. Pass one to
/// [`Store::save_versioned`] to write only if nobody wrote the id since.
pub type Version = u64;

/// A stored state and the version of its record ([`Store::load_versioned`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The state.
    pub state: WorkflowState,
    /// Its version.
    pub version: Version,
}

/// The host's workflow store. Every call is synchronous for the guest; a write
/// returns once the host's backend acknowledged it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Store {
    _private: (),
}

impl Store {
    /// Creates or replaces the state under `state.workflow_id`, with
    /// `updated_at` set to now.
    ///
    /// Inside a run, a save of the workflow's own id is checked by the host
    /// against the version the run last wrote: if another host took the
    /// workflow over and wrote it, this fails with [`StoreError::Conflict`].
    pub fn save(&self, state: &WorkflowState) -> Result<(), StoreError> {
        self.save_versioned(state, None).map(drop)
    }

    /// Saves `state` only if its id is still at version `expected` (0: no
    /// state stored), else fails with [`StoreError::Conflict`] and writes
    /// nothing; `None` saves as [`Store::save`] does. Returns the new version.
    ///
    /// Who decides: on hosts of one group, the host that owns the id (the
    /// call, and [`Store::load_versioned`], go there; a call that cannot be
    /// forwarded fails with [`StoreError::Unavailable`]), so the retry loop
    /// below is exact across hosts. Outside a group, each host decides
    /// against its own cache: two hosts writing one topic without a group
    /// can both succeed.
    ///
    /// ```no_run
    /// # use wf_guest::{Json, Store, StoreError, WorkflowState};
    /// # fn f(store: &Store) -> Result<(), StoreError> {
    /// // Increment a counter kept in `result`, safely against other writers.
    /// loop {
    ///     let (mut state, version) = match store.load_versioned("counter")? {
    ///         Some(found) => (found.state, found.version),
    ///         None => (WorkflowState::new("counter"), 0),
    ///     };
    ///     let n: u64 = state.result.as_ref().and_then(|r| r.to_value().ok()).unwrap_or(0);
    ///     state.result = Some(Json::from_value(&(n + 1)).expect("a number encodes"));
    ///     match store.save_versioned(&state, Some(version)) {
    ///         Ok(_) => return Ok(()),
    ///         Err(StoreError::Conflict(_)) => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// The state saved has `updated_at` set to now (the caller's copy is
    /// left as it is).
    pub fn save_versioned(
        &self,
        state: &WorkflowState,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        // The typed save, not `save-buffer`: wit-bindgen lowers a record's
        // strings by pointer, and packing measured no faster (4.0 µs per
        // save of a ~1 KiB state either way).
        let mut stamped = state.clone();
        stamped.updated_at = Timestamp::now();
        wit_store::save(&stamped.into(), expected).map_err(Into::into)
    }

    /// The state under `workflow_id`, if any.
    pub fn load(&self, workflow_id: &str) -> Result<Option<WorkflowState>, StoreError> {
        self.load_view(workflow_id)?
            .map(|view| view.try_to_state())
            .transpose()
    }

    /// The state under `workflow_id`, if any, read in place: cheaper than
    /// [`Store::load`] when the guest reads a few fields of a large state.
    /// Each field is checked when it is read (see [`StateView`]).
    pub fn load_view(&self, workflow_id: &str) -> Result<Option<StateView>, StoreError> {
        wit_store::load_buffer(workflow_id)?
            .map(StateView::try_from)
            .transpose()
    }

    /// The state under `workflow_id` with its version, if any: in a group,
    /// as the id's owner has it (see [`Store::save_versioned`]).
    pub fn load_versioned(&self, workflow_id: &str) -> Result<Option<Versioned>, StoreError> {
        wit_store::load_versioned_buffer(workflow_id)?
            .map(|found| {
                Ok(Versioned {
                    state: StateView::try_from(found.state)?.try_to_state()?,
                    version: found.version,
                })
            })
            .transpose()
    }

    /// One page of states, ascending by id.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<WorkflowState>, StoreError> {
        let filter = wit::WorkflowFilter {
            status: filter.status.map(Into::into),
            limit: filter.limit,
            after: filter.after.clone(),
            prefix: filter.prefix.clone(),
        };
        Ok(wit_store::list(&filter)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Every state matching `filter`, fetching page after page from
    /// `filter.after` on.
    pub fn list_all(&self, filter: &ListFilter) -> Result<Vec<WorkflowState>, StoreError> {
        let mut all = Vec::new();
        let mut page_filter = filter.clone();
        loop {
            let page = self.list(&page_filter)?;
            let Some(last) = page.last() else { break };
            page_filter.after = Some(last.workflow_id.clone());
            all.extend(page);
        }
        Ok(all)
    }

    /// Removes the state under `workflow_id`; absent ids succeed.
    pub fn delete(&self, workflow_id: &str) -> Result<(), StoreError> {
        wit_store::delete(workflow_id).map_err(Into::into)
    }
}

/// How many times [`Context::update_state`] loads again after a conflict.
const UPDATE_RETRIES: usize = 32;

/// What a running workflow knows about itself, and its store.
#[derive(Debug)]
pub struct Context {
    workflow_id: String,
    store: Store,
    pub(crate) steps: crate::durable::Steps,
}

impl Context {
    pub(crate) fn new(workflow_id: String) -> Self {
        Self {
            workflow_id,
            store: Store::default(),
            steps: Default::default(),
        }
    }

    /// This workflow's id.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// The host's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This workflow's own stored state (the host saves it as `running`
    /// before calling `run`).
    pub fn state(&self) -> Result<Option<WorkflowState>, StoreError> {
        self.store.load(&self.workflow_id)
    }

    /// Loads this workflow's state (or starts a new one), applies `change`,
    /// stamps `updated_at`, saves it over the version loaded and returns
    /// what was saved. The host keeps the history saved this way when it
    /// records the end of the run. When a signal landed on the state
    /// between the load and the save, it loads again and applies `change`
    /// again (so `change` may be called more than once).
    pub fn update_state(
        &self,
        mut change: impl FnMut(&mut WorkflowState),
    ) -> Result<WorkflowState, StoreError> {
        let mut conflict = None;
        for _ in 0..UPDATE_RETRIES {
            let (mut state, version) = match self.store.load_versioned(&self.workflow_id)? {
                Some(found) => (found.state, found.version),
                None => (WorkflowState::new(self.workflow_id.clone()), 0),
            };
            change(&mut state);
            state.updated_at = Timestamp::now();
            self.steps.forget_view();
            match self.store.save_versioned(&state, Some(version)) {
                Ok(_) => return Ok(state),
                Err(StoreError::Conflict(e)) => conflict = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(conflict.unwrap_or_default()))
    }
}
