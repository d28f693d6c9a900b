//! Installs the Python and JavaScript component toolchains (componentize-py,
//! componentize-js) with `scripts/install-guest-toolchains.sh`, builds the
//! Python and JavaScript guests (the examples and the store-ops test guests)
//! into `<target>/polyglot-guests/`, and emits their paths as constants.
//!
//! A toolchain that cannot be installed, or a guest that does not build,
//! fails the build with the reason: these tests never skip silently.
//! Each guest is rebuilt only when its inputs (its sources, the SDK of its
//! language, the WIT, the toolchain's version) changed since it was built.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lang {
    Python,
    Js,
}

/// (language, constant, source file relative to the workspace).
const GUESTS: &[(Lang, &str, &str)] = &[
    (
        Lang::Python,
        "PYTHON_STORE_OPS",
        "tests/polyglot/guests/python/store_ops.py",
    ),
    (
        Lang::Python,
        "PYTHON_PIPELINE",
        "examples/python/pipeline/app.py",
    ),
    (
        Lang::Python,
        "PYTHON_LEDGER",
        "examples/python/ledger/app.py",
    ),
    (
        Lang::Python,
        "PYTHON_WAITS",
        "tests/polyglot/guests/python/waits.py",
    ),
    (
        Lang::Python,
        "PYTHON_APPROVAL",
        "examples/python/approval/app.py",
    ),
    (
        Lang::Js,
        "JS_STORE_OPS",
        "tests/polyglot/guests/js/store-ops.js",
    ),
    (Lang::Js, "JS_PIPELINE", "examples/js/pipeline/app.js"),
    (Lang::Js, "JS_LEDGER", "examples/js/ledger/app.js"),
    (Lang::Js, "JS_WAITS", "tests/polyglot/guests/js/waits.js"),
    (Lang::Js, "JS_APPROVAL", "examples/js/approval/app.js"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf();
    // Relative to this package, so another checkout sharing the target dir
    // watches its own files.
    for path in [
        "wit",
        "sdk",
        "examples/python",
        "examples/js",
        "tests/polyglot/guests",
        "scripts/install-guest-toolchains.sh",
    ] {
        println!("cargo:rerun-if-changed=../../{path}");
    }
    println!("cargo:rerun-if-env-changed=WF_TOOLS_ROOT");

    let tools = match std::env::var_os("WF_TOOLS_ROOT") {
        Some(root) if !root.is_empty() => workspace.join(root),
        _ => workspace.join(".tools"),
    };
    install_toolchains(&workspace, &tools);
    let py_version = tool_version(&tools, Lang::Python);
    let js_version = tool_version(&tools, Lang::Js);

    let out_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("polyglot-guests");
    std::fs::create_dir_all(&out_dir).expect("creating the polyglot guests folder");

    let failures: Vec<String> = std::thread::scope(|scope| {
        let builds: Vec<_> = GUESTS
            .iter()
            .map(|&(lang, constant, source)| {
                let (workspace, tools, out_dir) = (&workspace, &tools, &out_dir);
                let version = match lang {
                    Lang::Python => &py_version,
                    Lang::Js => &js_version,
                };
                scope.spawn(move || {
                    build_guest(workspace, tools, out_dir, lang, constant, source, version)
                })
            })
            .collect();
        builds
            .into_iter()
            .filter_map(|b| b.join().expect("guest build thread").err())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "building the polyglot guests failed:\n\n{}",
        failures.join("\n\n")
    );

    let mut constants = String::new();
    for (lang, constant, source) in GUESTS {
        let path = out_dir.join(format!("{}.wasm", constant.to_lowercase()));
        constants.push_str(&format!(
            "/// The {lang:?} guest built from `{source}`.\npub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let all: Vec<&str> = GUESTS.iter().map(|(_, constant, _)| *constant).collect();
    constants.push_str(&format!(
        "/// Every guest built.\npub const ALL: &[&str] = &[{}];\n",
        all.join(", ")
    ));
    // Every test has a host of its own, and these components take seconds
    // to compile: the hosts share wasmtime's on-disk cache of compiled code.
    constants.push_str(&format!(
        "/// Where the tests' hosts cache compiled modules.\npub const MODULE_CACHE: &str = {:?};\n",
        out_dir.join("module-cache").display().to_string()
    ));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("guests.rs"), constants).expect("writing guests.rs");
}

fn install_toolchains(workspace: &Path, tools: &Path) {
    let output = Command::new("bash")
        .arg(workspace.join("scripts/install-guest-toolchains.sh"))
        .env("WF_TOOLS_ROOT", tools)
        .current_dir(workspace)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run scripts/install-guest-toolchains.sh (is bash installed?): {e}")
        });
    assert!(
        output.status.success(),
        "the Python and JavaScript guest toolchains could not be installed into {} \
         (set WF_TOOLS_ROOT to install elsewhere):\n{}{}",
        tools.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The installed toolchain's version: part of every guest's build inputs.
fn tool_version(tools: &Path, lang: Lang) -> String {
    match lang {
        Lang::Python => {
            let out = Command::new(tools.join("componentize-py/bin/componentize-py"))
                .arg("--version")
                .output()
                .expect("componentize-py was installed but does not run");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
        Lang::Js => {
            std::fs::read_to_string(tools.join(
                "componentize-js/node_modules/@bytecodealliance/componentize-js/package.json",
            ))
            .expect("componentize-js was installed but has no package.json")
        }
    }
}

fn build_guest(
    workspace: &Path,
    tools: &Path,
    out_dir: &Path,
    lang: Lang,
    constant: &str,
    source: &str,
    tool_version: &str,
) -> Result<(), String> {
    let source = workspace.join(source);
    let app_dir = source.parent().expect("a guest's folder");
    let (sdk_dir, wit) = (
        workspace.join(match lang {
            Lang::Python => "sdk/python",
            Lang::Js => "sdk/js",
        }),
        workspace.join("wit"),
    );
    let output = out_dir.join(format!("{}.wasm", constant.to_lowercase()));
    let stamp = output.with_extension("wasm.inputs");

    let mut hasher = DefaultHasher::new();
    tool_version.hash(&mut hasher);
    source.file_name().hash(&mut hasher);
    for dir in [app_dir, &sdk_dir, &wit] {
        hash_tree(dir, &mut hasher);
    }
    let inputs = format!("{:016x}\n", hasher.finish());
    if output.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == inputs) {
        return Ok(());
    }

    let partial = output.with_extension("wasm.partial");
    let mut cmd = match lang {
        Lang::Python => {
            // componentize-py imports the app to snapshot it, which writes
            // __pycache__ beside the sources: build from copies.
            let stage = out_dir.join(format!("{}-stage", constant.to_lowercase()));
            let _ = std::fs::remove_dir_all(&stage);
            copy_tree(&sdk_dir, &stage.join("sdk")).map_err(|e| format!("{constant}: {e}"))?;
            copy_tree(app_dir, &stage.join("app")).map_err(|e| format!("{constant}: {e}"))?;
            let module = source.file_stem().expect("a module name").to_string_lossy();
            let mut cmd = Command::new(tools.join("componentize-py/bin/componentize-py"));
            cmd.arg("-d")
                .arg(&wit)
                .args(["-w", "wf:workflow/queryable-workflow", "componentize", "-p"])
                .arg(stage.join("sdk"))
                .arg("-p")
                .arg(stage.join("app"))
                .arg(&*module)
                .arg("-o")
                .arg(&partial);
            cmd
        }
        Lang::Js => {
            let mut cmd = Command::new("node");
            cmd.arg(sdk_dir.join("componentize.mjs"))
                .arg(&source)
                .arg("-o")
                .arg(&partial)
                .arg("--wit")
                .arg(&wit)
                .arg("--componentize-js")
                .arg(tools.join("componentize-js"));
            cmd
        }
    };
    let tool = match lang {
        Lang::Python => "componentize-py",
        Lang::Js => "componentize-js",
    };
    let result = cmd
        .output()
        .map_err(|e| format!("{constant}: cannot run {tool}: {e}"))?;
    if !result.status.success() {
        return Err(format!(
            "{constant}: {tool} failed on {} ({}):\n{}{}",
            source.display(),
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    std::fs::rename(&partial, &output).map_err(|e| format!("{constant}: {e}"))?;
    std::fs::write(&stamp, inputs).map_err(|e| format!("{constant}: {e}"))?;
    Ok(())
}

/// Hashes every file's path (relative to `dir`) and contents, in order,
/// skipping caches.
fn hash_tree(dir: &Path, hasher: &mut DefaultHasher) {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    for file in files {
        file.strip_prefix(dir).unwrap_or(&file).hash(hasher);
        std::fs::read(&file).unwrap_or_default().hash(hasher);
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "__pycache__" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            walk(&path, files);
        } else if !name.to_string_lossy().ends_with(".wasm") {
            files.push(path);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut files = Vec::new();
    walk(from, &mut files);
    for file in files {
        let target = to.join(file.strip_prefix(from).expect("under from"));
        std::fs::create_dir_all(target.parent().expect("a parent"))?;
        std::fs::copy(&file, &target)?;
    }
    Ok(())
}
