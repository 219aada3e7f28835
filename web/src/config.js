/*
 * config.js -- what the page connects to and what it shows, from its URL.
 *
 * The defaults match conf/aimdb.conf and the broker that serves the page:
 * Mosquitto serves these files from the same websockets listener that
 * speaks MQTT, so the broker is the page's own origin and a plain
 * `make run` needs no settings.  Query parameters override each default,
 * which lets one build point at another broker or another record family:
 *   ?broker=ws://host:port  &topic=weather/+/accuracy  &record=accuracy::{1}
 *   &unit=%  &range=24h (the chart range first shown: 1h, 24h, 7d or 30d)
 *   &points=3600 (raw values per city in a range charted raw)
 *   &request=aimdb/cloud/rpc (aimdb-bridge: its request_topic)
 *   &gateway=site-7 (on a central node: the gateway shown first)
 *   &refresh=30 (on a central node: seconds between re-reads of history)
 */
import { DEFAULT_RANGE, RANGES, rangeOf } from './ranges.js';
import { makeCityMapping } from './topics.js';

const REQUEST_TOPIC = '$CONTROL/aimdb/v1'; /* docs/protocol.md; the plugin's */

const DEFAULTS = {
  topic: 'weather/+/accuracy',
  record: 'accuracy::{1}',
  unit: '%', /* conf/aimdb.conf: forecast accuracy in percent */
  points: 3600,
  refresh: 30,
};

function positiveInteger(params, key, max) {
  const raw = params.get(key);
  if (raw === null) return DEFAULTS[key];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`?${key}=${raw}: expected a whole number from 1 to ${max}`);
  return n;
}

function readRange(params) {
  const key = params.get('range') ?? DEFAULT_RANGE;
  const range = rangeOf(key);
  if (!range)
    throw new Error(`?range=${key}: expected one of ${RANGES.map((r) => r.key).join(', ')}`);
  return range;
}

/* Where requests go: a topic name (no wildcards). */
function readRequestTopic(params) {
  const topic = params.get('request') ?? REQUEST_TOPIC;
  if (topic === '' || /[+#]/.test(topic))
    throw new Error(`?request=${topic}: expected a topic name without "+" or "#"`);
  return topic;
}

/* A gateway's name (docs/configuration.md: no blanks, control characters
 * or '*'), asked for as a pattern that matches it alone. */
function readGateway(params) {
  const name = params.get('gateway');
  if (name !== null && (name === '' || /[\s*\x00-\x1f\x7f]/.test(name)))
    throw new Error(`?gateway=${name}: expected a gateway's name (no blanks, control characters or "*")`);
  return name;
}

/* The page's origin as a WebSocket URL: http -> ws, https -> wss. */
function ownBroker(location) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
}

/* The settings for one page load; throws an Error that says which parameter is wrong. */
export function readConfig(location) {
  const params = new URLSearchParams(location.search);
  const mapping = makeCityMapping(params.get('topic') ?? DEFAULTS.topic,
                                  params.get('record') ?? DEFAULTS.record);
  return {
    brokerUrl: params.get('broker') ?? ownBroker(location),
    requestTopic: readRequestTopic(params),
    mapping,
    unit: params.get('unit') ?? DEFAULTS.unit,
    range: readRange(params),
    /* The broker knows its own cap on record.query's limit and says so in an
     * invalid_params reply; the page does not guess it. */
    historyPoints: positiveInteger(params, 'points', Number.MAX_SAFE_INTEGER),
    gateway: readGateway(params),
    refreshMs: positiveInteger(params, 'refresh', 86400) * 1000,
  };
}
