/*
 * topics.js -- how a city's name links a live MQTT topic to its AimDB record.
 *
 * conf/aimdb.conf says `record accuracy::{1} weather/+/accuracy`: the record
 * name template takes the city from the topic's `+` segment.  The page needs
 * that mapping both ways: a live message on weather/vienna/accuracy updates
 * the card that the query answer filled from record accuracy::vienna.  The
 * dashboard supports exactly the shape it shows, one `+` feeding `{1}`; any
 * other shape is refused up front with a message, not mis-mapped later.
 */

/* A mapping between one topic filter and one record name template. */
export function makeCityMapping(topicFilter, recordTemplate) {
  const levels = topicFilter.split('/');
  const plus = levels.indexOf('+');
  if (plus < 0 || levels.indexOf('+', plus + 1) >= 0 || levels.includes('#'))
    throw new Error(`topic filter "${topicFilter}" must have exactly one "+" and no "#"`);
  const slot = recordTemplate.indexOf('{1}');
  if (slot < 0 || recordTemplate.indexOf('{1}', slot + 1) >= 0 || /\{[^1]|\*/.test(recordTemplate))
    throw new Error(`record template "${recordTemplate}" must contain "{1}" exactly once and nothing else to fill`);
  const prefix = recordTemplate.slice(0, slot);
  const suffix = recordTemplate.slice(slot + 3);

  return {
    topicFilter,
    /* The record.query pattern matching every city: `accuracy::*`. */
    recordPattern: `${prefix}*${suffix}`,

    /* The city a live topic carries, or null if the topic is not ours. */
    cityFromTopic(topic) {
      const parts = topic.split('/');
      if (parts.length !== levels.length) return null;
      for (let i = 0; i < levels.length; i++)
        if (i !== plus && parts[i] !== levels[i]) return null;
      return parts[plus] === '' ? null : parts[plus];
    },

    /* The city a record name carries, or null if the name is not ours. */
    cityFromRecord(name) {
      if (name.length <= prefix.length + suffix.length) return null;
      if (!name.startsWith(prefix) || !name.endsWith(suffix)) return null;
      return name.slice(prefix.length, name.length - suffix.length);
    },
  };
}
