//! The sandbox, with real guests through the real host: nothing granted
//! but granted directories, and each limit (memory, stack, fuel, tables and
//! instances, result size) failing that workflow only, saying which. The
//! store plays no part, so these run on the memory store.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wf_host::model::{EventType, WorkflowStatus};
use wf_host::{DirGrant, HostConfig, ModuleLimits, ModuleOptions};
use wf_tests::probe::{assert_serves_on, err_text, limited_probe, outcomes, probe, run_probe};
use wf_tests::{guests, kinds, memory_host, scratch_dir};

// ---- The sandbox ----

#[tokio::test]
async fn nothing_is_granted_by_default() {
    let host = memory_host(HostConfig::default());
    let module = probe(&host, vec![]);
    let state = run_probe(
        &host,
        &module,
        "bare",
        json!([
            {"op": "env"},
            {"op": "read", "path": "/etc/passwd"},
            {"op": "list_dir", "path": "/"},
            {"op": "list_dir", "path": "."},
            {"op": "write", "path": "/tmp/wf-escape", "text": "x"},
        ]),
    )
    .await;
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"], json!({"vars": [], "args": []}));
    for refused in &out[1..] {
        assert!(!err_text(refused).is_empty(), "{refused}");
    }
    assert!(!Path::new("/tmp/wf-escape").exists());
    assert_serves_on(&host, &module, "bare-next").await;
}

#[tokio::test]
async fn a_granted_directory_is_read_only_unless_said_and_cannot_be_escaped() {
    let root = scratch_dir("grant");
    let granted = root.join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(granted.join("in.txt"), "inside").unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", granted.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), granted.join("secret-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", granted.join("relative-link")).unwrap();
    let g = granted.display().to_string();

    let host = memory_host(HostConfig::default());
    let read_only = probe(&host, vec![DirGrant::read_only(&granted, &g)]);
    let state = run_probe(
        &host,
        &read_only,
        "ro",
        json!([
            {"op": "read", "path": format!("{g}/in.txt")},
            {"op": "list_dir", "path": g},
            {"op": "write", "path": format!("{g}/new.txt"), "text": "x"},
            {"op": "append", "path": format!("{g}/in.txt"), "line": "more"},
            {"op": "read", "path": format!("{g}/../secret.txt")},
            {"op": "read", "path": format!("{g}/passwd-link")},
            {"op": "read", "path": format!("{g}/secret-link")},
            {"op": "read", "path": format!("{g}/relative-link")},
            {"op": "read", "path": "/etc/passwd"},
        ]),
    )
    .await;
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"], "inside");
    let mut names: Vec<String> = serde_json::from_value(out[1]["ok"].clone()).unwrap();
    names.sort();
    assert_eq!(
        names,
        ["in.txt", "passwd-link", "relative-link", "secret-link"]
    );
    for (i, refused) in out.iter().enumerate().skip(2) {
        assert!(!err_text(refused).is_empty(), "probe {i}: {refused}");
    }
    assert!(
        !granted.join("new.txt").exists(),
        "a read-only grant was written"
    );
    assert_eq!(
        std::fs::read_to_string(granted.join("in.txt")).unwrap(),
        "inside"
    );

    let writable = probe(&host, vec![DirGrant::read_write(&granted, &g)]);
    let state = run_probe(
        &host,
        &writable,
        "rw",
        json!([
            {"op": "write", "path": format!("{g}/new.txt"), "text": "written"},
            {"op": "write", "path": format!("{g}/../escaped.txt"), "text": "x"},
            {"op": "write", "path": format!("{g}/secret-link"), "text": "x"},
        ]),
    )
    .await;
    let out = outcomes(&state);
    assert_eq!(out[0]["ok"], Value::Null);
    assert!(!err_text(&out[1]).is_empty());
    assert!(!err_text(&out[2]).is_empty());
    assert_eq!(
        std::fs::read_to_string(granted.join("new.txt")).unwrap(),
        "written"
    );
    assert!(!root.join("escaped.txt").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("secret.txt")).unwrap(),
        "outside"
    );
    assert_serves_on(&host, &writable, "rw-next").await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn granting_a_missing_directory_is_refused_at_load() {
    let host = memory_host(HostConfig::default());
    let options = ModuleOptions::default().grant(DirGrant::read_only("/nonexistent/wf", "/data"));
    let err = host
        .load_module_file_with(guests::SANDBOX_PROBE, options)
        .unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/wf"), "{err:#}");
}

#[tokio::test]
async fn a_memory_bomb_hits_the_limit_and_says_so() {
    let host = memory_host(HostConfig::default());
    let module = limited_probe(&host, ModuleLimits::default().memory_bytes(32 << 20));
    let state = run_probe(
        &host,
        &module,
        "bomb",
        json!([{"op": "allocate", "mib": 256}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.contains("memory limit reached"),
        "{}",
        state.error
    );
    assert!(state.error.contains("33554432 bytes"), "{}", state.error);
    assert_eq!(kinds(&state).last(), Some(&EventType::WorkflowFailed));
    assert_serves_on(&host, &module, "bomb-next").await;
}

#[tokio::test]
async fn a_stack_overflow_fails_that_workflow() {
    let host = memory_host(HostConfig::default());
    let module = probe(&host, vec![]);
    let state = run_probe(&host, &module, "deep", json!([{"op": "recurse"}])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("stack overflow"), "{}", state.error);
    assert_eq!(kinds(&state).last(), Some(&EventType::WorkflowFailed));
    assert_serves_on(&host, &module, "deep-next").await;
}

#[tokio::test]
async fn fuel_stops_a_runaway_loop_when_set() {
    let host = memory_host(HostConfig::default());
    let module = limited_probe(&host, ModuleLimits::default().fuel(50_000_000));
    let state = run_probe(&host, &module, "fuel", json!([{"op": "spin"}])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(state.error.contains("fuel exhausted"), "{}", state.error);
    assert!(state.error.contains("50000000"), "{}", state.error);
    // Fuel is per run: the next run gets its own.
    assert_serves_on(&host, &module, "fuel-next").await;
}

#[tokio::test]
async fn a_100_mib_result_is_refused_cleanly() {
    let host = memory_host(HostConfig::default());
    let module = limited_probe(&host, ModuleLimits::default().memory_bytes(1 << 30));
    let state = run_probe(
        &host,
        &module,
        "huge",
        json!([{"op": "echo", "bytes": 100 << 20}]),
    )
    .await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state
            .error
            .contains("the store refused the workflow's final state"),
        "{}",
        &state.error[..state.error.len().min(300)]
    );
    assert!(
        state.error.len() < 1000,
        "the error does not carry the result"
    );
    let stored = host.store().load("huge").await.unwrap().unwrap();
    assert_eq!(*stored, state);
    assert_serves_on(&host, &module, "huge-next").await;
}

#[tokio::test]
async fn table_and_instance_limits_fail_that_workflow_and_say_which() {
    let host = memory_host(HostConfig::default());
    let tiny_table = limited_probe(&host, ModuleLimits::default().table_elements(1));
    let state = run_probe(&host, &tiny_table, "tables", json!([])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.contains("table limit reached"),
        "{}",
        state.error
    );
    assert!(state.error.contains("instantiating"), "{}", state.error);
    assert_eq!(kinds(&state).last(), Some(&EventType::WorkflowFailed));

    let one_instance = limited_probe(&host, ModuleLimits::default().instances(1));
    let state = run_probe(&host, &one_instance, "instances", json!([])).await;
    assert_eq!(state.status, WorkflowStatus::Failed);
    assert!(
        state.error.contains("instance count too high"),
        "{}",
        state.error
    );
    assert!(state.error.contains("1 instances"), "{}", state.error);

    // The same bytes under the default limits serve on.
    let module = probe(&host, vec![]);
    assert_serves_on(&host, &module, "limits-next").await;
}

#[tokio::test]
async fn the_same_module_bytes_compile_once_and_the_disk_cache_is_used() {
    let cache = scratch_dir("cache");
    let config = HostConfig::default().cache_dir(Some(cache.clone()));
    let host = memory_host(config.clone());
    let first = host.load_module_file(guests::SANDBOX_PROBE).unwrap();
    let again = host
        .load_module_file_with(guests::SANDBOX_PROBE, ModuleOptions::default())
        .unwrap();
    assert_eq!(first.digest(), again.digest());
    assert_eq!(first.digest().len(), 64);
    // The compiled artifact is on disk, keyed by content and engine; a new
    // host (a restart) finds it.
    let files = walk(&cache);
    assert!(!files.is_empty(), "nothing cached in {}", cache.display());
    let restarted = memory_host(config);
    let module = restarted.load_module_file(guests::SANDBOX_PROBE).unwrap();
    assert_serves_on(&restarted, &module, "from-cache").await;
    assert_eq!(
        walk(&cache).len(),
        files.len(),
        "recompiled instead of reused"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
