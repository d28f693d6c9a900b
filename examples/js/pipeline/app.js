// The quick-start workflow: runs three steps over its input (a JSON string),
// saving its own state after each one, and returns `completed: <input>`.

import { workflow, EventType, InputError } from './wf-guest.js';

const STEPS = ['validate', 'process', 'finalize'];

export const run = workflow((ctx, text) => {
  if (typeof text !== 'string') throw new InputError(`expected a string, got ${JSON.stringify(text)}`);
  for (const step of STEPS) {
    // Each step is recorded durably before the next begins, so the stored
    // history shows how far the pipeline got.
    ctx.updateState((state) =>
      state.pushEvent(EventType.ACTIVITY_COMPLETED, { activityName: step, result: `${step}: ${text}` }),
    );
  }
  return `completed: ${text}`;
});
