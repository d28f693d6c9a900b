//! Test guest: a durable workflow with two activities and a crash window.
//!
//! Activity `charge` appends a line to `{dir}/charge.log`; the workflow then
//! sleeps on a durable timer, writes `{dir}/waiting` and waits until
//! `{dir}/go` exists (the window in which a test kills the host); then
//! activity `ship` appends to `{dir}/ship.log`. A re-run after a crash must
//! not charge again.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wf_guest::{ActivityError, Context};

#[derive(Debug, Deserialize)]
struct Input {
    /// A directory granted read-write.
    dir: String,
    order: String,
    cents: u64,
    /// Make `ship` fail with this message.
    #[serde(default)]
    ship_error: Option<String>,
    /// Skip the wait for `{dir}/go`.
    #[serde(default)]
    no_wait: bool,
}

#[derive(Debug, Serialize)]
struct Done {
    charge: String,
    parcel: u64,
}

fn append(path: &Path, line: &str) -> Result<usize, String> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    writeln!(file, "{line}").map_err(|e| format!("writing {}: {e}", path.display()))?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(text.lines().count())
}

fn run(ctx: &Context, input: Input) -> Result<Done, ActivityError> {
    let dir = Path::new(&input.dir);
    let charge: String =
        ctx.activity("charge", &(&input.order, input.cents), |(order, cents)| {
            let n = append(&dir.join("charge.log"), &format!("{order} {cents}"))?;
            Ok::<_, String>(format!("charge-{n}"))
        })?;
    ctx.sleep(Duration::from_millis(20))?;
    if !input.no_wait {
        std::fs::write(dir.join("waiting"), ctx.workflow_id())
            .map_err(|e| ActivityError::Failed(format!("writing the marker: {e}")))?;
        while !dir.join("go").exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let parcel: u64 = ctx.activity("ship", &charge, |charge| {
        if let Some(message) = &input.ship_error {
            return Err(message.clone());
        }
        let n = append(&dir.join("ship.log"), charge)?;
        Ok(n as u64)
    })?;
    Ok(Done { charge, parcel })
}

wf_guest::export!(run);
