// A ledger: each account is a balance record plus one record per entry, all
// in the workflow store. Posting loads and updates them; closing deletes them.
// The same workflow as examples/rust/ledger, in JavaScript.

import { workflow, InputError, WorkflowError, WorkflowState, WorkflowStatus } from './wf-guest.js';

const balanceId = (account) => `ledger/${account}`;
const entryPrefix = (account) => `ledger/${account}/entry-`;

export const run = workflow((ctx, request) => {
  if (!request || typeof request !== 'object' || !['post', 'close'].includes(request.action)) {
    throw new InputError('expected {"action": "post" | "close", "account": ..., ...}');
  }
  if (typeof request.account !== 'string') throw new InputError('the account must be a string');
  if (request.action === 'post') {
    const { amounts } = request;
    if (!Array.isArray(amounts) || !amounts.every(Number.isSafeInteger)) {
      throw new InputError('amounts must be a list of integers');
    }
    return post(ctx.store, request.account, amounts);
  }
  return close(ctx.store, request.account);
});

function post(store, account, amounts) {
  if (!account || account.includes('/')) throw new WorkflowError(`bad account name ${JSON.stringify(account)}`);
  const record =
    store.load(balanceId(account)) ?? WorkflowState.create(balanceId(account), { status: WorkflowStatus.COMPLETED });
  const current = record.resultValue() ?? { balance: 0, entries: 0 };

  // Check every amount before writing anything, so a refused post leaves
  // the ledger as it was.
  let balance = current.balance;
  for (const amount of amounts) {
    if (balance + amount < 0) throw new WorkflowError(`insufficient funds for ${amount} on balance ${balance}`);
    balance += amount;
  }

  let entries = current.entries;
  for (const amount of amounts) {
    entries += 1;
    const id = `${entryPrefix(account)}${String(entries).padStart(6, '0')}`;
    store.save(WorkflowState.create(id, { status: WorkflowStatus.COMPLETED, input: amount, result: amount }));
  }
  record.setResult({ balance, entries });
  store.save(record); // stamps updatedAt
  return { account, balance, entries, deleted: 0 };
}

function close(store, account) {
  const record = store.load(balanceId(account));
  if (!record) throw new WorkflowError(`no account ${JSON.stringify(account)}`);
  const last = record.resultValue() ?? { balance: 0, entries: 0 };

  const prefix = entryPrefix(account);
  let deleted = 0;
  for (;;) {
    // Deleted as they are read: each page is the next entries.
    const entries = store.list({ prefix, limit: 100 });
    if (entries.length === 0) break;
    for (const entry of entries) {
      store.delete(entry.workflowId);
      deleted += 1;
    }
  }
  store.delete(balanceId(account));
  return { account, balance: last.balance, entries: last.entries, deleted: deleted + 1 };
}
