// gateways.test.mjs -- how the page tells a central node from a node with
// its own history, and which gateways it offers (web/src/gateways.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { gatewaysIn } from '../../web/src/gateways.js';

test('rows of fleet history name the gateways there are, each once, by name', () => {
  const rows = [
    { record: 'accuracy::graz', gateway: 'site-b', value: 1, stored_at: 1 },
    { record: 'accuracy::graz', gateway: 'site-a', value: 2, stored_at: 2 },
    { record: 'accuracy::linz', gateway: 'site-b', value: 3, stored_at: 3 },
    { record: 'accuracy::linz', gateway: 'Site-c', value: 4, stored_at: 4 },
  ];
  assert.deepEqual(gatewaysIn(rows), ['Site-c', 'site-a', 'site-b']); /* byte order, as the broker's */
});

test('a node with its own history names none', () => {
  assert.equal(gatewaysIn([{ record: 'accuracy::graz', value: 1, stored_at: 1 }]), null);
  assert.equal(gatewaysIn([]), null);
});
