// A test harness for wf workflows written with wf-guest.js: runs a module's
// `run` and `query` exports in plain Node.js (`node --test`), against an
// in-memory store, with a fake clock, signals and suspension, the way the
// host does:
//
//     import { test } from 'node:test';
//     import assert from 'node:assert/strict';
//     import { TestHost, importWorkflow } from '../../sdk/js/testing.js';
//
//     const app = await importWorkflow(new URL('../app.js', import.meta.url));
//
//     test('approved the next morning', () => {
//       const host = new TestHost();
//       host.signal('req-1', 'approve', { by: 'ann' }, { afterMs: 9 * 3600_000 });
//       const out = host.start('req-1', app, { request: 'laptop' });
//       assert.deepEqual(out.result, { approved: true, by: 'ann' });
//       assert.equal(out.runs, 2); // suspended once, woken by the signal
//     });
//
// `start` calls `run` and, each time the run suspends, records the
// `workflow_suspended` event as the host does, then wakes it: it delivers
// the queued signals due before the wake time (a signal the run waits for
// wakes it), else advances the clock to the wake time, and calls `run`
// again from the start; it returns when the run completes or fails, or
// when it waits with nothing left to wake it (`status: 'suspended'`; send a
// signal then, or `resume`). Time passes only by these jumps (and
// `advance`): activities take no time.
//
// The store behaves as the host's: versions, conditional saves
// (`conflict`), the fence on a run's own plain saves, `denied` writes and a
// failing `suspend` in queries, and the validation of ids, JSON fields and
// timestamps. It is not the host: no limits, no access policies.

import {
  bindHost,
  checkSignalName,
  encode,
  EventType,
  HistoryEvent,
  noQueryHandler,
  Timestamp,
  WorkflowState,
  WorkflowStatus,
} from './wf-guest.js';

const NS_PER_MS = 1_000_000n;

/** What the harness's `suspend` throws; `workflow()` lets it through. */
class Suspension {
  constructor(wakeAtNs, signals) {
    this.wakeAtNs = wakeAtNs;
    this.signals = signals;
  }

  toString() {
    return 'the workflow suspended itself to wait';
  }
}

/** A query answered with an error: `message` is its text. */
export class QueryFailedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'QueryFailedError';
  }
}

function storeError(tag, val) {
  return Object.assign(new Error(`${tag}: ${val}`), { payload: { tag, val } });
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function checkId(id) {
  if (typeof id !== 'string' || id.length === 0) throw storeError('invalid-argument', 'workflow ID is required');
  if (new TextEncoder().encode(id).length > 1024) throw storeError('invalid-argument', 'workflow ID is over 1024 bytes');
  if (CONTROL.test(id)) throw storeError('invalid-argument', 'workflow ID has a control character');
}

function checkJson(what, text) {
  if (text === undefined || text === null) return;
  try {
    JSON.parse(text);
  } catch (e) {
    throw storeError('invalid-argument', `${what} is not valid JSON: ${e.message}`);
  }
}

function checkTime(what, t) {
  if (!(t.nanoseconds >= 0 && t.nanoseconds < 1_000_000_000)) {
    throw storeError('invalid-argument', `${what}: nanoseconds out of range`);
  }
  if (t.seconds < -62_135_596_800n || t.seconds > 253_402_300_799n) {
    throw storeError('invalid-argument', `${what}: out of range`);
  }
}

// The host's id order, ascending UTF-8 bytes: that is code point order,
// which `<` on strings (UTF-16 code units) is not beyond U+FFFF.
function compareIds(a, b) {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return (p.done ? 0 : 1) - (q.done ? 0 : 1);
    const d = p.value.codePointAt(0) - q.value.codePointAt(0);
    if (d !== 0) return d;
  }
}

function checkState(s) {
  checkId(s.workflowId);
  checkJson('input', s.input);
  checkJson('result', s.result);
  checkTime('created-at', s.createdAt);
  checkTime('updated-at', s.updatedAt);
  for (const e of s.history) {
    checkJson(`event ${e.id} input`, e.input);
    checkJson(`event ${e.id} result`, e.result);
    checkJson(`event ${e.id} signal-payload`, e.signalPayload);
    checkTime(`event ${e.id} timestamp`, e.timestamp);
  }
}

const maxEventId = (wit) => wit.history.reduce((max, e) => (Number(e.id) > max ? Number(e.id) : max), 0);

/**
 * An in-memory wf host for tests. `startMs` sets the fake clock (default
 * 2026-01-01T00:00:00Z); `module` is the name the `workflow_started` events
 * give; `maxRuns` bounds the calls of `run` per workflow (a workflow that
 * never stops waking fails the test instead of hanging it).
 */
export class TestHost {
  constructor({ startMs = Date.UTC(2026, 0, 1), module = 'test.wasm', maxRuns = 1000 } = {}) {
    this.clockNs = BigInt(startMs) * NS_PER_MS;
    this.module = module;
    this.maxRuns = maxRuns;
    this._records = new Map(); // id -> { state (WIT shape), version }
    this._version = 0n;
    this._workflows = new Map(); // id -> { module, inputText, runs, suspended, lastWritten, seenEventId }
    this._pending = []; // queued signals: { id, name, payload, atNs, seq }
    this._seq = 0;
    this._mode = null; // 'run' | 'query' while a guest call runs
    this._running = null;
  }

  // -- the clock --

  /** The fake clock, in milliseconds since the epoch. */
  get nowMs() {
    return Number(this.clockNs / NS_PER_MS);
  }

  /** Moves the clock `ms` forward and delivers the signals due by then (wakes nothing). */
  advance(ms) {
    this.clockNs += BigInt(Math.round(ms * 1e6));
    this._deliverDue();
  }

  // -- the store, as the guest sees it --

  _bindings() {
    return {
      save: (state, expected) => this._save(state, expected),
      load: (id) => this._load(id)?.state,
      loadVersioned: (id) => this._load(id),
      list: (filter) => this._list(filter),
      delete: (id) => this._delete(id),
      suspend: (wakeAt, signals) => this._suspend(wakeAt, signals),
      nowNs: () => this.clockNs,
      monotonicNs: () => this.clockNs,
    };
  }

  _bind() {
    bindHost(this._bindings());
  }

  _save(state, expected) {
    if (this._mode === 'query') throw storeError('denied', 'a query cannot write');
    checkState(state);
    const id = state.workflowId;
    const current = this._records.get(id);
    const version = current?.version ?? 0n;
    if (expected !== undefined && expected !== null) {
      if (BigInt(expected) !== version) {
        throw storeError('conflict', `${id} is at version ${version}, not ${expected}`);
      }
    } else if (this._mode === 'run' && id === this._running) {
      const wf = this._workflows.get(id);
      if (wf.lastWritten !== version) {
        throw storeError('conflict', `${id} was written since this run last wrote it`);
      }
    }
    const written = this._put(state);
    if (this._mode === 'run' && id === this._running) {
      const wf = this._workflows.get(id);
      wf.lastWritten = written;
      wf.seenEventId = Math.max(wf.seenEventId, maxEventId(state));
    }
    return written;
  }

  _put(state) {
    this._version += 1n;
    this._records.set(state.workflowId, { state: structuredClone(state), version: this._version });
    return this._version;
  }

  _load(id) {
    checkId(id);
    const found = this._records.get(id);
    if (!found) return undefined;
    if (this._mode === 'run' && id === this._running) {
      const wf = this._workflows.get(id);
      wf.seenEventId = Math.max(wf.seenEventId, maxEventId(found.state));
    }
    return structuredClone(found);
  }

  _list({ status, limit, after, prefix } = {}) {
    const prefixBytes = prefix === undefined || prefix === null ? 0 : new TextEncoder().encode(prefix).length;
    if (prefixBytes > 1024) {
      throw storeError('invalid-argument', `the id prefix is ${prefixBytes} bytes; no id is longer than 1024`);
    }
    if (limit === 0) throw storeError('invalid-argument', 'limit must be at least 1');
    const max = Math.min(limit ?? 100, 1000);
    return [...this._records.keys()]
      .sort(compareIds)
      .filter((id) => after === undefined || after === null || compareIds(id, after) > 0)
      // A string prefix is a byte prefix of the UTF-8 forms as well.
      .filter((id) => !prefix || id.startsWith(prefix))
      .map((id) => this._records.get(id).state)
      .filter((s) => status === undefined || status === null || s.status === status)
      .slice(0, max)
      .map((s) => structuredClone(s));
  }

  _delete(id) {
    if (this._mode === 'query') throw storeError('denied', 'a query cannot write');
    checkId(id);
    this._records.delete(id);
  }

  _suspend(wakeAt, signals) {
    if (this._mode !== 'run') {
      throw new Error("suspend: only a workflow's run can wait (not a query, nor a component outside wf's executor)");
    }
    const wakeAtNs = wakeAt === undefined || wakeAt === null ? null : Timestamp.fromWit(wakeAt).toNanos();
    throw new Suspension(wakeAtNs, [...signals]);
  }

  // -- what the host writes --

  _hostAppend(id, kind, fields) {
    const found = this._records.get(id);
    const state = WorkflowState.fromWit(structuredClone(found.state));
    const now = Timestamp.fromNanos(this.clockNs);
    const eventId = state.history.reduce((max, e) => Math.max(max, e.id), 0) + 1;
    state.history.push(new HistoryEvent(eventId, kind, now, fields));
    state.updatedAt = now;
    return { state, write: () => this._put(state.toWit()) };
  }

  _deliver(signal) {
    const { state, write } = this._hostAppend(signal.id, EventType.SIGNAL_RECEIVED, {
      signalName: signal.name,
      signalPayload: signal.payload,
    });
    void state;
    write();
  }

  // Delivers the queued signals due now, to the workflows that exist.
  _deliverDue() {
    const due = this._pending
      .filter((s) => s.atNs <= this.clockNs && this._records.has(s.id))
      .sort((a, b) => (a.atNs < b.atNs ? -1 : a.atNs > b.atNs ? 1 : a.seq - b.seq));
    for (const s of due) {
      this._pending.splice(this._pending.indexOf(s), 1);
      this._deliver(s);
    }
    return due;
  }

  /**
   * Sends the signal `name` with `payload` (a JSON value; `undefined`: none)
   * to the workflow `id`. Now by default: it is appended to the workflow's
   * history at once (or when `start` creates it), and a workflow suspended
   * waiting for it is run again, whose outcome this returns. With
   * `{ afterMs }` or `{ atMs }` it is queued for that time on the fake
   * clock: `start` and `resume` deliver it when the clock gets there.
   * Inside a running activity, it arrives in the middle of the run (the
   * run's next conditional save then meets a `conflict`).
   */
  signal(id, name, payload, { afterMs, atMs } = {}) {
    checkSignalName(name);
    const atNs =
      atMs !== undefined ? BigInt(atMs) * NS_PER_MS : this.clockNs + BigInt(Math.round((afterMs ?? 0) * 1e6));
    const signal = { id, name, payload: payload === undefined ? undefined : encode(payload), atNs, seq: this._seq++ };
    if (atNs > this.clockNs || !this._records.has(id)) {
      this._pending.push(signal);
      return undefined;
    }
    this._deliver(signal);
    const wf = this._workflows.get(id);
    if (this._running === null && wf?.suspended && wf.suspended.signals.includes(name)) return this._drive(id);
    return undefined;
  }

  // -- runs --

  /**
   * Starts the workflow `id` of `module` (the app's module namespace, or
   * an object with `run` and optionally `query`, or a bare `run` function)
   * with `input` (a JSON value), as the host does: it saves the state
   * `running` with a `workflow_started` event, runs it, wakes it each time
   * it suspends, and records its end. Returns `{ status, result, error,
   * wakeAtMs, signals, runs }`: `status` is `completed` (with `result`, the
   * decoded result), `failed` (with `error`, the text the host records) or
   * `suspended` (waiting for `signals` with no queued signal or due time
   * left to wake it, until `wakeAtMs` if set); `runs` counts the calls of
   * `run` so far. With `{ forMs }`, the clock moves at most that far: a
   * wake due later leaves it `suspended` (then `resume`, or `signal`).
   */
  start(id, module, input, { forMs } = {}) {
    checkId(id);
    if (this._records.has(id)) throw new Error(`${id} already exists in this TestHost`);
    const mod = typeof module === 'function' ? { run: module } : module;
    if (!mod || typeof mod.run !== 'function') throw new TypeError('start needs a module exporting run, or a run function');
    const now = Timestamp.fromNanos(this.clockNs);
    const state = new WorkflowState(id, {
      runId: `run-${id}`,
      status: WorkflowStatus.RUNNING,
      input: encode(input === undefined ? null : input),
      createdAt: now,
      updatedAt: now,
    });
    state.history.push(
      new HistoryEvent(1, EventType.WORKFLOW_STARTED, now, {
        input: encode({ digest: 'test', module: this.module }),
      }),
    );
    this._put(state.toWit());
    this._workflows.set(id, {
      module: mod,
      inputText: state.input,
      runs: 0,
      suspended: null,
      lastWritten: 0n,
      seenEventId: 0,
    });
    return this._drive(id, forMs);
  }

  /**
   * Runs the suspended workflow `id` again now (and on, as `start` does;
   * `forMs` as there).
   */
  resume(id, { forMs } = {}) {
    const wf = this._workflows.get(id);
    if (!wf) throw new Error(`${id} was not started in this TestHost`);
    if (!wf.suspended) throw new Error(`${id} is not suspended (${this._records.get(id)?.state.status})`);
    return this._drive(id, forMs);
  }

  _drive(id, forMs) {
    const wf = this._workflows.get(id);
    const limitNs = forMs === undefined || forMs === null ? null : this.clockNs + BigInt(Math.round(forMs * 1e6));
    for (;;) {
      this._deliverDue();
      if (wf.runs >= this.maxRuns) throw new Error(`${id}: run called ${wf.runs} times without finishing`);
      wf.runs += 1;
      wf.suspended = null;
      const record = this._records.get(id);
      wf.lastWritten = record.version;
      wf.seenEventId = 0;
      let ok;
      let err;
      let threw = false;
      this._bind();
      this._mode = 'run';
      this._running = id;
      try {
        ok = wf.module.run(id, wf.inputText);
      } catch (e) {
        threw = true;
        err = e;
      } finally {
        this._mode = null;
        this._running = null;
      }
      if (!threw) return this._end(id, wf, WorkflowStatus.COMPLETED, ok);
      if (!(err instanceof Suspension)) {
        return this._end(id, wf, WorkflowStatus.FAILED, typeof err === 'string' ? err : `uncaught ${String(err)}`);
      }

      // Suspended: record it as the host does, then wake it.
      const suspension = err;
      const { state, write } = this._hostAppend(id, EventType.WORKFLOW_SUSPENDED, {
        signalName: suspension.signals.join('|'),
        durationNs: 0,
      });
      const event = state.history[state.history.length - 1];
      if (suspension.wakeAtNs !== null) {
        const left = suspension.wakeAtNs - this.clockNs;
        event.durationNs = Number(left > 0n ? left : 0n);
      }
      const unseen = this._records
        .get(id)
        .state.history.some(
          (e) =>
            e.kind === 'signal-received' && Number(e.id) > wf.seenEventId && suspension.signals.includes(e.signalName),
        );
      if (unseen) continue; // a signal it waits for came since it last looked: run it again at once
      write();
      wf.suspended = suspension;
      if (!this._wake(id, suspension, limitNs)) {
        return {
          status: 'suspended',
          wakeAtMs: suspension.wakeAtNs === null ? null : Number(suspension.wakeAtNs / NS_PER_MS),
          signals: suspension.signals,
          runs: wf.runs,
        };
      }
    }
  }

  // Moves time to the next thing that wakes `id`: a queued signal it waits
  // for (delivering the others on the way) or its due time. False if none.
  _wake(id, suspension, limitNs) {
    const within = (ns) => limitNs === null || ns <= limitNs;
    for (;;) {
      const next = this._pending
        .filter((s) => s.id === id)
        .sort((a, b) => (a.atNs < b.atNs ? -1 : a.atNs > b.atNs ? 1 : a.seq - b.seq))[0];
      if (next && within(next.atNs) && (suspension.wakeAtNs === null || next.atNs <= suspension.wakeAtNs)) {
        if (next.atNs > this.clockNs) this.clockNs = next.atNs;
        this._pending.splice(this._pending.indexOf(next), 1);
        this._deliver(next);
        if (suspension.signals.includes(next.name)) return true;
        continue;
      }
      if (suspension.wakeAtNs === null || !within(suspension.wakeAtNs)) return false;
      if (suspension.wakeAtNs > this.clockNs) this.clockNs = suspension.wakeAtNs;
      return true;
    }
  }

  _end(id, wf, status, text) {
    const kind = status === WorkflowStatus.COMPLETED ? EventType.WORKFLOW_COMPLETED : EventType.WORKFLOW_FAILED;
    const fields = status === WorkflowStatus.COMPLETED ? { result: text } : { error: text };
    const { state, write } = this._hostAppend(id, kind, fields);
    state.status = status;
    if (status === WorkflowStatus.COMPLETED) state.result = text;
    else state.error = text;
    write();
    wf.suspended = null;
    return status === WorkflowStatus.COMPLETED
      ? { status, result: JSON.parse(text), runs: wf.runs }
      : { status, error: text, runs: wf.runs };
  }

  // -- queries --

  /**
   * Asks the workflow `id` the query `name` with `args` (a JSON value), as
   * the host does: a read-only call of the module's `query` export (the
   * module `start` was given, unless `module` is passed). Returns the
   * decoded answer; an error answer throws `QueryFailedError`.
   */
  query(id, name, args = null, module) {
    const mod = module ?? this._workflows.get(id)?.module;
    if (!mod) throw new Error(`${id} was not started in this TestHost: pass the module`);
    const handler = typeof mod.query === 'function' ? mod.query : noQueryHandler;
    this._bind();
    this._mode = 'query';
    try {
      return JSON.parse(handler(id, name, encode(args)));
    } catch (e) {
      if (typeof e === 'string') throw new QueryFailedError(e);
      throw e;
    } finally {
      this._mode = null;
    }
  }

  // -- looking at the store --

  /** The stored state of `id` (a WorkflowState), or null. */
  state(id) {
    const found = this._records.get(id);
    return found ? WorkflowState.fromWit(structuredClone(found.state)) : null;
  }

  /** The stored version of `id` (a bigint; 0n: none). */
  version(id) {
    return this._records.get(id)?.version ?? 0n;
  }

  /** The history events of `id`. */
  events(id) {
    return this.state(id)?.history ?? [];
  }

  /** The kinds of the history events of `id`, in order. */
  kinds(id) {
    return this.events(id).map((e) => e.kind);
  }

  /** Saves `state` (a WorkflowState) as is, outside any run: test fixtures. */
  put(state) {
    return this._put(state.toWit());
  }
}

let hooked = false;

/**
 * Imports a workflow module for tests. Its `./wf-guest.js` import (the
 * file componentize.mjs puts beside it) resolves to this folder's SDK when
 * there is no such file beside it; the rest resolves as usual.
 */
export async function importWorkflow(path) {
  if (!hooked) {
    const { register } = await import('node:module');
    register(new URL('./testing-hooks.mjs', import.meta.url));
    hooked = true;
  }
  const { pathToFileURL } = await import('node:url');
  const url = path instanceof URL ? path.href : /^[a-z]+:\/\//.test(path) ? path : pathToFileURL(path).href;
  return import(url);
}
