//! Soak test under faults: guests save and delete continuously through
//! `wfhost run` processes against a real broker process (tansu, SQLite
//! storage) while the broker is crashed (SIGKILL) or stopped (SIGTERM) and
//! restarted on the same port and data, and while `wfhost` processes are
//! killed (SIGKILL) and new ones started in their place. Afterwards every
//! acknowledged write must be in the topic and reflected in the state a fresh
//! replay rebuilds, no write may be in the topic twice, and nothing may be in
//! it that no guest tried to write.
//!
//! Run it alone (about 65 s; loopback only):
//!
//! ```sh
//! WF_E2E_REQUIRED=1 cargo test -p wf-host --test soak -- --nocapture
//! ```
//!
//! It starts its own tansu (`scripts/install-tansu.sh` installs it into
//! `${WF_TOOLS_ROOT:-~/.cache/wf-tools}/tansu-0.6.0/bin/tansu`; `tansu` on
//! PATH is used otherwise) on a free loopback port with its data in a scratch
//! directory. Without tansu it prints `skipped: ...`, unless
//! `WF_E2E_REQUIRED` is set, then it fails.
//!
//! Two workers (`wfhost run` of the `soak` guest, 16 ids each, disjoint
//! prefixes) write throughout. Faults, 5 s of undisturbed writing apart:
//! the broker crashes (SIGKILL) for 3 s; worker a is killed and replaced;
//! the broker stops (SIGTERM) for 3 s with the writers paused; worker b is
//! killed and replaced by one with a 1 s produce timeout; the broker crashes
//! again, and while it is down worker a is killed with a write pending and
//! b's writes time out and fail before b is killed too; then both come back.
//! Why SIGTERM only with the writers paused, and the timeouts only on a host
//! that does not outlive the outage: see `PRODUCE_TIMEOUT_SECS`.
//!
//! The figures come out as greppable lines, e.g.
//! `soak: acked=15012 failed=2 ambiguous=0 lost=0 duplicates=0
//! broker_restarts=3 host_kills=4 duration=64s`.
//!
//! How it decides: the `soak` guest prints `soak-op try|ack|fail <op> <id>
//! <seq>` around every store call, and the test reads those lines from each
//! `wfhost`'s log (stderr, `RUST_LOG=wf::guest=info`). Sequence numbers grow
//! per id (a restarted worker runs a higher generation), so a saved value
//! tells which write it is; a tombstone is placed by the saves around it.
//! The lines of a killed `wfhost` up to its death are what it saw
//! acknowledged; its last `try` without an outcome was in flight. The topic
//! is read raw (every record) and through a fresh `KafkaStore` replay.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use wf_host::store::WorkflowStore;
use wf_store_kafka::{KafkaConfig, KafkaStore};

/// The whole test, faults and checks included, must end within this.
const HARD_LIMIT: Duration = Duration::from_secs(300);
/// A save or delete fails when not acknowledged within this (seconds):
/// longer than an outage, because tansu 0.6 cannot take a producer whose
/// write failed. librdkafka's idempotent producer bumps its epoch itself
/// after a message timed out or a batch failed (rdkafka_idempotence.c: "the
/// idempotent producer can bump its own epoch"); tansu's SQLite storage
/// panics on the first batch with an epoch it did not hand out ("more or less
/// than one row", tansu-storage 0.6 lite.rs, `producer_select_for_update`),
/// and from then on fails every produce on the broker ("UnableToSend") until
/// it is restarted, and the bumped producer breaks it again at its next
/// write. So a host whose writes failed must be gone before the broker
/// comes back, and SIGTERM (tansu answers the produce requests in flight
/// with "Unknown broker error") is sent only while the writers are paused.
const PRODUCE_TIMEOUT_SECS: &str = "15";
/// The produce timeout of the one host whose writes time out while the
/// broker is down (it is killed before the broker comes back).
const IMPATIENT_PRODUCE_TIMEOUT_SECS: &str = "1";
/// How long the broker stays down each time.
const BROKER_DOWN: Duration = Duration::from_secs(3);
/// How long the workers write undisturbed between faults.
const PHASE: Duration = Duration::from_secs(5);
const TOPIC: &str = "wf-soak";
const KEYS_PER_WORKER: u64 = 16;
const PARTITIONS: i32 = 3;

/// The tansu binary, or None (skipped) when it is not installed.
fn tansu() -> Option<PathBuf> {
    let root = std::env::var_os("WF_TOOLS_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wf-tools")));
    let version = std::env::var("TANSU_VERSION").unwrap_or_else(|_| "0.6.0".into());
    let installed = root.map(|r| r.join(format!("tansu-{version}/bin/tansu")));
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("tansu"))
                .find(|path| path.is_file())
        })
    };
    match installed.filter(|p| p.is_file()).or_else(on_path) {
        Some(path) => Some(path),
        None if std::env::var_os("WF_E2E_REQUIRED").is_some() => panic!(
            "tansu is required (WF_E2E_REQUIRED is set) but not installed: run scripts/install-tansu.sh"
        ),
        None => {
            eprintln!("skipped: tansu not installed (scripts/install-tansu.sh installs it)");
            None
        }
    }
}

/// Panics once the test has run longer than `HARD_LIMIT`.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    fn check(self, what: &str) {
        assert!(
            Instant::now() < self.0,
            "the soak test ran past its {HARD_LIMIT:?} bound while {what}"
        );
    }
}

/// A free loopback port below the ephemeral range. Not one the kernel hands
/// out to clients: while the broker is down, librdkafka reconnects many times
/// a second, and a client socket whose ephemeral port happens to equal the
/// broker's connects to itself (TCP simultaneous open) and holds the port, so
/// the restarted broker fails with "Address already in use" (seen here).
fn free_port() -> u16 {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_100));
    let span = u32::from(high - low);
    let start = std::process::id() % span;
    (0..span)
        .map(|i| low + ((start + i * 7919) % span) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free loopback port below the ephemeral range")
}

/// Sends `signal` (`TERM`, `KILL`) to a process this test started.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits (bounded) for a child to exit; kills it if it does not.
fn reap(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A tansu broker owned by the test: same port and data across restarts.
struct Broker {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Broker {
    fn new(bin: PathBuf, dir: PathBuf) -> Self {
        Self {
            bin,
            dir,
            port: free_port(),
            child: None,
            starts: 0,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        self.starts += 1;
        let log_path = self.dir.join(format!("broker-{}.log", self.starts));
        let log = File::create(&log_path).unwrap();
        let url = format!("tcp://{}", self.address());
        let mut child = Command::new(&self.bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // Relative to the working directory (tansu mangles sqlite:///abs).
            .args([
                "--storage-engine",
                "sqlite://wf.db?maintenance_interval=3600s",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting tansu");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("ready in") {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("tansu exited ({status}) while starting: {text}");
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("tansu did not start within 20 s: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// Stops the broker with `sig` and waits until it is gone.
    fn stop(&mut self, sig: &str) {
        let mut child = self.child.take().expect("the broker is running");
        signal(child.id(), sig);
        if reap(&mut child, Duration::from_secs(10)).is_none() {
            eprintln!("soak: tansu ignored SIGTERM for 10 s; killed it");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What went wrong in the broker: its panics, and how its last log ended.
            for n in 1..=self.starts {
                let log = self.dir.join(format!("broker-{n}.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let mut shown: Vec<&str> = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if line.contains("panicked at") {
                        shown.extend(lines[i..lines.len().min(i + 2)].iter().copied());
                    }
                }
                if n == self.starts {
                    shown.extend(lines[lines.len().saturating_sub(5)..].iter().copied());
                }
                eprintln!("soak: from {}:\n{}", log.display(), shown.join("\n"));
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Save,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Tried; no outcome printed (the wfhost was killed during the call).
    InFlight,
    Acked,
    Failed,
}

/// One `soak-op` line: (outcome word, kind, id, seq).
fn parse_op(line: &str) -> Option<(&str, Kind, String, u64)> {
    let rest = &line[line.find("soak-op ")? + "soak-op ".len()..];
    let mut words = rest.split_whitespace();
    let outcome = words.next()?;
    let kind = match words.next()? {
        "save" => Kind::Save,
        "delete" => Kind::Delete,
        _ => return None,
    };
    let id = words.next()?.to_owned();
    let seq = words.next()?.parse().ok()?;
    Some((outcome, kind, id, seq))
}

/// The error of a `soak-op fail` line, without the log's fields after it.
fn failure_reason(line: &str) -> String {
    let rest = &line[line
        .find("soak-op fail ")
        .map_or(0, |i| i + "soak-op fail ".len())..];
    let error = rest.splitn(4, ' ').nth(3).unwrap_or_default();
    error
        .split(" workflow_id=")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// What one worker process printed so far, shared with its reader thread.
#[derive(Debug, Default)]
struct Seen {
    ops: Vec<(String, Kind, String, u64)>,
    acks: usize,
    fails: usize,
    /// Why calls failed: the error text of each `fail` line.
    errors: Vec<String>,
    /// Other log lines (host warnings, librdkafka), for the report.
    other: Vec<String>,
    /// Its stderr closed: the process ended.
    ended: bool,
}

/// A `wfhost run` of the soak guest.
struct Worker {
    name: String,
    child: Child,
    seen: Arc<Mutex<Seen>>,
    reader: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(brokers: &str, dir: &Path, prefix: &str, generation: u64, timeout: &str) -> Self {
        let name = format!("soak-run-{}g{generation}", prefix.replace('/', "-"));
        let input = serde_json::json!({
            "prefix": prefix,
            "generation": generation,
            "keys": KEYS_PER_WORKER,
            "ops": 900_000,
            "delete_every": 5,
            "stop_file": dir.join("stop").display().to_string(),
            "pause_file": dir.join("pause").display().to_string(),
            "pause_ms": 50,
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_wfhost"))
            .env_remove("WF_CONFIG")
            .env_remove("WF_KAFKA_TOPIC")
            .env_remove("WF_KAFKA_BROKERS")
            .env("RUST_LOG", "warn,wf::guest=info")
            .env("NO_COLOR", "1")
            .args(["--brokers", brokers, "--topic", TOPIC])
            .args(["--produce-timeout", timeout, "--accept-uncompacted"])
            .args(["run", wf_test_artifacts::SOAK, "--id", &name])
            .args(["--timeout", "600", "--grant-dir"])
            .arg(format!("{}:rw", dir.display()))
            .args(["--input", &input.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wfhost run");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stderr = child.stderr.take().unwrap();
        let shared = seen.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut seen = shared.lock().unwrap();
                match parse_op(&line) {
                    Some((outcome, kind, id, seq)) => {
                        seen.acks += usize::from(outcome == "ack");
                        if outcome == "fail" {
                            seen.fails += 1;
                            seen.errors.push(failure_reason(&line));
                        }
                        seen.ops.push((outcome.to_owned(), kind, id, seq));
                    }
                    None => seen.other.push(line),
                }
            }
            shared.lock().unwrap().ended = true;
        });
        Self {
            name,
            child,
            seen,
            reader: Some(reader),
        }
    }

    fn acks(&self) -> usize {
        self.seen.lock().unwrap().acks
    }

    /// Waits (at most 60 s) until this worker has `more` acknowledgements
    /// beyond `since`; returns how long that took.
    fn wait_for_acks(&self, since: usize, more: usize, deadline: Deadline) -> Duration {
        let start = Instant::now();
        while self.acks() < since + more {
            deadline.check(&format!("waiting for {} to write", self.name));
            let (ended, tail) = {
                let seen = self.seen.lock().unwrap();
                let ops = seen.ops.iter().rev().take(5).map(|op| format!("{op:?}"));
                let other = seen.other.iter().rev().take(10).cloned();
                (seen.ended, ops.chain(other).collect::<Vec<_>>().join("\n"))
            };
            assert!(
                !ended,
                "{} exited unexpectedly; its last lines:\n{tail}",
                self.name
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} acknowledged no write for 60 s; its last lines:\n{tail}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    /// Waits (at most 60 s) until `n` calls failed.
    fn wait_for_failures(&self, n: usize, deadline: Deadline) {
        let start = Instant::now();
        while self.seen.lock().unwrap().fails < n {
            deadline.check(&format!("waiting for {}'s writes to fail", self.name));
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} had no {n} failed writes within 60 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 30 s) until the worker is paused: its last call has
    /// returned and it printed nothing for 300 ms (a call it began just
    /// before the pause file appeared shows up in that time).
    fn wait_until_idle(&self, deadline: Deadline) {
        let start = Instant::now();
        let state = || {
            let seen = self.seen.lock().unwrap();
            let busy = seen.ops.last().is_some_and(|(word, ..)| word == "try");
            (seen.ops.len(), busy)
        };
        let mut last = state();
        let mut quiet_since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = state();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if !now.1 && quiet_since.elapsed() >= Duration::from_millis(300) {
                return;
            }
            deadline.check(&format!("waiting for {} to pause", self.name));
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} did not pause within 30 s",
                self.name
            );
        }
    }

    /// SIGKILL; returns what it printed up to its death.
    fn kill(mut self) -> Arc<Mutex<Seen>> {
        self.child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        self.seen.clone()
    }

    /// Waits for a clean end (after the stop file); returns what it printed.
    fn finish(mut self, within: Duration) -> Arc<Mutex<Seen>> {
        let status = reap(&mut self.child, within);
        self.reader.take().unwrap().join().unwrap();
        let seen = self.seen.clone();
        let other = seen.lock().unwrap().other.join("\n");
        match status {
            Some(status) => assert!(status.success(), "{} failed ({status}): {other}", self.name),
            None => panic!("{} did not stop within {within:?}: {other}", self.name),
        }
        seen
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One write as the guests reported it.
#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    outcome: Outcome,
}

/// Every write tried, per id, by sequence number.
fn ops_from(seen: &[Arc<Mutex<Seen>>]) -> BTreeMap<String, BTreeMap<u64, Op>> {
    let mut ops: BTreeMap<String, BTreeMap<u64, Op>> = BTreeMap::new();
    for seen in seen {
        for (word, kind, id, seq) in &seen.lock().unwrap().ops {
            let outcome = match word.as_str() {
                "try" => Outcome::InFlight,
                "ack" => Outcome::Acked,
                "fail" => Outcome::Failed,
                other => panic!("unexpected soak-op line {other:?}"),
            };
            let op = ops
                .entry(id.clone())
                .or_default()
                .entry(*seq)
                .or_insert(Op {
                    kind: *kind,
                    outcome,
                });
            assert_eq!(op.kind, *kind, "{id} {seq}: one op, one kind");
            if outcome != Outcome::InFlight {
                assert_eq!(op.outcome, Outcome::InFlight, "{id} {seq}: one outcome");
                op.outcome = outcome;
            }
        }
    }
    ops
}

/// A record of the topic: a save's sequence number, or a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Save(u64),
    Tombstone,
}

fn seq_of(value: &[u8]) -> u64 {
    let state = wf_host::model::decode_state(value).expect("a soak record decodes");
    state
        .result
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{}: a result that is a sequence number", state.workflow_id))
}

#[derive(Debug, Default)]
struct Report {
    acked: usize,
    acked_saves: usize,
    acked_deletes: usize,
    failed: usize,
    /// Failed writes that are in the topic all the same (a timeout that landed).
    ambiguous: usize,
    /// Writes of killed hosts in flight at their death.
    in_flight: usize,
    /// ... of which in the topic.
    in_flight_landed: usize,
    /// An acknowledged write the final state does not reflect.
    lost: usize,
    /// The same write more than once in the topic.
    duplicates: usize,
    /// Acknowledged writes missing from the topic.
    acked_not_in_log: usize,
    /// Records no guest tried to write.
    phantom: usize,
    /// Saves of one id in the topic out of sequence order.
    reordered: usize,
    /// Ids whose replayed state differs from the topic's last record.
    replay_mismatch: usize,
    records: usize,
    ids: usize,
}

/// Compares what the guests were told with the topic and the replayed state.
fn check(
    ops: &BTreeMap<String, BTreeMap<u64, Op>>,
    log: &BTreeMap<String, Vec<Entry>>,
    replayed: &BTreeMap<String, u64>,
) -> (Report, Vec<String>) {
    let mut report = Report::default();
    let mut problems = Vec::new();
    let no_entries = Vec::new();
    let mut ids: Vec<&String> = ops.keys().chain(log.keys()).collect();
    ids.sort();
    ids.dedup();
    report.ids = ids.len();
    for id in ids {
        let tried = ops.get(id).cloned().unwrap_or_default();
        let entries = log.get(id).unwrap_or(&no_entries);
        report.records += entries.len();
        for op in tried.values() {
            match op.outcome {
                Outcome::Acked => {
                    report.acked += 1;
                    match op.kind {
                        Kind::Save => report.acked_saves += 1,
                        Kind::Delete => report.acked_deletes += 1,
                    }
                }
                Outcome::Failed => report.failed += 1,
                Outcome::InFlight => report.in_flight += 1,
            }
        }

        // Saves: each at most once, in sequence order, and only tried ones.
        let saves: Vec<u64> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Save(seq) => Some(*seq),
                Entry::Tombstone => None,
            })
            .collect();
        let mut count: BTreeMap<u64, usize> = BTreeMap::new();
        for seq in &saves {
            *count.entry(*seq).or_default() += 1;
        }
        for window in saves.windows(2) {
            if window[1] <= window[0] {
                report.reordered += 1;
                problems.push(format!(
                    "{id}: save {} after {} in the topic",
                    window[1], window[0]
                ));
            }
        }
        for (seq, n) in &count {
            if *n > 1 {
                report.duplicates += n - 1;
                problems.push(format!("{id}: save {seq} is in the topic {n} times"));
            }
            match tried.get(seq) {
                Some(Op {
                    kind: Kind::Save,
                    outcome,
                }) => match outcome {
                    Outcome::Acked => {}
                    Outcome::Failed => report.ambiguous += 1,
                    Outcome::InFlight => report.in_flight_landed += 1,
                },
                _ => {
                    report.phantom += 1;
                    problems.push(format!("{id}: save {seq} in the topic was never tried"));
                }
            }
        }
        for (seq, op) in &tried {
            if op.kind == Kind::Save && op.outcome == Outcome::Acked && !count.contains_key(seq) {
                report.acked_not_in_log += 1;
                problems.push(format!("{id}: acknowledged save {seq} is not in the topic"));
            }
        }

        // Tombstones: placed between the saves around them; between two
        // saves there are at least the acknowledged deletes tried between
        // them and at most all deletes tried there.
        let mut bounds = vec![0u64];
        let mut tombstones = vec![0usize];
        for entry in entries {
            match entry {
                Entry::Save(seq) => {
                    bounds.push(*seq);
                    tombstones.push(0);
                }
                Entry::Tombstone => *tombstones.last_mut().unwrap() += 1,
            }
        }
        bounds.push(u64::MAX);
        for (i, &found) in tombstones.iter().enumerate() {
            let (low, high) = (bounds[i], bounds[i + 1]);
            // (Empty when the saves around are out of order or the same.)
            let deletes: Vec<Outcome> = tried
                .range(low.saturating_add(1)..high.max(low.saturating_add(1)))
                .filter(|(_, op)| op.kind == Kind::Delete)
                .map(|(_, op)| op.outcome)
                .collect();
            let acked = deletes.iter().filter(|o| **o == Outcome::Acked).count();
            let failed = deletes.iter().filter(|o| **o == Outcome::Failed).count();
            if found < acked {
                report.acked_not_in_log += acked - found;
                problems.push(format!(
                    "{id}: {acked} acknowledged deletes between saves {low} and {high}, {found} tombstones"
                ));
            } else if found > deletes.len() {
                // More tombstones than deletes tried: written twice (or by no one).
                report.duplicates += found - deletes.len();
                problems.push(format!(
                    "{id}: {found} tombstones between saves {low} and {high}, {} deletes tried",
                    deletes.len()
                ));
            } else {
                // The extra ones are failed or in-flight deletes that landed.
                let extra = found - acked;
                let ambiguous = extra.min(failed);
                report.ambiguous += ambiguous;
                report.in_flight_landed += extra - ambiguous;
            }
        }

        // The final state: what the last acknowledged write says, or newer.
        let last_acked = tried
            .iter()
            .rev()
            .find(|(_, op)| op.outcome == Outcome::Acked);
        let now = replayed.get(id).copied();
        let lost = match last_acked {
            Some((
                &seq,
                Op {
                    kind: Kind::Save, ..
                },
            )) => now.is_none_or(|n| n < seq),
            Some((
                &seq,
                Op {
                    kind: Kind::Delete, ..
                },
            )) => now.is_some_and(|n| n < seq),
            None => false,
        };
        if lost {
            report.lost += 1;
            problems.push(format!(
                "{id}: last acknowledged write {last_acked:?}, replayed state {now:?}"
            ));
        }
        let last_record = match entries.last() {
            Some(Entry::Save(seq)) => Some(*seq),
            _ => None,
        };
        if now != last_record {
            report.replay_mismatch += 1;
            problems.push(format!(
                "{id}: replayed {now:?}, the topic's last record {last_record:?}"
            ));
        }
    }
    (report, problems)
}

#[test]
fn acknowledged_writes_survive_broker_restarts_and_killed_hosts() {
    let Some(tansu) = tansu() else { return };
    let started = Instant::now();
    let deadline = Deadline(started + HARD_LIMIT);
    let dir = std::env::temp_dir().join(format!("wf-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut broker = Broker::new(tansu, dir.clone());
    broker.start();
    let brokers = broker.address();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // The topic, not compacted: tansu compacts at every start (its
    // maintenance runs once at start, whatever the interval), and compaction
    // would hide a duplicate. The hosts accept it (--accept-uncompacted).
    let mut config = KafkaConfig::new(&brokers).topic(TOPIC);
    config.partitions = PARTITIONS;
    config.accept_uncompacted = true;
    runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin client");
        let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))
            .set("cleanup.policy", "delete");
        let created = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .expect("creating the topic");
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    });

    let mut generations: BTreeMap<&str, u64> = BTreeMap::new();
    let mut start_worker = |prefix: &'static str, timeout: &str| {
        let generation = generations.entry(prefix).or_default();
        *generation += 1;
        Worker::start(&brokers, &dir, prefix, *generation, timeout)
    };
    let mut finished: Vec<Arc<Mutex<Seen>>> = Vec::new();
    let mut broker_restarts = 0;
    let mut host_kills = 0;
    let mut recoveries: Vec<Duration> = Vec::new();

    let mut a = start_worker("soak/a/", PRODUCE_TIMEOUT_SECS);
    let mut b = start_worker("soak/b/", PRODUCE_TIMEOUT_SECS);
    a.wait_for_acks(0, 20, deadline);
    b.wait_for_acks(0, 20, deadline);
    std::thread::sleep(PHASE);

    // The broker is down for a while and comes back; the workers write again.
    let mut outage = |broker: &mut Broker, sig: &str, workers: &[&Worker]| {
        let before: Vec<usize> = workers.iter().map(|w| w.acks()).collect();
        broker.stop(sig);
        std::thread::sleep(BROKER_DOWN);
        broker.start();
        let up = Instant::now();
        for (w, since) in workers.iter().zip(before) {
            w.wait_for_acks(since.max(w.acks()), 5, deadline);
        }
        recoveries.push(up.elapsed());
    };

    // The broker crashes (SIGKILL) under load.
    outage(&mut broker, "KILL", &[&a, &b]);
    broker_restarts += 1;
    std::thread::sleep(PHASE);

    // A host dies mid-run; the next generation takes over its ids.
    finished.push(a.kill());
    host_kills += 1;
    a = start_worker("soak/a/", PRODUCE_TIMEOUT_SECS);
    a.wait_for_acks(0, 20, deadline);
    std::thread::sleep(PHASE);

    // The broker stops cleanly (SIGTERM) and comes back, with the writers
    // paused: tansu 0.6 fails the produce requests in flight when it gets
    // SIGTERM ("Unknown broker error"), after which the idempotent producer
    // bumps its epoch, which tansu cannot take (see PRODUCE_TIMEOUT_SECS).
    let pause = dir.join("pause");
    std::fs::write(&pause, "").unwrap();
    for w in [&a, &b] {
        w.wait_until_idle(deadline);
    }
    outage(&mut broker, "TERM", &[]);
    std::fs::remove_file(&pause).unwrap();
    let (a_before, b_before) = (a.acks(), b.acks());
    a.wait_for_acks(a_before, 5, deadline);
    b.wait_for_acks(b_before, 5, deadline);
    broker_restarts += 1;
    std::thread::sleep(PHASE);

    // The next host of b gives up on a write after 1 s.
    finished.push(b.kill());
    host_kills += 1;
    b = start_worker("soak/b/", IMPATIENT_PRODUCE_TIMEOUT_SECS);
    b.wait_for_acks(0, 20, deadline);
    std::thread::sleep(PHASE);

    // The broker crashes; a dies while it is down with a write pending; b's
    // writes time out and fail, and b dies too before the broker is back
    // (its producer has bumped its epoch, see PRODUCE_TIMEOUT_SECS).
    broker.stop("KILL");
    std::thread::sleep(Duration::from_secs(1));
    finished.push(a.kill());
    host_kills += 1;
    b.wait_for_failures(2, deadline);
    finished.push(b.kill());
    host_kills += 1;
    broker.start();
    broker_restarts += 1;
    let up = Instant::now();
    a = start_worker("soak/a/", PRODUCE_TIMEOUT_SECS);
    b = start_worker("soak/b/", PRODUCE_TIMEOUT_SECS);
    a.wait_for_acks(0, 20, deadline);
    b.wait_for_acks(0, 20, deadline);
    recoveries.push(up.elapsed());
    std::thread::sleep(PHASE);

    // Stop: the guests end their loops and the hosts exit.
    std::fs::write(dir.join("stop"), "").unwrap();
    finished.push(a.finish(Duration::from_secs(30)));
    finished.push(b.finish(Duration::from_secs(30)));
    deadline.check("stopping the workers");

    // The topic as it is, and the state a fresh host replays from it.
    let records = wf_tests::kafka::read_topic(&brokers, TOPIC);
    let mut log: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut sorted = records.clone();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for record in &sorted {
        let id = String::from_utf8(record.key.clone().expect("a key")).unwrap();
        if !id.starts_with("soak/") {
            continue; // the workers' own workflow states
        }
        let entry = match &record.value {
            Some(value) => Entry::Save(seq_of(value)),
            None => Entry::Tombstone,
        };
        log.entry(id).or_default().push(entry);
    }
    let replayed: BTreeMap<String, u64> = runtime.block_on(async {
        let store = KafkaStore::open(config).await.expect("replaying the topic");
        let mut states = BTreeMap::new();
        store.for_each_state(|s| {
            if s.workflow_id.starts_with("soak/") {
                let seq = s.result.as_deref().and_then(|r| r.parse().ok()).unwrap();
                states.insert(s.workflow_id.clone(), seq);
            }
        });
        store.close().await.unwrap();
        states
    });
    deadline.check("reading the topic");

    let ops = ops_from(&finished);
    let (report, problems) = check(&ops, &log, &replayed);
    let duration = started.elapsed().as_secs_f64();
    let slowest = recoveries.iter().max().copied().unwrap_or_default();
    let other: Vec<String> = finished
        .iter()
        .flat_map(|s| s.lock().unwrap().other.clone())
        .collect();
    let mut other_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for line in &other {
        // Group by the message without its timestamp.
        let text = line
            .split_once(' ')
            .map_or(line.as_str(), |(_, rest)| rest.trim());
        let text: String = text.chars().take(160).collect();
        *other_kinds.entry(text).or_default() += 1;
    }
    println!(
        "soak: host log lines other than the guests' ({}):",
        other.len()
    );
    for (text, n) in other_kinds.iter().take(20) {
        println!("  {n:>5} x {text}");
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for seen in &finished {
        for error in &seen.lock().unwrap().errors {
            *reasons.entry(error.clone()).or_default() += 1;
        }
    }
    for (error, n) in &reasons {
        println!("soak: {n} writes failed with: {error}");
    }
    for problem in problems.iter().take(50) {
        println!("soak: problem: {problem}");
    }
    println!(
        "soak: ids={} records={} acked_saves={} acked_deletes={} in_flight_at_kill={} \
         in_flight_landed={} reordered={} replay_mismatch={} phantom={} acked_not_in_log={} \
         slowest_recovery={:.1}s",
        report.ids,
        report.records,
        report.acked_saves,
        report.acked_deletes,
        report.in_flight,
        report.in_flight_landed,
        report.reordered,
        report.replay_mismatch,
        report.phantom,
        report.acked_not_in_log,
        slowest.as_secs_f64(),
    );
    println!(
        "soak: acked={} failed={} ambiguous={} lost={} duplicates={} broker_restarts={} \
         host_kills={} duration={:.0}s",
        report.acked,
        report.failed,
        report.ambiguous,
        report.lost,
        report.duplicates,
        broker_restarts,
        host_kills,
        duration,
    );
    assert!(report.acked > 0, "no write was acknowledged");
    assert_eq!(report.lost, 0, "acknowledged writes lost: {problems:#?}");
    assert_eq!(report.duplicates, 0, "duplicated writes: {problems:#?}");
    assert_eq!(
        report.acked_not_in_log, 0,
        "acknowledged writes missing from the topic: {problems:#?}"
    );
    assert_eq!(report.phantom, 0, "records no guest wrote: {problems:#?}");
    assert_eq!(
        report.replay_mismatch, 0,
        "a replay disagrees with the topic: {problems:#?}"
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checks themselves catch what they must (no broker needed).
#[test]
fn the_checks_count_lost_duplicated_missing_and_ambiguous_writes() {
    let op = |kind, outcome| Op { kind, outcome };
    let (save, delete) = (Kind::Save, Kind::Delete);
    let (acked, failed, in_flight) = (Outcome::Acked, Outcome::Failed, Outcome::InFlight);
    let ops = |list: &[(u64, Kind, Outcome)]| -> BTreeMap<u64, Op> {
        list.iter().map(|&(seq, k, o)| (seq, op(k, o))).collect()
    };
    let mut tried = BTreeMap::new();
    let mut log = BTreeMap::new();
    let mut replayed = BTreeMap::new();
    // Clean: saves, an acknowledged delete, a failed save that landed
    // (ambiguous), a write in flight at a kill that landed.
    tried.insert(
        "ok".to_string(),
        ops(&[
            (1, save, acked),
            (2, delete, acked),
            (3, save, failed),
            (4, save, in_flight),
        ]),
    );
    log.insert(
        "ok".to_string(),
        vec![
            Entry::Save(1),
            Entry::Tombstone,
            Entry::Save(3),
            Entry::Save(4),
        ],
    );
    replayed.insert("ok".to_string(), 4);
    let (report, problems) = check(&tried, &log, &replayed);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        (report.acked, report.failed, report.ambiguous),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!((report.in_flight, report.in_flight_landed), (1, 1));

    // Lost: the last acknowledged save is not what a replay has.
    tried.insert(
        "lost".to_string(),
        ops(&[(1, save, acked), (2, save, acked)]),
    );
    log.insert("lost".to_string(), vec![Entry::Save(1)]);
    replayed.insert("lost".to_string(), 1);
    // Lost: an acknowledged delete, yet the older state is still there.
    tried.insert(
        "undeleted".to_string(),
        ops(&[(1, save, acked), (2, delete, acked)]),
    );
    log.insert("undeleted".to_string(), vec![Entry::Save(1)]);
    replayed.insert("undeleted".to_string(), 1);
    // Duplicated save and tombstone; a record no one tried.
    tried.insert(
        "dup".to_string(),
        ops(&[(1, save, acked), (2, delete, acked)]),
    );
    log.insert(
        "dup".to_string(),
        vec![
            Entry::Save(1),
            Entry::Save(1),
            Entry::Tombstone,
            Entry::Tombstone,
            Entry::Save(9),
        ],
    );
    replayed.insert("dup".to_string(), 9);
    let (report, problems) = check(&tried, &log, &replayed);
    assert_eq!(report.lost, 2, "{problems:#?}");
    assert_eq!(report.acked_not_in_log, 2, "{problems:#?}");
    assert_eq!(report.duplicates, 2, "{problems:#?}");
    assert_eq!(report.phantom, 1, "{problems:#?}");
    assert_eq!(report.replay_mismatch, 0, "{problems:#?}");
}
