/*
 * plugin.c -- aimdb_mosquitto.so's entry points (Mosquitto plugin API v5):
 * version, init, cleanup, and the broker events the plugin listens to.
 *
 *   MOSQ_EVT_MESSAGE     ingest.c   every accepted PUBLISH -> its record
 *                                   (2.1 calls it MOSQ_EVT_MESSAGE_IN)
 *   MOSQ_EVT_CONTROL     control.c  requests on $CONTROL/aimdb/v1
 *   MOSQ_EVT_TICK        here       drain the outbox (replies, logs); metrics
 *   MOSQ_EVT_RELOAD      reload.c   SIGHUP: read aimdb.conf again
 *   MOSQ_EVT_DISCONNECT  here       drop replies owed to a client that left
 *
 * Init reads the configuration (any error stops the broker with
 * "aimdb.conf:LINE: reason" in its log), opens history and starts the
 * database.  Cleanup, which Mosquitto runs after its loop ends on SIGTERM
 * or SIGINT, stops the database: every value routed before the signal is
 * run through its taps and committed before the broker exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static int on_tick(int event, void *event_data, void *userdata) {
    (void)event;
    (void)event_data;
    plugin *pl = userdata;
    outbox_drain(pl, true);
    metrics_tick(pl);
    return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata) {
    (void)event;
    const struct mosquitto_evt_disconnect *ev = event_data;
    requests_client_gone(userdata, ev->client);
    clients_gone(userdata, ev->client);
    return MOSQ_ERR_SUCCESS;
}

static const struct {
    int event;
    MOSQ_FUNC_generic_callback fn;
    const char *data;
} callbacks[] = {
    {MOSQ_EVT_MESSAGE, ingest_on_message, NULL},
    {MOSQ_EVT_CONTROL, control_on_request, PLUGIN_REQUEST_TOPIC},
    {MOSQ_EVT_TICK, on_tick, NULL},
    {MOSQ_EVT_RELOAD, reload_on_reload, NULL},
    {MOSQ_EVT_DISCONNECT, on_disconnect, NULL},
};
#define N_CALLBACKS (sizeof(callbacks) / sizeof(callbacks[0]))

static int register_callbacks(plugin *pl, char *err, size_t errlen) {
    for (; pl->callbacks_registered < N_CALLBACKS; pl->callbacks_registered++) {
        size_t i = pl->callbacks_registered;
        int rc = mosquitto_callback_register(pl->id, callbacks[i].event, callbacks[i].fn,
                                             callbacks[i].data, pl);
        if (rc != MOSQ_ERR_SUCCESS) {
            snprintf(err, errlen, "cannot register for broker event %d: %s", callbacks[i].event,
                     mosquitto_strerror(rc));
            return AIMDB_EINVAL;
        }
    }
    return AIMDB_OK;
}

static void unregister_callbacks(plugin *pl) {
    while (pl->callbacks_registered > 0) {
        size_t i = --pl->callbacks_registered;
        mosquitto_callback_unregister(pl->id, callbacks[i].event, callbacks[i].fn,
                                      callbacks[i].data);
    }
}

/* With per-listener settings each listener has its own ACLs and plugins,
 * which the plugin's one view of the broker's access rules (broker_acl.c)
 * does not follow, and Mosquitto 2.0.11 then raises no MOSQ_EVT_TICK (its
 * plugin.c leaves iterating over the listeners unfinished), so no history
 * reply would ever go out: refuse to start. */
static int check_broker_mode(char *err, size_t errlen) {
    char value[16];
    if (broker_conf_get("per_listener_settings", value, sizeof(value)) &&
        strcmp(value, "true") == 0) {
        snprintf(err, errlen, "per_listener_settings true is not supported: ACLs would differ "
                              "per listener, and Mosquitto 2.0.11 sends plugins no "
                              "MOSQ_EVT_TICK then, so replies could not be sent");
        return AIMDB_EINVAL;
    }
    return AIMDB_OK;
}

static int start(plugin *pl, struct mosquitto_opt *opts, int n, char *err, size_t errlen) {
    aimdb_conf *conf;
    int rc = check_broker_mode(err, errlen);
    if (rc == AIMDB_OK) rc = options_copy(&pl->options, opts, n, err, errlen);
    if (rc == AIMDB_OK) rc = config_load(&pl->options, &conf, err, errlen);
    if (rc == AIMDB_OK) rc = aimdb_ruleset_build(conf, &pl->rules, err, errlen);
    if (rc != AIMDB_OK) return rc;
    if (!pl->options.config_path)
        plugin_log(pl, AIMDB_LOG_WARNING, "no plugin_opt_config: no records are configured");
    if (!(pl->catalog = catalog_new()) || !clients_init(pl)) {
        snprintf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    broker_api_init(pl);
    acl_init(pl);
    if (!wake_install(&pl->wake))
        plugin_log(pl, AIMDB_LOG_WARNING, "no free real-time signal to wake the broker: "
                                          "replies wait for its next tick (up to 100 ms)");
    rc = setup_open(pl, pl->rules->conf, err, errlen);
    if (rc == AIMDB_OK) rc = records_open_fixed(pl, pl->rules);
    if (rc == AIMDB_OK) records_scan_history(pl, pl->rules);
    if (rc == AIMDB_OK) aimdb_conf_warn_rules(pl->rules->conf, &pl->runtime);
    if (rc != AIMDB_OK && !*err) snprintf(err, errlen, "start-up failed: %s", aimdb_strerror(rc));
    if (rc == AIMDB_OK) {
        metrics_init(pl);
        rc = register_callbacks(pl, err, errlen);
    }
    return rc;
}

/* Cleanup and failed init alike: stop first (commits history; pending
 * queries answer into the outbox), then deliver what the outbox holds
 * without publishing, then free. */
static void teardown(plugin *pl) {
    unregister_callbacks(pl);
    setup_close(pl);
    wake_uninstall(&pl->wake);
    outbox_drain(pl, false);
    clients_free(pl);
    acl_cleanup(pl);
    catalog_free(pl->catalog);
    aimdb_ruleset_free(pl->rules);
    options_free(&pl->options);
    free(pl);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5) return 5;
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count) {
    plugin *pl = calloc(1, sizeof(*pl));
    if (!pl) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "aimdb: out of memory");
        return MOSQ_ERR_NOMEM;
    }
    pl->id = identifier;
    pl->broker_thread = pthread_self();
    outbox_init(&pl->outbox);
    host_runtime_init(pl);
    char err[1024] = "";
    int rc = start(pl, options, option_count, err, sizeof(err));
    if (rc != AIMDB_OK) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "aimdb: %s", err);
        teardown(pl);
        return rc == AIMDB_ENOMEM ? MOSQ_ERR_NOMEM : MOSQ_ERR_INVAL;
    }
    plugin_log(pl, AIMDB_LOG_INFO, "started: %zu rule(s) from %s, history in %s",
               pl->rules->conf->n_rules,
               pl->options.config_path ? pl->options.config_path : "(no aimdb.conf)",
               pl->gw.database_path);
    *userdata = pl;
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
    (void)options;
    (void)option_count;
    plugin *pl = userdata;
    if (!pl) return MOSQ_ERR_SUCCESS;
    plugin_log(pl, AIMDB_LOG_INFO, "stopping: %llu message(s) routed; committing history",
               (unsigned long long)pl->counters.routed);
    teardown(pl);
    return MOSQ_ERR_SUCCESS;
}
