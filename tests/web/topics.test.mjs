// topics.test.mjs -- the city mapping between live topics and record names
// (web/src/topics.js): both directions, patterns, and refused shapes.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { makeCityMapping } from '../../web/src/topics.js';

test('the default weather mapping works both ways', () => {
  const m = makeCityMapping('weather/+/accuracy', 'accuracy::{1}');
  assert.equal(m.recordPattern, 'accuracy::*');
  assert.equal(m.cityFromTopic('weather/vienna/accuracy'), 'vienna');
  assert.equal(m.cityFromRecord('accuracy::vienna'), 'vienna');
});

test('topics of another shape are not ours', () => {
  const m = makeCityMapping('weather/+/accuracy', 'accuracy::{1}');
  for (const topic of ['weather/vienna/temperature', 'weather/vienna', 'weather/a/b/accuracy',
                       'weather//accuracy', 'aimdb/dashboard/x/reply', 'Weather/vienna/accuracy'])
    assert.equal(m.cityFromTopic(topic), null, topic);
});

test('record names of another family are not ours', () => {
  const m = makeCityMapping('weather/+/accuracy', 'accuracy::{1}');
  for (const name of ['accuracy::', 'temp::vienna', 'accuracy:vienna', 'Accuracy::vienna'])
    assert.equal(m.cityFromRecord(name), null, name);
});

test('a template with text after the city keeps it out of the city', () => {
  const m = makeCityMapping('site/+/acc', 'site.{1}.acc');
  assert.equal(m.recordPattern, 'site.*.acc');
  assert.equal(m.cityFromRecord('site.graz.acc'), 'graz');
  assert.equal(m.cityFromRecord('site..acc'), null);
  assert.equal(m.cityFromTopic('site/graz/acc'), 'graz');
});

test('shapes the page cannot map are refused with the reason', () => {
  assert.throws(() => makeCityMapping('weather/vienna/accuracy', 'accuracy::{1}'), /exactly one "\+"/);
  assert.throws(() => makeCityMapping('weather/+/+', 'accuracy::{1}'), /exactly one "\+"/);
  assert.throws(() => makeCityMapping('weather/+/#', 'accuracy::{1}'), /no "#"/);
  assert.throws(() => makeCityMapping('weather/+/accuracy', 'accuracy'), /"\{1\}" exactly once/);
  assert.throws(() => makeCityMapping('weather/+/accuracy', '{1}::{1}'), /"\{1\}" exactly once/);
  assert.throws(() => makeCityMapping('weather/+/accuracy', 'a::{1}::{2}'), /nothing else/);
  assert.throws(() => makeCityMapping('weather/+/accuracy', 'a*::{1}'), /nothing else/);
});
