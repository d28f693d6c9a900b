//! How `wfhost` prints states, lists and topic reports: tables for people,
//! the stored wire JSON for programs.

use std::borrow::Cow;
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

/// `retention`: the periods, and how many finished workflows are past them now.
pub fn print_topic(
    output: Output,
    report: &ReplayReport,
    brokers: &str,
    retention: Option<(String, usize)>,
) {
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
                "retention": retention.as_ref().map(|(periods, _)| periods),
                "expired": retention.as_ref().map(|(_, expired)| expired),
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
            match &retention {
                Some((periods, expired)) => println!(
                    "retention:   {}: {expired} finished workflows past it, deleted by the serving hosts that own them",
                    clean(periods)
                ),
                None => println!("retention:   none (finished workflows are kept until deleted)"),
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
                    clean(&s.workflow_id),
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
    let _ = writeln!(out, "workflow:  {}", clean(&s.workflow_id));
    let _ = writeln!(out, "run:       {}", clean(&s.run_id));
    let _ = writeln!(out, "status:    {}", s.status);
    let _ = writeln!(
        out,
        "input:     {}",
        clean(s.input.as_deref().unwrap_or("null"))
    );
    if let Some(result) = &s.result {
        let _ = writeln!(out, "result:    {}", clean(result));
    }
    if !s.error.is_empty() {
        let _ = writeln!(out, "error:     {}", clean(&s.error));
    }
    let _ = writeln!(out, "created:   {}", time(s.created_at));
    let _ = writeln!(out, "updated:   {}", time(s.updated_at));
    if let Some(waits) = s.suspended() {
        let signals = match waits.signals.as_slice() {
            [] => String::new(),
            names => format!("signal {}", clean(&names.join(" or "))),
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
                clean(&e.signal_name),
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

/// `text` cut to `max_chars` characters (escaped first: see [`clean`]).
fn ellipsis(text: &str, max_chars: usize) -> String {
    let text = clean(text);
    if text.chars().count() <= max_chars {
        return text.into_owned();
    }
    let cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// `text` safe to print to a terminal: control characters (C0, DEL, C1)
/// and the Unicode controls that reorder or hide text are escaped as
/// `\u{..}`, so a stored field cannot move the cursor, retitle the window
/// or fake a line of the table.
pub fn clean(text: &str) -> Cow<'_, str> {
    escape_where(text, unsafe_char)
}

/// Whether `c` may drive a terminal: a control character (C0, DEL, C1),
/// or a Unicode control that reorders or hides text.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with the characters `escape` picks written as `\u{..}`.
fn escape_where(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error for one line of stderr: each message of its chain once (a
/// context that already quotes its cause does not repeat it), the lines
/// of multi-line messages joined, control characters escaped.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() || parts.iter().any(|earlier| earlier.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    clean(&parts.join(": ")).into_owned()
}

/// stderr for log lines, with control characters escaped: a log line
/// carries guests' errors and clients' ids, which must not drive the
/// terminal. Newlines and tabs pass, and with `colour` (set only for a
/// terminal) the logger's own colour sequences.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter {
    /// Let colour sequences (`ESC [ digits ; ... m`) through.
    pub colour: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EscapingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingStderr {
            colour: self.colour,
        }
    }
}

/// One log line's writer to stderr (see [`LogWriter`]).
#[derive(Debug)]
pub struct EscapingStderr {
    colour: bool,
}

impl std::io::Write for EscapingStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let safe = log_text(&String::from_utf8_lossy(bytes), self.colour);
        std::io::stderr().write_all(safe.as_bytes())?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// [`clean`], but newlines and tabs, which lay log lines out, pass.
fn escape_log(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| c != '\n' && c != '\t' && unsafe_char(c))
}

/// A log line's `text` made safe (see [`LogWriter`]).
fn log_text(text: &str, colour: bool) -> String {
    if !colour {
        return escape_log(text).into_owned();
    }
    // Only colour sequences (ESC [ digits and ; then m) pass.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&escape_log(&rest[..at]));
        let colour_len = rest[at + 1..].strip_prefix('[').and_then(|tail| {
            let end = tail.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            tail[end..].starts_with('m').then_some(end + 3)
        });
        match colour_len {
            Some(len) => {
                out.push_str(&rest[at..at + len]);
                rest = &rest[at + len..];
            }
            None => {
                out.push_str("\\u{1b}");
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(&escape_log(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain ünïcode"), "plain ünïcode");
        assert_eq!(
            clean("\u{1b}]0;PWNED\u{7}\u{1b}[2J\nstatus: ok\u{202e}"),
            "\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J\\u{a}status: ok\\u{202e}"
        );
    }

    #[test]
    fn an_error_is_one_line_without_repeats() {
        let e = anyhow::anyhow!("bad magic\n\n  at offset 0").context("loading m.wasm");
        assert_eq!(error_line(&e), "loading m.wasm: bad magic at offset 0");
        let quoting = anyhow::anyhow!("no such file").context("reading m.wasm: no such file");
        assert_eq!(error_line(&quoting), "reading m.wasm: no such file");
        let same = anyhow::anyhow!("store unavailable").context("store unavailable");
        assert_eq!(error_line(&same), "store unavailable");
        let escaped = anyhow::anyhow!("guest said \u{1b}[2J");
        assert_eq!(error_line(&escaped), "guest said \\u{1b}[2J");
    }

    #[test]
    fn log_lines_keep_their_layout_and_colours_but_no_other_escape() {
        let hostile = "WARN failed error=\u{1b}]0;PWNED\u{7}\u{1b}[2J\tnext\n";
        assert_eq!(
            log_text(hostile, false),
            "WARN failed error=\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J\tnext\n"
        );
        let coloured = "\u{1b}[33mWARN\u{1b}[0m error=\u{1b}]0;x\u{7}\n";
        assert_eq!(
            log_text(coloured, true),
            "\u{1b}[33mWARN\u{1b}[0m error=\\u{1b}]0;x\\u{7}\n"
        );
    }
}
