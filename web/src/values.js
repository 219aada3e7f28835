/*
 * values.js -- turning a record value into the number the dashboard shows.
 *
 * Values reach the page two ways and must read the same: as JSON inside a
 * record.query answer (the plugin stored it with format=auto), and as raw
 * bytes of a live MQTT message.  decodePayload applies format=auto's rule to
 * the live bytes so both paths hand valueNumber the same JSON value.  A
 * device may send a bare number (`91.5`) or an object; for an object the
 * number is its "accuracy" or "value" member, else its only numeric member.
 * Anything else has no number: the card then shows the raw JSON instead of
 * inventing one.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true });

/* format=auto: JSON as is, other UTF-8 as a string, other bytes as {base64}. */
export function decodePayload(bytes) {
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return { base64: btoa(binary) };
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function finite(x) {
  if (typeof x === 'number') return Number.isFinite(x) ? x : null;
  if (typeof x === 'string' && x.trim() !== '') {
    const n = Number(x);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/* The number a value stands for, or null if it has none. */
export function valueNumber(value) {
  const direct = finite(value);
  if (direct !== null || value === null || typeof value !== 'object' || Array.isArray(value))
    return direct;
  for (const key of ['accuracy', 'value']) {
    const n = finite(value[key]);
    if (n !== null) return n;
  }
  const numeric = Object.values(value).filter((v) => typeof v === 'number' && Number.isFinite(v));
  return numeric.length === 1 ? numeric[0] : null;
}

/* What a card prints: the number to two decimals at most, else the text
 * (a device's "n/a" reads as n/a, not as JSON), else short JSON. */
export function formatValue(value) {
  const n = valueNumber(value);
  if (n !== null) return n.toLocaleString('en-US', { maximumFractionDigits: 2 });
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
