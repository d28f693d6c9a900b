// Write wf workflow modules in JavaScript.
//
// A workflow module is a WebAssembly component of the world
// `wf:workflow/workflow`: the host calls its `run` once per execution, and the
// module may save, load, list and delete workflow states through the host's
// store. This module hides the bindings of componentize-js behind plain
// JavaScript: write a function from the decoded input to a JSON-encodable
// result and export it with `workflow`:
//
//     import { workflow, EventType } from './wf-guest.js';
//
//     export const run = workflow((ctx, order) => {
//       // Record a step in this workflow's own history, durably.
//       ctx.updateState((s) => s.pushEvent(EventType.ACTIVITY_COMPLETED, { activityName: 'reserve' }));
//       return { sku: order.sku, reserved: order.quantity };
//     });
//
// Build it with `node componentize.mjs app.js -o app.wasm` (this folder's
// build script: it puts this file beside the app and calls componentize-js
// with the project's WIT and without the `wasi:http` feature).
//
// What the function returns is encoded as the result JSON; the input arrives
// decoded with JSON.parse. Throwing a `WorkflowError` fails the workflow with
// exactly its message; a `StoreError` that escapes fails it with
// "<kind>: <message>"; anything else thrown fails it with its name, message
// and stack.

import {
  save as witSave,
  load as witLoad,
  loadVersioned as witLoadVersioned,
  list as witList,
  delete as witDelete,
} from 'wf:workflow/store@0.1.0';

/** JSON text for `value`, compact, as the store keeps it. */
export function encode(value) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`${typeof value} is not JSON-encodable`);
  }
  return text;
}

/** The value of JSON `text`; `null` for none. */
export function decode(text) {
  return text === undefined || text === null ? null : JSON.parse(text);
}

// --- errors -------------------------------------------------------------------

/**
 * A store call failed; mirrors the WIT `store-error`. Nothing was written.
 * `kind` is the WIT case name (`invalid-argument`, `too-large`, `denied`,
 * `unavailable`, `conflict` or `internal`); `message` the host's text.
 */
export class StoreError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'StoreError';
    this.kind = kind;
  }

  toString() {
    return `${this.kind}: ${this.message}`;
  }
}

StoreError.KINDS = Object.freeze([
  'invalid-argument',
  'too-large',
  'denied',
  'unavailable',
  'conflict',
  'internal',
]);

/** Throw it to fail the workflow with exactly this message. */
export class WorkflowError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WorkflowError';
  }
}

/** The input does not have the shape the workflow expects. */
export class InputError extends WorkflowError {
  constructor(message) {
    super(`the workflow input does not match the expected type: ${message}`);
    this.name = 'InputError';
  }
}

function call(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    const payload = e && e.payload;
    if (payload && typeof payload.tag === 'string') {
      throw new StoreError(payload.tag, String(payload.val));
    }
    throw e;
  }
}

// --- state types ----------------------------------------------------------------

/** Where a workflow is in its lifecycle; the values are the wire names. */
export const WorkflowStatus = Object.freeze({
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELED: 'canceled',
});

/** What a history event records; the values are the wire names. */
export const EventType = Object.freeze({
  WORKFLOW_STARTED: 'workflow_started',
  WORKFLOW_COMPLETED: 'workflow_completed',
  WORKFLOW_FAILED: 'workflow_failed',
  WORKFLOW_CANCELED: 'workflow_canceled',
  ACTIVITY_STARTED: 'activity_started',
  ACTIVITY_COMPLETED: 'activity_completed',
  ACTIVITY_FAILED: 'activity_failed',
  SIGNAL_RECEIVED: 'signal_received',
  TIMER_FIRED: 'timer_fired',
});

// WIT enums are kebab-case; the wire (and this module) uses snake_case.
const toWit = (name) => name.replaceAll('_', '-');
const fromWit = (name) => name.replaceAll('-', '_');

function checkOne(table, what, value) {
  if (!Object.values(table).includes(value)) {
    throw new TypeError(`${JSON.stringify(value)} is not a ${what}`);
  }
  return value;
}

/** A UTC instant: seconds and nanoseconds since 1970-01-01T00:00:00Z. */
export class Timestamp {
  constructor(seconds, nanoseconds = 0) {
    this.seconds = Number(seconds);
    this.nanoseconds = Number(nanoseconds);
  }

  /** The current time from the host's wall clock (millisecond precision). */
  static now() {
    const ms = Date.now();
    return new Timestamp(Math.floor(ms / 1000), (ms % 1000) * 1_000_000);
  }

  static fromJSON(d) {
    return new Timestamp(d.seconds, d.nanoseconds);
  }

  toJSON() {
    return { seconds: this.seconds, nanoseconds: this.nanoseconds };
  }

  toWit() {
    return { seconds: BigInt(this.seconds), nanoseconds: this.nanoseconds };
  }

  static fromWit(t) {
    return new Timestamp(t.seconds, t.nanoseconds);
  }
}

/** The Go zero time `0001-01-01T00:00:00Z`: "not set" on the wire. */
Timestamp.ZERO = Object.freeze(new Timestamp(-62_135_596_800, 0));

const optEncode = (value) => (value === undefined || value === null ? undefined : encode(value));
const optText = (text) => (text === undefined || text === null ? undefined : String(text));

/** One entry of a workflow's history. JSON fields hold JSON text. */
export class HistoryEvent {
  constructor(id, kind, timestamp, fields = {}) {
    this.id = id;
    this.kind = checkOne(EventType, 'event type', kind);
    this.timestamp = timestamp;
    this.activityName = '';
    this.input = undefined;
    this.result = undefined;
    this.error = '';
    this.signalName = '';
    this.signalPayload = undefined;
    this.durationNs = 0;
    Object.assign(this, fields);
  }

  setInput(value) {
    this.input = encode(value);
  }

  setResult(value) {
    this.result = encode(value);
  }

  inputValue() {
    return decode(this.input);
  }

  resultValue() {
    return decode(this.result);
  }

  /** The wire form: snake_case keys, JSON fields as the values they hold. */
  toJSON() {
    return {
      id: this.id,
      kind: this.kind,
      timestamp: this.timestamp.toJSON(),
      activity_name: this.activityName,
      input: decode(this.input),
      result: decode(this.result),
      error: this.error,
      signal_name: this.signalName,
      signal_payload: decode(this.signalPayload),
      duration_ns: this.durationNs,
    };
  }

  static fromJSON(d) {
    return new HistoryEvent(Number(d.id), d.kind, Timestamp.fromJSON(d.timestamp), {
      activityName: d.activity_name ?? '',
      input: optEncode(d.input),
      result: optEncode(d.result),
      error: d.error ?? '',
      signalName: d.signal_name ?? '',
      signalPayload: optEncode(d.signal_payload),
      durationNs: Number(d.duration_ns ?? 0),
    });
  }

  toWit() {
    return {
      id: BigInt(this.id),
      kind: toWit(this.kind),
      timestamp: this.timestamp.toWit(),
      activityName: this.activityName,
      input: optText(this.input),
      result: optText(this.result),
      error: this.error,
      signalName: this.signalName,
      signalPayload: optText(this.signalPayload),
      durationNs: BigInt(this.durationNs),
    };
  }

  static fromWit(e) {
    return new HistoryEvent(Number(e.id), fromWit(e.kind), Timestamp.fromWit(e.timestamp), {
      activityName: e.activityName,
      input: e.input,
      result: e.result,
      error: e.error,
      signalName: e.signalName,
      signalPayload: e.signalPayload,
      durationNs: Number(e.durationNs),
    });
  }
}

/**
 * The persisted state of one workflow. JSON fields hold JSON text; use
 * `setInput`/`inputValue` and friends to work with values.
 */
export class WorkflowState {
  constructor(workflowId, fields = {}) {
    const now = Timestamp.now();
    this.workflowId = workflowId;
    this.runId = '';
    // A record a guest saves is data, never a run the host resumes.
    this.status = WorkflowStatus.COMPLETED;
    this.input = undefined;
    this.result = undefined;
    this.error = '';
    this.history = [];
    this.createdAt = now;
    this.updatedAt = now;
    Object.assign(this, fields);
    checkOne(WorkflowStatus, 'workflow status', this.status);
  }

  /**
   * A state for `workflowId` created now, `completed` unless `status` says
   * otherwise; `input` and `result` are values (encoded as JSON),
   * `null`/`undefined` for none. A record a guest saves is data, never a
   * run the host resumes, whatever its status.
   */
  static create(workflowId, { status = WorkflowStatus.COMPLETED, input, result } = {}) {
    return new WorkflowState(workflowId, {
      status,
      input: optEncode(input),
      result: optEncode(result),
    });
  }

  setInput(value) {
    this.input = encode(value);
  }

  setResult(value) {
    this.result = encode(value);
  }

  inputValue() {
    return decode(this.input);
  }

  resultValue() {
    return decode(this.result);
  }

  /**
   * Appends an event of `kind`, numbered after the highest id and stamped
   * now, with `fields` set (`input` and `result` take values), and returns it.
   */
  pushEvent(kind, fields = {}) {
    const id = this.history.reduce((max, e) => Math.max(max, e.id), 0) + 1;
    const event = new HistoryEvent(id, kind, Timestamp.now());
    for (const [name, value] of Object.entries(fields)) {
      event[name] = name === 'input' || name === 'result' || name === 'signalPayload' ? optEncode(value) : value;
    }
    this.history.push(event);
    return event;
  }

  /** The wire form (as the host stores it): snake_case, JSON fields as values. */
  toJSON() {
    return {
      workflow_id: this.workflowId,
      run_id: this.runId,
      status: this.status,
      input: decode(this.input),
      result: decode(this.result),
      error: this.error,
      history: this.history.map((e) => e.toJSON()),
      created_at: this.createdAt.toJSON(),
      updated_at: this.updatedAt.toJSON(),
    };
  }

  static fromJSON(d) {
    return new WorkflowState(d.workflow_id, {
      runId: d.run_id ?? '',
      status: d.status ?? WorkflowStatus.COMPLETED,
      input: optEncode(d.input),
      result: optEncode(d.result),
      error: d.error ?? '',
      history: (d.history ?? []).map((e) => HistoryEvent.fromJSON(e)),
      createdAt: d.created_at ? Timestamp.fromJSON(d.created_at) : Timestamp.ZERO,
      updatedAt: d.updated_at ? Timestamp.fromJSON(d.updated_at) : Timestamp.ZERO,
    });
  }

  toWit() {
    return {
      workflowId: this.workflowId,
      runId: this.runId,
      status: this.status,
      input: optText(this.input),
      result: optText(this.result),
      error: this.error,
      history: this.history.map((e) => e.toWit()),
      createdAt: this.createdAt.toWit(),
      updatedAt: this.updatedAt.toWit(),
    };
  }

  static fromWit(s) {
    return new WorkflowState(s.workflowId, {
      runId: s.runId,
      status: s.status,
      input: s.input,
      result: s.result,
      error: s.error,
      history: s.history.map((e) => HistoryEvent.fromWit(e)),
      createdAt: Timestamp.fromWit(s.createdAt),
      updatedAt: Timestamp.fromWit(s.updatedAt),
    });
  }
}

// --- the store and the context ---------------------------------------------------

// An expected version for the WIT `option<u64>`: `undefined` for none.
function toVersion(v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'bigint') {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${v} is not a version (a u64)`);
    return v;
  }
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new TypeError(`${JSON.stringify(v)} is not a version (a bigint or a non-negative integer)`);
  }
  return BigInt(v);
}

/**
 * The host's workflow store. Calls are synchronous; a write returns once the
 * host's backend acknowledged it. Failures throw `StoreError`.
 */
export class Store {
  /**
   * Creates or replaces the state under `state.workflowId`.
   *
   * Inside a run, a save of the workflow's own id is checked by the host
   * against the version the run last wrote: if another host took the
   * workflow over and wrote it, this throws a `conflict` `StoreError`.
   */
  save(state) {
    this.saveVersioned(state);
  }

  /**
   * Saves `state` only if its id is still at version `expectedVersion` (0: no
   * state stored), else throws a `StoreError` of kind `conflict` and writes
   * nothing; `undefined`/`null` saves as `save` does. Returns the new version.
   *
   * Who decides: on hosts of one group, the host that owns the id (this call
   * and `loadVersioned` go there; one that cannot be forwarded throws
   * `unavailable`), so the retry loop below is exact across hosts. Outside a
   * group each host decides against its own cache: two hosts writing one
   * topic without a group can both succeed.
   *
   * Versions are `bigint`s (the WIT `u64`, exact): `expectedVersion` may be a
   * `bigint` or a non-negative integer `number`; what this returns and
   * `loadVersioned` gives is a `bigint`. Compare them with `===`; convert
   * with `Number(v)` to put one into JSON.
   *
   *     // Increment a counter kept in `result`, safely against other writers.
   *     for (;;) {
   *       const found = ctx.store.loadVersioned('counter');
   *       const state = found?.state ?? WorkflowState.create('counter', { result: 0 });
   *       state.setResult(state.resultValue() + 1);
   *       try {
   *         ctx.store.saveVersioned(state, found?.version ?? 0n);
   *         break;
   *       } catch (e) {
   *         if (!(e instanceof StoreError && e.kind === 'conflict')) throw e;
   *       }
   *     }
   *
   * @param {WorkflowState} state
   * @param {bigint | number | null | undefined} [expectedVersion]
   * @returns {bigint}
   */
  saveVersioned(state, expectedVersion) {
    return BigInt(call(witSave, state.toWit(), toVersion(expectedVersion)));
  }

  /** The state under `workflowId`, or `null`. */
  load(workflowId) {
    const found = call(witLoad, workflowId);
    return found === undefined || found === null ? null : WorkflowState.fromWit(found);
  }

  /**
   * The state under `workflowId` with its version (read in one step), as
   * `{ state, version }` (a `WorkflowState` and a `bigint`), or `null`: for a
   * later `saveVersioned`.
   *
   * @param {string} workflowId
   * @returns {{ state: WorkflowState, version: bigint } | null}
   */
  loadVersioned(workflowId) {
    const found = call(witLoadVersioned, workflowId);
    return found === undefined || found === null
      ? null
      : { state: WorkflowState.fromWit(found.state), version: BigInt(found.version) };
  }

  /**
   * One page of states (default 100, at most 1000), ascending by id; only
   * `status` if given, only ids after `after` if given.
   */
  list({ status, limit, after } = {}) {
    const filter = {
      status: status === undefined || status === null ? undefined : checkOne(WorkflowStatus, 'workflow status', status),
      limit: limit === undefined || limit === null ? undefined : limit,
      after: after === undefined || after === null ? undefined : after,
    };
    return call(witList, filter).map((s) => WorkflowState.fromWit(s));
  }

  /** Every matching state, fetching page after page from `after` on. */
  *listAll({ status, after } = {}) {
    for (;;) {
      const page = this.list({ status, limit: 1000, after });
      if (page.length === 0) return;
      yield* page;
      after = page[page.length - 1].workflowId;
    }
  }

  /** Removes the state under `workflowId`; absent ids succeed. */
  delete(workflowId) {
    call(witDelete, workflowId);
  }
}

/** What a running workflow knows about itself, and its store. */
export class Context {
  constructor(workflowId) {
    this.workflowId = workflowId;
    this.store = new Store();
  }

  /** This workflow's stored state (saved as `running` before `run`). */
  state() {
    return this.store.load(this.workflowId);
  }

  /**
   * Loads this workflow's state (or starts one), applies `change`, stamps
   * `updatedAt`, saves it and returns what was saved. The host keeps history
   * saved this way when it records the end of the run.
   */
  updateState(change) {
    const state = this.state() ?? WorkflowState.create(this.workflowId);
    change(state);
    state.updatedAt = Timestamp.now();
    this.store.save(state);
    return state;
  }
}

// --- the export -------------------------------------------------------------------

function describe(e) {
  if (e instanceof Error) {
    const frame = (e.stack ?? '').split('\n').find((line) => line.trim() !== '');
    return `uncaught ${e.name}: ${e.message}${frame ? ` (at ${frame.trim()})` : ''}`;
  }
  return `uncaught exception: ${String(e)}`;
}

/**
 * The workflow's `run` export for `f(ctx, input)`: `ctx` is a `Context`,
 * `input` the decoded input; `f` returns the result as a JSON-encodable
 * value. Export it as `run`: `export const run = workflow(f);`.
 */
export function workflow(f) {
  return function run(workflowId, input) {
    let value;
    try {
      value = JSON.parse(input);
    } catch (e) {
      throw `the workflow input is not JSON: ${e instanceof Error ? e.message : String(e)}`;
    }
    let output;
    try {
      output = f(new Context(workflowId), value);
    } catch (e) {
      // The component model's `err` carries a string: a thrown string.
      if (e instanceof WorkflowError) throw e.message;
      if (e instanceof StoreError) throw e.toString();
      throw describe(e);
    }
    try {
      return encode(output === undefined ? null : output);
    } catch (e) {
      throw `cannot encode the workflow result: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
}
