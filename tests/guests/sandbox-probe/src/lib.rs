//! Test guest: runs a script of sandbox probes given as its input and returns
//! each probe's outcome, so tests can check what the sandbox grants and what
//! it refuses, and drive the limits (deadline, memory, stack, fuel, output).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wf_guest::Context;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// Read a file's text.
    Read { path: String },
    /// Create or replace a file with `text`.
    Write { path: String, text: String },
    /// Append a line to a file.
    Append { path: String, line: String },
    /// List a directory's entry names.
    ListDir { path: String },
    /// The environment variables and arguments the guest sees.
    Env,
    /// Recurse without end: the stack limit must stop it.
    Recurse,
    /// Spin forever: the deadline (or fuel, or a cancel) must stop it.
    Spin,
    /// Sleep this many milliseconds on the host's clock.
    SleepMs { ms: u64 },
    /// Allocate and touch this many MiB.
    Allocate { mib: usize },
    /// Put a string of this many bytes into the outcomes (and so the result).
    Echo { bytes: usize },
    /// Write a file, then spin: lets a test know the guest is running.
    SignalThenSpin { path: String },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Ok(Value),
    Err(String),
}

fn io<T: Serialize>(result: std::io::Result<T>) -> Outcome {
    match result {
        Ok(value) => Outcome::Ok(json!(value)),
        Err(e) => Outcome::Err(format!("{:?}: {e}", e.kind())),
    }
}

fn run(_ctx: &Context, script: Vec<Op>) -> Result<Vec<Outcome>, String> {
    let mut outcomes = Vec::new();
    for op in script {
        let done = match op {
            Op::Read { path } => io(std::fs::read_to_string(path)),
            Op::Write { path, text } => io(std::fs::write(path, text)),
            Op::Append { path, line } => io(append(&path, &line)),
            Op::ListDir { path } => io(std::fs::read_dir(path).and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<std::io::Result<Vec<_>>>()
            })),
            Op::Env => Outcome::Ok(json!({
                "vars": std::env::vars().collect::<Vec<_>>(),
                "args": std::env::args().collect::<Vec<_>>(),
            })),
            Op::Recurse => Outcome::Ok(json!(recurse(0))),
            Op::Spin => spin(),
            Op::SleepMs { ms } => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Outcome::Ok(json!(ms))
            }
            Op::Allocate { mib } => {
                let block = vec![1u8; mib * 1024 * 1024];
                Outcome::Ok(json!(block.iter().map(|b| *b as usize).sum::<usize>()))
            }
            Op::Echo { bytes } => Outcome::Ok(json!("x".repeat(bytes))),
            Op::SignalThenSpin { path } => {
                std::fs::write(&path, "running").map_err(|e| format!("signal file: {e}"))?;
                spin()
            }
        };
        outcomes.push(done);
    }
    Ok(outcomes)
}

fn append(path: &str, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

/// Small frames, so that wasm's own call stack overflows (a trap wasmtime
/// names) before Rust's shadow stack in linear memory does.
#[expect(
    unconditional_recursion,
    reason = "the point: only the stack limit ends it"
)]
fn recurse(depth: u64) -> u64 {
    recurse(std::hint::black_box(depth + 1)).wrapping_mul(3) ^ depth
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

wf_guest::export!(run);
