//! The `sandbox-probe` guest: a script of probes (files, environment,
//! stack, memory, time) as input, each probe's outcome as the result.

use serde_json::{Value, json};
use wf_host::model::{WorkflowState, WorkflowStatus};
use wf_host::{DirGrant, Host, Module, ModuleLimits, ModuleOptions};

use crate::{guests, result_json};

/// The probe guest, with `grants`.
pub fn probe(host: &Host, grants: Vec<DirGrant>) -> Module {
    let options = ModuleOptions::default().grants(grants);
    host.load_module_file_with(guests::SANDBOX_PROBE, options)
        .unwrap()
}

/// The probe guest with its own limits.
pub fn limited_probe(host: &Host, limits: ModuleLimits) -> Module {
    let options = ModuleOptions::default().limits(limits);
    host.load_module_file_with(guests::SANDBOX_PROBE, options)
        .unwrap()
}

/// Runs the probe guest with `script` as workflow `id`.
pub async fn run_probe(host: &Host, module: &Module, id: &str, script: Value) -> WorkflowState {
    host.run(module, id, &script.to_string())
        .await
        .expect("the run is recorded")
}

/// The host serves on: a plain workflow right after still completes.
pub async fn assert_serves_on(host: &Host, module: &Module, id: &str) {
    let next = run_probe(host, module, id, json!([{"op": "echo", "bytes": 3}])).await;
    assert_eq!(outcomes(&next), vec![json!({"ok": "xxx"})]);
}

/// The error text of a probe outcome that must be an error.
pub fn err_text(outcome: &Value) -> &str {
    outcome["err"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {outcome}"))
}

/// The probe outcomes of a completed run.
pub fn outcomes(state: &WorkflowState) -> Vec<Value> {
    assert_eq!(state.status, WorkflowStatus::Completed, "{}", state.error);
    serde_json::from_value(result_json(state)).expect("a list of outcomes")
}
