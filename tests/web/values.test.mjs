// values.test.mjs -- live payload decoding (format=auto's rule) and the
// number a card shows (web/src/values.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodePayload, formatValue, valueNumber } from '../../web/src/values.js';

const bytes = (s) => new TextEncoder().encode(s);

test('live payloads decode like format=auto stores them', () => {
  assert.equal(decodePayload(bytes('91.5')), 91.5);
  assert.deepEqual(decodePayload(bytes('{"accuracy":0.9}')), { accuracy: 0.9 });
  assert.equal(decodePayload(bytes('sunny')), 'sunny');
  assert.equal(decodePayload(bytes('')), '');
  assert.deepEqual(decodePayload(new Uint8Array([0xff, 0x00, 0x41])), { base64: '/wBB' });
});

test('the number behind a value', () => {
  assert.equal(valueNumber(87.25), 87.25);
  assert.equal(valueNumber('87.5'), 87.5);
  assert.equal(valueNumber({ accuracy: 91, value: 3 }), 91);
  assert.equal(valueNumber({ value: '64' }), 64);
  assert.equal(valueNumber({ city: 'graz', score: 12 }), 12);
  assert.equal(valueNumber(0), 0);
});

test('values without one number have none', () => {
  for (const v of [null, true, 'n/a', '', [1, 2], { a: 1, b: 2 }, {}, { base64: 'AAE=' }])
    assert.equal(valueNumber(v), null, JSON.stringify(v));
});

test('cards print two decimals at most, or short JSON', () => {
  assert.equal(formatValue(91.456), '91.46');
  assert.equal(formatValue(1234.5), '1,234.5');
  assert.equal(formatValue({ a: 1, b: 2 }), '{"a":1,"b":2}');
  assert.equal(formatValue('n/a'), 'n/a');
  assert.equal(formatValue('x'.repeat(60)).length, 40);
});
