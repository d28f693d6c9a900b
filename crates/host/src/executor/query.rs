//! Queries: a module's `query` export called in a fresh, read-only
//! instance, answering from the workflow's recorded state.

use super::Host;
use crate::model;
use crate::runtime::Module;
use crate::store::StoreError;

/// Why a query got no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The name or the arguments were rejected.
    #[error("invalid query: {0}")]
    InvalidRequest(String),
    /// No state is stored under the id.
    #[error("no workflow {0:?} is stored")]
    NotFound(String),
    /// The module may not read the id.
    #[error("{0}")]
    Denied(String),
    /// The module does not export `query` (world `queryable-workflow`).
    #[error("module {0} has no query handler (it does not export `query`)")]
    NoHandler(String),
    /// The handler answered with an error (an unknown query, say).
    #[error("the query failed: {0}")]
    Rejected(String),
    /// The handler trapped, hit a limit, or the instance could not be made.
    #[error("the query handler failed: {0}")]
    Failed(String),
    /// Reading the store failed.
    #[error("reading the workflow failed: {0}")]
    Store(#[from] StoreError),
}

impl Host {
    /// Asks workflow `workflow_id` of `module` the query `name` with `args`
    /// (JSON text) and returns the answer (JSON text).
    ///
    /// The module's `query` export is called in a fresh instance of its
    /// own, under the module's limits, whose store import reads only: the
    /// handler answers from the workflow's recorded state and history.
    /// Nothing is written, and a suspended workflow is neither woken nor
    /// waited for.
    pub async fn query_workflow(
        &self,
        module: &Module,
        workflow_id: &str,
        name: &str,
        args: &str,
    ) -> Result<String, QueryError> {
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(QueryError::InvalidRequest(format!(
                "the query name must be 1 to 256 bytes without control characters, got {:?}",
                name.chars().take(64).collect::<String>()
            )));
        }
        model::validate_json("query args", args)
            .map_err(|e| QueryError::InvalidRequest(e.to_string()))?;
        module
            .options()
            .access
            .check(module.name(), "query", workflow_id)
            .map_err(|e| QueryError::Denied(e.to_string()))?;
        let store = self.store_for(module).clone();
        if store.load(workflow_id).await?.is_none() {
            return Err(QueryError::NotFound(workflow_id.to_owned()));
        }
        // A slot like a run's: the instance comes from the same pool.
        let _permit = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| QueryError::Failed("the host's slots were closed".into()))?;
        let limits = self.inner.runtime.run_limits(module, None);
        let (mut wasm_store, _stderr) = self
            .inner
            .runtime
            .new_store(module, &limits, workflow_id, store, None, None)
            .map_err(|e| QueryError::Failed(format!("setting up the sandbox failed: {e:#}")))?;
        let call = async {
            let instance = module
                .pre()
                .instance_pre()
                .instantiate_async(&mut wasm_store)
                .await
                .map_err(|e| {
                    QueryError::Failed(format!("instantiating the module failed: {e:#}"))
                })?;
            let Ok(query) = instance
                .get_typed_func::<(&str, &str, &str), (Result<String, String>,)>(
                    &mut wasm_store,
                    "query",
                )
            else {
                return Err(QueryError::NoHandler(module.name().to_owned()));
            };
            let (answer,) = query
                .call_async(&mut wasm_store, (workflow_id, name, args))
                .await
                .map_err(|e| QueryError::Failed(format!("{e:#}")))?;
            let answer = answer.map_err(QueryError::Rejected)?;
            model::validate_json("query answer", &answer).map_err(|e| {
                QueryError::Failed(format!("the handler answered invalid JSON: {e}"))
            })?;
            Ok(answer)
        };
        match tokio::time::timeout(limits.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(QueryError::Failed(format!(
                "deadline exceeded: the query ran longer than {:?}",
                limits.timeout
            ))),
        }
    }
}
