/*
 * sync_client.c -- the blocking MQTT v5 client of the command-line tools
 * (see sync_client.h), over Paho's MQTTClient.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <MQTTClient.h>

#include "aimdb/broker_url.h"
#include "aimdb/runtime.h"
#include "cli_util.h"
#include "sync_client.h"

/* Paho's receive keeps polling out its whole timeout: short turns hand a
 * message or an acknowledgement over with at most this lag. */
#define RECEIVE_SLICE_MS 10
#define ACK_SLICE_MS 1

typedef struct stashed {
    char *topic;
    MQTTClient_message *msg;
    struct stashed *next;
} stashed;

struct sync_client {
    MQTTClient paho;
    bool connected;
    MQTTClient_deliveryToken acked_token; /* the last acknowledged publish */
    int acked_reason;
    stashed *stash_head, *stash_tail; /* arrived while we waited for an ack */
    int timeout_ms;
    char broker[600];
    char token[128];
};

const char *sync_broker(const sync_client *c) { return c->broker; }
bool sync_connected(sync_client *c) { return MQTTClient_isConnected(c->paho) != 0; }
const char *sync_token(const sync_client *c) { return c->token; }

/* Why the connect failed, in one sentence after "cannot connect to URL: ". */
static void explain(const aimdb_broker_url *url, const MQTTResponse *r, int timeout_ms,
                    char *why, size_t whylen) {
    int code = (int)r->reasonCode;
    aimdb_broker_explain(url,
                         code >= MQTTREASONCODE_UNSPECIFIED_ERROR
                             ? MQTTReasonCode_toString(r->reasonCode)
                             : NULL,
                         code < 0 ? MQTTClient_strerror(code) : "no CONNACK", timeout_ms, why,
                         whylen);
}

/* Paho's synchronous client runs this from inside our own receive calls
 * (no thread), when the broker has acknowledged a QoS 1 or 2 publish. */
static void on_published(void *ctx, int token, int packet_type, MQTTProperties *props,
                         enum MQTTReasonCodes reason) {
    (void)packet_type;
    (void)props;
    sync_client *c = ctx;
    c->acked_token = token;
    c->acked_reason = (int)reason;
}

int sync_connect(const sync_options *o, sync_client **out, char *err, size_t errlen) {
    *out = NULL;
    const char *text = o->broker ? o->broker : AIMDB_BROKER_URL_DEFAULT;
    aimdb_broker_url url;
    if (aimdb_broker_url_parse(text, &url, err, errlen) != AIMDB_OK) return -2;
    static const char *const labels[3] = {"--cafile", "--cert", "--key"};
    if (aimdb_broker_tls_files_check(&url, o->ca_file, o->cert_file, o->key_file, labels, err,
                                     errlen) != AIMDB_OK)
        return -2;
    int rc;

    sync_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->timeout_ms = o->timeout_ms;
    snprintf(c->broker, sizeof(c->broker), "%s", text);
    cli_unique_token(c->token, sizeof(c->token));
    char client_id[256];
    if (o->client_id) snprintf(client_id, sizeof(client_id), "%s", o->client_id);
    else snprintf(client_id, sizeof(client_id), "%s-%s", o->id_prefix, c->token);

    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = MQTTVERSION_5;
    rc = MQTTClient_createWithOptions(&c->paho, url.uri, client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                      NULL, &co);
    if (rc != MQTTCLIENT_SUCCESS) {
        snprintf(err, errlen, "cannot create a client for %s: %s", text, MQTTClient_strerror(rc));
        free(c);
        return -1;
    }
    MQTTClient_setPublished(c->paho, c, on_published);
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    ssl.trustStore = o->ca_file;
    ssl.keyStore = o->cert_file;
    ssl.privateKey = o->key_file;
    ssl.verify = 1; /* the certificate must name the host we asked for */
    MQTTClient_connectOptions cx = MQTTClient_connectOptions_initializer5;
    cx.keepAliveInterval = 30;
    cx.cleanstart = 1;
    cx.username = o->username;
    cx.password = o->password;
    cx.connectTimeout = o->timeout_ms < 1000 ? 1 : o->timeout_ms / 1000;
    if (url.tls) cx.ssl = &ssl;
    MQTTClient_setCommandTimeout(c->paho, (unsigned long)o->timeout_ms);
    MQTTResponse r = MQTTClient_connect5(c->paho, &cx, NULL, NULL);
    if (r.reasonCode != MQTTREASONCODE_SUCCESS) {
        char why[512];
        explain(&url, &r, o->timeout_ms, why, sizeof(why));
        snprintf(err, errlen, "cannot connect to %s: %s", text, why);
        MQTTResponse_free(r);
        sync_close(c);
        return -1;
    }
    MQTTResponse_free(r);
    c->connected = true;
    *out = c;
    return 0;
}

int sync_subscribe(sync_client *c, const char *filter, int qos, char *err, size_t errlen) {
    MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
    MQTTResponse r = MQTTClient_subscribe5(c->paho, filter, qos, &so, NULL);
    int code = (int)r.reasonCode;
    MQTTResponse_free(r);
    if (code >= 0 && code <= 2) return 0;
    snprintf(err, errlen, "cannot subscribe to %s on %s: %s", filter, c->broker,
             code < 0 ? MQTTClient_strerror(code) : MQTTReasonCode_toString((enum MQTTReasonCodes)code));
    return -1;
}

/* Keep a message that arrived while we waited for something else. */
static int stash(sync_client *c, char *topic, MQTTClient_message *msg) {
    stashed *s = malloc(sizeof(*s));
    if (!s) {
        MQTTClient_freeMessage(&msg);
        MQTTClient_free(topic);
        return -1;
    }
    *s = (stashed){topic, msg, NULL};
    *(c->stash_tail ? &c->stash_tail->next : &c->stash_head) = s;
    c->stash_tail = s;
    return 0;
}

/* One short turn of Paho's loop; a message it delivers is stashed. */
static int turn(sync_client *c, unsigned long ms) {
    char *topic = NULL;
    int topic_len = 0;
    MQTTClient_message *msg = NULL;
    int rc = MQTTClient_receive(c->paho, &topic, &topic_len, &msg, ms);
    if (msg) return stash(c, topic, msg) == 0 ? MQTTCLIENT_SUCCESS : MQTTCLIENT_FAILURE;
    return rc == MQTTCLIENT_TOPICNAME_TRUNCATED ? MQTTCLIENT_SUCCESS : rc;
}

/* Until the broker acknowledges token.  Paho's own waitForCompletion
 * sleeps in 100 ms steps, which caps QoS 1 at ten messages a second. */
static int await_ack(sync_client *c, MQTTClient_deliveryToken token) {
    long long deadline = aimdb_monotonic_ms() + c->timeout_ms;
    while (c->acked_token != token) {
        if (aimdb_monotonic_ms() >= deadline) return MQTTCLIENT_FAILURE;
        int rc = turn(c, ACK_SLICE_MS);
        if (rc != MQTTCLIENT_SUCCESS) return rc;
    }
    return c->acked_reason;
}

int sync_publish(sync_client *c, const char *topic, const void *payload, size_t len, int qos,
                 MQTTProperties *props, char *err, size_t errlen) {
    if (len > INT_MAX) {
        snprintf(err, errlen, "cannot publish %zu bytes: too big for MQTT", len);
        return -1;
    }
    MQTTClient_message m = MQTTClient_message_initializer;
    m.payload = (void *)payload;
    m.payloadlen = (int)len;
    m.qos = qos;
    if (props) m.properties = *props;
    MQTTClient_deliveryToken token = 0;
    c->acked_token = 0; /* message ids wrap: an old ack must not match */
    MQTTResponse r = MQTTClient_publishMessage5(c->paho, topic, &m, &token);
    int code = (int)r.reasonCode;
    MQTTResponse_free(r);
    if (code == MQTTCLIENT_SUCCESS && qos > 0) code = await_ack(c, token);
    if (code >= 0 && code < MQTTREASONCODE_UNSPECIFIED_ERROR) return 0;
    snprintf(err, errlen, "cannot publish to %s on %s: %s", topic, c->broker,
             code == MQTTCLIENT_FAILURE && qos > 0 ? "no acknowledgement in time"
             : code < 0 ? MQTTClient_strerror(code)
                        : MQTTReasonCode_toString((enum MQTTReasonCodes)code));
    return -1;
}

int sync_receive(sync_client *c, long long deadline_ms, char **topic, MQTTClient_message **msg,
                 char *err, size_t errlen) {
    for (;;) {
        stashed *s = c->stash_head;
        if (s) {
            c->stash_head = s->next;
            if (!c->stash_head) c->stash_tail = NULL;
            *topic = s->topic;
            *msg = s->msg;
            free(s);
            return 1;
        }
        long long left = deadline_ms - aimdb_monotonic_ms();
        if (left <= 0) return 0;
        int rc = turn(c, (unsigned long)(left < RECEIVE_SLICE_MS ? left : RECEIVE_SLICE_MS));
        if (rc != MQTTCLIENT_SUCCESS) {
            snprintf(err, errlen, "connection to %s lost: %s", c->broker,
                     sync_connected(c) ? MQTTClient_strerror(rc) : "the broker closed it or went away");
            return -1;
        }
    }
}

void sync_close(sync_client *c) {
    if (!c) return;
    if (c->connected) MQTTClient_disconnect5(c->paho, 1000, MQTTREASONCODE_SUCCESS, NULL);
    MQTTClient_destroy(&c->paho);
    for (stashed *s = c->stash_head, *next; s; s = next) {
        next = s->next;
        MQTTClient_freeMessage(&s->msg);
        MQTTClient_free(s->topic);
        free(s);
    }
    free(c);
}
