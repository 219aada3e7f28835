/*
 * mqtt_conf.h -- aimdb.conf (docs/configuration.md), shared by the Mosquitto plugin
 * and the aimdb-bridge daemon.
 *
 * Line-based.  Tokens are separated by blanks; a token starting with '#'
 * starts a comment that runs to the end of the line, except in the filter
 * position of a record line, where "#" is the filter (`record all a/#` and
 * `record all #  # everything` both work).  Blank lines are ignored.
 *
 *   KEY VALUE                 a global setting, at most once per file
 *   record NAME-TEMPLATE TOPIC-FILTER [persist] [buffer=ring:N|latest|mailbox]
 *          [retention=DURATION] [format=auto|json|text|binary] [max_records=N]
 *
 * Settings (values are single tokens):
 *   database        path, :memory:, or a PostgreSQL URI (postgresql://...)
 *   uplink          a PostgreSQL URI every local row is copied to
 *   gateway         this node's name in PostgreSQL (default: the host name)
 *   uplink_hold     how long past their retention unshipped rows are kept
 *                   (N s|m|h|d; default 7d; 0 = not at all)
 *   retention       default history retention: N s|m|h|d, or 0 = forever
 *   synchronous     off | normal | full
 *   batch_rows, queue_rows, workers, max_records   positive integers
 *   flush_interval, sweep_interval             N ms|s|m|h|d, greater than 0
 *   max_payload     bytes, optionally with k (KiB), M (MiB) or G (GiB); above 0
 *   max_memory      the same units, from 1M: the bytes held for values
 *   request_topic, broker, client_id           aimdb-bridge only
 * A record option may appear once; retention= needs persist.  Rules whose
 * templates have no placeholder and name the same record must agree on its
 * options (one record has one buffer, codec and history policy).
 *
 * Every error is one line, "NAME:LINE: what is wrong", NAME being the file's
 * basename (or the display name given to aimdb_conf_parse), e.g.
 *   aimdb.conf:7: unknown key 'retension'
 */
#ifndef AIMDB_MQTT_CONF_H
#define AIMDB_MQTT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"
#include "aimdb/payload.h"
#include "aimdb/sqlite.h" /* aimdb_sqlite_sync only; nothing to link */

#ifdef __cplusplus
extern "C" {
#endif

/* Which program reads the file: the plugin refuses bridge-only settings. */
typedef enum aimdb_conf_app {
    AIMDB_CONF_PLUGIN,
    AIMDB_CONF_BRIDGE
} aimdb_conf_app;

/* Global settings.  0 / NULL mean "not given": the layer's own default. */
typedef struct aimdb_conf_settings {
    char *database;                /* path, ":memory:" or a PostgreSQL URI; NULL = not given */
    char *uplink;                  /* PostgreSQL URI; NULL = no uplink */
    char *gateway;                 /* NULL = the host name */
    int64_t uplink_hold_ms;        /* -1 = not given (AIMDB_GATEWAY_DEFAULT_UPLINK_HOLD_MS) */
    int64_t retention_ms;          /* default retention; 0 = keep forever */
    aimdb_sqlite_sync synchronous; /* AIMDB_SQLITE_SYNC_NORMAL unless given */
    unsigned batch_rows;
    unsigned queue_rows;
    unsigned flush_interval_ms;
    int64_t sweep_interval_ms;
    size_t max_payload;            /* bytes; for aimdb_db_options.max_value_bytes */
    size_t max_memory;             /* bytes; for aimdb_db_options.max_memory */
    unsigned workers;              /* for aimdb_db_options.workers */
    unsigned max_records;          /* for aimdb_db_options.max_records */
    char *request_topic;           /* bridge only */
    char *broker;                  /* bridge only, "scheme://host:port" */
    char *client_id;               /* bridge only */
} aimdb_conf_settings;

/* One `record` line. */
typedef struct aimdb_conf_rule {
    char *name_template;          /* checked against topic_filter */
    char *topic_filter;           /* a valid MQTT filter */
    bool persist;
    aimdb_buffer_cfg buffer;      /* AIMDB_BUFFER_DEFAULT unless buffer= */
    int64_t retention_ms;         /* -1 = the global default; 0 = keep forever */
    aimdb_payload_format format;  /* AIMDB_FORMAT_AUTO unless format= */
    unsigned max_records;         /* records this rule may open; 0 = only the global bound */
    unsigned line;                /* where the rule was written */
} aimdb_conf_rule;

/* A parsed file.  Read-only for its users; everything is owned by it. */
typedef struct aimdb_conf {
    aimdb_conf_app app;
    aimdb_conf_settings settings;
    aimdb_conf_rule *rules;       /* in file order: the first match wins */
    size_t n_rules;
} aimdb_conf;

/*
 * Parse len bytes of text (an empty text gives the defaults and no rules).
 * display_name prefixes errors (NULL: "aimdb.conf").  On success *out is
 * the caller's (aimdb_conf_free).  On error *out is NULL, err holds the
 * message and the return is AIMDB_EINVAL (or AIMDB_ENOMEM).
 */
int aimdb_conf_parse(const char *text, size_t len, const char *display_name,
                     aimdb_conf_app app, aimdb_conf **out, char *err, size_t errlen);

/* Read and parse a file; errors are prefixed with its basename.  A file that
 * cannot be read is AIMDB_EIO with "PATH: cannot read: REASON". */
int aimdb_conf_load(const char *path, aimdb_conf_app app, aimdb_conf **out, char *err,
                    size_t errlen);

/*
 * Override one global setting (e.g. from `plugin_opt_retention 1d`), after
 * the file: the last value given wins.  Errors read "PREFIXKEY: reason"
 * (prefix "plugin_opt_" gives "plugin_opt_retention: bad duration 'x'");
 * prefix may be NULL.  AIMDB_EINVAL or AIMDB_ENOMEM; on error conf is
 * unchanged.  Records cannot be overridden.
 */
int aimdb_conf_override(aimdb_conf *conf, const char *prefix, const char *key,
                        const char *value, char *err, size_t errlen);

void aimdb_conf_free(aimdb_conf *conf);

#ifdef __cplusplus
}
#endif
#endif
