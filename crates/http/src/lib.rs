//! wf-http: the host's HTTP API (axum) for workflows of one module: run,
//! inspect, list, cancel and delete. `wfhost serve` and `examples/embed`
//! serve it; merge it into a larger router to serve it beside your own.
//!
//! | Request | Response |
//! |---|---|
//! | `POST /workflows/{id}` body = input JSON (empty = `null`) | `200` the final state; with `?wait=false`, `202` `{"workflow_id","run_id","status","started"}` once `running` is saved. Header `wf-started: false` when the id's run answered instead of a new one (the module's id reuse policy: by default a start of an id with a run, running or ended, returns that run); `409` when the id holds a record that is not a run |
//! | `GET /workflows/{id}` | `200` the stored state, `404` when there is none |
//! | `GET /workflows?status=&after=&limit=` | `200` `{"workflows":[...],"next_after":ID or null}`, ascending by id |
//! | `DELETE /workflows/{id}` | `204`; `409` while it runs on this host |
//! | `POST /workflows/{id}/cancel` | `202` once the guest is interrupted (or, suspended here, once its end is being saved); `404` when it is not running here |
//! | `POST /workflows/{id}/signals/{name}` body = payload JSON (empty = none) | `202` `{"workflow_id","signal","version"}` once the `signal_received` event is saved (acknowledged); `400` bad name or payload, `404` no such workflow, `409` it ended or is not a run, `413` past the value limit or the history's event bound, `421` another host owns it |
//! | `GET /workflows/{id}/queries/{name}?args=JSON` | `200` the handler's answer (JSON); `400` bad name or args, `404` no such workflow, `501` the module has no query handler, `422` the handler answered an error |
//! | `GET /status` | `200` `{"store","running","waiting","group","member","owned_partitions","lag"}`: this host's share of the workflows (group fields null when not in a group) and how many records of other hosts' writes its cache has not applied yet (`{"records","partitions":[[p,n],...]}`, null for a store no other host writes) |
//!
//! States are the store's wire JSON (the Go provider's `WorkflowState`). Errors
//! are `{"error": "..."}` with `400` (bad id, input or query), `403` (denied),
//! `409` (already running, conflict), `413` (too large), `503` (store
//! unavailable, or every slot taken on a host set to refuse) or `500`.
//! When hosts share the store in a group, a start of a workflow another host
//! owns gets `421` (Misdirected Request) with `"owner"` (its announced name,
//! or null when not known yet) and `"partition"`: the request is refused, not
//! forwarded, so the client (or a load balancer) retries at the owner; reads
//! are served by every host.
//! Ids outside the module's [`AccessPolicy`](wf_host::AccessPolicy) get `403`
//! and are left out of lists, and the module's own store
//! ([`ModuleOptions::store`](wf_host::ModuleOptions::store)) is the one served.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wf_host::{Host, store::MemoryStore};
//!
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! let host = Host::new(Arc::new(MemoryStore::new()))?;
//! let module = host.load_module_file("pipeline.wasm")?;
//! let app = wf_http::router(host, module)
//!     .route("/healthz", axum::routing::get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod owners;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use wf_host::model::{self, WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, NotOwner, StoreError};
use wf_host::{ExecuteError, ExecuteOptions, Host, Module, QueryError};

pub use owners::HttpOwnerLink;

/// The response header of a start that says whether it started the run
/// (`true`) or the id's run answered instead (`false`: the module's id
/// reuse policy returned the run already running or ended).
pub const STARTED_HEADER: &str = "wf-started";

/// The API for workflows of `module` on `host`. Merge it into a larger
/// router, or serve it with `axum::serve`.
pub fn router(host: Host, module: Module) -> Router {
    Router::new()
        .route("/workflows", get(list))
        .route("/workflows/{id}", post(start).get(show).delete(remove))
        .route("/workflows/{id}/cancel", post(cancel))
        .route("/workflows/{id}/signals/{name}", post(signal))
        .route("/workflows/{id}/queries/{name}", get(query))
        .route("/status", get(status))
        .merge(owners::routes())
        .with_state(Arc::new(Api { host, module }))
}

struct Api {
    host: Host,
    module: Module,
}

impl Api {
    /// `denied` unless the module may do `op` on `id`.
    fn check(&self, op: &str, id: &str) -> Result<(), StoreError> {
        self.module
            .options()
            .access
            .check(self.module.name(), op, id)
    }
}

/// An error response: a status and a message, as `{"error": message}`,
/// with `"kind"` (the WIT `store-error` case) when the store refused.
#[derive(Debug)]
struct ApiError(StatusCode, String, Option<&'static str>);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into(), None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.2 {
            Some(kind) => serde_json::json!({ "error": self.1, "kind": kind }),
            None => serde_json::json!({ "error": self.1 }),
        };
        (self.0, axum::Json(body)).into_response()
    }
}

/// A request for a workflow another host owns: `421` naming the owner.
fn misdirected(e: &NotOwner) -> Response {
    let body = serde_json::json!({
        "error": format!("not the owner: {e}"),
        "owner": e.owner,
        "partition": e.partition,
    });
    (StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            StoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            StoreError::Denied(_) => StatusCode::FORBIDDEN,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string(), Some(e.kind()))
    }
}

impl From<ExecuteError> for ApiError {
    fn from(e: ExecuteError) -> Self {
        let status = match &e {
            ExecuteError::Store(store) => return store.clone().into(),
            ExecuteError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ExecuteError::AlreadyRunning(_) | ExecuteError::NotARun(_) => StatusCode::CONFLICT,
            ExecuteError::NotRunning(_) | ExecuteError::NotFound(_) => StatusCode::NOT_FOUND,
            ExecuteError::Ended(..) => StatusCode::CONFLICT,
            ExecuteError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ExecuteError::NotOwner(_) => StatusCode::MISDIRECTED_REQUEST,
            // Handed over while the caller waited: the new owner runs it.
            ExecuteError::Abandoned(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match &e {
            QueryError::Store(store) => return store.clone().into(),
            QueryError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            QueryError::NotFound(_) => StatusCode::NOT_FOUND,
            QueryError::Denied(_) => StatusCode::FORBIDDEN,
            QueryError::NoHandler(_) => StatusCode::NOT_IMPLEMENTED,
            QueryError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

/// A state in the store's wire JSON.
fn state_response(status: StatusCode, state: &WorkflowState) -> Result<Response, ApiError> {
    let body = model::encode_state(state).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the state: {e}"),
        )
    })?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    /// Wait for the end (default) or return once `running` is saved.
    #[serde(default)]
    wait: Option<bool>,
    /// Deadline in seconds.
    #[serde(default)]
    timeout: Option<f64>,
}

async fn start(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(query): Query<StartQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = match std::str::from_utf8(&body) {
        Ok(text) if text.trim().is_empty() => "null".to_owned(),
        Ok(text) => text.to_owned(),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body (the workflow input) is not UTF-8: {e}"),
            ));
        }
    };
    let mut options = ExecuteOptions::new(input).id(id);
    if let Some(secs) = query.timeout {
        let timeout = std::time::Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("timeout must be a positive number of seconds, got {secs}"),
                )
            })?;
        options = options.timeout(timeout);
    }
    let handle = match api.host.execute(&api.module, options).await {
        Ok(handle) => handle,
        Err(ExecuteError::NotOwner(e)) => return Ok(misdirected(&e)),
        Err(e) => return Err(e.into()),
    };
    let started = [(
        STARTED_HEADER,
        if handle.started() { "true" } else { "false" },
    )];
    if query.wait == Some(false) {
        let body = serde_json::json!({
            "workflow_id": handle.id(),
            "run_id": handle.run_id(),
            "status": handle.status().as_str(),
            "started": handle.started(),
        });
        return Ok((StatusCode::ACCEPTED, started, axum::Json(body)).into_response());
    }
    let state = handle.result().await?;
    Ok((started, state_response(StatusCode::OK, &state)?).into_response())
}

async fn show(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    api.check("load", &id)?;
    match api.host.store_for(&api.module).load(&id).await? {
        Some(state) => state_response(StatusCode::OK, &state),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no workflow {id:?}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn list(
    State(api): State<Arc<Api>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let status = query
        .status
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<WorkflowStatus>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown status {s:?}; expected one of: running, completed, failed, canceled"
                    ),
                )
            })
        })
        .transpose()?;
    let mut filter = ListFilter::default();
    filter.status = status;
    filter.limit = query.limit;
    filter.after = query.after;
    let store = api.host.store_for(&api.module);
    let states = api.module.options().access.list(&**store, filter).await?;
    let mut body = String::from("{\"workflows\":[");
    for (i, state) in states.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let encoded = model::encode_state(state).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the state: {e}"),
            )
        })?;
        body.push_str(&String::from_utf8_lossy(&encoded));
    }
    body.push_str("],\"next_after\":");
    body.push_str(
        &serde_json::to_string(&states.last().map(|s| &s.workflow_id)).unwrap_or_default(),
    );
    body.push('}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn remove(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if api.host.is_running(&id) || api.host.is_waiting(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("workflow {id:?} is running on this host; cancel it first"),
        ));
    }
    api.check("delete", &id)?;
    api.host.store_for(&api.module).delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn cancel(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    api.host.cancel(&id)?;
    let body = serde_json::json!({ "workflow_id": id, "canceled": true });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

async fn signal(
    State(api): State<Arc<Api>>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let payload = match std::str::from_utf8(&body) {
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(text),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body (the signal's payload) is not UTF-8: {e}"),
            ));
        }
    };
    api.check("signal", &id)?;
    let version = match api.host.signal(&id, &name, payload).await {
        Ok(version) => version,
        Err(ExecuteError::NotOwner(e)) => return Ok(misdirected(&e)),
        Err(e) => return Err(e.into()),
    };
    let body = serde_json::json!({ "workflow_id": id, "signal": name, "version": version });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
struct QueryArgs {
    /// The query's arguments, JSON text; `null` when absent.
    #[serde(default)]
    args: Option<String>,
}

async fn query(
    State(api): State<Arc<Api>>,
    Path((id, name)): Path<(String, String)>,
    Query(args): Query<QueryArgs>,
) -> Result<Response, ApiError> {
    let args = args.args.unwrap_or_else(|| "null".to_owned());
    let answer = api
        .host
        .query_workflow(&api.module, &id, &name, &args)
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

async fn status(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let store = api.host.store_for(&api.module);
    let ownership = store.ownership();
    let lag = store
        .tail_lag()
        .await?
        .map(|lag| serde_json::json!({ "records": lag.records, "partitions": lag.partitions }));
    let body = serde_json::json!({
        "store": store.describe(),
        "running": api.host.running().len(),
        "waiting": api.host.waiting().len(),
        "group": ownership.as_ref().map(|o| o.group().to_owned()),
        "member": ownership.as_ref().map(|o| o.member().to_owned()),
        "owned_partitions": ownership.as_ref().map(|o| o.owned_partitions()),
        "lag": lag,
    });
    Ok(axum::Json(body).into_response())
}
