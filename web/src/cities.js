/*
 * cities.js -- what the page knows per city: the latest value and the
 * recent series, merged from two sources that race each other.
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
 */

/* Points are [unix ms, number|null]; series are kept oldest first. */
export function createCityTable(windowMs) {
  const cities = new Map(); /* name -> {value, at, liveConnection, live, series} */
  let connection = 0;

  function entry(city) {
    let c = cities.get(city);
    if (!c) {
      c = { value: undefined, at: 0, liveConnection: -1, live: [], series: [] };
      cities.set(city, c);
    }
    return c;
  }

  function trim(points, now) {
    const from = now - windowMs;
    let i = 0;
    while (i < points.length && points[i][0] < from) i++;
    return i ? points.slice(i) : points;
  }

  return {
    /* A new connection: live values from before it no longer beat a query. */
    beginConnection() {
      connection++;
      for (const c of cities.values()) c.live = [];
    },

    /* A live message; returns the city's entry. */
    applyLive(city, value, y, at) {
      const c = entry(city);
      c.value = value;
      c.at = at;
      c.liveConnection = connection;
      c.live.push([at, y]);
      c.series = trim([...c.series, [at, y]], at);
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

    /* The rows of a time-range query for one city, any order. */
    applyHistory(city, points, now) {
      const c = entry(city);
      const rows = [...points].sort((a, b) => a[0] - b[0]);
      const last = rows.length ? rows[rows.length - 1][0] : -Infinity;
      c.series = trim([...rows, ...c.live.filter(([at]) => at > last)], now);
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
