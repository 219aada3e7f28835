/*
 * config.js -- what the page connects to and what it shows, from its URL.
 *
 * The defaults match conf/aimdb.conf and the broker that serves the page:
 * Mosquitto serves these files from the same websockets listener that
 * speaks MQTT, so the broker is the page's own origin and a plain
 * `make run` needs no settings.  Query parameters override each default,
 * which lets one build point at another broker or another record family:
 *   ?broker=ws://host:port  &topic=weather/+/accuracy  &record=accuracy::{1}
 *   &unit=%  &hours=24 (history window, at most a year)
 *   &points=1000 (history rows per city)
 */
import { makeCityMapping } from './topics.js';

export const REQUEST_TOPIC = '$CONTROL/aimdb/v1'; /* docs/protocol.md */

const DEFAULTS = {
  topic: 'weather/+/accuracy',
  record: 'accuracy::{1}',
  unit: '%', /* conf/aimdb.conf: forecast accuracy in percent */
  hours: 24,
  points: 1000,
};

function positiveInteger(params, key, max) {
  const raw = params.get(key);
  if (raw === null) return DEFAULTS[key];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`?${key}=${raw}: expected a whole number from 1 to ${max}`);
  return n;
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
    mapping,
    unit: params.get('unit') ?? DEFAULTS.unit,
    historyMs: positiveInteger(params, 'hours', 24 * 366) * 3600 * 1000,
    /* The broker knows its own cap on record.query's limit and says so in an
     * invalid_params reply; the page does not guess it. */
    historyPoints: positiveInteger(params, 'points', Number.MAX_SAFE_INTEGER),
  };
}
