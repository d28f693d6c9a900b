// The replay rules of docs/waiting.md, run under the in-memory TestHost.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TestHost } from '../testing.js';
import {
  workflow,
  ActivityError,
  EventType,
  NonDeterministicError,
  RetryPolicy,
  WorkflowError,
} from '../wf-guest.js';

const MS = 1_000_000;
const brief = (host, id) =>
  host
    .events(id)
    .filter((e) => e.kind !== EventType.WORKFLOW_STARTED)
    .map((e) => [e.kind, e.activityName || e.signalName, Number(e.durationNs) / MS]);

test('an activity is recorded once and not run again on a re-run', () => {
  let calls = 0;
  const run = workflow((ctx, n) => {
    const doubled = ctx.activity('double', n, (x) => {
      calls += 1;
      return { value: x * 2 };
    });
    ctx.sleep(1000);
    return doubled;
  });
  const host = new TestHost();
  const out = host.start('a', run, 21);
  assert.deepEqual(out, { status: 'completed', result: { value: 42 }, runs: 2 });
  assert.equal(calls, 1);
  const started = host.events('a').find((e) => e.kind === EventType.ACTIVITY_STARTED);
  assert.equal(started.inputValue(), 21);
  assert.deepEqual(host.events('a').find((e) => e.kind === EventType.ACTIVITY_COMPLETED).resultValue(), { value: 42 });
});

test('two failures then a success: three outcomes, two backoff timers', () => {
  let calls = 0;
  const run = workflow((ctx) =>
    ctx.activity(
      'charge',
      null,
      () => {
        calls += 1;
        if (calls <= 2) throw new Error(`attempt ${calls} failed`);
        return calls;
      },
      { retry: new RetryPolicy({ maxAttempts: 5, initialIntervalMs: 100, backoffCoefficient: 3 }) },
    ),
  );
  const host = new TestHost();
  const start = host.nowMs;
  const out = host.start('r', run, null);
  assert.equal(out.status, 'completed');
  assert.equal(out.result, 3);
  assert.equal(out.runs, 3);
  assert.equal(calls, 3);
  assert.deepEqual(brief(host, 'r'), [
    ['activity_started', 'charge', 0],
    ['activity_failed', 'charge', 0],
    ['timer_started', 'charge', 100],
    ['workflow_suspended', '', 100],
    ['timer_fired', 'charge', 100],
    ['activity_failed', 'charge', 0],
    ['timer_started', 'charge', 300],
    ['workflow_suspended', '', 300],
    ['timer_fired', 'charge', 300],
    ['activity_completed', 'charge', 0],
    ['workflow_completed', '', 0],
  ]);
  assert.deepEqual(
    host.events('r').filter((e) => e.kind === EventType.ACTIVITY_FAILED).map((e) => e.error),
    ['attempt 1 failed', 'attempt 2 failed'],
  );
  assert.equal(host.nowMs - start, 400);
});

test('the backoff is capped by the max interval', () => {
  const p = new RetryPolicy({ maxAttempts: 0, initialIntervalMs: 1000, backoffCoefficient: 2, maxIntervalMs: 3000 });
  assert.deepEqual([1, 2, 3, 4].map((n) => Number(p.backoffNs(n)) / MS), [1000, 2000, 3000, 3000]);
  assert.equal(new RetryPolicy().maxIntervalMs, 100_000);
  assert.equal(new RetryPolicy().maxAttempts, 1);
});

test('a non-retryable error is final at once; the last allowed attempt too', () => {
  const host = new TestHost();
  let calls = 0;
  const run = workflow((ctx) =>
    ctx.activity(
      'pay',
      null,
      () => {
        calls += 1;
        throw new Error('card declined: insufficient funds');
      },
      { retry: { maxAttempts: 10, nonRetryable: ['declined'] } },
    ),
  );
  const out = host.start('n', run, null);
  assert.equal(calls, 1);
  assert.equal(out.status, 'failed');
  assert.equal(out.error, 'activity "pay" failed after 1 attempt: card declined: insufficient funds');

  const limited = workflow((ctx) => {
    try {
      ctx.activity('flaky', null, () => {
        throw new Error('nope');
      }, { retry: { maxAttempts: 2, initialIntervalMs: 10 } });
    } catch (e) {
      assert.ok(e instanceof ActivityError);
      return { attempts: e.attempts, error: e.error, name: e.activityName };
    }
  });
  assert.deepEqual(host.start('m', limited, null).result, { attempts: 2, error: 'nope', name: 'flaky' });
  assert.equal(host.kinds('m').filter((k) => k === EventType.ACTIVITY_FAILED).length, 2);
});

test('a signal that comes before the timeout is received', () => {
  const run = workflow((ctx) => ctx.waitAnySignal(['go'], { timeoutMs: 10_000 }));
  const host = new TestHost();
  host.signal('s', 'go', { n: 1 }, { afterMs: 4000 });
  const out = host.start('s', run, null);
  assert.deepEqual(out.result, { name: 'go', payload: { n: 1 } });
  assert.deepEqual(brief(host, 's'), [
    ['timer_started', 'go', 10_000],
    ['workflow_suspended', 'go', 10_000],
    ['signal_received', 'go', 0],
    ['workflow_completed', '', 0],
  ]);
});

test('a signal that comes after the timeout is not; the wait times out', () => {
  const run = workflow((ctx) => ({ got: ctx.waitSignal('go', { timeoutMs: 10_000 }) }));
  const host = new TestHost();
  host.signal('t', 'go', 'late', { afterMs: 20_000 });
  const out = host.start('t', run, null);
  assert.deepEqual(out.result, { got: null });
  assert.deepEqual(brief(host, 't'), [
    ['timer_started', 'go', 10_000],
    ['workflow_suspended', 'go', 10_000],
    ['timer_fired', 'go', 10_000],
    ['workflow_completed', '', 0],
  ]);
});

test('a zero timeout times out at once when no signal is there, and a present signal wins', () => {
  const run = workflow((ctx) => ctx.waitAnySignal(['go'], { timeoutMs: 0 }));
  const host = new TestHost();
  assert.deepEqual(host.start('z', run, null), { status: 'completed', result: null, runs: 1 });
  assert.deepEqual(brief(host, 'z').slice(0, 2), [
    ['timer_started', 'go', 0],
    ['timer_fired', 'go', 0],
  ]);
  host.signal('z2', 'go', 7); // before the start: in the history when the run begins
  assert.deepEqual(host.start('z2', run, null).result, { name: 'go', payload: 7 });
  assert.deepEqual(host.kinds('z2'), ['workflow_started', 'signal_received', 'workflow_completed']);
});

test('a wait for several names receives the earliest, and each signal once, in order', () => {
  const run = workflow((ctx) => {
    const got = [];
    for (let i = 0; i < 3; i++) got.push(ctx.waitAnySignal(['a', 'b']));
    got.push(ctx.waitSignal('a'));
    return got;
  });
  const host = new TestHost();
  host.signal('m', 'b', 1, { afterMs: 1 });
  host.signal('m', 'a', 2, { afterMs: 2 });
  host.signal('m', 'b', 3, { afterMs: 3 });
  host.signal('m', 'a', 4, { afterMs: 4 });
  const out = host.start('m', run, null);
  assert.deepEqual(out.result, [
    { name: 'b', payload: 1 },
    { name: 'a', payload: 2 },
    { name: 'b', payload: 3 },
    4,
  ]);
  // Waits without a timeout write nothing.
  assert.ok(!host.kinds('m').some((k) => k.startsWith('timer') || k.startsWith('activity')));
  const suspended = host.events('m').filter((e) => e.kind === EventType.WORKFLOW_SUSPENDED);
  assert.deepEqual(suspended.map((e) => e.signalName), ['a|b', 'a|b', 'a|b', 'a']);
});

test('a wait with no signal and no timeout stays suspended until a signal comes', () => {
  const run = workflow((ctx) => ctx.waitSignal('go'));
  const host = new TestHost();
  const out = host.start('w', run, null);
  assert.deepEqual(out, { status: 'suspended', wakeAtMs: null, signals: ['go'], runs: 1 });
  assert.equal(host.state('w').status, 'running');
  assert.equal(host.signal('w', 'other', 1), undefined); // does not wake it
  assert.deepEqual(host.signal('w', 'go', { ok: true }), { status: 'completed', result: { ok: true }, runs: 2 });
});

test('a sleep survives a re-run: the timer is due at its start plus its length', () => {
  let before = 0;
  const run = workflow((ctx) => {
    before += 1; // code outside activities runs at every wake
    ctx.sleep(90 * 60 * 1000);
    return 'woke';
  });
  const host = new TestHost();
  const t0 = host.nowMs;
  const out = host.start('z', run, null);
  assert.deepEqual(out, { status: 'completed', result: 'woke', runs: 2 });
  assert.equal(before, 2);
  const [started, suspended, fired] = host.events('z').slice(1, 4);
  assert.equal(started.kind, EventType.TIMER_STARTED);
  assert.equal(suspended.kind, EventType.WORKFLOW_SUSPENDED);
  assert.equal(Number(suspended.durationNs), 90 * 60 * 1000 * MS);
  assert.equal(fired.kind, EventType.TIMER_FIRED);
  assert.equal(fired.timestamp.toNanos() - started.timestamp.toNanos(), 90n * 60n * 1000n * 1_000_000n);
  assert.equal(host.nowMs - t0, 90 * 60 * 1000);
});

test('changed code meets its old history: NonDeterministicError names the step', () => {
  const v1 = workflow((ctx) => {
    ctx.activity('reserve', null, () => 1);
    ctx.sleep(1000);
    return 'v1';
  });
  let caught;
  const v2 = workflow((ctx) => {
    try {
      ctx.activity('charge', null, () => 2);
    } catch (e) {
      caught = e;
      throw e;
    }
  });
  const host = new TestHost();
  host.start('nd', { run: (id, input) => (host._workflows.get('nd').runs > 1 ? v2 : v1)(id, input) }, null);
  assert.ok(caught instanceof NonDeterministicError);
  assert.equal(caught.step, 1);
  assert.deepEqual(caught.recorded, { kind: 'activity_started', name: 'reserve' });
  const state = host.state('nd');
  assert.equal(state.status, 'failed');
  assert.match(
    state.error,
    /^uncaught NonDeterministicError: non-deterministic workflow: step 1 asks for activity "charge", but the history has activity_started "reserve" \(event 2\) \(at .*replay\.test\.js:\d+:\d+\)$/,
  );
});

test('a wait without a timer where the history has later steps is non-deterministic', () => {
  const host = new TestHost();
  let phase = 1;
  const run = workflow((ctx) => {
    if (phase === 1) ctx.activity('x', null, () => 1);
    else ctx.waitSignal('go');
    ctx.sleep(10);
    return null;
  });
  const wrapped = (id, input) => {
    try {
      return run(id, input);
    } finally {
      phase = 2;
    }
  };
  const out = host.start('nd2', wrapped, null);
  assert.equal(out.status, 'failed');
  assert.match(out.error, /step 1 asks for a wait for signal "go", but the history has activity_started "x"/);
});

test('a signal arriving while the run appends (conflict): reload and append again, the activity not re-run', () => {
  const host = new TestHost();
  let calls = 0;
  const run = workflow((ctx) => {
    const v = ctx.activity('act', null, () => {
      calls += 1;
      host.signal('c', 'ping', 'mid-run'); // the run's next save meets a conflict
      return 5;
    });
    return { v, ping: ctx.waitSignal('ping') };
  });
  const out = host.start('c', run, null);
  assert.deepEqual(out, { status: 'completed', result: { v: 5, ping: 'mid-run' }, runs: 1 });
  assert.equal(calls, 1);
  assert.deepEqual(host.kinds('c'), [
    'workflow_started',
    'activity_started',
    'signal_received',
    'activity_completed',
    'workflow_completed',
  ]);
});

test('invalid signal names throw before anything is written', () => {
  const bad = ['', 'a|b', 'x'.repeat(257), 'é'.repeat(129), 'new\nline', 'nul\u0000', 'del\u007f', 42];
  for (const name of bad) {
    const host = new TestHost();
    let error;
    const run = workflow((ctx) => {
      try {
        ctx.waitAnySignal(['ok', name], { timeoutMs: 5 });
      } catch (e) {
        error = e;
        throw e;
      }
    });
    const out = host.start('i', run, null);
    assert.equal(error?.name, 'InvalidSignalNameError', `for ${JSON.stringify(name)}`);
    assert.match(out.error, /^uncaught InvalidSignalNameError: invalid signal name/);
    assert.deepEqual(host.kinds('i'), ['workflow_started', 'workflow_failed']);
  }
  const host = new TestHost();
  const ok = workflow((ctx) => ctx.waitSignal('é'.repeat(128), { timeoutMs: 0 }));
  assert.equal(host.start('ok', ok, null).status, 'completed');
});

test('waiting inside an activity is refused', () => {
  const host = new TestHost();
  const run = workflow((ctx) => ctx.activity('outer', null, () => ctx.sleep(5)));
  const out = host.start('in', run, null);
  assert.equal(out.status, 'failed');
  assert.match(out.error, /sleep inside the activity "outer"/);
});

test('a suspension swallowed by the code still ends the run', () => {
  const host = new TestHost();
  let after = 0;
  const run = workflow((ctx) => {
    try {
      ctx.sleep(1000);
    } catch {
      after += 1; // under a real host, suspend never returns; here it throws
    }
    return 'done';
  });
  const out = host.start('sw', run, null);
  assert.deepEqual(out, { status: 'completed', result: 'done', runs: 2 });
  assert.equal(host.kinds('sw').filter((k) => k === EventType.WORKFLOW_SUSPENDED).length, 1);
});

test('WorkflowError fails the workflow with exactly its message', () => {
  const host = new TestHost();
  const out = host.start('f', workflow(() => {
    throw new WorkflowError('exactly this');
  }), null);
  assert.equal(out.error, 'exactly this');
});
