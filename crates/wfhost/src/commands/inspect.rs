//! `wfhost list`, `show`, `delete` and `topic`: the store as it is.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use wf_host::model::WorkflowStatus;
use wf_host::store::{ListFilter, WorkflowStore};

use crate::args::Output;
use crate::output::{print_list, print_state, print_topic};

/// `wfhost list`: one page.
pub async fn list(
    store: &Arc<dyn WorkflowStore>,
    status: Option<WorkflowStatus>,
    limit: Option<u32>,
    after: Option<String>,
    prefix: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let mut filter = ListFilter::default();
    filter.status = status;
    filter.limit = limit;
    filter.after = after;
    filter.prefix = prefix;
    let states = store.list(&filter).await?;
    print_list(output, &states)?;
    if states.is_empty() {
        eprintln!("wfhost: no workflows (store: {})", store.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// `wfhost show`: one state.
pub async fn show(
    store: &Arc<dyn WorkflowStore>,
    id: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    match store.load(id).await? {
        Some(state) => {
            print_state(output, &state)?;
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("no workflow {id:?} (store: {})", store.describe()),
    }
}

/// `wfhost delete`.
pub async fn delete(store: &Arc<dyn WorkflowStore>, id: &str) -> anyhow::Result<ExitCode> {
    store.delete(id).await?;
    eprintln!("wfhost: deleted {id:?}");
    Ok(ExitCode::SUCCESS)
}

/// `wfhost topic`: what the replay at open read.
pub fn topic(store: &Arc<dyn WorkflowStore>, output: Output) -> anyhow::Result<ExitCode> {
    let Ok(kafka) = wf_store_kafka::as_kafka(store) else {
        bail!(
            "`wfhost topic` reports a Kafka topic; the store is {}",
            store.describe()
        );
    };
    let config = kafka.config();
    let retention =
        (config.retention.is_some() || !config.retention_by_module.is_empty()).then(|| {
            let mut periods: Vec<String> = config
                .retention
                .map(wf_store_kafka::format_period)
                .into_iter()
                .collect();
            periods.extend(config.retention_by_module.iter().map(|(module, period)| {
                format!("{module}: {}", wf_store_kafka::format_period(*period))
            }));
            let expired = kafka.expired_ids(std::time::SystemTime::now()).len();
            (periods.join(", "), expired)
        });
    print_topic(
        output,
        kafka.replay_report(),
        &kafka.config().brokers,
        retention,
    );
    Ok(ExitCode::SUCCESS)
}
