//! Argument parsing, commands and output of `wfhost`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use wf_host::config::{self, Backend, ConfigFile, StoreConfig};
use wf_host::model::{self, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::kafka::{MOCK_CLUSTER_BOUNDS, ReplayProgress, ReplayReport};
use wf_host::store::{DevCluster, KafkaConfig, KafkaStore, ListFilter, WorkflowStore};
use wf_host::{
    AccessPolicy, DirGrant, Host, HostConfig, Module, ModuleOptions, RecoverOptions, WhenFull,
};

/// Exit code when `run` finished but the workflow ended `failed` or `canceled`.
const EXIT_WORKFLOW_FAILED: u8 = 3;

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
Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 when `run` ended with the workflow failed.\n\
Set RUST_LOG=info to see the host's and the guest's log lines on stderr."
)]
struct Cli {
    /// How to print states: `table` for people, `json` for programs (the stored wire format).
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,

    #[command(flatten)]
    store: StoreArgs,

    #[command(subcommand)]
    command: Command,
}

/// Where states are kept. Flags and environment override the config file.
#[derive(Debug, Args)]
struct StoreArgs {
    /// A TOML config file (see README: store, max_value_bytes, max_history_events,
    /// max_cache_bytes, [kafka], [kafka.properties], [access]).
    #[arg(long, env = "WF_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The backend: kafka (default) or memory (nothing kept, for quick tries).
    #[arg(long, value_enum, global = true)]
    store: Option<StoreKind>,

    /// Kafka bootstrap servers; without them wfhost starts an in-process mock cluster.
    #[arg(
        long,
        env = "WF_KAFKA_BROKERS",
        global = true,
        value_name = "HOST:PORT,..."
    )]
    brokers: Option<String>,

    /// The topic [default: beluga-workflows, the Go provider's].
    #[arg(long, env = "WF_KAFKA_TOPIC", global = true)]
    topic: Option<String>,

    /// Partitions of a topic wfhost creates [default: 12].
    #[arg(long, global = true, value_name = "N")]
    partitions: Option<i32>,

    /// Replication factor of a topic wfhost creates [default: -1, the broker's].
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true)]
    replication: Option<i32>,

    /// A librdkafka property for every client, e.g. security.protocol=sasl_ssl (repeatable).
    #[arg(long = "kafka-prop", global = true, value_name = "KEY=VALUE", value_parser = parse_property)]
    kafka_props: Vec<(String, String)>,

    /// Fail a save or delete the broker has not acknowledged within this many seconds [default: 30].
    #[arg(long, global = true, value_name = "SECONDS")]
    produce_timeout: Option<f64>,

    /// Serve a topic that is not compacted (it grows forever) instead of refusing it.
    #[arg(long, global = true)]
    accept_uncompacted: bool,

    /// Share the topic with the other hosts of this Kafka consumer group:
    /// run and recover only the workflows of the partitions the group
    /// assigns this host, and take up a departed host's running workflows.
    #[arg(long, env = "WF_GROUP", global = true, value_name = "GROUP_ID")]
    group: Option<String>,

    /// The name this host announces to its group, given to clients sent
    /// elsewhere (its URL, say) [default: $HOSTNAME-PID].
    #[arg(long, global = true, value_name = "NAME")]
    member_name: Option<String>,

    /// Seconds before the group gives a silent (crashed) host's workflows to
    /// others [default: 10].
    #[arg(long, global = true, value_name = "SECONDS")]
    session_timeout: Option<f64>,

    /// Largest encoded workflow state the store accepts, in bytes [default: 1048576].
    #[arg(long, global = true, value_name = "BYTES")]
    max_value_bytes: Option<usize>,

    /// Most history events one stored state may carry [default: 10000].
    #[arg(long, global = true, value_name = "N")]
    max_history_events: Option<usize>,

    /// About how much memory cached states may take; past it, saves of new
    /// workflow ids are refused [default: 1073741824].
    #[arg(long, global = true, value_name = "BYTES")]
    max_cache_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Kafka,
    Memory,
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
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workflow module once and print the workflow's final state.
    Run {
        /// The workflow module: a .wasm component of world wf:workflow/workflow.
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
    /// POST /workflows/{id}/cancel cancels (see `wfhost cancel`).
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
        /// Page size (default 100, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this workflow id (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// Print one workflow's stored state.
    Show {
        /// The workflow id.
        id: String,
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

/// The sandbox and limits of the workflows a command runs.
#[derive(Debug, Args)]
struct SandboxArgs {
    /// Fail a workflow whose run takes longer than this many seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    timeout: f64,
    /// Largest linear memory the module may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory_limit: usize,
    /// Fail a workflow after this much fuel (about one unit per wasm instruction).
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Let the module use a host directory, at the same path, read-only unless
    /// `:rw` (repeatable). Nothing else on the host is visible to it.
    #[arg(long = "grant-dir", value_name = "PATH[:ro|rw]", value_parser = parse_grant)]
    grant_dirs: Vec<DirGrant>,
    /// Let the module run and reach only workflow ids starting with this
    /// (repeatable; adds to the config file's [access] id_prefixes). Other ids
    /// get `store-error::denied`, and `list` shows only these.
    #[arg(long = "allow-prefix", value_name = "PREFIX")]
    allow_prefixes: Vec<String>,
    /// Where compiled modules are cached [default: ~/.cache/wf/modules].
    #[arg(long, env = "WF_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the module without the on-disk cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Run at most this many workflows at once.
    #[arg(long, default_value_t = HostConfig::default().max_running, value_name = "N")]
    max_running: usize,
    /// When --max-running workflows run: wait for one to end, or refuse the
    /// new one (HTTP 503 from `serve`).
    #[arg(long, value_enum, default_value_t = WhenFullArg::Wait)]
    when_full: WhenFullArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WhenFullArg {
    Wait,
    Refuse,
}

impl SandboxArgs {
    /// A host on `store` with these limits, and the module loaded into it
    /// with these grants and the access policy of the flags and `file`.
    fn host(
        &self,
        store: &Arc<dyn WorkflowStore>,
        module: &Path,
        file: &ConfigFile,
    ) -> anyhow::Result<(Host, Module)> {
        let timeout = Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .with_context(|| {
                format!(
                    "--timeout must be a positive number of seconds, got {}",
                    self.timeout
                )
            })?;
        if self.fuel == Some(0) {
            bail!("--fuel must be positive");
        }
        if self.max_running == 0 {
            bail!("--max-running must be at least 1");
        }
        if self.memory_limit == 0 {
            bail!("--memory-limit must be at least 1 (MiB)");
        }
        let config = HostConfig {
            timeout,
            memory_limit_bytes: self.memory_limit.saturating_mul(1024 * 1024),
            fuel: self.fuel,
            max_running: self.max_running,
            when_full: match self.when_full {
                WhenFullArg::Wait => WhenFull::Wait,
                WhenFullArg::Refuse => WhenFull::Refuse,
            },
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir
                    .clone()
                    .or_else(HostConfig::default_cache_dir)
            },
            ..HostConfig::default()
        };
        let host = Host::with_config(store.clone(), config)?;
        let mut id_prefixes = file.access.id_prefixes.clone();
        id_prefixes.extend(self.allow_prefixes.iter().cloned());
        if id_prefixes.iter().any(String::is_empty) {
            bail!("an allowed id prefix must not be empty (omit --allow-prefix to allow every id)");
        }
        let options = ModuleOptions {
            grants: self.grant_dirs.clone(),
            access: AccessPolicy { id_prefixes },
            ..ModuleOptions::default()
        };
        let module = host.load_module_file_with(module, options)?;
        Ok((host, module))
    }
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

/// Parses arguments, runs the command, prints errors as one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wfhost: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfhost: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Read once: it gives both the store and the modules' access policy.
    let file = config_file(&cli.store)?;
    let (config, brokers_given) = store_config(&cli.store, &file)?;
    match &cli.command {
        Command::Dev => return dev(config).await,
        Command::Cancel { id, server } => return cancel(server, id).await,
        _ => {}
    }
    // The mock cluster lives on this thread for the whole command (it is not Send).
    let mut _dev_cluster = None;
    let config = match config {
        StoreConfig::Kafka(mut kafka) if !brokers_given => {
            let cluster = DevCluster::start(&kafka.topic, kafka.partitions)?;
            kafka.brokers = cluster.bootstrap_servers();
            eprintln!(
                "wfhost: no brokers configured (--brokers, WF_KAFKA_BROKERS or the config file); \
                 started librdkafka's in-process mock Kafka cluster at {} with topic {} ({} partitions); \
                 {MOCK_CLUSTER_BOUNDS}.",
                kafka.brokers, kafka.topic, kafka.partitions
            );
            _dev_cluster = Some(cluster);
            StoreConfig::Kafka(kafka)
        }
        other => other,
    };
    let (store, kafka) = open_store(&config).await?;
    let result = command(&cli, &file, &store, kafka.as_deref()).await;
    store.close().await.context("closing the store")?;
    result
}

/// The config file the flags or environment name, or the defaults.
fn config_file(args: &StoreArgs) -> anyhow::Result<ConfigFile> {
    match &args.config {
        Some(path) => ConfigFile::load(path),
        None => Ok(ConfigFile::default()),
    }
}

/// The store the flags, environment and config file describe, and whether
/// they named brokers.
fn store_config(args: &StoreArgs, file: &ConfigFile) -> anyhow::Result<(StoreConfig, bool)> {
    let backend = match args.store {
        Some(StoreKind::Kafka) => Backend::Kafka,
        Some(StoreKind::Memory) => Backend::Memory,
        None => file.store,
    };
    let mut limits = file.limits();
    if let Some(max) = args.max_value_bytes {
        limits.max_value_bytes = max;
    }
    if let Some(max) = args.max_history_events {
        limits.max_history_events = max;
    }
    if let Some(max) = args.max_cache_bytes {
        limits.max_cache_bytes = max;
    }
    if backend == Backend::Memory {
        return Ok((StoreConfig::Memory { limits }, false));
    }
    let mut kafka: KafkaConfig = file.kafka_config()?.limits(limits);
    if let Some(brokers) = &args.brokers {
        kafka.brokers = brokers.clone();
    }
    if let Some(topic) = &args.topic {
        kafka.topic = topic.clone();
    }
    if let Some(partitions) = args.partitions {
        kafka.partitions = partitions;
    }
    if let Some(replication) = args.replication {
        kafka.replication = replication;
    }
    if let Some(secs) = args.produce_timeout {
        kafka.produce_timeout = config::seconds("--produce-timeout", secs)?;
    }
    kafka.accept_uncompacted |= args.accept_uncompacted;
    if let Some(group) = &args.group {
        kafka.group_id = Some(group.clone());
    }
    if let Some(name) = &args.member_name {
        kafka.member_name = Some(name.clone());
    }
    if let Some(secs) = args.session_timeout {
        kafka.session_timeout = config::seconds("--session-timeout", secs)?;
    }
    kafka.properties.extend(args.kafka_props.iter().cloned());
    let brokers_given = !kafka.brokers.trim().is_empty();
    Ok((StoreConfig::Kafka(kafka), brokers_given))
}

/// Opens the store; for Kafka, shows a progress bar while a long replay runs.
async fn open_store(
    config: &StoreConfig,
) -> anyhow::Result<(Arc<dyn WorkflowStore>, Option<Arc<KafkaStore>>)> {
    let StoreConfig::Kafka(kafka) = config else {
        return Ok((config.open().await?, None));
    };
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replaying {msg} [{bar:30}] {pos}/{len} records ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(kafka.topic.clone());
    let observer_bar = bar.clone();
    let observer = Box::new(move |progress: &ReplayProgress| {
        observer_bar.set_length(progress.records + progress.remaining);
        observer_bar.set_position(progress.records);
    });
    let opened = KafkaStore::open_observed(kafka.clone(), Some(observer)).await;
    bar.finish_and_clear();
    let store = Arc::new(opened?);
    let report = store.replay_report();
    if report.skipped > 0 {
        eprintln!(
            "wfhost: warning: skipped {} records of topic {} that are not workflow states \
             (RUST_LOG=warn lists their partitions and offsets)",
            report.skipped, report.topic
        );
    }
    Ok((store.clone(), Some(store)))
}

/// Exit status for a workflow's final state.
fn exit_code(state: &WorkflowState) -> ExitCode {
    match state.status {
        WorkflowStatus::Completed | WorkflowStatus::Running => ExitCode::SUCCESS,
        WorkflowStatus::Failed | WorkflowStatus::Canceled => ExitCode::from(EXIT_WORKFLOW_FAILED),
    }
}

/// `wfhost serve`: the HTTP API until Ctrl-C or SIGTERM, then waits for the
/// requests in flight. Workflows started without waiting and still running
/// are left `running` in the store, for `recover`.
async fn serve(
    host: Host,
    module: Module,
    listen: &str,
    recover: bool,
) -> anyhow::Result<ExitCode> {
    // In a group, ownership decides: the partitions this host is given
    // (now and whenever a host leaves) have their running workflows taken up.
    let follower = host.follow_ownership(&module);
    if follower.is_some() {
        eprintln!(
            "wfhost serve: in group {}; taking up the running workflows of the partitions it assigns",
            host.store_for(&module)
                .ownership()
                .map(|o| o.group().to_owned())
                .unwrap_or_default()
        );
    } else if recover {
        let handles = host.recover(&module, RecoverOptions::default()).await?;
        eprintln!(
            "wfhost serve: recovering {} workflows left running",
            handles.len()
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let app = wf_host::http::router(host.clone(), module);
    println!("listening: http://{address}");
    use std::io::Write as _;
    std::io::stdout().flush().context("writing to stdout")?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            if let Err(e) = wait_for_shutdown().await {
                eprintln!("wfhost serve: {e:#}");
            }
        })
        .await
        .context("serving HTTP")?;
    if let Some(follower) = follower {
        // Hand the running workflows over: their next owner resumes them.
        follower.abort();
        host.abandon_all().await;
    }
    let running = host.running();
    if !running.is_empty() {
        // Their `running` states stay stored: `wfhost recover` (or
        // `serve --recover`) takes them up again.
        eprintln!(
            "wfhost serve: stopped with {} workflows running; they stay `running` for `wfhost recover`",
            running.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `wfhost cancel`: asks a serving wfhost to cancel a workflow.
async fn cancel(server: &str, id: &str) -> anyhow::Result<ExitCode> {
    let base = server.trim_end_matches('/');
    let mut url = reqwest::Url::parse(base).with_context(|| {
        format!("--server must be a URL such as http://127.0.0.1:8080, got {server:?}")
    })?;
    // Segments are percent-encoded: an id may hold `/`, `?` or spaces.
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(["workflows", id, "cancel"]);
    let response = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .with_context(|| format!("reaching wfhost serve at {base}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        eprintln!("wfhost: canceled {id:?}");
        return Ok(ExitCode::SUCCESS);
    }
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(body);
    bail!("{base} refused to cancel {id:?} ({status}): {message}")
}

/// `wfhost dev`: a mock cluster for other processes, until Ctrl-C.
async fn dev(config: StoreConfig) -> anyhow::Result<ExitCode> {
    let StoreConfig::Kafka(kafka) = config else {
        bail!("`wfhost dev` runs a Kafka broker; it does not apply to --store memory");
    };
    if !kafka.brokers.trim().is_empty() {
        bail!(
            "`wfhost dev` starts its own broker; do not give --brokers (or unset WF_KAFKA_BROKERS)"
        );
    }
    let cluster = DevCluster::start(&kafka.topic, kafka.partitions)?;
    let brokers = cluster.bootstrap_servers();
    println!("brokers: {brokers}");
    println!("topic:   {} ({} partitions)", kafka.topic, kafka.partitions);
    println!();
    println!("librdkafka's in-process mock Kafka cluster is running; {MOCK_CLUSTER_BOUNDS}.");
    println!("Use it from other shells:");
    println!("  export WF_KAFKA_BROKERS={brokers}");
    println!("  wfhost run pipeline.wasm --id pipeline-001 --input '\"start processing\"'");
    println!(
        "  kcat -b {brokers} -t {} -C -e -Z -f '%k %s\\n'",
        kafka.topic
    );
    println!("Press Ctrl-C to stop.");
    use std::io::Write as _;
    std::io::stdout().flush().context("writing to stdout")?;
    wait_for_shutdown().await?;
    drop(cluster);
    eprintln!("wfhost dev: stopped; the mock cluster's records are gone");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_shutdown() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}

async fn command(
    cli: &Cli,
    file: &ConfigFile,
    store: &Arc<dyn WorkflowStore>,
    kafka: Option<&KafkaStore>,
) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run {
            module,
            id,
            input,
            sandbox,
        } => {
            let (host, module) = sandbox.host(store, module, file)?;
            let state = host.run(&module, id, input).await?;
            print_state(cli.output, &state)?;
            Ok(exit_code(&state))
        }
        Command::Serve {
            module,
            listen,
            recover,
            sandbox,
        } => {
            let (host, module) = sandbox.host(store, module, file)?;
            serve(host, module, listen, *recover).await
        }
        Command::Recover {
            module,
            prefix,
            sandbox,
        } => {
            let (host, module) = sandbox.host(store, module, file)?;
            let options = RecoverOptions {
                id_prefix: prefix.clone(),
                ..RecoverOptions::default()
            };
            let handles = host.recover(&module, options).await?;
            if handles.is_empty() {
                eprintln!(
                    "wfhost: no workflows left running (store: {})",
                    store.describe()
                );
            }
            let mut code = ExitCode::SUCCESS;
            let mut states = Vec::new();
            for handle in handles {
                let state = handle.result().await?;
                if exit_code(&state) != ExitCode::SUCCESS {
                    code = ExitCode::from(EXIT_WORKFLOW_FAILED);
                }
                states.push(Arc::new(state));
            }
            print_list(cli.output, &states)?;
            Ok(code)
        }
        Command::Cancel { .. } => unreachable!("handled before a store is opened"),
        Command::List {
            status,
            limit,
            after,
        } => {
            let filter = ListFilter {
                status: *status,
                limit: *limit,
                after: after.clone(),
            };
            let states = store.list(&filter).await?;
            print_list(cli.output, &states)?;
            if states.is_empty() {
                eprintln!("wfhost: no workflows (store: {})", store.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id } => match store.load(id).await? {
            Some(state) => {
                print_state(cli.output, &state)?;
                Ok(ExitCode::SUCCESS)
            }
            None => bail!("no workflow {id:?} (store: {})", store.describe()),
        },
        Command::Delete { id } => {
            store.delete(id).await?;
            eprintln!("wfhost: deleted {id:?}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Topic => {
            let Some(kafka) = kafka else {
                bail!(
                    "`wfhost topic` reports a Kafka topic; the store is {}",
                    store.describe()
                );
            };
            print_topic(cli.output, kafka.replay_report(), &kafka.config().brokers);
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev => unreachable!("handled before a store is opened"),
    }
}

fn print_topic(output: Output, report: &ReplayReport, brokers: &str) {
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
                "skipped:     {} (records that are not workflow states)",
                report.skipped
            );
        }
    }
}

fn wire_json(state: &WorkflowState) -> anyhow::Result<String> {
    let bytes = model::encode_state(state).context("encoding the state")?;
    String::from_utf8(bytes).context("the encoded state is not UTF-8")
}

fn print_state(output: Output, state: &WorkflowState) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", wire_json(state)?),
        Output::Table => print!("{}", state_table(state)),
    }
    Ok(())
}

fn print_list(output: Output, states: &[Arc<WorkflowState>]) -> anyhow::Result<()> {
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
    let _ = writeln!(out, "history:   {} events", s.history.len());
    for e in &s.history {
        let mut detail = e.activity_name.clone();
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
