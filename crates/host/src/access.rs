//! Which workflow ids a module may touch: the policy, the one check every
//! path goes through (guest calls, `execute`, recovery, the HTTP API), and
//! listing filtered by it.

use std::sync::Arc;

use crate::model::WorkflowState;
use crate::store::{ListFilter, StoreError, StoreLimits, WorkflowStore};

/// Which workflow ids a module may run, read and write through the store.
///
/// Anything else is refused with `store-error::denied` (and logged with the
/// module and the id); `list` returns only what the module may see.
///
/// ```
/// use wf_host::AccessPolicy;
///
/// let policy = AccessPolicy::prefixes(["tenant-a/"]);
/// assert!(policy.allows("tenant-a/order-1"));
/// assert!(policy.check("billing", "load", "tenant-b/order-1").is_err());
/// assert!(AccessPolicy::all().allows("anything"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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

    /// `denied` unless `module` may do `op` on `workflow_id`; a refusal is
    /// logged with the module, the id and the operation. Every access check
    /// goes through here.
    pub fn check(&self, module: &str, op: &str, workflow_id: &str) -> Result<(), StoreError> {
        if self.allows(workflow_id) {
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
            self.id_prefixes
        )))
    }

    /// One page of `filter` from `store` holding only ids this policy
    /// allows: still a full page when there is one, reading on through pages
    /// of others' ids.
    pub async fn list(
        &self,
        store: &dyn WorkflowStore,
        mut filter: ListFilter,
    ) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        if self.is_unrestricted() {
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
                if self.allows(&state.workflow_id) {
                    visible.push(state);
                    if visible.len() == wanted {
                        return Ok(visible);
                    }
                }
            }
        }
        Ok(visible)
    }
}
