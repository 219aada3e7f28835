// cities.test.mjs -- how queried history and live messages merge per city
// (web/src/cities.js): the race between the two on every connect, for raw
// values and for aggregate buckets.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createCityTable } from '../../web/src/cities.js';

const HOUR = 3600 * 1000;
const NOW = 1_700_000_000_000;

test('a queried latest value fills an unknown city', () => {
  const t = createCityTable({ ms: 24 * HOUR, every: 0 });
  t.beginConnection();
  assert.equal(t.applyLatest('vienna', 91, NOW - HOUR), true);
  assert.deepEqual([t.get('vienna').value, t.get('vienna').at], [91, NOW - HOUR]);
  assert.deepEqual(t.names(), ['vienna']);
});

test('a live value in this connection beats the query snapshot', () => {
  const t = createCityTable({ ms: 24 * HOUR, every: 0 });
  t.beginConnection();
  t.applyLive('graz', 77, 77, NOW);
  assert.equal(t.applyLatest('graz', 70, NOW - HOUR), false);
  assert.equal(t.get('graz').value, 77);
});

test('after a reconnect the query answer counts again', () => {
  const t = createCityTable({ ms: 24 * HOUR, every: 0 });
  t.beginConnection();
  t.applyLive('graz', 77, 77, NOW);
  t.beginConnection();
  assert.equal(t.applyLatest('graz', 80, NOW + HOUR), true);
  assert.equal(t.get('graz').value, 80);
});

test('history keeps the live points newer than its last row, oldest first', () => {
  const t = createCityTable({ ms: 24 * HOUR, every: 0 });
  t.beginConnection();
  t.applyLive('linz', 5, 5, NOW - 10);      /* also in the snapshot below */
  t.applyLive('linz', 6, 6, NOW - 5);       /* arrived after the snapshot */
  const c = t.applyHistory('linz', [[NOW - 10, 5], [NOW - 2 * HOUR, 3], [NOW - HOUR, 4]], NOW);
  assert.deepEqual(c.series, [[NOW - 2 * HOUR, 3], [NOW - HOUR, 4], [NOW - 10, 5], [NOW - 5, 6]]);
});

test('points older than the window fall off', () => {
  const t = createCityTable({ ms: HOUR, every: 0 });
  t.beginConnection();
  t.applyHistory('linz', [[NOW - 2 * HOUR, 1], [NOW - HOUR / 2, 2]], NOW);
  assert.deepEqual(t.get('linz').series, [[NOW - HOUR / 2, 2]]);
  t.applyLive('linz', 3, 3, NOW + HOUR);
  assert.deepEqual(t.get('linz').series, [[NOW + HOUR, 3]]);
});

test('an empty history leaves the live points', () => {
  const t = createCityTable({ ms: HOUR, every: 0 });
  t.beginConnection();
  t.applyLive('linz', 3, 3, NOW);
  assert.deepEqual(t.applyHistory('linz', [], NOW).series, [[NOW, 3]]);
});

test('a live value joins the bucket it falls in, or starts the next one', () => {
  const t = createCityTable({ ms: 24 * HOUR, every: HOUR });
  t.beginConnection();
  const start = Math.floor(NOW / HOUR) * HOUR;
  t.applyHistory('graz', [[start, 10, 8, 12, 2], [start - HOUR, 5, 5, 5, 1]], NOW);
  t.applyLive('graz', 16, 16, NOW + 1);   /* after the query: same hour */
  assert.deepEqual(t.get('graz').series, [[start - HOUR, 5, 5, 5, 1], [start, 12, 8, 16, 3]]);
  t.applyLive('graz', 1, 1, start + HOUR); /* the next hour */
  assert.deepEqual(t.get('graz').series.at(-1), [start + HOUR, 1, 1, 1, 1]);
});

test('live values from before the bucket query are not counted twice', () => {
  const t = createCityTable({ ms: 24 * HOUR, every: HOUR });
  t.beginConnection();
  const start = Math.floor(NOW / HOUR) * HOUR;
  t.applyLive('linz', 7, 7, NOW - 5);     /* in the answer below already */
  t.applyHistory('linz', [[start, 7, 7, 7, 1]], NOW);
  assert.deepEqual(t.get('linz').series, [[start, 7, 7, 7, 1]]);
});

test('another range empties the series until its history comes', () => {
  const t = createCityTable({ ms: HOUR, every: 0 });
  t.beginConnection();
  t.applyHistory('linz', [[NOW - 10, 2]], NOW);
  t.setRange({ ms: 30 * 24 * HOUR, every: 6 * HOUR });
  assert.deepEqual(t.get('linz').series, []);
});
