//! The metrics wf records, through the `metrics` facade: nothing is kept
//! until the program installs a recorder (`wfhost serve` installs a
//! Prometheus one and serves it at `/metrics`; an embedder installs its
//! own). Counters and histograms are recorded as things happen; the gauges
//! of what a host holds now (runs, suspended workflows, the cache, lag,
//! partitions) are set by [`Host::record_metrics`](crate::Host::record_metrics)
//! and [`WorkflowStore::record_metrics`](crate::store::WorkflowStore::record_metrics),
//! which a scrape calls first.

/// What kind of metric one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Only grows.
    Counter,
    /// A value now.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// One metric wf records.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it counts or measures.
    pub help: &'static str,
}

macro_rules! metrics_table {
    ($($constant:ident = $name:literal, $kind:ident, [$($label:literal),*], $help:literal;)+) => {
        $(
            #[doc = $help]
            pub const $constant: &str = $name;
        )+
        /// Every metric wf records, as the README lists them.
        pub const ALL: &[Metric] = &[$(Metric {
            name: $name,
            kind: Kind::$kind,
            labels: &[$($label),*],
            help: $help,
        }),+];
    };
}

metrics_table! {
    WORKFLOWS_STARTED = "wf_workflows_started_total", Counter, ["module", "begin"],
        "Runs begun: `begin` is `new` for a start, `resumed` for a run taken up again after a crash or hand-over.";
    WORKFLOWS_ENDED = "wf_workflows_ended_total", Counter, ["module", "status"],
        "Runs ended, by final status: completed, failed or canceled.";
    WORKFLOWS_RUNNING = "wf_workflows_running", Gauge, ["module"],
        "Runs with an instance on this host now.";
    WORKFLOWS_SUSPENDED = "wf_workflows_suspended", Gauge, ["module"],
        "Runs suspended on this host now, waiting for a signal or a time.";
    GUEST_FUEL = "wf_guest_fuel_consumed", Histogram, ["module"],
        "Fuel (about one unit per wasm instruction) one instance of a run used.";
    GUEST_MEMORY = "wf_guest_memory_peak_bytes", Histogram, ["module"],
        "The most linear memory one instance of a run grew to, in bytes.";
    GUEST_MEMORY_HIGH_WATER = "wf_guest_memory_high_water_bytes", Gauge, ["module"],
        "The most linear memory any instance of the module grew to since the host started, in bytes.";
    STORE_CALL_SECONDS = "wf_store_call_seconds", Histogram, ["op", "backend"],
        "Time of acknowledged store writes (`op` save or delete), from the call to the acknowledgement.";
    STORE_ERRORS = "wf_store_errors_total", Counter, ["op", "kind"],
        "Store calls that failed, by operation and the WIT store-error case.";
    CACHE_ENTRIES = "wf_cache_entries", Gauge, [],
        "Workflow states in this host's cache.";
    CACHE_BYTES = "wf_cache_bytes", Gauge, [],
        "About how much memory the cached states take, in bytes.";
    TAIL_LAG = "wf_tail_lag_records", Gauge, ["partition"],
        "Records of a partition the cache has not applied yet, as of the tail's last fetch.";
    REPLAY_SECONDS = "wf_replay_seconds", Gauge, [],
        "How long the replay of the topic at open took, in seconds.";
    REPLAY_RECORDS = "wf_replay_records", Gauge, [],
        "Records the replay at open read.";
    REBALANCES = "wf_rebalances_total", Counter, ["change"],
        "Partition changes of this host in its group: `assigned` or `revoked`.";
    OWNED_PARTITIONS = "wf_owned_partitions", Gauge, [],
        "Partitions this host owns in its group (all of them outside a group).";
    RETENTION_DELETED = "wf_retention_deleted_total", Counter, [],
        "Finished workflows this host deleted because they were past the retention period.";
    RETENTION_EXPIRED = "wf_retention_expired", Gauge, [],
        "Finished workflows past the retention period that this host owns and has yet to delete, as of its last sweep.";
}

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => ::metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => ::metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => ::metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_once_with_wf_prefix_and_help() {
        let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for metric in ALL {
            assert!(metric.name.starts_with("wf_"), "{}", metric.name);
            assert!(!metric.help.is_empty());
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}",
                metric.name
            );
        }
    }
}
