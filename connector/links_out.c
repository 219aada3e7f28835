/*
 * links_out.c -- records' values published to the broker.
 *
 * Each outbound link reads its record through an ordinary reader, so while
 * the broker is away the values wait in the record's buffer with exactly
 * its semantics (a ring keeps the last N and reports how many it lost,
 * latest keeps the newest) and nothing else queues up.  A tap on the record
 * does no work of its own: it only wakes the session thread, which drains
 * every reader while the session is up.  Producers therefore never wait
 * for the network, and a tap worker never waits for it either.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector_internal.h"

struct link_out {
    aimdb_connector *c;
    aimdb_record *rec;
    aimdb_reader *reader;
    char *topic;
    int qos;
    bool retain;
    aimdb_serialize_fn serialize;
    void *ctx;
};

static void wake_on_value(const aimdb_value *v, void *ctx) {
    (void)v;
    link_out *l = ctx;
    connector_wake(l->c);
}

static const aimdb_tap_ops wake_tap = {.on_value = wake_on_value};

int aimdb_connector_link_out(aimdb_connector *c, aimdb_record *rec, const char *topic, int qos,
                             bool retain, aimdb_serialize_fn serialize, void *ctx, char *err,
                             size_t errlen) {
    char why[256] = "no topic";
    if (c->started) {
        snprintf(err, errlen, "outbound links are added before the connector starts");
        return AIMDB_ESTATE;
    }
    if (!topic || aimdb_topic_name_check(topic, strlen(topic), why, sizeof(why)) != AIMDB_OK ||
        qos < 0 || qos > 2) {
        snprintf(err, errlen, "outbound link of %s to '%s': %s", aimdb_record_name(rec),
                 topic ? topic : "", qos < 0 || qos > 2 ? "QoS must be 0, 1 or 2" : why);
        return AIMDB_EINVAL;
    }
    link_out **grown = realloc(c->outs, (c->n_outs + 1) * sizeof(*grown));
    if (!grown) goto nomem;
    c->outs = grown;
    link_out *l = calloc(1, sizeof(*l));
    if (!l) goto nomem;
    *l = (link_out){.c = c, .rec = rec, .topic = strdup(topic), .qos = qos, .retain = retain,
                    .serialize = serialize, .ctx = ctx};
    int rc = l->topic ? aimdb_reader_open(rec, &l->reader) : AIMDB_ENOMEM;
    if (rc == AIMDB_OK) rc = aimdb_tap_add(rec, &wake_tap, l, NULL);
    if (rc != AIMDB_OK) {
        if (l->reader) aimdb_reader_close(l->reader);
        free(l->topic);
        free(l);
        snprintf(err, errlen, "outbound link of %s: %s", aimdb_record_name(rec),
                 aimdb_strerror(rc));
        return rc;
    }
    c->outs[c->n_outs++] = l;
    return AIMDB_OK;
nomem:
    snprintf(err, errlen, "out of memory");
    return AIMDB_ENOMEM;
}

/* The JSON or custom bytes for v in c->out_buf (their length), or -1 to
 * skip the value.  *raw: publish v's own bytes instead. */
static long serialize(aimdb_connector *c, const link_out *l, const aimdb_value *v, bool *raw) {
    const aimdb_codec *codec = aimdb_record_codec(l->rec);
    *raw = !l->serialize && codec->size == 0;
    if (*raw) return (long)v->len;
    for (;;) {
        long n = l->serialize ? l->serialize(v, c->out_buf, c->out_cap, l->ctx)
                              : codec->to_json(v->data, v->len, c->out_buf, c->out_cap);
        if (n < 0) return -1; /* any negative: skip */
        if ((size_t)n < c->out_cap) return n;
        char *grown = realloc(c->out_buf, (size_t)n + 1);
        if (!grown) return -1;
        c->out_buf = grown;
        c->out_cap = (size_t)n + 1;
    }
}

/* A value read from the reader is gone from it: if it cannot be handed to
 * Paho (the session dropped in between, or Paho refused), it is lost and
 * counted so, like a value a ring overwrote. */
static void publish_value(aimdb_connector *c, const link_out *l, const aimdb_value *v) {
    bool raw;
    long n = serialize(c, l, v, &raw);
    if (n < 0) {
        c->stats.publish_failed++;
        return;
    }
    aimdb_mqtt_message m = {
        .topic = l->topic,
        .payload = raw ? v->data : c->out_buf,
        .len = (size_t)n,
        .qos = l->qos,
        .retain = l->retain,
    };
    if (aimdb_connector_publish(c, &m) != AIMDB_OK) c->stats.lost++;
}

void links_out_drain(aimdb_connector *c) {
    for (size_t i = 0; i < c->n_outs && connector_is_up(c); i++) {
        link_out *l = c->outs[i];
        aimdb_value v;
        uint64_t missed = 0;
        int rc;
        while ((rc = aimdb_reader_try_recv(l->reader, &v, &missed)) != AIMDB_EAGAIN) {
            if (rc == AIMDB_LAGGED) {
                c->stats.lost += missed;
                aimdb_log(c->rt, AIMDB_LOG_WARNING,
                          "connector: %llu value(s) of %s were overwritten before they could be "
                          "published to %s", (unsigned long long)missed, aimdb_record_name(l->rec),
                          l->topic);
                continue;
            }
            if (rc != AIMDB_OK) break; /* stopped */
            publish_value(c, l, &v);
            if (!connector_is_up(c)) break; /* the rest waits in the record's buffer */
        }
    }
}

void links_out_free(aimdb_connector *c) {
    for (size_t i = 0; i < c->n_outs; i++) {
        aimdb_reader_close(c->outs[i]->reader);
        free(c->outs[i]->topic);
        free(c->outs[i]);
    }
    free(c->outs);
    free(c->out_buf);
    c->outs = NULL;
    c->n_outs = 0;
}
