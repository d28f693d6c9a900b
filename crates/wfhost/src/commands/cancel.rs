//! `wfhost cancel`, and `signal` and `query` through a server: clients of
//! a serving wfhost's HTTP API.

use std::process::ExitCode;

use anyhow::{Context as _, bail};

/// The URL of `segments` under `server`, each percent-encoded (an id may
/// hold `/`, `?` or spaces).
fn endpoint(server: &str, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
    let base = server.trim_end_matches('/');
    let mut url = reqwest::Url::parse(base).with_context(|| {
        format!("--server must be a URL such as http://127.0.0.1:8080, got {server:?}")
    })?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Sends `request`; the body on success, else an error saying what
/// `server` answered (its `{"error": ...}` message) when it `refused`.
async fn send(
    request: reqwest::RequestBuilder,
    server: &str,
    refused: &str,
) -> anyhow::Result<String> {
    let base = server.trim_end_matches('/');
    let response = request
        .send()
        .await
        .with_context(|| format!("reaching wfhost serve at {base}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(body);
    bail!("{base} refused {refused} ({status}): {message}")
}

/// `wfhost cancel`: asks a serving wfhost to cancel a workflow.
pub async fn cancel(server: &str, id: &str) -> anyhow::Result<ExitCode> {
    let url = endpoint(server, &["workflows", id, "cancel"])?;
    send(
        reqwest::Client::new().post(url),
        server,
        &format!("to cancel {id:?}"),
    )
    .await?;
    eprintln!("wfhost: canceled {id:?}");
    Ok(ExitCode::SUCCESS)
}

/// `wfhost signal --server`: the signal through a serving wfhost.
pub async fn signal(
    server: &str,
    id: &str,
    name: &str,
    payload: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let url = endpoint(server, &["workflows", id, "signals", name])?;
    let body = send(
        reqwest::Client::new()
            .post(url)
            .body(payload.unwrap_or_default().to_owned()),
        server,
        &format!("signal {name:?} to {id:?}"),
    )
    .await?;
    let version = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["version"].as_u64())
        .unwrap_or_default();
    eprintln!("wfhost: signal {name:?} recorded for {id:?} (version {version})");
    Ok(ExitCode::SUCCESS)
}

/// `wfhost query` without a module: the query through a serving wfhost.
pub async fn query(server: &str, id: &str, name: &str, args: &str) -> anyhow::Result<ExitCode> {
    let mut url = endpoint(server, &["workflows", id, "queries", name])?;
    url.query_pairs_mut().append_pair("args", args);
    let answer = send(
        reqwest::Client::new().get(url),
        server,
        &format!("query {name:?} of {id:?}"),
    )
    .await?;
    println!("{}", answer.trim());
    Ok(ExitCode::SUCCESS)
}
