//! Compiles the example and test guests to `wasm32-wasip2` components and
//! emits their paths as constants (`wf_test_artifacts::PIPELINE`, ...), so
//! the integration tests always run the guests built from the current source.

use std::path::PathBuf;
use std::process::Command;

/// (package, constant) for every Rust guest the tests run.
const GUESTS: &[(&str, &str)] = &[
    ("pipeline", "PIPELINE"),
    ("order-pipeline", "ORDER_PIPELINE"),
    ("ledger", "LEDGER"),
    ("store-ops", "STORE_OPS"),
    ("sandbox-probe", "SANDBOX_PROBE"),
    ("durable", "DURABLE"),
    ("soak", "SOAK"),
    ("steps", "STEPS"),
    ("waits", "WAITS"),
    ("approval", "APPROVAL"),
];

fn main() {
    // Read at run time, not with env!: the compiled script may be reused for
    // another checkout of the same workspace.
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf();
    // Relative to this package, so that another checkout sharing the target
    // dir watches its own files, not the ones of the checkout built first.
    for path in [
        "wit",
        "crates/guest",
        "crates/bindgen-util",
        "examples/rust",
        "tests/guests",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed=../../{path}");
    }

    // A target dir of its own: the outer cargo holds a lock on its own one.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-guests");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // Flags and wrappers meant for the host build (coverage, clippy) must not
    // leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo to build the wasm guests");
    assert!(
        status.success(),
        "building the wasm guests failed: see cargo's output above (a missing target needs `rustup target add wasm32-wasip2`)"
    );

    let mut constants = String::new();
    for (package, constant) in GUESTS {
        let path = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            path.exists(),
            "guest {package} was not built at {}",
            path.display()
        );
        constants.push_str(&format!(
            "/// The `{package}` guest component.\npub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    // `foreach_guest!(m)` calls `m!(name)` for every guest, so a test file
    // can check that each has a test named after it.
    constants.push_str(
        "/// Calls `$mac!(guest)` for every guest built (its package name in snake case).\n\
         #[macro_export]\nmacro_rules! foreach_guest {\n    ($mac:ident) => {\n",
    );
    for (package, _) in GUESTS {
        constants.push_str(&format!("        $mac!({});\n", package.replace('-', "_")));
    }
    constants.push_str("    };\n}\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("guests.rs"), constants).expect("writing guests.rs");
}
