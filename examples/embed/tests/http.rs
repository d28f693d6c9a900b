//! The embedding example over real HTTP: the built binary, the pipeline
//! example guest, the zero-setup Kafka store.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Service {
    child: Child,
    url: String,
}

impl Service {
    /// On the zero-setup store (an in-process mock cluster).
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wf-embed"));
        for var in [
            "WF_KAFKA_BROKERS",
            "WF_KAFKA_TOPIC",
            "WF_CONFIG",
            "WF_GROUP",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let mut child = command
            .arg(wf_test_artifacts::PIPELINE)
            .env("WF_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting wf-embed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .find_map(|line| line.ok()?.strip_prefix("listening: ").map(str::to_owned))
            .expect("wf-embed prints its address");
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url` and decode its JSON body.
async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The service resolves its configuration as `wfhost` does: the
/// environment over the file, `WF_GROUP` too.
#[tokio::test]
async fn the_environment_configures_the_service_as_it_does_wfhost() {
    let dir = std::env::temp_dir().join(format!("wf-embed-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("wf.toml");
    std::fs::write(&config, "[kafka]\ntopic = \"from-file\"\npartitions = 2\n").unwrap();
    let service = Service::start_with(&[
        ("WF_CONFIG", config.to_str().unwrap()),
        ("WF_GROUP", "embed-group"),
    ]);
    let http = reqwest::Client::new();
    let health = get_json(&http, &format!("{}/healthz", service.url)).await;
    let store = health["store"].as_str().unwrap();
    assert!(store.contains("kafka topic from-file"), "{health}");
    assert!(store.contains("group embed-group"), "{health}");
    let status = get_json(&http, &format!("{}/status", service.url)).await;
    assert_eq!(status["group"], "embed-group", "{status}");
    drop(service);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_service_runs_reads_lists_and_deletes_workflows_over_http() {
    let mut service = Service::start();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", service.url);

    let health = get_json(&http, &url("/healthz")).await;
    assert_eq!(health["status"], "ok");
    assert!(
        health["store"].as_str().unwrap().contains("kafka"),
        "{health}"
    );

    for (id, input) in [("p-1", "\"first\""), ("p-2", "\"second\"")] {
        let response = http
            .post(url(&format!("/workflows/{id}")))
            .body(input)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let state: Value = response.json().await.unwrap();
        assert_eq!(state["WorkflowID"], id);
        assert_eq!(state["Status"], "completed");
    }
    let state = get_json(&http, &url("/workflows/p-1")).await;
    assert_eq!(state["Result"], "completed: first");
    assert_eq!(state["Input"], "first");

    let listed = get_json(&http, &url("/workflows?status=completed")).await;
    let ids: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["WorkflowID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p-1", "p-2"]);
    assert_eq!(listed["next_after"], "p-2");
    let page = get_json(&http, &url("/workflows?limit=1&after=p-1")).await;
    assert_eq!(page["workflows"][0]["WorkflowID"], "p-2");
    let none = get_json(&http, &url("/workflows?status=failed")).await;
    assert_eq!(none, json!({"workflows": [], "next_after": null}));

    let deleted = http.delete(url("/workflows/p-1")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = http.get(url("/workflows/p-1")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let error: Value = gone.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("p-1"), "{error}");

    // Bad requests: specific errors, nothing written.
    let bad_status = http
        .get(url("/workflows?status=done"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_status.status(), 400);
    let bad_input = http
        .post(url("/workflows/p-3"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_input.status(), 400);
    let error: Value = bad_input.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("input"),
        "{error}"
    );
    assert_eq!(
        http.get(url("/workflows/p-3"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let long_id = "x".repeat(1025);
    let bad_id = http
        .post(url(&format!("/workflows/{long_id}")))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 400);

    // SIGTERM: a graceful stop.
    let stopped = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = service.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_own_status_and_write_nothing() {
    use wf_host::store::WorkflowStore;
    use wf_store_kafka::{DevCluster, KafkaConfig, KafkaStore};
    let cluster = DevCluster::start("wf-embed-hostile", 3).unwrap();
    let brokers = cluster.bootstrap_servers();
    let service = Service::start_with(&[
        ("WF_KAFKA_BROKERS", &brokers),
        ("WF_KAFKA_TOPIC", "wf-embed-hostile"),
    ]);
    let topic = KafkaStore::open(KafkaConfig::new(&brokers).topic("wf-embed-hostile"))
        .await
        .unwrap();
    let before = topic.end_offsets().await.unwrap();
    // A connection per request: the server answers an oversized body before
    // reading it and closes the connection, which a pooled client would reuse.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", service.url);

    let deep = format!("{}{}", "[".repeat(10_001), "]".repeat(10_001));
    let long_id = "x".repeat(1025);
    let posts: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (
            "/workflows/p".into(),
            vec![b'"', 0xff, b'"'],
            400,
            "not UTF-8",
        ),
        (
            "/workflows/p".into(),
            b"{oops".to_vec(),
            400,
            "input is not valid JSON",
        ),
        (
            "/workflows/p".into(),
            deep.into_bytes(),
            400,
            "nesting deeper than 10000 levels",
        ),
        (
            "/workflows/p".into(),
            b"[1,]".to_vec(),
            400,
            "input is not valid JSON",
        ),
        (
            "/workflows/p".into(),
            format!("\"{}\"", "x".repeat(1_500_000)).into_bytes(),
            413,
            "over the 1048576-byte limit",
        ),
        ("/workflows/p".into(), vec![b' '; 3 << 20], 413, ""),
        (
            format!("/workflows/{long_id}"),
            b"1".to_vec(),
            400,
            "1025 bytes",
        ),
        (
            "/workflows/a%0Ab".into(),
            b"1".to_vec(),
            400,
            "control character U+000A",
        ),
        (
            "/workflows/a%00b".into(),
            b"1".to_vec(),
            400,
            "control character U+0000",
        ),
        ("/workflows/a%FFb".into(), b"1".to_vec(), 400, ""),
        (
            "/workflows/p?timeout=-1".into(),
            b"1".to_vec(),
            400,
            "timeout must be a positive number",
        ),
        (
            "/workflows/p?timeout=NaN".into(),
            b"1".to_vec(),
            400,
            "timeout must be a positive number",
        ),
        ("/workflows/p?timeout=soon".into(), b"1".to_vec(), 400, ""),
        ("/workflows/p?wait=maybe".into(), b"1".to_vec(), 400, ""),
    ];
    for (path, body, status, needle) in posts {
        let response = http.post(url(&path)).body(body).send().await.unwrap();
        let shown = path.get(..40).unwrap_or(&path);
        assert_eq!(response.status().as_u16(), status, "POST {shown}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains(needle),
            "POST {shown}: {text:?} should contain {needle:?}"
        );
    }
    for (path, needle) in [
        ("/workflows?limit=0", "limit must be at least 1"),
        ("/workflows?limit=-1", ""),
        ("/workflows?status=done", "unknown status"),
        ("/workflows/a%0Ab", "control character U+000A"),
    ] {
        let response = http.get(url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "GET {path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "GET {path}: {text:?}");
    }
    let response = http.delete(url("/workflows/%0A")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);

    assert_eq!(
        topic.end_offsets().await.unwrap(),
        before,
        "nothing written"
    );
    // And the service serves on.
    let ok = http
        .post(url("/workflows/fine"))
        .body("\"x\"")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    topic.close().await.unwrap();
}
