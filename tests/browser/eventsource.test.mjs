// Real-browser test: Chromium's EventSource against the Quicksilver hub.
//
// Starts the hub itself (QS_BINARY, default <repo>/build/mercure) on an ephemeral loopback
// port, drives Debian's Chromium (CHROMIUM, default /usr/bin/chromium) with playwright-core,
// and publishes from Node. Prints one TAP-like line per scenario, then "N passed, N failed".
// Exits non-zero on any failure; every hub it started is killed on every path.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const BINARY = process.env.QS_BINARY || path.join(REPO, 'build', 'mercure');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const KEY = '!ChangeThisMercureHubJWTSecretKey!';
const HUB_PATH = '/.well-known/mercure';
const RUN_DEADLINE_MS = 55_000; // the whole run must stay under 60 s
const WAIT_MS = 8_000; // default wait for one browser-side condition
const VERBOSE = !!process.env.QS_VERBOSE;

// ---------------------------------------------------------------------------------------------
// Hub processes: every one started is tracked, and killed on any exit path.

const hubs = new Set();
const tmpDirs = [];

function killAllHubs() {
  for (const h of hubs) {
    if (h.proc.exitCode === null && h.proc.signalCode === null) {
      try { h.proc.kill('SIGKILL'); } catch { /* already gone */ }
    }
  }
  hubs.clear();
}

function removeTmpDirs() {
  for (const d of tmpDirs.splice(0)) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

process.on('exit', () => { killAllHubs(); removeTmpDirs(); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAllHubs(); process.exit(130); });
}
process.on('uncaughtException', (e) => {
  console.error('uncaught exception:', e);
  killAllHubs();
  process.exit(2);
});
process.on('unhandledRejection', (e) => {
  console.error('unhandled rejection:', e);
  killAllHubs();
  process.exit(2);
});

function mkTmp(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

const BASE_DIRECTIVES = ['anonymous', 'cors_origins *', 'publish_origins *'];

/**
 * Starts a hub; port 0 = ephemeral. Resolves once its "listening on" line is logged.
 * `directives`: extra lines for MERCURE_EXTRA_DIRECTIVES, after the base ones.
 */
function startHub(port = 0, { directives = [], tls = false } = {}) {
  if (!fs.existsSync(BINARY)) {
    throw new Error(`hub binary not found: ${BINARY} (build it, or set QS_BINARY)`);
  }
  const cwd = mkTmp('qs-browser-hub-');
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: cwd,
    // The default transport keeps an LMDB store under $XDG_DATA_HOME: one per hub.
    XDG_DATA_HOME: path.join(cwd, 'data'),
    SERVER_NAME: tls ? `https://127.0.0.1:${port}` : `127.0.0.1:${port}`,
    // tls: the hub's own local CA (`tls internal`); Node trusts its root, the browser
    // context ignores certificate errors.
    ...(tls ? { CADDY_SERVER_EXTRA_DIRECTIVES: 'tls internal' } : {}),
    MERCURE_PUBLISHER_JWT_KEY: KEY,
    MERCURE_SUBSCRIBER_JWT_KEY: KEY,
    MERCURE_EXTRA_DIRECTIVES: [...BASE_DIRECTIVES, ...directives].join('\n'),
  };
  const proc = spawn(BINARY, ['run'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const hub = { proc, port: 0, stderr: '', exited: null, directives, tls, ca: null };
  hubs.add(hub);
  hub.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { hubs.delete(hub); resolve({ code, signal }); });
  });
  proc.stdout.on('data', (d) => { if (VERBOSE) process.stderr.write(`[hub out] ${d}`); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`hub did not report "listening on" within 10 s; stderr:\n${hub.stderr}`));
    }, 10_000);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code, signal) => {
      if (!hub.port) {
        clearTimeout(timer);
        reject(new Error(`hub exited early (code ${code}, signal ${signal}); stderr:\n${hub.stderr}`));
      }
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      hub.stderr += d;
      if (VERBOSE) process.stderr.write(`[hub] ${d}`);
      if (!hub.port) {
        const m = /listening on 127\.0\.0\.1:(\d+) \(/.exec(hub.stderr);
        if (m) {
          hub.port = Number(m[1]);
          if (tls) {
            const root = /trust (\S+root\.crt)/.exec(hub.stderr);
            if (!root) {
              reject(new Error(`tls internal: no root certificate logged; stderr:\n${hub.stderr}`));
              return;
            }
            hub.ca = fs.readFileSync(root[1]);
          }
          clearTimeout(timer);
          resolve(hub);
        }
      }
    });
  });
}

/** SIGTERM, then wait for exit (SIGKILL after 5 s, which fails the caller). */
async function stopHub(hub) {
  if (hub.proc.exitCode !== null || hub.proc.signalCode !== null) return hub.exited;
  hub.proc.kill('SIGTERM');
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => { hub.proc.kill('SIGKILL'); resolve('killed'); }, 5_000);
  });
  const r = await Promise.race([hub.exited, killed]);
  clearTimeout(timer);
  if (r === 'killed') throw new Error(`hub did not exit within 5 s of SIGTERM; stderr:\n${hub.stderr}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// JWT and publishing

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function jwt(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', KEY).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

const PUBLISHER_TOKEN = jwt({ mercure: { publish: ['*'] } });
const subscriberToken = (topics) => jwt({ mercure: { subscribe: topics } });

/** POSTs an update; fields: {topic (string|array), data, id, type, retry, private}. Returns the id. */
async function publish(hub, fields) {
  const form = new URLSearchParams();
  for (const t of [].concat(fields.topic)) form.append('topic', t);
  if (fields.data !== undefined) form.append('data', fields.data);
  if (fields.id !== undefined) form.append('id', fields.id);
  if (fields.type !== undefined) form.append('type', fields.type);
  if (fields.retry !== undefined) form.append('retry', String(fields.retry));
  if (fields.private) form.append('private', 'on');
  const headers = {
    Authorization: `Bearer ${PUBLISHER_TOKEN}`,
    'Content-Type': 'application/x-www-form-urlencoded',
  };
  const res = hub.tls
    ? await httpsRequest(hub, 'POST', HUB_PATH, headers, form.toString())
    : await fetch(`http://127.0.0.1:${hub.port}${HUB_PATH}`, {
      method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(5_000),
    });
  const text = await res.text();
  if (res.status !== 200) {
    throw new Error(`publish ${JSON.stringify(fields)} -> HTTP ${res.status}: ${text}`);
  }
  if (fields.id !== undefined && text !== fields.id) {
    throw new Error(`publish returned id ${JSON.stringify(text)}, expected ${JSON.stringify(fields.id)}`);
  }
  return text;
}

/** A request to a TLS hub, verifying its certificate against the hub's own root. */
function httpsRequest(hub, method, target, headers = {}, body = '') {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: hub.port, path: target, method, headers, ca: hub.ca,
      timeout: 5_000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode, text: async () => text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function hubMetric(hub, name) {
  const res = await httpsRequest(hub, 'GET', '/metrics');
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await res.text());
  return m ? Number(m[1]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Assertions and browser helpers

class AssertionError extends Error {}

function assert(cond, msg) {
  if (!cond) throw new AssertionError(msg);
}

function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${what}: expected ${e}, got ${a}`);
}

/**
 * Opens `new EventSource(url, init)` in the page under window.__es[name], recording every
 * open/error/message (and listeners for `types`) in window.__log[name].
 */
async function openEventSource(page, name, url, { withCredentials = false, types = [] } = {}) {
  await page.evaluate(({ name, url, withCredentials, types }) => {
    window.__es ||= {};
    window.__log ||= {};
    const log = (window.__log[name] = { opens: 0, errors: 0, messages: [], typed: [], errorStates: [] });
    const es = new EventSource(url, withCredentials ? { withCredentials: true } : undefined);
    window.__es[name] = es;
    es.onopen = () => { log.opens++; };
    es.onerror = () => { log.errors++; log.errorStates.push(es.readyState); };
    es.onmessage = (e) => {
      log.messages.push({ type: e.type, data: e.data, lastEventId: e.lastEventId });
    };
    for (const t of types) {
      es.addEventListener(t, (e) => {
        log.typed.push({ type: e.type, data: e.data, lastEventId: e.lastEventId });
      });
    }
  }, { name, url, withCredentials, types });
}

const esLog = (page, name) => page.evaluate((n) => window.__log[n], name);
const esState = (page, name) => page.evaluate((n) => window.__es[n].readyState, name);
const closeEs = (page, name) => page.evaluate((n) => window.__es[n].close(), name);

/** Waits until predicate(log) holds (predicate is serialised into the page). */
async function waitLog(page, name, predicateSrc, what, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      ({ name, src }) => {
        const log = window.__log && window.__log[name];
        // eslint-disable-next-line no-new-func
        return !!log && new Function('log', `return (${src});`)(log);
      },
      { name, src: predicateSrc },
      { timeout, polling: 25 },
    );
  } catch (e) {
    const log = await esLog(page, name).catch(() => '(page gone)');
    throw new AssertionError(`timed out after ${timeout} ms waiting for ${what}; log: ${JSON.stringify(log)}`);
  }
}

function esUrl(topics, extra = '') {
  const q = [].concat(topics).map((t) => `topic=${encodeURIComponent(t)}`).join('&');
  return `${HUB_PATH}?${q}${extra}`;
}

async function newHubPage(browser, hub) {
  // Over TLS the hub's certificate comes from its own local CA, which the browser does not
  // know: this context ignores certificate errors (the TLS itself still happens).
  const context = await browser.newContext(hub.tls ? { ignoreHTTPSErrors: true } : {});
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`  [page error] ${e.message}`));
  const res = await page.goto(`${hub.tls ? 'https' : 'http'}://127.0.0.1:${hub.port}/`);
  assert(res && res.status() === 200, `GET / on the hub: expected 200, got ${res && res.status()}`);
  return { context, page };
}

const uid = () => crypto.randomBytes(4).toString('hex');

// ---------------------------------------------------------------------------------------------
// Scenarios

const MULTILINE = 'data for\n\n        raw string';

async function scenarioPublic(browser, hub) {
  const { context, page } = await newHubPage(browser, hub);
  try {
    const topic = `https://example.com/public/${uid()}`;
    const other = `https://example.com/other/${uid()}`;
    await openEventSource(page, 'pub', esUrl(topic), { types: ['custom'] });
    await waitLog(page, 'pub', 'log.opens === 1', 'onopen');
    assertEq(await esState(page, 'pub'), 1, 'readyState after onopen');

    const id1 = `urn:uuid:${crypto.randomUUID()}`;
    const id2 = `custom-id-${uid()}`;
    const idTyped = `typed-${uid()}`;
    const idEnd = `end-${uid()}`;
    await publish(hub, { topic, id: id1, data: MULTILINE });
    await publish(hub, { topic, id: id2, data: 'second update' });
    await publish(hub, { topic: other, id: `other-${uid()}`, data: 'must not arrive' });
    await publish(hub, { topic, id: idTyped, type: 'custom', data: 'typed update' });
    await publish(hub, { topic, id: idEnd, data: 'end' });

    await waitLog(page, 'pub', 'log.messages.length >= 3 && log.typed.length >= 1',
      '3 messages and 1 custom event');
    // The hub dispatches in publish order: once the last one is in, anything else was too.
    const log = await esLog(page, 'pub');
    assertEq(log.messages, [
      { type: 'message', data: MULTILINE, lastEventId: id1 },
      { type: 'message', data: 'second update', lastEventId: id2 },
      { type: 'message', data: 'end', lastEventId: idEnd },
    ], 'onmessage events (the non-matching and the typed updates must not be among them)');
    assertEq(log.typed, [{ type: 'custom', data: 'typed update', lastEventId: idTyped }],
      "addEventListener('custom') events");
    assertEq(log.errors, 0, 'onerror count');
    assertEq(log.opens, 1, 'onopen count');
    await closeEs(page, 'pub');
  } finally {
    await context.close();
  }
}

async function scenarioPrivateCookie(browser, hub) {
  const covered = `https://example.com/private/${uid()}`;
  const notCovered = `https://example.com/secret/${uid()}`;
  const token = subscriberToken([covered]);

  const withCookie = await newHubPage(browser, hub);
  const anonymous = await newHubPage(browser, hub);
  try {
    await withCookie.context.addCookies([{
      name: 'mercureAuthorization',
      value: token,
      domain: '127.0.0.1',
      path: HUB_PATH,
      httpOnly: true,
      sameSite: 'Strict',
    }]);
    // The cookie is really sent by the browser on the EventSource request (and only there).
    const sentCookies = [];
    withCookie.page.on('request', (r) => {
      if (r.url().includes(HUB_PATH)) {
        r.allHeaders().then((h) => sentCookies.push(h.cookie || '')).catch(() => {});
      }
    });

    const both = esUrl([covered, notCovered]);
    await openEventSource(withCookie.page, 'priv', both, { withCredentials: true });
    await openEventSource(anonymous.page, 'anon', both, { withCredentials: true });
    await waitLog(withCookie.page, 'priv', 'log.opens === 1', 'onopen (cookie page)');
    await waitLog(anonymous.page, 'anon', 'log.opens === 1', 'onopen (anonymous page)');

    const idPriv = `priv-${uid()}`;
    const idSecret = `secret-${uid()}`;
    const idEnd = `end-${uid()}`;
    await publish(hub, { topic: covered, id: idPriv, data: 'private, covered', private: true });
    await publish(hub, { topic: notCovered, id: idSecret, data: 'private, not covered', private: true });
    await publish(hub, { topic: covered, id: idEnd, data: 'public end' });

    await waitLog(withCookie.page, 'priv', 'log.messages.length >= 2', '2 messages (cookie page)');
    await waitLog(anonymous.page, 'anon', 'log.messages.length >= 1', '1 message (anonymous page)');

    const priv = await esLog(withCookie.page, 'priv');
    assertEq(priv.messages, [
      { type: 'message', data: 'private, covered', lastEventId: idPriv },
      { type: 'message', data: 'public end', lastEventId: idEnd },
    ], 'cookie page: messages (only the covered private update, then the public one)');
    const anon = await esLog(anonymous.page, 'anon');
    assertEq(anon.messages, [{ type: 'message', data: 'public end', lastEventId: idEnd }],
      'anonymous page: messages (no private update)');
    assert(sentCookies.some((c) => c.includes(`mercureAuthorization=${token}`)),
      `cookie page: the EventSource request did not carry the mercureAuthorization cookie (saw ${JSON.stringify(sentCookies)})`);

    await closeEs(withCookie.page, 'priv');
    await closeEs(anonymous.page, 'anon');
  } finally {
    await withCookie.context.close();
    await anonymous.context.close();
  }
}

async function scenarioReconnect(browser, firstHub) {
  let hub = firstHub;
  const { context, page } = await newHubPage(browser, hub);
  try {
    const topic = `https://example.com/reconnect/${uid()}`;
    const port = hub.port;
    const requests = [];
    const responses = [];
    page.on('request', (r) => {
      if (r.url().includes(HUB_PATH)) requests.push(r);
    });
    page.on('response', (r) => {
      if (r.url().includes(HUB_PATH)) responses.push(r);
    });

    await openEventSource(page, 'rc', esUrl(topic));
    await waitLog(page, 'rc', 'log.opens === 1', 'first onopen');

    const id1 = `before-restart-${uid()}`;
    await publish(hub, { topic, id: id1, data: 'before restart', retry: 500 });
    await waitLog(page, 'rc', 'log.messages.length === 1', 'the update before the restart');
    assertEq((await esLog(page, 'rc')).messages,
      [{ type: 'message', data: 'before restart', lastEventId: id1 }], 'message before restart');
    assertEq(requests.length, 1, 'EventSource requests before the restart');
    assertEq(requests[0].headers()['last-event-id'], undefined,
      'Last-Event-ID on the first request');

    const exit = await stopHub(hub);
    assertEq(exit, { code: 0, signal: null }, 'hub exit status after SIGTERM');
    assert(/received SIGTERM/.test(hub.stderr), `hub did not log the SIGTERM; stderr:\n${hub.stderr}`);
    hub = await startHub(port, { directives: hub.directives });
    assertEq(hub.port, port, 'the new hub port');
    firstHub.replacement = hub;

    await waitLog(page, 'rc', 'log.opens === 2', 'the second onopen (reconnection)', 15_000);
    assertEq(await esState(page, 'rc'), 1, 'readyState after reconnecting');
    const log = await esLog(page, 'rc');
    assert(log.errors >= 1, `expected onerror when the stream ended, log: ${JSON.stringify(log)}`);
    assert(log.errorStates.every((s) => s === 0),
      `the EventSource must stay CONNECTING (0) across errors, not CLOSED: ${JSON.stringify(log.errorStates)}`);

    // The reconnecting request carries Last-Event-ID = the last id received.
    const last = requests[requests.length - 1];
    assert(requests.length >= 2, `expected a reconnection request, saw ${requests.length}`);
    const sent = (await last.allHeaders())['last-event-id'];
    assertEq(sent, id1, 'Last-Event-ID sent by the browser on reconnection');
    // The hub (local transport, no history) answers with Last-Event-Id: earliest.
    const resp = responses.find((r) => r.request() === last);
    assert(resp, 'no response seen for the reconnection request');
    assertEq(resp.status(), 200, 'status of the reconnection response');
    const respHeaders = await resp.allHeaders();
    assertEq(respHeaders['last-event-id'], 'earliest', 'Last-Event-Id response header on reconnection');
    assertEq(respHeaders['content-type'], 'text/event-stream', 'content-type of the reconnection response');

    const id2 = `after-restart-${uid()}`;
    await publish(hub, { topic, id: id2, data: 'after restart' });
    await waitLog(page, 'rc', 'log.messages.length === 2', 'the update after the restart');
    assertEq((await esLog(page, 'rc')).messages, [
      { type: 'message', data: 'before restart', lastEventId: id1 },
      { type: 'message', data: 'after restart', lastEventId: id2 },
    ], 'messages across the restart');
    assertEq((await esLog(page, 'rc')).opens, 2, 'onopen count after the restart');
    assertEq(await esState(page, 'rc'), 1, 'readyState at the end');
    await closeEs(page, 'rc');
  } finally {
    await context.close();
  }
}

async function scenarioUriTemplate(browser, hub) {
  const { context, page } = await newHubPage(browser, hub);
  try {
    await openEventSource(page, 'tpl', esUrl('https://example.com/books/{id}'));
    await waitLog(page, 'tpl', 'log.opens === 1', 'onopen');
    const id1 = `book-${uid()}`;
    const id2 = `book-${uid()}`;
    await publish(hub, { topic: 'https://example.com/authors/1', id: `author-${uid()}`, data: 'author' });
    await publish(hub, { topic: 'https://example.com/books/1', id: id1, data: '{"title":"Book 1"}' });
    await publish(hub, { topic: 'https://example.com/books/2/chapters', id: `ch-${uid()}`, data: 'chapter' });
    await publish(hub, { topic: ['https://example.com/other', 'https://example.com/books/2'], id: id2, data: 'alternate topic' });
    await waitLog(page, 'tpl', 'log.messages.length >= 2', '2 messages matching the template');
    assertEq((await esLog(page, 'tpl')).messages, [
      { type: 'message', data: '{"title":"Book 1"}', lastEventId: id1 },
      { type: 'message', data: 'alternate topic', lastEventId: id2 },
    ], 'messages matching https://example.com/books/{id}');
    await closeEs(page, 'tpl');
  } finally {
    await context.close();
  }
}

const SUBSCRIPTIONS_PATH = `${HUB_PATH}/subscriptions`;
const SUBSCRIPTIONS_TEMPLATE = `${SUBSCRIPTIONS_PATH}{/topic}{/subscriber}`;
const UUID_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Go's url.QueryEscape: everything but [A-Za-z0-9_.~-] percent-encoded (upper hex), ' ' -> '+'. */
function goQueryEscape(s) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9_.~-]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The subscription event / document the reference hub produces (Go struct field order). */
function subscriptionDoc(topic, subscriber, active, payload, { context = true } = {}) {
  const doc = {};
  if (context) doc['@context'] = 'https://mercure.rocks/';
  doc.id = `${SUBSCRIPTIONS_PATH}/${goQueryEscape(topic)}/${goQueryEscape(subscriber)}`;
  doc.type = 'Subscription';
  doc.subscriber = subscriber;
  doc.topic = topic;
  doc.active = active;
  if (payload !== undefined) doc.payload = payload;
  return doc;
}

/** Order-insensitive deep comparison (object keys sorted). */
function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  }
  return v;
}

/** GET on the subscriptions API from inside the page (same origin, cookies included). */
async function fetchSubscriptions(page, url = SUBSCRIPTIONS_PATH) {
  const r = await page.evaluate(async (url) => {
    const res = await fetch(url, { credentials: 'include', cache: 'no-store' });
    return { status: res.status, contentType: res.headers.get('content-type'), body: await res.text() };
  }, url);
  assertEq(r.status, 200, `GET ${url} from the page: status (body ${JSON.stringify(r.body)})`);
  assertEq(r.contentType, 'application/ld+json', `GET ${url}: content-type`);
  let doc;
  try { doc = JSON.parse(r.body); } catch (e) {
    throw new AssertionError(`GET ${url}: the body is not JSON (${e.message}): ${JSON.stringify(r.body)}`);
  }
  assertEq(doc['@context'], 'https://mercure.rocks/', `GET ${url}: @context`);
  assertEq(doc.id, url, `GET ${url}: id`);
  assertEq(doc.type, 'Subscriptions', `GET ${url}: type`);
  assert(typeof doc.lastEventID === 'string' && doc.lastEventID !== '',
    `GET ${url}: lastEventID must be a non-empty string, body ${r.body}`);
  assert(Array.isArray(doc.subscriptions), `GET ${url}: subscriptions must be an array, body ${r.body}`);
  return doc;
}

/** Parses one subscription event received by the watcher, checking its raw form. */
function parseSubscriptionEvent(msg, what) {
  let ev;
  try { ev = JSON.parse(msg.data); } catch (e) {
    throw new AssertionError(`${what}: data is not JSON (${e.message}): ${JSON.stringify(msg.data)}`);
  }
  assertEq(msg.data.split('\n')[0], '{', `${what}: first line of the raw data`);
  // json.MarshalIndent(v, "", "  ") and JSON.stringify(v, null, 2) agree on this document
  // (no HTML characters to escape): same fields, same order, 2-space indentation.
  assertEq(msg.data, JSON.stringify(ev, null, 2), `${what}: raw data (2-space indented JSON)`);
  return ev;
}

async function scenarioPresence(browser, hub) {
  const room = 'https://example.com/room/1';
  const watcherPayload = { user: 'https://example.com/users/watcher' };
  const alicePayload = { user: 'https://example.com/users/alice' };
  const watcherToken = jwt({ mercure: {
    subscribe: [SUBSCRIPTIONS_TEMPLATE, SUBSCRIPTIONS_PATH],
    payload: watcherPayload,
  } });
  const aliceToken = jwt({ mercure: { subscribe: [room], payload: alicePayload } });
  const cookie = (value) => ({
    name: 'mercureAuthorization', value, domain: '127.0.0.1', path: HUB_PATH,
    httpOnly: true, sameSite: 'Strict',
  });

  const A = await newHubPage(browser, hub);
  const B = await newHubPage(browser, hub);
  try {
    await A.context.addCookies([cookie(watcherToken)]);
    await B.context.addCookies([cookie(aliceToken)]);

    // Page A: the watcher.
    await openEventSource(A.page, 'watch', esUrl(SUBSCRIPTIONS_TEMPLATE), { withCredentials: true });
    await waitLog(A.page, 'watch', 'log.opens === 1', 'onopen (watcher)');

    // The watcher's own subscription is registered: that gives its subscriber id.
    const before = await fetchSubscriptions(A.page);
    const own = before.subscriptions.filter((x) => x.topic === SUBSCRIPTIONS_TEMPLATE);
    assertEq(own.length, 1, `watcher subscriptions in the API before B connects (list ${JSON.stringify(before)})`);
    const watcherId = own[0].subscriber;
    assert(UUID_URN.test(watcherId), `watcher subscriber id ${JSON.stringify(watcherId)} is not a urn:uuid`);
    assertEq(canonical(own[0]),
      canonical(subscriptionDoc(SUBSCRIPTIONS_TEMPLATE, watcherId, true, watcherPayload, { context: false })),
      "the watcher's own entry in the API list");
    assert(!before.subscriptions.some((x) => x.topic === room),
      `no subscription to ${room} before B connects: ${JSON.stringify(before)}`);

    // Page B: alice joins the room.
    await openEventSource(B.page, 'room', esUrl(room), { withCredentials: true });
    await waitLog(B.page, 'room', 'log.opens === 1', 'onopen (alice)');

    const isAbout = (active) => `log.messages.some((m) => { try { const d = JSON.parse(m.data);
      return d.topic === ${JSON.stringify(room)} && d.active === ${active}; } catch { return false; } })`;
    await waitLog(A.page, 'watch', isAbout(true), `the "active": true event for ${room}`, 5_000);
    let log = await esLog(A.page, 'watch');
    const joinMsgs = log.messages.filter((m) => { try { return JSON.parse(m.data).topic === room; } catch { return false; } });
    assertEq(joinMsgs.length, 1, `events about ${room} after alice joined (log ${JSON.stringify(log)})`);
    const join = parseSubscriptionEvent(joinMsgs[0], 'the "active": true event');
    const aliceId = join.subscriber;
    assert(UUID_URN.test(aliceId), `alice's subscriber id ${JSON.stringify(aliceId)} is not a urn:uuid`);
    assert(aliceId !== watcherId, 'alice and the watcher have the same subscriber id');
    assertEq(canonical(join), canonical(subscriptionDoc(room, aliceId, true, alicePayload)),
      'the "active": true event (parsed JSON)');
    assertEq(joinMsgs[0].type, 'message', 'event type of the subscription event');
    assert(joinMsgs[0].lastEventId !== '', 'the subscription event has an id');

    // The API lists alice's subscription, active.
    const during = await fetchSubscriptions(A.page);
    const aliceEntries = during.subscriptions.filter((x) => x.subscriber === aliceId);
    assertEq(aliceEntries.map(canonical),
      [canonical(subscriptionDoc(room, aliceId, true, alicePayload, { context: false }))],
      `alice's entries in the API list (list ${JSON.stringify(during)})`);
    assert(during.subscriptions.some((x) => x.subscriber === watcherId),
      `the watcher is missing from the API list: ${JSON.stringify(during)}`);

    // Alice leaves: the watcher sees the matching "active": false event.
    await closeEs(B.page, 'room');
    await waitLog(A.page, 'watch', isAbout(false), `the "active": false event for ${room}`, 5_000);
    log = await esLog(A.page, 'watch');
    const leaveMsgs = log.messages.filter((m) => { try { const d = JSON.parse(m.data); return d.topic === room && d.active === false; } catch { return false; } });
    assertEq(leaveMsgs.length, 1, `"active": false events about ${room} (log ${JSON.stringify(log)})`);
    const leave = parseSubscriptionEvent(leaveMsgs[0], 'the "active": false event');
    assertEq(canonical(leave), canonical(subscriptionDoc(room, aliceId, false, alicePayload)),
      'the "active": false event (parsed JSON, same subscriber and topic)');
    assert(leaveMsgs[0].lastEventId !== joinMsgs[0].lastEventId,
      'the "active": false event reuses the id of the "active": true event');

    const after = await fetchSubscriptions(A.page);
    assert(!after.subscriptions.some((x) => x.subscriber === aliceId || x.topic === room),
      `alice's subscription is still listed after she left: ${JSON.stringify(after)}`);
    assert(after.subscriptions.some((x) => x.subscriber === watcherId),
      `the watcher is missing from the API list at the end: ${JSON.stringify(after)}`);

    // Every event the watcher got: about alice, never about its own subscription.
    log = await esLog(A.page, 'watch');
    const subjects = log.messages.map((m) => { try { return JSON.parse(m.data).subscriber; } catch { return m.data; } });
    assert(!subjects.includes(watcherId),
      `the watcher received an event about its own subscription ${watcherId}: ${JSON.stringify(log.messages)}`);
    assertEq(log.messages.length, 2, `events received by the watcher (log ${JSON.stringify(log)})`);
    assertEq(log.errors, 0, 'watcher onerror count');
    assertEq(log.opens, 1, 'watcher onopen count');
    await closeEs(A.page, 'watch');
  } finally {
    await A.context.close();
    await B.context.close();
  }
}

async function scenarioTwentyStreamsOverHttp2(browser, hub) {
  // Over HTTP/1.1 a browser opens at most 6 connections to one origin, each holding one
  // event stream: the 7th EventSource would wait forever. Over HTTP/2 all 20 share one.
  const { context, page } = await newHubPage(browser, hub);
  try {
    const protocol = await page.evaluate(
      () => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    assertEq(protocol, 'h2', 'the protocol the page was loaded with');
    const n = 20;
    const base = `https://example.com/h2/${uid()}`;
    for (let i = 0; i < n; i++) await openEventSource(page, `s${i}`, esUrl(`${base}/${i}`));
    for (let i = 0; i < n; i++) await waitLog(page, `s${i}`, 'log.opens === 1', `onopen of stream ${i}`);
    assertEq(await hubMetric(hub, 'mercure_subscribers_connected'), n, 'subscribers connected');
    const ids = [];
    for (let i = 0; i < n; i++) ids.push(await publish(hub, { topic: `${base}/${i}`, data: `update ${i}` }));
    for (let i = 0; i < n; i++) {
      await waitLog(page, `s${i}`, 'log.messages.length >= 1', `the update on stream ${i}`);
      assertEq((await esLog(page, `s${i}`)).messages,
        [{ type: 'message', data: `update ${i}`, lastEventId: ids[i] }], `stream ${i} messages`);
    }
    // One connection for the page and its 20 streams (plus those of the test's own requests).
    const total = await hubMetric(hub, 'mercure_connections_total');
    assert(total <= n / 2, `the page used ${total} connections for ${n} streams`);
    for (let i = 0; i < n; i++) await closeEs(page, `s${i}`);
  } finally {
    await context.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Runner

const SCENARIOS = [
  ['public updates (ids, multi-line data, non-matching topic, typed event)', scenarioPublic],
  ['private updates through the mercureAuthorization cookie', scenarioPrivateCookie],
  ['EventSource reconnects by itself after the hub restarts on the same port', scenarioReconnect],
  ['topic URI template https://example.com/books/{id}', scenarioUriTemplate],
  ['presence: subscription events and the subscriptions API', scenarioPresence,
    { directives: ['subscriptions'] }],
  ['20 EventSource streams on one page over HTTPS (HTTP/2), an update on every one',
    scenarioTwentyStreamsOverHttp2, { tls: true }],
];

async function main() {
  const deadline = setTimeout(() => {
    console.error(`not ok - the whole run exceeded ${RUN_DEADLINE_MS / 1000} s`);
    killAllHubs();
    process.exit(3);
  }, RUN_DEADLINE_MS);

  if (!fs.existsSync(CHROMIUM)) throw new Error(`chromium not found: ${CHROMIUM} (set CHROMIUM)`);
  // launch() gives the browser a fresh temporary user-data-dir and removes it on close.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 20_000,
  });

  let passed = 0;
  let failed = 0;
  console.log(`1..${SCENARIOS.length}`);
  try {
    for (const [i, [name, fn, hubOptions]] of SCENARIOS.entries()) {
      const t0 = Date.now();
      let hub;
      try {
        hub = await startHub(0, hubOptions);
        await fn(browser, hub);
        passed++;
        console.log(`ok ${i + 1} - ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`not ok ${i + 1} - ${name} (${Date.now() - t0} ms)`);
        console.log(`  # ${String(e && e.stack || e).split('\n').join('\n  # ')}`);
        const h = hub && (hub.replacement || hub);
        if (h && h.stderr) console.log(`  # hub stderr:\n  # ${h.stderr.trimEnd().split('\n').join('\n  # ')}`);
      } finally {
        for (const h of [hub && hub.replacement, hub]) {
          if (h) await stopHub(h).catch((e) => { console.log(`  # stopping the hub: ${e.message}`); });
        }
      }
    }
  } finally {
    await browser.close().catch(() => {});
    killAllHubs();
    clearTimeout(deadline);
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => { killAllHubs(); removeTmpDirs(); process.exit(code); },
  (e) => { console.error('fatal:', e); killAllHubs(); process.exit(2); },
);
