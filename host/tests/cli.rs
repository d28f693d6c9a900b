//! `wfhost` as a user runs it: the real binary, the real example guests.

use std::process::{Command, Output};

use serde_json::Value;

fn wfhost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfhost"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running wfhost")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
        let err = stderr(&out);
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
    for word in ["run", "list", "show", "delete", "--output", "Examples:"] {
        assert!(stdout(&help).contains(word), "help mentions {word}");
    }
}

#[test]
fn list_show_and_delete_on_an_empty_store_say_so() {
    let list = wfhost(&["list", "--status", "running", "--limit", "5"]);
    assert!(list.status.success());
    assert!(
        stderr(&list).contains("no workflows (store: in-memory"),
        "{}",
        stderr(&list)
    );
    let json_list = wfhost(&["--output", "json", "list"]);
    assert_eq!(stdout(&json_list).trim(), "[]");
    let delete = wfhost(&["delete", "absent"]);
    assert!(delete.status.success(), "deleting an absent id succeeds");
}
