//! Hosts of one group asking each other: the owner of an id answers the
//! `load-versioned` and conditional `save` calls other hosts' guests make of
//! it ([`HttpOwnerLink`] asks, the routes of [`routes`] answer), so that a
//! conditional save is decided where the id's writes are serialized. A
//! host that keeps only its own partitions reads the others' states and
//! pages here too.
//!
//! | Request | Response |
//! |---|---|
//! | `GET /internal/v1/versioned/{id}` | `200` `{"version": n, "state": <wire state>}`, `404` when nothing is stored |
//! | `PUT /internal/v1/versioned/{id}?expected=N` body = wire state | `200` `{"version": n}` once saved over version `N` |
//! | `GET /internal/v1/page?partitions=0,3&status=&prefix=&after=&limit=` | `200` `{"workflows":[...],"next_after":ID or null}` from those partitions |
//!
//! Errors are `{"error", "kind"}` as elsewhere; `421` when this host does
//! not own the id, or one of the partitions (ownership moved). Like the rest of the API, these routes
//! are not authenticated: serve them where only the group's hosts (and
//! trusted clients) reach them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::value::RawValue;
use wf_host::model::{self, WorkflowState};
use wf_host::store::{ListFilter, OwnerLink, StoreError, Version, Versioned, async_trait};

use crate::Api;
use crate::errors::{ApiError, misdirected};

/// The path of an id's versioned state.
const VERSIONED: &str = "/internal/v1/versioned";

/// The path of a page of given partitions.
const PAGE: &str = "/internal/v1/page";

/// The routes by which the owner of an id answers other hosts.
pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            &format!("{VERSIONED}/{{id}}"),
            get(load_versioned).put(save_versioned),
        )
        .route(PAGE, get(page))
}

/// A page of partitions this host owns, for a host that keeps only its own.
async fn page(
    State(api): State<Arc<Api>>,
    Query(mut query): Query<crate::ListQuery>,
) -> Result<Response, ApiError> {
    let partitions = query
        .partitions
        .take()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "partitions is required: the partition numbers, comma separated",
            )
        })?
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::parse::<i32>)
        .collect::<Result<Vec<i32>, _>>()
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("partitions must be partition numbers, comma separated: {e}"),
            )
        })?;
    if let Some(ownership) = api.host.store_for(&api.module).ownership()
        && let Some(&partition) = partitions.iter().find(|&&p| !ownership.owns_partition(p))
    {
        let body = serde_json::json!({
            "error": format!(
                "not the owner: partition {partition} is not owned by this host ({}) in group {}",
                ownership.member(),
                ownership.group()
            ),
            "partition": partition,
        });
        return Ok((StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response());
    }
    crate::page_response(&api, query.filter()?.partitions(partitions)).await
}

/// `421` unless this host owns `id` in the module's store.
async fn owned(api: &Api, id: &str) -> Result<(), Response> {
    let Some(ownership) = api.host.store_for(&api.module).ownership() else {
        return Ok(());
    };
    ownership.check(id).await.map_err(|e| misdirected(&e))
}

async fn load_versioned(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    api.check("load", &id)?;
    if let Err(misdirected) = owned(&api, &id).await {
        return Ok(misdirected);
    }
    let Some(found) = api.host.store_for(&api.module).load_versioned(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no workflow {id:?}"),
        ));
    };
    let state = model::encode_state(&found.state).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the state: {e}"),
        )
    })?;
    let mut body = format!("{{\"version\":{},\"state\":", found.version).into_bytes();
    body.extend_from_slice(&state);
    body.push(b'}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize)]
struct SaveQuery {
    expected: Version,
}

async fn save_versioned(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(query): Query<SaveQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    api.check("save", &id)?;
    if let Err(misdirected) = owned(&api, &id).await {
        return Ok(misdirected);
    }
    let state = model::decode_state(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a workflow state: {e}"),
        )
    })?;
    if state.workflow_id != id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the state's WorkflowID {:?} is not the id {id:?} of the path",
                state.workflow_id
            ),
        ));
    }
    let version = api
        .host
        .store_for(&api.module)
        .save_versioned(state, Some(query.expected))
        .await?;
    Ok(axum::Json(serde_json::json!({ "version": version })).into_response())
}

/// Asks the owner of an id over HTTP, at the URL it announced as its name
/// to the group (`wfhost --member-name http://HOST:PORT`): the
/// [`OwnerLink`] of hosts serving [`router`](crate::router).
///
/// ```
/// # let host = wf_host::Host::new(std::sync::Arc::new(wf_host::store::MemoryStore::new())).unwrap();
/// host.link_owners(std::sync::Arc::new(wf_http::HttpOwnerLink::new()));
/// ```
#[derive(Debug, Clone)]
pub struct HttpOwnerLink {
    client: reqwest::Client,
}

impl Default for HttpOwnerLink {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpOwnerLink {
    /// A link with its own connection pool.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            // Longer than a save may wait for the broker's acknowledgement.
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// The URL of `workflow_id`'s versioned state at `owner`.
    fn url(op: &str, owner: &str, workflow_id: &str) -> Result<reqwest::Url, StoreError> {
        Self::url_of(
            op,
            owner,
            &["internal", "v1", "versioned", workflow_id],
            &format!("of {workflow_id:?}"),
        )
    }

    /// The URL of `path` at `owner`, the owner of `what`.
    fn url_of(
        op: &str,
        owner: &str,
        path: &[&str],
        what: &str,
    ) -> Result<reqwest::Url, StoreError> {
        let not_a_url = || {
            StoreError::Unavailable(format!(
                "{op}: the owner {what} announced itself as {owner:?}, which is not \
                 an http URL this host can reach it at (give each host of the group \
                 --member-name http://HOST:PORT, the address it serves on)"
            ))
        };
        let mut url = reqwest::Url::parse(owner).map_err(|_| not_a_url())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(not_a_url());
        }
        url.path_segments_mut()
            .map_err(|()| not_a_url())?
            .pop_if_empty()
            .extend(path);
        Ok(url)
    }

    /// Sends `request` to `owner`; the response when it succeeded, else
    /// the store error it carries.
    async fn send(
        op: &str,
        owner: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, StoreError> {
        let response = request.send().await.map_err(|e| {
            StoreError::Unavailable(format!("{op}: asking the owner {owner} failed: {e}"))
        })?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"].as_str().unwrap_or("no message").to_owned();
        if status == StatusCode::MISDIRECTED_REQUEST {
            return Err(StoreError::Unavailable(format!(
                "{op}: {owner} no longer owns the id (the group is moving it); try again: {message}"
            )));
        }
        Err(body["kind"]
            .as_str()
            .and_then(|kind| StoreError::of_kind(kind, format!("{op} at {owner}: {message}")))
            .unwrap_or_else(|| {
                StoreError::Unavailable(format!("{op}: {owner} answered {status}: {message}"))
            }))
    }
}

#[derive(Deserialize)]
struct PageBody<'a> {
    #[serde(borrow)]
    workflows: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct VersionedBody<'a> {
    version: Version,
    #[serde(borrow)]
    state: &'a RawValue,
}

#[async_trait]
impl OwnerLink for HttpOwnerLink {
    async fn load_versioned(
        &self,
        owner: &str,
        workflow_id: &str,
    ) -> Result<Option<Versioned>, StoreError> {
        const OP: &str = "load-versioned";
        let url = Self::url(OP, owner, workflow_id)?;
        let response = Self::send(OP, owner, self.client.get(url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // The owner's "no such workflow" carries an error; a bare 404 is
            // a server without these routes.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if body["error"].is_string() {
                return Ok(None);
            }
            return Err(StoreError::Unavailable(format!(
                "{OP}: {owner} does not answer for the group's hosts (is it a wf host serving the HTTP API?)"
            )));
        }
        let bad = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("{OP}: {owner} answered what is not a state: {e}"))
        };
        let bytes = response.bytes().await.map_err(|e| bad(&e))?;
        let body: VersionedBody<'_> = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
        let state = model::decode_state(body.state.get().as_bytes()).map_err(|e| bad(&e))?;
        Ok(Some(Versioned {
            state: Arc::new(state),
            version: body.version,
        }))
    }

    async fn save_versioned(
        &self,
        owner: &str,
        state: WorkflowState,
        expected: Version,
    ) -> Result<Version, StoreError> {
        const OP: &str = "save";
        let url = Self::url(OP, owner, &state.workflow_id)?;
        let body = model::encode_state(&state)
            .map_err(|e| StoreError::InvalidArgument(format!("{OP}: {e}")))?;
        let request = self
            .client
            .put(url)
            .query(&[("expected", expected)])
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = Self::send(OP, owner, request).await?;
        let answer: serde_json::Value = response.json().await.map_err(|e| {
            StoreError::Unavailable(format!("{OP}: {owner} answered what is not a version: {e}"))
        })?;
        answer["version"].as_u64().ok_or_else(|| {
            StoreError::Unavailable(format!("{OP}: {owner} answered no version: {answer}"))
        })
    }

    async fn list(
        &self,
        owner: &str,
        filter: &ListFilter,
    ) -> Result<Vec<Arc<WorkflowState>>, StoreError> {
        const OP: &str = "list";
        let partitions = filter.partitions.as_deref().unwrap_or_default();
        let mut url = Self::url_of(
            OP,
            owner,
            &["internal", "v1", "page"],
            &format!("of partitions {partitions:?}"),
        )?;
        {
            let mut query = url.query_pairs_mut();
            let listed: Vec<String> = partitions.iter().map(i32::to_string).collect();
            query.append_pair("partitions", &listed.join(","));
            if let Some(status) = filter.status {
                query.append_pair("status", status.as_str());
            }
            if let Some(after) = &filter.after {
                query.append_pair("after", after);
            }
            if let Some(prefix) = &filter.prefix {
                query.append_pair("prefix", prefix);
            }
            if let Some(limit) = filter.limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        let response = Self::send(OP, owner, self.client.get(url)).await?;
        let bad = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("{OP}: {owner} answered what is not a page: {e}"))
        };
        if response.status() == StatusCode::NOT_FOUND {
            return Err(bad(&"404 (is it a wf host serving the HTTP API?)"));
        }
        let bytes = response.bytes().await.map_err(|e| bad(&e))?;
        let body: PageBody<'_> = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
        body.workflows
            .iter()
            .map(|state| {
                model::decode_state(state.get().as_bytes())
                    .map(Arc::new)
                    .map_err(|e| bad(&e))
            })
            .collect()
    }
}
