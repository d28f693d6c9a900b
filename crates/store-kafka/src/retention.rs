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

/// Whether `state` is finished and last updated before `cutoff`.
fn expired(state: &WorkflowState, cutoff: i64) -> bool {
    matches!(
        state.status,
        WorkflowStatus::Completed | WorkflowStatus::Failed | WorkflowStatus::Canceled
    ) && state.updated_at != Timestamp::GO_ZERO
        && state.updated_at.seconds < cutoff
}

fn cutoff(period: Duration, now: SystemTime) -> i64 {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(now.saturating_sub(period.as_secs())).unwrap_or(i64::MAX)
}

impl KafkaStore {
    /// The finished workflows past `period` at `now` that this host owns
    /// (all of them outside a group), ascending by id.
    pub fn expired_ids(&self, period: Duration, now: SystemTime) -> Vec<String> {
        let cutoff = cutoff(period, now);
        let mut ids = Vec::new();
        self.for_each_state(|state| {
            if expired(state, cutoff)
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
    /// period (`retention` in [`KafkaConfig`](crate::KafkaConfig)), sweeping
    /// now and then every tenth of the period (at most hourly, at least
    /// every 10 s), on the current tokio runtime, until the store is closed
    /// or dropped. Returns `false` (and does nothing) without a period.
    pub fn start_retention(self: &Arc<Self>) -> bool {
        let Some(period) = self.config.retention else {
            return false;
        };
        if self.retention_started.swap(true, Ordering::AcqRel) {
            return true;
        }
        let store = Arc::downgrade(self);
        let every = (period / 10).clamp(Duration::from_secs(10), Duration::from_secs(3600));
        tokio::spawn(async move {
            while let Some(deleted) = sweep(&store, period).await {
                if deleted > 0 {
                    tracing::info!(
                        deleted,
                        "retention: deleted finished workflows past {period:?}"
                    );
                }
                tokio::time::sleep(every).await;
            }
        });
        true
    }

    /// Deletes `workflow_id` if it is still expired (not saved again since
    /// the sweep listed it).
    async fn delete_expired(&self, workflow_id: &str, cutoff: i64) -> Result<bool, StoreError> {
        const OP: &str = "kafka/retention";
        self.check_open(OP)?;
        let _serial = self.key_locks.lock(workflow_id).await;
        // Fenced: in a group, only the partition's owner deletes.
        let _write = self.begin_write(OP, workflow_id, true)?;
        let still = self
            .read_cache()
            .get(workflow_id)
            .is_some_and(|state| expired(&state, cutoff));
        if !still {
            return Ok(false);
        }
        let (partition, offset) = self
            .write(workflow_id, None, "kafka/retention: write tombstone")
            .await?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply_ack(workflow_id, None, &[], partition, offset);
        ::metrics::counter!(wf_host::metrics::RETENTION_DELETED).increment(1);
        Ok(true)
    }
}

/// One sweep: lists what expired and deletes it, paced. `None` once the
/// store is gone or closed.
async fn sweep(store: &Weak<KafkaStore>, period: Duration) -> Option<u64> {
    let cutoff = cutoff(period, SystemTime::now());
    let ids = {
        let store = store.upgrade()?;
        if store.closed.load(Ordering::Acquire) {
            return None;
        }
        // A scan of every state: off the async workers.
        let ids = tokio::task::spawn_blocking(move || store.expired_ids(period, SystemTime::now()))
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
            let result = store.delete_expired(&id, cutoff).await;
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
        let mut state = WorkflowState {
            workflow_id: "a".into(),
            run_id: "r".into(),
            status: WorkflowStatus::Running,
            input: None,
            result: None,
            error: String::new(),
            history: Vec::new(),
            created_at: Timestamp::GO_ZERO,
            updated_at: Timestamp {
                seconds: 1_000,
                nanoseconds: 0,
            },
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
    }
}
