/*
 * client.h -- an MQTT test client (libmosquitto, its own network thread)
 * that keeps every message it receives, for the plugin's integration
 * tests.  Every wait is bounded; a missed deadline fails the test.
 */
#ifndef AIMDB_TEST_CLIENT_H
#define AIMDB_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <mosquitto.h>

typedef struct client client;

typedef struct received {
    char *topic;
    char *payload;          /* NUL-terminated copy */
    size_t len;
    void *correlation;      /* v5 Correlation Data, or NULL */
    size_t correlation_len;
} received;

/* Connect (protocol MQTT_PROTOCOL_V5 or MQTT_PROTOCOL_V311); username may
 * be NULL.  Returns NULL if the broker refuses. */
client *client_connect(int port, const char *id, int protocol, const char *username,
                       const char *password);
void client_subscribe(client *c, const char *filter, int qos);
/* Publish and, for QoS > 0, wait for the broker's acknowledgement. */
void client_publish(client *c, const char *topic, const void *payload, size_t len, int qos);
/* Next message received (waits up to timeout_ms).  False on timeout. */
bool client_receive(client *c, int timeout_ms, received *out);
void received_free(received *m);
/* Number of messages received and not taken yet. */
size_t client_pending(client *c);
void client_disconnect(client *c);

/* Where requests go: $CONTROL/aimdb/v1 (the plugin) unless set, e.g. to
 * aimdb-bridge's request topic; v3.1.1 replies come on TOPIC/response. */
void client_set_request_topic(client *c, const char *topic);

/* An AimX request; returns the reply payload (caller frees) or NULL on
 * timeout.  v5: reply on response_topic (which the caller subscribed to)
 * with a fresh Correlation Data that the reply must carry.  v3.1.1
 * (response_topic NULL): the reply arrives on REQUEST_TOPIC/response. */
char *client_request(client *c, const char *request, const char *response_topic,
                     int timeout_ms);
/* The same with the request published at QoS 0 or 1 (client_request: 1,
 * waiting for the PUBACK before the reply). */
char *client_request_qos(client *c, const char *request, const char *response_topic, int qos,
                         int timeout_ms);

/* Repeat a record.query until the result's "count" reaches want (history
 * commits every ~100 ms).  Returns the last reply; caller frees. */
char *client_query_until(client *c, const char *params_json, int want, int timeout_ms);
/* The "count" of a record.query reply, or -1. */
int reply_count(const char *reply);

/* Wait until the $SYS metric topic reads a number in [low, high]; the
 * last value read (-1: none) when it does or timeout_ms passed.  Read by a
 * subscriber of its own, which gets the retained value first: a metric is
 * published only when it changes, so a client that takes it while waiting
 * for another discards it, and may then wait for a change that never comes. */
long long metric_wait(int port, const char *topic, long long low, long long high,
                      int timeout_ms);

#endif
