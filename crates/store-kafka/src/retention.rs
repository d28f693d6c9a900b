//! Retention of finished workflows: the owner of a partition deletes
//! (tombstones) the workflows of it that are completed, failed or canceled
//! and were last updated longer ago than the retention period.
//!
//! A sweep lists what has expired, then deletes it at a bounded rate with a
//! few deletes in flight, so that workflow traffic keeps the producer. Each
//! delete is conditional on the version the sweep saw, under the id's write
//! lock: a workflow saved again since is kept. A state whose `UpdatedAt` is
//! Go's zero time has no known age and is never deleted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wf_host::model::{Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::StoreError;

use crate::KafkaStore;

/// Deletes in flight at once.
const IN_FLIGHT: usize = 8;

/// A retention period as written in a configuration: a whole number with a
/// unit, `30d`, `12h`, `90m` or `45s`.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("retention {text:?} has no unit: write 30d, 12h, 90m or 45s"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("retention {text:?} does not start with a whole number"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(format!(
                "retention {text:?} has unit {unit:?}: use d, h, m or s"
            ));
        }
    };
    let period = number
        .checked_mul(seconds)
        .filter(|&s| s > 0 && s <= 100 * 366 * 86_400)
        .ok_or_else(|| format!("retention {text:?} must be more than 0 and at most 100 years"))?;
    Ok(Duration::from_secs(period))
}

/// `period` as [`parse_period`] reads it: `30d`, `12h`, `90m` or `45s`.
pub fn format_period(period: Duration) -> String {
    let secs = period.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The retention periods of a store: the topic's, and per module.
#[derive(Debug, Clone, Default)]
pub(crate) struct Periods {
    topic: Option<Duration>,
    by_module: std::collections::BTreeMap<String, Duration>,
}

impl Periods {
    pub fn of(config: &crate::KafkaConfig) -> Self {
        Self {
            topic: config.retention,
            by_module: config.retention_by_module.clone(),
        }
    }

    /// Whether any state can expire.
    pub fn any(&self) -> bool {
        self.topic.is_some() || !self.by_module.is_empty()
    }

    /// The shortest period: sweeps run every tenth of it.
    fn shortest(&self) -> Option<Duration> {
        self.topic
            .into_iter()
            .chain(self.by_module.values().copied())
            .min()
    }

    /// The period of `state`: its module's when it is a run of a module
    /// listed, else the topic's.
    fn of_state(&self, state: &WorkflowState) -> Option<Duration> {
        if !self.by_module.is_empty()
            && let Some(module) = state.run_module()
            && let Some(period) = self.by_module.get(&module.name)
        {
            return Some(*period);
        }
        self.topic
    }

    /// Whether `state` is finished and was last updated more than its
    /// period before `now` (seconds since the Unix epoch).
    fn expired(&self, state: &WorkflowState, now: u64) -> bool {
        matches!(
            state.status,
            WorkflowStatus::Completed | WorkflowStatus::Failed | WorkflowStatus::Canceled
        ) && state.updated_at != Timestamp::GO_ZERO
            && self.of_state(state).is_some_and(|period| {
                let cutoff = now.saturating_sub(period.as_secs());
                state.updated_at.seconds < i64::try_from(cutoff).unwrap_or(i64::MAX)
            })
    }
}

fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl KafkaStore {
    /// The finished workflows past their retention period (the topic's or
    /// their module's) at `now` that this host owns (all of them outside a
    /// group), ascending by id.
    pub fn expired_ids(&self, now: SystemTime) -> Vec<String> {
        let (periods, now) = (Periods::of(&self.config), unix_seconds(now));
        let mut ids = Vec::new();
        if !periods.any() {
            return ids;
        }
        self.for_each_state(|state| {
            if periods.expired(state, now)
                && self
                    .ownership
                    .as_ref()
                    .is_none_or(|o| o.owns(&state.workflow_id))
            {
                ids.push(state.workflow_id.clone());
            }
        });
        ids
    }

    /// Starts deleting finished workflows past the configured retention
    /// periods (`retention` and `retention_by_module` in
    /// [`KafkaConfig`](crate::KafkaConfig)), sweeping now and then every
    /// tenth of the shortest period (at most hourly, at least every 10 s),
    /// on the current tokio runtime, until the store is closed or dropped.
    /// Returns `false` (and does nothing) without a period.
    pub fn start_retention(self: &Arc<Self>) -> bool {
        let Some(period) = Periods::of(&self.config).shortest() else {
            return false;
        };
        if self.retention_started.swap(true, Ordering::AcqRel) {
            return true;
        }
        let store = Arc::downgrade(self);
        let every = (period / 10).clamp(Duration::from_secs(10), Duration::from_secs(3600));
        tokio::spawn(async move {
            while let Some(deleted) = sweep(&store).await {
                if deleted > 0 {
                    tracing::info!(
                        deleted,
                        "retention: deleted finished workflows past their period"
                    );
                }
                tokio::time::sleep(every).await;
            }
        });
        true
    }

    /// Deletes `workflow_id` if it is still expired (not saved again since
    /// the sweep listed it).
    async fn delete_expired(&self, workflow_id: &str, now: u64) -> Result<bool, StoreError> {
        const OP: &str = "kafka/retention";
        self.check_open(OP)?;
        let _serial = self.key_locks.lock(workflow_id).await;
        // Fenced: in a group, only the partition's owner deletes.
        let _write = self.begin_write(OP, workflow_id, true)?;
        let periods = Periods::of(&self.config);
        let still = self
            .read_cache()
            .get(workflow_id)
            .is_some_and(|state| periods.expired(&state, now));
        if !still {
            return Ok(false);
        }
        let written = self
            .write(workflow_id, None, "kafka/retention: write tombstone")
            .await?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply_ack(workflow_id, None, &[], written.partition, written.offset);
        drop(written);
        ::metrics::counter!(wf_host::metrics::RETENTION_DELETED).increment(1);
        Ok(true)
    }
}

/// One sweep: lists what expired and deletes it, paced. `None` once the
/// store is gone or closed.
async fn sweep(store: &Weak<KafkaStore>) -> Option<u64> {
    let now = unix_seconds(SystemTime::now());
    let ids = {
        let store = store.upgrade()?;
        if store.closed.load(Ordering::Acquire) {
            return None;
        }
        // A scan of every state: off the async workers.
        let ids = tokio::task::spawn_blocking(move || store.expired_ids(SystemTime::now()))
            .await
            .ok()?;
        ::metrics::gauge!(wf_host::metrics::RETENTION_EXPIRED).set(ids.len() as f64);
        ids
    };
    let rate = store.upgrade()?.config.retention_rate.max(1);
    let started = tokio::time::Instant::now();
    let mut deleted = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for (n, id) in ids.into_iter().enumerate() {
        // At most `rate` a second, counted from the sweep's start.
        let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
        while tasks.len() >= IN_FLIGHT {
            if let Some(Ok(Ok(true))) = tasks.join_next().await {
                deleted += 1;
            }
        }
        let store = store.upgrade()?;
        if store.closed.load(Ordering::Acquire) {
            return None;
        }
        tasks.spawn(async move {
            let result = store.delete_expired(&id, now).await;
            if let Err(e) = &result {
                tracing::debug!(id, "retention: not deleted: {e}");
            }
            result
        });
    }
    while let Some(result) = tasks.join_next().await {
        if let Ok(Ok(true)) = result {
            deleted += 1;
        }
    }
    Some(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_with_their_unit_and_bounds() {
        assert_eq!(parse_period("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_period("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_period(" 90m "), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_period("45s"), Ok(Duration::from_secs(45)));
        for text in ["30d", "12h", "90m", "45s"] {
            assert_eq!(format_period(parse_period(text).unwrap()), text);
        }
        for bad in [
            "",
            "30",
            "d",
            "0d",
            "-1d",
            "1.5d",
            "30 d",
            "30w",
            "99999999999999999d",
        ] {
            assert!(parse_period(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_finished_workflows_with_a_known_old_update_expire() {
        let periods = Periods {
            topic: Some(Duration::from_secs(1_000)),
            by_module: Default::default(),
        };
        let expired = |state: &WorkflowState, cutoff: u64| periods.expired(state, cutoff + 1_000);
        let mut state = WorkflowState::new("a", "r", WorkflowStatus::Running);
        state.updated_at = Timestamp {
            seconds: 1_000,
            nanoseconds: 0,
        };
        assert!(!expired(&state, 2_000), "running");
        for status in [
            WorkflowStatus::Completed,
            WorkflowStatus::Failed,
            WorkflowStatus::Canceled,
        ] {
            state.status = status;
            assert!(expired(&state, 2_000));
            assert!(!expired(&state, 1_000), "updated at the cutoff");
        }
        state.updated_at = Timestamp::GO_ZERO;
        assert!(!expired(&state, 2_000), "no known age");

        // A run of a module listed takes its module's period; another
        // module's run, and a plain record, the topic's.
        let periods = Periods {
            topic: None,
            by_module: [("orders.wasm".to_owned(), Duration::from_secs(100))].into(),
        };
        state.status = WorkflowStatus::Completed;
        state.updated_at.seconds = 10_000;
        assert!(!periods.expired(&state, 1_000_000), "a record: no period");
        let digest = "ab".repeat(32);
        for (module, expires) in [("orders.wasm", true), ("other.wasm", false)] {
            let identity = wf_host::model::ModuleIdentity::new(module, digest.as_str());
            state.history = vec![identity.started_event(1, Timestamp::GO_ZERO)];
            assert_eq!(periods.expired(&state, 10_101), expires, "{module}");
            assert!(!periods.expired(&state, 10_100), "{module}: at the cutoff");
        }
    }
}
