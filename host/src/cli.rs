//! Argument parsing, commands and output of `wfhost`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use wf_host::config::StoreConfig;
use wf_host::model::{self, Timestamp, WorkflowState, WorkflowStatus};
use wf_host::store::{ListFilter, StoreLimits, WorkflowStore};
use wf_host::{Host, HostConfig};

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
The store is in memory: each wfhost process starts empty and keeps nothing after it exits.",
    after_help = "Examples:\n  \
wfhost run pipeline.wasm --id pipeline-001 --input '\"start processing\"'\n  \
wfhost --output json run ledger.wasm --id ledger-1 --input '{\"action\":\"post\",\"account\":\"alice\",\"amounts\":[5]}'\n\n\
Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 when `run` ended with the workflow failed.\n\
Set RUST_LOG=info to see the host's and the guest's log lines on stderr."
)]
struct Cli {
    /// How to print states: `table` for people, `json` for programs (the stored wire format).
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,

    /// Largest encoded workflow state the store accepts, in bytes.
    #[arg(long, default_value_t = StoreLimits::default().max_value_bytes, global = true, value_name = "BYTES")]
    max_value_bytes: usize,

    #[command(subcommand)]
    command: Command,
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
        /// Fail the workflow if `run` takes longer than this many seconds.
        #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
        timeout: f64,
        /// Largest linear memory the module may use, in MiB.
        #[arg(long, default_value_t = 64, value_name = "MIB")]
        memory_limit: usize,
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
    let limits = StoreLimits {
        max_value_bytes: cli.max_value_bytes,
        ..StoreLimits::default()
    };
    let store = StoreConfig::Memory { limits }.open().await?;
    let result = command(&cli, &store).await;
    store.close().await.context("closing the store")?;
    result
}

async fn command(cli: &Cli, store: &Arc<dyn WorkflowStore>) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run {
            module,
            id,
            input,
            timeout,
            memory_limit,
        } => {
            let timeout = Duration::try_from_secs_f64(*timeout)
                .ok()
                .filter(|t| !t.is_zero())
                .with_context(|| {
                    format!("--timeout must be a positive number of seconds, got {timeout}")
                })?;
            let config = HostConfig {
                timeout,
                memory_limit_bytes: memory_limit.saturating_mul(1024 * 1024),
                ..HostConfig::default()
            };
            let host = Host::with_config(store.clone(), config)?;
            let module = host.load_module_file(module)?;
            let state = host.execute(&module, id, input).await?;
            print_state(cli.output, &state)?;
            Ok(match state.status {
                WorkflowStatus::Completed | WorkflowStatus::Running => ExitCode::SUCCESS,
                WorkflowStatus::Failed | WorkflowStatus::Canceled => {
                    ExitCode::from(EXIT_WORKFLOW_FAILED)
                }
            })
        }
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
