//! `wfhost cancel`: a client of a serving wfhost's HTTP API.

use std::process::ExitCode;

use anyhow::{Context as _, bail};

/// `wfhost cancel`: asks a serving wfhost to cancel a workflow.
pub async fn cancel(server: &str, id: &str) -> anyhow::Result<ExitCode> {
    let base = server.trim_end_matches('/');
    let mut url = reqwest::Url::parse(base).with_context(|| {
        format!("--server must be a URL such as http://127.0.0.1:8080, got {server:?}")
    })?;
    // Segments are percent-encoded: an id may hold `/`, `?` or spaces.
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(["workflows", id, "cancel"]);
    let response = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .with_context(|| format!("reaching wfhost serve at {base}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        eprintln!("wfhost: canceled {id:?}");
        return Ok(ExitCode::SUCCESS);
    }
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(body);
    bail!("{base} refused to cancel {id:?} ({status}): {message}")
}
