/*
 * ingest.c -- one MQTT message on its way to a record: the steps the
 * Mosquitto plugin (every message of its broker) and the connector (every
 * message Paho delivers to aimdb-bridge) take alike, so the rule for which
 * messages are recorded and which are dropped lives here once.
 *
 * Route the topic (a name too long for the stack is routed again into a
 * buffer of its size), drop what no value may be (an empty name, a payload
 * over max_payload: not worth copying), find or open the record through
 * the caller (AIMDB_EFULL: a record cap is reached), and hand a copy to
 * the relay stamped with the time it arrived.  The caller counts and logs
 * the outcome: each program has its own counters and its own way to log
 * from the thread it runs on.  Nothing here waits or locks beyond what the
 * caller's record_for does, so it may run on the broker thread.
 */
#include <stdlib.h>

#include "aimdb/gateway.h"

#define NAME_ON_STACK 256

/* A routed message's payload to its record's relay. */
static aimdb_ingest_result record_value(const aimdb_ingest *in, size_t rule, const char *name,
                                        const aimdb_ingest_message *m, const char **why) {
    aimdb_record *rec;
    const char *source = NULL;
    int rc = in->record_for(in->ctx, rule, name, m->topic, &rec, &source);
    if (rc != AIMDB_OK) {
        *why = rc == AIMDB_EFULL ? aimdb_strerror(rc) : "its record cannot be opened";
        return AIMDB_INGEST_DROPPED;
    }
    const void *payload = m->len ? m->payload : ""; /* never NULL */
    rc = aimdb_relay_push(in->relay, rec, payload, m->len, m->ts_ms, source);
    if (rc == AIMDB_OK) return AIMDB_INGEST_QUEUED;
    *why = aimdb_strerror(rc);
    return AIMDB_INGEST_DROPPED;
}

aimdb_ingest_result aimdb_gateway_ingest(const aimdb_ingest *in, const aimdb_ingest_message *m,
                                         const char **why) {
    char stack_name[NAME_ON_STACK], *name = stack_name;
    aimdb_route route;
    int rc = aimdb_router_route(in->router, m->topic, m->topic_len, name, sizeof(stack_name),
                                &route);
    if (rc == AIMDB_ENOTFOUND) return AIMDB_INGEST_UNROUTED;
    /* Any other outcome names route.rule: the rule that owns the topic. */
    if (in->owns && !in->owns(in->ctx, route.rule)) return AIMDB_INGEST_NOT_OURS;
    if (rc == AIMDB_ETOOBIG) {
        if (!(name = malloc(route.name_len + 1))) {
            *why = "out of memory";
            return AIMDB_INGEST_DROPPED;
        }
        rc = aimdb_router_route(in->router, m->topic, m->topic_len, name, route.name_len + 1,
                                &route);
    }
    aimdb_ingest_result result = AIMDB_INGEST_DROPPED;
    if (rc != AIMDB_OK) *why = "its rule makes an empty record name";
    else if (m->len > in->max_payload) *why = "larger than max_payload";
    else result = record_value(in, route.rule, name, m, why);
    if (name != stack_name) free(name);
    return result;
}
