//! Test guest for the soak test under faults (`crates/wfhost/tests/soak.rs`).
//!
//! Loops over `keys` workflow ids `{prefix}k{NN}`: op `i` writes key
//! `i % keys`, a save of a state carrying the sequence number
//! `generation * 1_000_000 + i` (in its input, result and run id), or, every
//! `delete_every`-th op, a delete. Before each call it prints
//! `soak-op try <save|delete> <id> <seq>`, after it
//! `soak-op ack <save|delete> <id> <seq>` or
//! `soak-op fail <save|delete> <id> <seq> <error>`; the host logs the lines
//! (target `wf::guest`), and the test reads them from `wfhost`'s stderr: a
//! line `ack` is a write the store acknowledged to the workflow.
//!
//! A store error does not stop it: it pauses briefly and goes on. While the
//! file `pause_file` exists it makes no calls; it stops after `ops`
//! operations or once the file `stop_file` exists (both checked before every
//! op), and returns its counts.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wf_guest::{Context, WorkflowState, WorkflowStatus};

#[derive(Debug, Deserialize)]
struct Input {
    /// Prefix of the ids written, e.g. `soak/a/`.
    prefix: String,
    /// Makes sequence numbers of a restarted worker higher than its predecessor's.
    generation: u64,
    /// How many distinct ids to cycle through.
    keys: u64,
    /// At most this many operations.
    ops: u64,
    /// Every this-many-th op is a delete (0: never).
    #[serde(default = "default_delete_every")]
    delete_every: u64,
    /// Stop once this file exists (in a directory granted to the module).
    #[serde(default)]
    stop_file: Option<String>,
    /// Make no calls while this file exists.
    #[serde(default)]
    pause_file: Option<String>,
    /// Pause after a failed call, in milliseconds.
    #[serde(default = "default_pause_ms")]
    pause_ms: u64,
}

fn default_delete_every() -> u64 {
    5
}

fn default_pause_ms() -> u64 {
    50
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    ops: u64,
    acked: u64,
    failed: u64,
}

/// One line on stdout, flushed, so a killed host has logged every line up to
/// the call it died in.
fn report(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(ctx: &Context, input: Input) -> Result<Counts, String> {
    if input.keys == 0 {
        return Err("keys must be positive".into());
    }
    let store = ctx.store();
    let mut counts = Counts::default();
    let exists = |file: &Option<String>| file.as_ref().is_some_and(|f| Path::new(f).exists());
    for i in 0..input.ops {
        while exists(&input.pause_file) && !exists(&input.stop_file) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if exists(&input.stop_file) {
            break;
        }
        let seq = input.generation * 1_000_000 + i;
        let id = format!("{}k{:02}", input.prefix, i % input.keys);
        let delete = input.delete_every > 0 && i % input.delete_every == input.delete_every - 1;
        let op = if delete { "delete" } else { "save" };
        report(format_args!("soak-op try {op} {id} {seq}"));
        let result = if delete {
            store.delete(&id)
        } else {
            let mut state = WorkflowState::new(id.as_str());
            state.run_id = format!("seq-{seq}");
            state.status = WorkflowStatus::Running;
            state
                .set_input(&serde_json::json!({"seq": seq, "generation": input.generation}))
                .map_err(|e| e.to_string())?;
            state.set_result(&seq).map_err(|e| e.to_string())?;
            store.save(&state)
        };
        counts.ops += 1;
        match result {
            Ok(()) => {
                counts.acked += 1;
                report(format_args!("soak-op ack {op} {id} {seq}"));
            }
            Err(e) => {
                counts.failed += 1;
                let error = e.to_string().replace('\n', " ");
                report(format_args!("soak-op fail {op} {id} {seq} {error}"));
                std::thread::sleep(Duration::from_millis(input.pause_ms));
            }
        }
    }
    Ok(counts)
}

wf_guest::export!(run);
