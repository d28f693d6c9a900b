//! A ledger: each account is a balance record plus one record per entry, all
//! in the workflow store. Posting loads and updates them; closing deletes them.

use serde::{Deserialize, Serialize};
use wf_guest::{Context, ListFilter, Store, StoreError, WorkflowState};

/// The workflow input: post entries to an account, or close it.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Request {
    /// Post signed amounts (deposits positive, withdrawals negative).
    Post { account: String, amounts: Vec<i64> },
    /// Delete the account's balance and every entry.
    Close { account: String },
}

/// The balance record's result.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Balance {
    balance: i64,
    entries: u64,
}

/// The workflow result.
#[derive(Debug, Serialize)]
struct Outcome {
    account: String,
    balance: i64,
    entries: u64,
    /// Records removed by `close`.
    deleted: usize,
}

fn balance_id(account: &str) -> String {
    format!("ledger/{account}")
}

fn entry_prefix(account: &str) -> String {
    format!("ledger/{account}/entry-")
}

fn run(ctx: &Context, request: Request) -> Result<Outcome, String> {
    match request {
        Request::Post { account, amounts } => post(ctx.store(), &account, &amounts),
        Request::Close { account } => close(ctx.store(), &account),
    }
    .map_err(|e| e.to_string())
}

fn post(store: &Store, account: &str, amounts: &[i64]) -> Result<Outcome, Error> {
    if account.is_empty() || account.contains('/') {
        return Err(Error::Rejected(format!("bad account name {account:?}")));
    }
    let id = balance_id(account);
    // A record, not a run: `new` makes it `completed`, and recovery never
    // resumes what a guest saves, whatever its status.
    let mut record = store
        .load(&id)?
        .unwrap_or_else(|| WorkflowState::new(id.clone()));
    let mut current: Balance = record.result_as()?.unwrap_or_default();

    // Check every amount before writing anything, so a refused post leaves
    // the ledger as it was.
    let mut balance = current.balance;
    for amount in amounts {
        balance = balance
            .checked_add(*amount)
            .filter(|b| *b >= 0)
            .ok_or_else(|| {
                Error::Rejected(format!(
                    "insufficient funds for {amount} on balance {balance}"
                ))
            })?;
    }

    for amount in amounts {
        current.entries += 1;
        let mut entry =
            WorkflowState::new(format!("{}{:06}", entry_prefix(account), current.entries));
        entry.set_input(amount)?;
        entry.set_result(amount)?;
        store.save(&entry)?;
    }
    current.balance = balance;
    record.set_result(&current)?;
    record.updated_at = wf_guest::Timestamp::now();
    store.save(&record)?;
    Ok(Outcome {
        account: account.to_string(),
        balance: current.balance,
        entries: current.entries,
        deleted: 0,
    })
}

fn close(store: &Store, account: &str) -> Result<Outcome, Error> {
    let id = balance_id(account);
    let record = store
        .load(&id)?
        .ok_or_else(|| Error::Rejected(format!("no account {account:?}")))?;
    let last: Balance = record.result_as()?.unwrap_or_default();

    let prefix = entry_prefix(account);
    let mut deleted = 0;
    loop {
        // Deleted as they are read: each page is the next entries.
        let entries = store.list(&ListFilter::new().prefix(prefix.clone()).limit(100))?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            store.delete(&entry.workflow_id)?;
            deleted += 1;
        }
    }
    store.delete(&id)?;
    Ok(Outcome {
        account: account.to_string(),
        balance: last.balance,
        entries: last.entries,
        deleted: deleted + 1,
    })
}

/// What can go wrong, kept apart so the message says which.
#[derive(Debug)]
enum Error {
    Store(StoreError),
    Json(serde_json::Error),
    Rejected(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => write!(f, "store: {e}"),
            Error::Json(e) => write!(f, "bad ledger record: {e}"),
            Error::Rejected(m) => f.write_str(m),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

wf_guest::export!(run);
