// An approval: waits up to a day for a decision, sent as a signal
// `approve` ({"by": ...}) or `reject` ({"reason": ...}), without holding an
// instance while it waits. The query `status` tells whether it still waits.
//
//   input  {"request": <anything>}
//   result {"approved": true, "by": ...} | {"approved": false, "reason": ...}
//   fails  "no decision within 24 hours"

import { workflow, queryHandler, EventType, InputError, WorkflowError, WorkflowStatus } from './wf-guest.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export const run = workflow((ctx, input) => {
  if (!input || typeof input !== 'object' || !('request' in input)) {
    throw new InputError(`expected {"request": ...}, got ${JSON.stringify(input)}`);
  }
  const decision = ctx.waitAnySignal(['approve', 'reject'], { timeoutMs: DAY_MS });
  if (decision === null) throw new WorkflowError('no decision within 24 hours');
  if (decision.name === 'approve') return { approved: true, by: decision.payload?.by ?? null };
  return { approved: false, reason: decision.payload?.reason ?? null };
});

export const query = queryHandler((ctx, name) => {
  if (name !== 'status') throw new WorkflowError(`unknown query ${name}`);
  const state = ctx.state();
  if (state === null) throw new WorkflowError(`no workflow ${ctx.workflowId}`);
  // Waiting: still running and no decision recorded yet.
  const decided = state.history.some(
    (e) => e.kind === EventType.SIGNAL_RECEIVED && (e.signalName === 'approve' || e.signalName === 'reject'),
  );
  return { waiting: state.status === WorkflowStatus.RUNNING && !decided };
});
