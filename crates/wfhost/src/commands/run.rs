//! `wfhost run` (one workflow to its end) and `wfhost recover` (every run
//! left `running`, to its end).

use std::process::ExitCode;
use std::sync::Arc;

use wf_host::{Host, Module, RecoverOptions};

use crate::args::{EXIT_WORKFLOW_FAILED, Output};
use crate::output::{exit_code, print_list, print_state};

/// `wfhost run`: prints the final state; exits 3 when the workflow failed.
pub async fn run(
    host: &Host,
    module: &Module,
    id: &str,
    input: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let state = host.run(module, id, input).await?;
    print_state(output, &state)?;
    Ok(exit_code(&state))
}

/// `wfhost recover`: prints the final states; exits 3 when one failed.
pub async fn recover(
    host: &Host,
    module: &Module,
    prefix: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let mut options = RecoverOptions::default();
    options.id_prefix = prefix;
    let handles = host.recover(module, options).await?;
    if handles.is_empty() {
        eprintln!(
            "wfhost: no workflows left running (store: {})",
            host.store_for(module).describe()
        );
    }
    let mut code = ExitCode::SUCCESS;
    let mut states = Vec::new();
    for handle in handles {
        let state = handle.result().await?;
        if exit_code(&state) != ExitCode::SUCCESS {
            code = ExitCode::from(EXIT_WORKFLOW_FAILED);
        }
        states.push(Arc::new(state));
    }
    print_list(output, &states)?;
    Ok(code)
}
