//! The Python and JavaScript SDKs' own unit tests (their replay rules,
//! retries, signals, queries and test harnesses, in plain Python and Node,
//! without a component), run by `cargo test` like everything else.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `program args` in the workspace and fails with its output unless it
/// succeeds.
fn passes(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (the guest toolchains need it)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_sdk_unit_tests_pass() {
    passes(
        "python3",
        &["-m", "unittest", "discover", "-s", "sdk/python/tests"],
    );
}

#[test]
fn the_javascript_sdk_unit_tests_pass() {
    passes("node", &["--test", "sdk/js/test/"]);
}
