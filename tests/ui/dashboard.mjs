// Drives the admin dashboard (/ui/) in headless Debian Chromium through the
// scenario of issue 19, asserting each step, and writes a screenshot of every
// page for a person to look at.
//
//   ASIDE_ADMIN=http://127.0.0.1:9080 ASIDE_PROXY=http://127.0.0.1:8080 ASIDE_TOKEN=... \
//   SCREENSHOTS=/tmp/shots node tests/ui/dashboard.mjs
//
// Environment:
//   ASIDE_ADMIN   the admin listener (serves /ui/)                  required
//   ASIDE_PROXY   the proxy listener; every path goes to an origin   required
//                 that answers cacheable responses (max-age=300)
//   ASIDE_TOKEN   the admin token                                    required
//   SCREENSHOTS   directory for the PNGs (default: a new temp dir)
//   CHROMIUM      browser binary (default /usr/bin/chromium)
//
// Exit code 0 when every step passed, 1 with the failing step's message
// otherwise. Any console error, uncaught page error or failed request fails
// the run, except the two answers the scenario provokes on purpose (the 401
// of the wrong token, the 412 of the KV conflict), each allowed only during
// its own step and only for its own request.

import {mkdirSync, mkdtempSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import puppeteer from 'puppeteer-core';

// ---- configuration --------------------------------------------------------

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`dashboard test: set ${name} (see the header of tests/ui/dashboard.mjs)`);
    process.exit(2);
  }
  return value.replace(/\/+$/, '');
}

const ADMIN = required('ASIDE_ADMIN');
const PROXY = required('ASIDE_PROXY');
const TOKEN = process.env.ASIDE_TOKEN ?? required('ASIDE_TOKEN');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOTS || mkdtempSync(join(tmpdir(), 'aside-ui-'));
mkdirSync(SHOTS, {recursive: true});

const DESKTOP = {width: 1280, height: 900};
const PHONE = {width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true};
// One run's paths never collide with an earlier run's entries on the same server.
const RUN = Date.now().toString(36);
const PATHS = Array.from({length: 50}, (_, i) => `/ui-test/${RUN}/item-${i}?n=${i}`);
const KV_KEY = 'ui/test/a';

// ---- bookkeeping ----------------------------------------------------------

const problems = [];
const passed = [];
const shots = [];
/** Answers a step provokes on purpose: [{status, method, path, seen}]. */
let allowed = [];

function isAllowed(status, method, url) {
  const path = new URL(url).pathname;
  const rule = allowed.find((a) => a.status === status && a.method === method && path === a.path);
  if (rule) rule.seen = true;
  return Boolean(rule);
}

class StepFailed extends Error {}

function assert(condition, message) {
  if (!condition) throw new StepFailed(message);
}

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
  } catch (err) {
    err.step = name;
    throw err;
  }
  const ms = Date.now() - started;
  passed.push(name);
  console.log(`  ok   ${name} (${(ms / 1000).toFixed(1)} s)`);
}

/** Polls `fn` (in the page) until it returns truthy; fails with `what` after `timeout` ms. */
async function waitIn(page, what, fn, arg, timeout = 10_000) {
  try {
    const options = {timeout, polling: 100};
    return await (arg === undefined ? page.waitForFunction(fn, options) : page.waitForFunction(fn, options, arg));
  } catch {
    throw new StepFailed(`timed out after ${timeout / 1000} s waiting for ${what}`);
  }
}

async function waitVisible(page, selector, what, timeout = 10_000) {
  try {
    return await page.waitForSelector(selector, {visible: true, timeout});
  } catch {
    throw new StepFailed(`timed out after ${timeout / 1000} s waiting for ${what} (${selector})`);
  }
}

async function text(page, selector) {
  return page.$eval(selector, (el) => el.textContent.trim()).catch(() => null);
}

async function setValue(page, selector, value) {
  await page.$eval(selector, (el, v) => {
    el.value = v;
    el.dispatchEvent(new Event('input', {bubbles: true}));
  }, value);
}

async function go(page, hash) {
  await page.evaluate((h) => { window.location.hash = h; }, hash);
}

async function screenshot(page, name) {
  const file = join(SHOTS, name);
  // Let charts and fonts settle after the last answer.
  await new Promise((resolve) => setTimeout(resolve, 300));
  await page.screenshot({path: file, fullPage: true});
  shots.push(name);
}

async function admin(method, path, {body, headers = {}} = {}) {
  const res = await fetch(`${ADMIN}${path}`, {
    method,
    headers: {Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json', ...headers},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const raw = await res.text();
  return {status: res.status, json: raw ? JSON.parse(raw) : null};
}

// ---- the scenario ---------------------------------------------------------

async function scenario(page) {
  await step('the console loads and asks for a token', async () => {
    const res = await page.goto(`${ADMIN}/ui/`, {waitUntil: 'networkidle0'}).catch((err) => {
      throw new StepFailed(`cannot open ${ADMIN}/ui/: ${err.message}`);
    });
    assert(res.ok(), `GET /ui/ answered ${res.status()}`);
    const csp = res.headers()['content-security-policy'] ?? '';
    assert(csp.includes("script-src 'self'"), `/ui/ has no strict CSP header (got "${csp}")`);
    await waitVisible(page, '#login-form', 'the login form');
    assert((await page.evaluate(() => window.location.hash)).startsWith('#/login'), 'not on the login page');
  });

  await step('a wrong token is refused and stays on login', async () => {
    allowed = [{status: 401, method: 'GET', path: '/cache/entries', seen: false}];
    await setValue(page, '#token', `${TOKEN}-wrong`);
    await page.click('#login-submit');
    await waitVisible(page, '#login-error', 'the refusal message');
    const message = await text(page, '#login-error');
    assert(/token refused/i.test(message), `the message says "${message}", expected "Token refused"`);
    assert((await page.evaluate(() => window.location.hash)).startsWith('#/login'), 'left the login page');
    assert(await page.$eval('#nav', (el) => el.hidden), 'the navigation is shown without a valid token');
    assert(!(await page.evaluate(() => Object.keys(sessionStorage).length)), 'a refused token was stored');
    assert(allowed[0].seen, 'the wrong token was never sent to the server');
    allowed = [];
    await screenshot(page, 'login.png');
  });

  await step('the right token logs in (sessionStorage, bearer header, no cookie)', async () => {
    await setValue(page, '#token', TOKEN);
    await page.click('#login-submit');
    await waitIn(page, 'the overview after login', () => window.location.hash === '#/overview');
    await waitVisible(page, '#overview-cards .card', 'the overview figures');
    const stored = await page.evaluate(() => ({session: Object.values(sessionStorage), local: Object.keys(localStorage)}));
    assert(stored.session.includes(TOKEN), 'the token is not in sessionStorage');
    assert(stored.local.length === 0, `localStorage is used: ${stored.local}`);
    const cookies = await page.cookies();
    assert(cookies.length === 0, `cookies were set: ${cookies.map((c) => c.name)}`);
  });

  await step('traffic moves the hit ratio on the overview', async () => {
    const before = await page.$eval('#chart-requests', (el) => el.dataset.lastT ?? '').catch(() => '');
    const statuses = [];
    for (const round of [1, 2]) {
      for (const path of PATHS) {
        const res = await fetch(`${PROXY}${path}`);
        await res.arrayBuffer();
        assert(res.ok, `GET ${PROXY}${path} through the proxy answered ${res.status}`);
        statuses.push(`${round}:${res.headers.get('cache-status')}`);
      }
    }
    // One URL clearly ahead of the rest, so the top list has it whatever else the server saw.
    for (let i = 0; i < 3; i += 1) await (await fetch(`${PROXY}${PATHS[0]}`)).arrayBuffer();
    const hits = statuses.filter((s) => s.startsWith('2:') && /;\s*hit\b/.test(s)).length;
    assert(hits > 0, `the second round of requests had no hit; Cache-Status seen: ${statuses.slice(-3).join(' | ')}`);
    // A point covers 10 s and the page refreshes every 10 s: up to ~20 s, plus margin.
    await waitIn(page, 'a new /stats/series point with hits drawn on the overview (hit ratio > 0)', (prev) => {
      const chart = document.getElementById('chart-requests');
      const figure = document.querySelector('[data-testid="hit-ratio-hour"]');
      if (!chart || !figure || !chart.dataset.lastT || chart.dataset.lastT === prev) return false;
      return Number(chart.dataset.hitRatioMax) > 0 && parseFloat(figure.textContent) > 0;
    }, before, 35_000);
    const figure = await text(page, '[data-testid="hit-ratio-hour"]');
    console.log(`       hit ratio, last hour: ${figure} (${hits}/${PATHS.length} hits in round 2)`);
    const series = await page.$eval('#chart-requests', (el) => el.querySelectorAll('canvas').length);
    assert(series > 0, 'the requests chart has no canvas');
    await screenshot(page, 'overview.png');
  });

  await step('the overview is usable on a phone (390 px, nav collapsed)', async () => {
    await page.setViewport(PHONE);
    await waitIn(page, 'the menu button', () => {
      const toggle = document.getElementById('nav-toggle');
      return toggle && getComputedStyle(toggle).display !== 'none';
    });
    assert(await page.$eval('#nav', (el) => getComputedStyle(el).display === 'none'), 'the nav is not collapsed at 390 px');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `the page is ${overflow} px wider than the phone screen`);
    await screenshot(page, 'overview-phone.png');
    await page.click('#nav-toggle');
    await waitIn(page, 'the opened menu', () => getComputedStyle(document.getElementById('nav')).display !== 'none');
    await screenshot(page, 'menu-phone.png');
    await page.click('#nav-toggle');
    await page.setViewport(DESKTOP);
  });

  await step('top keys and hosts list the test URLs', async () => {
    await go(page, '#/top');
    await waitIn(page, `${PATHS[0]} in the top URLs`, (path) => [...document.querySelectorAll('#top-urls td.url')]
      .some((td) => td.textContent.endsWith(path)), PATHS[0]);
    await waitIn(page, 'a host in the top hosts', () => document.querySelectorAll('#top-hosts td.url').length > 0);
    await screenshot(page, 'top.png');
  });

  let target = null;
  await step('the cache browser finds the entries by prefix', async () => {
    await go(page, '#/cache');
    await waitVisible(page, '#cache-search', 'the cache search form');
    await setValue(page, '#cache-prefix', `${PROXY}/ui-test/${RUN}/`);
    await page.click('#cache-search button[type="submit"]');
    // The page first lists everything, then re-renders for the search (the
    // filter goes into the URL, and the list may be rebuilt while we look):
    // take the rows in the same evaluation that sees the filtered list complete.
    const found = await waitIn(page, 'the test entries in the filtered cache list', ([run, n]) => {
      const trs = [...document.querySelectorAll('#cache-list tr[data-url]')];
      if (!location.hash.includes('prefix=') || trs.length !== n
        || !trs.every((tr) => tr.dataset.url.includes(`/ui-test/${run}/`))) return false;
      return trs.map((tr) => ({
        url: tr.dataset.url,
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent.trim()),
      }));
    }, [RUN, PATHS.length]);
    const rows = await found.jsonValue();
    assert(rows.length === PATHS.length, `the list shows ${rows.length} entries for the prefix, expected ${PATHS.length}`);
    const [first] = rows;
    assert(first.url.startsWith(`${PROXY}/ui-test/${RUN}/`), `unexpected URL form in the list: ${first.url}`);
    assert(/^200\b/.test(first.cells[0]) && /fresh/.test(first.cells[0]), `status cell: "${first.cells[0]}"`);
    assert(/^(hot|cold)$/.test(first.cells[2]), `tier cell: "${first.cells[2]}"`);
    assert(/\d+m|\d+s/.test(first.cells[3]), `TTL cell: "${first.cells[3]}"`);
    target = rows[rows.length - 1].url;
    await waitVisible(page, '#cache-list tr[data-url]', 'the cache list');
    await screenshot(page, 'cache.png');
  });

  await step('an entry shows the headers of its variants', async () => {
    await waitVisible(page, '#cache-list tr[data-url] td.url a', 'the cache list');
    const other = await page.$eval('#cache-list tr[data-url] td.url a', (a) => a.getAttribute('href'));
    await go(page, other);
    await waitVisible(page, '#entry-details .variant', 'the entry details');
    const headers = await page.$$eval('#entry-details .variant table.headers tbody tr', (trs) => trs.map((tr) => tr.textContent));
    assert(headers.some((h) => /cache-control/i.test(h)), `no cache-control among the stored headers: ${headers.join(' | ')}`);
    await screenshot(page, 'cache-entry.png');
  });

  await step('"Purge everything" shows the dry-run count and asks first', async () => {
    await go(page, `#/cache?prefix=${encodeURIComponent(`${PROXY}/ui-test/${RUN}/`)}`);
    await waitVisible(page, '#cache-list tr[data-url]', 'the cache list');
    await page.click('#purge-everything');
    await waitVisible(page, '#dialog[open] #purge-count', 'the confirmation dialog');
    const count = await text(page, '#purge-count');
    const n = Number((/([\d,]+) entr/.exec(count)?.[1] ?? '0').replace(/,/g, ''));
    assert(n >= PATHS.length, `the dialog counts ${n} entries ("${count}"), expected at least ${PATHS.length}`);
    await screenshot(page, 'purge-dialog.png');
    await page.click('#dialog-cancel');
    await waitIn(page, 'the dialog to close', () => !document.getElementById('dialog').open);
    const left = await admin('GET', `/cache/entries?prefix=${encodeURIComponent(`${PROXY}/ui-test/${RUN}/`)}&limit=1000`);
    assert(left.json.data.entries.length === PATHS.length, 'Cancel purged entries');
  });

  await step('purging an entry removes it, and the next request is a miss', async () => {
    const findRow = (url) => [...document.querySelectorAll('#cache-list tr[data-url]')].find((tr) => tr.dataset.url === url);
    await waitIn(page, `the row of ${target}`, `(${findRow})(${JSON.stringify(target)})`);
    await page.evaluate(`(${findRow})(${JSON.stringify(target)}).querySelector('button[data-action="purge"]').click()`);
    await waitIn(page, `the row of ${target} to disappear`, `!(${findRow})(${JSON.stringify(target)})
      && document.querySelectorAll('#cache-list tr[data-url]').length === ${PATHS.length - 1}`);
    const res = await fetch(target);
    await res.arrayBuffer();
    const status = res.headers.get('cache-status') ?? '';
    assert(status.includes('fwd=miss'), `after the purge ${target} answered Cache-Status "${status}", expected fwd=miss`);
  });

  await step('KV: create an item in the UI', async () => {
    const gone = await admin('DELETE', `/kv/items/${KV_KEY}`);
    assert(gone.status === 204, `cleanup DELETE answered ${gone.status}`);
    await go(page, '#/kv?prefix=ui%2Ftest');
    await waitVisible(page, '#kv-new', 'the new-item form');
    await setValue(page, '#kv-new-key', KV_KEY);
    await setValue(page, '#kv-new-value', '{"n":1}');
    await page.click('#kv-create');
    await waitIn(page, 'the new item page', () => window.location.hash.startsWith('#/kv/item'));
    await waitIn(page, 'the value {"n": 1} in the editor', () => /"n":\s*1\b/.test(document.getElementById('kv-value')?.value ?? ''));
    const stored = await admin('GET', `/kv/items/${KV_KEY}`);
    assert(stored.status === 200 && stored.json.data.value.n === 1, `the server has ${JSON.stringify(stored.json)}`);
  });

  await step('KV: saving over a change made meanwhile shows the conflict', async () => {
    const behind = await admin('PUT', `/kv/items/${KV_KEY}`, {body: {value: {n: 2}}});
    assert(behind.status === 200, `the direct PUT answered ${behind.status}`);
    allowed = [{status: 412, method: 'PUT', path: `/kv/items/${KV_KEY}`, seen: false}];
    await setValue(page, '#kv-value', '{"n": 3}');
    await page.click('#kv-save');
    await waitVisible(page, '#kv-conflict', 'the conflict message');
    const message = await text(page, '#kv-conflict');
    assert(/changed by someone else meanwhile/i.test(message), `the message says "${message}"`);
    assert(allowed[0].seen, 'the save did not reach the server with If-Match');
    allowed = [];
    const stored = await admin('GET', `/kv/items/${KV_KEY}`);
    assert(stored.json.data.value.n === 2, `the conflicting save overwrote the value: ${JSON.stringify(stored.json.data.value)}`);
    await screenshot(page, 'kv-conflict.png');
    await page.click('#kv-conflict-reload');
    await waitIn(page, 'the current value {"n": 2} after reload', () => /"n":\s*2\b/.test(document.getElementById('kv-value').value));
  });

  await step('KV: navigate the keys part by part', async () => {
    await go(page, '#/kv');
    await waitVisible(page, '#kv-list tr.folder[data-prefix="ui"] a', 'the folder "ui/" at the root');
    await page.click('#kv-list tr.folder[data-prefix="ui"] a');
    await waitVisible(page, '#kv-list tr.folder[data-prefix="ui/test"] a', 'the folder "test/" under ui');
    await page.click('#kv-list tr.folder[data-prefix="ui/test"] a');
    await waitVisible(page, `#kv-list tr.leaf[data-key="${KV_KEY}"]`, `the item ${KV_KEY}`);
    await screenshot(page, 'kv.png');
  });

  await step('cluster page', async () => {
    await go(page, '#/cluster');
    await waitIn(page, 'the cluster state', () => document.getElementById('cluster-standalone')
      || document.querySelector('#cluster table tbody tr'));
    const standalone = await page.$('#cluster-standalone');
    if (standalone) {
      const message = await text(page, '#cluster-standalone');
      assert(/standalone node, no cluster configured/i.test(message), `standalone message: "${message}"`);
    }
    await screenshot(page, 'cluster.png');
  });

  await step('config page shows the file, and Reload answers', async () => {
    await go(page, '#/config');
    await waitIn(page, 'the config text', () => document.querySelectorAll('#config-text .line').length > 0);
    await page.click('#reload');
    await waitIn(page, 'the reload result', () => document.getElementById('reload-ok') || document.getElementById('reload-error'));
    const error = await text(page, '#reload-error');
    assert(!error, `reloading the unchanged config failed: ${error}`);
    await screenshot(page, 'config.png');
  });

  await step('log out', async () => {
    await page.click('#logout');
    await waitVisible(page, '#login-form', 'the login form after logout');
    assert(await page.evaluate(() => sessionStorage.length === 0), 'the token is still stored after logout');
    await go(page, '#/cache');
    await waitIn(page, 'the redirect to login', () => window.location.hash.startsWith('#/login'));
  });
}

// ---- run ------------------------------------------------------------------

async function main() {
  console.log(`dashboard test: ${ADMIN}/ui/ (proxy ${PROXY}), browser ${CHROMIUM}`);
  console.log(`screenshots: ${SHOTS}`);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    defaultViewport: DESKTOP,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      // This machine has no internet: keep Chromium from trying.
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let failure = null;
  try {
    const page = await browser.newPage();
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'assert') return;
      const where = msg.location()?.url ?? '';
      // Chromium logs every non-2xx fetch as "Failed to load resource"; the provoked ones are allowed.
      const expected = /^Failed to load resource/.test(msg.text())
        && allowed.some((a) => where && new URL(where).pathname === a.path && msg.text().includes(String(a.status)));
      if (!expected) problems.push(`console ${msg.type()}: ${msg.text()}${where ? ` (${where})` : ''}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => {
      // A GET still in flight when the test navigates or reloads is cancelled by
      // the browser (net::ERR_ABORTED): not a failure of the page or the server.
      if (req.method() === 'GET' && req.failure()?.errorText === 'net::ERR_ABORTED') return;
      problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400 && !isAllowed(res.status(), res.request().method(), res.url())) {
        problems.push(`failed request: ${res.request().method()} ${res.url()} answered ${res.status()}`);
      }
    });
    try {
      await scenario(page);
      if (problems.length) throw new StepFailed(`${problems.length} console error(s) or failed request(s)`);
    } catch (err) {
      failure = err;
      await page.screenshot({path: join(SHOTS, 'failure.png'), fullPage: true}).catch(() => {});
    }
  } finally {
    await browser.close();
  }

  for (const p of problems) console.log(`  problem: ${p}`);
  console.log(`screenshots (${shots.length}) in ${SHOTS}: ${shots.join(', ')}`);
  if (failure) {
    const where = failure.step ? `step "${failure.step}": ` : '';
    console.log(`FAIL ${where}${failure instanceof StepFailed ? failure.message : failure.stack}`);
    console.log(`${passed.length} passed, 1 failed`);
    process.exit(1);
  }
  console.log(`${passed.length} passed, 0 failed`);
}

main().catch((err) => {
  console.error(`dashboard test crashed: ${err.stack ?? err}`);
  process.exit(1);
});
