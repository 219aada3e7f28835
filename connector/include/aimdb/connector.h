/*
 * connector.h -- records linked to topics on any MQTT broker, over Paho-C.
 *
 * The Mosquitto plugin sees every message of the broker it runs in; the
 * connector is for the other case: a broker that cannot load the plugin, a
 * device network on another host.  One connector is one MQTT v5 session:
 *
 *   inbound links   a topic filter and a record-name template (the same
 *                   templates as aimdb.conf, mqtt_route.h): every message
 *                   matching the filter is produced into the record the
 *                   template names, opened on its first value.  The first
 *                   link whose filter matches wins, as in aimdb.conf; a
 *                   message that several overlapping subscriptions deliver
 *                   is produced once (MQTT v5 subscription identifiers).
 *   outbound links  a record's values published to a topic, as they are
 *                   produced.  While the broker is away, values wait in the
 *                   record's own buffer, with its semantics: a ring keeps
 *                   its last N (older ones are counted as lost), latest
 *                   keeps the newest only.  Nothing queues without bound.
 *   handlers        a callback for raw messages on a filter (aimdb-bridge's
 *                   requests), and aimdb_connector_publish to answer.
 *
 * The session reconnects by itself with exponential backoff and restores
 * every subscription; outages are counted and logged (rate-limited) with
 * the reason in words ("Connection refused", "cannot resolve host ...").
 * Producers never wait for the network: inbound values are produced on
 * Paho's receive thread, outbound values are read by the connector's own
 * thread.  TLS is used for mqtts:// and ssl:// URLs (Paho's OpenSSL build).
 *
 * Library aimdb_connector (links Paho's paho-mqtt3as).  Log lines go
 * through the database's runtime.
 */
#ifndef AIMDB_CONNECTOR_H
#define AIMDB_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aimdb_connector aimdb_connector;

typedef struct aimdb_connector_options {
    const char *broker;          /* URL (broker_url.h); NULL: mqtt://localhost:1883 */
    const char *client_id;       /* NULL: "aimdb-HOST-PID-RANDOM" */
    const char *username;        /* NULL: none */
    const char *password;
    const char *ca_file;         /* TLS URLs only; NULL: the system's CAs */
    const char *cert_file, *key_file; /* client certificate, both or neither */
    unsigned keepalive_s;        /* 0: 30 */
    unsigned retry_min_ms;       /* first reconnect delay; 0: 500 */
    unsigned retry_max_ms;       /* backoff ceiling; 0: 30000 */
    /* 0: a clean session on every connect.  Otherwise the broker keeps the
     * session this long after a disconnect: subscriptions stay and QoS 1/2
     * messages for us queue up (within the broker's limits) until we are
     * back, also across a restart with the same client_id. */
    unsigned session_expiry_s;
    /* NULL: none.  With a session, the file (rewritten at stop, read at
     * start) that keeps the last deliveries taken, so that after a restart
     * the broker's resending of a message already taken is skipped. */
    const char *session_file;
} aimdb_connector_options;

/* Check the options (the URL, the TLS files) and create an unconnected
 * connector on db (which must outlive it).  AIMDB_EINVAL with the reason in
 * err, e.g. "bad broker URL 'x': no scheme ...", or AIMDB_ENOMEM. */
int aimdb_connector_new(aimdb_db *db, const aimdb_connector_options *o, aimdb_connector **out,
                        char *err, size_t errlen);

/* --------------------------------------------------------------- links */

/* The record an inbound link's name resolves to, on its first value:
 * AIMDB_OK and *out, or an error status that drops the message (counted and
 * logged, rate-limited, with the status's words).  Runs on Paho's receive
 * thread. */
typedef int (*aimdb_link_open_fn)(const char *name, size_t link, void *ctx, aimdb_record **out);

typedef struct aimdb_link_in {
    const char *filter;          /* MQTT topic filter */
    const char *name_template;   /* checked against filter, mqtt_route.h */
    int qos;                     /* 0, 1 or 2 */
    /* How a new name gets its record: open(name, index of this link, ctx)
     * if open is set, else registered with buffer and codec (codec NULL:
     * aimdb_codec_mqtt_auto, raw payload bytes). */
    aimdb_link_open_fn open;
    void *open_ctx;
    aimdb_buffer_cfg buffer;
    const aimdb_codec *codec;
} aimdb_link_in;

/*
 * Set the inbound links, in priority order, replacing those set before
 * (strings are copied).  Before start or while running: subscriptions are
 * changed to match at once, and once this returns no message is routed by
 * the old links any more (their open_ctx may be freed).  AIMDB_EINVAL with
 * the reason ("link 2: '+' must be a whole level") leaves the old links in
 * place.  Not from a link's or handler's callback.
 */
int aimdb_connector_set_links_in(aimdb_connector *c, const aimdb_link_in *links, size_t n,
                                 char *err, size_t errlen);

/* Serialise a value for an outbound link, snprintf-style: write at most
 * cap bytes into out and return the full length, or a negative number to
 * skip the value (counted).  Runs on the connector's thread. */
typedef long (*aimdb_serialize_fn)(const aimdb_value *v, char *out, size_t cap, void *ctx);

/*
 * Publish every value of rec from now on to topic (a topic name, no
 * wildcards).  Without serialize, a variable-length record's bytes are the
 * payload as they are (an MQTT-fed record republishes what it received)
 * and a fixed-size record's value is its codec's JSON text.  Before start
 * only; AIMDB_EINVAL for a bad topic or QoS.
 */
int aimdb_connector_link_out(aimdb_connector *c, aimdb_record *rec, const char *topic, int qos,
                             bool retain, aimdb_serialize_fn serialize, void *ctx, char *err,
                             size_t errlen);

/* ------------------------------------------------------------ messages */

/* An MQTT message, as a handler receives it and as it is published. */
typedef struct aimdb_mqtt_message {
    const char *topic;
    const void *payload;
    size_t len;
    int qos;
    bool retain;
    const char *response_topic;  /* MQTT v5 Response Topic, or NULL */
    const void *correlation;     /* MQTT v5 Correlation Data, or NULL */
    size_t correlation_len;
} aimdb_mqtt_message;

/* Everything in m is valid during the call only.  Runs on Paho's receive
 * thread: hand slow work elsewhere. */
typedef void (*aimdb_message_fn)(const aimdb_mqtt_message *m, void *ctx);

/* Call fn for each message on filter, before any inbound link is tried (a
 * message a handler takes is not produced).  Before start only. */
int aimdb_connector_handle(aimdb_connector *c, const char *filter, int qos, aimdb_message_fn fn,
                           void *ctx, char *err, size_t errlen);

/* Publish without waiting (any thread, also from callbacks).  AIMDB_EAGAIN
 * while disconnected (nothing is queued), AIMDB_ESTOPPED after stop,
 * AIMDB_EINVAL for a bad topic or QoS, a payload over MQTT's 256 MiB or a
 * response topic or correlation data over 65,535 bytes, AIMDB_EIO if Paho
 * refuses. */
int aimdb_connector_publish(aimdb_connector *c, const aimdb_mqtt_message *m);

/* ---------------------------------------------------------- lifecycle */

/* Start connecting (in the background: an unreachable broker is retried
 * and logged, never fatal).  The database must be started first.  Once. */
int aimdb_connector_start(aimdb_connector *c);

/* Wait until the session is up (subscriptions acknowledged); false after
 * timeout_ms.  For start-up messages and tests; any thread. */
bool aimdb_connector_wait_connected(aimdb_connector *c, int timeout_ms);

/* Disconnect and stop the connector's thread.  Every message Paho handed
 * over before this returns has been produced; later publishes get
 * AIMDB_ESTOPPED.  Idempotent. */
void aimdb_connector_stop(aimdb_connector *c);

/* Stop if needed and free.  NULL is fine.  With outbound links, free it
 * after aimdb_db_stop (their taps may run until then) and before
 * aimdb_db_free (it closes their readers). */
void aimdb_connector_free(aimdb_connector *c);

typedef struct aimdb_connector_stats {
    bool connected;
    uint64_t connects;         /* sessions established */
    uint64_t connect_failures; /* attempts that failed */
    uint64_t disconnects;      /* sessions lost */
    uint64_t received;         /* messages delivered by the broker */
    uint64_t produced;         /* ... handed on to be produced into a record */
    uint64_t unrouted;         /* ... no link matched */
    uint64_t duplicates;       /* ... copies from overlapping subscriptions, skipped */
    uint64_t redelivered;      /* ... QoS 1/2 messages sent again that were taken, skipped */
    uint64_t dropped;          /* ... routed but not produced (bad name, open failed, too big) */
    uint64_t published;        /* outbound values and publishes handed to Paho */
    uint64_t publish_failed;   /* refused: disconnected, serialiser skipped, Paho error */
    uint64_t lost;             /* outbound values a ring overwrote before they went out,
                                * or read as the session dropped (at most one per link) */
} aimdb_connector_stats;

void aimdb_connector_stats_get(aimdb_connector *c, aimdb_connector_stats *out);

#ifdef __cplusplus
}
#endif
#endif
