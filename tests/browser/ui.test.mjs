// Real-browser test of the debugging UI (/.well-known/mercure/ui/) and the demo endpoint:
// Chromium (Debian's /usr/bin/chromium, or CHROMIUM) driven by playwright-core against the
// hub binary (QS_BINARY, default <repo>/build/mercure), started here on ephemeral ports.
//
// Scenarios: subscribe and publish through the page; a private update appears only with a
// token that allows it; reconnecting from the last event replays what was missed; the
// active subscriptions table follows subscribers; the charts move when updates are
// published; the demo endpoint sets the cookie. No page may break the hub's CSP.
// Prints one line per scenario, then "N passed, N failed"; exits non-zero on failure.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
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
const UI_PATH = `${HUB_PATH}/ui/`;
const SUBSCRIPTIONS_TOPIC = `${HUB_PATH}/subscriptions{/topic}{/subscriber}`;
const WAIT_MS = 10_000;
const RUN_DEADLINE_MS = 90_000;

// ---------------------------------------------------------------------------------------------
// Hubs

const hubs = new Set();
const tmpDirs = [];

function cleanup() {
  for (const h of hubs) {
    if (h.proc.exitCode === null && h.proc.signalCode === null) {
      try { h.proc.kill('SIGKILL'); } catch { /* gone */ }
    }
  }
  hubs.clear();
  for (const d of tmpDirs.splice(0)) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { cleanup(); process.exit(130); });

function startHub(directives) {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-ui-hub-'));
  tmpDirs.push(cwd);
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: cwd,
    XDG_DATA_HOME: path.join(cwd, 'data'),
    SERVER_NAME: '127.0.0.1:0',
    MERCURE_PUBLISHER_JWT_KEY: KEY,
    MERCURE_SUBSCRIBER_JWT_KEY: KEY,
    MERCURE_EXTRA_DIRECTIVES: directives.join('\n'),
  };
  const proc = spawn(BINARY, ['run'], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const hub = { proc, port: 0, stderr: '' };
  hubs.add(hub);
  hub.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not start:\n${hub.stderr}`)), 10_000);
    proc.on('exit', () => { if (!hub.port) { clearTimeout(timer); reject(new Error(`hub exited:\n${hub.stderr}`)); } });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      hub.stderr += d;
      const m = !hub.port && /listening on 127\.0\.0\.1:(\d+) \(/.exec(hub.stderr);
      if (m) {
        hub.port = Number(m[1]);
        clearTimeout(timer);
        resolve(hub);
      }
    });
  });
}

async function stopHub(hub) {
  hub.proc.kill('SIGTERM');
  const r = await Promise.race([hub.exited, new Promise((res) => setTimeout(() => res('timeout'), 5_000))]);
  hubs.delete(hub);
  if (r === 'timeout' || r.code !== 0) throw new Error(`hub did not exit cleanly (${JSON.stringify(r)}):\n${hub.stderr}`);
  if (/Sanitizer|runtime error/.test(hub.stderr)) throw new Error(`sanitizer report:\n${hub.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// Tokens, publishing from Node, assertions

const b64url = (s) => Buffer.from(s).toString('base64url');
function jwt(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  return `${head}.${body}.${crypto.createHmac('sha256', KEY).update(`${head}.${body}`).digest('base64url')}`;
}
const uid = () => crypto.randomBytes(4).toString('hex');

async function publishFromNode(hub, topic, data, { id, priv = false } = {}) {
  const form = new URLSearchParams({ topic, data });
  if (id) form.append('id', id);
  if (priv) form.append('private', 'on');
  const res = await fetch(`http://127.0.0.1:${hub.port}${HUB_PATH}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${jwt({ mercure: { publish: ['*'] } })}` },
    body: form,
  });
  if (res.status !== 200) throw new Error(`publish: HTTP ${res.status} ${await res.text()}`);
  return res.text();
}

class AssertionError extends Error {}
function assert(cond, msg) { if (!cond) throw new AssertionError(msg); }
function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${what}: expected ${e}, got ${a}`);
}

// ---------------------------------------------------------------------------------------------
// The page

/** Opens the UI in a new context; records CSP violations and page errors. */
async function openUi(browser, hub) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp ||= []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const res = await page.goto(`http://127.0.0.1:${hub.port}${UI_PATH}`);
  assertEq(res.status(), 200, 'GET the UI');
  assert((res.headers()['content-security-policy'] || '').includes("default-src 'self'"),
    `the UI is served with the hub's CSP, got ${JSON.stringify(res.headers())}`);
  const ui = {
    context,
    page,
    async check() {
      const csp = await page.evaluate(() => window.__csp || []);
      assertEq(csp, [], 'CSP violations');
      assertEq(problems.filter((p) => !p.includes('401') && !p.includes('Failed to load resource')), [],
        'page errors');
    },
    async setToken(t) { await page.fill('#token', t); },
    async subscribe(topics, lastId = '') {
      await page.fill('#sub-topics', [].concat(topics).join('\n'));
      await page.fill('#sub-last-id', lastId);
      await page.click('#sub-start');
      await page.waitForFunction(() => /^Subscribed/.test(document.getElementById('sub-status').textContent),
        null, { timeout: WAIT_MS });
    },
    async publish(fields) {
      await page.fill('#pub-topics', [].concat(fields.topic).join('\n'));
      await page.fill('#pub-data', fields.data ?? '');
      await page.fill('#pub-id', fields.id ?? '');
      await page.fill('#pub-type', fields.type ?? '');
      await page.fill('#pub-retry', fields.retry ?? '');
      await page.setChecked('#pub-private', !!fields.private);
      await page.fill('#pub-token', fields.token ?? '');
      await page.evaluate(() => { delete document.getElementById('pub-status').dataset.result; });
      await page.click('#pub-send');
      await page.waitForFunction(() => document.getElementById('pub-status').dataset.result,
        null, { timeout: WAIT_MS });
      return page.evaluate(() => ({
        result: document.getElementById('pub-status').dataset.result,
        text: document.getElementById('pub-status').textContent,
      }));
    },
    /** The events listed, oldest first. */
    events() {
      return page.evaluate(() => [...document.querySelectorAll('#events li')].reverse().map((li) => ({
        id: li.dataset.id ?? null, type: li.dataset.type, data: li.querySelector('pre').textContent,
      })));
    },
    async waitEvent(id) {
      try {
        await page.waitForSelector(`#events li[data-id="${id}"]`, { timeout: WAIT_MS });
      } catch {
        throw new AssertionError(`event ${id} never appeared; events: ${JSON.stringify(await ui.events())}`);
      }
    },
  };
  return ui;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async function scenarioSubscribeAndPublish(browser, hub) {
  const ui = await openUi(browser, hub);
  try {
    const topic = `https://example.com/books/${uid()}`;
    await ui.setToken(jwt({ mercure: { subscribe: ['https://example.com/books/{id}'], publish: ['*'] } }));
    await ui.page.waitForFunction(() => document.getElementById('claims').textContent.includes('publish:'));
    await ui.subscribe('https://example.com/books/{id}');
    const id = `urn:uuid:${crypto.randomUUID()}`;
    const r = await ui.publish({ topic, data: '{"title":"Dune"}', id, type: 'book', retry: '2000' });
    assertEq(r.result, 'ok', `publish through the UI (${r.text})`);
    assert(r.text.includes(id), `the publish answer names the id: ${r.text}`);
    await ui.waitEvent(id);
    const ev = (await ui.events()).find((e) => e.id === id);
    assertEq(ev.type, 'book', 'event type');
    assertEq(JSON.parse(ev.data), { title: 'Dune' }, 'event data');
    // An update published elsewhere arrives too; one on another topic does not.
    await publishFromNode(hub, 'https://example.com/authors/1', 'not for us', { id: `a-${uid()}` });
    const id2 = `b-${uid()}`;
    await publishFromNode(hub, topic, 'from node', { id: id2 });
    await ui.waitEvent(id2);
    assertEq((await ui.events()).map((e) => e.id), [id, id2], 'events received');
    // A publish refused by the hub is shown as such.
    const refused = await ui.publish({ topic, data: 'x', token: jwt({ mercure: { subscribe: ['*'] } }) });
    assertEq(refused.result, '401', `publish without a publish claim (${refused.text})`);
    await ui.check();
  } finally {
    await ui.context.close();
  }
}

async function scenarioPrivate(browser, hub) {
  const topic = `https://example.com/private/${uid()}`;
  const allowed = await openUi(browser, hub);
  const other = await openUi(browser, hub);
  try {
    await allowed.setToken(jwt({ mercure: { subscribe: [topic] } }));
    await other.setToken(jwt({ mercure: { subscribe: ['https://example.com/elsewhere'] } }));
    await allowed.subscribe(topic);
    await other.subscribe(topic);
    const secret = `secret-${uid()}`;
    const r = await allowed.publish({ topic, data: 'for the allowed only', id: secret, private: true,
      token: jwt({ mercure: { publish: ['*'] } }) });
    assertEq(r.result, 'ok', `private publish (${r.text})`);
    const marker = `public-${uid()}`;
    await publishFromNode(hub, topic, 'for everyone', { id: marker });
    await allowed.waitEvent(marker);
    await other.waitEvent(marker);
    assertEq((await allowed.events()).map((e) => e.id), [secret, marker], 'allowed page events');
    assertEq((await other.events()).map((e) => e.id), [marker], 'other page events (no private update)');
    await allowed.check();
    await other.check();
  } finally {
    await allowed.context.close();
    await other.context.close();
  }
}

async function scenarioReconnect(browser, hub) {
  const ui = await openUi(browser, hub);
  try {
    const topic = `https://example.com/history/${uid()}`;
    await ui.subscribe(topic);
    const first = `h1-${uid()}`;
    await publishFromNode(hub, topic, 'one', { id: first });
    await ui.waitEvent(first);
    await ui.page.click('#sub-stop');
    const missed = [`h2-${uid()}`, `h3-${uid()}`];
    for (const id of missed) await publishFromNode(hub, topic, id, { id });
    await ui.page.click('#sub-reconnect');
    await ui.waitEvent(missed[1]);
    assertEq((await ui.events()).map((e) => e.id), [first, ...missed], 'events after reconnecting');
    const status = await ui.page.textContent('#sub-status');
    assert(status.includes(`history after ${first}`), `status after reconnecting: ${status}`);
    await ui.check();
  } finally {
    await ui.context.close();
  }
}

async function scenarioSubscriptions(browser, hub) {
  const watcher = await openUi(browser, hub);
  const alice = await openUi(browser, hub);
  try {
    await watcher.setToken(jwt({ mercure: { subscribe: [SUBSCRIPTIONS_TOPIC, `${HUB_PATH}/subscriptions`] } }));
    await watcher.page.click('#subs-watch');
    await watcher.page.waitForFunction(() => /active subscription/.test(document.getElementById('subs-status').textContent),
      null, { timeout: WAIT_MS });
    const room = `https://example.com/rooms/${uid()}`;
    await alice.setToken(jwt({ mercure: { subscribe: [room], payload: { user: 'alice' } } }));
    await alice.subscribe(room);
    try {
      await watcher.page.waitForSelector(`#subs-body tr[data-topic="${room}"]`, { timeout: WAIT_MS });
    } catch {
      throw new AssertionError(`alice's subscription never appeared: ${await watcher.page.textContent('#subs-table')}`);
    }
    const row = await watcher.page.textContent(`#subs-body tr[data-topic="${room}"]`);
    assert(row.includes('"user":"alice"'), `the row shows the payload: ${row}`);
    await alice.page.click('#sub-stop');
    await watcher.page.waitForSelector(`#subs-body tr[data-topic="${room}"]`, { state: 'detached', timeout: WAIT_MS });
    await watcher.check();
    await alice.check();
  } finally {
    await watcher.context.close();
    await alice.context.close();
  }
}

async function scenarioCharts(browser, hub) {
  const ui = await openUi(browser, hub);
  try {
    const topic = `https://example.com/charts/${uid()}`;
    await ui.subscribe(topic);
    // The page's own subscription shows in the subscribers chart.
    await ui.page.waitForFunction(() => Number(document.getElementById('subscribers-now').textContent) >= 1,
      null, { timeout: WAIT_MS });
    const before = await ui.page.evaluate(() => document.getElementById('chart-updates').toDataURL());
    const deadline = Date.now() + 2500;
    let n = 0;
    while (Date.now() < deadline) {
      await publishFromNode(hub, topic, `u${n}`, { id: `c-${n}` });
      n++;
    }
    await ui.page.waitForFunction(() => {
      const s = (document.getElementById('chart-updates').dataset.samples || '').split(' ').map(Number);
      return s.some((v) => v > 1);
    }, null, { timeout: WAIT_MS });
    const after = await ui.page.evaluate(() => document.getElementById('chart-updates').toDataURL());
    assert(before !== after, 'the updates chart was redrawn with the new samples');
    const rate = Number(await ui.page.textContent('#updates-now'));
    assert(rate >= 0, `updates per second shown: ${rate}`);
    await ui.waitEvent(`c-${n - 1}`);
    await ui.check();
  } finally {
    await ui.context.close();
  }
}

async function scenarioDemo(browser, hub) {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    const token = jwt({ mercure: { subscribe: ['*'] } });
    const body = '<!DOCTYPE html><title>demo</title><p>hello</p>';
    const url = `http://127.0.0.1:${hub.port}${HUB_PATH}/ui/demo/books/1.html?body=${encodeURIComponent(body)}&jwt=${token}`;
    const res = await page.goto(url);
    assertEq(res.status(), 200, 'demo status');
    assertEq(res.headers()['content-type'], 'text/html; charset=utf-8', 'demo content type');
    assertEq(await page.textContent('p'), 'hello', 'demo body rendered');
    const links = res.headers().link;
    assert(links.includes('</.well-known/mercure>; rel="mercure"') && links.includes('rel="self"'),
      `demo Link headers: ${links}`);
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === 'mercureAuthorization');
    assert(c && c.value === token && c.path === HUB_PATH && c.sameSite === 'Strict',
      `the demo set the authorization cookie: ${JSON.stringify(cookies)}`);
    // Without jwt the cookie is removed.
    await page.goto(`http://127.0.0.1:${hub.port}${HUB_PATH}/ui/demo/x.json?body=%7B%7D`);
    assert(!(await context.cookies()).some((x) => x.name === 'mercureAuthorization'), 'cookie removed');
  } finally {
    await context.close();
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!fs.existsSync(BINARY)) throw new Error(`hub binary not found: ${BINARY}`);
  const deadline = setTimeout(() => { console.error('run deadline exceeded'); cleanup(); process.exit(2); }, RUN_DEADLINE_MS);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  // The default transport keeps history, which the reconnection scenario needs.
  const hub = await startHub(['anonymous', 'demo', 'subscriptions']);
  const scenarios = [
    ['subscribe and publish through the UI', scenarioSubscribeAndPublish],
    ['a private update appears only with a token that allows it', scenarioPrivate],
    ['reconnecting from the last event replays what was missed', scenarioReconnect],
    ['the active subscriptions table follows subscribers', scenarioSubscriptions],
    ['the charts move when updates are published', scenarioCharts],
    ['the demo endpoint answers its body and sets the cookie', scenarioDemo],
  ];
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of scenarios) {
    const started = Date.now();
    try {
      await fn(browser, hub);
      passed++;
      console.log(`ok - ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${name}\n  ${String(e.stack || e).split('\n').join('\n  ')}`);
    }
  }
  await browser.close();
  try {
    await stopHub(hub);
  } catch (e) {
    failed++;
    console.log(`not ok - the hub stops cleanly\n  ${e.message}`);
  }
  clearTimeout(deadline);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); cleanup(); process.exit(2); });
