/*
 * client.c -- the libmosquitto test client (see client.h).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

#define WAIT_MS test_wait_ms(5000)

struct client {
    struct mosquitto *mosq;
    int protocol;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool connected;
    int connack;
    uint8_t done[65536 / 8]; /* mids acknowledged (publish, subscribe) */
    received *queue;
    size_t n, cap;
    unsigned sequence;
    char request_topic[256];  /* where client_request publishes */
    char response_topic[270]; /* request_topic/response: v3.1.1 replies */
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) {
    mosquitto_lib_init();
}

static void mark_done(client *c, int mid) {
    pthread_mutex_lock(&c->lock);
    c->done[(uint16_t)mid / 8] |= (uint8_t)(1u << ((uint16_t)mid % 8));
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props) {
    (void)m;
    (void)flags;
    (void)props;
    client *c = obj;
    pthread_mutex_lock(&c->lock);
    c->connected = rc == 0;
    c->connack = rc;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int reason,
                       const mosquitto_property *props) {
    (void)m;
    (void)reason;
    (void)props;
    mark_done(obj, mid);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props) {
    (void)m;
    (void)n;
    (void)granted;
    (void)props;
    mark_done(obj, mid);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props) {
    (void)m;
    client *c = obj;
    received r = {.topic = strdup(msg->topic), .payload = malloc((size_t)msg->payloadlen + 1),
                  .len = (size_t)msg->payloadlen};
    assert_non_null(r.topic);
    assert_non_null(r.payload);
    memcpy(r.payload, msg->payload, r.len);
    r.payload[r.len] = '\0';
    void *corr = NULL;
    uint16_t corr_len = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len,
                                       false)) {
        r.correlation = corr;
        r.correlation_len = corr_len;
    }
    pthread_mutex_lock(&c->lock);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->queue = realloc(c->queue, c->cap * sizeof(*c->queue));
        assert_non_null(c->queue);
    }
    c->queue[c->n++] = r;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

client *client_connect(int port, const char *id, int protocol, const char *username,
                       const char *password) {
    pthread_once(&lib_once, lib_init);
    client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    c->protocol = protocol;
    client_set_request_topic(c, "$CONTROL/aimdb/v1");
    c->mosq = mosquitto_new(id, true, c);
    assert_non_null(c->mosq);
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol);
    if (username) mosquitto_username_pw_set(c->mosq, username, password);
    mosquitto_connect_v5_callback_set(c->mosq, on_connect);
    mosquitto_publish_v5_callback_set(c->mosq, on_publish);
    mosquitto_subscribe_v5_callback_set(c->mosq, on_subscribe);
    mosquitto_message_v5_callback_set(c->mosq, on_message);
    assert_int_equal(mosquitto_connect_bind_v5(c->mosq, "127.0.0.1", port, 30, NULL, NULL),
                     MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(c->mosq), MOSQ_ERR_SUCCESS);
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&c->lock);
    while (!c->connected && c->connack == 0 &&
           pthread_cond_timedwait(&c->changed, &c->lock, &ts) == 0) {
    }
    bool ok = c->connected;
    pthread_mutex_unlock(&c->lock);
    if (!ok) {
        client_disconnect(c);
        return NULL;
    }
    return c;
}

static void wait_done(client *c, int mid) {
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    uint16_t m = (uint16_t)mid;
    pthread_mutex_lock(&c->lock);
    while (!(c->done[m / 8] & (1u << (m % 8))) &&
           pthread_cond_timedwait(&c->changed, &c->lock, &ts) == 0) {
    }
    bool done = c->done[m / 8] & (1u << (m % 8));
    c->done[m / 8] &= (uint8_t) ~(1u << (m % 8));
    pthread_mutex_unlock(&c->lock);
    assert_true(done);
}

void client_subscribe(client *c, const char *filter, int qos) {
    int mid;
    assert_int_equal(mosquitto_subscribe(c->mosq, &mid, filter, qos), MOSQ_ERR_SUCCESS);
    wait_done(c, mid);
}

void client_publish(client *c, const char *topic, const void *payload, size_t len, int qos) {
    int mid;
    assert_int_equal(mosquitto_publish(c->mosq, &mid, topic, (int)len, payload, qos, false),
                     MOSQ_ERR_SUCCESS);
    if (qos > 0) wait_done(c, mid);
}

/* Take the first queued message that match() accepts. */
static bool take(client *c, int timeout_ms, bool (*match)(const received *, const void *),
                 const void *arg, received *out) {
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        for (size_t i = 0; i < c->n; i++) {
            if (match && !match(&c->queue[i], arg)) continue;
            *out = c->queue[i];
            memmove(&c->queue[i], &c->queue[i + 1], (c->n - i - 1) * sizeof(*c->queue));
            c->n--;
            pthread_mutex_unlock(&c->lock);
            return true;
        }
        if (pthread_cond_timedwait(&c->changed, &c->lock, &ts) != 0) break;
    }
    pthread_mutex_unlock(&c->lock);
    return false;
}

bool client_receive(client *c, int timeout_ms, received *out) {
    return take(c, timeout_ms, NULL, NULL, out);
}

size_t client_pending(client *c) {
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void received_free(received *m) {
    free(m->topic);
    free(m->payload);
    free(m->correlation);
    memset(m, 0, sizeof(*m));
}

void client_disconnect(client *c) {
    if (!c) return;
    mosquitto_disconnect(c->mosq);
    mosquitto_loop_stop(c->mosq, false);
    mosquitto_destroy(c->mosq);
    for (size_t i = 0; i < c->n; i++) received_free(&c->queue[i]);
    free(c->queue);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ------------------------------------------------------------ requests */

typedef struct reply_key {
    const char *topic;
    const char *correlation; /* NULL: any */
} reply_key;

static bool is_reply(const received *m, const void *arg) {
    const reply_key *k = arg;
    if (strcmp(m->topic, k->topic) != 0) return false;
    if (!k->correlation) return true;
    return m->correlation && m->correlation_len == strlen(k->correlation) &&
           memcmp(m->correlation, k->correlation, m->correlation_len) == 0;
}

void client_set_request_topic(client *c, const char *topic) {
    snprintf(c->request_topic, sizeof(c->request_topic), "%s", topic);
    snprintf(c->response_topic, sizeof(c->response_topic), "%s/response", topic);
}

char *client_request(client *c, const char *request, const char *response_topic,
                     int timeout_ms) {
    return client_request_qos(c, request, response_topic, 1, timeout_ms);
}

char *client_request_qos(client *c, const char *request, const char *response_topic, int qos,
                         int timeout_ms) {
    mosquitto_property *props = NULL;
    char corr[32];
    reply_key key = {.topic = c->response_topic};
    if (response_topic) {
        assert_int_equal(c->protocol, MQTT_PROTOCOL_V5);
        snprintf(corr, sizeof(corr), "corr-%u", ++c->sequence);
        mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, response_topic);
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr, (uint16_t)strlen(corr));
        key.topic = response_topic;
        key.correlation = corr;
    }
    int mid;
    int rc = mosquitto_publish_v5(c->mosq, &mid, c->request_topic, (int)strlen(request),
                                  request, qos, false, props);
    mosquitto_property_free_all(&props);
    assert_int_equal(rc, MOSQ_ERR_SUCCESS);
    if (qos > 0) wait_done(c, mid);
    received m;
    if (!take(c, timeout_ms, is_reply, &key, &m)) return NULL;
    char *payload = m.payload;
    m.payload = NULL;
    received_free(&m);
    return payload;
}

int reply_count(const char *reply) {
    cJSON *j = cJSON_Parse(reply);
    cJSON *count = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "count");
    int n = cJSON_IsNumber(count) ? count->valueint : -1;
    cJSON_Delete(j);
    return n;
}

char *client_query_until(client *c, const char *params_json, int want, int timeout_ms) {
    char request[1024];
    snprintf(request, sizeof(request), "{\"id\":1,\"method\":\"record.query\",\"params\":%s}",
             params_json);
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        char *reply = client_request(c, request, c->protocol == MQTT_PROTOCOL_V5 ? "test/reply" : NULL,
                                     WAIT_MS);
        assert_non_null(reply);
        if (reply_count(reply) >= want || now_ms() >= deadline) return reply;
        free(reply);
        sleep_ms(50);
    }
}

long long metric_wait(int port, const char *topic, long long low, long long high,
                      int timeout_ms) {
    client *c = client_connect(port, "metric-wait", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    client_subscribe(c, topic, 0);
    long long value = -1;
    received m;
    for (long long deadline = now_ms() + timeout_ms;
         (value < low || value > high) && now_ms() < deadline;) {
        if (!client_receive(c, 500, &m)) continue;
        if (strcmp(m.topic, topic) == 0) value = atoll(m.payload);
        received_free(&m);
    }
    client_disconnect(c);
    return value;
}
