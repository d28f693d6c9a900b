//! The command line: every flag and subcommand of `wfhost`, as clap parses
//! them. Defaults shown in help come from the code they default in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wf_host::model::WorkflowStatus;
use wf_host::store::StoreLimits;
use wf_host::{DirGrant, HostConfig, IdReuse};
use wf_http::ServerConfig;
use wf_store_kafka::KafkaConfig;

/// Exit code when `run` finished but the workflow ended `failed` or `canceled`.
pub const EXIT_WORKFLOW_FAILED: u8 = 3;

/// Exit code when `recover` left runs of the module behind: some could not
/// be resumed, or another build started them.
pub const EXIT_RUNS_LEFT: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "wfhost",
    version,
    about = "Run wf workflow modules (WebAssembly components) against a workflow store.",
    long_about = "Run wf workflow modules (WebAssembly components of the world \
wf:workflow/workflow) in a sandbox, and inspect the workflow states they store.\n\n\
A workflow module exports `run(workflow-id, input) -> result<json, string>` and may \
save, load, list and delete workflow states through the store. The host records each \
run: `running` before the call, then `completed` with the result or `failed` with the \
error.\n\n\
States are kept on a compacted Kafka topic (key = workflow id, value = JSON; a delete \
is a tombstone) and served from a cache rebuilt by replaying the topic at start. \
Give the brokers with --brokers or WF_KAFKA_BROKERS; without them wfhost starts \
librdkafka's in-process mock cluster, which keeps nothing after the process exits \
(`wfhost dev` keeps one running for other processes).",
    after_help = "Examples:\n  \
wfhost run pipeline.wasm --id pipeline-001 --input '\"start processing\"'\n  \
wfhost --output json run ledger.wasm --id ledger-1 --input '{\"action\":\"post\",\"account\":\"alice\",\"amounts\":[5]}'\n  \
wfhost dev    # then, in another shell: export WF_KAFKA_BROKERS=<the printed address>\n  \
wfhost --brokers kafka-1:9092 --kafka-prop security.protocol=sasl_ssl list --status running\n\n\
Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 when `run` (or a run `recover` resumed) ended with the workflow failed,\n\
4 when `recover` left runs of the module behind (they could not be resumed, or another build started them).\n\
Set RUST_LOG=info to see the host's and the guest's log lines on stderr."
)]
pub struct Cli {
    /// How to print states: `table` for people, `json` for programs (the stored wire format).
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Export traces (a span per workflow run and per store call, events
    /// per activity) over OTLP/HTTP to the collector at this base URL
    /// (traces go to URL/v1/traces). Off by default.
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub otlp_endpoint: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// Where states are kept. Each flag overrides a key of the configuration
/// (the file, then the environment): see `settings::overrides`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// A TOML config file (also WF_CONFIG; see README: store, max_value_bytes,
    /// max_history_events, max_cache_bytes, [kafka], [kafka.properties], [access]).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The backend: kafka (default) or memory (nothing kept, for quick tries).
    #[arg(long, value_enum, global = true)]
    pub store: Option<StoreKind>,

    /// Kafka bootstrap servers (also WF_KAFKA_BROKERS); without them wfhost
    /// starts an in-process mock cluster.
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    #[arg(long, global = true, help = format!(
        "The topic (also WF_KAFKA_TOPIC) [default: {}, the Go provider's]",
        KafkaConfig::default().topic
    ))]
    pub topic: Option<String>,

    #[arg(long, global = true, value_name = "N", help = format!(
        "Partitions of a topic wfhost creates [default: {}]",
        KafkaConfig::default().partitions
    ))]
    pub partitions: Option<i32>,

    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true, help = format!(
        "Replication factor of a topic wfhost creates [default: {}, the broker's]",
        KafkaConfig::default().replication
    ))]
    pub replication: Option<i32>,

    /// A librdkafka property for every client, e.g. security.protocol=sasl_ssl (repeatable).
    #[arg(long = "kafka-prop", global = true, value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_props: Vec<(String, String)>,

    #[arg(long, global = true, value_name = "SECONDS", help = format!(
        "Fail a save or delete the broker has not acknowledged within this many seconds [default: {}]",
        KafkaConfig::default().produce_timeout.as_secs_f64()
    ))]
    pub produce_timeout: Option<f64>,

    /// Serve a topic that is not compacted (it grows forever) instead of refusing it.
    #[arg(long, global = true)]
    pub accept_uncompacted: bool,

    /// Share the topic with the other hosts of this Kafka consumer group
    /// (also WF_GROUP): run and recover only the workflows of the partitions
    /// the group assigns this host, and take up a departed host's running
    /// workflows.
    #[arg(long, global = true, value_name = "GROUP_ID")]
    pub group: Option<String>,

    /// In a group, keep and read only the partitions this host owns, and
    /// read the others from their owners at the names they announced
    /// (give every host --member-name http://HOST:PORT): each host then
    /// holds about 1/n of the topic.
    #[arg(long, global = true)]
    pub owned_partitions_only: bool,

    /// The name this host announces to its group, given to clients sent
    /// elsewhere (its URL, say) [default: $HOSTNAME-PID].
    #[arg(long, global = true, value_name = "NAME")]
    pub member_name: Option<String>,

    /// Keep the Kafka store's cache on disk here, with a checkpoint per
    /// partition, so that a restart reads only the records written since
    /// (also WF_STATE_DIR; deleting it is always safe) [default:
    /// $XDG_CACHE_HOME/wf/state, else ~/.cache/wf/state].
    #[arg(long, global = true, value_name = "DIR", env = "WF_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Delete finished workflows this long after their last update, e.g.
    /// 30d, 12h (`wfhost serve`, for the partitions it owns) [default: never].
    #[arg(long, global = true, value_name = "PERIOD", value_parser = wf_store_kafka::parse_period)]
    pub retention: Option<std::time::Duration>,

    /// Keep the cache in memory instead, and replay the whole topic at every start.
    #[arg(long, global = true)]
    pub no_state_dir: bool,

    #[arg(long, global = true, value_name = "SECONDS", help = format!(
        "Seconds before the group gives a silent (crashed) host's workflows to others [default: {}]",
        KafkaConfig::default().session_timeout.as_secs_f64()
    ))]
    pub session_timeout: Option<f64>,

    #[arg(long, global = true, value_name = "BYTES", help = format!(
        "Largest encoded workflow state the store accepts, in bytes [default: {}]",
        StoreLimits::default().max_value_bytes
    ))]
    pub max_value_bytes: Option<usize>,

    #[arg(long, global = true, value_name = "N", help = format!(
        "Most history events one stored state may carry [default: {}]",
        StoreLimits::default().max_history_events
    ))]
    pub max_history_events: Option<usize>,

    #[arg(long, global = true, value_name = "BYTES", help = format!(
        "About how much memory cached states may take; past it, saves of new \
         workflow ids are refused [default: {}]",
        StoreLimits::default().max_cache_bytes
    ))]
    pub max_cache_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Kafka,
    Memory,
}

impl StoreKind {
    /// The backend's name in a configuration (`store = "kafka"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Memory => "memory",
        }
    }
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow module once and print the workflow's final state.
    Run {
        /// The workflow module: a .wasm component of world wf:workflow/workflow
        /// (or wf:workflow/queryable-workflow).
        module: PathBuf,
        /// The workflow id (1 to 1024 bytes, no control characters).
        #[arg(long)]
        id: String,
        /// The input, as JSON text (a JSON string needs its quotes: '"hello"').
        #[arg(long, default_value = "null", value_name = "JSON")]
        input: String,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Serve the HTTP API for workflows of one module until Ctrl-C or SIGTERM:
    /// POST /workflows/{id} (body = input) runs one, GET /workflows/{id} and
    /// GET /workflows?status= read, DELETE /workflows/{id} deletes,
    /// POST /workflows/{id}/cancel cancels (see `wfhost cancel`),
    /// POST /workflows/{id}/signals/{name} (body = payload) signals, GET
    /// /workflows/{id}/queries/{name}?args= queries. Suspended workflows are
    /// kept waiting and woken when due, with or without --recover.
    Serve {
        /// The workflow module.
        module: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
        listen: String,
        /// First run again the workflows left `running` (see `wfhost recover`).
        #[arg(long)]
        recover: bool,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run again, to their end, the stored workflows left `running` by a host
    /// that stopped or crashed, with their recorded input and history;
    /// activities already completed are not repeated.
    Recover {
        /// The workflow module the workflows belong to.
        module: PathBuf,
        /// Only workflows whose id starts with this.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// Also resume runs another build of the module (same file name,
        /// other content) started; their histories may not replay under
        /// this build.
        #[arg(long)]
        resume_other_builds: bool,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Cancel a workflow running in a `wfhost serve` process.
    Cancel {
        /// The workflow id.
        id: String,
        /// The serving wfhost's address.
        #[arg(
            long,
            env = "WF_SERVER",
            default_value = "http://127.0.0.1:8080",
            value_name = "URL"
        )]
        server: String,
    },
    /// List stored workflow states in ascending id order, one page at a time.
    List {
        /// Only workflows with this status.
        #[arg(long, value_parser = parse_status)]
        status: Option<WorkflowStatus>,
        #[arg(long, help = format!(
            "Page size (default {}, at most {})",
            StoreLimits::default().default_page_size,
            StoreLimits::default().max_page_size
        ))]
        limit: Option<u32>,
        /// Start after this workflow id (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// Only workflow ids starting with this.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
    },
    /// Print one workflow's stored state.
    Show {
        /// The workflow id.
        id: String,
    },
    /// Send a workflow a signal: a `signal_received` event appended to its
    /// history through the store (acknowledged before this returns), so it
    /// works whether the workflow runs, is suspended, or its host is down.
    /// A host that has it suspended wakes it (at once through --server,
    /// else within about a second per 5 000 workflows suspended there).
    Signal {
        /// The workflow id.
        id: String,
        /// The signal's name (1 to 256 bytes, no control characters or `|`).
        name: String,
        /// The signal's payload, as JSON text.
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
        /// Send it through this serving wfhost instead of the store.
        #[arg(long, env = "WF_SERVER", value_name = "URL")]
        server: Option<String>,
    },
    /// Ask a workflow a query: the module's query handler answers from the
    /// workflow's recorded state, writing nothing and waking nothing.
    Query {
        /// The workflow id.
        id: String,
        /// The query's name.
        name: String,
        /// The query's arguments, as JSON text.
        #[arg(long, value_name = "JSON", default_value = "null")]
        args: String,
        /// Answer with this module, against the store, here; without it,
        /// ask the serving wfhost at --server.
        #[arg(long, value_name = "MODULE")]
        module: Option<PathBuf>,
        /// The serving wfhost's address, when no --module is given.
        #[arg(
            long,
            env = "WF_SERVER",
            default_value = "http://127.0.0.1:8080",
            value_name = "URL"
        )]
        server: String,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Delete one workflow's stored state (succeeds if it is absent).
    Delete {
        /// The workflow id.
        id: String,
    },
    /// Replay the topic once and report its partitions, offsets, live keys,
    /// tombstones and skipped (undecodable) records.
    Topic,
    /// Run librdkafka's in-process mock Kafka cluster with the topic created,
    /// until Ctrl-C, so that kcat or other wfhost processes can connect.
    Dev,
}

/// The bounds `serve` holds its HTTP clients to.
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTP server")]
pub struct ServerArgs {
    /// Close a connection that has not sent a whole request head within
    /// this many seconds (from its start or its previous response: also
    /// the idle timeout of a kept-alive connection).
    #[arg(long, default_value_t = ServerConfig::default().header_timeout.as_secs_f64(), value_name = "SECONDS")]
    pub header_timeout: f64,
    /// Answer 408 to a request whose body has not arrived within this many seconds.
    #[arg(long, default_value_t = ServerConfig::default().body_timeout.as_secs_f64(), value_name = "SECONDS")]
    pub body_timeout: f64,
    /// Largest request body, in bytes [default: the store's --max-value-bytes].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Connections open at once; one past it gets a 503 and is closed.
    #[arg(long, default_value_t = ServerConfig::default().max_connections, value_name = "N")]
    pub max_connections: usize,
    /// Requests handled at once; one past it gets a 503 (a start that
    /// waits for its workflow's end holds one meanwhile).
    #[arg(long, default_value_t = ServerConfig::default().max_in_flight, value_name = "N")]
    pub max_in_flight: usize,
    /// On Ctrl-C or SIGTERM, wait this many seconds at most for the
    /// requests in flight, then close their connections and hand over.
    #[arg(long, default_value_t = ServerConfig::default().shutdown_grace.as_secs_f64(), value_name = "SECONDS")]
    pub shutdown_grace: f64,
    /// Let GET /status describe the store with its address (brokers and
    /// topic); without it, /status names only the store's kind.
    #[arg(long)]
    pub status_shows_store: bool,
    /// Do not serve the web console at /ui.
    #[arg(long)]
    pub no_console: bool,
}

/// The sandbox and limits of the workflows a command runs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sandbox and limits")]
pub struct SandboxArgs {
    /// Fail a workflow whose run takes longer than this many seconds.
    #[arg(long, default_value_t = HostConfig::default().timeout.as_secs_f64(), value_name = "SECONDS")]
    pub timeout: f64,
    /// Largest linear memory the module may use, in MiB.
    #[arg(long, default_value_t = HostConfig::default().memory_limit_bytes / (1024 * 1024), value_name = "MIB")]
    pub memory_limit: usize,
    /// Fail a workflow after this much fuel (about one unit per wasm instruction).
    #[arg(long, value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Let the module use a host directory, at the same path, read-only unless
    /// `:rw` (repeatable). Nothing else on the host is visible to it.
    #[arg(long = "grant-dir", value_name = "PATH[:ro|rw]", value_parser = parse_grant)]
    pub grant_dirs: Vec<DirGrant>,
    /// Let the module run and reach only workflow ids starting with this
    /// (repeatable; adds to the config file's [access] id_prefixes). Other ids
    /// get `store-error::denied`, and `list` shows only these.
    #[arg(long = "allow-prefix", value_name = "PREFIX")]
    pub allow_prefixes: Vec<String>,
    /// Where compiled modules are cached [default: ~/.cache/wf/modules].
    #[arg(long, env = "WF_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the module without the on-disk cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Run at most this many workflows at once.
    #[arg(long, default_value_t = HostConfig::default().max_running, value_name = "N")]
    pub max_running: usize,
    /// When --max-running workflows run: wait for one to end, or refuse the
    /// new one (HTTP 503 from `serve`).
    #[arg(long, value_enum, default_value_t = WhenFullArg::Wait)]
    pub when_full: WhenFullArg,
    /// What a start of an id that already has a run does:
    /// reject-duplicate returns that run (running or ended) instead of
    /// starting another; allow-duplicate-failed-only starts a run again
    /// over one that failed or was canceled; allow-duplicate always starts.
    #[arg(long, value_name = "POLICY", default_value_t = IdReuse::default().as_str().to_owned(), value_parser = parse_id_reuse)]
    pub id_reuse: String,
}

fn parse_id_reuse(text: &str) -> Result<String, String> {
    text.parse::<IdReuse>()
        .map(|policy| policy.as_str().to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WhenFullArg {
    Wait,
    Refuse,
}

fn parse_grant(text: &str) -> Result<DirGrant, String> {
    DirGrant::parse(text).map_err(|e| e.to_string())
}

fn parse_status(text: &str) -> Result<WorkflowStatus, String> {
    text.parse().map_err(|_| {
        let names: Vec<_> = WorkflowStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown status {text:?}; expected one of: {}",
            names.join(", ")
        )
    })
}
