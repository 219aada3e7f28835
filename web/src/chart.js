/*
 * chart.js -- one city's history line, drawn with uPlot.
 *
 * uPlot draws on a canvas of a fixed pixel size, so the chart follows its
 * container's width (a phone column or a desktop grid cell) through a
 * ResizeObserver instead of guessing a size.  The element carries the
 * number of points it draws in data-points, so a test can tell an empty
 * chart from a drawn one without reading pixels.
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

/*
 * Tick labels on one short line (uPlot's default adds a date line that a
 * small card clips), as fine as the chart's span needs, each tier with the
 * spacing its widest label takes: "6 PM" / "6:15 PM" within a day,
 * seconds within minutes, milliseconds for a burst, the weekday in front
 * once the chart spans days.
 */
const TIERS = [
  { upTo: 10, space: 125, label: (d) => (d.getMilliseconds() ? millis : seconds).format(d) },
  { upTo: 180, space: 85, label: (d) => seconds.format(d) },
  { upTo: 1.5 * DAY_S, space: 60, label: (d) => (d.getMinutes() ? clock : hour).format(d) },
  { upTo: Infinity, space: 95, label: (d) => `${weekday.format(d)} ${clock.format(d)}` },
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
  if (min === max) {
    const pad = Math.max(Math.abs(min) * 0.05, 1);
    return [min - pad, max + pad];
  }
  return uPlot.rangeNum(min, max, 0.1, true);
}

/* A chart inside `container`; points are [unix ms, number|null], oldest first. */
export function createHistoryChart(container, label) {
  const plot = new uPlot(
    {
      width: Math.max(container.clientWidth, 200),
      height: HEIGHT,
      legend: { show: false },
      padding: [10, 32, 0, 0], /* room for half of the last tick label */
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: valueRange } },
      axes: [
        { stroke: '#5b6470', grid: { stroke: '#e6e9ee' }, size: 32, space: tickSpace, values: timeTicks },
        { stroke: '#5b6470', grid: { stroke: '#e6e9ee' }, size: 44 },
      ],
      series: [{}, { label, stroke: '#1f6fd1', width: 2, fill: 'rgba(31,111,209,0.08)',
                     points: { size: 5 }, spanGaps: false }],
    },
    [[], []],
    container,
  );
  new ResizeObserver(() => {
    const width = container.clientWidth;
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: HEIGHT });
  }).observe(container);

  return {
    setPoints(points) {
      plot.setData([points.map(([at]) => at / 1000), points.map(([, y]) => y)]);
      container.dataset.points = String(points.length);
    },
  };
}
