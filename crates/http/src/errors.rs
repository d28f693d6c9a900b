//! Errors as the API answers them: `{"error": message}` JSON with the
//! status that says what went wrong, whether a handler, an extractor, the
//! router (no route, wrong method) or a server bound refused the request.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use wf_host::store::{NotOwner, StoreError};
use wf_host::{ExecuteError, QueryError};

/// An error response: a status and a message, as `{"error": message}`,
/// with `"kind"` (the WIT `store-error` case) when the store refused.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String, Option<&'static str>);

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
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
pub(crate) fn misdirected(e: &NotOwner) -> Response {
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

/// The largest error body of a layer or extractor turned into JSON: their
/// messages are a line.
const MAX_PLAIN_ERROR_BYTES: usize = 16 << 10;

/// Makes every error response JSON: those of extractors (a path, query or
/// body that does not parse), of the router (no route: `404`, a method the
/// route does not take: `405`) and of layers (limits, timeouts) answer
/// `text/plain` or nothing of their own.
pub(crate) async fn as_json(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => format!("no route for {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(|allow| format!(" (it takes {allow})"))
                .unwrap_or_default();
            format!("{path} does not take {method}{allowed}")
        }
        // The body limit layer's own text names no limit.
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this server accepts".to_owned()
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_lowercase(),
        _ => text,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": message }).to_string();
    Response::from_parts(parts, Body::from(body))
}
