/*
 * requests.c -- AimX (docs/protocol.md) over any broker: a request published on
 * the bridge's request_topic is answered on the MQTT v5 Response Topic it
 * names, with its Correlation Data; a request without one (an MQTT 3.1.1
 * client) is answered on REQUEST_TOPIC/response, as the plugin answers on
 * $CONTROL/aimdb/v1/response.
 *
 * `$CONTROL/` belongs to the broker, so the bridge cannot use the plugin's
 * topic; its default is aimdb/CLIENT-ID/rpc.  A bridge sees no broker ACLs
 * either: restrict who may publish to its request topic with the broker's
 * own ACLs.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/mqtt_route.h"
#include "bridge.h"

struct requests {
    aimdb_connector *conn;
    aimdb_gateway *gw;
    char *response_topic; /* REQUEST_TOPIC/response */
    /* Paho's receive thread and query threads count; main reads. */
    _Atomic uint64_t answered, unanswered;
};

/* Where one reply goes; lives from the request to its reply. */
typedef struct pending {
    requests *r;
    char *topic;
    void *correlation;
    size_t correlation_len;
    int qos;
} pending;

static void pending_free(pending *p) {
    free(p->topic);
    free(p->correlation);
    free(p);
}

static pending *pending_new(requests *r, const aimdb_mqtt_message *m, const char *topic) {
    pending *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->r = r;
    p->qos = m->qos > 1 ? 1 : m->qos; /* a reply is worth one delivery, not two handshakes */
    p->topic = strdup(topic);
    if (m->correlation && (p->correlation = malloc(m->correlation_len + 1))) {
        memcpy(p->correlation, m->correlation, m->correlation_len);
        p->correlation_len = m->correlation_len;
    }
    if (!p->topic || (m->correlation && !p->correlation)) {
        pending_free(p);
        return NULL;
    }
    return p;
}

static void send_reply(char *reply, size_t len, void *ctx) {
    pending *p = ctx;
    if (reply) {
        aimdb_mqtt_message m = {
            .topic = p->topic,
            .payload = reply,
            .len = len,
            .qos = p->qos,
            .correlation = p->correlation,
            .correlation_len = p->correlation_len,
        };
        int rc = aimdb_connector_publish(p->r->conn, &m);
        atomic_fetch_add(rc == AIMDB_OK ? &p->r->answered : &p->r->unanswered, 1);
        if (rc != AIMDB_OK && rc != AIMDB_ESTOPPED)
            aimdb_log(p->r->gw->runtime, AIMDB_LOG_WARNING, "reply to %s not sent: %s", p->topic,
                      aimdb_strerror(rc));
    }
    free(reply);
    pending_free(p);
}

static void on_request(const aimdb_mqtt_message *m, void *ctx) {
    requests *r = ctx;
    const char *topic = m->response_topic ? m->response_topic : r->response_topic;
    char why[128];
    if (aimdb_topic_name_check(topic, strlen(topic), why, sizeof(why)) != AIMDB_OK) {
        atomic_fetch_add(&r->unanswered, 1);
        aimdb_log(r->gw->runtime, AIMDB_LOG_WARNING, "request on %s with a bad response "
                  "topic: %s", m->topic, why);
        return;
    }
    pending *p = pending_new(r, m, topic);
    if (!p) {
        atomic_fetch_add(&r->unanswered, 1);
        aimdb_log(r->gw->runtime, AIMDB_LOG_ERROR, "out of memory: request on %s dropped",
                  m->topic);
        return;
    }
    aimdb_aimx_handle(r->gw->aimx, m->payload, m->len, NULL, send_reply, p);
}

int requests_serve(requests **out, aimdb_connector *conn, aimdb_gateway *gw, const char *topic,
                   char *err, size_t errlen) {
    char why[256];
    if (aimdb_topic_name_check(topic, strlen(topic), why, sizeof(why)) != AIMDB_OK) {
        snprintf(err, errlen, "request_topic '%s': %s", topic, why);
        return AIMDB_EINVAL;
    }
    requests *r = calloc(1, sizeof(*r));
    size_t cap = strlen(topic) + sizeof("/response");
    if (!r || !(r->response_topic = malloc(cap))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    snprintf(r->response_topic, cap, "%s/response", topic);
    r->conn = conn;
    r->gw = gw;
    int rc = aimdb_connector_handle(conn, topic, 1, on_request, r, err, errlen);
    if (rc != AIMDB_OK) {
        requests_free(r);
        return rc;
    }
    *out = r;
    return AIMDB_OK;
}

requests_counts requests_count(const requests *r) {
    if (!r) return (requests_counts){0, 0};
    return (requests_counts){atomic_load(&r->answered), atomic_load(&r->unanswered)};
}

void requests_free(requests *r) {
    if (!r) return;
    free(r->response_topic);
    free(r);
}
