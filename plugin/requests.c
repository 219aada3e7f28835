/*
 * requests.c -- a request's life from MOSQ_EVT_CONTROL to its reply, and who
 * gets the reply (docs/protocol.md).
 *
 * Where: the request's MQTT v5 Response Topic with its Correlation Data,
 * or $CONTROL/aimdb/v1/response (v3.1.1, or no Response Topic).
 * Who: only the requesting client.  mosquitto_broker_publish() with a
 * client id puts the message straight into that client's queue, bypassing
 * subscriptions, so an eavesdropper subscribed to '#' or '$CONTROL/#'
 * sees nothing, and the requester needs no subscription of its own.
 *
 * A reply may be computed on a query thread; it travels back through the
 * outbox and is published on the broker thread.  If the client disconnects
 * first (MOSQ_EVT_DISCONNECT), its pending replies are dropped, so a new
 * connection that reuses the client id does not receive them.  A reply
 * that reaches a client id with no session at all is dropped by the broker
 * itself (harmless).
 *
 * In-flight requests are kept in a list (broker thread only) for that
 * disconnect check; it is short, at most the pending budget (clients.c).
 */
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "plugin.h"

struct request {
    outbox_item item;               /* first: the outbox hands it back */
    plugin *pl;
    request *prev, *next;           /* pl->requests; broker thread only */
    const struct mosquitto *client; /* compared, never dereferenced later */
    bool client_gone;               /* broker thread only */
    char *client_id;
    char *topic;
    void *correlation;
    uint16_t correlation_len;
    int qos;
    client_state *cs;               /* its client's share and decisions */
    bool admitted;                  /* counted in cs's pending requests */
    acl_view *view;
    char *reply;                    /* set by request_reply, then queued */
    size_t reply_len;
};

static void request_free(request *r) {
    if (r->admitted) client_release(r->pl, r->cs);
    free(r->client_id);
    free(r->topic);
    free(r->correlation);
    acl_view_free(r->view);
    free(r->reply);
    free(r);
}

static void unlink_request(plugin *pl, request *r) {
    if (r->prev) r->prev->next = r->next;
    else pl->requests = r->next;
    if (r->next) r->next->prev = r->prev;
}

static void publish(plugin *pl, request *r) {
    mosquitto_property *props = NULL;
    if (r->correlation &&
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, r->correlation,
                                      r->correlation_len) != MOSQ_ERR_SUCCESS) {
        plugin_log(pl, AIMDB_LOG_ERROR, "reply to %s lost: out of memory", r->client_id);
        return;
    }
    int rc = mosquitto_broker_publish_copy(r->client_id, r->topic, (int)r->reply_len, r->reply,
                                           r->qos, false, props);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_property_free_all(&props);
        plugin_log(pl, AIMDB_LOG_ERROR, "reply to %s lost: %s", r->client_id,
                   mosquitto_strerror(rc));
    }
}

static void deliver_reply(outbox_item *item, plugin *pl, bool broker_alive) {
    request *r = (request *)item;
    unlink_request(pl, r);
    if (!r->reply)
        plugin_log(pl, AIMDB_LOG_ERROR, "reply to %s lost: out of memory", r->client_id);
    else if (broker_alive && !r->client_gone)
        publish(pl, r);
    request_free(r);
}

/* The v5 Response Topic if there is a usable one, else the default. */
static char *reply_topic(plugin *pl, const mosquitto_property *props) {
    char *given = NULL;
    if (!mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &given, false))
        return strdup(PLUGIN_RESPONSE_TOPIC);
    char why[128];
    char *topic = NULL;
    if (aimdb_topic_name_check(given, strlen(given), why, sizeof(why)) == AIMDB_OK) {
        topic = strdup(given);
    } else {
        plugin_log(pl, AIMDB_LOG_DEBUG, "response topic '%s' unusable (%s): replying on %s",
                   given, why, PLUGIN_RESPONSE_TOPIC);
        topic = strdup(PLUGIN_RESPONSE_TOPIC);
    }
    broker_free_read(pl, given);
    return topic;
}

static bool copy_correlation(plugin *pl, request *r, const mosquitto_property *props) {
    void *data = NULL;
    uint16_t len = 0;
    if (!mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &data, &len, false))
        return true;
    r->correlation = malloc(len ? len : 1);
    if (r->correlation) memcpy(r->correlation, data, len);
    r->correlation_len = len;
    broker_free_read(pl, data);
    return r->correlation != NULL;
}

request *request_new(plugin *pl, const struct mosquitto_evt_control *ev) {
    request *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    const char *id = mosquitto_client_id(ev->client);
    r->item.deliver = deliver_reply;
    r->pl = pl;
    r->client = ev->client;
    r->qos = ev->qos;
    r->client_id = strdup(id ? id : "");
    r->topic = reply_topic(pl, ev->properties);
    r->cs = clients_get(pl, ev->client);
    if (!r->client_id || !r->topic || !r->cs || !copy_correlation(pl, r, ev->properties)) {
        request_free(r);
        return NULL;
    }
    r->next = pl->requests;
    if (r->next) r->next->prev = r;
    pl->requests = r;
    return r;
}

bool request_admit(request *r, char *why, size_t cap) {
    r->admitted = client_admit(r->pl, r->cs, why, cap);
    return r->admitted;
}

client_state *request_client(request *r) {
    return r->cs;
}

void request_set_view(request *r, acl_view *v) {
    acl_view_free(r->view);
    r->view = v;
}

void request_drop(request *r) {
    unlink_request(r->pl, r);
    request_free(r);
}

void request_reply(char *reply, size_t len, void *ctx) {
    request *r = ctx;
    r->reply = reply;
    r->reply_len = len;
    outbox_push(r->pl, &r->item, true);
}

void requests_client_gone(plugin *pl, const struct mosquitto *client) {
    for (request *r = pl->requests; r; r = r->next)
        if (r->client == client) r->client_gone = true;
}
