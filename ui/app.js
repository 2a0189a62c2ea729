// Quicksilver's debugging UI: subscribe, publish, watch subscriptions and the hub's metrics.
//
// Streams are read with fetch() rather than EventSource, so that the token travels in the
// Authorization header, Last-Event-ID is sent on the first request too, the hub's answer
// (status, Last-Event-ID header) can be shown, and events of every type are seen.
// Nothing leaves this page but requests to the hub; the page loads nothing from elsewhere
// (the hub's Content-Security-Policy is default-src 'self').

const HUB_PATH = '/.well-known/mercure';
const SUBSCRIPTIONS_TOPIC = `${HUB_PATH}/subscriptions{/topic}{/subscriber}`;
const METRICS_PERIOD_MS = 1000;
const CHART_SAMPLES = 60;
const MAX_EVENTS_SHOWN = 500;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------------------
// Settings and the token

function hubUrl() {
  const v = $('hub-url').value.trim();
  return new URL(v || HUB_PATH, location.href);
}

function token() {
  return $('token').value.trim();
}

function isSameOrigin(url) {
  return url.origin === location.origin;
}

function b64urlDecode(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The token's header and claims, decoded but not verified (the hub verifies). */
function decodeToken(t) {
  const parts = t.split('.');
  if (parts.length !== 3) throw new Error('a JWT has three parts separated by dots');
  return { header: JSON.parse(b64urlDecode(parts[0])), claims: JSON.parse(b64urlDecode(parts[1])) };
}

function describeDuration(seconds) {
  const s = Math.abs(seconds);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

function showClaims() {
  const el = $('claims');
  const t = token();
  el.classList.remove('bad');
  if (!t) {
    el.textContent = 'No token: anonymous subscriptions only (when the hub allows them).';
    return;
  }
  try {
    const { header, claims } = decodeToken(t);
    const m = claims['https://mercure.rocks/'] || claims.mercure || {};
    const lines = [`alg ${header.alg}${header.kid !== undefined ? `, kid ${header.kid}` : ''}`];
    lines.push(`publish:   ${JSON.stringify(m.publish ?? null)}`);
    lines.push(`subscribe: ${JSON.stringify(m.subscribe ?? null)}`);
    if (m.payload !== undefined) lines.push(`payload:   ${JSON.stringify(m.payload)}`);
    if (typeof claims.exp === 'number') {
      const left = claims.exp - Date.now() / 1000;
      lines.push(left > 0 ? `expires in ${describeDuration(left)}` : `EXPIRED ${describeDuration(left)} ago`);
      if (left <= 0) el.classList.add('bad');
    } else {
      lines.push('never expires');
    }
    el.textContent = lines.join('\n');
  } catch (e) {
    el.classList.add('bad');
    el.textContent = `Not a readable JWT: ${e.message}`;
  }
}

// ------------------------------------------------------------------------------------------
// Server-Sent Events over fetch()

class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}${body ? `: ${body.trim()}` : ''}`);
    this.status = status;
  }
}

/**
 * Opens an event stream and reads it until it ends. Calls onOpen(response), then
 * onEvent({type, data, id}) for each event and onRetry(ms) for retry fields. Resolves when
 * the hub ends the stream, rejects on HTTP errors, network errors and aborts.
 */
async function readEventStream({ url, bearer, lastEventId, signal, onOpen, onEvent, onRetry }) {
  const headers = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  const res = await fetch(url, {
    headers, signal, cache: 'no-store', credentials: isSameOrigin(url) ? 'same-origin' : 'include',
  });
  if (!res.ok) throw new HttpError(res.status, await res.text().catch(() => ''));
  onOpen(res);

  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let data = [];
  let type = '';
  let id = null;
  const line = (l) => {
    if (l === '') {
      if (data.length) onEvent({ type: type || 'message', data: data.join('\n'), id });
      data = [];
      type = '';
      return;
    }
    if (l[0] === ':') return; // a comment: the opening one, heartbeats
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value));
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    for (;;) {
      const i = buf.search(/[\r\n]/);
      if (i < 0) break;
      // A CR at the end of what arrived may be the first half of a CRLF.
      if (buf[i] === '\r' && i === buf.length - 1) break;
      line(buf.slice(0, i));
      buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
    }
  }
}

// ------------------------------------------------------------------------------------------
// Subscribe

const sub = { controller: null, lastId: '', retryMs: 3000, timer: null, count: 0 };

function subStatus(text, cls = '') {
  const el = $('sub-status');
  el.textContent = text;
  el.className = `status ${cls}`;
}

function subButtons(running) {
  $('sub-stop').disabled = !running;
  $('sub-reconnect').disabled = !running && !sub.lastId;
}

function showEvent(ev) {
  sub.count++;
  const li = document.createElement('li');
  li.className = 'event';
  li.dataset.type = ev.type;
  if (ev.id !== null) li.dataset.id = ev.id;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const field = (name, value) => {
    const span = document.createElement('span');
    const b = document.createElement('b');
    b.textContent = value;
    span.append(`${name} `, b);
    meta.append(span);
  };
  field('#', String(sub.count));
  field('type', ev.type);
  field('id', ev.id ?? '(none)');
  field('at', new Date().toLocaleTimeString());
  const pre = document.createElement('pre');
  pre.className = 'data';
  let text = ev.data;
  try { text = JSON.stringify(JSON.parse(ev.data), null, 2); } catch { /* not JSON: as sent */ }
  pre.textContent = text;
  li.append(meta, pre);
  const list = $('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS_SHOWN) list.lastElementChild.remove();
}

function subscribeUrl() {
  const url = hubUrl();
  const topics = $('sub-topics').value.split('\n').map((t) => t.trim()).filter(Boolean);
  if (!topics.length) throw new Error('give at least one topic');
  for (const t of topics) url.searchParams.append('topic', t);
  return url;
}

function stopSubscription(text = 'Not subscribed.') {
  clearTimeout(sub.timer);
  sub.timer = null;
  if (sub.controller) sub.controller.abort();
  sub.controller = null;
  subButtons(false);
  subStatus(text);
}

async function subscribe(fromId) {
  stopSubscription();
  let url;
  try { url = subscribeUrl(); } catch (e) { subStatus(e.message, 'bad'); return; }
  const controller = new AbortController();
  sub.controller = controller;
  subButtons(true);
  subStatus('Connecting…');
  try {
    await readEventStream({
      url,
      bearer: token(),
      lastEventId: fromId,
      signal: controller.signal,
      onOpen: (res) => {
        const replay = res.headers.get('Last-Event-ID');
        subStatus(`Subscribed${fromId ? `; history after ${replay || fromId}` : ''}.`, 'ok');
      },
      onEvent: (ev) => {
        if (ev.id !== null) sub.lastId = ev.id;
        showEvent(ev);
      },
      onRetry: (ms) => { sub.retryMs = ms; },
    });
    if (sub.controller !== controller) return;
    // The hub ended the stream (write_timeout, shutdown): reconnect as EventSource would.
    subStatus(`The hub ended the stream; reconnecting in ${sub.retryMs} ms…`);
    sub.timer = setTimeout(() => subscribe(sub.lastId), sub.retryMs);
  } catch (e) {
    if (controller.signal.aborted || sub.controller !== controller) return;
    if (e instanceof HttpError) {
      stopSubscription(`Refused: ${e.message}`);
      $('sub-status').classList.add('bad');
      return;
    }
    subStatus(`Connection lost (${e.message}); reconnecting in ${sub.retryMs} ms…`, 'bad');
    sub.timer = setTimeout(() => subscribe(sub.lastId), sub.retryMs);
  }
}

// ------------------------------------------------------------------------------------------
// Publish

async function publish() {
  const status = $('pub-status');
  const form = new URLSearchParams();
  for (const t of $('pub-topics').value.split('\n').map((s) => s.trim()).filter(Boolean)) {
    form.append('topic', t);
  }
  form.append('data', $('pub-data').value);
  if ($('pub-private').checked) form.append('private', 'on');
  if ($('pub-id').value.trim()) form.append('id', $('pub-id').value.trim());
  if ($('pub-type').value.trim()) form.append('type', $('pub-type').value.trim());
  if ($('pub-retry').value.trim()) form.append('retry', $('pub-retry').value.trim());
  const bearer = $('pub-token').value.trim() || token();
  const url = hubUrl();
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: bearer ? { Authorization: `Bearer ${bearer}` } : {},
      body: form,
      credentials: isSameOrigin(url) ? 'same-origin' : 'include',
    });
    const body = (await res.text()).trim();
    status.textContent = res.ok ? `Published: ${body}` : `Refused: HTTP ${res.status} ${body}`;
    status.className = `status ${res.ok ? 'ok' : 'bad'}`;
    status.dataset.result = res.ok ? 'ok' : String(res.status);
  } catch (e) {
    status.textContent = `Failed: ${e.message}`;
    status.className = 'status bad';
    status.dataset.result = 'error';
  }
}

// ------------------------------------------------------------------------------------------
// Active subscriptions

const watch = { controller: null, rows: new Map() };

function watchStatus(text, cls = '') {
  const el = $('subs-status');
  el.textContent = text;
  el.className = `status ${cls}`;
}

function renderSubscriptions() {
  const body = $('subs-body');
  body.replaceChildren();
  for (const s of watch.rows.values()) {
    const tr = document.createElement('tr');
    for (const v of [s.topic, s.subscriber, s.payload === undefined ? '' : JSON.stringify(s.payload)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    tr.dataset.topic = s.topic;
    body.append(tr);
  }
  watchStatus(`${watch.rows.size} active subscription${watch.rows.size === 1 ? '' : 's'}.`, 'ok');
}

function stopWatching() {
  if (watch.controller) watch.controller.abort();
  watch.controller = null;
  $('subs-watch').disabled = false;
  $('subs-stop').disabled = true;
}

async function watchSubscriptions() {
  stopWatching();
  const controller = new AbortController();
  watch.controller = controller;
  $('subs-watch').disabled = true;
  $('subs-stop').disabled = false;
  const base = hubUrl();
  const listUrl = new URL(`${base.pathname.replace(/\/$/, '')}/subscriptions`, base);
  const bearer = token();
  try {
    const res = await fetch(listUrl, {
      headers: bearer ? { Authorization: `Bearer ${bearer}` } : {},
      signal: controller.signal,
      cache: 'no-store',
      credentials: isSameOrigin(listUrl) ? 'same-origin' : 'include',
    });
    if (!res.ok) throw new HttpError(res.status, await res.text());
    const list = await res.json();
    watch.rows = new Map(list.subscriptions.map((s) => [s.id, s]));
    renderSubscriptions();
    // The events after the list's lastEventID keep it current, with no gap.
    const url = new URL(base);
    url.searchParams.append('topic', SUBSCRIPTIONS_TOPIC);
    await readEventStream({
      url,
      bearer,
      lastEventId: list.lastEventID,
      signal: controller.signal,
      onOpen: () => {},
      onRetry: () => {},
      onEvent: (ev) => {
        let s;
        try { s = JSON.parse(ev.data); } catch { return; }
        if (s.type !== 'Subscription' || !s.id) return;
        if (s.active) watch.rows.set(s.id, s);
        else watch.rows.delete(s.id);
        renderSubscriptions();
      },
    });
    if (watch.controller === controller) watchStatus('The hub ended the stream: watch again.');
  } catch (e) {
    if (controller.signal.aborted) return;
    watchStatus(e instanceof HttpError && e.status === 404
      ? 'The hub does not serve subscriptions (no subscriptions directive).'
      : `Cannot watch: ${e.message}`, 'bad');
  }
  if (watch.controller === controller) stopWatching();
}

// ------------------------------------------------------------------------------------------
// Metrics: connected subscribers and updates per second, drawn as the last minute

const charts = {
  subscribers: { canvas: 'chart-subscribers', out: 'subscribers-now', samples: [] },
  updates: { canvas: 'chart-updates', out: 'updates-now', samples: [] },
};
let lastUpdates = null;

function metricValue(text, name) {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

function draw(chart) {
  const canvas = $(chart.canvas);
  // Drawn at the size the canvas is shown, in device pixels, so lines and text stay sharp.
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const style = getComputedStyle(document.documentElement);
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...chart.samples);
  const x = (i) => w - (chart.samples.length - 1 - i) * (w / (CHART_SAMPLES - 1));
  const y = (v) => h - 4 - (v / max) * (h - 18);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = style.getPropertyValue('--muted');
  ctx.fillText(`max ${Number.isInteger(max) ? max : max.toFixed(1)}`, 4, 12);
  if (chart.samples.length < 2) return;
  ctx.beginPath();
  chart.samples.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.strokeStyle = style.getPropertyValue('--accent');
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.lineTo(x(chart.samples.length - 1), h);
  ctx.lineTo(x(0), h);
  ctx.closePath();
  ctx.globalAlpha = 0.15;
  ctx.fillStyle = style.getPropertyValue('--accent');
  ctx.fill();
  ctx.globalAlpha = 1;
}

function addSample(chart, value, label) {
  chart.samples.push(value);
  if (chart.samples.length > CHART_SAMPLES) chart.samples.shift();
  const out = $(chart.out);
  out.textContent = label;
  out.value = label;
  $(chart.canvas).dataset.samples = chart.samples.join(' ');
  draw(chart);
}

async function pollMetrics() {
  const status = $('metrics-status');
  try {
    const res = await fetch(new URL('/metrics', hubUrl()), { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const text = await res.text();
    const subscribers = metricValue(text, 'mercure_subscribers_connected');
    const updates = metricValue(text, 'mercure_updates_total');
    const now = performance.now();
    if (subscribers !== null) addSample(charts.subscribers, subscribers, String(subscribers));
    if (updates !== null) {
      if (lastUpdates) {
        const rate = Math.max(0, (updates - lastUpdates.value) / ((now - lastUpdates.at) / 1000));
        addSample(charts.updates, rate, rate.toFixed(rate < 10 ? 1 : 0));
      }
      lastUpdates = { value: updates, at: now };
    }
    status.textContent = '';
  } catch (e) {
    status.textContent = `Metrics unavailable (${e.message}): /metrics must be served on the hub's origin.`;
  }
}

// ------------------------------------------------------------------------------------------

function init() {
  $('hub-url').value = new URL(HUB_PATH, location.href).href;
  $('token').addEventListener('input', showClaims);
  showClaims();
  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const from = $('sub-last-id').value.trim();
    if (from) sub.lastId = from;
    subscribe(from);
  });
  $('sub-reconnect').addEventListener('click', () => subscribe(sub.lastId));
  $('sub-stop').addEventListener('click', () => stopSubscription());
  $('sub-clear').addEventListener('click', () => {
    $('events').replaceChildren();
    sub.count = 0;
  });
  $('publish-form').addEventListener('submit', (e) => {
    e.preventDefault();
    publish();
  });
  $('subs-watch').addEventListener('click', watchSubscriptions);
  $('subs-stop').addEventListener('click', () => {
    stopWatching();
    watchStatus('Stopped.');
  });
  for (const c of Object.values(charts)) draw(c);
  window.addEventListener('resize', () => { for (const c of Object.values(charts)) draw(c); });
  pollMetrics();
  setInterval(pollMetrics, METRICS_PERIOD_MS);
}

init();
