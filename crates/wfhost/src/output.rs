//! How `wfhost` prints states, lists and topic reports: tables for people,
//! the stored wire JSON for programs.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use wf_host::model::{self, EventType, Timestamp, WorkflowState, WorkflowStatus};
use wf_store_kafka::ReplayReport;

use crate::args::{EXIT_WORKFLOW_FAILED, Output};

/// Exit status for a workflow's final state.
pub fn exit_code(state: &WorkflowState) -> ExitCode {
    match state.status {
        WorkflowStatus::Completed | WorkflowStatus::Running => ExitCode::SUCCESS,
        WorkflowStatus::Failed | WorkflowStatus::Canceled => ExitCode::from(EXIT_WORKFLOW_FAILED),
    }
}

pub fn print_topic(output: Output, report: &ReplayReport, brokers: &str) {
    let elapsed = report.elapsed.as_secs_f64();
    match output {
        Output::Json => {
            let partitions: Vec<serde_json::Value> = report
                .partitions
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "partition": p.partition, "low": p.low, "high": p.high, "records": p.records,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "topic": report.topic,
                "brokers": brokers,
                "partitions": partitions,
                "records": report.records,
                "live_keys": report.live,
                "tombstones": report.tombstones,
                "skipped": report.skipped,
                "misplaced": report.misplaced,
                "replay_seconds": elapsed,
            });
            println!("{doc}");
        }
        Output::Table => {
            println!("topic:       {} on {brokers}", report.topic);
            println!("partitions:  {}", report.partitions.len());
            println!(
                "  {:>9}  {:>12}  {:>12}  {:>10}",
                "PARTITION", "LOW", "HIGH", "RECORDS"
            );
            for p in &report.partitions {
                println!(
                    "  {:>9}  {:>12}  {:>12}  {:>10}",
                    p.partition, p.low, p.high, p.records
                );
            }
            println!(
                "records:     {} read in {elapsed:.2} s ({:.0}/s)",
                report.records,
                report.records as f64 / elapsed.max(1e-9)
            );
            println!("live keys:   {}", report.live);
            println!("tombstones:  {}", report.tombstones);
            println!(
                "skipped:     {} (records that are not workflow states, or misplaced)",
                report.skipped
            );
            println!(
                "misplaced:   {} (records of an id outside the partition murmur2 places it in; not read)",
                report.misplaced
            );
        }
    }
}

fn wire_json(state: &WorkflowState) -> anyhow::Result<String> {
    let bytes = model::encode_state(state).context("encoding the state")?;
    String::from_utf8(bytes).context("the encoded state is not UTF-8")
}

pub fn print_state(output: Output, state: &WorkflowState) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", wire_json(state)?),
        Output::Table => print!("{}", state_table(state)),
    }
    Ok(())
}

pub fn print_list(output: Output, states: &[Arc<WorkflowState>]) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            let items = states
                .iter()
                .map(|s| wire_json(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            println!("[{}]", items.join(","));
        }
        Output::Table => {
            if !states.is_empty() {
                println!(
                    "{:<32} {:<10} {:<25} RESULT / ERROR",
                    "WORKFLOW", "STATUS", "UPDATED"
                );
            }
            for s in states {
                let outcome = match s.status {
                    WorkflowStatus::Failed => s.error.clone(),
                    _ => s.result.clone().unwrap_or_default(),
                };
                println!(
                    "{:<32} {:<10} {:<25} {}",
                    s.workflow_id,
                    s.status.as_str(),
                    time(s.updated_at),
                    ellipsis(&outcome, 60)
                );
            }
        }
    }
    Ok(())
}

fn state_table(s: &WorkflowState) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "workflow:  {}", s.workflow_id);
    let _ = writeln!(out, "run:       {}", s.run_id);
    let _ = writeln!(out, "status:    {}", s.status);
    let _ = writeln!(out, "input:     {}", s.input.as_deref().unwrap_or("null"));
    if let Some(result) = &s.result {
        let _ = writeln!(out, "result:    {result}");
    }
    if !s.error.is_empty() {
        let _ = writeln!(out, "error:     {}", s.error);
    }
    let _ = writeln!(out, "created:   {}", time(s.created_at));
    let _ = writeln!(out, "updated:   {}", time(s.updated_at));
    if let Some(waits) = s.suspended() {
        let signals = match waits.signals.as_slice() {
            [] => String::new(),
            names => format!("signal {}", names.join(" or ")),
        };
        let due = waits.wake_at.map(|at| format!("until {}", time(at)));
        let what = match (signals.is_empty(), due) {
            (false, Some(due)) => format!("{signals}, {due}"),
            (false, None) => signals,
            (true, Some(due)) => format!("timer {due}"),
            (true, None) => "cancel".to_owned(),
        };
        let _ = writeln!(out, "waiting:   suspended, for {what}");
    }
    if let Some(timer) = pending_timer(s) {
        let _ = writeln!(out, "timer:     {timer}");
    }
    let signals: Vec<String> = s
        .history
        .iter()
        .filter(|e| e.kind == EventType::SignalReceived)
        .map(|e| {
            format!(
                "{}({})",
                e.signal_name,
                ellipsis(e.signal_payload.as_deref().unwrap_or("null"), 40)
            )
        })
        .collect();
    if !signals.is_empty() {
        let _ = writeln!(out, "signals:   {}", signals.join(", "));
    }
    let _ = writeln!(out, "history:   {} events", s.history.len());
    for e in &s.history {
        let mut detail = e.activity_name.clone();
        if e.kind == EventType::SignalReceived {
            detail = format!(
                "{} {}",
                e.signal_name,
                e.signal_payload.as_deref().unwrap_or("null")
            );
        }
        if matches!(e.kind, EventType::TimerStarted | EventType::TimerFired) {
            let of = match (e.activity_name.as_str(), e.signal_name.as_str()) {
                ("", "") => String::new(),
                ("", signals) => format!(" (timeout of signal {signals})"),
                (activity, _) => format!(" (before a retry of {activity})"),
            };
            detail = format!("{}{of}", length(e.duration_ns));
        }
        if e.kind == EventType::WorkflowSuspended
            && let Some(waits) = model::Suspended::of_event(e)
        {
            detail = format!(
                "for {}{}",
                if waits.signals.is_empty() {
                    "no signal".to_owned()
                } else {
                    waits.signals.join(" or ")
                },
                waits
                    .wake_at
                    .map(|at| format!(", until {}", time(at)))
                    .unwrap_or_default()
            );
        }
        if let Some(result) = &e.result {
            detail = format!("{detail} -> {result}").trim_start().to_string();
        }
        if !e.error.is_empty() {
            detail = format!("{detail} error: {}", e.error)
                .trim_start()
                .to_string();
        }
        let line = format!(
            "  {:>3}  {:<18}  {:<30}  {}",
            e.id,
            e.kind.as_str(),
            time(e.timestamp),
            ellipsis(&detail, 70)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The timer a running workflow has set and not yet seen fire: its due time.
fn pending_timer(s: &WorkflowState) -> Option<String> {
    if s.status != WorkflowStatus::Running {
        return None;
    }
    let started = s
        .history
        .iter()
        .rposition(|e| matches!(e.kind, EventType::TimerStarted | EventType::TimerFired))?;
    let e = &s.history[started];
    if e.kind != EventType::TimerStarted {
        return None;
    }
    let due = Timestamp::from_nanos(e.timestamp.as_nanos() + i128::from(e.duration_ns));
    Some(format!("{} set, due {}", length(e.duration_ns), time(due)))
}

/// A duration in nanoseconds, for people.
fn length(ns: i64) -> String {
    format!(
        "{:?}",
        std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
    )
}

fn time(t: Timestamp) -> String {
    t.to_rfc3339().unwrap_or_else(|_| format!("{}s", t.seconds))
}

fn ellipsis(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{cut}…")
}
