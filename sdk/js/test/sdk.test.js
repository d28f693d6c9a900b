// The store-facing SDK: version checks, updated_at stamping, error
// locations, queries, and the SDK importable outside a component.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TestHost, QueryFailedError } from '../testing.js';
import {
  workflow,
  queryHandler,
  toVersion,
  Store,
  StoreError,
  Timestamp,
  WorkflowError,
  WorkflowState,
} from '../wf-guest.js';

test('versions: bigints and non-negative integers only, with a clear message', () => {
  assert.equal(toVersion(undefined), undefined);
  assert.equal(toVersion(null), undefined);
  assert.equal(toVersion(0), 0n);
  assert.equal(toVersion(7n), 7n);
  assert.throws(() => toVersion({ state: WorkflowState.create('x'), version: 3n }), {
    name: 'TypeError',
    message: /got what loadVersioned returned \(\{state, version\}\): pass its \.version/,
  });
  assert.throws(() => toVersion('3'), { name: 'TypeError', message: /got string "3"/ });
  assert.throws(() => toVersion(true), { name: 'TypeError', message: /got boolean true/ });
  assert.throws(() => toVersion(2.9), { name: 'RangeError', message: /2\.9 is not a version/ });
  assert.throws(() => toVersion(-1), RangeError);
  assert.throws(() => toVersion(-1n), RangeError);
  assert.throws(() => toVersion(2n ** 64n), RangeError);
  assert.throws(() => toVersion({ n: 1n }), { name: 'TypeError', message: /\{"n":"1n"\}/ });
});

test('saveVersioned checks the version before writing anything', () => {
  const host = new TestHost();
  host._bind();
  const store = new Store();
  const state = WorkflowState.create('rec', { result: 1 });
  const found = { state, version: 0n };
  assert.throws(() => store.saveVersioned(state, found), TypeError);
  assert.equal(host.state('rec'), null);
  const v = store.saveVersioned(state, found.version);
  assert.equal(typeof v, 'bigint');
  assert.throws(() => store.saveVersioned(state, 0n), (e) => e instanceof StoreError && e.kind === 'conflict');
});

test('save stamps updatedAt with now, unless told not to', () => {
  const host = new TestHost({ startMs: Date.UTC(2026, 5, 1) });
  host._bind();
  const store = new Store();
  const state = WorkflowState.create('rec');
  state.updatedAt = Timestamp.ZERO;
  host.advance(5000);
  store.save(state);
  const expected = BigInt(Date.UTC(2026, 5, 1) + 5000) * 1_000_000n;
  assert.equal(state.updatedAt.toNanos(), expected);
  assert.equal(host.state('rec').updatedAt.toNanos(), expected);
  state.updatedAt = Timestamp.ZERO;
  store.save(state, { stamp: false });
  assert.deepEqual(host.state('rec').updatedAt, Timestamp.ZERO);
  host.advance(1000);
  store.saveVersioned(state, host.version('rec'));
  assert.equal(host.state('rec').updatedAt.toNanos(), expected + 1_000_000_000n);
});

function makeBad() {
  // A result JSON cannot encode: the TypeError is raised inside the SDK.
  return WorkflowState.create('bad', { result: { n: 1n } });
}

test("an error raised inside the SDK names the workflow's line, not the SDK's", () => {
  const host = new TestHost();
  const out = host.start('loc', workflow(() => makeBad()), null);
  assert.equal(out.status, 'failed');
  assert.match(out.error, /^uncaught TypeError: .*BigInt.* \(at makeBad@sdk\/js\/test\/sdk\.test\.js:\d+:\d+\)$/);
  assert.doesNotMatch(out.error, /wf-guest\.js/);
});

test("an error thrown by the workflow's code names its line", () => {
  const host = new TestHost();
  const out = host.start('loc2', workflow(function order() {
    null.x;
  }), null);
  assert.match(out.error, /^uncaught TypeError: Cannot read properties of null .* \(at order@sdk\/js\/test\/sdk\.test\.js:\d+:\d+\)$/);
});

test('a StoreError that escapes fails the workflow with its kind and message', () => {
  const host = new TestHost();
  const out = host.start('se', workflow((ctx) => ctx.store.load('')), null);
  assert.equal(out.error, 'invalid-argument: workflow ID is required');
});

test('updateState saves conditionally and retries after a signal came', () => {
  const host = new TestHost();
  let applied = 0;
  const run = workflow((ctx) => {
    ctx.updateState((s) => {
      applied += 1;
      if (applied === 1) host.signal('u', 'poke', 1); // arrives between the load and the save
      s.setResult('noted');
    });
    return ctx.state().history.map((e) => e.kind);
  });
  const out = host.start('u', run, null);
  assert.equal(applied, 2);
  assert.deepEqual(out.result, ['workflow_started', 'signal_received']);
});

test('queries: a handler answers from the recorded state; writes are denied; errors are answers', () => {
  const run = workflow((ctx) => ctx.waitSignal('go'));
  const query = queryHandler((ctx, name, args) => {
    if (name === 'status') return { status: ctx.state().status, args };
    if (name === 'write') return ctx.store.save(WorkflowState.create('x'));
    throw new WorkflowError(`unknown query ${name}`);
  });
  const host = new TestHost();
  host.start('q', { run, query }, null);
  assert.deepEqual(host.query('q', 'status', [1]), { status: 'running', args: [1] });
  assert.throws(() => host.query('q', 'nope'), new QueryFailedError('unknown query nope'));
  assert.throws(() => host.query('q', 'write'), { message: /^denied: a query cannot write$/ });
  // A module without a query handler.
  assert.throws(() => host.query('q', 'status', null, { run }), { message: 'this workflow has no query handler' });
});

test('toJSON is the SDK form (snake_case), and fromJSON reads it back', () => {
  const host = new TestHost();
  host._bind();
  const s = WorkflowState.create('j', { input: { a: 1 }, result: [2] });
  s.pushEvent('timer_started', { durationNs: 5, signalName: 'go' });
  const d = JSON.parse(JSON.stringify(s));
  assert.deepEqual(Object.keys(d), [
    'workflow_id', 'run_id', 'status', 'input', 'result', 'error', 'history', 'created_at', 'updated_at',
  ]);
  assert.deepEqual(WorkflowState.fromJSON(d).toJSON(), d);
});

test('durations beyond 2^53 ns stay exact through the WIT form', () => {
  const host = new TestHost();
  host._bind();
  const s = WorkflowState.create('d');
  s.pushEvent('timer_started', { durationNs: 2n ** 60n + 1n });
  const back = WorkflowState.fromWit(s.toWit());
  assert.equal(back.history[0].durationNs, 2n ** 60n + 1n);
  assert.equal(Timestamp.fromNanos(-1n).seconds, -1);
  assert.equal(Timestamp.fromNanos(-1n).nanoseconds, 999_999_999);
});
