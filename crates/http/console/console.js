// wf console: a dependency-free viewer for the wf HTTP API (served at /ui).
// Every value from the server is untrusted (ids, errors and payloads come
// from clients), so the DOM is built with createElement/textContent only.
'use strict';

const PAGE = 50;
const STATUSES = ['running', 'completed', 'failed', 'canceled'];
const view = document.getElementById('view');

// Bumped on every navigation: a response that arrives after the user moved
// on must not overwrite the newer view.
let current = 0;

// ---------------------------------------------------------------- helpers

// h('a', {href: '#/', class: 'x'}, 'text', child): attributes via
// setAttribute, listeners via on*, children as nodes or text (never HTML).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k === 'className' ? 'class' : k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid != null && kid !== false && kid !== '') el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// Calls the API; resolves {status, data, text}, throws an Error whose message
// is the server's {"error"} text (or the network failure).
async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      body,
      cache: 'no-store',
      headers: body != null ? { 'Content-Type': 'application/json' } : {},
    });
  } catch (e) {
    throw Object.assign(new Error(`network error: ${e.message}`), { status: 0 });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = data && typeof data.error === 'string' ? data.error : text || res.statusText;
    let msg = `${res.status}: ${err}`;
    if (data && data.kind) msg += ` (${data.kind})`;
    // A 421 names the host that owns the workflow: worth showing.
    if (data && data.owner) msg += ` — owner: ${data.owner}`;
    throw Object.assign(new Error(msg), { status: res.status, data });
  }
  return { status: res.status, data, text };
}

function showBanner(id, text) {
  const el = document.getElementById(id);
  el.textContent = text || '';
  el.hidden = !text;
}
const showError = (text) => showBanner('error', text);
const showNotice = (text) => showBanner('notice', text);

// Go writes up to nine fractional digits and 0001-01-01 for an unset time;
// Date keeps milliseconds, so cut the rest to parse reliably everywhere.
function parseTime(s) {
  if (!s || s.startsWith('0001-01-01T00:00:00')) return null;
  const ms = Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? null : ms;
}

// Times are shown in UTC, as stored, so they match logs and other hosts.
function fmtTime(ms, withMs) {
  if (ms == null) return '—';
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, withMs ? 23 : 19)}`;
}
const utc = (ms) => (ms == null ? '—' : `${fmtTime(ms, true)} UTC`);

// Durations on the wire are integer nanoseconds (Go's time.Duration).
function fmtDuration(ns) {
  const ms = ns / 1e6;
  if (ns < 1000) return `${Math.round(ns)} ns`;
  if (ms < 1) return `${Math.round(ns / 1e3)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  let rest = Math.round(s);
  const parts = [];
  for (const [u, n] of units) {
    if (rest >= n) { parts.push(`${Math.floor(rest / n)}${u}`); rest %= n; }
  }
  return parts.slice(0, 2).join(' ');
}

const short = (s) => (s && s.length > 12 ? `${s.slice(0, 8)}…` : s || '—');
const pretty = (v) => h('pre', { class: v == null ? 'json empty' : 'json' },
  v === undefined ? 'null' : JSON.stringify(v, null, 2));
const badge = (status) => h('span', {
  class: `badge badge-${STATUSES.includes(status) ? status : 'unknown'}`,
}, status || 'unknown');
const detailHash = (id) => `#/workflows/${encodeURIComponent(id)}`;

function listHash(p) {
  const q = new URLSearchParams();
  for (const k of ['status', 'prefix', 'after']) if (p[k]) q.set(k, p[k]);
  const s = q.toString();
  return s ? `#/?${s}` : '#/';
}

// Setting the same hash fires no hashchange, so route by hand then.
function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function setCrumb(id) {
  const crumb = document.getElementById('crumb');
  crumb.replaceChildren(h('a', { href: '#/' }, 'Workflows'));
  if (id != null) crumb.append(h('span', { class: 'sep' }, '/'), h('span', { class: 'mono' }, id));
  document.title = id != null ? `${id} · wf console` : 'Workflows · wf console';
}

// A workflow waits when it is running and its last event, ignoring the
// signals that arrived since, is workflow_suspended (see docs/waiting.md).
function suspension(state) {
  const hist = state.History || [];
  let i = hist.length - 1;
  while (i >= 0 && hist[i].Type === 'signal_received') i--;
  if (state.Status !== 'running' || i < 0 || hist[i].Type !== 'workflow_suspended') return null;
  return { event: hist[i], since: hist.length - 1 - i };
}

// What a workflow_suspended event waits for: SignalName holds the names
// joined by "|", and the due time is Timestamp + Duration when Duration > 0.
function waitText(ev) {
  const names = ev.SignalName ? ev.SignalName.split('|') : [];
  const start = parseTime(ev.Timestamp);
  const due = ev.Duration > 0 && start != null ? start + ev.Duration / 1e6 : null;
  const parts = [];
  if (names.length) parts.push(`signal ${names.map((n) => `“${n}”`).join(' or ')}`);
  if (due != null) parts.push(`${names.length ? 'or ' : ''}time ${utc(due)} (after ${fmtDuration(ev.Duration)})`);
  return parts.length ? parts.join(', ') : 'a wake from the host';
}

// ---------------------------------------------------------------- list view

async function showList(params, token) {
  setCrumb(null);
  const status = params.get('status') || '';
  const prefix = params.get('prefix') || '';
  const after = params.get('after') || '';

  const statusSel = h('select', { id: 'status-filter', name: 'status' },
    h('option', { value: '' }, 'all'), STATUSES.map((s) => h('option', { value: s }, s)));
  statusSel.value = status;
  const prefixIn = h('input', {
    id: 'prefix-filter', type: 'search', name: 'prefix', value: prefix,
    placeholder: 'id prefix', autocomplete: 'off', spellcheck: 'false',
  });
  const firstBtn = h('button', { type: 'button', disabled: !after, onclick: () => navigate(listHash({ status, prefix })) }, 'First page');
  const nextBtn = h('button', { type: 'button', disabled: true }, 'Next page');
  const reloadBtn = h('button', { type: 'button', onclick: () => route() }, 'Reload');
  const form = h('form', { class: 'toolbar', role: 'search' },
    h('label', {}, 'Status ', statusSel),
    h('label', {}, 'ID prefix ', prefixIn),
    h('button', { type: 'submit', class: 'primary' }, 'Search'),
    h('span', { class: 'spacer' }), firstBtn, nextBtn, reloadBtn);
  // A new filter starts from the first page: `after` belongs to the old one.
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    navigate(listHash({ status: statusSel.value, prefix: prefixIn.value.trim() }));
  });
  statusSel.addEventListener('change', () => form.requestSubmit());

  const rows = h('tbody', { id: 'workflow-rows' },
    h('tr', { class: 'placeholder' }, h('td', { colspan: 6 }, 'Loading…')));
  const summary = h('p', { class: 'summary muted' });
  view.replaceChildren(form, h('div', { class: 'card table-wrap' }, h('table', { class: 'workflows' },
    h('thead', {}, h('tr', {}, ['Workflow ID', 'Status', 'Run', 'Created (UTC)', 'Updated (UTC)', 'Events']
      .map((t) => h('th', {}, t)))), rows)), summary);

  const q = new URLSearchParams();
  if (status) q.set('status', status);
  if (prefix) q.set('prefix', prefix);
  if (after) q.set('after', after);
  q.set('limit', String(PAGE));
  let page;
  try {
    page = (await api('GET', `/workflows?${q}`)).data || {};
  } catch (e) {
    if (token !== current) return;
    showError(e.message);
    rows.replaceChildren(h('tr', { class: 'placeholder' }, h('td', { colspan: 6 }, 'Could not load the workflows.')));
    document.body.dataset.loaded = 'list';
    return;
  }
  if (token !== current) return;

  const list = Array.isArray(page.workflows) ? page.workflows : [];
  rows.replaceChildren(...list.map(listRow));
  if (!list.length) rows.append(h('tr', { class: 'placeholder' }, h('td', { colspan: 6 }, 'No workflows match.')));
  // The server names the last id of every non-empty page, so a short page
  // is the last one too.
  const next = page.next_after;
  if (next != null && list.length >= PAGE) {
    nextBtn.disabled = false;
    nextBtn.addEventListener('click', () => navigate(listHash({ status, prefix, after: next })));
  }
  summary.textContent = `${list.length} workflow${list.length === 1 ? '' : 's'}${after ? ` after “${after}”` : ''}`;
  document.body.dataset.loaded = 'list';
}

function listRow(s) {
  const id = s.WorkflowID || '';
  const waiting = suspension(s);
  return h('tr', { 'data-workflow-id': id },
    h('td', { class: 'id' }, h('a', { class: 'workflow-link', href: detailHash(id) }, id)),
    h('td', {}, badge(s.Status), waiting && h('span', { class: 'tag', title: `waiting for ${waitText(waiting.event)}` }, 'suspended')),
    h('td', { class: 'mono', title: s.RunID || '' }, short(s.RunID)),
    h('td', { title: s.CreatedAt || '' }, fmtTime(parseTime(s.CreatedAt))),
    h('td', { title: s.UpdatedAt || '' }, fmtTime(parseTime(s.UpdatedAt))),
    h('td', { class: 'num' }, String((s.History || []).length)));
}

// ---------------------------------------------------------------- detail view

async function showDetail(id, token, quiet) {
  setCrumb(id);
  // A reload after an action keeps the old view until the new state is in.
  if (!quiet) view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let state;
  try {
    state = (await api('GET', `/workflows/${encodeURIComponent(id)}`)).data;
  } catch (e) {
    if (token !== current) return;
    if (e.status === 404) {
      view.replaceChildren(h('div', { class: 'card empty' }, h('h2', {}, 'Not found'),
        h('p', {}, 'There is no such workflow: ', h('span', { class: 'mono' }, id), '. '),
        h('a', { href: '#/' }, '← All workflows')));
    } else {
      showError(e.message);
      view.replaceChildren(h('a', { href: '#/' }, '← All workflows'));
    }
    document.body.dataset.loaded = 'detail';
    return;
  }
  if (token !== current) return;
  view.replaceChildren(renderDetail(state || {}, id));
  document.body.dataset.loaded = 'detail';
}

function renderDetail(s, requested) {
  const id = s.WorkflowID || requested;
  const hist = s.History || [];
  const running = s.Status === 'running';
  const path = `/workflows/${encodeURIComponent(id)}`;
  const wait = suspension(s);
  const started = [...hist].reverse().find((e) => e.Type === 'workflow_started');
  const module = started && started.Input && typeof started.Input === 'object' ? started.Input.module : null;

  const cancelBtn = running && h('button', { type: 'button', class: 'danger' }, 'Cancel');
  if (cancelBtn) {
    cancelBtn.addEventListener('click', () => {
      if (confirm(`Cancel workflow ${id}?`)) act(id, 'POST', `${path}/cancel`, null, [cancelBtn]);
    });
  }
  const head = h('div', { class: 'detail-head' },
    h('h1', { class: 'mono' }, id), badge(s.Status), h('span', { class: 'spacer' }),
    h('button', { type: 'button', onclick: () => route() }, 'Reload'), cancelBtn);

  const meta = h('dl', { class: 'meta' },
    ...[['Run ID', s.RunID || '—'], ['Module', module], ['Created', utc(parseTime(s.CreatedAt))],
      ['Updated', utc(parseTime(s.UpdatedAt))], ['Events', String(hist.length)]]
      .filter(([, v]) => v != null)
      .flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: k === 'Run ID' ? 'mono' : '' }, v)]));

  const left = h('div', { class: 'col' },
    h('section', { class: 'card' }, meta),
    wait && h('div', { class: 'suspended' }, `suspended: waiting for ${waitText(wait.event)}`,
      wait.since ? ` · ${wait.since} signal${wait.since === 1 ? '' : 's'} received since` : ''),
    s.Error && h('section', { class: 'card error-box' }, h('h2', {}, 'Error'), h('pre', {}, s.Error)),
    h('section', { class: 'card' }, h('h2', {}, 'Input'), pretty(s.Input)),
    h('section', { class: 'card' }, h('h2', {}, 'Result'), pretty(s.Result)),
    signalForm(id, path));

  const t0 = hist.length ? parseTime(hist[0].Timestamp) : null;
  const timeline = h('ol', { id: 'timeline', class: 'timeline' }, hist.map((ev) => renderEvent(ev, t0)));
  const right = h('section', { class: 'card col' }, h('h2', {}, `History (${hist.length})`),
    hist.length ? timeline : [h('p', { class: 'muted' }, 'No events.'), timeline]);

  return h('div', { id: 'workflow-detail', 'data-workflow-id': id, 'data-status': s.Status || '' },
    h('a', { href: '#/', class: 'back' }, '← All workflows'), head, h('div', { class: 'detail-grid' }, left, right));
}

function signalForm(id, path) {
  const nameIn = h('input', { type: 'text', required: true, placeholder: 'signal name', autocomplete: 'off', spellcheck: 'false' });
  const payloadIn = h('textarea', { rows: 3, placeholder: 'payload JSON (optional), e.g. {"approved": true}', spellcheck: 'false' });
  const sendBtn = h('button', { type: 'submit', class: 'primary' }, 'Send signal');
  const form = h('form', { class: 'card signal-form' }, h('h2', {}, 'Signal'), nameIn, payloadIn, sendBtn);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = nameIn.value;
    const payload = payloadIn.value.trim();
    // Refuse a bad payload here rather than spend a round trip on a 400.
    if (payload) {
      try { JSON.parse(payload); } catch (err) { showError(`the payload is not valid JSON: ${err.message}`); return; }
    }
    act(id, 'POST', `${path}/signals/${encodeURIComponent(name)}`, payload || null, [sendBtn]);
  });
  return form;
}

// Runs an action, shows the server's answer (or error), then reloads the
// workflow, unless the user has navigated elsewhere meanwhile.
async function act(id, method, path, body, buttons) {
  const token = current;
  buttons.forEach((b) => { b.disabled = true; });
  showError('');
  showNotice('');
  try {
    const r = await api(method, path, body);
    showNotice(`Server answered ${r.status}: ${r.text}`);
  } catch (e) {
    showError(e.message);
  }
  buttons.forEach((b) => { b.disabled = false; });
  if (token === current) await showDetail(id, ++current, true);
}

// One timeline item: the fields that matter for each event type.
function renderEvent(ev, t0) {
  const type = ev.Type || '';
  const dur = ev.Duration > 0 ? fmtDuration(ev.Duration) : '';
  const start = parseTime(ev.Timestamp);
  const lines = [];
  const payloads = [];
  let name = '';
  switch (type) {
    case 'workflow_started':
      if (ev.Input && typeof ev.Input === 'object' && ev.Input.module) {
        lines.push(`module ${ev.Input.module}${ev.Input.digest ? ` (${short(String(ev.Input.digest))})` : ''}`);
      } else if (ev.Input != null) payloads.push(['Input', ev.Input]);
      break;
    case 'activity_started':
      name = ev.ActivityName;
      if (ev.Input != null) payloads.push(['Input', ev.Input]);
      break;
    case 'activity_completed':
    case 'activity_failed':
      name = ev.ActivityName;
      if (dur) lines.push(`took ${dur}`);
      if (ev.Result != null) payloads.push(['Result', ev.Result]);
      break;
    case 'timer_started':
    case 'timer_fired':
      // A timer is an activity's retry backoff, a signal wait's timeout or a sleep.
      if (ev.ActivityName) { name = ev.ActivityName; lines.push('retry backoff'); }
      else if (ev.SignalName) { name = ev.SignalName.split('|').join(' | '); lines.push('signal wait timeout'); }
      else lines.push('sleep');
      if (dur) lines.push(`duration ${dur}`);
      if (type === 'timer_started' && ev.Duration > 0 && start != null) {
        lines.push(`due ${utc(start + ev.Duration / 1e6)}`);
      }
      break;
    case 'signal_received':
      name = ev.SignalName;
      if (ev.SignalPayload != null) payloads.push(['Payload', ev.SignalPayload]);
      break;
    case 'workflow_suspended':
      lines.push(`waiting for ${waitText(ev)}`);
      break;
    default: // workflow_completed, workflow_canceled, workflow_failed and anything new
      if (ev.Result != null) payloads.push(['Result', ev.Result]);
  }
  const offset = start != null && t0 != null && start > t0 ? ` · +${fmtDuration((start - t0) * 1e6)}` : '';
  const kind = /^(\w+?)_(\w+)$/.exec(type);
  return h('li', { class: `ev ev-${kind ? kind[1] : 'other'} ev-${type.replace(/[^a-z_]/g, '')}`, 'data-event-type': type },
    h('div', { class: 'ev-head' },
      h('span', { class: 'ev-type' }, type.replace(/_/g, ' ') || '(no type)'),
      name && h('span', { class: 'ev-name mono' }, name),
      h('span', { class: 'spacer' }),
      h('time', { class: 'ev-time', datetime: ev.Timestamp || '', title: `#${ev.ID} · ${ev.Timestamp}` },
        `${fmtTime(start, true)}${offset}`)),
    lines.map((l) => h('div', { class: 'ev-line' }, l)),
    ev.Error && h('div', { class: 'ev-error' }, ev.Error),
    payloads.map(([label, v]) => h('div', { class: 'ev-payload' }, h('span', { class: 'label' }, label), pretty(v))));
}

// ---------------------------------------------------------------- routing

// #/ (optionally ?status=&prefix=&after=) is the list; #/workflows/<id> one workflow.
function route() {
  const token = ++current;
  showError('');
  showNotice('');
  document.body.dataset.loaded = '';
  const raw = location.hash.slice(1) || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const m = /^\/workflows\/(.+)$/.exec(path);
  if (m) {
    let id = m[1];
    try { id = decodeURIComponent(id); } catch { /* a hand-typed bad escape: use it as typed */ }
    showDetail(id, token, false);
  } else {
    showList(new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)), token);
  }
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);
route();
