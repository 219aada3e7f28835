/*
 * main.c -- aimdb-bridge: the plugin's job for a broker that cannot load
 * the plugin.  Records from aimdb.conf are fed from any MQTT broker through
 * the connector, kept in SQLite by the gateway, and AimX requests on the
 * request topic are answered over MQTT v5.
 *
 * Start-up checks everything it can before touching the network (the
 * file, the URL, the TLS files, the database) and exits 1 with one line
 * saying what is wrong; a broker that is down is not an error: the
 * connector retries and logs why.  The main thread then only waits for
 * signals: SIGHUP reloads aimdb.conf (an invalid file keeps the running
 * configuration), SIGTERM and SIGINT disconnect first, so nothing new
 * arrives, and then stop the database, which commits every value received;
 * what the broker still had queued for the bridge waits in its session.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/broker_url.h"
#include "bridge.h"
#include "cli_usage.h"

/* The broker keeps the bridge's session for a day after it leaves: its
 * subscriptions, and the QoS 1/2 messages published meanwhile (up to the
 * broker's max_queued_messages), which are recorded when it is back, after
 * an outage or a restart alike.  The default client id is stable for this. */
#define BRIDGE_SESSION_EXPIRY_S 86400

typedef struct bridge {
    bridge_options opts;
    aimdb_gateway gw;
    aimdb_connector *conn;
    ingest *ingest;
    requests *requests;
    char default_database[256]; /* ./data/CLIENT-ID.db (options_default_database) */
} bridge;

static void reload(bridge *b) {
    aimdb_conf *conf;
    aimdb_ruleset *rs;
    char err[1024];
    int rc = options_load_conf(&b->opts, &conf, err, sizeof(err));
    if (rc == AIMDB_OK) {
        aimdb_gateway_warn_settings(&b->gw, ingest_rules(b->ingest)->conf, conf,
                                    b->default_database, BRIDGE_WHO);
        rc = aimdb_ruleset_build(conf, &rs, err, sizeof(err));
    }
    if (rc == AIMDB_OK) rc = ingest_apply(&b->ingest, rs, &b->gw, b->conn, err, sizeof(err));
    if (rc != AIMDB_OK) {
        aimdb_log(b->gw.runtime, AIMDB_LOG_ERROR, "reload: %s; keeping the previous configuration",
                  err);
        return;
    }
    aimdb_log(b->gw.runtime, AIMDB_LOG_INFO, "reloaded %s: %zu rule(s)", b->opts.config_path,
              ingest_rules(b->ingest)->conf->n_rules);
}

static int start(bridge *b, char *err, size_t errlen) {
    aimdb_conf *conf;
    aimdb_ruleset *rs;
    int rc = options_load_conf(&b->opts, &conf, err, errlen);
    if (rc != AIMDB_OK) return rc;
    char id_buf[128], topic_buf[256];
    const char *client_id = options_client_id(conf, id_buf, sizeof(id_buf));
    options_default_database(client_id, b->default_database, sizeof(b->default_database));
    aimdb_connector_options co = {
        .broker = options_broker(conf),
        .client_id = client_id,
        .username = b->opts.username,
        .password = b->opts.password,
        .ca_file = b->opts.ca_file,
        .cert_file = b->opts.cert_file,
        .key_file = b->opts.key_file,
        .session_expiry_s = BRIDGE_SESSION_EXPIRY_S,
    };
    const char *request_topic = options_request_topic(conf, client_id, topic_buf,
                                                      sizeof(topic_buf));
    /* A mistyped URL must not leave a new database behind: checked first. */
    aimdb_broker_url url;
    if (aimdb_broker_url_parse(co.broker, &url, err, errlen) != AIMDB_OK) {
        aimdb_conf_free(conf);
        return AIMDB_EINVAL;
    }
    rc = aimdb_gateway_open(&b->gw, &conf->settings, b->default_database,
                            aimdb_runtime_pthread(), err, errlen);
    char session_file[4096];
    if (rc == AIMDB_OK)
        co.session_file = options_session_file(b->gw.database_path, client_id, session_file,
                                               sizeof(session_file));
    if (rc == AIMDB_OK) rc = aimdb_connector_new(b->gw.db, &co, &b->conn, err, errlen);
    if (rc == AIMDB_OK)
        rc = requests_serve(&b->requests, b->conn, &b->gw, request_topic, err, errlen);
    if (rc == AIMDB_OK) aimdb_log(b->gw.runtime, AIMDB_LOG_INFO,
                                  "started: %zu rule(s) from %s, history in %s, broker %s, "
                                  "requests on %s", conf->n_rules, b->opts.config_path,
                                  b->gw.database_path, co.broker, request_topic);
    /* The strings above point into conf: the rule set takes it last. */
    if (rc == AIMDB_OK) rc = aimdb_ruleset_build(conf, &rs, err, errlen);
    else aimdb_conf_free(conf);
    if (rc == AIMDB_OK) aimdb_conf_warn_rules(rs->conf, b->gw.runtime);
    if (rc == AIMDB_OK) rc = ingest_apply(&b->ingest, rs, &b->gw, b->conn, err, errlen);
    if (rc == AIMDB_OK && (rc = aimdb_connector_start(b->conn)) != AIMDB_OK)
        snprintf(err, errlen, "cannot start the connector: %s", aimdb_strerror(rc));
    return rc;
}

/* Disconnect first (nothing new arrives), then stop the database (every
 * value received is committed; pending queries still reply, into a
 * stopped connector), then free.  After a run, say what it did. */
static void stop(bridge *b, bool report) {
    aimdb_connector_stats s = {0};
    if (b->conn) {
        aimdb_connector_stop(b->conn);
        aimdb_connector_stats_get(b->conn, &s);
    }
    aimdb_gateway_close(&b->gw);
    aimdb_connector_free(b->conn); /* no outbound links: after the db is fine */
    requests_counts n = requests_count(b->requests); /* final: the gateway is closed */
    requests_free(b->requests);
    ingest_free(b->ingest);
    if (!report) return;
    char unanswered[64] = "";
    if (n.unanswered)
        snprintf(unanswered, sizeof(unanswered), ", %llu unanswered (see the log)",
                 (unsigned long long)n.unanswered);
    fprintf(stderr, "aimdb-bridge: stopped: %llu message(s) received, %llu recorded, %llu "
            "matched no rule, %llu dropped, %llu resent by the broker and skipped; %llu "
            "request(s) answered%s; %llu reconnect(s)\n",
            (unsigned long long)s.received, (unsigned long long)s.produced,
            (unsigned long long)s.unrouted, (unsigned long long)s.dropped,
            (unsigned long long)s.redelivered,
            (unsigned long long)n.answered, unanswered, (unsigned long long)s.disconnects);
}

int main(int argc, char **argv) {
    bridge b;
    memset(&b, 0, sizeof(b));
    int rc = options_parse(argc, argv, &b.opts);
    if (rc != CLI_PARSED) return rc == CLI_EXIT_USAGE ? rc : CLI_EXIT_OK; /* help, version */

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    /* Blocked before any thread exists, so every thread inherits the mask
     * and only sigwait below takes these signals. */
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    char err[1024] = "";
    if (start(&b, err, sizeof(err)) != AIMDB_OK) {
        fprintf(stderr, "aimdb-bridge: %s\n", err);
        stop(&b, false);
        return 1;
    }
    for (;;) {
        int signo;
        if (sigwait(&signals, &signo) != 0) continue;
        if (signo == SIGHUP) {
            reload(&b);
            continue;
        }
        aimdb_log(b.gw.runtime, AIMDB_LOG_INFO, "%s: disconnecting and committing history",
                  signo == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    stop(&b, true);
    return 0;
}
