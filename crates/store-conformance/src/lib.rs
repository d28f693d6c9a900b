//! The store conformance suite: the semantics of `wit/store.wit`, written once
//! and run against every backend with [`conformance_suite!`]. A backend crate
//! runs it from a test of its own:
//!
//! ```
//! use std::sync::Arc;
//! use wf_host::store::{MemoryStore, WorkflowStore};
//!
//! wf_store_conformance::conformance_suite!(memory, async {
//!     (Arc::new(MemoryStore::new()) as Arc<dyn WorkflowStore>, ())
//! });
//! # fn main() {}
//! ```
//!
//! Each case takes a freshly opened, empty store.
#![deny(missing_docs)]

#[doc(hidden)]
pub use tokio as __tokio;

use std::sync::Arc;

use wf_host::model::{EventType, HistoryEvent, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, StoreError, Version, WorkflowStore};

/// Generates one `#[tokio::test]` per case in a module named `$backend`,
/// each on a store returned by the async expression `$open` as
/// `(store, guard)`; the guard (a broker, say) lives until the case ends.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            #[allow(unused_imports, reason = "the opening expression may use the test file's imports")]
            use super::*;
            $crate::conformance_suite!(@cases $open;
                save_then_load_round_trips_every_field,
                load_of_an_absent_id_is_none,
                save_replaces_the_previous_state,
                delete_removes_and_deleting_an_absent_id_succeeds,
                list_is_ascending_filtered_and_paged,
                list_defaults_and_clamps_the_page_size,
                list_rejects_a_zero_limit,
                empty_id_is_rejected_with_the_provider_text,
                id_length_limit_is_1024_bytes,
                ids_with_control_characters_are_rejected,
                invalid_json_fields_are_rejected,
                oversized_values_are_rejected,
                out_of_range_timestamps_are_rejected,
                a_failed_save_keeps_the_previous_state,
                reads_and_deletes_validate_the_id,
                go_zero_time_round_trips,
                json_fields_read_back_as_the_wire_gives_them,
                concurrent_saves_of_distinct_ids_are_all_kept,
                close_is_idempotent_and_refuses_later_calls,
                conditional_saves_write_only_over_the_expected_version,
                of_concurrent_saves_expecting_one_version_exactly_one_wins,
            );
        }
    };
    (@cases $open:expr; $($case:ident),+ $(,)?) => {
        $(
            #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard): (std::sync::Arc<dyn wf_host::store::WorkflowStore>, _) =
                    $open.await;
                $crate::$case(store.clone()).await;
                let _ = store.close().await;
            }
        )+
    };
}

type Store = Arc<dyn WorkflowStore>;

/// A filter with every field given.
fn filter(status: Option<WorkflowStatus>, limit: Option<u32>, after: Option<String>) -> ListFilter {
    let mut filter = ListFilter::default();
    filter.status = status;
    filter.limit = limit;
    filter.after = after;
    filter
}

fn at(seconds: i64, nanoseconds: u32) -> Timestamp {
    Timestamp {
        seconds,
        nanoseconds,
    }
}

/// A state with every field set.
pub fn full_state(id: &str) -> WorkflowState {
    let mut started = HistoryEvent::new(1, EventType::WorkflowStarted, at(1_700_000_000, 1));
    started.input = Some(r#"{"order":7}"#.into());
    let mut activity = HistoryEvent::new(
        2,
        EventType::ActivityCompleted,
        at(1_700_000_001, 500_000_000),
    );
    activity.activity_name = "charge <card> & \"ship\"".into();
    activity.result = Some(r#"["ok",1.5,null,{"k":"é\n"}]"#.into());
    activity.duration_ns = 1_234_567_890;
    let mut signal = HistoryEvent::new(3, EventType::SignalReceived, at(1_700_000_002, 0));
    signal.signal_name = "approve".into();
    signal.signal_payload = Some("true".into());
    signal.error = "late\tby 2s".into();
    WorkflowState {
        workflow_id: id.into(),
        run_id: "run-1".into(),
        status: WorkflowStatus::Running,
        input: Some(r#"{"order":7,"items":["a","b"]}"#.into()),
        result: Some("\"half done\"".into()),
        error: "retrying: <timeout>".into(),
        history: vec![started, activity, signal],
        created_at: at(1_700_000_000, 0),
        updated_at: at(1_700_000_002, 999_999_999),
    }
}

/// A small state with `status`.
pub fn state(id: &str, status: WorkflowStatus) -> WorkflowState {
    WorkflowState {
        workflow_id: id.into(),
        run_id: format!("run-{id}"),
        status,
        input: Some("1".into()),
        result: None,
        error: String::new(),
        history: Vec::new(),
        created_at: at(1_700_000_000, 0),
        updated_at: at(1_700_000_000, 0),
    }
}

async fn ids(store: &Store, filter: ListFilter) -> Vec<String> {
    store
        .list(&filter)
        .await
        .expect("list")
        .iter()
        .map(|s| s.workflow_id.clone())
        .collect()
}

async fn assert_nothing_stored(store: &Store) {
    assert_eq!(
        ids(store, ListFilter::default()).await,
        Vec::<String>::new(),
        "nothing may be written"
    );
}

fn assert_invalid(result: Result<(), StoreError>, needle: &str) {
    match result {
        Err(StoreError::InvalidArgument(message)) => {
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            )
        }
        other => panic!("expected invalid-argument mentioning {needle:?}, got {other:?}"),
    }
}

/// Save then load round trips every field.
pub async fn save_then_load_round_trips_every_field(store: Store) {
    let saved = full_state("wf-1");
    store.save(saved.clone()).await.expect("save");
    let loaded = store.load("wf-1").await.expect("load").expect("present");
    assert_eq!(*loaded, saved);
}

/// Load of an absent id is none.
pub async fn load_of_an_absent_id_is_none(store: Store) {
    assert!(store.load("missing").await.expect("load").is_none());
}

/// Save replaces the previous state.
pub async fn save_replaces_the_previous_state(store: Store) {
    store
        .save(state("wf-1", WorkflowStatus::Running))
        .await
        .expect("save 1");
    let mut second = state("wf-1", WorkflowStatus::Completed);
    second.result = Some("\"done\"".into());
    store.save(second.clone()).await.expect("save 2");
    assert_eq!(*store.load("wf-1").await.unwrap().unwrap(), second);
    assert_eq!(ids(&store, ListFilter::default()).await, ["wf-1"]);
}

/// Delete removes and deleting an absent id succeeds.
pub async fn delete_removes_and_deleting_an_absent_id_succeeds(store: Store) {
    store
        .save(state("a", WorkflowStatus::Running))
        .await
        .unwrap();
    store
        .save(state("b", WorkflowStatus::Running))
        .await
        .unwrap();
    store.delete("a").await.expect("delete");
    assert!(store.load("a").await.unwrap().is_none());
    assert_eq!(ids(&store, ListFilter::default()).await, ["b"]);
    store.delete("a").await.expect("deleting again succeeds");
    store
        .delete("never-was")
        .await
        .expect("deleting an absent id succeeds");
    assert_eq!(ids(&store, ListFilter::default()).await, ["b"]);
}

/// List is ascending filtered and paged.
pub async fn list_is_ascending_filtered_and_paged(store: Store) {
    use WorkflowStatus::*;
    let saved = [
        ("c", Completed),
        ("a", Running),
        ("e", Failed),
        ("b", Completed),
        ("d", Completed),
        ("f", Canceled),
    ];
    for (id, status) in saved {
        store.save(state(id, status)).await.unwrap();
    }
    assert_eq!(
        ids(&store, ListFilter::default()).await,
        ["a", "b", "c", "d", "e", "f"]
    );
    let completed =
        |limit, after: Option<&str>| filter(Some(Completed), limit, after.map(String::from));
    assert_eq!(ids(&store, completed(None, None)).await, ["b", "c", "d"]);
    assert_eq!(ids(&store, completed(Some(2), None)).await, ["b", "c"]);
    assert_eq!(ids(&store, completed(Some(2), Some("c"))).await, ["d"]);
    assert_eq!(ids(&store, completed(None, Some("bb"))).await, ["c", "d"]);
    let only = |status| ListFilter::default().status(status);
    assert_eq!(ids(&store, only(Failed)).await, ["e"]);
    assert_eq!(ids(&store, only(Canceled)).await, ["f"]);
    assert_eq!(ids(&store, only(Running)).await, ["a"]);

    // Paging with the cursor visits every state exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ids(&store, filter(None, Some(4), after.clone())).await;
        assert!(page.len() <= 4);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e", "f"]);
}

/// List defaults and clamps the page size.
pub async fn list_defaults_and_clamps_the_page_size(store: Store) {
    for i in 0..1001 {
        store
            .save(state(&format!("wf-{i:04}"), WorkflowStatus::Completed))
            .await
            .expect("save");
    }
    assert_eq!(
        ids(&store, ListFilter::default()).await.len(),
        100,
        "default page"
    );
    let clamped = ids(&store, ListFilter::default().limit(5000)).await;
    assert_eq!(clamped.len(), 1000, "clamped page");
    assert_eq!(clamped.first().map(String::as_str), Some("wf-0000"));
    let rest = ids(&store, filter(None, Some(1000), clamped.last().cloned())).await;
    assert_eq!(rest, ["wf-1000"]);
}

/// List rejects a zero limit.
pub async fn list_rejects_a_zero_limit(store: Store) {
    let result = store.list(&ListFilter::default().limit(0)).await;
    assert!(
        matches!(result, Err(StoreError::InvalidArgument(ref m)) if m.contains("limit")),
        "{result:?}"
    );
}

/// Empty id is rejected with the provider text.
pub async fn empty_id_is_rejected_with_the_provider_text(store: Store) {
    assert_invalid(
        store.save(state("", WorkflowStatus::Running)).await,
        "save: workflow ID is required",
    );
    assert_nothing_stored(&store).await;
}

/// Id length limit is 1024 bytes.
pub async fn id_length_limit_is_1024_bytes(store: Store) {
    let longest = "é".repeat(512);
    assert_eq!(longest.len(), 1024);
    store
        .save(state(&longest, WorkflowStatus::Running))
        .await
        .expect("1024 bytes is allowed");
    let too_long = format!("{longest}x");
    assert_invalid(
        store.save(state(&too_long, WorkflowStatus::Running)).await,
        "1025 bytes",
    );
    assert_eq!(ids(&store, ListFilter::default()).await, [longest]);
}

/// Ids with control characters are rejected.
pub async fn ids_with_control_characters_are_rejected(store: Store) {
    for id in [
        "a\0b",
        "line\nbreak",
        "tab\t",
        "del\u{7f}",
        "c1\u{85}",
        "\u{1b}[31m",
    ] {
        assert_invalid(
            store.save(state(id, WorkflowStatus::Running)).await,
            "control character",
        );
    }
    assert_nothing_stored(&store).await;
}

/// Invalid json fields are rejected.
pub async fn invalid_json_fields_are_rejected(store: Store) {
    type Corrupt = fn(&mut WorkflowState);
    let cases: [(&str, Corrupt); 6] = [
        ("Input", |s| s.input = Some("{not json".into())),
        ("Result", |s| s.result = Some("".into())),
        ("Input", |s| s.input = Some("1 2".into())),
        ("Input", |s| {
            s.input = Some(format!("{}{}", "[".repeat(10_001), "]".repeat(10_001)))
        }),
        ("History[1].Result", |s| {
            s.history[1].result = Some("'single'".into())
        }),
        ("History[2].SignalPayload", |s| {
            s.history[2].signal_payload = Some("tru".into())
        }),
    ];
    for (field, corrupt) in cases {
        let mut bad = full_state("wf-json");
        corrupt(&mut bad);
        assert_invalid(store.save(bad).await, field);
    }
    assert_nothing_stored(&store).await;
}

/// Oversized values are rejected.
pub async fn oversized_values_are_rejected(store: Store) {
    let mut big = state("wf-big", WorkflowStatus::Running);
    big.input = Some(format!("\"{}\"", "x".repeat(1024 * 1024)));
    match store.save(big).await {
        Err(StoreError::TooLarge(m)) => assert!(m.contains("1048576"), "{m}"),
        other => panic!("expected too-large, got {other:?}"),
    }
    assert_nothing_stored(&store).await;
    // Just under the limit is fine.
    let mut fits = state("wf-fits", WorkflowStatus::Running);
    fits.input = Some(format!("\"{}\"", "x".repeat(1024 * 1024 - 400)));
    store
        .save(fits)
        .await
        .expect("a value under the limit is accepted");
}

/// Out of range timestamps are rejected.
pub async fn out_of_range_timestamps_are_rejected(store: Store) {
    let mut year_10000 = state("wf-t", WorkflowStatus::Running);
    year_10000.created_at = at(253_402_300_800, 0);
    assert_invalid(store.save(year_10000).await, "CreatedAt");
    let mut bad_nanos = state("wf-t", WorkflowStatus::Running);
    bad_nanos.updated_at = at(0, 1_000_000_000);
    assert_invalid(store.save(bad_nanos).await, "UpdatedAt");
    let mut bad_event = full_state("wf-t");
    bad_event.history[0].timestamp = at(i64::MIN, 0);
    assert_invalid(store.save(bad_event).await, "History[0].Timestamp");
    assert_nothing_stored(&store).await;
}

/// A failed save keeps the previous state.
pub async fn a_failed_save_keeps_the_previous_state(store: Store) {
    let good = full_state("wf-1");
    store.save(good.clone()).await.unwrap();
    let mut bad = good.clone();
    bad.status = WorkflowStatus::Completed;
    bad.result = Some("nope".into());
    assert!(store.save(bad).await.is_err());
    assert_eq!(*store.load("wf-1").await.unwrap().unwrap(), good);
}

/// Reads and deletes validate the id.
pub async fn reads_and_deletes_validate_the_id(store: Store) {
    assert!(matches!(
        store.load("").await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.delete("").await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.delete("a\nb").await,
        Err(StoreError::InvalidArgument(_))
    ));
}

/// Go zero time round trips.
pub async fn go_zero_time_round_trips(store: Store) {
    let mut zero = state("wf-zero", WorkflowStatus::Running);
    zero.created_at = Timestamp::GO_ZERO;
    zero.updated_at = Timestamp::GO_ZERO;
    store.save(zero.clone()).await.unwrap();
    let loaded = store.load("wf-zero").await.unwrap().unwrap();
    assert_eq!(loaded.created_at, Timestamp::GO_ZERO);
    assert_eq!(*loaded, zero);
}

/// Json fields read back as the wire gives them.
pub async fn json_fields_read_back_as_the_wire_gives_them(store: Store) {
    let mut saved = full_state("wf-json");
    saved.input = Some(" \n{\"a\": [1, 2]}\t".into());
    saved.result = Some("null".into());
    saved.history[0].input = Some(" null ".into());
    saved.history[2].signal_payload = Some("\r\n\"yes\" ".into());
    store.save(saved).await.expect("save");
    let loaded = store.load("wf-json").await.unwrap().unwrap();
    assert_eq!(
        loaded.input.as_deref(),
        Some("{\"a\": [1, 2]}"),
        "trimmed, inner text verbatim"
    );
    assert_eq!(loaded.result, None, "null text reads back as none");
    assert_eq!(loaded.history[0].input, None);
    assert_eq!(loaded.history[2].signal_payload.as_deref(), Some("\"yes\""));
}

/// Concurrent saves of distinct ids are all kept.
pub async fn concurrent_saves_of_distinct_ids_are_all_kept(store: Store) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .save(state(&format!("c-{i:02}"), WorkflowStatus::Running))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("save");
    }
    let listed = ids(&store, ListFilter::default()).await;
    assert_eq!(listed.len(), 64);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "ascending");
}

/// Close is idempotent and refuses later calls.
pub async fn close_is_idempotent_and_refuses_later_calls(store: Store) {
    store
        .save(state("wf-1", WorkflowStatus::Running))
        .await
        .unwrap();
    store.close().await.expect("close");
    store.close().await.expect("close again");
    assert!(matches!(
        store.save(state("wf-2", WorkflowStatus::Running)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.load("wf-1").await,
        Err(StoreError::Unavailable(_))
    ));
}

fn with_run(id: &str, run: &str) -> WorkflowState {
    WorkflowState {
        run_id: run.into(),
        ..state(id, WorkflowStatus::Running)
    }
}

async fn version_of(store: &Store, id: &str) -> Version {
    store
        .load_versioned(id)
        .await
        .unwrap()
        .map_or(0, |v| v.version)
}

/// Conditional saves write only over the expected version.
pub async fn conditional_saves_write_only_over_the_expected_version(store: Store) {
    let conflict = |r: Result<Version, StoreError>| match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    };
    // Absent: version 0; only "expected 0" creates it.
    assert_eq!(version_of(&store, "v").await, 0);
    let m = conflict(store.save_versioned(with_run("v", "x"), Some(7)).await);
    assert!(m.contains("version 0") && m.contains("expected 7"), "{m}");
    assert!(
        store.load("v").await.unwrap().is_none(),
        "a conflict writes nothing"
    );
    let v1 = store
        .save_versioned(with_run("v", "1"), Some(0))
        .await
        .unwrap();
    assert!(v1 > 0);
    conflict(store.save_versioned(with_run("v", "x"), Some(0)).await);
    let found = store.load_versioned("v").await.unwrap().unwrap();
    assert_eq!((found.version, found.state.run_id.as_str()), (v1, "1"));

    // Over the current version: written, with a greater version.
    let v2 = store
        .save_versioned(with_run("v", "2"), Some(v1))
        .await
        .unwrap();
    assert!(v2 > v1);
    // A stale version loses and leaves the newer state alone.
    let m = conflict(store.save_versioned(with_run("v", "stale"), Some(v1)).await);
    assert!(m.contains(&format!("version {v2}")), "{m}");
    assert_eq!(store.load("v").await.unwrap().unwrap().run_id, "2");
    // A plain save is last-write-wins and moves the version too.
    store.save(with_run("v", "3")).await.unwrap();
    let v3 = version_of(&store, "v").await;
    assert!(v3 > v2);
    conflict(store.save_versioned(with_run("v", "x"), Some(v2)).await);

    // A delete takes the id back to version 0.
    store.delete("v").await.unwrap();
    assert_eq!(version_of(&store, "v").await, 0);
    conflict(store.save_versioned(with_run("v", "x"), Some(v3)).await);
    let v4 = store
        .save_versioned(with_run("v", "4"), Some(0))
        .await
        .unwrap();
    assert!(v4 > v3, "versions of an id only grow, across a delete");
    // Versions are per id: another id's writes do not move this one's.
    store.save(with_run("other", "1")).await.unwrap();
    assert_eq!(version_of(&store, "v").await, v4);
}

/// Of concurrent saves expecting one version exactly one wins.
pub async fn of_concurrent_saves_expecting_one_version_exactly_one_wins(store: Store) {
    let base = store
        .save_versioned(with_run("race", "0"), None)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .save_versioned(with_run("race", &format!("writer-{i}")), Some(base))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(version) => winners.push((i, version)),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("writer {i}: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let (winner, version) = winners[0];
    let stored = store.load_versioned("race").await.unwrap().unwrap();
    assert_eq!(stored.version, version);
    assert_eq!(stored.state.run_id, format!("writer-{winner}"));
}
