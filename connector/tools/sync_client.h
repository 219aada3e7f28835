/*
 * sync_client.h -- a blocking MQTT v5 client for the command-line tools (the
 * `aimdb` CLI and aimdb-mcu-sim), over Paho's synchronous MQTTClient.
 *
 * One request, a burst of publishes: nothing here needs a callback thread,
 * so every call waits for its acknowledgement with the client's timeout and
 * every failure comes back as one readable sentence naming the broker and
 * the cause (unknown host, connection refused, not authorized, ...).
 * Internal to connector/.  One thread per client.
 */
#ifndef AIMDB_SYNC_CLIENT_H
#define AIMDB_SYNC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <MQTTClient.h>

typedef struct sync_options {
    const char *broker;      /* URL (broker_url.h); NULL = AIMDB_BROKER_URL_DEFAULT */
    const char *client_id;   /* NULL: "<id_prefix>-<unique token>" */
    const char *id_prefix;
    const char *username, *password;
    const char *ca_file, *cert_file, *key_file; /* TLS URLs only */
    int timeout_ms;          /* connect and every acknowledgement */
} sync_options;

typedef struct sync_client sync_client;

/* Check the URL and connect (MQTT v5, clean start).  On failure *out is NULL
 * and err says why; bad URLs and bad TLS files are told apart from
 * unreachable brokers by the return: -2 for the former (a usage error), -1
 * for the latter. */
int sync_connect(const sync_options *o, sync_client **out, char *err, size_t errlen);

/* Subscribe and wait for the SUBACK; -1 with err on refusal or timeout. */
int sync_subscribe(sync_client *c, const char *filter, int qos, char *err, size_t errlen);

/* Publish; for QoS 1 and 2 wait until the broker has it.  props may be
 * NULL.  -1 with err on failure. */
int sync_publish(sync_client *c, const char *topic, const void *payload, size_t len, int qos,
                 MQTTProperties *props, char *err, size_t errlen);

/* The next message, waiting until deadline (aimdb_monotonic_ms clock).
 * 1: *topic and *msg are the caller's (MQTTClient_free / freeMessage);
 * 0: deadline passed; -1: connection lost (err says so). */
int sync_receive(sync_client *c, long long deadline_ms, char **topic, MQTTClient_message **msg,
                 char *err, size_t errlen);

/* Still connected (false once Paho has seen the connection drop). */
bool sync_connected(sync_client *c);

const char *sync_broker(const sync_client *c); /* the URL as given */
const char *sync_token(const sync_client *c);  /* unique per run, one topic level */

/* Disconnect (if connected) and free; NULL is fine. */
void sync_close(sync_client *c);

#endif
