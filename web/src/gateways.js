/*
 * gateways.js -- which gateway's values the page shows on a central node.
 *
 * A node whose history is PostgreSQL (`database postgresql://...`) holds
 * the rows of many gateways and names each value's gateway in record.query
 * answers (docs/protocol.md, Fleet history); a node with its own SQLite
 * history names none.  The page learns which kind it talks to, and which
 * gateways there are, from the latest values it asks for on every connect
 * anyway: no other request.  On a fleet node it shows one gateway at a
 * time, so a city's chart is one site's line, never several sites' values
 * in one: the gateway the URL names (?gateway=), else the first by name,
 * until the reader picks another.
 */

/* The gateways named in record.query rows, by name; null if no row names one. */
export function gatewaysIn(rows) {
  const names = new Set();
  for (const row of rows) if (typeof row.gateway === 'string') names.add(row.gateway);
  return names.size ? [...names].sort() : null;
}

/* The choice in `root` (a hidden element holding a <select>); onPick(name)
 * when the reader picks another gateway. */
export function createGatewayPicker(root, onPick) {
  const select = root.querySelector('select');
  select.addEventListener('change', () => onPick(select.value));
  return {
    /* Offer `names` (and `current`, which may have no values), `current` chosen. */
    show(names, current) {
      const offered = names.includes(current) ? names : [...names, current].sort();
      if ([...select.options].map((o) => o.value).join('\n') !== offered.join('\n'))
        select.replaceChildren(...offered.map((name) => new Option(name, name)));
      select.value = current;
      root.hidden = false;
    },
  };
}
