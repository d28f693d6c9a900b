//! `wfhost run` (one workflow to its end) and `wfhost recover` (every run
//! of the module left `running`, to its end).

use std::process::ExitCode;
use std::sync::Arc;

use wf_host::{ExecuteOptions, Host, Module, RecoverOptions, Recovery};

use crate::args::{EXIT_RUNS_LEFT, EXIT_WORKFLOW_FAILED, Output};
use crate::output::{exit_code, print_list, print_state};

/// `wfhost run`: prints the final state; exits 3 when the workflow failed.
/// When the id's run answers instead of a new one (the module's id reuse
/// policy), says so and prints that run's state.
pub async fn run(
    host: &Host,
    module: &Module,
    id: &str,
    input: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let handle = host
        .execute(module, ExecuteOptions::new(input).id(id))
        .await?;
    if !handle.started() {
        eprintln!(
            "wfhost: workflow {id:?} already has run {} ({}): not started again (--id-reuse); {}",
            handle.run_id(),
            handle.status(),
            if handle.status() == wf_host::model::WorkflowStatus::Running {
                "`wfhost recover` resumes a run a stopped host left running"
            } else {
                "its stored state follows"
            }
        );
    }
    let state = handle.result().await?;
    print_state(output, &state)?;
    Ok(exit_code(&state))
}

/// `wfhost recover`: prints the final states of the runs resumed and what
/// was left; exits 4 when runs of the module were left (failed to resume,
/// or another build's), else 3 when a resumed run failed.
pub async fn recover(
    host: &Host,
    module: &Module,
    prefix: Option<String>,
    resume_other_builds: bool,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let mut options = RecoverOptions::default().resume_other_builds(resume_other_builds);
    options.id_prefix = prefix;
    let recovery = host.recover(module, options).await?;
    report(host, module, &recovery);
    let left = recovery.left_some();
    let mut code = ExitCode::SUCCESS;
    let mut states = Vec::new();
    // Suspended runs too: this process wakes them when they are due (or
    // signaled), and they end here.
    let waiting = recovery.waiting.iter().filter_map(|id| host.handle(id));
    for handle in recovery.resumed.into_iter().chain(waiting) {
        let state = handle.result().await?;
        if exit_code(&state) != ExitCode::SUCCESS {
            code = ExitCode::from(EXIT_WORKFLOW_FAILED);
        }
        states.push(Arc::new(state));
    }
    print_list(output, &states)?;
    Ok(if left {
        ExitCode::from(EXIT_RUNS_LEFT)
    } else {
        code
    })
}

/// What a recovery found, on stderr.
pub fn report(host: &Host, module: &Module, recovery: &Recovery) {
    if !recovery.waiting.is_empty() {
        eprintln!(
            "wfhost: {} runs of {} are suspended (waiting for a signal or a time): kept until they are woken",
            recovery.waiting.len(),
            module.name()
        );
    }
    if recovery.resumed.is_empty() && recovery.waiting.is_empty() && !recovery.left_some() {
        eprintln!(
            "wfhost: no runs of {} left running (store: {})",
            module.name(),
            host.store_for(module).describe()
        );
    } else {
        eprintln!(
            "wfhost: resuming {} runs of {}",
            recovery.resumed.len(),
            module.name()
        );
    }
    if recovery.other_modules > 0 {
        eprintln!(
            "wfhost: left {} runs of other modules to them",
            recovery.other_modules
        );
    }
    if recovery.not_runs > 0 {
        eprintln!(
            "wfhost: left {} records with status running that are not runs (records guests saved are never resumed)",
            recovery.not_runs
        );
    }
    if !recovery.other_builds.is_empty() {
        eprintln!(
            "wfhost: left {} runs another build of {} started (--resume-other-builds resumes them): {}",
            recovery.other_builds.len(),
            module.name(),
            crate::output::clean(&recovery.other_builds.join(", "))
        );
    }
    for (id, error) in &recovery.failed {
        eprintln!(
            "wfhost: could not resume {id:?}: {}",
            crate::output::clean(&error.to_string().replace('\n', " "))
        );
    }
}
