// dashboard.test.mjs -- the weather dashboard (web/) in a real browser
// against a real Mosquitto with the AimDB plugin: the case the dashboard
// exists for.  Seed history, restart the broker, open the page, and the
// accuracy panel must show every city's latest value -- stored before the
// restart -- before any new message is published; then one new message
// must update its card in place.  A page left open through the restart
// must say the broker is gone, keep its values, and reconnect by itself.
// Along the way: the "no data yet", "query error", "configuration error"
// and "broker unreachable" states, and that the page fetches nothing from
// anywhere but the broker that serves it.  Then 30 days of history written
// straight into SQLite (the schema of docs/schema.md, as another tool would)
// must chart as aggregates when 7 d and 30 d are picked, on axes spanning
// the range.  A central node with history in a real PostgreSQL server
// (postgres.mjs; skipped where none is installed) holding two gateways'
// rows must offer both in a selector, chart one at a time, and follow new
// rows and gateways; a node with its own history shows no selector.
// Screenshots (desktop and phone) go to AIMDB_TEST_OUT.
//
// Run by CTest (tests/web/CMakeLists.txt) as `node --test` with:
//   AIMDB_PLUGIN     path of aimdb_mosquitto.so (required)
//   AIMDB_TEST_OUT   output folder (default: a fresh temp folder)
//   AIMDB_CHROMIUM   browser binary (default /usr/bin/chromium)
//   AIMDB_BRIDGE     path of aimdb-bridge (required)
//   AIMDB_BROKER_PRELOAD  LD_PRELOAD for mosquitto (ASan builds of the plugin;
//                         LeakSanitizer then also judges mosquitto: ../lsan-mosquitto.supp)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { createBroker, freePort, startBridge } from './broker.mjs';
import { startPostgres } from './postgres.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, '../../web');

/* playwright-core and esbuild come from web/node_modules (`npm ci` in web/). */
function playwright() {
  try {
    return createRequire(join(webDir, 'package.json'))('playwright-core');
  } catch (err) {
    throw new Error(`web/node_modules lacks playwright-core: run \`npm ci\` in web/ (${err.message})`);
  }
}

const plugin = process.env.AIMDB_PLUGIN;
const chromiumPath = process.env.AIMDB_CHROMIUM || '/usr/bin/chromium';
const WAIT = { timeout: 15000 }; /* generous: CI runs two suites on two cores */

/* The seeded history: values per city, oldest first; the last one is the latest. */
const SEED = {
  graz: [71.5, 74, 76.25],
  linz: [80, 79.5, 83.75],
  salzburg: [66, 69.5, 72],
  vienna: [88.5, 90, 91.25],
};
const CITIES = Object.keys(SEED).sort();

let out, broker, browser, postgres;
let pageOpenAcrossRestart; /* opened by the first test, watched through the restart */
const pageProblems = []; /* console errors, page errors, requests off the broker */

async function openPage(url, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  page.on('pageerror', (err) => pageProblems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageProblems.push(`console: ${msg.text()}`);
  });
  const origin = new URL(url).origin; /* the broker that serves the page */
  page.on('request', (req) => {
    /* A blob: URL's origin is its creator's (mqtt.js makes its timer worker so). */
    const to = new URL(req.url());
    if (to.protocol !== 'data:' && to.origin !== origin)
      pageProblems.push(`request off the broker: ${req.url()}`);
  });
  await page.goto(url);
  return page;
}

/* {city: stored_at} of the latest history rows once history holds `latest`
 * ({city: value}): the writer commits in batches, so a row may take a moment. */
async function latestStoredAt(latest) {
  let reply;
  for (const deadline = Date.now() + WAIT.timeout; Date.now() < deadline;) {
    reply = await broker.request('record.query', { name: 'accuracy::*' });
    const rows = reply.result?.values ?? [];
    const city = (row) => row.record.replace('accuracy::', '');
    if (rows.length === CITIES.length && rows.every((row) => row.value === latest[city(row)]))
      return Object.fromEntries(rows.map((row) => [city(row), row.stored_at]));
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`history never held the latest values; last answer: ${JSON.stringify(reply)}`);
}

/* A browser logs each refused WebSocket as a console error: expected when
 * a test stops the broker or points the page at nothing. */
function forgiveRefusedWebSockets(urlPrefix) {
  for (let i = pageProblems.length - 1; i >= 0; i--)
    if (pageProblems[i].includes(`WebSocket connection to '${urlPrefix}`)) pageProblems.splice(i, 1);
}

/* What the panel shows: {city: number} from each card's data-value. */
function shownValues(page) {
  return page.$$eval('#accuracy .card', (cards) => Object.fromEntries(
    cards.map((c) => [c.dataset.city, Number(c.querySelector('.value').dataset.value)])));
}

/* The ASan runtime first in an ASan plugin's broker, with the suppressions
 * of tests/lsan-mosquitto.supp for the one leak that is mosquitto's own. */
function brokerEnv() {
  const preload = process.env.AIMDB_BROKER_PRELOAD;
  if (!preload) return {};
  const suppressions = join(here, '..', 'lsan-mosquitto.supp');
  return { LD_PRELOAD: preload, LSAN_OPTIONS: `suppressions=${suppressions}` };
}

before(async () => {
  assert.ok(plugin, 'AIMDB_PLUGIN must name aimdb_mosquitto.so');
  const { chromium } = playwright();
  out = process.env.AIMDB_TEST_OUT ? resolve(process.env.AIMDB_TEST_OUT)
                                   : await mkdtemp(join(tmpdir(), 'aimdb-web-'));
  const dir = join(out, 'dashboard-run');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  /* Build the page from the current sources into the test's own folder. */
  await promisify(execFile)(process.execPath, [join(webDir, 'build.mjs'), '--out', join(dir, 'www')]);
  broker = await createBroker({
    plugin: resolve(plugin),
    httpDir: join(dir, 'www'),
    dir,
    records: ['record accuracy::{1} weather/+/accuracy persist buffer=ring:16'],
    env: brokerEnv(),
  });
  await broker.start();
  /* Playwright adds --headless and a fresh temporary --user-data-dir itself. */
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await broker?.stop();
  await postgres?.stop();
});

test('an empty history says "no data yet", then values arrive live', async () => {
  const page = await openPage(broker.pageUrl);
  await page.waitForSelector('#status[data-state="live"]', WAIT);
  await page.waitForSelector('#accuracy[data-state="empty"]', WAIT);
  assert.match(await page.textContent('#accuracy .panel-note'), /No data yet/);

  /* Cities in parallel; one city's values one after another, so each is
   * stored later than the one before. */
  await Promise.all(CITIES.map(async (city) => {
    for (const value of SEED[city]) await broker.publish(`weather/${city}/accuracy`, String(value));
  }));

  const latest = Object.fromEntries(CITIES.map((c) => [c, SEED[c].at(-1)]));
  await page.waitForFunction((n) => document.querySelectorAll('#accuracy .card').length === n,
                             CITIES.length, WAIT);
  await page.waitForFunction((want) => {
    const cards = [...document.querySelectorAll('#accuracy .card')];
    return cards.every((c) => Number(c.querySelector('.value').dataset.value) === want[c.dataset.city]);
  }, latest, WAIT);
  assert.deepEqual(await page.$$eval('#accuracy .card', (cs) => cs.map((c) => c.dataset.city)), CITIES);
  pageOpenAcrossRestart = page;
});

test('after a broker restart the panel is full before any new message', async () => {
  /* Everything seeded is in history before the restart... */
  const latest = Object.fromEntries(CITIES.map((c) => [c, SEED[c].at(-1)]));
  const storedAt = await latestStoredAt(latest);

  /* A page open meanwhile says the broker is gone and keeps what it shows. */
  const old = pageOpenAcrossRestart;
  await broker.stop();
  await old.waitForSelector('#status[data-state="unreachable"]', WAIT);
  assert.deepEqual(await shownValues(old), latest);
  await broker.start();

  /* ...and after it, with nothing published since, a new page shows all of it. */
  const page = await openPage(broker.pageUrl, { viewport: { width: 1280, height: 800 } });
  await page.waitForSelector('#accuracy[data-state="filled"]', WAIT);
  await page.waitForFunction((n) => document.querySelectorAll('#accuracy .card').length === n,
                             CITIES.length, WAIT);
  assert.deepEqual(await shownValues(page), latest);
  const shownTimes = await page.$$eval('#accuracy .card', (cards) => Object.fromEntries(
    cards.map((c) => [c.dataset.city, Date.parse(c.querySelector('time').dateTime)])));
  assert.deepEqual(shownTimes, storedAt, 'each card shows when its value was stored, before the restart');
  assert.equal(await page.isHidden('#gateways'), true, 'a node with its own history has no gateways to pick');

  /* The charts hold the seeded history of the last 24 h, as 15-minute
   * buckets on an axis of 24 h. */
  await page.waitForFunction((want) => [...document.querySelectorAll('#accuracy .card .chart')]
    .every((c) => c.dataset.values === String(want)), SEED.vienna.length, WAIT);
  const axis = await page.$eval('.card[data-city="vienna"] .chart', (c) => ({ ...c.dataset }));
  assert.equal(axis.mode, 'aggregate');
  assert.equal(Number(axis.to) - Number(axis.from), 24 * 3600 * 1000);
  assert.equal(await page.getAttribute('#status', 'data-state'), 'live');
  await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });

  /* The page that saw the restart reconnects by itself.  Wait for it before
   * publishing: a page that reconnected after the publish but before the
   * writer's next commit would rightly show the older value. */
  await old.waitForSelector('#status[data-state="live"]', WAIT);

  /* One new message updates its card and chart in place, on both pages. */
  await broker.publish('weather/vienna/accuracy', '93.5');
  await page.waitForSelector('.card[data-city="vienna"] .value[data-value="93.5"]', WAIT);
  assert.equal(await page.getAttribute('.card[data-city="vienna"] .chart', 'data-values'),
               String(SEED.vienna.length + 1));
  assert.equal(await page.$$eval('#accuracy .card', (cs) => cs.length), CITIES.length);
  assert.equal((await shownValues(page)).graz, SEED.graz.at(-1));
  await page.context().close();

  await old.waitForSelector('.card[data-city="vienna"] .value[data-value="93.5"]', WAIT);
  await old.context().close();
  forgiveRefusedWebSockets(`ws://127.0.0.1:${broker.wsPort}/`);
});

test('the panel is readable on a phone', async () => {
  const page = await openPage(broker.pageUrl, {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  await page.waitForFunction(() => [...document.querySelectorAll('#accuracy .card .chart')]
    .some((c) => Number(c.dataset.points) > 0), null, WAIT);
  /* One column, nothing wider than the screen. */
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    cards: [...document.querySelectorAll('#accuracy .card')].map((c) => c.getBoundingClientRect().width),
  }));
  assert.ok(widths.page <= 390, `page is ${widths.page} px wide on a 390 px screen`);
  for (const w of widths.cards) assert.ok(w > 300 && w <= 390, `card ${w} px`);
  await page.screenshot({ path: join(out, 'dashboard-phone.png'), fullPage: true });
  await page.context().close();
});

test('a history query the broker refuses is reported with its code', async () => {
  /* More raw rows per city than the plugin serves: its invalid_params reply. */
  const page = await openPage(`${broker.pageUrl}?range=1h&points=1000000`);
  await page.waitForSelector('#status[data-state="query-error"]', WAIT);
  assert.match(await page.textContent('#status'), /Query error \(last 1 h\): invalid_params: params\.limit/);
  /* The latest values do not depend on that query. */
  await page.waitForSelector('#accuracy[data-state="filled"]', WAIT);
  await page.waitForFunction((n) => document.querySelectorAll('#accuracy .card').length === n,
                             CITIES.length, WAIT);
  assert.match(await page.textContent('.card[data-city="graz"] .chart-note'), /history unavailable: params\.limit/);
  await page.context().close();
});

test('bad page parameters are reported, not guessed at', async () => {
  const page = await openPage(`${broker.pageUrl}?topic=weather/%23`);
  await page.waitForSelector('#status[data-state="config-error"]', WAIT);
  assert.match(await page.textContent('#status'), /topic filter "weather\/#" must have exactly one "\+"/);
  await page.goto(`${broker.pageUrl}?gateway=site-*`);
  await page.waitForSelector('#status[data-state="config-error"]', WAIT);
  assert.match(await page.textContent('#status'), /\?gateway=site-\*: expected a gateway's name/);
  await page.context().close();
});

test('an unreachable broker is reported as such', async () => {
  const nobody = await freePort();
  const page = await openPage(`${broker.pageUrl}?broker=ws://127.0.0.1:${nobody}/mqtt`);
  await page.waitForSelector('#status[data-state="unreachable"]', WAIT);
  assert.match(await page.textContent('#status'), new RegExp(`unreachable at ws://127.0.0.1:${nobody}`));
  assert.equal(await page.getAttribute('#accuracy', 'data-state'), 'loading');
  await page.context().close();
  forgiveRefusedWebSockets(`ws://127.0.0.1:${nobody}/`);
});

test('a broker that takes no anonymous clients gets a sign-in form', async () => {
  const dir = join(out, 'dashboard-login');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const login = { username: 'aimdb', password: 'sec ret' };
  const guarded = await createBroker({
    plugin: resolve(plugin),
    httpDir: join(out, 'dashboard-run', 'www'),
    dir,
    records: ['record accuracy::{1} weather/+/accuracy persist'],
    env: brokerEnv(),
    login,
  });
  await guarded.start();
  try {
    await guarded.publish('weather/graz/accuracy', '64.5');
    const page = await openPage(guarded.pageUrl);
    await page.waitForSelector('#status[data-state="login"]', WAIT);
    assert.match(await page.textContent('#login .login-why'), /takes no anonymous clients/);

    /* A wrong password is refused and asked again; nothing retries by itself. */
    await page.fill('#login input[name="username"]', login.username);
    await page.fill('#login input[name="password"]', 'wrong');
    await page.click('#login button[type="submit"]');
    await page.waitForSelector('#login:not([hidden]) .login-why:has-text("refused that user")', WAIT);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'login');

    await page.fill('#login input[name="password"]', login.password);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector('#status[data-state="live"]', WAIT);
    await page.waitForSelector('.card[data-city="graz"] .value[data-value="64.5"]', WAIT);
    assert.equal(await page.isHidden('#login'), true);
    await page.context().close();
  } finally {
    await guarded.stop();
  }
});

/* ------------------------------------------------ 30 days of history */

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SEED_STEP = 5 * MINUTE;

/* A shape to recognise: a weekly wave with some jitter for graz (percent),
 * and five-digit values for "capital" (a y axis must show "12,000" whole). */
function seededValue(city, at) {
  const week = Math.sin((2 * Math.PI * at) / (7 * DAY));
  const jitter = ((at / SEED_STEP) * 7919) % 11 - 5; /* -5 .. 5, deterministic */
  return city === 'graz' ? Math.round((70 + 20 * week + jitter) * 100) / 100
                         : Math.round(15000 + 5000 * week + 300 * jitter);
}

/* {start: [avg, min, max, count]} of the seeded rows, as the broker buckets them. */
function expectedBuckets(rows, every) {
  const buckets = new Map();
  for (const [at, v] of rows) {
    const start = Math.floor(at / every) * every;
    const b = buckets.get(start) ?? { sum: 0, min: Infinity, max: -Infinity, count: 0 };
    b.sum += v, b.min = Math.min(b.min, v), b.max = Math.max(b.max, v), b.count++;
    buckets.set(start, b);
  }
  return buckets;
}

/* The chart's buckets against the seeded ones; `skipOldest`: the range's
 * first bucket holds only what the page's own clock let in. */
function assertBuckets(series, rows, every, skipOldest) {
  const want = expectedBuckets(rows, every);
  assert.ok(series.length >= 100, `${series.length} buckets`);
  for (const [i, [start, avg, min, max, count]] of series.entries()) {
    if (skipOldest && i === 0) continue;
    const b = want.get(start);
    assert.ok(b, `no seeded bucket at ${new Date(start).toISOString()}`);
    assert.equal(count, b.count, `count at ${new Date(start).toISOString()}`);
    assert.equal(min, b.min);
    assert.equal(max, b.max);
    assert.ok(Math.abs(avg - b.sum / b.count) < 1e-9 * Math.max(1, Math.abs(avg)), `avg ${avg}`);
  }
}

test('30 days written into SQLite chart as aggregates of 7 d and 30 d', async () => {
  const dir = join(out, 'dashboard-30d');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const seeded = await createBroker({
    plugin: resolve(plugin),
    httpDir: join(out, 'dashboard-run', 'www'),
    dir,
    records: ['record accuracy::{1} weather/+/accuracy persist'],
    env: brokerEnv(),
  });
  await seeded.start(); /* creates the schema */
  await seeded.stop();
  /* 29.5 days up to now, every 5 minutes: inside 30 d whatever the page's clock says. */
  const now = Date.now();
  const rows = { graz: [], capital: [] };
  const sql = ['BEGIN;'];
  for (let at = now - 29.5 * DAY; at < now - MINUTE; at += SEED_STEP) {
    const t = Math.round(at);
    for (const city of Object.keys(rows)) {
      const v = seededValue(city, t);
      rows[city].push([t, v]);
      sql.push(`INSERT INTO record_history(record_name, value_json, stored_at, topic) VALUES` +
               `('accuracy::${city}', '${v}', ${t}, 'weather/${city}/accuracy');`);
    }
  }
  sql.push('COMMIT;');
  const sqlFile = join(dir, 'seed.sql');
  await writeFile(sqlFile, sql.join('\n'));
  await promisify(execFile)('sqlite3', [join(dir, 'history.db'), `.read ${sqlFile}`]);
  await seeded.start();
  try {
    const page = await openPage(seeded.pageUrl, { viewport: { width: 1280, height: 800 } });
    /* Charts are made with their first points: no placeholder axes before. */
    await page.waitForSelector('#accuracy .card', WAIT);
    assert.equal(await page.$$eval('#accuracy .card .chart', (cs) =>
      cs.filter((c) => c.querySelector('.uplot') && !c.dataset.points).length), 0);
    await page.waitForSelector('#accuracy[data-state="filled"]', WAIT);
    assert.match(await page.textContent('#window'), /last 24 h · 15 min avg/);

    for (const [key, every, skipOldest] of [['7d', HOUR, true], ['30d', 6 * HOUR, false]]) {
      await page.click(`#ranges button[data-range="${key}"]`);
      await page.waitForFunction((ms) => {
        const charts = [...document.querySelectorAll('#accuracy .card .chart')];
        return charts.length === 2 && charts.every((c) => Number(c.dataset.to) - Number(c.dataset.from) === ms);
      }, key === '7d' ? 7 * DAY : 30 * DAY, WAIT);
      for (const city of Object.keys(rows)) {
        const chart = await page.$eval(`.card[data-city="${city}"] .chart`,
                                       (c) => ({ mode: c.dataset.mode, series: c.series }));
        assert.equal(chart.mode, 'aggregate', `${city} ${key}`);
        assertBuckets(chart.series, rows[city], every, skipOldest);
      }
    }
    assert.match(await page.textContent('#window'), /last 30 d · 6 h avg, min–max/);
    /* Five-digit labels fit beside the plot: "20,000" is narrower than the y axis. */
    const fits = await page.$eval('.card[data-city="capital"] .chart', (c) => {
      const ctx = document.createElement('canvas').getContext('2d');
      ctx.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'; /* uPlot's axis font */
      return { axis: c.querySelector('.u-over').offsetLeft, label: ctx.measureText('20,000').width };
    });
    assert.ok(fits.axis >= fits.label + 4, `y axis ${fits.axis} px for a ${fits.label} px label`);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'live');
    await page.screenshot({ path: join(out, 'dashboard-30d.png'), fullPage: true });
    await page.context().close();

    const phone = await openPage(`${seeded.pageUrl}?range=7d`, {
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    });
    await phone.waitForFunction(() => {
      const charts = [...document.querySelectorAll('#accuracy .card .chart')];
      return charts.length === 2 && charts.every((c) => Number(c.dataset.points) > 100);
    }, null, WAIT);
    assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth) <= 390);
    await phone.screenshot({ path: join(out, 'dashboard-30d-phone.png'), fullPage: true });
    await phone.context().close();
  } finally {
    await seeded.stop();
  }
});

/* ------------------------------------------- a central node's fleet */

/* [minutes ago, value] per gateway and city: history the gateways' uplinks
 * would have shipped, written into PostgreSQL as another tool would. */
const FLEET = {
  'site-a': { vienna: [[90, 70], [60, 72], [30, 74]], graz: [[45, 60]] },
  'site-b': { vienna: [[80, 95], [20, 97]], linz: [[50, 85]] },
};

/* The averages a chart draws, oldest first: each seeded value is a bucket of its own. */
const chartAverages = (page, city) =>
  page.$eval(`.card[data-city="${city}"] .chart`, (c) => c.series.map((b) => b[1]));

async function waitForGateway(page, name, cities) {
  await page.waitForFunction(([name, cities]) => {
    const select = document.querySelector('#gateways select');
    const shown = [...document.querySelectorAll('#accuracy .card')].map((c) => c.dataset.city);
    const charts = [...document.querySelectorAll('#accuracy .card .chart')];
    return select.value === name && shown.join() === cities.join() &&
           charts.every((c) => Number(c.dataset.points) > 0);
  }, [name, cities], WAIT);
}

/* The PostgreSQL server of the fleet tests, started by the first; null
 * (the test skipped, saying why) where none is installed. */
async function fleetServer(t) {
  postgres ??= await startPostgres();
  if (!postgres) t.skip('no PostgreSQL server package (postgresql): skipped');
  return postgres;
}

/* INSERT of FLEET's rows into record_history, stored minutes before `now`. */
function fleetRows(now) {
  const rows = Object.entries(FLEET).flatMap(([gw, cities]) => Object.entries(cities).flatMap(
    ([city, values]) => values.map(([ago, v]) =>
      `('${gw}', 'accuracy::${city}', '${v}', ${now - ago * MINUTE}, 'weather/${city}/accuracy')`)));
  return `INSERT INTO record_history(gateway, record_name, value_json, stored_at, topic) VALUES ${rows.join(', ')}`;
}

test('a central node offers its gateways and charts one at a time', async (t) => {
  const pg = await fleetServer(t);
  if (!pg) return;
  const dir = join(out, 'dashboard-fleet');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const central = await createBroker({
    plugin: resolve(plugin),
    httpDir: join(out, 'dashboard-run', 'www'),
    dir,
    database: pg.uri,
    records: ['gateway central', 'record accuracy::{1} weather/+/accuracy persist'],
    env: brokerEnv(),
  });
  try {
    await central.start(); /* creates the table */
    await pg.sql(fleetRows(Date.now()));

    /* The first gateway by name, its cities only, each chart its own line. */
    /* No re-read during the test: what it shows comes from the first reads alone. */
    const page = await openPage(`${central.pageUrl}?refresh=86400`, { viewport: { width: 1280, height: 800 } });
    await page.waitForSelector('#gateways:not([hidden])', WAIT);
    assert.deepEqual(await page.$$eval('#gateways option', (os) => os.map((o) => o.value)), ['site-a', 'site-b']);
    await waitForGateway(page, 'site-a', ['graz', 'vienna']);
    assert.deepEqual(await shownValues(page), { graz: 60, vienna: 74 });
    assert.deepEqual(await chartAverages(page, 'vienna'), [70, 72, 74]);
    await page.screenshot({ path: join(out, 'dashboard-fleet.png'), fullPage: true });

    /* The other one: nothing of the first stays. */
    await page.selectOption('#gateways select', 'site-b');
    await waitForGateway(page, 'site-b', ['linz', 'vienna']);
    assert.deepEqual(await shownValues(page), { linz: 85, vienna: 97 });
    assert.deepEqual(await chartAverages(page, 'vienna'), [95, 97]);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'live');

    /* The URL names the first one; re-reads every second follow new rows of
     * it, and a gateway new to history joins the choice.  The central
     * broker's own live message is that new gateway's value (stored as
     * `central`): neither page draws it into site-b's vienna. */
    const following = await openPage(`${central.pageUrl}?gateway=site-b&refresh=1`);
    await waitForGateway(following, 'site-b', ['linz', 'vienna']);
    await pg.sql(`INSERT INTO record_history(gateway, record_name, value_json, stored_at, topic) ` +
                 `VALUES ('site-b', 'accuracy::vienna', '98', ${Date.now() - MINUTE}, 'weather/vienna/accuracy')`);
    await central.publish('weather/vienna/accuracy', '99');
    await following.waitForFunction((want) =>
      [...document.querySelectorAll('#gateways option')].map((o) => o.value).join() === want,
    'central,site-a,site-b', WAIT);
    await following.waitForSelector('.card[data-city="vienna"] .value[data-value="98"]', WAIT);
    await following.waitForSelector('.card[data-city="vienna"] .chart[data-values="3"]', WAIT);
    assert.deepEqual(await chartAverages(following, 'vienna'), [95, 97, 98]);
    assert.deepEqual(await shownValues(page), { linz: 85, vienna: 97 });
    assert.deepEqual(await chartAverages(page, 'vienna'), [95, 97]);
    await following.selectOption('#gateways select', 'central');
    await waitForGateway(following, 'central', ['vienna']);
    assert.deepEqual(await shownValues(following), { vienna: 99 });

    /* The central node's own gateway (its $SYS/broker/aimdb/gateway) takes
     * the broker's live messages: this page never re-reads, so only the
     * message itself can bring 100; site-b's cards stay as they were. */
    const own = await openPage(`${central.pageUrl}?gateway=central&refresh=86400`);
    await waitForGateway(own, 'central', ['vienna']);
    await central.publish('weather/vienna/accuracy', '100');
    await own.waitForSelector('.card[data-city="vienna"] .value[data-value="100"]', WAIT);
    assert.deepEqual(await shownValues(page), { linz: 85, vienna: 97 });
    await own.context().close();
    await following.context().close();
    await page.context().close();
  } finally {
    await central.stop();
  }
});

/* aimdb-bridge as the central node, on a broker without the plugin that
 * serves the page: ?request= names the bridge's request topic. */
test('aimdb-bridge as a central node: the same choice through ?request=', async (t) => {
  const pg = await fleetServer(t);
  if (!pg) return;
  const dir = join(out, 'dashboard-bridge');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await pg.sql('CREATE DATABASE bridge');
  const plain = await createBroker({ httpDir: join(out, 'dashboard-run', 'www'), dir, env: brokerEnv() });
  await plain.start();
  let bridge;
  try {
    bridge = await startBridge(process.env.AIMDB_BRIDGE, plain, dir, [
      'client_id web-bridge', `database ${pg.uriOf('bridge')}`, 'gateway cloud',
      'record accuracy::{1} weather/+/accuracy persist']);
    await pg.sql(fleetRows(Date.now()), 'bridge'); /* into the table the bridge made at its start */
    await plain.publish('weather/graz/accuracy', '42');
    /* The bridge commits in batches: its row is there before the page asks. */
    for (const deadline = Date.now() + WAIT.timeout; ; await new Promise((r) => setTimeout(r, 100))) {
      if ((await pg.sql(`SELECT count(*) FROM record_history WHERE gateway = 'cloud'`, 'bridge')).trim() === '1') break;
      assert.ok(Date.now() < deadline, 'the bridge never stored its value');
    }
    const page = await openPage(`${plain.pageUrl}?request=aimdb/web-bridge/rpc`);
    await waitForGateway(page, 'cloud', ['graz']);
    assert.deepEqual(await page.$$eval('#gateways option', (os) => os.map((o) => o.value)),
                     ['cloud', 'site-a', 'site-b']);
    assert.deepEqual(await shownValues(page), { graz: 42 });
    await page.selectOption('#gateways select', 'site-b');
    await waitForGateway(page, 'site-b', ['linz', 'vienna']);
    assert.deepEqual(await chartAverages(page, 'vienna'), [95, 97]);
    await page.context().close();
  } finally {
    await bridge?.stop();
    await plain.stop();
  }
});

test('the page fetched nothing off the broker and logged no errors', () => {
  assert.deepEqual(pageProblems, []);
});
