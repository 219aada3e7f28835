/*
 * ingest.c -- MOSQ_EVT_MESSAGE: every PUBLISH the broker accepts, routed to
 * its record.
 *
 * This runs on the broker thread for every message, so it does only what
 * cannot wait: aimdb_gateway_ingest (gateway.h, shared with aimdb-bridge)
 * routes the topic (O(1) for exact filters), finds the record here (a hash
 * lookup; a record is opened on the first value of a new name), and hands
 * a copy of the payload, stamped with the time it arrived, to the relay
 * (aimdb/relay.h), which produces it.  Serialising to JSON, persisting and
 * committing happen on aimdb's threads.  The message itself is never
 * altered or refused: the callback always returns success, so a device's
 * traffic flows exactly as it would without the plugin.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define DROP_LOG_INTERVAL_MS 10000

static void note_drop(plugin *pl, const char *topic, const char *why) {
    pl->counters.dropped++;
    uint64_t held = 0;
    if (aimdb_log_limit_pass(&pl->drop_log, aimdb_monotonic_ms(), DROP_LOG_INTERVAL_MS, &held))
        plugin_log(pl, AIMDB_LOG_WARNING,
                   "message on '%s' not recorded: %s (%llu similar since the last report)",
                   topic, why, (unsigned long long)held);
}

/* The record of a routed name, opened on its first value.  Two rules can
 * produce the same name with different options; the first to open the
 * record decides them, and the disagreement is logged once.  Past
 * max_records a new name is refused under the registry's read lock, which
 * only a new record's registration holds exclusively -- and none can be
 * registered then. */
static int record_for(plugin *pl, const aimdb_ruleset *rs, size_t rule, const char *name,
                      const char *topic, catalog_entry **out) {
    catalog_entry *e = catalog_find(pl->catalog, name);
    if (e && e->record) {
        if (!e->warned_conflict && rs->options[rule].codec != e->options.codec) {
            e->warned_conflict = true;
            plugin_log(pl, AIMDB_LOG_WARNING,
                       "record %s gets values from aimdb.conf:%u, which says another format "
                       "than the rule that opened it (line %u); it keeps the first rule's format",
                       name, rs->options[rule].line, e->options.line);
        }
    } else {
        int rc = records_open_routed(pl, rs, rule, name, topic, &e);
        if (rc != AIMDB_OK) return rc;
    }
    *out = e;
    return AIMDB_OK;
}

/* aimdb_ingest.record_for: the catalog's record, and the value's source:
 * the topic travels with the value, since who may see it is decided by it
 * (acl.c), and history stores it. */
static int record_with_source(void *ctx, size_t rule, const char *name, const char *topic,
                              aimdb_record **rec, const char **source) {
    plugin *pl = ctx;
    catalog_entry *e;
    int rc = record_for(pl, pl->rules, rule, name, topic, &e);
    if (rc != AIMDB_OK) return rc;
    *rec = e->record;
    *source = records_source(e, topic);
    return AIMDB_OK;
}

static void ingest(plugin *pl, const struct mosquitto_evt_message *ev) {
    const aimdb_ingest in = {
        .router = pl->rules->router,
        .relay = pl->relay,
        .max_payload = pl->gw.max_payload,
        .record_for = record_with_source,
        .ctx = pl,
    };
    const aimdb_ingest_message m = {
        .topic = ev->topic,
        .topic_len = strlen(ev->topic),
        .payload = ev->payload,
        .len = ev->payloadlen,
        .ts_ms = pl->runtime.now_ms(pl->runtime.self),
    };
    const char *why;
    switch (aimdb_gateway_ingest(&in, &m, &why)) {
    case AIMDB_INGEST_QUEUED: pl->counters.routed++; break;
    case AIMDB_INGEST_UNROUTED: pl->counters.unrouted++; break;
    case AIMDB_INGEST_NOT_OURS: break; /* no owns(): the broker delivers each message once */
    case AIMDB_INGEST_DROPPED: note_drop(pl, ev->topic, why); break;
    }
}

int ingest_on_message(int event, void *event_data, void *userdata) {
    (void)event;
    ingest(userdata, event_data);
    return MOSQ_ERR_SUCCESS;
}
