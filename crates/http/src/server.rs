//! Serving a router with a bound on everything a client controls: how long
//! it may take to send a request head and body, how large they may be, how
//! many connections and requests it may hold open, and how long a shutdown
//! waits for them. Built from hyper's connection settings and tower's
//! layers; every refusal is a JSON error like the API's own.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceBuilder;

use crate::errors::{self, ApiError};

/// The bounds [`serve`] holds clients to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How long a client may take to send a request's head (line and
    /// headers), counted from when the connection opened or its previous
    /// response was sent: so also how long a kept-alive connection may sit
    /// idle. Past it the connection is closed.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body, once its
    /// head is read. Past it the request gets `408`.
    pub body_timeout: Duration,
    /// The largest request body, in bytes (`413` past it; default 2 MiB).
    pub max_body_bytes: usize,
    /// The largest request head, in bytes (`431` past it).
    pub max_header_bytes: usize,
    /// Connections open at once. A connection past it gets one `503` and
    /// is closed; past twice as many, it is closed unanswered.
    pub max_connections: usize,
    /// Requests being handled at once, over all connections (`503` past
    /// it). A start that waits for its workflow's end holds one meanwhile.
    pub max_in_flight: usize,
    /// How long a shutdown waits for the requests in flight before it
    /// closes their connections.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_body_bytes: 2 << 20,
            max_header_bytes: 64 << 10,
            max_connections: 1024,
            max_in_flight: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Sets [`ServerConfig::header_timeout`].
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::body_timeout`].
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::max_body_bytes`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`ServerConfig::max_header_bytes`].
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`ServerConfig::max_connections`].
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets [`ServerConfig::max_in_flight`].
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// Sets [`ServerConfig::shutdown_grace`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The largest count a bound may be: what a semaphore holds, halved
    /// to keep clear of its edge.
    pub const MAX_COUNT: usize = Semaphore::MAX_PERMITS / 2;

    /// `Ok` when every bound is one a server can keep: the counts at least
    /// 1 and at most [`ServerConfig::MAX_COUNT`], the times positive.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_connections", self.max_connections),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value == 0 || value > Self::MAX_COUNT {
                return Err(format!(
                    "{name} must be between 1 and {}, got {value}",
                    Self::MAX_COUNT
                ));
            }
        }
        // hyper's smallest read buffer.
        if !(8192..=16 << 20).contains(&self.max_header_bytes) {
            return Err(format!(
                "max_header_bytes must be between 8192 and {}, got {}",
                16 << 20,
                self.max_header_bytes
            ));
        }
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be positive"));
            }
        }
        Ok(())
    }
}

/// How a [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// Connections still busy when the shutdown's grace ran out, closed
    /// with their requests unanswered.
    pub cut: usize,
}

/// Serves `app` on `listener` within the bounds of `config` until
/// `shutdown` completes; then stops accepting, lets the requests in flight
/// finish for at most [`ServerConfig::shutdown_grace`], and closes what is
/// left.
///
/// ```no_run
/// use std::sync::Arc;
/// use wf_host::{Host, store::MemoryStore};
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// let host = Host::new(Arc::new(MemoryStore::new()))?;
/// let module = host.load_module_file("pipeline.wasm")?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let shutdown = async { tokio::signal::ctrl_c().await.ok(); };
/// let config = wf_http::ServerConfig::default().max_in_flight(256);
/// wf_http::serve(listener, wf_http::router(host, module), &config, shutdown).await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<Served> {
    config
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // hyper's bodies become axum's, which the middleware functions take.
    let service = ServiceBuilder::new()
        .map_request(|request: Request<Incoming>| request.map(Body::new))
        .layer(middleware::from_fn(errors::as_json))
        .layer(HandleErrorLayer::<_, ()>::new(overloaded))
        .load_shed()
        .concurrency_limit(config.max_in_flight)
        .layer(middleware::from_fn_with_state(
            (config.body_timeout, config.max_body_bytes),
            read_body,
        ))
        .service(app.layer(DefaultBodyLimit::max(config.max_body_bytes)));
    let service = TowerToHyperService::new(service);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_header_size(config.max_header_bytes);
    let mut refusing = http1::Builder::new();
    refusing
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout.min(Duration::from_secs(2)))
        .keep_alive(false);
    let refusal = TowerToHyperService::new(tower::service_fn(move |_: Request<_>| {
        std::future::ready(Ok::<_, Infallible>(too_many_connections()))
    }));
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream: TcpStream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: give connections time
                    // to close rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Ok(permit) = connections.clone().try_acquire_owned() {
            let connection =
                graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
            tasks.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("connection ended: {e}");
                }
                drop(permit);
            });
        } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
            let connection = refusing.serve_connection(TokioIo::new(stream), refusal);
            tasks.spawn(async move {
                let _ = connection.await;
                drop(permit);
            });
        } else {
            drop(stream);
        }
    }
    drop(listener);
    let cut = match tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => 0,
        Err(_) => {
            let open = config
                .max_connections
                .saturating_sub(connections.available_permits());
            tasks.abort_all();
            open
        }
    };
    while tasks.join_next().await.is_some() {}
    Ok(Served { cut })
}

/// Reads a request's whole body, at most `limit` bytes, within `timeout`,
/// so that a handler never waits on a slow client. (A body past the limit
/// is read up to it before the `413`, so that the client, still sending,
/// reads the answer rather than a reset.)
async fn read_body(
    State((timeout, limit)): State<(Duration, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limit);
    let read = tokio::time::timeout(
        timeout,
        axum::body::to_bytes(Body::new(limited), usize::MAX),
    )
    .await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            return if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )
            }
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs_f64()
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The answer past [`ServerConfig::max_in_flight`].
async fn overloaded(e: tower::BoxError) -> Response {
    if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight; try again shortly",
        )
        .into_response()
    } else {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    }
}

/// The answer past [`ServerConfig::max_connections`].
fn too_many_connections() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many connections open; try again shortly",
    )
    .into_response();
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
