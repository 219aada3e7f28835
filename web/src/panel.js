/*
 * panel.js -- the forecast accuracy panel: one card per city, in name order,
 * with its latest value, when that value was stored, and its history chart.
 *
 * The panel's own state is in data-state on its root: `loading` until the
 * first answer, `empty` when history and live both have nothing yet, `error`
 * when the latest values could not be read and none is shown, `filled` once
 * any city has a value (and from then on: values stay on screen).  Each card
 * carries data-city and its value element data-value (the number, or the
 * value's JSON when it has none), so tests and scripts read what a person
 * sees without scraping formatted text.
 */
import { createHistoryChart } from './chart.js';
import { formatValue, valueNumber } from './values.js';

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateAndTime = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});

function when(at) {
  const d = new Date(at);
  return d.toDateString() === new Date().toDateString() ? timeOfDay.format(d) : dateAndTime.format(d);
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/* The panel inside `root` (which holds .cards and .panel-note); unit
 * follows every number shown. */
export function createAccuracyPanel(root, unit) {
  const cardsEl = root.querySelector('.cards');
  const noteEl = root.querySelector('.panel-note');
  const cards = new Map(); /* city -> {el, valueEl, numberEl, unitEl, timeEl, chartEl, chartNote, chart, drawn} */
  let pendingNote = 'loading history…'; /* under a chart not drawn yet */

  function card(city) {
    let c = cards.get(city);
    if (c) return c;
    const el = element('article', 'card');
    el.dataset.city = city;
    const head = element('header');
    head.append(element('h2', null, city));
    const timeEl = element('time');
    head.append(timeEl);
    const valueEl = element('p', 'value');
    const numberEl = element('span', 'number', '–');
    const unitEl = element('span', 'unit');
    valueEl.append(numberEl, unitEl);
    const chartEl = element('div', 'chart');
    const chartNote = element('p', 'chart-note', pendingNote);
    el.append(head, valueEl, chartEl, chartNote);
    /* Insert in name order so a city arriving late lands where a reader expects it. */
    const after = [...cards.keys()].sort().find((name) => name > city);
    cardsEl.insertBefore(el, after ? cards.get(after).el : null);
    c = { el, valueEl, numberEl, unitEl, timeEl, chartEl, chartNote, drawn: false,
          chart: createHistoryChart(chartEl, city) };
    cards.set(city, c);
    return c;
  }

  return {
    /* Loading state with a note, e.g. while (re)connecting; cards stay. */
    loading(note) {
      if (cards.size) return;
      root.dataset.state = 'loading';
      noteEl.textContent = note;
    },

    /* No city has a value: say what the panel is waiting for. */
    empty(note) {
      if (cards.size) return;
      root.dataset.state = 'empty';
      noteEl.textContent = note;
    },

    /* The latest values could not be read; shown only while no card is. */
    failed(note) {
      if (cards.size) return;
      root.dataset.state = 'error';
      noteEl.textContent = note;
    },

    /* A city's latest value; `flash` marks a live update for the eye. */
    showValue(city, value, at, flash = false) {
      const c = card(city);
      const n = valueNumber(value);
      c.numberEl.textContent = formatValue(value);
      c.unitEl.textContent = n === null ? '' : unit;
      c.valueEl.dataset.value = n === null ? JSON.stringify(value) : String(n);
      c.timeEl.dateTime = new Date(at).toISOString();
      c.timeEl.textContent = when(at);
      if (flash) {
        c.el.classList.remove('updated');
        void c.el.offsetWidth; /* restart the highlight animation */
        c.el.classList.add('updated');
      }
      root.dataset.state = 'filled';
      noteEl.textContent = '';
    },

    /* A city's chart of the range in `view` ({label, aggregate, start, end,
     * every}); a series with no number in it is said, not drawn. */
    showSeries(city, points, view) {
      const c = card(city);
      const numeric = points.some(([, y]) => y !== null);
      c.chartEl.hidden = !numeric;
      if (numeric) c.chart.setSeries(points, view);
      c.drawn = true;
      c.chartNote.textContent = numeric ? ''
        : points.length ? `no numbers to chart in the last ${view.label}`
        : `no values in the last ${view.label}`;
    },

    /* Another range was chosen: every chart waits for its history again. */
    reloading(note) {
      pendingNote = note;
      for (const c of cards.values()) {
        c.drawn = false;
        c.chartNote.textContent = note;
      }
    },

    /* Another gateway was chosen: no card stays, the panel waits for its values. */
    clear(note) {
      for (const c of cards.values()) {
        c.chart.destroy();
        c.el.remove();
      }
      cards.clear();
      pendingNote = 'loading history…';
      root.dataset.state = 'loading';
      noteEl.textContent = note;
    },

    /* History could not be read: say so under every chart not drawn yet. */
    seriesUnavailable(why) {
      pendingNote = why;
      for (const c of cards.values()) if (!c.drawn) c.chartNote.textContent = why;
    },
  };
}
