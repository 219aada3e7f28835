/*
 * connector.c -- one MQTT v5 session on Paho's asynchronous client that
 * stays up by itself (see connector.h).
 *
 * Paho can reconnect on its own, but only after a first success, and it
 * says nothing about why an attempt failed.  A daemon must also survive a
 * broker that is not up yet and tell its operator why, so the session
 * thread here owns the whole cycle: connect, and on failure wait with
 * exponential backoff (retry_min_ms doubling up to retry_max_ms, reset by a
 * session that came up), logging each failure with the TCP probe's reason.
 * The same thread publishes outbound values, only while the session is up,
 * so during an outage they wait in their records' buffers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connector_internal.h"

#define DEFAULT_KEEPALIVE_S 30
#define DEFAULT_RETRY_MIN_MS 500
#define DEFAULT_RETRY_MAX_MS 30000
#define IDLE_WAIT_MS 1000
#define CONNECT_TIMEOUT_S 10 /* a silent host: TCP, TLS and CONNACK together */
#define PROBE_TIMEOUT_MS 2000
#define DISCONNECT_TIMEOUT_MS 2000
#define DROP_LOG_INTERVAL_MS 10000
#define MQTT_MAX_PAYLOAD 268435455u /* a PUBLISH's whole Remaining Length */
#define MQTT_MAX_STRING 65535u      /* a property's two-byte length */

/* Waits are measured on the monotonic clock: a wall-clock step must not
 * stall reconnects. */
static void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ms) {
    struct timespec deadline = aimdb_monotonic_deadline_in(ms);
    pthread_cond_timedwait(cond, lock, &deadline);
}

/* ------------------------------------------------------------ options */

static int copy_option(char **dst, const char *src) {
    if (!src) return AIMDB_OK;
    return (*dst = strdup(src)) ? AIMDB_OK : AIMDB_ENOMEM;
}

/* --------------------------------------------------------- callbacks */

static void on_connection_lost(void *ctx, char *cause) {
    aimdb_connector *c = ctx;
    pthread_mutex_lock(&c->lock);
    bool was_up = c->state == SESSION_UP;
    c->state = SESSION_DOWN;
    c->subs_pending = 0;
    c->backoff_ms = c->retry_min_ms;
    c->next_attempt_ms = aimdb_monotonic_ms() + c->backoff_ms;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (was_up) {
        c->stats.disconnects++;
        aimdb_log(c->rt, AIMDB_LOG_WARNING, "connector: lost the connection to %s%s%s; "
                  "reconnecting", c->url.uri, cause ? ": " : "", cause ? cause : "");
    }
}

/* Hand a message on, unless it is a QoS 1/2 message taken before that the
 * broker sends again (redelivery.c). */
static void take(aimdb_connector *c, const char *topic, size_t len, const MQTTAsync_message *m) {
    if (m->qos == 0) {
        links_in_deliver(c, topic, len, m);
        return;
    }
    uint64_t key = redelivery_key(m->msgid, topic, len, m->payload,
                                  m->payloadlen > 0 ? (size_t)m->payloadlen : 0);
    if ((m->dup || m->qos == 2) && redelivery_seen(&c->redelivery, key)) {
        c->stats.redelivered++;
        return;
    }
    links_in_deliver(c, topic, len, m);
    redelivery_note(&c->redelivery, key);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m) {
    aimdb_connector *c = ctx;
    /* delivering before closed, stop sets closed before it waits for
     * delivering == 0 (both seq_cst): a message either finishes before
     * stop returns or sees closed and is dropped, never touching a
     * database that may be freed after stop. */
    c->delivering++;
    if (!c->closed) {
        c->stats.received++;
        take(c, topic, topic_len > 0 ? (size_t)topic_len : strlen(topic), m);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    c->delivering--;
    return 1; /* taken: Paho acknowledges it */
}

/* A session is ready once its subscriptions are acknowledged: said once per
 * session, so an operator (or a test) knows messages are flowing. */
static void announce_ready(aimdb_connector *c, size_t n_subs) {
    aimdb_log(c->rt, AIMDB_LOG_INFO, "connector: connected to %s as %s; %zu subscription(s) active",
              c->url.uri, c->client_id, n_subs);
}

/* What a SUBACK answers: the filter (for the log) and the session it was
 * sent in (a late answer from a lost session must not count for the next). */
typedef struct subscribe_ctx {
    aimdb_connector *c;
    unsigned session;
    char filter[];
} subscribe_ctx;

static void subscribe_done(subscribe_ctx *x, int reason, const char *why) {
    aimdb_connector *c = x->c;
    if (reason >= MQTTREASONCODE_UNSPECIFIED_ERROR || why)
        aimdb_log(c->rt, AIMDB_LOG_ERROR, "connector: subscribing to '%s' on %s failed: %s",
                  x->filter, c->url.uri,
                  reason >= MQTTREASONCODE_UNSPECIFIED_ERROR
                      ? MQTTReasonCode_toString((enum MQTTReasonCodes)reason)
                      : why);
    pthread_mutex_lock(&c->lock);
    bool ready = false;
    size_t n_subs = c->announce_subs;
    if (x->session == c->session && c->subs_pending) {
        c->subs_pending--;
        ready = c->subs_pending == 0 && c->announce_subs > 0;
        if (ready) c->announce_subs = 0;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (ready) announce_ready(c, n_subs);
    free(x);
}

static void on_subscribed(void *ctx, MQTTAsync_successData5 *r) {
    subscribe_done(ctx, r ? (int)r->reasonCode : 0, NULL);
}

/* A SUBACK refusal arrives here too, with code 0 and the reason code set. */
static void on_subscribe_failed(void *ctx, MQTTAsync_failureData5 *r) {
    int reason = r ? (int)r->reasonCode : 0;
    subscribe_done(ctx, reason,
                   r && r->message
                       ? r->message
                       : MQTTAsync_strerror(r && r->code ? r->code : MQTTASYNC_FAILURE));
}

/* One SUBSCRIBE, already counted in subs_pending of session.  On a
 * reconnect (a persistent session still has the subscription) retained
 * messages are not sent again: they are in history already. */
static void send_subscribe(aimdb_connector *c, unsigned session, const char *filter, int qos,
                           int id) {
    size_t len = strlen(filter);
    subscribe_ctx *x = malloc(sizeof(*x) + len + 1);
    if (!x) {
        aimdb_log(c->rt, AIMDB_LOG_ERROR, "connector: out of memory subscribing to '%s'", filter);
        return; /* wait_connected then times out: the session is not whole */
    }
    x->c = c;
    x->session = session;
    memcpy(x->filter, filter, len + 1);
    MQTTProperty prop = {.identifier = MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER,
                         .value.integer4 = (unsigned)id};
    MQTTProperties props = MQTTProperties_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_subscribed;
    ro.onFailure5 = on_subscribe_failed;
    ro.context = x;
    ro.subscribeOptions.retainHandling = 1; /* retained only if the subscription is new */
    int rc = MQTTProperties_add(&props, &prop);
    ro.properties = props;
    if (rc == 0) rc = MQTTAsync_subscribe(c->paho, filter, qos, &ro);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) subscribe_done(x, 0, MQTTAsync_strerror(rc));
}

void connector_subscribe(aimdb_connector *c, const char *filter, int qos, int id) {
    pthread_mutex_lock(&c->lock);
    bool up = c->state == SESSION_UP && !c->stopping;
    unsigned session = c->session;
    if (up) c->subs_pending++;
    pthread_mutex_unlock(&c->lock);
    if (up) send_subscribe(c, session, filter, qos, id);
}

void connector_unsubscribe(aimdb_connector *c, const char *filter) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTAsync_unsubscribe(c->paho, filter, &ro); /* a failure only costs unrouted messages */
}

static void on_connected(void *ctx, MQTTAsync_successData5 *r) {
    aimdb_connector *c = ctx;
    c->stats.connects++;
    /* A new session has nothing to resend; the list belongs to an old one,
     * whose packet ids the new one reuses. */
    if (!r || !r->alt.connect.sessionPresent) redelivery_clear(&c->redelivery);
    subscription *subs = NULL;
    size_t n = 0;
    char **gone = NULL;
    size_t n_gone = 0;
    /* The links' subscriptions and UP change together under links_lock (the
     * order set_links_in uses too): a reload either happened before, and
     * its filters are in the snapshot, or happens after and sees the
     * session up, so it subscribes and unsubscribes itself. */
    pthread_rwlock_wrlock(&c->links_lock);
    if (links_in_snapshot_locked(c, &subs, &n) != AIMDB_OK)
        aimdb_log(c->rt, AIMDB_LOG_ERROR, "connector: out of memory subscribing");
    links_in_take_unsubscribes(c, &gone, &n_gone);
    pthread_mutex_lock(&c->lock);
    bool stopping = c->stopping;
    c->state = SESSION_UP;
    c->session++;
    unsigned session = c->session;
    c->backoff_ms = c->retry_min_ms;
    c->out_pending = true; /* values held during the outage go out now */
    c->subs_pending = stopping ? 0 : (unsigned)n;
    c->announce_subs = stopping ? 0 : n;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_rwlock_unlock(&c->links_lock);
    if (stopping) {
        /* A connect that outlasted stop's wait: leave at once. */
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
        MQTTAsync_disconnect(c->paho, &d);
    } else {
        if (n == 0) announce_ready(c, 0);
        for (size_t i = 0; i < n_gone; i++) connector_unsubscribe(c, gone[i]);
        for (size_t i = 0; i < n; i++)
            send_subscribe(c, session, subs[i].filter, subs[i].qos, subs[i].id);
    }
    for (size_t i = 0; i < n_gone; i++) free(gone[i]);
    free(gone);
    subscriptions_free(subs, n);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData5 *r) {
    aimdb_connector *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->state = SESSION_DOWN;
    /* Paho 1.3 reports a CONNACK refusal as code = the reason code (e.g.
     * 135, Not authorized) with reasonCode 0. */
    int reason = r ? (r->reasonCode ? (int)r->reasonCode : r->code) : 0;
    c->last_failure = r ? r->code : MQTTASYNC_FAILURE;
    snprintf(c->last_failure_text, sizeof(c->last_failure_text), "%s",
             reason >= MQTTREASONCODE_UNSPECIFIED_ERROR
                 ? MQTTReasonCode_toString((enum MQTTReasonCodes)reason)
                 : "");
    c->next_attempt_ms = -1; /* the session thread explains it, then schedules */
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    c->stats.connect_failures++;
}

/* ------------------------------------------------------ session thread */

bool connector_is_up(aimdb_connector *c) {
    pthread_mutex_lock(&c->lock);
    bool up = c->state == SESSION_UP && !c->stopping;
    pthread_mutex_unlock(&c->lock);
    return up;
}

void connector_wake(aimdb_connector *c) {
    pthread_mutex_lock(&c->lock);
    c->out_pending = true;
    pthread_cond_broadcast(&c->cond); /* waiters of wait_connected share cond */
    pthread_mutex_unlock(&c->lock);
}

static void begin_connect(aimdb_connector *c) {
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    ssl.trustStore = c->ca_file;
    ssl.keyStore = c->cert_file;
    ssl.privateKey = c->key_file;
    ssl.verify = 1; /* the certificate must name the host we asked for */
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
    o.keepAliveInterval = (int)c->keepalive_s;
    /* A persistent session keeps our subscriptions and queues QoS 1 and 2
     * messages at the broker while we are away (an outage, a restart). */
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
                           .value.integer4 = c->session_expiry_s};
    /* What the broker may have in flight is what redelivery.c remembers. */
    MQTTProperty receive_max = {.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM,
                                .value.integer2 = REDELIVERY_WINDOW};
    o.cleanstart = c->session_expiry_s == 0;
    if ((c->session_expiry_s && MQTTProperties_add(&props, &expiry) != 0) ||
        MQTTProperties_add(&props, &receive_max) != 0)
        aimdb_log(c->rt, AIMDB_LOG_ERROR, "connector: out of memory for the CONNECT properties");
    o.connectProperties = &props;
    o.username = c->username;
    o.password = c->password;
    o.connectTimeout = CONNECT_TIMEOUT_S;
    o.onSuccess5 = on_connected;
    o.onFailure5 = on_connect_failed;
    o.context = c;
    if (c->url.tls) o.ssl = &ssl;
    int rc = MQTTAsync_connect(c->paho, &o);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        MQTTAsync_failureData5 f = {.code = rc};
        on_connect_failed(c, &f);
    }
}

/* After a failed attempt: say why, in words, and schedule the next one.
 * Called without the lock. */
static void explain_failure(aimdb_connector *c, int code, const char *refusal) {
    char why[256];
    aimdb_broker_explain(&c->url, refusal, MQTTAsync_strerror(code), PROBE_TIMEOUT_MS, why,
                         sizeof(why));
    pthread_mutex_lock(&c->lock);
    unsigned delay = c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > c->retry_max_ms ? c->retry_max_ms : c->backoff_ms * 2;
    c->next_attempt_ms = aimdb_monotonic_ms() + delay;
    pthread_mutex_unlock(&c->lock);
    aimdb_log(c->rt, AIMDB_LOG_WARNING, "connector: cannot connect to %s: %s; retrying in %u ms",
              c->url.uri, why, delay);
}

static void *session_main(void *arg) {
    aimdb_connector *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        if (c->state == SESSION_DOWN && c->next_attempt_ms < 0) {
            int code = c->last_failure;
            char refusal[sizeof(c->last_failure_text)];
            memcpy(refusal, c->last_failure_text, sizeof(refusal));
            pthread_mutex_unlock(&c->lock);
            explain_failure(c, code, refusal);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (c->state == SESSION_DOWN && aimdb_monotonic_ms() >= c->next_attempt_ms) {
            c->state = SESSION_CONNECTING;
            pthread_mutex_unlock(&c->lock);
            begin_connect(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (c->state == SESSION_UP && c->out_pending) {
            c->out_pending = false;
            pthread_mutex_unlock(&c->lock);
            links_out_drain(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        int64_t wait = IDLE_WAIT_MS;
        if (c->state == SESSION_DOWN && c->next_attempt_ms - aimdb_monotonic_ms() < wait)
            wait = c->next_attempt_ms - aimdb_monotonic_ms();
        if (wait > 0) cond_wait_ms(&c->cond, &c->lock, wait);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---------------------------------------------------------- lifecycle */

int aimdb_connector_new(aimdb_db *db, const aimdb_connector_options *o, aimdb_connector **out,
                        char *err, size_t errlen) {
    *out = NULL;
    aimdb_connector_options none = {0};
    if (!o) o = &none;
    aimdb_broker_url url;
    const char *broker = o->broker ? o->broker : AIMDB_BROKER_URL_DEFAULT;
    if (aimdb_broker_url_parse(broker, &url, err, errlen) != AIMDB_OK) return AIMDB_EINVAL;
    static const char *const labels[3] = {"CA file", "certificate", "key"};
    if (aimdb_broker_tls_files_check(&url, o->ca_file, o->cert_file, o->key_file, labels, err,
                                     errlen) != AIMDB_OK)
        return AIMDB_EINVAL;

    aimdb_connector *c = calloc(1, sizeof(*c));
    if (!c) goto nomem;
    c->db = db;
    c->rt = aimdb_db_runtime(db);
    c->url = url;
    c->keepalive_s = o->keepalive_s ? o->keepalive_s : DEFAULT_KEEPALIVE_S;
    c->retry_min_ms = o->retry_min_ms ? o->retry_min_ms : DEFAULT_RETRY_MIN_MS;
    c->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : DEFAULT_RETRY_MAX_MS;
    if (c->retry_max_ms < c->retry_min_ms) c->retry_max_ms = c->retry_min_ms;
    c->backoff_ms = c->retry_min_ms;
    c->session_expiry_s = o->session_expiry_s;
    pthread_mutex_init(&c->lock, NULL);
    aimdb_cond_init_monotonic(&c->cond);
    pthread_rwlock_init(&c->links_lock, NULL);
    /* Two connectors with one client id would disconnect each other in
     * turn: pid and clock make the default unique per run. */
    char generated[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(generated, sizeof(generated), "aimdb-%ld-%lx", (long)getpid(),
             (unsigned long)ts.tv_nsec ^ (unsigned long)ts.tv_sec);
    if (copy_option(&c->client_id, o->client_id ? o->client_id : generated) ||
        copy_option(&c->username, o->username) || copy_option(&c->password, o->password) ||
        copy_option(&c->ca_file, o->ca_file) || copy_option(&c->cert_file, o->cert_file) ||
        copy_option(&c->key_file, o->key_file) ||
        copy_option(&c->session_file, o->session_file) || !(c->in.router = aimdb_router_new()))
        goto nomem;

    /* Paho formats every packet and function call it handles into an
     * in-memory trace ring unless its level is raised (it prints nothing
     * without a trace callback): a third of its receive thread's CPU. */
    MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    int rc = MQTTAsync_createWithOptions(&c->paho, url.uri, c->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setCallbacks(c->paho, c, on_connection_lost, on_message, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, errlen, "cannot create an MQTT client for %s: %s", broker,
                 MQTTAsync_strerror(rc));
        aimdb_connector_free(c);
        return AIMDB_EINVAL;
    }
    *out = c;
    return AIMDB_OK;
nomem:
    aimdb_connector_free(c);
    snprintf(err, errlen, "out of memory");
    return AIMDB_ENOMEM;
}

int aimdb_connector_start(aimdb_connector *c) {
    if (c->started) return AIMDB_ESTATE;
    char why[256];
    if (c->session_file && redelivery_load(&c->redelivery, c->session_file, why,
                                           sizeof(why)) != AIMDB_OK)
        aimdb_log(c->rt, AIMDB_LOG_WARNING, "connector: cannot read %s: %s; messages the "
                  "broker resends from before the restart are recorded again",
                  c->session_file, why);
    int rc = aimdb_relay_start(c->rt, &c->relay);
    if (rc != AIMDB_OK) return rc;
    c->started = true;
    if (c->rt->spawn(c->rt->self, "aimdb-connector", AIMDB_THREAD_PIPELINE, session_main, c,
                     &c->thread) != 0) {
        c->started = false;
        aimdb_relay_stop(c->relay);
        c->relay = NULL; /* nothing was pushed: no thread to deliver */
        return AIMDB_ENOMEM;
    }
    return AIMDB_OK;
}

bool aimdb_connector_wait_connected(aimdb_connector *c, int timeout_ms) {
    int64_t deadline = aimdb_monotonic_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    while (!(c->state == SESSION_UP && c->subs_pending == 0) && !c->stopping) {
        int64_t left = deadline - aimdb_monotonic_ms();
        if (left <= 0) break;
        cond_wait_ms(&c->cond, &c->lock, left);
    }
    bool up = c->state == SESSION_UP && c->subs_pending == 0 && !c->stopping;
    pthread_mutex_unlock(&c->lock);
    return up;
}

void aimdb_connector_stop(aimdb_connector *c) {
    pthread_mutex_lock(&c->lock);
    bool already = c->stopping;
    c->stopping = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (already || !c->started) return;
    c->rt->join(c->rt->self, c->thread);
    /* A connect in flight answers within CONNECT_TIMEOUT_S: wait for it, so
     * that no connect callback of ours runs after stop. */
    pthread_mutex_lock(&c->lock);
    for (int64_t end = aimdb_monotonic_ms() + CONNECT_TIMEOUT_S * 1000 + 1000;
         c->state == SESSION_CONNECTING && aimdb_monotonic_ms() < end;)
        cond_wait_ms(&c->cond, &c->lock, 50);
    pthread_mutex_unlock(&c->lock);
    if (MQTTAsync_isConnected(c->paho)) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
        d.timeout = DISCONNECT_TIMEOUT_MS;
        MQTTAsync_disconnect(c->paho, &d);
        /* Paho may hold the connection for d.timeout while QoS 1/2 publishes
         * wait for their acknowledgement: wait a little longer than that. */
        for (int64_t end = aimdb_monotonic_ms() + DISCONNECT_TIMEOUT_MS + 1000;
             MQTTAsync_isConnected(c->paho) && aimdb_monotonic_ms() < end;)
            c->rt->sleep_ms(c->rt->self, 10);
    }
    /* From here no message reaches a link, whatever Paho still delivers;
     * then the relay produces every value it was handed. */
    c->closed = true;
    while (c->delivering) c->rt->sleep_ms(c->rt->self, 1);
    char why[256];
    if (c->session_file &&
        redelivery_save(&c->redelivery, c->session_file, why, sizeof(why)) != AIMDB_OK)
        aimdb_log(c->rt, AIMDB_LOG_WARNING, "connector: cannot save %s: %s; after a restart "
                  "the broker's resent messages are recorded again", c->session_file, why);
    pthread_mutex_lock(&c->lock); /* stats_get reads the relay under it */
    aimdb_relay *relay = c->relay;
    c->relay = NULL;
    pthread_mutex_unlock(&c->lock);
    uint64_t failed = aimdb_relay_stop(relay);
    pthread_mutex_lock(&c->lock);
    c->relay_failed = failed;
    pthread_mutex_unlock(&c->lock);
}

void aimdb_connector_free(aimdb_connector *c) {
    if (!c) return;
    aimdb_connector_stop(c);
    if (c->paho) MQTTAsync_destroy(&c->paho);
    links_in_free(c);
    links_out_free(c);
    aimdb_router_free(c->in.router);
    free(c->client_id);
    free(c->username);
    free(c->password);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->session_file);
    pthread_rwlock_destroy(&c->links_lock);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ----------------------------------------------------------- publish */

int aimdb_connector_publish(aimdb_connector *c, const aimdb_mqtt_message *m) {
    char why[128];
    if (!m->topic || aimdb_topic_name_check(m->topic, strlen(m->topic), why, sizeof(why)) ||
        m->qos < 0 || m->qos > 2 || m->len > MQTT_MAX_PAYLOAD ||
        (m->response_topic && strlen(m->response_topic) > MQTT_MAX_STRING) ||
        m->correlation_len > MQTT_MAX_STRING)
        return AIMDB_EINVAL;
    pthread_mutex_lock(&c->lock);
    int state = c->stopping ? AIMDB_ESTOPPED : c->state == SESSION_UP ? AIMDB_OK : AIMDB_EAGAIN;
    pthread_mutex_unlock(&c->lock);
    if (state != AIMDB_OK) {
        c->stats.publish_failed++;
        return state;
    }
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)m->payload;
    msg.payloadlen = (int)m->len;
    msg.qos = m->qos;
    msg.retained = m->retain;
    MQTTProperties props = MQTTProperties_initializer;
    int rc = 0;
    if (m->response_topic) {
        MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC};
        p.value.data.data = (char *)m->response_topic;
        p.value.data.len = (int)strlen(m->response_topic);
        rc = MQTTProperties_add(&props, &p);
    }
    if (rc == 0 && m->correlation) {
        MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
        p.value.data.data = (char *)m->correlation;
        p.value.data.len = (int)m->correlation_len;
        rc = MQTTProperties_add(&props, &p);
    }
    /* Paho 1.3 takes a v5 PUBLISH's properties from the response options
     * (MQTTAsync_sendMessage copies them there when it gets any), so
     * without this the correlation data would be dropped silently. */
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    msg.properties = props;
    ro.properties = props;
    if (rc == 0) rc = MQTTAsync_sendMessage(c->paho, m->topic, &msg, &ro);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        c->stats.publish_failed++;
        return AIMDB_EIO;
    }
    c->stats.published++;
    return AIMDB_OK;
}

/* ------------------------------------------------------------- stats */

void connector_note_drop(aimdb_connector *c, const char *topic, const char *why) {
    c->stats.dropped++;
    uint64_t held = 0;
    pthread_mutex_lock(&c->lock);
    bool pass =
        aimdb_log_limit_pass(&c->drop_log, aimdb_monotonic_ms(), DROP_LOG_INTERVAL_MS, &held);
    pthread_mutex_unlock(&c->lock);
    if (pass)
        aimdb_log(c->rt, AIMDB_LOG_WARNING,
                  "connector: message on '%s' not recorded: %s (%llu similar since the last "
                  "report)", topic, why, (unsigned long long)held);
}

void aimdb_connector_stats_get(aimdb_connector *c, aimdb_connector_stats *out) {
    out->connected = connector_is_up(c);
    out->connects = c->stats.connects;
    out->connect_failures = c->stats.connect_failures;
    out->disconnects = c->stats.disconnects;
    out->received = c->stats.received;
    out->produced = c->stats.produced;
    out->unrouted = c->stats.unrouted;
    out->duplicates = c->stats.duplicates;
    out->redelivered = c->stats.redelivered;
    pthread_mutex_lock(&c->lock);
    uint64_t relay_failed = c->relay ? aimdb_relay_failed(c->relay) : c->relay_failed;
    out->dropped = c->stats.dropped + relay_failed;
    pthread_mutex_unlock(&c->lock);
    out->published = c->stats.published;
    out->publish_failed = c->stats.publish_failed;
    out->lost = c->stats.lost;
}
