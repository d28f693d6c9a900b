//! Which workflows a host owns when several hosts share one store.
//!
//! The store is split into partitions, and a group protocol assigns each
//! partition to one host (Kafka: the consumer-group protocol, on the
//! partitions of the workflow topic). A host owns the workflows whose ids
//! the store's [`Placement`] puts in the partitions assigned to it, so
//! ownership and placement agree. [`Ownership`] is the host's view of that
//! assignment: the runtime asks it before running a workflow and follows its
//! changes to recover gained partitions; the backend that runs the group
//! protocol feeds it ([`Ownership::grant`], [`Ownership::revoke`]) and
//! consults it to fence conditional saves ([`Ownership::begin_write`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The partition a workflow id is placed in (Kafka: the producer's partitioner).
pub type Placement = Box<dyn Fn(&str) -> i32 + Send + Sync>;

/// Finds the name of the host owning a partition (blocking; may ask the broker).
pub type OwnerLookup = Box<dyn Fn(i32) -> Option<String> + Send + Sync>;

/// One change of the partitions a host owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Assignment {
    /// Counts the changes since the host started; 0 before the first.
    pub generation: u64,
    /// Every partition owned now, ascending.
    pub owned: Vec<i32>,
    /// Partitions owned since this change (their records are in the cache:
    /// the host caught up to their end before taking them).
    pub gained: Vec<i32>,
    /// Partitions given up by this change.
    pub lost: Vec<i32>,
}

/// A request for a workflow this host does not own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error(
    "workflow {workflow_id:?} belongs to partition {partition} of group {group}, owned by {}, not by this host ({member})",
    owner.as_deref().unwrap_or("another host (its name is not known yet)")
)]
pub struct NotOwner {
    /// The workflow asked for.
    pub workflow_id: String,
    /// Its partition.
    pub partition: i32,
    /// The name the owning host announced, when known (Kafka: its
    /// `member_name`).
    pub owner: Option<String>,
    /// The consumer group.
    pub group: String,
    /// This host's name.
    pub member: String,
}

/// A host's share of the workflows of a store shared by a group of hosts.
pub struct Ownership {
    group: String,
    member: String,
    partitions: i32,
    placement: Placement,
    state: Mutex<OwnedState>,
    /// Signalled whenever a write of an owned partition ends.
    writes_done: Condvar,
    changes: watch::Sender<Assignment>,
    owner_lookup: OwnerLookup,
}

#[derive(Debug, Default)]
struct OwnedState {
    owned: BTreeSet<i32>,
    /// Writes under way per partition, so a revocation can wait for them.
    in_flight: BTreeMap<i32, usize>,
    generation: u64,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("group", &self.group)
            .field("member", &self.member)
            .field("partitions", &self.partitions)
            .field("owned", &self.owned_partitions())
            .finish()
    }
}

impl Ownership {
    /// The view of host `member` in group `group` of a store with
    /// `partitions` partitions, owning none yet. `placement` places ids in
    /// partitions; `owner_lookup` names the owner of a partition this host
    /// does not own.
    pub fn new(
        group: String,
        member: String,
        partitions: i32,
        placement: Placement,
        owner_lookup: OwnerLookup,
    ) -> Self {
        Self {
            group,
            member,
            partitions: partitions.max(1),
            placement,
            state: Mutex::default(),
            writes_done: Condvar::new(),
            changes: watch::Sender::new(Assignment::default()),
            owner_lookup,
        }
    }

    /// The consumer group's id.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This host's name in the group.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The store's partition count.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The partition `workflow_id` is placed in (the store's [`Placement`]).
    pub fn partition_of(&self, workflow_id: &str) -> i32 {
        (self.placement)(workflow_id)
    }

    /// Whether this host owns `workflow_id` now.
    pub fn owns(&self, workflow_id: &str) -> bool {
        self.owns_partition(self.partition_of(workflow_id))
    }

    /// Whether this host owns `partition` now.
    pub fn owns_partition(&self, partition: i32) -> bool {
        self.lock().owned.contains(&partition)
    }

    /// The partitions this host owns now, ascending.
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.lock().owned.iter().copied().collect()
    }

    /// The latest change; [`Ownership::subscribe`] to follow them.
    pub fn current(&self) -> Assignment {
        self.changes.borrow().clone()
    }

    /// Follows the changes of this host's partitions.
    pub fn subscribe(&self) -> watch::Receiver<Assignment> {
        self.changes.subscribe()
    }

    /// The name the owner of `workflow_id` announced, when another host owns
    /// it and its name is known (asking the broker); `None` when this host
    /// owns it or the owner is not known yet.
    pub async fn owner(self: &Arc<Self>, workflow_id: &str) -> Option<String> {
        match self.check(workflow_id).await {
            Ok(()) => None,
            Err(not_owner) => not_owner.owner,
        }
    }

    /// `Ok` when this host owns `workflow_id`, else who does (asking the
    /// broker for the owner's name).
    pub async fn check(self: &Arc<Self>, workflow_id: &str) -> Result<(), NotOwner> {
        let partition = self.partition_of(workflow_id);
        if self.owns_partition(partition) {
            return Ok(());
        }
        let owner = self.owner_of_partition(partition).await;
        Err(self.not_owner(workflow_id, partition, owner))
    }

    /// The name the owner of `partition` announced, when another host owns
    /// it and its name is known (asking the broker).
    pub async fn owner_of_partition(self: &Arc<Self>, partition: i32) -> Option<String> {
        if self.owns_partition(partition) {
            return None;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || (this.owner_lookup)(partition))
            .await
            .ok()
            .flatten()
            .filter(|owner| *owner != self.member)
    }

    fn not_owner(&self, workflow_id: &str, partition: i32, owner: Option<String>) -> NotOwner {
        NotOwner {
            workflow_id: workflow_id.to_owned(),
            partition,
            owner,
            group: self.group.clone(),
            member: self.member.clone(),
        }
    }

    /// Registers a write to `partition` until the guard drops (the backend
    /// calls it around each write). A conditional write (`fenced`) is
    /// refused unless this host owns the partition; the check and the
    /// registration are one step, so a revocation either sees the write and
    /// waits for it, or the write sees the revocation.
    pub fn begin_write(
        self: &Arc<Self>,
        workflow_id: &str,
        partition: i32,
        fenced: bool,
    ) -> Result<WriteGuard, NotOwner> {
        let mut state = self.lock();
        if fenced && !state.owned.contains(&partition) {
            drop(state);
            return Err(self.not_owner(workflow_id, partition, None));
        }
        *state.in_flight.entry(partition).or_default() += 1;
        Ok(WriteGuard {
            ownership: self.clone(),
            partition,
        })
    }

    /// Gives up `partitions` (the backend calls it when the group takes them
    /// away): conditional writes to them are refused from now on, and this
    /// waits (up to `timeout`) for the writes under way to end, so that the
    /// next owner, which catches up to the partitions' end before taking
    /// them, sees every write this host made. Blocking.
    pub fn revoke(&self, partitions: &[i32], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let lost: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| state.owned.remove(p))
            .collect();
        while partitions
            .iter()
            .any(|p| state.in_flight.get(p).is_some_and(|n| *n > 0))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(group = %self.group, ?partitions, "writes still under way when giving up partitions; the next owner may see them late");
                break;
            }
            state = self
                .writes_done
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if !lost.is_empty() {
            state.generation += 1;
            self.publish(&state, Vec::new(), lost);
        }
    }

    /// Takes `partitions` (the backend calls it once their records are in
    /// its cache) and tells the subscribers.
    pub fn grant(&self, partitions: &[i32]) {
        let mut state = self.lock();
        let gained: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| state.owned.insert(*p))
            .collect();
        if gained.is_empty() && state.generation > 0 {
            return;
        }
        state.generation += 1;
        self.publish(&state, gained, Vec::new());
    }

    fn publish(&self, state: &OwnedState, gained: Vec<i32>, lost: Vec<i32>) {
        tracing::info!(group = %self.group, member = %self.member, owned = ?state.owned, ?gained, ?lost, "partition ownership changed");
        self.changes.send_replace(Assignment {
            generation: state.generation,
            owned: state.owned.iter().copied().collect(),
            gained,
            lost,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OwnedState> {
        // Every update is a few set operations; a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A write under way to a partition; see [`Ownership::begin_write`].
#[derive(Debug)]
pub struct WriteGuard {
    ownership: Arc<Ownership>,
    partition: i32,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut state = self.ownership.lock();
        if let Some(n) = state.in_flight.get_mut(&self.partition) {
            *n = n.saturating_sub(1);
        }
        drop(state);
        self.ownership.writes_done.notify_all();
    }
}
