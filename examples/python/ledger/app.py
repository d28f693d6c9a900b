"""A ledger: each account is a balance record plus one record per entry, all
in the workflow store. Posting loads and updates them; closing deletes them.
The same workflow as examples/rust/ledger, in Python."""

import wf_guest
from wf_guest import Context, InputError, Store, Timestamp, WorkflowError, WorkflowState, WorkflowStatus


def balance_id(account: str) -> str:
    return f"ledger/{account}"


def entry_prefix(account: str) -> str:
    return f"ledger/{account}/entry-"


def run(ctx: Context, request) -> dict:
    if not isinstance(request, dict) or request.get("action") not in ("post", "close"):
        raise InputError('expected {"action": "post" | "close", "account": ..., ...}')
    account = request.get("account")
    if not isinstance(account, str):
        raise InputError("the account must be a string")
    if request["action"] == "post":
        amounts = request.get("amounts")
        if not isinstance(amounts, list) or not all(type(a) is int for a in amounts):
            raise InputError("amounts must be a list of integers")
        return post(ctx.store, account, amounts)
    return close(ctx.store, account)


def post(store: Store, account: str, amounts: list) -> dict:
    if not account or "/" in account:
        raise WorkflowError(f"bad account name {account!r}")
    record = store.load(balance_id(account)) or WorkflowState.new(
        balance_id(account), status=WorkflowStatus.COMPLETED)
    current = record.result_value() or {"balance": 0, "entries": 0}

    # Check every amount before writing anything, so a refused post leaves
    # the ledger as it was.
    balance = current["balance"]
    for amount in amounts:
        if balance + amount < 0:
            raise WorkflowError(f"insufficient funds for {amount} on balance {balance}")
        balance += amount

    entries = current["entries"]
    for amount in amounts:
        entries += 1
        store.save(WorkflowState.new(f"{entry_prefix(account)}{entries:06}",
                                     status=WorkflowStatus.COMPLETED, input=amount, result=amount))
    record.set_result({"balance": balance, "entries": entries})
    record.updated_at = Timestamp.now()
    store.save(record)
    return {"account": account, "balance": balance, "entries": entries, "deleted": 0}


def close(store: Store, account: str) -> dict:
    record = store.load(balance_id(account))
    if record is None:
        raise WorkflowError(f"no account {account!r}")
    last = record.result_value() or {"balance": 0, "entries": 0}

    prefix = entry_prefix(account)
    deleted = 0
    while True:
        # Deleted as they are read: each page is the next entries.
        entries = store.list(prefix=prefix, limit=100)
        if not entries:
            break
        for entry in entries:
            store.delete(entry.workflow_id)
            deleted += 1
    store.delete(balance_id(account))
    return {"account": account, "balance": last["balance"], "entries": last["entries"],
            "deleted": deleted + 1}


WitWorld = wf_guest.workflow(run)
