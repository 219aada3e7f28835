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
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });

/* Short one-line tick labels (uPlot's default adds a date line that a small
 * card clips): "6 PM" or "18 Uhr" on the hour, the weekday in front once the
 * chart spans days. */
function timeTicks(u, splits) {
  const { min, max } = u.scales.x;
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const time = (d.getMinutes() ? clock : hour).format(d);
    return max - min > 1.5 * DAY_S ? `${weekday.format(d)} ${time}` : time;
  });
}

export function createHistoryChart(container, label) {
  const plot = new uPlot(
    {
      width: Math.max(container.clientWidth, 200),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: '#5b6470', grid: { stroke: '#e6e9ee' }, size: 32, space: 45, values: timeTicks },
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
