//! Suspended workflows: what each waits for, kept in memory as a due time
//! and signal names only, and the task that wakes them when the time is
//! due or their state changed (a signal another process appended).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::admit::Carried;
use super::{ExecuteError, Host, HostInner, Stop, WorkflowHandle};
use crate::model::{Suspended, Timestamp};
use crate::runtime::Module;
use crate::store::{Ownership, Version, WorkflowStore};

/// How often the waiting task re-reads the versions of suspended
/// workflows, to wake those a signal from another process reached (the
/// host's own signals wake them at once)...
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// ...and how many it re-reads each time, in id order, round the set: a
/// signal another process wrote wakes its workflow within a second per
/// 5 000 suspended here, and a host with many suspended workflows does not
/// spend its CPU re-reading them.
const SWEEP_BATCH: usize = 5_000;

/// A suspended workflow of this host.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) module: Module,
    /// The run's id.
    pub(super) run_id: String,
    pub(super) suspended: Suspended,
    /// The version of the state that says it is suspended.
    pub(super) version: Version,
    /// The channels of the handles on its run, while there are handles
    /// (made on demand: most suspended runs have none, and channels cost
    /// more memory than the rest of the waiter).
    pub(super) carried: Option<Carried>,
    /// With hosts sharing the store: who decides ownership, and the
    /// workflow's partition.
    pub(super) owned_in: Option<(Arc<Ownership>, i32)>,
}

impl Waiter {
    fn due(&self) -> Option<i128> {
        self.suspended.wake_at.map(Timestamp::as_nanos)
    }
}

/// A suspended workflow as [`Host::waiting`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitingWorkflow {
    /// The workflow id.
    pub id: String,
    /// The module that runs it.
    pub module: String,
    /// When it is due, if it waits for a time.
    pub wake_at: Option<Timestamp>,
    /// The signals that wake it.
    pub signals: Vec<String>,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: BTreeMap<String, Waiter>,
    /// Where the next sweep starts (ids after it).
    swept_to: Option<String>,
    /// (due, id) of the waiters with a due time.
    due: BTreeSet<(i128, String)>,
}

/// The suspended workflows of one host.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    entries: Mutex<Entries>,
    changed: Notify,
    task: std::sync::OnceLock<()>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `waiter` for `id` (replacing another), and starts the waking
    /// task of `host` if it was not running.
    pub(super) fn register(self: &Arc<Self>, host: &Arc<HostInner>, id: &str, waiter: Waiter) {
        {
            let mut entries = self.lock();
            if let Some(old) = entries.by_id.remove(id)
                && let Some(due) = old.due()
            {
                entries.due.remove(&(due, id.to_owned()));
            }
            if let Some(due) = waiter.due() {
                entries.due.insert((due, id.to_owned()));
            }
            entries.by_id.insert(id.to_owned(), waiter);
        }
        self.changed.notify_one();
        if self.task.set(()).is_ok() {
            tokio::spawn(wake_loop(self.clone(), Arc::downgrade(host)));
        }
    }

    /// Removes and returns the waiter of `id`: whoever takes it wakes it.
    pub(super) fn take(&self, id: &str) -> Option<Waiter> {
        let mut entries = self.lock();
        let waiter = entries.by_id.remove(id)?;
        if let Some(due) = waiter.due() {
            entries.due.remove(&(due, id.to_owned()));
        }
        Some(waiter)
    }

    /// Whether `id` is suspended here.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.lock().by_id.contains_key(id)
    }

    /// A handle on `id`'s run, if it is suspended here (its channels made
    /// now if it had none).
    pub(super) fn handle_of(&self, id: &str) -> Option<WorkflowHandle> {
        let mut entries = self.lock();
        let waiter = entries.by_id.get_mut(id)?;
        let carried = waiter.carried.get_or_insert_with(|| Carried {
            ended: watch::channel(None).0,
            cancel: watch::channel(Stop::Run).0,
        });
        Some(WorkflowHandle {
            id: id.to_owned(),
            run_id: waiter.run_id.clone(),
            cancel: carried.cancel.clone(),
            ended: carried.ended.subscribe(),
            started: false,
        })
    }

    /// Whether a signal named `name` wakes `id`, suspended here.
    pub(super) fn woken_by(&self, id: &str, name: &str) -> bool {
        self.lock()
            .by_id
            .get(id)
            .is_some_and(|w| w.suspended.woken_by(name))
    }

    /// Removes the waiters `remove` picks.
    pub(super) fn remove_where(&self, remove: impl Fn(&Waiter) -> bool) -> Vec<(String, Waiter)> {
        let mut entries = self.lock();
        let ids: Vec<String> = entries
            .by_id
            .iter()
            .filter(|(_, w)| remove(w))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let waiter = entries.by_id.remove(&id)?;
                if let Some(due) = waiter.due() {
                    entries.due.remove(&(due, id.clone()));
                }
                Some((id, waiter))
            })
            .collect()
    }

    /// The suspended workflows, by id.
    pub(super) fn list(&self) -> Vec<WaitingWorkflow> {
        let mut list: Vec<WaitingWorkflow> = self
            .lock()
            .by_id
            .iter()
            .map(|(id, w)| WaitingWorkflow {
                id: id.clone(),
                module: w.module.name().to_owned(),
                wake_at: w.suspended.wake_at,
                signals: w.suspended.signals.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// The ids due at `now` (nanoseconds since the epoch), and the first
    /// due time after it.
    fn due_at(&self, now: i128) -> (Vec<String>, Option<i128>) {
        let entries = self.lock();
        let mut due = Vec::new();
        let mut next = None;
        for (at, id) in &entries.due {
            if *at > now {
                next = Some(*at);
                break;
            }
            due.push(id.clone());
        }
        (due, next)
    }
}

/// Wakes the workflows of `waiting` as their time comes, and those whose
/// state changed under them, until the host is dropped.
async fn wake_loop(waiting: Arc<Waiting>, host: Weak<HostInner>) {
    let mut next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
    loop {
        let Some(inner) = host.upgrade() else { return };
        let host_now = Host { inner };
        let (due, next) = waiting.due_at(Timestamp::now().as_nanos());
        for id in due {
            host_now.wake_soon(&id);
        }
        if tokio::time::Instant::now() >= next_sweep {
            host_now.sweep_waiting().await;
            next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
        }
        drop(host_now);
        let mut until = next_sweep;
        if let Some(next) = next {
            let wait =
                u64::try_from((next - Timestamp::now().as_nanos()).max(0)).unwrap_or(u64::MAX);
            until = until.min(tokio::time::Instant::now() + Duration::from_nanos(wait));
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = waiting.changed.notified() => {}
        }
    }
}

impl Host {
    /// The workflows suspended on this host (waiting for a signal or a
    /// time, with no instance), by id.
    pub fn waiting(&self) -> Vec<WaitingWorkflow> {
        self.inner.waiting.list()
    }

    /// Wakes `id` (suspended here) on a task of its own, if nobody took it.
    pub(super) fn wake_soon(&self, id: &str) {
        let Some(waiter) = self.inner.waiting.take(id) else {
            return;
        };
        let host = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = host.wake(&id, waiter).await {
                tracing::warn!(workflow_id = %id, "waking the suspended workflow failed: {e}");
            }
        });
    }

    /// Wakes the suspended workflows whose stored version changed since
    /// they suspended: a signal another process appended, say.
    async fn sweep_waiting(&self) {
        // Cancels asked through a handle while the run had no instance.
        for (id, waiter) in self.inner.waiting.remove_where(|w| {
            w.carried
                .as_ref()
                .is_some_and(|c| *c.cancel.borrow() != Stop::Run)
        }) {
            self.cancel_suspended(&id, waiter).await;
        }
        let registered: Vec<(String, Version, Arc<dyn WorkflowStore>)> = {
            let mut entries = self.inner.waiting.lock();
            let after = entries.swept_to.take();
            let batch: Vec<_> = match &after {
                Some(after) => entries
                    .by_id
                    .range::<str, _>((
                        std::ops::Bound::Excluded(after.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take(SWEEP_BATCH)
                    .map(|(id, w)| (id.clone(), w.version, self.store_for(&w.module).clone()))
                    .collect(),
                None => entries
                    .by_id
                    .iter()
                    .take(SWEEP_BATCH)
                    .map(|(id, w)| (id.clone(), w.version, self.store_for(&w.module).clone()))
                    .collect(),
            };
            // Round the set: the next sweep goes on after this batch, or
            // starts again after the last.
            entries.swept_to = match batch.last() {
                Some((last, ..)) if batch.len() == SWEEP_BATCH => Some(last.clone()),
                _ => None,
            };
            batch
        };
        for (id, version, store) in registered {
            self.recheck_waiting(&id, version, &store).await;
        }
    }

    /// Reads `id` (suspended here, registered at `version`) again from
    /// `store`, and wakes it if it was written since with anything but
    /// signals it does not wait for: a signal it waits for, a cancel from
    /// elsewhere, a delete (the wake finds out what).
    pub(super) async fn recheck_waiting(
        &self,
        id: &str,
        version: Version,
        store: &Arc<dyn WorkflowStore>,
    ) {
        match store.load_versioned(id).await {
            Ok(Some(current)) if current.version == version => {}
            // Only signals it does not wait for came: it waits on.
            Ok(Some(current)) if self.waits_on(id, &current.state) => {
                if let Some(waiter) = self.inner.waiting.lock().by_id.get_mut(id)
                    && waiter.version == version
                {
                    waiter.version = current.version;
                }
            }
            Ok(_) => self.wake_soon(id),
            Err(e) => {
                tracing::debug!(workflow_id = %id, "checking a suspended workflow failed: {e}")
            }
        }
    }

    /// Whether `state` (of `id`, suspended here) still waits as registered:
    /// its suspension is the same, and no signal after it wakes it.
    fn waits_on(&self, id: &str, state: &crate::model::WorkflowState) -> bool {
        let entries = self.inner.waiting.lock();
        let Some(waiter) = entries.by_id.get(id) else {
            return true;
        };
        state.suspended().as_ref() == Some(&waiter.suspended)
            && !state
                .signals_since_suspended()
                .any(|name| waiter.suspended.woken_by(name))
    }

    /// Runs `id` again, as the run that suspended as `waiter` says, unless
    /// it ended or another host owns it now.
    pub(super) async fn wake(&self, id: &str, waiter: Waiter) -> Result<(), ExecuteError> {
        let module = waiter.module.clone();
        let store = self.store_for(&module).clone();
        let current = store.load_versioned(id).await?;
        let Some(current) = current else {
            waiter.end(Err(ExecuteError::NotFound(id.to_owned())));
            return Ok(());
        };
        if current.state.status != crate::model::WorkflowStatus::Running || !current.state.is_run()
        {
            waiter.end(Ok(Arc::unwrap_or_clone(current.state)));
            return Ok(());
        }
        if let Some(ownership) = store.ownership()
            && !ownership.owns_partition(ownership.partition_of(id))
        {
            waiter.abandon(id);
            return Ok(());
        }
        self.start_woken(
            &module,
            Arc::unwrap_or_clone(current.state),
            current.version,
            waiter.carried,
        )
        .await
        .map(drop)
    }
}

impl Waiter {
    /// Lets the handles on this run know it was handed over.
    pub(super) fn abandon(self, id: &str) {
        self.end(Err(ExecuteError::Abandoned(id.to_owned())));
    }

    /// Lets the handles on this run (if any) know how it ended.
    pub(super) fn end(&self, outcome: Result<crate::model::WorkflowState, ExecuteError>) {
        if let Some(carried) = &self.carried {
            carried.ended.send_replace(Some(Arc::new(outcome)));
        }
    }
}
