//! What the tests of the `wfhost` binary share: the binary without the
//! caller's store settings, a `wfhost dev` broker, and a `wfhost serve`
//! process.

#![allow(dead_code, reason = "each test file uses a part")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// `wfhost` with none of the caller's store settings (CI sets WF_KAFKA_BROKERS).
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wfhost"));
    for var in [
        "RUST_LOG",
        "WF_KAFKA_BROKERS",
        "WF_KAFKA_TOPIC",
        "WF_CONFIG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        command.env_remove(var);
    }
    // Local state under the build directory, not the user's cache, and
    // one directory per test run: a later run's broker may reuse a port and
    // a topic name, and its stores would then warn as they rebuild.
    command.env(
        "WF_STATE_DIR",
        format!(
            "{}/wfhost-state/{}",
            env!("CARGO_TARGET_TMPDIR"),
            std::process::id()
        ),
    );
    command
}

pub fn wfhost(args: &[&str]) -> Output {
    command().args(args).output().expect("running wfhost")
}

/// The announcement of the zero-setup mock cluster, which precedes any output on stderr.
pub const MOCK_ANNOUNCEMENT: &str = "wfhost: no brokers configured";

/// stderr without the mock cluster's announcement.
pub fn errors(output: &Output) -> String {
    stderr(output)
        .lines()
        .filter(|line| !line.starts_with(MOCK_ANNOUNCEMENT))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// A `wfhost dev` process: a mock Kafka cluster other processes connect to.
pub struct DevBroker {
    /// `wfhost dev`'s process; none for a real broker.
    pub child: Option<Child>,
    pub brokers: String,
    /// A topic of its own on a real broker (the default topic on `wfhost dev`).
    pub topic: Option<String>,
}

impl DevBroker {
    pub fn start(args: &[&str]) -> Self {
        let mut child = command()
            .arg("dev")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting wfhost dev");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let brokers = lines
            .find_map(|line| line.ok()?.strip_prefix("brokers: ").map(str::to_owned))
            .expect("wfhost dev prints its address");
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child: Some(child),
            brokers,
            topic: None,
        }
    }

    /// The real broker of the end-to-end run (`WF_KAFKA_BROKERS`), with a
    /// fresh topic; `None` without one.
    pub fn real(name: &str) -> Option<Self> {
        Some(Self {
            child: None,
            brokers: wf_tests::kafka::real_broker()?,
            topic: Some(wf_tests::kafka::fresh_topic(name)),
        })
    }

    /// `--brokers` (and `--topic`) for a wfhost on this broker.
    pub fn store_args(&self) -> Vec<&str> {
        let mut args = vec!["--brokers", self.brokers.as_str()];
        if let Some(topic) = &self.topic {
            args.extend(["--topic", topic.as_str()]);
        }
        args
    }

    pub fn wfhost(&self, args: &[&str]) -> Output {
        command()
            .args(self.store_args())
            .args(args)
            .output()
            .expect("running wfhost")
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `wfhost serve` process and its base URL.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// What it wrote to stderr, once it exited.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(broker: &DevBroker, module: &str, extra: &[&str]) -> Self {
        Self::with_store(&broker.store_args(), module, extra)
    }

    /// A server with its store given by `store` (`--store memory`, say).
    pub fn with_store(store: &[&str], module: &str, extra: &[&str]) -> Self {
        let mut child = command()
            .args(store)
            .args(["serve", module, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wfhost serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .find_map(|line| line.ok()?.strip_prefix("listening: ").map(str::to_owned))
            .expect("wfhost serve prints its address");
        std::thread::spawn(move || lines.for_each(drop));
        // Its stderr, kept for the tests that read it after it stopped.
        let mut errors = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut errors, &mut text);
            *kept.lock().unwrap() = text;
        });
        Self { child, url, stderr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of an external tool the test needs. Missing: skipped, unless
/// WF_E2E_REQUIRED is set (as `.ci/run` does), then a failure.
pub fn tool(name: &str) -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    match found {
        Some(path) => Some(path.display().to_string()),
        None if std::env::var_os("WF_E2E_REQUIRED").is_some() => {
            panic!("{name} is required (WF_E2E_REQUIRED is set) but not on PATH")
        }
        None => {
            eprintln!("skipped: {name} not installed");
            None
        }
    }
}
