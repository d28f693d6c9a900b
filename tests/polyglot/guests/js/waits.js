// Test guest: the waiting operations (signals, timers, retries, queries),
// selected by the input's `op`. The same guest exists in Rust
// (tests/guests/waits) and Python (tests/polyglot/guests/python/waits.py):
// the host tests run all three and expect the same results and histories.
//
//   {"op":"signal","name":N,"timeout_ms":T|null} -> {"payload":P} | {"timeout":true}
//   {"op":"any","names":[...],"timeout_ms":T|null} -> {"name":N,"payload":P} | {"timeout":true}
//   {"op":"sleep","ms":T}                          -> {"slept":T}
//   {"op":"signals","name":N,"count":K}            -> {"payloads":[...]}
//   {"op":"retry","fail_times":F,"max_attempts":M,"initial_ms":I,"non_retryable":[...]}
//                                                  -> {"attempts":n}, or fails with the activity's error
//   {"op":"steps","count":K}                       -> {"sum":0+1+...+(K-1)}
//   {"op":"steps","count":K,"wait":N}              -> {"sum":...,"payload":<signal N's>}
//
// Queries: "status" -> {"status","signals","events","suspended"}; "echo" -> args.

import {
  workflow,
  queryHandler,
  ActivityError,
  EventType,
  InputError,
  WorkflowError,
  WorkflowState,
} from './wf-guest.js';

const timeoutOf = (op) => (op.timeout_ms === undefined || op.timeout_ms === null ? undefined : op.timeout_ms);

const OPS = {
  signal(ctx, op) {
    const got = ctx.waitAnySignal([op.name], { timeoutMs: timeoutOf(op) });
    return got === null ? { timeout: true } : { payload: got.payload };
  },
  any(ctx, op) {
    const got = ctx.waitAnySignal(op.names, { timeoutMs: timeoutOf(op) });
    return got === null ? { timeout: true } : { name: got.name, payload: got.payload };
  },
  sleep(ctx, op) {
    ctx.sleep(op.ms);
    return { slept: op.ms };
  },
  signals(ctx, op) {
    const payloads = [];
    for (let i = 0; i < op.count; i++) payloads.push(ctx.waitSignal(op.name));
    return { payloads };
  },
  retry(ctx, op) {
    const retry = {
      maxAttempts: op.max_attempts,
      initialIntervalMs: op.initial_ms,
      backoffCoefficient: 2,
      maxIntervalMs: 10 * op.initial_ms,
      nonRetryable: op.non_retryable ?? [],
    };
    try {
      const n = ctx.activity('flaky', null, () => countAttempt(ctx, op.fail_times), { retry });
      return { attempts: n };
    } catch (e) {
      if (e instanceof ActivityError) throw new WorkflowError(e.error);
      throw e;
    }
  },
  steps(ctx, op) {
    let sum = 0;
    for (let i = 0; i < op.count; i++) sum += ctx.activity(`step-${i}`, i, () => i);
    if (op.wait) return { sum, payload: ctx.waitSignal(op.wait) };
    return { sum };
  },
};

// The activity's body: counts its calls in a record of its own, and fails
// while it has been called at most `failTimes` times.
function countAttempt(ctx, failTimes) {
  const id = `${ctx.workflowId}/attempts`;
  const record = ctx.store.load(id) ?? WorkflowState.create(id, { result: 0 });
  const n = (record.resultValue() ?? 0) + 1;
  record.setResult(n);
  ctx.store.save(record);
  if (n <= failTimes) throw new WorkflowError(`attempt ${n} failed`);
  return n;
}

export const run = workflow((ctx, op) => {
  if (!op || typeof op !== 'object' || !Object.hasOwn(OPS, op.op)) {
    throw new InputError(`expected {"op": ${Object.keys(OPS).join(' | ')}, ...}, got ${JSON.stringify(op)}`);
  }
  return OPS[op.op](ctx, op);
});

export const query = queryHandler((ctx, name, args) => {
  if (name === 'echo') return args;
  if (name !== 'status') throw new WorkflowError(`unknown query ${name}`);
  const state = ctx.state();
  if (state === null) throw new WorkflowError(`no workflow ${ctx.workflowId}`);
  const history = state.history;
  return {
    status: state.status,
    signals: history.filter((e) => e.kind === EventType.SIGNAL_RECEIVED).map((e) => e.signalName),
    events: history.length,
    suspended: history.length > 0 && history[history.length - 1].kind === EventType.WORKFLOW_SUSPENDED,
  };
});
