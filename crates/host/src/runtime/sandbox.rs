//! The sandbox of one workflow run: a fresh wasmtime store whose data holds
//! WASI with nothing granted but the module's directories, the store
//! import, and the run's limits.

use anyhow::Context as _;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::filesystem::FsPerms;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::guest_io::GuestOutput;
use super::limits::GuestLimiter;
use super::module::Module;
use super::options::RunLimits;
use crate::bindings::WfStoreCtx;

/// The data of one workflow's wasmtime store.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) store: WfStoreCtx,
    pub(crate) limiter: GuestLimiter,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A fresh sandboxed store for one run of `module` as workflow
/// `workflow_id`, its guests reaching the store through `store`; also the
/// run's stderr, whose tail explains a failure.
pub(super) fn new_store(
    engine: &Engine,
    module: &Module,
    limits: &RunLimits,
    workflow_id: &str,
    store: WfStoreCtx,
    stderr_tail_bytes: usize,
) -> anyhow::Result<(Store<GuestState>, GuestOutput)> {
    let stderr = GuestOutput::new(workflow_id, "stderr", stderr_tail_bytes);
    let stdout = GuestOutput::new(workflow_id, "stdout", 0);
    // Nothing is granted but what the module was given: no env, args,
    // network, or files outside its granted directories.
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout).stderr(stderr.clone());
    for grant in &module.options().grants {
        let perms = if grant.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        wasi.preopened_dir(&grant.host_path, &grant.guest_path, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening granted directory {}", grant.host_path.display()))?;
    }
    let state = GuestState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        store,
        limiter: GuestLimiter::new(limits),
    };
    let mut wasm_store = Store::new(engine, state);
    wasm_store.limiter(|s| &mut s.limiter);
    wasm_store
        .set_fuel(limits.fuel.unwrap_or(u64::MAX))
        .map_err(anyhow::Error::from)?;
    // Yield at every tick: a guest that never calls the host still lets
    // other workflows run, and its deadline or cancellation is noticed.
    wasm_store.set_epoch_deadline(1);
    wasm_store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    Ok((wasm_store, stderr))
}

impl GuestState {
    /// What the run asked to wait for, if it called `suspend`.
    pub(crate) fn take_suspension(&mut self) -> Option<crate::bindings::Suspension> {
        self.store.take_suspension()
    }
}

/// Where the store import finds its context in a [`GuestState`].
pub(super) fn store_ctx(state: &mut GuestState) -> &mut WfStoreCtx {
    &mut state.store
}
