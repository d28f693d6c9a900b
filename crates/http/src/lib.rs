//! wf-http: the host's HTTP API (axum) for workflows of one module: run,
//! inspect, list, cancel and delete. `wfhost serve` and `examples/embed`
//! serve it; merge it into a larger router to serve it beside your own.
//!
//! | Request | Response |
//! |---|---|
//! | `POST /workflows/{id}` body = input JSON (empty = `null`) | `200` the final state; with `?wait=false`, `202` `{"workflow_id","run_id","status","started"}` once `running` is saved. Header `wf-started: false` when the id's run answered instead of a new one (the module's id reuse policy: by default a start of an id with a run, running or ended, returns that run); `409` when the id holds a record that is not a run |
//! | `GET /workflows/{id}` | `200` the stored state, `404` when there is none |
//! | `GET /workflows?status=&prefix=&after=&limit=` | `200` `{"workflows":[...],"next_after":ID or null}`, ascending by id, only ids starting with `prefix` when given |
//! | `DELETE /workflows/{id}` | `204`; `409` while it runs on this host |
//! | `POST /workflows/{id}/cancel` | `202` once the guest is interrupted (or, suspended here, once its end is being saved); `404` when it is not running here |
//! | `POST /workflows/{id}/signals/{name}` body = payload JSON (empty = none) | `202` `{"workflow_id","signal","version"}` once the `signal_received` event is saved (acknowledged); `400` bad name or payload, `404` no such workflow, `409` it ended or is not a run, `413` past the value limit or the history's event bound, `421` another host owns it |
//! | `GET /workflows/{id}/queries/{name}?args=JSON` | `200` the handler's answer (JSON); `400` bad name or args, `404` no such workflow, `501` the module has no query handler, `422` the handler answered an error |
//! | `GET /ui` | the web console (see [`ApiOptions::console`]) |
//! | `GET /metrics` | Prometheus text of every metric wf records (see [`wf_host::metrics`]), when [`ApiOptions::metrics`] is set (`wfhost serve` sets it) |
//! | `GET /status` | `200` `{"store","running","waiting","group","member","owned_partitions","lag"}`: the store's kind (its address too with [`ApiOptions::show_store`]), this host's share of the workflows (group fields null when not in a group) and how many records of other hosts' writes its cache has not applied yet, as of its last fetch (`{"records","partitions":[[p,n],...]}`, null for a store no other host writes); answered from figures the host keeps, without a round trip to the store |
//!
//! States are the store's wire JSON (the Go provider's `WorkflowState`). Every
//! error is `{"error": "..."}` JSON, whoever refused the request: `400`
//! (bad id, input, query, path or parameter), `403` (denied), `404` (no such
//! workflow, or no such route), `405` (a method the route does not take),
//! `408` (a body slower than [`ServerConfig::body_timeout`]), `409`
//! (already running, conflict), `413` (too large), `503` (store
//! unavailable, every slot taken on a host set to refuse, or a [`serve`]
//! bound reached) or `500`.
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

mod console;
mod errors;
mod owners;
mod server;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use wf_host::model::{self, WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, StoreError};
use wf_host::{ExecuteError, ExecuteOptions, Host, Module};

use errors::{ApiError, misdirected};
pub use owners::HttpOwnerLink;
pub use server::{Served, ServerConfig, serve};

/// The response header of a start that says whether it started the run
/// (`true`) or the id's run answered instead (`false`: the module's id
/// reuse policy returned the run already running or ended).
pub const STARTED_HEADER: &str = "wf-started";

/// What the API shows beyond the workflows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiOptions {
    /// `GET /status` describes the store with its address (brokers,
    /// topic); without it, only its kind (`kafka`, `memory`).
    pub show_store: bool,
    /// Serve the web console at `/ui` (on by default).
    pub console: bool,
    /// Serve `GET /metrics` with what this renders (Prometheus text),
    /// after the host set its gauges
    /// ([`Host::record_metrics`](wf_host::Host::record_metrics)).
    pub metrics: Option<MetricsText>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            show_store: false,
            console: true,
            metrics: None,
        }
    }
}

/// Renders the metrics a recorder holds as Prometheus text (with
/// `metrics-exporter-prometheus`: its handle's `render`).
#[derive(Clone)]
pub struct MetricsText(Arc<dyn Fn() -> String + Send + Sync>);

impl MetricsText {
    /// Renders with `render`.
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Self(Arc::new(render))
    }
}

impl std::fmt::Debug for MetricsText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsText")
    }
}

impl ApiOptions {
    /// Sets [`ApiOptions::metrics`].
    pub fn metrics(mut self, render: MetricsText) -> Self {
        self.metrics = Some(render);
        self
    }

    /// Sets [`ApiOptions::console`].
    pub fn console(mut self, serve: bool) -> Self {
        self.console = serve;
        self
    }

    /// Sets [`ApiOptions::show_store`].
    pub fn show_store(mut self, show: bool) -> Self {
        self.show_store = show;
        self
    }
}

/// The API for workflows of `module` on `host`. Merge it into a larger
/// router, or serve it with [`serve`] (or `axum::serve`).
pub fn router(host: Host, module: Module) -> Router {
    router_with(host, module, ApiOptions::default())
}

/// [`router`] with `options`.
pub fn router_with(host: Host, module: Module, options: ApiOptions) -> Router {
    Router::new()
        .route("/workflows", get(list))
        .route("/workflows/{id}", post(start).get(show).delete(remove))
        .route("/workflows/{id}/cancel", post(cancel))
        .route("/workflows/{id}/signals/{name}", post(signal))
        .route("/workflows/{id}/queries/{name}", get(query))
        .route("/status", get(status))
        .merge(owners::routes())
        .merge(if options.metrics.is_some() {
            Router::new().route("/metrics", get(metrics))
        } else {
            Router::new()
        })
        .merge(if options.console {
            console::routes()
        } else {
            Router::new()
        })
        .layer(axum::middleware::from_fn(errors::as_json))
        .with_state(Arc::new(Api {
            host,
            module,
            options,
        }))
}

struct Api {
    host: Host,
    module: Module,
    options: ApiOptions,
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

/// The parameters of a list: `status`, `after`, `limit`, `prefix`, and,
/// for the hosts of a group asking an owner, `partitions`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    prefix: Option<String>,
    /// Comma-separated partition numbers (`/internal/v1/page` only).
    #[serde(default)]
    pub partitions: Option<String>,
}

impl ListQuery {
    /// The filter these parameters ask for (without `partitions`).
    pub fn filter(self) -> Result<ListFilter, ApiError> {
        let status = self
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
        filter.limit = self.limit;
        filter.after = self.after;
        filter.prefix = self.prefix;
        Ok(filter)
    }
}

async fn list(
    State(api): State<Arc<Api>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    page_response(&api, query.filter()?).await
}

/// The page `filter` lists, as the module's access policy allows it:
/// `{"workflows":[...],"next_after":ID or null}`.
pub(crate) async fn page_response(api: &Api, filter: ListFilter) -> Result<Response, ApiError> {
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

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    api.host.record_metrics();
    let store = api.host.store_for(&api.module);
    if !Arc::ptr_eq(store, api.host.store()) {
        // The module keeps its states in a store of its own.
        store.record_metrics();
    }
    let text = api
        .options
        .metrics
        .as_ref()
        .map(|m| (m.0)())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn status(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let store = api.host.store_for(&api.module);
    let ownership = store.ownership();
    let lag = store
        .tail_lag()
        .await?
        .map(|lag| serde_json::json!({ "records": lag.records, "partitions": lag.partitions }));
    // Where the store is (brokers, topic) only when the operator asked.
    let described = if api.options.show_store {
        store.describe()
    } else {
        store.kind().to_owned()
    };
    let body = serde_json::json!({
        "store": described,
        "running": api.host.running().len(),
        "waiting": api.host.waiting().len(),
        "group": ownership.as_ref().map(|o| o.group().to_owned()),
        "member": ownership.as_ref().map(|o| o.member().to_owned()),
        "owned_partitions": ownership.as_ref().map(|o| o.owned_partitions()),
        "lag": lag,
    });
    Ok(axum::Json(body).into_response())
}
