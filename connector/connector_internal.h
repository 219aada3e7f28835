/*
 * connector_internal.h -- the connector's state and the seams between its
 * files (see connector.h for what it does).
 *
 *   connector.c   options, the session thread (connect, backoff,
 *                 outbound), Paho's callbacks, publish, stats; inbound
 *                 values reach their records through a relay (relay.h)
 *   links_in.c    inbound links and handlers: routing a received message,
 *                 keeping the broker's subscriptions in step with the links
 *   links_out.c   outbound links: a reader and a wake-up tap per record
 *   redelivery.c  the last deliveries taken, to recognise the broker's
 *                 resending of one after a reconnect or a restart
 *
 * Threads and locks.  Paho runs the callbacks on its own threads; the
 * session thread connects and publishes outbound values; set_links_in runs
 * on its caller's.  `lock` guards the session state below it; `links_lock`
 * (a rwlock: every received message reads it) guards the inbound links.
 * No Paho function is called with `lock` held: Paho may hold its own mutex
 * while calling us, and the reverse order would deadlock.
 */
#ifndef AIMDB_CONNECTOR_INTERNAL_H
#define AIMDB_CONNECTOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <MQTTAsync.h>

#include "aimdb/broker_url.h"
#include "aimdb/connector.h"
#include "aimdb/mqtt_route.h"
#include "aimdb/relay.h"
#include "aimdb/runtime.h"

/* One distinct topic filter the session subscribes to.  Its subscription
 * identifier tells which subscription delivered a message. */
typedef struct subscription {
    char *filter;
    int qos;
    int id; /* MQTT v5 subscription identifier: a hash of filter (links_in.c) */
} subscription;

typedef struct link_in {
    char *filter, *name_template;
    aimdb_link_open_fn open;
    void *open_ctx;
    aimdb_buffer_cfg buffer;
    const aimdb_codec *codec;
    int sub_id; /* of the subscription for this filter */
} link_in;

typedef struct handler {
    char *filter;
    int qos;
    aimdb_message_fn fn;
    void *ctx;
    int sub_id;
} handler;

/* The inbound side, replaced whole by set_links_in. */
typedef struct inbound {
    link_in *links;
    size_t n_links;
    aimdb_router *router; /* rule i = links[i] */
} inbound;

typedef struct link_out link_out;

/* The broker's in-flight limit we ask for (MQTT v5 Receive Maximum), and
 * so the deliveries redelivery.c must remember. */
#define REDELIVERY_WINDOW 1024

/* The last `count` QoS 1/2 deliveries taken, oldest overwritten first at
 * `next`.  Invariant: count <= REDELIVERY_WINDOW, next < REDELIVERY_WINDOW,
 * and next == count until the ring is full. */
typedef struct redelivery {
    uint64_t taken[REDELIVERY_WINDOW]; /* redelivery_key of each */
    size_t count, next;
} redelivery;

typedef enum session_state {
    SESSION_DOWN,       /* waiting for next_attempt_ms */
    SESSION_CONNECTING, /* a connect is in flight */
    SESSION_UP,         /* connected; subscriptions may still be pending */
} session_state;

struct aimdb_connector {
    aimdb_db *db;
    const aimdb_runtime *rt;
    MQTTAsync paho;
    aimdb_broker_url url;
    char *client_id, *username, *password, *ca_file, *cert_file, *key_file;
    unsigned keepalive_s, retry_min_ms, retry_max_ms, session_expiry_s;

    aimdb_thread *thread;       /* the session thread, from the runtime */
    /* Inbound values to aimdb_produce.  Its one producer is Paho's receive
     * thread (MQTTAsync delivers every message on that one thread). */
    aimdb_relay *relay;         /* set at start; cleared by stop under lock */
    uint64_t relay_failed;      /* its refusals once stopped; guarded by lock */
    bool started;

    pthread_mutex_t lock;
    pthread_cond_t cond;        /* session thread's wake-up; connected waiters */
    session_state state;        /* guarded by lock */
    bool stopping;              /* guarded by lock */
    bool out_pending;           /* an outbound value may be waiting; guarded by lock */
    unsigned subs_pending;      /* SUBACKs outstanding; guarded by lock */
    unsigned session;           /* counts sessions, so a late SUBACK of a lost one
                                 * is not counted for the next; guarded by lock */
    size_t announce_subs;       /* > 0: log this session's subscriptions once
                                 * subs_pending reaches 0; guarded by lock */
    int64_t next_attempt_ms;    /* guarded by lock */
    unsigned backoff_ms;        /* guarded by lock */
    int last_failure;           /* Paho's code of the last failed connect; guarded by lock */
    char last_failure_text[128];

    pthread_rwlock_t links_lock;
    inbound in;                 /* guarded by links_lock */
    subscription *subs;         /* distinct filters of links and handlers; links_lock */
    size_t n_subs;
    char **unsubs;              /* filters to unsubscribe once up; links_lock */
    size_t n_unsubs;
    handler *handlers;          /* fixed at start */
    size_t n_handlers;

    link_out **outs;            /* fixed at start */
    size_t n_outs;
    char *out_buf;              /* session thread's serialisation buffer */
    size_t out_cap;

    aimdb_log_limit drop_log;   /* guarded by lock */
    _Atomic int delivering;     /* on_message calls running (stop waits for 0) */
    _Atomic bool closed;        /* set by stop: on_message drops what still comes */
    redelivery redelivery;      /* Paho's receive thread; before start, after stop */
    char *session_file;         /* where redelivery is kept across restarts, or NULL */

    struct {
        _Atomic uint64_t connects, connect_failures, disconnects, received, produced, unrouted,
            duplicates, redelivered, dropped, published, publish_failed, lost;
    } stats;
};

/* connector.c */
void connector_wake(aimdb_connector *c); /* make the session thread look again */
bool connector_is_up(aimdb_connector *c);
void connector_note_drop(aimdb_connector *c, const char *topic, const char *why);
/* Subscribe to one filter on the live session (no-op while down: the next
 * session subscribes to everything).  Called without `lock`. */
void connector_subscribe(aimdb_connector *c, const char *filter, int qos, int id);
/* Send an UNSUBSCRIBE (callers know a session is up).  Without `lock`. */
void connector_unsubscribe(aimdb_connector *c, const char *filter);

/* redelivery.c */
uint64_t redelivery_key(int msgid, const char *topic, size_t topic_len, const void *payload,
                        size_t len);
void redelivery_clear(redelivery *r);
bool redelivery_seen(const redelivery *r, uint64_t key);
void redelivery_note(redelivery *r, uint64_t key);
/* AIMDB_OK, or AIMDB_EIO / AIMDB_EINVAL with the reason in err (the list
 * is then empty, for load). */
int redelivery_save(const redelivery *r, const char *path, char *err, size_t errlen);
int redelivery_load(redelivery *r, const char *path, char *err, size_t errlen);

/* links_in.c */
/* Route one received message to its handler or record.  Paho's thread. */
void links_in_deliver(aimdb_connector *c, const char *topic, size_t topic_len,
                      const MQTTAsync_message *m);
/* Copy the session's subscriptions (for a new session), links_lock held.
 * Caller frees with subscriptions_free; on ENOMEM *n is 0. */
int links_in_snapshot_locked(aimdb_connector *c, subscription **out, size_t *n);
/* Move out the filters waiting to be unsubscribed (links_lock held for
 * writing); the caller frees each and the array. */
void links_in_take_unsubscribes(aimdb_connector *c, char ***out, size_t *n);
void subscriptions_free(subscription *s, size_t n);
void links_in_free(aimdb_connector *c);
/* The subscription identifier of filter in *subs, adding the filter if
 * new (a stable hash of it, unique within *subs).  -1 on ENOMEM. */
int subscription_id(subscription **subs, size_t *n, const char *filter, int qos);

/* links_out.c */
/* Publish what every outbound link's reader holds.  Session thread. */
void links_out_drain(aimdb_connector *c);
void links_out_free(aimdb_connector *c);

#endif
