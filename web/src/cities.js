/*
 * cities.js -- what the page knows per city: the latest value and the
 * series of the chosen range, merged from two sources that race each other.
 *
 * On every connect the page subscribes to the live topics first and only
 * then queries history, so no value published in between is missed.  That
 * makes the query answer a snapshot that may be older than a live message
 * already shown.  The rule that resolves the race: within one connection, a
 * city's live value always wins over a queried one (a message delivered
 * after the subscription is at least as new as anything the query read),
 * and the history series keeps the live points newer than its last row.
 * Live points are stamped with the browser's clock, queried ones with the
 * broker's stored_at; the rule never compares the two clocks for the latest
 * value, only to order a chart, where a small skew is harmless.
 *
 * A series is raw points [unix ms, number|null] or, for a range with a
 * bucket width (`every`), buckets [start ms, avg, min, max, count]; a live
 * value then joins the bucket it falls in, as the broker would have put it.
 * Either way oldest first, and nothing older than the range.
 */

function addToBuckets(series, every, at, y) {
  if (y === null) return series;
  const start = Math.floor(at / every) * every;
  const last = series[series.length - 1];
  if (last && last[0] === start) {
    const [, avg, min, max, count] = last;
    return [...series.slice(0, -1),
            [start, (avg * count + y) / (count + 1), Math.min(min, y), Math.max(max, y), count + 1]];
  }
  return [...series, [start, y, y, y, 1]];
}

export function createCityTable(range) {
  const cities = new Map(); /* name -> {value, at, liveConnection, live, series} */
  let connection = 0;
  let windowMs = range.ms;
  let every = range.every;

  function entry(city) {
    let c = cities.get(city);
    if (!c) {
      c = { value: undefined, at: 0, liveConnection: -1, live: [], series: [] };
      cities.set(city, c);
    }
    return c;
  }

  /* A bucket stays while any of it is inside the window. */
  function trim(points, now) {
    const from = now - windowMs - every;
    let i = 0;
    while (i < points.length && points[i][0] < from) i++;
    return i ? points.slice(i) : points;
  }

  function withLive(series, points, now) {
    let s = series;
    for (const [at, y] of points) s = every ? addToBuckets(s, every, at, y) : [...s, [at, y]];
    return trim(s, now);
  }

  return {
    /* A new connection: live values from before it no longer beat a query. */
    beginConnection() {
      connection++;
      for (const c of cities.values()) c.live = [];
    },

    /* Another range: every series waits for its history again. */
    setRange(r) {
      windowMs = r.ms;
      every = r.every;
      for (const c of cities.values()) c.series = [];
    },

    /* A live message; returns the city's entry. */
    applyLive(city, value, y, at) {
      const c = entry(city);
      c.value = value;
      c.at = at;
      c.liveConnection = connection;
      c.live.push([at, y]);
      c.series = withLive(c.series, [[at, y]], at);
      return c;
    },

    /* A record.query row for the latest value; true if it changed the city. */
    applyLatest(city, value, storedAt) {
      const c = entry(city);
      if (c.liveConnection === connection) return false;
      c.value = value;
      c.at = storedAt;
      return true;
    },

    /* The rows (or buckets) of the range's query, asked at `now`, for one
     * city, any order.  Live values the answer cannot hold are added: raw,
     * those newer than its newest row; buckets (which do not say when
     * their last value came), those that arrived after the query was asked. */
    applyHistory(city, points, now) {
      const c = entry(city);
      const rows = [...points].sort((a, b) => a[0] - b[0]);
      const last = every ? now : rows.length ? rows[rows.length - 1][0] : -Infinity;
      c.series = withLive(rows, c.live.filter(([at]) => at > last), now);
      return c;
    },

    get(city) {
      return cities.get(city);
    },

    /* City names in display order. */
    names() {
      return [...cities.keys()].sort();
    },
  };
}
