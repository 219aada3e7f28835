/*
 * main.js -- the dashboard's wiring: connect, subscribe, ask history, go live.
 *
 * The problem this page exists to prove solved: a panel that stayed empty
 * after every restart or page load until the next hourly value arrived.
 * Here, on every connect, the page
 *   1. subscribes to its reply topic and to the live topics (first, so that
 *      nothing published while the queries run is lost: see cities.js),
 *   2. asks record.query for the latest value of every city and fills the
 *      panel from the answer at once,
 *   3. asks record.query for the chosen range of every city for the charts
 *      (raw values or aggregates: ranges.js),
 *   4. then updates cards and charts in place from live messages.
 * Choosing another range asks 3. again; the cards stay.
 * A reconnect repeats all of it: the broker may have restarted, and the
 * messages sent while we were away are in its history, not in our socket.
 * On a central node (fleet history in PostgreSQL: the answer to 2. names
 * each value's gateway) the page shows one gateway at a time, chosen in
 * a selector (gateways.js), and asks 3. for that gateway alone.  Live
 * messages there are the central broker's own, stored under the gateway
 * it names in $SYS/broker/aimdb/gateway, while the other gateways' values
 * arrive through their uplinks, never as messages: so the page draws live
 * messages only while it shows that gateway (none where that topic is not
 * readable, or not published: aimdb-bridge, sys_interval 0) and asks 2.
 * and 3. again every `refresh` seconds for every gateway.
 * A broker that refuses anonymous clients gets the sign-in form (login.js),
 * and the connection is tried again with what was typed.
 */
import mqtt from 'mqtt';

import { createAimxClient } from './aimx.js';
import { createCityTable } from './cities.js';
import { readConfig } from './config.js';
import { createGatewayPicker, gatewaysIn } from './gateways.js';
import { createLoginForm, isRefusedLogin } from './login.js';
import { createAccuracyPanel } from './panel.js';
import { RANGES, historyParams, rangeCaption } from './ranges.js';
import { createStatusBanner } from './status.js';
import { decodePayload, valueNumber } from './values.js';

/* Retained by the plugin on a node whose history names gateways (README, Metrics). */
const OWN_GATEWAY_TOPIC = '$SYS/broker/aimdb/gateway';

/* crypto.getRandomValues, unlike randomUUID, also works on plain http://LAN-address pages. */
function randomSuffix() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/* Per city from a record.query answer: [stored_at, number] rows, or for
 * aggregates [bucket start, avg, min, max, count]. */
function pointsByCity(values, mapping, aggregate) {
  const byCity = new Map();
  for (const row of values) {
    const city = mapping.cityFromRecord(row.record);
    if (city === null) continue;
    if (!byCity.has(city)) byCity.set(city, []);
    const v = row.value;
    byCity.get(city).push(aggregate ? [row.stored_at, v.avg, v.min, v.max, v.count]
                                    : [row.stored_at, valueNumber(v)]);
  }
  return byCity;
}

/* One button per range in `root`; onPick(range) when another is pressed. */
function createRangePicker(root, current, onPick) {
  const buttons = RANGES.map((r) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = r.label;
    b.dataset.range = r.key;
    b.addEventListener('click', () => {
      if (r === current) return;
      current = r;
      for (const other of buttons) other.setAttribute('aria-pressed', String(other === b));
      onPick(r);
    });
    b.setAttribute('aria-pressed', String(r === current));
    return b;
  });
  root.append(...buttons);
}

function start(config) {
  const { brokerUrl, mapping, unit, historyPoints } = config;
  let range = config.range;
  const windowEl = document.getElementById('window');
  const status = createStatusBanner(document.getElementById('status'));
  const panel = createAccuracyPanel(document.getElementById('accuracy'), unit);
  let table = createCityTable(range);
  let gateway = null; /* on a central node, the gateway shown; null elsewhere */
  let ownGateway = null; /* the gateway this broker's live messages are stored under, if it says */
  let refreshing = null; /* the timer of a central node's re-reads */
  let asked = 0; /* history requests so far: an answer to an earlier one (another range, gateway) is dropped */

  const clientId = `aimdb-dashboard-${randomSuffix()}`;
  const replyTopic = `aimdb/dashboard/${clientId}/reply`;
  const client = mqtt.connect(brokerUrl, {
    protocolVersion: 5,
    clientId,
    clean: true,
    connectTimeout: 5000,
    reconnectPeriod: 2000,
    resubscribe: false, /* we subscribe on every connect, before querying */
  });
  const aimx = createAimxClient(client, config.requestTopic, replyTopic);
  status.connecting(brokerUrl);
  panel.loading('Connecting to the broker…');

  /* mqtt.js does not retry a refused CONNECT; the form's answer does. */
  let loginRefused = false;
  const login = createLoginForm(document.getElementById('login'), ({ username, password }) => {
    loginRefused = false;
    client.options.username = username;
    client.options.password = password;
    status.connecting(brokerUrl);
    client.reconnect();
  });

  /* Show another gateway (or, the first time, the fleet's first): nothing
   * of the one shown before stays. */
  function showGateway(name) {
    gateway = name;
    asked++;
    table = createCityTable(range);
    panel.clear(`Loading the values of ${name}…`);
  }

  /* The answer names gateways: this is a central node.  The first time,
   * show the gateway the URL names (it may have no values yet), else the first. */
  function foundGateways(names) {
    if (gateway === null) showGateway(config.gateway ?? names[0]);
    picker.show(names, gateway);
    refreshing ??= setInterval(() => { if (client.connected) loadAll(); }, config.refreshMs);
  }

  /* Asked for every gateway: the answer also says which there are. */
  async function loadLatest() {
    try {
      const result = await aimx.request('record.query', { name: mapping.recordPattern });
      const names = gatewaysIn(result.values);
      if (names) foundGateways(names);
      for (const row of result.values) {
        const city = mapping.cityFromRecord(row.record);
        if (city !== null && (gateway === null || row.gateway === gateway) &&
            table.applyLatest(city, row.value, row.stored_at))
          panel.showValue(city, row.value, row.stored_at);
      }
      panel.empty(gateway === null ? `No data yet: waiting for the first value on ${mapping.topicFilter}.`
                                   : `No values of ${gateway} yet.`);
    } catch (err) {
      if (err.code === 'disconnected') return; /* the next connect asks again */
      status.queryError('latest values', err);
      panel.failed(`Could not read the latest values: ${err.message}`);
    }
  }

  /* What the charts of the current range are drawn against, at `now`. */
  function view(now) {
    return { label: range.label, aggregate: range.every > 0, every: range.every,
             start: now - range.ms, end: now };
  }

  async function loadHistory() {
    const now = Date.now();
    const shown = range, mine = ++asked;
    windowEl.textContent = `· charts: ${rangeCaption(shown)}`;
    try {
      const params = historyParams(shown, mapping.recordPattern, now, historyPoints);
      const result = await aimx.request('record.query', gateway === null ? params : { ...params, gateway });
      if (mine !== asked) return;
      const byCity = pointsByCity(result.values, mapping, shown.every > 0);
      for (const city of new Set([...table.names(), ...byCity.keys()]))
        panel.showSeries(city, table.applyHistory(city, byCity.get(city) ?? [], now).series, view(now));
    } catch (err) {
      if (err.code === 'disconnected' || mine !== asked) return;
      status.queryError(`last ${shown.label}`, err);
      panel.seriesUnavailable(`history unavailable: ${err.message}`);
    }
  }

  /* The latest values first: on a central node they say which gateway the range is asked for. */
  async function loadAll() {
    await loadLatest();
    await loadHistory();
  }

  const picker = createGatewayPicker(document.getElementById('gateways'), (picked) => {
    showGateway(picked);
    if (client.connected) loadAll();
  });

  createRangePicker(document.getElementById('ranges'), range, (picked) => {
    range = picked;
    table.setRange(picked);
    panel.reloading(`loading the last ${picked.label}…`);
    if (client.connected) loadHistory();
  });

  client.on('connect', async () => {
    /* Asked again on every connection: a restarted broker may have no
     * gateway now, or this user may not be let read $SYS. */
    ownGateway = null;
    table.beginConnection();
    try {
      await client.subscribeAsync([replyTopic, mapping.topicFilter], { qos: 0 });
    } catch (err) { /* mqtt.js rejects when the broker refuses a filter (e.g. its ACL) */
      status.queryError('subscribe', { code: 'subscribe_failed', message: err.message });
      return;
    }
    /* Only a central node needs it, and a broker may not let us read $SYS. */
    client.subscribeAsync(OWN_GATEWAY_TOPIC, { qos: 0 }).catch(() => {});
    status.live(brokerUrl);
    loadAll();
  });

  client.on('message', (topic, payload) => {
    if (topic === replyTopic) return; /* aimx.js takes replies */
    if (topic === OWN_GATEWAY_TOPIC) {
      ownGateway = payload.length > 0 ? payload.toString() : null;
      return;
    }
    if (gateway !== null && gateway !== ownGateway) return; /* another gateway's cards (above) */
    const city = mapping.cityFromTopic(topic);
    if (city === null) return;
    const value = decodePayload(payload);
    const now = Date.now();
    const c = table.applyLive(city, value, valueNumber(value), now);
    panel.showValue(city, value, c.at, true);
    panel.showSeries(city, c.series, view(now));
  });

  client.on('close', () => {
    aimx.failAll('the connection to the broker closed');
    if (loginRefused) return; /* the form is up; nothing retries until it is sent */
    status.unreachable(brokerUrl);
    panel.loading('Waiting for the broker…');
  });

  client.on('error', (err) => {
    /* A refused connect (credentials, protocol) says why here; errors on a
     * live connection are not about reaching the broker. */
    if (client.connected) return;
    if (isRefusedLogin(err)) {
      loginRefused = true;
      status.login(brokerUrl, err.message);
      panel.loading('Sign in to see the values.');
      login.ask(client.options.username ? 'The broker refused that user and password.'
                                        : 'This broker takes no anonymous clients.');
    } else {
      status.unreachable(brokerUrl, err.message);
    }
  });
}

let config;
try {
  config = readConfig(window.location);
} catch (err) {
  createStatusBanner(document.getElementById('status')).configError(err.message);
}
if (config) start(config);
