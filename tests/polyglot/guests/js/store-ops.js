// Test guest: runs a script of store operations given as its input and
// returns each operation's outcome, so tests can reach every store call and
// every `store-error` case from inside a real JavaScript guest. Mirrors the
// Rust guest tests/guests/store-ops.

import { workflow, EventType, InputError, StoreError, WorkflowError, WorkflowState } from './wf-guest.js';

function outcome(call) {
  try {
    const value = call();
    return { ok: value === undefined ? null : value };
  } catch (e) {
    if (e instanceof StoreError) return { err: { kind: e.kind, message: e.message } };
    throw e;
  }
}

// The op's `state`; `input_raw`/`result_raw` replace its json fields with
// unchecked text; `input_bytes` makes the input a JSON string that long.
function stateOf(op) {
  const state = WorkflowState.fromJSON(op.state);
  if (op.input_raw != null) state.input = op.input_raw;
  if (op.result_raw != null) state.result = op.result_raw;
  if (op.input_bytes != null) state.input = `"${'x'.repeat(Math.max(op.input_bytes - 2, 0))}"`;
  return state;
}

// The states are saved as given, but for `updatedAt`, which the SDK stamps
// with the time of the save (as every SDK does).
const OPS = {
  save(ctx, op) {
    const state = stateOf(op);
    return outcome(() => ctx.store.save(state));
  },
  // As `save`, only if the id is at `expected_version` (absent or null:
  // unconditionally); the outcome is the new version (a bigint, as a number).
  save_versioned(ctx, op) {
    const state = stateOf(op);
    return outcome(() => Number(ctx.store.saveVersioned(state, op.expected_version)));
  },
  load(ctx, op) {
    return outcome(() => ctx.store.load(op.id)?.toJSON() ?? null);
  },
  load_versioned(ctx, op) {
    return outcome(() => {
      const found = ctx.store.loadVersioned(op.id);
      return found === null ? null : { state: found.state.toJSON(), version: Number(found.version) };
    });
  },
  list(ctx, op) {
    return outcome(() =>
      ctx.store
        .list({ status: op.status, limit: op.limit, after: op.after, prefix: op.prefix })
        .map((s) => s.workflowId),
    );
  },
  delete(ctx, op) {
    return outcome(() => ctx.store.delete(op.id));
  },
  record(ctx, op) {
    return outcome(
      () => ctx.updateState((s) => s.pushEvent(EventType.ACTIVITY_COMPLETED, { activityName: op.activity })).history.length,
    );
  },
  fail(ctx, op) {
    throw new WorkflowError(op.message);
  },
  trap() {
    throw new Error('store-ops: trap requested');
  },
  spin() {
    let n = 0;
    for (;;) n = (n + 1) | 0;
  },
  allocate(ctx, op) {
    const block = new Uint8Array(op.mib * 1024 * 1024).fill(1);
    // indexOf runs natively: a loop in JavaScript would be interpreted.
    return { ok: block.indexOf(0) === -1 ? block.length : -1 };
  },
  echo(ctx, op) {
    return { ok: 'x'.repeat(op.bytes) };
  },
  // Saves `WorkflowState.create(id)` (a record, as the SDK makes one); the
  // outcome is the status it was saved with.
  new_record(ctx, op) {
    const record = WorkflowState.create(op.id);
    return outcome(() => {
      ctx.store.save(record);
      return record.status;
    });
  },
};

export const run = workflow((ctx, script) => {
  if (!Array.isArray(script) || !script.every((op) => op && Object.hasOwn(OPS, op.op))) {
    throw new InputError(`expected a list of operations (${Object.keys(OPS).join(', ')}), got ${JSON.stringify(script)}`);
  }
  return script.map((op) => OPS[op.op](ctx, op));
});
