//! `wfhost` as a user runs it: the real binary, the real example guests, on
//! Kafka (librdkafka's mock cluster: in process by default, or a `wfhost dev`
//! process that several `wfhost` processes share).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{
    DevBroker, MOCK_ANNOUNCEMENT, Server, command, errors, stderr, stdout, tool, wfhost,
};

#[test]
fn run_prints_the_result_and_the_stored_state() {
    let out = wfhost(&[
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "pipeline-001",
        "--input",
        "\"start processing\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("status:    completed"), "{text}");
    assert!(
        text.contains(r#"result:    "completed: start processing""#),
        "{text}"
    );
    assert!(text.contains("activity_completed"), "{text}");
    assert!(text.contains("finalize"), "{text}");
}

#[test]
fn json_output_is_the_stored_wire_format() {
    let out = wfhost(&[
        "--output",
        "json",
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "p-1",
        "--input",
        "\"x\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON document");
    assert_eq!(state["WorkflowID"], "p-1");
    assert_eq!(state["Status"], "completed");
    assert_eq!(state["Result"], "completed: x");
    assert_eq!(state["History"][0]["Type"], "workflow_started");
    assert_eq!(state["History"].as_array().unwrap().len(), 5);
}

#[test]
fn a_failed_workflow_exits_3_and_shows_the_error() {
    let out = wfhost(&[
        "run",
        wf_test_artifacts::ORDER_PIPELINE,
        "--id",
        "order-9",
        "--input",
        r#"{"customer":"c","items":[]}"#,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("error:     the order has no items"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn errors_are_one_clear_line_and_a_non_zero_exit() {
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "run",
                wf_test_artifacts::PIPELINE,
                "--id",
                "x",
                "--timeout",
                "1e300",
            ],
            "--timeout must be a positive number",
        ),
        (
            &[
                "run",
                wf_test_artifacts::PIPELINE,
                "--id",
                "x",
                "--timeout",
                "0",
            ],
            "--timeout must be a positive number",
        ),
        (
            &["run", "/no/such/module.wasm", "--id", "x"],
            "reading workflow module /no/such/module.wasm",
        ),
        (
            &[
                "run",
                wf_test_artifacts::PIPELINE,
                "--id",
                "",
                "--input",
                "1",
            ],
            "workflow ID is required",
        ),
        (
            &[
                "run",
                wf_test_artifacts::PIPELINE,
                "--id",
                "x",
                "--input",
                "{nope",
            ],
            "input is not valid JSON",
        ),
        (&["show", "nothing-here"], "no workflow \"nothing-here\""),
    ];
    for (args, needle) in cases {
        let out = wfhost(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = errors(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("wfhost: error: "), "{err}");
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} should contain {needle:?}"
        );
    }
}

#[test]
fn bad_usage_exits_2_with_help() {
    let out = wfhost(&["list", "--status", "sleeping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected one of: running, completed, failed, canceled"),
        "{}",
        stderr(&out)
    );
    let help = wfhost(&["--help"]);
    assert!(help.status.success());
    for word in [
        "run",
        "list",
        "show",
        "delete",
        "topic",
        "dev",
        "--brokers",
        "--kafka-prop",
        "--config",
        "--output",
        "Examples:",
    ] {
        assert!(stdout(&help).contains(word), "help mentions {word}");
    }
}

#[test]
fn list_show_and_delete_on_an_empty_store_say_so() {
    let list = wfhost(&["list", "--status", "running", "--limit", "5"]);
    assert!(list.status.success());
    let err = stderr(&list);
    assert!(err.starts_with(MOCK_ANNOUNCEMENT), "{err}");
    assert!(
        err.contains("keeps nothing after the process exits"),
        "{err}"
    );
    assert!(
        err.contains("no workflows (store: kafka topic beluga-workflows on 127.0.0.1:"),
        "{err}"
    );
    let json_list = wfhost(&["--output", "json", "list"]);
    assert_eq!(stdout(&json_list).trim(), "[]");
    let delete = wfhost(&["delete", "absent"]);
    assert!(delete.status.success(), "deleting an absent id succeeds");
}

#[test]
fn guests_write_through_one_process_and_a_new_process_reads_them() {
    let dev = DevBroker::start(&["--partitions", "4"]);
    let run = dev.wfhost(&[
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "pipeline-001",
        "--input",
        "\"start processing\"",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let post = dev.wfhost(&[
        "run",
        wf_test_artifacts::LEDGER,
        "--id",
        "ledger-run-1",
        "--input",
        r#"{"action":"post","account":"alice","amounts":[10,-3]}"#,
    ]);
    assert!(post.status.success(), "{}", stderr(&post));
    let order = dev.wfhost(&[
        "run",
        wf_test_artifacts::ORDER_PIPELINE,
        "--id",
        "order-1",
        "--input",
        r#"{"customer":"ada","items":[{"sku":"A-1","quantity":2,"price_cents":450}]}"#,
    ]);
    assert!(order.status.success(), "{}", stderr(&order));

    // A new process replays the topic: every state the guests saved is there.
    let list = dev.wfhost(&["--output", "json", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let states: Value = serde_json::from_str(stdout(&list).trim()).unwrap();
    let ids: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["WorkflowID"].as_str().unwrap())
        .collect();
    for id in [
        "ledger-run-1",
        "ledger/alice",
        "ledger/alice/entry-000001",
        "ledger/alice/entry-000002",
        "order-1",
        "pipeline-001",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let show = dev.wfhost(&["--output", "json", "show", "ledger/alice"]);
    let balance: Value = serde_json::from_str(stdout(&show).trim()).unwrap();
    assert_eq!(balance["Result"]["balance"], 7);

    // Deletes by one process are tombstones the next one replays.
    let close = dev.wfhost(&[
        "run",
        wf_test_artifacts::LEDGER,
        "--id",
        "ledger-run-2",
        "--input",
        r#"{"action":"close","account":"alice"}"#,
    ]);
    assert!(close.status.success(), "{}", stderr(&close));
    let gone = dev.wfhost(&["show", "ledger/alice"]);
    assert_eq!(gone.status.code(), Some(1));
    let topic = dev.wfhost(&["--output", "json", "topic"]);
    assert!(topic.status.success(), "{}", stderr(&topic));
    let report: Value = serde_json::from_str(stdout(&topic).trim()).unwrap();
    assert_eq!(report["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(
        report["tombstones"], 3,
        "two entries and the balance deleted"
    );
    assert_eq!(report["skipped"], 0);
    assert_eq!(
        report["live_keys"],
        ids.len() as u64 - 3 + 1,
        "the close run added one"
    );
}

#[test]
fn kcat_reads_ids_as_keys_and_deletes_as_null_values() {
    let Some(kcat) = tool("kcat") else { return };
    let dev = DevBroker::start(&["--partitions", "2"]);
    let run = dev.wfhost(&[
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "p-kcat",
        "--input",
        "\"k\"",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(dev.wfhost(&["delete", "p-kcat"]).status.success());
    let out = Command::new(kcat)
        .args([
            "-b",
            &dev.brokers,
            "-t",
            "beluga-workflows",
            "-C",
            "-e",
            "-q",
            "-Z",
        ])
        .args(["-f", "%k|%S|%s\n"])
        .output()
        .expect("running kcat");
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("p-kcat|")), "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last, "p-kcat|-1|NULL", "the delete is a tombstone");
    let before = &lines[lines.len() - 2];
    let value: Value = serde_json::from_str(before.splitn(3, '|').nth(2).unwrap()).unwrap();
    assert_eq!(value["WorkflowID"], "p-kcat");
    assert_eq!(value["Status"], "completed");
}

#[test]
fn configuration_comes_from_a_file_flags_and_the_environment() {
    let dev = DevBroker::start(&["--topic", "from-file", "--partitions", "3"]);
    let dir = std::env::temp_dir().join(format!("wf-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wfhost.toml");
    std::fs::write(
        &file,
        format!(
            "[kafka]\nbrokers = \"{}\"\ntopic = \"from-file\"\n[kafka.properties]\n\"client.id\" = \"wf-test\"\n",
            dev.brokers
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let run = command()
        .args([
            "--config",
            file,
            "run",
            wf_test_artifacts::PIPELINE,
            "--id",
            "cfg-1",
            "--input",
            "\"x\"",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        !stderr(&run).contains(MOCK_ANNOUNCEMENT),
        "the file's brokers are used"
    );
    // The environment names the file; a flag overrides the file's topic.
    let show = command()
        .env("WF_CONFIG", file)
        .args(["show", "cfg-1"])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let other_topic = command()
        .env("WF_CONFIG", file)
        .args(["--topic", "elsewhere", "show", "cfg-1"])
        .output()
        .unwrap();
    assert_eq!(
        other_topic.status.code(),
        Some(1),
        "{}",
        stderr(&other_topic)
    );
    assert!(
        errors(&other_topic).contains(
            "topic elsewhere does not exist, and librdkafka's mock cluster cannot create topics"
        ),
        "{}",
        stderr(&other_topic)
    );

    std::fs::write(dir.join("bad.toml"), "[kafka]\nbroker = \"x\"\n").unwrap();
    let bad_file = dir.join("bad.toml");
    for (out, needle) in [
        (
            wfhost(&["--config", bad_file.to_str().unwrap(), "list"]),
            "unknown field `broker`",
        ),
        (
            dev.wfhost(&["--kafka-prop", "no.such.thing=1", "list"]),
            "kafka/open: invalid client configuration",
        ),
        (
            dev.wfhost(&["--kafka-prop", "acks=0", "list"]),
            "acks=0 is not allowed",
        ),
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(errors(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh empty directory for one test.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wf-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (bounded) until `path` exists.
fn wait_for_file(path: &std::path::Path) {
    for _ in 0..3000 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} did not appear", path.display());
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[test]
fn a_killed_wfhost_is_recovered_by_the_next_without_repeating_the_first_activity() {
    let broker = DevBroker::start(&[]);
    let dir = scratch_dir("crash");
    let grant = format!("{}:rw", dir.display());
    let input = serde_json::json!({"dir": dir.display().to_string(), "order": "o-1", "cents": 900});
    let mut worker = command()
        .args([
            "--brokers",
            &broker.brokers,
            "run",
            wf_test_artifacts::DURABLE,
        ])
        .args([
            "--id",
            "order-1",
            "--grant-dir",
            &grant,
            "--input",
            &input.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the worker");
    // Between the two activities: charge is done and recorded.
    wait_for_file(&dir.join("waiting"));
    worker.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    worker.wait().unwrap();
    assert_eq!(lines(&dir.join("charge.log")), ["o-1 900"]);
    assert!(!dir.join("ship.log").exists());

    let left = broker.wfhost(&["--output", "json", "show", "order-1"]);
    let state: Value = serde_json::from_str(stdout(&left).trim()).expect("stored state");
    assert_eq!(state["Status"], "running", "the killed run is left running");

    std::fs::write(dir.join("go"), "").unwrap();
    let order = recover_the_order(&broker, &grant);
    assert_eq!(
        order["Result"],
        serde_json::json!({"charge": "charge-1", "parcel": 1})
    );

    assert_eq!(lines(&dir.join("charge.log")), ["o-1 900"], "charged once");
    assert_eq!(lines(&dir.join("ship.log")), ["charge-1"], "shipped once");
    let shown = broker.wfhost(&["--output", "json", "show", "order-1"]);
    let state: Value = serde_json::from_str(stdout(&shown).trim()).unwrap();
    assert_eq!(state["Status"], "completed");
    let kinds: Vec<&str> = state["History"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "workflow_started",
            "activity_started",
            "activity_completed",
            "timer_started",
            "workflow_suspended",
            "timer_fired",
            "workflow_started",
            "activity_started",
            "activity_completed",
            "workflow_completed"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn serve_runs_workflows_over_http_and_cancel_stops_one() {
    let broker = DevBroker::start(&[]);
    let server = Server::start(&broker, wf_test_artifacts::SANDBOX_PROBE, &[]);
    let http = reqwest::Client::new();

    let done = http
        .post(format!("{}/workflows/echo-1", server.url))
        .body(r#"[{"op":"echo","bytes":2}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let state: Value = done.json().await.unwrap();
    assert_eq!(state["Status"], "completed");
    assert_eq!(state["Result"], serde_json::json!([{"ok": "xx"}]));

    let started = http
        .post(format!("{}/workflows/sleepy?wait=false", server.url))
        .body(r#"[{"op":"sleep_ms","ms":600000}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    // A second start of the running id does not start another run: it
    // answers with that run (here, once canceled below).
    let again = http
        .post(format!("{}/workflows/sleepy", server.url))
        .body("[]")
        .send();
    let again = tokio::spawn(again);

    let canceled = command()
        .args(["cancel", "sleepy", "--server", &server.url])
        .output()
        .unwrap();
    assert!(canceled.status.success(), "{}", stderr(&canceled));
    let mut status = Value::Null;
    for _ in 0..500 {
        let shown: Value = http
            .get(format!("{}/workflows/sleepy", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = shown["Status"].clone();
        if status != "running" {
            assert_eq!(shown["History"][1]["Type"], "workflow_canceled");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, "canceled");
    let again = again.await.unwrap().unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["wf-started"], "false");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["Status"], "canceled", "the one run, ended");

    let not_running = command()
        .args(["cancel", "sleepy", "--server", &server.url])
        .output()
        .unwrap();
    assert_eq!(not_running.status.code(), Some(1));
    assert!(
        stderr(&not_running).contains("not running on this host"),
        "{}",
        stderr(&not_running)
    );

    // The same state through the store, from another process.
    let shown = broker.wfhost(&["--output", "json", "show", "sleepy"]);
    let state: Value = serde_json::from_str(stdout(&shown).trim()).unwrap();
    assert_eq!(state["Status"], "canceled");
    assert_eq!(state["Error"], "canceled on request");
}

#[test]
fn the_access_policy_comes_from_flags_and_the_config_file() {
    let refused = wfhost(&[
        "--store",
        "memory",
        "run",
        wf_test_artifacts::STORE_OPS,
        "--id",
        "tenant-b/1",
        "--input",
        "[]",
        "--allow-prefix",
        "tenant-a/",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("may not touch workflow \"tenant-b/1\""),
        "{}",
        stderr(&refused)
    );

    let dir = scratch_dir("access");
    let file = dir.join("wf.toml");
    std::fs::write(
        &file,
        "store = \"memory\"\n[access]\nid_prefixes = [\"tenant-a/\"]\n",
    )
    .unwrap();
    let script = r#"[{"op":"load","id":"tenant-b/1"}]"#;
    let out = wfhost(&[
        "--config",
        file.to_str().unwrap(),
        "--output",
        "json",
        "run",
        wf_test_artifacts::STORE_OPS,
        "--id",
        "tenant-a/1",
        "--input",
        script,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(state["Result"][0]["err"]["kind"], "denied", "{state}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hostile_arguments_get_their_own_error_and_write_nothing() {
    let broker = DevBroker::start(&[]);
    let topic = "beluga-workflows";
    let seeded = broker.wfhost(&[
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "seed",
        "--input",
        "\"x\"",
    ]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let before = wf_tests::kafka::read_topic(&broker.brokers, topic).len();
    assert_eq!(before, 5, "the seed run's records");

    let long_id = "x".repeat(1025);
    let deep = format!("{}{}", "[".repeat(10_001), "]".repeat(10_001));
    let run = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["run".to_owned(), wf_test_artifacts::PIPELINE.to_owned()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (run(&["--id", ""]), 1, "workflow ID is required"),
        (
            run(&["--id", &long_id]),
            1,
            "1025 bytes, over the 1024-byte limit",
        ),
        (run(&["--id", "a\nb"]), 1, "control character U+000A"),
        (run(&["--id", "a\u{1b}b"]), 1, "control character U+001B"),
        (
            run(&["--id", "ok", "--input", "{oops"]),
            1,
            "input is not valid JSON",
        ),
        (
            run(&["--id", "ok", "--input", &deep]),
            1,
            "nesting deeper than 10000 levels",
        ),
        (
            run(&["--id", "ok", "--input", "[1,]"]),
            1,
            "input is not valid JSON",
        ),
        // (A 2 MiB argument is refused by the OS itself: 128 KiB at most.)
        (
            vec![
                "--max-value-bytes".into(),
                "300".into(),
                "run".into(),
                wf_test_artifacts::PIPELINE.into(),
                "--id".into(),
                "ok".into(),
                "--input".into(),
                format!("\"{}\"", "x".repeat(400)),
            ],
            1,
            "over the 300-byte limit",
        ),
        (
            run(&["--id", "ok", "--timeout", "0"]),
            1,
            "--timeout must be a positive number",
        ),
        (
            run(&["--id", "ok", "--timeout", "NaN"]),
            1,
            "--timeout must be a positive number",
        ),
        (
            run(&["--id", "ok", "--memory-limit", "0"]),
            1,
            "--memory-limit must be between 1 and 4096 (MiB), got 0",
        ),
        (
            run(&["--id", "ok", "--memory-limit", "-5"]),
            2,
            "unexpected argument '-5'",
        ),
        (
            run(&["--id", "ok", "--fuel", "0"]),
            1,
            "--fuel must be positive",
        ),
        (
            run(&["--id", "ok", "--max-running", "0"]),
            1,
            "--max-running must be between 1 and 1048576, got 0",
        ),
        (
            run(&["--id", "ok", "--when-full", "sometimes"]),
            2,
            "invalid value 'sometimes'",
        ),
        (
            run(&["--id", "ok", "--grant-dir", "/no/such/dir"]),
            1,
            "granted directory /no/such/dir does not exist",
        ),
        (
            run(&["--id", "ok", "--allow-prefix", ""]),
            1,
            "an allowed id prefix must not be empty",
        ),
        (
            run(&["--id", "ok", "--allow-prefix", "tenant-a/"]),
            1,
            "may not touch workflow \"ok\"",
        ),
        (
            vec!["list".into(), "--limit".into(), "0".into()],
            1,
            "limit must be at least 1",
        ),
        (
            vec!["list".into(), "--limit".into(), "-1".into()],
            2,
            "unexpected argument '-1'",
        ),
        // (NUL cannot be in an argument at all.)
        (
            vec!["show".into(), "a\u{7}b".into()],
            1,
            "control character U+0007",
        ),
        (
            vec!["delete".into(), "".into()],
            1,
            "workflow ID is required",
        ),
        (vec!["delete".into(), long_id.clone()], 1, "1025 bytes"),
        (
            vec!["--max-value-bytes".into(), "lots".into(), "list".into()],
            2,
            "invalid digit",
        ),
        (
            vec!["--kafka-prop".into(), "acks=0".into(), "list".into()],
            1,
            "acks=0 is not allowed",
        ),
        (
            vec!["--kafka-prop".into(), "no-equals".into(), "list".into()],
            2,
            "expected KEY=VALUE",
        ),
        (
            vec!["--group".into(), "".into(), "list".into()],
            1,
            "group id must be 1 to 255 bytes",
        ),
        (
            vec![
                "--group".into(),
                "g".into(),
                "--session-timeout".into(),
                "0".into(),
                "list".into(),
            ],
            1,
            "--session-timeout must be a positive number of seconds",
        ),
        (
            vec![
                "--group".into(),
                "g".into(),
                "--session-timeout".into(),
                "0.5".into(),
                "list".into(),
            ],
            1,
            "session timeout must be between 1 s and 1 h",
        ),
    ];
    for (args, code, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = broker.wfhost(&args);
        let shown: Vec<&str> = args.iter().map(|a| a.get(..40).unwrap_or(a)).collect();
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{shown:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(needle),
            "{shown:?}: stderr should contain {needle:?}: {}",
            stderr(&out)
        );
    }
    // An id that is not UTF-8.
    let out = command()
        .args([
            "--brokers",
            &broker.brokers,
            "run",
            wf_test_artifacts::PIPELINE,
            "--id",
        ])
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"id\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid UTF-8"), "{}", stderr(&out));
    assert_eq!(
        wf_tests::kafka::read_topic(&broker.brokers, topic).len(),
        before,
        "no refused command wrote to the topic"
    );
}

/// `GET {url}{path}` as JSON.
async fn get_json(url: &str, path: &str) -> Value {
    reqwest::get(format!("{url}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_serve_processes_share_a_group_and_the_one_stopped_hands_over() {
    two_serve_processes_in_a_group(false).await;
}

#[tokio::test]
async fn two_serve_processes_share_a_group_and_a_killed_ones_work_is_taken_over() {
    two_serve_processes_in_a_group(true).await;
}

/// Two `wfhost serve` processes in one group; host a is stopped mid-run
/// (SIGTERM: it leaves and hands over; SIGKILL: the group notices after the
/// session timeout) and host b completes its workflow.
async fn two_serve_processes_in_a_group(kill: bool) {
    let broker = DevBroker::start(&["--partitions", "4"]);
    let group = |name: &'static str| {
        [
            "--group",
            "wf-cli-hosts",
            "--member-name",
            name,
            "--session-timeout",
            "3",
        ]
    };
    let mut a = Server::start(&broker, wf_test_artifacts::STEPS, &group("host-a"));
    let b = Server::start(&broker, wf_test_artifacts::STEPS, &group("host-b"));
    let owned = |status: &Value| status["owned_partitions"].as_array().map_or(0, Vec::len);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (sa, sb) = (
            get_json(&a.url, "/status").await,
            get_json(&b.url, "/status").await,
        );
        if owned(&sa) > 0 && owned(&sb) > 0 && owned(&sa) + owned(&sb) == 4 {
            assert_eq!(
                (sa["member"].as_str(), sb["member"].as_str()),
                (Some("host-a"), Some("host-b"))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no settled group: {sa} {sb}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // An id host a owns: host b refuses it with 421, naming host a.
    let http = reqwest::Client::new();
    let input = r#"{"steps":3,"step_ms":1000}"#;
    let mut id = None;
    for i in 0..100 {
        let candidate = format!("handover-{i}");
        let answer = http
            .post(format!("{}/workflows/{candidate}?wait=false", b.url))
            .body(input)
            .send()
            .await
            .unwrap();
        if answer.status() == 421 {
            let body: Value = answer.json().await.unwrap();
            if body["owner"] == "host-a" {
                id = Some(candidate);
                break;
            }
        }
    }
    let id = id.expect("an id host a owns, refused by host b naming host a");
    let started = http
        .post(format!("{}/workflows/{id}?wait=false", a.url))
        .body(input)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    // Stop host a mid-run (its first activity done): it leaves the group and
    // hands the run over; host b resumes it.
    loop {
        let state = get_json(&b.url, &format!("/workflows/{id}")).await;
        if state["History"]
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["Type"] == "activity_completed"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress: {state}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if kill {
        a.child.kill().expect("SIGKILL");
        a.child.wait().unwrap();
    } else {
        let pid = a.child.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(term.success());
        let exited = a.child.wait().unwrap();
        assert!(
            exited.success(),
            "wfhost serve exits cleanly on SIGTERM: {exited}"
        );
    }

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let state = loop {
        let state = get_json(&b.url, &format!("/workflows/{id}")).await;
        if state["Status"] == "completed" {
            break state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not taken over: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(state["Result"], 5, "0 + 1 + 4");
    let types: Vec<&str> = state["History"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "workflow_started").count(),
        2,
        "started on a, resumed on b: {types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "activity_completed").count(),
        3,
        "each activity completed once: {types:?}"
    );
    let status = get_json(&b.url, "/status").await;
    assert_eq!(owned(&status), 4, "b owns everything now: {status}");
}

/// Runs `wfhost` and decodes its JSON stdout.
fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(stdout(output).trim()).expect("JSON output")
}

/// `wfhost recover` of the durable module with `grant`: it resumes the one
/// run left, `order-1`, to completion; returns that state.
fn recover_the_order(broker: &DevBroker, grant: &str) -> Value {
    let recovered = broker.wfhost(&[
        "--output",
        "json",
        "recover",
        wf_test_artifacts::DURABLE,
        "--grant-dir",
        grant,
    ]);
    let states = json_of(&recovered);
    assert_eq!(states.as_array().unwrap().len(), 1, "{states}");
    assert_eq!(states[0]["WorkflowID"], "order-1");
    assert_eq!(states[0]["Status"], "completed", "{}", states[0]["Error"]);
    states[0].clone()
}

/// A worker `wfhost run` of `module`, SIGKILLed once `signal` exists.
fn run_and_kill(broker: &DevBroker, module: &str, args: &[&str], signal: &std::path::Path) {
    let mut worker = command()
        .args(["--brokers", &broker.brokers, "run", module])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the worker");
    wait_for_file(signal);
    worker.kill().expect("SIGKILL");
    worker.wait().unwrap();
}

/// Two modules share the default topic; a run of each is killed mid-run.
/// `wfhost recover` of each module resumes only the run that module
/// started, and says what it left to the other.
#[test]
fn two_modules_on_one_topic_each_recover_resumes_only_its_own_runs() {
    let broker = DevBroker::start(&[]);
    let orders = scratch_dir("two-modules-orders");
    let probes = scratch_dir("two-modules-probes");
    let order_grant = format!("{}:rw", orders.display());
    let probe_grant = format!("{}:rw", probes.display());
    let order =
        serde_json::json!({"dir": orders.display().to_string(), "order": "o-1", "cents": 5});
    run_and_kill(
        &broker,
        wf_test_artifacts::DURABLE,
        &[
            "--id",
            "order-1",
            "--grant-dir",
            &order_grant,
            "--input",
            &order.to_string(),
        ],
        &orders.join("waiting"),
    );
    let spinning = probes.join("spinning");
    let probe =
        serde_json::json!([{"op": "signal_then_spin", "path": spinning.display().to_string()}]);
    run_and_kill(
        &broker,
        wf_test_artifacts::SANDBOX_PROBE,
        &[
            "--id",
            "probe-1",
            "--grant-dir",
            &probe_grant,
            "--input",
            &probe.to_string(),
        ],
        &spinning,
    );

    // The probe's recovery resumes the probe's run only (it spins again and
    // meets its deadline), and leaves the order to its module.
    let recovered = broker.wfhost(&[
        "--output",
        "json",
        "recover",
        wf_test_artifacts::SANDBOX_PROBE,
        "--grant-dir",
        &probe_grant,
        "--timeout",
        "1",
    ]);
    assert_eq!(recovered.status.code(), Some(3), "{}", stderr(&recovered));
    assert!(
        stderr(&recovered).contains("left 1 runs of other modules"),
        "{}",
        stderr(&recovered)
    );
    let states: Value = serde_json::from_str(stdout(&recovered).trim()).unwrap();
    let ids: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["WorkflowID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["probe-1"]);
    let order_state = json_of(&broker.wfhost(&["--output", "json", "show", "order-1"]));
    assert_eq!(order_state["Status"], "running", "left to its own module");

    // The order's module resumes the order, to its end.
    std::fs::write(orders.join("go"), "").unwrap();
    recover_the_order(&broker, &order_grant);
    assert_eq!(lines(&orders.join("charge.log")), ["o-1 5"], "charged once");
    std::fs::remove_dir_all(&orders).unwrap();
    std::fs::remove_dir_all(&probes).unwrap();
}

/// Records Go's encoder can write that the host once could not serve (an
/// input nested 200 levels, a number past the float64 range) stop no read
/// and no recovery: `list` and `show` serve them, and `serve --recover`
/// resumes every run, them included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_go_writer_can_write_stop_no_read_and_no_recovery() {
    let broker = DevBroker::start(&[]);
    // A run of the pipeline, to copy its start event (which names the module).
    let seeded = broker.wfhost(&[
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "seed",
        "--input",
        "\"s\"",
    ]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let seed = json_of(&broker.wfhost(&["--output", "json", "show", "seed"]));
    let started = seed["History"][0].clone();
    let left_running = |id: &str, input: &str| {
        format!(
            r#"{{"WorkflowID":"{id}","RunID":"r-{id}","Status":"running","Input":{input},"Result":null,"Error":"","History":[{started}],"CreatedAt":"2026-01-01T00:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z"}}"#
        )
    };
    let deep = format!("{}\"x\"{}", "[".repeat(200), "]".repeat(200));
    for (id, value) in [
        ("rv-deep", left_running("rv-deep", &deep)),
        ("rv-big", left_running("rv-big", r#"{"n":1e400}"#)),
        ("rv-fine", left_running("rv-fine", "\"fine\"")),
    ] {
        wf_tests::kafka::produce_raw(
            &broker.brokers,
            "beluga-workflows",
            Some(id.as_bytes()),
            Some(value.as_bytes()),
        )
        .await;
    }
    // (Read as text here: serde_json's own reader refuses 1e400 and 200 levels.)
    let listed = broker.wfhost(&["--output", "json", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(stdout(&listed).matches("\"WorkflowID\":").count(), 4);
    let shown = broker.wfhost(&["--output", "json", "show", "rv-deep"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(stdout(&shown).contains(&format!("\"Input\":{deep},")));
    let shown = broker.wfhost(&["--output", "json", "show", "rv-big"]);
    assert!(
        stdout(&shown).contains(r#""Input":{"n":1e400}"#),
        "{}",
        stdout(&shown)
    );

    let mut serve = command()
        .args([
            "--brokers",
            &broker.brokers,
            "serve",
            wf_test_artifacts::PIPELINE,
        ])
        .args(["--listen", "127.0.0.1:0", "--recover"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting wfhost serve");
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let url = lines
        .find_map(|line| line.ok()?.strip_prefix("listening: ").map(str::to_owned))
        .expect("wfhost serve --recover serves");
    std::thread::spawn(move || lines.for_each(drop));
    let http = reqwest::Client::new();
    let get_text = async |path: &str| {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    };
    for id in ["rv-deep", "rv-big", "rv-fine"] {
        // The pipeline takes a string: the deep and big inputs fail it, as
        // a workflow failure, not the host's.
        let expected = if id == "rv-fine" {
            "completed"
        } else {
            "failed"
        };
        let mut state = String::new();
        for _ in 0..500 {
            state = get_text(&format!("/workflows/{id}")).await;
            if !state.contains(r#""Status":"running""#) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            state.contains(&format!(r#""Status":"{expected}""#)),
            "{id} was resumed and ended {expected}: {}",
            state.get(..300).unwrap_or(&state)
        );
    }
    let page = get_text("/workflows?limit=10").await;
    assert_eq!(page.matches("\"WorkflowID\":").count(), 4);
    let _ = serve.kill();
    let _ = serve.wait();
}

/// A host in no group warns when another writer writes its topic: its
/// conditional saves and starts are decided per host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_in_no_group_warns_when_another_writer_writes_its_topic() {
    let broker = DevBroker::start(&[]);
    let mut serve = command()
        .args([
            "--brokers",
            &broker.brokers,
            "serve",
            wf_test_artifacts::PIPELINE,
        ])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wfhost serve");
    let mut out = BufReader::new(serve.stdout.take().unwrap()).lines();
    let url = out
        .find_map(|line| line.ok()?.strip_prefix("listening: ").map(str::to_owned))
        .expect("wfhost serve serves");
    std::thread::spawn(move || out.for_each(drop));
    let (seen, warned) = std::sync::mpsc::channel();
    let err = BufReader::new(serve.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if line.contains("another writer writes this topic") {
                let _ = seen.send(line);
            }
        }
    });
    // Its own writes do not count.
    let own = reqwest::Client::new()
        .post(format!("{url}/workflows/own-1"))
        .body("\"x\"")
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(
        warned
            .recv_timeout(std::time::Duration::from_secs(1))
            .is_err()
    );
    let other = broker.wfhost(&[
        "run",
        wf_test_artifacts::PIPELINE,
        "--id",
        "other-1",
        "--input",
        "\"y\"",
    ]);
    assert!(other.status.success(), "{}", stderr(&other));
    let line = warned
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a warning about the other writer");
    assert!(line.contains("--group"), "{line}");
    let _ = serve.kill();
    let _ = serve.wait();
}

/// The stored state of `id`, through the store, from another process.
fn shown(broker: &DevBroker, id: &str) -> Value {
    let out = broker.wfhost(&["--output", "json", "show", id]);
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|_| panic!("{}", stderr(&out)))
}

/// Waits (bounded) until `id`'s stored state satisfies `check`.
fn until_stored(broker: &DevBroker, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let state = shown(broker, id);
        if check(&state) {
            return state;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{id} never got there: {}", shown(broker, id));
}

fn last_event(state: &Value) -> String {
    state["History"]
        .as_array()
        .and_then(|h| h.last())
        .map(|e| e["Type"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn count_events(state: &Value, kind: &str) -> usize {
    state["History"]
        .as_array()
        .map(|h| h.iter().filter(|e| e["Type"] == kind).count())
        .unwrap_or_default()
}

/// A serving wfhost is SIGKILLed while one workflow waits for a signal and
/// another sleeps; the signal is sent through the store by another process
/// while no host runs; the restarted server (without --recover) delivers the
/// signal once, and wakes the sleeper at its original due time. For the
/// `waits` guest of each language.
mod waiting_workflows_survive_a_killed_server_and_a_signal_sent_while_it_is_down {
    #[tokio::test]
    async fn rust() {
        super::killed_server_case(super::DevBroker::start(&[]), wf_test_artifacts::WAITS).await;
    }

    /// On the real broker of the end-to-end run: the restarted server
    /// replays a real topic to rebuild the waits.
    #[tokio::test]
    async fn rust_on_a_real_broker() {
        let Some(broker) = super::DevBroker::real("waits") else {
            return;
        };
        super::killed_server_case(broker, wf_test_artifacts::WAITS).await;
    }

    #[tokio::test]
    async fn python() {
        super::killed_server_case(
            super::DevBroker::start(&[]),
            wf_polyglot_tests::PYTHON_WAITS,
        )
        .await;
    }

    #[tokio::test]
    async fn js() {
        super::killed_server_case(super::DevBroker::start(&[]), wf_polyglot_tests::JS_WAITS).await;
    }
}

async fn killed_server_case(broker: DevBroker, guest: &str) {
    let http = reqwest::Client::new();
    let server = Server::start(&broker, guest, &[]);
    for (id, input) in [
        ("sig-1", r#"{"op":"signal","name":"go","timeout_ms":null}"#),
        ("nap-1", r#"{"op":"sleep","ms":6000}"#),
    ] {
        let started = http
            .post(format!("{}/workflows/{id}?wait=false", server.url))
            .body(input)
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202);
    }
    until_stored(&broker, "sig-1", |s| last_event(s) == "workflow_suspended");
    let napping = until_stored(&broker, "nap-1", |s| last_event(s) == "workflow_suspended");
    let suspended = napping["History"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let at =
        wf_host::model::Timestamp::parse_rfc3339(suspended["Timestamp"].as_str().unwrap()).unwrap();
    let due = at.as_nanos() + i128::from(suspended["Duration"].as_i64().unwrap());

    // A query answers from the suspended workflow (through the server).
    let answer = command()
        .args(["query", "sig-1", "status", "--server", &server.url])
        .output()
        .unwrap();
    assert!(answer.status.success(), "{}", stderr(&answer));
    let answer: Value = serde_json::from_str(stdout(&answer).trim()).unwrap();
    assert_eq!(answer["suspended"], true);

    drop(server); // SIGKILL
    let signaled = broker.wfhost(&["signal", "sig-1", "go", "--payload", r#"{"n":1}"#]);
    assert!(signaled.status.success(), "{}", stderr(&signaled));
    let refused = broker.wfhost(&["signal", "nobody", "go"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("no workflow \"nobody\""),
        "{}",
        stderr(&refused)
    );
    let shown_table = broker.wfhost(&["show", "nap-1"]);
    assert!(
        stdout(&shown_table).contains("waiting:   suspended, for timer until"),
        "{}",
        stdout(&shown_table)
    );

    let _restarted = Server::start(&broker, guest, &[]);
    let delivered = until_stored(&broker, "sig-1", |s| s["Status"] != "running");
    assert_eq!(delivered["Status"], "completed", "{delivered}");
    assert_eq!(
        delivered["Result"],
        serde_json::json!({"payload": {"n": 1}})
    );
    assert_eq!(count_events(&delivered, "signal_received"), 1);

    let woke = until_stored(&broker, "nap-1", |s| s["Status"] != "running");
    assert_eq!(woke["Status"], "completed", "{woke}");
    assert_eq!(count_events(&woke, "timer_started"), 1, "not slept again");
    let fired = woke["History"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Type"] == "timer_fired")
        .unwrap();
    let fired = wf_host::model::Timestamp::parse_rfc3339(fired["Timestamp"].as_str().unwrap())
        .unwrap()
        .as_nanos();
    assert!(fired >= due, "fired {} ms early", (due - fired) / 1_000_000);
    assert!(
        fired - due < 2_000_000_000,
        "fired {} ms late",
        (fired - due) / 1_000_000
    );
}

/// The HTTP API of signals and queries, and each of its errors.
#[tokio::test]
async fn signals_and_queries_over_http_answer_each_case_with_its_status() {
    let broker = DevBroker::start(&[]);
    let server = Server::start(&broker, wf_test_artifacts::WAITS, &[]);
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.url);
    let post = |path: &str, body: &str| http.post(url(path)).body(body.to_owned()).send();

    let unknown = post("/workflows/h-1/signals/go", "").await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("no workflow")
    );

    let started = post(
        "/workflows/h-1?wait=false",
        r#"{"op":"signal","name":"go","timeout_ms":null}"#,
    )
    .await
    .unwrap();
    assert_eq!(started.status(), 202);
    until_stored(&broker, "h-1", |s| last_event(s) == "workflow_suspended");

    for (path, body, status) in [
        ("/workflows/h-1/signals/a%7Cb", "", 400),
        ("/workflows/h-1/signals/go", "{bad", 400),
    ] {
        let refused = post(path, body).await.unwrap();
        assert_eq!(refused.status(), status, "{path} {body}");
        assert!(refused.json::<Value>().await.unwrap()["error"].is_string());
    }
    for (path, status) in [
        ("/workflows/h-1/queries/nope", 422),
        ("/workflows/h-1/queries/echo?args=%7Bbad", 400),
        ("/workflows/nobody/queries/status", 404),
    ] {
        let refused = http.get(url(path)).send().await.unwrap();
        assert_eq!(refused.status(), status, "{path}");
    }
    let get_json = |path: &str| {
        let request = http.get(url(path)).send();
        async { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let echoed = get_json("/workflows/h-1/queries/echo?args=%7B%22a%22%3A1%7D").await;
    assert_eq!(echoed, serde_json::json!({"a": 1}));
    let status = get_json("/status").await;
    assert_eq!(status["waiting"], 1, "{status}");
    let delete = http.delete(url("/workflows/h-1")).send().await.unwrap();
    assert_eq!(
        delete.status(),
        409,
        "a suspended workflow is not deleted under its host"
    );

    let sent = command()
        .args([
            "signal",
            "h-1",
            "go",
            "--payload",
            r#"{"x":1}"#,
            "--server",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", stderr(&sent));
    let done = until_stored(&broker, "h-1", |s| s["Status"] != "running");
    assert_eq!(done["Result"], serde_json::json!({"payload": {"x": 1}}));
    let ended = post("/workflows/h-1/signals/go", "").await.unwrap();
    assert_eq!(ended.status(), 409);
    let through = command()
        .args(["signal", "h-1", "go", "--server", &server.url])
        .output()
        .unwrap();
    assert_eq!(through.status.code(), Some(1));
    assert!(
        stderr(&through).contains("has ended"),
        "{}",
        stderr(&through)
    );
}
