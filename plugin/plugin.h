/*
 * plugin.h -- the Mosquitto plugin's shared state and the seams between its
 * files.  Internal to plugin/; the broker sees only mosquitto_plugin_*.
 *
 * The plugin is glue: broker events become library calls.  Mosquitto's API
 * is single-threaded, so the rule that shapes every file here is which
 * thread may touch what:
 *
 *   broker thread   every MOSQ_EVT_* callback, plugin init/cleanup, and
 *                   every mosquitto_* call (publish, log, ACL check).  It
 *                   owns the rule set, the catalog and the request registry
 *                   without locks, never waits on I/O or SQL, and hands
 *                   each routed value to the relay without a lock.
 *   aimdb threads   the relay (produce), tap workers, the SQLite writer,
 *                   query threads, the retention sweeper; all at a lower
 *                   priority than the broker (host.c).  They reach the
 *                   broker only through the outbox (replies, log lines),
 *                   which the broker thread drains on MOSQ_EVT_TICK after a
 *                   wake-up signal (wake.c).
 */
#ifndef AIMDB_PLUGIN_H
#define AIMDB_PLUGIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "aimdb/aimdb.h"
#include "aimdb/aimx.h"
#include "aimdb/gateway.h"
#include "aimdb/mpsc.h"
#include "aimdb/mqtt_conf.h"
#include "aimdb/mqtt_route.h"
#include "aimdb/payload.h"
#include "aimdb/persist.h"
#include "aimdb/relay.h"

#define PLUGIN_REQUEST_TOPIC "$CONTROL/aimdb/v1"
#define PLUGIN_RESPONSE_TOPIC "$CONTROL/aimdb/v1/response"
#define PLUGIN_WHO "the broker" /* what restarts to apply what a reload cannot */

typedef struct plugin plugin;

/* ------------------------------------------------------------- outbox.c */

/* Work handed to the broker thread.  deliver runs there exactly once, with
 * broker_alive false when the plugin is shutting down (publish nothing),
 * and frees the item. */
typedef struct outbox_item outbox_item;
struct outbox_item {
    aimdb_mpsc_node node; /* first: the FIFO links items */
    void (*deliver)(outbox_item *item, plugin *pl, bool broker_alive);
};

typedef struct outbox {
    aimdb_mpsc fifo;            /* pushed by any thread, popped by the broker thread */
    _Atomic size_t depth;       /* items being pushed or queued, not yet popped */
    _Atomic bool wake_pending;  /* a wake-up was sent and not yet drained */
} outbox;

/* Empty; nothing to destroy (the items are gone once drained). */
void outbox_init(outbox *o);
/* Queue an item (any thread, never blocks).  urgent: make the broker thread
 * drain soon (signalled only if no wake-up is already on its way). */
void outbox_push(plugin *pl, outbox_item *item, bool urgent);
/* Broker thread: deliver, in order, the items queued when it began; with
 * every other thread stopped, that is all of them. */
void outbox_drain(plugin *pl, bool broker_alive);
/* Items queued (any thread; a moment's count). */
size_t outbox_depth(outbox *o);

/* --------------------------------------------------------------- wake.c */

/* Interrupts the broker's epoll_wait with a real-time signal. */
typedef struct wake {
    pthread_t broker;
    int signo;        /* 0: no free signal; replies then wait for the next tick */
    timer_t backup;   /* re-sends the signal shortly after, see wake.c */
    bool has_backup;
} wake;

/* Broker thread, at init: pick an unused real-time signal, install a no-op
 * handler and the backup timer.  False if no signal is free. */
bool wake_install(wake *w);
/* Any thread other than the broker's. */
void wake_broker(const wake *w);
/* Any thread: only the backup, a wake-up BACKUP_MS from now (wake.c). */
void wake_broker_later(const wake *w);
/* At cleanup, once no thread can call wake_broker: ignore the signal. */
void wake_uninstall(wake *w);

/* --------------------------------------------------------------- host.c */

/* The runtime libaimdb runs on inside the broker: threads that block every
 * signal (process signals belong to the broker thread) and run below the
 * broker's priority, and logs that reach the broker's log from the broker
 * thread only. */
void host_runtime_init(plugin *pl);
/* Log through the broker thread (plugin's own messages; any thread). */
void plugin_log(plugin *pl, aimdb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool on_broker_thread(const plugin *pl);

/* ------------------------------------------------------------- config.c */

/* What the broker gave us at init, copied: on reload Mosquitto passes no
 * options, so the same file and overrides are read again. */
typedef struct plugin_options {
    char *config_path;       /* plugin_opt_config, or NULL */
    size_t n_overrides;
    char **keys, **values;   /* every other plugin_opt_<key> */
} plugin_options;

int options_copy(plugin_options *out, const struct mosquitto_opt *opts, int n, char *err,
                 size_t errlen);
void options_free(plugin_options *o);
/* Read aimdb.conf (or nothing if no path) and apply the overrides.
 * Errors read "aimdb.conf:LINE: reason" or "plugin_opt_KEY: reason". */
int config_load(const plugin_options *o, aimdb_conf **out, char *err, size_t errlen);

/* ------------------------------------------------------------ catalog.c */

/* Every record name the plugin knows: live records and names found in
 * history.  Entries are never removed and their names never move, so other
 * threads may keep pointers to them until the plugin is torn down. */
typedef struct catalog_entry {
    char *name;             /* in the entry's own allocation, after it */
    aimdb_record *record;   /* NULL until a value arrives (history only) */
    /* Every topic a rule could produce this name from: decides values whose
     * own topic is not in topics below.  Empty: no rule produces the name,
     * or too many ways do (then only unrestricted clients see such values). */
    aimdb_sources sources;
    /* Topics values of this record were published on, seen at ingest and
     * interned: a value's source points at one of these.  At most
     * AIMDB_SOURCES_MAX; values from further topics carry no source. */
    aimdb_sources topics;
    aimdb_rule_options options;   /* the options the record was opened with */
    bool warned_conflict;   /* logged that another rule disagrees */
} catalog_entry;

typedef struct catalog catalog;

/* FNV-1a of a name; the catalog's and the ACL views' hash. */
uint64_t catalog_hash(const char *name);
catalog *catalog_new(void);
void catalog_free(catalog *c);
catalog_entry *catalog_find(catalog *c, const char *name);
/* Add a name (sources moved in).  NULL on ENOMEM. */
catalog_entry *catalog_add(catalog *c, const char *name, aimdb_sources *sources);
size_t catalog_count(const catalog *c);
catalog_entry *catalog_at(catalog *c, size_t i);
/* The entries whose name starts with prefix[0..len): positions *first ..
 * *first + *n - 1 of catalog_sorted_at, in name order.  False on ENOMEM.
 * O(log names), plus O(names) once after names were added. */
bool catalog_prefix_range(catalog *c, const char *prefix, size_t len, size_t *first,
                          size_t *n);
/* Valid until the next catalog_prefix_range. */
catalog_entry *catalog_sorted_at(const catalog *c, size_t i);

/* ------------------------------------------------------------ records.c */

/* Register entry's record with the rule's options, its attributes and its
 * persistence.  Broker thread. */
int records_open(plugin *pl, catalog_entry *e, const aimdb_ruleset *rs, size_t rule);
/* The same for a routed name: *e is its catalog entry if it has one (a name
 * from history), else NULL and set to a new entry (sources from topic) once
 * the record is open.  AIMDB_EFULL: max_records reached, nothing added. */
int records_open_routed(plugin *pl, const aimdb_ruleset *rs, size_t rule, const char *name,
                        const char *topic, catalog_entry **e);
/* The interned source for a value of e published on topic: the entry's
 * copy of the topic, added if new; NULL once the entry holds
 * AIMDB_SOURCES_MAX topics (or memory ran out): such values are decided
 * by e->sources.  Broker thread; O(topics the record has seen). */
const char *records_source(catalog_entry *e, const char *topic);
/* Re-apply a rule to an existing record (reload): persistence on, new
 * retention; anything that needs a new record is logged. */
void records_update(plugin *pl, catalog_entry *e, const aimdb_ruleset *rs, size_t rule);
/* Catalog every fixed-name rule's record, opening it. */
int records_open_fixed(plugin *pl, const aimdb_ruleset *rs);
/* Catalog every history name some rule produces (no record opened).  A
 * failure is logged and leaves the catalog as it was: the broker goes on
 * without it (MQTT never stops for a history problem; a damaged file the
 * scan found is moved aside by the backend, and a new history has no
 * names to catalog). */
void records_scan_history(plugin *pl, const aimdb_ruleset *rs);

/* ------------------------------------------------------------ clients.c */

/* Per client that sends requests: its share of the pending requests and
 * the broker's read decisions for it (see clients.c for what invalidates
 * them).  Broker thread only. */
typedef struct client_state client_state;

bool clients_init(plugin *pl);
void clients_free(plugin *pl);
/* The client's state, made on its first request.  NULL on ENOMEM. */
client_state *clients_get(plugin *pl, struct mosquitto *client);
/* MOSQ_EVT_DISCONNECT: the state goes with the last pending request. */
void clients_gone(plugin *pl, const struct mosquitto *client);
/* Count one more pending request of cs, if its share and the budget allow;
 * else false with the busy message (when to retry) in why. */
bool client_admit(plugin *pl, client_state *cs, char *why, size_t cap);
void client_release(plugin *pl, client_state *cs);
/* broker_may_read, remembered per client.  topic must keep its address
 * and text until the next acl_init (the catalog's strings, constants). */
bool client_may_read(plugin *pl, client_state *cs, struct mosquitto *client, const char *topic);

/* ---------------------------------------------------------------- acl.c */

/* Which catalog names one client may see among those a request reads,
 * computed on the broker thread (where broker_may_read runs) and then
 * read-only on any thread. */
typedef struct acl_view acl_view;

/* NULL on ENOMEM.  The view copies what it needs of scope. */
acl_view *acl_view_new(plugin *pl, struct mosquitto *client, client_state *cs,
                       aimdb_aimx_scope scope);
void acl_view_free(acl_view *v);
/* The access predicate over a view (valid as long as the view). */
const aimdb_access *acl_view_access(const acl_view *v);

/* ---------------------------------------------------------- broker_acl.c */

/* What decides on this broker whether a client may read a topic, found
 * from its configuration at start (and again on reload) and logged; bumps
 * pl->acl_generation, which invalidates every remembered decision.  False
 * if nothing can be shown to anyone (every check fails closed). */
bool acl_init(plugin *pl);
/* May client read topic, as the broker decides for a delivery?  Broker
 * thread only. */
bool broker_may_read(plugin *pl, struct mosquitto *client, const char *topic);
void acl_cleanup(plugin *pl);

/* ---------------------------------------------------------- broker_api.c */

/* Broker thread, at init: what this broker offers beyond the plugin API
 * every supported Mosquitto exports (2.1's additions), logged once, with
 * what holds for QoS 2 retransmissions. */
void broker_api_init(plugin *pl);
/* Free what mosquitto_property_read_string/_binary returned, with the
 * allocator that made it (see broker_api.c). */
void broker_free_read(const plugin *pl, void *p);

/* ----------------------------------------------------------- requests.c */

typedef struct request request;

/* Broker thread: a request from client, replied to per docs/protocol.md.
 * NULL on ENOMEM (nothing can be sent). */
request *request_new(plugin *pl, const struct mosquitto_evt_control *ev);
/* Count r as pending for its client (clients.c); false: busy, why says
 * when to retry. */
bool request_admit(request *r, char *why, size_t cap);
client_state *request_client(request *r);
/* The view r is answered with; r owns it from here. */
void request_set_view(request *r, acl_view *v);
/* The aimdb_aimx_reply_fn for a request (any thread). */
void request_reply(char *reply, size_t len, void *req);
/* Broker thread: the client left; its pending replies are dropped. */
void requests_client_gone(plugin *pl, const struct mosquitto *client);
/* Free r without a reply (its payload could not even be read). */
void request_drop(request *r);

/* ---------------------------------------------------------- callbacks */

int ingest_on_message(int event, void *event_data, void *userdata);
int control_on_request(int event, void *event_data, void *userdata);
int reload_on_reload(int event, void *event_data, void *userdata);

/* -------------------------------------------------------- broker_conf.c */

enum { BROKER_CONF_OK, BROKER_CONF_NONE, BROKER_CONF_UNREADABLE };

/* One "KEY VALUE" line of the broker's configuration; false stops. */
typedef bool (*broker_conf_line_fn)(const char *key, const char *value, void *ctx);
/* Every line in the order Mosquitto reads them.  BROKER_CONF_NONE: the
 * broker was started without a file; _UNREADABLE: a file or include_dir
 * could not be read (its path in bad). */
int broker_conf_each(broker_conf_line_fn fn, void *ctx, char *bad, size_t bad_cap);
/* A setting of the broker's own configuration (last one wins); false if it
 * is not there (or there is no file). */
bool broker_conf_get(const char *key, char *value, size_t cap);

/* ------------------------------------------------------------ metrics.c */

typedef struct metrics {
    int64_t interval_ms;   /* the broker's sys_interval; 0 = off */
    int64_t next_ms;
    uint64_t last[24];     /* last published values, to publish changes only */
    uint64_t uplink_last[5];
    char uplink_state[300]; /* last published uplink/state */
    bool published_once;
} metrics;

void metrics_init(plugin *pl);
/* Broker thread, on every tick: publish $SYS/broker/aimdb/... when due. */
void metrics_tick(plugin *pl);

/* -------------------------------------------------------------- setup.c */

/* Open the gateway (database, history, request handler) for a
 * configuration and the relay; on failure everything opened is closed
 * again. */
int setup_open(plugin *pl, const aimdb_conf *conf, char *err, size_t errlen);
/* Stop (taps drained, history committed) and free. */
void setup_close(plugin *pl);

/* --------------------------------------------------------------- state */

typedef struct plugin_counters {
    uint64_t routed;       /* messages produced into a record */
    uint64_t unrouted;     /* messages no rule matched */
    uint64_t dropped;      /* routed but not queued (bad name, ENOMEM); see aimdb_relay_failed */
    uint64_t requests;     /* $CONTROL/aimdb/v1 requests */
} plugin_counters;

typedef struct broker_acl broker_acl;
typedef int (*broker_pattern_match_fn)(const char *sub, const char *topic, const char *clientid,
                                       const char *username, bool *result);

struct plugin {
    mosquitto_plugin_id_t *id;
    size_t callbacks_registered; /* plugin.c: how many of its table */
    pthread_t broker_thread;
    int broker_nice;            /* host.c: aimdb's threads run below it */
    aimdb_runtime runtime;      /* host.c */
    outbox outbox;
    wake wake;
    plugin_options options;

    /* Broker thread only. */
    aimdb_ruleset *rules;
    catalog *catalog;
    request *requests;          /* in flight, requests.c */
    plugin_counters counters;
    metrics metrics;
    broker_acl *acl;            /* broker_acl.c */
    uint64_t acl_generation;    /* bumped by acl_init */
    struct clients *clients;    /* clients.c */
    struct {                    /* broker_api.c */
        bool api_2_1;           /* Mosquitto 2.1's plugin API is there */
        broker_pattern_match_fn matches_with_pattern; /* 2.1's, or NULL */
        void (*free_read)(void *); /* see broker_free_read */
    } broker;
    aimdb_log_limit drop_log;

    /* Opened by setup.c. */
    aimdb_gateway gw;           /* db, history, AimX; gw.max_payload: larger
                                 * payloads are not recorded */
    aimdb_relay *relay;         /* broker thread -> aimdb_produce */
};

#endif
