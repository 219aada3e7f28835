/*
 * links_in.c -- messages from the broker into records: inbound links,
 * handlers, and the subscriptions that feed them.
 *
 * Routing is aimdb.conf's: the router tries the links in order and the
 * first whose filter matches names the record.  The broker, though, sends
 * a message once per matching subscription (Mosquitto does, for
 * overlapping filters such as "a/+" and "a/#"), so every distinct filter is
 * subscribed with its own MQTT v5 subscription identifier and a message is
 * taken only from the subscription of the link (or handler) that owns it.
 * A broker that sends no identifiers gets no such check.
 *
 * An identifier is a hash of its filter, not a counter, because a
 * persistent session (session_expiry_s) outlives the process: the broker
 * may still hold a subscription of an earlier configuration, and its
 * messages must carry an identifier no current filter has.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/gateway.h"
#include "aimdb/payload.h"
#include "connector_internal.h"

/* -------------------------------------------------------- subscriptions */

void subscriptions_free(subscription *s, size_t n) {
    for (size_t i = 0; i < n; i++) free(s[i].filter);
    free(s);
}

static subscription *find_subscription(subscription *subs, size_t n, const char *filter) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].filter, filter) == 0) return &subs[i];
    return NULL;
}

#define SUB_ID_MAX 268435455 /* MQTT v5: a Variable Byte Integer, 1 .. 2^28-1 */

static bool id_taken(const subscription *subs, size_t n, int id) {
    for (size_t i = 0; i < n; i++)
        if (subs[i].id == id) return true;
    return false;
}

/* FNV-1a of the filter in 1 .. SUB_ID_MAX, stepped past ids already in
 * use (a collision between current filters is possible, only unlikely). */
static int id_for_filter(const char *filter, const subscription *subs, size_t n) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)filter; *p; p++) h = (h ^ *p) * 16777619u;
    int id = (int)(h % SUB_ID_MAX) + 1;
    while (id_taken(subs, n, id)) id = id % SUB_ID_MAX + 1;
    return id;
}

/* The id of filter in *subs, adding it if new.  -1 on ENOMEM. */
int subscription_id(subscription **subs, size_t *n, const char *filter, int qos) {
    subscription *s = find_subscription(*subs, *n, filter);
    if (s) {
        if (qos > s->qos) s->qos = qos;
        return s->id;
    }
    subscription *grown = realloc(*subs, (*n + 1) * sizeof(**subs));
    if (!grown) return -1;
    *subs = grown;
    s = &grown[*n];
    if (!(s->filter = strdup(filter))) return -1;
    s->qos = qos;
    s->id = id_for_filter(filter, grown, *n);
    (*n)++;
    return s->id;
}

int links_in_snapshot_locked(aimdb_connector *c, subscription **out, size_t *n) {
    size_t count = c->n_subs;
    subscription *copy = calloc(count + 1, sizeof(*copy));
    size_t i = 0;
    for (; copy && i < count; i++) {
        copy[i] = c->subs[i];
        if (!(copy[i].filter = strdup(c->subs[i].filter))) break;
    }
    if (!copy || i < count) {
        if (copy) subscriptions_free(copy, i);
        *out = NULL;
        *n = 0;
        return AIMDB_ENOMEM;
    }
    *out = copy;
    *n = count;
    return AIMDB_OK;
}

/* ------------------------------------------------------ unsubscribes */

/* Filters the links no longer use are unsubscribed when a session is up to
 * take it; while down they wait here (a persistent session would otherwise
 * keep them, and the broker queue their traffic).  links_lock held. */
static void forget_unsubscribe(aimdb_connector *c, const char *filter) {
    for (size_t i = 0; i < c->n_unsubs; i++) {
        if (strcmp(c->unsubs[i], filter) != 0) continue;
        free(c->unsubs[i]);
        c->unsubs[i] = c->unsubs[--c->n_unsubs];
        return;
    }
}

static void queue_unsubscribe(aimdb_connector *c, const char *filter) {
    for (size_t i = 0; i < c->n_unsubs; i++)
        if (strcmp(c->unsubs[i], filter) == 0) return;
    char **grown = realloc(c->unsubs, (c->n_unsubs + 1) * sizeof(*grown));
    char *copy = grown ? strdup(filter) : NULL;
    if (grown) c->unsubs = grown;
    if (copy) c->unsubs[c->n_unsubs++] = copy; /* else: only costs unrouted messages */
}

void links_in_take_unsubscribes(aimdb_connector *c, char ***out, size_t *n) {
    *out = c->unsubs;
    *n = c->n_unsubs;
    c->unsubs = NULL;
    c->n_unsubs = 0;
}

/* Send the queued unsubscribes if a session is up to take them. */
static void flush_unsubscribes(aimdb_connector *c) {
    if (!connector_is_up(c)) return; /* on_connected sends them */
    char **gone;
    size_t n;
    pthread_rwlock_wrlock(&c->links_lock);
    links_in_take_unsubscribes(c, &gone, &n);
    pthread_rwlock_unlock(&c->links_lock);
    for (size_t i = 0; i < n; i++) {
        connector_unsubscribe(c, gone[i]);
        free(gone[i]);
    }
    free(gone);
}

/* -------------------------------------------------------------- links */

static void inbound_free(inbound *in) {
    for (size_t i = 0; i < in->n_links; i++) {
        free(in->links[i].filter);
        free(in->links[i].name_template);
    }
    free(in->links);
    aimdb_router_free(in->router);
    memset(in, 0, sizeof(*in));
}

/* Build links and the router from the caller's specs; subscriptions go into
 * *subs (which already holds the handlers'). */
static int inbound_build(const aimdb_link_in *specs, size_t n, inbound *in,
                         subscription **subs, size_t *n_subs, char *err, size_t errlen) {
    memset(in, 0, sizeof(*in));
    in->router = aimdb_router_new();
    in->links = calloc(n + 1, sizeof(*in->links));
    if (!in->router || !in->links) goto nomem;
    for (size_t i = 0; i < n; i++, in->n_links++) {
        const aimdb_link_in *s = &specs[i];
        link_in *l = &in->links[i];
        char why[256];
        if (!s->filter || !s->name_template || s->qos < 0 || s->qos > 2) {
            snprintf(err, errlen, "link %zu: needs a filter, a name template and QoS 0-2", i + 1);
            inbound_free(in);
            return AIMDB_EINVAL;
        }
        int rc = aimdb_router_add(in->router, s->filter, s->name_template, why, sizeof(why));
        if (rc != AIMDB_OK) {
            snprintf(err, errlen, "link %zu (%s -> %s): %s", i + 1, s->filter, s->name_template,
                     rc == AIMDB_ENOMEM ? "out of memory" : why);
            inbound_free(in);
            return rc;
        }
        l->filter = strdup(s->filter);
        l->name_template = strdup(s->name_template);
        l->open = s->open;
        l->open_ctx = s->open_ctx;
        l->buffer = s->buffer.kind || s->buffer.capacity ? s->buffer : AIMDB_BUFFER_DEFAULT;
        l->codec = s->codec ? s->codec : &aimdb_codec_mqtt_auto;
        l->sub_id = subscription_id(subs, n_subs, s->filter, s->qos);
        if (!l->filter || !l->name_template || l->sub_id < 0) {
            in->n_links++;
            goto nomem;
        }
    }
    return AIMDB_OK;
nomem:
    inbound_free(in);
    snprintf(err, errlen, "out of memory");
    return AIMDB_ENOMEM;
}

int aimdb_connector_set_links_in(aimdb_connector *c, const aimdb_link_in *links, size_t n,
                                 char *err, size_t errlen) {
    subscription *subs = NULL;
    size_t n_subs = 0;
    inbound in;
    int rc = AIMDB_OK;
    pthread_rwlock_wrlock(&c->links_lock);
    for (size_t i = 0; i < c->n_handlers && rc == AIMDB_OK; i++)
        if (subscription_id(&subs, &n_subs, c->handlers[i].filter, c->handlers[i].qos) < 0)
            rc = AIMDB_ENOMEM;
    if (rc == AIMDB_OK) rc = inbound_build(links, n, &in, &subs, &n_subs, err, errlen);
    else snprintf(err, errlen, "out of memory");
    if (rc != AIMDB_OK) {
        pthread_rwlock_unlock(&c->links_lock);
        subscriptions_free(subs, n_subs);
        return rc;
    }
    inbound old = c->in;
    subscription *old_subs = c->subs;
    size_t old_n = c->n_subs;
    c->in = in;
    c->subs = subs;
    c->n_subs = n_subs;
    for (size_t i = 0; i < n_subs; i++) forget_unsubscribe(c, subs[i].filter);
    for (size_t i = 0; i < old_n; i++)
        if (!find_subscription(subs, n_subs, old_subs[i].filter))
            queue_unsubscribe(c, old_subs[i].filter);
    pthread_rwlock_unlock(&c->links_lock);

    /* From here on messages route by the new links; bring the broker's
     * subscriptions in step (a live session only: a new one subscribes to
     * everything in c->subs and sends the queued unsubscribes). */
    flush_unsubscribes(c);
    for (size_t i = 0; i < n_subs; i++) {
        const subscription *was = find_subscription(old_subs, old_n, subs[i].filter);
        if (!was || was->qos != subs[i].qos || was->id != subs[i].id)
            connector_subscribe(c, subs[i].filter, subs[i].qos, subs[i].id);
    }
    subscriptions_free(old_subs, old_n);
    inbound_free(&old);
    return AIMDB_OK;
}

int aimdb_connector_handle(aimdb_connector *c, const char *filter, int qos, aimdb_message_fn fn,
                           void *ctx, char *err, size_t errlen) {
    char why[256];
    if (c->started) {
        snprintf(err, errlen, "handlers are added before the connector starts");
        return AIMDB_ESTATE;
    }
    if (!fn || qos < 0 || qos > 2 || aimdb_topic_filter_check(filter, why, sizeof(why))) {
        snprintf(err, errlen, "handler on '%s': %s", filter ? filter : "",
                 fn && qos >= 0 && qos <= 2 ? why : "needs a callback and QoS 0-2");
        return AIMDB_EINVAL;
    }
    handler *grown = realloc(c->handlers, (c->n_handlers + 1) * sizeof(*grown));
    if (!grown) goto nomem;
    c->handlers = grown;
    handler *h = &grown[c->n_handlers];
    *h = (handler){.filter = strdup(filter), .qos = qos, .fn = fn, .ctx = ctx};
    if (!h->filter) goto nomem;
    pthread_rwlock_wrlock(&c->links_lock);
    h->sub_id = subscription_id(&c->subs, &c->n_subs, filter, qos);
    pthread_rwlock_unlock(&c->links_lock);
    if (h->sub_id < 0) {
        free(h->filter);
        goto nomem;
    }
    c->n_handlers++;
    return AIMDB_OK;
nomem:
    snprintf(err, errlen, "out of memory");
    return AIMDB_ENOMEM;
}

void links_in_free(aimdb_connector *c) {
    inbound_free(&c->in);
    for (size_t i = 0; i < c->n_unsubs; i++) free(c->unsubs[i]);
    free(c->unsubs);
    c->unsubs = NULL;
    c->n_unsubs = 0;
    subscriptions_free(c->subs, c->n_subs);
    for (size_t i = 0; i < c->n_handlers; i++) free(c->handlers[i].filter);
    free(c->handlers);
    c->subs = NULL;
    c->n_subs = 0;
    c->handlers = NULL;
    c->n_handlers = 0;
}

/* ------------------------------------------------------------ delivery */

/* Did the subscription `id` deliver this copy of the message? */
static bool delivered_by(const MQTTAsync_message *m, int id) {
    MQTTProperties *props = (MQTTProperties *)&m->properties;
    int n = MQTTProperties_propertyCount(props, MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER);
    if (n == 0) return true; /* the broker sends none: nothing to tell copies apart */
    for (int i = 0; i < n; i++)
        if (MQTTProperties_getNumericValueAt(props, MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER,
                                             i) == id)
            return true;
    return false;
}

static const char *property_text(const MQTTAsync_message *m, enum MQTTPropertyCodes code,
                                 size_t *len) {
    MQTTProperty *p = MQTTProperties_getProperty((MQTTProperties *)&m->properties, code);
    if (!p) return NULL;
    *len = (size_t)p->value.data.len;
    return p->value.data.data;
}

static void deliver_to_handler(const handler *h, const char *topic, const MQTTAsync_message *m) {
    size_t rt_len = 0, corr_len = 0;
    const char *rt = property_text(m, MQTTPROPERTY_CODE_RESPONSE_TOPIC, &rt_len);
    const char *corr = property_text(m, MQTTPROPERTY_CODE_CORRELATION_DATA, &corr_len);
    char *response_topic = rt ? strndup(rt, rt_len) : NULL; /* Paho's is not NUL-terminated */
    aimdb_mqtt_message msg = {
        .topic = topic,
        .payload = m->payload,
        .len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
        .qos = m->qos,
        .retain = m->retained,
        .response_topic = response_topic,
        .correlation = corr,
        .correlation_len = corr_len,
    };
    h->fn(&msg, h->ctx);
    free(response_topic);
}

/* aimdb_gateway_ingest's view of one delivered message. */
typedef struct delivery {
    aimdb_connector *c;
    const MQTTAsync_message *m;
} delivery;

/* The record of a link's name: found, or opened as the link says.  No
 * source: the bridge applies no ACLs, so its values need none. */
static int record_for(void *ctx, size_t link, const char *name, const char *topic,
                      aimdb_record **out, const char **source) {
    aimdb_connector *c = ((delivery *)ctx)->c;
    const link_in *l = &c->in.links[link];
    (void)topic;
    *source = NULL;
    if ((*out = aimdb_db_find(c->db, name))) return AIMDB_OK;
    if (l->open) return l->open(name, link, l->open_ctx, out);
    return aimdb_record_register(c->db, name, &l->buffer, l->codec, out);
}

static bool owns(void *ctx, size_t link) {
    delivery *d = ctx;
    return delivered_by(d->m, d->c->in.links[link].sub_id);
}

/* Through the relay: producing here would wake a tap worker per message
 * from Paho's thread (the bridge's profile said so). */
static void deliver_to_record(aimdb_connector *c, const char *topic, size_t topic_len,
                              const MQTTAsync_message *m) {
    delivery d = {c, m};
    const aimdb_ingest in = {
        .router = c->in.router,
        .relay = c->relay,
        .max_payload = aimdb_db_max_value_bytes(c->db),
        .record_for = record_for,
        .owns = owns,
        .ctx = &d,
    };
    const aimdb_ingest_message msg = {
        .topic = topic,
        .topic_len = topic_len,
        .payload = m->payload,
        .len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
        .ts_ms = c->rt->now_ms(c->rt->self),
    };
    const char *why;
    switch (aimdb_gateway_ingest(&in, &msg, &why)) {
    case AIMDB_INGEST_QUEUED: c->stats.produced++; break;
    case AIMDB_INGEST_UNROUTED: c->stats.unrouted++; break;
    case AIMDB_INGEST_NOT_OURS: c->stats.duplicates++; break;
    case AIMDB_INGEST_DROPPED: connector_note_drop(c, topic, why); break;
    }
}

void links_in_deliver(aimdb_connector *c, const char *topic, size_t topic_len,
                      const MQTTAsync_message *m) {
    pthread_rwlock_rdlock(&c->links_lock);
    const handler *h = NULL;
    for (size_t i = 0; i < c->n_handlers && !h; i++)
        if (aimdb_topic_matches(c->handlers[i].filter, topic, topic_len, NULL))
            h = &c->handlers[i];
    if (h) {
        if (delivered_by(m, h->sub_id)) deliver_to_handler(h, topic, m);
        else c->stats.duplicates++;
    } else {
        deliver_to_record(c, topic, topic_len, m);
    }
    pthread_rwlock_unlock(&c->links_lock);
}
