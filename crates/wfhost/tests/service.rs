//! `wfhost serve` as an operator runs it and an attacker meets it: slow and
//! idle clients, too many connections and requests, a shutdown under load,
//! malformed requests, numbers and properties that could crash the
//! process, hostile text in printed fields, metrics, and the console. Each
//! runs the real binary on 127.0.0.1, with bounded waits.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{DevBroker, Server, command, errors, stderr, stdout, wfhost};

const MEMORY: &[&str] = &["--store", "memory"];

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// A socket to `server` that reports a close (or a reset) as `None`.
fn connect(server: &Server) -> TcpStream {
    let socket = TcpStream::connect(address(server)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    socket
}

/// Reads what `socket` gets until the server closes it, for at most
/// `within`: the bytes read, or `None` when it was still open then.
fn until_closed(socket: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let clock = Instant::now();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while clock.elapsed() < within {
        match socket.read(&mut buffer) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(got),
        }
    }
    None
}

/// One HTTP/1.1 exchange on a fresh connection that the server closes
/// after: the status and the body.
fn exchange(server: &Server, request: &str) -> (u16, String) {
    let mut socket = connect(server);
    socket.write_all(request.as_bytes()).unwrap();
    let got = until_closed(&mut socket, Duration::from_secs(10)).expect("an answer");
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
}

/// The `error` of a JSON error body.
fn error_of(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    json["error"].as_str().expect("an error message").to_owned()
}

#[test]
fn partial_request_heads_are_closed_at_the_header_timeout() {
    let server = Server::with_store(
        MEMORY,
        wf_test_artifacts::PIPELINE,
        &["--header-timeout", "1"],
    );
    let mut sockets: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut socket = connect(&server);
            socket
                .write_all(b"GET /status HTTP/1.1\r\nHost: t\r\n")
                .unwrap();
            socket
        })
        .collect();
    for socket in &mut sockets {
        assert!(
            until_closed(socket, Duration::from_secs(5)).is_some(),
            "a connection holding a partial head was not closed"
        );
    }
    // An idle kept-alive connection too.
    let mut idle = connect(&server);
    idle.write_all(
        get("/status")
            .replace("Connection: close\r\n", "")
            .as_bytes(),
    )
    .unwrap();
    let answered = until_closed(&mut idle, Duration::from_secs(5)).expect("closed when idle");
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"));
}

#[test]
fn slow_and_large_bodies_get_their_own_json_errors() {
    let server = Server::with_store(
        MEMORY,
        wf_test_artifacts::PIPELINE,
        &["--body-timeout", "1", "--max-body-bytes", "100000"],
    );
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut socket = connect(&server);
            let head = "POST /workflows/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 90000\r\n\r\n";
            socket.write_all(head.as_bytes()).unwrap();
            socket.write_all(&[b' '; 50_000]).unwrap();
            socket
        })
        .collect();
    for socket in &mut slow {
        let got = until_closed(socket, Duration::from_secs(5)).expect("answered");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains(r#""error":"the request body did not arrive within 1 s""#));
    }
    let big = format!(
        "POST /workflows/big HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n{}",
        " ".repeat(200_000)
    );
    let (status, body) = exchange(&server, &big);
    assert_eq!(status, 413, "{body}");
    assert!(error_of(&body).contains("larger than"), "{body}");
}

#[test]
fn connections_past_the_cap_get_503_until_others_close() {
    let server = Server::with_store(
        MEMORY,
        wf_test_artifacts::PIPELINE,
        &["--max-connections", "4", "--header-timeout", "30"],
    );
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut socket = connect(&server);
            socket.write_all(b"GET /status HTTP/1.1\r\n").unwrap();
            socket
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = exchange(&server, &get("/status"));
    assert_eq!(status, 503, "{body}");
    assert!(error_of(&body).contains("too many connections"), "{body}");
    drop(held);
    let clock = Instant::now();
    loop {
        let (status, _) = exchange(&server, &get("/status"));
        if status == 200 {
            break;
        }
        assert!(clock.elapsed() < Duration::from_secs(10), "still {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_get_503() {
    let server = Server::with_store(
        MEMORY,
        wf_test_artifacts::SANDBOX_PROBE,
        &["--max-in-flight", "2"],
    );
    let http = reqwest::Client::new();
    let sleepers: Vec<_> = (0..2)
        .map(|i| {
            let request = http
                .post(format!("{}/workflows/sleep-{i}", server.url))
                .body(r#"[{"op":"sleep_ms","ms":3000}]"#)
                .send();
            tokio::spawn(request)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = http
        .get(format!("{}/status", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many requests")
    );
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().unwrap().status(), 200);
    }
    let after = http
        .get(format!("{}/status", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
}

#[test]
fn a_shutdown_waits_for_slow_clients_only_as_long_as_its_grace() {
    let mut server = Server::with_store(
        MEMORY,
        wf_test_artifacts::PIPELINE,
        &["--shutdown-grace", "1", "--header-timeout", "60"],
    );
    let mut slow = connect(&server);
    slow.write_all(b"GET /status HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.child.id().to_string();
    assert!(command_status("kill", &["-TERM", &pid]), "sending SIGTERM");
    let clock = Instant::now();
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            clock.elapsed() < Duration::from_secs(10),
            "wfhost serve still runs 10 s after SIGTERM with a 1 s grace"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success(), "{exited:?}");
    assert!(
        clock.elapsed() < Duration::from_secs(5),
        "{:?}",
        clock.elapsed()
    );
    std::thread::sleep(Duration::from_millis(200));
    let said = server.stderr.lock().unwrap().clone();
    assert!(
        said.contains("closed 1 connections still busy after the 1 s shutdown grace"),
        "{said}"
    );
}

fn command_status(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn every_refusal_is_a_json_error_with_its_status() {
    let server = Server::with_store(MEMORY, wf_test_artifacts::PIPELINE, &[]);
    let put =
        "PUT /workflows/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let cases: [(String, u16, &str); 6] = [
        (get("/nope"), 404, "no route for GET /nope"),
        (put.to_owned(), 405, "/workflows/x does not take PUT"),
        (get("/workflows/%FF"), 400, "Invalid URL"),
        (get("/workflows?limit=-1"), 400, "limit"),
        (
            "POST /workflows/a?wait=maybe HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned(),
            400,
            "wait",
        ),
        (get("/workflows/none-here"), 404, "no workflow"),
    ];
    for (request, status, says) in cases {
        let (got, body) = exchange(&server, &request);
        assert_eq!(got, status, "{request}: {body}");
        let error = error_of(&body);
        assert!(error.contains(says), "{request}: {error}");
        // Said once, not "X: X".
        if let Some((head, tail)) = error.split_once(": ") {
            assert_ne!(head, tail, "{error}");
        }
    }
}

#[tokio::test]
async fn status_is_cheap_and_names_the_brokers_only_when_asked() {
    // No brokers: an in-process mock cluster, a real Kafka protocol.
    let hidden = Server::with_store(&[], wf_test_artifacts::PIPELINE, &[]);
    let status: Value = reqwest::get(format!("{}/status", hidden.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["store"], "kafka");
    assert_eq!(status["lag"]["records"], 0, "{status}");
    // Many at once: answered from kept figures.
    let clock = Instant::now();
    let asks: Vec<_> = (0..60)
        .map(|_| tokio::spawn(reqwest::get(format!("{}/status", hidden.url))))
        .collect();
    for ask in asks {
        assert_eq!(ask.await.unwrap().unwrap().status(), 200);
    }
    eprintln!("60 concurrent /status: {:?}", clock.elapsed());
    let shown = Server::with_store(&[], wf_test_artifacts::PIPELINE, &["--status-shows-store"]);
    let status: Value = reqwest::get(format!("{}/status", shown.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let store = status["store"].as_str().unwrap();
    assert!(
        store.starts_with("kafka topic") && store.contains(" on "),
        "{store}"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_metric_of_a_run() {
    let server = Server::with_store(&[], wf_test_artifacts::PIPELINE, &[]);
    let http = reqwest::Client::new();
    let done = http
        .post(format!("{}/workflows/m-1", server.url))
        .body(r#""go""#)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let scraped = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert!(
        scraped.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = scraped.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => 1.0,
            })
    };
    let module = [("module", "pipeline.wasm")];
    assert_eq!(
        value("wf_workflows_started_total", &[module[0], ("begin", "new")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "wf_workflows_ended_total",
            &[module[0], ("status", "completed")]
        ),
        Some(1.0)
    );
    assert_eq!(value("wf_workflows_running", &module), Some(0.0));
    assert_eq!(value("wf_workflows_suspended", &module), Some(0.0));
    assert!(value("wf_guest_memory_high_water_bytes", &module).unwrap() >= 65536.0);
    assert!(
        value(
            "wf_store_call_seconds",
            &[("op", "save"), ("backend", "kafka")]
        )
        .unwrap()
            >= 2.0,
        "the run's running and completed saves: {text}"
    );
    assert!(value("wf_cache_entries", &[]).unwrap() >= 1.0);
    assert!(value("wf_cache_bytes", &[]).unwrap() > 0.0);
    assert_eq!(value("wf_owned_partitions", &[]), Some(12.0));
    assert_eq!(
        value("wf_tail_lag_records", &[("partition", "0")]),
        Some(0.0)
    );
    assert!(value("wf_replay_seconds", &[]).is_some());
    assert!(value("wf_replay_records", &[]).is_some());
    // Every metric wf records is there, with its help, but those that
    // need a failure, a group or retention; and the README lists each.
    let readme = include_str!("../../../README.md");
    for metric in wf_host::metrics::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", metric.name)),
            "the README does not list {}",
            metric.name
        );
        let rare = [
            wf_host::metrics::STORE_ERRORS,
            wf_host::metrics::REBALANCES,
            wf_host::metrics::RETENTION_DELETED,
            wf_host::metrics::RETENTION_EXPIRED,
        ];
        if !rare.contains(&metric.name) {
            assert!(
                text.contains(&format!("# HELP {} ", metric.name)),
                "{} missing: {text}",
                metric.name
            );
        }
    }
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_can_be_turned_off() {
    let server = Server::with_store(MEMORY, wf_test_artifacts::PIPELINE, &[]);
    for (path, kind) in [
        ("/ui/", "text/html"),
        ("/ui/console.js", "text/javascript"),
        ("/ui/console.css", "text/css"),
    ] {
        let got = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
        assert_eq!(got.status(), 200, "{path}");
        let headers = got.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'")
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let off = Server::with_store(MEMORY, wf_test_artifacts::PIPELINE, &["--no-console"]);
    let got = reqwest::get(format!("{}/ui/", off.url)).await.unwrap();
    assert_eq!(got.status(), 404);
}

#[tokio::test]
async fn a_restricted_list_and_a_prefix_list_show_only_their_ids() {
    let server = Server::with_store(
        MEMORY,
        wf_test_artifacts::PIPELINE,
        &["--allow-prefix", "a/", "--allow-prefix", "c/"],
    );
    let http = reqwest::Client::new();
    for id in ["a/1", "a/2", "c/1"] {
        let done = http
            .post(format!(
                "{}/workflows/{}",
                server.url,
                id.replace('/', "%2F")
            ))
            .body(r#""x""#)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200, "{id}");
    }
    let ids = |page: Value| -> Vec<String> {
        page["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["WorkflowID"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: &'static str| {
        let http = http.clone();
        let url = format!("{}/workflows?{query}", server.url);
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(ids(list("").await), ["a/1", "a/2", "c/1"]);
    assert_eq!(ids(list("prefix=a%2F").await), ["a/1", "a/2"]);
    assert_eq!(ids(list("prefix=c").await), ["c/1"]);
    assert!(ids(list("prefix=b").await).is_empty());
    assert_eq!(ids(list("limit=1&after=a%2F2").await), ["c/1"]);
}

#[test]
fn numbers_and_properties_from_outside_never_crash_the_process() {
    let cases: [(&[&str], i32, &str); 9] = [
        (&["--config", "/dev/zero", "list"], 1, "larger than"),
        (
            &["--max-value-bytes", "18446744073709551615", "list"],
            1,
            "number out of range",
        ),
        (
            &["--max-value-bytes", "9223372036854775807", "list"],
            1,
            "max_value_bytes must be at most",
        ),
        (
            &[
                "--store",
                "memory",
                "run",
                wf_test_artifacts::PIPELINE,
                "--id",
                "x",
                "--max-running",
                "18446744073709551615",
            ],
            1,
            "--max-running must be between 1 and",
        ),
        (
            &["--produce-timeout", "0.0001", "list"],
            1,
            "produce timeout must be between 1 ms",
        ),
        (
            &["--kafka-prop", "request.required.acks=0", "list"],
            1,
            "property request.required.acks=0 is not allowed",
        ),
        (
            &[
                "--kafka-prop",
                "metadata.broker.list=elsewhere:9092",
                "list",
            ],
            1,
            "give the brokers with --brokers",
        ),
        (
            &[
                "--store",
                "memory",
                "serve",
                wf_test_artifacts::PIPELINE,
                "--max-connections",
                "0",
            ],
            1,
            "--max-connections must be between 1 and",
        ),
        (
            &[
                "--store",
                "memory",
                "serve",
                wf_test_artifacts::PIPELINE,
                "--header-timeout",
                "1e300",
            ],
            1,
            "--header-timeout must be a positive number of seconds",
        ),
    ];
    for (args, code, says) in cases {
        let out = wfhost(args);
        let err = errors(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err:?} should say {says:?}");
    }
}

#[test]
fn printed_fields_escape_control_characters_and_logs_have_no_colour() {
    let broker = DevBroker::start(&[]);
    let hostile = r#"{"action":"\u001b]0;PWNED\u0007\u001b[2J","account":"a"}"#;
    let run = broker.wfhost(&[
        "run",
        wf_test_artifacts::LEDGER,
        "--id",
        "esc-2",
        "--input",
        hostile,
    ]);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    // stderr is a pipe here: the WARN line of the failure has no colour.
    let warned = stderr(&run);
    assert!(warned.contains("WARN"), "{warned}");
    assert!(!warned.contains('\u{1b}'), "{warned:?}");
    for args in [&["show", "esc-2"][..], &["list"][..]] {
        let out = broker.wfhost(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let printed = stdout(&out);
        assert!(
            !printed.contains('\u{1b}') && !printed.contains('\u{7}'),
            "{printed:?}"
        );
    }
    let shown = stdout(&broker.wfhost(&["show", "esc-2"]));
    assert!(shown.contains(r"\u{1b}]0;PWNED\u{7}\u{1b}[2J"), "{shown}");
    // JSON output is the stored wire form, escaped as JSON.
    let json = broker.wfhost(&["--output", "json", "show", "esc-2"]);
    assert!(
        stdout(&json).contains(r"\u001b]0;PWNED\u0007"),
        "{}",
        stdout(&json)
    );
}

#[test]
fn a_file_that_is_not_a_module_is_one_line_of_error() {
    let dir = std::env::temp_dir().join(format!("wf-bad-magic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"this is not wasm at all").unwrap();
    let out = command()
        .args([
            "--store",
            "memory",
            "run",
            bad.to_str().unwrap(),
            "--id",
            "x",
        ])
        .output()
        .unwrap();
    let err = errors(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("wfhost: error: "), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the load test found, for RELIABILITY.md.
#[derive(Debug, Default)]
struct Load {
    sent: usize,
    ok: usize,
    refused_503: usize,
    other_5xx: usize,
    started: Vec<String>,
}

/// The resident set's high-water mark of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_load_with_slow_sockets_loses_no_write_and_stops_in_time() {
    const REQUESTS: usize = 20_000;
    const CLIENTS: usize = 100;
    const SLOW_SOCKETS: usize = 200;
    const MAX_RSS_MIB: u64 = 512;
    let broker = DevBroker::start(&[]);
    let mut server = Server::start(
        &broker,
        wf_test_artifacts::PIPELINE,
        &["--max-in-flight", "64", "--shutdown-grace", "5"],
    );
    let clock = Instant::now();
    let deadline = Duration::from_secs(60);
    // Slow sockets: partial heads, opened again when the server closes them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let (address, stop) = (address(&server), stop.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Still open: nothing to read yet.
                held.retain_mut(|socket| {
                    let mut byte = [0u8; 1];
                    matches!(socket.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                while held.len() < SLOW_SOCKETS {
                    let Ok(mut socket) = TcpStream::connect(&address) else {
                        break;
                    };
                    socket.set_nonblocking(true).unwrap();
                    let _ = socket.write_all(b"POST /workflows/slow HTTP/1.1\r\nHost: t\r\n");
                    held.push(socket);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, next, url) = (http.clone(), next.clone(), server.url.clone());
            tokio::spawn(async move {
                let mut load = Load::default();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= REQUESTS || clock.elapsed() > deadline {
                        return load;
                    }
                    let id = format!("load-{n:05}");
                    let request = match n % 3 {
                        0 => http.post(format!("{url}/workflows/{id}")).body(r#""x""#),
                        1 => http.get(format!("{url}/workflows/load-{:05}", n.saturating_sub(1))),
                        _ => http.get(format!("{url}/workflows?limit=20&after=load-{:05}", n / 2)),
                    };
                    load.sent += 1;
                    let Ok(response) = request.send().await else {
                        load.other_5xx += 1;
                        continue;
                    };
                    let status = response.status().as_u16();
                    match status {
                        503 => load.refused_503 += 1,
                        500..=599 => load.other_5xx += 1,
                        _ => load.ok += 1,
                    }
                    if n % 3 == 0 && status == 200 {
                        load.started.push(id);
                    }
                }
            })
        })
        .collect();
    let mut load = Load::default();
    for client in clients {
        let part = client.await.unwrap();
        load.sent += part.sent;
        load.ok += part.ok;
        load.refused_503 += part.refused_503;
        load.other_5xx += part.other_5xx;
        load.started.extend(part.started);
    }
    let took = clock.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.join().unwrap();
    let rss = peak_rss_mib(server.child.id());
    // Shutdown within its grace, slow sockets and all.
    let stopping = Instant::now();
    assert!(command_status(
        "kill",
        &["-TERM", &server.child.id().to_string()]
    ));
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(20), "not stopped");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stop_took = stopping.elapsed();
    assert!(exited.success(), "{exited:?}");
    // A fresh replay in a new process finds every acknowledged start.
    let mut stored = std::collections::BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["--output", "json", "list", "--limit", "1000"];
        if let Some(after) = &after {
            args.extend(["--after", after.as_str()]);
        }
        let out = broker.wfhost(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let page: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last["WorkflowID"].as_str().unwrap().to_owned());
        for state in page {
            stored.insert(
                state["WorkflowID"].as_str().unwrap().to_owned(),
                state["Status"].as_str().unwrap().to_owned(),
            );
        }
    }
    let lost: Vec<_> = load
        .started
        .iter()
        .filter(|id| stored.get(*id).map(String::as_str) != Some("completed"))
        .collect();
    eprintln!(
        "load: {} requests in {took:.1?} ({:.0}/s), {} answered, {} refused (503), {} other 5xx or failed; \
         {} starts acknowledged, {} lost; peak RSS {rss} MiB; stopped in {stop_took:.1?}",
        load.sent,
        load.sent as f64 / took.as_secs_f64(),
        load.ok,
        load.refused_503,
        load.other_5xx,
        load.started.len(),
        lost.len(),
    );
    assert_eq!(load.other_5xx, 0, "5xx beyond the cap's 503s");
    assert!(lost.is_empty(), "acknowledged starts lost: {lost:?}");
    assert!(!load.started.is_empty());
    assert!(rss <= MAX_RSS_MIB, "peak RSS {rss} MiB over {MAX_RSS_MIB}");
    assert!(stop_took < Duration::from_secs(5 + 5), "{stop_took:?}");
}

/// A stand-in OTLP/HTTP collector: answers every request `200` and keeps
/// each one's path, content type and body.
fn collector() -> (String, std::sync::mpsc::Receiver<(String, String, Vec<u8>)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sent, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(socket.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let (mut length, mut kind) = (0usize, String::new());
                    loop {
                        let mut header = String::new();
                        std::io::BufRead::read_line(&mut reader, &mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap_or_default();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap_or(0),
                            "content-type" => kind = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let _ = sent.send((path, kind, body));
                    let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, received)
}

#[test]
fn traces_of_a_run_are_exported_over_otlp_when_configured() {
    let (url, received) = collector();
    let out = command()
        .args(["--store", "memory", "--otlp-endpoint", &url, "run"])
        .args([
            wf_test_artifacts::PIPELINE,
            "--id",
            "otlp-1",
            "--input",
            r#""x""#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut exported = Vec::new();
    while let Ok((path, kind, body)) = received.recv_timeout(Duration::from_secs(10)) {
        assert_eq!(path, "/v1/traces");
        assert_eq!(kind, "application/x-protobuf");
        exported.extend(body);
        let text = String::from_utf8_lossy(&exported);
        if text.contains("workflow_run") && text.contains("store.save") {
            break;
        }
    }
    // Protobuf carries strings as they are: the spans' names and fields.
    let text = String::from_utf8_lossy(&exported);
    for expected in [
        "wfhost",
        "workflow_run",
        "otlp-1",
        "pipeline.wasm",
        "store.save",
        "activity ended",
    ] {
        assert!(text.contains(expected), "{expected} not exported: {text:?}");
    }
    // Durable activities (recorded started, then ended) are spans of their own.
    let (url, received) = collector();
    let dir = std::env::temp_dir().join(format!("wf-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = serde_json::json!({"dir": dir, "order": "o-1", "cents": 5, "no_wait": true});
    let grant = format!("{}:rw", dir.display());
    let out = command()
        .args(["--store", "memory", "--otlp-endpoint", &url, "run"])
        .args([
            wf_test_artifacts::DURABLE,
            "--id",
            "otlp-2",
            "--grant-dir",
            &grant,
        ])
        .args(["--input", &input.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut exported = Vec::new();
    while let Ok((_, _, body)) = received.recv_timeout(Duration::from_secs(10)) {
        exported.extend(body);
        if String::from_utf8_lossy(&exported).contains("ship") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&exported);
    for expected in ["otlp-2", "charge", "ship", "outcome", "completed"] {
        assert!(text.contains(expected), "{expected} not exported: {text:?}");
    }
    assert!(!text.contains("activity ended"), "{text:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn status_answers_from_kept_figures_even_with_the_broker_gone() {
    let mut broker = DevBroker::start(&[]);
    let server = Server::start(&broker, wf_test_artifacts::PIPELINE, &[]);
    let status = format!("{}/status", server.url);
    assert_eq!(reqwest::get(&status).await.unwrap().status(), 200);
    // The broker goes away: a status page that asked it would hang or fail.
    let mut dev = broker.child.take().unwrap();
    dev.kill().unwrap();
    dev.wait().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let answer = http.get(&status).send().await.expect("answered at once");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["store"], "kafka", "{body}");
    assert!(body["lag"]["partitions"].is_array(), "{body}");
}
