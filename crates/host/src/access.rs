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
    /// allows: a full page when there is one. Each allowed prefix is listed
    /// as a range of its own (narrowed by the filter's prefix) and the
    /// pages merged in id order, so a restricted list reads only ids the
    /// module may see, however many others the store holds.
    pub async fn list(
        &self,
        store: &dyn WorkflowStore,
        filter: ListFilter,
    ) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        if self.is_unrestricted() {
            return store.list(&filter).await;
        }
        let mut merged: Vec<Arc<WorkflowState>> = Vec::new();
        for prefix in self.ranges(filter.id_prefix()) {
            let mut narrowed = filter.clone();
            narrowed.prefix = Some(prefix);
            // The store checks and clamps `limit` (0 is refused) as usual.
            merged.extend(store.list(&narrowed).await?);
        }
        // Ranges are disjoint: sorting interleaves their pages.
        merged.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        let defaults = StoreLimits::default();
        let wanted = filter
            .limit
            .unwrap_or(defaults.default_page_size)
            .min(defaults.max_page_size) as usize;
        merged.truncate(wanted);
        // A store that does not narrow by prefix still shows nothing else.
        merged
            .retain(|state| self.allows(&state.workflow_id) && filter.in_range(&state.workflow_id));
        Ok(merged)
    }

    /// The disjoint id prefixes that hold every id this policy allows and
    /// `within` (a list's own prefix) keeps, ascending.
    fn ranges(&self, within: Option<&str>) -> Vec<String> {
        let mut prefixes: Vec<&str> = self.id_prefixes.iter().map(String::as_str).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        // A prefix under another adds nothing to it.
        let mut ranges: Vec<&str> = Vec::new();
        for prefix in prefixes {
            if !ranges.last().is_some_and(|last| prefix.starts_with(last)) {
                ranges.push(prefix);
            }
        }
        ranges
            .into_iter()
            .filter_map(|allowed| match within {
                None => Some(allowed.to_owned()),
                Some(within) if within.starts_with(allowed) => Some(within.to_owned()),
                Some(within) if allowed.starts_with(within) => Some(allowed.to_owned()),
                Some(_) => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::model::WorkflowStatus;
    use crate::store::{MemoryStore, Version, Versioned, async_trait};

    /// A memory store that counts the states its lists return.
    #[derive(Debug, Default)]
    struct Counting(MemoryStore, AtomicUsize);

    #[async_trait]
    impl WorkflowStore for Counting {
        async fn save_versioned(
            &self,
            state: WorkflowState,
            expected: Option<Version>,
        ) -> Result<Version, StoreError> {
            self.0.save_versioned(state, expected).await
        }
        async fn load_versioned(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
            self.0.load_versioned(id).await
        }
        async fn list(&self, filter: &ListFilter) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
            let page = self.0.list(filter).await?;
            self.1.fetch_add(page.len(), Ordering::Relaxed);
            Ok(page)
        }
        async fn delete(&self, id: &str) -> Result<(), StoreError> {
            self.0.delete(id).await
        }
        async fn close(&self) -> Result<(), StoreError> {
            self.0.close().await
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    fn state(id: &str) -> WorkflowState {
        WorkflowState::new(id, "r", WorkflowStatus::Completed)
    }

    fn ids(page: &[Arc<WorkflowState>]) -> Vec<&str> {
        page.iter().map(|s| s.workflow_id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_restricted_list_reads_only_what_the_module_may_see() {
        let store = Counting::default();
        for i in 0..2_000 {
            store.save(state(&format!("m/{i:05}"))).await.unwrap();
        }
        for id in ["a/1", "a/2", "a/b/1", "z/1", "z/2"] {
            store.save(state(id)).await.unwrap();
        }
        let policy = AccessPolicy::prefixes(["z/", "a/", "a/b/"]);
        let page = policy
            .list(&store, ListFilter::default().limit(1))
            .await
            .unwrap();
        assert_eq!(ids(&page), ["a/1"]);
        let page = policy.list(&store, ListFilter::default()).await.unwrap();
        assert_eq!(ids(&page), ["a/1", "a/2", "a/b/1", "z/1", "z/2"]);
        let page = policy
            .list(&store, ListFilter::default().after("a/b/1").limit(1))
            .await
            .unwrap();
        assert_eq!(ids(&page), ["z/1"]);
        // The 2 000 ids of others were never read.
        assert!(store.1.load(Ordering::Relaxed) <= 10, "{:?}", store.1);
        // A list's own prefix narrows within the policy, never past it.
        let page = policy
            .list(&store, ListFilter::default().prefix("a/b"))
            .await
            .unwrap();
        assert_eq!(ids(&page), ["a/b/1"]);
        let page = policy
            .list(&store, ListFilter::default().prefix("m/"))
            .await
            .unwrap();
        assert!(page.is_empty());
        let page = policy
            .list(&store, ListFilter::default().prefix("a"))
            .await
            .unwrap();
        assert_eq!(ids(&page), ["a/1", "a/2", "a/b/1"]);
    }
}
