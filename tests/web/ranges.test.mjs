// ranges.test.mjs -- what each chart range asks the broker for
// (web/src/ranges.js): raw values for the short one, aggregates for the
// long ones, and never more than a few hundred buckets per city.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RANGES, historyParams, rangeCaption, rangeOf } from '../../web/src/ranges.js';

const NOW = 1_700_000_000_000;
const HOUR = 3600 * 1000;

test('1 h is raw values, capped per city', () => {
  assert.deepEqual(historyParams(rangeOf('1h'), 'accuracy::*', NOW, 3600),
                   { name: 'accuracy::*', start: NOW - HOUR, end: NOW, limit: 3600 });
  assert.equal(rangeCaption(rangeOf('1h')), 'last 1 h · every value');
});

test('the long ranges are buckets of avg, min, max and count', () => {
  const p = historyParams(rangeOf('30d'), 'accuracy::*', NOW, 3600);
  assert.deepEqual(p, { name: 'accuracy::*', start: NOW - 30 * 24 * HOUR, end: NOW,
                        every: 6 * HOUR, agg: ['avg', 'min', 'max', 'count'] });
  assert.equal(rangeCaption(rangeOf('24h')), 'last 24 h · 15 min avg, min–max');
});

test('no range needs more than a few hundred buckets; 7 d and 30 d are whole hours', () => {
  for (const r of RANGES.filter((x) => x.every)) assert.ok(r.ms / r.every <= 200, r.key);
  assert.equal(rangeOf('7d').every % HOUR, 0);
  assert.equal(rangeOf('30d').every % HOUR, 0);
  assert.equal(rangeOf('2y'), null);
});
