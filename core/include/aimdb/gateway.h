/*
 * gateway.h -- aimdb.conf put to work: its rules ready to route, the record
 * database with SQLite history and the AimX handler built from its
 * settings, and records opened the way their rule says.
 *
 * Two programs feed records from MQTT: the Mosquitto plugin (messages from
 * the broker it runs in) and aimdb-bridge (messages from any broker, over
 * Paho).  Both go through this layer, so one aimdb.conf means the same
 * records, buffers, formats and history in either, and a reload treats
 * them the same.  What differs stays in the program: where messages come
 * from, which thread may log, who may see which record.
 *
 * Library aimdb_gateway, above aimdb_aimx, aimdb_sqlite, aimdb_persist and
 * aimdb_mqtt.  Log lines go through the runtime given to aimdb_gateway_open.
 */
#ifndef AIMDB_GATEWAY_H
#define AIMDB_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"
#include "aimdb/aimx.h"
#include "aimdb/mqtt_conf.h"
#include "aimdb/mqtt_route.h"
#include "aimdb/persist.h"
#include "aimdb/postgres.h"
#include "aimdb/relay.h"
#include "aimdb/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plugin's database when aimdb.conf names none (aimdb-bridge has its
 * own default, ./data/CLIENT-ID.db, so the two never share one). */
#define AIMDB_GATEWAY_DEFAULT_DATABASE "./data/aimdb.db"
#define AIMDB_GATEWAY_DEFAULT_MAX_PAYLOAD (1024 * 1024) /* bytes kept per value */
/* Records open at once.  A wildcard rule opens a record for every name its
 * topics produce and records live until shutdown, so a client inventing
 * names (an id or a time in the topic) would otherwise grow memory for as
 * long as the gateway runs; past the limit such values are dropped, counted
 * and logged.  Far above what one gateway's devices produce. */
#define AIMDB_GATEWAY_DEFAULT_MAX_RECORDS 10000
/* Bytes held in memory for values (aimdb_db_options.max_memory: record
 * buffers and the relay's backlog three quarters, the SQLite write queue a
 * quarter).  Sized for a 512 MB gateway: after the kernel, the system's
 * services and Mosquitto's own client queues, 64 MiB is an eighth of its
 * memory, and it holds the steady state of thousands of telemetry records
 * (10,000 records of ~100-byte values at a few dozen values each) or 48
 * buffered 1 MiB payloads; larger values or deeper rings then keep fewer
 * old values in memory, never fewer in history. */
#define AIMDB_GATEWAY_DEFAULT_MAX_MEMORY ((size_t)64 << 20)

/* History queries queued at once (the history service's queue); a
 * transport keeps its pending requests within it and answers the rest
 * busy (docs/protocol.md). */
#define AIMDB_GATEWAY_PENDING_QUERIES 64

/* How long past their retention local rows the uplink has not shipped yet
 * are kept (uplink_hold): a week of outage on top of the retention. */
#define AIMDB_GATEWAY_DEFAULT_UPLINK_HOLD_MS (7 * 86400000LL)

/* ------------------------------------------------------------- rules */

/* One aimdb.conf rule, as records are opened with it. */
typedef struct aimdb_rule_options {
    const aimdb_codec *codec;
    aimdb_buffer_cfg buffer;
    bool persist;
    int64_t retention_ms; /* for aimdb_persist_record: AIMDB_RETENTION_DEFAULT, 0 = forever */
    size_t max_records;   /* records this rule may open (max_records=); 0: no cap of its own */
    unsigned line;        /* where aimdb.conf writes the rule */
} aimdb_rule_options;

/* A parsed aimdb.conf and the router built from it: rule i of the router is
 * conf->rules[i] and options[i].  Immutable once built but for the counts
 * below; a reload builds a new one, so a message never sees half of two
 * configurations. */
typedef struct aimdb_ruleset {
    aimdb_conf *conf;
    aimdb_router *router;
    aimdb_rule_options *options;
    /* Per rule: the records it opened, for its max_records= (counted by
     * aimdb_gateway_open_record, and again by aimdb_gateway_reapply_record
     * for the records a reload finds open), and whether its cap was logged. */
    _Atomic size_t *opened;
    _Atomic bool *cap_logged;
} aimdb_ruleset;

/* Takes ownership of conf, also on failure (AIMDB_ENOMEM, err says so).
 * *out is the caller's (aimdb_ruleset_free; NULL is fine). */
int aimdb_ruleset_build(aimdb_conf *conf, aimdb_ruleset **out, char *err, size_t errlen);
void aimdb_ruleset_free(aimdb_ruleset *rs);

/* ----------------------------------------------------------- sources */

/* The topics a record's values come from (for a broker's read ACL, and to
 * find a record's rule again after a reload): the rule's filter with each
 * placeholder the name template uses filled in; a '+' or '#' the template
 * does not use stays a wildcard. */
#define AIMDB_SOURCES_MAX 4 /* more candidate topics than this: ambiguous, none kept */

typedef struct aimdb_sources {
    size_t n;
    char *topics[AIMDB_SOURCES_MAX]; /* owned; aimdb_sources_free */
} aimdb_sources;

/* From a record name alone (history, reload): the readings of every rule
 * whose template can produce the name and whose filter routes back to it
 * (none if more than AIMDB_SOURCES_MAX); *rule is the first such rule.
 * AIMDB_ENOTFOUND if no rule does, AIMDB_ENOMEM.  Pure; any thread. */
int aimdb_sources_from_name(const aimdb_ruleset *rs, const char *name, size_t *rule,
                            aimdb_sources *out);
/* Free the topics (the struct itself is the caller's); n becomes 0. */
void aimdb_sources_free(aimdb_sources *s);

/* --------------------------------------------------------- the stack */

typedef struct aimdb_gateway {
    const aimdb_runtime *runtime; /* borrowed; outlives the gateway */
    aimdb_db *db;
    aimdb_persist *persist;
    aimdb_aimx *aimx;             /* answers AimX requests; no ACL filter of its own */
    aimdb_uplink *uplink;         /* NULL without `uplink` */
    char *gateway;                /* the name in fleet history; NULL if none is used */
    char *database_path;          /* as opened; a PostgreSQL URI without its password */
    size_t max_payload;           /* larger values are refused by the db */
    size_t max_records;           /* the db opens no more records than this */
    size_t max_memory;            /* the db's max_memory */
} aimdb_gateway;

/*
 * Open the database, its history (SQLite, creating a missing last
 * directory of the path, logged; or PostgreSQL for a postgresql:// URI),
 * the uplink if settings name one, and the AimX handler as settings say,
 * and start the database and the uplink.  default_database is used when settings name none.  On failure
 * everything opened is closed again, *gw is zeroed and err reads e.g.
 * "database ./data/aimdb.db: unable to open database file".  Call from
 * the thread that will close it.
 */
int aimdb_gateway_open(aimdb_gateway *gw, const aimdb_conf_settings *settings,
                       const char *default_database, const aimdb_runtime *runtime, char *err,
                       size_t errlen);

/* Stop the database (every value produced so far runs through its taps and
 * is committed), then free everything.  Producers must have stopped.  A
 * zeroed gateway is fine. */
void aimdb_gateway_close(aimdb_gateway *gw);

/* The database path settings name, else default_database. */
const char *aimdb_gateway_database(const aimdb_conf_settings *settings,
                                   const char *default_database);

/* ----------------------------------------------------------- records */

/*
 * Register a record for a name the rule produced: the rule's codec and
 * buffer, its description for record.list ("topic_filter", "format") and,
 * if the rule says persist, its history.  *persisting tells whether history
 * is on (a failure there is logged, the record still works).  Errors are
 * logged and returned (e.g. AIMDB_EEXIST: the name is registered with
 * another codec), except AIMDB_EFULL -- the global max_records, or the
 * rule's own max_records= (logged once per rule and configuration) -- which
 * may come for every value of every new name: the caller counts and
 * reports those drops at its own rate.  Any thread; records register under
 * the db's lock.  A name already registered is returned whatever the caps.
 */
int aimdb_gateway_open_record(aimdb_gateway *gw, const aimdb_ruleset *rs, size_t rule,
                              const char *name, aimdb_record **out, bool *persisting);

/*
 * Apply a reloaded rule to a record that is open: it counts toward the
 * rule's max_records=, and history is switched on or gets the rule's
 * retention.  What a running record cannot change (its
 * buffer, its format, history switched off) is logged as taking effect
 * when `who` restarts ("the broker", "aimdb-bridge").  Returns whether the
 * record is persisted now.
 */
bool aimdb_gateway_reapply_record(aimdb_gateway *gw, aimdb_record *rec, const aimdb_ruleset *rs,
                                  size_t rule, bool persisting, const char *who);

/* ------------------------------------------------------------ ingest */

/*
 * What the plugin and aimdb-bridge do with each message they receive, in
 * one place (ingest.c): route the topic by `router` (rule i of the router
 * is the caller's rule i), drop what cannot be recorded, find or open the
 * record through record_for and push a copy of the payload to `relay`.
 * The caller owns everything here; a reload builds a new one.
 */
typedef struct aimdb_ingest {
    const aimdb_router *router;
    aimdb_relay *relay;
    size_t max_payload; /* larger payloads are dropped before any copy */
    /* The record for name, which `rule` made from topic: found, or opened
     * (e.g. by aimdb_gateway_open_record).  AIMDB_EFULL (a record cap) or
     * any other error drops the message.  *source is the value's source
     * for aimdb_produce_from (NULL allowed).  Runs on the caller's thread. */
    int (*record_for)(void *ctx, size_t rule, const char *name, const char *topic,
                      aimdb_record **rec, const char **source);
    /* Optional: false if this copy of the message is not for `rule` (a
     * broker delivering one message once per overlapping subscription). */
    bool (*owns)(void *ctx, size_t rule);
    void *ctx;
} aimdb_ingest;

typedef struct aimdb_ingest_message {
    const char *topic;
    size_t topic_len;
    const void *payload; /* may be NULL when len is 0 */
    size_t len;
    int64_t ts_ms;       /* arrival, Unix ms: the value's time */
} aimdb_ingest_message;

typedef enum aimdb_ingest_result {
    AIMDB_INGEST_QUEUED,   /* on its way to the record */
    AIMDB_INGEST_UNROUTED, /* no rule's filter matches the topic */
    AIMDB_INGEST_NOT_OURS, /* owns() refused this copy */
    AIMDB_INGEST_DROPPED,  /* routed, not recorded: *why says why in words */
} aimdb_ingest_result;

/* Route and queue one message.  *why (a static string) is set only for
 * AIMDB_INGEST_DROPPED; the caller counts and logs (rate-limited).  Never
 * waits; the relay's one pushing thread only. */
aimdb_ingest_result aimdb_gateway_ingest(const aimdb_ingest *in, const aimdb_ingest_message *m,
                                         const char **why);

/* Log each rule that can never receive a message (an earlier rule has its
 * filter), each pair of rules whose names can coincide, with both line
 * numbers, and each persisted rule whose buffer collapses values before
 * history reads them (rule_warnings.c).  Any thread. */
void aimdb_conf_warn_rules(const aimdb_conf *conf, const aimdb_runtime *rt);

/* Log, for a reload, each global setting that differs between two
 * configurations: settings apply only when `who` restarts. */
void aimdb_gateway_warn_settings(const aimdb_gateway *gw, const aimdb_conf *was,
                                 const aimdb_conf *now, const char *default_database,
                                 const char *who);

#ifdef __cplusplus
}
#endif
#endif
