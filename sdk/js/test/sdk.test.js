// The store-facing SDK: version checks, updated_at stamping, listing, error
// locations, queries, and the SDK importable outside a component.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TestHost, QueryFailedError } from '../testing.js';
import {
  bindHost,
  workflow,
  queryHandler,
  toVersion,
  Store,
  StoreError,
  Timestamp,
  WorkflowError,
  WorkflowState,
  WorkflowStatus,
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

test('list pages by id, in byte order; a prefix keeps only the ids under it', () => {
  const host = new TestHost();
  host._bind();
  const store = new Store();
  for (const id of ['order/2', 'order/10', 'order/1', 'order', 'orders', 'ord', 'a', 'z']) {
    store.save(WorkflowState.create(id));
  }
  store.save(WorkflowState.create('order/3', { status: WorkflowStatus.FAILED }));
  const ids = (states) => [...states].map((s) => s.workflowId);
  assert.deepEqual(ids(store.list({ after: 'order', limit: 2 })), ['order/1', 'order/10']);
  assert.deepEqual(ids(store.list({ prefix: 'order/' })), ['order/1', 'order/10', 'order/2', 'order/3']);
  assert.deepEqual(ids(store.list({ prefix: 'order/', after: 'order/1', limit: 1 })), ['order/10']);
  assert.deepEqual(ids(store.list({ prefix: 'order/', after: 'a' })), ['order/1', 'order/10', 'order/2', 'order/3']);
  assert.deepEqual(ids(store.list({ prefix: 'order/', after: 'order0' })), []);
  assert.deepEqual(ids(store.list({ prefix: 'order', status: WorkflowStatus.FAILED })), ['order/3']);
  assert.deepEqual(ids(store.listAll({ prefix: 'order', after: 'order' })), [
    'order/1', 'order/10', 'order/2', 'order/3', 'orders',
  ]);
  assert.deepEqual(ids(store.list({ prefix: '' })), ids(store.list()));
  assert.deepEqual(ids(store.list({ prefix: null })), ids(store.list()));
});

test('list orders ids by their UTF-8 bytes, as the host does', () => {
  // U+FFFF sorts after U+1F600 in UTF-16 but before it in UTF-8.
  const host = new TestHost();
  host._bind();
  const store = new Store();
  for (const id of ['k/\u{1F600}', 'k/\uffff', 'k/\u00e9', 'k/e', 'k\u00e9']) store.save(WorkflowState.create(id));
  assert.deepEqual(store.list({ prefix: 'k/' }).map((s) => s.workflowId), ['k/e', 'k/\u00e9', 'k/\uffff', 'k/\u{1F600}']);
  assert.deepEqual(store.list({ after: 'k/\uffff' }).map((s) => s.workflowId), ['k/\u{1F600}', 'k\u00e9']);
});

test('a prefix longer than an id can be (1024 bytes) is invalid-argument', () => {
  const host = new TestHost();
  host._bind();
  const store = new Store();
  const invalid = (e) => e instanceof StoreError && e.kind === 'invalid-argument';
  assert.deepEqual(store.list({ prefix: 'x'.repeat(1024) }), []);
  assert.throws(() => store.list({ prefix: 'x'.repeat(1025) }), invalid);
  // "é" is two bytes in UTF-8: 513 of them are too long.
  assert.deepEqual(store.list({ prefix: '\u00e9'.repeat(512) }), []);
  assert.throws(() => store.list({ prefix: '\u00e9'.repeat(513) }), invalid);
});

test('list hands the host a WIT filter with all four fields, absent ones undefined', () => {
  const host = new TestHost();
  const sent = [];
  bindHost({ ...host._bindings(), list: (filter) => (sent.push(filter), []) });
  const store = new Store();
  store.list({ limit: 5, prefix: 'order/' });
  store.list({ after: 'a', prefix: null });
  assert.deepEqual(sent, [
    { status: undefined, limit: 5, after: undefined, prefix: 'order/' },
    { status: undefined, limit: undefined, after: 'a', prefix: undefined },
  ]);
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

test('packed saves and loads carry every field, and a broken packed state is an internal error', () => {
  const host = new TestHost();
  let packed;
  bindHost({
    ...host._bindings(),
    saveBuffer: (bytes) => ((packed = bytes), 1n),
    loadBuffer: () => packed,
  });
  const store = new Store();
  const state = WorkflowState.create('wf-é', { status: WorkflowStatus.RUNNING, input: { n: 1 } });
  state.runId = 'run-𝄞';
  state.createdAt = new Timestamp(-62_135_596_800, 5);
  state.pushEvent('activity_completed', { activityName: 'charge', result: [1, 'ü'] });
  state.pushEvent('signal_received', { signalName: 'approve', signalPayload: null });
  store.saveVersioned(state, undefined, { stamp: false });
  assert.ok(packed instanceof Uint8Array);
  assert.deepEqual(store.load('wf-é'), state);

  const saved = packed;
  const broken = (change) => {
    packed = saved.slice();
    change(new DataView(packed.buffer));
    let message;
    assert.throws(
      () => store.load('wf-é'),
      (e) => ((message = e.message), e instanceof StoreError && e.kind === 'internal'),
    );
    return message;
  };
  assert.match(broken((v) => v.setUint32(64, 4, true)), /unknown status 4/);
  assert.match(broken((v) => v.setUint32(68, 3, true)), /3 history events in its header/);
  assert.match(broken((v) => v.setUint32(72 + 28, 11, true)), /unknown kind 11/);
  assert.match(broken((v) => v.setUint32(0, 0xffff_ffff, true)), /outside its text/);
  // "wf-é": the é is bytes 3 and 4.
  assert.match(broken((v) => v.setUint32(4, 4, true)), /across a character/);
  packed = saved.slice(0, 71);
  assert.throws(() => store.load('x'), /fewer than its 72-byte header/);
  assert.throws(() => store.saveVersioned(Object.assign(WorkflowState.create('s'), { status: 'gone' })), /status/);
});
