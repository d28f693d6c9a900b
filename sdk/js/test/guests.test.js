// The waits test guest and the approval example, run in Node with the
// harness: the same modules componentize.mjs builds into components.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TestHost, importWorkflow, QueryFailedError } from '../testing.js';

const root = new URL('../../../', import.meta.url);
const waits = await importWorkflow(new URL('tests/polyglot/guests/js/waits.js', root));
const approval = await importWorkflow(new URL('examples/js/approval/app.js', root));
const DAY = 24 * 3600 * 1000;

test('waits: signal, with and without timeout', () => {
  const host = new TestHost();
  host.signal('s1', 'go', { x: 1 }, { afterMs: 50 });
  assert.deepEqual(host.start('s1', waits, { op: 'signal', name: 'go', timeout_ms: 1000 }).result, { payload: { x: 1 } });
  assert.deepEqual(host.start('s2', waits, { op: 'signal', name: 'go', timeout_ms: 1000 }).result, { timeout: true });
  const out = host.start('s3', waits, { op: 'signal', name: 'go', timeout_ms: null });
  assert.equal(out.status, 'suspended');
  assert.deepEqual(host.query('s3', 'status'), { status: 'running', signals: [], events: 2, suspended: true });
  assert.deepEqual(host.signal('s3', 'go', null).result, { payload: null });
  assert.deepEqual(host.query('s3', 'status'), { status: 'completed', signals: ['go'], events: 4, suspended: false });
});

test('waits: any, sleep, signals, steps', () => {
  const host = new TestHost();
  host.signal('a', 'y', 2, { afterMs: 5 });
  assert.deepEqual(host.start('a', waits, { op: 'any', names: ['x', 'y'], timeout_ms: 100 }).result, { name: 'y', payload: 2 });
  assert.deepEqual(host.start('a2', waits, { op: 'any', names: ['x', 'y'], timeout_ms: 100 }).result, { timeout: true });
  assert.deepEqual(host.start('sl', waits, { op: 'sleep', ms: 250 }).result, { slept: 250 });
  for (const p of [1, 2, 3]) host.signal('k', 'n', p, { afterMs: p });
  assert.deepEqual(host.start('k', waits, { op: 'signals', name: 'n', count: 3 }).result, { payloads: [1, 2, 3] });
  assert.deepEqual(host.start('st', waits, { op: 'steps', count: 4 }).result, { sum: 6 });
  assert.deepEqual(host.kinds('st').filter((k) => k === 'activity_completed').length, 4);
});

test('waits: retry counts its attempts in a record of its own', () => {
  const host = new TestHost();
  const ok = host.start('r1', waits, { op: 'retry', fail_times: 2, max_attempts: 5, initial_ms: 10, non_retryable: [] });
  assert.deepEqual(ok.result, { attempts: 3 });
  assert.equal(host.state('r1/attempts').resultValue(), 3);
  const timers = host.events('r1').filter((e) => e.kind === 'timer_started').map((e) => Number(e.durationNs) / 1e6);
  assert.deepEqual(timers, [10, 20]);

  const out = host.start('r2', waits, { op: 'retry', fail_times: 5, max_attempts: 2, initial_ms: 10, non_retryable: [] });
  assert.deepEqual([out.status, out.error], ['failed', 'attempt 2 failed']);
  const nr = host.start('r3', waits, { op: 'retry', fail_times: 5, max_attempts: 0, initial_ms: 10, non_retryable: ['attempt 1'] });
  assert.deepEqual([nr.status, nr.error], ['failed', 'attempt 1 failed']);
  assert.equal(host.state('r3/attempts').resultValue(), 1);
});

test('waits: queries echo and refuse unknown names', () => {
  const host = new TestHost();
  host.start('q', waits, { op: 'sleep', ms: 0 });
  assert.deepEqual(host.query('q', 'echo', { a: [1] }), { a: [1] });
  assert.throws(() => host.query('q', 'what'), new QueryFailedError('unknown query what'));
});

test('approval: approved, rejected, or failed after a day; waiting while it waits', () => {
  const host = new TestHost();
  host.signal('ok', 'approve', { by: 'ann' }, { afterMs: 3600_000 });
  assert.deepEqual(host.start('ok', approval, { request: 'laptop' }).result, { approved: true, by: 'ann' });
  assert.deepEqual(host.query('ok', 'status'), { waiting: false });

  const pending = host.start('no', approval, { request: 'boat' }, { forMs: 3600_000 });
  assert.equal(pending.status, 'suspended');
  assert.equal(pending.wakeAtMs, host.nowMs + DAY);
  assert.deepEqual(host.query('no', 'status'), { waiting: true });
  assert.deepEqual(host.signal('no', 'reject', { reason: 'too big' }).result, { approved: false, reason: 'too big' });

  const late = new TestHost();
  late.signal('late', 'approve', { by: 'bob' }, { afterMs: DAY + 1 });
  const out = late.start('late', approval, { request: 'x' });
  assert.deepEqual([out.status, out.error], ['failed', 'no decision within 24 hours']);
});
