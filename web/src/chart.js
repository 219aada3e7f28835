/*
 * chart.js -- one city's history, drawn with uPlot: a line of raw values,
 * or for aggregates the average as the line inside a band from min to max.
 *
 * The x axis spans the chosen range (now - range .. now), never only where
 * data is: a city that started publishing a minute ago shows a minute of
 * line at the right end of a 24 h axis, and a burst of values published
 * back to back is one bucket, not a wall at the left edge.  The plot is
 * made on the first points, so no frame shows placeholder axes (uPlot draws
 * -1..1 for an empty chart).  The y axis is as wide as its widest label
 * ("10,000" included).  uPlot draws on a canvas of a fixed pixel size, so
 * the chart follows its container's width through a ResizeObserver.
 *
 * The element says what it draws, for tests and scripts: data-mode (raw or
 * aggregate), data-points (points or buckets drawn), data-values (values
 * behind them: buckets' counts added up) and data-from / data-to (the x
 * axis in Unix ms); its `series` property holds the points themselves.
 */
import uPlot from 'uplot';

const HEIGHT = 150;
const DAY_S = 24 * 3600;

const hour = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });
const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const seconds = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const millis = new Intl.DateTimeFormat(undefined, {
  hour: 'numeric', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const monthDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/*
 * Tick labels on one short line (uPlot's default adds a date line that a
 * small card clips), as fine as the chart's span needs, each tier with the
 * spacing its widest label takes: "6 PM" / "6:15 PM" within a day,
 * seconds within minutes, milliseconds for a burst, the weekday in front
 * for a week, the date for a month.
 */
const TIERS = [
  { upTo: 10, space: 125, label: (d) => (d.getMilliseconds() ? millis : seconds).format(d) },
  { upTo: 180, space: 85, label: (d) => seconds.format(d) },
  { upTo: 1.5 * DAY_S, space: 60, label: (d) => (d.getMinutes() ? clock : hour).format(d) },
  { upTo: 10 * DAY_S, space: 95, label: (d) => `${weekday.format(d)} ${clock.format(d)}` },
  { upTo: Infinity, space: 60, label: (d) => monthDay.format(d) },
];

function tier(min, max) {
  return TIERS.find((t) => max - min <= t.upTo);
}

function timeTicks(u, splits) {
  const t = tier(u.scales.x.min, u.scales.x.max);
  return splits.map((s) => t.label(new Date(s * 1000)));
}

function tickSpace(u, axis, min, max) {
  return tier(min, max).space;
}

/* The y range: uPlot's padded one, except that a flat line (one value,
 * or the same value again) sits mid-chart instead of over a 0..2x span. */
function valueRange(u, min, max) {
  if (min === null || max === null) return [0, 1];
  if (min === max) {
    const pad = Math.max(Math.abs(min) * 0.05, 1);
    return [min - pad, max + pad];
  }
  return uPlot.rangeNum(min, max, 0.1, true);
}

/* The y axis as wide as its widest label, measured with the axis's font. */
function valueAxisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size; /* settled: uPlot asks again while laying out */
  let size = axis.ticks.size + axis.gap + 8;
  const widest = (values ?? []).reduce((a, v) => (v.length > a.length ? v : a), '');
  if (widest) {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(widest).width / devicePixelRatio;
  }
  return Math.ceil(size);
}

function options(width, label, span) {
  const axis = { stroke: '#5b6470', grid: { stroke: '#e6e9ee' } };
  return {
    width,
    height: HEIGHT,
    legend: { show: false },
    padding: [10, 32, 0, 0], /* room for half of the last tick label */
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: () => span() }, y: { range: valueRange } },
    axes: [
      { ...axis, size: 32, space: tickSpace, values: timeTicks },
      { ...axis, size: valueAxisSize },
    ],
    series: [
      {},
      { label, stroke: '#1f6fd1', width: 2, points: { size: 5 }, spanGaps: false },
      { label: 'min', stroke: 'transparent', points: { show: false } },
      { label: 'max', stroke: 'transparent', points: { show: false } },
    ],
    bands: [{ series: [3, 2], fill: 'rgba(31,111,209,0.16)' }],
  };
}

/* A chart inside `container`. */
export function createHistoryChart(container, label) {
  let plot = null;
  let from = 0, to = 0; /* the x axis, Unix ms */

  let resized = null;
  const span = () => [from / 1000, to / 1000];

  function draw(data) {
    if (!plot) {
      plot = new uPlot(options(Math.max(container.clientWidth, 200), label, span), data, container);
      resized = new ResizeObserver(() => {
        const width = container.clientWidth;
        if (width > 0 && width !== plot.width) plot.setSize({ width, height: HEIGHT });
      });
      resized.observe(container);
    } else {
      plot.setData(data);
    }
  }

  return {
    /*
     * Raw points [unix ms, number|null] or buckets [start ms, avg, min, max,
     * count] (aggregate), oldest first, on an x axis from `start` to `end`.
     * A bucket is drawn at its middle, the current one at most at `end`.
     */
    setSeries(points, { aggregate, start, end, every = 0 }) {
      from = start;
      to = end;
      const x = points.map(([at]) => Math.min(at + (aggregate ? every / 2 : 0), end) / 1000);
      const y = points.map((p) => p[1]);
      const none = points.map(() => null);
      draw([x, y, aggregate ? points.map((p) => p[2]) : none, aggregate ? points.map((p) => p[3]) : none]);
      Object.assign(container.dataset, {
        mode: aggregate ? 'aggregate' : 'raw',
        points: String(points.length),
        values: String(points.reduce((n, p) => n + (aggregate ? p[4] : 1), 0)),
        from: String(start),
        to: String(end),
      });
      container.series = points;
    },

    /* The card goes away: stop following its width. */
    destroy() {
      resized?.disconnect();
      plot?.destroy();
    },
  };
}
