/*
 * ranges.js -- the chart ranges a reader picks from, and what each asks
 * the broker for.
 *
 * Short ranges chart raw values; long ones ask record.query for
 * aggregates (`every`, docs/protocol.md): per bucket the average, drawn as the
 * line, and min and max, drawn as a band around it.  Each bucket width is
 * chosen so one city never needs more than a few hundred points whatever
 * its publish rate, and so that 7 d and 30 d are whole hours, which the
 * broker answers from its hourly rollups instead of reading every row.
 * Raw values are capped at `points` per city (the newest ones).
 */
const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const RANGES = [
  { key: '1h', label: '1 h', ms: HOUR, every: 0 },
  { key: '24h', label: '24 h', ms: DAY, every: 15 * MINUTE },   /* 96 buckets */
  { key: '7d', label: '7 d', ms: 7 * DAY, every: HOUR },       /* 168 */
  { key: '30d', label: '30 d', ms: 30 * DAY, every: 6 * HOUR }, /* 120 */
];

export const DEFAULT_RANGE = '24h';

export function rangeOf(key) {
  return RANGES.find((r) => r.key === key) ?? null;
}

/* "1 h" / "15 min" / "6 h" for a width in ms. */
export function durationLabel(ms) {
  if (ms % DAY === 0) return `${ms / DAY} d`;
  if (ms % HOUR === 0) return `${ms / HOUR} h`;
  return `${ms / MINUTE} min`;
}

/* What the chart note says about a range: "last 7 d, 1 h averages with min–max". */
export function rangeCaption(range) {
  return range.every ? `last ${range.label} · ${durationLabel(range.every)} avg, min–max`
                     : `last ${range.label} · every value`;
}

/* record.query params for the range ending at `now`. */
export function historyParams(range, pattern, now, points) {
  const params = { name: pattern, start: now - range.ms, end: now };
  if (range.every) return { ...params, every: range.every, agg: ['avg', 'min', 'max', 'count'] };
  return { ...params, limit: points };
}
