/*
 * bridge.h -- aimdb-bridge's state and the seams between its files.
 * Internal to connector/bridge/.
 *
 *   main.c      start-up, the signal loop (SIGTERM/SIGINT drain, SIGHUP
 *               reload), shutdown
 *   options.c   the command line and aimdb.conf, merged
 *   ingest.c    aimdb.conf's rules as the connector's inbound links
 *   requests.c  AimX requests on request_topic, replies to the v5
 *               Response Topic
 *
 * Threads: main handles signals and reloads; Paho's receive thread routes
 * messages (ingest.c's open callback) and takes requests; query threads
 * deliver record.query replies.  Only main changes the rule set.
 */
#ifndef AIMDB_BRIDGE_H
#define AIMDB_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/connector.h"
#include "aimdb/gateway.h"

#define BRIDGE_WHO "aimdb-bridge" /* what restarts to apply what a reload cannot */

/* ----------------------------------------------------------- options.c */

typedef struct bridge_options {
    const char *config_path;
    /* Settings given on the command line, applied over the file's (also
     * on reload).  Keys are aimdb.conf's. */
    size_t n_overrides;
    const char *keys[8], *values[8];
    const char *username, *password, *ca_file, *cert_file, *key_file;
} bridge_options;

/* Parse argv: CLI_PARSED; CLI_ASKED_HELP or CLI_ASKED_VERSION (printed);
 * CLI_EXIT_USAGE (the error printed). */
int options_parse(int argc, char **argv, bridge_options *o);
/* Read aimdb.conf and apply the command line.  Errors read
 * "aimdb.conf:LINE: reason" or "--broker: reason". */
int options_load_conf(const bridge_options *o, aimdb_conf **out, char *err, size_t errlen);
/* The effective bridge settings of a loaded configuration. */
const char *options_broker(const aimdb_conf *conf);
/* client_id, or "aimdb-bridge-HOSTNAME" (stable, so the default request
 * topic is too).  Writes into buf. */
const char *options_client_id(const aimdb_conf *conf, char *buf, size_t cap);
/* The database when aimdb.conf and -d give none: ./data/CLIENT-ID.db (see
 * options.c for why).  Writes into buf. */
const char *options_default_database(const char *client_id, char *buf, size_t cap);
/* Where the connector keeps its last deliveries across restarts: DIR/
 * CLIENT-ID.session beside a database file, ./data/CLIENT-ID.session for
 * PostgreSQL (creating ./data if missing), NULL for :memory:.  Writes into
 * buf. */
const char *options_session_file(const char *database, const char *client_id, char *buf,
                                 size_t cap);
/* request_topic, or "aimdb/CLIENT-ID/rpc".  Writes into buf. */
const char *options_request_topic(const aimdb_conf *conf, const char *client_id, char *buf,
                                  size_t cap);

/* ------------------------------------------------------------ ingest.c */

typedef struct ingest ingest;

/* Route by rs (owned from here on) through the connector's inbound links;
 * records are opened through the gateway, fixed-name ones at once.  On a
 * reload the previous rule set is freed once no message uses it, and
 * records already open get the rule that now produces their name. */
int ingest_apply(ingest **state, aimdb_ruleset *rs, aimdb_gateway *gw, aimdb_connector *conn,
                 char *err, size_t errlen);
const aimdb_ruleset *ingest_rules(const ingest *state);
void ingest_free(ingest *state);

/* ---------------------------------------------------------- requests.c */

typedef struct requests requests;

/* Answer AimX requests published on topic (a topic name), before the
 * connector starts.  Free after the gateway closed: replies to pending
 * queries arrive until then. */
int requests_serve(requests **out, aimdb_connector *conn, aimdb_gateway *gw, const char *topic,
                   char *err, size_t errlen);
/* Requests answered (the reply handed to the broker) and those that got
 * none: a bad response topic, no memory, a reply the connector could not
 * send.  Any thread; r may be NULL (all 0). */
typedef struct requests_counts {
    uint64_t answered, unanswered;
} requests_counts;
requests_counts requests_count(const requests *r);
void requests_free(requests *r);

#endif
