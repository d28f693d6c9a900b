//! Suspended workflows: what each waits for, kept in memory as a due time
//! and signal names only, and the task that wakes them when the time is
//! due or their state changed (a signal another process appended).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::admit::Carried;
use super::{Ended, ExecuteError, Host, HostInner, Stop};
use crate::model::{Suspended, Timestamp};
use crate::runtime::Module;
use crate::store::{Ownership, Version};

/// How often the waiting task re-reads the versions of suspended
/// workflows, to wake those a signal from another process reached.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A suspended workflow of this host.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) module: Module,
    pub(super) suspended: Suspended,
    /// The version of the state that says it is suspended.
    pub(super) version: Version,
    /// The channels of the handles on its run.
    pub(super) carried: Carried,
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
    by_id: HashMap<String, Waiter>,
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

    /// A receiver of the end of `id`'s run, if it is suspended here.
    pub(super) fn ended_of(&self, id: &str) -> Option<watch::Receiver<Option<Ended>>> {
        self.lock()
            .by_id
            .get(id)
            .map(|w| w.carried.ended.subscribe())
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
        for (id, waiter) in self
            .inner
            .waiting
            .remove_where(|w| *w.carried.cancel.borrow() != Stop::Run)
        {
            self.cancel_suspended(&id, waiter).await;
        }
        let registered: Vec<(String, Version, Module)> = {
            let entries = self.inner.waiting.lock();
            entries
                .by_id
                .iter()
                .map(|(id, w)| (id.clone(), w.version, w.module.clone()))
                .collect()
        };
        for (id, version, module) in registered {
            let store = self.store_for(&module);
            match store.load_versioned(&id).await {
                Ok(Some(current)) if current.version == version => {}
                // Written (a signal, a cancel from elsewhere) or deleted:
                // the wake finds out what.
                Ok(_) => self.wake_soon(&id),
                Err(e) => {
                    tracing::debug!(workflow_id = %id, "checking a suspended workflow failed: {e}")
                }
            }
        }
    }

    /// Runs `id` again, as the run that suspended as `waiter` says, unless
    /// it ended or another host owns it now.
    pub(super) async fn wake(&self, id: &str, waiter: Waiter) -> Result<(), ExecuteError> {
        let module = waiter.module.clone();
        let store = self.store_for(&module).clone();
        let current = store.load_versioned(id).await?;
        let Some(current) = current else {
            waiter
                .carried
                .ended
                .send_replace(Some(Arc::new(Err(ExecuteError::NotFound(id.to_owned())))));
            return Ok(());
        };
        if current.state.status != crate::model::WorkflowStatus::Running || !current.state.is_run()
        {
            waiter
                .carried
                .ended
                .send_replace(Some(Arc::new(Ok(Arc::unwrap_or_clone(current.state)))));
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
        self.carried
            .ended
            .send_replace(Some(Arc::new(Err(ExecuteError::Abandoned(id.to_owned())))));
    }
}
