//! Starting a run: the request checked, the id claimed on this host, what
//! the id holds weighed against the module's [`IdReuse`] policy, a slot of
//! the module and one of the host taken (waited for or refused), and
//! `running` saved, conditional on the version weighed, before the guest is
//! called.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use super::{
    Ended, ExecuteError, ExecuteOptions, Host, HostInner, RunningWorkflow, Stop, WorkflowHandle,
};
use crate::fence::RunFence;
use crate::model::{self, ModuleIdentity, Timestamp, WorkflowState, WorkflowStatus};
use crate::runtime::{IdReuse, Module, WhenFull};
use crate::store::{Ownership, Version, validate};

/// What a start does with an id, given what the id holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reuse {
    /// Start a run (over whatever is stored).
    Start,
    /// Return the stored run instead of starting another.
    Return,
    /// Refuse: the id holds a record that is not a run.
    RefuseRecord,
}

impl Reuse {
    /// The start `policy` asks for when the id holds `stored`.
    pub(super) fn decide(policy: IdReuse, stored: Option<&WorkflowState>) -> Self {
        let Some(stored) = stored else {
            return Self::Start;
        };
        if policy == IdReuse::AllowDuplicate {
            return Self::Start;
        }
        if !stored.is_run() {
            return Self::RefuseRecord;
        }
        match (policy, stored.status) {
            (
                IdReuse::AllowDuplicateFailedOnly,
                WorkflowStatus::Failed | WorkflowStatus::Canceled,
            ) => Self::Start,
            _ => Self::Return,
        }
    }
}

/// What an admission begins: a new run, a resume of a stored run (which
/// saves it `running` again over `version`), or the wake of a suspended
/// run (which writes nothing before the guest runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Begin {
    New,
    Resume(Version),
    Wake(Version),
}

/// How a request to start an id was answered.
pub(super) enum Admission {
    /// A new run may start: its id claimed, its slots taken, `running` saved.
    Started(Admitted),
    /// The id's run (running on this host, or stored) answers instead.
    Existing(WorkflowHandle),
}

impl Host {
    /// The `running` state a new run of `module` starts from, once the
    /// request is valid, the module may run the id, and this host owns it.
    pub(super) async fn new_run(
        &self,
        module: &Module,
        options: ExecuteOptions,
    ) -> Result<WorkflowState, ExecuteError> {
        let running = running_state(&module.identity(), options)?;
        module
            .options()
            .access
            .check(module.name(), "execute", &running.workflow_id)?;
        self.check_owner(module, &running.workflow_id).await?;
        Ok(running)
    }

    /// `NotOwner` unless this host owns `workflow_id` in `module`'s store.
    async fn check_owner(&self, module: &Module, workflow_id: &str) -> Result<(), ExecuteError> {
        match self.store_for(module).ownership() {
            Some(ownership) => Ok(ownership.check(workflow_id).await?),
            None => Ok(()),
        }
    }

    /// Admits `running` ([`Host::admit`]) and, when it starts, drives the
    /// guest on a task of its own.
    pub(super) async fn start(
        &self,
        module: &Module,
        running: WorkflowState,
        begin: Begin,
        timeout: Option<Duration>,
        wait: bool,
        carried: Option<Carried>,
    ) -> Result<WorkflowHandle, ExecuteError> {
        let admitted = match self.admit(module, &running, begin, wait, carried).await? {
            Admission::Started(admitted) => admitted,
            Admission::Existing(handle) => return Ok(handle),
        };
        let limits = self.inner.runtime.run_limits(module, timeout);
        let handle = WorkflowHandle {
            id: running.workflow_id.clone(),
            run_id: running.run_id.clone(),
            cancel: admitted.cancel.clone(),
            ended: admitted.ended.subscribe(),
            started: true,
        };
        // One span per run of the guest, with what identifies it: a
        // tracing subscriber (an OTLP exporter, say) sees its store calls
        // and activities inside it.
        let span = tracing::info_span!(
            "workflow_run",
            workflow_id = %running.workflow_id,
            run_id = %running.run_id,
            module = module.name(),
            partition = tracing::field::Empty,
        );
        if let Some(ownership) = self.inner.store_of(module).ownership() {
            span.record("partition", ownership.partition_of(&running.workflow_id));
        }
        let inner = self.inner.clone();
        let module = module.clone();
        let run = async move {
            let ended = admitted.ended.clone();
            // A run that suspended ends later, in the run that wakes it.
            if let Some(outcome) = inner
                .drive(&module, running, &limits, admitted)
                .await
                .transpose()
            {
                ended.send_replace(Some(Arc::new(outcome)));
            }
        };
        tokio::spawn(tracing::Instrument::instrument(run, span));
        Ok(handle)
    }

    pub(super) fn waits_when_full(&self) -> bool {
        self.config().when_full == WhenFull::Wait
    }

    /// Claims the id, weighs what it holds, takes a slot of the module and
    /// one of the host (waiting for them if `wait`, else refusing) and saves
    /// `running`.
    ///
    /// A resume (`over`: the version of the run to resume) is refused when
    /// the id runs here, and saves over that version. A new start (`over`
    /// `None`) follows the module's [`IdReuse`] policy: the run already
    /// running here, or the stored run, answers instead when the policy says
    /// so, and `running` is saved over the version weighed.
    pub(super) async fn admit(
        &self,
        module: &Module,
        running: &WorkflowState,
        begin: Begin,
        wait: bool,
        carried: Option<Carried>,
    ) -> Result<Admission, ExecuteError> {
        // A run suspended here keeps the handles of its first start.
        let carried = carried.or_else(|| {
            if begin == Begin::New {
                return None;
            }
            self.inner.waiting.take(&running.workflow_id)?.carried
        });
        let (ended, cancel) = match carried {
            Some(Carried { ended, cancel }) => (ended, cancel),
            None => (watch::channel(None).0, watch::channel(Stop::Run).0),
        };
        let canceled = cancel.subscribe();
        let store = self.inner.store_of(module);
        let owned_in = store.ownership().map(|ownership| {
            let partition = ownership.partition_of(&running.workflow_id);
            (ownership, partition)
        });
        let claim = match Claim::new(
            &self.inner,
            &running.workflow_id,
            &running.run_id,
            module.name(),
            cancel.clone(),
            &ended,
            owned_in,
        ) {
            Ok(claim) => claim,
            Err(existing) if begin == Begin::New => return Ok(Admission::Existing(existing)),
            Err(_) => {
                return Err(ExecuteError::AlreadyRunning(running.workflow_id.clone()));
            }
        };
        // Starts of the id that join this claim meanwhile get what this
        // start gets when it does not start: the stored run, or its error.
        let admitted = self
            .admit_claimed(
                module, running, begin, wait, claim, cancel, canceled, &ended,
            )
            .await;
        match &admitted {
            Ok(Admission::Started(_)) => {}
            Ok(Admission::Existing(handle)) => {
                let answer = handle.ended.borrow().clone();
                ended.send_replace(answer);
            }
            Err(e) => {
                ended.send_replace(Some(Arc::new(Err(e.clone()))));
            }
        }
        admitted
    }

    /// [`Host::admit`] once the id is claimed.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one admission, in one place"
    )]
    async fn admit_claimed(
        &self,
        module: &Module,
        running: &WorkflowState,
        begin: Begin,
        wait: bool,
        claim: Claim,
        cancel: watch::Sender<Stop>,
        canceled: watch::Receiver<Stop>,
        ended: &watch::Sender<Option<Ended>>,
    ) -> Result<Admission, ExecuteError> {
        let store = self.inner.store_of(module);
        let over = match begin {
            Begin::Resume(version) | Begin::Wake(version) => version,
            Begin::New => {
                let stored = store.load_versioned(&running.workflow_id).await?;
                let policy = module.options().id_reuse;
                match Reuse::decide(policy, stored.as_ref().map(|s| &*s.state)) {
                    Reuse::Start => stored.map_or(0, |stored| stored.version),
                    Reuse::Return => {
                        let stored = stored.expect("a stored run is returned");
                        tracing::info!(workflow_id = %running.workflow_id, run_id = %stored.state.run_id, ?policy, "not started again: the id has a run");
                        let mut handle =
                            WorkflowHandle::of_stored(Arc::unwrap_or_clone(stored.state));
                        // Suspended here: the handle follows it to its end.
                        if let Some(waiting) = self.inner.waiting.handle_of(&running.workflow_id) {
                            handle = waiting;
                        }
                        return Ok(Admission::Existing(handle));
                    }
                    Reuse::RefuseRecord => {
                        return Err(ExecuteError::NotARun(running.workflow_id.clone()));
                    }
                }
            }
        };
        // The module's own slot first, so that a module at its bound does
        // not hold host slots other modules could use.
        let module_permit = match module.slots() {
            Some(slots) => Some(
                take_slot(slots, wait, || {
                    format!(
                        "module {} is running its limit of {} workflows",
                        module.name(),
                        module.options().limits.max_running.unwrap_or_default()
                    )
                })
                .await?,
            ),
            None => None,
        };
        let permit = take_slot(&self.inner.slots, wait, || {
            format!(
                "the host is running its limit of {} workflows",
                self.config().max_running
            )
        })
        .await?;
        let version = match begin {
            // Woken: the stored state is the run's, as it suspended (plus
            // the signals that woke it).
            Begin::Wake(version) => {
                tracing::debug!(workflow_id = %running.workflow_id, "suspended workflow woken");
                version
            }
            Begin::New | Begin::Resume(_) => {
                let version = store.save_versioned(running.clone(), Some(over)).await?;
                // A new run over a run suspended here (an id reuse policy
                // that allows it): that run is over.
                if let Some(replaced) = self.inner.waiting.take(&running.workflow_id) {
                    replaced.end(Err(ExecuteError::Internal(format!(
                        "the suspended run of {} was replaced by a new run",
                        running.workflow_id
                    ))));
                }
                tracing::info!(workflow_id = %running.workflow_id, run_id = %running.run_id, module = module.name(), "workflow started");
                let begun = if matches!(begin, Begin::New) {
                    "new"
                } else {
                    "resumed"
                };
                ::metrics::counter!(crate::metrics::WORKFLOWS_STARTED, "module" => module.name().to_owned(), "begin" => begun)
                    .increment(1);
                version
            }
        };
        Ok(Admission::Started(Admitted {
            _claim: claim,
            _module_permit: module_permit,
            _permit: permit,
            cancel,
            canceled,
            ended: ended.clone(),
            fence: Arc::new(RunFence::new(&running.workflow_id, version, running)),
        }))
    }
}

/// The channels a run's handles hold, carried from a run that suspended to
/// the run that wakes it.
#[derive(Debug)]
pub(super) struct Carried {
    /// Where the run's end goes.
    pub(super) ended: watch::Sender<Option<Ended>>,
    /// What the handles ask of the run.
    pub(super) cancel: watch::Sender<Stop>,
}

/// A run that may start: its id claimed, a slot taken, `running` saved.
/// Dropping it releases the id and the slot.
pub(super) struct Admitted {
    _claim: Claim,
    _module_permit: Option<OwnedSemaphorePermit>,
    _permit: OwnedSemaphorePermit,
    pub(super) cancel: watch::Sender<Stop>,
    pub(super) canceled: watch::Receiver<Stop>,
    /// Where the run's end goes, for every handle on it.
    pub(super) ended: watch::Sender<Option<Ended>>,
    /// The version of the run's own id it last wrote.
    pub(super) fence: Arc<RunFence>,
}

/// A permit of `slots`: waited for, or refused with `Busy` (`busy()` says why).
async fn take_slot(
    slots: &Arc<Semaphore>,
    wait: bool,
    busy: impl FnOnce() -> String,
) -> Result<OwnedSemaphorePermit, ExecuteError> {
    let closed = || ExecuteError::Internal("the host's slots were closed".into());
    if wait {
        return slots.clone().acquire_owned().await.map_err(|_| closed());
    }
    slots.clone().try_acquire_owned().map_err(|e| match e {
        TryAcquireError::NoPermits => ExecuteError::Busy(busy()),
        TryAcquireError::Closed => closed(),
    })
}

/// The `running` state a new run of the module `identity` names starts
/// from, after checking the request.
fn running_state(
    identity: &ModuleIdentity,
    options: ExecuteOptions,
) -> Result<WorkflowState, ExecuteError> {
    let id = options
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    validate::check_id("execute", &id).map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;
    model::validate_json("input", &options.input)
        .map_err(|e| ExecuteError::InvalidRequest(e.to_string()))?;

    let started_at = Timestamp::now();
    // The input is kept once, in `input`: a copy in the event would halve
    // the value budget left for large inputs. The event names the module,
    // which makes the state a run of it.
    let started = identity.started_event(1, started_at);
    let mut running = WorkflowState {
        workflow_id: id,
        run_id: uuid::Uuid::new_v4().to_string(),
        status: WorkflowStatus::Running,
        input: Some(options.input),
        result: None,
        error: String::new(),
        history: vec![started],
        created_at: started_at,
        updated_at: started_at,
    };
    // Normalized here too so the states returned equal the states stored.
    running.normalize_json_fields();
    Ok(running)
}

/// An id marked running on this host; unmarked when dropped (so also when the
/// start fails before the guest runs).
struct Claim {
    inner: Arc<HostInner>,
    id: String,
    run_id: String,
}

impl Claim {
    /// Marks `id` running, or, when a run of it is already running here,
    /// a handle on that run.
    fn new(
        inner: &Arc<HostInner>,
        id: &str,
        run_id: &str,
        module: &str,
        cancel: watch::Sender<Stop>,
        ended: &watch::Sender<Option<Ended>>,
        owned_in: Option<(Arc<Ownership>, i32)>,
    ) -> Result<Self, WorkflowHandle> {
        let mut running = inner.lock_running();
        if let Some(existing) = running.get(id) {
            return Err(WorkflowHandle {
                id: id.to_owned(),
                run_id: existing.run_id.clone(),
                cancel: existing.cancel.clone(),
                ended: existing.ended.clone(),
                started: false,
            });
        }
        running.insert(
            id.to_owned(),
            RunningWorkflow {
                run_id: run_id.to_owned(),
                module: module.to_owned(),
                cancel,
                ended: ended.subscribe(),
                owned_in,
            },
        );
        Ok(Self {
            inner: inner.clone(),
            id: id.to_owned(),
            run_id: run_id.to_owned(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self.inner.lock_running();
        if running
            .get(&self.id)
            .is_some_and(|w| w.run_id == self.run_id)
        {
            running.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_starts_returns_or_refuses_as_documented() {
        let identity = ModuleIdentity::new("m.wasm", "a".repeat(64));
        let run = |status| {
            let mut state = running_state(&identity, ExecuteOptions::new("1").id("x")).unwrap();
            state.status = status;
            state
        };
        let mut record = run(Running);
        record.history.clear();
        use IdReuse::*;
        use Reuse::*;
        use WorkflowStatus::*;
        let cases = [
            (None, [Start, Start, Start]),
            (Some(run(Running)), [Return, Return, Start]),
            (Some(run(Completed)), [Return, Return, Start]),
            (Some(run(Failed)), [Return, Start, Start]),
            (Some(run(Canceled)), [Return, Start, Start]),
            (Some(record), [RefuseRecord, RefuseRecord, Start]),
        ];
        for (stored, expected) in cases {
            let got = [RejectDuplicate, AllowDuplicateFailedOnly, AllowDuplicate]
                .map(|policy| Reuse::decide(policy, stored.as_ref()));
            assert_eq!(got, expected, "{:?}", stored.map(|s| s.status));
        }
    }
}
