/*
 * ingest.c -- MOSQ_EVT_MESSAGE: every PUBLISH the broker accepts, routed to
 * its record.
 *
 * This runs on the broker thread for every message, so it does only what
 * cannot wait: route the topic (O(1) for exact filters), find the record
 * (a hash lookup; a record is opened on the first value of a new name),
 * and hand a copy of the payload, stamped with the time it arrived, to the
 * relay (aimdb/relay.h), which produces it.  Serialising to JSON, persisting and
 * committing happen on aimdb's threads.  The message itself is never
 * altered or refused: the callback always returns success, so a device's
 * traffic flows exactly as it would without the plugin.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define NAME_ON_STACK 256
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

/* A routed message's payload, stamped with its arrival, to the relay. */
static void record_value(plugin *pl, const aimdb_ruleset *rs, size_t rule, const char *name,
                         const struct mosquitto_evt_message *ev) {
    catalog_entry *e;
    int rc = record_for(pl, rs, rule, name, ev->topic, &e);
    if (rc != AIMDB_OK) {
        note_drop(pl, ev->topic,
                  rc == AIMDB_EFULL ? aimdb_strerror(rc) : "its record cannot be opened");
        return;
    }
    const void *payload = ev->payloadlen ? ev->payload : ""; /* never NULL */
    int64_t now = pl->runtime.now_ms(pl->runtime.self);
    /* The topic travels with the value: who may see it is decided by it
     * (acl.c), and history stores it. */
    rc = aimdb_relay_push(pl->relay, e->record, payload, ev->payloadlen, now,
                          records_source(e, ev->topic));
    if (rc == AIMDB_OK) pl->counters.routed++;
    else note_drop(pl, ev->topic, aimdb_strerror(rc));
}

static void ingest(plugin *pl, const struct mosquitto_evt_message *ev) {
    const aimdb_ruleset *rs = pl->rules;
    size_t topic_len = strlen(ev->topic);
    char stack_name[NAME_ON_STACK], *name = stack_name;
    aimdb_route route;
    int rc = aimdb_router_route(rs->router, ev->topic, topic_len, name, sizeof(stack_name), &route);
    if (rc == AIMDB_ENOTFOUND) {
        pl->counters.unrouted++;
        return;
    }
    if (rc == AIMDB_ETOOBIG) {
        if (!(name = malloc(route.name_len + 1))) {
            note_drop(pl, ev->topic, "out of memory");
            return;
        }
        rc = aimdb_router_route(rs->router, ev->topic, topic_len, name, route.name_len + 1,
                                &route);
    }
    if (rc != AIMDB_OK) {
        note_drop(pl, ev->topic, "its rule makes an empty record name");
    } else if (ev->payloadlen > pl->gw.max_payload) {
        note_drop(pl, ev->topic, "larger than max_payload"); /* not worth copying */
    } else {
        record_value(pl, rs, route.rule, name, ev);
    }
    if (name != stack_name) free(name);
}

int ingest_on_message(int event, void *event_data, void *userdata) {
    (void)event;
    ingest(userdata, event_data);
    return MOSQ_ERR_SUCCESS;
}
