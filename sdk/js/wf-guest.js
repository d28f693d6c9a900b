// Write wf workflow modules in JavaScript.
//
// A workflow module is a WebAssembly component of the world
// `wf:workflow/queryable-workflow`: the host calls its `run` once per
// execution (again from the start after each wait), and `query` to ask it
// about a workflow; the module may save, load, list and delete workflow
// states through the host's store, and wait for signals and timers. This
// module hides the bindings of componentize-js behind plain JavaScript: write
// a function from the decoded input to a JSON-encodable result and export it
// with `workflow`:
//
//     import { workflow, queryHandler, WorkflowError } from './wf-guest.js';
//
//     export const run = workflow((ctx, order) => {
//       // A side effect, recorded once: a re-run returns the recorded result.
//       const charge = ctx.activity('charge', order, (o) => ({ charged: o.amount }), {
//         retry: { maxAttempts: 3, initialIntervalMs: 1000 },
//       });
//       // Wait (without holding an instance) for a signal, at most a day.
//       const ok = ctx.waitSignal('approve', { timeoutMs: 24 * 3600 * 1000 });
//       if (ok === null) throw new WorkflowError('not approved in time');
//       ctx.sleep(60_000);
//       return { ...charge, approvedBy: ok.by };
//     });
//
//     // Optional: answer queries from the recorded state.
//     export const query = queryHandler((ctx, name, args) => {
//       if (name === 'status') return { status: ctx.state()?.status ?? null };
//       throw new WorkflowError(`unknown query ${name}`);
//     });
//
// Build it with `node componentize.mjs app.js -o app.wasm` (this folder's
// build script: it checks the sources, puts this file beside the app, and
// calls componentize-js with the project's WIT, the `queryable-workflow`
// world and without the `wasi:http` feature). A module that exports no
// `query` answers every query with "this workflow has no query handler".
//
// The run is called again from the start at every wake and replays its
// history (docs/waiting.md): side effects belong in activities, and the code
// must take the same path each time (no `Date.now()` or `Math.random()`
// outside activities).
//
// What the function returns is encoded as the result JSON; the input arrives
// decoded with JSON.parse. Throwing a `WorkflowError` (or an `ActivityError`
// escaping an activity) fails the workflow with exactly its message; a
// `StoreError` that escapes fails it with "<kind>: <message>"; anything else
// thrown fails it with its name, message and the first frame of the caller's
// code (not of this SDK): `uncaught TypeError: ... (at run@app.js:5:3)`.
//
// This file imports nothing: the build's entry module (componentize.mjs)
// binds it to the component's imports, and `testing.js` binds it to an
// in-memory host, so the same workflow code runs in a component and under
// `node --test`.

// --- the host ------------------------------------------------------------------

// The host's functions: the WIT `store` and `execution` imports plus clocks.
// Kept on globalThis, so that every copy of this file in one program (the
// app's and the test harness's) sees the same host.
const HOST = Symbol.for('wf-guest.host');

/**
 * Binds this SDK to a host: `{ save, load, loadVersioned, list, delete,
 * suspend }` with the signatures componentize-js gives the WIT imports
 * (and `loadBuffer`, `loadVersionedBuffer`, `saveBuffer`, which loads and
 * saves use when given), and
 * optionally `nowNs()` (the wall clock, a bigint of nanoseconds since the
 * epoch), `monotonicNs()` and `sourceRoot` (a path prefix stripped from
 * error locations). The build's entry module calls it with the component's
 * imports; `testing.js` with its in-memory host. Not for workflow code.
 */
export function bindHost(host) {
  globalThis[HOST] = host;
}

function host() {
  const h = globalThis[HOST];
  if (!h) {
    throw new Error(
      'wf-guest.js is not bound to a host: build the module with sdk/js/componentize.mjs, ' +
        'or run it under TestHost from sdk/js/testing.js',
    );
  }
  return h;
}

const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;

function nowNs() {
  const h = globalThis[HOST];
  if (h && h.nowNs) return BigInt(h.nowNs());
  return BigInt(Date.now()) * NS_PER_MS;
}

function monotonicNs() {
  const h = globalThis[HOST];
  if (h && h.monotonicNs) return BigInt(h.monotonicNs());
  if (h && h.nowNs) return BigInt(h.nowNs());
  const perf = globalThis.performance;
  if (perf && typeof perf.now === 'function') return BigInt(Math.round(perf.now() * 1e6));
  return BigInt(Date.now()) * NS_PER_MS;
}

// --- JSON ------------------------------------------------------------------------

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

// A short description of any value, for error messages: never throws (a
// bigint inside an object would make JSON.stringify throw).
function show(value) {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  try {
    return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  } catch {
    return Object.prototype.toString.call(value);
  }
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

/** Throw it to fail the workflow (or a query) with exactly this message. */
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

/**
 * An activity failed for good: its policy allows no further attempt, or the
 * error is non-retryable. `activityName`, `error` (the last attempt's error
 * text) and `attempts` (how many were made). Escaping the workflow, it fails
 * it with its message: `activity "charge" failed after 3 attempts: <error>`.
 */
export class ActivityError extends WorkflowError {
  constructor(activityName, error, attempts) {
    super(`activity ${JSON.stringify(activityName)} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${error}`);
    this.name = 'ActivityError';
    this.activityName = activityName;
    this.error = error;
    this.attempts = attempts;
  }
}

/**
 * The code asked for another step than the history records at this point:
 * the code changed under a running workflow, or it branched on something
 * not replayed (the clock, randomness, a store read outside an activity).
 * `step` (1-based, among the steps the history records), `eventId`,
 * `recorded` (`{kind, name}`, or null) and `requested` (a description).
 */
export class NonDeterministicError extends Error {
  constructor(step, eventId, recorded, requested) {
    const found = recorded
      ? `the history has ${recorded.kind}${recorded.name ? ` ${JSON.stringify(recorded.name)}` : ''} (event ${eventId})`
      : 'the history has nothing there';
    super(`non-deterministic workflow: step ${step} asks for ${requested}, but ${found}`);
    this.name = 'NonDeterministicError';
    this.step = step;
    this.eventId = eventId;
    this.recorded = recorded;
    this.requested = requested;
  }
}

/**
 * A signal name the host would not deliver: names are 1 to 256 bytes of
 * UTF-8 without control characters or `|`. Thrown before anything is written.
 */
export class InvalidSignalNameError extends TypeError {
  constructor(name, why) {
    super(`invalid signal name ${show(name)}: ${why}`);
    this.name = 'InvalidSignalNameError';
    this.signalName = name;
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
  TIMER_STARTED: 'timer_started',
  WORKFLOW_SUSPENDED: 'workflow_suspended',
});

// WIT enums are kebab-case; the wire (and this module) uses snake_case.
const toWit = (name) => name.replaceAll('_', '-');
const fromWit = (name) => name.replaceAll('-', '_');

function checkOne(table, what, value) {
  if (!Object.values(table).includes(value)) {
    throw new TypeError(`${show(value)} is not a ${what}`);
  }
  return value;
}

/** A UTC instant: seconds and nanoseconds since 1970-01-01T00:00:00Z. */
export class Timestamp {
  constructor(seconds, nanoseconds = 0) {
    this.seconds = Number(seconds);
    this.nanoseconds = Number(nanoseconds);
  }

  /**
   * The current time from the host's wall clock (millisecond precision in a
   * component; the fake clock under `testing.js`).
   */
  static now() {
    return Timestamp.fromNanos(nowNs());
  }

  /** The instant `ns` (a bigint) nanoseconds after the epoch. */
  static fromNanos(ns) {
    ns = BigInt(ns);
    let seconds = ns / NS_PER_S;
    let nanos = ns % NS_PER_S;
    if (nanos < 0n) {
      nanos += NS_PER_S;
      seconds -= 1n;
    }
    return new Timestamp(seconds, nanos);
  }

  /** Nanoseconds since the epoch, exactly, as a bigint. */
  toNanos() {
    return BigInt(this.seconds) * NS_PER_S + BigInt(this.nanoseconds);
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

// A WIT s64 as a number when it is one exactly, else as a bigint.
const exactNumber = (v) => (typeof v === 'bigint' && !Number.isSafeInteger(Number(v)) ? v : Number(v));

/**
 * One entry of a workflow's history. JSON fields hold JSON text.
 * `durationNs` is a number, or a bigint beyond 2^53 ns (104 days).
 */
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

  signalPayloadValue() {
    return decode(this.signalPayload);
  }

  /**
   * This SDK's JSON form of the event (the one `fromJSON` reads, and the
   * test guests exchange): the WIT field names in snake_case, the JSON
   * fields as the values they hold, the timestamp as `{seconds,
   * nanoseconds}`. It is NOT the wire form the host stores (Go's field
   * names `ID`, `Type`, ..., RFC 3339 times, `Duration`: see
   * docs/wire-format.md).
   */
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
      duration_ns: Number(this.durationNs),
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
      durationNs: exactNumber(e.durationNs),
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
   * now, with `fields` set (`input`, `result` and `signalPayload` take
   * values), and returns it.
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

  /**
   * This SDK's JSON form of the state (the one `fromJSON` reads, and the
   * test guests exchange): the WIT field names in snake_case
   * (`workflow_id`, `run_id`, ..., `created_at`), JSON fields as the values
   * they hold, times as `{seconds, nanoseconds}`. It is NOT the wire form
   * the host stores, which is Go's `encoding/json` of its struct
   * (`WorkflowID`, `RunID`, ..., RFC 3339 times: docs/wire-format.md).
   */
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

// --- state buffers (the WIT `state-buffer`) --------------------------------------

const PACKED_HEADER_BYTES = 72;
const PACKED_EVENT_BYTES = 80;
const PACKED_NONE = 0xffff_ffff;
// The WIT `workflow-status` and `event-type` cases in their declared order.
const PACKED_STATUSES = ['running', 'completed', 'failed', 'canceled'];
const PACKED_KINDS = [
  'workflow_started',
  'workflow_completed',
  'workflow_failed',
  'workflow_canceled',
  'activity_started',
  'activity_completed',
  'activity_failed',
  'signal_received',
  'timer_fired',
  'timer_started',
  'workflow_suspended',
];
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A `WorkflowState` from the host's packed form (one buffer: header, event
 * table, text); a buffer that breaks the layout is an `internal` StoreError.
 */
function unpackState(p) {
  const broken = (what) => new StoreError('internal', `the host packed a state ${what}`);
  if (p.byteLength < PACKED_HEADER_BYTES) {
    throw broken(`of ${p.byteLength} bytes, fewer than its ${PACKED_HEADER_BYTES}-byte header`);
  }
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const count = view.getUint32(68, true);
  const textAt = PACKED_HEADER_BYTES + count * PACKED_EVENT_BYTES;
  if (textAt > p.byteLength) {
    throw broken(`with ${count} history events in its header, more than its ${p.byteLength} bytes hold`);
  }
  const status = PACKED_STATUSES[view.getUint32(64, true)];
  if (status === undefined) throw broken(`with an unknown status ${view.getUint32(64, true)}`);
  const bytes = p.subarray(textAt);
  let all;
  try {
    all = UTF8.decode(bytes);
  } catch (e) {
    throw broken(`whose text is not UTF-8: ${e.message}`);
  }
  // ASCII text (the common case): byte offsets are string offsets.
  const ascii = all.length === bytes.length;
  // The string field whose span is at byte `at`; `none` only where `optional`.
  const field = (at, optional) => {
    const start = view.getUint32(at, true);
    const len = view.getUint32(at + 4, true);
    if (start === PACKED_NONE && optional) return undefined;
    if (start + len > bytes.length) {
      throw broken(`with a span (start ${start}, length ${len}) outside its text of ${bytes.length} bytes`);
    }
    if (ascii) return all.slice(start, start + len);
    try {
      return UTF8.decode(bytes.subarray(start, start + len));
    } catch {
      throw broken(`with a span (start ${start}, length ${len}) across a character`);
    }
  };
  const history = [];
  for (let at = PACKED_HEADER_BYTES; at < textAt; at += PACKED_EVENT_BYTES) {
    const kind = PACKED_KINDS[view.getUint32(at + 28, true)];
    if (kind === undefined) throw broken(`with an event of unknown kind ${view.getUint32(at + 28, true)}`);
    const timestamp = new Timestamp(view.getBigInt64(at + 8, true), view.getUint32(at + 24, true));
    history.push(
      new HistoryEvent(Number(view.getBigUint64(at, true)), kind, timestamp, {
        activityName: field(at + 32, false),
        input: field(at + 40, true),
        result: field(at + 48, true),
        error: field(at + 56, false),
        signalName: field(at + 64, false),
        signalPayload: field(at + 72, true),
        durationNs: exactNumber(view.getBigInt64(at + 16, true)),
      }),
    );
  }
  return new WorkflowState(field(0, false), {
    runId: field(8, false),
    status,
    input: field(16, true),
    result: field(24, true),
    error: field(32, false),
    history,
    createdAt: new Timestamp(view.getBigInt64(40, true), view.getUint32(56, true)),
    updatedAt: new Timestamp(view.getBigInt64(48, true), view.getUint32(60, true)),
  });
}

const PACKED_KIND_INDEX = new Map(PACKED_KINDS.map((kind, i) => [kind, i]));
const UTF8_ENCODER = new TextEncoder();
const S64_MIN = -(2n ** 63n);
const S64_MAX = 2n ** 63n - 1n;

/** `value` as a bigint in `min..=max`, or a RangeError naming `what`. */
function integerIn(value, min, max, what) {
  let big;
  try {
    big = BigInt(value);
  } catch {
    throw new RangeError(`${what} must be an integer, got ${show(value)}`);
  }
  if (big < min || big > max) throw new RangeError(`${what} is out of range: ${show(value)}`);
  return big;
}

const PACKED_STATUS_INDEX = new Map(PACKED_STATUSES.map((status, i) => [status, i]));

/** The host's state buffer of `s` (for `saveBuffer`): header, event table and text. */
function packState(s) {
  let text = new Uint8Array(1024);
  let used = 0;
  const span = (value, what) => {
    if (typeof value !== 'string') throw new TypeError(`${what} must be a string, got ${show(value)}`);
    // UTF-8 takes at most three bytes per UTF-16 unit.
    const need = used + value.length * 3;
    if (need > text.length) {
      const bigger = new Uint8Array(Math.max(need, text.length * 2));
      bigger.set(text.subarray(0, used));
      text = bigger;
    }
    const start = used;
    used += UTF8_ENCODER.encodeInto(value, text.subarray(used)).written;
    return { start, len: used - start };
  };
  const json = (value, what) => (value === undefined || value === null ? undefined : span(String(value), what));
  const textAt = PACKED_HEADER_BYTES + s.history.length * PACKED_EVENT_BYTES;
  const fixed = new Uint8Array(textAt);
  const view = new DataView(fixed.buffer);
  const spans = (at, fields) =>
    fields.forEach((field, i) => {
      view.setUint32(at + i * 8, field === undefined ? PACKED_NONE : field.start, true);
      view.setUint32(at + 4 + i * 8, field === undefined ? 0 : field.len, true);
    });
  const time = (at, t, what) => {
    view.setBigInt64(at, integerIn(t.seconds, S64_MIN, S64_MAX, `${what} seconds`), true);
    view.setUint32(at + 16, Number(integerIn(t.nanoseconds, 0n, 0xffff_ffffn, `${what} nanoseconds`)), true);
  };
  spans(0, [
    span(s.workflowId, 'workflowId'),
    span(s.runId, 'runId'),
    json(s.input, 'input'),
    json(s.result, 'result'),
    span(s.error, 'error'),
  ]);
  time(40, s.createdAt, 'createdAt');
  time(48, s.updatedAt, 'updatedAt');
  const status = PACKED_STATUS_INDEX.get(s.status);
  if (status === undefined) throw new TypeError(`status has an unknown value ${show(s.status)}`);
  view.setUint32(64, status, true);
  view.setUint32(68, s.history.length, true);
  s.history.forEach((e, n) => {
    const at = PACKED_HEADER_BYTES + n * PACKED_EVENT_BYTES;
    const kind = PACKED_KIND_INDEX.get(e.kind);
    if (kind === undefined) throw new TypeError(`history event ${n} has an unknown kind ${show(e.kind)}`);
    view.setBigUint64(at, integerIn(e.id, 0n, U64_MAX, `history event ${n}'s id`), true);
    view.setBigInt64(at + 8, integerIn(e.timestamp.seconds, S64_MIN, S64_MAX, `history event ${n}'s seconds`), true);
    view.setBigInt64(at + 16, integerIn(e.durationNs, S64_MIN, S64_MAX, `history event ${n}'s durationNs`), true);
    view.setUint32(at + 24, Number(integerIn(e.timestamp.nanoseconds, 0n, 0xffff_ffffn, `history event ${n}'s nanoseconds`)), true);
    view.setUint32(at + 28, kind, true);
    spans(at + 32, [
      span(e.activityName, 'activityName'),
      json(e.input, 'input'),
      json(e.result, 'result'),
      span(e.error, 'error'),
      span(e.signalName, 'signalName'),
      json(e.signalPayload, 'signalPayload'),
    ]);
  });
  const packed = new Uint8Array(textAt + used);
  packed.set(fixed);
  packed.set(text.subarray(0, used), textAt);
  return packed;
}

// --- the store -------------------------------------------------------------------

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * An expected version for the WIT `option<u64>`: `undefined` for none.
 * Accepts a bigint in the u64 range or a non-negative safe integer number;
 * anything else (a string, a fraction, a boolean, a `loadVersioned` result)
 * throws a TypeError or RangeError saying what was given.
 */
export function toVersion(v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw new RangeError(`${v}n is not a version (a u64)`);
    return v;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`${v} is not a version (a non-negative integer, or a bigint)`);
    }
    return BigInt(v);
  }
  if (typeof v === 'object' && 'version' in v && 'state' in v) {
    throw new TypeError(
      'expected a version, got what loadVersioned returned ({state, version}): pass its .version',
    );
  }
  throw new TypeError(`expected a version (a bigint or a non-negative integer), got ${typeof v} ${show(v)}`);
}

/**
 * The host's workflow store. Calls are synchronous; a write returns once the
 * host's backend acknowledged it. Failures throw `StoreError`.
 */
export class Store {
  /**
   * Creates or replaces the state under `state.workflowId`, first stamping
   * its `updatedAt` with now (pass `{ stamp: false }` to save it as it is).
   *
   * Inside a run, a save of the workflow's own id is checked by the host
   * against the version the run last wrote: if another host took the
   * workflow over, or a signal arrived, this throws a `conflict`
   * `StoreError` (`ctx.updateState` loads again and retries for you).
   */
  save(state, { stamp = true } = {}) {
    this.saveVersioned(state, undefined, { stamp });
  }

  /**
   * Saves `state` only if its id is still at version `expectedVersion` (0: no
   * state stored), else throws a `StoreError` of kind `conflict` and writes
   * nothing; `undefined`/`null` saves as `save` does. Stamps `updatedAt`
   * with now first, unless `{ stamp: false }`. Returns the new version.
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
   * @param {{stamp?: boolean}} [options]
   * @returns {bigint}
   */
  saveVersioned(state, expectedVersion, { stamp = true } = {}) {
    const expected = toVersion(expectedVersion);
    if (!(state instanceof WorkflowState)) {
      throw new TypeError(`expected a WorkflowState, got ${show(state)}`);
    }
    if (stamp) state.updatedAt = Timestamp.now();
    const h = host();
    if (h.saveBuffer) return BigInt(call(h.saveBuffer, packState(state), expected));
    return BigInt(call(h.save, state.toWit(), expected));
  }

  /** The state under `workflowId`, or `null`. */
  load(workflowId) {
    const h = host();
    if (h.loadBuffer) {
      const found = call(h.loadBuffer, workflowId);
      return found === undefined || found === null ? null : unpackState(found);
    }
    const found = call(h.load, workflowId);
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
    const h = host();
    const packed = Boolean(h.loadVersionedBuffer);
    const found = call(packed ? h.loadVersionedBuffer : h.loadVersioned, workflowId);
    if (found === undefined || found === null) return null;
    const state = packed ? unpackState(found.state) : WorkflowState.fromWit(found.state);
    return { state, version: BigInt(found.version) };
  }

  /**
   * One page of states (default 100, at most 1000), ascending by id; only
   * `status` if given, only ids after `after` if given, only ids starting
   * with `prefix` if given (bytewise; `'order/'`, say).
   */
  list({ status, limit, after, prefix } = {}) {
    const filter = {
      status: status === undefined || status === null ? undefined : checkOne(WorkflowStatus, 'workflow status', status),
      limit: limit === undefined || limit === null ? undefined : limit,
      after: after === undefined || after === null ? undefined : after,
      prefix: prefix === undefined || prefix === null ? undefined : prefix,
    };
    return call(host().list, filter).map((s) => WorkflowState.fromWit(s));
  }

  /** Every matching state, fetching page after page from `after` on. */
  *listAll({ status, after, prefix } = {}) {
    for (;;) {
      const page = this.list({ status, limit: 1000, after, prefix });
      if (page.length === 0) return;
      yield* page;
      after = page[page.length - 1].workflowId;
    }
  }

  /** Removes the state under `workflowId`; absent ids succeed. */
  delete(workflowId) {
    call(host().delete, workflowId);
  }
}

// --- retry policies ----------------------------------------------------------------

/**
 * How an activity is retried. `maxAttempts` (default 1: no retry; 0:
 * unlimited), `initialIntervalMs` (default 1000), `backoffCoefficient`
 * (default 2), `maxIntervalMs` (default 100 × the initial interval),
 * `nonRetryable` (error texts: an error whose text contains one of them is
 * not retried). The wait before attempt n + 1 is
 * `min(initialIntervalMs × backoffCoefficient^(n-1), maxIntervalMs)`.
 */
export class RetryPolicy {
  constructor({
    maxAttempts = 1,
    initialIntervalMs = 1000,
    backoffCoefficient = 2,
    maxIntervalMs,
    nonRetryable = [],
  } = {}) {
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 0) {
      throw new RangeError(`maxAttempts must be a non-negative integer (0: unlimited), got ${show(maxAttempts)}`);
    }
    durationNs(initialIntervalMs, 'initialIntervalMs');
    if (typeof backoffCoefficient !== 'number' || !Number.isFinite(backoffCoefficient) || backoffCoefficient < 1) {
      throw new RangeError(`backoffCoefficient must be a number >= 1, got ${show(backoffCoefficient)}`);
    }
    if (maxIntervalMs === undefined || maxIntervalMs === null) maxIntervalMs = 100 * initialIntervalMs;
    durationNs(maxIntervalMs, 'maxIntervalMs');
    if (!Array.isArray(nonRetryable) || !nonRetryable.every((s) => typeof s === 'string')) {
      throw new TypeError(`nonRetryable must be a list of strings, got ${show(nonRetryable)}`);
    }
    this.maxAttempts = maxAttempts;
    this.initialIntervalMs = initialIntervalMs;
    this.backoffCoefficient = backoffCoefficient;
    this.maxIntervalMs = maxIntervalMs;
    this.nonRetryable = [...nonRetryable];
  }

  /** `policy` if it is one, else a policy of these fields (`undefined`: no retry). */
  static from(policy) {
    if (policy instanceof RetryPolicy) return policy;
    return new RetryPolicy(policy ?? {});
  }

  /** Whether an attempt may follow `attempts` failed ones, the last with `error`. */
  allowsAnother(attempts, error) {
    if (this.maxAttempts > 0 && attempts >= this.maxAttempts) return false;
    return !this.nonRetryable.some((text) => error.includes(text));
  }

  /** The wait (bigint nanoseconds) before the attempt after `attempts` failed ones. */
  backoffNs(attempts) {
    const initial = Number(durationNs(this.initialIntervalMs));
    const max = Number(durationNs(this.maxIntervalMs));
    return BigInt(Math.round(Math.min(initial * this.backoffCoefficient ** (attempts - 1), max)));
  }
}

// A duration in milliseconds (a number, may have a fraction) as bigint ns.
function durationNs(ms, what = 'a duration') {
  if (typeof ms === 'bigint') {
    if (ms < 0n) throw new RangeError(`${what} must not be negative, got ${ms}n`);
    return ms * NS_PER_MS;
  }
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`${what} must be a non-negative number of milliseconds, got ${show(ms)}`);
  }
  if (Number.isSafeInteger(ms)) return BigInt(ms) * NS_PER_MS;
  return BigInt(Math.round(ms * 1e6));
}

// --- signal names -----------------------------------------------------------------

function utf8Length(text) {
  let n = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/** Throws `InvalidSignalNameError` unless `name` is a valid signal name. */
export function checkSignalName(name) {
  if (typeof name !== 'string') throw new InvalidSignalNameError(name, 'not a string');
  if (name.length === 0) throw new InvalidSignalNameError(name, 'empty (names are 1 to 256 bytes)');
  const bytes = utf8Length(name);
  if (bytes > 256) throw new InvalidSignalNameError(name, `${bytes} bytes long (at most 256)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new InvalidSignalNameError(name, 'has a control character');
  if (name.includes('|')) throw new InvalidSignalNameError(name, "has a '|' (it joins the names of one wait)");
  return name;
}

// --- the run's context ---------------------------------------------------------------

// The history events a run writes itself, which its cursor walks.
const COMMANDS = new Set([
  EventType.ACTIVITY_STARTED,
  EventType.ACTIVITY_COMPLETED,
  EventType.ACTIVITY_FAILED,
  EventType.TIMER_STARTED,
  EventType.TIMER_FIRED,
]);

// How often an operation reloads and re-evaluates after a conflict.
const MAX_CONFLICTS = 20;

const isConflict = (e) => e instanceof StoreError && e.kind === 'conflict';

function errorText(e) {
  if (e instanceof StoreError) return e.toString();
  if (e instanceof Error) return e.message;
  return String(e);
}

/** What a query handler knows: the workflow's id and store, read-only. */
export class QueryContext {
  constructor(workflowId) {
    this.workflowId = workflowId;
    this.store = new Store();
  }

  /** The workflow's stored state, or `null`. */
  state() {
    return this.store.load(this.workflowId);
  }
}

/** What a running workflow knows about itself, its store, and how it waits. */
export class Context extends QueryContext {
  constructor(workflowId) {
    super(workflowId);
    this._cursor = 0;
    this._received = new Map();
    this._suspension = null;
    this._inActivity = null;
  }

  /**
   * Loads this workflow's state (or starts one), applies `change`, stamps
   * `updatedAt`, saves it conditionally on the version loaded and returns
   * what was saved; on a conflict (a signal arrived) it loads again and
   * applies `change` to the new state. The host keeps history saved this
   * way when it records the end of the run. Events of the kinds the
   * waiting operations write (`activity_*`, `timer_*`) pushed here are
   * replayed as theirs: do not mix the two in one workflow.
   */
  updateState(change) {
    for (let conflicts = 0; ; conflicts++) {
      const found = this.store.loadVersioned(this.workflowId);
      const state = found?.state ?? WorkflowState.create(this.workflowId);
      change(state);
      try {
        this.store.saveVersioned(state, found?.version ?? 0n);
        return state;
      } catch (e) {
        if (!isConflict(e) || conflicts >= MAX_CONFLICTS) throw e;
      }
    }
  }

  /**
   * Runs the activity `name`: calls `f(input)` and records its result, once.
   * On a re-run the recorded result is returned and `f` is not called. The
   * result (and `input`) must be JSON-encodable; what is returned is the
   * result as the history holds it (decoded JSON), the first time too.
   *
   * With `{ retry }` (a `RetryPolicy` or its fields) a failed attempt (`f`
   * threw) is recorded and retried after a durable timer, as the policy
   * says; when no attempt is left this throws an `ActivityError`. Without
   * one, the first failure throws it. An attempt in progress when the host
   * stopped runs again: at least once, not exactly once.
   */
  activity(name, input, f, { retry } = {}) {
    this._guard('activity');
    if (typeof name !== 'string' || name === '') throw new TypeError(`an activity needs a name, got ${show(name)}`);
    if (typeof f !== 'function') throw new TypeError(`activity ${JSON.stringify(name)}: f must be a function`);
    const policy = RetryPolicy.from(retry);
    const inputText = optEncode(input);
    const what = `activity ${JSON.stringify(name)}`;

    // 1. The step's start.
    this._evaluate((view) => {
      const event = this._command(view, 0);
      if (event) {
        this._expect(event, what, event.kind === EventType.ACTIVITY_STARTED && event.activityName === name);
      } else {
        this._append(view, EventType.ACTIVITY_STARTED, { activityName: name, input: inputText });
      }
      this._cursor += 1;
    });

    // 2. One outcome per attempt, with a timer between them.
    let attempts = 0;
    for (;;) {
      const found = this._evaluate((view) => {
        const event = this._command(view, 0);
        if (!event) return null;
        this._expect(
          event,
          `the outcome of ${what}`,
          (event.kind === EventType.ACTIVITY_COMPLETED || event.kind === EventType.ACTIVITY_FAILED) &&
            event.activityName === name,
        );
        this._cursor += 1;
        return event;
      });
      if (found?.kind === EventType.ACTIVITY_COMPLETED) return found.resultValue();
      if (found) {
        attempts += 1;
        if (!policy.allowsAnother(attempts, found.error)) throw new ActivityError(name, found.error, attempts);
        this._timer(policy.backoffNs(attempts), { activityName: name });
        continue;
      }
      // No outcome recorded: an attempt, recorded once whatever conflicts.
      const outcome = this._attempt(name, f, input);
      for (let conflicts = 0; ; conflicts++) {
        const view = this._load();
        if (this._command(view, 0)) break; // someone recorded it meanwhile: replay that
        try {
          this._append(view, outcome.kind, { activityName: name, ...outcome.fields });
          break;
        } catch (e) {
          if (!isConflict(e) || conflicts >= MAX_CONFLICTS) throw e;
        }
      }
    }
  }

  /** Waits `ms` milliseconds (durably: a re-run does not wait again). */
  sleep(ms) {
    this._guard('sleep');
    this._timer(durationNs(ms, 'sleep'), {});
  }

  /**
   * Waits for the next signal `name` (in arrival order: the k-th wait for a
   * name receives its k-th signal) and returns its payload (decoded JSON;
   * `null` for none), or `null` once `timeoutMs` passed without one. To tell
   * a `null` payload from a timeout, use `waitAnySignal`.
   */
  waitSignal(name, { timeoutMs } = {}) {
    const got = this.waitAnySignal([name], { timeoutMs });
    return got === null ? null : got.payload;
  }

  /**
   * Waits for the next signal of any of `names` (the one that arrived
   * first) and returns `{ name, payload }`, or `null` once `timeoutMs`
   * passed without one. Without `timeoutMs` it waits for ever.
   */
  waitAnySignal(names, { timeoutMs } = {}) {
    this._guard('waitAnySignal');
    if (!Array.isArray(names) || names.length === 0) {
      throw new TypeError(`waitAnySignal needs a non-empty list of signal names, got ${show(names)}`);
    }
    names.forEach(checkSignalName);
    const timeout = timeoutMs === undefined || timeoutMs === null ? null : durationNs(timeoutMs, 'timeoutMs');
    const joined = names.join('|');
    const what = `a wait for signal ${JSON.stringify(joined)}`;

    for (;;) {
      const answer = this._evaluate((view) => {
        const candidate = this._candidate(view, names);
        const timer = this._command(view, 0);
        // The timer at the cursor is this wait's only if the signal it would
        // receive came after it: a wait that found its signal set no timer,
        // and a later wait's timer is not its own.
        const ownTimer = timer && (!candidate || candidate.index > view.commands[this._cursor]);
        if (timeout !== null && ownTimer && timer.kind === EventType.TIMER_STARTED && timer.signalName === joined) {
          const due = timer.timestamp.toNanos() + BigInt(timer.durationNs);
          const next = this._command(view, 1);
          const fired = next && next.kind === EventType.TIMER_FIRED ? view.commands[this._cursor + 1] : null;
          if (candidate && (fired === null || candidate.index < fired)) {
            this._cursor += 1;
            return this._receive(candidate);
          }
          if (fired !== null) {
            this._cursor += 2;
            return { timeout: true };
          }
          if (nowNs() >= due) {
            this._append(view, EventType.TIMER_FIRED, { signalName: joined, durationNs: timer.durationNs });
            this._cursor += 2;
            return { timeout: true };
          }
          return { suspend: due };
        }
        if (candidate) return this._receive(candidate);
        const event = this._command(view, 0);
        if (event) this._expect(event, what, false);
        if (timeout !== null) {
          this._append(view, EventType.TIMER_STARTED, { signalName: joined, durationNs: exactNumber(timeout) });
          return { again: true };
        }
        return { suspend: null };
      });
      if (answer.again) continue;
      if (answer.timeout) return null;
      if ('suspend' in answer) this._suspend(answer.suspend, names);
      return answer;
    }
  }

  // -- the replay machinery --

  _guard(op) {
    if (this._suspension) throw this._suspension;
    if (this._inActivity !== null) {
      throw new Error(`${op} inside the activity ${JSON.stringify(this._inActivity)}: activities cannot wait or nest`);
    }
  }

  _load() {
    const found = this.store.loadVersioned(this.workflowId);
    const state = found?.state ?? WorkflowState.create(this.workflowId, { status: WorkflowStatus.RUNNING });
    const commands = [];
    state.history.forEach((e, i) => {
      if (COMMANDS.has(e.kind)) commands.push(i);
    });
    return { state, version: found?.version ?? 0n, commands };
  }

  // The command `ahead` steps after the cursor, or undefined.
  _command(view, ahead) {
    const index = view.commands[this._cursor + ahead];
    return index === undefined ? undefined : view.state.history[index];
  }

  _expect(event, requested, ok) {
    if (!ok) {
      throw new NonDeterministicError(
        this._cursor + 1,
        event.id,
        { kind: event.kind, name: event.activityName || event.signalName },
        requested,
      );
    }
  }

  // Appends an event and saves conditionally on the version loaded; a
  // conflict throws (the caller reloads).
  _append(view, kind, fields) {
    const state = view.state;
    const id = state.history.reduce((max, e) => Math.max(max, e.id), 0) + 1;
    const now = Timestamp.now();
    const event = new HistoryEvent(id, kind, now, fields);
    state.history.push(event);
    state.updatedAt = now;
    view.version = this.store.saveVersioned(state, view.version, { stamp: false });
    view.commands.push(state.history.length - 1);
    return event;
  }

  // Runs `evaluate(view)` on a fresh load; after a conflict, again on a
  // newer one (at most MAX_CONFLICTS times). The cursor moves only once
  // `evaluate` got through (it moves it after its append succeeded).
  _evaluate(evaluate) {
    for (let conflicts = 0; ; conflicts++) {
      const cursor = this._cursor;
      try {
        return evaluate(this._load());
      } catch (e) {
        this._cursor = cursor;
        if (!isConflict(e) || conflicts >= MAX_CONFLICTS) throw e;
      }
    }
  }

  // The earliest of the next unreceived signals of `names`.
  _candidate(view, names) {
    let best = null;
    for (const name of new Set(names)) {
      const k = this._received.get(name) ?? 0;
      let seen = 0;
      for (let i = 0; i < view.state.history.length; i++) {
        const e = view.state.history[i];
        if (e.kind !== EventType.SIGNAL_RECEIVED || e.signalName !== name) continue;
        if (seen++ === k) {
          if (best === null || i < best.index) best = { index: i, name, event: e };
          break;
        }
      }
    }
    return best;
  }

  _receive(candidate) {
    this._received.set(candidate.name, (this._received.get(candidate.name) ?? 0) + 1);
    return { name: candidate.name, payload: candidate.event.signalPayloadValue() };
  }

  // A durable timer of `ns` nanoseconds: its start, then its firing.
  _timer(ns, { activityName = '', signalName = '' }) {
    const what = activityName
      ? `the retry timer of activity ${JSON.stringify(activityName)}`
      : `a timer of ${ns / NS_PER_MS} ms`;
    const matches = (e) => e.activityName === activityName && e.signalName === signalName;
    const started = this._evaluate((view) => {
      let event = this._command(view, 0);
      if (event) {
        this._expect(event, what, event.kind === EventType.TIMER_STARTED && matches(event));
      } else {
        event = this._append(view, EventType.TIMER_STARTED, { activityName, signalName, durationNs: exactNumber(ns) });
      }
      this._cursor += 1;
      return event;
    });
    const due = started.timestamp.toNanos() + BigInt(started.durationNs);
    const fired = this._evaluate((view) => {
      const event = this._command(view, 0);
      if (event) {
        this._expect(event, `the firing of ${what}`, event.kind === EventType.TIMER_FIRED && matches(event));
      } else if (nowNs() >= due) {
        this._append(view, EventType.TIMER_FIRED, { activityName, signalName, durationNs: started.durationNs });
      } else {
        return false;
      }
      this._cursor += 1;
      return true;
    });
    if (!fired) this._suspend(due, []);
  }

  _attempt(name, f, input) {
    const start = monotonicNs();
    this._inActivity = name;
    try {
      const value = f(input);
      if (this._suspension) throw this._suspension;
      const result = encode(value === undefined ? null : value);
      return { kind: EventType.ACTIVITY_COMPLETED, fields: { result, durationNs: exactNumber(monotonicNs() - start) } };
    } catch (e) {
      if (this._suspension) throw this._suspension;
      return { kind: EventType.ACTIVITY_FAILED, fields: { error: errorText(e), durationNs: exactNumber(monotonicNs() - start) } };
    } finally {
      this._inActivity = null;
    }
  }

  // Never returns: in a component the host ends the run; under testing.js
  // the harness's suspend throws, and every later operation throws again.
  _suspend(dueNs, names) {
    const wakeAt = dueNs === null ? undefined : Timestamp.fromNanos(dueNs).toWit();
    try {
      host().suspend(wakeAt, [...names]);
    } catch (e) {
      this._suspension = e;
      throw e;
    }
    this._suspension = new Error('execution.suspend returned: the host did not end the run');
    throw this._suspension;
  }
}

// --- the exports -------------------------------------------------------------------

const SDK_FILES = /(^|[/\\])(wf-guest\.js|testing\.js|__wf_entry\.js|initializer\.js)$/;

// The frames of a stack, from SpiderMonkey (`fn@file:line:col`) or V8
// (`    at fn (file:line:col)`).
function frames(stack) {
  const out = [];
  for (const line of String(stack ?? '').split('\n')) {
    const m =
      /^\s*at (?:(.*?) \()?(.+?):(\d+):(\d+)\)?\s*$/.exec(line) ?? /^(.*?)@(.+?):(\d+):(\d+)\s*$/.exec(line);
    if (m) out.push({ fn: m[1] ?? '', file: m[2], line: m[3], column: m[4] });
  }
  return out;
}

function cleanPath(file) {
  let path = file.startsWith('file://') ? decodeURIComponent(file.slice('file://'.length)) : file;
  const roots = [globalThis[HOST]?.sourceRoot, globalThis.process?.cwd?.()].filter(Boolean);
  for (const root of roots) {
    const prefix = root.endsWith('/') ? root : `${root}/`;
    if (path.startsWith(prefix)) return path.slice(prefix.length);
  }
  return path;
}

/**
 * Where the workflow's own code was when `error` was thrown: its first
 * stack frame outside this SDK (and outside the engine), as
 * `fn@file:line:column`, or null.
 */
export function userFrame(error) {
  for (const frame of frames(error?.stack)) {
    if (SDK_FILES.test(frame.file) || frame.file.startsWith('node:') || frame.file.startsWith('internal/')) continue;
    const fn = frame.fn.replace(/^(async |new )/, '').replace(/^Object\./, '');
    return `${fn ? `${fn}@` : ''}${cleanPath(frame.file)}:${frame.line}:${frame.column}`;
  }
  return null;
}

function describe(e) {
  if (e instanceof Error) {
    const frame = userFrame(e);
    return `uncaught ${e.name}: ${e.message}${frame ? ` (at ${frame})` : ''}`;
  }
  return `uncaught exception: ${String(e)}`;
}

// The component model's `err` carries a string: a thrown string.
function failure(e) {
  if (e instanceof WorkflowError) return e.message;
  if (e instanceof StoreError) return e.toString();
  return describe(e);
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
    const ctx = new Context(workflowId);
    let output;
    try {
      output = f(ctx, value);
    } catch (e) {
      // A suspension ends the run whatever the code did with it.
      if (ctx._suspension) throw ctx._suspension;
      throw failure(e);
    }
    if (ctx._suspension) throw ctx._suspension;
    try {
      return encode(output === undefined ? null : output);
    } catch (e) {
      throw `cannot encode the workflow result: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
}

/**
 * The module's `query` export for `f(ctx, name, args)`: `ctx` is a
 * `QueryContext` (the workflow's id, `state()` and the store, whose
 * writes fail with `denied` in a query), `args` the decoded arguments; `f`
 * returns the answer as a JSON-encodable value, or throws (a
 * `WorkflowError` for an unknown `name`, say) to answer with an error.
 * Export it as `query`: `export const query = queryHandler(f);`.
 */
export function queryHandler(f) {
  return function query(workflowId, name, args) {
    let value;
    try {
      value = JSON.parse(args);
    } catch (e) {
      throw `the query arguments are not JSON: ${e instanceof Error ? e.message : String(e)}`;
    }
    let answer;
    try {
      answer = f(new QueryContext(workflowId), name, value);
    } catch (e) {
      throw failure(e);
    }
    try {
      return encode(answer === undefined ? null : answer);
    } catch (e) {
      throw `cannot encode the query's answer: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
}

/** The `query` export of a module that registers no handler. */
export function noQueryHandler() {
  throw 'this workflow has no query handler';
}
